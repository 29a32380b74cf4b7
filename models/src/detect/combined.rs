//! The default detector for a stream of multivariate rows: what
//! `wearline detect` and `wearline eval-detect` run, and what the agent is to
//! run per device.
//!
//! Design: the first `train_rows` rows are taken as the healthy period (scored
//! 0); at the end of it a robust T² model ([`Novelty`]) is fitted and its
//! alarm threshold calibrated on the same rows. From then on each row's T² is
//! smoothed by an EWMA (anomalies that matter last longer than one sample,
//! noise does not), turned into a score with [`ratio_score`], and passed
//! through the hysteresis and debounce of [`Alert`]. Scoring uses only rows
//! already seen: nothing looks ahead.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::change::{ChangeConfig, ChangeDetector};
use super::{Alert, AlertEvent, DetectError, Novelty, ratio_score};
use serde::{Deserialize, Serialize};

/// Settings of the default row detector, as read from a `DETECTOR.toml`.
/// Every key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Rows taken as the healthy period before scoring starts.
    #[serde(default = "default_train_rows")]
    pub train_rows: usize,
    /// Weight of a new row in the EWMA of T² (1 = no smoothing).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// Quantile of the smoothed training T² that calibrates the threshold.
    #[serde(default = "default_quantile")]
    pub threshold_quantile: f64,
    /// The threshold is this factor times that quantile.
    #[serde(default = "default_factor")]
    pub threshold_factor: f64,
    /// Ridge added to the standardised covariance's diagonal.
    #[serde(default = "default_ridge")]
    pub ridge: f64,
    /// Rate at which the healthy centre follows rows scored below the alert
    /// threshold while no alert is open (0 = a fixed baseline).
    #[serde(default = "default_adapt")]
    pub adapt: f64,
    /// Inflate the variance of slow (autocorrelated) channels, which wander
    /// further than the healthy period shows.
    #[serde(default = "default_slow_inflation")]
    pub slow_inflation: bool,
    /// Score at which an alert opens.
    #[serde(default = "default_open_at")]
    pub open_at: f64,
    /// Score below which an open alert clears.
    #[serde(default = "default_close_at")]
    pub close_at: f64,
    /// Consecutive rows at or above `open_at` needed to open.
    #[serde(default = "default_open_after")]
    pub open_after: usize,
    /// Consecutive rows below `close_at` needed to clear.
    #[serde(default = "default_close_after")]
    pub close_after: usize,
    /// The changepoint detector (`[changepoint]` table).
    #[serde(default)]
    pub changepoint: ChangeConfig,
}

const fn default_train_rows() -> usize {
    400
}
const fn default_smoothing() -> f64 {
    0.1
}
const fn default_quantile() -> f64 {
    0.99
}
const fn default_factor() -> f64 {
    1.5
}
const fn default_ridge() -> f64 {
    0.01
}
const fn default_adapt() -> f64 {
    0.0
}
const fn default_slow_inflation() -> bool {
    true
}
const fn default_open_at() -> f64 {
    0.5
}
const fn default_close_at() -> f64 {
    0.45
}
const fn default_open_after() -> usize {
    1
}
const fn default_close_after() -> usize {
    3
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            train_rows: default_train_rows(),
            smoothing: default_smoothing(),
            threshold_quantile: default_quantile(),
            threshold_factor: default_factor(),
            ridge: default_ridge(),
            adapt: default_adapt(),
            slow_inflation: default_slow_inflation(),
            open_at: default_open_at(),
            close_at: default_close_at(),
            open_after: default_open_after(),
            close_after: default_close_after(),
            changepoint: ChangeConfig::default(),
        }
    }
}

impl DetectorConfig {
    /// Checks the ranges the types cannot express.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |name, message: String| Err(DetectError::Parameter { name, message });
        if self.train_rows < 10 {
            return bad("train_rows", format!("{} is below 10", self.train_rows));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return bad("smoothing", format!("{} is not in (0, 1]", self.smoothing));
        }
        if !(self.threshold_quantile > 0.0 && self.threshold_quantile <= 1.0) {
            return bad(
                "threshold_quantile",
                format!("{} is not in (0, 1]", self.threshold_quantile),
            );
        }
        if !(self.threshold_factor > 0.0 && self.threshold_factor.is_finite()) {
            return bad(
                "threshold_factor",
                format!("{} is not > 0", self.threshold_factor),
            );
        }
        if !(0.0..=1.0).contains(&self.adapt) {
            return bad("adapt", format!("{} is not in [0, 1]", self.adapt));
        }
        if !(self.ridge >= 0.0 && self.ridge.is_finite()) {
            return bad("ridge", format!("{} is not ≥ 0", self.ridge));
        }
        Alert::new(self.open_at, self.close_at, self.open_after, self.close_after)?;
        self.changepoint.validate()
    }
}

/// The detector's verdict on one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// Anomaly score in `[0, 1]`; 0.5 at the calibrated threshold.
    pub score: f64,
    /// Whether an alert is open after this row.
    pub is_anomaly: bool,
    /// The alert opened or cleared on this row.
    pub event: Option<AlertEvent>,
    /// False while still in the healthy (training) period.
    pub trained: bool,
    /// This row is the onset of a sustained shift in some channel's level
    /// (see [`super::change`]); independent of the alert.
    pub changepoint: bool,
}

/// The default streaming detector over rows of `width` values.
#[derive(Debug, Clone)]
pub struct RowDetector {
    config: DetectorConfig,
    width: usize,
    training: Vec<Vec<f64>>,
    model: Option<Fitted>,
    alert: Alert,
}

#[derive(Debug, Clone)]
struct Fitted {
    novelty: Novelty,
    change: ChangeDetector,
    threshold: f64,
    smoothed: f64,
}

impl RowDetector {
    /// A detector for rows of `width` values.
    pub fn new(config: DetectorConfig, width: usize) -> Result<Self, DetectError> {
        config.validate()?;
        if width == 0 {
            return Err(DetectError::Width { expected: 1, got: 0 });
        }
        let alert = Alert::new(
            config.open_at,
            config.close_at,
            config.open_after,
            config.close_after,
        )?;
        Ok(RowDetector {
            training: Vec::with_capacity(config.train_rows),
            config,
            width,
            model: None,
            alert,
        })
    }

    /// The calibrated T² threshold, once trained.
    pub fn threshold(&self) -> Option<f64> {
        self.model.as_ref().map(|m| m.threshold)
    }

    /// Feeds the next row.
    pub fn push(&mut self, row: &[f64]) -> Result<RowScore, DetectError> {
        if row.len() != self.width {
            return Err(DetectError::Width {
                expected: self.width,
                got: row.len(),
            });
        }
        let Some(model) = self.model.as_mut() else {
            self.training.push(row.to_vec());
            if self.training.len() >= self.config.train_rows {
                // A healthy period that cannot be fitted is reported once and
                // dropped; the next `train_rows` rows make a new one (rather
                // than refitting a growing set on every row).
                let fitted = fit(&self.config, &self.training);
                self.training.clear();
                self.model = Some(fitted?);
                self.training = Vec::new();
            }
            return Ok(RowScore {
                score: 0.0,
                is_anomaly: false,
                event: None,
                trained: false,
                changepoint: false,
            });
        };
        let change = model.change.push(row)?;
        let t2 = model.novelty.t2(row)?;
        let a = self.config.smoothing;
        model.smoothed = (1.0 - a) * model.smoothed + a * t2.min(1e12);
        let score = ratio_score(model.smoothed, model.threshold);
        let event = self.alert.update(score);
        if !self.alert.is_open() && score < self.config.open_at {
            model.novelty.adapt(row, self.config.adapt);
        }
        Ok(RowScore {
            score,
            is_anomaly: self.alert.is_open(),
            event,
            trained: true,
            changepoint: change.changepoint,
        })
    }
}

fn fit(config: &DetectorConfig, rows: &[Vec<f64>]) -> Result<Fitted, DetectError> {
    let mut novelty = Novelty::fit_with(rows, config.ridge, config.slow_inflation)?;
    let a = config.smoothing;
    let mut smoothed = None::<f64>;
    let mut series = Vec::with_capacity(rows.len());
    for r in rows {
        let t2 = novelty.t2(r)?.min(1e12);
        let s = smoothed.map_or(t2, |s| (1.0 - a) * s + a * t2);
        smoothed = Some(s);
        series.push(s);
    }
    // Skip the EWMA's start-up, which is not yet smoothed.
    let skip = ((1.0 / a).ceil() as usize).min(series.len() / 2);
    let mut tail: Vec<f64> = series[skip..].to_vec();
    tail.sort_by(f64::total_cmp);
    let q = quantile_sorted(&tail, config.threshold_quantile);
    let d = novelty.width() as f64;
    // Never below the expected T² of a healthy row (≈ d).
    let threshold = (config.threshold_factor * q).max(d);
    Ok(Fitted {
        novelty,
        change: ChangeDetector::fit(&config.changepoint, rows)?,
        threshold,
        smoothed: smoothed.unwrap_or(d),
    })
}

fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    v[lo] * (1.0 - w) + v[hi] * w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::stream::tests::noise;

    fn rows(n: usize, seed: u64, shift_from: usize, shift: f64) -> Vec<Vec<f64>> {
        let a = noise(n, seed);
        let b = noise(n, seed + 100);
        (0..n)
            .map(|i| {
                let s = if i >= shift_from { shift } else { 0.0 };
                vec![20.0 + a[i] + s, 5.0 + 0.5 * a[i] + 0.2 * b[i]]
            })
            .collect()
    }

    fn run(d: &mut RowDetector, rows: &[Vec<f64>]) -> Vec<RowScore> {
        rows.iter().map(|r| d.push(r).unwrap()).collect()
    }

    #[test]
    fn stationary_rows_do_not_alert_and_a_shift_alerts_once() {
        let cfg = DetectorConfig {
            train_rows: 200,
            ..DetectorConfig::default()
        };
        let mut d = RowDetector::new(cfg.clone(), 2).unwrap();
        let quiet = run(&mut d, &rows(5000, 1, usize::MAX, 0.0));
        assert!(quiet.iter().all(|r| !r.is_anomaly && !r.changepoint));
        let mut d = RowDetector::new(cfg, 2).unwrap();
        let out = run(&mut d, &rows(1000, 2, 600, 3.0));
        let opened: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, r)| r.event == Some(AlertEvent::Opened))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(opened.len(), 1, "{opened:?}");
        assert!((600..620).contains(&opened[0]), "{opened:?}");
        // The changepoint output marks the shift once, soon after it.
        let cps: Vec<usize> = (0..out.len()).filter(|&i| out[i].changepoint).collect();
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert!((600..620).contains(&cps[0]), "{cps:?}");
        assert!(out[..200].iter().all(|r| !r.trained && r.score == 0.0));
    }

    #[test]
    fn scores_are_bounded_and_causal() {
        let data = rows(1500, 3, 900, 50.0);
        let cfg = DetectorConfig {
            train_rows: 300,
            ..DetectorConfig::default()
        };
        let mut full = RowDetector::new(cfg.clone(), 2).unwrap();
        let all = run(&mut full, &data);
        assert!(all.iter().all(|r| (0.0..=1.0).contains(&r.score)));
        for cut in [299, 300, 301, 950] {
            let mut d = RowDetector::new(cfg.clone(), 2).unwrap();
            assert_eq!(run(&mut d, &data[..cut]), all[..cut]);
        }
    }

    #[test]
    fn an_unfittable_healthy_period_is_dropped_and_collected_anew() {
        let cfg = DetectorConfig {
            train_rows: 10,
            ..DetectorConfig::default()
        };
        let mut d = RowDetector::new(cfg, 1).unwrap();
        // One value so far out that the covariance overflows.
        let wild: Vec<f64> = (0..10).map(|i| if i == 5 { 1e300 } else { i as f64 }).collect();
        let out: Vec<_> = wild.iter().map(|&x| d.push(&[x])).collect();
        assert!(out[..9].iter().all(|r| r.as_ref().is_ok_and(|s| !s.trained)));
        assert!(out[9].is_err(), "{:?}", out[9]);
        // The next ten rows are a new healthy period; then scoring starts.
        for i in 0..10 {
            let s = d.push(&[(i % 3) as f64]).unwrap();
            assert!(!s.trained);
        }
        assert!(d.push(&[1.0]).unwrap().trained);
    }

    /// The `toml file=DETECTOR.toml` example in `docs/detection.md` parses to
    /// the defaults, and the page names every key in backticks.
    #[test]
    fn detection_doc_example_parses() {
        let doc = include_str!("../../../docs/detection.md");
        let mut lines = doc.lines();
        let mut examples = 0;
        while let Some(line) = lines.next() {
            if line.trim() != "```toml file=DETECTOR.toml" {
                continue;
            }
            let body: String = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .collect::<Vec<_>>()
                .join("\n");
            let cfg: DetectorConfig =
                crate::config::parse_toml("DETECTOR.toml", &body).unwrap_or_else(|e| panic!("{e}\n{body}"));
            cfg.validate().unwrap();
            assert_eq!(cfg, DetectorConfig::default());
            examples += 1;
        }
        assert_eq!(
            examples, 1,
            "docs/detection.md should hold one DETECTOR.toml example"
        );
        let json = serde_json::to_value(DetectorConfig::default()).unwrap();
        let mut keys: Vec<String> = Vec::new();
        if let Some(top) = json.as_object() {
            for (k, v) in top {
                keys.push(k.clone());
                if let Some(inner) = v.as_object() {
                    keys.extend(inner.keys().cloned());
                }
            }
        }
        assert!(keys.len() > 10, "{keys:?}");
        for k in keys {
            assert!(
                doc.contains(&format!("`{k}`")),
                "docs/detection.md does not name `{k}`"
            );
        }
    }

    #[test]
    fn config_is_validated_and_parsed() {
        let cfg: DetectorConfig =
            crate::config::parse_toml("d.toml", "train_rows = 50\nsmoothing = 0.2\n").unwrap();
        assert_eq!(cfg.train_rows, 50);
        assert_eq!(cfg.open_after, default_open_after());
        assert!(crate::config::parse_toml::<DetectorConfig>("d.toml", "trian_rows = 5").is_err());
        let bad = DetectorConfig {
            smoothing: 0.0,
            ..DetectorConfig::default()
        };
        assert!(RowDetector::new(bad, 2).is_err());
        let mut d = RowDetector::new(DetectorConfig::default(), 2).unwrap();
        assert!(d.push(&[1.0]).is_err());
    }
}
