//! The REST API: devices, their consumables, work orders, health and
//! Prometheus metrics.
//!
//! `router(state)` is kept apart from serving so handlers can be tested with
//! `oneshot` requests; `serve` runs it on a listener.

use crate::influx::InfluxHandle;
use crate::ingest::IngestStats;
use crate::store::{AlertRow, ConsumableRow, DeviceRow, Store, StoreError, WorkOrderRow};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use wearline_models::time::rfc3339;

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
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(device))
        .route("/api/v1/devices/{id}/consumables", get(device_consumables))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/work-orders", get(work_orders))
        .route("/api/v1/work-orders/{id}", get(work_order))
        .with_state(state)
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
    explanation: Value,
}

impl From<WorkOrderRow> for WorkOrderView {
    fn from(row: WorkOrderRow) -> Self {
        let explanation_json = serde_json::from_str(&row.explanation).unwrap_or(Value::Null);
        WorkOrderView {
            opened_at: rfc3339(row.opened_at_ms),
            predicted_end_of_life: row.predicted_eol_ms.map(rfc3339),
            explanation: explanation_json,
            row,
        }
    }
}

async fn devices(State(s): State<AppState>) -> ApiResult<Vec<DeviceView>> {
    Ok(Json(
        s.store
            .devices()
            .await?
            .into_iter()
            .map(DeviceView::from)
            .collect(),
    ))
}

async fn device(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Value> {
    let row = s
        .store
        .device(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no device `{id}`")))?;
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
    Path(id): Path<String>,
) -> ApiResult<Vec<ConsumableView>> {
    if s.store.device(&id).await?.is_none() {
        return Err(AppError::NotFound(format!("no device `{id}`")));
    }
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
async fn alerts(State(s): State<AppState>, Query(q): Query<AlertQuery>) -> ApiResult<Vec<AlertView>> {
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
            .alerts(open_only)
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

async fn work_orders(State(s): State<AppState>) -> ApiResult<Vec<WorkOrderView>> {
    Ok(Json(
        s.store
            .work_orders()
            .await?
            .into_iter()
            .map(WorkOrderView::from)
            .collect(),
    ))
}

async fn work_order(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<WorkOrderView> {
    let row = s
        .store
        .work_order(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no work order {id}")))?;
    Ok(Json(row.into()))
}
