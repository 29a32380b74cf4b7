//! Simulator, agent and hub as three real processes on ephemeral ports: a
//! nearly full filter gets a preventive work order, a fresh one does not, and
//! devices that are down or silent do not hold back the others.

mod support;

use std::net::TcpListener;
use std::time::Duration;
use support::*;

#[test]
fn nearly_full_filter_gets_a_work_order_and_fresh_filter_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());

    // Two purifiers, one simulated day per real second: 0001 has used 97 % of
    // its filter, 0002 has a new one.
    let sim = Proc::start(
        dir.path(),
        "sim",
        &[
            "sim",
            "--devices",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "86400",
            "--filter-load",
            "0.97,0.0",
            "--pm25",
            "35",
        ],
    );
    let full = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let fresh = sim.expect_line("purifier-0002", Duration::from_secs(5));
    let addr = |rest: &str| rest.split_whitespace().next().expect("address").to_string();

    // A device that refuses connections, and one that accepts and never answers.
    let refused = closed_port();
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");

    let agent_cfg = dir.path().join("agent.toml");
    let devices = [
        ("purifier-0001", addr(&full)),
        ("purifier-0002", addr(&fresh)),
        ("dead-0001", refused.to_string()),
        ("silent-0001", silent_addr.to_string()),
    ];
    let mut text = format!(
        "gateway = \"gw-test\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 2\nbatch_delay_ms = 200\n",
        configs_dir().join("profiles"),
        hub.broker
    );
    for (id, a) in devices {
        text.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nprofile = \"air-purifier\"\ntcp = \"{a}\"\ninterval_ms = 250\ntimeout_ms = 300\n"
        ));
    }
    std::fs::write(&agent_cfg, text).expect("write agent config");
    let _agent = Proc::start(
        dir.path(),
        "agent",
        &[
            "agent",
            "--config",
            agent_cfg.to_str().expect("utf-8"),
            "--time-scale",
            "86400",
        ],
    );

    let work_orders = format!("{}/api/v1/work-orders", hub.api);
    let orders = eventually(Duration::from_secs(60), "a work order for purifier-0001", || {
        let v = get_json(&work_orders);
        let list = v.as_array()?.clone();
        list.iter()
            .any(|w| w["device_id"] == "purifier-0001")
            .then_some(list)
    });
    let wo = orders
        .iter()
        .find(|w| w["device_id"] == "purifier-0001")
        .expect("found");
    assert_eq!(wo["kind"], "preventive");
    assert_eq!(wo["cause"], "consumable:filter");
    assert_eq!(wo["status"], "open");
    // The order explains itself: the rule, and the prediction with its model and data.
    let why = &wo["explanation"];
    assert!(why["remaining_days"].as_f64().expect("remaining") <= 14.0, "{wo}");
    assert_eq!(why["prediction"]["limit"], "wear", "{wo}");
    assert!(
        why["prediction"]["model"]
            .as_str()
            .is_some_and(|m| m.contains("trend")),
        "{wo}"
    );
    assert!(
        why["prediction"]["usage_per_day"].as_f64().expect("usage rate") > 0.0,
        "{wo}"
    );
    assert!(
        why["prediction"]["basis"]["points"].as_u64().expect("points") >= 5,
        "{wo}"
    );

    // The fresh filter has a confident prediction far beyond the lead time, and no order.
    let fresh_url = format!("{}/api/v1/devices/purifier-0002", hub.api);
    let consumable = eventually(Duration::from_secs(30), "a prediction for purifier-0002", || {
        let d = get_json(&fresh_url);
        let c = d["consumables"].as_array()?.first()?.clone();
        (c["samples"].as_f64()? >= 5.0 && c["remaining_days"].as_f64().is_some()).then_some(c)
    });
    assert!(
        consumable["remaining_days"].as_f64().expect("days") > 30.0,
        "{consumable}"
    );
    // The same prediction on the device's consumables endpoint, with its
    // interval, confidence and model; an unknown device is a 404.
    let listed = get_json(&format!("{fresh_url}/consumables"));
    let filter = &listed.as_array().expect("array")[0];
    assert_eq!(filter["name"], "filter", "{listed}");
    assert!(
        filter["model"].as_str().is_some_and(|m| !m.is_empty()),
        "{listed}"
    );
    assert_eq!(filter["coverage"], 0.9, "{listed}");
    assert!(
        ["high", "medium", "low"].contains(&filter["confidence"].as_str().unwrap_or("")),
        "{listed}"
    );
    assert!(
        filter["used"].as_f64().is_some() && filter["usage_per_day"].as_f64().is_some(),
        "{listed}"
    );
    let (low, high) = (
        filter["remaining_days_interval"][0].as_f64(),
        filter["remaining_days_interval"][1].as_f64(),
    );
    let mid = filter["remaining_days"].as_f64().expect("days");
    assert!(
        low.is_none_or(|l| l <= mid) && high.is_none_or(|h| h >= mid),
        "{listed}"
    );
    let missing = ureq::get(&format!("{}/api/v1/devices/nope/consumables", hub.api))
        .header("Authorization", &bearer(ADMIN_TOKEN))
        .call();
    assert!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );
    let all = get_json(&work_orders);
    let all = all.as_array().expect("array");
    assert!(
        !all.iter().any(|w| w["device_id"] == "purifier-0002"),
        "no order for a fresh filter: {all:?}"
    );
    let open_for_full = all.iter().filter(|w| w["device_id"] == "purifier-0001").count();
    assert_eq!(
        open_for_full, 1,
        "exactly one open order per device and consumable"
    );

    // A service manager works the order through its lifecycle; a step out of
    // order is refused with the reason, and the trail says who did what
    // (the token's holder). Their tokens are made with the CLI while the hub runs.
    let cfg = dir.path().join("hub.toml");
    let maria = create_token(&cfg, &["--role", "manager", "--name", "maria"]);
    let tech = create_token(&cfg, &["--role", "technician", "--name", "tech-7"]);
    let id = wo["id"].as_i64().expect("id");
    let transitions = format!("{work_orders}/{id}/transitions");
    let step = |body: serde_json::Value| post_json_as(&transitions, &maria, &body);
    let (code, refused) = step(serde_json::json!({"action": "resolve"}));
    assert_eq!(code, 409, "{refused}");
    assert_eq!(
        refused["error"],
        "cannot resolve a work order that is open: allowed: assign, cancel"
    );
    let (code, bad) = step(serde_json::json!({"action": "fix"}));
    assert_eq!(code, 400, "{bad}");
    let (code, assigned) = step(serde_json::json!({"action": "assign", "assignee": "tech-7"}));
    assert_eq!(
        (code, assigned["status"].as_str(), assigned["assignee"].as_str()),
        (200, Some("assigned"), Some("tech-7"))
    );
    assert!(assigned["respond_by"].as_str().is_some(), "{assigned}");
    for (action, status) in [("start", "in_progress"), ("resolve", "resolved")] {
        let body = serde_json::json!({"action": action, "note": "new filter fitted"});
        let (code, row) = post_json_as(&transitions, &tech, &body);
        assert_eq!((code, row["status"].as_str()), (200, Some(status)), "{row}");
    }
    let trail = get_json(&format!("{work_orders}/{id}/events"));
    let trail: Vec<(String, String)> = trail
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("hub", "opened"),
        ("maria", "assign"),
        ("tech-7", "start"),
        ("tech-7", "resolve"),
    ];
    assert_eq!(trail, expected.map(|(a, b)| (a.to_string(), b.to_string())),);
    let resolved = get_json(&format!("{work_orders}?status=resolved&limit=10"));
    assert_eq!(resolved.as_array().map(Vec::len), Some(1), "{resolved}");

    // Devices that are down or silent delayed nobody: both purifiers kept reporting.
    let devices = get_json(&format!("{}/api/v1/devices", hub.api));
    let ids: Vec<&str> = devices
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["purifier-0001", "purifier-0002"]);
    let samples = |id: &str| {
        get_json(&format!("{}/api/v1/devices/{id}", hub.api))["samples"]
            .as_i64()
            .unwrap_or(0)
    };
    let before = samples("purifier-0002");
    eventually(Duration::from_secs(10), "purifier-0002 to keep reporting", || {
        (samples("purifier-0002") >= before + 8).then_some(())
    });
    drop(silent);
}
