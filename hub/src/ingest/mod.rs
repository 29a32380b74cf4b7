//! Ingestion: subscribe to what agents publish, decode and validate every
//! message, store new samples (dropping duplicates), update predictions and
//! open preventive work orders.
//!
//! A malformed message is counted by reason and logged (rate-limited); it
//! never stops the task.

mod orders;
mod remind;
mod shared;
mod stats;

pub use orders::consumable_cause;
pub use shared::Shared;
pub use stats::{IngestSnapshot, IngestStats, MalformedSnapshot};

use crate::clock::wall_ms;
use crate::predict::{ConsumableUpdate, MODEL_VERSION, Predictor, Snapshot};
use crate::run::HubEvent;
use crate::store::{ConsumableRow, LifeRow, NewAlert, NewWorkOrder, Store};
use orders::OrderEvent;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use wearline_models::profile::{Consumable, Profile};
use wearline_models::rul::tracker::{EndedLife, LifeEstimate, Limit};
use wearline_models::rules::{self, preventive_due};
use wearline_models::time::date;
use wearline_models::wire::{AlertState, Connectivity, HUB_FILTERS, Severity, Uplink, decode_uplink};

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
    /// Acknowledge each message only once its batch is committed. Right for
    /// an external broker, which keeps what is unacknowledged (its
    /// persistent session, or another hub of a shared subscription). The
    /// embedded broker shares the hub's process and keeps nothing on disk:
    /// a late acknowledgement would protect nothing it could redeliver, and
    /// its cap of 100 unacknowledged messages per subscriber would bound
    /// ingest to 100 per commit, so the hub acknowledges on receipt there.
    pub ack_after_commit: bool,
    /// Subscribe through this shared-subscription group (`$share/GROUP/…`).
    pub shared_group: Option<String>,
    /// Also subscribe to the tenant topics (`/tenants/+/…`) of
    /// client-certificate gateways on the embedded broker's TLS listener.
    pub tenant_topics: bool,
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
    /// Consumables changed since the last flush: by device, its profile and
    /// the consumables' indices in it.
    dirty: HashMap<String, (String, Vec<usize>)>,
    /// The devices of `dirty`, oldest change first: each flush writes the
    /// longest-waiting ones.
    dirty_order: std::collections::VecDeque<String>,
    /// With several hubs on one store (a shared subscription): the device
    /// leases that decide which hub predicts for which device.
    pub shared: Option<shared::Shared>,
    /// The order desk: opens, dispatches and verifies the work orders the
    /// data calls for, off the telemetry path.
    pub orders: orders::Orders,
    /// A corrective order was sent to the desk since the last
    /// acknowledgement: the batch is acknowledged only once the desk has
    /// opened it (nothing else would bring a lost one back; preventive
    /// orders come back with the next prediction, verifications with the
    /// next read of the resolved orders).
    corrective_sent: bool,
    /// Customers' reminder settings and what was queued.
    reminding: remind::Reminding,
    /// Gateways whose last will said offline (their devices' silence is
    /// one fault, the gateway's).
    offline_gateways: std::collections::HashSet<String>,
    last_flush: Instant,
    /// Consumables (by device, their indices) that are due: a prediction
    /// fell within the lead time, and none since was clearly beyond it
    /// ([`rules::released`]) nor was the part replaced. An order is opened
    /// when one becomes due, not on every prediction.
    due: HashMap<String, Vec<usize>>,
    /// Fresh samples also go to InfluxDB, when configured.
    pub influx: Option<crate::influx::InfluxHandle>,
    /// Commands to gateways go out on this task's connection, through this
    /// handle (the `indicator` reminders, and switching an indicator off
    /// when a part is replaced).
    pub downlink: Option<crate::downlink::Downlink>,
    /// A device heard from no message for this long is offline (an alert).
    pub offline_after: Duration,
    /// With `Some`, telemetry and alerts from devices outside this set (and
    /// not already registered in the store) are refused.
    pub known_devices: Option<std::collections::HashSet<String>>,
    /// When each device was last heard from (wall clock), and its gateway.
    heard: HashMap<String, (String, Instant)>,
    /// Devices with an open `device_offline` alert.
    silent: std::collections::HashSet<String>,
    last_silence_check: Instant,
}

/// Default silence after which a device is offline.
pub const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(300);
/// How often silences are checked.
const SILENCE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// A batch shorter than this waits up to [`BATCH_WAIT`] for more messages.
const BATCH_FILL: usize = 256;
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// Messages handled in one store transaction, at most.
const BATCH_MAX: usize = 8192;
/// Consumable states and predictions are written this often (a restart
/// replays the samples stored after the last written state)…
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// …at most this many consumables at a time, those changed longest ago
/// first: one big write would hold up the telemetry queued behind it (it
/// made the p99 of publish-to-queryable 388 ms in `wearline bench ingest`
/// at half rate). 2 560 consumables a second; when more change, each is
/// written less often, never lost.
const FLUSH_ROWS: usize = 256;

impl Ingest {
    pub fn new(
        store: Store,
        profiles: Arc<BTreeMap<String, Profile>>,
        stats: Arc<IngestStats>,
        events: broadcast::Sender<HubEvent>,
        subscribed: tokio::sync::watch::Sender<bool>,
    ) -> Ingest {
        let orders = orders::spawn(store.clone(), stats.clone(), events.clone());
        Ingest {
            store,
            profiles,
            predictor: Predictor::new(),
            stats,
            events,
            subscribed,
            dirty: HashMap::new(),
            dirty_order: std::collections::VecDeque::new(),
            shared: None,
            orders,
            corrective_sent: false,
            reminding: remind::Reminding::default(),
            offline_gateways: std::collections::HashSet::new(),
            last_flush: Instant::now(),
            due: HashMap::new(),
            influx: None,
            downlink: None,
            offline_after: DEFAULT_OFFLINE_AFTER,
            known_devices: None,
            heard: HashMap::new(),
            silent: std::collections::HashSet::new(),
            last_silence_check: Instant::now(),
        }
    }

    /// Resumes every consumable's life from the store: the fleet's ended
    /// lives, each tracker's saved state, then the samples stored after it
    /// (those taken in before a crash but not yet in a saved state).
    pub async fn replay(&mut self) -> Result<(), crate::store::StoreError> {
        if self.shared.is_some() {
            return self.replay_shared().await;
        }
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
        self.resume_liveness().await?;
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
                        restart: false,
                    })
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            let samples: Vec<&wearline_models::wire::Sample> = samples.iter().collect();
            for update in self.predictor.observe(&d.id, profile, &samples) {
                self.apply(&d.id, profile, update).await?;
            }
        }
        self.flush().await;
        Ok(())
    }

    /// Replay for a hub of a shared group: the ended lives and the devices'
    /// liveness; trackers resume device by device as their leases are taken.
    async fn replay_shared(&mut self) -> Result<(), crate::store::StoreError> {
        self.sync_lives().await;
        self.resume_liveness().await
    }

    /// Every known device gets a full silence from now before it is
    /// offline; devices already offline stay so until heard from.
    async fn resume_liveness(&mut self) -> Result<(), crate::store::StoreError> {
        let now = Instant::now();
        for d in self.store.devices().await? {
            if let Some(known) = &mut self.known_devices {
                known.insert(d.id.clone());
            }
            self.heard.insert(d.id.clone(), (d.gateway.clone(), now));
        }
        for a in self.store.alerts(true).await? {
            if a.kind == DEVICE_OFFLINE {
                self.silent.insert(a.device_id);
            } else if a.kind == GATEWAY_OFFLINE {
                self.offline_gateways.insert(a.device_id);
            }
        }
        Ok(())
    }

    /// Runs until `cancel` fires. The MQTT connection is read by this task;
    /// a second task stores and predicts in batches of up to [`BATCH_MAX`]
    /// messages, one transaction each. With `ack_after_commit` it
    /// acknowledges each message to the broker only after its batch is
    /// committed: a hub killed before that gets it again (from its
    /// persistent session, or, in a shared subscription group, through
    /// another hub). On cancel, what was received is stored before it returns.
    pub async fn run(self, cfg: IngestConfig, cancel: CancellationToken) {
        let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        opts.set_keep_alive(Duration::from_secs(15));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        // A persistent session: the broker queues QoS 1 messages while the hub reconnects.
        opts.set_clean_session(false);
        opts.set_manual_acks(cfg.ack_after_commit);
        opts.set_inflight(1000);
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            opts.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 4 * BATCH_MAX);
        let downlink = self.downlink.clone();
        if let Some(d) = &downlink {
            d.attach(client.clone());
        }
        // Room for the next batch while one is stored; further backlog
        // waits in the broker (in the hub's session, or the embedded
        // broker's `backlog_mib`), not in the hub's memory.
        let (tx, rx) = mpsc::channel::<Inbound>(BATCH_MAX);
        let acks = cfg.ack_after_commit.then(|| client.clone());
        let worker = tokio::spawn(self.work(rx, acks));
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
                    if let Some(d) = &downlink {
                        d.set_connected(true);
                    }
                    let tenants = cfg.tenant_topics.then(|| {
                        HUB_FILTERS
                            .iter()
                            .map(|f| format!("{}+/{f}", wearline_models::wire::TENANT_PREFIX))
                    });
                    let all = HUB_FILTERS
                        .iter()
                        .map(|f| f.to_string())
                        .chain(tenants.into_iter().flatten());
                    let filters = all.map(|f| {
                        let path = match &cfg.shared_group {
                            Some(g) => format!("$share/{g}/{f}"),
                            None => f,
                        };
                        rumqttc::SubscribeFilter::new(path, QoS::AtLeastOnce)
                    });
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!(error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    tracing::info!("ingest subscribed");
                    let _ = tx.send(Inbound::Subscribed).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(Inbound::Message(p)).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(d) = &downlink {
                        d.set_connected(false);
                    }
                    let _ = tx.send(Inbound::Lost).await;
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
        drop(tx);
        let _ = worker.await;
        let _ = client.try_disconnect();
    }

    /// The batch worker: stores, predicts, flushes and acknowledges.
    async fn work(mut self, mut rx: mpsc::Receiver<Inbound>, acks: Option<AsyncClient>) {
        let mut batch: Vec<Inbound> = Vec::with_capacity(BATCH_MAX);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, BATCH_MAX) => n,
                _ = tick.tick() => {
                    self.flush_if_due().await;
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            // A short batch is given a moment to fill: a transaction costs
            // about the same for 10 messages as for 500.
            if batch.len() < BATCH_FILL {
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while batch.len() < BATCH_FILL {
                    let room = BATCH_MAX - batch.len();
                    match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            // Connection changes come through the same channel, so they are
            // reported once what came before them is handled.
            let mut messages = Vec::with_capacity(batch.len());
            for item in batch.drain(..) {
                match item {
                    Inbound::Message(p) => messages.push(p),
                    Inbound::Subscribed | Inbound::Lost => {
                        let up = matches!(item, Inbound::Subscribed);
                        self.process(&messages).await;
                        self.settle_orders().await;
                        ack(acks.as_ref(), &messages).await;
                        messages.clear();
                        self.stats.connected.store(up, Ordering::Relaxed);
                        self.subscribed.send_replace(up);
                    }
                }
            }
            self.process(&messages).await;
            self.settle_orders().await;
            ack(acks.as_ref(), &messages).await;
            self.flush_if_due().await;
        }
        self.flush().await;
    }

    /// Waits for the order desk when a corrective order was sent (see
    /// `corrective_sent`); rare, so the telemetry path seldom waits.
    async fn settle_orders(&mut self) {
        if std::mem::take(&mut self.corrective_sent) {
            self.orders.sync(false).await;
        }
    }

    /// Handles one message and writes what it changed; never fails.
    pub async fn handle(&mut self, topic: &str, payload: &[u8]) {
        let p = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
        self.process(std::slice::from_ref(&p)).await;
        self.flush().await;
    }

    /// Decodes a batch of messages, stores the telemetry in one transaction
    /// (retried until it succeeds: nothing is acknowledged before), updates
    /// predictions and opens work orders. Never fails.
    pub async fn process(&mut self, batch: &[Publish]) {
        let mut telemetry = Vec::new();
        for p in batch {
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            let decoded = decode_uplink(&p.topic, &p.payload);
            let device = match &decoded {
                Ok(Uplink::Telemetry(t)) => Some(t.device.as_str()),
                Ok(Uplink::Alert(a)) => Some(a.device.as_str()),
                _ => None,
            };
            if device.is_some_and(|d| !self.is_known(d)) {
                self.stats.unknown_device(&p.topic);
                continue;
            }
            match decoded {
                Ok(Uplink::Telemetry(t)) => telemetry.push(t),
                Ok(other @ (Uplink::Alert(_) | Uplink::Status(_))) => {
                    if let Err(e) = self.edge_event(other).await {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "cannot record an alert");
                    }
                }
                Ok(Uplink::CommandResult(r)) => {
                    match crate::reminders::indicator::record_result(&self.store, &r, wall_ms()).await {
                        Ok(true) => {}
                        Ok(false) => other_uplink(Uplink::CommandResult(r)),
                        Err(e) => {
                            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, command = %r.id, "cannot record a command result");
                        }
                    }
                }
                Ok(other) => other_uplink(other),
                Err(e) => self.stats.malformed(&e, &p.topic),
            }
        }
        if telemetry.is_empty() {
            return;
        }
        for t in &telemetry {
            self.heard_from(&t.device, &t.gateway).await;
        }
        let mut wait = Duration::from_millis(50);
        let fresh = loop {
            let started = Instant::now();
            match self.store.insert_batch(&telemetry).await {
                Ok(f) => {
                    self.stats.store_telemetry.observe(started.elapsed());
                    break f;
                }
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, retry_in = ?wait, "cannot store telemetry; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        let profiles = self.profiles.clone();
        let (mut samples, mut points, mut duplicates) = (0u64, 0u64, 0u64);
        // Shared group: devices to predict for from the store, with their profile.
        let mut to_feed: BTreeMap<String, String> = BTreeMap::new();
        for (t, fresh) in telemetry.iter().zip(fresh) {
            duplicates += (t.samples.len() - fresh.len()) as u64;
            samples += fresh.len() as u64;
            let fresh: Vec<&wearline_models::wire::Sample> = fresh.iter().map(|&k| &t.samples[k]).collect();
            points += fresh.iter().map(|s| s.values.len() as u64).sum::<u64>();
            if fresh.is_empty() {
                continue;
            }
            if let Some(sink) = &self.influx {
                sink.send(&t.gateway, &t.device, &t.profile, &fresh).await;
            }
            let Some(profile) = profiles.get(&t.profile) else {
                self.stats.unknown_profile.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if self.shared.is_some() {
                to_feed.insert(t.device.clone(), t.profile.clone());
                continue;
            }
            for update in self.predictor.observe(&t.device, profile, &fresh) {
                if let Err(e) = self.apply(&t.device, profile, update).await {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device = %t.device, "cannot record a prediction");
                }
            }
        }
        if !to_feed.is_empty() {
            self.feed_shared(to_feed).await;
        }
        // Counted once fully processed (stored and predictions updated), so a
        // reader that sees the count sees the samples' effects.
        self.stats.points.fetch_add(points, Ordering::Relaxed);
        self.stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        self.stats.samples.fetch_add(samples, Ordering::Relaxed);
    }

    /// Whether telemetry from `device` is taken (always, unless unknown
    /// devices are refused).
    fn is_known(&self, device: &str) -> bool {
        self.known_devices.as_ref().is_none_or(|k| k.contains(device))
    }

    async fn flush_if_due(&mut self) {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush_some(FLUSH_ROWS).await;
        }
        self.shared_tick().await;
        if self.last_silence_check.elapsed() >= SILENCE_CHECK_EVERY {
            self.check_silence(Instant::now()).await;
        }
    }

    /// Opens a `device_offline` alert for each device not heard from for
    /// `offline_after` as of `now`.
    pub async fn check_silence(&mut self, now: Instant) {
        self.last_silence_check = now;
        let quiet: Vec<(String, String, Duration)> = self
            .heard
            .iter()
            .filter(|(d, (_, at))| {
                now.saturating_duration_since(*at) >= self.offline_after && !self.silent.contains(*d)
            })
            .map(|(d, (g, at))| (d.clone(), g.clone(), now.saturating_duration_since(*at)))
            .collect();
        for (device, gateway, silence) in quiet {
            let alert = NewAlert {
                device_id: device.clone(),
                gateway,
                kind: DEVICE_OFFLINE.into(),
                source: "hub",
                severity: "warning".into(),
                opened_ms: wall_ms(),
                detail: serde_json::json!({"silent_for_s": silence.as_secs(), "offline_after_s": self.offline_after.as_secs()}),
            };
            match self.store.open_alert(&alert).await {
                Ok(row) => {
                    if row.is_some() {
                        self.stats.alerts_opened.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%device, silent_for_s = silence.as_secs(), "device offline: nothing heard");
                        // A gateway's outage is one fault: its order is the gateway's.
                        if !self.offline_gateways.contains(&alert.gateway) {
                            let wo =
                                offline_order(&device, &format!("nothing heard for {} s", silence.as_secs()));
                            self.corrective_sent = true;
                            self.orders.send(OrderEvent::Corrective(wo));
                        }
                    }
                    self.silent.insert(device);
                }
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, %device, "cannot open an offline alert");
                }
            }
        }
    }

    /// A device was heard from: it is online again if it was silent.
    async fn heard_from(&mut self, device: &str, gateway: &str) {
        let now = Instant::now();
        match self.heard.get_mut(device) {
            Some(h) => h.1 = now,
            None => {
                self.heard.insert(device.to_string(), (gateway.to_string(), now));
            }
        }
        if self.silent.remove(device) {
            match self.store.clear_alert(device, DEVICE_OFFLINE, wall_ms()).await {
                Ok(_) => {
                    tracing::info!(device, "device back online");
                    self.orders.send(OrderEvent::FaultCleared {
                        device: device.to_string(),
                        cause: orders::OFFLINE_CAUSE.into(),
                    });
                }
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device, "cannot clear an offline alert");
                    self.silent.insert(device.to_string());
                }
            }
        }
    }

    /// Records an alert raised or cleared at the edge, or a gateway's
    /// connectivity (its last will opens `gateway_offline`).
    async fn edge_event(&mut self, u: Uplink) -> Result<(), crate::store::StoreError> {
        match u {
            Uplink::Alert(a) => {
                self.heard_from(&a.device, &a.gateway).await;
                match a.state {
                    AlertState::Open => {
                        let row = self
                            .store
                            .open_alert(&NewAlert {
                                device_id: a.device.clone(),
                                gateway: a.gateway.clone(),
                                kind: a.kind.clone(),
                                source: "edge",
                                severity: severity_name(a.severity).into(),
                                opened_ms: a.ts_ms,
                                detail: serde_json::json!({"metric": a.metric, "score": a.score, "baseline": a.baseline, "value": a.value}),
                            })
                            .await?;
                        if row.is_some() {
                            self.stats.alerts_opened.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::info!(device = %a.device, kind = %a.kind, severity = ?a.severity, "edge alert opened");
                        if a.severity == Severity::Critical {
                            self.corrective_sent = true;
                            self.orders.send(OrderEvent::Corrective(NewWorkOrder {
                                device_id: a.device.clone(),
                                kind: "corrective",
                                cause: orders::alert_cause(&a.kind),
                                priority: "P1",
                                title: format!(
                                    "Inspect {}: {} ({} at {:.3}, baseline {:.3})",
                                    a.device, a.kind, a.metric, a.value, a.baseline
                                ),
                                opened_at_ms: wall_ms(),
                                predicted_eol_ms: None,
                                lead_time_days: None,
                                explanation: serde_json::json!({
                                    "rule": "critical alert from the edge",
                                    "alert": {"kind": a.kind, "metric": a.metric, "score": a.score,
                                              "baseline": a.baseline, "value": a.value, "ts_ms": a.ts_ms},
                                })
                                .to_string(),
                            }));
                        }
                    }
                    AlertState::Cleared => {
                        self.store.clear_alert(&a.device, &a.kind, a.ts_ms).await?;
                        tracing::info!(device = %a.device, kind = %a.kind, "edge alert cleared");
                        self.orders.send(OrderEvent::FaultCleared {
                            device: a.device.clone(),
                            cause: orders::alert_cause(&a.kind),
                        });
                    }
                }
            }
            Uplink::Status(s) => {
                tracing::info!(gateway = %s.gateway, state = ?s.state, "gateway status");
                match s.state {
                    Connectivity::Offline => {
                        let row = self
                            .store
                            .open_alert(&NewAlert {
                                device_id: s.gateway.clone(),
                                gateway: s.gateway.clone(),
                                kind: GATEWAY_OFFLINE.into(),
                                source: "hub",
                                severity: "warning".into(),
                                opened_ms: wall_ms(),
                                detail: serde_json::json!({"last_will_since_ms": s.since_ms, "agent_version": s.agent_version}),
                            })
                            .await?;
                        if row.is_some() {
                            self.stats.alerts_opened.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(gateway = %s.gateway, "gateway offline (its last will)");
                            let wo = offline_order(&s.gateway, "the gateway's last will: connection lost");
                            self.corrective_sent = true;
                            self.orders.send(OrderEvent::Corrective(wo));
                        }
                        self.offline_gateways.insert(s.gateway.clone());
                    }
                    Connectivity::Online => {
                        self.store
                            .clear_alert(&s.gateway, GATEWAY_OFFLINE, wall_ms())
                            .await?;
                        self.offline_gateways.remove(&s.gateway);
                        self.orders.send(OrderEvent::FaultCleared {
                            device: s.gateway.clone(),
                            cause: orders::OFFLINE_CAUSE.into(),
                        });
                        let now = wall_ms();
                        if let Err(e) =
                            crate::reminders::indicator::gateway_online(&self.store, &s.gateway, now).await
                        {
                            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, gateway = %s.gateway, "cannot bring indicator reminders forward");
                        }
                    }
                }
            }
            other => other_uplink(other),
        }
        Ok(())
    }

    /// Writes the states and predictions of every consumable changed since
    /// it was last written.
    pub async fn flush(&mut self) {
        while !self.dirty.is_empty() {
            if !self.flush_some(usize::MAX).await {
                return;
            }
        }
        self.last_flush = Instant::now();
        self.orders.sync(false).await;
    }

    /// Writes the states and predictions of the consumables changed longest
    /// ago, about `max_rows` of them (whole devices); whether it succeeded
    /// (on failure they stay to be written by the next flush).
    async fn flush_some(&mut self, max_rows: usize) -> bool {
        self.last_flush = Instant::now();
        let mut taken: Vec<(String, (String, Vec<usize>))> = Vec::new();
        let mut count = 0;
        while count < max_rows {
            let Some(device) = self.dirty_order.pop_front() else {
                break;
            };
            if let Some(entry) = self.dirty.remove(&device) {
                count += entry.1.len();
                taken.push((device, entry));
            }
        }
        if taken.is_empty() {
            return true;
        }
        let rows: Vec<ConsumableRow> = taken
            .iter()
            .flat_map(|(device, (profile, indices))| indices.iter().map(move |i| (device, profile, *i)))
            .filter_map(|(device, profile, index)| {
                let c = self.profiles.get(profile)?.consumables.get(index)?;
                let snap = self.predictor.snapshot(device, profile, &c.name)?;
                Some(consumable_row(device, profile, c, &snap))
            })
            .collect();
        let started = Instant::now();
        match self.store.upsert_consumables(&rows).await {
            Ok(()) => {
                self.stats.store_consumables.observe(started.elapsed());
                true
            }
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, rows = rows.len(), "cannot write consumable states; kept for the next flush");
                // Back at the front, merged with what changed meanwhile.
                for (device, (profile, indices)) in taken.into_iter().rev() {
                    match self.dirty.get_mut(&device) {
                        Some((_, now)) => {
                            for i in indices {
                                if !now.contains(&i) {
                                    now.push(i);
                                }
                            }
                            self.dirty_order.retain(|d| *d != device);
                        }
                        None => {
                            self.dirty.insert(device.clone(), (profile, indices));
                        }
                    }
                    self.dirty_order.push_front(device);
                }
                false
            }
        }
    }

    async fn apply(
        &mut self,
        device: &str,
        profile: &Profile,
        u: ConsumableUpdate,
    ) -> Result<(), crate::store::StoreError> {
        let Some(c) = profile.consumables.get(u.index) else {
            return Ok(());
        };
        // The end of the latest life stored now (a replay or another hub may
        // have stored it before): where the new part's life starts.
        let mut newly_ended: Option<i64> = None;
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
                newly_ended = newly_ended.max(Some(life.ended_ms));
                if let Some(shared) = &mut self.shared {
                    shared
                        .known_lives
                        .insert((row.device_id.clone(), row.name.clone(), row.started_ms));
                }
                self.stats.lives_ended.fetch_add(1, Ordering::Relaxed);
                self.predictor
                    .add_lives(&profile.name, &c.name, vec![life.clone()]);
            }
        }
        let replaced = !u.ended.is_empty();
        if replaced {
            self.orders.send(OrderEvent::PartReplaced {
                device: device.to_string(),
                consumable: c.name.clone(),
            });
            if let Some(started) = newly_ended {
                let gateway = self.heard.get(device).map(|(g, _)| g.clone());
                let done = crate::reminders::indicator::part_replaced(
                    &self.store,
                    self.downlink.as_ref(),
                    gateway.as_deref(),
                    device,
                    c,
                    started,
                    wall_ms(),
                )
                .await;
                if let Err(e) = done {
                    // Its reminders of the old part stay pending; the prediction goes on.
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device, consumable = %c.name, "cannot settle the indicator of a replaced part");
                }
            }
        }
        match self.dirty.get_mut(device) {
            Some((_, indices)) if indices.contains(&u.index) => {}
            Some((_, indices)) => indices.push(u.index),
            None => {
                self.dirty
                    .insert(device.to_string(), (profile.name.clone(), vec![u.index]));
                self.dirty_order.push_back(device.to_string());
            }
        }
        let remaining = u.estimate.as_ref().map(LifeEstimate::remaining_days);
        let within = remaining.and_then(|r| preventive_due(r, c.lead_time_days));
        // A new part is due again only when it wears out in turn.
        let was_due = !replaced && self.due.get(device).is_some_and(|d| d.contains(&u.index));
        let (due, open) = rules::due_step(was_due, remaining, c.lead_time_days);
        if due != was_due || replaced {
            let indices = self.due.entry(device.to_string()).or_default();
            indices.retain(|i| *i != u.index);
            if due {
                indices.push(u.index);
            }
        }
        if let Some(e) = &u.estimate {
            self.remind(device, profile, c, e).await;
        }
        if !replaced && self.orders.watches(device) {
            self.orders.send(OrderEvent::PartChecked {
                device: device.to_string(),
                consumable: c.name.clone(),
                still_due: within.is_some(),
            });
        }
        let (Some(order), Some(e)) = (open, &u.estimate) else {
            return Ok(());
        };
        let wo = NewWorkOrder {
            device_id: device.to_string(),
            kind: "preventive",
            cause: orders::consumable_cause(&c.name),
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
                "prediction": explain(c, e),
            })
            .to_string(),
        };
        self.orders.send(OrderEvent::Preventive(wo));
        Ok(())
    }
}

/// The store's row of a consumable's current life and prediction.
fn consumable_row(device: &str, profile: &str, c: &Consumable, snap: &Snapshot) -> ConsumableRow {
    let e = snap.estimate.as_ref();
    let (low, high) = e.map_or((None, None), |e| {
        let (lo, hi) = e.end_interval_ms();
        (Some(lo), hi)
    });
    let state = &snap.state;
    ConsumableRow {
        device_id: device.to_string(),
        name: c.name.clone(),
        profile: profile.to_string(),
        lead_time_days: c.lead_time_days,
        life_start_ms: e.map_or(state.last_ms().unwrap_or(0), |e| e.life_start_ms),
        as_of_ms: state.last_ms().unwrap_or(0),
        samples: i64::try_from(snap.samples).unwrap_or(i64::MAX),
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
        explanation: e.map_or(serde_json::json!({}), |e| explain(c, e)).to_string(),
        state: serde_json::to_string(state).unwrap_or_default(),
    }
}

/// Alert kinds the hub raises.
pub const DEVICE_OFFLINE: &str = "device_offline";
pub const GATEWAY_OFFLINE: &str = "gateway_offline";

/// A corrective order for a device (or gateway) gone offline.
fn offline_order(id: &str, why: &str) -> NewWorkOrder {
    NewWorkOrder {
        device_id: id.to_string(),
        kind: "corrective",
        cause: orders::OFFLINE_CAUSE.into(),
        priority: "P2",
        title: format!("Check {id}: offline ({why})"),
        opened_at_ms: wall_ms(),
        predicted_eol_ms: None,
        lead_time_days: None,
        explanation: serde_json::json!({"rule": "offline beyond its limit", "why": why}).to_string(),
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// What the connection task hands the batch worker.
enum Inbound {
    Message(Publish),
    /// The subscriptions are acknowledged.
    Subscribed,
    /// The connection dropped.
    Lost,
}

/// Acknowledges handled messages to the broker (QoS 0 needs none), when
/// acknowledgements wait for the commit.
async fn ack(client: Option<&AsyncClient>, messages: &[Publish]) {
    let Some(client) = client else { return };
    for p in messages {
        if p.qos != QoS::AtMostOnce && client.ack(p).await.is_err() {
            // The connection is gone: the broker delivers them again.
            break;
        }
    }
}

/// Logs what is not telemetry (status, alerts, health, command and config results).
fn other_uplink(u: Uplink) {
    match u {
        Uplink::Telemetry(_) => {}
        Uplink::Status(s) => {
            tracing::info!(gateway = %s.gateway, state = ?s.state, "gateway status");
        }
        Uplink::Alert(a) => {
            tracing::info!(device = %a.device, kind = %a.kind, state = ?a.state, "edge alert");
        }
        Uplink::Health(h) => {
            tracing::debug!(gateway = %h.gateway, poll_errors = h.poll_errors, "gateway health");
        }
        Uplink::CommandResult(r) => {
            tracing::info!(id = %r.id, device = %r.device, ok = r.ok, error = ?r.error, "command result");
        }
        Uplink::ConfigResult(r) if r.ok => {
            tracing::info!(gateway = %r.gateway, revision = %r.revision, "pushed config in effect");
        }
        Uplink::ConfigResult(r) => {
            tracing::warn!(gateway = %r.gateway, revision = %r.revision, active = ?r.active, error = ?r.error, "pushed config refused");
        }
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

#[cfg(test)]
mod tests;
