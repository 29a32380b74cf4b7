//! Service-level escalation (and dispatch of waiting orders): once a minute, every active work order past a
//! due time (not started by `respond_by`, not resolved by `resolve_by`) is
//! raised one priority step, once per missed target, with an `escalated`
//! entry in its trail, a `HubEvent::WorkOrderEscalated` and a count on
//! `/metrics`.

use crate::ingest::IngestStats;
use crate::run::HubEvent;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often due times are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Escalates what is overdue at `now_ms`; returns how many orders were raised.
pub async fn escalate_overdue(
    store: &Store,
    events: &broadcast::Sender<HubEvent>,
    stats: &IngestStats,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut raised = 0;
    for (order, breach) in store.overdue_work_orders(now_ms).await? {
        // `None`: another hub escalated it first.
        if let Some(row) = store.escalate_work_order(order.id, breach, now_ms).await? {
            tracing::warn!(
                work_order = row.id,
                device = %row.device_id,
                breach = breach.as_str(),
                priority = %row.priority,
                "work order overdue; priority raised"
            );
            stats.work_orders_escalated.fetch_add(1, Ordering::Relaxed);
            let _ = events.send(HubEvent::WorkOrderEscalated {
                order: row,
                breach: breach.as_str(),
            });
            raised += 1;
        }
    }
    Ok(raised)
}

/// Checks every [`CHECK_EVERY`] until `cancel` fires.
pub async fn run(
    store: Store,
    events: broadcast::Sender<HubEvent>,
    stats: Arc<IngestStats>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::wall_ms();
        if let Err(e) = escalate_overdue(&store, &events, &stats, now).await {
            tracing::error!(error = %e, "cannot check work orders' due times; retrying in a minute");
        }
        if let Err(e) = crate::dispatch::dispatch_waiting(&store, now).await {
            tracing::error!(error = %e, "cannot dispatch waiting work orders; retrying in a minute");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewWorkOrder;
    use crate::testing::TestDb;

    crate::on_each_backend!(overdue_orders_are_raised_once_and_announced);

    async fn overdue_orders_are_raised_once_and_announced(db: TestDb) {
        let store = Store::open(&db.location).await.expect("open");
        let order = store
            .open_work_order(&NewWorkOrder {
                device_id: "d1".into(),
                kind: "preventive",
                cause: "consumable:filter".into(),
                priority: "P3",
                title: "Replace filter".into(),
                opened_at_ms: 0,
                predicted_eol_ms: None,
                lead_time_days: None,
                explanation: serde_json::json!({}),
            })
            .await
            .expect("open")
            .expect("opened");
        let (tx, mut rx) = broadcast::channel(8);
        let stats = IngestStats::default();
        let late = order.respond_by_ms + 1;
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, order.respond_by_ms)
                .await
                .expect("check"),
            0
        );
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, late).await.expect("check"),
            1
        );
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, late).await.expect("check"),
            0,
            "once"
        );
        match rx.try_recv() {
            Ok(HubEvent::WorkOrderEscalated { order: o, breach }) => {
                assert_eq!((o.id, o.priority.as_str(), breach), (order.id, "P2", "response"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stats.work_orders_escalated.load(Ordering::Relaxed), 1);
    }
}
