//! The embedded broker's security, with real rumqttc clients on loopback:
//! logins are checked against a mosquitto password file; the TLS listener
//! needs the CA and a client certificate; a certificate gateway publishes
//! only under its own tenant and its own gateway's topics. Refused clients
//! and messages leave the hub up and valid traffic stored.

mod support;

use rumqttc::{
    Client, ConnectReturnCode, Event, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use std::path::Path;
use std::time::Duration;
use support::*;

fn telemetry(gateway: &str, device: &str, seq: u64) -> String {
    format!(
        r#"{{"v":1,"gateway":"{gateway}","device":"{device}","profile":"air-purifier","samples":[{{"seq":{seq},"ts_ms":{},"values":{{"filter_dp":{}}}}}]}}"#,
        1_795_392_000_000u64 + seq * 3_600_000,
        100 + seq
    )
}

fn opts(port: u16, client_id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    o
}

/// TLS trusting `ca` (a PEM file in `dir`), with the client certificate
/// `{cert}.pem`/`{cert}.key` when given.
fn tls(mut o: MqttOptions, dir: &Path, ca: &str, cert: Option<&str>) -> MqttOptions {
    let read = |f: String| std::fs::read(dir.join(f)).expect("read PEM");
    let client_auth = cert.map(|c| (read(format!("{c}.pem")), read(format!("{c}.key"))));
    o.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: read(ca.to_string()),
        alpn: None,
        client_auth,
    }));
    o
}

/// Whether the broker accepts the connection.
fn connects(o: MqttOptions) -> bool {
    let (_client, mut connection) = Client::new(o, 10);
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(a))) => return a.code == ConnectReturnCode::Success,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Publishes `messages` with QoS 1 and waits for every PUBACK; `Err` when
/// the connection fails first (a refused login, or the broker disconnecting
/// a client that published where it may not).
fn publish(o: MqttOptions, messages: &[(String, String)]) -> Result<(), String> {
    let (client, mut connection) = Client::new(o, 64);
    for (topic, payload) in messages {
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
            .expect("queue");
    }
    let mut acked = 0;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return Err("disconnected".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        if acked == messages.len() {
            let _ = client.disconnect();
            return Ok(());
        }
    }
    Err("connection ended".into())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("host:port")
}

/// The hub's ingest counters once `done` holds for them.
fn ingest_when(hub: &TestHub, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let health = format!("{}/health", hub.api);
    eventually(Duration::from_secs(20), what, || {
        let h = get_json(&health);
        done(&h["ingest"]).then(|| h["ingest"].clone())
    })
}

#[test]
fn logins_are_checked_and_valid_devices_get_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    mosquitto_passwd(&dir.path().join("passwd"), &[("gw1", "pw-1"), ("gw2", "pw-2")]);
    let cfg = write_hub_config_broker(dir.path(), "password_file = \"passwd\"\n", "");
    let hub = start_hub_config(dir.path(), &cfg);
    let port = port_of(&hub.broker);

    assert!(
        !connects(opts(port, "gw2", Some(("gw2", "wrong")))),
        "a wrong password"
    );
    assert!(
        !connects(opts(port, "nobody", Some(("nobody", "pw-2")))),
        "an unknown user"
    );
    assert!(!connects(opts(port, "anon", None)), "no credentials");
    assert!(
        !connects(opts(port, "gw2", Some(("gw1", "pw-1")))),
        "a good login under another client id"
    );
    // The hub's own client id without its secret.
    assert!(!connects(opts(
        port,
        "wearline-hub",
        Some(("wearline-hub", "guess"))
    )));

    let topic = "wearline/v1/gw1/telemetry/dev-1".to_string();
    publish(
        opts(port, "gw1", Some(("gw1", "pw-1"))),
        &[
            (topic.clone(), telemetry("gw1", "dev-1", 1)),
            (topic, telemetry("gw1", "dev-1", 2)),
        ],
    )
    .expect("a valid device publishes");
    let ingest = ingest_when(&hub, "the valid device's samples", |i| i["samples"] == 2);
    assert_eq!(ingest["messages"], 2, "{ingest}");
    let device = get_json(&format!("{}/api/v1/devices/dev-1", hub.api));
    assert_eq!(device["samples"], 2, "{device}");
    assert!(
        hub.proc.stderr().contains("broker login refused"),
        "{}",
        hub.proc.stderr()
    );
}

#[test]
fn certificate_gateways_publish_only_their_own_topics() {
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
    for gw in ["gw1", "gw2"] {
        make_cert(
            d,
            "fleet",
            gw,
            &format!("/CN={gw}/O={gw}"),
            "extendedKeyUsage=clientAuth\n",
        );
    }
    make_ca(d, "rogue");
    make_cert(
        d,
        "rogue",
        "rogue-gw1",
        "/CN=gw1/O=gw1",
        "extendedKeyUsage=clientAuth\n",
    );
    mosquitto_passwd(&d.join("passwd"), &[("gw1", "pw-1"), ("gw2", "pw-2")]);
    let cfg = write_hub_config_broker(
        d,
        "password_file = \"passwd\"\n[broker.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\nclient_ca_file = \"fleet-ca.pem\"\n",
        "",
    );
    let hub = start_hub_config(d, &cfg);
    let port = port_of(&hub.proc.expect_line("broker-tls:", Duration::from_secs(5)));
    let gw = |id: &str, pw: &str| opts(port, id, Some((id, pw)));

    assert!(!connects(gw("gw1", "pw-1")), "plain MQTT on the TLS listener");
    assert!(
        !connects(tls(gw("gw1", "pw-1"), d, "fleet-ca.pem", None)),
        "TLS without a client certificate"
    );
    assert!(
        !connects(tls(gw("gw1", "pw-1"), d, "fleet-ca.pem", Some("rogue-gw1"))),
        "a client certificate from another CA"
    );
    assert!(
        !connects(tls(gw("gw1", "pw-1"), d, "rogue-ca.pem", Some("gw1"))),
        "a broker the client cannot verify"
    );
    assert!(
        !connects(tls(gw("gw1", "wrong"), d, "fleet-ca.pem", Some("gw1"))),
        "a good certificate with a wrong password"
    );

    let own = |seq| {
        (
            "/tenants/gw1/wearline/v1/gw1/telemetry/dev-1".to_string(),
            telemetry("gw1", "dev-1", seq),
        )
    };
    publish(tls(gw("gw1", "pw-1"), d, "fleet-ca.pem", Some("gw1")), &[own(1)])
        .expect("gw1 publishes its own");

    // gw2 under its own tenant, naming gw1: the broker takes it, the hub refuses it.
    let forged = (
        "/tenants/gw2/wearline/v1/gw1/telemetry/dev-1".to_string(),
        telemetry("gw1", "dev-1", 50),
    );
    publish(tls(gw("gw2", "pw-2"), d, "fleet-ca.pem", Some("gw2")), &[forged]).expect("the broker acks");
    // gw2 outside its tenant: the broker refuses it and drops the connection.
    let outside = (
        "wearline/v1/gw1/telemetry/dev-1".to_string(),
        telemetry("gw1", "dev-1", 60),
    );
    let refused = publish(tls(gw("gw2", "pw-2"), d, "fleet-ca.pem", Some("gw2")), &[outside]);
    assert!(refused.is_err(), "a publish outside the tenant must be refused");

    publish(tls(gw("gw1", "pw-1"), d, "fleet-ca.pem", Some("gw1")), &[own(2)]).expect("gw1 goes on");
    let ingest = ingest_when(&hub, "gw1's samples and the forged one refused", |i| {
        i["samples"] == 2 && i["malformed"]["tenant"] == 1
    });
    assert_eq!(ingest["messages"], 3, "{ingest}");
    let device = get_json(&format!("{}/api/v1/devices/dev-1", hub.api));
    assert_eq!(device["samples"], 2, "{device}");
    assert_eq!(device["last_seq"], 2, "{device}");
    let metrics = scrape(&format!("{}/metrics", hub.api)).expect("metrics");
    assert!(
        metrics.contains("wearline_hub_ingest_malformed_total{reason=\"tenant\"} 1"),
        "{metrics}"
    );
}

/// The ACL file given in `docs/configuration.md` (the block that starts
/// with `# /etc/wearline/acl`).
fn documented_acl() -> String {
    let doc = include_str!("../docs/configuration.md");
    let start = doc
        .find("# /etc/wearline/acl")
        .expect("the ACL example in docs/configuration.md");
    let end = doc[start..].find("```").expect("end of the ACL example");
    doc[start..start + end].to_string()
}

#[test]
fn the_documented_mosquitto_acl_confines_each_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    mosquitto_passwd(
        &d.join("passwd"),
        &[("gw1", "pw-1"), ("gw2", "pw-2"), ("wearline-hub", "hub-pw")],
    );
    std::fs::write(d.join("acl"), documented_acl()).expect("acl");
    let port = free_port();
    let conf = format!(
        "per_listener_settings false\nallow_anonymous false\npassword_file {0}/passwd\nacl_file {0}/acl\nlistener {port} 127.0.0.1\n",
        d.display()
    );
    let _mosquitto = start_mosquitto(d, "mosquitto", &conf, &[port]);
    let cfg = d.join("hub.toml");
    std::fs::write(
        &cfg,
        format!(
            "profiles_dir = {:?}\n[broker]\nkind = \"external\"\naddress = \"127.0.0.1:{port}\"\nusername = \"wearline-hub\"\npassword = \"hub-pw\"\n[http]\nlisten = \"127.0.0.1:0\"\n{}[store]\nsqlite = \"hub.db\"\n",
            configs_dir().join("profiles"),
            write_admin_token(d)
        ),
    )
    .expect("hub config");
    let hub = start_hub_config(d, &cfg);

    assert!(
        !connects(opts(port, "gw1", Some(("gw1", "wrong")))),
        "a wrong password"
    );
    // gw2 publishing as gw1: mosquitto acknowledges it and drops it.
    let as_gw1 = |seq| {
        (
            "wearline/v1/gw1/telemetry/dev-1".to_string(),
            telemetry("gw1", "dev-1", seq),
        )
    };
    publish(opts(port, "gw2", Some(("gw2", "pw-2"))), &[as_gw1(50)]).expect("acknowledged");
    // mosquitto handles one message at a time: anything routed from the
    // forged publish reaches the hub before gw1's own.
    publish(opts(port, "gw1", Some(("gw1", "pw-1"))), &[as_gw1(1)]).expect("gw1 publishes its own");
    let ingest = ingest_when(&hub, "gw1's sample", |i| i["samples"] == 1);
    assert_eq!(
        ingest["messages"], 1,
        "the forged message reached the hub: {ingest}"
    );
    let device = get_json(&format!("{}/api/v1/devices/dev-1", hub.api));
    assert_eq!(device["last_seq"], 1, "{device}");
}
