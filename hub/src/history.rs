//! The history task: rolls new samples up into the 1-minute and 1-hour
//! rollups every `[store] rollup_every_secs`, and prunes what is past
//! `[store.retention]` every [`PRUNE_EVERY`]. The rules that keep the
//! rollups exact are in `store/rollup.rs`; this is only the schedule.
//!
//! It must not hold up ingest. The period is spread over the device shards:
//! one shard's merge every `rollup_every / SHARDS`, so each shard is merged
//! once a period and the work is even rather than a burst each period (a
//! burst of all 64 merges at `wearline bench ingest --rate 10000` made the
//! p99 of publish-to-queryable 2.6 s). A merge's transactions are short and
//! each is followed by a pause ([`MERGE_PACE`]); pruning deletes at most
//! [`PRUNE_BATCH`] rows per statement, yielding between statements.

use crate::store::{Retention, SHARDS, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often retention is applied. The first round is one period after
/// start: pruning is never urgent, and a restarting hub has other work.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Most rows one pruning statement deletes.
pub const PRUNE_BATCH: usize = 1000;

/// A merge pauses this many times as long as each of its transactions took:
/// merges then take at most a third of the store's writer, and telemetry
/// waits for at most one transaction rather than queueing behind a burst
/// (`wearline bench ingest --rate 5000`: the p99 of publish-to-queryable
/// was 58–91 ms over four runs, 43 ms over two with the pause).
pub const MERGE_PACE: u32 = 2;

/// Runs until `cancel` fires (a merge in flight is dropped: its open
/// transaction rolls back, and the shard's next turn takes its samples).
pub async fn run(store: Store, retention: Retention, rollup_every: Duration, cancel: CancellationToken) {
    let mut rollup = tokio::time::interval(rollup_every / SHARDS as u32);
    rollup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Hubs sharing a store start their merges at different shards.
    let mut shard = crate::clock::wall_ms().rem_euclid(SHARDS);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = rollup.tick() => {
                let merged = tokio::select! {
                    _ = cancel.cancelled() => return,
                    m = store.roll_up_shard(shard, &retention, crate::clock::wall_ms(), MERGE_PACE) => m,
                };
                match merged {
                    Ok(m) if m.samples > 0 || m.lost > 0 => tracing::debug!(
                        shard, samples = m.samples, rows = m.rows, lost = m.lost, "rolled up"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(shard, error = %e, "rollup failed; retrying at the shard's next turn"),
                }
                shard = (shard + 1).rem_euclid(SHARDS);
            }
            _ = prune.tick() => {
                match store.prune(&retention, crate::clock::wall_ms(), PRUNE_BATCH).await {
                    Ok(p) => tracing::info!(raw = p.raw, minute = p.minute, hour = p.hour, "history pruned"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed; retrying at the next period"),
                }
            }
        }
    }
}
