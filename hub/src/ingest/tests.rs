//! Ingest against a real store, on SQLite and on PostgreSQL: replacements
//! end lives, ended lives teach the fleet prior, and a restart resumes each
//! life where it was.

use super::*;
use crate::store::Store;
use crate::testing::TestDb;
use wearline_models::wire::{Sample, Telemetry, VERSION};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_750_000_000_000;

const PROFILE: &str = r#"
name = "purifier"
[[metrics]]
name = "dp"
[[metrics]]
name = "dust"
[[consumables]]
name = "filter"
signal = "dp"
threshold = 250.0
lead_time_days = 1
covariates = ["dust"]
"#;

fn ingest(store: Store) -> Ingest {
    let profile = Profile::parse("purifier.toml", PROFILE).expect("profile");
    Ingest::new(
        store,
        Arc::new(BTreeMap::from([("purifier".to_string(), profile)])),
        Arc::new(IngestStats::default()),
        broadcast::channel(16).0,
        tokio::sync::watch::channel(false).0,
    )
}

/// Life in hours of a filter at this dust load.
fn life_h(dust: f64) -> f64 {
    1000.0 / dust
}

/// Hour `h` of a filter's life: the pressure rises as the square of the life used.
fn sample(seq: u64, h: i64, dust: f64) -> Sample {
    let x = h as f64 / life_h(dust);
    Sample {
        seq,
        ts_ms: T0 + h * HOUR,
        values: BTreeMap::from([("dp".into(), 80.0 + 170.0 * x * x), ("dust".into(), dust)]),
        text: BTreeMap::new(),
        restart: false,
    }
}

async fn send(i: &mut Ingest, device: &str, samples: Vec<Sample>) {
    let t = Telemetry {
        v: VERSION,
        gateway: "gw".into(),
        device: device.into(),
        profile: "purifier".into(),
        samples,
    };
    let payload = serde_json::to_vec(&t).expect("encode");
    i.handle(&format!("wearline/v1/gw/telemetry/{device}"), &payload)
        .await;
}

crate::on_each_backend!(
    replacements_teach_the_fleet_and_a_restart_resumes_each_life,
    edge_alerts_last_wills_and_silences_open_and_clear_alerts,
    unknown_devices_are_refused_when_the_config_says_so,
);

async fn replacements_teach_the_fleet_and_a_restart_resumes_each_life(db: TestDb) {
    let mut hub = ingest(Store::open(&db.location).await.expect("store"));

    // Six devices each wear a filter out (hourly, in batches of 10) and get a new one.
    for k in 0..6u32 {
        let device = format!("old-{k}");
        let dust = 4.0 + 2.0 * f64::from(k);
        let end = life_h(dust).ceil() as i64 + 2;
        let mut seq = 0;
        let mut batch = Vec::new();
        for h in 0..=end {
            seq += 1;
            batch.push(sample(seq, h, dust));
            if batch.len() == 10 {
                send(&mut hub, &device, std::mem::take(&mut batch)).await;
            }
        }
        seq += 1;
        let mut fresh = sample(seq, end + 1, dust);
        fresh.values.insert("dp".into(), 80.0);
        batch.push(fresh);
        send(&mut hub, &device, batch).await;
    }
    let stats = hub.stats.snapshot();
    assert_eq!((stats.malformed.json, stats.store_errors), (0, 0));
    assert_eq!(stats.lives_ended, 6);
    assert_eq!(hub.store.lives().await.expect("lives").len(), 6);
    let known = hub.predictor.knowledge("purifier", "filter").expect("learned");
    assert_eq!(known.lives, 6);
    assert!(known.prior.is_some(), "a prior from six completed lives");
    // Each worn-out filter opened exactly one preventive order, however many
    // predictions came within the lead time.
    let orders = hub.store.work_orders().await.expect("orders");
    assert_eq!(orders.len(), 6, "{orders:?}");
    assert_eq!(stats.work_orders_opened, 6);

    // A new filter with two readings: no trend yet, the fleet prior speaks.
    let dust = 7.0;
    send(&mut hub, "new-1", vec![sample(1, 0, dust), sample(2, 1, dust)]).await;
    let row = &hub.store.consumables("new-1").await.expect("rows")[0];
    assert!(
        row.model
            .as_deref()
            .is_some_and(|m| m.contains("fleet prior (6 completed lives)")),
        "{row:?}"
    );
    let total = row.used + row.remaining_usage.expect("remaining");
    assert!(
        (total - life_h(dust)).abs() < 0.15 * life_h(dust),
        "{total} vs {}",
        life_h(dust)
    );
    assert_eq!(row.samples, 2);
    assert_eq!(row.limit_kind.as_deref(), Some("wear"));
    let why: serde_json::Value = serde_json::from_str(&row.explanation).expect("json");
    assert_eq!(why["prior_lives"], 6);
    assert_eq!(why["covariates"]["dust"], 7.0);

    // A restart: the life goes on from its saved state, and nothing is learned twice.
    drop(hub);
    let mut hub = ingest(Store::open(&db.location).await.expect("store"));
    hub.replay().await.expect("replay");
    assert_eq!(
        hub.predictor.knowledge("purifier", "filter").map(|k| k.lives),
        Some(6)
    );
    send(&mut hub, "new-1", vec![sample(3, 2, dust)]).await;
    let row = &hub.store.consumables("new-1").await.expect("rows")[0];
    assert_eq!(row.samples, 3, "the life continued: {row:?}");
    assert_eq!(row.life_start_ms, T0);
    assert_eq!(hub.stats.snapshot().lives_ended, 0);
    assert_eq!(hub.store.lives().await.expect("lives").len(), 6);
}

async fn edge_alerts_last_wills_and_silences_open_and_clear_alerts(db: TestDb) {
    use wearline_models::wire::{Alert, AlertState, Connectivity, GatewayStatus, Severity};
    let mut hub = ingest(Store::open(&db.location).await.expect("store"));
    let alert = |state| Alert {
        v: VERSION,
        gateway: "gw".into(),
        device: "d1".into(),
        ts_ms: T0,
        kind: "vibration_anomaly".into(),
        metric: "vibration_rms".into(),
        severity: Severity::Critical,
        score: 0.9,
        baseline: 1.0,
        value: 3.0,
        state,
    };
    let topic = "wearline/v1/gw/alerts/d1";
    for state in [AlertState::Open, AlertState::Open] {
        hub.handle(topic, &serde_json::to_vec(&alert(state)).expect("encode"))
            .await;
    }
    let open = hub.store.alerts(true).await.expect("alerts");
    assert_eq!(open.len(), 1, "opened once: {open:?}");
    assert_eq!(
        (open[0].source.as_str(), open[0].severity.as_str()),
        ("edge", "critical")
    );
    hub.handle(
        topic,
        &serde_json::to_vec(&alert(AlertState::Cleared)).expect("encode"),
    )
    .await;
    assert!(hub.store.alerts(true).await.expect("alerts").is_empty());

    // A gateway's last will opens `gateway_offline`; coming back clears it.
    let status = |state| GatewayStatus {
        v: VERSION,
        gateway: "gw".into(),
        state,
        since_ms: T0,
        agent_version: "0.1.0".into(),
    };
    hub.handle(
        "wearline/v1/gw/status",
        &serde_json::to_vec(&status(Connectivity::Offline)).expect("encode"),
    )
    .await;
    let open = hub.store.alerts(true).await.expect("alerts");
    assert_eq!(
        (open.len(), open[0].kind.as_str(), open[0].device_id.as_str()),
        (1, GATEWAY_OFFLINE, "gw")
    );
    hub.handle(
        "wearline/v1/gw/status",
        &serde_json::to_vec(&status(Connectivity::Online)).expect("encode"),
    )
    .await;
    assert!(hub.store.alerts(true).await.expect("alerts").is_empty());

    // A device silent for `offline_after` is offline, once; its next message clears it.
    hub.offline_after = Duration::from_secs(60);
    let start = Instant::now();
    send(&mut hub, "d2", vec![sample(1, 0, 5.0)]).await;
    hub.check_silence(start + Duration::from_secs(30)).await;
    assert!(
        hub.store.alerts(true).await.expect("alerts").is_empty(),
        "30 s is not offline"
    );
    hub.check_silence(start + Duration::from_secs(61)).await;
    hub.check_silence(start + Duration::from_secs(120)).await;
    let open = hub.store.alerts(true).await.expect("alerts");
    let mut offline: Vec<&str> = open
        .iter()
        .filter(|a| a.kind == DEVICE_OFFLINE)
        .map(|a| a.device_id.as_str())
        .collect();
    offline.sort_unstable();
    // d1 was last heard through its alerts, as long ago: offline too, each once.
    assert_eq!(offline, ["d1", "d2"], "{open:?}");
    send(&mut hub, "d2", vec![sample(2, 1, 5.0)]).await;
    let open = hub.store.alerts(true).await.expect("alerts");
    assert!(!open.iter().any(|a| a.device_id == "d2"), "back online: {open:?}");
    assert_eq!(hub.store.alerts(false).await.expect("alerts").len(), 4);
}

async fn unknown_devices_are_refused_when_the_config_says_so(db: TestDb) {
    let mut hub = ingest(Store::open(&db.location).await.expect("store"));
    hub.known_devices = Some(std::collections::HashSet::from(["known".to_string()]));
    send(&mut hub, "known", vec![sample(1, 0, 5.0)]).await;
    send(&mut hub, "stranger", vec![sample(1, 0, 5.0), sample(2, 1, 5.0)]).await;
    let ids: Vec<String> = hub
        .store
        .devices()
        .await
        .expect("devices")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["known"]);
    let stats = hub.stats.snapshot();
    assert_eq!((stats.unknown_devices, stats.samples), (1, 1));
}

mod orders {
    use super::*;
    use crate::store::{Change, WorkOrderRow};
    use wearline_models::wire::{Alert, AlertState, Connectivity, GatewayStatus, Severity};
    use wearline_models::workorder::Action;

    crate::on_each_backend!(
        a_critical_alert_opens_a_corrective_order_verified_when_it_clears,
        a_replacement_closes_the_resolved_order_and_a_worn_part_reopens_it,
        a_part_fitted_during_the_visit_closes_the_order_once_resolved,
        silent_devices_and_gateways_open_one_order_per_fault,
    );

    async fn work(hub: &mut Ingest, id: i64, actions: &[Action]) {
        for &action in actions {
            let change = Change {
                action,
                actor: "maria",
                assignee: Some("tech-7"),
                note: None,
                parts: &[],
                at_ms: 1,
                visit_ms: None,
            };
            hub.store.change_work_order(id, &change).await.expect("change");
        }
        hub.orders.sync(true).await;
    }

    async fn orders(hub: &Ingest) -> Vec<WorkOrderRow> {
        hub.store.work_orders().await.expect("orders")
    }

    async fn last_event(hub: &Ingest, id: i64) -> (String, String, String) {
        let e = hub
            .store
            .work_order_events(id)
            .await
            .expect("events")
            .pop()
            .expect("one");
        (e.actor, e.action, e.detail)
    }

    fn alert(kind: &str, severity: Severity, state: AlertState) -> Vec<u8> {
        serde_json::to_vec(&Alert {
            v: VERSION,
            gateway: "gw".into(),
            device: "d1".into(),
            ts_ms: T0,
            kind: kind.into(),
            metric: "vibration_rms".into(),
            severity,
            score: 0.9,
            baseline: 1.0,
            value: 3.0,
            state,
        })
        .expect("encode")
    }

    async fn a_critical_alert_opens_a_corrective_order_verified_when_it_clears(db: TestDb) {
        let mut hub = ingest(Store::open(&db.location).await.expect("store"));
        let topic = "wearline/v1/gw/alerts/d1";
        hub.handle(
            topic,
            &alert("temperature_drift", Severity::Warning, AlertState::Open),
        )
        .await;
        assert!(orders(&hub).await.is_empty(), "a warning opens no order");
        for _ in 0..2 {
            hub.handle(
                topic,
                &alert("vibration_anomaly", Severity::Critical, AlertState::Open),
            )
            .await;
        }
        let list = orders(&hub).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let wo = &list[0];
        assert_eq!(
            (wo.kind.as_str(), wo.cause.as_str(), wo.priority.as_str()),
            ("corrective", "alert:vibration_anomaly", "P1")
        );
        let why: serde_json::Value = serde_json::from_str(&wo.explanation).expect("json");
        assert_eq!(why["alert"]["value"], 3.0);

        // Resolved, then the alert clears: verified and closed by the hub.
        work(&mut hub, wo.id, &[Action::Assign, Action::Start, Action::Resolve]).await;
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Cleared),
        )
        .await;
        let closed = hub.store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(closed.status, "closed");
        let (actor, action, detail) = last_event(&hub, wo.id).await;
        assert_eq!((actor.as_str(), action.as_str()), ("hub", "close"));
        assert!(detail.contains("verified by data"), "{detail}");

        // A new fault opens a new order; resolved while the fault goes on,
        // it is reopened, not duplicated.
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Open),
        )
        .await;
        let second = orders(&hub).await.pop().expect("second");
        assert_ne!(second.id, wo.id);
        work(
            &mut hub,
            second.id,
            &[Action::Assign, Action::Start, Action::Resolve],
        )
        .await;
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Cleared),
        )
        .await;
        // Closed by that clear; raise a third and resolve it without a clear.
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Open),
        )
        .await;
        let third = orders(&hub).await.pop().expect("third");
        work(
            &mut hub,
            third.id,
            &[Action::Assign, Action::Start, Action::Resolve],
        )
        .await;
        // The edge raises it again (its alert had stayed open on the edge's side,
        // e.g. after an agent restart): the resolved order is reopened.
        hub.store
            .clear_alert("d1", "vibration_anomaly", T0)
            .await
            .expect("clear");
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Open),
        )
        .await;
        let again = hub.store.work_order(third.id).await.expect("get").expect("row");
        assert_eq!(again.status, "reopened");
        assert_eq!(orders(&hub).await.len(), 3, "reopened, not duplicated");
        assert_eq!(hub.stats.work_orders_reopened.load(Ordering::Relaxed), 1);
        assert_eq!(hub.stats.work_orders_verified.load(Ordering::Relaxed), 2);

        // The fault clears while the technician is on the way, before the
        // order is resolved: the resolution is verified as soon as the hub
        // reads it, without waiting for a clear that already came.
        work(&mut hub, third.id, &[Action::Assign]).await;
        hub.handle(
            topic,
            &alert("vibration_anomaly", Severity::Critical, AlertState::Cleared),
        )
        .await;
        work(&mut hub, third.id, &[Action::Start, Action::Resolve]).await;
        let row = hub.store.work_order(third.id).await.expect("get").expect("row");
        assert_eq!(row.status, "closed", "{row:?}");
        assert!(
            last_event(&hub, third.id)
                .await
                .2
                .contains("had cleared by the resolution")
        );
        assert_eq!(hub.stats.work_orders_verified.load(Ordering::Relaxed), 3);
    }

    async fn a_replacement_closes_the_resolved_order_and_a_worn_part_reopens_it(db: TestDb) {
        let mut hub = ingest(Store::open(&db.location).await.expect("store"));
        let dust = 5.0;
        let end = life_h(dust).ceil() as i64;
        // Worn past its lead time: one preventive order.
        let worn: Vec<Sample> = (0..=end).map(|h| sample(h as u64 + 1, h, dust)).collect();
        for chunk in worn.chunks(20) {
            send(&mut hub, "p1", chunk.to_vec()).await;
        }
        let wo = orders(&hub).await.pop().expect("preventive");
        assert_eq!(
            (wo.kind.as_str(), wo.cause.as_str()),
            ("preventive", "consumable:filter")
        );
        // Only a device with an order to verify sends the desk its predictions.
        assert!(!hub.orders.watches("p1"));
        work(&mut hub, wo.id, &[Action::Assign, Action::Start, Action::Resolve]).await;
        assert!(hub.orders.watches("p1") && !hub.orders.watches("p2"));

        // Still worn for VERIFY_SAMPLES predictions after the resolution: reopened.
        let mut seq = end as u64 + 1;
        for h in 0..i64::from(crate::ingest::orders::VERIFY_SAMPLES) {
            seq += 1;
            let mut s = sample(seq, end + 1 + h, dust);
            s.values.insert("dp".into(), 260.0);
            send(&mut hub, "p1", vec![s]).await;
        }
        let row = hub.store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(row.status, "reopened", "{row:?}");
        assert!(last_event(&hub, wo.id).await.2.contains("fault persists"));
        hub.orders.sync(false).await;
        assert!(
            !hub.orders.watches("p1"),
            "a reopened order is no longer verified"
        );

        // Resolved again, and this time the data shows a new filter: closed.
        work(&mut hub, wo.id, &[Action::Assign, Action::Start, Action::Resolve]).await;
        seq += 1;
        let mut fresh = sample(seq, end + 20, dust);
        fresh.values.insert("dp".into(), 80.0);
        send(&mut hub, "p1", vec![fresh]).await;
        let row = hub.store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(row.status, "closed", "{row:?}");
        assert!(last_event(&hub, wo.id).await.2.contains("new part"));
        // The new filter's predictions (it wears as the old one did, from
        // new) leave the old order alone.
        for h in 1..20 {
            seq += 1;
            let mut s = sample(seq, end + 20 + h, dust);
            s.values = sample(seq, h, dust).values;
            send(&mut hub, "p1", vec![s]).await;
        }
        let list = orders(&hub).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].status, "closed");
    }

    /// The technician fits the new filter and the data shows it before they
    /// press `resolve`: the order in progress is not cancelled as replaced
    /// before the visit; the trail notes the part, and the resolution
    /// closes it as verified.
    async fn a_part_fitted_during_the_visit_closes_the_order_once_resolved(db: TestDb) {
        let mut hub = ingest(Store::open(&db.location).await.expect("store"));
        let dust = 5.0;
        let end = life_h(dust).ceil() as i64;
        let worn: Vec<Sample> = (0..=end).map(|h| sample(h as u64 + 1, h, dust)).collect();
        for chunk in worn.chunks(20) {
            send(&mut hub, "p1", chunk.to_vec()).await;
        }
        let wo = orders(&hub).await.pop().expect("preventive");
        work(&mut hub, wo.id, &[Action::Assign, Action::Start]).await;
        let mut fresh = sample(end as u64 + 2, end + 1, dust);
        fresh.values.insert("dp".into(), 80.0);
        send(&mut hub, "p1", vec![fresh]).await;
        let row = hub.store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(row.status, "in_progress", "{row:?}");
        let (actor, action, detail) = last_event(&hub, wo.id).await;
        assert_eq!((actor.as_str(), action.as_str()), ("hub", "fix_seen"), "{detail}");
        work(&mut hub, wo.id, &[Action::Resolve]).await;
        let row = hub.store.work_order(wo.id).await.expect("get").expect("row");
        assert_eq!(row.status, "closed", "{row:?}");
        assert!(last_event(&hub, wo.id).await.2.contains("during the visit"));
        assert_eq!(hub.stats.work_orders_verified.load(Ordering::Relaxed), 1);
    }

    async fn silent_devices_and_gateways_open_one_order_per_fault(db: TestDb) {
        let mut hub = ingest(Store::open(&db.location).await.expect("store"));
        hub.offline_after = Duration::from_secs(60);
        let start = Instant::now();
        send(&mut hub, "d1", vec![sample(1, 0, 5.0)]).await;
        // A high-criticality device: its offline order (urgency P2) is P1.
        hub.store
            .set_device_criticality("d1", wearline_models::workorder::Criticality::High)
            .await
            .expect("criticality");
        // The desk reads the criticality with its first order.
        hub.check_silence(start + Duration::from_secs(61)).await;
        hub.check_silence(start + Duration::from_secs(120)).await;
        hub.orders.sync(false).await;
        let list = orders(&hub).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(
            (
                list[0].device_id.as_str(),
                list[0].cause.as_str(),
                list[0].priority.as_str()
            ),
            ("d1", "offline", "P1")
        );
        let why: serde_json::Value = serde_json::from_str(&list[0].explanation).expect("json");
        assert_eq!(
            (why["urgency"].as_str(), why["criticality"].as_str()),
            (Some("P2"), Some("high"))
        );
        work(
            &mut hub,
            list[0].id,
            &[Action::Assign, Action::Start, Action::Resolve],
        )
        .await;
        send(&mut hub, "d1", vec![sample(2, 1, 5.0)]).await;
        assert_eq!(
            hub.store
                .work_order(list[0].id)
                .await
                .expect("get")
                .expect("row")
                .status,
            "closed"
        );

        // The gateway goes down: one order for it, none for its devices' silence.
        let status = GatewayStatus {
            v: VERSION,
            gateway: "gw".into(),
            state: Connectivity::Offline,
            since_ms: T0,
            agent_version: "0.1.0".into(),
        };
        hub.handle(
            "wearline/v1/gw/status",
            &serde_json::to_vec(&status).expect("encode"),
        )
        .await;
        hub.check_silence(Instant::now() + Duration::from_secs(300)).await;
        hub.orders.sync(false).await;
        let open: Vec<(String, String)> = orders(&hub)
            .await
            .into_iter()
            .filter(|w| w.status == "open")
            .map(|w| (w.device_id, w.cause))
            .collect();
        assert_eq!(open, [("gw".to_string(), "offline".to_string())]);
    }
}

mod reminders {
    use super::*;
    use crate::store::{NewCustomer, ReminderSettings};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;

    crate::on_each_backend!(reminders_are_queued_once_per_point_and_delivered_signed_with_retries);

    /// A webhook receiver on loopback: answers each request with the next
    /// status of `statuses` (then 200), and hands over (headers, body).
    /// A call received: its headers (names in lower case) and body.
    type Call = (Vec<(String, String)>, String);

    fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<Call>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                loop {
                    line.clear();
                    reader.read_line(&mut line).expect("header");
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).expect("body");
                // Handed over before answering: once the caller has its
                // answer, the call is in the channel.
                if tx
                    .send((headers, String::from_utf8_lossy(&body).into_owned()))
                    .is_err()
                {
                    return;
                }
                let status = statuses.next().unwrap_or(200);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        (url, rx)
    }

    async fn reminders_are_queued_once_per_point_and_delivered_signed_with_retries(db: TestDb) {
        let mut hub = ingest(Store::open(&db.location).await.expect("store"));
        let dust = 5.0;
        send(&mut hub, "p1", vec![sample(1, 0, dust)]).await;
        let customer = hub
            .store
            .add_customer(&NewCustomer {
                name: "acme",
                contact: None,
                email: None,
                phone: None,
                created_ms: 0,
            })
            .await
            .expect("customer");
        hub.store
            .set_device_owner("p1", Some("acme"))
            .await
            .expect("owner");
        let (url, received) = receiver(vec![500]);
        let secret = "0123456789abcdef-secret";
        hub.store
            .put_reminder_settings(&ReminderSettings {
                customer_id: customer.id,
                channels: vec!["portal".into(), "webhook".into()],
                points: vec![5.0, 1.0, 0.0],
                quiet_hours: [0, 0],
                utc_offset_minutes: 0,
                opted_out: false,
                webhook_url: Some(url),
                webhook_secret: Some(secret.into()),
                email: None,
            })
            .await
            .expect("settings");

        // Owners and settings are re-read every 30 s; the test does not wait.
        hub.reminding.loaded = None;
        // The filter wears out hour by hour (a life of 200 h, about 8 days).
        let end = life_h(dust).ceil() as i64 + 1;
        for h in 1..=end {
            send(&mut hub, "p1", vec![sample(h as u64 + 1, h, dust)]).await;
        }
        let mut queued: Vec<(f64, String)> = hub
            .store
            .reminders(Some(customer.id), 100)
            .await
            .expect("list")
            .into_iter()
            .map(|r| (r.point_days, r.channel))
            .collect();
        queued.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let expected: Vec<(f64, String)> = [0.0, 1.0, 5.0]
            .into_iter()
            .flat_map(|p| [(p, "portal".to_string()), (p, "webhook".to_string())])
            .collect();
        assert_eq!(
            queued, expected,
            "each point once per channel, however many predictions"
        );

        // Delivery: the portal at once; the webhook fails once (HTTP 500),
        // is retried a minute later, and arrives signed.
        let now = crate::clock::wall_ms();
        let sent = crate::reminders::deliver_due(&hub.store, &Default::default(), now)
            .await
            .expect("deliver");
        assert_eq!(
            sent, 5,
            "three portal reminders, and two of the three webhook calls"
        );
        let failed: Vec<_> = hub
            .store
            .reminders(Some(customer.id), 100)
            .await
            .expect("list")
            .into_iter()
            .filter(|r| r.channel == "webhook" && r.last_error.as_deref() == Some("HTTP 500"))
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!((failed[0].status.as_str(), failed[0].attempts), ("pending", 1));
        assert_eq!(failed[0].next_attempt_ms, now + 60_000);
        assert_eq!(
            crate::reminders::deliver_due(&hub.store, &Default::default(), now + 59_000)
                .await
                .expect("early"),
            0,
            "not before its retry time"
        );
        let sent = crate::reminders::deliver_due(&hub.store, &Default::default(), now + 61_000)
            .await
            .expect("retry");
        assert_eq!(sent, 1, "the retried one");
        // Each call was answered before `deliver_due` returned, so all four are here.
        let calls: Vec<_> = received.try_iter().collect();
        assert_eq!(calls.len(), 4, "three calls, one of them twice");
        for (headers, body) in &calls {
            let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let ts: i64 = header("x-wearline-timestamp")
                .and_then(|t| t.parse().ok())
                .expect("timestamp");
            assert_eq!(
                header("x-wearline-signature"),
                crate::reminders::signature(secret, ts, body)
            );
            let json: serde_json::Value = serde_json::from_str(body).expect("json");
            assert!(
                json["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("The filter of your purifier")
                        || m.starts_with("Time to replace the filter of your purifier")),
                "{json}"
            );
        }
        let all = hub.store.reminders(None, 100).await.expect("all");
        assert!(all.iter().all(|r| r.status == "sent"), "{all:?}");
        assert_eq!(
            crate::reminders::deliver_due(&hub.store, &Default::default(), now + 3_600_000)
                .await
                .expect("again"),
            0,
            "sent once"
        );
    }
}
