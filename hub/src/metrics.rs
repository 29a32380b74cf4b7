//! The hub's Prometheus metrics, served as `GET /metrics` by the API.
//!
//! Metric names are defined once, here. Rendering is a pure function of the
//! counters' snapshots, so it is tested without a server.

use crate::influx::{DropReason, InfluxSnapshot};
use crate::ingest::IngestStats;
use std::fmt::Write as _;

pub const BROKER_CONNECTED: &str = "wearline_hub_broker_connected";
pub const MESSAGES: &str = "wearline_hub_ingest_messages_total";
pub const SAMPLES: &str = "wearline_hub_ingest_samples_total";
pub const VALUES: &str = "wearline_hub_ingest_values_total";
pub const DUPLICATES: &str = "wearline_hub_ingest_duplicates_total";
pub const UNKNOWN_PROFILE: &str = "wearline_hub_ingest_unknown_profile_total";
pub const STORE_ERRORS: &str = "wearline_hub_ingest_store_errors_total";
pub const MALFORMED: &str = "wearline_hub_ingest_malformed_total";
pub const WORK_ORDERS: &str = "wearline_hub_work_orders_opened_total";
pub const WORK_ORDERS_ESCALATED: &str = "wearline_hub_work_orders_escalated_total";
pub const WORK_ORDERS_VERIFIED: &str = "wearline_hub_work_orders_verified_total";
pub const WORK_ORDERS_REOPENED: &str = "wearline_hub_work_orders_reopened_total";
pub const LIVES_ENDED: &str = "wearline_hub_lives_ended_total";
pub const ALERTS_OPENED: &str = "wearline_hub_alerts_opened_total";
pub const UNKNOWN_DEVICES: &str = "wearline_hub_ingest_unknown_device_total";
pub const STORE_LATENCY: &str = "wearline_hub_store_write_duration_seconds";
pub const STORE_LATENCY_MAX: &str = "wearline_hub_store_write_duration_max_seconds";
pub const ROLLUP_BACKLOG: &str = "wearline_hub_rollup_backlog_points";

pub const INFLUX_UP: &str = "wearline_hub_influx_up";
pub const INFLUX_ACCEPTED: &str = "wearline_hub_influx_points_accepted_total";
pub const INFLUX_WRITTEN: &str = "wearline_hub_influx_points_written_total";
pub const INFLUX_DROPPED: &str = "wearline_hub_influx_points_dropped_total";
pub const INFLUX_EMPTY: &str = "wearline_hub_influx_empty_samples_total";
pub const INFLUX_QUEUE: &str = "wearline_hub_influx_queue_points";
pub const INFLUX_CAPACITY: &str = "wearline_hub_influx_queue_capacity_points";
pub const INFLUX_BATCHES: &str = "wearline_hub_influx_batches_written_total";
pub const INFLUX_ERRORS: &str = "wearline_hub_influx_write_errors_total";
pub const INFLUX_SEND_WAIT: &str = "wearline_hub_influx_send_wait_seconds_total";
pub const INFLUX_LATENCY: &str = "wearline_hub_influx_write_duration_seconds";
pub const INFLUX_LATENCY_MAX: &str = "wearline_hub_influx_write_duration_max_seconds";

/// Renders every metric in the Prometheus text format (0.0.4).
/// `rollup_backlog` is the store's figure (`None` when it could not be read).
pub fn render(stats: &IngestStats, rollup_backlog: Option<i64>, influx: Option<&InfluxSnapshot>) -> String {
    let ingest = stats.snapshot();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| [(String::new(), v as f64)];
    metric(
        BROKER_CONNECTED,
        "gauge",
        "1 while ingest is subscribed to the broker.",
        &one(u64::from(ingest.broker_connected)),
    );
    metric(
        MESSAGES,
        "counter",
        "MQTT messages received.",
        &one(ingest.messages),
    );
    metric(
        SAMPLES,
        "counter",
        "Samples stored (duplicates excluded).",
        &one(ingest.samples),
    );
    metric(
        VALUES,
        "counter",
        "Metric values in the samples stored.",
        &one(ingest.points),
    );
    metric(
        DUPLICATES,
        "counter",
        "Samples dropped as already stored.",
        &one(ingest.duplicates),
    );
    metric(
        UNKNOWN_PROFILE,
        "counter",
        "Telemetry batches naming a profile the hub does not have.",
        &one(ingest.unknown_profile),
    );
    metric(
        STORE_ERRORS,
        "counter",
        "Telemetry batches the store failed on.",
        &one(ingest.store_errors),
    );
    let m = &ingest.malformed;
    metric(
        MALFORMED,
        "counter",
        "Messages refused, by reason.",
        &[
            (r#"{reason="topic"}"#.into(), m.topic as f64),
            (r#"{reason="json"}"#.into(), m.json as f64),
            (r#"{reason="version"}"#.into(), m.version as f64),
            (r#"{reason="invalid"}"#.into(), m.invalid as f64),
            (r#"{reason="tenant"}"#.into(), m.tenant as f64),
        ],
    );
    metric(
        WORK_ORDERS,
        "counter",
        "Preventive work orders opened.",
        &one(ingest.work_orders_opened),
    );
    metric(
        LIVES_ENDED,
        "counter",
        "Consumable lives ended by a replacement.",
        &one(ingest.lives_ended),
    );
    metric(
        ALERTS_OPENED,
        "counter",
        "Alerts opened: at the edge, by a gateway's last will, or by a device's silence.",
        &one(ingest.alerts_opened),
    );
    metric(
        UNKNOWN_DEVICES,
        "counter",
        "Messages refused because their device is unknown (unknown_devices = \"reject\").",
        &one(ingest.unknown_devices),
    );
    metric(
        WORK_ORDERS_ESCALATED,
        "counter",
        "Work orders raised a priority step for a missed service level.",
        &one(stats
            .work_orders_escalated
            .load(std::sync::atomic::Ordering::Relaxed)),
    );
    metric(
        WORK_ORDERS_VERIFIED,
        "counter",
        "Resolved work orders the data verified (closed by the hub).",
        &one(stats
            .work_orders_verified
            .load(std::sync::atomic::Ordering::Relaxed)),
    );
    metric(
        WORK_ORDERS_REOPENED,
        "counter",
        "Resolved work orders reopened because the fault persisted.",
        &one(stats
            .work_orders_reopened
            .load(std::sync::atomic::Ordering::Relaxed)),
    );
    let (telemetry, consumables) = (
        stats.store_telemetry.snapshot(),
        stats.store_consumables.snapshot(),
    );
    let mut store = telemetry.samples(Some(r#"op="telemetry""#));
    store.extend(consumables.samples(Some(r#"op="consumables""#)));
    metric(
        STORE_LATENCY,
        "histogram",
        "Duration of committed store transactions: a telemetry batch, or a flush of consumable states.",
        &store,
    );
    metric(
        STORE_LATENCY_MAX,
        "gauge",
        "Longest committed store transaction since start.",
        &[
            (r#"{op="telemetry"}"#.into(), telemetry.max_secs),
            (r#"{op="consumables"}"#.into(), consumables.max_secs),
        ],
    );
    if let Some(n) = rollup_backlog {
        metric(
            ROLLUP_BACKLOG,
            "gauge",
            "Points stored and not yet merged into the 1-minute and 1-hour history.",
            &[(String::new(), n as f64)],
        );
    }
    let Some(i) = influx else {
        return out;
    };
    metric(
        INFLUX_UP,
        "gauge",
        "1 while InfluxDB answers (last readiness check or write).",
        &one(u64::from(i.state == "ok")),
    );
    metric(
        INFLUX_ACCEPTED,
        "counter",
        "Points (one per fresh sample) taken into the InfluxDB queue.",
        &one(i.accepted),
    );
    metric(
        INFLUX_WRITTEN,
        "counter",
        "Points InfluxDB confirmed.",
        &one(i.written),
    );
    let dropped: Vec<(String, f64)> = DropReason::ALL
        .iter()
        .map(|r| {
            (
                format!(r#"{{reason="{}"}}"#, r.as_str()),
                i.dropped.get(*r) as f64,
            )
        })
        .collect();
    metric(
        INFLUX_DROPPED,
        "counter",
        "Points accepted but never written, by reason.",
        &dropped,
    );
    metric(
        INFLUX_EMPTY,
        "counter",
        "Fresh samples without a metric value (nothing to write).",
        &one(i.empty_samples),
    );
    metric(
        INFLUX_QUEUE,
        "gauge",
        "Points held in memory: queued or being written.",
        &one(i.queue_points),
    );
    metric(
        INFLUX_CAPACITY,
        "gauge",
        "Most points held before ingest waits (max_queue_points).",
        &one(i.queue_capacity),
    );
    metric(
        INFLUX_BATCHES,
        "counter",
        "Batches InfluxDB confirmed.",
        &one(i.batches),
    );
    metric(
        INFLUX_ERRORS,
        "counter",
        "Write attempts that failed (each retry counts).",
        &one(i.write_errors),
    );
    metric(
        INFLUX_SEND_WAIT,
        "counter",
        "Time ingest waited for room in the InfluxDB queue (back-pressure).",
        &[(String::new(), i.send_wait_secs)],
    );
    let l = &i.write_latency;
    let buckets = l.samples(None);
    metric(
        INFLUX_LATENCY,
        "histogram",
        "Duration of confirmed InfluxDB writes.",
        &buckets,
    );
    metric(
        INFLUX_LATENCY_MAX,
        "gauge",
        "Longest confirmed InfluxDB write since start.",
        &[(String::new(), l.max_secs)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influx::InfluxStats;
    use std::collections::BTreeSet;

    /// Every sample line parses as `name{labels} value`, and every family
    /// has one HELP and one TYPE.
    #[test]
    fn renders_parseable_families() {
        let ingest = IngestStats::default();
        ingest
            .store_telemetry
            .observe(std::time::Duration::from_millis(30));
        let influx = InfluxStats::default();
        influx.write_latency.observe(std::time::Duration::from_millis(3));
        let text = render(&ingest, Some(42), Some(&influx.snapshot()));
        let mut families = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(families.insert(rest.split(' ').next().unwrap_or_default().to_string()));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').expect(line);
            value.parse::<f64>().expect(line);
            let base = name.split('{').next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| base.strip_suffix(s).filter(|f| families.contains(*f)))
                .unwrap_or(base);
            assert!(families.contains(family), "{line}");
        }
        assert!(
            text.contains(&format!("{INFLUX_LATENCY}_bucket{{le=\"0.005\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{INFLUX_LATENCY}_bucket{{le=\"+Inf\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{STORE_LATENCY}_bucket{{op=\"telemetry\",le=\"0.05\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{STORE_LATENCY}_count{{op=\"consumables\"}} 0")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{INFLUX_DROPPED}{{reason=\"retry_exhausted\"}} 0")),
            "{text}"
        );
        assert!(text.contains(&format!("{ROLLUP_BACKLOG} 42")), "{text}");
    }

    #[test]
    fn without_a_sink_there_are_no_influx_metrics() {
        let text = render(&IngestStats::default(), None, None);
        assert!(text.contains(&format!("{MESSAGES} 0")));
        assert!(!text.contains(ROLLUP_BACKLOG), "{text}");
        assert!(!text.contains("influx"), "{text}");
    }
}
