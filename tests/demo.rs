//! `wearline demo` as a new user runs it: it prints a manager and a customer
//! token that work at once, work orders open, none twice, and the last line
//! is the JSON summary.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

#[test]
fn demo_opens_work_orders_once_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let demo = Proc::start(
        dir.path(),
        "demo",
        &[
            "demo",
            "--exit-after",
            "20",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    );
    // The tokens come before any work order.
    let orders_url = demo.expect_line("api:", Duration::from_secs(30));
    let api = orders_url.trim_end_matches("/work-orders");
    let manager = demo.expect_line("manager token:", Duration::from_secs(5));
    let customer = demo.expect_line(
        "customer token (acme, owns purifier-0001):",
        Duration::from_secs(5),
    );
    let technician = demo.expect_line(
        "technician token (tess, takes every order):",
        Duration::from_secs(5),
    );
    let (code, mine, _) = get_as(&format!("{api}/devices"), Some(&customer));
    let ids: Vec<&str> = mine
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!((code, ids), (200, vec!["purifier-0001"]), "{mine}");
    assert_eq!(
        get_as(&format!("{api}/devices/purifier-0002"), Some(&customer)).0,
        404
    );
    let (code, all, _) = get_as(&format!("{api}/work-orders"), Some(&manager));
    assert!(code == 200 && all.is_array(), "{all}");
    assert_eq!(get_as(&format!("{api}/devices"), None).0, 401);

    // The README's walk through an order: the technician sees it assigned
    // to her, accepts, starts and resolves it; the customer asks for a visit.
    let mine = eventually(Duration::from_secs(15), "an order for tess", || {
        let (_, list, _) = get_as(&format!("{api}/work-orders?status=assigned"), Some(&technician));
        list.as_array()?.first().cloned()
    });
    let steps = format!("{api}/work-orders/{}/transitions", mine["id"]);
    for action in ["accept", "start", "resolve"] {
        let (code, answer) = post_json_as(&steps, &technician, &serde_json::json!({"action": action}));
        assert_eq!(code, 200, "{action}: {answer}");
    }
    let (code, request) = post_json_as(
        &format!("{api}/work-orders"),
        &customer,
        &serde_json::json!({"device": "purifier-0001", "title": "Noisy fan"}),
    );
    assert_eq!(
        (code, request["assignee"].as_str()),
        (201, Some("tess")),
        "{request}"
    );

    let (status, lines) = demo.wait(Duration::from_secs(60));
    assert!(status.success(), "demo exited with {status}");
    let last = lines.last().expect("output");
    let summary: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(summary["devices"], 20, "{summary}");
    assert!(
        summary["telemetry_points"].as_i64().expect("points") > 20 * 8 * 10,
        "{summary}"
    );
    // Printed: the orders the data opened (the customer's request is not one).
    let printed: Vec<&String> = lines.iter().filter(|l| l.starts_with("work order #")).collect();
    assert!(
        printed.len() >= 3,
        "several work orders open within 20 s: {lines:#?}"
    );
    assert_eq!(summary["work_orders"], printed.len() + 1, "{summary}");
    let devices: BTreeSet<&str> = printed
        .iter()
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert_eq!(
        devices.len(),
        printed.len(),
        "one order per device and filter: {printed:#?}"
    );
    assert!(data.join("hub.db").exists(), "--data-dir keeps the database");
}
