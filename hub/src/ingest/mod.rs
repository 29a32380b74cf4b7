//! Ingestion: subscribe to what agents publish, decode and validate every
//! message, store new samples (dropping duplicates), update predictions and
//! open preventive work orders.
//!
//! A malformed message is counted by reason and logged (rate-limited); it
//! never stops the task.

mod stats;

pub use stats::IngestStats;

use crate::predict::{ConsumableUpdate, MODEL_VERSION, Predictor};
use crate::run::HubEvent;
use crate::store::{ConsumableRow, LifeRow, NewWorkOrder, Store};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wearline_models::profile::{Consumable, Profile};
use wearline_models::rul::tracker::{EndedLife, LifeEstimate, Limit};
use wearline_models::rules::preventive_due;
use wearline_models::time::date;
use wearline_models::wire::{HUB_FILTERS, Telemetry, Uplink, decode_uplink};

/// Most samples per device replayed at start: those stored after the saved
/// life states (or, for a consumable without one, its recent history).
const REPLAY: i64 = 20_000;

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
    /// Fresh samples also go to InfluxDB, when configured.
    pub influx: Option<crate::influx::InfluxHandle>,
}

impl Ingest {
    /// Resumes every consumable's life from the store: the fleet's ended
    /// lives, each tracker's saved state, then the samples stored after it
    /// (those taken in before a crash but not yet in a saved state).
    pub async fn replay(&mut self) -> Result<(), crate::store::StoreError> {
        let mut lives: BTreeMap<(String, String), Vec<EndedLife>> = BTreeMap::new();
        for (profile, name, body) in self.store.lives().await? {
            match serde_json::from_str(&body) {
                Ok(l) => lives.entry((profile, name)).or_default().push(l),
                Err(e) => {
                    tracing::warn!(%profile, consumable = %name, error = %e, "stored life unreadable; skipped")
                }
            }
        }
        for ((profile, name), l) in lives {
            self.predictor.add_lives(&profile, &name, l);
        }
        for row in self.store.all_consumables().await? {
            let Some(c) = self
                .profiles
                .get(&row.profile)
                .and_then(|p| p.consumables.iter().find(|c| c.name == row.name))
            else {
                continue;
            };
            match serde_json::from_str(&row.state) {
                Ok(state) => {
                    self.predictor.resume(&row.device_id, c, state);
                }
                Err(e) => {
                    tracing::warn!(device = %row.device_id, consumable = %row.name, error = %e, "stored life state unreadable; rebuilt from history")
                }
            }
        }
        let profiles = self.profiles.clone();
        for d in self.store.devices().await? {
            let Some(profile) = profiles.get(&d.profile) else {
                continue;
            };
            // From the oldest state among the device's consumables (each tracker
            // ignores what it has already taken).
            let Some(after) = profile
                .consumables
                .iter()
                .map(|c| self.predictor.last_ms(&d.id, &c.name).unwrap_or(i64::MIN))
                .min()
            else {
                continue;
            };
            let rows = self.store.samples_after(&d.id, after, REPLAY).await?;
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
            if samples.is_empty() {
                continue;
            }
            for update in self.predictor.observe(&d.id, profile, &samples) {
                self.apply(&d.id, profile, update).await?;
            }
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
        if let Some(sink) = &self.influx {
            sink.send(&t.gateway, &t.device, &t.profile, &fresh).await;
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let profiles = self.profiles.clone();
        let Some(profile) = profiles.get(&t.profile) else {
            self.stats.unknown_profile.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        for update in self.predictor.observe(&t.device, profile, &fresh) {
            self.apply(&t.device, profile, update).await?;
        }
        Ok(())
    }

    async fn apply(
        &mut self,
        device: &str,
        profile: &Profile,
        u: ConsumableUpdate,
    ) -> Result<(), crate::store::StoreError> {
        let c = &u.consumable;
        for life in &u.ended {
            tracing::info!(device, consumable = %c.name, used = life.used, life = ?life.life, "replacement detected; new life started");
            let row = LifeRow {
                device_id: device.to_string(),
                name: c.name.clone(),
                profile: profile.name.clone(),
                started_ms: life.started_ms,
                ended_ms: life.ended_ms,
                life: life.life,
                used: life.used,
                body: serde_json::to_string(life).unwrap_or_default(),
            };
            if self.store.insert_life(&row).await? {
                self.stats.lives_ended.fetch_add(1, Ordering::Relaxed);
                self.predictor
                    .add_lives(&profile.name, &c.name, vec![life.clone()]);
            }
        }
        let e = u.estimate.as_ref();
        let explanation = e.map_or(serde_json::json!({}), |e| explain(c, e));
        let (low, high) = e.map_or((None, None), |e| {
            let (lo, hi) = e.end_interval_ms();
            (Some(lo), hi)
        });
        let state = &u.state;
        self.store
            .upsert_consumable(&ConsumableRow {
                device_id: device.to_string(),
                name: c.name.clone(),
                profile: profile.name.clone(),
                lead_time_days: c.lead_time_days,
                life_start_ms: e.map_or(state.last_ms().unwrap_or(0), |e| e.life_start_ms),
                as_of_ms: state.last_ms().unwrap_or(0),
                samples: i64::try_from(u.samples).unwrap_or(i64::MAX),
                used: e.map_or(0.0, |e| e.used),
                last_value: e.and_then(|e| e.last_value),
                limit_kind: e.map(|e| limit_name(e.limit).to_string()),
                remaining_usage: e.and_then(|e| e.remaining_usage),
                usage_per_day: e.and_then(|e| e.usage_per_day),
                end_of_life_ms: e.map(LifeEstimate::end_ms),
                eol_low_ms: low,
                eol_high_ms: high,
                coverage: e.map(|e| e.coverage),
                model: e.map(|e| format!("{MODEL_VERSION}: {}", e.model)),
                explanation: explanation.to_string(),
                state: serde_json::to_string(state).unwrap_or_default(),
            })
            .await?;
        let Some(e) = e else { return Ok(()) };
        let Some(order) = preventive_due(e.remaining_days(), c.lead_time_days) else {
            return Ok(());
        };
        let wo = NewWorkOrder {
            device_id: device.to_string(),
            kind: "preventive",
            cause: format!("consumable:{}", c.name),
            priority: order.priority.as_str(),
            title: format!(
                "Replace {} on {}: end of life predicted {} ({:.1} days left)",
                c.name,
                device,
                date(e.end_ms()),
                order.remaining_days.max(0.0)
            ),
            opened_at_ms: wall_ms(),
            predicted_eol_ms: Some(e.end_ms()),
            lead_time_days: Some(c.lead_time_days),
            explanation: serde_json::json!({
                "rule": "predicted end of life within lead time",
                "remaining_days": order.remaining_days,
                "lead_time_days": c.lead_time_days,
                "prediction": explanation,
            }),
        };
        if let Some(row) = self.store.open_work_order(&wo).await? {
            self.stats.work_orders_opened.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = row.id, device, consumable = %c.name, "preventive work order opened");
            let _ = self.events.send(HubEvent::WorkOrderOpened(row));
        }
        Ok(())
    }
}

fn limit_name(l: Limit) -> &'static str {
    match l {
        Limit::Wear => "wear",
        Limit::RatedLife => "rated_life",
        Limit::Calendar => "calendar",
    }
}

/// The prediction and the data behind it, as a work order explains itself.
fn explain(c: &Consumable, e: &LifeEstimate) -> serde_json::Value {
    let (low, high) = e.end_interval_ms();
    serde_json::json!({
        "model": format!("{MODEL_VERSION}: {}", e.model),
        "limit": limit_name(e.limit),
        "signal": c.signal,
        "threshold": c.threshold,
        "usage": c.usage.as_deref().unwrap_or("operating hours"),
        "rated_life": c.rated_life,
        "calendar_limit_days": c.calendar_limit_days,
        "last_value": e.last_value,
        "used": e.used,
        "remaining_usage": e.remaining_usage,
        "usage_per_day": e.usage_per_day,
        "remaining_days": e.remaining_days(),
        "predicted_end_of_life_ms": e.end_ms(),
        "interval_ms": [low, high],
        "coverage": e.coverage,
        "data_window_ms": [e.life_start_ms, e.as_of_ms],
        "basis": e.basis.map(|b| serde_json::json!({
            "points": b.points,
            "effective_points": b.effective_points,
            "usage_window": [b.usage_window.0, b.usage_window.1],
        })),
        "source": e.source,
        "prior_lives": e.prior_lives,
        "covariates": e.covariates,
    })
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
