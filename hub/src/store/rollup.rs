//! Downsampled history: 1-minute and 1-hour buckets per device and metric
//! (count, sum, min, max, last), kept exact under late data, duplicates,
//! several hubs on one store and kills at any moment; retention pruning;
//! and the reads behind the telemetry endpoint.
//!
//! **Invariant.** For every bucket, the stored rollup plus the samples that
//! `rollup_pending` still points to equals the stored raw samples of that
//! bucket, counted once each. It holds because:
//! - a sample's pointer is written in the transaction that stores the
//!   sample ([`Store::insert_batch`]), and only a sample new to the store
//!   (deduplicated by `(device, seq)`) gets one;
//! - a pointer is deleted only in the transaction that adds its samples to
//!   the rollups ([`Store::roll_up_shard`]); that transaction checks it
//!   deleted every row it claimed, so of two hubs merging the same rows one
//!   commits and the other rolls back;
//! - merges are additive (sums and counts added, min and max kept, the last
//!   value chosen by `(ts_ms, seq)`), so the order of merges does not matter;
//! - raw samples are pruned only below the oldest pending sample time, in
//!   one statement that reads the pending rows and deletes, and a device's
//!   highest pruned sequence number (`devices.pruned_seq`) makes a later
//!   copy of a pruned sample a duplicate rather than a new sample.
//!
//! Nothing here runs per point on the ingest path: a telemetry transaction
//! adds one pending row per device shard ([`SHARDS`]) holding its new
//! samples' keys. The merge reads the samples back in the background,
//! coalescing many transactions per bucket, and writes one shard at a time,
//! so it holds SQLite's write lock briefly.

use super::sql::{greatest, placeholder, push_tuples};
use super::{Result, Store, StoreError};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Device shards of the pending rows: a merge transaction covers one, and
/// writes about one rollup row per device of its shard, metric, bucket and
/// resolution, however few samples it merges. So the shards bound how long a
/// merge holds the store's one writer: with 5000 devices of 20 metrics, 64
/// shards make a merge 3000–5000 rows and 10–20 ms (16 made it 12 000 rows
/// and 30–50 ms, and the p99 of publish-to-queryable in `wearline bench
/// ingest --rate 4500` 88 ms rather than 65). Each telemetry transaction
/// writes one small pending row per shard it touches.
pub const SHARDS: i64 = 64;

/// Pending rows a merge transaction claims at most. The rows of all shards
/// interleave in `rollup_pending`, so deleting many of one shard's rows
/// dirties pages all over the table: claiming a minute of a shard (about
/// 3000 rows at 4500 messages/s) made each merge's commit 45–60 ms…
const CLAIM_ROWS: i64 = 256;
/// …and points it stops claiming at (a single row may hold more).
const CLAIM_POINTS: i64 = 200_000;
/// Sequence numbers per `IN` list.
const SEQ_CHUNK: usize = 500;
/// Rollup rows per upsert statement (10 parameters each).
const UPSERT_CHUNK: usize = 1000;

/// The shard of a device: FNV-1a of its id, stable across hubs and versions.
pub fn shard_of(device: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in device.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as i64
}

/// A resolution of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }

    /// Bucket width in milliseconds (`None` for raw samples).
    pub fn width_ms(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::Minute => Some(60_000),
            Resolution::Hour => Some(3_600_000),
        }
    }

    fn table(self) -> &'static str {
        match self {
            Resolution::Raw => "samples",
            Resolution::Minute => "rollup_1m",
            Resolution::Hour => "rollup_1h",
        }
    }
}

/// The start of the bucket of width `width_ms` holding `ts_ms`.
pub fn bucket_start(ts_ms: i64, width_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(width_ms)
}

/// One bucket's figures. Merging is associative and commutative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Time and sequence number of the last sample (greatest `(ts_ms, seq)`).
    pub last_ts_ms: i64,
    pub last_seq: i64,
    pub last: f64,
}

impl Agg {
    /// The figures of one sample.
    pub fn of(ts_ms: i64, seq: i64, v: f64) -> Agg {
        Agg {
            count: 1,
            sum: v,
            min: v,
            max: v,
            last_ts_ms: ts_ms,
            last_seq: seq,
            last: v,
        }
    }

    pub fn merge(&mut self, o: &Agg) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if (o.last_ts_ms, o.last_seq) > (self.last_ts_ms, self.last_seq) {
            self.last_ts_ms = o.last_ts_ms;
            self.last_seq = o.last_seq;
            self.last = o.last;
        }
    }
}

/// How long each resolution is kept (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Option<Duration>,
    pub minute: Option<Duration>,
    pub hour: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw: Some(Duration::from_secs(7 * 86_400)),
            minute: Some(Duration::from_secs(90 * 86_400)),
            hour: None,
        }
    }
}

impl Retention {
    pub fn of(&self, r: Resolution) -> Option<Duration> {
        match r {
            Resolution::Raw => self.raw,
            Resolution::Minute => self.minute,
            Resolution::Hour => self.hour,
        }
    }

    /// The oldest time `r` still holds at `now_ms` (`None`: everything).
    pub fn horizon_ms(&self, r: Resolution, now_ms: i64) -> Option<i64> {
        self.of(r)
            .map(|d| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
}

/// What one merge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Pending rows consumed.
    pub pending_rows: u64,
    /// Samples added to the rollups.
    pub samples: u64,
    /// Rollup rows written (both resolutions).
    pub rows: u64,
    /// Claims another hub took first (its merge committed, ours rolled back).
    pub lost: u64,
}

/// What one pruning round deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub raw: u64,
    pub minute: u64,
    pub hour: u64,
}

/// A stored sample read back: time, sequence number, values.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub ts_ms: i64,
    pub seq: i64,
    pub values: BTreeMap<String, f64>,
}

/// A rollup row read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RollupRow {
    pub metric: String,
    pub bucket_ms: i64,
    pub n: i64,
    pub sum_v: f64,
    pub min_v: f64,
    pub max_v: f64,
    pub last_v: f64,
}

/// New samples of one transaction and shard: keys by device, and the
/// figures that bound a claim and pruning.
#[derive(Default)]
pub(super) struct PendingShard<'a> {
    pub(super) min_ts_ms: i64,
    pub(super) points: i64,
    pub(super) keys: BTreeMap<&'a str, Vec<i64>>,
}

impl<'a> PendingShard<'a> {
    pub(super) fn add(&mut self, device: &'a str, seq: i64, ts_ms: i64, points: usize) {
        if self.keys.is_empty() || ts_ms < self.min_ts_ms {
            self.min_ts_ms = ts_ms;
        }
        self.points += points as i64;
        self.keys.entry(device).or_default().push(seq);
    }
}

/// Rollup deltas keyed by (device, bucket start, metric).
type Deltas = BTreeMap<(String, i64, String), Agg>;

impl Store {
    /// Writes the pending rows of one telemetry transaction (one per shard
    /// with new samples).
    pub(super) async fn insert_pending(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        shards: BTreeMap<i64, PendingShard<'_>>,
    ) -> Result<()> {
        if shards.is_empty() {
            return Ok(());
        }
        let mut sql = String::from("INSERT INTO rollup_pending (shard, min_ts_ms, points, keys) VALUES ");
        push_tuples(&mut sql, self.backend, shards.len(), 4, 1);
        let mut q = self.query(AssertSqlSafe(sql));
        for (shard, p) in shards {
            let keys: Vec<(&str, Vec<i64>)> = p.keys.into_iter().collect();
            q = q
                .bind(shard)
                .bind(p.min_ts_ms)
                .bind(p.points)
                .bind(serde_json::to_string(&keys).unwrap_or_default());
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Rolls up everything pending, shard after shard (starting at `first`,
    /// so hubs sharing the store tend to start apart). Buckets before a
    /// resolution's retention horizon are left out: pruning already took
    /// or will take them, and a late sample must not bring one back partial.
    ///
    /// After each merge it pauses `pace` times as long as the merge took
    /// (0: no pause), so that writes queued meanwhile (telemetry) go first
    /// rather than wait behind a burst of merges.
    pub async fn roll_up(&self, first: i64, retention: &Retention, now_ms: i64, pace: u32) -> Result<Merged> {
        let mut total = Merged::default();
        for k in 0..SHARDS {
            let shard = (first + k).rem_euclid(SHARDS);
            loop {
                let started = std::time::Instant::now();
                let m = self.roll_up_shard(shard, retention, now_ms).await?;
                if pace > 0 && m.pending_rows > 0 {
                    tokio::time::sleep(started.elapsed() * pace).await;
                }
                total.pending_rows += m.pending_rows;
                total.samples += m.samples;
                total.rows += m.rows;
                total.lost += m.lost;
                if m.pending_rows == 0 && m.lost == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// One merge of one shard: claims its oldest pending rows (bounded),
    /// reads their samples, and in one transaction deletes the rows and adds
    /// the samples to both resolutions. If another hub consumed any claimed
    /// row first, nothing is written (`lost`).
    pub async fn roll_up_shard(&self, shard: i64, retention: &Retention, now_ms: i64) -> Result<Merged> {
        let rows: Vec<(i64, i64, String)> = self
            .query_as("SELECT id, points, keys FROM rollup_pending WHERE shard = $1 ORDER BY id LIMIT $2")
            .bind(shard)
            .bind(CLAIM_ROWS)
            .fetch_all(&self.pool)
            .await?;
        let mut ids = Vec::new();
        let mut points = 0;
        let mut keys: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for (id, p, k) in rows {
            if points >= CLAIM_POINTS {
                break;
            }
            let parsed: Vec<(String, Vec<i64>)> = serde_json::from_str(&k)
                .map_err(|e| StoreError::Corrupt(format!("rollup_pending row {id}: {e}")))?;
            for (device, seqs) in parsed {
                keys.entry(device).or_default().extend(seqs);
            }
            ids.push(id);
            points += p;
        }
        if ids.is_empty() {
            return Ok(Merged::default());
        }
        let mut minute: Deltas = BTreeMap::new();
        let mut samples = 0u64;
        for (device, seqs) in &keys {
            let seqs: Vec<i64> = seqs.iter().copied().collect();
            for chunk in seqs.chunks(SEQ_CHUNK) {
                // One parameter style per statement: SQLite numbers `?` by
                // position whatever `$1` came before.
                let mut sql = format!(
                    "SELECT seq, ts_ms, body FROM samples WHERE device_id = {} AND seq IN ",
                    placeholder(self.backend, 1)
                );
                push_tuples(&mut sql, self.backend, 1, chunk.len(), 2);
                let mut q = self.query_as(AssertSqlSafe(sql)).bind(device.as_str());
                for s in chunk {
                    q = q.bind(*s);
                }
                let found: Vec<(i64, i64, String)> = q.fetch_all(&self.pool).await?;
                for (seq, ts, body) in found {
                    let values: BTreeMap<String, f64> = serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(format!("sample ({device}, {seq}): {e}")))?;
                    samples += 1;
                    let b = bucket_start(ts, 60_000);
                    for (metric, v) in values {
                        let a = Agg::of(ts, seq, v);
                        minute
                            .entry((device.clone(), b, metric))
                            .and_modify(|x| x.merge(&a))
                            .or_insert(a);
                    }
                }
            }
        }
        let mut hour: Deltas = BTreeMap::new();
        for ((device, b, metric), a) in &minute {
            hour.entry((device.clone(), bucket_start(*b, 3_600_000), metric.clone()))
                .and_modify(|x| x.merge(a))
                .or_insert(*a);
        }
        for (res, deltas) in [(Resolution::Minute, &mut minute), (Resolution::Hour, &mut hour)] {
            if let Some(h) = retention.horizon_ms(res, now_ms) {
                let width = res.width_ms().unwrap_or(1);
                // A bucket that ends before the horizon is pruned, or will be.
                deltas.retain(|(_, b, _), _| b + width > h);
            }
        }
        let mut tx = self.writer.begin().await?;
        let mut sql = String::from("DELETE FROM rollup_pending WHERE id IN ");
        push_tuples(&mut sql, self.backend, 1, ids.len(), 1);
        let mut q = self.query(AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        let deleted = q.execute(&mut *tx).await?.rows_affected();
        if deleted != ids.len() as u64 {
            tx.rollback().await?;
            return Ok(Merged {
                lost: 1,
                ..Merged::default()
            });
        }
        let mut written = 0u64;
        for (res, deltas) in [(Resolution::Minute, &minute), (Resolution::Hour, &hour)] {
            let rows: Vec<_> = deltas.iter().collect();
            for chunk in rows.chunks(UPSERT_CHUNK) {
                self.upsert_rollups(&mut tx, res, chunk).await?;
                written += chunk.len() as u64;
            }
        }
        tx.commit().await?;
        Ok(Merged {
            pending_rows: ids.len() as u64,
            samples,
            rows: written,
            lost: 0,
        })
    }

    /// Adds deltas to a rollup table (rows in key order, so two hubs
    /// writing the same rows on PostgreSQL lock them in the same order).
    async fn upsert_rollups(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        res: Resolution,
        rows: &[(&(String, i64, String), &Agg)],
    ) -> Result<()> {
        let t = res.table();
        let newer = format!(
            "(excluded.last_ts_ms > {t}.last_ts_ms OR (excluded.last_ts_ms = {t}.last_ts_ms AND excluded.last_seq > {t}.last_seq))"
        );
        let mut sql = format!(
            "INSERT INTO {t} (device_id, bucket_ms, metric, n, sum_v, min_v, max_v, last_ts_ms, last_seq, last_v) VALUES "
        );
        push_tuples(&mut sql, self.backend, rows.len(), 10, 1);
        sql.push_str(&format!(
            " ON CONFLICT (device_id, bucket_ms, metric) DO UPDATE SET n = {t}.n + excluded.n,
               sum_v = {t}.sum_v + excluded.sum_v,
               min_v = CASE WHEN excluded.min_v < {t}.min_v THEN excluded.min_v ELSE {t}.min_v END,
               max_v = {max},
               last_v = CASE WHEN {newer} THEN excluded.last_v ELSE {t}.last_v END,
               last_seq = CASE WHEN {newer} THEN excluded.last_seq ELSE {t}.last_seq END,
               last_ts_ms = CASE WHEN {newer} THEN excluded.last_ts_ms ELSE {t}.last_ts_ms END",
            max = greatest(&format!("{t}.max_v"), "excluded.max_v"),
        ));
        let mut q = self.query(AssertSqlSafe(sql));
        for ((device, b, metric), a) in rows {
            q = q
                .bind(device.as_str())
                .bind(*b)
                .bind(metric.as_str())
                .bind(a.count)
                .bind(a.sum)
                .bind(a.min)
                .bind(a.max)
                .bind(a.last_ts_ms)
                .bind(a.last_seq)
                .bind(a.last);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Samples stored and not yet rolled up.
    pub async fn pending_samples(&self) -> Result<i64> {
        let rows: Vec<(String,)> = self
            .query_as("SELECT keys FROM rollup_pending")
            .fetch_all(&self.pool)
            .await?;
        let mut n = 0;
        for (k,) in rows {
            let parsed: Vec<(String, Vec<i64>)> =
                serde_json::from_str(&k).map_err(|e| StoreError::Corrupt(format!("rollup_pending: {e}")))?;
            n += parsed.iter().map(|(_, s)| s.len() as i64).sum::<i64>();
        }
        Ok(n)
    }

    /// One pruning round at `now_ms`: per device, deletes what is past each
    /// resolution's retention, in statements of at most `batch` rows (each
    /// its own short transaction). Raw samples are deleted only below the
    /// oldest time still pending a rollup.
    pub async fn prune(&self, retention: &Retention, now_ms: i64, batch: usize) -> Result<Pruned> {
        let devices: Vec<(String,)> = self
            .query_as("SELECT id FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Pruned::default();
        for (device,) in &devices {
            if let Some(cut) = retention.horizon_ms(Resolution::Raw, now_ms) {
                out.raw += self.prune_raw(device, cut, batch).await?;
            }
            for res in [Resolution::Minute, Resolution::Hour] {
                if let Some(cut) = retention.horizon_ms(res, now_ms) {
                    let n = self.prune_rollups(res, device, cut, batch).await?;
                    match res {
                        Resolution::Minute => out.minute += n,
                        _ => out.hour += n,
                    }
                }
            }
        }
        Ok(out)
    }

    /// Deletes `device`'s raw samples older than `cut` (and than every
    /// pending sample), oldest sequence numbers first, window by window;
    /// stops at a window with nothing to delete.
    async fn prune_raw(&self, device: &str, cut: i64, batch: usize) -> Result<u64> {
        let mut after = i64::MIN;
        let mut deleted = 0u64;
        loop {
            let window: Vec<(i64, i64)> = self
                .query_as(
                    "SELECT seq, ts_ms FROM samples WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(device)
                .bind(after)
                .bind(batch as i64)
                .fetch_all(&self.pool)
                .await?;
            let (Some(&(lo, _)), Some(&(hi, _))) = (window.first(), window.last()) else {
                return Ok(deleted);
            };
            if !window.iter().any(|&(_, ts)| ts < cut) {
                return Ok(deleted);
            }
            let mut tx = self.writer.begin().await?;
            // One statement reads the pending rows and deletes, so a sample
            // stored meanwhile is either seen as pending or not seen at all.
            let gone: Vec<(i64,)> = self
                .query_as(
                    "DELETE FROM samples WHERE device_id = $1 AND seq >= $2 AND seq <= $3 AND ts_ms < $4
                       AND ts_ms < COALESCE((SELECT MIN(min_ts_ms) FROM rollup_pending), $4)
                     RETURNING seq",
                )
                .bind(device)
                .bind(lo)
                .bind(hi)
                .bind(cut)
                .fetch_all(&mut *tx)
                .await?;
            let Some(top) = gone.iter().map(|(s,)| *s).max() else {
                // All of it waits for a rollup: later.
                tx.rollback().await?;
                return Ok(deleted);
            };
            self.query(AssertSqlSafe(format!(
                "UPDATE devices SET pruned_seq = {} WHERE id = $2",
                greatest("pruned_seq", "$1")
            )))
            .bind(top)
            .bind(device)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            deleted += gone.len() as u64;
            after = hi;
            tokio::task::yield_now().await;
        }
    }

    /// Deletes `device`'s `res` buckets that end before `cut`, `batch` at a time.
    async fn prune_rollups(&self, res: Resolution, device: &str, cut: i64, batch: usize) -> Result<u64> {
        let t = res.table();
        let width = res.width_ms().unwrap_or(1);
        let mut deleted = 0u64;
        loop {
            let n = self
                .query(AssertSqlSafe(format!(
                    "DELETE FROM {t} WHERE device_id = $1 AND (bucket_ms, metric) IN
                       (SELECT bucket_ms, metric FROM {t} WHERE device_id = $2 AND bucket_ms < $3
                        ORDER BY bucket_ms LIMIT $4)"
                )))
                .bind(device)
                .bind(device)
                .bind(cut - width + 1)
                .bind(batch as i64)
                .execute(&self.writer)
                .await?
                .rows_affected();
            deleted += n;
            if n < batch as u64 {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    /// `device`'s raw samples in `[from_ms, to_ms)`, the newest `limit`
    /// (more are cut), oldest first; with `metric`, only samples that have it.
    pub async fn raw_history(
        &self,
        device: &str,
        metric: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<RawPoint>> {
        let rows: Vec<(i64, i64, String)> = self
            .query_as(
                "SELECT seq, ts_ms, body FROM samples WHERE device_id = $1 AND ts_ms >= $2 AND ts_ms < $3
                 ORDER BY ts_ms DESC, seq DESC LIMIT $4",
            )
            .bind(device)
            .bind(from_ms)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (seq, ts_ms, body) in rows.into_iter().rev() {
            let mut values: BTreeMap<String, f64> = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("sample ({device}, {seq}): {e}")))?;
            if let Some(m) = metric {
                values.retain(|k, _| k == m);
                if values.is_empty() {
                    continue;
                }
            }
            out.push(RawPoint { ts_ms, seq, values });
        }
        Ok(out)
    }

    /// `device`'s `res` buckets starting in `[from_ms, to_ms)`, per metric
    /// the newest `limit`, ordered by metric then time.
    pub async fn rollup_history(
        &self,
        res: Resolution,
        device: &str,
        metric: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<RollupRow>> {
        let t = res.table();
        let q = match metric {
            Some(m) => self
                .query_as(AssertSqlSafe(format!(
                    "SELECT metric, bucket_ms, n, sum_v, min_v, max_v, last_v FROM {t}
                     WHERE device_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3 AND metric = $4
                     ORDER BY bucket_ms DESC LIMIT $5"
                )))
                .bind(device)
                .bind(from_ms)
                .bind(to_ms)
                .bind(m),
            None => self
                .query_as(AssertSqlSafe(format!(
                    "SELECT metric, bucket_ms, n, sum_v, min_v, max_v, last_v FROM (
                       SELECT metric, bucket_ms, n, sum_v, min_v, max_v, last_v,
                              ROW_NUMBER() OVER (PARTITION BY metric ORDER BY bucket_ms DESC) AS rn
                       FROM {t} WHERE device_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3) w
                     WHERE rn <= $4"
                )))
                .bind(device)
                .bind(from_ms)
                .bind(to_ms),
        };
        let mut rows: Vec<RollupRow> = q.bind(limit).fetch_all(&self.pool).await?;
        rows.sort_by(|a, b| (&a.metric, a.bucket_ms).cmp(&(&b.metric, b.bucket_ms)));
        Ok(rows)
    }

    /// For choosing a resolution: the most raw samples and the most
    /// 1-minute buckets any one series (metric) has in `[from_ms, to_ms)`,
    /// from the 1-minute rollups.
    pub async fn history_sizes(
        &self,
        device: &str,
        metric: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(i64, i64)> {
        let rows: Vec<(String, i64, i64)> = self
            .query_as(
                "SELECT metric, CAST(SUM(n) AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM rollup_1m
                 WHERE device_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3 GROUP BY metric",
            )
            .bind(device)
            .bind(bucket_start(from_ms, 60_000))
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(m, _, _)| metric.is_none_or(|want| want == m))
            .fold((0, 0), |(r, b), (_, n, c)| (r.max(n), b.max(c))))
    }
}
