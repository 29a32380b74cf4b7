//! Per-device sequence numbers that only grow, across agent restarts.
//!
//! The hub drops a (device, seq) it has seen, so a restarted agent must never
//! reuse a number. Writing the counter on every poll would wear a gateway's
//! flash; instead the store reserves numbers in blocks and persists only the
//! end of each reservation. A restart resumes after the last reservation, which
//! leaves a gap of at most one block: gaps are harmless, reuse is not.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Numbers reserved per write.
pub const BLOCK: u64 = 1024;

/// Why the sequence state could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error("sequence state {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("sequence state {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// The sequence numbers of every device of this gateway.
#[derive(Debug)]
pub struct Sequences {
    path: PathBuf,
    next: BTreeMap<String, u64>,
    reserved: BTreeMap<String, u64>,
    /// Devices given a number since this process started.
    issued: std::collections::BTreeSet<String>,
}

impl Sequences {
    /// Opens (or creates) the state in `dir`.
    pub fn open(dir: &Path) -> Result<Sequences, SequenceError> {
        let path = dir.join("sequences.json");
        let io = |source| SequenceError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let reserved: BTreeMap<String, u64> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SequenceError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(e)),
        };
        Ok(Sequences {
            path,
            next: reserved.clone(),
            reserved,
            issued: std::collections::BTreeSet::new(),
        })
    }

    /// The next number for `device`, and whether it is the device's first
    /// since this process started (numbers just before it may have been
    /// skipped, never lost).
    pub fn next_marked(&mut self, device: &str) -> Result<(u64, bool), SequenceError> {
        let seq = self.next(device)?;
        let first = !self.issued.contains(device);
        if first {
            self.issued.insert(device.to_string());
        }
        Ok((seq, first))
    }

    /// The next number for `device`, persisting a new reservation first when
    /// the current one is used up.
    pub fn next(&mut self, device: &str) -> Result<u64, SequenceError> {
        let next = self.next.get(device).copied().unwrap_or(1);
        let reserved = self.reserved.get(device).copied().unwrap_or(0);
        if next >= reserved {
            self.reserved.insert(device.to_string(), next + BLOCK);
            if let Err(e) = self.save() {
                self.reserved.insert(device.to_string(), reserved);
                return Err(e);
            }
        }
        self.next.insert(device.to_string(), next + 1);
        Ok(next)
    }

    fn save(&self) -> Result<(), SequenceError> {
        let io = |source| SequenceError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&self.reserved).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_across_restarts() -> Result<(), SequenceError> {
        let dir = tempfile::tempdir().map_err(|source| SequenceError::Io {
            path: "tmp".into(),
            source,
        })?;
        let mut s = Sequences::open(dir.path())?;
        assert_eq!(s.next_marked("a")?, (1, true));
        assert_eq!(s.next_marked("a")?, (2, false));
        assert_eq!(s.next("b")?, 1);
        drop(s);
        let mut s = Sequences::open(dir.path())?;
        let (after, restart) = s.next_marked("a")?;
        assert!(restart, "the first number after a restart is marked");
        assert!(after > 2, "restart must not reuse numbers, got {after}");
        assert_eq!(s.next("a")?, after + 1);
        for _ in 0..2 * BLOCK {
            s.next("b")?;
        }
        let b = s.next("b")?;
        drop(s);
        let mut s = Sequences::open(dir.path())?;
        assert!(s.next("b")? > b);
        Ok(())
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() -> Result<(), SequenceError> {
        let dir = tempfile::tempdir().map_err(|source| SequenceError::Io {
            path: "tmp".into(),
            source,
        })?;
        std::fs::write(dir.path().join("sequences.json"), b"{oops").map_err(|source| SequenceError::Io {
            path: "tmp".into(),
            source,
        })?;
        assert!(matches!(
            Sequences::open(dir.path()),
            Err(SequenceError::Corrupt { .. })
        ));
        Ok(())
    }
}
