//! Ingestion: subscribe to what agents publish, decode and validate every
//! message, store new samples (dropping duplicates), update predictions and
//! open preventive work orders.
//!
//! A malformed message is counted by reason and logged (rate-limited); it
//! never stops the task.

mod stats;

pub use stats::IngestStats;

use crate::predict::{ConsumableUpdate, MODEL, Predictor};
use crate::run::HubEvent;
use crate::store::{ConsumableRow, NewWorkOrder, Store};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wearline_models::profile::Profile;
use wearline_models::rules::preventive_due;
use wearline_models::time::date;
use wearline_models::wire::{HUB_FILTERS, Telemetry, Uplink, decode_uplink};

/// Samples per device replayed at start to rebuild the trends.
const REPLAY: i64 = 5000;

/// Where and how the ingest task connects.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub struct Ingest {
    pub store: Store,
    pub profiles: Arc<BTreeMap<String, Profile>>,
    pub predictor: Predictor,
    pub stats: Arc<IngestStats>,
    pub events: broadcast::Sender<HubEvent>,
    /// Set once the subscriptions are acknowledged: from then on nothing an
    /// agent publishes is missed.
    pub subscribed: tokio::sync::watch::Sender<bool>,
}

impl Ingest {
    /// Rebuilds the trends from stored history.
    pub async fn replay(&mut self) -> Result<(), crate::store::StoreError> {
        for d in self.store.devices().await? {
            let Some(profile) = self.profiles.get(&d.profile) else {
                continue;
            };
            if profile.consumables.is_empty() {
                continue;
            }
            let rows = self.store.recent_samples(&d.id, REPLAY).await?;
            let samples: Vec<_> = rows
                .into_iter()
                .filter_map(|(ts_ms, body)| {
                    let values = serde_json::from_str(&body).ok()?;
                    Some(wearline_models::wire::Sample {
                        seq: 0,
                        ts_ms,
                        values,
                        text: Default::default(),
                    })
                })
                .collect();
            self.predictor.observe(&d.id, profile, &samples);
        }
        Ok(())
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cfg: IngestConfig, cancel: CancellationToken) {
        let mut opts = MqttOptions::new(cfg.client_id, cfg.host, cfg.port);
        opts.set_keep_alive(Duration::from_secs(15));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        // A persistent session: the broker queues QoS 1 messages while the hub reconnects.
        opts.set_clean_session(false);
        if let (Some(u), Some(p)) = (cfg.username, cfg.password) {
            opts.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 256);
        let mut failures = 0u32;
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => break,
                e = eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    tracing::info!("ingest connected to broker");
                    let filters = HUB_FILTERS
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!(error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.stats.connected.store(true, Ordering::Relaxed);
                    self.subscribed.send_replace(true);
                    tracing::info!("ingest subscribed");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    self.handle(&p.topic, &p.payload).await;
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.subscribed.send_replace(false);
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)));
                    tracing::warn!(error = %e, retry_in = ?wait, "ingest lost the broker");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        let _ = client.try_disconnect();
    }

    /// Handles one message; never fails.
    pub async fn handle(&mut self, topic: &str, payload: &[u8]) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        match decode_uplink(topic, payload) {
            Ok(Uplink::Telemetry(t)) => {
                if let Err(e) = self.telemetry(t).await {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, topic, "cannot store telemetry");
                }
            }
            Ok(Uplink::Status(s)) => {
                tracing::info!(gateway = %s.gateway, state = ?s.state, "gateway status");
            }
            Ok(Uplink::Alert(a)) => {
                tracing::info!(device = %a.device, kind = %a.kind, state = ?a.state, "edge alert");
            }
            Ok(Uplink::Health(h)) => {
                tracing::debug!(gateway = %h.gateway, poll_errors = h.poll_errors, "gateway health");
            }
            Ok(Uplink::CommandResult(r)) => {
                tracing::info!(id = %r.id, device = %r.device, ok = r.ok, error = ?r.error, "command result");
            }
            Ok(Uplink::ConfigResult(r)) if r.ok => {
                tracing::info!(gateway = %r.gateway, revision = %r.revision, "pushed config in effect");
            }
            Ok(Uplink::ConfigResult(r)) => {
                tracing::warn!(gateway = %r.gateway, revision = %r.revision, active = ?r.active, error = ?r.error, "pushed config refused");
            }
            Err(e) => self.stats.malformed(&e, topic),
        }
    }

    async fn telemetry(&mut self, t: Telemetry) -> Result<(), crate::store::StoreError> {
        let total = t.samples.len();
        let fresh = self
            .store
            .insert_samples(&t.gateway, &t.device, &t.profile, t.samples)
            .await?;
        self.stats
            .samples
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        self.stats.points.fetch_add(
            fresh.iter().map(|s| s.values.len() as u64).sum(),
            Ordering::Relaxed,
        );
        self.stats
            .duplicates
            .fetch_add((total - fresh.len()) as u64, Ordering::Relaxed);
        if fresh.is_empty() {
            return Ok(());
        }
        let profiles = self.profiles.clone();
        let Some(profile) = profiles.get(&t.profile) else {
            self.stats.unknown_profile.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        for update in self.predictor.observe(&t.device, profile, &fresh) {
            self.apply(&t.device, update).await?;
        }
        Ok(())
    }

    async fn apply(&mut self, device: &str, u: ConsumableUpdate) -> Result<(), crate::store::StoreError> {
        let c = &u.consumable;
        let p = u.prediction;
        if u.replaced {
            tracing::info!(device, consumable = %c.name, "replacement detected; new life started");
        } else if p.is_none() {
            // Too little data in this life to predict (for instance right after a
            // restart replayed a short history): keep the last stored prediction.
            return Ok(());
        }
        self.store
            .upsert_consumable(&ConsumableRow {
                device_id: device.to_string(),
                name: c.name.clone(),
                signal: c.signal.clone(),
                threshold: c.threshold,
                lead_time_days: c.lead_time_days,
                last_value: p.map(|p| p.last_value),
                life_start_ms: p.map(|p| p.life_start_ms),
                as_of_ms: p.map(|p| p.as_of_ms),
                end_of_life_ms: p.map(|p| p.end_of_life_ms),
                eol_low_ms: p.map(|p| p.interval_ms.0),
                eol_high_ms: p.and_then(|p| p.interval_ms.1),
                slope_per_day: p.map(|p| p.slope_per_day),
                samples: p.map(|p| p.samples),
                model: MODEL.to_string(),
            })
            .await?;
        let Some(p) = p else { return Ok(()) };
        let Some(order) = preventive_due(&p, c.lead_time_days) else {
            return Ok(());
        };
        let explanation = serde_json::json!({
            "rule": "predicted end of life within lead time",
            "model": MODEL,
            "signal": c.signal,
            "threshold": c.threshold,
            "last_value": p.last_value,
            "slope_per_day": p.slope_per_day,
            "remaining_days": order.remaining_days,
            "lead_time_days": c.lead_time_days,
            "predicted_end_of_life_ms": p.end_of_life_ms,
            "interval_ms": [p.interval_ms.0, p.interval_ms.1],
            "data_window_ms": [p.life_start_ms, p.as_of_ms],
            "effective_samples": p.samples,
        });
        let wo = NewWorkOrder {
            device_id: device.to_string(),
            kind: "preventive",
            cause: format!("consumable:{}", c.name),
            priority: order.priority.as_str(),
            title: format!(
                "Replace {} on {}: end of life predicted {} ({:.1} days left)",
                c.name,
                device,
                date(p.end_of_life_ms),
                order.remaining_days.max(0.0)
            ),
            opened_at_ms: wall_ms(),
            predicted_eol_ms: Some(p.end_of_life_ms),
            lead_time_days: Some(c.lead_time_days),
            explanation,
        };
        if let Some(row) = self.store.open_work_order(&wo).await? {
            self.stats.work_orders_opened.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = row.id, device, consumable = %c.name, "preventive work order opened");
            let _ = self.events.send(HubEvent::WorkOrderOpened(row));
        }
        Ok(())
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
