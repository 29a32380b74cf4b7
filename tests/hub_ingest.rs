//! The hub's ingestion through its embedded broker: malformed payloads are
//! counted by reason and do not stop it, and a duplicate sample is stored once.

mod support;

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use std::time::Duration;
use support::*;

fn telemetry(seq: u64, dp: f64) -> String {
    format!(
        r#"{{"v":1,"gateway":"gw-x","device":"dev-1","profile":"air-purifier","samples":[{{"seq":{seq},"ts_ms":{},"values":{{"filter_dp":{dp}}}}}]}}"#,
        1_795_392_000_000u64 + seq * 3_600_000
    )
}

/// Transparent huge pages are off for the hub: with them a 2 MiB page is
/// resident whole for a few bytes used (its peak RSS under `wearline bench
/// ingest --rate 7500` was 185–189 MB with them, 118–122 without).
#[test]
fn the_hub_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let status = std::fs::read_to_string(format!("/proc/{}/status", hub.proc.pid())).expect("status");
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| {
            panic!("no THP_enabled in /proc/PID/status (Linux 5.0 or later has it):\n{status}")
        });
    assert_eq!(thp.trim(), "0", "{status}");
}

#[test]
fn malformed_payloads_are_counted_and_ingest_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let (host, port) = hub.broker.rsplit_once(':').expect("host:port");
    let mut opts = MqttOptions::new("test-publisher", host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(opts, 64);

    let topic = "wearline/v1/gw-x/telemetry/dev-1";
    let bad: [(&str, Vec<u8>); 5] = [
        (topic, b"{not json".to_vec()),
        (topic, vec![0xff, 0xfe, 0x00]),
        (topic, br#"{"v":9,"gateway":"gw-x"}"#.to_vec()),
        (
            "wearline/v1/gw-x/telemetry/other-device",
            telemetry(1, 100.0).into_bytes(),
        ),
        ("wearline/v1/gw-x/nonsense/dev-1", b"{}".to_vec()),
    ];
    let mut sent = 0;
    for (t, p) in &bad {
        client
            .publish(*t, QoS::AtLeastOnce, false, p.clone())
            .expect("queue");
        sent += 1;
    }
    // The same valid sample twice, then a second one.
    for (seq, dp) in [(1, 100.0), (1, 100.0), (2, 101.0)] {
        client
            .publish(topic, QoS::AtLeastOnce, false, telemetry(seq, dp))
            .expect("queue");
        sent += 1;
    }
    // Drive the connection until the broker has acknowledged every publish.
    let mut acked = 0;
    for event in connection.iter() {
        match event.expect("connection") {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
        if acked == sent {
            break;
        }
    }

    let health = format!("{}/health", hub.api);
    let ingest = eventually(Duration::from_secs(20), "all messages ingested", || {
        let h = get_json(&health);
        (h["ingest"]["messages"].as_u64()? >= 7).then(|| h["ingest"].clone())
    });
    assert_eq!(ingest["malformed"]["json"], 2, "{ingest}");
    assert_eq!(ingest["malformed"]["version"], 1, "{ingest}");
    assert_eq!(ingest["malformed"]["invalid"], 1, "{ingest}");
    // A topic outside the subscriptions never reaches the hub at all.
    assert_eq!(ingest["malformed"]["topic"], 0, "{ingest}");
    assert_eq!(ingest["samples"], 2, "{ingest}");
    assert_eq!(ingest["duplicates"], 1, "{ingest}");

    let device = get_json(&format!("{}/api/v1/devices/dev-1", hub.api));
    assert_eq!(device["samples"], 2, "{device}");
    assert_eq!(device["last_seq"], 2, "{device}");
}
