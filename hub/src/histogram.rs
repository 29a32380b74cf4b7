//! A fixed-bucket latency histogram with its maximum, lock-free, rendered
//! as a Prometheus histogram (InfluxDB writes, store transactions).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A fixed-bucket latency histogram, with its maximum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`] (not cumulative), then above the last.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        let mut total = 0;
        for (b, le) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            total += b.load(Ordering::Relaxed);
            cumulative.push((le, total));
        }
        HistogramSnapshot {
            buckets: cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            max_secs: self.max_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A latency histogram's count, sum and maximum.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistogramSnapshot {
    /// Cumulative counts by upper bound in seconds (`+Inf` is `count`).
    #[serde(skip)]
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
    pub max_secs: f64,
}

impl HistogramSnapshot {
    /// The Prometheus histogram's samples (`_bucket`, `_sum`, `_count`
    /// suffixes with their labels), each with `label` (e.g. `op="x"`) first
    /// when given.
    pub fn samples(&self, label: Option<&str>) -> Vec<(String, f64)> {
        let with = |extra: Option<String>| {
            let parts: Vec<String> = label.map(str::to_string).into_iter().chain(extra).collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        let mut out: Vec<(String, f64)> = self
            .buckets
            .iter()
            .map(|(le, n)| {
                (
                    format!("_bucket{}", with(Some(format!(r#"le="{le}""#)))),
                    *n as f64,
                )
            })
            .collect();
        out.push((
            format!("_bucket{}", with(Some(r#"le="+Inf""#.into()))),
            self.count as f64,
        ));
        out.push((format!("_sum{}", with(None)), self.sum_secs));
        out.push((format!("_count{}", with(None)), self.count as f64));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_maximum_is_kept() {
        let h = Histogram::default();
        for ms in [1, 3, 3, 40, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        let le = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(
            (le(0.001), le(0.005), le(0.05), le(10.0)),
            (Some(1), Some(3), Some(4), Some(4))
        );
        assert_eq!((s.count, s.max_secs), (5, 20.0));
        let lines = s.samples(Some(r#"op="x""#));
        assert_eq!(lines[0], (r#"_bucket{op="x",le="0.001"}"#.to_string(), 1.0));
        assert!(lines.contains(&(r#"_bucket{op="x",le="+Inf"}"#.to_string(), 5.0)));
        assert!(lines.contains(&(r#"_count{op="x"}"#.to_string(), 5.0)));
        assert_eq!(s.samples(None).last().map(|l| l.0.as_str()), Some("_count"));
    }
}
