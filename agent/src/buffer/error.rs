//! Why the queue could not do what was asked.
//!
//! Corruption found on disk is not an error: it is skipped and counted in the
//! queue's stats, so a damaged file never stops the agent.

use super::Lane;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file or directory of the queue could not be read, written or synced.
    #[error("disk queue {path}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Another process (or another `DiskQueue`) has the directory open.
    #[error("disk queue {dir} is already open elsewhere")]
    Locked { dir: PathBuf },
    #[error("disk queue config: {detail}")]
    Config { detail: String },
    /// The payload does not fit in one segment.
    #[error("{lane} entry of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { lane: Lane, len: usize, max: usize },
}

/// Maps an IO error to [`QueueError::Io`] naming `path`.
pub(super) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> QueueError {
    let path = path.into();
    move |source| QueueError::Io { path, source }
}
