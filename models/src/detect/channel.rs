//! Per-metric detectors as a device profile declares them (`[[detectors]]`),
//! each with its own alert state: what the agent runs on every sample of
//! every device.
//!
//! A [`DetectorSpec`] is the profile's text; [`ChannelDetector`] is its running
//! state. Feeding a value returns a [`ChannelEvent`] when the alert opens,
//! clears, or (for ISO 10816 zones) changes severity. Every score uses only
//! the samples seen so far and lies in `[0, 1]`, `0.5` at the threshold.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::features::{IsoZone, MachineClass};
use super::stream::{OutOfRange, RateOfChange, StreamDetector, Stuck};
use super::{Alert, AlertEvent, ratio_score};
use crate::wire::Severity;
use serde::{Deserialize, Serialize};

/// Which detector a `[[detectors]]` entry runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorType {
    /// Slow departure from a baseline learned over the first `warmup`
    /// samples (temperature drift): two-sided CUSUM of the standardised value.
    Drift,
    /// Sudden departure from an adaptive baseline (robust EWMA mean and
    /// spread): `|z| ≥ threshold`. A lasting new level is learned slowly, so
    /// its alert clears in the end.
    Anomaly,
    /// Outside `[low, high]`.
    Range,
    /// The value has not moved by more than `tolerance` for `samples` samples.
    Stuck,
    /// A step between consecutive samples larger than `max_step`.
    Rate,
    /// Vibration velocity RMS (mm/s) in ISO 10816-3 zone C (warning) or D
    /// (critical) for `machine_class`.
    IsoZone,
}

impl DetectorType {
    /// The alert kind when the profile does not name one.
    pub fn default_alert(self) -> &'static str {
        match self {
            DetectorType::Drift => "drift",
            DetectorType::Anomaly => "anomaly",
            DetectorType::Range => "out_of_range",
            DetectorType::Stuck => "stuck_sensor",
            DetectorType::Rate => "rate_of_change",
            DetectorType::IsoZone => "vibration_severity",
        }
    }
}

/// ISO 10816-3 machine class as written in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsoClass {
    Group1Rigid,
    Group1Flexible,
    Group2Rigid,
    Group2Flexible,
}

impl From<IsoClass> for MachineClass {
    fn from(c: IsoClass) -> MachineClass {
        match c {
            IsoClass::Group1Rigid => MachineClass::Group1Rigid,
            IsoClass::Group1Flexible => MachineClass::Group1Flexible,
            IsoClass::Group2Rigid => MachineClass::Group2Rigid,
            IsoClass::Group2Flexible => MachineClass::Group2Flexible,
        }
    }
}

/// One `[[detectors]]` entry of a device profile. Keys that do not apply to
/// the chosen `type` are refused by [`DetectorSpec::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// The metric this detector watches.
    pub metric: String,
    #[serde(rename = "type")]
    pub detector: DetectorType,
    /// Alert kind sent uplink, e.g. `temperature_drift`; default from the type.
    pub alert: Option<String>,
    /// Severity of the alert (ISO zones: C is a warning, D critical).
    pub severity: Option<Severity>,
    /// Drift, anomaly: samples that set the baseline before scoring starts.
    pub warmup: Option<usize>,
    /// Drift: CUSUM decision interval `h`, in standard deviations (default 8).
    /// Anomaly: `|z|` that alerts (default 4).
    pub threshold: Option<f64>,
    /// Drift: CUSUM slack `k` in standard deviations (default 0.5).
    pub slack: Option<f64>,
    /// Drift, anomaly: smallest spread assumed, in the metric's unit (for
    /// quantised or very quiet sensors; default 0).
    pub resolution: Option<f64>,
    /// Anomaly: weight of a new sample in the baseline (default 0.01).
    pub alpha: Option<f64>,
    /// Range.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Stuck: run length that alerts (default 60).
    pub samples: Option<usize>,
    /// Stuck: largest change still counted as "not moving" (default 0).
    pub tolerance: Option<f64>,
    /// Rate: the largest normal step between samples.
    pub max_step: Option<f64>,
    /// ISO zone.
    pub machine_class: Option<IsoClass>,
    /// Consecutive samples over the threshold that open the alert.
    pub open_after: Option<usize>,
    /// Consecutive samples under the clearing level that clear it.
    pub close_after: Option<usize>,
}

/// A change of a channel's alert, with what the uplink reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelEvent {
    /// `true` when the alert opened or (ISO) its severity changed; `false` when it cleared.
    pub open: bool,
    pub severity: Severity,
    pub score: f64,
    /// The baseline the value departed from (drift, anomaly: the learned mean;
    /// range, ISO: the bound crossed; stuck: the frozen value; rate: the previous value).
    pub baseline: f64,
    pub value: f64,
}

enum State {
    Drift {
        warm: Welford,
        need: usize,
        resolution: f64,
        k: f64,
        h: f64,
        pos: f64,
        neg: f64,
    },
    Anomaly {
        warm: Welford,
        need: usize,
        resolution: f64,
        alpha: f64,
        threshold: f64,
        mean: f64,
        var: f64,
    },
    Range(OutOfRange, f64, f64),
    Stuck(Stuck),
    Rate(RateOfChange, Option<f64>),
    Iso(MachineClass, IsoZone),
}

/// Running mean and variance.
#[derive(Debug, Clone, Copy, Default)]
struct Welford {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn sd(&self, floor: f64) -> f64 {
        let var = if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        };
        var.sqrt().max(floor).max((1e-9 * self.mean.abs()).max(1e-12))
    }
}

/// A detector on one metric of one device, with its alert state.
pub struct ChannelDetector {
    spec: DetectorSpec,
    state: State,
    alert: Alert,
    /// Severity of the open alert (ISO zones change it while open).
    open_severity: Option<Severity>,
    /// The last event reported.
    last: Option<ChannelEvent>,
}

impl DetectorSpec {
    /// The alert kind sent uplink.
    pub fn alert_kind(&self) -> &str {
        self.alert
            .as_deref()
            .unwrap_or_else(|| self.detector.default_alert())
    }

    /// Checks the keys for the chosen type; on error returns the key (within
    /// this entry) and the reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        use DetectorType as T;
        let allowed: &[&str] = match self.detector {
            T::Drift => &["warmup", "threshold", "slack", "resolution"],
            T::Anomaly => &["warmup", "threshold", "resolution", "alpha"],
            T::Range => &["low", "high"],
            T::Stuck => &["samples", "tolerance"],
            T::Rate => &["max_step"],
            T::IsoZone => &["machine_class"],
        };
        let given = [
            ("warmup", self.warmup.is_some()),
            ("threshold", self.threshold.is_some()),
            ("slack", self.slack.is_some()),
            ("resolution", self.resolution.is_some()),
            ("alpha", self.alpha.is_some()),
            ("low", self.low.is_some()),
            ("high", self.high.is_some()),
            ("samples", self.samples.is_some()),
            ("tolerance", self.tolerance.is_some()),
            ("max_step", self.max_step.is_some()),
            ("machine_class", self.machine_class.is_some()),
        ];
        for (key, set) in given {
            if set && !allowed.contains(&key) {
                return Err((
                    key,
                    format!("does not apply to a `{:?}` detector", self.detector).to_lowercase(),
                ));
            }
        }
        let positive = |key: &'static str, v: Option<f64>| match v {
            Some(x) if !(x > 0.0 && x.is_finite()) => Err((key, "must be a positive number".to_string())),
            _ => Ok(()),
        };
        positive("threshold", self.threshold)?;
        positive("max_step", self.max_step)?;
        if let Some(a) = self.alpha
            && !(a > 0.0 && a <= 1.0)
        {
            return Err(("alpha", "must be in (0, 1]".into()));
        }
        for (key, v) in [
            ("slack", self.slack),
            ("resolution", self.resolution),
            ("tolerance", self.tolerance),
        ] {
            if let Some(x) = v
                && !(x >= 0.0 && x.is_finite())
            {
                return Err((key, "must be ≥ 0".into()));
            }
        }
        if self.warmup.is_some_and(|w| w < 2) {
            return Err(("warmup", "must be at least 2 samples".into()));
        }
        if self.samples == Some(0) {
            return Err(("samples", "must be at least 1".into()));
        }
        match self.detector {
            T::Range => match (self.low, self.high) {
                (None, None) => return Err(("low", "give `low`, `high` or both".into())),
                (Some(l), Some(h)) if !(l < h) => return Err(("high", "must be greater than `low`".into())),
                (l, h) if l.is_some_and(|x| !x.is_finite()) || h.is_some_and(|x| !x.is_finite()) => {
                    return Err(("low", "bounds must be finite".into()));
                }
                _ => {}
            },
            T::Rate if self.max_step.is_none() => {
                return Err(("max_step", "a rate detector needs it".into()));
            }
            T::IsoZone if self.machine_class.is_none() => {
                return Err((
                    "machine_class",
                    "one of group1_rigid, group1_flexible, group2_rigid, group2_flexible".into(),
                ));
            }
            _ => {}
        }
        if let Some(a) = &self.alert
            && crate::wire::validate_id(a).is_err()
        {
            return Err(("alert", "use 1–64 letters, digits, `-`, `_`, `.` or `:`".into()));
        }
        Ok(())
    }
}

impl ChannelDetector {
    /// Builds the running detector. The spec must have passed [`DetectorSpec::validate`].
    pub fn new(spec: &DetectorSpec) -> ChannelDetector {
        use DetectorType as T;
        let (state, open_after, close_after) = match spec.detector {
            T::Drift => (
                State::Drift {
                    warm: Welford::default(),
                    need: spec.warmup.unwrap_or(120),
                    resolution: spec.resolution.unwrap_or(0.0),
                    k: spec.slack.unwrap_or(0.5),
                    h: spec.threshold.unwrap_or(8.0),
                    pos: 0.0,
                    neg: 0.0,
                },
                1,
                10,
            ),
            T::Anomaly => (
                State::Anomaly {
                    warm: Welford::default(),
                    need: spec.warmup.unwrap_or(120),
                    resolution: spec.resolution.unwrap_or(0.0),
                    alpha: spec.alpha.unwrap_or(0.01),
                    threshold: spec.threshold.unwrap_or(4.0),
                    mean: 0.0,
                    var: 0.0,
                },
                3,
                10,
            ),
            T::Range => {
                let (low, high) = (
                    spec.low.unwrap_or(f64::NEG_INFINITY),
                    spec.high.unwrap_or(f64::INFINITY),
                );
                (State::Range(OutOfRange::new(low, high), low, high), 2, 3)
            }
            T::Stuck => {
                let samples = spec.samples.unwrap_or(60);
                (
                    State::Stuck(Stuck::new(spec.tolerance.unwrap_or(0.0), samples)),
                    1,
                    1,
                )
            }
            T::Rate => (
                State::Rate(RateOfChange::new(spec.max_step.unwrap_or(f64::INFINITY)), None),
                1,
                5,
            ),
            T::IsoZone => (
                State::Iso(
                    spec.machine_class.map_or(MachineClass::Group2Rigid, Into::into),
                    IsoZone::A,
                ),
                3,
                5,
            ),
        };
        let open_after = spec.open_after.unwrap_or(open_after);
        let close_after = spec.close_after.unwrap_or(close_after);
        // Thresholds 0.5/0.4 are valid by construction.
        let alert = Alert::new(0.5, 0.4, open_after, close_after).unwrap_or_else(|_| unreachable!());
        ChannelDetector {
            spec: spec.clone(),
            state,
            alert,
            open_severity: None,
            last: None,
        }
    }

    /// The spec this detector runs.
    pub fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    /// Whether the alert is open.
    pub fn is_open(&self) -> bool {
        self.alert.is_open()
    }

    /// The last event reported (the opening, while an alert is open).
    pub fn last_event(&self) -> Option<ChannelEvent> {
        self.last
    }

    /// Feeds the next value; returns an event when the alert opens, clears,
    /// or changes severity. Non-finite values are ignored.
    pub fn push(&mut self, x: f64) -> Option<ChannelEvent> {
        if !x.is_finite() {
            return None;
        }
        let (score, baseline, severity) = self.score(x);
        let severity = self.spec.severity.unwrap_or(severity);
        let event = self.alert.update(score);
        let report = |open| ChannelEvent {
            open,
            severity,
            score,
            baseline,
            value: x,
        };
        let out = match event {
            Some(AlertEvent::Opened) => {
                self.open_severity = Some(severity);
                Some(report(true))
            }
            Some(AlertEvent::Cleared) => {
                self.open_severity = None;
                Some(report(false))
            }
            // A zone-D reading while a zone-C alert is open raises it.
            None if self.alert.is_open() && self.open_severity.is_some_and(|s| severity > s) => {
                self.open_severity = Some(severity);
                Some(report(true))
            }
            None => None,
        };
        if out.is_some() {
            self.last = out;
        }
        out
    }

    /// The score, the baseline to report, and the default severity.
    fn score(&mut self, x: f64) -> (f64, f64, Severity) {
        let open = self.alert.is_open();
        match &mut self.state {
            State::Drift {
                warm,
                need,
                resolution,
                k,
                h,
                pos,
                neg,
            } => {
                if warm.n < *need {
                    warm.push(x);
                    return (0.0, warm.mean, Severity::Warning);
                }
                let z = (x - warm.mean) / warm.sd(*resolution);
                // Capped at twice the decision interval, so that once the
                // value is back the statistic falls below it in bounded time
                // and the alert clears (the cap cannot delay an opening).
                *pos = (*pos + z - *k).clamp(0.0, 2.0 * *h);
                *neg = (*neg - z - *k).clamp(0.0, 2.0 * *h);
                (ratio_score(pos.max(*neg), *h), warm.mean, Severity::Warning)
            }
            State::Anomaly {
                warm,
                need,
                resolution,
                alpha,
                threshold,
                mean,
                var,
            } => {
                if warm.n < *need {
                    warm.push(x);
                    if warm.n == *need {
                        *mean = warm.mean;
                        let sd = warm.sd(*resolution);
                        *var = sd * sd;
                    }
                    return (0.0, warm.mean, Severity::Warning);
                }
                let sd = var.sqrt().max(*resolution).max(1e-12);
                let r = x - *mean;
                let z = r / sd;
                let base = *mean;
                // Follow the signal with the residual clipped, so an anomaly
                // does not drag the baseline (or inflate the spread) along
                // with it. While an alert is open, or the sample is beyond the
                // threshold, only the mean moves, ten times slower: a new
                // operating point is learned in the end and the alert clears,
                // but a fault is not absorbed within its first hundreds of
                // samples.
                let rc = r.clamp(-3.0 * sd, 3.0 * sd);
                if !open && z.abs() < *threshold {
                    *mean += *alpha * rc;
                    *var = (1.0 - *alpha) * (*var + *alpha * rc * rc);
                } else {
                    *mean += 0.1 * *alpha * rc;
                }
                (ratio_score(z.abs(), *threshold), base, Severity::Warning)
            }
            State::Range(d, low, high) => {
                let bound = if x < *low { *low } else { *high };
                (d.update(x), bound, Severity::Critical)
            }
            State::Stuck(d) => (d.update(x), x, Severity::Warning),
            State::Rate(d, prev) => {
                let score = d.update(x);
                let base = prev.unwrap_or(x);
                *prev = Some(x);
                (score, base, Severity::Warning)
            }
            State::Iso(class, zone) => {
                *zone = class.zone(x);
                let [_, bc, cd] = class.boundaries();
                match zone {
                    IsoZone::D => (0.5 + 0.5 * ratio_score(x - cd, cd), cd, Severity::Critical),
                    IsoZone::C => (0.5 + 0.5 * ratio_score(x - bc, cd), bc, Severity::Warning),
                    _ => (0.5 * (x / bc).clamp(0.0, 1.0) * 0.8, bc, Severity::Warning),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> DetectorSpec {
        let s: DetectorSpec = toml::from_str(text).expect("spec parses");
        s.validate().expect("spec valid");
        s
    }

    /// Deterministic noise in [-1, 1].
    fn noise(i: usize) -> f64 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        (h as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn events(d: &mut ChannelDetector, xs: impl IntoIterator<Item = f64>) -> Vec<(usize, ChannelEvent)> {
        xs.into_iter()
            .enumerate()
            .filter_map(|(i, x)| d.push(x).map(|e| (i, e)))
            .collect()
    }

    #[test]
    fn drift_flags_a_slow_ramp_once_and_not_the_noise_before_it() {
        let mut d = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"drift\"\nwarmup = 100"));
        // 2000 samples of noise (sd ≈ 0.29), then a ramp of 0.01 per sample.
        let xs = (0..4000).map(|i| {
            let ramp = if i < 2000 { 0.0 } else { (i - 2000) as f64 * 0.01 };
            40.0 + 0.5 * noise(i) + ramp
        });
        let ev = events(&mut d, xs);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let (at, e) = ev[0];
        assert!(e.open && e.severity == Severity::Warning);
        assert!((e.baseline - 40.0).abs() < 0.1, "{e:?}");
        // The ramp reaches 1 sd after ~29 samples; CUSUM must have it well before 200.
        assert!((2000..2200).contains(&at), "flagged at {at}");
    }

    #[test]
    fn drift_clears_when_the_value_returns() {
        let mut d = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"drift\"\nwarmup = 50"));
        let xs = (0..600).map(|i| {
            let shift = if (200..300).contains(&i) { 5.0 } else { 0.0 };
            20.0 + noise(i) + shift
        });
        let ev: Vec<bool> = events(&mut d, xs).into_iter().map(|(_, e)| e.open).collect();
        assert_eq!(ev, vec![true, false]);
    }

    #[test]
    fn resolution_keeps_a_quantised_quiet_sensor_from_alerting() {
        // A sensor reading exactly 25.0 during warm-up, then wobbling by one
        // 0.1 step: without a resolution the spread is ~0 and any step alerts.
        let xs: Vec<f64> = (0..1000)
            .map(|i| {
                if i < 120 {
                    25.0
                } else {
                    25.0 + 0.1 * f64::from(i % 2 == 0)
                }
            })
            .collect();
        let mut loose = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"drift\""));
        assert!(!events(&mut loose, xs.iter().copied()).is_empty());
        let mut d = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"drift\"\nresolution = 0.1"));
        assert!(events(&mut d, xs).is_empty());
    }

    #[test]
    fn anomaly_opens_on_a_jump_and_baseline_is_not_dragged() {
        let mut d = ChannelDetector::new(&spec("metric = \"v\"\ntype = \"anomaly\"\nwarmup = 100"));
        let xs = (0..1000).map(|i| {
            let jump = if (500..700).contains(&i) { 20.0 } else { 0.0 };
            2.0 + 0.1 * noise(i) + jump
        });
        let ev = events(&mut d, xs);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev[0].1.open && (500..505).contains(&ev[0].0));
        assert!((ev[0].1.baseline - 2.0).abs() < 0.1);
        assert!(!ev[1].1.open && (700..720).contains(&ev[1].0));
    }

    #[test]
    fn anomaly_learns_a_lasting_new_level_in_the_end() {
        let mut d = ChannelDetector::new(&spec("metric = \"v\"\ntype = \"anomaly\"\nwarmup = 100"));
        let xs = (0..20_000).map(|i| 2.0 + 0.1 * noise(i) + if i >= 500 { 1.0 } else { 0.0 });
        let ev: Vec<(usize, bool)> = events(&mut d, xs).into_iter().map(|(i, e)| (i, e.open)).collect();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev[0].1 && !ev[1].1);
        assert!(ev[1].0 > 1000, "not absorbed at once: {ev:?}");
    }

    #[test]
    fn range_is_critical_and_debounced() {
        let mut d = ChannelDetector::new(&spec("metric = \"p\"\ntype = \"range\"\nhigh = 100.0"));
        let ev = events(&mut d, [50.0, 120.0, 50.0, 120.0, 130.0, 90.0, 90.0, 90.0]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].0, 4);
        assert_eq!(ev[0].1.severity, Severity::Critical);
        assert_eq!(ev[0].1.baseline, 100.0);
        assert!(!ev[1].1.open);
    }

    #[test]
    fn stuck_sensor_and_rate() {
        let mut d = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"stuck\"\nsamples = 10"));
        let xs = (0..40).map(|i| if i < 20 { f64::from(i) } else { 7.5 });
        let ev = events(&mut d, xs);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1.value, 7.5);
        assert!((30..=31).contains(&ev[0].0), "{ev:?}");

        let mut r = ChannelDetector::new(&spec("metric = \"t\"\ntype = \"rate\"\nmax_step = 1.0"));
        let ev = events(&mut r, [1.0, 1.5, 2.0, 9.0, 9.2, 9.1, 9.3, 9.2, 9.1, 9.0]);
        assert_eq!(ev[0].0, 3);
        assert_eq!(ev[0].1.baseline, 2.0);
    }

    #[test]
    fn iso_zone_raises_severity_from_c_to_d() {
        let mut d = ChannelDetector::new(&spec(
            "metric = \"vibration_rms\"\ntype = \"iso_zone\"\nmachine_class = \"group2_rigid\"",
        ));
        // Group 2 rigid: B/C at 2.8, C/D at 4.5 mm/s.
        let xs = [
            1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let ev: Vec<(bool, Severity)> = events(&mut d, xs)
            .into_iter()
            .map(|(_, e)| (e.open, e.severity))
            .collect();
        assert_eq!(
            ev,
            vec![
                (true, Severity::Warning),
                (true, Severity::Critical),
                (false, Severity::Warning)
            ]
        );
    }

    #[test]
    fn keys_of_another_type_and_bad_values_are_refused() {
        let bad = |text: &str, key: &str| {
            let s: DetectorSpec = toml::from_str(text).expect("parses");
            assert_eq!(s.validate().expect_err(text).0, key, "{text}");
        };
        bad("metric = \"t\"\ntype = \"drift\"\nmax_step = 1.0", "max_step");
        bad("metric = \"t\"\ntype = \"range\"", "low");
        bad("metric = \"t\"\ntype = \"range\"\nlow = 5.0\nhigh = 1.0", "high");
        bad("metric = \"t\"\ntype = \"rate\"", "max_step");
        bad("metric = \"t\"\ntype = \"iso_zone\"", "machine_class");
        bad("metric = \"t\"\ntype = \"anomaly\"\nalpha = 2.0", "alpha");
        bad("metric = \"t\"\ntype = \"drift\"\nthreshold = -1.0", "threshold");
        bad("metric = \"t\"\ntype = \"drift\"\nalert = \"a b\"", "alert");
    }

    #[test]
    fn scores_stay_in_unit_interval_on_wild_input() {
        for text in [
            "metric = \"x\"\ntype = \"drift\"\nwarmup = 5",
            "metric = \"x\"\ntype = \"anomaly\"\nwarmup = 5",
            "metric = \"x\"\ntype = \"range\"\nlow = 0.0\nhigh = 1.0",
            "metric = \"x\"\ntype = \"stuck\"\nsamples = 3",
            "metric = \"x\"\ntype = \"rate\"\nmax_step = 0.5",
            "metric = \"x\"\ntype = \"iso_zone\"\nmachine_class = \"group1_rigid\"",
        ] {
            let mut d = ChannelDetector::new(&spec(text));
            for i in 0..500 {
                let x = match i % 7 {
                    0 => 1e300,
                    1 => -1e300,
                    2 => f64::NAN,
                    _ => noise(i) * 10f64.powi((i % 5) as i32),
                };
                if let Some(e) = d.push(x) {
                    assert!((0.0..=1.0).contains(&e.score), "{text}: {e:?}");
                }
                let (s, _, _) = d.score(noise(i));
                assert!((0.0..=1.0).contains(&s), "{text}: {s}");
            }
        }
    }
}
