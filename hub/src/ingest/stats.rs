//! Ingestion counters, and rate-limited logging of malformed input.

use crate::histogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wearline_models::wire::WireError;

/// Malformed messages are logged at most once per this interval per reason.
const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct IngestStats {
    pub connected: AtomicBool,
    pub messages: AtomicU64,
    pub samples: AtomicU64,
    pub points: AtomicU64,
    pub duplicates: AtomicU64,
    pub unknown_profile: AtomicU64,
    pub store_errors: AtomicU64,
    pub work_orders_opened: AtomicU64,
    /// Work orders raised a priority step for a missed service level.
    pub work_orders_escalated: AtomicU64,
    /// Resolved work orders the data verified (closed by the hub).
    pub work_orders_verified: AtomicU64,
    /// Resolved work orders reopened because the fault persisted.
    pub work_orders_reopened: AtomicU64,
    /// Consumable lives ended by a replacement.
    pub lives_ended: AtomicU64,
    /// Alerts opened (edge, gateway last will, device silence).
    pub alerts_opened: AtomicU64,
    /// Messages refused because their device is unknown (`unknown_devices = "reject"`).
    pub unknown_devices: AtomicU64,
    pub malformed_topic: AtomicU64,
    pub malformed_json: AtomicU64,
    pub malformed_version: AtomicU64,
    pub malformed_invalid: AtomicU64,
    /// Tenant topics naming another gateway (a certificate gateway
    /// publishing as someone else).
    pub malformed_tenant: AtomicU64,
    /// Committed telemetry batches (samples, devices, attributes).
    pub store_telemetry: Histogram,
    /// Committed flushes of consumable states and predictions.
    pub store_consumables: Histogram,
    last_log: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

/// A point-in-time copy of the counters, for `/health` and tests.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestSnapshot {
    pub broker_connected: bool,
    pub messages: u64,
    pub samples: u64,
    pub points: u64,
    pub duplicates: u64,
    pub unknown_profile: u64,
    pub store_errors: u64,
    pub work_orders_opened: u64,
    pub lives_ended: u64,
    pub alerts_opened: u64,
    pub unknown_devices: u64,
    pub malformed: MalformedSnapshot,
}

/// Messages dropped as malformed, by reason.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MalformedSnapshot {
    pub topic: u64,
    pub json: u64,
    pub version: u64,
    pub invalid: u64,
    pub tenant: u64,
}

impl IngestStats {
    /// Counts a refused message and logs it, rate-limited.
    pub fn malformed(&self, e: &WireError, topic: &str) {
        let counter = match e {
            WireError::Topic(_) => &self.malformed_topic,
            WireError::Json { .. } => &self.malformed_json,
            WireError::Version(_) => &self.malformed_version,
            WireError::Invalid(_) => &self.malformed_invalid,
            WireError::Tenant { .. } => &self.malformed_tenant,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.log_limited(|suppressed| {
            tracing::warn!(reason = e.reason(), topic, error = %e, suppressed, "malformed message dropped");
        });
    }

    /// Counts a message refused for its unknown device and logs it, rate-limited.
    pub fn unknown_device(&self, topic: &str) {
        self.unknown_devices.fetch_add(1, Ordering::Relaxed);
        self.log_limited(|suppressed| {
            tracing::warn!(topic, suppressed, "message from an unknown device refused");
        });
    }

    /// Runs `log` at most once per [`LOG_EVERY`], with the number of calls suppressed since.
    fn log_limited(&self, log: impl FnOnce(u64)) {
        let mut last = match self.last_log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            *last = Some(now);
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> IngestSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IngestSnapshot {
            broker_connected: self.connected.load(Ordering::Relaxed),
            messages: l(&self.messages),
            samples: l(&self.samples),
            points: l(&self.points),
            duplicates: l(&self.duplicates),
            unknown_profile: l(&self.unknown_profile),
            store_errors: l(&self.store_errors),
            work_orders_opened: l(&self.work_orders_opened),
            lives_ended: l(&self.lives_ended),
            alerts_opened: l(&self.alerts_opened),
            unknown_devices: l(&self.unknown_devices),
            malformed: MalformedSnapshot {
                topic: l(&self.malformed_topic),
                json: l(&self.malformed_json),
                version: l(&self.malformed_version),
                invalid: l(&self.malformed_invalid),
                tenant: l(&self.malformed_tenant),
            },
        }
    }
}
