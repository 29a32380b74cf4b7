//! The queue's settings: its bounds and its fsync policy, checked once when
//! the queue opens.
//!
//! Typed values only; reading them from the agent's TOML belongs to the agent's
//! config module, not here.

use super::QueueError;
use super::format::{MAX_PAYLOAD, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use std::time::Duration;

/// Smallest segment accepted.
const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment accepted.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// When appended records and the cursor are forced to stable storage
/// (`fsync`). Whatever the policy, every push hands its record to the
/// operating system before returning, so a killed agent (SIGKILL, panic,
/// OOM kill) loses nothing; the policy only matters when the machine itself
/// stops (power loss, kernel crash).
///
/// The cursor (what was confirmed) is written atomically, and is `fsync`ed
/// only under `Always` and by `sync`/`close`: a cursor that falls behind can
/// only hand confirmed entries out again (the hub drops the duplicates), never
/// lose unconfirmed ones, because segments are deleted only after the cursor
/// that passes them was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` after every push, before it returns, and the cursor after
    /// every acknowledgement that moves it. A push that returned `Ok` survives
    /// a power loss, and no confirmed entry is handed out again. Slowest: a
    /// disk flush per push and per acknowledgement.
    Always,
    /// `fsync` once `records` pushes are pending or `interval` has passed
    /// since the last one (measured in the `now_ms` the caller passes to
    /// `push` and `tick`, so call `tick` regularly), when a segment is full,
    /// and on `sync`/`close`. A power loss loses at most the pushes of that
    /// window. The cursor is written every `records` confirmed entries and on
    /// every `tick`.
    Batch { records: u32, interval: Duration },
    /// Never `fsync` (except on an explicit `sync` or `close`): the operating
    /// system writes back when it likes (about 30 s on Linux). A power loss can
    /// lose that much. The cursor is written every 1024 confirmed entries and
    /// on every `tick`.
    Never,
}

/// Bounds and durability of a [`super::DiskQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most bytes of segment files on disk, both lanes together. Reaching it
    /// evicts whole segments, oldest first (telemetry before alerts).
    pub max_bytes: u64,
    /// Oldest entry kept, by the `now_ms` it was pushed at.
    pub max_age: Duration,
    /// Size at which a segment file is closed and a new one started. The unit
    /// of deletion and of byte eviction, and the largest entry accepted (less
    /// 60 bytes of framing). At most `max_bytes`.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for QueueConfig {
    /// 256 MiB, 7 days, 8 MiB segments, `fsync` every 1000 entries or second.
    fn default() -> QueueConfig {
        QueueConfig {
            max_bytes: 256 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_bytes: 8 << 20,
            fsync: FsyncPolicy::Batch {
                records: 1000,
                interval: Duration::from_secs(1),
            },
        }
    }
}

impl QueueConfig {
    pub(super) fn validate(&self) -> Result<(), QueueError> {
        let bad = |detail: String| Err(QueueError::Config { detail });
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return bad(format!(
                "segment_bytes must be within {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        if self.max_bytes < self.segment_bytes {
            return bad(format!(
                "max_bytes ({}) must be at least segment_bytes ({})",
                self.max_bytes, self.segment_bytes
            ));
        }
        if self.max_age.is_zero() {
            return bad("max_age must be positive".to_string());
        }
        if let FsyncPolicy::Batch { records: 0, .. } = self.fsync {
            return bad("fsync batch records must be at least 1".to_string());
        }
        Ok(())
    }

    /// The largest payload one push accepts.
    pub fn max_payload(&self) -> usize {
        let room = self.segment_bytes - (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64;
        usize::try_from(room).unwrap_or(usize::MAX).min(MAX_PAYLOAD)
    }

    pub(super) fn max_age_ms(&self) -> i64 {
        i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX)
    }

    /// Confirmed entries between two cursor writes.
    pub(super) fn cursor_every(&self) -> u64 {
        match self.fsync {
            FsyncPolicy::Always => 1,
            FsyncPolicy::Batch { records, .. } => u64::from(records),
            FsyncPolicy::Never => 1024,
        }
    }

    /// Whether the policy ever forces data to disk on its own.
    pub(super) fn syncs(&self) -> bool {
        !matches!(self.fsync, FsyncPolicy::Never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_err(cfg: QueueConfig, needle: &str) {
        match cfg.validate() {
            Err(QueueError::Config { detail }) => assert!(detail.contains(needle), "{detail}"),
            other => panic!("expected a config error with {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        assert!(QueueConfig::default().validate().is_ok());
        assert_eq!(QueueConfig::default().max_payload(), (8 << 20) - 60);
    }

    #[test]
    fn rejects_bad_bounds() {
        let d = QueueConfig::default();
        check_err(
            QueueConfig {
                segment_bytes: 100,
                ..d
            },
            "segment_bytes",
        );
        check_err(
            QueueConfig {
                max_bytes: d.segment_bytes - 1,
                ..d
            },
            "max_bytes",
        );
        check_err(
            QueueConfig {
                max_age: Duration::ZERO,
                ..d
            },
            "max_age",
        );
        check_err(
            QueueConfig {
                fsync: FsyncPolicy::Batch {
                    records: 0,
                    interval: Duration::from_secs(1),
                },
                ..d
            },
            "records",
        );
    }
}
