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
    // A technician for filters, so that the order is dispatched as it opens.
    let added = ureq::put(&format!("{}/api/v1/technicians/tech-7", hub.api))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(serde_json::json!({
            "skills": ["consumable:*"], "latitude": 48.14, "longitude": 11.58, "capacity": 5, "shift": [0, 0]
        }));
    assert!(added.is_ok(), "{added:?}");
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
    // Opening and dispatching are two transactions: the order may be read
    // between them. Dispatch on opening is seen well within the minute after
    // which the escalation task would dispatch a waiting order.
    let orders = if orders.iter().any(|w| w["status"] == "open") {
        eventually(Duration::from_secs(20), "the order dispatched", || {
            let v = get_json(&work_orders);
            let list = v.as_array()?.clone();
            list.iter().all(|w| w["status"] != "open").then_some(list)
        })
    } else {
        orders
    };
    let wo = orders
        .iter()
        .find(|w| w["device_id"] == "purifier-0001")
        .expect("found");
    assert_eq!(wo["kind"], "preventive");
    assert_eq!(wo["cause"], "consumable:filter");
    assert_eq!(
        (wo["status"].as_str(), wo["assignee"].as_str()),
        (Some("assigned"), Some("tech-7")),
        "dispatched as it opened: {wo}"
    );
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

    // A service manager and the technician work the order through its
    // lifecycle; a step out of order is refused with the reason, and the
    // trail says who did what (the token's holder). Their tokens, and the
    // customer's, are made with the CLI while the hub runs.
    let cfg = dir.path().join("hub.toml");
    let cfg_s = cfg.to_str().expect("utf-8");
    let maria = create_token(&cfg, &["--role", "manager", "--name", "maria"]);
    let tech = create_token(&cfg, &["--role", "technician", "--name", "tech-7"]);
    for args in [
        &["customer", "add", "--config", cfg_s, "--name", "acme"][..],
        &[
            "customer",
            "assign-device",
            "--config",
            cfg_s,
            "--customer",
            "acme",
            "--device",
            "purifier-0001",
        ][..],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let acme = create_token(
        &cfg,
        &[
            "--role",
            "customer",
            "--name",
            "acme-portal",
            "--customer",
            "acme",
        ],
    );
    let id = wo["id"].as_i64().expect("id");
    let transitions = format!("{work_orders}/{id}/transitions");
    let step = |body: serde_json::Value| post_json_as(&transitions, &maria, &body);
    let (code, refused) = step(serde_json::json!({"action": "resolve"}));
    assert_eq!(code, 409, "{refused}");
    assert_eq!(
        refused["error"],
        "cannot resolve a work order that is assigned: allowed: assign, accept, decline, start, cancel"
    );
    let (code, bad) = step(serde_json::json!({"action": "fix"}));
    assert_eq!(code, 400, "{bad}");
    let (code, assigned) =
        step(serde_json::json!({"action": "assign", "assignee": "tech-7", "note": "call first"}));
    assert_eq!(
        (code, assigned["status"].as_str()),
        (200, Some("assigned")),
        "{assigned}"
    );
    assert!(assigned["respond_by"].as_str().is_some(), "{assigned}");
    let as_tech = |body: serde_json::Value| post_json_as(&transitions, &tech, &body);
    let (code, started) = as_tech(serde_json::json!({"action": "start"}));
    assert_eq!(
        (code, started["status"].as_str()),
        (200, Some("in_progress")),
        "{started}"
    );
    let (code, resolved) = as_tech(serde_json::json!({
        "action": "resolve", "note": "new filter fitted", "parts": ["HEPA filter F7"]
    }));
    assert_eq!(
        (code, resolved["status"].as_str()),
        (200, Some("resolved")),
        "{resolved}"
    );
    assert_eq!(resolved["parts"], serde_json::json!(["HEPA filter F7"]));
    let (code, _) = post_json_as(
        &format!("{work_orders}/{id}/comments"),
        &maria,
        &serde_json::json!({"text": "thanks"}),
    );
    assert_eq!(code, 200);
    let rating = format!("{work_orders}/{id}/rating");
    let (code, _) = post_json_as(&rating, &tech, &serde_json::json!({"stars": 5}));
    assert_eq!(code, 403, "the technician does not rate their own visit");
    let (code, rated) = post_json_as(
        &rating,
        &acme,
        &serde_json::json!({"stars": 5, "comment": "quick and tidy"}),
    );
    assert_eq!(
        (code, rated["status"].as_str(), rated["rating"].as_i64()),
        (200, Some("closed"), Some(5)),
        "{rated}"
    );
    let (code, _) = post_json_as(&rating, &acme, &serde_json::json!({"stars": 9}));
    assert_eq!(code, 400);
    // The customer's reminder settings: their own (customer 1) only, checked.
    let settings = format!("{}/api/v1/customers/1/reminder-settings", hub.api);
    let put_settings = |token: &str, body: serde_json::Value| {
        ureq::put(&settings)
            .header("Authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .map(|r| r.status().as_u16())
    };
    let code = put_settings(
        &acme,
        serde_json::json!({"channels": ["webhook"], "webhook_url": "http://127.0.0.1:9/hook"}),
    );
    assert_eq!(code.ok(), Some(400), "a webhook needs its secret");
    let code = put_settings(&acme, serde_json::json!({"channels": ["sms"]}));
    assert_eq!(code.ok(), Some(400), "unknown channel");
    let code = put_settings(
        &acme,
        serde_json::json!({"channels": ["email"], "email": "ops@acme.example"}),
    );
    assert_eq!(code.ok(), Some(400), "no `[reminders.smtp]`: no e-mail channel");
    let code = put_settings(
        &acme,
        serde_json::json!({"channels": ["portal"], "points": [14, 3, 0], "quiet_hours": [22, 7]}),
    );
    assert_eq!(code.ok(), Some(200));
    let other = ureq::get(&format!("{}/api/v1/customers/2/reminder-settings", hub.api))
        .header("Authorization", &format!("Bearer {acme}"))
        .call();
    assert!(matches!(other, Err(ureq::Error::StatusCode(404))), "{other:?}");
    let mine = ureq::get(&settings)
        .header("Authorization", &format!("Bearer {acme}"))
        .call()
        .expect("own settings")
        .body_mut()
        .read_json::<serde_json::Value>()
        .expect("json");
    assert_eq!(mine["points"], serde_json::json!([14.0, 3.0, 0.0]), "{mine}");
    let as_tech = ureq::get(&format!("{}/api/v1/reminders", hub.api))
        .header("Authorization", &format!("Bearer {tech}"))
        .call();
    assert!(
        matches!(as_tech, Err(ureq::Error::StatusCode(403))),
        "{as_tech:?}"
    );
    let report = ureq::get(&format!("{}/api/v1/reports/service", hub.api))
        .header("Authorization", &format!("Bearer {acme}"))
        .call();
    assert!(
        matches!(report, Err(ureq::Error::StatusCode(403))),
        "reports are managers': {report:?}"
    );
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
        ("hub", "assign"),
        ("maria", "assign"),
        ("tech-7", "start"),
        ("tech-7", "resolve"),
        ("maria", "comment"),
        ("acme-portal", "rated"),
        ("acme-portal", "close"),
    ];
    assert_eq!(trail, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    let closed = get_json(&format!("{work_orders}?status=closed&limit=10"));
    assert_eq!(closed.as_array().map(Vec::len), Some(1), "{closed}");
    // Reports: the filter is this month's cause for the air purifiers, fixed the first time.
    let causes = get_json(&format!("{}/api/v1/reports/causes?top=3", hub.api));
    let purifiers = causes
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["model"] == "air-purifier")
        .expect("air-purifier");
    assert_eq!(purifiers["causes"][0][0], "consumable:filter", "{causes}");
    let service = get_json(&format!("{}/api/v1/reports/service", hub.api));
    let all = service.as_array().and_then(|a| a.last()).expect("overall");
    assert_eq!(
        (all["model"].as_str(), all["first_time_fix_rate"].as_f64()),
        (Some("*"), Some(1.0)),
        "{service}"
    );
    assert_eq!(all["response_sla_met"].as_f64(), Some(1.0), "{service}");
    let team = get_json(&format!("{}/api/v1/technicians", hub.api));
    assert_eq!(
        (team[0]["name"].as_str(), team[0]["load"].as_i64()),
        (Some("tech-7"), Some(0)),
        "{team}"
    );

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
