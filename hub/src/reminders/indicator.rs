//! The `indicator` channel: a reminder lights the appliance's own indicator
//! (the filter light), through the agent of the device's gateway.
//!
//! The field and the value come from the device's profile (its
//! consumable's `indicator` and `indicator_on`); a device whose profile has
//! none gets nothing, and the reminder is `skipped` with the reason. The
//! gateway is the one the device's telemetry last came through. Each
//! attempt publishes a `write` command (`models::reminders::indicator_command_id`:
//! `reminder-{id}-{attempt}`) and waits for the agent's result: success
//! makes the reminder `sent`; a failure, or no result within the timeout,
//! is a failed attempt with its reason in `last_error`, retried with the
//! channels' backoff. A gateway coming back online (its status) has its
//! devices' waiting reminders tried at once. Results arrive through ingest
//! ([`record_result`]), on whichever hub of a shared group gets them: the
//! state lives in the store.

use crate::downlink::Downlink;
use crate::store::{ReminderRow, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wearline_models::profile::{Consumable, Profile};
use wearline_models::reminders::{
    MAX_ATTEMPTS, indicator_command_id, parse_indicator_command_id, retry_after_ms,
};
use wearline_models::wire::{Action, Command, CommandResult, VERSION};

/// How long an attempt waits for the agent's result, by default.
pub const DEFAULT_RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the channel needs besides the store.
#[derive(Debug, Clone)]
pub struct IndicatorChannel {
    /// The hub's MQTT connection for commands (`None`: attempts fail).
    pub downlink: Option<Downlink>,
    /// Device profiles by name: where each consumable's indicator is.
    pub profiles: Arc<BTreeMap<String, Profile>>,
    /// How long an attempt waits for the agent's result.
    pub result_timeout: Duration,
}

/// Why a reminder's indicator cannot be lit now.
enum Unlit {
    /// Never: the reminder is skipped, with this reason.
    Never(String),
    /// Not now: a failed attempt, with this reason.
    NotNow(String),
}

/// Where and what to write.
struct Target {
    gateway: String,
    field: String,
    on: f64,
}

/// The consumable of `profile` named `name`, and its indicator field.
fn indicator_of<'p>(profile: &'p Profile, name: &str) -> Result<(&'p Consumable, &'p str), String> {
    let c = profile
        .consumables
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("profile `{}` has no consumable `{name}`", profile.name))?;
    let field = c.indicator.as_deref().ok_or_else(|| {
        format!(
            "the device's profile `{}` names no indicator for its {name} (`indicator` in its [[consumables]])",
            profile.name
        )
    })?;
    Ok((c, field))
}

impl IndicatorChannel {
    async fn target(&self, store: &Store, r: &ReminderRow) -> Result<Result<Target, Unlit>, StoreError> {
        let Some((gateway, profile)) = store.device_route(&r.device_id).await? else {
            return Ok(Err(Unlit::NotNow(format!(
                "device `{}` has sent no telemetry yet: its gateway is unknown",
                r.device_id
            ))));
        };
        let Some(profile) = self.profiles.get(&profile) else {
            return Ok(Err(Unlit::Never(format!(
                "the device's profile `{profile}` is not loaded by the hub"
            ))));
        };
        Ok(match indicator_of(profile, &r.consumable) {
            Ok((c, field)) => Ok(Target {
                gateway,
                field: field.to_string(),
                on: c.indicator_on(),
            }),
            Err(reason) => Err(Unlit::Never(reason)),
        })
    }

    /// One step of a due `indicator` reminder at `now_ms`: a new attempt,
    /// or, when a command's result was awaited until now, that attempt's
    /// failure.
    pub async fn deliver(&self, store: &Store, r: &ReminderRow, now_ms: i64) -> Result<(), StoreError> {
        if let Some(command) = &r.command_id {
            let error = format!(
                "no result from the device's gateway within {} s: is its agent connected?",
                self.result_timeout.as_secs()
            );
            let (status, next) = after_failure(r.attempts, now_ms);
            if store.command_failed(r.id, command, status, next, &error).await? {
                tracing::warn!(reminder = r.id, command = %command, attempts = r.attempts, status, "indicator: no result");
            }
            return Ok(());
        }
        let attempt = r.attempts + 1;
        let target = match self.target(store, r).await? {
            Ok(t) => t,
            Err(Unlit::Never(reason)) => {
                tracing::info!(reminder = r.id, device = %r.device_id, reason = %reason, "indicator reminder skipped");
                return store
                    .record_delivery(r.id, "skipped", r.attempts, now_ms, Some(&reason), None)
                    .await;
            }
            Err(Unlit::NotNow(reason)) => return failed_attempt(store, r, attempt, now_ms, &reason).await,
        };
        let Some(downlink) = &self.downlink else {
            return failed_attempt(
                store,
                r,
                attempt,
                now_ms,
                "the hub has no MQTT connection for commands",
            )
            .await;
        };
        let cmd = Command {
            v: VERSION,
            id: indicator_command_id(r.id, u32::try_from(attempt).unwrap_or(u32::MAX)),
            ts_ms: now_ms,
            device: r.device_id.clone(),
            action: Action::Write {
                metric: target.field,
                value: target.on,
            },
        };
        match downlink.send(&target.gateway, &cmd) {
            Ok(()) => {
                let until =
                    now_ms.saturating_add(i64::try_from(self.result_timeout.as_millis()).unwrap_or(i64::MAX));
                store.await_command(r.id, attempt, &cmd.id, until).await?;
                tracing::info!(reminder = r.id, command = %cmd.id, gateway = %target.gateway, device = %r.device_id, "indicator command sent");
                Ok(())
            }
            Err(e) => failed_attempt(store, r, attempt, now_ms, &e.to_string()).await,
        }
    }
}

/// What follows failed attempt number `attempts`: `pending` until the
/// backoff's next try, or `failed` once the attempts are used up.
fn after_failure(attempts: i64, now_ms: i64) -> (&'static str, i64) {
    match retry_after_ms(u32::try_from(attempts).unwrap_or(u32::MAX)) {
        Some(wait) => ("pending", now_ms.saturating_add(wait)),
        None => ("failed", now_ms),
    }
}

/// Records attempt `attempts` of `r` as failed before any command went out.
async fn failed_attempt(
    store: &Store,
    r: &ReminderRow,
    attempts: i64,
    now_ms: i64,
    error: &str,
) -> Result<(), StoreError> {
    let (status, next) = after_failure(attempts, now_ms);
    tracing::warn!(reminder = r.id, device = %r.device_id, error, attempts, status, "indicator not lit");
    store
        .record_delivery(r.id, status, attempts, next, Some(error), None)
        .await
}

/// Takes an agent's command result: if it answers a reminder's indicator
/// command from the reminder's device, success makes the reminder `sent`
/// and failure is that attempt's failure (a result for an attempt no longer
/// awaited changes nothing). Whether the result was a reminder's.
pub async fn record_result(store: &Store, result: &CommandResult, now_ms: i64) -> Result<bool, StoreError> {
    let Some((id, _)) = parse_indicator_command_id(&result.id) else {
        return Ok(false);
    };
    let Some(r) = store.reminder(id).await? else {
        tracing::warn!(command = %result.id, "result for an unknown reminder ignored");
        return Ok(true);
    };
    if r.device_id != result.device || r.channel != "indicator" {
        tracing::warn!(command = %result.id, device = %result.device, "result that does not match its reminder ignored");
        return Ok(true);
    }
    if result.ok {
        if store.indicator_lit(id, now_ms).await? {
            tracing::info!(reminder = id, command = %result.id, device = %r.device_id, "indicator lit: reminder sent");
        }
    } else {
        let error = format!(
            "gateway `{}` could not write the indicator: {}",
            result.gateway,
            result.error.as_deref().unwrap_or("no reason given")
        );
        let (status, next) = after_failure(r.attempts, now_ms);
        if store.command_failed(id, &result.id, status, next, &error).await? {
            tracing::warn!(reminder = id, command = %result.id, error = %error, status, "indicator command failed");
        }
    }
    Ok(true)
}

/// Gateway `gateway` is online again: its devices' indicator reminders
/// waiting for a retry are tried now.
pub async fn gateway_online(store: &Store, gateway: &str, now_ms: i64) -> Result<(), StoreError> {
    let n = store
        .retry_indicators_now(gateway, now_ms, i64::from(MAX_ATTEMPTS))
        .await?;
    if n > 0 {
        tracing::info!(
            gateway,
            reminders = n,
            "gateway online: indicator reminders tried again now"
        );
    }
    Ok(())
}

/// The id of the command that switches off `consumable`'s indicator on
/// `device` when the life that started at `life_start_ms` began.
pub fn off_command_id(device: &str, consumable: &str, life_start_ms: i64) -> String {
    format!("indicator-off-{device}-{consumable}-{life_start_ms}")
}

/// A new part was fitted on `device` (its life started at
/// `life_start_ms`): the earlier parts' pending indicator reminders are
/// skipped, and, when the profile has an indicator for it and the
/// device's gateway is known, the indicator is switched off (0), once;
/// best effort: a gateway offline then misses it.
pub async fn part_replaced(
    store: &Store,
    downlink: Option<&Downlink>,
    gateway: Option<&str>,
    device: &str,
    c: &Consumable,
    life_start_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(field) = &c.indicator else {
        return Ok(());
    };
    let skipped = store
        .skip_indicators_before(device, &c.name, life_start_ms, now_ms)
        .await?;
    if skipped > 0 {
        tracing::info!(device, consumable = %c.name, skipped, "part replaced: its pending indicator reminders skipped");
    }
    let (Some(downlink), Some(gateway)) = (downlink, gateway) else {
        return Ok(());
    };
    let cmd = Command {
        v: VERSION,
        id: off_command_id(device, &c.name, life_start_ms),
        ts_ms: now_ms,
        device: device.to_string(),
        action: Action::Write {
            metric: field.clone(),
            value: 0.0,
        },
    };
    match downlink.send(gateway, &cmd) {
        Ok(()) => {
            tracing::info!(device, consumable = %c.name, command = %cmd.id, "part replaced: indicator switched off")
        }
        Err(e) => {
            tracing::warn!(device, consumable = %c.name, error = %e, "part replaced: cannot switch the indicator off")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewReminder;
    use crate::testing::TestDb;
    use wearline_models::wire::{Sample, Telemetry};

    crate::on_each_backend!(
        a_profile_without_indicator_is_skipped_and_results_settle_attempts,
        a_gateway_back_online_and_a_replaced_part_settle_waiting_reminders,
    );

    const NOW: i64 = 1_750_000_000_000;
    const MINUTE: i64 = 60_000;

    const LIT: &str = r#"
name = "lit"
[[fields]]
metric = "dp"
kind = "input"
address = 0
type = "u16"
[[fields]]
metric = "light"
kind = "coil"
address = 0
type = "bool"
[[consumables]]
name = "filter"
signal = "dp"
threshold = 250.0
lead_time_days = 1
indicator = "light"
"#;

    /// Delivery through the indicator channel `ch` only.
    fn delivery(ch: &IndicatorChannel) -> crate::reminders::Delivery {
        crate::reminders::Delivery {
            indicator: Some(ch.clone()),
            ..Default::default()
        }
    }

    fn channel(downlink: Option<Downlink>) -> IndicatorChannel {
        let lit = Profile::parse("lit.toml", LIT).expect("profile");
        let dark = Profile::parse(
            "dark.toml",
            &LIT.replace("name = \"lit\"", "name = \"dark\"")
                .replace("indicator = \"light\"\n", ""),
        )
        .expect("profile");
        IndicatorChannel {
            downlink,
            profiles: Arc::new(BTreeMap::from([("lit".into(), lit), ("dark".into(), dark)])),
            result_timeout: Duration::from_secs(30),
        }
    }

    /// Registers `device` (behind gateway `gw`, with `profile`) and queues
    /// an indicator reminder for its filter's life started at `life_start_ms`.
    async fn reminder(store: &Store, device: &str, profile: &str, life_start_ms: i64) -> i64 {
        reminder_via(store, "gw", device, profile, life_start_ms).await
    }

    async fn reminder_via(
        store: &Store,
        gateway: &str,
        device: &str,
        profile: &str,
        life_start_ms: i64,
    ) -> i64 {
        let t = Telemetry {
            v: VERSION,
            gateway: gateway.into(),
            device: device.into(),
            profile: profile.into(),
            samples: vec![Sample {
                seq: 1,
                ts_ms: NOW,
                values: BTreeMap::from([("dp".into(), 240.0)]),
                text: BTreeMap::new(),
                restart: false,
            }],
        };
        store.insert_batch(&[t]).await.expect("telemetry");
        let queued = store
            .queue_reminder(&NewReminder {
                customer_id: 1,
                device_id: device.into(),
                consumable: "filter".into(),
                life_start_ms,
                point_days: 7.0,
                channel: "indicator".into(),
                remaining_days: 3.0,
                message: "m".into(),
                created_ms: NOW,
                send_at_ms: NOW,
            })
            .await
            .expect("queue");
        assert!(queued);
        let rows = store.reminders(None, 100).await.expect("list");
        rows.iter()
            .find(|r| r.device_id == device && r.life_start_ms == life_start_ms)
            .expect("queued")
            .id
    }

    async fn get(store: &Store, id: i64) -> ReminderRow {
        store.reminder(id).await.expect("read").expect("row")
    }

    fn result(id: &str, device: &str, ok: bool) -> CommandResult {
        CommandResult {
            v: VERSION,
            id: id.into(),
            gateway: "gw".into(),
            device: device.into(),
            ts_ms: NOW,
            ok,
            error: (!ok).then(|| "coil write refused".into()),
        }
    }

    async fn a_profile_without_indicator_is_skipped_and_results_settle_attempts(db: TestDb) {
        let store = Store::open(&db.location).await.expect("store");
        let ch = channel(None);

        // No indicator in the device's profile: skipped, saying why.
        let dark = reminder(&store, "d-dark", "dark", 0).await;
        crate::reminders::deliver_due(&store, &delivery(&ch), NOW)
            .await
            .expect("deliver");
        let r = get(&store, dark).await;
        assert_eq!((r.status.as_str(), r.attempts), ("skipped", 0), "{r:?}");
        assert_eq!(
            r.last_error.as_deref(),
            Some(
                "the device's profile `dark` names no indicator for its filter (`indicator` in its [[consumables]])"
            )
        );

        // No MQTT connection: a failed attempt, retried after a minute.
        let lit = reminder(&store, "d-lit", "lit", 0).await;
        crate::reminders::deliver_due(&store, &delivery(&ch), NOW)
            .await
            .expect("deliver");
        let r = get(&store, lit).await;
        assert_eq!(
            (
                r.status.as_str(),
                r.attempts,
                r.next_attempt_ms,
                r.last_error.as_deref()
            ),
            (
                "pending",
                1,
                NOW + MINUTE,
                Some("the hub has no MQTT connection for commands")
            )
        );
        // A connection that is not up yet: the same, with its own reason.
        let down = channel(Some(Downlink::new()));
        crate::reminders::deliver_due(&store, &delivery(&down), NOW + MINUTE)
            .await
            .expect("deliver");
        let r = get(&store, lit).await;
        assert_eq!(
            (r.attempts, r.next_attempt_ms, r.last_error.as_deref()),
            (
                2,
                NOW + 3 * MINUTE,
                Some("the hub is not connected to the broker")
            )
        );

        // Attempt 3 went out (as `deliver` records it) and nothing came back
        // in time: a failed attempt, its command no longer awaited.
        let c3 = indicator_command_id(lit, 3);
        assert!(
            store
                .await_command(lit, 3, &c3, NOW + 4 * MINUTE)
                .await
                .expect("await")
        );
        crate::reminders::deliver_due(&store, &delivery(&ch), NOW + 4 * MINUTE)
            .await
            .expect("deliver");
        let r = get(&store, lit).await;
        assert_eq!(
            (
                r.status.as_str(),
                r.attempts,
                r.command_id.as_deref(),
                r.next_attempt_ms
            ),
            ("pending", 3, None, NOW + 8 * MINUTE)
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("no result from the device's gateway within 30 s: is its agent connected?")
        );

        // Attempt 4: its late predecessor's failure changes nothing; its own
        // failure is a failed attempt with the agent's reason.
        let c4 = indicator_command_id(lit, 4);
        assert!(
            store
                .await_command(lit, 4, &c4, NOW + 9 * MINUTE)
                .await
                .expect("await")
        );
        assert!(
            record_result(&store, &result(&c3, "d-lit", false), NOW)
                .await
                .expect("result")
        );
        assert_eq!(
            get(&store, lit).await.command_id.as_deref(),
            Some(c4.as_str()),
            "a stale failure"
        );
        assert!(
            !record_result(&store, &result("cmd-7", "d-lit", true), NOW)
                .await
                .expect("result"),
            "not a reminder's command"
        );
        assert!(
            record_result(&store, &result(&c4, "d-lit", false), NOW)
                .await
                .expect("result")
        );
        let r = get(&store, lit).await;
        assert_eq!(
            (
                r.status.as_str(),
                r.attempts,
                r.command_id.as_deref(),
                r.next_attempt_ms
            ),
            ("pending", 4, None, NOW + 8 * MINUTE)
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("gateway `gw` could not write the indicator: coil write refused")
        );

        // Success from another device's gateway is not this reminder's; the
        // device's own success (even of an earlier attempt) makes it sent.
        let c5 = indicator_command_id(lit, 5);
        assert!(
            store
                .await_command(lit, 5, &c5, NOW + 20 * MINUTE)
                .await
                .expect("await")
        );
        record_result(&store, &result(&c5, "d-dark", true), NOW)
            .await
            .expect("result");
        assert_eq!(get(&store, lit).await.status, "pending");
        record_result(&store, &result(&c3, "d-lit", true), NOW + 10 * MINUTE)
            .await
            .expect("result");
        let r = get(&store, lit).await;
        assert_eq!(
            (
                r.status.as_str(),
                r.attempts,
                r.sent_ms,
                r.last_error,
                r.command_id
            ),
            ("sent", 5, Some(NOW + 10 * MINUTE), None, None)
        );
        assert_eq!(
            crate::reminders::deliver_due(&store, &delivery(&ch), NOW + 60 * MINUTE)
                .await
                .expect("deliver"),
            0
        );
        assert_eq!(get(&store, lit).await.status, "sent", "nothing more to do");
    }

    async fn a_gateway_back_online_and_a_replaced_part_settle_waiting_reminders(db: TestDb) {
        let store = Store::open(&db.location).await.expect("store");
        let ch = channel(None);
        let tried = reminder(&store, "d1", "lit", 0).await;
        crate::reminders::deliver_due(&store, &delivery(&ch), NOW)
            .await
            .expect("deliver");
        // Not tried yet (held by quiet hours, say): left alone.
        let held = reminder(&store, "d1", "lit", 5).await;
        store
            .record_delivery(held, "pending", 0, NOW + 600 * MINUTE, None, None)
            .await
            .expect("hold");
        let elsewhere = reminder_via(&store, "gw2", "d2", "lit", 0).await;
        crate::reminders::deliver_due(&store, &delivery(&ch), NOW)
            .await
            .expect("deliver");

        gateway_online(&store, "gw", NOW + 10_000).await.expect("online");
        let next = |r: ReminderRow| (r.attempts, r.next_attempt_ms);
        assert_eq!(
            next(get(&store, tried).await),
            (1, NOW + 10_000),
            "tried again now"
        );
        assert_eq!(
            next(get(&store, held).await),
            (0, NOW + 600 * MINUTE),
            "quiet hours kept"
        );
        assert_eq!(
            next(get(&store, elsewhere).await),
            (1, NOW + MINUTE),
            "another gateway's"
        );

        // A new filter fitted at NOW + 1: the reminders of the old one (life
        // 0) are moot; the new life's (5, say) stays. No gateway known: no
        // command, and nothing fails.
        let lit = Profile::parse("lit.toml", LIT).expect("profile");
        part_replaced(&store, None, None, "d1", &lit.consumables[0], 1, NOW)
            .await
            .expect("replaced");
        let r = get(&store, tried).await;
        assert_eq!(
            (r.status.as_str(), r.last_error.as_deref()),
            (
                "skipped",
                Some("the part was replaced before the indicator was lit")
            )
        );
        assert_eq!(get(&store, held).await.status, "pending");
        assert_eq!(get(&store, elsewhere).await.status, "pending", "another device's");
    }
}
