//! Interoperability with a real Modbus peer: pymodbus serves a register map
//! that uses every data type and byte/word order, encoded by Python's own
//! `struct`; the agent must read the values pymodbus holds, over Modbus TCP
//! and over RTU on a pseudo-terminal pair made by socat. The README's test
//! command (`tests/run`) installs pymodbus and socat when missing.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// Every data type in every order, in holding and input registers, plus bits.
fn spec() -> Vec<Value> {
    let mut fields = Vec::new();
    let mut addr = 0u16;
    let values: [(&str, f64); 8] = [
        ("u16", 51_234.0),
        ("i16", -12_345.0),
        ("u32", 3_000_000_123.0),
        ("i32", -2_000_000_123.0),
        ("u64", 9_007_199_254_740_000.0),
        ("i64", -9_007_199_254_740_000.0),
        ("f32", -1234.5),
        ("f64", 98_765.432_1),
    ];
    for (kind, offset) in [("holding", 0.0), ("input", 1.0)] {
        for (ty, v) in values {
            let orders: &[&str] = if ty.ends_with("16") {
                &["ABCD", "BADC"]
            } else {
                &["ABCD", "BADC", "CDAB", "DCBA"]
            };
            for order in orders {
                let words = match &ty[1..] {
                    "16" => 1,
                    "32" => 2,
                    _ => 4,
                };
                let value = if ty.starts_with('f') { v + offset } else { v };
                fields.push(json!({"metric": format!("{kind}_{ty}_{order}"), "kind": kind, "address": addr, "type": ty, "order": order, "value": value}));
                addr += words;
            }
        }
        addr = 0;
    }
    fields.push(json!({"metric": "serial", "kind": "holding", "address": 210, "type": "string", "length": 5, "order": "ABCD", "value": "WL-2026-07"}));
    fields.push(json!({"metric": "firmware_text", "kind": "input", "address": 220, "type": "string", "length": 4, "order": "BADC", "value": "v2.3.1"}));
    fields.push(json!({"metric": "bit_3", "kind": "holding", "address": 200, "type": "bool", "bit": 3, "value": true}));
    fields.push(json!({"metric": "bit_4", "kind": "holding", "address": 200, "type": "bool", "bit": 4, "value": false}));
    fields.push(json!({"metric": "coil_5", "kind": "coil", "address": 5, "type": "bool", "value": true}));
    fields.push(
        json!({"metric": "discrete_6", "kind": "discrete", "address": 6, "type": "bool", "value": true}),
    );
    fields
}

fn write_profile(dir: &Path, spec: &[Value]) -> std::path::PathBuf {
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut text = String::from("name = \"interop\"\n");
    for f in spec {
        text.push_str(&format!(
            "[[fields]]\nmetric = {}\nkind = {}\naddress = {}\ntype = {}\n",
            f["metric"], f["kind"], f["address"], f["type"]
        ));
        if let Some(o) = f.get("order") {
            text.push_str(&format!("order = {o}\n"));
        }
        if let Some(l) = f.get("length") {
            text.push_str(&format!("length = {l}\n"));
        }
        if let Some(b) = f.get("bit") {
            text.push_str(&format!("bit = {b}\n"));
        }
    }
    std::fs::write(profiles.join("interop.toml"), text).expect("write profile");
    profiles
}

fn peer(dir: &Path, name: &str, args: &[&str], spec: &[Value]) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/modbus_peer.py"))
        .args(args);
    let p = Proc::spawn(dir, name, cmd, Some(&serde_json::to_string(spec).expect("json")));
    p.expect_line("ready", Duration::from_secs(30));
    p
}

/// Runs hub and agent against `devices` (TOML device entries) and checks that
/// each device's latest sample equals the spec.
fn check_agent_reads(dir: &Path, spec: &[Value], profiles: &Path, extra: &str, devices: &[&str]) {
    let hub = start_hub(dir);
    let cfg = dir.join("agent.toml");
    let mut text = format!(
        "gateway = \"gw-interop\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 1\nbatch_delay_ms = 100\n{extra}",
        profiles, hub.broker
    );
    for d in devices {
        text.push_str(d);
    }
    std::fs::write(&cfg, text).expect("write agent config");
    let _agent = Proc::start(dir, "agent", &["agent", "--config", cfg.to_str().expect("utf-8")]);
    for d in devices {
        let id = d.split('"').nth(1).expect("device id");
        let url = format!("{}/api/v1/devices/{id}", hub.api);
        let values = eventually(Duration::from_secs(60), &format!("a sample from {id}"), || {
            let v = ureq::get(&url)
                .header("Authorization", &bearer(ADMIN_TOKEN))
                .call()
                .ok()?
                .body_mut()
                .read_json::<Value>()
                .ok()?;
            v["latest"]["values"].as_object().cloned()
        });
        let device = ureq::get(&url)
            .header("Authorization", &bearer(ADMIN_TOKEN))
            .call()
            .expect("GET device")
            .body_mut()
            .read_json::<Value>()
            .expect("json");
        for f in spec.iter().filter(|f| f["type"] == "string") {
            let metric = f["metric"].as_str().expect("metric");
            assert_eq!(
                device["attributes"][metric], f["value"],
                "{id}: text field {metric}"
            );
        }
        for f in spec.iter().filter(|f| f["type"] != "string") {
            let metric = f["metric"].as_str().expect("metric");
            let want = match &f["value"] {
                Value::Bool(b) => f64::from(u8::from(*b)),
                v => v.as_f64().expect("number"),
            };
            let got = values
                .get(metric)
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("{id}: no {metric} in {values:?}"));
            let tol = if f["type"] == "f32" {
                1e-3
            } else {
                want.abs() * 1e-12
            };
            assert!(
                (got - want).abs() <= tol,
                "{id}: {metric} read {got}, pymodbus holds {want}"
            );
        }
    }
}

#[test]
fn agent_reads_what_pymodbus_holds_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec();
    let profiles = write_profile(dir.path(), &spec);
    let port = free_port();
    let _peer = peer(dir.path(), "pymodbus-tcp", &["--tcp", &port.to_string()], &spec);
    let device = format!(
        "[[devices]]\nid = \"tcp-1\"\nprofile = \"interop\"\ntcp = \"127.0.0.1:{port}\"\ninterval_ms = 200\nmax_registers_per_request = 10\n"
    );
    check_agent_reads(dir.path(), &spec, &profiles, "", &[&device]);
}

#[test]
fn agent_reads_what_pymodbus_holds_over_rtu_on_a_shared_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec();
    let profiles = write_profile(dir.path(), &spec);
    let (a, b) = (dir.path().join("tty-peer"), dir.path().join("tty-agent"));
    let mut socat = Command::new("socat");
    socat.args([
        "-d",
        "-d",
        &format!("pty,raw,echo=0,link={}", a.display()),
        &format!("pty,raw,echo=0,link={}", b.display()),
    ]);
    let _socat = Proc::spawn(dir.path(), "socat", socat, None);
    eventually(Duration::from_secs(10), "socat's pty pair", || {
        (a.exists() && b.exists()).then_some(())
    });
    let _peer = peer(
        dir.path(),
        "pymodbus-rtu",
        &["--rtu", a.to_str().expect("utf-8"), "--baud", "115200"],
        &spec,
    );
    // Two devices on one RS-485 line: the agent serialises access to it.
    let line = format!("[serial.rs485]\nport = {:?}\nbaud = 115200\n", b);
    let devices: Vec<String> = (1..=2)
        .map(|unit| {
            format!("[[devices]]\nid = \"rtu-{unit}\"\nprofile = \"interop\"\nserial = \"rs485\"\nunit = {unit}\ninterval_ms = 300\ntimeout_ms = 1000\n")
        })
        .collect();
    let refs: Vec<&str> = devices.iter().map(String::as_str).collect();
    check_agent_reads(dir.path(), &spec, &profiles, &line, &refs);
}
