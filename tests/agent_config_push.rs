//! A configuration pushed by the hub on the gateway's retained config topic:
//! a valid revision is applied without a restart (a device added, with a
//! profile carried in the push whose detector raises an alert, while the
//! device already polled keeps its sequence), an invalid one is refused with
//! file, line and key while the old one stays in effect, a revision that
//! would move the uplink is refused, after a restart the agent starts from
//! the revision it applied, and `wearline push-config` does all this from the
//! command line.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::*;
use wearline_models::wire::{
    Alert, AlertState, ConfigPush, ConfigResult, Telemetry, VERSION, decode, encode,
};

const GATEWAY: &str = "gw-cfg";

enum Seen {
    Telemetry(Telemetry),
    Alert(Alert),
    Result(ConfigResult),
}

/// The hub's side: publishes configs, collects what the agent sends.
struct Hub {
    client: Client,
    seen: Receiver<Seen>,
}

impl Hub {
    fn connect(port: u16) -> Hub {
        let (client, mut connection) = Client::new(MqttOptions::new("hub-side", "127.0.0.1", port), 64);
        client
            .subscribe(format!("wearline/v1/{GATEWAY}/#"), QoS::AtLeastOnce)
            .expect("subscribe");
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                let Ok(Event::Incoming(Packet::Publish(p))) = event else {
                    continue;
                };
                let msg = if p.topic.contains("/telemetry/") {
                    decode(&p.payload).ok().map(Seen::Telemetry)
                } else if p.topic.contains("/alerts/") {
                    decode(&p.payload).ok().map(Seen::Alert)
                } else if p.topic.ends_with("/config-results") {
                    decode(&p.payload).ok().map(Seen::Result)
                } else {
                    None
                };
                if let Some(m) = msg
                    && tx.send(m).is_err()
                {
                    break;
                }
            }
        });
        Hub { client, seen }
    }

    fn push(&self, revision: &str, agent_toml: &str, profiles: BTreeMap<String, String>) {
        let push = ConfigPush {
            v: VERSION,
            revision: revision.into(),
            ts_ms: 0,
            agent_toml: agent_toml.into(),
            profiles,
        };
        self.client
            .publish(
                format!("wearline/v1/{GATEWAY}/config"),
                QoS::AtLeastOnce,
                true,
                encode(&push),
            )
            .expect("publish config");
    }

    /// Waits for the first message `f` accepts, returning what it made of it.
    #[track_caller]
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .seen
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            if let Some(v) = f(&m) {
                return v;
            }
        }
    }

    #[track_caller]
    fn result(&self, revision: &str) -> ConfigResult {
        self.wait_for(&format!("the result of {revision}"), |m| match m {
            Seen::Result(r) if r.revision == revision => Some(r.clone()),
            _ => None,
        })
    }

    /// The next sample of `device` after now: its sequence number.
    #[track_caller]
    fn next_seq(&self, device: &str) -> u64 {
        self.wait_for(&format!("telemetry of {device}"), |m| match m {
            Seen::Telemetry(t) if t.device == device => t.samples.last().map(|s| s.seq),
            _ => None,
        })
    }
}

#[test]
fn pushed_configs_apply_live_refuse_bad_revisions_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, port) = start_plain_mosquitto(dir.path());
    let sim = Proc::start(
        dir.path(),
        "sim",
        &["sim", "--devices", "2", "--listen", "127.0.0.1:0"],
    );
    let addr = |id: &str| {
        let line = sim.expect_line(id, Duration::from_secs(10));
        line.split_whitespace().next().expect("address").to_string()
    };
    let (a1, a2) = (addr("purifier-0001"), addr("purifier-0002"));
    let device = |id: &str, profile: &str, addr: &str| {
        format!("[[devices]]\nid = \"{id}\"\nprofile = \"{profile}\"\ntcp = \"{addr}\"\ninterval_ms = 100\n")
    };
    let base = format!(
        "gateway = \"{GATEWAY}\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"127.0.0.1:{port}\"\nbatch_max_samples = 1\nbatch_delay_ms = 50\n",
        configs_dir().join("profiles")
    );
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!("{base}{}", device("purifier-0001", "air-purifier", &a1)),
    )
    .expect("write");
    let hub = Hub::connect(port);
    let start_agent = || {
        let p = Proc::start(
            dir.path(),
            "agent",
            &["agent", "--config", cfg.to_str().expect("utf-8")],
        );
        p.expect_line("agent: polling", Duration::from_secs(10));
        p
    };
    let agent = start_agent();
    let before = hub.next_seq("purifier-0001");

    // r1: a second device, with a profile carried in the push whose range
    // detector on the motor temperature (about 40 °C) alerts at once.
    let shipped = std::fs::read_to_string(configs_dir().join("profiles/air-purifier.toml")).expect("profile");
    let hot = shipped.replace("name = \"air-purifier\"", "name = \"hot-purifier\"")
        + "\n[[detectors]]\nmetric = \"motor_temp\"\ntype = \"range\"\nhigh = 30.0\nalert = \"overheat\"\n";
    let r1 = format!(
        "{base}{}{}",
        device("purifier-0001", "air-purifier", &a1),
        device("purifier-0002", "hot-purifier", &a2)
    );
    let profiles: BTreeMap<String, String> = [("hot-purifier".to_string(), hot)].into();
    hub.push("r1", &r1, profiles.clone());
    let res = hub.result("r1");
    assert!(res.ok && res.active.as_deref() == Some("r1"), "{res:?}");
    let alert = hub.wait_for("the overheat alert", |m| match m {
        Seen::Alert(a) if a.kind == "overheat" => Some(a.clone()),
        _ => None,
    });
    assert_eq!(
        (alert.device.as_str(), alert.metric.as_str(), alert.state),
        ("purifier-0002", "motor_temp", AlertState::Open)
    );
    assert!(alert.value > 30.0 && alert.baseline == 30.0, "{alert:?}");
    hub.next_seq("purifier-0002");
    let after = hub.next_seq("purifier-0001");
    assert!(
        after > before,
        "the unchanged device kept its sequence: {before} then {after}"
    );

    // r2: invalid (interval 0 on line 12); r1 stays in effect.
    hub.push(
        "r2",
        &r1.replacen("interval_ms = 100", "interval_ms = 0", 1),
        profiles.clone(),
    );
    let res = hub.result("r2");
    assert!(!res.ok && res.active.as_deref() == Some("r1"), "{res:?}");
    let err = res.error.unwrap_or_default();
    assert!(
        err.contains("hub config r2:12") && err.contains("devices[0].interval_ms"),
        "{err}"
    );
    // r3: would move the uplink; refused.
    hub.push("r3", &r1.replace(&format!(":{port}"), ":1"), profiles);
    let res = hub.result("r3");
    assert!(!res.ok && res.error.unwrap_or_default().contains("`uplink`"));
    hub.next_seq("purifier-0002");

    // A restart (SIGKILL) starts from r1, kept on disk; the retained r3 is
    // refused again.
    drop(agent);
    let _agent = start_agent();
    let res = hub.result("r3");
    assert_eq!((res.ok, res.active.as_deref()), (false, Some("r1")));
    hub.next_seq("purifier-0002");

    // The operator's tool: `wearline push-config` checks the file first (a
    // typo never leaves the machine), then publishes and reports the answer.
    let file = dir.path().join("r4.toml");
    let broker = format!("127.0.0.1:{port}");
    let push_cli = |revision: &str| {
        run(&[
            "push-config",
            "--broker",
            &broker,
            "--gateway",
            GATEWAY,
            "--revision",
            revision,
            "--config",
            file.to_str().expect("utf-8"),
        ])
    };
    let typo = device("purifier-0001", "air-purifier", &a1).replace("interval_ms = 100", "interval_ms = 0");
    std::fs::write(&file, format!("{base}{typo}")).expect("write");
    let out = push_cli("r4-typo");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("r4.toml:12") && stderr.contains("interval_ms"),
        "{stderr}"
    );
    std::fs::write(
        &file,
        format!("{base}{}", device("purifier-0001", "air-purifier", &a1)),
    )
    .expect("write");
    let out = push_cli("r4");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revision r4 in effect"));
}
