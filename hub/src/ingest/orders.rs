//! Work orders the data opens and verifies.
//!
//! - **Corrective**: a critical edge alert opens one (cause `alert:{kind}`,
//!   P1); a device gone silent past `offline_after` opens one (cause
//!   `offline`, P2).
//! - **Verification**: a resolved order is closed by the hub once the data
//!   shows the fix (the part's life restarted; the alert cleared), and
//!   reopened when the fault persists (the part still worn
//!   for [`VERIFY_SAMPLES`] prediction updates after the resolution; the alert raised
//!   again). A part replaced before the visit cancels its open order. A
//!   later prediction for the new part never touches the old order: it is
//!   closed, and a new one opens if the new part wears out in turn.
//!
//! The hub learns of resolutions made through the API by reading the
//! resolved orders every [`RESOLVED_REFRESH`].

use super::Ingest;
use crate::clock::wall_ms;
use crate::run::HubEvent;
use crate::store::{Change, ChangeError, NewWorkOrder, StoreError, WorkOrderRow};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wearline_models::rules::Priority;
use wearline_models::workorder::{self, Action};

/// Samples still worn after a resolution before the order is reopened.
pub const VERIFY_SAMPLES: u32 = 10;
/// How often the resolved orders are read from the store.
pub const RESOLVED_REFRESH: Duration = Duration::from_secs(5);
/// The cause of a corrective order for a device gone silent.
pub const OFFLINE_CAUSE: &str = "offline";

/// Resolved orders awaiting verification, by (device, cause).
#[derive(Debug, Default)]
pub struct Verifying {
    orders: HashMap<(String, String), Waiting>,
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

impl Ingest {
    /// Opens an order unless one is active for its device and cause, at the
    /// priority of its urgency (`wo.priority`) and the device's
    /// criticality; counted, logged, announced and dispatched.
    pub(super) async fn open_order(
        &mut self,
        mut wo: NewWorkOrder,
    ) -> Result<Option<WorkOrderRow>, StoreError> {
        let criticality = self.criticality_of(&wo.device_id).await;
        let urgency = Priority::parse(wo.priority).unwrap_or(Priority::P3);
        wo.priority = workorder::priority(urgency, criticality).as_str();
        if let serde_json::Value::Object(why) = &mut wo.explanation {
            why.insert("urgency".into(), urgency.as_str().into());
            why.insert("criticality".into(), criticality.as_str().into());
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
    pub(super) async fn corrective(&mut self, wo: NewWorkOrder) -> Result<(), StoreError> {
        self.refresh_resolved(false).await;
        let key = (wo.device_id.clone(), wo.cause.clone());
        if let Some(w) = self.verifying.orders.remove(&key) {
            self.hub_change(
                w.id,
                Action::Reopen,
                "fault persists: raised again after the resolution",
            )
            .await;
            return Ok(());
        }
        self.open_order(wo).await.map(|_| ())
    }

    /// The fault behind `cause` is gone (an alert cleared): a resolved
    /// order for it is closed as verified.
    pub(super) async fn fault_cleared(&mut self, device: &str, cause: &str) {
        self.refresh_resolved(false).await;
        if let Some(w) = self
            .verifying
            .orders
            .remove(&(device.to_string(), cause.to_string()))
        {
            self.hub_change(w.id, Action::Close, "verified by data: the alert cleared")
                .await;
        }
    }

    /// A consumable's life restarted (the part was replaced): its resolved
    /// order is closed as verified; an order not yet resolved is cancelled,
    /// the part having been replaced before the visit.
    pub(super) async fn part_replaced(&mut self, device: &str, consumable: &str) {
        self.refresh_resolved(false).await;
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
    pub(super) async fn part_checked(&mut self, device: &str, consumable: &str, still_due: bool) {
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
    pub(super) async fn refresh_resolved(&mut self, force: bool) {
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
        for row in rows {
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
