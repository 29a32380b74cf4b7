//! E-mail reminders end to end: a hub with `[reminders.smtp]` pointing at a
//! real SMTP server (aiosmtpd, `tests/peers/smtp_peer.py`), a customer who
//! wants e-mails, and a filter that wears out (telemetry published to the
//! hub's broker). The SMTP server is down when the first reminder is due:
//! the API shows its retries and the connection error, and it is delivered
//! once the server comes up. A manager then books the replacement visit on
//! the work order, and the next reminder names that date, in the customer's
//! local time. Each reminder arrives once. The retry schedule is shortened
//! through the config's test keys (`retry_first_ms`, `deliver_every_ms`);
//! the test waits on what it can observe (API, received mail), never a
//! fixed sleep, but for the final check that nothing more arrives.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::*;

const DEVICE: &str = "purifier-mail-1";
/// 2026-01-01T00:00:00Z: the data's clock (samples are hourly from here).
const T0: i64 = 1_767_225_600_000;
/// The filter's life in run hours (the device runs around the clock).
const LIFE_H: f64 = 1000.0;

/// Hour `h` of the filter's life: the pressure drop rises from 80 Pa to
/// 250 Pa (the profile's limit) at `LIFE_H`.
fn sample(h: u64) -> Value {
    let x = h as f64 / LIFE_H;
    if h == 0 {
        // Registers the device without a prediction: the hub reads owners
        // and settings when it first needs them (then every 30 s), and the
        // owner is set after the device exists.
        return json!({"seq": 1, "ts_ms": T0, "values": {"pm25": 20.0}});
    }
    json!({
        "seq": h + 1,
        "ts_ms": T0 + i64::try_from(h).expect("hours") * 3_600_000,
        "values": {
            "filter_dp": 80.0 + 50.0 * x + 120.0 * x * x,
            "run_hours": 2000.0 + h as f64,
            "pm25": 20.0,
            "fan_speed": 900.0
        }
    })
}

/// Publishes hours `hours` (a day per message) and waits until the hub
/// has stored the last.
fn publish(hub: &TestHub, hours: std::ops::RangeInclusive<u64>) {
    let (host, port) = hub.broker.rsplit_once(':').expect("host:port");
    let id = format!("test-publisher-{}", hours.start());
    let mut opts = MqttOptions::new(id, host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(opts, 256);
    let last = *hours.end();
    let all: Vec<u64> = hours.collect();
    let mut sent = 0;
    for day in all.chunks(24) {
        let samples: Vec<Value> = day.iter().map(|h| sample(*h)).collect();
        let body = json!({
            "v": 1, "gateway": "gw-mail", "device": DEVICE, "profile": "air-purifier", "samples": samples
        });
        client
            .publish(
                format!("wearline/v1/gw-mail/telemetry/{DEVICE}"),
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .expect("queue");
        sent += 1;
    }
    let mut acked = 0;
    for event in connection.iter() {
        if let Event::Incoming(Packet::PubAck(_)) = event.expect("connection") {
            acked += 1;
            if acked == sent {
                break;
            }
        }
    }
    let url = format!("{}/api/v1/devices/{DEVICE}", hub.api);
    eventually(Duration::from_secs(30), "the samples stored", || {
        let (code, device, _) = get_as(&url, Some(ADMIN_TOKEN));
        (code == 200 && device["last_seq"].as_u64()? == last + 1).then_some(())
    });
}

/// Publishes a day at a time from hour `from` until the hub predicts at
/// most `days` of filter life left; the next hour to publish.
fn publish_until(hub: &TestHub, from: u64, days: f64) -> u64 {
    let url = format!("{}/api/v1/devices/{DEVICE}/consumables", hub.api);
    let mut next = from;
    while next < LIFE_H as u64 {
        let last = next + 23;
        publish(hub, next..=last);
        next = last + 1;
        let as_of = T0 + i64::try_from(last).expect("hours") * 3_600_000;
        let left = eventually(Duration::from_secs(30), "the prediction", || {
            let c = get_json(&url).as_array()?.first()?.clone();
            (c["as_of_ms"].as_i64()? == as_of).then(|| c["remaining_days"].as_f64())?
        });
        if left <= days {
            return next;
        }
    }
    panic!("the filter never got to {days} days left");
}

/// The e-mail reminders, oldest first.
fn email_reminders(hub: &TestHub) -> Vec<Value> {
    let mut list: Vec<Value> = get_json(&format!("{}/api/v1/reminders", hub.api))
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["channel"] == "email")
        .cloned()
        .collect();
    list.reverse();
    list
}

fn put_settings(hub: &TestHub, customer: i64, body: &Value) -> (u16, Value) {
    let mut resp = ureq::put(&format!(
        "{}/api/v1/customers/{customer}/reminder-settings",
        hub.api
    ))
    .header("Authorization", &bearer(ADMIN_TOKEN))
    .config()
    .http_status_as_error(false)
    .build()
    .send_json(body)
    .expect("PUT");
    let code = resp.status().as_u16();
    (code, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// The SMTP server on `port`, once it accepts connections.
fn start_smtp(dir: &std::path::Path, port: u16) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp_peer.py"))
        .args(["--port", &port.to_string()]);
    let peer = Proc::spawn(dir, "smtp", cmd, None);
    peer.expect_line("listening", Duration::from_secs(30));
    peer
}

/// The next message the SMTP server prints.
fn next_mail(peer: &Proc, what: &str) -> Value {
    let line = peer
        .line(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no e-mail: {what}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn reminders_are_mailed_once_after_retries_and_name_the_booked_visit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp_port = free_port();
    let hub = start_hub_with(
        dir.path(),
        &format!(
            "[reminders]\nretry_first_ms = 300\ndeliver_every_ms = 100\n\
             [reminders.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
             from = \"Wearline reminders <reminders@wearline.test>\"\n"
        ),
    );

    // The device reports once (no filter reading yet); then it gets its owner, who wants e-mails
    // at 12 and 5 days left, in New York (UTC-5), with no quiet hours.
    publish(&hub, 0..=0);
    let cfg = dir.path().join("hub.toml");
    let cfg = cfg.to_str().expect("utf-8");
    for args in [
        &["customer", "add", "--config", cfg, "--name", "acme"][..],
        &[
            "customer",
            "assign-device",
            "--config",
            cfg,
            "--customer",
            "acme",
            "--device",
            DEVICE,
        ][..],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let customer = 1;
    let settings = |email: &str| {
        json!({
            "channels": ["email"], "email": email, "points": [12, 5],
            "quiet_hours": [0, 0], "utc_offset_minutes": -300
        })
    };
    let (code, bad) = put_settings(&hub, customer, &settings("not an address"));
    assert_eq!(code, 400, "{bad}");
    let (code, bad) = put_settings(&hub, customer, &json!({"channels": ["email"]}));
    assert_eq!(code, 400, "an address is needed: {bad}");
    let (code, saved) = put_settings(&hub, customer, &settings("ann@acme.example"));
    assert_eq!(
        (code, saved["email"].as_str()),
        (200, Some("ann@acme.example")),
        "{saved}"
    );

    // The filter wears to 12 days left (its work order opened at 14) with
    // the SMTP server down: the reminder is retried, its error visible.
    let next = publish_until(&hub, 1, 12.0);
    let failing = eventually(Duration::from_secs(30), "retries of the first reminder", || {
        let r = email_reminders(&hub).first()?.clone();
        (r["attempts"].as_i64()? >= 2).then_some(r)
    });
    assert_eq!(failing["status"], "pending", "{failing}");
    assert_eq!(failing["point_days"], 12.0, "{failing}");
    let error = failing["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("SMTP: ") && error.to_lowercase().contains("refused"),
        "{failing}"
    );

    // The server comes up: the reminder is delivered, once.
    let smtp = start_smtp(dir.path(), smtp_port);
    let first = next_mail(&smtp, "the first reminder");
    let sent = eventually(Duration::from_secs(10), "the first reminder sent", || {
        let r = email_reminders(&hub).first()?.clone();
        (r["status"] == "sent").then_some(r)
    });
    assert!(sent["attempts"].as_i64() > failing["attempts"].as_i64(), "{sent}");
    assert!(sent["sent_at"].as_str().is_some(), "{sent}");
    let days = sent["remaining_days"].as_f64().expect("days");
    assert_eq!(first["mail_from"], "reminders@wearline.test", "{first}");
    assert_eq!(first["rcpt_tos"], json!(["ann@acme.example"]), "{first}");
    assert_eq!(first["from"], "Wearline reminders <reminders@wearline.test>");
    assert_eq!(first["to"], "ann@acme.example");
    assert_eq!(first["content_type"], "text/plain");
    assert_eq!(
        first["subject"],
        format!("Filter replacement due in about {} days", days.round()),
        "{first}"
    );
    assert_eq!(
        first["message_id"],
        format!("<wearline-reminder-{}@wearline.test>", sent["id"]),
    );
    let body = first["body"].as_str().expect("body");
    let text = format!(
        "The filter of your air purifier has about {} days of life left. We will contact you to book a replacement visit.",
        days.round()
    );
    assert!(
        body.starts_with(&format!("{text}\n\nAppliance: {DEVICE}\n")),
        "{body}"
    );
    assert_eq!(sent["message"], text, "the API shows the text sent");

    // A manager books the visit: 02:00 UTC on 3 December 2030 is the
    // evening of 2 December in New York.
    let orders = get_json(&format!("{}/api/v1/work-orders?device={DEVICE}", hub.api));
    let order = orders
        .as_array()
        .and_then(|o| o.first())
        .expect("the filter's work order");
    assert_eq!(
        (order["status"].as_str(), order["visit"].as_str()),
        (Some("open"), None),
        "{order}"
    );
    let transitions = format!("{}/api/v1/work-orders/{}/transitions", hub.api, order["id"]);
    for (body, why) in [
        (
            json!({"action": "assign", "assignee": "tech-1", "visit": "soon"}),
            "not RFC 3339",
        ),
        (
            json!({"action": "cancel", "visit": "2030-12-03T02:00:00Z"}),
            "not an assignment",
        ),
    ] {
        let (code, answer) = post_json_as(&transitions, ADMIN_TOKEN, &body);
        assert_eq!(code, 400, "{why}: {answer}");
    }
    let (code, assigned) = post_json_as(
        &transitions,
        ADMIN_TOKEN,
        &json!({"action": "assign", "assignee": "tech-1", "visit": "2030-12-02T21:00:00-05:00"}),
    );
    assert_eq!(code, 200, "{assigned}");
    assert_eq!(assigned["visit"], "2030-12-03T02:00:00Z", "{assigned}");

    // Down to 5 days: the next reminder names the visit.
    publish_until(&hub, next, 5.0);
    let second = next_mail(&smtp, "the second reminder");
    let sent = eventually(Duration::from_secs(10), "the second reminder sent", || {
        let list = email_reminders(&hub);
        (list.len() == 2 && list[1]["status"] == "sent").then(|| list[1].clone())
    });
    assert_eq!(sent["point_days"], 5.0, "{sent}");
    assert_eq!(sent["attempts"], 1, "{sent}");
    let days = sent["remaining_days"].as_f64().expect("days");
    assert_eq!(
        second["subject"],
        format!("Filter replacement due in about {} days", days.round())
    );
    let text = format!(
        "The filter of your air purifier has about {} days of life left. A replacement visit is booked for 2 December 2030.",
        days.round()
    );
    assert!(
        second["body"].as_str().is_some_and(|b| b.starts_with(&text)),
        "{second}"
    );
    assert_eq!(second["rcpt_tos"], json!(["ann@acme.example"]));

    // Each reminder arrived once: nothing more comes (the delivery task
    // looks every 100 ms), and both are `sent` for good.
    assert_eq!(smtp.line(Duration::from_secs(2)), None, "a reminder sent twice");
    let all = email_reminders(&hub);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|r| r["status"] == "sent"), "{all:?}");
}

/// The SMTP server run from `dir` with `args`, and its port.
fn start_smtp_with(dir: &std::path::Path, name: &str, args: &[&str]) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp_peer.py"))
        .args(args)
        .current_dir(dir);
    let peer = Proc::spawn(dir, name, cmd, None);
    let addr = peer.expect_line("listening", Duration::from_secs(30));
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    (peer, port)
}

/// The relay's protections against the real server, with a private CA and
/// a login: STARTTLS and SMTPS deliver over TLS with the login; a wrong
/// password, a relay certificate from a CA the hub does not trust, and a
/// relay that offers no STARTTLS when it is required are failures that say
/// why (and nothing is delivered).
#[tokio::test]
async fn tls_modes_with_a_private_ca_and_a_login() {
    use wearline_hub::config::{SmtpConfig, SmtpTls};
    use wearline_hub::reminders::email::Mailer;
    use wearline_hub::store::{ReminderRow, ReminderSettings};

    let dir = tempfile::tempdir().expect("tempdir");
    make_ca(dir.path(), "smtp");
    make_cert(
        dir.path(),
        "smtp",
        "relay",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\n",
    );
    let ca = std::fs::read(dir.path().join("smtp-ca.pem")).expect("CA");
    let config = |port: u16, tls: SmtpTls, ca: Option<&Vec<u8>>, password: &str| SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls,
        from: "Wearline <reminders@wearline.test>".parse().expect("from"),
        login: Some(("wearline".into(), password.into())),
        ca_pem: ca.cloned(),
    };
    let settings = ReminderSettings {
        email: Some("ann@acme.example".into()),
        ..ReminderSettings::defaults(1)
    };
    let row = ReminderRow {
        id: 7,
        customer_id: 1,
        device_id: DEVICE.into(),
        consumable: "filter".into(),
        life_start_ms: T0,
        point_days: 30.0,
        channel: "email".into(),
        remaining_days: 29.6,
        message: "The filter of your air purifier has about 30 days of life left.".into(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        created_ms: 0,
        sent_ms: None,
        command_id: None,
    };
    let tls_args = [
        "--cert",
        "relay.pem",
        "--key",
        "relay.key",
        "--login",
        "wearline:s3cret-Pa55",
    ];

    let (starttls, port) = start_smtp_with(dir.path(), "smtp-starttls", &tls_args);
    let send = |c: SmtpConfig| {
        let (settings, row) = (settings.clone(), row.clone());
        async move { Mailer::new(&c).expect("mailer").send(&settings, &row).await }
    };
    send(config(port, SmtpTls::Starttls, Some(&ca), "s3cret-Pa55"))
        .await
        .expect("sent over STARTTLS");
    let mail = next_mail(&starttls, "over STARTTLS");
    assert_eq!(
        (mail["tls"].as_bool(), mail["login"].as_str()),
        (Some(true), Some("wearline")),
        "{mail}"
    );
    assert_eq!(mail["subject"], "Filter replacement due in about 30 days");
    let e = send(config(port, SmtpTls::Starttls, Some(&ca), "wrong"))
        .await
        .expect_err("a wrong password");
    assert!(e.starts_with("SMTP: ") && e.contains("535"), "{e}");
    let e = send(config(port, SmtpTls::Starttls, None, "s3cret-Pa55"))
        .await
        .expect_err("the public roots do not know the test CA");
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    let (smtps, port) = start_smtp_with(
        dir.path(),
        "smtp-implicit",
        &[&tls_args[..], &["--implicit-tls"]].concat(),
    );
    send(config(port, SmtpTls::Tls, Some(&ca), "s3cret-Pa55"))
        .await
        .expect("sent over SMTPS");
    let mail = next_mail(&smtps, "over SMTPS");
    assert_eq!(mail["tls"], true, "{mail}");

    // A plain server: STARTTLS is required, so nothing goes in clear.
    let (plain, port) = start_smtp_with(dir.path(), "smtp-plain", &[]);
    let e = send(SmtpConfig {
        login: None,
        ..config(port, SmtpTls::Starttls, Some(&ca), "")
    })
    .await
    .expect_err("no STARTTLS offered");
    assert!(e.starts_with("SMTP: "), "{e}");
    for peer in [&starttls, &smtps, &plain] {
        assert_eq!(
            peer.line(Duration::from_millis(200)),
            None,
            "nothing more delivered"
        );
    }
}
