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
