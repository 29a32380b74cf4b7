//! Two hubs split one fleet through a shared subscription on Debian's
//! mosquitto and share one store (an SQLite file, or a real PostgreSQL).
//! One is killed with SIGKILL under load and restarted as a supervisor
//! would: every message published is stored exactly once, both hubs took
//! part, and each device's predictions were made from all its samples,
//! once each (one hub holds a device's lease and reads the others' samples
//! from the store).

mod support;

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::*;
use wearline_models::wire::{Alert, AlertState, Sample, Severity, Telemetry, Topic, VERSION};

// Odd, so that the broker's round robin splits every device's messages
// between the two hubs (with an even count each device stays on one).
const DEVICES: u64 = 101;
const POLLS: u64 = 30;

/// `store` is the `[store]` line both hubs share.
fn hub_config(dir: &Path, name: &str, broker_port: u16, store: &str) -> std::path::PathBuf {
    hub_config_in(dir, name, broker_port, store, "hubs")
}

/// A hub in the shared-subscription group `group`.
fn hub_config_in(dir: &Path, name: &str, broker_port: u16, store: &str, group: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "profiles_dir = {:?}\n[broker]\nkind = \"external\"\naddress = \"127.0.0.1:{broker_port}\"\nclient_id = \"{name}\"\nshared_group = \"{group}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{}[store]\n{store}\n",
        configs_dir().join("profiles"),
        write_admin_token(dir)
    );
    std::fs::write(&path, text).expect("write hub config");
    path
}

fn start(dir: &Path, name: &str, cfg: &Path) -> (Proc, String) {
    let p = Proc::start(dir, name, &["hub", "--config", cfg.to_str().expect("utf-8")]);
    let api = p.expect_line("api:", Duration::from_secs(30));
    (p, api)
}

fn poll(device: u64, seq: u64) -> (String, Vec<u8>) {
    let t = Telemetry {
        v: VERSION,
        gateway: "gw-1".into(),
        device: format!("dev-{device:03}"),
        profile: "air-purifier".into(),
        samples: vec![Sample {
            seq,
            ts_ms: 1_750_000_000_000 + seq as i64 * 60_000,
            values: BTreeMap::from([
                ("filter_dp".to_string(), 90.0 + seq as f64),
                ("run_hours".to_string(), seq as f64),
            ]),
            text: BTreeMap::new(),
            restart: false,
        }],
    };
    let topic = Topic::Telemetry {
        gateway: t.gateway.clone(),
        device: t.device.clone(),
    }
    .render();
    (topic, serde_json::to_vec(&t).expect("encode"))
}

fn ingested(api: &str) -> u64 {
    get_json(&format!("{api}/health"))["ingest"]["samples"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn two_hubs_on_sqlite_share_a_fleet_and_a_killed_one_loses_and_doubles_nothing() {
    two_hubs_share_a_fleet("sqlite = \"shared.db\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hubs_on_postgres_share_a_fleet_and_a_killed_one_loses_and_doubles_nothing() {
    let url = wearline_hub::testing::postgres_database().await;
    tokio::task::spawn_blocking(move || two_hubs_share_a_fleet(&format!("postgres = \"{url}\"")))
        .await
        .expect("the test");
}

fn two_hubs_share_a_fleet(store: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // Unlimited queues: a persistent session keeps everything while its hub is down.
    let conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 100\n"
    );
    let _broker = start_mosquitto(dir.path(), "mosquitto", &conf, &[port]);
    let (cfg_a, cfg_b) = (
        hub_config(dir.path(), "hub-a", port, store),
        hub_config(dir.path(), "hub-b", port, store),
    );
    let (hub_a, api_a) = start(dir.path(), "hub-a", &cfg_a);
    let (_hub_b, api_b) = start(dir.path(), "hub-b", &cfg_b);

    let mut opts = MqttOptions::new("fleet-publisher", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(opts, 256);
    let total = DEVICES * POLLS;
    let publisher = std::thread::spawn(move || {
        for seq in 1..=POLLS {
            for d in 0..DEVICES {
                let (topic, payload) = poll(d, seq);
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .expect("queue");
            }
        }
        client
    });
    // Drive the publisher's connection; kill hub A once a third is acknowledged
    // by the broker and hub A has stored some, then restart it.
    let mut acked = 0;
    let mut hub_a = Some(hub_a);
    let mut restarted = None;
    for event in connection.iter() {
        match event.expect("publisher connection") {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
        if acked >= total / 3 && hub_a.is_some() && ingested(&api_a) > 0 {
            drop(hub_a.take()); // SIGKILL
            restarted = Some(start(dir.path(), "hub-a-restarted", &cfg_a));
        }
        if acked == total {
            break;
        }
    }
    assert_eq!(acked, total, "the broker accepted every message");
    let (_hub_a2, api_a2) = restarted.expect("hub A was killed and restarted under load");
    drop(publisher.join().expect("publisher"));

    // Every message stored exactly once: per device, all polls and no more.
    let devices = eventually(Duration::from_secs(60), "every sample stored", || {
        let list = get_json(&format!("{api_b}/api/v1/devices"));
        let list = list.as_array()?.clone();
        let stored: u64 = list.iter().filter_map(|d| d["samples"].as_u64()).sum();
        (stored == total).then_some(list)
    });
    assert_eq!(devices.len() as u64, DEVICES);
    for d in &devices {
        assert_eq!(
            (d["samples"].as_u64(), d["last_seq"].as_u64()),
            (Some(POLLS), Some(POLLS)),
            "{d}"
        );
    }
    // Both hubs took part: neither stored everything alone.
    let (b, a2) = (ingested(&api_b), ingested(&api_a2));
    assert!(b > 0 && b < total, "hub B stored {b} of {total}");
    assert!(
        a2 > 0,
        "the restarted hub A got its share (and its session's backlog)"
    );

    // Every device's filter tracker took all its samples, once each, though
    // each hub received only part of them.
    for d in &devices {
        let id = d["id"].as_str().expect("id");
        let filter = eventually(Duration::from_secs(150), "every sample predicted from", || {
            let list = get_json(&format!("{api_b}/api/v1/devices/{id}/consumables"));
            let filter = list.as_array()?.iter().find(|c| c["name"] == "filter")?.clone();
            (filter["samples"].as_u64() == Some(POLLS)).then_some(filter)
        });
        assert_eq!(filter["used"].as_f64(), Some((POLLS - 1) as f64), "{filter}");
    }
}

/// Two hub processes on one PostgreSQL, each in its own subscription group
/// so that both receive every message, race to open the corrective order
/// of the same critical alert on each of 60 devices: exactly one order per
/// device, whichever hub won; nothing counted as a store error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_postgres_racing_for_the_same_fault_open_one_order() {
    let url = wearline_hub::testing::postgres_database().await;
    tokio::task::spawn_blocking(move || race_for_the_same_faults(&format!("postgres = \"{url}\"")))
        .await
        .expect("test thread");
}

fn race_for_the_same_faults(store: &str) {
    const RACED: u64 = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n");
    let _broker = start_mosquitto(dir.path(), "mosquitto", &conf, &[port]);
    let (cfg_a, cfg_b) = (
        hub_config_in(dir.path(), "hub-a", port, store, "group-a"),
        hub_config_in(dir.path(), "hub-b", port, store, "group-b"),
    );
    let (_hub_a, api_a) = start(dir.path(), "hub-a", &cfg_a);
    let (_hub_b, api_b) = start(dir.path(), "hub-b", &cfg_b);

    let mut opts = MqttOptions::new("fault-publisher", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(opts, 256);
    let publisher = std::thread::spawn(move || {
        for d in 0..RACED {
            let (topic, payload) = poll(d, 1);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .expect("queue");
        }
        for d in 0..RACED {
            let alert = Alert {
                v: VERSION,
                gateway: "gw-1".into(),
                device: format!("dev-{d:03}"),
                ts_ms: 1_750_000_100_000,
                kind: "vibration_severity".into(),
                metric: "vibration_rms".into(),
                severity: Severity::Critical,
                score: 0.95,
                baseline: 1.1,
                value: 11.0,
                state: AlertState::Open,
            };
            let topic = Topic::Alert {
                gateway: alert.gateway.clone(),
                device: alert.device.clone(),
            }
            .render();
            let payload = serde_json::to_vec(&alert).expect("encode");
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .expect("queue");
        }
        client
    });
    let mut acked = 0;
    for event in connection.iter() {
        if let Event::Incoming(Packet::PubAck(_)) = event.expect("publisher connection") {
            acked += 1;
            if acked == 2 * RACED {
                break;
            }
        }
    }
    drop(publisher.join().expect("publisher"));

    // Both hubs handled every message (each group gets them all).
    let handled = |api: &str| {
        get_json(&format!("{api}/health"))["ingest"]["messages"]
            .as_u64()
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(60), "both hubs handled every message", || {
        (handled(&api_a) >= 2 * RACED && handled(&api_b) >= 2 * RACED).then_some(())
    });
    // Their order desks open the orders a moment later.
    let orders = eventually(Duration::from_secs(30), "an order for every device", || {
        let list = get_json(&format!("{api_a}/api/v1/work-orders?limit=500"));
        let list = list.as_array()?.clone();
        (list.len() as u64 >= RACED).then_some(list)
    });
    let mut per_device: BTreeMap<String, usize> = BTreeMap::new();
    for wo in &orders {
        assert_eq!(
            (wo["kind"].as_str(), wo["cause"].as_str(), wo["priority"].as_str()),
            (Some("corrective"), Some("alert:vibration_severity"), Some("P1")),
            "{wo}"
        );
        *per_device
            .entry(wo["device_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert_eq!(per_device.len() as u64, RACED, "an order for every device");
    assert!(per_device.values().all(|n| *n == 1), "one each: {per_device:?}");
    // Which hub opened which is the race's; the sum is one per device.
    let stat = |api: &str, key: &str| {
        get_json(&format!("{api}/health"))["ingest"][key]
            .as_u64()
            .unwrap_or(u64::MAX)
    };
    let opened = || stat(&api_a, "work_orders_opened") + stat(&api_b, "work_orders_opened");
    eventually(Duration::from_secs(10), "the openings counted", || {
        (opened() >= RACED).then_some(())
    });
    assert_eq!(opened(), RACED, "each order opened by exactly one hub");
    assert_eq!(
        (stat(&api_a, "store_errors"), stat(&api_b, "store_errors")),
        (0, 0)
    );
}
