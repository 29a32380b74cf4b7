//! Work orders in the store: opening (at most one active per device and
//! cause, by the database's partial unique index), lifecycle changes
//! applied atomically with their audit event, escalation, and listing.
//!
//! A change is a conditional update (`WHERE status = <the status it was
//! checked against>`): two callers changing one order at once cannot both
//! succeed from the same status, on either back end, without row locks.

use super::{NewWorkOrder, Result, Store, StoreError, WorkOrderRow};
use crate::policy::Scope;
use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow};
use wearline_models::reports::{DeviceSpan, OrderFacts};
use wearline_models::rules::Priority;
use wearline_models::workorder::{self, Action, Breach, Status, TransitionError};

/// One entry of a work order's audit trail.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct WorkOrderEvent {
    pub id: i64,
    pub work_order_id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    /// JSON text (served parsed).
    #[serde(skip)]
    pub detail: String,
}

/// A lifecycle change asked for.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub action: Action,
    /// Who asks (a user's name, or `hub`).
    pub actor: &'a str,
    /// `assign`: the technician.
    pub assignee: Option<&'a str>,
    pub note: Option<&'a str>,
    /// `resolve`: the parts used.
    pub parts: &'a [String],
    pub at_ms: i64,
    /// `assign`: the visit booked (UTC), replacing any earlier one; none
    /// leaves the order without a booked visit. `reopen` clears it.
    pub visit_ms: Option<i64>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no work order {0}")]
    NotFound(i64),
    #[error(transparent)]
    Refused(#[from] TransitionError),
    #[error("`assign` needs an assignee")]
    NoAssignee,
    #[error(
        "work order {id} cannot be reopened: work order {other} is already open for the same device and cause"
    )]
    AnotherActive { id: i64, other: i64 },
    #[error("work order {0} was changed meanwhile; read it again and retry")]
    Conflict(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        ChangeError::Store(StoreError::Db(e))
    }
}

/// The value a change binds as `$7`, when its step has one.
enum Extra {
    None,
    Text(String),
    Ms(Option<i64>),
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct WorkOrderFilter {
    pub status: Option<Status>,
    pub device: Option<String>,
    pub kind: Option<String>,
    /// Only orders with an id above this (keyset pagination).
    pub after_id: Option<i64>,
    pub limit: i64,
    /// Whose orders: a customer's devices', or a technician's assignments.
    pub scope: Scope,
}

impl Store {
    /// Opens a work order unless one is already active for the same device
    /// and cause; returns the new order, or `None` when one was. Its service
    /// levels come from its priority; the trail starts with `opened` by
    /// `hub`.
    pub async fn open_work_order(&self, wo: &NewWorkOrder) -> Result<Option<WorkOrderRow>> {
        let sla = workorder::sla(Priority::parse(wo.priority).unwrap_or(Priority::P3));
        let mut tx = self.writer.begin().await?;
        let row: Option<WorkOrderRow> = self
            .query_as(
                "INSERT INTO work_orders (device_id, kind, cause, status, priority, title, opened_at_ms,
                predicted_eol_ms, lead_time_days, explanation, updated_ms, respond_by_ms, resolve_by_ms)
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT DO NOTHING
             RETURNING *",
            )
            .bind(&wo.device_id)
            .bind(wo.kind)
            .bind(&wo.cause)
            .bind(wo.priority)
            .bind(&wo.title)
            .bind(wo.opened_at_ms)
            .bind(wo.predicted_eol_ms)
            .bind(wo.lead_time_days)
            .bind(wo.explanation.as_str())
            .bind(wo.opened_at_ms)
            .bind(wo.opened_at_ms.saturating_add(sla.respond_ms))
            .bind(wo.opened_at_ms.saturating_add(sla.resolve_ms))
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = &row {
            self.record_event(
                &mut tx,
                row.id,
                wo.opened_at_ms,
                "hub",
                "opened",
                None,
                "open",
                "{}",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Applies a lifecycle change: checked against the lifecycle, stamped,
    /// and recorded in the trail, atomically.
    pub async fn change_work_order(&self, id: i64, c: &Change<'_>) -> Result<WorkOrderRow, ChangeError> {
        let current = self.work_order(id).await?.ok_or(ChangeError::NotFound(id))?;
        let from = Status::parse(&current.status).unwrap_or(Status::Open);
        let to = workorder::transition(from, c.action)?;
        let assignee = match c.action {
            Action::Assign => Some(c.assignee.ok_or(ChangeError::NoAssignee)?),
            Action::Decline => None,
            _ => current.assignee.as_deref(),
        };
        // The step's own columns, besides `updated_ms` (PostgreSQL refuses a
        // column assigned twice), and `$7` where the step has a value. The
        // update is conditional on the status and assignee it was checked
        // against: an accept racing a reassignment cannot accept for the new
        // assignee. An assignment books its visit (or none); a decline or a
        // reopening drops it.
        let (stamp, extra) = match c.action {
            Action::Assign => (", accepted_ms = NULL, visit_ms = $7", Extra::Ms(c.visit_ms)),
            Action::Accept => (", accepted_ms = $3", Extra::None),
            Action::Decline => {
                let mut declined: Vec<String> =
                    serde_json::from_str(&current.declined_by).unwrap_or_default();
                declined.extend(current.assignee.clone());
                let json = serde_json::to_string(&declined).unwrap_or_else(|_| "[]".into());
                (
                    ", accepted_ms = NULL, visit_ms = NULL, declined_by = $7",
                    Extra::Text(json),
                )
            }
            Action::Start => (
                ", started_ms = $3, accepted_ms = COALESCE(accepted_ms, $3)",
                Extra::None,
            ),
            Action::Resolve => (
                ", resolved_ms = $3, parts = $7",
                Extra::Text(serde_json::to_string(c.parts).unwrap_or_else(|_| "[]".into())),
            ),
            Action::Close => (", closed_ms = $3", Extra::None),
            Action::Reopen => (", visit_ms = NULL", Extra::None),
            Action::Cancel => ("", Extra::None),
        };
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "UPDATE work_orders SET status = $1, assignee = $2, updated_ms = $3{stamp}
             WHERE id = $4 AND status = $5 AND COALESCE(assignee, '') = $6 RETURNING *"
        );
        let query = self
            .query_as(AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(assignee)
            .bind(c.at_ms)
            .bind(id)
            .bind(from.as_str())
            .bind(current.assignee.as_deref().unwrap_or(""));
        // `$7` only where the statement has it (PostgreSQL refuses a
        // parameter the statement does not use).
        let query = match extra {
            Extra::Text(v) => query.bind(v),
            Extra::Ms(v) => query.bind(v),
            Extra::None => query,
        };
        let updated: std::result::Result<Option<WorkOrderRow>, sqlx::Error> =
            query.fetch_optional(&mut *tx).await;
        let row = match updated {
            Ok(Some(row)) => row,
            Ok(None) => return Err(ChangeError::Conflict(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                let other = self
                    .active_work_order(&current.device_id, &current.cause)
                    .await?
                    .map_or(0, |w| w.id);
                return Err(ChangeError::AnotherActive { id, other });
            }
            Err(e) => return Err(e.into()),
        };
        let mut detail = serde_json::Map::new();
        if let Some(a) = c.assignee.filter(|_| c.action == Action::Assign) {
            detail.insert("assignee".into(), a.into());
        }
        if let Some(n) = c.note {
            detail.insert("note".into(), n.into());
        }
        if !c.parts.is_empty() {
            detail.insert("parts".into(), c.parts.into());
        }
        if let Some(v) = c.visit_ms.filter(|_| c.action == Action::Assign) {
            detail.insert("visit".into(), wearline_models::time::rfc3339(v).into());
        }
        self.record_event(
            &mut tx,
            id,
            c.at_ms,
            c.actor,
            c.action.as_str(),
            Some(from.as_str()),
            to.as_str(),
            &serde_json::Value::Object(detail).to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Raises an active order's priority one step for a missed target, once
    /// per target, recorded as `escalated` by `hub`. `None` when it was
    /// already escalated for that target or is no longer active.
    pub async fn escalate_work_order(
        &self,
        id: i64,
        breach: Breach,
        at_ms: i64,
    ) -> Result<Option<WorkOrderRow>> {
        let Some(current) = self.work_order(id).await? else {
            return Ok(None);
        };
        let status = Status::parse(&current.status).unwrap_or(Status::Open);
        if !status.is_active() || current.escalated.split(',').any(|b| b == breach.as_str()) {
            return Ok(None);
        }
        let old = Priority::parse(&current.priority).unwrap_or(Priority::P3);
        let new = workorder::raise(old);
        let escalated = if current.escalated.is_empty() {
            breach.as_str().to_string()
        } else {
            format!("{},{}", current.escalated, breach.as_str())
        };
        let mut tx = self.writer.begin().await?;
        let row: Option<WorkOrderRow> = self
            .query_as(
                "UPDATE work_orders SET priority = $1, escalated = $2, updated_ms = $3
             WHERE id = $4 AND escalated = $5 RETURNING *",
            )
            .bind(new.as_str())
            .bind(&escalated)
            .bind(at_ms)
            .bind(id)
            .bind(&current.escalated)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            let detail = serde_json::json!({
                "breach": breach.as_str(),
                "priority_from": old.as_str(),
                "priority_to": new.as_str(),
            });
            self.record_event(
                &mut tx,
                id,
                at_ms,
                "hub",
                "escalated",
                Some(status.as_str()),
                status.as_str(),
                &detail.to_string(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Active orders past a service-level due time at `now_ms`, with the
    /// target each has newly missed.
    pub async fn overdue_work_orders(&self, now_ms: i64) -> Result<Vec<(WorkOrderRow, Breach)>> {
        let rows: Vec<WorkOrderRow> = self
            .query_as(
                "SELECT * FROM work_orders WHERE status IN ('open', 'assigned', 'in_progress', 'reopened')
               AND (respond_by_ms < $1 OR resolve_by_ms < $1) ORDER BY id",
            )
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|w| {
                let status = Status::parse(&w.status)?;
                let done: Vec<Breach> = [Breach::Response, Breach::Resolution]
                    .into_iter()
                    .filter(|b| w.escalated.split(',').any(|e| e == b.as_str()))
                    .collect();
                let breach = workorder::overdue(status, now_ms, w.respond_by_ms, w.resolve_by_ms, &done)?;
                Some((w, breach))
            })
            .collect())
    }

    /// What the service reports need: every order's facts with its device's
    /// model, and every device's watched span.
    pub async fn report_facts(&self) -> Result<(Vec<OrderFacts>, Vec<DeviceSpan>)> {
        type Row = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = self.query_as(
            "SELECT COALESCE(d.profile, ''), w.kind, w.cause, w.opened_at_ms, w.started_ms, w.resolved_ms,
                    w.respond_by_ms, w.resolve_by_ms,
                    (SELECT COUNT(*) FROM work_order_events e WHERE e.work_order_id = w.id AND e.action = 'reopen')
             FROM work_orders w LEFT JOIN devices d ON d.id = w.device_id ORDER BY w.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let orders = rows
            .into_iter()
            .map(
                |(
                    model,
                    kind,
                    cause,
                    opened_ms,
                    started_ms,
                    resolved_ms,
                    respond_by_ms,
                    resolve_by_ms,
                    reopens,
                )| OrderFacts {
                    model,
                    kind,
                    cause,
                    opened_ms,
                    started_ms,
                    resolved_ms,
                    respond_by_ms,
                    resolve_by_ms,
                    reopens: u32::try_from(reopens).unwrap_or(u32::MAX),
                },
            )
            .collect();
        let spans: Vec<(String, i64, i64)> = self
            .query_as("SELECT profile, first_seen_ms, last_seen_ms FROM devices")
            .fetch_all(&self.pool)
            .await?;
        let devices = spans
            .into_iter()
            .map(|(model, first_ms, last_ms)| DeviceSpan {
                model,
                first_ms,
                last_ms,
            })
            .collect();
        Ok((orders, devices))
    }

    /// Every resolved order (awaiting verification).
    pub async fn resolved_work_orders(&self) -> Result<Vec<WorkOrderRow>> {
        Ok(self
            .query_as("SELECT * FROM work_orders WHERE status = 'resolved' ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// The active order of a device for a cause, if any.
    pub async fn active_work_order(&self, device: &str, cause: &str) -> Result<Option<WorkOrderRow>> {
        Ok(self
            .query_as(
                "SELECT * FROM work_orders WHERE device_id = $1 AND cause = $2
               AND status IN ('open', 'assigned', 'in_progress', 'reopened')",
            )
            .bind(device)
            .bind(cause)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every work order, oldest first.
    pub async fn work_orders(&self) -> Result<Vec<WorkOrderRow>> {
        self.list_work_orders(&WorkOrderFilter {
            limit: i64::MAX,
            ..WorkOrderFilter::default()
        })
        .await
    }

    /// Work orders matching `f`, by id.
    pub async fn list_work_orders(&self, f: &WorkOrderFilter) -> Result<Vec<WorkOrderRow>> {
        let mut sql = String::from("SELECT * FROM work_orders WHERE id > $1");
        let mut n = 1;
        let mut clause = |sql: &mut String, col: &str| {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
        };
        if f.status.is_some() {
            clause(&mut sql, "status");
        }
        if f.device.is_some() {
            clause(&mut sql, "device_id");
        }
        if f.kind.is_some() {
            clause(&mut sql, "kind");
        }
        if matches!(f.scope, Scope::Assignee(_)) {
            clause(&mut sql, "assignee");
        }
        if matches!(f.scope, Scope::Customer(_)) {
            n += 1;
            sql.push_str(&super::access::device_scope_clause(&f.scope, "device_id", n));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
        let mut q = self
            .query_as(AssertSqlSafe(sql))
            .bind(f.after_id.unwrap_or(i64::MIN));
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(d) = &f.device {
            q = q.bind(d.as_str());
        }
        if let Some(k) = &f.kind {
            q = q.bind(k.as_str());
        }
        let q = super::access::bind_scope(q, &f.scope);
        Ok(q.bind(f.limit).fetch_all(&self.pool).await?)
    }

    pub async fn work_order(&self, id: i64) -> Result<Option<WorkOrderRow>> {
        Ok(self
            .query_as("SELECT * FROM work_orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A work order's trail, oldest first.
    pub async fn work_order_events(&self, id: i64) -> Result<Vec<WorkOrderEvent>> {
        Ok(self
            .query_as("SELECT * FROM work_order_events WHERE work_order_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_event(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: i64,
        at_ms: i64,
        actor: &str,
        action: &str,
        from: Option<&str>,
        to: &str,
        detail: &str,
    ) -> Result<()> {
        self.query(
            "INSERT INTO work_order_events (work_order_id, at_ms, actor, action, from_status, to_status, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(actor)
        .bind(action)
        .bind(from)
        .bind(to)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
