//! The API's bearer tokens and roles, against the real hub: tokens and
//! customers made with the CLI while the hub runs; devices and work orders
//! put straight into its store (the same SQLite file). Anonymous, unknown
//! and revoked tokens get 401; a customer sees only their own device and
//! its order (404 for the rest); a technician only their assignment; a
//! manager everything.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use support::*;
use wearline_hub::store::{Location, NewWorkOrder, Store};
use wearline_models::wire::Sample;

/// Three devices with one open order each: `(device, order id)`.
fn seed(db: &Path) -> BTreeMap<String, i64> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = Store::open(&Location::Sqlite(db.to_path_buf()))
            .await
            .expect("open the hub's store");
        let mut orders = BTreeMap::new();
        for d in ["d-acme", "d-globex", "d-spare"] {
            let sample = Sample {
                seq: 1,
                ts_ms: 1_000,
                values: BTreeMap::from([("pressure_drop_pa".to_string(), 90.0)]),
                text: BTreeMap::new(),
                restart: false,
            };
            store
                .insert_samples("gw", d, "air-purifier", vec![sample])
                .await
                .expect("insert");
            let wo = NewWorkOrder {
                device_id: d.into(),
                kind: "preventive",
                cause: "consumable:filter".into(),
                priority: "P3",
                title: format!("Replace the filter of {d}"),
                opened_at_ms: 2_000,
                predicted_eol_ms: None,
                lead_time_days: Some(14.0),
                explanation: json!({}).to_string(),
            };
            let row = store.open_work_order(&wo).await.expect("open").expect("new");
            orders.insert(d.to_string(), row.id);
        }
        orders
    })
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = run(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tokens made with the CLI: manager `maria`, customer `acme`'s portal,
/// technician `tom`'s phone.
fn tokens(cfg: &Path) -> (String, String, String) {
    let manager = create_token(cfg, &["--role", "manager", "--name", "maria"]);
    let acme = create_token(
        cfg,
        &[
            "--role",
            "customer",
            "--name",
            "acme-portal",
            "--customer",
            "acme",
        ],
    );
    let tom = create_token(
        cfg,
        &[
            "--role",
            "technician",
            "--name",
            "tom-phone",
            "--technician",
            "tom",
        ],
    );
    (manager, acme, tom)
}

/// The values of `key` in a JSON array answer.
fn ids(v: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn tokens_and_roles_decide_what_each_caller_sees_and_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let cfg = dir.path().join("hub.toml");
    let cfg_s = cfg.to_str().expect("utf-8");
    let orders = seed(&dir.path().join("hub.db"));
    let api = format!("{}/api/v1", hub.api);

    // Customers and tokens, as a service manager makes them.
    let mut customer_ids = BTreeMap::new();
    for name in ["acme", "globex"] {
        let (ok, out, err) = cli(&[
            "customer",
            "add",
            "--config",
            cfg_s,
            "--name",
            name,
            "--email",
            "ops@example.com",
        ]);
        assert!(ok, "{err}");
        let id = out
            .strip_prefix("customer ")
            .and_then(|r| r.strip_suffix(&format!(" `{name}` added\n")))
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("`customer {{id}} `{name}` added`: {out:?}"));
        customer_ids.insert(name, id);
    }
    for (c, d) in [("acme", "d-acme"), ("globex", "d-globex")] {
        let (ok, _, err) = cli(&[
            "customer",
            "assign-device",
            "--config",
            cfg_s,
            "--customer",
            c,
            "--device",
            d,
        ]);
        assert!(ok, "{err}");
    }
    let (ok, _, err) = cli(&[
        "customer",
        "assign-device",
        "--config",
        cfg_s,
        "--customer",
        "acme",
        "--device",
        "nope",
    ]);
    assert!(!ok && err.contains("no device `nope`"), "{err}");
    let (ok, _, err) = cli(&[
        "token", "create", "--config", cfg_s, "--role", "customer", "--name", "x",
    ]);
    assert!(!ok && err.contains("needs --customer"), "{err}");
    let (manager, acme, tom) = tokens(&cfg);
    let gone = create_token(&cfg, &["--role", "manager", "--name", "leaver"]);
    let (ok, _, err) = cli(&[
        "token", "create", "--config", cfg_s, "--role", "manager", "--name", "maria",
    ]);
    assert!(!ok && err.contains("already exists"), "{err}");
    assert!(cli(&["token", "revoke", "--config", cfg_s, "--name", "leaver"]).0);
    let (ok, list, _) = cli(&["token", "list", "--config", cfg_s]);
    assert!(
        ok && list.contains("leaver") && list.contains("technician tom"),
        "{list}"
    );
    assert!(!list.contains(&manager), "a list never shows tokens");

    // Anonymous, unknown and revoked: 401 with a Bearer challenge and a JSON error.
    for (token, challenge) in [
        (None, "Bearer"),
        (Some("wl_not_a_token"), "Bearer error=\"invalid_token\""),
        (Some(gone.as_str()), "Bearer error=\"invalid_token\""),
    ] {
        let (code, body, www) = get_as(&format!("{api}/devices"), token);
        assert_eq!(
            (code, www.as_deref()),
            (401, Some(challenge)),
            "{token:?}: {body}"
        );
        assert!(body["error"].is_string(), "{body}");
    }
    // Probes and scrapers need none.
    assert_ne!(get_as(&format!("{}/health", hub.api), None).0, 401);
    assert!(scrape(&format!("{}/metrics", hub.api)).is_some());

    // A manager sees everything and dispatches.
    let (code, devices, _) = get_as(&format!("{api}/devices"), Some(&manager));
    assert_eq!(
        (code, ids(&devices, "id")),
        (200, vec!["d-acme".into(), "d-globex".into(), "d-spare".into()])
    );
    assert_eq!(
        ids(
            &get_as(&format!("{api}/work-orders"), Some(&manager)).1,
            "device_id"
        )
        .len(),
        3
    );
    let globex_order = orders["d-globex"];
    let (code, body) = post_json_as(
        &format!("{api}/work-orders/{globex_order}/transitions"),
        &manager,
        &json!({"action": "assign", "assignee": "tom"}),
    );
    assert_eq!(code, 200, "{body}");

    // A customer: their own device and its order; everything else is 404.
    let (code, mine, _) = get_as(&format!("{api}/devices"), Some(&acme));
    assert_eq!((code, ids(&mine, "id")), (200, vec!["d-acme".to_string()]));
    assert_eq!(get_as(&format!("{api}/devices/d-acme"), Some(&acme)).0, 200);
    assert_eq!(
        get_as(&format!("{api}/devices/d-acme/consumables"), Some(&acme)).0,
        200
    );
    let acme_order = orders["d-acme"];
    for url in [
        format!("{api}/devices/d-spare"),
        format!("{api}/devices/d-spare/consumables"),
    ] {
        let (code, body, _) = get_as(&url, Some(&acme));
        assert_eq!(code, 404, "a device of no customer: {url}: {body}");
    }
    // Every GET route with an id, taken from the API's own document: acme
    // gets 404 on each of globex's resources, as if it did not exist, and
    // 200 on its own. A new route with an id is checked here unchanged, or
    // fails until this test knows which of a customer's ids fills it.
    let (_, doc, _) = get_as(&format!("{api}/openapi.json"), None);
    let fill = |path: &str, customer: &str, device: &str, order: i64| -> String {
        let id = if path.starts_with("/api/v1/devices/{id}") {
            device.to_string()
        } else if path.starts_with("/api/v1/work-orders/{id}") {
            order.to_string()
        } else if path.starts_with("/api/v1/customers/{id}") {
            customer_ids[customer].to_string()
        } else {
            panic!("{path}: teach this test which of a customer's ids fills it")
        };
        format!("{}{}", hub.api, path.replace("{id}", &id))
    };
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("the document's paths") {
        if item.get("get").is_none() || !path.contains('{') {
            continue;
        }
        let theirs = fill(path, "globex", "d-globex", globex_order);
        let (code, body, _) = get_as(&theirs, Some(&acme));
        assert_eq!(code, 404, "acme reads globex's {theirs}: {body}");
        assert!(body["error"].is_string(), "{body}");
        let mine = fill(path, "acme", "d-acme", acme_order);
        let (code, body, _) = get_as(&mine, Some(&acme));
        assert_eq!(code, 200, "acme reads its own {mine}: {body}");
        checked.push(path.clone());
    }
    assert_eq!(
        checked.len(),
        7,
        "device, consumables, telemetry, work order, its events, customer, reminder settings: {checked:?}"
    );
    let globex_settings = fill("/api/v1/customers/{id}/reminder-settings", "globex", "", 0);
    let resp = ureq::put(&globex_settings)
        .header("Authorization", &bearer(&acme))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({"channels": ["portal"]}))
        .expect("PUT reminder settings");
    assert_eq!(
        resp.status().as_u16(),
        404,
        "acme changes globex's reminder settings"
    );
    let (_, listed, _) = get_as(&format!("{api}/work-orders"), Some(&acme));
    assert_eq!(ids(&listed, "device_id"), ["d-acme"]);
    let (_, listed, _) = get_as(&format!("{api}/work-orders?device=d-globex"), Some(&acme));
    assert_eq!(listed, json!([]), "a filter cannot widen the scope");
    assert_eq!(
        get_as(&format!("{api}/work-orders/{acme_order}"), Some(&acme)).0,
        200
    );
    let cancel = json!({"action": "cancel"});
    let (code, body) = post_json_as(
        &format!("{api}/work-orders/{acme_order}/transitions"),
        &acme,
        &cancel,
    );
    assert_eq!(
        code, 403,
        "a customer sees but does not change their order: {body}"
    );
    let (code, _) = post_json_as(
        &format!("{api}/work-orders/{globex_order}/transitions"),
        &acme,
        &cancel,
    );
    assert_eq!(code, 404);

    // A technician: their assignment and its device only; start and resolve it.
    let (_, listed, _) = get_as(&format!("{api}/work-orders"), Some(&tom));
    assert_eq!(ids(&listed, "device_id"), ["d-globex"]);
    let (_, devices, _) = get_as(&format!("{api}/devices"), Some(&tom));
    assert_eq!(ids(&devices, "id"), ["d-globex"]);
    assert_eq!(get_as(&format!("{api}/devices/d-acme"), Some(&tom)).0, 404);
    assert_eq!(
        get_as(&format!("{api}/work-orders/{acme_order}"), Some(&tom)).0,
        404
    );
    let mine = format!("{api}/work-orders/{globex_order}/transitions");
    let (code, body) = post_json_as(&mine, &tom, &json!({"action": "assign", "assignee": "tina"}));
    assert_eq!(code, 403, "{body}");
    for action in ["accept", "start", "resolve"] {
        let (code, body) = post_json_as(&mine, &tom, &json!({"action": action}));
        assert_eq!(code, 200, "{action}: {body}");
        if action == "accept" {
            assert!(body["accepted_at"].is_string(), "{body}");
        }
    }
    let (code, _) = post_json_as(
        &format!("{api}/work-orders/{acme_order}/transitions"),
        &tom,
        &json!({"action": "start"}),
    );
    assert_eq!(code, 404);
    // The trail names the token holders, not what a body claims.
    let (_, trail, _) = get_as(
        &format!("{api}/work-orders/{globex_order}/events"),
        Some(&manager),
    );
    let actors: Vec<&str> = trail
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(actors, ["hub", "maria", "tom", "tom", "tom"]);
    let (code, body) = post_json_as(&mine, &manager, &json!({"action": "close", "actor": "someone"}));
    assert_eq!(code, 400, "`actor` is not a field any more: {body}");
}

/// Manual work orders: a customer asks for a visit to their own device
/// (priority from its criticality), a manager for any device and at any
/// priority; a second request for the same device and category is refused
/// naming the open one; a request is dispatched at once, and the
/// technician who declines it gives it back to dispatch.
#[test]
fn customers_and_managers_request_visits_and_technicians_accept_or_decline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let cfg = dir.path().join("hub.toml");
    let cfg_s = cfg.to_str().expect("utf-8");
    seed(&dir.path().join("hub.db"));
    let api = format!("{}/api/v1", hub.api);
    for args in [
        &["customer", "add", "--config", cfg_s, "--name", "acme"][..],
        &[
            "customer",
            "assign-device",
            "--config",
            cfg_s,
            "--customer",
            "acme",
            "--device",
            "d-acme",
        ][..],
        &[
            "device",
            "criticality",
            "--config",
            cfg_s,
            "--device",
            "d-acme",
            "high",
        ][..],
    ] {
        let (ok, _, err) = cli(args);
        assert!(ok, "{args:?}: {err}");
    }
    let (manager, acme, tom) = tokens(&cfg);
    let orders = format!("{api}/work-orders");

    // The customer's request: P3 made P2 by the device's high criticality.
    let request =
        json!({"device": "d-acme", "title": "Rattles at full speed", "description": "since Monday"});
    let (code, wo) = post_json_as(&orders, &acme, &request);
    assert_eq!(code, 201, "{wo}");
    assert_eq!(
        (
            wo["kind"].as_str(),
            wo["cause"].as_str(),
            wo["priority"].as_str(),
            wo["status"].as_str()
        ),
        (Some("manual"), Some("manual:repair"), Some("P2"), Some("open")),
        "no technician yet: it waits, open: {wo}"
    );
    assert_eq!(wo["explanation"]["requested_by"], "acme-portal", "{wo}");
    assert_eq!(wo["explanation"]["description"], "since Monday", "{wo}");
    let (code, again) = post_json_as(&orders, &acme, &request);
    assert_eq!(code, 409, "{again}");
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("work order {} is already open", wo["id"]))),
        "{again}"
    );
    // Not their device, a priority they may not set, a technician, bad fields.
    for (token, body, expected) in [
        (&acme, json!({"device": "d-globex", "title": "x"}), 404),
        (
            &acme,
            json!({"device": "d-acme", "title": "x", "category": "inspection", "priority": "P1"}),
            403,
        ),
        (&tom, json!({"device": "d-acme", "title": "x"}), 403),
        (&manager, json!({"device": "d-spare", "title": " "}), 400),
        (
            &manager,
            json!({"device": "d-spare", "title": "x", "category": "paint"}),
            400,
        ),
        (
            &manager,
            json!({"device": "d-spare", "title": "x", "priority": "urgent"}),
            400,
        ),
        (
            &manager,
            json!({"device": "d-spare", "title": "x", "when": "now"}),
            400,
        ),
    ] {
        let (code, answer) = post_json_as(&orders, token, &body);
        assert_eq!(code, expected, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }

    // A manager's request at P1, with a technician who can take it: dispatched at once.
    let added = ureq::put(&format!("{api}/technicians/tom"))
        .header("Authorization", &bearer(&manager))
        .send_json(json!({"skills": ["manual:*"], "latitude": 48.1, "longitude": 11.6, "capacity": 5, "shift": [0, 0]}));
    assert!(added.is_ok(), "{added:?}");
    let (code, urgent) = post_json_as(
        &orders,
        &manager,
        &json!({"device": "d-spare", "title": "Inspect after the flood", "category": "inspection", "priority": "P1"}),
    );
    assert_eq!(code, 201, "{urgent}");
    assert_eq!(
        (
            urgent["priority"].as_str(),
            urgent["status"].as_str(),
            urgent["assignee"].as_str()
        ),
        (Some("P1"), Some("assigned"), Some("tom")),
        "{urgent}"
    );
    // Tom declines it: open again, and not offered to him again.
    let transitions = format!("{orders}/{}/transitions", urgent["id"]);
    let (code, declined) = post_json_as(
        &transitions,
        &tom,
        &json!({"action": "decline", "note": "no boat"}),
    );
    assert_eq!(code, 200, "{declined}");
    assert_eq!(
        (
            declined["status"].as_str(),
            declined["assignee"].as_str(),
            declined["declined_by"].clone()
        ),
        (Some("open"), None, json!(["tom"])),
        "{declined}"
    );
    let (code, _, _) = get_as(&format!("{orders}/{}", urgent["id"]), Some(&tom));
    assert_eq!(code, 404, "no longer his to see");
    let (code, refused) = post_json_as(&transitions, &tom, &json!({"action": "accept"}));
    assert_eq!(code, 404, "{refused}");
    let (code, accepted) = post_json_as(&transitions, &manager, &json!({"action": "accept"}));
    assert_eq!(code, 409, "an open order has no one to accept it: {accepted}");
    assert!(
        accepted["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("cannot accept a work order that is open")),
        "{accepted}"
    );
}
