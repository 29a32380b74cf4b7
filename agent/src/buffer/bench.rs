//! A throughput benchmark of the disk queue: how fast it appends, and how fast
//! a backlog replays (read and acknowledged), on the disk under `dir`.
//!
//! It measures and reports; it must not assert on timings (machines differ).
//! Run it for real figures with
//! `cargo test --release -p wearline-agent buffer::bench -- --nocapture`.

use super::{DiskQueue, FsyncPolicy, Lane, QueueConfig, QueueError};
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Entries per `next_batch` while replaying.
const REPLAY_BATCH: usize = 500;

/// What [`bench()`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchReport {
    pub messages: usize,
    pub size: usize,
    pub fsync: FsyncPolicy,
    /// Pushing every message, and the final sync.
    pub append: Duration,
    /// Opening the full queue again.
    pub open: Duration,
    /// Reading and acknowledging every message, and the final sync.
    pub replay: Duration,
    pub replayed: usize,
    pub bytes_on_disk: u64,
}

impl BenchReport {
    pub fn append_per_sec(&self) -> f64 {
        self.messages as f64 / self.append.as_secs_f64().max(1e-9)
    }

    pub fn replay_per_sec(&self) -> f64 {
        self.replayed as f64 / self.replay.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages of {} B, fsync {:?}: append {:.0} msg/s ({:.1} MB/s, {:?}), \
             open {:?}, replay {:.0} msg/s ({:?}, {} replayed), {} bytes on disk",
            self.messages,
            self.size,
            self.fsync,
            self.append_per_sec(),
            (self.messages * self.size) as f64 / self.append.as_secs_f64().max(1e-9) / 1e6,
            self.append,
            self.open,
            self.replay_per_sec(),
            self.replay,
            self.replayed,
            self.bytes_on_disk
        )
    }
}

/// Pushes `messages` telemetry entries of `size` bytes into a new queue in
/// `dir` (timed with the wall clock), closes it, opens it again, and replays
/// it: `next_batch` of 500 and an `ack` per entry until empty.
pub fn bench(
    dir: &Path,
    messages: usize,
    size: usize,
    fsync: FsyncPolicy,
) -> Result<BenchReport, QueueError> {
    let defaults = QueueConfig::default();
    let framed = size as u64 + 64;
    let cfg = QueueConfig {
        max_bytes: (messages as u64 * framed * 2).max(defaults.segment_bytes),
        max_age: Duration::from_secs(365 * 24 * 3600),
        fsync,
        ..defaults
    };
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();

    let start = Instant::now();
    let now_ms = || i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut q = DiskQueue::open(dir, cfg)?;
    for _ in 0..messages {
        q.push(Lane::Telemetry, &payload, now_ms())?;
    }
    q.sync()?;
    let append = start.elapsed();
    let bytes_on_disk = q.stats().bytes;
    q.close()?;

    let t = Instant::now();
    let mut q = DiskQueue::open(dir, cfg)?;
    let open = t.elapsed();
    let t = Instant::now();
    let mut replayed = 0;
    loop {
        let batch = q.next_batch(REPLAY_BATCH)?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            q.ack(e.lane, e.id)?;
        }
        replayed += batch.len();
    }
    q.sync()?;
    let replay = t.elapsed();
    q.close()?;
    Ok(BenchReport {
        messages,
        size,
        fsync,
        append,
        open,
        replay,
        replayed,
        bytes_on_disk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small in debug builds (a check that it works); the real figures come
    /// from a release build.
    #[test]
    fn bench_runs_and_replays_everything() {
        let messages = if cfg!(debug_assertions) { 2_000 } else { 200_000 };
        for fsync in [
            FsyncPolicy::Batch {
                records: 1000,
                interval: Duration::from_secs(1),
            },
            FsyncPolicy::Never,
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            let report = bench(dir.path(), messages, 1024, fsync).expect("bench");
            println!("disk queue bench: {report}");
            assert_eq!(report.replayed, messages);
            assert!(report.bytes_on_disk >= (messages * 1024) as u64);
        }
    }
}
