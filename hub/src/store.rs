//! The hub's store: devices, recent history, consumable predictions and work
//! orders, in an embedded SQLite database created and migrated at start.
//!
//! Deduplication and the one-open-work-order rule are enforced by the
//! database itself (primary key on (device, seq); a partial unique index on
//! open work orders), so they hold across restarts and concurrent hubs.

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};
use std::path::Path;
use std::time::Duration;
use wearline_models::wire::{Sample, Telemetry};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}")]
    Dir { path: String, source: std::io::Error },
}

/// A device as the hub knows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeviceRow {
    pub id: String,
    pub gateway: String,
    pub profile: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub last_seq: i64,
    pub samples: i64,
    pub points: i64,
    /// Sequence numbers missing so far (lost on the way, not skipped by a restart).
    pub gaps: i64,
    /// JSON object of the latest text fields (served parsed).
    #[serde(skip)]
    pub attributes: String,
}

/// One consumable of one device: its current life and latest prediction.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ConsumableRow {
    pub device_id: String,
    pub name: String,
    pub profile: String,
    pub lead_time_days: f64,
    pub life_start_ms: i64,
    pub as_of_ms: i64,
    /// Samples in the current life.
    pub samples: i64,
    /// Usage in the current life (the consumable's usage units).
    pub used: f64,
    pub last_value: Option<f64>,
    /// The limit expected to end the life: `wear`, `rated_life` or `calendar`.
    #[sqlx(rename = "limit_kind")]
    #[serde(rename = "limit")]
    pub limit_kind: Option<String>,
    pub remaining_usage: Option<f64>,
    pub usage_per_day: Option<f64>,
    pub end_of_life_ms: Option<i64>,
    pub eol_low_ms: Option<i64>,
    pub eol_high_ms: Option<i64>,
    /// Two-sided coverage of the interval.
    pub coverage: Option<f64>,
    pub model: Option<String>,
    /// JSON text: the estimate and the data behind it (served parsed).
    #[serde(skip)]
    pub explanation: String,
    /// JSON text: the life tracker's state (not served).
    #[serde(skip)]
    pub state: String,
}

/// An alert, from the edge or the hub.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub device_id: String,
    pub gateway: String,
    pub kind: String,
    pub source: String,
    pub severity: String,
    pub state: String,
    pub opened_ms: i64,
    pub cleared_ms: Option<i64>,
    /// JSON text (served parsed).
    #[serde(skip)]
    pub detail: String,
}

/// An alert to open.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub device_id: String,
    pub gateway: String,
    pub kind: String,
    pub source: &'static str,
    pub severity: String,
    pub opened_ms: i64,
    pub detail: serde_json::Value,
}

/// A life ended by a replacement, as stored.
#[derive(Debug, Clone)]
pub struct LifeRow {
    pub device_id: String,
    pub name: String,
    pub profile: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub life: Option<f64>,
    pub used: f64,
    /// JSON of the whole record.
    pub body: String,
}

/// A work order.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkOrderRow {
    pub id: i64,
    pub device_id: String,
    pub kind: String,
    pub cause: String,
    pub status: String,
    pub priority: String,
    pub title: String,
    pub opened_at_ms: i64,
    pub predicted_eol_ms: Option<i64>,
    pub lead_time_days: Option<f64>,
    /// JSON text: the prediction and data behind the order (served parsed).
    #[serde(skip)]
    pub explanation: String,
}

/// A work order to open.
#[derive(Debug, Clone)]
pub struct NewWorkOrder {
    pub device_id: String,
    pub kind: &'static str,
    pub cause: String,
    pub priority: &'static str,
    pub title: String,
    pub opened_at_ms: i64,
    pub predicted_eol_ms: Option<i64>,
    pub lead_time_days: Option<f64>,
    pub explanation: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Stores one device's samples; returns those that were new (not
    /// already stored under the same device and sequence number).
    pub async fn insert_samples(
        &self,
        gateway: &str,
        device: &str,
        profile: &str,
        samples: Vec<Sample>,
    ) -> Result<Vec<Sample>> {
        let t = Telemetry {
            v: wearline_models::wire::VERSION,
            gateway: gateway.to_string(),
            device: device.to_string(),
            profile: profile.to_string(),
            samples,
        };
        let fresh = self
            .insert_batch(std::slice::from_ref(&t))
            .await?
            .pop()
            .unwrap_or_default();
        let mut samples: Vec<Option<Sample>> = t.samples.into_iter().map(Some).collect();
        Ok(fresh.into_iter().filter_map(|k| samples[k].take()).collect())
    }

    /// The newest sample of `device`: its time and values.
    pub async fn latest_sample(&self, device: &str) -> Result<Option<(i64, serde_json::Value)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT ts_ms, body FROM samples WHERE device_id = ? ORDER BY seq DESC LIMIT 1")
                .bind(device)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(ts, body)| (ts, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))))
    }

    /// Records a consumable's state and latest prediction.
    pub async fn upsert_consumable(&self, row: &ConsumableRow) -> Result<()> {
        self.upsert_consumables(std::slice::from_ref(row)).await
    }

    /// Records an ended life; recording the same one again changes nothing.
    pub async fn insert_life(&self, row: &LifeRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO consumable_lives (device_id, name, profile, started_ms, ended_ms, life, used, body)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&row.device_id)
        .bind(&row.name)
        .bind(&row.profile)
        .bind(row.started_ms)
        .bind(row.ended_ms)
        .bind(row.life)
        .bind(row.used)
        .bind(&row.body)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every ended life, as `(profile, consumable, body)`, oldest first.
    pub async fn lives(&self) -> Result<Vec<(String, String, String)>> {
        Ok(
            sqlx::query_as("SELECT profile, name, body FROM consumable_lives ORDER BY ended_ms")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Every consumable of every device (for resuming at start).
    pub async fn all_consumables(&self) -> Result<Vec<ConsumableRow>> {
        Ok(sqlx::query_as("SELECT * FROM consumables")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Stores the samples of many telemetry messages in one transaction and
    /// returns, per message and in order, the indices of its samples that
    /// were new (a `(device, seq)` already stored, or twice in the batch, is
    /// dropped).
    pub async fn insert_batch(&self, batch: &[Telemetry]) -> Result<Vec<Vec<usize>>> {
        /// Rows per statement (4 parameters each, under SQLite's 32 766).
        const CHUNK: usize = 2000;
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(usize, &Sample)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.samples.iter().map(move |s| (i, s)))
            .collect();
        // Inserted rows by sequence number, then device (no allocation to look one up).
        let mut fresh_keys: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
        for chunk in rows.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO samples (device_id, seq, ts_ms, body) ");
            qb.push_values(chunk, |mut b, (i, s)| {
                b.push_bind(batch[*i].device.clone())
                    .push_bind(seq_i64(s.seq))
                    .push_bind(s.ts_ms)
                    .push_bind(serde_json::to_string(&s.values).unwrap_or_default());
            });
            qb.push(" ON CONFLICT DO NOTHING RETURNING device_id, seq");
            let inserted: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            for (device, seq) in inserted {
                fresh_keys.entry(seq).or_default().push(device);
            }
        }
        // The devices' last sequence numbers before this batch, for gap counting.
        let ids: std::collections::BTreeSet<&str> = batch.iter().map(|t| t.device.as_str()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut last_seq: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT id, last_seq FROM devices WHERE id IN ");
            qb.push_tuples(chunk, |mut b, id| {
                b.push_bind(id.to_string());
            });
            let rows: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            last_seq.extend(rows);
        }
        let mut out: Vec<Vec<usize>> = Vec::with_capacity(batch.len());
        let mut devices: std::collections::BTreeMap<&str, DeviceBatch> = std::collections::BTreeMap::new();
        let mut text: std::collections::BTreeMap<&str, serde_json::Map<String, serde_json::Value>> =
            std::collections::BTreeMap::new();
        for t in batch {
            let fresh: Vec<usize> = (0..t.samples.len())
                .filter(|&k| {
                    let devices = fresh_keys.get_mut(&seq_i64(t.samples[k].seq));
                    devices
                        .and_then(|v| v.iter().position(|d| *d == t.device).map(|i| v.swap_remove(i)))
                        .is_some()
                })
                .collect();
            for s in fresh.iter().map(|&k| &t.samples[k]) {
                let e = devices.entry(&t.device).or_insert(DeviceBatch {
                    gateway: &t.gateway,
                    profile: &t.profile,
                    first_ms: s.ts_ms,
                    last_ms: s.ts_ms,
                    last_seq: 0,
                    samples: 0,
                    points: 0,
                    seqs: Vec::new(),
                    gaps: 0,
                });
                e.seqs.push((seq_i64(s.seq), s.restart));
                e.gateway = &t.gateway;
                e.profile = &t.profile;
                e.first_ms = e.first_ms.min(s.ts_ms);
                e.last_ms = e.last_ms.max(s.ts_ms);
                e.last_seq = e.last_seq.max(seq_i64(s.seq));
                e.samples += 1;
                e.points += s.values.len() as i64;
                if !s.text.is_empty() {
                    text.entry(&t.device).or_default().extend(
                        s.text
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))),
                    );
                }
            }
            out.push(fresh);
        }
        for (id, d) in &mut devices {
            d.gaps = gaps(last_seq.get(*id).copied(), &mut d.seqs);
        }
        let devices: Vec<_> = devices.into_iter().collect();
        for chunk in devices.chunks(CHUNK / 2) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO devices (id, gateway, profile, first_seen_ms, last_seen_ms, last_seq, samples, points, gaps) ",
            );
            qb.push_values(chunk, |mut b, (id, d)| {
                b.push_bind(id.to_string())
                    .push_bind(d.gateway.to_string())
                    .push_bind(d.profile.to_string())
                    .push_bind(d.first_ms)
                    .push_bind(d.last_ms)
                    .push_bind(d.last_seq)
                    .push_bind(d.samples)
                    .push_bind(d.points)
                    .push_bind(d.gaps);
            });
            qb.push(
                " ON CONFLICT (id) DO UPDATE SET gateway = excluded.gateway, profile = excluded.profile,
                   last_seen_ms = MAX(devices.last_seen_ms, excluded.last_seen_ms),
                   last_seq = MAX(devices.last_seq, excluded.last_seq),
                   samples = devices.samples + excluded.samples, points = devices.points + excluded.points,
                   gaps = MAX(0, devices.gaps + excluded.gaps)",
            );
            qb.build().execute(&mut *tx).await?;
        }
        // Text fields are device attributes: keep the latest value of each.
        for (device, fields) in text {
            let current: Option<(String,)> = sqlx::query_as("SELECT attributes FROM devices WHERE id = ?")
                .bind(device)
                .fetch_optional(&mut *tx)
                .await?;
            let mut attrs: serde_json::Map<String, serde_json::Value> = current
                .and_then(|(a,)| serde_json::from_str(&a).ok())
                .unwrap_or_default();
            attrs.extend(fields);
            sqlx::query("UPDATE devices SET attributes = ? WHERE id = ?")
                .bind(serde_json::Value::Object(attrs).to_string())
                .bind(device)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records many consumables' states and predictions in one transaction.
    pub async fn upsert_consumables(&self, rows: &[ConsumableRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            upsert_consumable(&mut tx, row).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Samples of `device` newer than `after_ms`, oldest first, at most the newest `limit`.
    pub async fn samples_after(&self, device: &str, after_ms: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT ts_ms, body FROM samples WHERE device_id = ? AND ts_ms > ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(device)
        .bind(after_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Opens a work order unless one is already open for the same device and
    /// cause; returns the new order, or `None` when one was already open.
    pub async fn open_work_order(&self, wo: &NewWorkOrder) -> Result<Option<WorkOrderRow>> {
        let row: Option<WorkOrderRow> = sqlx::query_as(
            "INSERT INTO work_orders (device_id, kind, cause, status, priority, title, opened_at_ms,
                predicted_eol_ms, lead_time_days, explanation)
             VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING
             RETURNING *",
        )
        .bind(&wo.device_id)
        .bind(wo.kind)
        .bind(&wo.cause)
        .bind(wo.priority)
        .bind(&wo.title)
        .bind(wo.opened_at_ms)
        .bind(wo.predicted_eol_ms)
        .bind(wo.lead_time_days)
        .bind(wo.explanation.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Opens an alert unless the same device already has one of that kind
    /// open; returns the new alert.
    pub async fn open_alert(&self, a: &NewAlert) -> Result<Option<AlertRow>> {
        Ok(sqlx::query_as(
            "INSERT INTO alerts (device_id, gateway, kind, source, severity, state, opened_ms, detail)
             VALUES (?, ?, ?, ?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING RETURNING *",
        )
        .bind(&a.device_id)
        .bind(&a.gateway)
        .bind(&a.kind)
        .bind(a.source)
        .bind(&a.severity)
        .bind(a.opened_ms)
        .bind(a.detail.to_string())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Clears the open alert of this kind on this device; whether there was one.
    pub async fn clear_alert(&self, device: &str, kind: &str, at_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alerts SET state = 'cleared', cleared_ms = ? WHERE device_id = ? AND kind = ? AND state = 'open'",
        )
        .bind(at_ms)
        .bind(device)
        .bind(kind)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Alerts, newest first; only the open ones with `open_only`.
    pub async fn alerts(&self, open_only: bool) -> Result<Vec<AlertRow>> {
        let sql = if open_only {
            "SELECT * FROM alerts WHERE state = 'open' ORDER BY id DESC"
        } else {
            "SELECT * FROM alerts ORDER BY id DESC"
        };
        Ok(sqlx::query_as(sql).fetch_all(&self.pool).await?)
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>> {
        Ok(sqlx::query_as("SELECT * FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        Ok(sqlx::query_as("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn consumables(&self, device: &str) -> Result<Vec<ConsumableRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM consumables WHERE device_id = ? ORDER BY name")
                .bind(device)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn work_orders(&self) -> Result<Vec<WorkOrderRow>> {
        Ok(sqlx::query_as("SELECT * FROM work_orders ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn work_order(&self, id: i64) -> Result<Option<WorkOrderRow>> {
        Ok(sqlx::query_as("SELECT * FROM work_orders WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Total telemetry points (metric values) stored.
    pub async fn points(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(SUM(points), 0) FROM devices")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// What one batch adds to a device's row.
struct DeviceBatch<'a> {
    gateway: &'a str,
    profile: &'a str,
    first_ms: i64,
    last_ms: i64,
    last_seq: i64,
    samples: i64,
    points: i64,
    /// New sequence numbers with their restart marks, in arrival order.
    seqs: Vec<(i64, bool)>,
    /// Change of the device's gap count (negative when late ones fill gaps).
    gaps: i64,
}

/// How a batch's new sequence numbers change a device's gap count, given
/// its last number before (`None`: a new device, whose first number is its
/// baseline). A jump past `last + 1` adds the numbers skipped, unless the
/// sample is the first after an agent restart; a number below `last` fills
/// one gap.
fn gaps(last: Option<i64>, seqs: &mut [(i64, bool)]) -> i64 {
    seqs.sort_unstable();
    let mut change = 0;
    let mut last = last;
    for &(seq, restart) in seqs.iter() {
        match last {
            Some(l) if seq > l => {
                if !restart {
                    change += seq - l - 1;
                }
                last = Some(seq);
            }
            Some(_) => change -= 1,
            None => last = Some(seq),
        }
    }
    change
}

/// Inserts or updates one consumable's row.
async fn upsert_consumable(tx: &mut sqlx::SqliteConnection, row: &ConsumableRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO consumables (device_id, name, profile, lead_time_days, life_start_ms, as_of_ms, samples,
            used, last_value, limit_kind, remaining_usage, usage_per_day, end_of_life_ms, eol_low_ms,
            eol_high_ms, coverage, model, explanation, state)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device_id, name) DO UPDATE SET profile = excluded.profile,
            lead_time_days = excluded.lead_time_days, life_start_ms = excluded.life_start_ms,
            as_of_ms = excluded.as_of_ms, samples = excluded.samples, used = excluded.used,
            last_value = excluded.last_value, limit_kind = excluded.limit_kind,
            remaining_usage = excluded.remaining_usage, usage_per_day = excluded.usage_per_day,
            end_of_life_ms = excluded.end_of_life_ms, eol_low_ms = excluded.eol_low_ms,
            eol_high_ms = excluded.eol_high_ms, coverage = excluded.coverage, model = excluded.model,
            explanation = excluded.explanation, state = excluded.state",
    )
    .bind(&row.device_id)
    .bind(&row.name)
    .bind(&row.profile)
    .bind(row.lead_time_days)
    .bind(row.life_start_ms)
    .bind(row.as_of_ms)
    .bind(row.samples)
    .bind(row.used)
    .bind(row.last_value)
    .bind(&row.limit_kind)
    .bind(row.remaining_usage)
    .bind(row.usage_per_day)
    .bind(row.end_of_life_ms)
    .bind(row.eol_low_ms)
    .bind(row.eol_high_ms)
    .bind(row.coverage)
    .bind(&row.model)
    .bind(&row.explanation)
    .bind(&row.state)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sequence numbers are u64 on the wire and i64 in SQL; values past i64::MAX
/// are clamped (an agent would need 292 000 years at 1 kHz to get there).
fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            explanation: serde_json::json!({"model": "m"}),
        }
    }

    #[tokio::test]
    async fn device_rows_count_gaps_across_batches() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let store = Store::open(&dir.path().join("hub.db")).await?;
        store
            .insert_samples("gw", "d1", "p", vec![sample(1), sample(2)])
            .await?;
        store.insert_samples("gw", "d1", "p", vec![sample(5)]).await?;
        let gaps = |s: &Store| {
            let s = s.clone();
            async move { s.device("d1").await.map(|d| d.map(|d| d.gaps)) }
        };
        assert_eq!(gaps(&store).await?, Some(2), "3 and 4 missing");
        store.insert_samples("gw", "d1", "p", vec![sample(3)]).await?;
        assert_eq!(gaps(&store).await?, Some(1), "3 arrived late");
        let mut after_restart = sample(2000);
        after_restart.restart = true;
        store
            .insert_samples("gw", "d1", "p", vec![after_restart, sample(2001)])
            .await?;
        assert_eq!(gaps(&store).await?, Some(1), "a restart's skip is not a gap");
        Ok(())
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

    #[tokio::test]
    async fn duplicates_are_dropped_across_reopen_and_one_order_stays_open() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let path = dir.path().join("nested/hub.db");
        let store = Store::open(&path).await?;
        let fresh = store
            .insert_samples("gw", "d1", "p", vec![sample(1), sample(2)])
            .await?;
        assert_eq!(fresh.len(), 2);
        drop(store);

        let store = Store::open(&path).await?;
        let fresh = store
            .insert_samples("gw", "d1", "p", vec![sample(2), sample(3)])
            .await?;
        assert_eq!(fresh.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3]);
        let d = store.device("d1").await?.expect("device");
        assert_eq!((d.samples, d.points, d.last_seq, d.last_seen_ms), (3, 6, 3, 3000));
        assert_eq!(store.points().await?, 6);

        let first = store.open_work_order(&order("d1")).await?.expect("opened");
        assert_eq!(first.status, "open");
        assert!(
            store.open_work_order(&order("d1")).await?.is_none(),
            "second open order refused"
        );
        let other = store.open_work_order(&order("d2")).await?.expect("other device");
        assert_eq!(other.id, first.id + 1, "ids are not consumed by refused inserts");
        assert_eq!(store.work_orders().await?.len(), 2);
        Ok(())
    }
}
