//! Delivering customer reminders: every [`DELIVER_EVERY`], the pending
//! reminders that are due are sent on their channel. `portal`: the
//! reminder is in the customer's list (`GET /api/v1/reminders`) as soon as
//! it is due. `webhook`: a JSON POST to the customer's URL, signed with
//! HMAC-SHA256 of `"{timestamp}.{body}"` under the customer's secret
//! (`X-Wearline-Timestamp`, `X-Wearline-Signature: sha256=<hex>`), for an
//! SMS or app gateway. `email`: a plain-text e-mail through the hub's SMTP
//! relay ([`email`]). `indicator`: the appliance's own indicator, lit
//! through its gateway's agent ([`indicator`]); `sent` once the agent
//! confirms. A failed delivery is retried with backoff
//! (`models::reminders::retry_after_ms`) and, after the last attempt,
//! marked `failed` with its error, visible in the list. A customer who
//! opted out meanwhile gets nothing (`skipped`).
//!
//! A reminder's text is rendered again at each attempt, with what is known
//! then: a visit booked on the device's order for the part after the
//! reminder was queued is named ("A replacement visit is booked for 3
//! December", the customer's local date). The text sent is the one stored.

pub mod email;

pub mod indicator;

use crate::store::{ReminderRow, ReminderSettings, Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wearline_models::reminders::{message, retry_after_ms_from, visit_date, what};

/// How often due reminders are sent.
pub const DELIVER_EVERY: Duration = Duration::from_secs(5);
/// Time limit of one webhook call.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What delivery uses besides the store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `email` channel's relay; `None`: e-mails fail, saying so.
    pub mailer: Option<email::Mailer>,
    /// The first retry's wait, ms (doubling, at most 60 times it): a
    /// minute; shorter in tests (`reminders.retry_first_ms`).
    pub retry_first_ms: i64,
    /// How often due reminders are sent.
    pub every: Duration,
    /// The `indicator` channel; `None`: its reminders fail, saying so.
    pub indicator: Option<indicator::IndicatorChannel>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            mailer: None,
            retry_first_ms: 60_000,
            every: DELIVER_EVERY,
            indicator: None,
        }
    }
}

/// The signature of a webhook body sent at `timestamp` (seconds):
/// `sha256=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"`. (HMAC
/// takes a key of any length, so `None` does not happen in practice.)
pub fn signature(secret: &str, timestamp: i64, body: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256={hex}"))
}

/// Sends every due reminder once (at `now_ms`); how many were sent
/// (`indicator` reminders are sent later, when the agent confirms; without
/// `delivery.indicator`, they fail as an unavailable channel).
pub async fn deliver_due(store: &Store, delivery: &Delivery, now_ms: i64) -> Result<usize, StoreError> {
    let mut sent = 0;
    for r in store.due_reminders(now_ms, 200).await? {
        let settings = store.reminder_settings(r.customer_id).await?;
        let attempts = r.attempts + 1;
        if settings.opted_out {
            store
                .record_delivery(
                    r.id,
                    "skipped",
                    r.attempts,
                    now_ms,
                    Some("the customer opted out"),
                    None,
                )
                .await?;
            continue;
        }
        if let (Some(ch), "indicator") = (delivery.indicator.as_ref(), r.channel.as_str()) {
            ch.deliver(store, &r, now_ms).await?;
            continue;
        }
        let r = render(store, &settings, r, now_ms).await?;
        let outcome = match r.channel.as_str() {
            "portal" => Ok(()),
            "webhook" => webhook(&settings, &r, now_ms).await,
            "email" => email::deliver(delivery.mailer.as_ref(), &settings, &r).await,
            other => Err(format!("channel `{other}` is not available")),
        };
        match outcome {
            Ok(()) => {
                store
                    .record_delivery(r.id, "sent", attempts, now_ms, None, Some(now_ms))
                    .await?;
                sent += 1;
            }
            Err(e) => {
                let tries = u32::try_from(attempts).unwrap_or(u32::MAX);
                match retry_after_ms_from(delivery.retry_first_ms, tries) {
                    Some(wait) => {
                        tracing::warn!(reminder = r.id, channel = %r.channel, error = %e, attempts, "reminder not delivered; retrying");
                        store
                            .record_delivery(r.id, "pending", attempts, now_ms + wait, Some(&e), None)
                            .await?;
                    }
                    None => {
                        tracing::error!(reminder = r.id, channel = %r.channel, error = %e, attempts, "reminder failed for good");
                        store
                            .record_delivery(r.id, "failed", attempts, now_ms, Some(&e), None)
                            .await?;
                    }
                }
            }
        }
    }
    Ok(sent)
}

/// Reminder `r` with its text rendered at `now_ms`: its part and appliance,
/// the life left when it was queued, and the visit booked on the device's
/// active order for the part if there is one not yet past (the customer's
/// local date). A changed text is stored. A device the store no longer
/// knows keeps the text it was queued with.
async fn render(
    store: &Store,
    settings: &ReminderSettings,
    mut r: ReminderRow,
    now_ms: i64,
) -> Result<ReminderRow, StoreError> {
    let (profile, visit) = store.reminder_facts(&r.device_id, &r.consumable).await?;
    if profile.is_empty() {
        return Ok(r);
    }
    let offset = i32::try_from(settings.utc_offset_minutes).unwrap_or(0);
    let date = visit
        .filter(|v| *v >= now_ms)
        .map(|v| visit_date(v, offset, now_ms));
    let text = message(&what(&r.consumable, &profile), r.remaining_days, date.as_deref());
    if text != r.message {
        store.set_reminder_message(r.id, &text).await?;
        r.message = text;
    }
    Ok(r)
}

async fn webhook(settings: &ReminderSettings, r: &ReminderRow, now_ms: i64) -> Result<(), String> {
    let (Some(url), Some(secret)) = (settings.webhook_url.clone(), settings.webhook_secret.clone()) else {
        return Err("no webhook URL and secret in the customer's settings".into());
    };
    let body = serde_json::json!({
        "id": r.id,
        "customer_id": r.customer_id,
        "device": r.device_id,
        "consumable": r.consumable,
        "remaining_days": r.remaining_days,
        "point_days": r.point_days,
        "message": r.message,
    })
    .to_string();
    let ts = now_ms.div_euclid(1000);
    let sig = signature(&secret, ts, &body).ok_or("the webhook secret cannot key HMAC-SHA256")?;
    let call = tokio::task::spawn_blocking(move || {
        let resp = ureq::post(&url)
            .header("Content-Type", "application/json")
            .header("X-Wearline-Timestamp", &ts.to_string())
            .header("X-Wearline-Signature", &sig)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(WEBHOOK_TIMEOUT))
            .build()
            .send(body.as_str());
        match resp {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        }
    });
    call.await.map_err(|e| format!("webhook task: {e}"))?
}

/// Delivers every `delivery.every` until `cancel` fires.
pub async fn run(store: Store, delivery: Delivery, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(delivery.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = deliver_due(&store, &delivery, crate::clock::wall_ms()).await {
            tracing::error!(error = %e, "cannot deliver reminders; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, NewCustomer, NewReminder, NewWorkOrder};
    use crate::testing::TestDb;
    use wearline_models::workorder::Action;

    crate::on_each_backend!(texts_name_the_visit_known_when_sent_and_email_needs_a_relay);

    /// 2026-11-23T00:00:00Z.
    const DAY0: i64 = 1_795_392_000_000;
    const H: i64 = 3_600_000;

    async fn texts_name_the_visit_known_when_sent_and_email_needs_a_relay(db: TestDb) {
        let store = Store::open(&db.location).await.expect("store");
        let t = wearline_models::wire::Telemetry {
            v: wearline_models::wire::VERSION,
            gateway: "gw".into(),
            device: "p1".into(),
            profile: "air-purifier".into(),
            samples: vec![wearline_models::wire::Sample {
                seq: 1,
                ts_ms: 1,
                values: Default::default(),
                text: Default::default(),
                restart: false,
            }],
        };
        store.insert_batch(&[t]).await.expect("device");
        let customer = store
            .add_customer(&NewCustomer {
                name: "acme",
                contact: None,
                email: None,
                phone: None,
                created_ms: 0,
            })
            .await
            .expect("customer");
        let settings = ReminderSettings {
            channels: vec!["portal".into(), "email".into()],
            quiet_hours: [0, 0],
            utc_offset_minutes: -300,
            email: Some("ann@acme.example".into()),
            ..ReminderSettings::defaults(customer.id)
        };
        store.put_reminder_settings(&settings).await.expect("settings");
        let queue = |channel: &str, point: f64, created: i64| NewReminder {
            customer_id: customer.id,
            device_id: "p1".into(),
            consumable: "filter".into(),
            life_start_ms: 0,
            point_days: point,
            channel: channel.into(),
            remaining_days: 12.2,
            message: "queued text".into(),
            created_ms: created,
            send_at_ms: created,
        };
        // Queued before any visit is booked.
        for channel in ["portal", "email"] {
            assert!(
                store
                    .queue_reminder(&queue(channel, 30.0, DAY0))
                    .await
                    .expect("queue")
            );
        }
        let order = store
            .open_work_order(&NewWorkOrder {
                device_id: "p1".into(),
                kind: "preventive",
                cause: crate::ingest::consumable_cause("filter"),
                priority: "P3",
                title: "t".into(),
                opened_at_ms: DAY0,
                predicted_eol_ms: None,
                lead_time_days: None,
                explanation: serde_json::json!({}).to_string(),
            })
            .await
            .expect("open")
            .expect("new");
        // Booked before it is sent: 3 December 02:00 UTC, the evening of
        // 2 December at UTC-5.
        let visit = DAY0 + 10 * 24 * H + 2 * H;
        let change = Change {
            action: Action::Assign,
            actor: "maria",
            assignee: Some("tech-1"),
            note: None,
            parts: &[],
            at_ms: DAY0 + H,
            visit_ms: Some(visit),
        };
        let row = store.change_work_order(order.id, &change).await.expect("assign");
        assert_eq!(row.visit_ms, Some(visit));
        let trail = store.work_order_events(order.id).await.expect("trail");
        assert!(
            trail
                .last()
                .is_some_and(|e| e.detail.contains("\"visit\":\"2026-12-03T02:00:00Z\"")),
            "{trail:?}"
        );

        let delivery = Delivery::default();
        let now = DAY0 + 2 * H;
        assert_eq!(
            deliver_due(&store, &delivery, now).await.expect("deliver"),
            1,
            "the portal"
        );
        let text = "The filter of your air purifier has about 12 days of life left. \
                    A replacement visit is booked for 2 December.";
        let rows = store.reminders(Some(customer.id), 10).await.expect("list");
        for r in &rows {
            assert_eq!(r.message, text, "rendered when sent: {r:?}");
        }
        // No relay: the e-mail is retried, saying why.
        let email = rows.iter().find(|r| r.channel == "email").expect("email");
        assert_eq!((email.status.as_str(), email.attempts), ("pending", 1));
        assert_eq!(email.next_attempt_ms, now + 60_000);
        assert!(
            email
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("[reminders.smtp]")),
            "{email:?}"
        );

        // A visit already past is not named.
        assert!(
            store
                .queue_reminder(&queue("portal", 7.0, visit + H))
                .await
                .expect("queue")
        );
        deliver_due(&store, &delivery, visit + H).await.expect("deliver");
        let latest = &store.reminders(Some(customer.id), 10).await.expect("list")[0];
        assert_eq!(latest.point_days, 7.0);
        assert!(
            latest
                .message
                .ends_with("We will contact you to book a replacement visit."),
            "{latest:?}"
        );

        // A reassignment without a visit leaves none booked.
        let again = Change {
            visit_ms: None,
            at_ms: DAY0 + 3 * H,
            ..change.clone()
        };
        let row = store.change_work_order(order.id, &again).await.expect("reassign");
        assert_eq!(row.visit_ms, None);
        // A reopened order needs a new visit: the old one is cleared.
        store.change_work_order(order.id, &change).await.expect("assign");
        for action in [Action::Start, Action::Resolve, Action::Reopen] {
            let step = Change {
                action,
                visit_ms: None,
                ..change.clone()
            };
            store.change_work_order(order.id, &step).await.expect("step");
        }
        let row = store.work_order(order.id).await.expect("get").expect("row");
        assert_eq!((row.status.as_str(), row.visit_ms), ("reopened", None));
    }

    /// RFC 4231 test case 2 ("Jefe"), as a check of the HMAC wiring.
    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = signature("Jefe", 1, "x").expect("sig");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert_ne!(Some(sig), signature("Jefe", 2, "x"), "the timestamp is signed");
    }
}
