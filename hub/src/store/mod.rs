//! The hub's store: devices, raw samples and their 1-minute and 1-hour
//! rollups (`rollup.rs`), consumable predictions, alerts and work orders, in an embedded SQLite database (the default; no server)
//! or in PostgreSQL (selected by a URL), created and migrated at start.
//!
//! Both back ends run the same code: sqlx's `Any` driver, and SQL that both
//! dialects accept (`$N` parameters, `ON CONFLICT`, `RETURNING`, `CASE` for
//! a two-value maximum). Only the migrations are per back end
//! (`migrations/sqlite`, `migrations/postgres`), numbered alike.
//!
//! Deduplication and the one-open-work-order rule are enforced by the
//! database itself (primary key on (device, seq); a partial unique index on
//! open work orders), so they hold across restarts and concurrent hubs.

mod access;
mod batch;
mod indicator;
mod location;
mod reminders;
mod rollup;
mod sql;
mod technicians;
mod work_orders;

pub use access::{AccessError, CustomerRow, NewCustomer, NewToken, TokenRow};
pub use location::{Backend, Location};
pub use reminders::{CHANNELS, NewReminder, ReminderRow, ReminderSettings};
pub use rollup::{
    Agg, Merged, Pruned, RawPoint, Resolution, Retention, RollupRow, SHARDS, bucket_start, shard_of,
};
pub use technicians::TechnicianRow;
pub use work_orders::{Change, ChangeError, WorkOrderEvent, WorkOrderFilter};

use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, FromRow};
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
    #[error("the store path {0} is not valid UTF-8")]
    Path(String),
    #[error("unreadable row: {0}")]
    Corrupt(String),
}

/// A device as the hub knows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
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
    /// The customer owning it.
    pub customer_id: Option<i64>,
    /// `low`, `normal` or `high`.
    pub criticality: String,
}

/// One consumable of one device: its current life and latest prediction.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
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
    /// The technician it is assigned to.
    pub assignee: Option<String>,
    pub updated_ms: i64,
    /// Service-level due times (from the priority at opening).
    pub respond_by_ms: i64,
    pub resolve_by_ms: i64,
    pub started_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// Targets missed, comma-separated (`response`, `resolution`).
    pub escalated: String,
    /// JSON array text of the parts used (served parsed).
    #[serde(skip)]
    pub parts: String,
    /// The customer's rating of the visit, 1–5, and their comment.
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    /// When the assignee accepted it (cleared on reassignment).
    pub accepted_ms: Option<i64>,
    /// JSON array text of the technicians who declined it (served parsed).
    #[serde(skip)]
    pub declined_by: String,
    /// The visit booked when it was assigned, if any (UTC).
    pub visit_ms: Option<i64>,
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
    /// Why it is opened: a JSON object, as text. Kept serialised (about
    /// 700 bytes for a prediction's) rather than as a `serde_json::Value`
    /// (about 5 KB of small allocations): orders wait in the order desk's
    /// queue, and when a fleet comes due at once (5 000 devices in
    /// `wearline bench ingest`) they held 24 MB there.
    pub explanation: String,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where every write goes: on SQLite one connection of its own (see
    /// [`Store::open`]), on PostgreSQL `pool`. Never used while holding one
    /// of its transactions (it would wait for itself).
    writer: AnyPool,
    backend: Backend,
    /// Dropped with the last clone, which ends the checkpoint task.
    _alive: std::sync::Arc<()>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Frames (a 4 KiB page each) past which the WAL is started again from its
/// beginning: about a third of a second of writes at 5000 messages/s.
const WAL_RESTART_FRAMES: i64 = 4096;
/// Frames past which the WAL is emptied even if writers must wait for it.
const WAL_LIMIT_FRAMES: i64 = 65_536;

/// Keeps the WAL short without holding up the writer, until the store is
/// dropped. Every [`CHECKPOINT_EVERY`] a PASSIVE checkpoint on a reader
/// connection copies the WAL back into the database file, fsyncs included,
/// while the writer goes on appending. That alone never lets the WAL start
/// again from its beginning (SQLite restarts it only when a write begins
/// with every frame copied, and the writer has always appended meanwhile):
/// it grew past 256 MB in four seconds of `bench ingest --rate 5000`. So
/// once it is past [`WAL_RESTART_FRAMES`], a second checkpoint runs on the
/// writer's own connection, right after the first: it copies only the few
/// frames written in between, and the next write starts the WAL again.
///
/// The writer used to checkpoint itself after every commit that left 1000
/// frames (SQLite's autocheckpoint): copying them and two fsyncs inside a
/// telemetry commit, 15–20 ms in 6 % of the transactions.
/// Past [`WAL_LIMIT_FRAMES`] (readers that never let go) a TRUNCATE waits
/// for the readers (`busy_timeout`) and holds up writers meanwhile.
async fn checkpoints(pool: AnyPool, writer: AnyPool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            return;
        }
        // `(busy, frames in the WAL, frames copied back)`.
        let passive = "PRAGMA wal_checkpoint(PASSIVE)";
        let copied: std::result::Result<(i64, i64, i64), _> = sqlx::query_as(passive).fetch_one(&pool).await;
        match copied {
            Ok((_, frames, _)) if frames > WAL_LIMIT_FRAMES => {
                tracing::warn!(frames, "SQLite WAL past its limit: emptying it (writers wait)");
                if let Err(e) = pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
                    tracing::warn!(error = %e, frames, "SQLite WAL truncation failed; retrying");
                }
            }
            Ok((_, frames, _)) if frames > WAL_RESTART_FRAMES => {
                let last: std::result::Result<(i64, i64, i64), _> =
                    sqlx::query_as(passive).fetch_one(&writer).await;
                if let Err(e) = last {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed; retrying"),
        }
    }
}

/// Page cache of the writer connection (KiB), and of each reader. With
/// samples clustered on their key, a batch touched a full table leaf per
/// device and the writer needed 32 MB (16 MB raised the p99 of
/// publish-to-queryable at `bench ingest --rate 5000` from 40–48 ms to
/// 48–65). In arrival order (migration 0017) a device costs one small index
/// leaf: 16 MB gives the same p99 at `--rate 7500` (39.8–40.2 ms against
/// 38–40) and throughput at `--rate 15000`, and a peak RSS there of 256–282
/// MB in four runs against 276–288 in three: a small saving, within the
/// spread of the runs.
const WRITER_CACHE_KIB: u32 = 16 * 1024;
const READER_CACHE_KIB: u32 = 2 * 1024;

/// A pool of `max` connections to the SQLite database at `url`, each with a
/// page cache of up to `cache_kib` (taken as pages are used). None
/// checkpoints after its commits: [`checkpoints`] does.
async fn sqlite_pool(url: &str, max: u32, cache_kib: u32) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        // Per connection: WAL lets the API read while ingest writes; NORMAL
        // sync is durable across a process kill (not an OS crash). The
        // statement journal of a multi-row upsert in memory, not a
        // temporary file.
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let pragmas = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0; \
                     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};"
                );
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await.map(|_| ())
            })
        })
        .connect(url)
        .await?)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `location`.
    pub async fn open(location: &Location) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = location.backend();
        let url = location.url()?;
        let pool = match backend {
            Backend::Sqlite => sqlite_pool(&url, 4, READER_CACHE_KIB).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        // SQLite has one writer at a time anyway: every write goes through
        // one connection of its own, so writers queue here, in order, rather
        // than in SQLite's busy handler (which sleeps 1, 2, 5, 10… ms between
        // tries: 35–85 ms stalls of telemetry batches while the order desk
        // wrote). Its page cache holds a telemetry batch's pages (about one
        // index leaf per device; the default 2 MB spilled them to the WAL
        // mid-transaction and read them back from the OS). The readers keep
        // small caches: every connection's fills up, and four large ones
        // added 150 MB to the hub under load.
        let writer = match backend {
            Backend::Sqlite => sqlite_pool(&url, 1, WRITER_CACHE_KIB).await?,
            Backend::Postgres => pool.clone(),
        };
        let alive = std::sync::Arc::new(());
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoints(
                pool.clone(),
                writer.clone(),
                std::sync::Arc::downgrade(&alive),
            ));
        }
        Ok(Store {
            pool,
            writer,
            backend,
            _alive: alive,
        })
    }

    /// A statement of this store; every query goes through here or
    /// [`Store::query_as`]. Statements are prepared once per connection and
    /// reused on SQLite, not on PostgreSQL: sqlx 0.9's `Any` driver sends a
    /// NULL `f64` as a NULL `float4` (its `Real` and `Double` nulls are
    /// swapped), and a PostgreSQL statement keeps the parameter types of
    /// its first execution, so a cached statement first run with a NULL
    /// float fails later with "incorrect binary data format". Unnamed
    /// statements take each execution's own types.
    pub(crate) fn query<'q>(
        &self,
        sql: impl sqlx::SqlSafeStr,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        sqlx::query(sql).persistent(self.backend == Backend::Sqlite)
    }

    /// [`Store::query`], read into `O`.
    pub(crate) fn query_as<'q, O>(
        &self,
        sql: impl sqlx::SqlSafeStr,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>
    where
        O: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as(sql).persistent(self.backend == Backend::Sqlite)
    }

    /// Which database this store is in.
    pub fn backend(&self) -> Backend {
        self.backend
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
        let row: Option<(i64, String)> = self
            .query_as("SELECT ts_ms, body FROM samples WHERE device_id = $1 ORDER BY seq DESC LIMIT 1")
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
        let done = self.query(
            "INSERT INTO consumable_lives (device_id, name, profile, started_ms, ended_ms, life, used, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&row.device_id)
        .bind(&row.name)
        .bind(&row.profile)
        .bind(row.started_ms)
        .bind(row.ended_ms)
        .bind(row.life)
        .bind(row.used)
        .bind(&row.body)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every ended life, as `(profile, consumable, body)`, oldest first.
    pub async fn lives(&self) -> Result<Vec<(String, String, String)>> {
        Ok(self
            .query_as("SELECT profile, name, body FROM consumable_lives ORDER BY ended_ms")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every consumable of every device (for resuming at start).
    pub async fn all_consumables(&self) -> Result<Vec<ConsumableRow>> {
        Ok(self
            .query_as("SELECT * FROM consumables")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Samples of `device` after sequence number `after_seq` (or, without
    /// one, newer than `after_ms`), in sequence order, at most `limit`:
    /// `(seq, ts_ms, body)`.
    pub async fn samples_since(
        &self,
        device: &str,
        after_seq: Option<i64>,
        after_ms: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, String)>> {
        let q = match after_seq {
            Some(seq) => self.query_as(
                "SELECT seq, ts_ms, body FROM samples WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(device)
            .bind(seq),
            None => self.query_as(
                "SELECT seq, ts_ms, body FROM samples WHERE device_id = $1 AND ts_ms > $2 ORDER BY seq LIMIT $3",
            )
            .bind(device)
            .bind(after_ms),
        };
        Ok(q.bind(limit).fetch_all(&self.pool).await?)
    }

    /// The sequence number of `device`'s last sample at or before `ts_ms`.
    pub async fn seq_at(&self, device: &str, ts_ms: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> = self
            .query_as(
                "SELECT seq FROM samples WHERE device_id = $1 AND ts_ms <= $2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(device)
            .bind(ts_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(s,)| s))
    }

    /// Every device's highest sequence number stored: `(device, last_seq)`.
    pub async fn last_seqs(&self) -> Result<Vec<(String, i64)>> {
        Ok(self
            .query_as("SELECT id, last_seq FROM devices")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every ended life with its key: `(device, consumable, started_ms,
    /// profile, body)`.
    pub async fn lives_keyed(&self) -> Result<Vec<(String, String, i64, String, String)>> {
        Ok(self
            .query_as(
                "SELECT device_id, name, started_ms, profile, body FROM consumable_lives ORDER BY ended_ms",
            )
            .fetch_all(&self.pool)
            .await?)
    }

    /// Samples of `device` newer than `after_ms`, oldest first, at most the newest `limit`.
    pub async fn samples_after(&self, device: &str, after_ms: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut rows: Vec<(i64, String)> = self.query_as(
            "SELECT ts_ms, body FROM samples WHERE device_id = $1 AND ts_ms > $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(device)
        .bind(after_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Opens an alert unless the same device already has one of that kind
    /// open; returns the new alert.
    pub async fn open_alert(&self, a: &NewAlert) -> Result<Option<AlertRow>> {
        Ok(self
            .query_as(
                "INSERT INTO alerts (device_id, gateway, kind, source, severity, state, opened_ms, detail)
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) ON CONFLICT DO NOTHING RETURNING *",
            )
            .bind(&a.device_id)
            .bind(&a.gateway)
            .bind(&a.kind)
            .bind(a.source)
            .bind(&a.severity)
            .bind(a.opened_ms)
            .bind(a.detail.to_string())
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Clears the open alert of this kind on this device; whether there was one.
    pub async fn clear_alert(&self, device: &str, kind: &str, at_ms: i64) -> Result<bool> {
        let done = self.query(
            "UPDATE alerts SET state = 'cleared', cleared_ms = $1 WHERE device_id = $2 AND kind = $3 AND state = 'open'",
        )
        .bind(at_ms)
        .bind(device)
        .bind(kind)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether `device` has an open alert of one of `kinds`.
    pub async fn has_open_alert(&self, device: &str, kinds: &[&str]) -> Result<bool> {
        for kind in kinds {
            let open: Option<(i64,)> = self
                .query_as("SELECT id FROM alerts WHERE device_id = $1 AND kind = $2 AND state = 'open'")
                .bind(device)
                .bind(*kind)
                .fetch_optional(&self.pool)
                .await?;
            if open.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Alerts, newest first; only the open ones with `open_only`.
    pub async fn alerts(&self, open_only: bool) -> Result<Vec<AlertRow>> {
        let sql = if open_only {
            "SELECT * FROM alerts WHERE state = 'open' ORDER BY id DESC"
        } else {
            "SELECT * FROM alerts ORDER BY id DESC"
        };
        Ok(self.query_as(sql).fetch_all(&self.pool).await?)
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>> {
        Ok(self
            .query_as("SELECT * FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        Ok(self
            .query_as("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn consumables(&self, device: &str) -> Result<Vec<ConsumableRow>> {
        Ok(self
            .query_as("SELECT * FROM consumables WHERE device_id = $1 ORDER BY name")
            .bind(device)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Total telemetry points (metric values) stored.
    pub async fn points(&self) -> Result<i64> {
        let (n,): (i64,) = self
            .query_as("SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM devices")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Sequence numbers are u64 on the wire and i64 in SQL; values past i64::MAX
/// are clamped (an agent would need 292 000 years at 1 kHz to get there).
fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod tests;
