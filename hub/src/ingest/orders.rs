//! Work orders the data opens and verifies.
//!
//! - **Corrective**: a critical edge alert opens one (cause `alert:{kind}`,
//!   P1); a device gone silent past `offline_after` opens one (cause
//!   `offline`, P2).
//! - **Verification**: a resolved order is closed by the hub once the data
//!   shows the fix (the part's life restarted; the alert cleared), and
//!   reopened when the fault persists (the part still worn
//!   for [`VERIFY_SAMPLES`] prediction updates after the resolution; the alert raised
//!   again). A part replaced before the visit cancels its open order; a new
//!   part the data shows during the visit (the order in progress) is noted
//!   in the trail, and the order closes as verified as soon as it is
//!   resolved. An alert that cleared before the resolution is found when the
//!   resolved order is first read (`fault_gone`). A
//!   later prediction for the new part never touches the old order: it is
//!   closed, and a new one opens if the new part wears out in turn.
//!
//! The hub learns of resolutions made through the API by reading the
//! resolved orders every [`RESOLVED_REFRESH`].
//!
//! All of it runs in its own task, the order desk ([`spawn`]): ingest sends
//! it [`OrderEvent`]s and goes on, so opening, dispatching and verifying
//! orders (a transaction or more each) never holds up the telemetry behind
//! them, even when a whole fleet falls due at once. Events are handled in
//! the order they were sent; [`Orders::sync`] waits until those sent
//! before are done (flushes and tests use it). Only the devices with a
//! resolved order awaiting verification need each new prediction
//! ([`OrderEvent::PartChecked`]): the desk publishes them
//! ([`Orders::watches`]), and ingest sends no other. Sending every
//! prediction (one per telemetry message) let the desk's queue grow to
//! 22 MB while it waited on the store under `wearline bench ingest`.

use super::IngestStats;
use crate::clock::wall_ms;
use crate::run::HubEvent;
use crate::store::{Change, ChangeError, NewWorkOrder, Store, WorkOrderRow};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wearline_models::rules::Priority;
use wearline_models::workorder::{self, Action, Criticality, Status};

/// Samples still worn after a resolution before the order is reopened.
pub const VERIFY_SAMPLES: u32 = 10;
/// How often the resolved orders are read from the store.
pub const RESOLVED_REFRESH: Duration = Duration::from_secs(5);
/// The cause of a corrective order for a device gone silent.
pub const OFFLINE_CAUSE: &str = "offline";
/// How long the devices' criticality is kept before it is read again.
pub const CRITICALITY_FOR: Duration = Duration::from_secs(30);

/// What ingest tells the order desk.
#[derive(Debug)]
pub enum OrderEvent {
    /// A consumable fell due: open its preventive order.
    Preventive(NewWorkOrder),
    /// A fault seen: reopen its resolved order, or open a corrective one.
    Corrective(NewWorkOrder),
    /// The fault behind `cause` is gone (an alert cleared, a device back).
    FaultCleared { device: String, cause: String },
    /// A consumable's life restarted.
    PartReplaced { device: String, consumable: String },
    /// A new prediction for a consumable, still within its lead time or not
    /// (sent only for a device the desk [`Orders::watches`]).
    PartChecked {
        device: String,
        consumable: String,
        still_due: bool,
    },
    /// Answered once everything sent before is handled; with `refresh`,
    /// after reading the resolved orders anew.
    Sync {
        refresh: bool,
        done: oneshot::Sender<()>,
    },
}

/// Ingest's side of the order desk.
#[derive(Debug, Clone)]
pub struct Orders {
    tx: mpsc::UnboundedSender<OrderEvent>,
    /// Devices with a resolved order awaiting verification.
    watched: watch::Receiver<HashSet<String>>,
}

impl Orders {
    /// Hands `event` to the desk (never waits; the desk keeps up with the
    /// rate predictions fall due, and nothing is dropped).
    pub fn send(&self, event: OrderEvent) {
        if self.tx.send(event).is_err() {
            tracing::error!("the order desk has stopped; an order event is lost");
        }
    }

    /// Whether the desk wants `device`'s predictions
    /// ([`OrderEvent::PartChecked`]): it has a resolved order to verify.
    pub fn watches(&self, device: &str) -> bool {
        let watched = self.watched.borrow();
        !watched.is_empty() && watched.contains(device)
    }

    /// Waits until the desk has handled everything sent before (and, with
    /// `refresh`, read the resolved orders anew).
    pub async fn sync(&self, refresh: bool) {
        let (done, wait) = oneshot::channel();
        self.send(OrderEvent::Sync { refresh, done });
        let _ = wait.await;
    }
}

/// Starts the order desk; it ends when every [`Orders`] is dropped.
pub fn spawn(store: Store, stats: Arc<IngestStats>, events: broadcast::Sender<HubEvent>) -> Orders {
    let (tx, rx) = mpsc::unbounded_channel();
    let (watch_tx, watched) = watch::channel(HashSet::new());
    let desk = Desk {
        watched: watch_tx,
        store,
        stats,
        events,
        verifying: Verifying::default(),
        team: Team::default(),
        criticality: HashMap::new(),
        criticality_loaded: None,
    };
    tokio::spawn(desk.run(rx));
    Orders { tx, watched }
}

/// The order desk's state.
struct Desk {
    /// The devices of `verifying.orders`, for [`Orders::watches`].
    watched: watch::Sender<HashSet<String>>,
    store: Store,
    stats: Arc<IngestStats>,
    events: broadcast::Sender<HubEvent>,
    /// Resolved work orders waiting for the data to verify them.
    verifying: Verifying,
    /// Technicians for dispatching the orders the data opens.
    team: Team,
    /// Device → its criticality, when not `normal`.
    criticality: HashMap<String, Criticality>,
    criticality_loaded: Option<Instant>,
}

/// Resolved orders awaiting verification, by (device, cause).
#[derive(Debug, Default)]
pub struct Verifying {
    orders: HashMap<(String, String), Waiting>,
    /// Orders in progress whose new part the data has already shown, by
    /// (device, cause): closed as verified once resolved. Kept in memory
    /// only: after a restart the resolved order is verified by the
    /// remaining life instead ([`VERIFY_SAMPLES`]).
    fixed_in_visit: HashMap<(String, String), i64>,
    last_refresh: Option<Instant>,
}

/// The dispatch team, for orders the data opens, read at most every
/// [`TEAM_FOR`].
#[derive(Debug, Default)]
pub struct Team {
    members: Vec<wearline_models::dispatch::Technician>,
    loaded: Option<Instant>,
}

/// How long the dispatch team is kept before it is read again.
pub const TEAM_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Waiting {
    id: i64,
    /// Samples seen since the resolution with the part still worn.
    worn_samples: u32,
}

pub fn consumable_cause(name: &str) -> String {
    format!("consumable:{name}")
}

pub fn alert_cause(kind: &str) -> String {
    format!("alert:{kind}")
}

impl Desk {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<OrderEvent>) {
        let mut tick = tokio::time::interval(RESOLVED_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = tick.tick() => {
                    self.refresh_resolved(false).await;
                    self.publish_watched();
                    continue;
                }
            };
            let Some(event) = event else { break };
            match event {
                OrderEvent::Preventive(wo) => {
                    if let Err(e) = self.open_order(wo).await {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "cannot open a work order");
                    }
                }
                OrderEvent::Corrective(wo) => self.corrective(wo).await,
                OrderEvent::FaultCleared { device, cause } => self.fault_cleared(&device, &cause).await,
                OrderEvent::PartReplaced { device, consumable } => {
                    self.part_replaced(&device, &consumable).await;
                }
                OrderEvent::PartChecked {
                    device,
                    consumable,
                    still_due,
                } => self.part_checked(&device, &consumable, still_due).await,
                OrderEvent::Sync { refresh, done } => {
                    if refresh {
                        self.refresh_resolved(true).await;
                    }
                    // What a caller sends once synced is filtered by the
                    // orders just read.
                    self.publish_watched();
                    let _ = done.send(());
                }
            }
            self.publish_watched();
        }
    }

    /// Publishes the devices with a resolved order awaiting verification,
    /// when they changed.
    fn publish_watched(&self) {
        let devices: HashSet<&str> = self.verifying.orders.keys().map(|(d, _)| d.as_str()).collect();
        let same = {
            let current = self.watched.borrow();
            current.len() == devices.len() && devices.iter().all(|d| current.contains(*d))
        };
        if !same {
            self.watched
                .send_replace(devices.into_iter().map(str::to_string).collect());
        }
    }

    /// A device's criticality (all devices' read at most every
    /// [`CRITICALITY_FOR`]; on a failure the old ones stay).
    async fn criticality_of(&mut self, device: &str) -> Criticality {
        if self
            .criticality_loaded
            .is_none_or(|t| t.elapsed() >= CRITICALITY_FOR)
        {
            self.criticality_loaded = Some(Instant::now());
            match self.store.device_owners().await {
                Ok(owners) => {
                    self.criticality = owners
                        .into_iter()
                        .filter_map(|(d, _, c)| Some((d, Criticality::parse(&c)?)))
                        .collect();
                }
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot read the devices' criticality");
                }
            }
        }
        self.criticality.get(device).copied().unwrap_or_default()
    }

    /// Opens an order unless one is active for its device and cause, at the
    /// priority of its urgency (`wo.priority`) and the device's
    /// criticality; counted, logged, announced and dispatched.
    async fn open_order(
        &mut self,
        mut wo: NewWorkOrder,
    ) -> Result<Option<WorkOrderRow>, crate::store::StoreError> {
        let criticality = self.criticality_of(&wo.device_id).await;
        let urgency = Priority::parse(wo.priority).unwrap_or(Priority::P3);
        wo.priority = workorder::priority(urgency, criticality).as_str();
        if let Ok(serde_json::Value::Object(mut why)) = serde_json::from_str(&wo.explanation) {
            why.insert("urgency".into(), urgency.as_str().into());
            why.insert("criticality".into(), criticality.as_str().into());
            wo.explanation = serde_json::Value::Object(why).to_string();
        }
        let row = self.store.open_work_order(&wo).await?;
        if let Some(row) = &row {
            self.stats.work_orders_opened.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = row.id, device = %row.device_id, kind = %row.kind, cause = %row.cause, "work order opened");
            let _ = self.events.send(HubEvent::WorkOrderOpened(row.clone()));
            // The team is read at most every TEAM_FOR: opening an order
            // must not hold up the telemetry behind it.
            if self.team.loaded.is_none_or(|t| t.elapsed() >= TEAM_FOR) {
                self.team.members = crate::dispatch::team(&self.store).await?;
                self.team.loaded = Some(Instant::now());
            }
            let outcome =
                crate::dispatch::dispatch(&self.store, &mut self.team.members, row, wall_ms()).await;
            if let crate::dispatch::Dispatched::Waiting(why) = outcome? {
                tracing::info!(id = row.id, reason = %why, "work order waits for a technician (tried again every minute)");
            }
        }
        Ok(row)
    }

    /// A fault seen again: its resolved order is reopened, else a
    /// corrective order opens.
    async fn corrective(&mut self, wo: NewWorkOrder) {
        self.refresh_resolved(false).await;
        let key = (wo.device_id.clone(), wo.cause.clone());
        if let Some(w) = self.verifying.orders.remove(&key) {
            self.hub_change(
                w.id,
                Action::Reopen,
                "fault persists: raised again after the resolution",
            )
            .await;
            return;
        }
        if let Err(e) = self.open_order(wo).await {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot open a corrective work order");
        }
    }

    /// The fault behind `cause` is gone (an alert cleared): a resolved
    /// order for it is closed as verified. (An order resolved after its
    /// alert cleared is verified when it is first read as resolved:
    /// [`Self::refresh_resolved`].)
    async fn fault_cleared(&mut self, device: &str, cause: &str) {
        self.refresh_resolved(true).await;
        if let Some(w) = self
            .verifying
            .orders
            .remove(&(device.to_string(), cause.to_string()))
        {
            self.hub_change(w.id, Action::Close, "verified by data: the alert cleared")
                .await;
        }
    }

    /// Whether a resolved order's cause is an alert (an edge alert, a
    /// device or gateway offline) that is no longer open.
    async fn fault_gone(&mut self, order: &WorkOrderRow) -> bool {
        let kinds: Vec<&str> = if order.cause == OFFLINE_CAUSE {
            vec![super::DEVICE_OFFLINE, super::GATEWAY_OFFLINE]
        } else if let Some(kind) = order.cause.strip_prefix("alert:") {
            vec![kind]
        } else {
            return false;
        };
        match self.store.has_open_alert(&order.device_id, &kinds).await {
            Ok(open) => !open,
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, id = order.id, "cannot read the order's alert");
                false
            }
        }
    }

    /// A consumable's life restarted (the part was replaced): its resolved
    /// order is closed as verified; one in progress is closed so once it is
    /// resolved (the technician fitted the part and has not said so yet);
    /// any other active order is cancelled, the part having been replaced
    /// before the visit.
    async fn part_replaced(&mut self, device: &str, consumable: &str) {
        self.refresh_resolved(true).await;
        let cause = consumable_cause(consumable);
        if let Some(w) = self.verifying.orders.remove(&(device.to_string(), cause.clone())) {
            self.hub_change(
                w.id,
                Action::Close,
                "verified by data: the new part was detected (its life restarted)",
            )
            .await;
            return;
        }
        match self.store.active_work_order(device, &cause).await {
            // The technician fitted it and has not resolved the order yet.
            Ok(Some(active)) if active.status == Status::InProgress.as_str() => {
                let detail = serde_json::json!({
                    "note": "the new part was seen in the data during the visit: verified once resolved"
                });
                if let Err(e) = self
                    .store
                    .note_work_order(active.id, "hub", "fix_seen", &detail, wall_ms())
                    .await
                {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device, "cannot note the new part");
                }
                self.verifying
                    .fixed_in_visit
                    .insert((device.to_string(), cause), active.id);
            }
            Ok(Some(active)) => {
                self.hub_change(
                    active.id,
                    Action::Cancel,
                    "the part was replaced before the visit (seen in the data)",
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, device, "cannot read the active work order");
            }
        }
    }

    /// A new prediction for a consumable whose order is resolved without a
    /// replacement seen: after [`VERIFY_SAMPLES`] of them, reopened if the
    /// part is still due, closed as verified if it is not.
    async fn part_checked(&mut self, device: &str, consumable: &str, still_due: bool) {
        if self.verifying.orders.is_empty() {
            return;
        }
        let key = (device.to_string(), consumable_cause(consumable));
        let Some(w) = self.verifying.orders.get_mut(&key) else {
            return;
        };
        w.worn_samples += 1;
        if w.worn_samples < VERIFY_SAMPLES {
            return;
        }
        let id = w.id;
        self.verifying.orders.remove(&key);
        if still_due {
            let note =
                format!("fault persists: no new part seen in {VERIFY_SAMPLES} samples after the resolution");
            self.hub_change(id, Action::Reopen, &note).await;
        } else {
            self.hub_change(
                id,
                Action::Close,
                "verified by data: the remaining life is beyond the lead time again",
            )
            .await;
        }
    }

    /// Reads the resolved orders (at most every [`RESOLVED_REFRESH`], or
    /// now with `force`), keeping the counts of those already followed.
    async fn refresh_resolved(&mut self, force: bool) {
        if !force
            && self
                .verifying
                .last_refresh
                .is_some_and(|t| t.elapsed() < RESOLVED_REFRESH)
        {
            return;
        }
        self.verifying.last_refresh = Some(Instant::now());
        let rows = match self.store.resolved_work_orders().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot read resolved work orders");
                return;
            }
        };
        let mut orders = HashMap::with_capacity(rows.len());
        let mut fixed_before = Vec::new();
        let followed: std::collections::HashSet<i64> = self.verifying.orders.values().map(|w| w.id).collect();
        for row in rows {
            if !followed.contains(&row.id) && self.fault_gone(&row).await {
                fixed_before.push(row.id);
                continue;
            }
            let key = (row.device_id, row.cause);
            let worn_samples = self
                .verifying
                .orders
                .get(&key)
                .filter(|w| w.id == row.id)
                .map_or(0, |w| w.worn_samples);
            orders.insert(
                key,
                Waiting {
                    id: row.id,
                    worn_samples,
                },
            );
        }
        self.verifying.orders = orders;
        for id in fixed_before {
            self.hub_change(
                id,
                Action::Close,
                "verified by data: the alert had cleared by the resolution",
            )
            .await;
        }
        // Resolved since the data showed their new part: verified now.
        let seen: Vec<(String, String)> = self
            .verifying
            .fixed_in_visit
            .iter()
            .filter(|(key, id)| self.verifying.orders.get(*key).is_some_and(|w| w.id == **id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in seen {
            self.verifying.fixed_in_visit.remove(&key);
            if let Some(w) = self.verifying.orders.remove(&key) {
                self.hub_change(
                    w.id,
                    Action::Close,
                    "verified by data: the fix was seen during the visit",
                )
                .await;
            }
        }
    }

    /// A change the hub makes itself (actor `hub`); refusals (someone
    /// changed the order meanwhile) are logged, not errors.
    async fn hub_change(&mut self, id: i64, action: Action, note: &str) {
        let change = Change {
            action,
            actor: "hub",
            assignee: None,
            note: Some(note),
            parts: &[],
            at_ms: wall_ms(),
            visit_ms: None,
        };
        match self.store.change_work_order(id, &change).await {
            Ok(row) => {
                tracing::info!(id, action = action.as_str(), status = %row.status, note, "work order changed by the data");
                if action == Action::Close {
                    self.stats.work_orders_verified.fetch_add(1, Ordering::Relaxed);
                }
                if action == Action::Reopen {
                    self.stats.work_orders_reopened.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(ChangeError::Store(e)) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, id, "cannot change a work order");
            }
            Err(e) => tracing::info!(id, action = action.as_str(), reason = %e, "work order not changed"),
        }
    }
}
