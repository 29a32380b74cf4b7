//! Store tests of API access (customers, ownership, tokens, scoped lists),
//! on SQLite and on a real PostgreSQL.

use super::access::{AccessError, NewCustomer, NewToken};
use super::*;
use crate::policy::{Access, Caller, Scope};
use crate::testing::TestDb;
use std::collections::BTreeMap;
use wearline_models::workorder::{Action, Criticality};

crate::on_each_backend!(
    customers_own_devices_and_criticality_is_kept,
    tokens_resolve_to_callers_until_revoked,
    the_bootstrap_token_is_recorded_once_and_replaced_by_a_new_one,
    lists_are_cut_to_the_callers_scope,
);

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        ts_ms: seq as i64 * 1000,
        values: BTreeMap::from([("a".to_string(), 1.0)]),
        text: BTreeMap::new(),
        restart: false,
    }
}

async fn device(store: &Store, id: &str) {
    store
        .insert_samples("gw", id, "p", vec![sample(1)])
        .await
        .expect("insert");
}

fn customer(name: &str) -> NewCustomer<'_> {
    NewCustomer {
        name,
        contact: Some("Ada"),
        email: Some("ada@example.com"),
        phone: None,
        created_ms: 5,
    }
}

async fn customers_own_devices_and_criticality_is_kept(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    device(&store, "d1").await;
    let acme = store.add_customer(&customer("acme")).await.expect("add");
    assert_eq!(
        (acme.name.as_str(), acme.email.as_deref(), acme.created_ms),
        ("acme", Some("ada@example.com"), 5)
    );
    assert!(matches!(
        store.add_customer(&customer("acme")).await,
        Err(AccessError::CustomerExists(n)) if n == "acme"
    ));
    let d = store.device("d1").await.expect("read").expect("d1");
    assert_eq!((d.customer_id, d.criticality.as_str()), (None, "normal"));

    store.set_device_owner("d1", Some("acme")).await.expect("own");
    store
        .set_device_criticality("d1", Criticality::High)
        .await
        .expect("criticality");
    // Telemetry after that changes neither.
    store
        .insert_samples("gw", "d1", "p", vec![sample(2)])
        .await
        .expect("insert");
    let d = store.device("d1").await.expect("read").expect("d1");
    assert_eq!((d.customer_id, d.criticality.as_str()), (Some(acme.id), "high"));

    assert!(matches!(
        store.set_device_owner("nope", Some("acme")).await,
        Err(AccessError::NoDevice(n)) if n == "nope"
    ));
    assert!(matches!(
        store.set_device_owner("d1", Some("globex")).await,
        Err(AccessError::NoCustomer(n)) if n == "globex"
    ));
    store.set_device_owner("d1", None).await.expect("disown");
    let d = store.device("d1").await.expect("read").expect("d1");
    assert_eq!(d.customer_id, None);
    assert_eq!(store.customers().await.expect("list").len(), 1);
}

async fn tokens_resolve_to_callers_until_revoked(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let acme = store.add_customer(&customer("acme")).await.expect("add");
    let kinds = [
        ("maria", Access::Manager, "h-maria"),
        ("tom-phone", Access::Technician("tom".into()), "h-tom"),
        ("acme-portal", Access::Customer(acme.id), "h-acme"),
        ("root", Access::Admin, "h-root"),
    ];
    for (name, access, hash) in &kinds {
        let row = store
            .create_token(&NewToken {
                name,
                access,
                hash,
                created_ms: 10,
            })
            .await
            .expect("create");
        assert_eq!((row.name.as_str(), row.revoked_ms), (*name, None));
        let caller = store.caller(hash).await.expect("caller");
        assert_eq!(
            caller,
            Some(Caller {
                name: name.to_string(),
                access: access.clone()
            })
        );
    }
    let again = store
        .create_token(&NewToken {
            name: "maria",
            access: &Access::Manager,
            hash: "h-other",
            created_ms: 11,
        })
        .await;
    assert!(
        matches!(&again, Err(AccessError::TokenExists(n)) if n == "maria"),
        "{again:?}"
    );
    assert_eq!(store.caller("h-unknown").await.expect("caller"), None);

    assert!(store.revoke_token("maria", 20).await.expect("revoke"));
    assert!(
        !store.revoke_token("maria", 21).await.expect("again"),
        "nothing left to revoke"
    );
    assert_eq!(store.caller("h-maria").await.expect("caller"), None);
    // The name is free again; the old hash stays refused.
    store
        .create_token(&NewToken {
            name: "maria",
            access: &Access::Manager,
            hash: "h-maria-2",
            created_ms: 22,
        })
        .await
        .expect("a new token for maria");
    assert_eq!(store.caller("h-maria").await.expect("caller"), None);
    let tokens = store.tokens().await.expect("tokens");
    assert_eq!(tokens.len(), 5);
    assert_eq!(tokens[0].revoked_ms, Some(20));
}

async fn the_bootstrap_token_is_recorded_once_and_replaced_by_a_new_one(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    assert!(
        store
            .ensure_admin_token("bootstrap", "h1", 1)
            .await
            .expect("first")
    );
    assert!(
        !store
            .ensure_admin_token("bootstrap", "h1", 2)
            .await
            .expect("again")
    );
    assert_eq!(
        store.caller("h1").await.expect("caller").map(|c| c.access),
        Some(Access::Admin)
    );
    // Revoked, it stays revoked at the next start.
    assert!(store.revoke_token("bootstrap", 3).await.expect("revoke"));
    assert!(
        !store
            .ensure_admin_token("bootstrap", "h1", 4)
            .await
            .expect("restart")
    );
    assert_eq!(store.caller("h1").await.expect("caller"), None);
    // A new token in the file replaces an active old one.
    assert!(store.ensure_admin_token("bootstrap", "h2", 5).await.expect("new"));
    assert!(
        store
            .ensure_admin_token("bootstrap", "h3", 6)
            .await
            .expect("newer")
    );
    assert_eq!(store.caller("h2").await.expect("caller"), None);
    assert!(store.caller("h3").await.expect("caller").is_some());
}

async fn lists_are_cut_to_the_callers_scope(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    for d in ["d1", "d2", "d3"] {
        device(&store, d).await;
    }
    let acme = store.add_customer(&customer("acme")).await.expect("add");
    store.set_device_owner("d1", Some("acme")).await.expect("own");
    store.set_device_owner("d2", Some("acme")).await.expect("own");
    let mut ids = Vec::new();
    for d in ["d1", "d2", "d3"] {
        let wo = NewWorkOrder {
            device_id: d.into(),
            kind: "preventive",
            cause: "consumable:filter".into(),
            priority: "P3",
            title: "Replace filter".into(),
            opened_at_ms: 1,
            predicted_eol_ms: None,
            lead_time_days: None,
            explanation: serde_json::json!({}).to_string(),
        };
        ids.push(store.open_work_order(&wo).await.expect("open").expect("new").id);
    }
    for (id, tech) in [(ids[1], "tom"), (ids[2], "tom")] {
        store
            .change_work_order(
                id,
                &Change {
                    action: Action::Assign,
                    actor: "maria",
                    assignee: Some(tech),
                    note: None,
                    parts: &[],
                    at_ms: 2,
                    visit_ms: None,
                },
            )
            .await
            .expect("assign");
    }
    for d in ["d1", "d3"] {
        store
            .open_alert(&NewAlert {
                device_id: d.into(),
                gateway: "gw".into(),
                kind: "k".into(),
                source: "edge",
                severity: "warning".into(),
                opened_ms: 3,
                detail: serde_json::json!({}),
            })
            .await
            .expect("alert");
    }
    let device_ids = |rows: Vec<DeviceRow>| rows.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let order_devices = |scope: Scope| {
        let store = store.clone();
        async move {
            store
                .list_work_orders(&WorkOrderFilter {
                    limit: 10,
                    scope,
                    ..Default::default()
                })
                .await
                .expect("orders")
                .into_iter()
                .map(|w| w.device_id)
                .collect::<Vec<_>>()
        }
    };
    let alert_devices = |scope: Scope| {
        let store = store.clone();
        async move {
            let mut v: Vec<String> = store
                .alerts_in(false, &scope)
                .await
                .expect("alerts")
                .into_iter()
                .map(|a| a.device_id)
                .collect();
            v.sort();
            v
        }
    };
    let acme_scope = Scope::Customer(acme.id);
    let tom = Scope::Assignee("tom".into());
    assert_eq!(
        device_ids(store.devices_in(&Scope::All).await.expect("all")),
        ["d1", "d2", "d3"]
    );
    assert_eq!(
        device_ids(store.devices_in(&acme_scope).await.expect("acme")),
        ["d1", "d2"]
    );
    assert_eq!(
        device_ids(store.devices_in(&tom).await.expect("tom")),
        ["d2", "d3"]
    );
    assert!(
        store
            .devices_in(&Scope::Customer(999))
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(order_devices(Scope::All).await, ["d1", "d2", "d3"]);
    assert_eq!(order_devices(acme_scope.clone()).await, ["d1", "d2"]);
    assert_eq!(order_devices(tom.clone()).await, ["d2", "d3"]);
    assert!(order_devices(Scope::Assignee("tina".into())).await.is_empty());
    assert_eq!(alert_devices(acme_scope.clone()).await, ["d1"]);
    assert_eq!(alert_devices(tom.clone()).await, ["d3"]);
    assert_eq!(alert_devices(Scope::All).await, ["d1", "d3"]);
    // With other filters too (parameters numbered after them).
    let filtered = store
        .list_work_orders(&WorkOrderFilter {
            device: Some("d2".into()),
            kind: Some("preventive".into()),
            after_id: Some(0),
            limit: 10,
            scope: acme_scope,
            ..Default::default()
        })
        .await
        .expect("filtered");
    assert_eq!(filtered.len(), 1);
    assert_eq!(store.device_assignees("d2").await.expect("assignees"), ["tom"]);
    assert!(store.device_assignees("d1").await.expect("none").is_empty());
}
