//! Customer reminders in the store: each customer's settings, and the
//! reminders queued with their delivery state.

use super::{Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow};
use wearline_models::reminders::DEFAULT_POINTS;

/// The channels built so far (`email` needs the hub's `[reminders.smtp]`).
pub const CHANNELS: [&str; 4] = ["portal", "webhook", "email", "indicator"];

/// A customer's reminder settings (the defaults when none are stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReminderSettings {
    pub customer_id: i64,
    pub channels: Vec<String>,
    /// Days of life left at which to remind.
    pub points: Vec<f64>,
    /// Local quiet hours, `[start, end)`; equal: none.
    pub quiet_hours: [i64; 2],
    pub utc_offset_minutes: i64,
    pub opted_out: bool,
    pub webhook_url: Option<String>,
    /// Signs webhook calls (HMAC-SHA256); never served back.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<String>,
    /// Where the `email` channel sends.
    pub email: Option<String>,
}

impl ReminderSettings {
    /// The portal only, a month, a week and due, quiet 21:00–08:00 UTC.
    pub fn defaults(customer_id: i64) -> ReminderSettings {
        ReminderSettings {
            customer_id,
            channels: vec!["portal".into()],
            points: DEFAULT_POINTS.to_vec(),
            quiet_hours: [21, 8],
            utc_offset_minutes: 0,
            opted_out: false,
            webhook_url: None,
            webhook_secret: None,
            email: None,
        }
    }
}

type SettingsRow = (
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

const SETTINGS: &str =
    "SELECT customer_id, channels, points, quiet_start, quiet_end, utc_offset_minutes, opted_out,
        webhook_url, webhook_secret, email FROM reminder_settings";

fn settings(
    (customer_id, channels, points, qs, qe, off, out, url, secret, email): SettingsRow,
) -> ReminderSettings {
    ReminderSettings {
        customer_id,
        channels: serde_json::from_str(&channels).unwrap_or_default(),
        points: serde_json::from_str(&points).unwrap_or_default(),
        quiet_hours: [qs, qe],
        utc_offset_minutes: off,
        opted_out: out != 0,
        webhook_url: url,
        webhook_secret: secret,
        email,
    }
}

/// A reminder to queue.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub customer_id: i64,
    pub device_id: String,
    pub consumable: String,
    pub life_start_ms: i64,
    pub point_days: f64,
    pub channel: String,
    pub remaining_days: f64,
    pub message: String,
    pub created_ms: i64,
    /// When it may first be sent (after quiet hours).
    pub send_at_ms: i64,
}

/// A queued reminder and its delivery state.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct ReminderRow {
    pub id: i64,
    pub customer_id: i64,
    pub device_id: String,
    pub consumable: String,
    pub life_start_ms: i64,
    pub point_days: f64,
    pub channel: String,
    pub remaining_days: f64,
    pub message: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    /// `indicator` channel: the command sent to the device's gateway whose
    /// result is awaited, if any.
    pub command_id: Option<String>,
}

impl Store {
    /// A customer's settings; the defaults when none are stored.
    pub async fn reminder_settings(&self, customer_id: i64) -> Result<ReminderSettings> {
        let row: Option<SettingsRow> = self
            .query_as(AssertSqlSafe(format!("{SETTINGS} WHERE customer_id = $1")))
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or_else(|| ReminderSettings::defaults(customer_id), settings))
    }

    /// Every device with an owner or a criticality other than `normal`:
    /// `(device, customer, criticality)`.
    pub async fn device_owners(&self) -> Result<Vec<(String, Option<i64>, String)>> {
        Ok(self
            .query_as(
                "SELECT id, customer_id, criticality FROM devices
             WHERE customer_id IS NOT NULL OR criticality <> 'normal'",
            )
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every stored customer's settings (customers without a row use the
    /// defaults).
    pub async fn all_reminder_settings(&self) -> Result<Vec<ReminderSettings>> {
        let rows: Vec<SettingsRow> = self.query_as(SETTINGS).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(settings).collect())
    }

    /// Stores a customer's settings.
    pub async fn put_reminder_settings(&self, s: &ReminderSettings) -> Result<()> {
        self.query(
            "INSERT INTO reminder_settings (customer_id, channels, points, quiet_start, quiet_end,
                utc_offset_minutes, opted_out, webhook_url, webhook_secret, email)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (customer_id) DO UPDATE SET channels = excluded.channels, points = excluded.points,
                quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
                utc_offset_minutes = excluded.utc_offset_minutes, opted_out = excluded.opted_out,
                webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
                email = excluded.email",
        )
        .bind(s.customer_id)
        .bind(serde_json::to_string(&s.channels).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&s.points).unwrap_or_else(|_| "[]".into()))
        .bind(s.quiet_hours[0])
        .bind(s.quiet_hours[1])
        .bind(s.utc_offset_minutes)
        .bind(i64::from(s.opted_out))
        .bind(s.webhook_url.as_deref())
        .bind(s.webhook_secret.as_deref())
        .bind(s.email.as_deref())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Queues a reminder unless the same one (device, consumable, life,
    /// point, channel) already is; whether it was new.
    pub async fn queue_reminder(&self, r: &NewReminder) -> Result<bool> {
        let done = self.query(
            "INSERT INTO reminders (customer_id, device_id, consumable, life_start_ms, point_days, channel,
                remaining_days, message, status, attempts, next_attempt_ms, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(r.customer_id)
        .bind(&r.device_id)
        .bind(&r.consumable)
        .bind(r.life_start_ms)
        .bind(r.point_days)
        .bind(&r.channel)
        .bind(r.remaining_days)
        .bind(&r.message)
        .bind(r.send_at_ms)
        .bind(r.created_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pending reminders due at `now_ms`, oldest first.
    pub async fn due_reminders(&self, now_ms: i64, limit: i64) -> Result<Vec<ReminderRow>> {
        Ok(self.query_as(
            "SELECT * FROM reminders WHERE status = 'pending' AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, id
             LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a delivery attempt's outcome (and settles any command awaited).
    pub async fn record_delivery(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        next_attempt_ms: i64,
        error: Option<&str>,
        sent_ms: Option<i64>,
    ) -> Result<()> {
        self.query(
            "UPDATE reminders SET status = $1, attempts = $2, next_attempt_ms = $3, last_error = $4, sent_ms = $5,
                command_id = NULL WHERE id = $6",
        )
        .bind(status)
        .bind(attempts)
        .bind(next_attempt_ms)
        .bind(error)
        .bind(sent_ms)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A reminder's text as rendered for sending (with what is known then,
    /// e.g. a visit booked since it was queued).
    pub async fn set_reminder_message(&self, id: i64, message: &str) -> Result<()> {
        self.query("UPDATE reminders SET message = $1 WHERE id = $2")
            .bind(message)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// What a reminder about `consumable` of `device` says when rendered:
    /// the device's profile, and the visit booked on its active order for
    /// that part, if any.
    pub async fn reminder_facts(&self, device: &str, consumable: &str) -> Result<(String, Option<i64>)> {
        let profile: Option<(String,)> = self
            .query_as("SELECT profile FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&self.pool)
            .await?;
        let cause = crate::ingest::consumable_cause(consumable);
        let visit = self
            .active_work_order(device, &cause)
            .await?
            .and_then(|w| w.visit_ms);
        Ok((profile.map(|p| p.0).unwrap_or_default(), visit))
    }

    /// Reminders, newest first: one customer's, or everyone's.
    pub async fn reminders(&self, customer_id: Option<i64>, limit: i64) -> Result<Vec<ReminderRow>> {
        let q = match customer_id {
            Some(c) => self
                .query_as("SELECT * FROM reminders WHERE customer_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(c),
            None => self
                .query_as("SELECT * FROM reminders WHERE customer_id >= $1 ORDER BY id DESC LIMIT $2")
                .bind(i64::MIN),
        };
        Ok(q.bind(limit).fetch_all(&self.pool).await?)
    }
}
