//! Mapping a JSON payload published by an appliance to a sample: metric
//! values and, optionally, the timestamp, each found by a JSON pointer, and
//! the features of any waveform (an array of samples) the payload carries.
//!
//! Pure: the caller passes the payload and the time it arrived.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use wearline_models::detect::waveform::{WaveformSpec, waveform_metrics};

/// How the payload's timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Milliseconds since the Unix epoch (a number or a numeric string).
    #[default]
    UnixMs,
    /// Seconds since the Unix epoch, fractions allowed.
    UnixS,
    /// An RFC 3339 string, e.g. `2026-11-23T10:00:00Z`.
    Rfc3339,
}

/// Where the values of one device's payloads are.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadMap {
    /// Metric name to JSON pointer, e.g. `compressor_temp` → `/sensors/compressor/temp`.
    pub metrics: BTreeMap<String, String>,
    /// JSON pointer of the timestamp; `None` uses the arrival time.
    pub timestamp: Option<String>,
    pub time_format: TimeFormat,
    /// Channel name to the JSON pointer of an array of samples and what to
    /// compute from it (`{name}_rms`, `{name}_kurtosis`, …).
    pub waveforms: BTreeMap<String, (String, WaveformSpec)>,
}

/// Why a payload yielded no sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("payload is not JSON: {0}")]
    Json(String),
    #[error("no timestamp at `{0}`")]
    NoTimestamp(String),
    #[error("timestamp at `{pointer}` is not {format:?}: {value}")]
    BadTimestamp {
        pointer: String,
        format: TimeFormat,
        value: String,
    },
    #[error("no metric found in the payload")]
    NoMetric,
    #[error("waveform `{channel}` at `{pointer}`: {reason}")]
    Waveform {
        channel: String,
        pointer: String,
        reason: String,
    },
}

/// A mapped payload: its time and values, and the metrics that were absent
/// or not numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub ts_ms: i64,
    pub values: BTreeMap<String, f64>,
    pub missing: Vec<String>,
}

impl PayloadMap {
    /// Maps `payload`, which arrived at `arrived_ms`. Booleans become 0/1 and
    /// numeric strings are parsed; a metric that is absent or not a number is
    /// listed in `missing`. At least one metric must be found.
    pub fn apply(&self, payload: &[u8], arrived_ms: i64) -> Result<Mapped, MapError> {
        let doc: Value = serde_json::from_slice(payload).map_err(|e| MapError::Json(e.to_string()))?;
        let ts_ms = match &self.timestamp {
            None => arrived_ms,
            Some(p) => {
                let v = doc.pointer(p).ok_or_else(|| MapError::NoTimestamp(p.clone()))?;
                parse_time(v, self.time_format).ok_or_else(|| MapError::BadTimestamp {
                    pointer: p.clone(),
                    format: self.time_format,
                    value: v.to_string(),
                })?
            }
        };
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (metric, pointer) in &self.metrics {
            match doc.pointer(pointer).and_then(number) {
                Some(v) => {
                    values.insert(metric.clone(), v);
                }
                None => missing.push(metric.clone()),
            }
        }
        for (channel, (pointer, spec)) in &self.waveforms {
            let bad = |reason: String| MapError::Waveform {
                channel: channel.clone(),
                pointer: pointer.clone(),
                reason,
            };
            let Some(v) = doc.pointer(pointer) else {
                missing.push(channel.clone());
                continue;
            };
            let samples = v
                .as_array()
                .ok_or_else(|| bad("not an array of numbers".into()))?
                .iter()
                .map(number)
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| bad("not an array of numbers".into()))?;
            let metrics = waveform_metrics(channel, &samples, spec).map_err(|e| bad(e.to_string()))?;
            values.extend(metrics);
        }
        if values.is_empty() {
            return Err(MapError::NoMetric);
        }
        Ok(Mapped {
            ts_ms,
            values,
            missing,
        })
    }
}

fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

fn parse_time(v: &Value, format: TimeFormat) -> Option<i64> {
    match format {
        TimeFormat::UnixMs => number(v).map(|n| n as i64),
        TimeFormat::UnixS => number(v).map(|n| (n * 1000.0).round() as i64),
        TimeFormat::Rfc3339 => {
            let t = humantime::parse_rfc3339_weak(v.as_str()?).ok()?;
            let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            i64::try_from(d.as_millis()).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ts: Option<&str>, format: TimeFormat) -> PayloadMap {
        PayloadMap {
            metrics: [("temp", "/sensors/temp"), ("door", "/door"), ("rpm", "/fan/rpm")]
                .into_iter()
                .map(|(m, p)| (m.to_string(), p.to_string()))
                .collect(),
            timestamp: ts.map(str::to_string),
            time_format: format,
            waveforms: BTreeMap::new(),
        }
    }

    #[test]
    fn maps_values_by_pointer_and_lists_what_is_missing() {
        let m = map(None, TimeFormat::UnixMs)
            .apply(br#"{"sensors":{"temp":4.5},"door":true,"fan":{"rpm":"n/a"}}"#, 77)
            .expect("maps");
        assert_eq!(m.ts_ms, 77);
        assert_eq!(
            m.values,
            BTreeMap::from([("door".to_string(), 1.0), ("temp".to_string(), 4.5)])
        );
        assert_eq!(m.missing, vec!["rpm".to_string()]);
    }

    #[test]
    fn reads_timestamps_in_each_format() {
        let body = |ts: &str| format!(r#"{{"t":{ts},"sensors":{{"temp":1}}}}"#);
        let at = |fmt, ts: &str| {
            map(Some("/t"), fmt)
                .apply(body(ts).as_bytes(), 0)
                .map(|m| m.ts_ms)
        };
        assert_eq!(at(TimeFormat::UnixMs, "1795392000123"), Ok(1_795_392_000_123));
        assert_eq!(at(TimeFormat::UnixS, "1795392000.5"), Ok(1_795_392_000_500));
        assert_eq!(
            at(TimeFormat::Rfc3339, "\"2026-11-23T00:00:00Z\""),
            Ok(1_795_392_000_000)
        );
        assert!(matches!(
            at(TimeFormat::Rfc3339, "12"),
            Err(MapError::BadTimestamp { .. })
        ));
    }

    #[test]
    fn waveforms_become_features_and_bad_ones_are_refused() {
        let mut m = map(None, TimeFormat::UnixMs);
        let spec = WaveformSpec {
            sample_rate_hz: 1000.0,
            bands: vec![(0.0, 100.0)],
            velocity: false,
        };
        m.waveforms.insert("vib".into(), ("/accel".into(), spec));
        let wave: Vec<String> = (0..64)
            .map(|i| if i % 2 == 0 { "1" } else { "-1" }.to_string())
            .collect();
        let body = format!(r#"{{"sensors":{{"temp":4}},"accel":[{}]}}"#, wave.join(","));
        let got = m.apply(body.as_bytes(), 0).expect("maps");
        assert_eq!(got.values["vib_rms"], 1.0);
        assert_eq!(got.values["vib_crest_factor"], 1.0);
        assert!(got.values.contains_key("vib_band0"));
        let bad = m.apply(br#"{"sensors":{"temp":4},"accel":[1,"x"]}"#, 0);
        assert!(matches!(bad, Err(MapError::Waveform { .. })), "{bad:?}");
        let none = m.apply(br#"{"sensors":{"temp":4}}"#, 0).expect("maps");
        assert!(none.missing.contains(&"vib".to_string()));
    }

    #[test]
    fn refuses_payloads_without_data() {
        let m = map(Some("/t"), TimeFormat::UnixMs);
        assert!(matches!(m.apply(b"{oops", 0), Err(MapError::Json(_))));
        assert_eq!(
            m.apply(br#"{"sensors":{"temp":1}}"#, 0),
            Err(MapError::NoTimestamp("/t".into()))
        );
        assert_eq!(
            map(None, TimeFormat::UnixMs).apply(br#"{"x":1}"#, 0),
            Err(MapError::NoMetric)
        );
    }
}
