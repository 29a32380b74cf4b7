//! The service loop on the simulated fleet, end to end, with the simulator,
//! the agent and the hub as real processes: filters run out and preventive
//! orders open once each and go to the filter technician; she fits a new
//! filter (a Modbus write to the simulated purifier, as her hands would)
//! and resolves the order, and the data verifies it and closes it; an
//! order resolved without a new filter is reopened by the data; a bearing
//! fault injected into a purifier opens a P1 corrective order for the
//! technician with that skill, verified once the bearing is fixed.

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio_modbus::client::{Writer, tcp};
use wearline_simulators::registers::{COIL_FILTER_REPLACED, HR_SIM_BEARING_FAULT};

/// What the test does to a simulated purifier with its own hands.
enum Touch {
    FitNewFilter,
    BearingFault(u16),
}

fn touch(addr: SocketAddr, what: Touch) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ctx = tcp::connect(addr).await.expect("connect to the simulator");
        match what {
            Touch::FitNewFilter => ctx
                .write_single_coil(COIL_FILTER_REPLACED, true)
                .await
                .expect("transport")
                .expect("coil written"),
            Touch::BearingFault(per_mille) => ctx
                .write_single_register(HR_SIM_BEARING_FAULT, per_mille)
                .await
                .expect("transport")
                .expect("register written"),
        }
    });
}

/// The orders of `device`, as a manager sees them.
fn orders_of(api: &str, device: &str) -> Vec<Value> {
    get_json(&format!("{api}/work-orders?device={device}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `device` has an order for `cause` in `status`, and returns it.
#[track_caller]
fn order_in(api: &str, device: &str, cause: &str, status: &str, within: Duration) -> Value {
    eventually(within, &format!("{device}: a `{cause}` order {status}"), || {
        orders_of(api, device)
            .into_iter()
            .find(|w| w["cause"] == cause && w["status"] == status)
    })
}

/// The last entry of an order's trail: (actor, action, note).
fn last_event(api: &str, id: &Value) -> (String, String, String) {
    let trail = get_json(&format!("{api}/work-orders/{id}/events"));
    let last = trail
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or(Value::Null);
    (
        last["actor"].as_str().unwrap_or("").to_string(),
        last["action"].as_str().unwrap_or("").to_string(),
        last["detail"]["note"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn the_fleet_is_serviced_from_prediction_to_verified_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let api = format!("{}/api/v1", hub.api);
    let cfg = dir.path().join("hub.toml");

    // The service team: Fiona changes filters, Otto fixes faults.
    for (name, skills) in [
        ("fiona", json!(["consumable:*"])),
        ("otto", json!(["alert:*", "offline"])),
    ] {
        let added = ureq::put(&format!("{api}/technicians/{name}"))
            .header("Authorization", &bearer(ADMIN_TOKEN))
            .send_json(json!({
                "skills": skills, "latitude": 48.14, "longitude": 11.58, "capacity": 5, "shift": [0, 0]
            }));
        assert!(added.is_ok(), "{added:?}");
    }
    let fiona = create_token(
        &cfg,
        &[
            "--role",
            "technician",
            "--name",
            "fiona-phone",
            "--technician",
            "fiona",
        ],
    );
    let otto = create_token(
        &cfg,
        &[
            "--role",
            "technician",
            "--name",
            "otto-phone",
            "--technician",
            "otto",
        ],
    );

    // Three purifiers, a simulated day per real second: two filters nearly
    // spent, one fairly new.
    let sim = Proc::start(
        dir.path(),
        "sim",
        &[
            "sim",
            "--devices",
            "3",
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "86400",
            "--filter-load",
            "0.97,0.98,0.2",
            "--pm25",
            "35",
        ],
    );
    let mut addrs = Vec::new();
    for id in ["purifier-0001", "purifier-0002", "purifier-0003"] {
        let line = sim.expect_line(id, Duration::from_secs(10));
        let addr: SocketAddr = line
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("an address in `{line}`"));
        addrs.push((id, addr));
    }
    let mut text = format!(
        "gateway = \"gw-fleet\"\ndata_dir = \"agent-data\"\nprofiles_dir = {:?}\n[uplink]\nbroker = \"{}\"\nbatch_max_samples = 2\nbatch_delay_ms = 200\n",
        configs_dir().join("profiles"),
        hub.broker
    );
    for (id, addr) in &addrs {
        text.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = 250\ntimeout_ms = 300\n"
        ));
    }
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(&agent_cfg, text).expect("write agent config");
    let _agent = Proc::start(
        dir.path(),
        "agent",
        &[
            "agent",
            "--config",
            agent_cfg.to_str().expect("utf-8"),
            "--time-scale",
            "86400",
        ],
    );

    // Both spent filters get one preventive order each, dispatched to Fiona.
    let filter = "consumable:filter";
    let first = order_in(&api, "purifier-0001", filter, "assigned", Duration::from_secs(60));
    let second = order_in(&api, "purifier-0002", filter, "assigned", Duration::from_secs(30));
    for wo in [&first, &second] {
        assert_eq!(
            (wo["kind"].as_str(), wo["assignee"].as_str()),
            (Some("preventive"), Some("fiona")),
            "{wo}"
        );
    }
    // Fiona sees her two assignments, and nothing of the third purifier.
    let (code, mine, _) = get_as(&format!("{api}/work-orders"), Some(&fiona));
    assert_eq!((code, mine.as_array().map(Vec::len)), (200, Some(2)), "{mine}");

    // purifier-0001: accepted, started, a new filter fitted, resolved with the part.
    let steps = |wo: &Value, token: &str, body: Value| {
        let (code, answer) = post_json_as(
            &format!("{api}/work-orders/{}/transitions", wo["id"]),
            token,
            &body,
        );
        assert_eq!(code, 200, "{body}: {answer}");
        answer
    };
    steps(&first, &fiona, json!({"action": "accept"}));
    steps(&first, &fiona, json!({"action": "start"}));
    touch(addrs[0].1, Touch::FitNewFilter);
    steps(
        &first,
        &fiona,
        json!({"action": "resolve", "parts": ["HEPA filter H13"], "note": "filter changed"}),
    );
    // The data verifies it: the filter's life restarted; closed by the hub.
    let closed = order_in(&api, "purifier-0001", filter, "closed", Duration::from_secs(30));
    let (actor, action, note) = last_event(&api, &closed["id"]);
    assert_eq!((actor.as_str(), action.as_str()), ("hub", "close"), "{note}");
    assert!(note.starts_with("verified by data"), "{note}");
    assert_eq!(closed["parts"], json!(["HEPA filter H13"]), "{closed}");

    // purifier-0002: resolved without a new filter; the data reopens it.
    steps(&second, &fiona, json!({"action": "start"}));
    steps(
        &second,
        &fiona,
        json!({"action": "resolve", "note": "cleaned the pre-filter only"}),
    );
    let reopened = order_in(&api, "purifier-0002", filter, "reopened", Duration::from_secs(30));
    assert!(
        last_event(&api, &reopened["id"]).2.contains("fault persists"),
        "{reopened}"
    );

    // purifier-0003: a bearing starts to fail. The edge flags the vibration
    // as critical, and the hub opens a P1 corrective order for Otto.
    touch(addrs[2].1, Touch::BearingFault(800));
    let fault = "alert:vibration_severity";
    let corrective = order_in(&api, "purifier-0003", fault, "assigned", Duration::from_secs(30));
    assert_eq!(
        (
            corrective["kind"].as_str(),
            corrective["priority"].as_str(),
            corrective["assignee"].as_str()
        ),
        (Some("corrective"), Some("P1"), Some("otto")),
        "{corrective}"
    );
    steps(&corrective, &otto, json!({"action": "accept"}));
    steps(&corrective, &otto, json!({"action": "start"}));
    touch(addrs[2].1, Touch::BearingFault(0));
    steps(
        &corrective,
        &otto,
        json!({"action": "resolve", "parts": ["bearing 6201-2RS"]}),
    );
    let fixed = order_in(&api, "purifier-0003", fault, "closed", Duration::from_secs(30));
    let (actor, _, note) = last_event(&api, &fixed["id"]);
    assert_eq!(actor, "hub", "{note}");
    assert!(note.starts_with("verified by data"), "{note}");

    // Once each: the new filter's predictions opened nothing more for
    // purifier-0001, the reopened order was not duplicated, and no order
    // ever opened for the third purifier's filter.
    let samples = |id: &str| {
        get_json(&format!("{api}/devices/{id}"))["samples"]
            .as_i64()
            .unwrap_or(0)
    };
    let before = samples("purifier-0001");
    eventually(Duration::from_secs(20), "more data after the repairs", || {
        (samples("purifier-0001") >= before + 20).then_some(())
    });
    for (device, cause, expected) in [
        ("purifier-0001", filter, 1),
        ("purifier-0002", filter, 1),
        ("purifier-0003", filter, 0),
        ("purifier-0003", fault, 1),
    ] {
        let n = orders_of(&api, device)
            .iter()
            .filter(|w| w["cause"] == cause)
            .count();
        assert_eq!(n, expected, "{device} {cause}: {:?}", orders_of(&api, device));
    }
}
