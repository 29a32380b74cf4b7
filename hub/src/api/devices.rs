//! Devices, their consumables and alerts, and where a device is.

use super::{
    ApiPath, ApiQuery, ApiResult, AppError, AppState, ErrorBody, body, managers_only, visible_device,
};
use crate::policy::Caller;
use crate::store::{AlertRow, ConsumableRow, DeviceRow};
use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use wearline_models::time::rfc3339;

/// A device: its counters, owner and criticality.
#[derive(Serialize, ToSchema)]
pub(super) struct DeviceView {
    #[serde(flatten)]
    row: DeviceRow,
    /// RFC 3339.
    last_seen: String,
    /// Text fields read from the device (serial number, firmware…).
    #[schema(value_type = Object)]
    attributes: Value,
}

/// One device with its consumables and its latest sample.
#[derive(Serialize, ToSchema)]
pub(super) struct DeviceDetail {
    #[serde(flatten)]
    device: DeviceView,
    consumables: Vec<ConsumableView>,
    /// The latest sample stored; `null` before any.
    latest: Option<LatestSample>,
}

/// A device's latest sample.
#[derive(Serialize, ToSchema)]
pub(super) struct LatestSample {
    ts_ms: i64,
    /// RFC 3339.
    ts: String,
    /// The sample as the agent sent it.
    values: Value,
}

/// How sure a prediction is (schema only: the words `confidence` takes).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum Confidence {
    High,
    Medium,
    Low,
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

/// A consumable's current life and prediction.
#[derive(Serialize, ToSchema)]
pub(super) struct ConsumableView {
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
    #[schema(value_type = Option<Confidence>)]
    confidence: Option<&'static str>,
    /// The prediction and the data behind it.
    #[schema(value_type = Option<Object>)]
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

/// The devices the caller sees.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    responses((status = 200, description = "Devices, by id", body = Vec<DeviceView>))
)]
pub(super) async fn devices(
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

/// One device, with each consumable's remaining life and its latest sample.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "devices",
    params(("id" = String, Path, description = "The device's id")),
    responses(
        (status = 200, description = "The device", body = DeviceDetail),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn device(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<DeviceDetail> {
    let row = visible_device(&s, &caller, &id).await?;
    let consumables = s
        .store
        .consumables(&id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let latest = s
        .store
        .latest_sample(&id)
        .await?
        .map(|(ts_ms, values)| LatestSample {
            ts_ms,
            ts: rfc3339(ts_ms),
            values,
        });
    Ok(Json(DeviceDetail {
        device: row.into(),
        consumables,
        latest,
    }))
}

/// The consumables of one device: remaining life, interval, predicted end of
/// life, confidence and the model behind each prediction.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/consumables",
    tag = "devices",
    params(("id" = String, Path, description = "The device's id")),
    responses(
        (status = 200, description = "Its consumables", body = Vec<ConsumableView>),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn device_consumables(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
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

/// An alert: raised at the edge, by a gateway's last will, or by a device's silence.
#[derive(Serialize, ToSchema)]
pub(super) struct AlertView {
    #[serde(flatten)]
    row: AlertRow,
    /// RFC 3339.
    opened_at: String,
    /// RFC 3339; `null` while open.
    cleared_at: Option<String>,
    /// What the detector saw.
    #[schema(value_type = Option<Object>)]
    detail: Value,
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertQuery {
    /// `open` for the open ones only; `all` (the default) for every alert.
    #[param(inline, value_type = Option<AlertState>)]
    state: Option<String>,
}

/// Which alerts to list (schema only).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum AlertState {
    Open,
    All,
}

/// Alerts, newest first: raised at the edge, by a gateway's last will, or by
/// a device's silence. `?state=open` lists the open ones.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "devices",
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts of the devices the caller sees, newest first", body = Vec<AlertView>),
        (status = 400, description = "A bad `state`", body = ErrorBody),
    )
)]
pub(super) async fn alerts(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AlertQuery>,
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

/// Where a device is.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LocationRequest {
    #[schema(minimum = -90.0, maximum = 90.0)]
    latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    longitude: f64,
}

/// A device's location, as set.
#[derive(Serialize, ToSchema)]
pub(super) struct LocationView {
    device: String,
    latitude: f64,
    longitude: f64,
}

/// Where a device is (for dispatch by distance): managers and admins.
#[utoipa::path(
    put,
    path = "/api/v1/devices/{id}/location",
    tag = "devices",
    params(("id" = String, Path, description = "The device's id")),
    request_body = LocationRequest,
    responses(
        (status = 200, description = "The location, as set", body = LocationView),
        (status = 400, description = "A bad body: coordinates out of range, a missing or unknown field", body = ErrorBody),
        (status = 403, description = "Not a manager or an admin", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(super) async fn put_location(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    req: Result<Json<LocationRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<LocationView> {
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
    Ok(Json(LocationView {
        device: id,
        latitude: req.latitude,
        longitude: req.longitude,
    }))
}
