//! Store tests. Every test that touches a database runs twice, on SQLite
//! and on a real PostgreSQL (`name::sqlite`, `name::postgres`).

use super::batch::gaps;
use super::*;
use crate::testing::TestDb;
use std::collections::BTreeMap;

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        ts_ms: seq as i64 * 1000,
        values: BTreeMap::from([("a".to_string(), 1.0), ("b".to_string(), 2.0)]),
        text: BTreeMap::new(),
        restart: false,
    }
}

fn order(device: &str) -> NewWorkOrder {
    NewWorkOrder {
        device_id: device.into(),
        kind: "preventive",
        cause: "consumable:filter".into(),
        priority: "P2",
        title: "Replace filter".into(),
        opened_at_ms: 1,
        predicted_eol_ms: Some(2),
        lead_time_days: Some(14.0),
        explanation: serde_json::json!({"model": "m"}).to_string(),
    }
}

fn telemetry(device: &str, seqs: std::ops::Range<u64>) -> Telemetry {
    Telemetry {
        v: wearline_models::wire::VERSION,
        gateway: "gw".into(),
        device: device.into(),
        profile: "p".into(),
        samples: seqs.map(sample).collect(),
    }
}

crate::on_each_backend!(
    device_rows_count_gaps_across_batches,
    duplicates_are_dropped_across_reopen_and_one_order_stays_open,
    a_batch_reports_fresh_samples_per_message,
    text_fields_become_device_attributes,
    consumables_lives_and_alerts_round_trip,
    concurrent_writers_store_each_sample_once,
    null_and_present_floats_alternate_in_one_statement,
    a_device_lease_has_one_holder_until_it_expires,
    samples_since_reads_in_sequence_order,
);

async fn a_device_lease_has_one_holder_until_it_expires(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let (a, b) = (
        store.lease_devices("hub-a", &["d1", "d2"], 1_000, 30_000),
        store.lease_devices("hub-b", &["d2", "d3"], 1_000, 30_000),
    );
    let (a, b) = tokio::join!(a, b);
    let (mut a, mut b) = (a.expect("a"), b.expect("b"));
    a.sort();
    b.sort();
    assert!(
        a.contains(&"d1".to_string()) && b.contains(&"d3".to_string()),
        "{a:?} {b:?}"
    );
    assert_eq!(
        a.iter().chain(&b).filter(|d| *d == "d2").count(),
        1,
        "d2 has one holder: {a:?} {b:?}"
    );
    let d2_holder = if a.contains(&"d2".to_string()) {
        "hub-a"
    } else {
        "hub-b"
    };
    let other = if d2_holder == "hub-a" { "hub-b" } else { "hub-a" };
    assert_eq!(
        store
            .lease_devices(d2_holder, &["d2"], 20_000, 30_000)
            .await
            .expect("renew"),
        ["d2"],
        "the holder renews"
    );
    assert!(
        store
            .lease_devices(other, &["d2"], 40_000, 30_000)
            .await
            .expect("refused")
            .is_empty(),
        "not before the renewed lease expires (50 000)"
    );
    assert_eq!(
        store
            .lease_devices(other, &["d2"], 50_001, 30_000)
            .await
            .expect("take"),
        ["d2"],
        "taken once expired"
    );
}

async fn samples_since_reads_in_sequence_order(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    store
        .insert_samples("gw", "d1", "p", vec![sample(3), sample(1), sample(2)])
        .await
        .expect("insert");
    let seqs = |rows: Vec<(i64, i64, String)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.samples_since("d1", None, i64::MIN, 10).await.expect("all")),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(
            store
                .samples_since("d1", Some(1), i64::MIN, 10)
                .await
                .expect("after 1")
        ),
        [2, 3]
    );
    assert_eq!(
        seqs(store.samples_since("d1", None, 1000, 1).await.expect("after 1 s")),
        [2]
    );
    assert_eq!(store.last_seqs().await.expect("last"), [("d1".to_string(), 3)]);
}

async fn device_rows_count_gaps_across_batches(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let insert = |samples: Vec<Sample>| {
        let store = store.clone();
        async move {
            store
                .insert_samples("gw", "d1", "p", samples)
                .await
                .expect("insert")
        }
    };
    let gaps = || async { store.device("d1").await.expect("device").map(|d| d.gaps) };
    insert(vec![sample(1), sample(2)]).await;
    insert(vec![sample(5)]).await;
    assert_eq!(gaps().await, Some(2), "3 and 4 missing");
    insert(vec![sample(3)]).await;
    assert_eq!(gaps().await, Some(1), "3 arrived late");
    let mut after_restart = sample(2000);
    after_restart.restart = true;
    insert(vec![after_restart, sample(2001)]).await;
    assert_eq!(gaps().await, Some(1), "a restart's skip is not a gap");
    let d = store.device("d1").await.expect("device").expect("d1");
    assert_eq!((d.last_seq, d.last_seen_ms), (2001, 2_001_000));
    insert(vec![sample(4)]).await;
    let d = store.device("d1").await.expect("device").expect("d1");
    assert_eq!(
        (d.gaps, d.last_seq, d.last_seen_ms),
        (0, 2001, 2_001_000),
        "a late one moves nothing back"
    );
}

#[test]
fn gaps_count_missing_numbers_but_not_a_restart_skip() {
    assert_eq!(
        gaps(None, &mut [(5, false), (6, false)]),
        0,
        "a new device's first number is its baseline"
    );
    assert_eq!(
        gaps(Some(6), &mut [(7, false), (10, false)]),
        2,
        "8 and 9 missing"
    );
    assert_eq!(gaps(Some(10), &mut [(9, false)]), -1, "a late one fills a gap");
    assert_eq!(
        gaps(Some(10), &mut [(1030, true), (1031, false)]),
        0,
        "after a restart"
    );
    assert_eq!(
        gaps(Some(10), &mut [(13, false), (12, false)]),
        1,
        "out of order in one batch: only 11 missing"
    );
}

async fn duplicates_are_dropped_across_reopen_and_one_order_stays_open(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    assert_eq!(store.backend(), db.location.backend());
    let fresh = store
        .insert_samples("gw", "d1", "p", vec![sample(1), sample(2)])
        .await
        .expect("insert");
    assert_eq!(fresh.len(), 2);
    drop(store);

    let store = Store::open(&db.location)
        .await
        .expect("reopen (migrations run once)");
    let fresh = store
        .insert_samples("gw", "d1", "p", vec![sample(2), sample(3)])
        .await
        .expect("insert");
    assert_eq!(fresh.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3]);
    let d = store.device("d1").await.expect("device").expect("d1");
    assert_eq!((d.samples, d.points, d.last_seq, d.last_seen_ms), (3, 6, 3, 3000));
    assert_eq!(store.points().await.expect("points"), 6);
    let latest = store.latest_sample("d1").await.expect("latest").expect("one");
    assert_eq!(latest, (3000, serde_json::json!({"a": 1.0, "b": 2.0})));
    let after = store.samples_after("d1", 1000, 10).await.expect("after");
    assert_eq!(
        after.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(),
        vec![2000, 3000]
    );

    let first = store
        .open_work_order(&order("d1"))
        .await
        .expect("open")
        .expect("opened");
    assert_eq!(first.status, "open");
    assert_eq!(first.lead_time_days, Some(14.0));
    assert!(
        store.open_work_order(&order("d1")).await.expect("open").is_none(),
        "second open order refused"
    );
    let other = store
        .open_work_order(&order("d2"))
        .await
        .expect("open")
        .expect("other device");
    assert!(other.id > first.id);
    assert_eq!(store.work_orders().await.expect("list").len(), 2);
    assert_eq!(
        store
            .work_order(other.id)
            .await
            .expect("get")
            .map(|w| w.device_id),
        Some("d2".to_string())
    );
}

async fn a_batch_reports_fresh_samples_per_message(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    store.insert_batch(&[telemetry("a", 1..3)]).await.expect("first");
    // Message 0 repeats a stored sample; messages 1 and 2 carry the same new
    // one (only the first keeps it); message 3 is another device.
    let batch = [
        telemetry("a", 2..4),
        telemetry("a", 4..5),
        telemetry("a", 4..6),
        telemetry("b", 1..3),
    ];
    let fresh = store.insert_batch(&batch).await.expect("batch");
    assert_eq!(fresh, vec![vec![1], vec![0], vec![1], vec![0, 1]]);
    let a = store.device("a").await.expect("a").expect("a");
    assert_eq!((a.samples, a.last_seq, a.gaps), (5, 5, 0));
    let devices: Vec<String> = store
        .devices()
        .await
        .expect("devices")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(devices, ["a", "b"]);
}

async fn text_fields_become_device_attributes(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let mut s1 = sample(1);
    s1.text = BTreeMap::from([("serial".into(), "SN-1".into()), ("fw".into(), "1.0".into())]);
    let mut s2 = sample(2);
    s2.text = BTreeMap::from([("fw".into(), "1.1".into())]);
    store.insert_samples("gw", "d1", "p", vec![s1]).await.expect("1");
    store.insert_samples("gw", "d1", "p", vec![s2]).await.expect("2");
    let d = store.device("d1").await.expect("device").expect("d1");
    let attrs: serde_json::Value = serde_json::from_str(&d.attributes).expect("json");
    assert_eq!(attrs, serde_json::json!({"serial": "SN-1", "fw": "1.1"}));
}

fn consumable(device: &str) -> ConsumableRow {
    ConsumableRow {
        device_id: device.into(),
        name: "filter".into(),
        profile: "p".into(),
        lead_time_days: 14.0,
        life_start_ms: 10,
        as_of_ms: 20,
        samples: 3,
        used: 1.5,
        last_value: None,
        limit_kind: None,
        remaining_usage: None,
        usage_per_day: None,
        end_of_life_ms: None,
        eol_low_ms: None,
        eol_high_ms: None,
        coverage: None,
        model: None,
        explanation: "{}".into(),
        state: "{\"s\":1}".into(),
    }
}

/// The same statement run with a float NULL, then not, then NULL again
/// (sqlx's `Any` driver once made PostgreSQL refuse the second run).
async fn null_and_present_floats_alternate_in_one_statement(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    for i in 0..12 {
        let mut row = consumable("d1");
        row.last_value = (i % 2 == 1).then_some(f64::from(i));
        row.coverage = (i % 3 == 0).then_some(0.9);
        store.upsert_consumable(&row).await.expect("upsert");
        let got = &store.consumables("d1").await.expect("read")[0];
        assert_eq!(
            (got.last_value, got.coverage),
            (row.last_value, row.coverage),
            "round {i}"
        );
        let life = LifeRow {
            device_id: "d1".into(),
            name: "filter".into(),
            profile: "p".into(),
            started_ms: i64::from(i),
            ended_ms: 100,
            life: (i % 2 == 0).then_some(1.5),
            used: 1.0,
            body: "{}".into(),
        };
        assert!(store.insert_life(&life).await.expect("life"));
    }
}

async fn consumables_lives_and_alerts_round_trip(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let mut row = consumable("d1");
    store.upsert_consumable(&row).await.expect("insert");
    row.as_of_ms = 30;
    row.limit_kind = Some("wear".into());
    row.end_of_life_ms = Some(1_000);
    row.coverage = Some(0.9);
    row.last_value = Some(123.25);
    store
        .upsert_consumables(std::slice::from_ref(&row))
        .await
        .expect("update");
    let got = store.consumables("d1").await.expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].as_of_ms,
            got[0].limit_kind.as_deref(),
            got[0].end_of_life_ms,
            got[0].coverage,
            got[0].last_value
        ),
        (30, Some("wear"), Some(1_000), Some(0.9), Some(123.25))
    );
    assert_eq!(store.all_consumables().await.expect("all").len(), 1);

    let life = LifeRow {
        device_id: "d1".into(),
        name: "filter".into(),
        profile: "p".into(),
        started_ms: 10,
        ended_ms: 99,
        life: Some(89.0),
        used: 89.0,
        body: "{\"life\":89}".into(),
    };
    assert!(store.insert_life(&life).await.expect("life"));
    assert!(
        !store.insert_life(&life).await.expect("again"),
        "the same life is stored once"
    );
    assert_eq!(
        store.lives().await.expect("lives"),
        vec![("p".to_string(), "filter".to_string(), "{\"life\":89}".to_string())]
    );

    let alert = NewAlert {
        device_id: "d1".into(),
        gateway: "gw".into(),
        kind: "vibration".into(),
        source: "edge",
        severity: "critical".into(),
        opened_ms: 5,
        detail: serde_json::json!({"score": 9.5}),
    };
    let a = store.open_alert(&alert).await.expect("alert").expect("opened");
    assert!(
        store.open_alert(&alert).await.expect("alert").is_none(),
        "one open per kind"
    );
    assert_eq!(store.alerts(true).await.expect("open").len(), 1);
    assert!(store.clear_alert("d1", "vibration", 6).await.expect("clear"));
    assert!(
        !store.clear_alert("d1", "vibration", 7).await.expect("clear"),
        "nothing left to clear"
    );
    assert!(store.alerts(true).await.expect("open").is_empty());
    let all = store.alerts(false).await.expect("all");
    assert_eq!((all[0].id, all[0].cleared_ms), (a.id, Some(6)));
    store
        .open_alert(&alert)
        .await
        .expect("alert")
        .expect("a new one once cleared");
    store.ping().await.expect("ping");
}

/// Two writers (as two hubs on one database) insert overlapping batches at
/// once: every sample is stored once and reported fresh to exactly one.
async fn concurrent_writers_store_each_sample_once(db: TestDb) {
    let a = Store::open(&db.location).await.expect("open a");
    let b = Store::open(&db.location).await.expect("open b");
    let write = |store: Store| async move {
        let mut fresh = 0;
        for round in 0..20u64 {
            let batch: Vec<Telemetry> = (0..10)
                .map(|d| telemetry(&format!("dev{d}"), round * 5..round * 5 + 10))
                .collect();
            fresh += store
                .insert_batch(&batch)
                .await
                .expect("batch")
                .iter()
                .map(Vec::len)
                .sum::<usize>();
        }
        fresh
    };
    let (fa, fb) = tokio::join!(tokio::spawn(write(a.clone())), tokio::spawn(write(b)));
    let total = fa.expect("a") + fb.expect("b");
    // Each device: seqs 0..105.
    assert_eq!(total, 10 * 105);
    let devices = a.devices().await.expect("devices");
    assert_eq!(devices.len(), 10);
    assert!(
        devices.iter().all(|d| d.samples == 105 && d.last_seq == 104),
        "{devices:?}"
    );
}

mod work_orders {
    use super::*;
    use crate::store::{Change, ChangeError, WorkOrderFilter};
    use wearline_models::workorder::{Action, Breach, Status};

    crate::on_each_backend!(
        an_order_goes_through_its_lifecycle_with_a_trail,
        refused_changes_say_why_and_change_nothing,
        racing_hubs_open_one_order_and_apply_one_change,
        missed_targets_escalate_once,
        orders_are_listed_by_filter_and_page,
        report_facts_count_reopens_and_know_each_model,
    );

    async fn report_facts_count_reopens_and_know_each_model(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        store.insert_batch(&[telemetry("a", 1..3)]).await.expect("device");
        let wo = store
            .open_work_order(&order("a"))
            .await
            .expect("open")
            .expect("opened");
        store
            .open_work_order(&order("ghost"))
            .await
            .expect("open")
            .expect("no device row");
        for action in [
            Action::Assign,
            Action::Start,
            Action::Resolve,
            Action::Reopen,
            Action::Assign,
        ] {
            store
                .change_work_order(wo.id, &change(action, 5))
                .await
                .expect("change");
        }
        let (orders, devices) = store.report_facts().await.expect("facts");
        let summary: Vec<(&str, u32, Option<i64>)> = orders
            .iter()
            .map(|o| (o.model.as_str(), o.reopens, o.started_ms))
            .collect();
        assert_eq!(summary, [("p", 1, Some(5)), ("", 0, None)]);
        assert_eq!(devices.len(), 1);
        assert_eq!(
            (devices[0].model.as_str(), devices[0].first_ms, devices[0].last_ms),
            ("p", 1000, 2000)
        );
    }

    static PARTS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| vec!["HEPA filter F7".to_string()]);

    fn change(action: Action, at_ms: i64) -> Change<'static> {
        Change {
            action,
            actor: "manager-1",
            assignee: (action == Action::Assign).then_some("tech-7"),
            note: Some("on it"),
            parts: if action == Action::Resolve { &PARTS } else { &[] },
            at_ms,
            visit_ms: None,
        }
    }

    async fn an_order_goes_through_its_lifecycle_with_a_trail(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        let wo = store
            .open_work_order(&order("d1"))
            .await
            .expect("open")
            .expect("opened");
        assert_eq!(
            (wo.respond_by_ms, wo.resolve_by_ms),
            (1 + 24 * 3_600_000, 1 + 72 * 3_600_000),
            "P2 targets"
        );
        let steps = [
            (Action::Assign, "assigned"),
            (Action::Start, "in_progress"),
            (Action::Resolve, "resolved"),
            (Action::Close, "closed"),
        ];
        for (i, (action, status)) in steps.into_iter().enumerate() {
            let row = store
                .change_work_order(wo.id, &change(action, 10 + i as i64))
                .await
                .expect("change");
            assert_eq!(row.status, status);
        }
        let done = store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(done.assignee.as_deref(), Some("tech-7"));
        assert_eq!(
            (done.started_ms, done.resolved_ms, done.closed_ms, done.updated_ms),
            (Some(11), Some(12), Some(13), 13)
        );
        let trail = store.work_order_events(wo.id).await.expect("events");
        let actions: Vec<(&str, &str, Option<&str>, &str)> = trail
            .iter()
            .map(|e| {
                (
                    e.actor.as_str(),
                    e.action.as_str(),
                    e.from_status.as_deref(),
                    e.to_status.as_str(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("hub", "opened", None, "open"),
                ("manager-1", "assign", Some("open"), "assigned"),
                ("manager-1", "start", Some("assigned"), "in_progress"),
                ("manager-1", "resolve", Some("in_progress"), "resolved"),
                ("manager-1", "close", Some("resolved"), "closed"),
            ]
        );
        let detail: serde_json::Value = serde_json::from_str(&trail[1].detail).expect("json");
        assert_eq!(detail, serde_json::json!({"assignee": "tech-7", "note": "on it"}));
        // Closed: a new order for the same cause may open, and the old one
        // cannot be reopened while it is active.
        let second = store
            .open_work_order(&order("d1"))
            .await
            .expect("open")
            .expect("a new one");
        match store.change_work_order(wo.id, &change(Action::Reopen, 20)).await {
            Err(ChangeError::AnotherActive { id, other }) => assert_eq!((id, other), (wo.id, second.id)),
            other => panic!("{other:?}"),
        }
        store
            .change_work_order(second.id, &change(Action::Cancel, 21))
            .await
            .expect("cancel");
        let reopened = store
            .change_work_order(wo.id, &change(Action::Reopen, 22))
            .await
            .expect("reopen");
        assert_eq!(reopened.status, "reopened");
    }

    async fn refused_changes_say_why_and_change_nothing(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        let wo = store
            .open_work_order(&order("d1"))
            .await
            .expect("open")
            .expect("opened");
        let err = store
            .change_work_order(wo.id, &change(Action::Resolve, 5))
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "cannot resolve a work order that is open: allowed: assign, cancel"
        );
        let mut no_one = change(Action::Assign, 5);
        no_one.assignee = None;
        assert!(matches!(
            store.change_work_order(wo.id, &no_one).await,
            Err(ChangeError::NoAssignee)
        ));
        assert!(matches!(
            store
                .change_work_order(wo.id + 100, &change(Action::Assign, 5))
                .await,
            Err(ChangeError::NotFound(_))
        ));
        assert_eq!(
            store.work_order(wo.id).await.expect("get").expect("row").status,
            "open"
        );
        assert_eq!(
            store.work_order_events(wo.id).await.expect("events").len(),
            1,
            "only `opened`"
        );
    }

    /// Two hubs (two stores on one database) open the same order at once,
    /// many times over: one order each time; and two managers starting the
    /// same order: one succeeds.
    async fn racing_hubs_open_one_order_and_apply_one_change(db: TestDb) {
        let (a, b) = (
            Store::open(&db.location).await.expect("a"),
            Store::open(&db.location).await.expect("b"),
        );
        for k in 0..20 {
            let device = format!("race-{k}");
            let wo = order(&device);
            let (x, y) = tokio::join!(a.open_work_order(&wo), b.open_work_order(&wo));
            let opened = [x.expect("a"), y.expect("b")].into_iter().flatten().count();
            assert_eq!(opened, 1, "{device}");
        }
        let all = a
            .list_work_orders(&WorkOrderFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(all.len(), 20);
        let id = all[0].id;
        a.change_work_order(id, &change(Action::Assign, 1))
            .await
            .expect("assign");
        let start = change(Action::Start, 2);
        let (x, y) = tokio::join!(a.change_work_order(id, &start), b.change_work_order(id, &start));
        assert_eq!(
            [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{x:?} {y:?}"
        );
        assert!(
            matches!(
                x.err().or(y.err()),
                Some(ChangeError::Conflict(_) | ChangeError::Refused(_))
            ),
            "the loser is told"
        );
        let starts = a
            .work_order_events(id)
            .await
            .expect("events")
            .iter()
            .filter(|e| e.action == "start")
            .count();
        assert_eq!(starts, 1);
    }

    async fn missed_targets_escalate_once(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        let wo = store
            .open_work_order(&order("d1"))
            .await
            .expect("open")
            .expect("opened");
        assert!(
            store
                .overdue_work_orders(wo.respond_by_ms)
                .await
                .expect("none")
                .is_empty()
        );
        let late = wo.respond_by_ms + 1;
        let overdue = store.overdue_work_orders(late).await.expect("overdue");
        assert_eq!(
            overdue.iter().map(|(w, b)| (w.id, *b)).collect::<Vec<_>>(),
            [(wo.id, Breach::Response)]
        );
        let up = store
            .escalate_work_order(wo.id, Breach::Response, late)
            .await
            .expect("escalate")
            .expect("raised");
        assert_eq!((up.priority.as_str(), up.escalated.as_str()), ("P1", "response"));
        assert!(
            store
                .escalate_work_order(wo.id, Breach::Response, late)
                .await
                .expect("again")
                .is_none(),
            "once"
        );
        assert!(store.overdue_work_orders(late).await.expect("none").is_empty());
        let later = wo.resolve_by_ms + 1;
        let overdue = store.overdue_work_orders(later).await.expect("overdue");
        assert_eq!(
            overdue.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
            [Breach::Resolution]
        );
        store
            .escalate_work_order(wo.id, Breach::Resolution, later)
            .await
            .expect("escalate")
            .expect("raised");
        let trail = store.work_order_events(wo.id).await.expect("events");
        assert_eq!(trail.iter().filter(|e| e.action == "escalated").count(), 2);
        let row = store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(
            (row.priority.as_str(), row.escalated.as_str()),
            ("P1", "response,resolution")
        );
        assert_eq!(Status::parse(&row.status), Some(Status::Open));
    }

    async fn orders_are_listed_by_filter_and_page(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        let mut ids = Vec::new();
        for d in ["a", "b", "c", "d"] {
            ids.push(
                store
                    .open_work_order(&order(d))
                    .await
                    .expect("open")
                    .expect("opened")
                    .id,
            );
        }
        store
            .change_work_order(ids[1], &change(Action::Cancel, 3))
            .await
            .expect("cancel");
        let page = |after: Option<i64>, status: Option<Status>| {
            let store = store.clone();
            async move {
                store
                    .list_work_orders(&WorkOrderFilter {
                        status,
                        after_id: after,
                        limit: 2,
                        ..Default::default()
                    })
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|w| w.device_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(page(None, None).await, ["a", "b"]);
        assert_eq!(page(Some(ids[1]), None).await, ["c", "d"]);
        assert_eq!(page(None, Some(Status::Open)).await, ["a", "c"]);
        assert_eq!(page(None, Some(Status::Cancelled)).await, ["b"]);
        let by_device = store
            .list_work_orders(&WorkOrderFilter {
                device: Some("d".into()),
                kind: Some("preventive".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(by_device.len(), 1);
    }
}

/// Under writes with no pause between them the SQLite WAL is copied back
/// and started again from its beginning (the checkpoint sequence number in
/// its header counts the restarts), and stays far below the size at which
/// writers would be stopped to empty it.
#[tokio::test]
async fn the_wal_starts_again_under_continuous_writes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = Store::open(&db.location).await.expect("open");
    let Location::Sqlite(path) = &db.location else {
        panic!("not SQLite")
    };
    let wal = path.with_extension("db-wal");
    let restarts = || {
        let header = std::fs::read(&wal).ok()?;
        Some(u32::from_be_bytes(header.get(12..16)?.try_into().ok()?))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut seq, mut first, mut largest) = (0u64, None, 0u64);
    loop {
        // 200 devices a batch: about one page each, as under a fleet's load.
        let batch: Vec<Telemetry> = (0..200)
            .map(|d| telemetry(&format!("dev-{d}"), seq..seq + 1))
            .collect();
        store.insert_batch(&batch).await.expect("insert");
        seq += 1;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        if let Some(n) = restarts() {
            let base = *first.get_or_insert(n);
            if n >= base + 2 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL never started again: {largest} bytes after {seq} batches"
        );
    }
    assert!(
        largest < (WAL_LIMIT_FRAMES as u64) * 4096 / 4,
        "the WAL grew to {largest} bytes"
    );
}

/// A database made before migration 0017 (samples clustered on their key)
/// keeps every sample through the move to arrival order, and still drops a
/// sample it already holds.
#[tokio::test]
async fn samples_stored_before_arrival_order_survive_it_and_still_deduplicate() {
    let db = TestDb::new(Backend::Sqlite).await;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&db.location.url().expect("url"))
        .await
        .expect("connect");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(16, &pool)
        .await
        .expect("migrate to 0016");
    let schema = || async {
        let (sql,): (String,) = sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'samples'")
            .fetch_one(&pool)
            .await
            .expect("schema");
        sql
    };
    assert!(schema().await.contains("WITHOUT ROWID"), "{}", schema().await);
    pool.execute(
        "INSERT INTO samples (device_id, seq, ts_ms, body) VALUES \
         ('d1', 2, 2000, '{\"a\":1.0,\"b\":2.0}'), ('d1', 1, 1000, '{\"a\":1.0,\"b\":2.0}'), \
         ('d2', 7, 7000, '{\"a\":3.0}')",
    )
    .await
    .expect("old rows");

    let store = Store::open(&db.location).await.expect("open: 0017 runs");
    assert!(!schema().await.contains("WITHOUT ROWID"), "{}", schema().await);
    let seqs = |rows: Vec<(i64, i64, String)>| rows.into_iter().map(|r| (r.0, r.1)).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.samples_since("d1", None, i64::MIN, 10).await.expect("d1")),
        [(1, 1000), (2, 2000)]
    );
    assert_eq!(
        seqs(store.samples_since("d2", None, i64::MIN, 10).await.expect("d2")),
        [(7, 7000)]
    );
    let fresh = store
        .insert_samples("gw", "d1", "p", vec![sample(2), sample(3)])
        .await
        .expect("insert");
    assert_eq!(
        fresh.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [3],
        "2 was already stored"
    );
    assert_eq!(
        seqs(store.samples_since("d1", None, i64::MIN, 10).await.expect("d1")),
        [(1, 1000), (2, 2000), (3, 3000)]
    );
}
