//! One task per Modbus device: connect, poll on the device's interval, decode
//! through the profile, and hand samples to the uplink.
//!
//! A failed connection or request never blocks another device: each device
//! has its own task, its own connection and its own timeouts. A transport
//! error drops the connection; reconnects back off exponentially with jitter.

use super::plan::{self, MAX_PER_REQUEST, Read};
use crate::clock::Clock;
use crate::config::DeviceConfig;
use crate::run::{AgentStats, Outgoing};
use crate::sequence::Sequences;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;
use wearline_models::registers::RegisterKind;
use wearline_models::wire::Sample;

/// Shortest and longest wait before reconnecting.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Everything one poller needs.
pub struct Poller {
    pub device: DeviceConfig,
    pub clock: Clock,
    pub sequences: Arc<Mutex<Sequences>>,
    pub tx: mpsc::Sender<Outgoing>,
    pub stats: Arc<AgentStats>,
}

/// Why one poll produced no sample.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport: {0}")]
    Transport(#[from] tokio_modbus::Error),
    #[error("device answered with exception {0:?}")]
    Exception(ExceptionCode),
}

impl Poller {
    /// Polls until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let reads = plan::plan(&self.device.profile, MAX_PER_REQUEST);
        let mut ticker = tokio::time::interval(self.device.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ctx: Option<Context> = None;
        let mut failures: u32 = 0;
        let mut retry_at = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if ctx.is_none() {
                if Instant::now() < retry_at {
                    continue;
                }
                match self.connect().await {
                    Ok(c) => {
                        tracing::info!(device = %self.device.id, addr = %self.device.tcp, "connected");
                        ctx = Some(c);
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures, &self.device.id);
                        self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(device = %self.device.id, addr = %self.device.tcp, error = %e, retry_in = ?wait, "cannot connect");
                        retry_at = Instant::now() + wait;
                        continue;
                    }
                }
            }
            let Some(c) = ctx.as_mut() else { continue };
            let ts_ms = self.clock.now_ms();
            match self.poll_once(c, &reads).await {
                Ok(values) => {
                    failures = 0;
                    if !values.is_empty() && !self.emit(ts_ms, values).await {
                        break;
                    }
                }
                Err(e) => {
                    self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(device = %self.device.id, error = %e, "poll failed");
                    if !matches!(e, PollError::Exception(_)) {
                        // The connection may be half-dead: start afresh, with backoff.
                        ctx = None;
                        failures = failures.saturating_add(1);
                        retry_at = Instant::now() + backoff(failures, &self.device.id);
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<Context, PollError> {
        let connect = tokio_modbus::client::tcp::connect_slave(self.device.tcp, Slave(self.device.unit));
        match timeout(self.device.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(PollError::Transport(tokio_modbus::Error::Transport(e))),
            Err(_) => Err(PollError::Timeout(self.device.timeout)),
        }
    }

    async fn poll_once(&self, ctx: &mut Context, reads: &[Read]) -> Result<BTreeMap<String, f64>, PollError> {
        let mut values = BTreeMap::new();
        for read in reads {
            let words = self.read(ctx, read).await?;
            let failed = plan::decode(&self.device.profile, read, &words, |m, v| {
                values.insert(m.to_string(), v);
            });
            if failed > 0 {
                self.stats
                    .decode_errors
                    .fetch_add(failed as u64, Ordering::Relaxed);
            }
        }
        Ok(values)
    }

    async fn read(&self, ctx: &mut Context, read: &Read) -> Result<Vec<u16>, PollError> {
        let (a, n) = (read.address, read.count);
        let t = self.device.timeout;
        let bits = |r: Vec<bool>| r.into_iter().map(u16::from).collect::<Vec<u16>>();
        let result = match read.kind {
            RegisterKind::Coil => timeout(t, ctx.read_coils(a, n))
                .await
                .map(|r| r.map(|r| r.map(bits))),
            RegisterKind::Discrete => timeout(t, ctx.read_discrete_inputs(a, n))
                .await
                .map(|r| r.map(|r| r.map(bits))),
            RegisterKind::Holding => timeout(t, ctx.read_holding_registers(a, n)).await,
            RegisterKind::Input => timeout(t, ctx.read_input_registers(a, n)).await,
        };
        match result {
            Err(_) => Err(PollError::Timeout(t)),
            Ok(Err(e)) => Err(PollError::Transport(e)),
            Ok(Ok(Err(code))) => Err(PollError::Exception(code)),
            Ok(Ok(Ok(words))) => Ok(words),
        }
    }

    /// Stamps and sends one sample; false when the uplink is gone.
    async fn emit(&self, ts_ms: i64, values: BTreeMap<String, f64>) -> bool {
        let seq = {
            let mut seqs = match self.sequences.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            seqs.next(&self.device.id)
        };
        let seq = match seq {
            Ok(s) => s,
            Err(e) => {
                // Without a durable number the hub could drop the sample as a duplicate.
                tracing::error!(device = %self.device.id, error = %e, "cannot reserve a sequence number; sample dropped");
                self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        };
        self.stats.samples.fetch_add(1, Ordering::Relaxed);
        let out = Outgoing {
            device: self.device.id.clone(),
            profile: self.device.profile.name.clone(),
            sample: Sample { seq, ts_ms, values },
        };
        self.tx.send(out).await.is_ok()
    }
}

/// Exponential backoff with ±20 % jitter derived from the device id, so a
/// fleet that lost its link together does not reconnect in lockstep.
pub fn backoff(failures: u32, device: &str) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(BACKOFF_MAX);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in device.bytes().chain(failures.to_le_bytes()) {
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
