//! The real agent as a certificate gateway: over mutual TLS to the hub's
//! embedded broker (`[broker.tls]`, client certificate with `O = gw1`, and a
//! password file), with `uplink.tenant_topics` it publishes telemetry, its
//! status and last will under `/tenants/gw1/`, and a config pushed with
//! `wearline push-config` and a command from the hub's side reach it there.
//! The same agent without `tenant_topics` is refused by the broker, and
//! nothing of it is stored.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;
use wearline_models::wire::{Action, Command, CommandResult, Topic, TopicForm, VERSION, decode, encode};

const GATEWAY: &str = "gw1";

/// The agent's config: gateway `gw1` on the broker's TLS listener with its
/// client certificate and login, polling one simulated purifier.
fn agent_config(dir: &Path, name: &str, tls_port: u16, sim: &str, tenant: bool, interval_ms: u64) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "gateway = \"{GATEWAY}\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n\
             [uplink]\nbroker = \"127.0.0.1:{tls_port}\"\nusername = \"{GATEWAY}\"\npassword = \"pw-1\"\n\
             batch_max_samples = 5\nbatch_delay_ms = 50\ntenant_topics = {tenant}\n\
             [uplink.tls]\nca_file = \"fleet-ca.pem\"\nclient_cert_file = \"{GATEWAY}.pem\"\nclient_key_file = \"{GATEWAY}.key\"\n\
             [[devices]]\nid = \"purifier-0001\"\nprofile = \"air-purifier\"\ntcp = \"{sim}\"\ninterval_ms = {interval_ms}\n",
            configs_dir().join("profiles")
        ),
    )
    .expect("write agent config");
    path
}

fn start_agent(dir: &Path, name: &str, cfg: &Path) -> Proc {
    Proc::start(dir, name, &["agent", "--config", cfg.to_str().expect("utf-8")])
}

/// The device as the hub's API shows it, once it exists.
fn device(hub: &TestHub) -> Option<serde_json::Value> {
    let url = format!("{}/api/v1/devices/purifier-0001", hub.api);
    ureq::get(&url)
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

/// The gateway's `gateway_offline` alert (its last will), if any.
fn offline_alert(hub: &TestHub) -> Option<serde_json::Value> {
    let alerts = get_json(&format!("{}/api/v1/alerts", hub.api));
    alerts
        .as_array()?
        .iter()
        .find(|a| a["kind"] == "gateway_offline" && a["gateway"] == GATEWAY)
        .cloned()
}

/// `text` without its ANSI colour sequences (`ESC [ … m`).
fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_certificate_gateway_works_only_with_tenant_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_ca(d, "fleet");
    make_cert(
        d,
        "fleet",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\n",
    );
    make_cert(
        d,
        "fleet",
        GATEWAY,
        &format!("/CN={GATEWAY}/O={GATEWAY}"),
        "extendedKeyUsage=clientAuth\n",
    );
    mosquitto_passwd(&d.join("passwd"), &[(GATEWAY, "pw-1"), ("operator", "pw-op")]);
    let cfg = write_hub_config_broker(
        d,
        "password_file = \"passwd\"\n[broker.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\nclient_ca_file = \"fleet-ca.pem\"\n",
        "",
    );
    let hub = start_hub_config(d, &cfg);
    let tls_port: u16 = hub
        .proc
        .expect_line("broker-tls:", Duration::from_secs(5))
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("TLS port");
    let sim = Proc::start(d, "sim", &["sim", "--devices", "1", "--listen", "127.0.0.1:0"]);
    let line = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let sim_addr = line.split_whitespace().next().expect("address").to_string();

    // 1. Unprefixed topics: the broker accepts the TLS login, then refuses
    // the first publish (the online status) and drops the connection, again
    // and again; the samples stay queued on disk.
    let plain_cfg = agent_config(d, "agent-plain", tls_port, &sim_addr, false, 100);
    let refused = start_agent(d, "agent-plain", &plain_cfg);
    eventually(
        Duration::from_secs(30),
        "the broker to refuse the unprefixed agent twice",
        || {
            let err = refused.stderr();
            (err.contains("uplink connected") && err.matches("uplink down").count() >= 2).then_some(())
        },
    );
    refused.signal("TERM");
    let (status, _) = refused.wait(Duration::from_secs(10));
    let err = plain_text(&std::fs::read_to_string(d.join("agent-plain.stderr")).expect("agent stderr"));
    assert!(status.success(), "{err}");
    let queued: u64 = err
        .lines()
        .find(|l| l.contains("stopping with entries queued on disk"))
        .and_then(|l| l.split("depth=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the agent kept its samples queued:\n{err}"));
    assert!(queued > 0, "{err}");
    // A barrier: a message through the broker to the hub after the refused
    // ones. rumqttd refuses an out-of-tenant publish (and the last will)
    // before routing it, so once the hub has the probe, it has everything
    // the broker routed, and none of it is gw1's.
    let broker_port: u16 = hub
        .broker
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    let operator = || {
        let mut o = MqttOptions::new("operator", "127.0.0.1", broker_port);
        o.set_credentials("operator", "pw-op");
        o
    };
    let (probe, mut probe_conn) = Client::new(operator(), 8);
    probe
        .publish(
            "wearline/v1/probe/telemetry/probe-1",
            QoS::AtLeastOnce,
            false,
            r#"{"v":1,"gateway":"probe","device":"probe-1","profile":"air-purifier","samples":[{"seq":1,"ts_ms":1795392000000,"values":{"filter_dp":100}}]}"#,
        )
        .expect("queue the probe");
    for event in probe_conn.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("probe: {e}"),
        }
    }
    let _ = probe.disconnect();
    let health = format!("{}/health", hub.api);
    let ingest = eventually(Duration::from_secs(20), "the probe stored", || {
        let h = get_json(&health);
        (h["ingest"]["samples"] == 1).then(|| h["ingest"].clone())
    });
    assert_eq!(ingest["messages"], 1, "only the probe reached the hub: {ingest}");
    assert!(device(&hub).is_none(), "nothing of gw1 is stored");
    assert!(offline_alert(&hub).is_none(), "no last will of gw1 either");

    // 2. Tenant topics, same gateway, same disk queue: what was queued and
    // what follows is stored.
    let tenant_cfg = agent_config(d, "agent-tenant", tls_port, &sim_addr, true, 100);
    let agent = start_agent(d, "agent-tenant", &tenant_cfg);
    let stored = eventually(Duration::from_secs(30), "gw1's telemetry stored", || {
        device(&hub).filter(|v| v["samples"].as_u64().is_some_and(|n| n > queued))
    });
    assert_eq!(stored["gateway"], GATEWAY, "{stored}");
    assert_eq!(stored["gaps"], 0, "the queued samples arrived too: {stored}");

    // 3. Its last will: killed, the broker publishes `offline` under its tenant.
    agent.kill();
    eventually(Duration::from_secs(20), "gw1's last will", || {
        offline_alert(&hub).filter(|a| a["cleared_at"].is_null())
    });
    // Back online: its retained `online` status clears the alert.
    let agent = start_agent(d, "agent-tenant-2", &tenant_cfg);
    eventually(Duration::from_secs(30), "gw1 online again", || {
        offline_alert(&hub).filter(|a| !a["cleared_at"].is_null())
    });
    assert!(
        hub.proc.stderr().contains("gateway status"),
        "{}",
        hub.proc.stderr()
    );

    // 4. A command from the hub's side, on the tenant topic.
    let (client, mut connection) = Client::new(operator(), 16);
    let results = Topic::CommandResult {
        gateway: GATEWAY.into(),
    }
    .render_in(TopicForm::Tenant);
    assert_eq!(results, "/tenants/gw1/wearline/v1/gw1/command-results");
    client.subscribe(results, QoS::AtLeastOnce).expect("subscribe");
    let (tx, answers) = std::sync::mpsc::channel::<CommandResult>();
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(r) = decode::<CommandResult>(&p.payload)
                        && tx.send(r).is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    subscribed
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed to the results");
    let cmd = Command {
        v: VERSION,
        id: "light-1".into(),
        ts_ms: 0,
        device: "purifier-0001".into(),
        action: Action::SetIndicator {
            indicator: "filter".into(),
            on: true,
        },
    };
    let topic = Topic::Command {
        gateway: GATEWAY.into(),
    }
    .render_in(TopicForm::Tenant);
    client
        .publish(topic, QoS::AtLeastOnce, false, encode(&cmd))
        .expect("publish the command");
    let answer = answers
        .recv_timeout(Duration::from_secs(30))
        .expect("the command's result");
    assert!(answer.ok && answer.id == "light-1", "{answer:?}");
    eventually(Duration::from_secs(20), "the indicator lit", || {
        device(&hub).filter(|v| v["latest"]["values"]["filter_indicator"] == 1.0)
    });
    // 5. A config pushed from the command line (on the plain listener, as a
    // user of the password file) reaches it under its tenant.
    let pushed = agent_config(d, "agent-pushed", tls_port, &sim_addr, true, 150);
    let out = run(&[
        "push-config",
        "--broker",
        &hub.broker,
        "--gateway",
        GATEWAY,
        "--revision",
        "r1",
        "--config",
        pushed.to_str().expect("utf-8"),
        "--username",
        "operator",
        "--password",
        "pw-op",
        "--client-id",
        "operator",
        "--timeout-secs",
        "30",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("gw1: revision r1 in effect"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ingest = get_json(&health)["ingest"].clone();
    assert_eq!(ingest["malformed"]["tenant"], 0, "{ingest}");
    assert_eq!(ingest["malformed"]["topic"], 0, "{ingest}");
    drop(agent);
}
