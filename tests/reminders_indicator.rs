//! Reminders on the appliance's own indicator: a hub with its embedded
//! broker, the real agent polling the simulator. A filter reminder on a
//! customer's `indicator` channel lights the purifier's filter light (its
//! coil, seen in the agent's next telemetry) and is `sent` once the agent
//! confirms; for a gateway that is not connected, the failed attempts and
//! their reason show in the API, and the reminder is delivered as soon as
//! its agent connects.

mod support;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::time::Duration;
use support::*;
use wearline_models::wire::{Action, Command, Sample, Telemetry, VERSION, encode};

/// Starts `wearline sim` with one purifier whose filter is 97 % used; its
/// Modbus address.
fn start_sim(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "sim",
        "--devices",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--filter-load",
        "0.97",
        "--pm25",
        "35",
    ];
    args.extend_from_slice(extra);
    let sim = Proc::start(dir, "sim", &args);
    let line = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let addr = line.split_whitespace().next().expect("address").to_string();
    (sim, addr)
}

/// Starts the agent of `gateway` for purifier-0001 at `addr`, with the
/// shipped profiles.
fn start_agent(dir: &Path, hub: &TestHub, gateway: &str, addr: &str, extra: &[&str]) -> Proc {
    start_agent_with(dir, &configs_dir().join("profiles"), hub, gateway, addr, extra)
}

fn start_agent_with(
    dir: &Path,
    profiles: &Path,
    hub: &TestHub,
    gateway: &str,
    addr: &str,
    extra: &[&str],
) -> Proc {
    let cfg = dir.join(format!("agent-{gateway}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "gateway = \"{gateway}\"\ndata_dir = \"agent-{gateway}\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 2\nbatch_delay_ms = 200\n[[devices]]\nid = \"purifier-0001\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 250\n",
            profiles,
            hub.broker
        ),
    )
    .expect("write agent config");
    let mut args = vec!["agent", "--config", cfg.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    Proc::start(dir, "agent", &args)
}

/// The latest value of `metric` the hub has from purifier-0001.
fn latest(hub: &TestHub, metric: &str) -> Option<f64> {
    latest_of(hub, "purifier-0001", metric)
}

fn latest_of(hub: &TestHub, device: &str, metric: &str) -> Option<f64> {
    let (code, v, _) = get_as(&format!("{}/api/v1/devices/{device}", hub.api), Some(ADMIN_TOKEN));
    (code == 200).then_some(())?;
    v["latest"]["values"][metric].as_f64()
}

/// Makes customer `acme`, the owner of `devices`, with reminders on the
/// indicator only and no quiet hours; the customer's token.
fn customer_with_indicator(dir: &Path, hub: &TestHub, devices: &[&str]) -> String {
    let cfg = dir.join("hub.toml");
    let cfg_s = cfg.to_str().expect("utf-8");
    let mut commands = vec![vec!["customer", "add", "--config", cfg_s, "--name", "acme"]];
    for d in devices {
        commands.push(vec![
            "customer",
            "assign-device",
            "--config",
            cfg_s,
            "--customer",
            "acme",
            "--device",
            d,
        ]);
    }
    for args in &commands {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = create_token(
        &cfg,
        &["--role", "customer", "--name", "acme", "--customer", "acme"],
    );
    let put = ureq::put(&format!("{}/api/v1/customers/1/reminder-settings", hub.api))
        .header("Authorization", &bearer(&token))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({"channels": ["indicator"], "quiet_hours": [0, 0]}))
        .expect("PUT settings");
    assert_eq!(put.status().as_u16(), 200);
    token
}

/// The customer's indicator reminders, oldest first.
fn indicator_reminders(hub: &TestHub, token: &str) -> Vec<serde_json::Value> {
    let (code, v, _) = get_as(&format!("{}/api/v1/reminders", hub.api), Some(token));
    assert_eq!(code, 200, "{v}");
    let mut list: Vec<serde_json::Value> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["channel"] == "indicator")
        .cloned()
        .collect();
    list.sort_by_key(|r| r["id"].as_i64());
    list
}

#[test]
fn a_filter_reminder_lights_the_purifiers_indicator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    // One simulated day per second: the 97 % filter is days from its end.
    let (_sim, addr) = start_sim(dir.path(), &["--time-scale", "86400"]);
    // The agent also knows the simulator's "filter replaced" coil, so the
    // test can fit a new filter through it.
    let profiles = dir.path().join("agent-profiles");
    std::fs::create_dir(&profiles).expect("profiles dir");
    let shipped = std::fs::read_to_string(configs_dir().join("profiles/air-purifier.toml")).expect("profile");
    std::fs::write(
        profiles.join("air-purifier.toml"),
        format!("{shipped}\n[[fields]]\nmetric = \"filter_replaced\"\nkind = \"coil\"\naddress = 1\ntype = \"bool\"\n"),
    )
    .expect("write");
    let agent = start_agent_with(
        dir.path(),
        &profiles,
        &hub,
        "gw1",
        &addr,
        &["--time-scale", "86400"],
    );
    eventually(Duration::from_secs(30), "the purifier reporting, unlit", || {
        (latest(&hub, "filter_indicator") == Some(0.0)).then_some(())
    });
    let token = customer_with_indicator(dir.path(), &hub, &["purifier-0001"]);

    // Owners are re-read by ingest every 30 s: the reminder follows.
    let sent = eventually(Duration::from_secs(120), "an indicator reminder sent", || {
        let list = indicator_reminders(&hub, &token);
        let first = list.first()?.clone();
        (first["status"] == "sent").then_some(first)
    });
    assert_eq!(sent["device_id"], "purifier-0001", "{sent}");
    assert_eq!(sent["consumable"], "filter", "{sent}");
    assert_eq!(sent["attempts"], 1, "lit at the first attempt: {sent}");
    assert!(sent["last_error"].is_null(), "{sent}");
    assert!(sent["command_id"].is_null(), "no command awaited: {sent}");
    assert!(sent["sent_at"].as_str().is_some(), "{sent}");
    // The simulator's coil is set: the agent's next polls read it back.
    eventually(Duration::from_secs(15), "the filter light on", || {
        (latest(&hub, "filter_indicator") == Some(1.0)).then_some(())
    });

    // A new filter is fitted: the hub sees the pressure fall back, starts a
    // new life and switches the light off through the agent (the
    // simulator clears its light itself on a new filter, so the agent's
    // log, not the coil, shows the hub's command).
    let client = publisher(&hub, "test-technician");
    let fit = Command {
        v: VERSION,
        id: "test-fit-filter".into(),
        ts_ms: 0,
        device: "purifier-0001".into(),
        action: Action::Write {
            metric: "filter_replaced".into(),
            value: 1.0,
        },
    };
    client
        .publish("wearline/v1/gw1/commands", QoS::AtLeastOnce, false, encode(&fit))
        .expect("publish");
    let off = eventually(
        Duration::from_secs(60),
        "the hub's command switching the light off",
        || {
            plain(&agent.stderr()).lines().find_map(|l| {
                (l.contains("command carried out") && l.contains("id=indicator-off-purifier-0001-filter-"))
                    .then(|| l.to_string())
            })
        },
    );
    assert!(off.contains("metric=\"filter_indicator\" value=0.0"), "{off}");
    assert!(
        latest(&hub, "filter_dp").is_some_and(|dp| dp < 150.0),
        "a new filter: {:?}",
        latest(&hub, "filter_dp")
    );
    assert_eq!(
        indicator_reminders(&hub, &token)[0]["status"],
        "sent",
        "the old filter's reminder stays sent"
    );
}

/// `text` without its terminal colours (escape sequences up to their `m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A QoS 1 MQTT client of the hub's broker, its connection driven on a thread.
fn publisher(hub: &TestHub, id: &str) -> Client {
    let (host, port) = hub.broker.rsplit_once(':').expect("host:port");
    let mut opts = MqttOptions::new(id, host, port.parse().expect("port"));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(opts, 64);
    std::thread::spawn(move || {
        for event in connection.iter() {
            if matches!(event, Err(_) | Ok(Event::Incoming(Packet::Disconnect))) {
                break;
            }
        }
    });
    client
}

/// Telemetry of `device` through gateway `gw-late`: samples `ks` of
/// a filter a few days from its end (a quarter pascal an hour, toward
/// 250 Pa), an hour apart from `base_ms`. The simulator's filter at 97 %
/// reads higher (about 240 Pa), so the real agent's readings later do not
/// look like a new filter.
fn old_telemetry(device: &str, profile: &str, base_ms: i64, ks: std::ops::Range<u64>) -> Vec<u8> {
    let samples = ks
        .map(|k| {
            let h = k as f64;
            Sample {
                seq: k + 1,
                ts_ms: base_ms + k as i64 * 3_600_000,
                values: [
                    ("filter_dp".to_string(), 200.0 + 0.25 * h),
                    ("run_hours".to_string(), 5000.0 + h),
                    ("pm25".to_string(), 35.0),
                    ("fan_speed".to_string(), 1200.0),
                    ("filter_indicator".to_string(), 0.0),
                ]
                .into_iter()
                .collect(),
                text: Default::default(),
                restart: false,
            }
        })
        .collect();
    encode(&Telemetry {
        v: VERSION,
        gateway: "gw-late".into(),
        device: device.into(),
        profile: profile.into(),
        samples,
    })
}

#[test]
fn a_gateway_offline_gets_the_reminder_once_its_agent_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shipped profile, and a purifier model without the light.
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).expect("profiles dir");
    let shipped = std::fs::read_to_string(configs_dir().join("profiles/air-purifier.toml")).expect("profile");
    std::fs::write(profiles.join("air-purifier.toml"), &shipped).expect("write");
    let basic = shipped
        .replace("name = \"air-purifier\"", "name = \"basic-purifier\"")
        .replace("indicator = \"filter_indicator\"\n", "");
    assert_ne!(basic, shipped);
    std::fs::write(profiles.join("basic-purifier.toml"), basic).expect("write");
    // An unanswered attempt counts as failed after 2 s.
    let cfg = write_hub_config_full(
        dir.path(),
        &profiles,
        "",
        "[indicator]\nresult_timeout_secs = 2\n",
    );
    let hub = start_hub_config(dir.path(), &cfg);
    // The gateway's past: its telemetry, filters getting close to their
    // end, published for it (it is not connected now).
    let client = publisher(&hub, "gw-late-past");
    let devices = [
        ("purifier-0001", "air-purifier"),
        ("basic-0001", "basic-purifier"),
    ];
    let base = wearline_hub::clock::wall_ms() - 30 * 86_400_000;
    let publish = |ks: std::ops::Range<u64>| {
        for (device, profile) in devices {
            client
                .publish(
                    format!("wearline/v1/gw-late/telemetry/{device}"),
                    QoS::AtLeastOnce,
                    false,
                    old_telemetry(device, profile, base, ks.clone()),
                )
                .expect("publish");
        }
    };
    publish(0..60);
    eventually(Duration::from_secs(30), "the purifiers registered", || {
        devices
            .iter()
            .all(|(d, _)| latest_of(&hub, d, "filter_dp").is_some())
            .then_some(())
    });
    let token = customer_with_indicator(dir.path(), &hub, &["purifier-0001", "basic-0001"]);
    // More of the past, about a sample a second, until ingest (which
    // re-reads owners every 30 s) queues the reminders.
    let (mut polls, mut k) = (0u64, 60u64);
    let queued = eventually(Duration::from_secs(120), "indicator reminders", || {
        let list = indicator_reminders(&hub, &token);
        let of = |d: &str| list.iter().find(|r| r["device_id"] == d).cloned();
        if let (Some(lit), Some(basic)) = (of("purifier-0001"), of("basic-0001")) {
            return Some((lit, basic));
        }
        polls += 1;
        if polls % 10 == 0 {
            publish(k..k + 1);
            k += 1;
        }
        None
    });
    let (queued, basic) = queued;
    let id = queued["id"].as_i64().expect("id");
    // The model without the light gets nothing, and its owner sees why.
    let basic_id = basic["id"].clone();
    let skipped = eventually(
        Duration::from_secs(30),
        "the basic model's reminder skipped",
        || {
            indicator_reminders(&hub, &token)
                .into_iter()
                .find(|r| r["id"] == basic_id && r["status"] == "skipped")
        },
    );
    assert_eq!(
        skipped["last_error"],
        "the device's profile `basic-purifier` names no indicator for its filter (`indicator` in its [[consumables]])",
        "{skipped}"
    );
    assert_eq!(skipped["attempts"], 0, "{skipped}");
    let this = || {
        indicator_reminders(&hub, &token)
            .into_iter()
            .find(|r| r["id"] == id)
            .expect("the reminder")
    };

    // Nobody answers: a failed attempt, with why, retried later.
    let failed = eventually(Duration::from_secs(30), "a failed attempt", || {
        let r = this();
        (r["attempts"].as_i64() >= Some(1) && r["last_error"].is_string()).then_some(r)
    });
    assert_eq!(failed["status"], "pending", "{failed}");
    assert_eq!(
        failed["last_error"], "no result from the device's gateway within 2 s: is its agent connected?",
        "{failed}"
    );
    assert!(failed["command_id"].is_null(), "{failed}");

    // The gateway's agent connects: its online status brings the retry
    // forward (the backoff alone would wait a minute), and the light goes on.
    let (_sim, addr) = start_sim(dir.path(), &[]);
    let _agent = start_agent(dir.path(), &hub, "gw-late", &addr, &[]);
    let sent = eventually(Duration::from_secs(30), "the reminder sent", || {
        let r = this();
        (r["status"] == "sent").then_some(r)
    });
    assert_eq!(sent["attempts"], 2, "{sent}");
    assert!(sent["last_error"].is_null(), "{sent}");
    // Once the duplicate sequence numbers of the published past are behind
    // it, the agent's telemetry shows the coil set.
    eventually(Duration::from_secs(60), "the filter light on", || {
        (latest(&hub, "filter_indicator") == Some(1.0)).then_some(())
    });
}
