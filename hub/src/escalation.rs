//! Service-level escalation (and dispatch of waiting orders): once a minute, every active work order past a
//! due time (not started by `respond_by`, not resolved by `resolve_by`) is
//! raised one priority step, once per missed target, with an `escalated`
//! entry in its trail, a `HubEvent::WorkOrderEscalated`, a count on
//! `/metrics`, and, with `[escalation] notify_email`, an e-mail to the
//! service team through the reminders' relay (its outcome, sent or the
//! error, a `notified` entry in the trail). With several hubs, the one whose
//! conditional update raised the order is the one that tells.

use crate::ingest::IngestStats;
use crate::reminders::email::Mailer;
use crate::run::HubEvent;
use crate::store::{Store, StoreError, WorkOrderRow};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wearline_models::time::rfc3339;

/// How often due times are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Who is told of escalations, and the relay it goes through.
#[derive(Debug, Clone)]
pub struct Notify {
    pub mailer: Mailer,
    pub to: Vec<String>,
}

/// The notice of `order`'s escalation for missing `breach`: subject and
/// plain-text body.
pub fn notice(order: &WorkOrderRow, breach: &str) -> (String, String) {
    let (target, due) = match breach {
        "response" => (
            "response",
            format!("not started by {}", rfc3339(order.respond_by_ms)),
        ),
        _ => (
            "resolution",
            format!("not resolved by {}", rfc3339(order.resolve_by_ms)),
        ),
    };
    let subject = format!(
        "Work order #{} overdue: {target} time missed, now {}",
        order.id, order.priority
    );
    let who = order
        .assignee
        .as_deref()
        .map_or_else(|| "nobody yet".to_string(), |a| a.to_string());
    let body = format!(
        "Work order #{id} on {device} missed its {target} time ({due}).\n\
         Its priority is now {priority}.\n\n\
         {title}\n\
         Status: {status}; assigned to {who}.\n\
         Respond by {respond}; resolve by {resolve}.\n\n\
         The order: GET /api/v1/work-orders/{id}; its trail: /api/v1/work-orders/{id}/events\n",
        id = order.id,
        device = order.device_id,
        priority = order.priority,
        title = order.title,
        status = order.status,
        respond = rfc3339(order.respond_by_ms),
        resolve = rfc3339(order.resolve_by_ms),
    );
    (subject, body)
}

/// E-mails the team about `order` and records the outcome in its trail.
async fn tell(store: &Store, notify: &Notify, order: &WorkOrderRow, breach: &str, now_ms: i64) {
    let (subject, body) = notice(order, breach);
    let id = format!("escalation-{}-{breach}", order.id);
    let detail = match notify.mailer.notify(&notify.to, &id, &subject, &body).await {
        Ok(()) => serde_json::json!({"to": notify.to, "breach": breach}),
        Err(e) => {
            tracing::error!(work_order = order.id, error = %e, "cannot e-mail the escalation");
            serde_json::json!({"to": notify.to, "breach": breach, "error": e})
        }
    };
    if let Err(e) = store
        .note_work_order(order.id, "hub", "notified", &detail, now_ms)
        .await
    {
        tracing::error!(work_order = order.id, error = %e, "cannot record the escalation notice");
    }
}

/// Escalates what is overdue at `now_ms`, telling `notify` of each; returns
/// how many orders were raised.
pub async fn escalate_overdue(
    store: &Store,
    events: &broadcast::Sender<HubEvent>,
    stats: &IngestStats,
    notify: Option<&Notify>,
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
            if let Some(n) = notify {
                tell(store, n, &row, breach.as_str(), now_ms).await;
            }
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
    notify: Option<Notify>,
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
        if let Err(e) = escalate_overdue(&store, &events, &stats, notify.as_ref(), now).await {
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
                explanation: serde_json::json!({}).to_string(),
            })
            .await
            .expect("open")
            .expect("opened");
        let (tx, mut rx) = broadcast::channel(8);
        let stats = IngestStats::default();
        let late = order.respond_by_ms + 1;
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, None, order.respond_by_ms)
                .await
                .expect("check"),
            0
        );
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, None, late)
                .await
                .expect("check"),
            1
        );
        assert_eq!(
            escalate_overdue(&store, &tx, &stats, None, late)
                .await
                .expect("check"),
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
