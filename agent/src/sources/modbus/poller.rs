//! One task per Modbus device: poll on the device's interval through its bus,
//! decode through the profile, and hand samples to the uplink.
//!
//! A failed or slow device never blocks a device on another bus: each device
//! has its own task and timeouts, and buses are independent. On a shared bus
//! (a serial line, a TCP gateway) a device that keeps failing backs off, so it
//! holds the line only now and then.

use super::bus::{Bus, BusError};
use super::plan::{self, Read, Reading};
use crate::clock::Clock;
use crate::config::DeviceConfig;
use crate::run::DeviceCounters;
use crate::sources::SampleSink;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use wearline_models::wire::{Alert, AlertState, Severity, VERSION};

/// Shortest and longest wait before retrying a failing device or link.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Everything one poller needs.
pub struct Poller {
    pub device: DeviceConfig,
    pub bus: Arc<Bus>,
    pub clock: Clock,
    pub sink: SampleSink,
    pub counters: Arc<DeviceCounters>,
    /// This gateway's id, for alerts.
    pub gateway: String,
}

impl Poller {
    /// Polls until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let reads = plan::plan(&self.device.profile, self.device.max_registers_per_request);
        let mut ticker = tokio::time::interval(self.device.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failures: u32 = 0;
        let mut skip_until = Instant::now();
        let mut gap_open = false;
        let gap_after = self
            .device
            .interval
            .saturating_mul(self.device.gap_alert_intervals);
        let mut last_good = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if self.device.gap_alert_intervals > 0 && !gap_open && last_good.elapsed() >= gap_after {
                gap_open = true;
                if !self.gap_alert(true, self.clock.now_ms()).await {
                    break;
                }
            }
            if Instant::now() < skip_until {
                continue;
            }
            let ts_ms = self.clock.now_ms();
            let polled = tokio::select! {
                () = cancel.cancelled() => break,
                r = self.poll_once(&reads) => r,
            };
            match polled {
                Ok((values, text)) => {
                    if failures > 0 {
                        tracing::info!(device = %self.device.id, "device answers again");
                    }
                    failures = 0;
                    last_good = Instant::now();
                    self.counters.ok.fetch_add(1, Ordering::Relaxed);
                    if gap_open {
                        gap_open = false;
                        if !self.gap_alert(false, ts_ms).await {
                            break;
                        }
                    }
                    self.counters.last_ok_ms.store(ts_ms, Ordering::Relaxed);
                    let profile = &self.device.profile.name;
                    if !values.is_empty()
                        && !self
                            .sink
                            .emit(&self.device.id, profile, ts_ms, values, text)
                            .await
                    {
                        break;
                    }
                }
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    self.sink.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                    if let BusError::Backoff(_) = e {
                        tracing::debug!(device = %self.device.id, error = %e, "link down");
                        continue;
                    }
                    failures = failures.saturating_add(1);
                    // Exceptions are answers: the device is alive, poll it on time.
                    if !matches!(e, BusError::Exception(_)) && failures > 1 {
                        skip_until = Instant::now() + backoff(failures - 1, &self.device.id);
                    }
                    tracing::warn!(device = %self.device.id, endpoint = %self.bus.endpoint(), error = %e, failures, "poll failed");
                }
            }
        }
    }

    /// One poll: every read of the plan, each retried on transient errors.
    async fn poll_once(
        &self,
        reads: &[Read],
    ) -> Result<(BTreeMap<String, f64>, BTreeMap<String, String>), BusError> {
        let mut session = self.bus.session(self.device.unit, self.device.timeout).await?;
        let mut values = BTreeMap::new();
        let mut text = BTreeMap::new();
        for read in reads {
            let mut attempt = 0;
            let words = loop {
                match session.read(read.kind, read.address, read.count).await {
                    Ok(w) => break w,
                    Err(e) if e.is_transient() && attempt < self.device.retries => {
                        attempt += 1;
                        drop(session);
                        session = self.bus.session(self.device.unit, self.device.timeout).await?;
                    }
                    Err(e) => return Err(e),
                }
            };
            let failed = plan::decode(&self.device.profile, read, &words, |m, r| match r {
                Reading::Number(v) => {
                    values.insert(m.to_string(), v);
                }
                Reading::Text(t) => {
                    text.insert(m.to_string(), t);
                }
            });
            if failed > 0 {
                self.sink
                    .stats
                    .decode_errors
                    .fetch_add(failed as u64, Ordering::Relaxed);
            }
        }
        Ok((values, text))
    }

    /// Opens or clears the device's data-gap alert; false when the uplink is gone.
    async fn gap_alert(&self, open: bool, now_ms: i64) -> bool {
        let last = self.counters.last_ok_ms.load(Ordering::Relaxed);
        let since = if last > 0 {
            (now_ms - last) as f64 / 1000.0
        } else {
            0.0
        };
        if open {
            tracing::warn!(device = %self.device.id, seconds = since, "data gap: no good read");
        } else {
            tracing::info!(device = %self.device.id, "data gap closed");
        }
        self.sink
            .alert(Alert {
                v: VERSION,
                gateway: self.gateway.clone(),
                device: self.device.id.clone(),
                ts_ms: now_ms,
                kind: "data_gap".into(),
                metric: "*".into(),
                severity: Severity::Warning,
                score: if open { 1.0 } else { 0.0 },
                baseline: self.device.interval.as_secs_f64(),
                value: since,
                state: if open {
                    AlertState::Open
                } else {
                    AlertState::Cleared
                },
            })
            .await
    }
}

/// Exponential backoff with ±20 % jitter derived from `key`, so a fleet that
/// lost its link together does not reconnect in lockstep.
pub fn backoff(failures: u32, key: &str) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(BACKOFF_MAX);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(failures.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let jitter = 0.8 + 0.4 * ((h % 1000) as f64 / 1000.0);
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let d1 = backoff(1, "a");
        assert!(d1 >= BACKOFF_MIN.mul_f64(0.8) && d1 <= BACKOFF_MIN.mul_f64(1.2));
        assert!(backoff(4, "a") > backoff(1, "a"));
        assert!(backoff(40, "a") <= BACKOFF_MAX.mul_f64(1.2));
        let spread: std::collections::BTreeSet<_> = (0..20).map(|i| backoff(3, &format!("d{i}"))).collect();
        assert!(spread.len() > 5, "jitter spreads devices");
    }
}
