//! Where samples come from: Modbus devices (one task per device) and
//! appliances that publish their own readings over MQTT. Every source stamps
//! its samples through one [`SampleSink`], so sequence numbers, counters and
//! the edge detectors are kept in one place.

pub mod modbus;
pub mod mqtt;

use crate::detection::Detectors;
use crate::run::{AgentStats, Outgoing, lock};
use crate::sequence::Sequences;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use wearline_models::wire::Sample;

/// Stamps samples with their device's next sequence number, runs the
/// device's detectors on them, and sends both uplink.
#[derive(Clone)]
pub struct SampleSink {
    pub sequences: Arc<Mutex<Sequences>>,
    pub tx: mpsc::Sender<Outgoing>,
    pub stats: Arc<AgentStats>,
    pub detectors: Arc<Mutex<Detectors>>,
}

impl SampleSink {
    /// Sends one sample; false when the uplink is gone.
    pub async fn emit(
        &self,
        device: &str,
        profile: &str,
        ts_ms: i64,
        values: BTreeMap<String, f64>,
        text: BTreeMap<String, String>,
    ) -> bool {
        let seq = lock(&self.sequences).next_marked(device);
        let (seq, restart) = match seq {
            Ok(s) => s,
            Err(e) => {
                // Without a durable number the hub could drop the sample as a duplicate.
                tracing::error!(device, error = %e, "cannot reserve a sequence number; sample dropped");
                self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        };
        self.stats.samples.fetch_add(1, Ordering::Relaxed);
        let alerts = lock(&self.detectors).observe(device, ts_ms, &values);
        for a in alerts {
            tracing::info!(device, kind = %a.kind, metric = %a.metric, state = ?a.state, value = a.value, baseline = a.baseline, "edge alert");
            self.stats.alerts.fetch_add(1, Ordering::Relaxed);
            if !self.alert(a).await {
                return false;
            }
        }
        let sample = Sample {
            seq,
            ts_ms,
            values,
            text,
            restart,
        };
        self.tx
            .send(Outgoing::Sample {
                device: device.to_string(),
                profile: profile.to_string(),
                sample,
            })
            .await
            .is_ok()
    }

    /// Sends an alert; false when the uplink is gone.
    pub async fn alert(&self, alert: wearline_models::wire::Alert) -> bool {
        self.tx.send(Outgoing::Alert(alert)).await.is_ok()
    }
}
