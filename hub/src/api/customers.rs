//! Customers: the service manager's list, and a customer's own record.
//! Customers are added and given devices with the `wearline customer` CLI.

use super::{ApiPath, ApiResult, AppError, AppState, ErrorBody};
use crate::policy::{Access, Caller};
use crate::store::CustomerRow;
use axum::Json;
use axum::extract::{Extension, State};

/// 403 for a technician: customers are their own and their service
/// managers' business.
fn not_technicians(caller: &Caller) -> Result<(), AppError> {
    match caller.access {
        Access::Technician(_) => Err(AppError::Forbidden(
            "customers are the service managers' (and their own)".into(),
        )),
        _ => Ok(()),
    }
}

/// Every customer, by name, for managers; a customer's token lists only
/// its own record.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    responses(
        (status = 200, description = "Customers, by name", body = Vec<CustomerRow>),
        (status = 403, description = "A technician", body = ErrorBody),
    )
)]
pub(super) async fn customers(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<CustomerRow>> {
    not_technicians(&caller)?;
    let all = s.store.customers().await?;
    Ok(Json(match caller.access {
        Access::Customer(me) => all.into_iter().filter(|c| c.id == me).collect(),
        _ => all,
    }))
}

/// One customer: any for managers, only its own for a customer (another's
/// is a 404, as if it did not exist).
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = i64, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The customer", body = CustomerRow),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 403, description = "A technician", body = ErrorBody),
        (status = 404, description = "No such customer, or not the caller", body = ErrorBody),
    )
)]
pub(super) async fn customer(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<CustomerRow> {
    not_technicians(&caller)?;
    let not_found = || AppError::NotFound(format!("no customer {id}"));
    if matches!(caller.access, Access::Customer(me) if me != id) {
        return Err(not_found());
    }
    s.store
        .customers()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .map(Json)
        .ok_or_else(not_found)
}
