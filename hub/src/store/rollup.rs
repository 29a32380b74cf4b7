//! Downsampled history: 1-minute and 1-hour buckets per device and metric
//! (count, sum, min, max, last), kept exact under late data, duplicates,
//! several hubs on one store and kills at any moment; retention pruning;
//! and the reads behind the telemetry endpoint.
//!
//! **What is not rolled up yet.** Each device has a watermark
//! (`devices.rolled_seq`): its samples above it are not in the rollups; its
//! samples at or below it are, except the late ones that `rollup_pending`
//! lists (a sample stored after a merge passed its sequence number).
//!
//! **Invariant.** For every bucket, the stored rollup plus the device's
//! samples above its watermark plus the samples that `rollup_pending` points
//! to equals the stored raw samples of that bucket, counted once each. It
//! holds because:
//! - a sample is new to the store once (deduplicated by `(device, seq)`);
//!   the transaction that stores it reads its device's watermark under the
//!   device row's lock ([`Store::insert_batch`]) and, if the sample is at or
//!   below it, writes its pointer;
//! - a merge ([`Store::roll_up_shard`]) reads a device's samples in
//!   `(watermark, hi]` and, in the transaction that adds them to the
//!   rollups, moves the watermark to `hi` only if it is still where the merge
//!   read it, and adds any sample stored inside the range since the read
//!   (read again inside the transaction); a pointer is deleted only in the
//!   transaction that adds its samples, which checks it deleted every row it
//!   claimed. So of two hubs merging the same samples one commits and the
//!   other rolls back, and a late sample stored inside a range after the
//!   read is added once;
//! - merges are additive (sums and counts added, min and max kept, the last
//!   value chosen by `(ts_ms, seq)`), so the order of merges does not matter;
//! - raw samples are pruned only at or below their device's watermark and
//!   below the oldest pending sample time, in one statement that reads both
//!   and deletes, and a device's highest pruned sequence number
//!   (`devices.pruned_seq`) makes a later copy of a pruned sample a
//!   duplicate rather than a new sample.
//!
//! Nothing here runs per point on the ingest path, and samples that arrive
//! in order cost it nothing at all: the merge reads each device's new range
//! back in the background, coalescing many transactions per bucket, and
//! writes one device shard ([`SHARDS`]) at a time, so it holds SQLite's
//! write lock briefly.

use super::sql::{greatest, placeholder, push_tuples, row_chunks};
use super::{Backend, Result, Store, StoreError};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Device shards: the history task merges one every `rollup_every /
/// SHARDS`, so a period's work is spread evenly and each bucket is written
/// once a period. A merge reads its shard's devices (about 80 of 5000: a
/// minute of them at 5000 messages/s is about 4700 samples, 90 ms of
/// reading beside the writer) and writes them in transactions of
/// [`GROUP_ROWS`].
pub const SHARDS: i64 = 64;

/// Samples a merge reads above the watermarks at most (200 000 points at 20
/// metrics a sample); the shard's next merge takes the rest.
const CLAIM_SAMPLES: i64 = 10_000;
/// Pending rows (late samples) a merge claims at most…
const CLAIM_ROWS: i64 = 256;
/// …and points it stops claiming at (a single row may hold more).
const CLAIM_POINTS: i64 = 200_000;
/// 1-minute rows after which a merge starts another transaction for its
/// next devices: about 1500 rows with the hours, 8–10 ms of the writer
/// (a shard's minute at 5000 messages/s in one transaction, 4700 rows,
/// held it 31 ms on average and up to 73 ms).
const GROUP_ROWS: usize = 1000;
/// Watermarks moved per statement (5 parameters each).
const RANGE_CHUNK: usize = 1000;
/// Merges of one shard in a row that another writer makes lose before its
/// turn ends (its next turn retries).
const LOST_RETRIES: u32 = 3;
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
    /// The merge stopped at its budget: more samples wait (of several
    /// shards' merges: one of them did).
    pub more: bool,
}

impl std::ops::AddAssign for Merged {
    fn add_assign(&mut self, m: Merged) {
        self.pending_rows += m.pending_rows;
        self.samples += m.samples;
        self.rows += m.rows;
        self.lost += m.lost;
        self.more |= m.more;
    }
}

/// A device with samples above its watermark: the watermark, and its
/// highest sequence number stored.
#[derive(Debug)]
pub(super) struct Behind {
    device: String,
    rolled: i64,
    last: i64,
}

/// The samples a merge read for one device: sequence numbers in
/// `(rolled, hi]`, how many, and their points.
#[derive(Debug)]
struct Range {
    device: String,
    rolled: i64,
    hi: i64,
    samples: i64,
    points: i64,
    /// The sequence numbers read, ascending.
    seqs: Vec<i64>,
}

/// A merge read and not yet written: its transactions, and whether it
/// stopped at its budget.
pub(super) struct ReadMerge {
    groups: Vec<Group>,
    more: bool,
    /// What the read left out, for samples the write finds in its ranges.
    retention: Retention,
    now_ms: i64,
}

/// What one merge transaction writes: either some devices' ranges (a
/// device's range is merged whole or not at all, so devices split freely
/// into transactions) or the claimed pending rows, whose samples may be of
/// any device of the shard.
#[derive(Default)]
struct Group {
    ranges: Vec<Range>,
    ids: Vec<i64>,
    samples: u64,
    minute: Deltas,
    hour: Deltas,
}

impl Group {
    /// Adds the hour deltas and leaves out buckets past retention.
    fn finish(mut self, retention: &Retention, now_ms: i64) -> Group {
        for ((device, b, metric), a) in &self.minute {
            add_agg(
                &mut self.hour,
                (device.clone(), bucket_start(*b, 3_600_000), metric.clone()),
                *a,
            );
        }
        for (res, deltas) in [
            (Resolution::Minute, &mut self.minute),
            (Resolution::Hour, &mut self.hour),
        ] {
            if let Some(h) = retention.horizon_ms(res, now_ms) {
                let width = res.width_ms().unwrap_or(1);
                // A bucket that ends before the horizon is pruned, or will be.
                deltas.retain(|(_, b, _), _| b + width > h);
            }
        }
        self
    }
}

/// Merges `a` into the delta at `key`.
fn add_agg(deltas: &mut Deltas, key: (String, i64, String), a: Agg) {
    deltas.entry(key).and_modify(|x| x.merge(&a)).or_insert(a);
}

/// Adds a stored sample to the 1-minute deltas; returns its points.
fn add_sample(minute: &mut Deltas, device: &str, seq: i64, ts_ms: i64, body: &str) -> Result<i64> {
    let values: BTreeMap<String, f64> = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("sample ({device}, {seq}): {e}")))?;
    let points = values.len() as i64;
    let b = bucket_start(ts_ms, 60_000);
    for (metric, v) in values {
        add_agg(minute, (device.to_string(), b, metric), Agg::of(ts_ms, seq, v));
    }
    Ok(points)
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

/// Late samples of one transaction and shard: keys by device, and the
/// figures that bound a claim and pruning.
#[derive(Default)]
struct PendingShard<'a> {
    min_ts_ms: i64,
    points: i64,
    keys: BTreeMap<&'a str, Vec<i64>>,
}

impl<'a> PendingShard<'a> {
    fn add(&mut self, device: &'a str, seq: i64, ts_ms: i64, points: usize) {
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
    /// Hands a telemetry transaction's late samples (`(device, seq, ts_ms,
    /// points)`, each at or below its device's watermark) to the merge: one
    /// pending row per shard, and their points off the devices' backlog.
    pub(super) async fn insert_pending(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        late: &[(&str, i64, i64, usize)],
    ) -> Result<()> {
        if late.is_empty() {
            return Ok(());
        }
        let mut shards: BTreeMap<i64, PendingShard<'_>> = BTreeMap::new();
        let mut points: BTreeMap<&str, i64> = BTreeMap::new();
        for &(device, seq, ts_ms, n) in late {
            shards
                .entry(shard_of(device))
                .or_default()
                .add(device, seq, ts_ms, n);
            *points.entry(device).or_default() += n as i64;
        }
        for (device, n) in points {
            self.query("UPDATE devices SET rolled_points = rolled_points + $1 WHERE id = $2")
                .bind(n)
                .bind(device)
                .execute(&mut **tx)
                .await?;
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
    /// so hubs sharing the store tend to start apart); see
    /// [`Store::roll_up_shard`].
    pub async fn roll_up(&self, first: i64, retention: &Retention, now_ms: i64, pace: u32) -> Result<Merged> {
        let mut total = Merged::default();
        for k in 0..SHARDS {
            total += self
                .roll_up_shard((first + k).rem_euclid(SHARDS), retention, now_ms, pace)
                .await?;
        }
        Ok(total)
    }

    /// Rolls up what one shard has pending: a merge, and more while a merge
    /// stops at its budget or loses to another writer (a few times). Buckets
    /// before a resolution's retention horizon are left out: pruning already
    /// took or will take them, and a late sample must not bring one back
    /// partial.
    ///
    /// After each of its transactions a merge pauses `pace` times as long
    /// (0: no pause), so that writes queued meanwhile (telemetry) go first
    /// rather than wait behind a burst of merges.
    pub async fn roll_up_shard(
        &self,
        shard: i64,
        retention: &Retention,
        now_ms: i64,
        pace: u32,
    ) -> Result<Merged> {
        let mut total = Merged::default();
        let mut lost_in_a_row = 0;
        loop {
            let devices = self.devices_behind(shard).await?;
            let m = self.merge_shard(shard, &devices, retention, now_ms, pace).await?;
            total += m;
            // What waits after this merge, not after any earlier one.
            total.more = m.more;
            lost_in_a_row = if m.lost > 0 { lost_in_a_row + 1 } else { 0 };
            if !(m.more || m.lost > 0) || lost_in_a_row > LOST_RETRIES {
                return Ok(total);
            }
        }
    }

    /// The devices of `shard` with samples above their watermark. Scans the
    /// devices (one row each), in id order.
    pub(super) async fn devices_behind(&self, shard: i64) -> Result<Vec<Behind>> {
        let rows: Vec<(String, i64, i64)> = self
            .query_as("SELECT id, rolled_seq, last_seq FROM devices WHERE last_seq > rolled_seq ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(device, _, _)| shard_of(device) == shard)
            .map(|(device, rolled, last)| Behind { device, rolled, last })
            .collect())
    }

    /// One merge of one shard: reads the samples of `devices` above their
    /// watermarks and the samples of the shard's oldest pending rows (both
    /// bounded), then writes them in transactions of about [`GROUP_ROWS`]
    /// (a device's range, or the pending rows, whole in one), each moving
    /// its watermarks or deleting its pending rows and adding its samples to
    /// both resolutions (with any sample stored inside a range since the
    /// read). A transaction whose watermark or pending row another writer
    /// took first writes nothing (`lost`).
    async fn merge_shard(
        &self,
        shard: i64,
        devices: &[Behind],
        retention: &Retention,
        now_ms: i64,
        pace: u32,
    ) -> Result<Merged> {
        match self.read_merge(shard, devices, retention, now_ms).await? {
            Some(m) => self.commit_merge(m, pace).await,
            None => Ok(Merged::default()),
        }
    }

    /// The reading half of [`Store::merge_shard`] (`None`: nothing to merge).
    pub(super) async fn read_merge(
        &self,
        shard: i64,
        devices: &[Behind],
        retention: &Retention,
        now_ms: i64,
    ) -> Result<Option<ReadMerge>> {
        let mut groups: Vec<Group> = Vec::new();
        let mut group = Group::default();
        let mut more = false;
        let mut budget = CLAIM_SAMPLES;
        for b in devices {
            if budget == 0 {
                more = true;
                break;
            }
            let rows: Vec<(i64, i64, String)> = self
                .query_as(
                    "SELECT seq, ts_ms, body FROM samples WHERE device_id = $1 AND seq > $2 AND seq <= $3
                     ORDER BY seq LIMIT $4",
                )
                .bind(b.device.as_str())
                .bind(b.rolled)
                .bind(b.last)
                .bind(budget)
                .fetch_all(&self.pool)
                .await?;
            let hi = match rows.last() {
                Some(&(seq, _, _)) if rows.len() as i64 == budget => {
                    more = true;
                    seq
                }
                _ => b.last,
            };
            budget -= rows.len() as i64;
            let mut range = Range {
                device: b.device.clone(),
                rolled: b.rolled,
                hi,
                samples: rows.len() as i64,
                points: 0,
                seqs: rows.iter().map(|&(seq, _, _)| seq).collect(),
            };
            for (seq, ts, body) in rows {
                range.points += add_sample(&mut group.minute, &b.device, seq, ts, &body)?;
            }
            group.samples += range.samples as u64;
            group.ranges.push(range);
            if group.minute.len() >= GROUP_ROWS {
                groups.push(std::mem::take(&mut group).finish(retention, now_ms));
            }
        }
        if !group.ranges.is_empty() {
            groups.push(group.finish(retention, now_ms));
        }
        let (ids, keys, claim_full) = self.claim_pending(shard).await?;
        more |= claim_full;
        let mut pending = Group {
            ids,
            ..Group::default()
        };
        for (device, seqs) in &keys {
            let seqs: Vec<i64> = seqs.iter().copied().collect();
            for chunk in row_chunks(self.backend, &seqs, SEQ_CHUNK) {
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
                    add_sample(&mut pending.minute, device, seq, ts, &body)?;
                    pending.samples += 1;
                }
            }
        }
        if !pending.ids.is_empty() {
            groups.push(pending.finish(retention, now_ms));
        }
        Ok((!groups.is_empty()).then_some(ReadMerge {
            groups,
            more,
            retention: *retention,
            now_ms,
        }))
    }

    /// The writing half of [`Store::merge_shard`]: one transaction per
    /// group, each followed by a pause `pace` times as long (0: none).
    pub(super) async fn commit_merge(&self, m: ReadMerge, pace: u32) -> Result<Merged> {
        let mut out = Merged {
            more: m.more,
            ..Merged::default()
        };
        for mut g in m.groups {
            let started = std::time::Instant::now();
            match self.commit_group(&mut g, &m.retention, m.now_ms).await? {
                Some(rows) => {
                    out.pending_rows += g.ids.len() as u64;
                    out.samples += g.samples;
                    out.rows += rows;
                }
                None => out.lost += 1,
            }
            if pace > 0 {
                tokio::time::sleep(started.elapsed() * pace).await;
            }
        }
        Ok(out)
    }

    /// One group's transaction: the rollup rows written, or `None` if
    /// another writer took part of it first (nothing written). Samples
    /// stored inside its ranges since the read are added to it.
    async fn commit_group(&self, g: &mut Group, retention: &Retention, now_ms: i64) -> Result<Option<u64>> {
        let mut tx = self.writer.begin().await?;
        if !g.ids.is_empty() {
            let mut sql = String::from("DELETE FROM rollup_pending WHERE id IN ");
            push_tuples(&mut sql, self.backend, 1, g.ids.len(), 1);
            let mut q = self.query(AssertSqlSafe(sql));
            for id in &g.ids {
                q = q.bind(*id);
            }
            let deleted = q.execute(&mut *tx).await?.rows_affected();
            if deleted != g.ids.len() as u64 {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        let mut late = Group::default();
        for chunk in row_chunks(self.backend, &g.ranges, RANGE_CHUNK) {
            let Some(found) = self.advance_watermarks(&mut tx, chunk, &mut late.minute).await? else {
                tx.rollback().await?;
                return Ok(None);
            };
            late.samples += found;
        }
        if late.samples > 0 {
            let late = late.finish(retention, now_ms);
            g.samples += late.samples;
            for (mine, more) in [(&mut g.minute, late.minute), (&mut g.hour, late.hour)] {
                for (k, a) in more {
                    add_agg(mine, k, a);
                }
            }
        }
        let mut written = 0u64;
        for (res, deltas) in [(Resolution::Minute, &g.minute), (Resolution::Hour, &g.hour)] {
            let rows: Vec<_> = deltas.iter().collect();
            for chunk in row_chunks(self.backend, &rows, UPSERT_CHUNK) {
                self.upsert_rollups(&mut tx, res, chunk).await?;
                written += chunk.len() as u64;
            }
        }
        tx.commit().await?;
        Ok(Some(written))
    }

    /// The shard's oldest pending rows (at most [`CLAIM_ROWS`], and
    /// [`CLAIM_POINTS`] points or one row): their ids, their samples' keys
    /// by device, and whether more rows may wait.
    async fn claim_pending(&self, shard: i64) -> Result<(Vec<i64>, BTreeMap<String, BTreeSet<i64>>, bool)> {
        let rows: Vec<(i64, i64, String)> = self
            .query_as("SELECT id, points, keys FROM rollup_pending WHERE shard = $1 ORDER BY id LIMIT $2")
            .bind(shard)
            .bind(CLAIM_ROWS)
            .fetch_all(&self.pool)
            .await?;
        let mut full = rows.len() as i64 == CLAIM_ROWS;
        let mut ids = Vec::new();
        let mut points = 0;
        let mut keys: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for (id, p, k) in rows {
            if points >= CLAIM_POINTS {
                full = true;
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
        Ok((ids, keys, full))
    }

    /// Moves the watermarks of `ranges` from `rolled` to `hi`, if no other
    /// writer moved them first (`None`: nothing may be written). A sample
    /// stored inside a range after the merge read it (a late one, which saw
    /// the old watermark) is read here and added to `late` (the count of
    /// them is returned), its points counted into the watermark: so a device
    /// whose samples arrive out of order is not starved of merges. On
    /// PostgreSQL the device rows are locked first, in id order, as telemetry
    /// transactions lock them; the check then runs as a statement of its
    /// own, so it sees every telemetry transaction that held a row before,
    /// and later ones see the new watermark.
    async fn advance_watermarks(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ranges: &[Range],
        late: &mut Deltas,
    ) -> Result<Option<u64>> {
        if self.backend == Backend::Postgres {
            let mut sql = String::from("SELECT id FROM devices WHERE id IN ");
            push_tuples(&mut sql, self.backend, 1, ranges.len(), 1);
            sql.push_str(" ORDER BY id FOR UPDATE");
            let mut q = self.query(AssertSqlSafe(sql));
            for r in ranges {
                q = q.bind(r.device.as_str());
            }
            q.execute(&mut **tx).await?;
        }
        let mut sql = String::from("WITH v (id, lo, hi, n, pts) AS (VALUES ");
        push_tuples(&mut sql, self.backend, ranges.len(), 5, 1);
        sql.push_str(
            ") UPDATE devices SET rolled_seq = v.hi, rolled_points = devices.rolled_points + v.pts
             FROM v WHERE devices.id = v.id AND devices.rolled_seq = v.lo",
        );
        let mut q = self.query(AssertSqlSafe(sql));
        for r in ranges {
            q = q
                .bind(r.device.as_str())
                .bind(r.rolled)
                .bind(r.hi)
                .bind(r.samples)
                .bind(r.points);
        }
        if q.execute(&mut **tx).await?.rows_affected() != ranges.len() as u64 {
            return Ok(None);
        }
        let mut sql = String::from("WITH v (id, lo, hi, n) AS (VALUES ");
        push_tuples(&mut sql, self.backend, ranges.len(), 4, 1);
        sql.push_str(
            ") SELECT v.id FROM v WHERE v.n <>
               (SELECT COUNT(*) FROM samples WHERE device_id = v.id AND seq > v.lo AND seq <= v.hi)",
        );
        let mut q = self.query_as(AssertSqlSafe(sql));
        for r in ranges {
            q = q
                .bind(r.device.as_str())
                .bind(r.rolled)
                .bind(r.hi)
                .bind(r.samples);
        }
        let changed: Vec<(String,)> = q.fetch_all(&mut **tx).await?;
        let mut found = 0u64;
        for (device,) in changed {
            let Some(r) = ranges.iter().find(|r| r.device == device) else {
                continue;
            };
            let rows: Vec<(i64, i64, String)> = self
                .query_as(
                    "SELECT seq, ts_ms, body FROM samples WHERE device_id = $1 AND seq > $2 AND seq <= $3",
                )
                .bind(device.as_str())
                .bind(r.rolled)
                .bind(r.hi)
                .fetch_all(&mut **tx)
                .await?;
            let mut points = 0i64;
            for (seq, ts, body) in rows {
                if r.seqs.binary_search(&seq).is_err() {
                    points += add_sample(late, &device, seq, ts, &body)?;
                    found += 1;
                }
            }
            self.query("UPDATE devices SET rolled_points = rolled_points + $1 WHERE id = $2")
                .bind(points)
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(Some(found))
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

    /// Samples stored and not yet rolled up (counted one by one: for tests
    /// and tools; [`Store::rollup_backlog_points`] is the cheap figure).
    pub async fn pending_samples(&self) -> Result<i64> {
        let (mut n,): (i64,) = self
            .query_as(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM samples s JOIN devices d ON d.id = s.device_id
                 WHERE s.seq > d.rolled_seq",
            )
            .fetch_one(&self.pool)
            .await?;
        let rows: Vec<(String,)> = self
            .query_as("SELECT keys FROM rollup_pending")
            .fetch_all(&self.pool)
            .await?;
        for (k,) in rows {
            let parsed: Vec<(String, Vec<i64>)> =
                serde_json::from_str(&k).map_err(|e| StoreError::Corrupt(format!("rollup_pending: {e}")))?;
            n += parsed.iter().map(|(_, s)| s.len() as i64).sum::<i64>();
        }
        Ok(n)
    }

    /// Points stored and not yet rolled up: above the watermarks, and in
    /// pending rows. Reads one row per device and per pending row.
    pub async fn rollup_backlog_points(&self) -> Result<i64> {
        let (above,): (i64,) = self
            .query_as("SELECT CAST(COALESCE(SUM(points - rolled_points), 0) AS BIGINT) FROM devices")
            .fetch_one(&self.pool)
            .await?;
        let (late,): (i64,) = self
            .query_as("SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM rollup_pending")
            .fetch_one(&self.pool)
            .await?;
        Ok(above + late)
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
                       AND seq <= (SELECT rolled_seq FROM devices WHERE id = $1)
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
