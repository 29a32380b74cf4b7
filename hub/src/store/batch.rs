//! The store's batch writes: a batch of telemetry in one transaction
//! (deduplicated samples, device rows with counts, last sequence number and
//! gaps, text attributes, the rollup pending rows of samples that arrive late), and consumable states in multi-row upserts.

use super::sql::{greatest, placeholder, push_tuples, row_chunks};
use super::{ConsumableRow, Result, Store, seq_i64};
use sqlx::AssertSqlSafe;
use wearline_models::wire::{Sample, Telemetry};

impl Store {
    /// Stores the samples of many telemetry messages in one transaction and
    /// returns, per message and in order, the indices of its samples that
    /// were new (a `(device, seq)` already stored, or twice in the batch, is
    /// dropped).
    pub async fn insert_batch(&self, batch: &[Telemetry]) -> Result<Vec<Vec<usize>>> {
        /// Rows per statement (at most 9 parameters each: under SQLite's 32 766
        /// and PostgreSQL's 65 535).
        const CHUNK: usize = 2048;
        let mut tx = self.writer.begin().await?;
        let rows: Vec<(usize, &Sample)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.samples.iter().map(move |s| (i, s)))
            .collect();
        // Inserted rows by sequence number, then device (no allocation to look one up).
        let mut fresh_keys: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
        for chunk in row_chunks(self.backend, &rows, CHUNK) {
            let mut sql = String::from("INSERT INTO samples (device_id, seq, ts_ms, body) VALUES ");
            push_tuples(&mut sql, self.backend, chunk.len(), 4, 1);
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING device_id, seq");
            let mut q = self.query_as(AssertSqlSafe(sql));
            for (i, s) in chunk {
                q = q
                    .bind(batch[*i].device.as_str())
                    .bind(seq_i64(s.seq))
                    .bind(s.ts_ms)
                    .bind(serde_json::to_string(&s.values).unwrap_or_default());
            }
            let inserted: Vec<(String, i64)> = q.fetch_all(&mut *tx).await?;
            for (device, seq) in inserted {
                fresh_keys.entry(seq).or_default().push(device);
            }
        }
        // The devices' last sequence numbers before this batch, for gap
        // counting, and the highest they had pruned. Read after the insert:
        // on PostgreSQL an insert of a key that a pruning transaction
        // deletes waits for it to commit, so its `pruned_seq` shows here.
        let ids: std::collections::BTreeSet<&str> = batch.iter().map(|t| t.device.as_str()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut last_seq: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        let mut pruned: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for chunk in row_chunks(self.backend, &ids, CHUNK) {
            let mut sql = String::from("SELECT id, last_seq, pruned_seq FROM devices WHERE id IN ");
            push_tuples(&mut sql, self.backend, 1, chunk.len(), 1);
            let mut q = self.query_as(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            let rows: Vec<(String, i64, i64)> = q.fetch_all(&mut *tx).await?;
            for (id, last, p) in rows {
                if p >= 0 {
                    pruned.insert(id.clone(), p);
                }
                last_seq.insert(id, last);
            }
        }
        // A sample at or below its device's pruned sequence number may be a
        // copy of one pruned (it would be counted twice in the rollups):
        // it is not taken. Rare: only data older than raw retention.
        let mut stale: Vec<(String, i64)> = Vec::new();
        if !pruned.is_empty() {
            for (seq, devices) in fresh_keys.iter_mut() {
                devices.retain(|d| {
                    let keep = pruned.get(d).is_none_or(|p| seq > p);
                    if !keep {
                        stale.push((d.clone(), *seq));
                    }
                    keep
                });
            }
        }
        for (device, seq) in stale {
            self.query("DELETE FROM samples WHERE device_id = $1 AND seq = $2")
                .bind(device)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        // New samples: device, sequence number, time, values.
        let mut new_samples: Vec<(&str, i64, i64, usize)> = Vec::new();
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
                new_samples.push((&t.device, seq_i64(s.seq), s.ts_ms, s.values.len()));
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
        // Each device's rollup watermark, as the upsert leaves it: the row
        // is locked from then on, so a merge moving the watermark either
        // committed before (and shows here) or waits for this transaction.
        let mut rolled: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for chunk in row_chunks(self.backend, &devices, CHUNK / 2) {
            let mut sql = String::from(
                "INSERT INTO devices (id, gateway, profile, first_seen_ms, last_seen_ms, last_seq, samples, points, gaps) VALUES ",
            );
            push_tuples(&mut sql, self.backend, chunk.len(), 9, 1);
            sql.push_str(&format!(
                " ON CONFLICT (id) DO UPDATE SET gateway = excluded.gateway, profile = excluded.profile,
                   last_seen_ms = {}, last_seq = {},
                   samples = devices.samples + excluded.samples, points = devices.points + excluded.points,
                   gaps = {}",
                greatest("devices.last_seen_ms", "excluded.last_seen_ms"),
                greatest("devices.last_seq", "excluded.last_seq"),
                greatest("0", "devices.gaps + excluded.gaps"),
            ));
            sql.push_str(" RETURNING id, rolled_seq");
            let mut q = self.query_as(AssertSqlSafe(sql));
            for (id, d) in chunk {
                q = q
                    .bind(*id)
                    .bind(d.gateway)
                    .bind(d.profile)
                    .bind(d.first_ms)
                    .bind(d.last_ms)
                    .bind(d.last_seq)
                    .bind(d.samples)
                    .bind(d.points)
                    .bind(d.gaps);
            }
            let rows: Vec<(String, i64)> = q.fetch_all(&mut *tx).await?;
            rolled.extend(rows);
        }
        // Text fields are device attributes: keep the latest value of each.
        for (device, fields) in text {
            let current: Option<(String,)> = self
                .query_as("SELECT attributes FROM devices WHERE id = $1")
                .bind(device)
                .fetch_optional(&mut *tx)
                .await?;
            let mut attrs: serde_json::Map<String, serde_json::Value> = current
                .and_then(|(a,)| serde_json::from_str(&a).ok())
                .unwrap_or_default();
            attrs.extend(fields);
            self.query("UPDATE devices SET attributes = $1 WHERE id = $2")
                .bind(serde_json::Value::Object(attrs).to_string())
                .bind(device)
                .execute(&mut *tx)
                .await?;
        }
        // A sample at or below its device's watermark arrived after a merge
        // passed its number: a pending row takes it to the next merge.
        new_samples.retain(|(device, seq, _, _)| rolled.get(*device).is_some_and(|r| seq <= r));
        self.insert_pending(&mut tx, &new_samples).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Records many consumables' states and predictions in one transaction,
    /// with multi-row upserts; a consumable given twice keeps its last row.
    pub async fn upsert_consumables(&self, rows: &[ConsumableRow]) -> Result<()> {
        /// Rows per statement (19 parameters each).
        const CHUNK: usize = 256;
        let mut last: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            last.insert((r.device_id.as_str(), r.name.as_str()), i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let mut tx = self.writer.begin().await?;
        for chunk in row_chunks(self.backend, &keep, CHUNK) {
            let mut sql = String::from(
                "INSERT INTO consumables (device_id, name, profile, lead_time_days, life_start_ms, as_of_ms, samples,
                    used, last_value, limit_kind, remaining_usage, usage_per_day, end_of_life_ms, eol_low_ms,
                    eol_high_ms, coverage, model, explanation, state) VALUES ",
            );
            push_tuples(&mut sql, self.backend, chunk.len(), 19, 1);
            sql.push_str(
                " ON CONFLICT (device_id, name) DO UPDATE SET profile = excluded.profile,
                    lead_time_days = excluded.lead_time_days, life_start_ms = excluded.life_start_ms,
                    as_of_ms = excluded.as_of_ms, samples = excluded.samples, used = excluded.used,
                    last_value = excluded.last_value, limit_kind = excluded.limit_kind,
                    remaining_usage = excluded.remaining_usage, usage_per_day = excluded.usage_per_day,
                    end_of_life_ms = excluded.end_of_life_ms, eol_low_ms = excluded.eol_low_ms,
                    eol_high_ms = excluded.eol_high_ms, coverage = excluded.coverage, model = excluded.model,
                    explanation = excluded.explanation, state = excluded.state",
            );
            let mut q = self.query(AssertSqlSafe(sql));
            for row in chunk.iter().map(|&i| &rows[i]) {
                q = q
                    .bind(row.device_id.as_str())
                    .bind(row.name.as_str())
                    .bind(row.profile.as_str())
                    .bind(row.lead_time_days)
                    .bind(row.life_start_ms)
                    .bind(row.as_of_ms)
                    .bind(row.samples)
                    .bind(row.used)
                    .bind(row.last_value)
                    .bind(row.limit_kind.as_deref())
                    .bind(row.remaining_usage)
                    .bind(row.usage_per_day)
                    .bind(row.end_of_life_ms)
                    .bind(row.eol_low_ms)
                    .bind(row.eol_high_ms)
                    .bind(row.coverage)
                    .bind(row.model.as_deref())
                    .bind(row.explanation.as_str())
                    .bind(row.state.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes or renews, for `owner`, the leases of `devices` that are free,
    /// expired or already its own, until `now_ms + ttl_ms`; returns the
    /// devices `owner` holds afterwards. Two hubs asking at once: the
    /// database gives each device to one.
    pub async fn lease_devices(
        &self,
        owner: &str,
        devices: &[&str],
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<String>> {
        /// Devices per statement (3 parameters each).
        const CHUNK: usize = 5000;
        let mut held = Vec::with_capacity(devices.len());
        let mut tx = self.writer.begin().await?;
        for chunk in row_chunks(self.backend, devices, CHUNK) {
            let mut sql = String::from("INSERT INTO device_leases (device_id, owner, expires_ms) VALUES ");
            push_tuples(&mut sql, self.backend, chunk.len(), 3, 1);
            sql.push_str(&format!(
                " ON CONFLICT (device_id) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms
                  WHERE device_leases.owner = excluded.owner OR device_leases.expires_ms < {}
                  RETURNING device_id",
                placeholder(self.backend, chunk.len() * 3 + 1)
            ));
            let mut q = self.query_as(AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(*d).bind(owner).bind(now_ms + ttl_ms);
            }
            let rows: Vec<(String,)> = q.bind(now_ms).fetch_all(&mut *tx).await?;
            held.extend(rows.into_iter().map(|(d,)| d));
        }
        tx.commit().await?;
        Ok(held)
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
pub(super) fn gaps(last: Option<i64>, seqs: &mut [(i64, bool)]) -> i64 {
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
