//! Commands from the hub to an agent, over the broker: light the filter
//! indicator, set the fan level, refuse a read-only field, act once on a
//! command delivered twice, and report each outcome.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;
use wearline_models::wire::{Action, Command, CommandResult, VERSION, decode, encode};

#[test]
fn commands_write_the_device_and_report_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let sim = Proc::start(
        dir.path(),
        "sim",
        &["sim", "--devices", "1", "--listen", "127.0.0.1:0"],
    );
    let line = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let addr = line.split_whitespace().next().expect("address");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "gateway = \"gw-cmd\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 1\nbatch_delay_ms = 50\n[[devices]]\nid = \"purifier-0001\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 100\n",
            configs_dir().join("profiles"),
            hub.broker
        ),
    )
    .expect("write agent config");
    let _agent = Proc::start(
        dir.path(),
        "agent",
        &["agent", "--config", cfg.to_str().expect("utf-8")],
    );

    let latest = |metric: &str| -> Option<f64> {
        let url = format!("{}/api/v1/devices/purifier-0001", hub.api);
        let v = ureq::get(&url)
            .header("Authorization", &bearer(ADMIN_TOKEN))
            .call()
            .ok()?
            .body_mut()
            .read_json::<serde_json::Value>()
            .ok()?;
        v["latest"]["values"][metric].as_f64()
    };
    eventually(Duration::from_secs(30), "the device reporting", || {
        (latest("filter_indicator") == Some(0.0)).then_some(())
    });

    // The hub's side: a client that sends commands and collects results.
    let (host, port) = hub.broker.rsplit_once(':').expect("host:port");
    let (client, mut connection) = Client::new(
        MqttOptions::new("hub-commands", host, port.parse().expect("port")),
        16,
    );
    client
        .subscribe("wearline/v1/gw-cmd/command-results", QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, results) = std::sync::mpsc::channel::<CommandResult>();
    std::thread::spawn(move || {
        for event in connection.iter() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = event
                && let Ok(r) = decode::<CommandResult>(&p.payload)
                && tx.send(r).is_err()
            {
                break;
            }
        }
    });
    let send = |id: &str, action: Action| {
        let cmd = Command {
            v: VERSION,
            id: id.into(),
            ts_ms: 0,
            device: "purifier-0001".into(),
            action,
        };
        client
            .publish(
                "wearline/v1/gw-cmd/commands",
                QoS::AtLeastOnce,
                false,
                encode(&cmd),
            )
            .expect("publish");
    };
    let indicator = Action::SetIndicator {
        indicator: "filter".into(),
        on: true,
    };
    send("c1", indicator.clone());
    send("c1", indicator);
    send(
        "c2",
        Action::Write {
            metric: "fan_level".into(),
            value: 80.0,
        },
    );
    send(
        "c3",
        Action::Write {
            metric: "filter_dp".into(),
            value: 1.0,
        },
    );
    send(
        "c4",
        Action::Write {
            metric: "fan_level".into(),
            value: 101.0,
        },
    );

    let mut got: BTreeMap<String, Vec<CommandResult>> = BTreeMap::new();
    while got.len() < 4 {
        let r = results
            .recv_timeout(Duration::from_secs(30))
            .expect("a command result");
        got.entry(r.id.clone()).or_default().push(r);
    }
    assert_eq!(
        got["c1"].len(),
        1,
        "a command delivered twice is carried out once"
    );
    assert!(got["c1"][0].ok && got["c2"][0].ok, "{got:?}");
    assert!(
        !got["c3"][0].ok
            && got["c3"][0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("not writable"),
        "{got:?}"
    );
    assert!(
        !got["c4"][0].ok
            && got["c4"][0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("IllegalDataValue"),
        "{got:?}"
    );

    eventually(
        Duration::from_secs(10),
        "the indicator lit and the fan at 80 %",
        || (latest("filter_indicator") == Some(1.0) && latest("fan_level") == Some(80.0)).then_some(()),
    );
    assert!(
        results.recv_timeout(Duration::from_millis(300)).is_err(),
        "no second result for c1"
    );
}
