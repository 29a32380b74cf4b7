//! Escalation reaches people: a work order past its response time is raised
//! a priority step by the hub, and the service team named in
//! `[escalation] notify_email` gets one e-mail about it through the
//! reminders' relay (a real SMTP server, aiosmtpd); the order's trail says
//! it was escalated and who was told.

mod support;

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use support::*;
use wearline_hub::store::{Location, NewWorkOrder, Store};

#[test]
fn an_overdue_order_is_raised_and_the_service_team_is_emailed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An order opened 25 hours ago at P2 (start within 24 h), not started.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let id = rt.block_on(async {
        let store = Store::open(&Location::Sqlite(dir.path().join("hub.db")))
            .await
            .expect("open the store");
        let now = wearline_hub::clock::wall_ms();
        let order = NewWorkOrder {
            device_id: "purifier-0042".into(),
            kind: "corrective",
            cause: "alert:vibration_severity".into(),
            priority: "P2",
            title: "Inspect purifier-0042: vibration".into(),
            opened_at_ms: now - 25 * 3_600_000,
            predicted_eol_ms: None,
            lead_time_days: None,
            explanation: serde_json::json!({}).to_string(),
        };
        store
            .open_work_order(&order)
            .await
            .expect("open")
            .expect("new")
            .id
    });

    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp_peer.py"))
        .args(["--port", &port.to_string()]);
    let smtp = Proc::spawn(dir.path(), "smtp", cmd, None);
    smtp.expect_line("listening", Duration::from_secs(30));
    let hub = start_hub_with(
        dir.path(),
        &format!(
            "[reminders.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"Wearline <hub@example.com>\"\n\
             [escalation]\nnotify_email = [\"service@example.com\", \"duty@example.com\"]\n"
        ),
    );

    // The hub checks due times as it starts: one mail to both addresses.
    let line = smtp.line(Duration::from_secs(30)).expect("an e-mail");
    let mail: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["service@example.com", "duty@example.com"]),
        "{mail}"
    );
    assert_eq!(
        mail["subject"],
        format!("Work order #{id} overdue: response time missed, now P1"),
        "{mail}"
    );
    let body = mail["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("purifier-0042") && body.contains("missed its response time"),
        "{body}"
    );
    assert_eq!(mail["content_type"], "text/plain", "{mail}");

    let url = format!("{}/api/v1/work-orders/{id}", hub.api);
    let order = get_json(&url);
    assert_eq!(order["priority"], "P1", "{order}");
    let trail = eventually(Duration::from_secs(10), "the notice in the trail", || {
        let t = get_json(&format!("{url}/events"));
        t.as_array()?
            .iter()
            .any(|e| e["action"] == "notified")
            .then_some(t)
    });
    let actions: Vec<&str> = trail
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    // Only the response time is missed (P2 resolves within 72 h).
    assert_eq!(actions, ["opened", "escalated", "notified"], "{trail}");
    let notified = trail.as_array().and_then(|t| t.last()).expect("notified");
    assert_eq!(notified["detail"]["to"][0], "service@example.com", "{notified}");
    assert!(notified["detail"]["error"].is_null(), "{notified}");
}
