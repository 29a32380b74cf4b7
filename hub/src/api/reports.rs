//! Reports for R&D and the service manager.

use super::{ApiResult, AppError, AppState, managers_only};
use crate::policy::Caller;
use axum::Json;
use axum::extract::{Extension, Query, State};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CausesQuery {
    /// Causes per model and month (default 5).
    top: Option<usize>,
}

/// The top causes of work orders per device model and month.
pub(super) async fn report_causes(
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
pub(super) async fn report_service(
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
