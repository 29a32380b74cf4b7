//! Reports for R&D and the service manager.

use super::{ApiQuery, ApiResult, AppError, AppState, ErrorBody, managers_only};
use crate::policy::Caller;
use axum::Json;
use axum::extract::{Extension, State};
use wearline_models::reports::{MonthCauses, ServiceFigures};

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CausesQuery {
    /// Causes per model and month (default 5).
    #[param(minimum = 1, maximum = 100)]
    top: Option<usize>,
}

/// The top causes of work orders per device model and month (UTC): managers and admins.
#[utoipa::path(
    get,
    path = "/api/v1/reports/causes",
    tag = "reports",
    params(CausesQuery),
    responses(
        (status = 200, description = "Per model and month, oldest first, the top causes first", body = Vec<MonthCauses>),
        (status = 400, description = "A bad `top`, or an unknown parameter", body = ErrorBody),
        (status = 403, description = "Not a manager or an admin", body = ErrorBody),
    )
)]
pub(super) async fn report_causes(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<CausesQuery>,
) -> ApiResult<Vec<MonthCauses>> {
    managers_only(&caller)?;
    let top = q.top.unwrap_or(5);
    if !(1..=100).contains(&top) {
        return Err(AppError::BadRequest(format!("top {top}: expected 1 to 100")));
    }
    let (orders, _) = s.store.report_facts().await?;
    Ok(Json(wearline_models::reports::top_causes(&orders, top)))
}

/// MTBF, first-time-fix rate and service-level compliance per device
/// model, and overall (`*`): managers and admins.
#[utoipa::path(
    get,
    path = "/api/v1/reports/service",
    tag = "reports",
    responses(
        (status = 200, description = "Per model, then overall (`*`)", body = Vec<ServiceFigures>),
        (status = 403, description = "Not a manager or an admin", body = ErrorBody),
    )
)]
pub(super) async fn report_service(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<ServiceFigures>> {
    managers_only(&caller)?;
    let (orders, devices) = s.store.report_facts().await?;
    Ok(Json(wearline_models::reports::service_figures(
        &orders,
        &devices,
        crate::clock::wall_ms(),
    )))
}
