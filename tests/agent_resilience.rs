//! A device that stops answering mid-run does not delay the others, and a
//! device that comes back after a reboot is polled again without restarting
//! the agent.

mod support;

use std::time::Duration;
use support::*;

fn sim(dir: &std::path::Path, name: &str, port: u16) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let p = Proc::start(
        dir,
        name,
        &["sim", "--devices", "1", "--listen", &listen, "--seed", "5"],
    );
    p.expect_line("purifier-0001", Duration::from_secs(10));
    p
}

#[test]
fn a_device_that_dies_and_reboots_never_holds_back_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let (port_a, port_b) = (free_port(), free_port());
    let sim_a = sim(dir.path(), "sim-a", port_a);
    let _sim_b = sim(dir.path(), "sim-b", port_b);

    let cfg = dir.path().join("agent.toml");
    let mut text = format!(
        "gateway = \"gw-res\"\ndata_dir = \"agent-data\"\nmetrics_listen = \"127.0.0.1:0\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 1\nbatch_delay_ms = 100\n",
        configs_dir().join("profiles"),
        hub.broker
    );
    for (id, port) in [("dev-a", port_a), ("dev-b", port_b)] {
        text.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nprofile = \"air-purifier\"\ntcp = \"127.0.0.1:{port}\"\ninterval_ms = 100\ntimeout_ms = 300\n"
        ));
    }
    std::fs::write(&cfg, text).expect("write");
    let agent = Proc::start(
        dir.path(),
        "agent",
        &["agent", "--config", cfg.to_str().expect("utf-8")],
    );
    let metrics_url = agent.expect_line("metrics:", Duration::from_secs(10));

    let samples = |id: &str| -> i64 {
        ureq::get(&format!("{}/api/v1/devices/{id}", hub.api))
            .header("Authorization", &bearer(ADMIN_TOKEN))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
            .and_then(|v| v["samples"].as_i64())
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(30), "both devices reporting", || {
        (samples("dev-a") > 5 && samples("dev-b") > 5).then_some(())
    });

    // dev-a dies mid-run: dev-b keeps its pace (about 10 samples a second).
    drop(sim_a);
    let a_dead = samples("dev-a");
    let b_before = samples("dev-b");
    eventually(
        Duration::from_secs(10),
        "dev-b to keep reporting while dev-a is down",
        || (samples("dev-b") >= b_before + 20).then_some(()),
    );
    assert!(samples("dev-a") <= a_dead + 2, "a dead device yields no samples");
    let metrics = ureq::get(&metrics_url)
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert!(value("wearline_agent_device_polls_total{device=\"dev-a\",result=\"error\"}") >= 1.0);
    assert!(value("wearline_agent_device_polls_total{device=\"dev-b\",result=\"ok\"}") >= 20.0);
    assert_eq!(value("wearline_agent_uplink_connected"), 1.0);

    // dev-a reboots on the same address: the agent reconnects by itself.
    let _sim_a = sim(dir.path(), "sim-a-rebooted", port_a);
    eventually(
        Duration::from_secs(45),
        "dev-a to be polled again after its reboot",
        || (samples("dev-a") >= a_dead + 10).then_some(()),
    );
}
