//! Vibration waveforms published by an appliance over MQTT: the agent turns
//! each window into features (RMS, kurtosis, band energies, velocity RMS),
//! publishes them as telemetry, and the detectors its profile declares on
//! those features raise an alert when bearing impacts appear.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use support::*;
use wearline_models::wire::{Alert, AlertState, Telemetry, decode};

const PROFILE: &str = r#"name = "vib-motor"
description = "A motor whose accelerometer publishes 1024-sample windows over MQTT"
[[metrics]]
name = "vib_rms"
unit = "g"
[[metrics]]
name = "vib_kurtosis"
[[metrics]]
name = "vib_velocity_rms"
unit = "mm/s"
[[detectors]]
metric = "vib_kurtosis"
type = "range"
high = 6.0
alert = "bearing_impacts"
[[detectors]]
metric = "vib_velocity_rms"
type = "iso_zone"
machine_class = "group2_rigid"
"#;

/// A window at 2 kHz: a 50 Hz hum of 0.1 g, plus 2 g impacts every 100
/// samples when `faulty`.
fn window(faulty: bool) -> String {
    let samples: Vec<String> = (0..1024)
        .map(|i| {
            let hum = 0.1 * (2.0 * std::f64::consts::PI * 50.0 * f64::from(i) / 2000.0).sin();
            let impact = if faulty && i % 100 == 0 { 2.0 } else { 0.0 };
            format!("{:.5}", hum + impact)
        })
        .collect();
    format!(r#"{{"samples":[{}]}}"#, samples.join(","))
}

#[test]
fn waveform_windows_become_features_and_impacts_raise_an_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, port) = start_plain_mosquitto(dir.path());
    std::fs::create_dir_all(dir.path().join("profiles")).expect("mkdir");
    std::fs::write(dir.path().join("profiles/vib-motor.toml"), PROFILE).expect("profile");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"gateway = "gw-vib"
data_dir = "agent-data"
[uplink]
broker = "127.0.0.1:{port}"
batch_max_samples = 1
batch_delay_ms = 50
[mqtt_input]
broker = "127.0.0.1:{port}"
[[mqtt_devices]]
id = "motor-7"
profile = "vib-motor"
topic = "motors/7/accel"
[mqtt_devices.waveforms.vib]
pointer = "/samples"
sample_rate_hz = 2000
bands = [[0, 100], [100, 1000]]
velocity = true
"#
        ),
    )
    .expect("write agent config");
    let check = run(&["agent", "check-config", cfg.to_str().expect("utf-8")]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let agent = Proc::start(
        dir.path(),
        "agent",
        &["agent", "--config", cfg.to_str().expect("utf-8")],
    );
    agent.expect_line("agent: polling", Duration::from_secs(10));

    let (client, mut connection) = Client::new(MqttOptions::new("hub-and-motor", "127.0.0.1", port), 64);
    client
        .subscribe("wearline/v1/gw-vib/#", QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, seen) = std::sync::mpsc::channel::<(String, Vec<u8>)>();
    std::thread::spawn(move || {
        for event in connection.iter() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = event
                && tx.send((p.topic, p.payload.to_vec())).is_err()
            {
                break;
            }
        }
    });
    let publish = |faulty: bool| {
        client
            .publish("motors/7/accel", QoS::AtLeastOnce, false, window(faulty))
            .expect("publish");
    };

    // A healthy window once the agent's MQTT input has subscribed; it comes
    // back as telemetry.
    eventually(
        Duration::from_secs(30),
        "the agent's MQTT input to subscribe",
        || agent.stderr().contains("MQTT input subscribed").then_some(()),
    );
    publish(false);
    let healthy = loop {
        let (topic, payload) = seen
            .recv_timeout(Duration::from_secs(30))
            .expect("telemetry from the healthy window");
        if topic.contains("/telemetry/motor-7") {
            let t: Telemetry = decode(&payload).expect("telemetry");
            break t.samples[0].values.clone();
        }
    };
    assert!(
        (healthy["vib_rms"] - 0.1 / 2f64.sqrt()).abs() < 0.005,
        "{healthy:?}"
    );
    assert!((healthy["vib_kurtosis"] - 1.5).abs() < 0.05, "{healthy:?}");
    assert!(healthy["vib_band0"] > 100.0 * healthy["vib_band1"], "{healthy:?}");
    assert!(healthy.contains_key("vib_velocity_rms"), "{healthy:?}");

    // Impacts: kurtosis far above 6; the range detector opens after two windows.
    for _ in 0..3 {
        publish(true);
    }
    let alert = loop {
        let (topic, payload) = seen
            .recv_timeout(Duration::from_secs(30))
            .expect("the bearing_impacts alert");
        if topic.contains("/alerts/motor-7") {
            let a: Alert = decode(&payload).expect("alert");
            if a.kind == "bearing_impacts" {
                break a;
            }
        }
    };
    assert_eq!(
        (alert.metric.as_str(), alert.state),
        ("vib_kurtosis", AlertState::Open)
    );
    assert!(alert.value > 6.0 && alert.baseline == 6.0, "{alert:?}");
}
