//! Technicians, device locations, and what a visit leaves behind: the
//! parts used, comments and the customer's rating.

use super::{Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

/// A technician as stored, with the active orders they hold (`load`).
#[derive(Debug, Clone, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct TechnicianRow {
    pub name: String,
    /// JSON array text (served parsed).
    #[serde(skip)]
    pub skills: String,
    pub latitude: f64,
    pub longitude: f64,
    pub capacity: i64,
    pub shift_start: i64,
    pub shift_end: i64,
    pub utc_offset_minutes: i64,
    /// 1: takes new assignments.
    pub active: i64,
    /// Orders assigned or in progress now (computed).
    #[sqlx(default)]
    pub load: i64,
}

impl Store {
    /// Adds a technician or replaces their details.
    pub async fn upsert_technician(&self, t: &TechnicianRow) -> Result<()> {
        self.query(
            "INSERT INTO technicians (name, skills, latitude, longitude, capacity, shift_start, shift_end,
                utc_offset_minutes, active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET skills = excluded.skills, latitude = excluded.latitude,
                longitude = excluded.longitude, capacity = excluded.capacity,
                shift_start = excluded.shift_start, shift_end = excluded.shift_end,
                utc_offset_minutes = excluded.utc_offset_minutes, active = excluded.active",
        )
        .bind(&t.name)
        .bind(&t.skills)
        .bind(t.latitude)
        .bind(t.longitude)
        .bind(t.capacity)
        .bind(t.shift_start)
        .bind(t.shift_end)
        .bind(t.utc_offset_minutes)
        .bind(t.active)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Every technician with their current load, by name.
    pub async fn technicians(&self) -> Result<Vec<TechnicianRow>> {
        Ok(self
            .query_as(
                "SELECT t.name, t.skills, t.latitude, t.longitude, t.capacity, t.shift_start, t.shift_end,
                t.utc_offset_minutes, t.active,
                (SELECT COUNT(*) FROM work_orders w
                  WHERE w.assignee = t.name AND w.status IN ('assigned', 'in_progress', 'reopened')) AS load
             FROM technicians t ORDER BY t.name",
            )
            .fetch_all(&self.pool)
            .await?)
    }

    /// Sets where a device is; whether the device exists.
    pub async fn set_device_location(&self, device: &str, latitude: f64, longitude: f64) -> Result<bool> {
        let done = self
            .query("UPDATE devices SET latitude = $1, longitude = $2 WHERE id = $3")
            .bind(latitude)
            .bind(longitude)
            .bind(device)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Where a device is, when known.
    pub async fn device_location(&self, device: &str) -> Result<Option<(f64, f64)>> {
        let row: Option<(Option<f64>, Option<f64>)> = self
            .query_as("SELECT latitude, longitude FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(la, lo)| la.zip(lo)))
    }

    /// Adds an entry to an order's trail without changing its status (a
    /// comment, a dispatch note); whether the order exists.
    pub async fn note_work_order(
        &self,
        id: i64,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
        at_ms: i64,
    ) -> Result<bool> {
        let Some(wo) = self.work_order(id).await? else {
            return Ok(false);
        };
        self.query(
            "INSERT INTO work_order_events (work_order_id, at_ms, actor, action, from_status, to_status, detail)
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(actor)
        .bind(action)
        .bind(&wo.status)
        .bind(detail.to_string())
        .execute(&self.writer)
        .await?;
        Ok(true)
    }

    /// Records the customer's rating of the visit (1–5) with a comment, in
    /// the order and its trail; whether the order exists.
    pub async fn rate_work_order(
        &self,
        id: i64,
        stars: i64,
        comment: Option<&str>,
        actor: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let done = self
            .query("UPDATE work_orders SET rating = $1, rating_comment = $2, updated_ms = $3 WHERE id = $4")
            .bind(stars)
            .bind(comment)
            .bind(at_ms)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let detail = serde_json::json!({"stars": stars, "comment": comment});
        self.note_work_order(id, actor, "rated", &detail, at_ms).await
    }
}
