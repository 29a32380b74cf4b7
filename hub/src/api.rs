//! The REST API: devices, their consumables, work orders, health and
//! Prometheus metrics.
//!
//! `router(state)` is kept apart from serving so handlers can be tested with
//! `oneshot` requests; `serve` runs it on a listener.
//!
//! Every `/api/v1` route needs a bearer token (`auth::authenticate`, 401
//! without one) and answers by the caller's role (`policy.rs`): lists are
//! filtered to what the caller may see, and a device or work order they may
//! not see is a 404, as if it did not exist. `/health` and `/metrics` stay
//! open: load balancers, orchestrators' probes and Prometheus scrape them
//! without credentials, and they hold counters, not customers' data.

use crate::influx::InfluxHandle;
use crate::ingest::IngestStats;
use crate::policy::{self, Access, Caller, Decision, DeviceFacts, OrderFacts};
use crate::store::{
    AlertRow, Change, ChangeError, ConsumableRow, DeviceRow, Store, StoreError, TechnicianRow,
    WorkOrderEvent, WorkOrderFilter, WorkOrderRow,
};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use wearline_models::time::rfc3339;
use wearline_models::workorder::{Action, Status};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub stats: Arc<IngestStats>,
    /// The InfluxDB sink, when configured.
    pub influx: Option<InfluxHandle>,
}

/// An error answered as JSON `{"error": "..."}`.
#[derive(Debug)]
pub enum AppError {
    NotFound(String),
    BadRequest(String),
    /// The caller sees the resource but may not do this to it.
    Forbidden(String),
    /// The request conflicts with the resource's state (a refused
    /// lifecycle change, a concurrent change).
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store error in API");
                (StatusCode::INTERNAL_SERVER_ERROR, "store error".to_string())
            }
        };
        (code, Json(json!({ "error": msg }))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, AppError>;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(device))
        .route("/api/v1/devices/{id}/consumables", get(device_consumables))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/work-orders", get(work_orders))
        .route("/api/v1/work-orders/{id}", get(work_order))
        .route(
            "/api/v1/work-orders/{id}/transitions",
            post(transition_work_order),
        )
        .route("/api/v1/work-orders/{id}/events", get(work_order_events))
        .route("/api/v1/work-orders/{id}/comments", post(comment_work_order))
        .route("/api/v1/work-orders/{id}/rating", post(rate_work_order))
        .route("/api/v1/reports/causes", get(report_causes))
        .route("/api/v1/reports/service", get(report_service))
        .route("/api/v1/reminders", get(reminders))
        .route(
            "/api/v1/customers/{id}/reminder-settings",
            get(get_reminder_settings).put(put_reminder_settings),
        )
        .route("/api/v1/technicians", get(technicians))
        .route("/api/v1/technicians/{name}", put(put_technician))
        .route("/api/v1/devices/{id}/location", put(put_location))
        .route_layer(axum::middleware::from_fn_with_state(
            state.store.clone(),
            crate::auth::authenticate,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(api)
        .with_state(state)
}

/// The device `id` if `caller` may see it; else, as when there is none, 404.
async fn visible_device(s: &AppState, caller: &Caller, id: &str) -> Result<DeviceRow, AppError> {
    let not_found = || AppError::NotFound(format!("no device `{id}`"));
    let row = s.store.device(id).await?.ok_or_else(not_found)?;
    let assignees = match caller.access {
        Access::Technician(_) => s.store.device_assignees(id).await?,
        _ => Vec::new(),
    };
    let facts = DeviceFacts {
        owner: row.customer_id,
        assignees: &assignees,
    };
    if policy::may_see_device(caller, facts) {
        Ok(row)
    } else {
        Err(not_found())
    }
}

/// The work order `id` and the owner of its device, if `caller` may see
/// it; else, as when there is none, 404.
async fn visible_order(
    s: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(WorkOrderRow, Option<i64>), AppError> {
    let not_found = || AppError::NotFound(format!("no work order {id}"));
    let row = s.store.work_order(id).await?.ok_or_else(not_found)?;
    let owner = match caller.access {
        Access::Customer(_) => s.store.device(&row.device_id).await?.and_then(|d| d.customer_id),
        _ => None,
    };
    let facts = OrderFacts {
        device_owner: owner,
        assignee: row.assignee.as_deref(),
    };
    if policy::may_see_order(caller, facts) {
        Ok((row, owner))
    } else {
        Err(not_found())
    }
}

/// 200 while the hub can do its job (store up, ingest subscribed), else 503.
/// `status` is `degraded` as soon as any dependency is down, InfluxDB
/// included: the hub goes on without it, so it does not make a 503.
async fn health(State(s): State<AppState>) -> Response {
    let store_ok = s.store.ping().await.is_ok();
    let ingest = s.stats.snapshot();
    let ok = store_ok && ingest.broker_connected;
    let influx = s.influx.as_ref().map(|h| h.stats().snapshot());
    let influx_ok = influx.as_ref().is_none_or(|i| i.state == "ok");
    let mut body = json!({
        "status": if ok && influx_ok { "ok" } else { "degraded" },
        "store": if store_ok { "ok" } else { "down" },
        "store_backend": s.store.backend().as_str(),
        "broker": if ingest.broker_connected { "connected" } else { "disconnected" },
        "ingest": ingest,
    });
    if let (Some(i), Value::Object(m)) = (influx, &mut body) {
        m.insert("influx".into(), serde_json::to_value(i).unwrap_or(Value::Null));
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition of the ingest and InfluxDB counters.
async fn metrics(State(s): State<AppState>) -> Response {
    let influx = s.influx.as_ref().map(|h| h.stats().snapshot());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&s.stats, influx.as_ref()),
    )
        .into_response()
}

#[derive(Serialize)]
struct DeviceView {
    #[serde(flatten)]
    row: DeviceRow,
    last_seen: String,
    /// Text fields read from the device (serial number, firmware…).
    attributes: Value,
}

impl From<DeviceRow> for DeviceView {
    fn from(row: DeviceRow) -> Self {
        DeviceView {
            last_seen: rfc3339(row.last_seen_ms),
            attributes: serde_json::from_str(&row.attributes).unwrap_or_else(|_| json!({})),
            row,
        }
    }
}

#[derive(Serialize)]
struct ConsumableView {
    #[serde(flatten)]
    row: ConsumableRow,
    life_start: String,
    as_of: String,
    remaining_days: Option<f64>,
    predicted_end_of_life: Option<String>,
    /// Predicted end of life, low and high ends of the interval (`coverage` two-sided).
    interval: (Option<String>, Option<String>),
    /// The same interval as remaining days from the prediction's time.
    remaining_days_interval: (Option<f64>, Option<f64>),
    /// How sure the figure is: `high` when the interval spans at most ±15 %
    /// of the remaining life, `medium` up to ±40 %, else `low`.
    confidence: Option<&'static str>,
    /// The prediction and the data behind it.
    explanation: Value,
}

impl From<ConsumableRow> for ConsumableView {
    fn from(row: ConsumableRow) -> Self {
        let days = |end: Option<i64>| end.map(|e| (e - row.as_of_ms) as f64 / 86_400_000.0);
        let remaining = days(row.end_of_life_ms);
        let (lo, hi) = (days(row.eol_low_ms), days(row.eol_high_ms));
        let confidence = remaining.map(|r| match hi {
            Some(h) if r > 0.0 => {
                let half = (h - lo.unwrap_or(0.0)) / 2.0 / r;
                if half <= 0.15 {
                    "high"
                } else if half <= 0.4 {
                    "medium"
                } else {
                    "low"
                }
            }
            Some(_) => "high",
            None => "low",
        });
        ConsumableView {
            life_start: rfc3339(row.life_start_ms),
            as_of: rfc3339(row.as_of_ms),
            remaining_days: remaining,
            predicted_end_of_life: row.end_of_life_ms.map(rfc3339),
            interval: (row.eol_low_ms.map(rfc3339), row.eol_high_ms.map(rfc3339)),
            remaining_days_interval: (lo, hi),
            confidence,
            explanation: serde_json::from_str(&row.explanation).unwrap_or(Value::Null),
            row,
        }
    }
}

#[derive(Serialize)]
struct WorkOrderView {
    #[serde(flatten)]
    row: WorkOrderRow,
    opened_at: String,
    predicted_end_of_life: Option<String>,
    respond_by: String,
    resolve_by: String,
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
            parts: serde_json::from_str(&row.parts).unwrap_or(Value::Null),
            explanation: explanation_json,
            row,
        }
    }
}

#[derive(Serialize)]
struct EventView {
    #[serde(flatten)]
    row: WorkOrderEvent,
    at: String,
    detail: Value,
}

async fn devices(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<DeviceView>> {
    Ok(Json(
        s.store
            .devices_in(&caller.scope())
            .await?
            .into_iter()
            .map(DeviceView::from)
            .collect(),
    ))
}

async fn device(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let row = visible_device(&s, &caller, &id).await?;
    let consumables: Vec<ConsumableView> = s
        .store
        .consumables(&id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let mut v = serde_json::to_value(DeviceView::from(row)).unwrap_or(Value::Null);
    let latest = s
        .store
        .latest_sample(&id)
        .await?
        .map(|(ts_ms, values)| json!({"ts_ms": ts_ms, "ts": rfc3339(ts_ms), "values": values}));
    if let Value::Object(m) = &mut v {
        m.insert(
            "consumables".into(),
            serde_json::to_value(consumables).unwrap_or(Value::Null),
        );
        m.insert("latest".into(), latest.unwrap_or(Value::Null));
    }
    Ok(Json(v))
}

/// The consumables of one device: remaining life, interval, predicted end of
/// life, confidence and the model behind each prediction.
async fn device_consumables(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Vec<ConsumableView>> {
    visible_device(&s, &caller, &id).await?;
    Ok(Json(
        s.store
            .consumables(&id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Serialize)]
struct AlertView {
    #[serde(flatten)]
    row: AlertRow,
    opened_at: String,
    cleared_at: Option<String>,
    detail: Value,
}

#[derive(serde::Deserialize)]
struct AlertQuery {
    /// `open` for the open ones only.
    state: Option<String>,
}

/// Alerts, newest first: raised at the edge, by a gateway's last will, or by
/// a device's silence. `?state=open` lists the open ones.
async fn alerts(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Vec<AlertView>> {
    let open_only = match q.state.as_deref() {
        None | Some("all") => false,
        Some("open") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "state `{other}`: expected `open` or `all`"
            )));
        }
    };
    Ok(Json(
        s.store
            .alerts_in(open_only, &caller.scope())
            .await?
            .into_iter()
            .map(|row| AlertView {
                opened_at: rfc3339(row.opened_ms),
                cleared_at: row.cleared_ms.map(rfc3339),
                detail: serde_json::from_str(&row.detail).unwrap_or(Value::Null),
                row,
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkOrderQuery {
    status: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    /// Orders with an id above this (the last id of the previous page).
    after: Option<i64>,
    limit: Option<i64>,
}

/// Most orders in one page, and the default.
const PAGE_MAX: i64 = 500;
const PAGE_DEFAULT: i64 = 100;

async fn work_orders(
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
struct TransitionRequest {
    /// `assign`, `start`, `resolve`, `close`, `reopen` or `cancel`.
    action: String,
    /// `assign`: the technician.
    assignee: Option<String>,
    note: Option<String>,
    /// `resolve`: the parts used.
    #[serde(default)]
    parts: Vec<String>,
}

/// Applies a lifecycle change: 200 with the order, 409 with the reason when
/// the lifecycle refuses it or the order changed meanwhile, 403 when the
/// caller's role may not make it. The trail names the caller (`Caller::actor`).
async fn transition_work_order(
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
    let change = Change {
        action,
        actor: caller.actor(),
        assignee: req.assignee.as_deref(),
        note: req.note.as_deref(),
        parts: &req.parts,
        at_ms: crate::clock::wall_ms(),
    };
    match s.store.change_work_order(id, &change).await {
        Ok(row) => Ok(Json(row.into())),
        Err(ChangeError::NotFound(id)) => Err(AppError::NotFound(format!("no work order {id}"))),
        Err(ChangeError::NoAssignee) => Err(AppError::BadRequest("`assign` needs an `assignee`".into())),
        Err(ChangeError::Store(e)) => Err(AppError::Store(e)),
        Err(e) => Err(AppError::Conflict(e.to_string())),
    }
}

async fn work_order_events(
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

async fn work_order(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<WorkOrderView> {
    let (row, _) = visible_order(&s, &caller, id).await?;
    Ok(Json(row.into()))
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, AppError> {
    b.map(|Json(t)| t)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentRequest {
    text: String,
}

/// A comment in the trail, by anyone who may see the order; answers the trail.
async fn comment_work_order(
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

/// 403 unless the caller runs the service.
fn managers_only(caller: &Caller) -> Result<(), AppError> {
    if policy::may_manage(caller) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "a {} token may not do this: managers and admins only",
            caller.role().as_str()
        )))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    /// 1 to 5.
    stars: i64,
    comment: Option<String>,
}

/// The customer rates the visit: stored with the order; a resolved order
/// is closed by it.
async fn rate_work_order(
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

#[derive(Serialize)]
struct TechnicianView {
    #[serde(flatten)]
    row: TechnicianRow,
    skills: Vec<String>,
}

async fn technicians(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<TechnicianView>> {
    managers_only(&caller)?;
    Ok(Json(
        s.store
            .technicians()
            .await?
            .into_iter()
            .map(|row| TechnicianView {
                skills: serde_json::from_str(&row.skills).unwrap_or_default(),
                row,
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TechnicianRequest {
    skills: Vec<String>,
    latitude: f64,
    longitude: f64,
    capacity: i64,
    /// Working hours, local: `[start, end)` hours of day (`[8, 17]`); equal
    /// bounds: around the clock.
    shift: [i64; 2],
    #[serde(default)]
    utc_offset_minutes: i64,
    #[serde(default = "yes")]
    active: bool,
}

const fn yes() -> bool {
    true
}

/// Adds a technician or replaces their details.
async fn put_technician(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: Result<Json<TechnicianRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<TechnicianView> {
    managers_only(&caller)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if name.trim().is_empty() || name.len() > 64 {
        return bad("a technician's name is 1 to 64 characters".into());
    }
    if req.skills.is_empty() || req.skills.iter().any(|k| k.trim().is_empty()) {
        return bad("`skills`: at least one, none empty (a cause such as `consumable:filter`, `consumable:*`, or `*`)".into());
    }
    if !(-90.0..=90.0).contains(&req.latitude) || !(-180.0..=180.0).contains(&req.longitude) {
        return bad("`latitude` is -90 to 90 and `longitude` -180 to 180".into());
    }
    if !(1..=1000).contains(&req.capacity) {
        return bad("`capacity` is 1 to 1000 orders".into());
    }
    if req.shift.iter().any(|h| !(0..=24).contains(h)) {
        return bad("`shift` hours are 0 to 24".into());
    }
    if !(-14 * 60..=14 * 60).contains(&req.utc_offset_minutes) {
        return bad("`utc_offset_minutes` is -840 to 840".into());
    }
    let row = TechnicianRow {
        name: name.clone(),
        skills: serde_json::to_string(&req.skills).unwrap_or_else(|_| "[]".into()),
        latitude: req.latitude,
        longitude: req.longitude,
        capacity: req.capacity,
        shift_start: req.shift[0] % 24,
        shift_end: req.shift[1] % 24,
        utc_offset_minutes: req.utc_offset_minutes,
        active: i64::from(req.active),
        load: 0,
    };
    s.store.upsert_technician(&row).await?;
    let row = s
        .store
        .technicians()
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| AppError::NotFound(format!("no technician {name}")))?;
    Ok(Json(TechnicianView {
        skills: req.skills,
        row,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationRequest {
    latitude: f64,
    longitude: f64,
}

/// Where a device is (for dispatch by distance).
async fn put_location(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    req: Result<Json<LocationRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Value> {
    managers_only(&caller)?;
    let req = body(req)?;
    if !(-90.0..=90.0).contains(&req.latitude) || !(-180.0..=180.0).contains(&req.longitude) {
        return Err(AppError::BadRequest(
            "`latitude` is -90 to 90 and `longitude` -180 to 180".into(),
        ));
    }
    if !s
        .store
        .set_device_location(&id, req.latitude, req.longitude)
        .await?
    {
        return Err(AppError::NotFound(format!("no device {id}")));
    }
    Ok(Json(
        json!({"device": id, "latitude": req.latitude, "longitude": req.longitude}),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CausesQuery {
    /// Causes per model and month (default 5).
    top: Option<usize>,
}

/// The top causes of work orders per device model and month.
async fn report_causes(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<CausesQuery>,
) -> ApiResult<Vec<wearline_models::reports::MonthCauses>> {
    managers_only(&caller)?;
    let top = q.top.unwrap_or(5);
    if !(1..=100).contains(&top) {
        return Err(AppError::BadRequest(format!("top {top}: expected 1 to 100")));
    }
    let (orders, _) = s.store.report_facts().await?;
    Ok(Json(wearline_models::reports::top_causes(&orders, top)))
}

/// MTBF, first-time-fix rate and service-level compliance per device
/// model, and overall (`*`).
async fn report_service(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<wearline_models::reports::ServiceFigures>> {
    managers_only(&caller)?;
    let (orders, devices) = s.store.report_facts().await?;
    Ok(Json(wearline_models::reports::service_figures(
        &orders,
        &devices,
        crate::clock::wall_ms(),
    )))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemindersQuery {
    limit: Option<i64>,
}

#[derive(Serialize)]
struct ReminderView {
    #[serde(flatten)]
    row: crate::store::ReminderRow,
    created_at: String,
    sent_at: Option<String>,
}

/// Reminders, newest first: a customer's own; everyone's for managers.
async fn reminders(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RemindersQuery>,
) -> ApiResult<Vec<ReminderView>> {
    let customer = match caller.access {
        Access::Customer(c) => Some(c),
        Access::Admin | Access::Manager => None,
        Access::Technician(_) => {
            return Err(AppError::Forbidden(
                "reminders are the customers' and their service managers'".into(),
            ));
        }
    };
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit {limit}: expected 1 to {PAGE_MAX}"
        )));
    }
    Ok(Json(
        s.store
            .reminders(customer, limit)
            .await?
            .into_iter()
            .map(|row| ReminderView {
                created_at: rfc3339(row.created_ms),
                sent_at: row.sent_ms.map(rfc3339),
                row,
            })
            .collect(),
    ))
}

/// The customer `id` if the caller may manage their reminders: the
/// customer themselves or a manager; another customer gets 404.
fn settings_access(caller: &Caller, id: i64) -> Result<(), AppError> {
    match caller.access {
        Access::Admin | Access::Manager => Ok(()),
        Access::Customer(c) if c == id => Ok(()),
        Access::Customer(_) => Err(AppError::NotFound(format!("no customer {id}"))),
        Access::Technician(_) => Err(AppError::Forbidden(
            "reminder settings are the customers' and their service managers'".into(),
        )),
    }
}

async fn get_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<crate::store::ReminderSettings> {
    settings_access(&caller, id)?;
    Ok(Json(s.store.reminder_settings(id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    /// `portal` and/or `webhook`.
    channels: Vec<String>,
    /// Days of life left at which to remind (default 30, 7, 0).
    points: Option<Vec<f64>>,
    /// Local `[start, end)` hours; equal: none (default 21 to 8).
    quiet_hours: Option<[i64; 2]>,
    #[serde(default)]
    utc_offset_minutes: i64,
    #[serde(default)]
    opted_out: bool,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
}

/// Sets a customer's reminder settings (replacing them).
async fn put_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    req: Result<Json<SettingsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<crate::store::ReminderSettings> {
    settings_access(&caller, id)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if let Some(c) = req
        .channels
        .iter()
        .find(|c| !crate::store::CHANNELS.contains(&c.as_str()))
    {
        return bad(format!(
            "channel `{c}`: expected {} (e-mail and the appliance's indicator are not available yet)",
            crate::store::CHANNELS.join(" or ")
        ));
    }
    let defaults = crate::store::ReminderSettings::defaults(id);
    let points = req.points.unwrap_or(defaults.points);
    if points.is_empty() || points.len() > 10 || points.iter().any(|p| !(0.0..=3650.0).contains(p)) {
        return bad("`points`: 1 to 10 numbers of days, 0 to 3650".into());
    }
    let quiet = req.quiet_hours.unwrap_or(defaults.quiet_hours);
    if quiet.iter().any(|h| !(0..=24).contains(h)) {
        return bad("`quiet_hours`: two hours of day, 0 to 24".into());
    }
    if !(-14 * 60..=14 * 60).contains(&req.utc_offset_minutes) {
        return bad("`utc_offset_minutes` is -840 to 840".into());
    }
    if req.channels.iter().any(|c| c == "webhook") {
        let url_ok = req
            .webhook_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
        if !url_ok {
            return bad("`webhook` needs `webhook_url`, an http(s) URL".into());
        }
        if req.webhook_secret.as_deref().is_none_or(|k| k.len() < 16) {
            return bad("`webhook` needs `webhook_secret`, at least 16 characters".into());
        }
    }
    if s.store.customers().await?.iter().all(|c| c.id != id) {
        return Err(AppError::NotFound(format!("no customer {id}")));
    }
    let settings = crate::store::ReminderSettings {
        customer_id: id,
        channels: req.channels,
        points,
        quiet_hours: quiet,
        utc_offset_minutes: req.utc_offset_minutes,
        opted_out: req.opted_out,
        webhook_url: req.webhook_url,
        webhook_secret: req.webhook_secret,
    };
    s.store.put_reminder_settings(&settings).await?;
    Ok(Json(settings))
}
