//! `/health` and `/metrics`: open to probes and Prometheus, no token.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// 200 while the hub can do its job (store up, ingest subscribed), else 503.
/// `status` is `degraded` as soon as any dependency is down, InfluxDB
/// included: the hub goes on without it, so it does not make a 503.
pub(super) async fn health(State(s): State<AppState>) -> Response {
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
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let influx = s.influx.as_ref().map(|h| h.stats().snapshot());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&s.stats, influx.as_ref()),
    )
        .into_response()
}
