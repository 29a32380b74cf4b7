//! `wearline demo` as a new user runs it: work orders open, none twice, and
//! the last line is the JSON summary.

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
    let (status, lines) = demo.wait(Duration::from_secs(60));
    assert!(status.success(), "demo exited with {status}");
    let last = lines.last().expect("output");
    let summary: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(summary["devices"], 20, "{summary}");
    assert!(
        summary["telemetry_points"].as_i64().expect("points") > 20 * 8 * 10,
        "{summary}"
    );
    let printed: Vec<&String> = lines.iter().filter(|l| l.starts_with("work order #")).collect();
    assert!(
        printed.len() >= 3,
        "several work orders open within 20 s: {lines:#?}"
    );
    assert_eq!(summary["work_orders"], printed.len(), "{summary}");
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
