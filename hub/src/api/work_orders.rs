//! Work orders: list, get, lifecycle changes, the trail, comments and the
//! customer's rating.

use super::{ApiResult, AppError, AppState, PAGE_DEFAULT, PAGE_MAX, body, visible_order};
use crate::policy::{self, Caller, Decision, OrderFacts};
use crate::store::{Change, ChangeError, WorkOrderEvent, WorkOrderFilter, WorkOrderRow};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Serialize;
use serde_json::{Value, json};
use wearline_models::time::rfc3339;
use wearline_models::workorder::{Action, Status};

#[derive(Serialize)]
pub(super) struct WorkOrderView {
    #[serde(flatten)]
    row: WorkOrderRow,
    opened_at: String,
    predicted_end_of_life: Option<String>,
    respond_by: String,
    resolve_by: String,
    /// The visit booked, if any.
    visit: Option<String>,
    parts: Value,
    explanation: Value,
}

impl From<WorkOrderRow> for WorkOrderView {
    fn from(row: WorkOrderRow) -> Self {
        let explanation_json = serde_json::from_str(&row.explanation).unwrap_or(Value::Null);
        WorkOrderView {
            opened_at: rfc3339(row.opened_at_ms),
            predicted_end_of_life: row.predicted_eol_ms.map(rfc3339),
            respond_by: rfc3339(row.respond_by_ms),
            resolve_by: rfc3339(row.resolve_by_ms),
            visit: row.visit_ms.map(rfc3339),
            parts: serde_json::from_str(&row.parts).unwrap_or(Value::Null),
            explanation: explanation_json,
            row,
        }
    }
}

#[derive(Serialize)]
pub(super) struct EventView {
    #[serde(flatten)]
    row: WorkOrderEvent,
    at: String,
    detail: Value,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkOrderQuery {
    status: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    /// Orders with an id above this (the last id of the previous page).
    after: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn work_orders(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<WorkOrderQuery>,
) -> ApiResult<Vec<WorkOrderView>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(name) => Some(Status::parse(name).ok_or_else(|| {
            AppError::BadRequest(format!(
                "status `{name}`: expected one of {}",
                Status::ALL.map(Status::as_str).join(", ")
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit {limit}: expected 1 to {PAGE_MAX}"
        )));
    }
    let filter = WorkOrderFilter {
        status,
        device: q.device,
        kind: q.kind,
        after_id: q.after,
        limit,
        scope: caller.scope(),
    };
    Ok(Json(
        s.store
            .list_work_orders(&filter)
            .await?
            .into_iter()
            .map(WorkOrderView::from)
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransitionRequest {
    /// `assign`, `start`, `resolve`, `close`, `reopen` or `cancel`.
    action: String,
    /// `assign`: the technician.
    assignee: Option<String>,
    note: Option<String>,
    /// `resolve`: the parts used.
    #[serde(default)]
    parts: Vec<String>,
    /// `assign`: the visit booked, RFC 3339 (`2026-12-03T09:00:00+01:00`).
    visit: Option<String>,
}

/// Applies a lifecycle change: 200 with the order, 409 with the reason when
/// the lifecycle refuses it or the order changed meanwhile, 403 when the
/// caller's role may not make it. The trail names the caller (`Caller::actor`).
pub(super) async fn transition_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: Result<Json<TransitionRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<WorkOrderView> {
    let Json(req) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let action = Action::parse(&req.action).ok_or_else(|| {
        AppError::BadRequest(format!(
            "action `{}`: expected one of {}",
            req.action,
            Action::ALL.map(Action::as_str).join(", ")
        ))
    })?;
    let (order, owner) = visible_order(&s, &caller, id).await?;
    let facts = OrderFacts {
        device_owner: owner,
        assignee: order.assignee.as_deref(),
    };
    match policy::may_change_order(&caller, facts, action) {
        Decision::Allow => {}
        Decision::Hidden => return Err(AppError::NotFound(format!("no work order {id}"))),
        Decision::Forbidden(why) => return Err(AppError::Forbidden(why.into())),
    }
    let now = crate::clock::wall_ms();
    let visit_ms = visit(req.visit.as_deref(), action, now)?;
    let change = Change {
        action,
        actor: caller.actor(),
        assignee: req.assignee.as_deref(),
        note: req.note.as_deref(),
        parts: &req.parts,
        at_ms: now,
        visit_ms,
    };
    match s.store.change_work_order(id, &change).await {
        Ok(row) => Ok(Json(row.into())),
        Err(ChangeError::NotFound(id)) => Err(AppError::NotFound(format!("no work order {id}"))),
        Err(ChangeError::NoAssignee) => Err(AppError::BadRequest("`assign` needs an `assignee`".into())),
        Err(ChangeError::Store(e)) => Err(AppError::Store(e)),
        Err(e) => Err(AppError::Conflict(e.to_string())),
    }
}

/// The `visit` of a transition: only with `assign`, RFC 3339, not past.
fn visit(visit: Option<&str>, action: Action, now_ms: i64) -> Result<Option<i64>, AppError> {
    let Some(text) = visit else { return Ok(None) };
    let bad = |m: String| Err(AppError::BadRequest(m));
    if action != Action::Assign {
        return bad("`visit` is booked with `assign`".into());
    }
    match wearline_models::time::parse_rfc3339(text) {
        None => bad(format!(
            "`visit` `{text}`: expected an RFC 3339 time such as 2026-12-03T09:00:00+01:00"
        )),
        Some(ms) if ms < now_ms => bad(format!("`visit` {text} is in the past")),
        Some(ms) => Ok(Some(ms)),
    }
}

pub(super) async fn work_order_events(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<Vec<EventView>> {
    visible_order(&s, &caller, id).await?;
    Ok(Json(
        s.store
            .work_order_events(id)
            .await?
            .into_iter()
            .map(|row| EventView {
                at: rfc3339(row.at_ms),
                detail: serde_json::from_str(&row.detail).unwrap_or(Value::Null),
                row,
            })
            .collect(),
    ))
}

pub(super) async fn work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<WorkOrderView> {
    let (row, _) = visible_order(&s, &caller, id).await?;
    Ok(Json(row.into()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentRequest {
    text: String,
}

/// A comment in the trail, by anyone who may see the order; answers the trail.
pub(super) async fn comment_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    req: Result<Json<CommentRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Vec<EventView>> {
    let req = body(req)?;
    if req.text.trim().is_empty() {
        return Err(AppError::BadRequest("`text` must not be empty".into()));
    }
    visible_order(&s, &caller, id).await?;
    let detail = json!({ "note": req.text });
    if !s
        .store
        .note_work_order(id, caller.actor(), "comment", &detail, crate::clock::wall_ms())
        .await?
    {
        return Err(AppError::NotFound(format!("no work order {id}")));
    }
    work_order_events(State(s), Extension(caller), Path(id)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RatingRequest {
    /// 1 to 5.
    stars: i64,
    comment: Option<String>,
}

/// The customer rates the visit: stored with the order; a resolved order
/// is closed by it.
pub(super) async fn rate_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    req: Result<Json<RatingRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<WorkOrderView> {
    let req = body(req)?;
    if !(1..=5).contains(&req.stars) {
        return Err(AppError::BadRequest(format!(
            "stars {}: expected 1 to 5",
            req.stars
        )));
    }
    let (current, _) = visible_order(&s, &caller, id).await?;
    if !policy::may_rate(&caller) {
        return Err(AppError::Forbidden(
            "the customer rates the visit, not the technician".into(),
        ));
    }
    if !matches!(current.status.as_str(), "resolved" | "closed") {
        return Err(AppError::Conflict(format!(
            "work order {id} is {}: a visit is rated once resolved",
            current.status
        )));
    }
    let now = crate::clock::wall_ms();
    s.store
        .rate_work_order(id, req.stars, req.comment.as_deref(), caller.actor(), now)
        .await?;
    if current.status == "resolved" {
        let change = Change {
            action: Action::Close,
            actor: caller.actor(),
            assignee: None,
            note: Some("closed by the customer's rating"),
            parts: &[],
            at_ms: now,
            visit_ms: None,
        };
        match s.store.change_work_order(id, &change).await {
            // Closed meanwhile (verified by the data): the rating still counts.
            Ok(_) | Err(ChangeError::Refused(_) | ChangeError::Conflict(_)) => {}
            Err(ChangeError::Store(e)) => return Err(AppError::Store(e)),
            Err(e) => return Err(AppError::Conflict(e.to_string())),
        }
    }
    work_order(State(s), Extension(caller), Path(id)).await
}
