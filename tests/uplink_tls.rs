//! The uplink over TLS with a custom CA: the agent publishes to mosquitto's
//! TLS listener when it trusts the CA that signed the broker's certificate,
//! and refuses a broker whose certificate it cannot verify.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::time::Duration;
use support::*;

/// Makes a CA and a broker certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path, name: &str) {
    make_ca(dir, name);
    make_cert(
        dir,
        name,
        &format!("{name}-server"),
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\n",
    );
}

#[test]
fn the_uplink_speaks_tls_and_checks_the_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    certificates(dir.path(), "good");
    certificates(dir.path(), "other");
    let (tls_port, plain_port) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        "per_listener_settings false\nallow_anonymous true\nlistener {plain_port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\ncafile {d}/good-ca.pem\ncertfile {d}/good-server.pem\nkeyfile {d}/good-server.key\n"
    );
    let _broker = start_mosquitto(dir.path(), "mosquitto", &conf, &[plain_port, tls_port]);

    // A consumer on the plain listener sees what arrives over TLS.
    let (client, mut connection) = Client::new(MqttOptions::new("tls-consumer", "127.0.0.1", plain_port), 16);
    client
        .subscribe("wearline/v1/#", QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, statuses) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for event in connection.iter() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = event
                && tx.send(p.topic.clone()).is_err()
            {
                break;
            }
        }
    });

    let sim = Proc::start(
        dir.path(),
        "sim",
        &["sim", "--devices", "1", "--listen", "127.0.0.1:0"],
    );
    let line = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let addr = line.split_whitespace().next().expect("address").to_string();
    let agent_config = |gateway: &str, ca: &str, protocol: &str| {
        let cfg = dir.path().join(format!("{gateway}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "gateway = \"{gateway}\"\ndata_dir = \"{gateway}-data\"\nprofiles_dir = \"{}\"\n[uplink]\nbroker = \"127.0.0.1:{tls_port}\"\nprotocol = \"{protocol}\"\nbatch_delay_ms = 100\n[uplink.tls]\nca_file = \"{ca}\"\n[[devices]]\nid = \"{gateway}-dev\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 200\n",
                configs_dir().join("profiles").display()
            ),
        )
        .expect("write agent config");
        cfg.to_str().expect("utf-8").to_string()
    };
    let trusting = agent_config("gw-tls", "good-ca.pem", "v3.1.1");
    let trusting_v5 = agent_config("gw-tls-v5", "good-ca.pem", "v5");
    let doubting = agent_config("gw-wrong-ca", "other-ca.pem", "v3.1.1");
    let _good = Proc::start(dir.path(), "agent-good-ca", &["agent", "--config", &trusting]);
    let _good_v5 = Proc::start(
        dir.path(),
        "agent-good-ca-v5",
        &["agent", "--config", &trusting_v5],
    );
    let bad = Proc::start(dir.path(), "agent-other-ca", &["agent", "--config", &doubting]);

    // Both trusting agents, MQTT 3.1.1 and MQTT 5, announce themselves and
    // deliver telemetry over TLS.
    let wanted = [
        "wearline/v1/gw-tls/status",
        "wearline/v1/gw-tls-v5/status",
        "wearline/v1/gw-tls/telemetry/gw-tls-dev",
        "wearline/v1/gw-tls-v5/telemetry/gw-tls-v5-dev",
    ];
    let mut seen = std::collections::BTreeSet::new();
    while !wanted.iter().all(|w| seen.contains(*w)) {
        let topic = statuses
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("only saw {seen:?}"));
        seen.insert(topic);
    }
    eventually(
        Duration::from_secs(20),
        "the other agent to refuse the broker's certificate",
        || bad.stderr().contains("uplink down").then_some(()),
    );
    let err = bad.stderr();
    assert!(
        err.contains("ertificate") || err.contains("Tls") || err.contains("TLS"),
        "{err}"
    );
    // Whatever else arrives, nothing comes from the agent that distrusts the broker.
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(topic) = until
        .checked_duration_since(std::time::Instant::now())
        .and_then(|left| statuses.recv_timeout(left).ok())
    {
        assert!(
            !topic.contains("gw-wrong-ca"),
            "{topic} from the agent that distrusts the broker"
        );
    }
}
