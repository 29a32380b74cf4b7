//! Appliances that publish their own readings: the agent subscribes to a
//! local mosquitto, maps JSON payload fields (JSON pointers) to metrics and
//! timestamps, and the hub receives them. A payload that does not map is
//! counted and skipped; the input goes on.

mod support;

use rumqttc::{Client, MqttOptions, QoS};
use std::time::Duration;
use support::*;

#[test]
fn json_payloads_from_a_local_broker_become_telemetry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_local, port) = start_plain_mosquitto(dir.path());

    let hub = start_hub(dir.path());
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"gateway = "gw-mqtt"
data_dir = "agent-data"
profiles_dir = {:?}
[uplink]
broker = "{}"
batch_max_samples = 1
batch_delay_ms = 50
[mqtt_input]
broker = "127.0.0.1:{port}"
[[mqtt_devices]]
id = "fridge-01"
profile = "air-purifier"
topic = "appliances/fridge-01/state"
timestamp = "/time"
time_format = "rfc3339"
[mqtt_devices.metrics]
filter_dp = "/filter/dp"
motor_temp = "/motor/temp"
"#,
            configs_dir().join("profiles"),
            hub.broker
        ),
    )
    .expect("write agent config");
    let agent = Proc::start(
        dir.path(),
        "agent",
        &["agent", "--config", cfg.to_str().expect("utf-8")],
    );
    agent.expect_line("agent: polling", Duration::from_secs(10));

    let (client, mut connection) = Client::new(MqttOptions::new("fridge-01", "127.0.0.1", port), 16);
    std::thread::spawn(move || for _ in connection.iter() {});
    let url = format!("{}/api/v1/devices/fridge-01", hub.api);
    // Publish once the agent has subscribed (a message before that is not kept).
    eventually(
        Duration::from_secs(30),
        "the agent's MQTT input to subscribe",
        || agent.stderr().contains("MQTT input subscribed").then_some(()),
    );
    let publish = |payload: &[u8]| {
        client
            .publish(
                "appliances/fridge-01/state",
                QoS::AtLeastOnce,
                false,
                payload.to_vec(),
            )
            .expect("publish");
    };
    publish(b"not json");
    publish(br#"{"time":"2026-11-23T10:00:00Z","filter":{"dp":123.5},"motor":{"temp":"41.5"}}"#);
    let latest = eventually(Duration::from_secs(30), "the fridge's sample at the hub", || {
        let v = ureq::get(&url)
            .header("Authorization", &bearer(ADMIN_TOKEN))
            .call()
            .ok()?
            .body_mut()
            .read_json::<serde_json::Value>()
            .ok()?;
        Some(v["latest"].clone()).filter(|l| !l.is_null())
    });
    assert_eq!(latest["ts"], "2026-11-23T10:00:00Z", "{latest}");
    assert_eq!(latest["values"]["filter_dp"], 123.5, "{latest}");
    assert_eq!(latest["values"]["motor_temp"], 41.5, "{latest}");
    // The payload that did not map was logged and skipped; the good one after it went through.
    eventually(Duration::from_secs(10), "the bad payload to be logged", || {
        agent.stderr().contains("MQTT payload ignored").then_some(())
    });
}
