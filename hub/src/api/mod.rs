//! The REST API: devices, their consumables and telemetry history, work
//! orders, health and Prometheus metrics.
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
use crate::policy::{self, Access, Caller, DeviceFacts, OrderFacts};
use crate::store::{DeviceRow, Retention, Store, StoreError, WorkOrderRow};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub stats: Arc<IngestStats>,
    /// The InfluxDB sink, when configured.
    pub influx: Option<InfluxHandle>,
    /// How long each resolution of the history is kept (for `auto`).
    pub retention: Retention,
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

pub(super) type ApiResult<T> = Result<Json<T>, AppError>;

mod devices;
mod ops;
mod reminders;
mod reports;
mod technicians;
mod telemetry;
mod work_orders;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/devices", get(devices::devices))
        .route("/api/v1/devices/{id}", get(devices::device))
        .route(
            "/api/v1/devices/{id}/consumables",
            get(devices::device_consumables),
        )
        .route("/api/v1/devices/{id}/telemetry", get(telemetry::device_telemetry))
        .route("/api/v1/alerts", get(devices::alerts))
        .route("/api/v1/work-orders", get(work_orders::work_orders))
        .route("/api/v1/work-orders/{id}", get(work_orders::work_order))
        .route(
            "/api/v1/work-orders/{id}/transitions",
            post(work_orders::transition_work_order),
        )
        .route(
            "/api/v1/work-orders/{id}/events",
            get(work_orders::work_order_events),
        )
        .route(
            "/api/v1/work-orders/{id}/comments",
            post(work_orders::comment_work_order),
        )
        .route(
            "/api/v1/work-orders/{id}/rating",
            post(work_orders::rate_work_order),
        )
        .route("/api/v1/reports/causes", get(reports::report_causes))
        .route("/api/v1/reports/service", get(reports::report_service))
        .route("/api/v1/reminders", get(reminders::reminders))
        .route(
            "/api/v1/customers/{id}/reminder-settings",
            get(reminders::get_reminder_settings).put(reminders::put_reminder_settings),
        )
        .route("/api/v1/technicians", get(technicians::technicians))
        .route("/api/v1/technicians/{name}", put(technicians::put_technician))
        .route("/api/v1/devices/{id}/location", put(devices::put_location))
        .route_layer(axum::middleware::from_fn_with_state(
            state.store.clone(),
            crate::auth::authenticate,
        ));
    Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .merge(api)
        .with_state(state)
}

/// The device `id` if `caller` may see it; else, as when there is none, 404.
pub(super) async fn visible_device(s: &AppState, caller: &Caller, id: &str) -> Result<DeviceRow, AppError> {
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
pub(super) async fn visible_order(
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

/// Most orders in one page, and the default.
pub(super) const PAGE_MAX: i64 = 500;
pub(super) const PAGE_DEFAULT: i64 = 100;

/// A JSON body, or a 400 that says what is wrong with it.
pub(super) fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, AppError> {
    b.map(|Json(t)| t)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// 403 unless the caller runs the service.
pub(super) fn managers_only(caller: &Caller) -> Result<(), AppError> {
    if policy::may_manage(caller) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "a {} token may not do this: managers and admins only",
            caller.role().as_str()
        )))
    }
}
