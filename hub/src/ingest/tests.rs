//! Ingest against a real SQLite store: replacements end lives, ended lives
//! teach the fleet prior, and a restart resumes each life where it was.

use super::*;
use crate::store::Store;
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
    Ingest {
        store,
        profiles: Arc::new(BTreeMap::from([("purifier".to_string(), profile)])),
        predictor: Predictor::new(),
        stats: Arc::new(IngestStats::default()),
        events: broadcast::channel(16).0,
        subscribed: tokio::sync::watch::channel(false).0,
        influx: None,
    }
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

#[tokio::test]
async fn replacements_teach_the_fleet_and_a_restart_resumes_each_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.db");
    let mut hub = ingest(Store::open(&path).await.expect("store"));

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
    let mut hub = ingest(Store::open(&path).await.expect("store"));
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
