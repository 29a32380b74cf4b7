//! Prometheus metrics of the agent, on an optional listen address:
//! `GET /metrics` (text exposition format) and `GET /health`.
//!
//! Metric names are defined once, here. Rendering is a pure function of the
//! counters, so it is tested without a server.

use crate::run::AgentStats;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

const SAMPLES: &str = "wearline_agent_samples_total";
const PUBLISHED: &str = "wearline_agent_samples_confirmed_total";
const POLL_ERRORS: &str = "wearline_agent_poll_errors_total";
const DECODE_ERRORS: &str = "wearline_agent_decode_errors_total";
const INPUT_ERRORS: &str = "wearline_agent_mqtt_input_errors_total";
const BUFFER_ERRORS: &str = "wearline_agent_buffer_errors_total";
const UPLINK_UP: &str = "wearline_agent_uplink_connected";
const QUEUE_DEPTH: &str = "wearline_agent_queue_depth";
const QUEUE_BYTES: &str = "wearline_agent_queue_bytes";
const QUEUE_OLDEST: &str = "wearline_agent_queue_oldest_age_seconds";
const QUEUE_EVICTED: &str = "wearline_agent_queue_evicted_total";
const QUEUE_CORRUPT: &str = "wearline_agent_queue_corrupt_records_total";
const CONFIGS: &str = "wearline_agent_pushed_configs_total";
const ALERTS: &str = "wearline_agent_alerts_total";
const DEVICE_POLLS: &str = "wearline_agent_device_polls_total";
const DEVICE_LAST_OK: &str = "wearline_agent_device_last_ok_timestamp_seconds";

/// Renders every metric; `now_ms` dates the queue's oldest entry.
pub fn render(stats: &AgentStats, now_ms: i64) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let n = |a: &std::sync::atomic::AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed) as f64)];
    metric(
        SAMPLES,
        "counter",
        "Samples taken from devices.",
        &n(&stats.samples),
    );
    metric(
        ALERTS,
        "counter",
        "Alert changes (opened, raised, cleared) from the edge detectors.",
        &n(&stats.alerts),
    );
    metric(
        CONFIGS,
        "counter",
        "Configs pushed by the hub, by outcome.",
        &[
            (
                "{outcome=\"applied\"}".to_string(),
                stats.configs_applied.load(Ordering::Relaxed) as f64,
            ),
            (
                "{outcome=\"refused\"}".to_string(),
                stats.configs_refused.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    metric(
        PUBLISHED,
        "counter",
        "Samples the broker has acknowledged.",
        &n(&stats.published),
    );
    metric(
        POLL_ERRORS,
        "counter",
        "Polls that yielded no sample.",
        &n(&stats.poll_errors),
    );
    metric(
        DECODE_ERRORS,
        "counter",
        "Fields that could not be decoded.",
        &n(&stats.decode_errors),
    );
    metric(
        INPUT_ERRORS,
        "counter",
        "MQTT input payloads that did not map.",
        &n(&stats.input_errors),
    );
    metric(
        BUFFER_ERRORS,
        "counter",
        "Entries the disk queue could not take or give back.",
        &n(&stats.buffer_errors),
    );
    let up = f64::from(u8::from(stats.uplink_connected.load(Ordering::Relaxed)));
    metric(
        UPLINK_UP,
        "gauge",
        "1 while the uplink is connected.",
        &[(String::new(), up)],
    );
    let q = &stats.queue;
    metric(
        QUEUE_DEPTH,
        "gauge",
        "Entries queued on disk, not yet acknowledged.",
        &n(&q.depth),
    );
    metric(
        QUEUE_BYTES,
        "gauge",
        "Bytes of queue segment files.",
        &n(&q.bytes),
    );
    let oldest = q.oldest_ms.load(Ordering::Relaxed);
    let age = if oldest > 0 {
        ((now_ms - oldest).max(0) as f64) / 1000.0
    } else {
        0.0
    };
    metric(
        QUEUE_OLDEST,
        "gauge",
        "Age of the oldest queued entry.",
        &[(String::new(), age)],
    );
    metric(
        QUEUE_EVICTED,
        "counter",
        "Queued entries dropped by the size or age bound.",
        &n(&q.evicted),
    );
    metric(
        QUEUE_CORRUPT,
        "counter",
        "Damaged queue records skipped.",
        &n(&q.corrupt),
    );
    let mut polls = Vec::new();
    let mut last = Vec::new();
    let devices = crate::run::lock(&stats.devices);
    for (id, d) in devices.iter() {
        polls.push((
            format!("{{device=\"{id}\",result=\"ok\"}}"),
            d.ok.load(Ordering::Relaxed) as f64,
        ));
        polls.push((
            format!("{{device=\"{id}\",result=\"error\"}}"),
            d.errors.load(Ordering::Relaxed) as f64,
        ));
        last.push((
            format!("{{device=\"{id}\"}}"),
            d.last_ok_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ));
    }
    metric(DEVICE_POLLS, "counter", "Polls per device and result.", &polls);
    metric(
        DEVICE_LAST_OK,
        "gauge",
        "Sample time of the device's last good read.",
        &last,
    );
    out
}

/// Serves `/metrics` and `/health` on `listener` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<AgentStats>,
    now_ms: impl Fn() -> i64 + Clone + Send + Sync + 'static,
    cancel: CancellationToken,
) {
    // The agent's own probe listener, not the hub's documented API.
    #[allow(clippy::disallowed_methods)]
    let app = Router::new()
        .route(
            "/metrics",
            get(move |State(s): State<Arc<AgentStats>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render(&s, now_ms()),
                )
            }),
        )
        .route(
            "/health",
            get(|State(s): State<Arc<AgentStats>>| async move {
                if s.uplink_connected.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok\n").into_response()
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "uplink down; data is queued on disk\n",
                    )
                        .into_response()
                }
            }),
        )
        .with_state(stats);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::DeviceCounters;

    #[test]
    fn renders_counters_and_devices() {
        let d = Arc::new(DeviceCounters::default());
        d.ok.store(7, Ordering::Relaxed);
        d.last_ok_ms.store(5_000, Ordering::Relaxed);
        let stats = AgentStats {
            devices: std::collections::BTreeMap::from([("dev-1".to_string(), d)]).into(),
            ..AgentStats::default()
        };
        stats.samples.store(42, Ordering::Relaxed);
        stats.queue.oldest_ms.store(1_000, Ordering::Relaxed);
        let text = render(&stats, 3_500);
        assert!(text.contains("\nwearline_agent_samples_total 42\n"), "{text}");
        assert!(
            text.contains("wearline_agent_device_polls_total{device=\"dev-1\",result=\"ok\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("wearline_agent_device_last_ok_timestamp_seconds{device=\"dev-1\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("wearline_agent_queue_oldest_age_seconds 2.5"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE wearline_agent_uplink_connected gauge"),
            "{text}"
        );
    }
}
