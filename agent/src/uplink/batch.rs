//! Batching samples per device by count and delay.
//!
//! Pure: the caller passes the time (`Instant`) of each call, so tests drive
//! it without waiting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wearline_models::wire::{Sample, Telemetry, VERSION};

/// Per-device batches waiting to be sent.
#[derive(Debug)]
pub struct Batcher {
    gateway: String,
    max_samples: usize,
    max_delay: Duration,
    pending: BTreeMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    profile: String,
    since: Instant,
    samples: Vec<Sample>,
}

impl Batcher {
    pub fn new(gateway: &str, max_samples: usize, max_delay: Duration) -> Batcher {
        Batcher {
            gateway: gateway.to_string(),
            max_samples: max_samples.max(1),
            max_delay,
            pending: BTreeMap::new(),
        }
    }

    /// Adds a sample; returns the device's batch when it is full.
    pub fn push(&mut self, now: Instant, device: &str, profile: &str, sample: Sample) -> Option<Telemetry> {
        let p = self.pending.entry(device.to_string()).or_insert_with(|| Pending {
            profile: profile.to_string(),
            since: now,
            samples: Vec::new(),
        });
        p.samples.push(sample);
        if p.samples.len() >= self.max_samples {
            self.take(device)
        } else {
            None
        }
    }

    /// Batches that have waited their delay.
    pub fn due(&mut self, now: Instant) -> Vec<Telemetry> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= self.max_delay)
            .map(|(d, _)| d.clone())
            .collect();
        due.iter().filter_map(|d| self.take(d)).collect()
    }

    /// Everything pending, for shutdown.
    pub fn drain(&mut self) -> Vec<Telemetry> {
        let devices: Vec<String> = self.pending.keys().cloned().collect();
        devices.iter().filter_map(|d| self.take(d)).collect()
    }

    /// Samples waiting.
    pub fn depth(&self) -> usize {
        self.pending.values().map(|p| p.samples.len()).sum()
    }

    fn take(&mut self, device: &str) -> Option<Telemetry> {
        let p = self.pending.remove(device)?;
        Some(Telemetry {
            v: VERSION,
            gateway: self.gateway.clone(),
            device: device.to_string(),
            profile: p.profile,
            samples: p.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            ts_ms: seq as i64 * 1000,
            values: BTreeMap::new(),
        }
    }

    #[test]
    fn flushes_by_count_and_by_delay() {
        let t0 = Instant::now();
        let mut b = Batcher::new("gw", 3, Duration::from_secs(1));
        assert!(b.push(t0, "a", "p", sample(1)).is_none());
        assert!(b.push(t0, "a", "p", sample(2)).is_none());
        assert!(b.push(t0, "b", "p", sample(1)).is_none());
        let full = b.push(t0, "a", "p", sample(3)).expect("full batch");
        assert_eq!(
            full.samples.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(full.device, "a");
        assert_eq!(b.depth(), 1);
        assert!(b.due(t0 + Duration::from_millis(999)).is_empty());
        let due = b.due(t0 + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].device, "b");
        assert_eq!(b.depth(), 0);
    }

    #[test]
    fn drain_returns_everything() {
        let t0 = Instant::now();
        let mut b = Batcher::new("gw", 10, Duration::from_secs(1));
        b.push(t0, "a", "p", sample(1));
        b.push(t0, "b", "p", sample(1));
        assert_eq!(b.drain().len(), 2);
        assert!(b.drain().is_empty());
    }
}
