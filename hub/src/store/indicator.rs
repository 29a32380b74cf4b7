//! The statements of the `indicator` reminder channel: where a device's
//! commands go, and a reminder's command sent, answered, lost or made moot.
//! Every change is conditional on the state it expects, so the delivery
//! task and ingest (which takes the agents' results, possibly on another
//! hub of a shared group) never undo each other's work.

use super::{ReminderRow, Result, Store};

impl Store {
    /// The gateway a device was last heard through and its profile, for a
    /// device the hub has had telemetry from.
    pub async fn device_route(&self, device: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .query_as("SELECT gateway, profile FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// One reminder.
    pub async fn reminder(&self, id: i64) -> Result<Option<ReminderRow>> {
        Ok(self
            .query_as("SELECT * FROM reminders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Attempt `attempts` of pending reminder `id` sent command
    /// `command_id`; its result is awaited until `until_ms`. Whether the
    /// reminder was still pending.
    pub async fn await_command(
        &self,
        id: i64,
        attempts: i64,
        command_id: &str,
        until_ms: i64,
    ) -> Result<bool> {
        let done = self
            .query(
                "UPDATE reminders SET attempts = $2, command_id = $3, next_attempt_ms = $4
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(attempts)
            .bind(command_id)
            .bind(until_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The agent lit the indicator of reminder `id` (any attempt's command):
    /// it is `sent`, also if its attempts had run out meanwhile. Whether
    /// this changed it.
    pub async fn indicator_lit(&self, id: i64, now_ms: i64) -> Result<bool> {
        let done = self
            .query(
                "UPDATE reminders SET status = 'sent', sent_ms = $2, last_error = NULL, command_id = NULL
                 WHERE id = $1 AND channel = 'indicator' AND status IN ('pending', 'failed')",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The awaited command `command_id` of reminder `id` failed (the agent
    /// said so, or said nothing in time): the reminder becomes `status`
    /// (`pending` to retry at `next_attempt_ms`, or `failed`) with `error`.
    /// Whether that command was still awaited.
    pub async fn command_failed(
        &self,
        id: i64,
        command_id: &str,
        status: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool> {
        let done = self
            .query(
                "UPDATE reminders SET status = $3, next_attempt_ms = $4, last_error = $5, command_id = NULL
                 WHERE id = $1 AND command_id = $2 AND status = 'pending'",
            )
            .bind(id)
            .bind(command_id)
            .bind(status)
            .bind(next_attempt_ms)
            .bind(error)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gateway `gateway` is back online: its devices' pending indicator
    /// reminders that were tried before (so past quiet hours) and have
    /// attempts left (fewer than `max_attempts`) are due at `now_ms`, not
    /// at the end of their backoff; a command still awaited is taken as
    /// lost. How many.
    pub async fn retry_indicators_now(&self, gateway: &str, now_ms: i64, max_attempts: i64) -> Result<u64> {
        let done = self
            .query(
                "UPDATE reminders SET next_attempt_ms = $2, command_id = NULL
                 WHERE status = 'pending' AND channel = 'indicator' AND attempts > 0 AND attempts < $3
                   AND next_attempt_ms > $2
                   AND device_id IN (SELECT id FROM devices WHERE gateway = $1)",
            )
            .bind(gateway)
            .bind(now_ms)
            .bind(max_attempts)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// A new part was fitted (its life started at `life_start_ms`): the
    /// pending indicator reminders of the earlier parts are `skipped`, so
    /// none lights the indicator for a part already replaced. How many.
    pub async fn skip_indicators_before(
        &self,
        device: &str,
        consumable: &str,
        life_start_ms: i64,
        now_ms: i64,
    ) -> Result<u64> {
        let done = self
            .query(
                "UPDATE reminders SET status = 'skipped', next_attempt_ms = $4, command_id = NULL,
                    last_error = 'the part was replaced before the indicator was lit'
                 WHERE device_id = $1 AND consumable = $2 AND life_start_ms < $3
                   AND channel = 'indicator' AND status = 'pending'",
            )
            .bind(device)
            .bind(consumable)
            .bind(life_start_ms)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
