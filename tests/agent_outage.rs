//! Store and forward through a broker outage and an agent crash: mosquitto
//! (Debian) is stopped under load, the agent is killed with SIGKILL during the
//! outage, both are restarted, and every sample the agent took arrives at the
//! consumer exactly once after deduplication by sequence number, including
//! those taken while the broker was down.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;
use wearline_models::wire::{Telemetry, decode};

const DEVICES: usize = 4;

fn mosquitto(dir: &Path, port: u16, name: &str) -> Proc {
    let db = dir.join("mosquitto-db");
    std::fs::create_dir_all(&db).expect("mkdir");
    let conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n",
        db.display()
    );
    start_mosquitto(dir, name, &conf, &[port])
}

/// Everything the consumer received: (device, seq) → (times seen, sample time).
type Seen = Arc<Mutex<BTreeMap<(String, u64), (u32, i64)>>>;

/// A subscriber with a persistent session, so the broker keeps its messages
/// while it is away; it reconnects by itself.
/// The receivers say when it has subscribed and each time telemetry arrived.
fn consumer(port: u16) -> (Seen, Receiver<()>, Receiver<()>) {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    let (subscribed, ready) = std::sync::mpsc::channel();
    let (arrived, fresh) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut opts = MqttOptions::new("outage-consumer", "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(opts, 64);
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("wearline/v1/+/telemetry/+", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(t) = decode::<Telemetry>(&p.payload) {
                        let mut seen = out.lock().expect("lock");
                        for s in t.samples {
                            seen.entry((t.device.clone(), s.seq)).or_insert((0, s.ts_ms)).0 += 1;
                        }
                        let _ = arrived.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    (seen, ready, fresh)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn nothing_is_lost_through_a_broker_outage_and_an_agent_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let broker = mosquitto(dir.path(), port, "mosquitto");
    let (seen, subscribed, fresh) = consumer(port);
    subscribed
        .recv_timeout(Duration::from_secs(10))
        .expect("the consumer subscribes");

    let sim = Proc::start(
        dir.path(),
        "sim",
        &[
            "sim",
            "--devices",
            &DEVICES.to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let mut text = format!(
        "gateway = \"gw-outage\"\ndata_dir = \"agent-data\"\nmetrics_listen = \"127.0.0.1:0\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"127.0.0.1:{port}\"\nbatch_max_samples = 5\nbatch_delay_ms = 100\nkeep_alive_secs = 5\n[buffer]\nfsync = \"always\"\n",
        configs_dir().join("profiles")
    );
    for i in 1..=DEVICES {
        let line = sim.expect_line(&format!("purifier-{i:04}"), Duration::from_secs(10));
        let addr = line.split_whitespace().next().expect("address").to_string();
        text.push_str(&format!(
            "[[devices]]\nid = \"purifier-{i:04}\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 100\n"
        ));
    }
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, text).expect("write agent config");
    let cfg = cfg.to_str().expect("utf-8").to_string();
    let agent = Proc::start(dir.path(), "agent", &["agent", "--config", &cfg]);
    let metrics = agent.expect_line("metrics:", Duration::from_secs(10));
    let metrics = metrics.trim().to_string();

    let count = |seen: &Seen| seen.lock().expect("lock").len();
    eventually(Duration::from_secs(30), "samples flowing", || {
        (count(&seen) >= DEVICES * 10).then_some(())
    });

    // The broker goes away under load; the agent keeps polling into its disk queue.
    drop(broker);
    let outage_start = now_ms();
    // Each device's good polls so far: every one after this is polled
    // during the outage.
    let polls_ok = |t: &str, i: usize| {
        prom_value(
            t,
            &format!("wearline_agent_device_polls_total{{device=\"purifier-{i:04}\",result=\"ok\"}}"),
        )
    };
    let at_outage: Vec<f64> = {
        let t = scrape(&metrics).expect("agent metrics");
        (1..=DEVICES)
            .map(|i| polls_ok(&t, i).expect("a device's polls"))
            .collect()
    };
    // Until the agent has noticed, and every device has polled five more
    // times into the disk queue (a total queue depth could be one device's).
    eventually(
        Duration::from_secs(30),
        "samples queued during the outage",
        || {
            let t = scrape(&metrics)?;
            let down = prom_value(&t, "wearline_agent_uplink_connected")? == 0.0;
            let polled = (1..=DEVICES).all(|i| polls_ok(&t, i).is_some_and(|n| n >= at_outage[i - 1] + 5.0));
            (down && polled).then_some(())
        },
    );
    // Then the agent is killed outright, mid-outage.
    drop(agent);
    let killed_at = now_ms();

    let _broker = mosquitto(dir.path(), port, "mosquitto-restarted");
    let _agent = Proc::start(dir.path(), "agent-restarted", &["agent", "--config", &cfg]);

    // After the restart each device starts a new block of sequence numbers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let snapshot = seen.lock().expect("lock").clone();
        let mut runs: BTreeMap<String, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
        for (device, seq) in snapshot.keys() {
            let r = runs.entry(device.clone()).or_default();
            if *seq < 1025 {
                r.0.push(*seq)
            } else {
                r.1.push(*seq)
            }
        }
        let done = runs.len() == DEVICES && runs.values().all(|(_, after)| after.len() >= 20);
        if done {
            break (runs, snapshot);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            fresh.recv_timeout(left).is_ok(),
            "the restarted agent did not get through: {runs:?}"
        );
        while fresh.try_recv().is_ok() {}
    };
    let (runs, snapshot) = runs;
    for (device, (before, after)) in &runs {
        // No hole anywhere: every number taken before the kill arrived, from 1.
        let expect: BTreeSet<u64> = (1..=*before.last().expect("samples before the kill")).collect();
        assert_eq!(
            before.iter().copied().collect::<BTreeSet<_>>(),
            expect,
            "{device}: samples lost before the kill"
        );
        let first = after[0];
        assert_eq!(
            first, 1025,
            "{device}: the restart resumes at the next reserved block"
        );
        let expect: BTreeSet<u64> = (first..=*after.last().expect("after")).collect();
        assert_eq!(
            after.iter().copied().collect::<BTreeSet<_>>(),
            expect,
            "{device}: samples lost after the restart"
        );
        // The samples polled during the outage, up to the kill, were replayed.
        let during = before
            .iter()
            .map(|seq| snapshot[&(device.clone(), *seq)].1)
            .filter(|ts| (outage_start..=killed_at).contains(ts))
            .count();
        assert!(
            during >= 3,
            "{device}: the outage's samples are missing ({during} between {outage_start} and {killed_at})"
        );
        let last_ts = snapshot[&(device.clone(), *before.last().expect("last"))].1;
        assert!(last_ts <= killed_at, "{device}: sample time after the kill");
    }
    let dups: u32 = snapshot.values().map(|(n, _)| n - 1).sum();
    eprintln!(
        "received {} distinct samples, {dups} redelivered duplicates",
        snapshot.len()
    );
}
