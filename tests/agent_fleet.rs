//! One agent, a hundred devices: every sample is confirmed by the broker and
//! leaves the disk queue, so the queue stays shallow while the link is up
//! (regression: a send that made more messages than the in-flight window
//! could hold left entries handed out but never sent, and the queue grew
//! without bound).

mod support;

use std::time::Duration;
use support::*;

const DEVICES: usize = 100;

#[test]
fn a_hundred_devices_drain_through_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let n = DEVICES.to_string();
    let sim = Proc::start(
        dir.path(),
        "sim",
        &["sim", "--devices", &n, "--listen", "127.0.0.1:0"],
    );
    let mut cfg = format!(
        "gateway = \"gw-fleet\"\ndata_dir = \"agent-data\"\nmetrics_listen = \"127.0.0.1:0\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 10\nbatch_delay_ms = 200\n",
        configs_dir().join("profiles"),
        hub.broker
    );
    for i in 1..=DEVICES {
        let id = format!("purifier-{i:04}");
        let line = sim.expect_line(&id, Duration::from_secs(10));
        let addr = line.split_whitespace().next().expect("address");
        cfg.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 200\n"
        ));
    }
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, cfg).expect("write");
    let agent = Proc::start(
        dir.path(),
        "agent",
        &["agent", "--config", path.to_str().expect("utf-8")],
    );
    let metrics = agent.expect_line("metrics:", Duration::from_secs(10));
    let url = metrics.trim().to_string();

    // Wait for 20 polls of every device to be confirmed.
    let text = eventually(Duration::from_secs(60), "2000 confirmed samples", || {
        let t = scrape(&url)?;
        (prom_value(&t, "wearline_agent_samples_confirmed_total")? >= (20 * DEVICES) as f64).then_some(t)
    });
    let get = |name: &str| prom_value(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    let unconfirmed = get("wearline_agent_samples_total") - get("wearline_agent_samples_confirmed_total")
        + get("wearline_agent_alerts_total");
    // The depth gauge is refreshed once a second: allow one second of polls.
    let depth = get("wearline_agent_queue_depth");
    assert!(
        depth <= unconfirmed + (5 * DEVICES) as f64,
        "queue depth {depth} with {unconfirmed} entries unconfirmed"
    );
    let stored = get_json(&format!("{}/api/v1/devices", hub.api));
    assert_eq!(
        stored.as_array().map(Vec::len),
        Some(DEVICES),
        "every device reached the hub"
    );
}
