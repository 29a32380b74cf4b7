//! Devices, their consumables and alerts, and where a device is.

use super::{ApiResult, AppError, AppState, body, managers_only, visible_device};
use crate::policy::Caller;
use crate::store::{AlertRow, ConsumableRow, DeviceRow};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Serialize;
use serde_json::{Value, json};
use wearline_models::time::rfc3339;

#[derive(Serialize)]
pub(super) struct DeviceView {
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

pub(super) async fn device(
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
pub(super) async fn device_consumables(
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
pub(super) struct AlertView {
    #[serde(flatten)]
    row: AlertRow,
    opened_at: String,
    cleared_at: Option<String>,
    detail: Value,
}

#[derive(serde::Deserialize)]
pub(super) struct AlertQuery {
    /// `open` for the open ones only.
    state: Option<String>,
}

/// Alerts, newest first: raised at the edge, by a gateway's last will, or by
/// a device's silence. `?state=open` lists the open ones.
pub(super) async fn alerts(
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
pub(super) struct LocationRequest {
    latitude: f64,
    longitude: f64,
}

/// Where a device is (for dispatch by distance).
pub(super) async fn put_location(
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
