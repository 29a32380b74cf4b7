//! Delivering customer reminders: every [`DELIVER_EVERY`], the pending
//! reminders that are due are sent on their channel. `portal`: the
//! reminder is in the customer's list (`GET /api/v1/reminders`) as soon as
//! it is due. `webhook`: a JSON POST to the customer's URL, signed with
//! HMAC-SHA256 of `"{timestamp}.{body}"` under the customer's secret
//! (`X-Wearline-Timestamp`, `X-Wearline-Signature: sha256=<hex>`), for an
//! SMS or app gateway. `indicator`: the appliance's own indicator, lit
//! through its gateway's agent ([`indicator`]); `sent` once the agent
//! confirms. A failed delivery is retried with backoff
//! (`models::reminders::retry_after_ms`) and, after the last attempt,
//! marked `failed` with its error, visible in the list. A customer who
//! opted out meanwhile gets nothing (`skipped`).

pub mod indicator;

use crate::store::{ReminderRow, ReminderSettings, Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wearline_models::reminders::retry_after_ms;

/// How often due reminders are sent.
pub const DELIVER_EVERY: Duration = Duration::from_secs(5);
/// Time limit of one webhook call.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

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
/// `indicator`, they fail as an unavailable channel).
pub async fn deliver_due(
    store: &Store,
    indicator: Option<&indicator::IndicatorChannel>,
    now_ms: i64,
) -> Result<usize, StoreError> {
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
        if let (Some(ch), "indicator") = (indicator, r.channel.as_str()) {
            ch.deliver(store, &r, now_ms).await?;
            continue;
        }
        let outcome = match r.channel.as_str() {
            "portal" => Ok(()),
            "webhook" => webhook(&settings, &r, now_ms).await,
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
                match retry_after_ms(tries) {
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

/// Delivers every [`DELIVER_EVERY`] until `cancel` fires.
pub async fn run(store: Store, indicator: indicator::IndicatorChannel, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(DELIVER_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = deliver_due(&store, Some(&indicator), crate::clock::wall_ms()).await {
            tracing::error!(error = %e, "cannot deliver reminders; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
