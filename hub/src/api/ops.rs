//! `/health`, `/metrics` and the OpenAPI document: open to probes,
//! Prometheus and API clients, no token.

use super::{AppState, DocumentJson};
use crate::influx::InfluxSnapshot;
use crate::ingest::IngestSnapshot;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

/// The hub's state, as `/health` answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HealthView {
    /// `ok`, or `degraded` as soon as any dependency is down.
    #[schema(inline, value_type = HealthStatus)]
    status: &'static str,
    /// `ok` or `down`.
    #[schema(inline, value_type = UpDown)]
    store: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(inline, value_type = crate::store::Backend)]
    store_backend: &'static str,
    /// `connected` or `disconnected`.
    #[schema(inline, value_type = BrokerState)]
    broker: &'static str,
    ingest: IngestSnapshot,
    /// The downsampled history, when the store answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<HistoryView>,
    /// The InfluxDB sink, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    influx: Option<InfluxSnapshot>,
}

/// The merge of stored samples into the 1-minute and 1-hour history.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HistoryView {
    /// Points stored and not yet merged: a figure that keeps growing is a
    /// rate the history does not sustain (raw samples stay current).
    backlog_points: i64,
}

// Schema-only enums: the words `/health` uses.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum UpDown {
    Ok,
    Down,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum BrokerState {
    Connected,
    Disconnected,
}

/// The store, the broker and the ingest counters.
///
/// 200 while the hub can do its job (store up, ingest subscribed), else 503.
/// `status` is `degraded` as soon as any dependency is down, InfluxDB
/// included: the hub goes on without it, so it does not make a 503.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses(
        (status = 200, description = "The hub can do its job", body = HealthView),
        (status = 503, description = "The store is down or ingest is not subscribed", body = HealthView),
    )
)]
pub(super) async fn health(State(s): State<AppState>) -> Response {
    let store_ok = s.store.ping().await.is_ok();
    let history = match store_ok {
        true => s.store.rollup_backlog_points().await.ok(),
        false => None,
    }
    .map(|backlog_points| HistoryView { backlog_points });
    let ingest = s.stats.snapshot();
    let ok = store_ok && ingest.broker_connected;
    let influx = s.influx.as_ref().map(|h| h.stats().snapshot());
    let influx_ok = influx.as_ref().is_none_or(|i| i.state == "ok");
    let body = HealthView {
        status: if ok && influx_ok { "ok" } else { "degraded" },
        store: if store_ok { "ok" } else { "down" },
        store_backend: s.store.backend().as_str(),
        broker: if ingest.broker_connected {
            "connected"
        } else {
            "disconnected"
        },
        ingest,
        history,
        influx,
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus counters: ingest, drops by reason, work orders, lives,
/// alerts, and the InfluxDB sink when configured.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
         content_type = "text/plain", body = String),
    )
)]
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let influx = s.influx.as_ref().map(|h| h.stats().snapshot());
    let backlog = s.store.rollup_backlog_points().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&s.stats, backlog, influx.as_ref()),
    )
        .into_response()
}

/// This document (OpenAPI 3.1), generated from the code. No token: clients
/// and tools fetch it before they have one, and it holds no data.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "ops",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json",
         body = Object),
    )
)]
pub(super) async fn openapi_json(Extension(doc): Extension<DocumentJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}
