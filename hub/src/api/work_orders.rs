//! Work orders: list, get, lifecycle changes, the trail, comments and the
//! customer's rating.

use super::{
    ApiPath, ApiQuery, ApiResult, AppError, AppState, ErrorBody, PAGE_DEFAULT, PAGE_MAX, Rule, body,
    visible_device, visible_order,
};
use crate::policy::{self, Access, Caller, Decision, OrderFacts};
use crate::store::{Change, ChangeError, NewWorkOrder, WorkOrderEvent, WorkOrderFilter, WorkOrderRow};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use wearline_models::rules::Priority;
use wearline_models::time::rfc3339;
use wearline_models::workorder::{self, Action, Criticality, Status};

/// A work order, its service-level due times and its explanation.
#[derive(Serialize, ToSchema)]
pub(super) struct WorkOrderView {
    #[serde(flatten)]
    row: WorkOrderRow,
    /// RFC 3339, like the other times.
    opened_at: String,
    predicted_end_of_life: Option<String>,
    respond_by: String,
    resolve_by: String,
    /// The visit booked, if any.
    visit: Option<String>,
    /// The parts used, as recorded when resolved.
    parts: Vec<String>,
    /// The prediction and the data behind the order.
    #[schema(value_type = Option<Object>)]
    explanation: Value,
    /// When the assignee accepted it.
    accepted_at: Option<String>,
    /// Technicians who gave it back (dispatch does not choose them again).
    declined_by: Vec<String>,
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
            parts: serde_json::from_str(&row.parts).unwrap_or_default(),
            explanation: explanation_json,
            accepted_at: row.accepted_ms.map(rfc3339),
            declined_by: serde_json::from_str(&row.declined_by).unwrap_or_default(),
            row,
        }
    }
}

/// One entry of a work order's trail.
#[derive(Serialize, ToSchema)]
pub(super) struct EventView {
    #[serde(flatten)]
    row: WorkOrderEvent,
    /// RFC 3339.
    at: String,
    /// The note, the parts, the dispatch reason…
    #[schema(value_type = Option<Object>)]
    detail: Value,
}

/// The work-order statuses, from `Status::ALL`.
fn status_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Status::ALL.map(Status::as_str)))
}

/// The lifecycle actions, from `Action::ALL`.
fn action_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Action::ALL.map(Action::as_str)))
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkOrderQuery {
    /// Only orders in this status.
    #[param(schema_with = status_schema)]
    status: Option<String>,
    /// Only this device's orders.
    device: Option<String>,
    /// Only orders of this kind (`preventive`, `corrective`).
    kind: Option<String>,
    /// Orders with an id above this (the last id of the previous page).
    after: Option<i64>,
    /// Orders in one page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Work orders the caller sees, by id, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/work-orders",
    tag = "work-orders",
    params(WorkOrderQuery),
    responses(
        (status = 200, description = "A page of work orders, by id", body = Vec<WorkOrderView>),
        (status = 400, description = "A bad filter or limit, or an unknown parameter", body = ErrorBody),
    )
)]
pub(super) async fn work_orders(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<WorkOrderQuery>,
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

/// A lifecycle step.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TransitionRequest {
    /// `assign`, `accept`, `decline`, `start`, `resolve`, `close`,
    /// `reopen` or `cancel`.
    #[schema(schema_with = action_schema)]
    action: String,
    /// `assign`: the technician.
    assignee: Option<String>,
    note: Option<String>,
    /// `resolve`: the parts used.
    #[serde(default)]
    parts: Vec<String>,
    /// `assign` only: the visit booked, RFC 3339
    /// (`2026-12-03T09:00:00+01:00`).
    #[schema(format = DateTime)]
    visit: Option<String>,
}

/// A `visit` is booked with `assign` only (see `Rule`).
pub(super) fn visit_rule() -> Rule {
    Rule {
        schema: "TransitionRequest",
        when: json!({"required": ["visit"], "properties": {"visit": {"type": "string"}}}),
        then: json!({"required": ["action"], "properties": {"action": {"const": "assign"}}}),
    }
}

/// `assign` names the technician (see `Rule`).
pub(super) fn assign_rule() -> Rule {
    Rule {
        schema: "TransitionRequest",
        when: json!({"required": ["action"], "properties": {"action": {"const": "assign"}}}),
        then: json!({"required": ["assignee"], "properties": {"assignee": {"type": "string"}}}),
    }
}

/// Applies a lifecycle change: 200 with the order, 409 with the reason when
/// the lifecycle refuses it or the order changed meanwhile, 403 when the
/// caller's role may not make it. The trail names the caller (`Caller::actor`).
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{id}/transitions",
    tag = "work-orders",
    params(("id" = i64, Path, description = "The work order's id")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The order after the step", body = WorkOrderView),
        (status = 400, description = "A bad id or body (`assign` needs an `assignee`)", body = ErrorBody),
        (status = 403, description = "The caller sees the order but may not make this step", body = ErrorBody),
        (status = 404, description = "No such order, or not the caller's", body = ErrorBody),
        (status = 409, description = "The lifecycle refuses the step, or the order changed meanwhile", body = ErrorBody),
    )
)]
pub(super) async fn transition_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
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
    let visit_ms = visit(req.visit.as_deref(), action)?;
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

/// The `visit` of a transition: only with `assign`, RFC 3339. A past one
/// is recorded as said (a visit booked by phone that began a moment ago);
/// reminders never name a past visit.
fn visit(visit: Option<&str>, action: Action) -> Result<Option<i64>, AppError> {
    let Some(text) = visit else { return Ok(None) };
    let bad = |m: String| Err(AppError::BadRequest(m));
    if action != Action::Assign {
        return bad("`visit` is booked with `assign`".into());
    }
    match wearline_models::time::parse_rfc3339(text) {
        None => bad(format!(
            "`visit` `{text}`: expected an RFC 3339 time such as 2026-12-03T09:00:00+01:00"
        )),
        Some(ms) => Ok(Some(ms)),
    }
}

/// The order's trail: every change, when, by whom, from and to which status.
#[utoipa::path(
    get,
    path = "/api/v1/work-orders/{id}/events",
    tag = "work-orders",
    params(("id" = i64, Path, description = "The work order's id")),
    responses(
        (status = 200, description = "The trail, oldest first", body = Vec<EventView>),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such order, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn work_order_events(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
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

/// One work order with its explanation.
#[utoipa::path(
    get,
    path = "/api/v1/work-orders/{id}",
    tag = "work-orders",
    params(("id" = i64, Path, description = "The work order's id")),
    responses(
        (status = 200, description = "The order", body = WorkOrderView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such order, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<WorkOrderView> {
    let (row, _) = visible_order(&s, &caller, id).await?;
    Ok(Json(row.into()))
}

/// A comment for the trail.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentRequest {
    /// Not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    text: String,
}

/// A comment in the trail, by anyone who may see the order; answers the trail.
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{id}/comments",
    tag = "work-orders",
    params(("id" = i64, Path, description = "The work order's id")),
    request_body = CommentRequest,
    responses(
        (status = 200, description = "The trail with the comment", body = Vec<EventView>),
        (status = 400, description = "A bad id or body (blank `text`)", body = ErrorBody),
        (status = 404, description = "No such order, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn comment_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
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
    work_order_events(State(s), Extension(caller), ApiPath(id)).await
}

/// The customer's rating of a visit.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RatingRequest {
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    #[serde(deserialize_with = "super::whole::one")]
    stars: i64,
    comment: Option<String>,
}

/// The customer rates the visit: stored with the order; a resolved order
/// is closed by it.
#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{id}/rating",
    tag = "work-orders",
    params(("id" = i64, Path, description = "The work order's id")),
    request_body = RatingRequest,
    responses(
        (status = 200, description = "The order, closed if it was resolved", body = WorkOrderView),
        (status = 400, description = "A bad id or body (`stars` out of 1 to 5)", body = ErrorBody),
        (status = 403, description = "A technician: the customer rates the visit", body = ErrorBody),
        (status = 404, description = "No such order, or not the caller's", body = ErrorBody),
        (status = 409, description = "The order is not resolved yet", body = ErrorBody),
    )
)]
pub(super) async fn rate_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
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
    work_order(State(s), Extension(caller), ApiPath(id)).await
}

/// What a manual request may be about; its cause is `manual:{category}`.
const CATEGORIES: [&str; 4] = ["repair", "maintenance", "inspection", "installation"];

/// A manual request for a visit.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrderRequest {
    /// The device's id.
    device: String,
    /// One line: what is wrong or wanted (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    title: String,
    #[schema(max_length = 4000)]
    description: Option<String>,
    /// `repair` (the default), `maintenance`, `inspection` or `installation`.
    #[schema(schema_with = category_schema)]
    category: Option<String>,
    /// `P1`, `P2` or `P3`: managers only. Else P3, one step more urgent
    /// for a high-criticality device.
    #[schema(schema_with = priority_schema)]
    priority: Option<String>,
}

fn category_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(CATEGORIES.into_iter().map(Some).chain([None])))
}

fn priority_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(["P1", "P2", "P3"].into_iter().map(Some).chain([None])))
}

/// A manual work order: a customer's request for one of their devices, or
/// a manager's for any. At most one active per device and category (409
/// naming the open one); dispatched at once like the orders the data opens.
#[utoipa::path(
    post,
    path = "/api/v1/work-orders",
    tag = "work-orders",
    request_body = NewOrderRequest,
    responses(
        (status = 201, description = "The new order (assigned when a technician has the skill)", body = WorkOrderView),
        (status = 400, description = "A bad body (blank title, unknown category or priority)", body = ErrorBody),
        (status = 403, description = "A technician, or a customer setting the priority", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's", body = ErrorBody),
        (status = 409, description = "An order for this device and category is already open", body = ErrorBody),
    )
)]
pub(super) async fn create_work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Result<Json<NewOrderRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<WorkOrderView>), AppError> {
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if matches!(caller.access, Access::Technician(_)) {
        return Err(AppError::Forbidden(
            "technicians do not open work orders: a manager or the customer does".into(),
        ));
    }
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return bad("`title`: 1 to 200 characters".into());
    }
    if req.description.as_ref().is_some_and(|d| d.chars().count() > 4000) {
        return bad("`description`: at most 4000 characters".into());
    }
    let category = req.category.as_deref().unwrap_or("repair");
    if !CATEGORIES.contains(&category) {
        return bad(format!(
            "category `{category}`: expected one of {}",
            CATEGORIES.join(", ")
        ));
    }
    let asked = match req.priority.as_deref() {
        None => None,
        Some(p) => Some(
            Priority::parse(p)
                .ok_or_else(|| AppError::BadRequest(format!("priority `{p}`: expected P1, P2 or P3")))?,
        ),
    };
    let device = visible_device(&s, &caller, &req.device).await?;
    let priority = match asked {
        Some(p) if policy::may_manage(&caller) => p,
        Some(_) => {
            return Err(AppError::Forbidden(
                "the service manager sets a request's priority".into(),
            ));
        }
        None => workorder::priority(
            Priority::P3,
            Criticality::parse(&device.criticality).unwrap_or_default(),
        ),
    };
    let now = crate::clock::wall_ms();
    let cause = format!("manual:{category}");
    let new = NewWorkOrder {
        device_id: device.id.clone(),
        kind: "manual",
        cause: cause.clone(),
        priority: priority.as_str(),
        title: title.to_string(),
        opened_at_ms: now,
        predicted_eol_ms: None,
        lead_time_days: None,
        explanation: json!({
            "source": "request",
            "requested_by": caller.actor(),
            "role": caller.role().as_str(),
            "category": category,
            "description": req.description,
            "priority": if asked.is_some() { "set by the manager" } else { "from the device's criticality" },
        })
        .to_string(),
    };
    let Some(order) = s.store.open_work_order(&new).await? else {
        let other = s
            .store
            .active_work_order(&device.id, &cause)
            .await?
            .map_or(0, |w| w.id);
        return Err(AppError::Conflict(format!(
            "work order {other} is already open for device `{}` and `{cause}`: comment on it instead",
            device.id
        )));
    };
    tracing::info!(work_order = order.id, device = %device.id, %cause, by = caller.actor(), "manual work order opened");
    let mut team = crate::dispatch::team(&s.store).await?;
    crate::dispatch::dispatch(&s.store, &mut team, &order, now).await?;
    let order = s.store.work_order(order.id).await?.unwrap_or(order);
    Ok((StatusCode::CREATED, Json(order.into())))
}
