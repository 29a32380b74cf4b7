//! Changepoints: the onset of a sustained shift in the level of any channel,
//! reported once, as early as the evidence allows.
//!
//! Why a separate output from the outlier alarm: an alarm says "this row is
//! unlike the healthy period", for as long as that holds; a changepoint says
//! "the process moved, here", also when it moves from one abnormal state to
//! another or back to normal. NAB-style scoring rewards the second kind of
//! signal, early in a short window after each change.
//!
//! Method: per channel, a two-sided tabular CUSUM (Page 1954) of the row's
//! standardised deviation from a reference level, with allowance `k` and
//! decision interval `h` in units of the channel's noise. When any channel's
//! statistic reaches `h`, the row is a changepoint; the detector then stays
//! quiet for `refractory` rows while it learns the new level (their mean),
//! and starts again from zero against it. Deviations are clipped, so one
//! spike adds at most `clip − k` and cannot trigger a changepoint alone when
//! `clip − k < h`. A channel's noise is its robust scale on the healthy
//! period, widened for slow (autocorrelated) channels whose level wanders
//! (the same `2ρ/(1 − ρ)` inflation as [`super::novelty`]).
//!
//! Streaming and causal like every detector here: O(channels) per row, no
//! allocation after construction, and the score of a row depends only on the
//! rows before it and itself. Score in `[0, 1]`, 0.5 at the decision interval.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::{DetectError, ratio_score};
use serde::{Deserialize, Serialize};

/// Settings of the changepoint detector (`[changepoint]` in `DETECTOR.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeConfig {
    /// CUSUM allowance `k`, in noise units: shifts below about `2k` are let pass.
    #[serde(default = "default_allowance")]
    pub allowance: f64,
    /// CUSUM decision interval `h`, in noise units.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Rows after a changepoint in which no other is reported while the new
    /// level is learnt (their mean becomes the new reference).
    #[serde(default = "default_refractory")]
    pub refractory: usize,
    /// Largest standardised deviation one row may contribute.
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// Widen the noise of slow (autocorrelated) channels.
    #[serde(default = "default_slow_inflation")]
    pub slow_inflation: bool,
}

// Defaults: the setting `wearline eval-detect skab --select-on valve1`
// chooses (see docs/detection.md).
const fn default_allowance() -> f64 {
    2.0
}
const fn default_threshold() -> f64 {
    16.0
}
const fn default_refractory() -> usize {
    60
}
const fn default_clip() -> f64 {
    5.0
}
const fn default_slow_inflation() -> bool {
    true
}

impl Default for ChangeConfig {
    fn default() -> Self {
        ChangeConfig {
            allowance: default_allowance(),
            threshold: default_threshold(),
            refractory: default_refractory(),
            clip: default_clip(),
            slow_inflation: default_slow_inflation(),
        }
    }
}

impl ChangeConfig {
    /// Checks the ranges the types cannot express.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |name, message: String| Err(DetectError::Parameter { name, message });
        if !(self.allowance >= 0.0 && self.allowance.is_finite()) {
            return bad("changepoint.allowance", format!("{} is not ≥ 0", self.allowance));
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return bad("changepoint.threshold", format!("{} is not > 0", self.threshold));
        }
        if !(self.clip > self.allowance && self.clip.is_finite()) {
            return bad(
                "changepoint.clip",
                format!("{} is not above the allowance {}", self.clip, self.allowance),
            );
        }
        if self.refractory == 0 {
            return bad("changepoint.refractory", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The detector's verdict on one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeScore {
    /// Evidence of a shift in `[0, 1]`; 0.5 at the decision interval.
    pub score: f64,
    /// This row is a changepoint.
    pub changepoint: bool,
    /// The channel whose statistic crossed first, on a changepoint.
    pub channel: Option<usize>,
}

/// Multichannel CUSUM changepoint detector with restart. Build it with
/// [`ChangeDetector::fit`] on healthy rows, then [`ChangeDetector::push`]
/// each new row, all in the same units (raw or standardised).
#[derive(Debug, Clone)]
pub struct ChangeDetector {
    k: f64,
    h: f64,
    clip: f64,
    refractory: usize,
    noise: Vec<f64>,
    reference: Vec<f64>,
    pos: Vec<f64>,
    neg: Vec<f64>,
    sum: Vec<f64>,
    learnt: usize,
    quiet: usize,
}

impl ChangeDetector {
    /// Fits the channels' noise on healthy `rows` (in time order, all of the
    /// same width) and takes their mean as the first reference level.
    pub fn fit(config: &ChangeConfig, rows: &[Vec<f64>]) -> Result<Self, DetectError> {
        config.validate()?;
        let d = rows.first().map_or(0, Vec::len);
        if rows.len() < 3 || d == 0 {
            return Err(DetectError::TooFewRows {
                needed: 3,
                got: rows.len(),
            });
        }
        if let Some(bad) = rows.iter().find(|r| r.len() != d) {
            return Err(DetectError::Width {
                expected: d,
                got: bad.len(),
            });
        }
        let mut col = Vec::with_capacity(rows.len());
        let mut noise = vec![1.0; d];
        let mut reference = vec![0.0; d];
        for j in 0..d {
            col.clear();
            col.extend(rows.iter().map(|r| r[j]).filter(|v| v.is_finite()));
            let inflate = if config.slow_inflation {
                let rho = super::novelty::lag1_autocorrelation(col.iter().copied());
                let rho = if rho.is_finite() {
                    rho.clamp(0.0, 0.995)
                } else {
                    0.0
                };
                (1.0 + 2.0 * rho / (1.0 - rho)).sqrt()
            } else {
                1.0
            };
            if !col.is_empty() {
                reference[j] = col.iter().sum::<f64>() / col.len() as f64;
            }
            let (_, scale) = super::novelty::robust_location_scale(&mut col);
            noise[j] = scale * inflate;
        }
        Ok(ChangeDetector {
            k: config.allowance,
            h: config.threshold,
            clip: config.clip,
            refractory: config.refractory,
            noise,
            reference,
            pos: vec![0.0; d],
            neg: vec![0.0; d],
            sum: vec![0.0; d],
            learnt: 0,
            quiet: 0,
        })
    }

    /// Number of channels.
    pub fn width(&self) -> usize {
        self.noise.len()
    }

    /// Whether the detector is learning a new level after a changepoint.
    pub fn is_refractory(&self) -> bool {
        self.quiet > 0
    }

    /// Feeds the next row. Non-finite values leave their channel unchanged.
    pub fn push(&mut self, row: &[f64]) -> Result<ChangeScore, DetectError> {
        if row.len() != self.width() {
            return Err(DetectError::Width {
                expected: self.width(),
                got: row.len(),
            });
        }
        if self.quiet > 0 {
            self.learn(row);
            return Ok(ChangeScore {
                score: 0.0,
                changepoint: false,
                channel: None,
            });
        }
        let mut stat: f64 = 0.0;
        let mut first = None;
        for (j, &x) in row.iter().enumerate() {
            if !x.is_finite() {
                continue;
            }
            let e = ((x - self.reference[j]) / self.noise[j]).clamp(-self.clip, self.clip);
            self.pos[j] = (self.pos[j] + e - self.k).max(0.0);
            self.neg[j] = (self.neg[j] - e - self.k).max(0.0);
            let s = self.pos[j].max(self.neg[j]);
            if s >= self.h && first.is_none_or(|f: (usize, f64)| s > f.1) {
                first = Some((j, s));
            }
            stat = stat.max(s);
        }
        let score = ratio_score(stat, self.h);
        if let Some((channel, _)) = first {
            self.pos.iter_mut().for_each(|v| *v = 0.0);
            self.neg.iter_mut().for_each(|v| *v = 0.0);
            self.sum.iter_mut().for_each(|v| *v = 0.0);
            self.learnt = 0;
            self.quiet = self.refractory;
            return Ok(ChangeScore {
                score,
                changepoint: true,
                channel: Some(channel),
            });
        }
        Ok(ChangeScore {
            score,
            changepoint: false,
            channel: None,
        })
    }

    fn learn(&mut self, row: &[f64]) {
        self.quiet -= 1;
        self.learnt += 1;
        for ((s, &x), r) in self.sum.iter_mut().zip(row).zip(&self.reference) {
            // A missing value counts as the old reference.
            *s += if x.is_finite() { x } else { *r };
        }
        if self.quiet == 0 {
            let n = self.learnt as f64;
            for (r, s) in self.reference.iter_mut().zip(&self.sum) {
                *r = s / n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::stream::tests::noise;

    /// `n` rows of three channels of noise (levels 10, 0 and −3), with
    /// `shift(i)` added to channel 1 of row `i`.
    fn rows(n: usize, seed: u64, shift: impl Fn(usize) -> f64) -> Vec<Vec<f64>> {
        let (a, b, c) = (noise(n, seed), noise(n, seed + 1), noise(n, seed + 2));
        (0..n)
            .map(|i| vec![10.0 + a[i], b[i] + shift(i), -3.0 + 0.5 * c[i]])
            .collect()
    }

    fn config() -> ChangeConfig {
        ChangeConfig {
            allowance: 0.5,
            threshold: 8.0,
            refractory: 20,
            clip: 4.0,
            slow_inflation: true,
        }
    }

    /// Fits on the first `train` rows and returns the indices (within the
    /// whole series) of the changepoints after them.
    fn changepoints(cfg: &ChangeConfig, data: &[Vec<f64>], train: usize) -> Vec<usize> {
        let mut d = ChangeDetector::fit(cfg, &data[..train]).unwrap();
        (train..data.len())
            .filter(|&i| d.push(&data[i]).unwrap().changepoint)
            .collect()
    }

    #[test]
    fn stationary_noise_has_no_changepoint() {
        let data = rows(20_300, 1, |_| 0.0);
        assert_eq!(changepoints(&config(), &data, 300), Vec::<usize>::new());
    }

    #[test]
    fn a_step_up_and_back_gives_one_changepoint_each_soon_after() {
        // Channel 1 is uniform noise, robust scale 1.4826 · 0.5 ≈ 0.74; a
        // step of 2 (≈ 2.7 noise units) accumulates ≈ 2.2 per row over the
        // allowance, so h = 8 is crossed on the 4th row; allow 10.
        let data = rows(1500, 2, |i| if (600..1000).contains(&i) { 2.0 } else { 0.0 });
        let cps = changepoints(&config(), &data, 300);
        assert_eq!(cps.len(), 2, "{cps:?}");
        assert!((600..610).contains(&cps[0]), "{cps:?}");
        assert!((1000..1010).contains(&cps[1]), "{cps:?}");
    }

    #[test]
    fn a_slow_ramp_is_flagged_within_a_bound() {
        // A ramp of 0.01 per row (≈ 0.0135 noise units) from row 600: the
        // deviation passes the allowance (0.5 units) after ≈ 37 rows, then
        // S⁺ grows like 0.0135·t²/2 and reaches h = 8 about 34 rows later.
        let data = rows(1200, 3, |i| 0.01 * i.saturating_sub(600) as f64);
        let cps = changepoints(&config(), &data, 300);
        let first = cps.first().copied();
        assert!(first.is_some_and(|c| (600..700).contains(&c)), "{cps:?}");
    }

    #[test]
    fn one_spike_is_not_a_changepoint() {
        let data = rows(800, 4, |i| if i == 500 { 1e6 } else { 0.0 });
        assert_eq!(changepoints(&config(), &data, 300), Vec::<usize>::new());
        let mut d = ChangeDetector::fit(&config(), &data[..300]).unwrap();
        assert!(d.push(&[10.0, f64::NAN, f64::INFINITY]).unwrap().score < 0.5);
        assert!(d.push(&[1.0]).is_err());
    }

    #[test]
    fn the_channel_that_moved_is_named() {
        let data = rows(700, 5, |i| if i >= 500 { -3.0 } else { 0.0 });
        let mut d = ChangeDetector::fit(&config(), &data[..300]).unwrap();
        let hit = data[300..]
            .iter()
            .map(|r| d.push(r).unwrap())
            .find(|s| s.changepoint)
            .unwrap();
        assert_eq!(hit.channel, Some(1));
        assert!(hit.score >= 0.5 && d.is_refractory());
    }

    #[test]
    fn config_is_validated() {
        let ok = config();
        assert!(ok.validate().is_ok());
        for bad in [
            ChangeConfig {
                threshold: 0.0,
                ..ok.clone()
            },
            ChangeConfig {
                allowance: f64::NAN,
                ..ok.clone()
            },
            ChangeConfig {
                clip: 0.4,
                ..ok.clone()
            },
            ChangeConfig {
                refractory: 0,
                ..ok.clone()
            },
        ] {
            assert!(
                ChangeDetector::fit(&bad, &rows(10, 6, |_| 0.0)).is_err(),
                "{bad:?}"
            );
        }
        assert!(ChangeDetector::fit(&ok, &rows(2, 6, |_| 0.0)).is_err());
    }
}
