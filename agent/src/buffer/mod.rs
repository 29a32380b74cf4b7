//! The agent's store-and-forward buffer: a bounded, crash-safe queue on disk
//! that holds every sample and alert until the broker has confirmed it.
//!
//! It must not know about MQTT, devices or the wire format: entries are opaque
//! byte strings in one of two [`Lane`]s. It must not spawn threads or read the
//! clock either: the caller passes the time (`now_ms`) of every call, and runs
//! the (short, synchronous) file IO wherever blocking is acceptable.
//!
//! # Model
//!
//! Two lanes, each a FIFO with its own ids (1, 2, 3, … never reused, also
//! across restarts): [`Lane::Alerts`] and [`Lane::Telemetry`].
//! [`DiskQueue::next_batch`] hands out alerts first, then telemetry, so alerts
//! replay before the backlog of samples, and the order within a lane (hence
//! per device) is the order of [`DiskQueue::push`]. Handing out moves a read
//! position only; [`DiskQueue::ack`] marks one entry as confirmed, in any order,
//! and the lane's persisted position (the *cursor*) moves over the longest
//! confirmed prefix. [`DiskQueue::rewind`] hands out every unconfirmed entry
//! again (after a reconnect). Entries are deleted only once confirmed or
//! evicted, a whole segment file at a time.
//!
//! **At least once.** The cursor is written atomically (temp file, rename) but
//! not after every acknowledgement (see [`FsyncPolicy`]), so after a crash a few
//! entries that the broker had already confirmed are handed out again. That is
//! by design: the hub deduplicates samples by `(device, seq)`.
//!
//! # Bounds and eviction
//!
//! The queue holds at most [`QueueConfig::max_bytes`] of segment files and
//! entries at most [`QueueConfig::max_age`] old (by the `now_ms` of their push).
//! Eviction is oldest first within a lane, and a whole segment at a time for
//! the byte bound: first segments whose entries are all confirmed, then the
//! oldest telemetry, and alerts only when no telemetry is left to drop. The age
//! bound is exact: a segment is deleted once its newest entry is too old, and
//! older entries in a segment still in use are skipped as they are read. Every
//! evicted entry that was not confirmed is counted in
//! [`QueueStats::evicted`] and logged.
//!
//! # On-disk format (version 1, all integers little-endian)
//!
//! ```text
//! dir/lock                          held with an exclusive lock while open
//! dir/cursor                        magic "WLQCUR\0\x01", done_alerts u64,
//!                                   done_telemetry u64, crc32 of the 24 bytes
//!                                   before it (28 bytes, replaced by rename)
//! dir/{alerts,telemetry}/NNNNNNNNNNNNNNNNNNNN.seg
//!                                   a segment, named by its first id (20 digits)
//! segment = header record*
//! header  = magic "WLQSEG", version u8 = 1, lane u8 (1 alerts, 2 telemetry),
//!           first_id u64, first_ts i64, crc32 of the 24 bytes before (28 bytes)
//! record  = magic "WLQR", len u32, id u64, ts_ms i64, crc32(payload),
//!           crc32 of the 28 bytes before it, payload (len bytes)
//! ```
//!
//! Segments are append-only and never reopened for writing: after a restart
//! new entries go to a new segment. The checksums are CRC-32 (IEEE). A record
//! whose header checksum holds but whose payload does not is skipped exactly; a
//! bad header loses its length, so the reader scans forward to the next
//! `WLQR` whose header checksum holds. A torn tail (a crash mid-write) is the
//! same case at the end of a file. Each bad region is skipped, logged and
//! counted once in [`QueueStats::corrupt_records`], and the rest replays. The
//! last segment of each lane is checked when the queue opens, the others as
//! they are read.
//!
//! # Durability
//!
//! Every push writes its whole record to the operating system (one `write`,
//! no buffer in the process) before it returns, so nothing the queue accepted
//! is lost when the agent is killed, SIGKILL included, whatever the policy.
//! [`FsyncPolicy`] decides what survives a power loss or kernel crash.
//! Dropping a `DiskQueue` without [`DiskQueue::close`] is the same as a crash.
//! Ids are not reused after a restart, except after a power loss under
//! `Batch` or `Never` that also loses the last cursor write, and then only ids
//! of entries already deleted; harmless, since an id only pairs a hand-out
//! with its acknowledgement within one run.

pub mod bench;
mod config;
mod error;
mod evict;
mod format;
mod queue;
mod segment;
#[cfg(test)]
mod tests;

pub use bench::{BenchReport, bench};
pub use config::{FsyncPolicy, QueueConfig};
pub use error::QueueError;
pub use queue::{DiskQueue, Entry, QueueStats};

use std::fmt;

/// Which FIFO an entry belongs to. Alerts are handed out before telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    Alerts,
    Telemetry,
}

impl Lane {
    /// Every lane, in the order they are handed out.
    pub const ALL: [Lane; 2] = [Lane::Alerts, Lane::Telemetry];

    pub fn name(self) -> &'static str {
        match self {
            Lane::Alerts => "alerts",
            Lane::Telemetry => "telemetry",
        }
    }

    fn index(self) -> usize {
        match self {
            Lane::Alerts => 0,
            Lane::Telemetry => 1,
        }
    }

    /// The lane's byte in a segment header.
    fn code(self) -> u8 {
        match self {
            Lane::Alerts => 1,
            Lane::Telemetry => 2,
        }
    }

    fn from_code(code: u8) -> Option<Lane> {
        match code {
            1 => Some(Lane::Alerts),
            2 => Some(Lane::Telemetry),
            _ => None,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
