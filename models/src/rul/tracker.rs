//! One consumable's current life, fed sample by sample: what the hub keeps
//! per (device, consumable).
//!
//! A [`LifeTracker`] measures usage (a counter such as run hours, or hours
//! since the part was fitted), feeds the wear signal to a [`RulTrend`],
//! averages the covariates the fleet prior learns from, notices a replacement
//! (the signal falling back, or a per-part counter restarting) and ends the
//! life there. [`LifeTracker::estimate`] combines every limit the profile
//! declares (wear threshold, rated life, calendar limit): the first one
//! reached ends the life.
//!
//! What the fleet has learned, [`FleetKnowledge`], comes from ended lives: the
//! prior of life against covariates, and a calibration of how far the trend's
//! own predictions missed at each stage of a life (from checkpoints each life
//! keeps), so the blend trusts a trend only as far as trends have earned.
//!
//! Pure: time stamps and values are the caller's; each update is O(1).

// Negated comparisons (`!(x > 0.0)`) are deliberate: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::prior::{CompletedLife, FleetPrior, blend_estimate};
use super::trend::{Basis, Estimate, RulTrend, Source, TrendConfig, normal_quantile};
use super::{Result, RulError};
use crate::profile::Consumable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: f64 = 86_400_000.0;
/// A new checkpoint once usage has grown by this factor since the last one.
const CHECKPOINT_GROWTH: f64 = 1.2;
const MAX_CHECKPOINTS: usize = 64;
/// A life replaced before its trend reached this fraction of the way to the
/// threshold says too little about how long it would have lasted.
const MIN_FRACTION_FOR_LIFE: f64 = 0.8;
/// Completed lives before the prior is used.
pub const MIN_PRIOR_LIVES: usize = 5;
/// Checkpoints in a stage of life before its calibration is used.
const MIN_CALIBRATION: u32 = 5;
/// Stages of life (fraction used) the calibration tells apart.
const STAGES: usize = 5;
const RIDGE: f64 = 1.0;

/// Which limit ends the life first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The wear signal reaching its threshold.
    Wear,
    /// The rated life in usage units.
    RatedLife,
    /// The calendar limit since the part was fitted.
    Calendar,
}

/// The trend's own prediction of the total life at some usage, kept so the
/// fleet can learn how far trends miss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub usage: f64,
    pub predicted_life: f64,
}

/// A life ended by a replacement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedLife {
    pub started_ms: i64,
    pub ended_ms: i64,
    /// Usage until the wear signal reached its threshold (seen, or
    /// extrapolated over the last fifth); `None` when replaced too early to tell.
    pub life: Option<f64>,
    /// Usage when it was replaced.
    pub used: f64,
    /// Mean of each covariate over the life (NaN when never seen).
    pub covariates: Vec<f64>,
    pub checkpoints: Vec<Checkpoint>,
}

impl EndedLife {
    /// The life as the fleet prior learns it, when it is known.
    pub fn completed(&self) -> Option<CompletedLife> {
        let life = self.life.filter(|l| *l > 0.0)?;
        self.covariates
            .iter()
            .all(|c| c.is_finite())
            .then(|| CompletedLife {
                covariates: self.covariates.clone(),
                life,
            })
    }
}

/// How far the trend's predictions of total life missed (RMS of the log
/// ratio), by the fraction of life used when they were made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendCalibration {
    sum_sq: [f64; STAGES],
    n: [u32; STAGES],
}

impl TrendCalibration {
    fn stage(fraction: f64) -> usize {
        ((fraction.clamp(0.0, 0.999) * STAGES as f64) as usize).min(STAGES - 1)
    }

    /// Adds the checkpoints of a completed life.
    pub fn add(&mut self, life: &EndedLife) {
        let Some(total) = life.life.filter(|l| *l > 0.0) else {
            return;
        };
        for c in &life.checkpoints {
            if c.usage < total && c.predicted_life > 0.0 {
                let k = Self::stage(c.usage / total);
                self.sum_sq[k] += (c.predicted_life / total).ln().powi(2);
                self.n[k] += 1;
            }
        }
    }

    /// RMS log error of trends at this fraction of life, once known.
    pub fn log_sd(&self, fraction: f64) -> Option<f64> {
        let k = Self::stage(fraction);
        (self.n[k] >= MIN_CALIBRATION).then(|| (self.sum_sq[k] / f64::from(self.n[k])).sqrt())
    }
}

/// What the fleet's ended lives say about one consumable of one profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetKnowledge {
    pub prior: Option<FleetPrior>,
    pub calibration: TrendCalibration,
    /// Completed lives learned from.
    pub lives: usize,
}

impl FleetKnowledge {
    /// Learns from ended lives (those with an unknown life are skipped).
    pub fn learn(lives: &[EndedLife]) -> FleetKnowledge {
        let completed: Vec<CompletedLife> = lives.iter().filter_map(EndedLife::completed).collect();
        let mut calibration = TrendCalibration::default();
        lives.iter().for_each(|l| calibration.add(l));
        let prior = (completed.len() >= MIN_PRIOR_LIVES)
            .then(|| FleetPrior::learn(&completed, RIDGE).ok())
            .flatten();
        FleetKnowledge {
            prior,
            calibration,
            lives: completed.len(),
        }
    }
}

/// What one sample did.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Out of order, or missing a value the consumable needs.
    Ignored,
    Updated,
    /// A replacement: the life that ended (this sample starts the next).
    Replaced(EndedLife),
}

/// The current life's state: serialisable, so the hub resumes it after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifeState {
    points: u64,
    start_ms: i64,
    last_ms: i64,
    start_counter: f64,
    last_counter: f64,
    /// Added to the counter after it went back without a replacement.
    counter_offset: f64,
    used: f64,
    rate_du: f64,
    rate_dt: f64,
    base: f64,
    peak: f64,
    last_value: Option<f64>,
    crossed_at: Option<f64>,
    cov_sum: Vec<f64>,
    cov_n: Vec<u64>,
    trend: Option<RulTrend>,
    checkpoints: Vec<Checkpoint>,
}

impl LifeState {
    fn new(covariates: usize, trend: Option<RulTrend>) -> LifeState {
        LifeState {
            points: 0,
            start_ms: 0,
            last_ms: i64::MIN,
            start_counter: 0.0,
            last_counter: 0.0,
            counter_offset: 0.0,
            used: 0.0,
            rate_du: 0.0,
            rate_dt: 0.0,
            base: f64::MAX,
            peak: f64::MIN,
            last_value: None,
            crossed_at: None,
            cov_sum: vec![0.0; covariates],
            cov_n: vec![0; covariates],
            trend,
            checkpoints: Vec::new(),
        }
    }

    /// Time stamp of the latest sample taken, if any.
    pub fn last_ms(&self) -> Option<i64> {
        (self.points > 0).then_some(self.last_ms)
    }
}

/// A remaining-life estimate of one consumable, with what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LifeEstimate {
    /// The limit expected to end the life.
    pub limit: Limit,
    /// In words: the model and the data behind the figure.
    pub model: String,
    /// The wear model's source, when wear is the limit.
    pub source: Option<Source>,
    pub life_start_ms: i64,
    pub as_of_ms: i64,
    /// Usage in this life so far.
    pub used: f64,
    /// Remaining usage (usage units); `None` for the calendar limit.
    pub remaining_usage: Option<f64>,
    pub remaining_ms: f64,
    /// Interval of the remaining time; no upper end when wear is not yet clear.
    pub interval_ms: (f64, Option<f64>),
    /// Two-sided coverage of the interval.
    pub coverage: f64,
    /// Usage per day, recently.
    pub usage_per_day: Option<f64>,
    pub last_value: Option<f64>,
    /// The wear trend's data, when there is a trend.
    pub basis: Option<Basis>,
    /// Completed lives behind the fleet prior (0: no prior used).
    pub prior_lives: usize,
    /// The covariates' means over this life, by name.
    pub covariates: BTreeMap<String, f64>,
}

impl LifeEstimate {
    pub fn end_ms(&self) -> i64 {
        self.as_of_ms.saturating_add(self.remaining_ms as i64)
    }

    pub fn end_interval_ms(&self) -> (i64, Option<i64>) {
        (
            self.as_of_ms.saturating_add(self.interval_ms.0 as i64),
            self.interval_ms.1.map(|h| self.as_of_ms.saturating_add(h as i64)),
        )
    }

    pub fn remaining_days(&self) -> f64 {
        self.remaining_ms / MS_PER_DAY
    }
}

/// One consumable of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct LifeTracker {
    spec: Consumable,
    trend_cfg: Option<TrendConfig>,
    state: LifeState,
}

impl LifeTracker {
    /// A tracker with no history.
    pub fn new(spec: &Consumable) -> Result<LifeTracker> {
        let trend_cfg = match (&spec.signal, spec.threshold) {
            (Some(_), Some(t)) => {
                let mut cfg = TrendConfig::new(t, spec.baseline.unwrap_or(0.0));
                // Lives last months: the usage rate follows the last day or so.
                cfg.rate_half_life_ms = MS_PER_DAY;
                Some(cfg)
            }
            _ => None,
        };
        let trend = trend_cfg.map(RulTrend::new).transpose()?;
        Ok(LifeTracker {
            state: LifeState::new(spec.covariates.len(), trend),
            spec: spec.clone(),
            trend_cfg,
        })
    }

    /// A tracker resuming a saved state; a state that does not fit the
    /// consumable (its profile changed) is refused.
    pub fn resume(spec: &Consumable, state: LifeState) -> Result<LifeTracker> {
        let fresh = LifeTracker::new(spec)?;
        if state.cov_sum.len() != spec.covariates.len()
            || state.trend.is_some() != fresh.trend_cfg.is_some()
            || state.trend.as_ref().map(|t| *t.config()) != fresh.trend_cfg
        {
            return Err(RulError::Data(format!(
                "saved state of `{}` does not match its profile",
                spec.name
            )));
        }
        Ok(LifeTracker { state, ..fresh })
    }

    pub fn spec(&self) -> &Consumable {
        &self.spec
    }

    pub fn state(&self) -> &LifeState {
        &self.state
    }

    /// Samples in the current life.
    pub fn points(&self) -> u64 {
        self.state.points
    }

    /// Takes one sample (`values` by metric name).
    pub fn observe(&mut self, ts_ms: i64, values: &BTreeMap<String, f64>) -> Observed {
        let finite = |m: &String| values.get(m).copied().filter(|v| v.is_finite());
        if self.state.points > 0 && ts_ms <= self.state.last_ms {
            return Observed::Ignored;
        }
        let counter = match &self.spec.usage {
            Some(m) => match finite(m) {
                Some(c) => Some(c),
                None => return Observed::Ignored,
            },
            None => None,
        };
        let value = match &self.spec.signal {
            Some(m) => match finite(m) {
                Some(v) => Some(v),
                None => return Observed::Ignored,
            },
            None => None,
        };
        let mut ended = None;
        if self.state.points > 0 && self.is_replacement(counter, value) {
            ended = Some(self.end_life());
        }
        self.take(ts_ms, counter, value, values);
        match ended {
            Some(life) => Observed::Replaced(life),
            None => Observed::Updated,
        }
    }

    fn is_replacement(&self, counter: Option<f64>, value: Option<f64>) -> bool {
        let s = &self.state;
        let counter_restarted = self.spec.usage_resets
            && counter.is_some_and(|c| c < s.last_counter - 1e-9 * s.last_counter.abs().max(1.0));
        let signal_fell = match (value, self.spec.threshold) {
            (Some(v), Some(t)) => {
                let rise = s.peak - s.base;
                // Only a real rise can fall back; noise on a flat signal is not a replacement.
                rise > 0.0
                    && rise >= 0.2 * (t - s.base).abs()
                    && v <= s.peak - self.spec.reset_fraction * rise
            }
            _ => false,
        };
        counter_restarted || signal_fell
    }

    fn end_life(&mut self) -> EndedLife {
        let s = &self.state;
        let life = s.crossed_at.or_else(|| {
            let e = s.trend.as_ref()?.predict()?;
            let total = s.used + e.remaining_usage;
            (s.used >= MIN_FRACTION_FOR_LIFE * total).then_some(total)
        });
        let ended = EndedLife {
            started_ms: s.start_ms,
            ended_ms: s.last_ms,
            life,
            used: s.used,
            covariates: self.covariate_means(),
            checkpoints: s.checkpoints.clone(),
        };
        let trend = self.trend_cfg.and_then(|c| RulTrend::new(c).ok());
        self.state = LifeState::new(self.spec.covariates.len(), trend);
        ended
    }

    fn take(&mut self, ts_ms: i64, counter: Option<f64>, value: Option<f64>, values: &BTreeMap<String, f64>) {
        let s = &mut self.state;
        if s.points == 0 {
            s.start_ms = ts_ms;
            s.start_counter = counter.unwrap_or(0.0);
            s.last_counter = s.start_counter;
        }
        let used = match counter {
            Some(c) => {
                if c < s.last_counter {
                    // A device-wide counter went back (a controller swapped, a
                    // rollover): keep usage continuous.
                    s.counter_offset += s.last_counter - c;
                }
                s.last_counter = c;
                (c + s.counter_offset - s.start_counter).max(s.used)
            }
            None => (ts_ms - s.start_ms) as f64 / MS_PER_HOUR,
        };
        if s.points > 0 {
            let dt = (ts_ms - s.last_ms) as f64;
            let f = 0.5f64.powf(dt / MS_PER_DAY);
            s.rate_du = s.rate_du * f + (used - s.used);
            s.rate_dt = s.rate_dt * f + dt;
        }
        s.used = used;
        s.last_ms = ts_ms;
        s.points += 1;
        for (k, m) in self.spec.covariates.iter().enumerate() {
            if let Some(v) = values.get(m).filter(|v| v.is_finite()) {
                s.cov_sum[k] += v;
                s.cov_n[k] += 1;
            }
        }
        let (Some(v), Some(t)) = (value, self.spec.threshold) else {
            return;
        };
        s.base = s.base.min(v);
        s.peak = s.peak.max(v);
        s.last_value = Some(v);
        if v >= t && s.crossed_at.is_none() {
            s.crossed_at = Some(used);
        }
        let Some(trend) = s.trend.as_mut() else {
            return;
        };
        trend.update(ts_ms, used, v);
        let due = s
            .checkpoints
            .last()
            .is_none_or(|c| used >= CHECKPOINT_GROWTH * c.usage);
        if due
            && used > 0.0
            && s.checkpoints.len() < MAX_CHECKPOINTS
            && s.crossed_at.is_none()
            && let Some(e) = trend.predict()
        {
            s.checkpoints.push(Checkpoint {
                usage: used,
                predicted_life: used + e.remaining_usage,
            });
        }
    }

    fn covariate_means(&self) -> Vec<f64> {
        let s = &self.state;
        s.cov_sum
            .iter()
            .zip(&s.cov_n)
            .map(|(sum, n)| if *n > 0 { sum / *n as f64 } else { f64::NAN })
            .collect()
    }

    /// Usage per millisecond: exact for operating time, measured for a counter.
    fn rate_per_ms(&self) -> Option<f64> {
        if self.spec.usage.is_none() {
            return Some(1.0 / MS_PER_HOUR);
        }
        let s = &self.state;
        (s.rate_dt > 0.0 && s.rate_du > 0.0).then(|| s.rate_du / s.rate_dt)
    }

    /// The wear limit: the trend, blended with the fleet prior and widened by
    /// what the fleet learned about trends; `(estimate, prior used)`.
    fn wear(&self, fleet: Option<&FleetKnowledge>, coverage: f64) -> Option<(Estimate, bool)> {
        let s = &self.state;
        let trend = s.trend.as_ref()?;
        if s.crossed_at.is_some() {
            let (basis, rate, _, as_of) = trend.context();
            let e = Estimate {
                source: trend.best_shape().map_or(Source::Prior, Source::Trend),
                basis,
                remaining_usage: 0.0,
                interval_usage: (0.0, Some(0.0)),
                usage_rate_per_ms: rate,
                as_of_ms: as_of,
            };
            return Some((e, false));
        }
        let own = trend.predict();
        let prior = fleet.and_then(|f| f.prior.as_ref());
        let calibrated = own.map(|e| {
            let total = s.used + e.remaining_usage;
            let learned = fleet
                .and_then(|f| f.calibration.log_sd(s.used / total))
                .map_or(0.0, |l| total * l);
            (e, e.sd_usage(coverage).max(learned))
        });
        match prior {
            Some(p) => {
                let pe = p.remaining(&self.covariate_means(), s.used);
                Some((blend_estimate(trend, calibrated, &pe, coverage), true))
            }
            None => {
                let (e, sd) = calibrated?;
                let z = normal_quantile(0.5 + coverage / 2.0);
                let widened = if sd > e.sd_usage(coverage) {
                    Estimate {
                        interval_usage: (
                            (e.remaining_usage - z * sd).max(0.0),
                            Some(e.remaining_usage + z * sd),
                        ),
                        ..e
                    }
                } else {
                    e
                };
                Some((widened, false))
            }
        }
    }

    /// Remaining life now, from the first limit reached; `None` before
    /// anything can be said (no sample, no usage rate yet, no wear shown and
    /// no other limit).
    pub fn estimate(&self, fleet: Option<&FleetKnowledge>, coverage: f64) -> Option<LifeEstimate> {
        let s = &self.state;
        if s.points == 0 {
            return None;
        }
        let rate = self.rate_per_ms();
        let mut best: Option<Candidate> = None;
        let mut consider = |limit, rem_ms: f64, interval: (f64, Option<f64>), rem_usage| {
            if rem_ms.is_finite() && best.as_ref().is_none_or(|b| rem_ms < b.1) {
                best = Some((limit, rem_ms, interval, rem_usage));
            }
        };
        let wear = self.wear(fleet, coverage);
        if let (Some((e, _)), Some(r)) = (&wear, rate) {
            let (lo, hi) = e.interval_usage;
            consider(
                Limit::Wear,
                e.remaining_usage / r,
                (lo / r, hi.map(|h| h / r)),
                Some(e.remaining_usage),
            );
        }
        if let (Some(rated), Some(r)) = (self.spec.rated_life, rate) {
            let rem = (rated - s.used).max(0.0);
            consider(Limit::RatedLife, rem / r, (rem / r, Some(rem / r)), Some(rem));
        }
        if let Some(days) = self.spec.calendar_limit_days {
            let rem = (s.start_ms as f64 + days * MS_PER_DAY - s.last_ms as f64).max(0.0);
            consider(Limit::Calendar, rem, (rem, Some(rem)), None);
        }
        let (limit, remaining_ms, (lo, hi), remaining_usage) = best?;
        // The part is replaced at the first limit whatever its wear: no interval runs past it.
        let hi = hi.map(|h| h.min(self.cap_ms(rate)));
        let (source, basis, prior_used) = match (&wear, limit) {
            (Some((e, p)), Limit::Wear) => (Some(e.source), Some(e.basis), *p),
            (Some((e, _)), _) => (None, Some(e.basis), false),
            (None, _) => (None, None, false),
        };
        let prior_lives = if prior_used {
            fleet.map_or(0, |f| f.lives)
        } else {
            0
        };
        let model = describe(limit, source, prior_lives);
        Some(LifeEstimate {
            limit,
            model,
            source,
            life_start_ms: s.start_ms,
            as_of_ms: s.last_ms,
            used: s.used,
            remaining_usage,
            remaining_ms,
            interval_ms: (lo.min(remaining_ms), hi.map(|h| h.max(remaining_ms))),
            coverage,
            usage_per_day: rate.map(|r| r * MS_PER_DAY),
            last_value: s.last_value,
            basis,
            prior_lives,
            covariates: self
                .spec
                .covariates
                .iter()
                .cloned()
                .zip(self.covariate_means())
                .filter(|(_, v)| v.is_finite())
                .collect(),
        })
    }

    /// Time to the earliest of the non-wear limits (infinite without one).
    fn cap_ms(&self, rate: Option<f64>) -> f64 {
        let s = &self.state;
        let rated = match (self.spec.rated_life, rate) {
            (Some(r), Some(rate)) => (r - s.used).max(0.0) / rate,
            _ => f64::INFINITY,
        };
        let calendar = self.spec.calendar_limit_days.map_or(f64::INFINITY, |d| {
            (s.start_ms as f64 + d * MS_PER_DAY - s.last_ms as f64).max(0.0)
        });
        rated.min(calendar)
    }
}

/// A limit's remaining time, its interval and remaining usage.
type Candidate = (Limit, f64, (f64, Option<f64>), Option<f64>);

/// The model in words, recorded with each prediction.
fn describe(limit: Limit, source: Option<Source>, prior_lives: usize) -> String {
    match (limit, source) {
        (Limit::RatedLife, _) => "rated life at the recent usage rate".into(),
        (Limit::Calendar, _) => "calendar limit since fitted".into(),
        (Limit::Wear, Some(Source::Prior)) => format!("fleet prior ({prior_lives} completed lives)"),
        (Limit::Wear, Some(Source::Blend { shape, trend_weight })) => format!(
            "{} trend ({:.0} %) blended with the fleet prior ({prior_lives} completed lives)",
            shape.name(),
            100.0 * trend_weight
        ),
        (Limit::Wear, Some(s)) => s.to_string(),
        (Limit::Wear, None) => "wear signal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Deterministic, roughly normal noise (sum of 4 uniforms, sd 1).
    fn noise(seed: u64, i: u64) -> f64 {
        (0..4)
            .map(|k| {
                let mut s = (seed ^ (i << 8) ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                s ^= s >> 31;
                s = s.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                s ^= s >> 29;
                (s % 1_000_001) as f64 / 1_000_000.0 - 0.5
            })
            .sum::<f64>()
            * 3f64.sqrt()
    }

    fn spec(extra: &str) -> Consumable {
        let text = format!(
            "name = \"p\"\n[[metrics]]\nname = \"dp\"\n[[metrics]]\nname = \"hours\"\n[[metrics]]\nname = \"dust\"\n\
             [[consumables]]\nname = \"filter\"\nlead_time_days = 7\n{extra}"
        );
        let p = crate::profile::Profile::parse("p.toml", &text).expect("profile");
        p.consumables[0].clone()
    }

    fn sample(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn linear_wear_in_operating_hours_reaches_its_known_end() {
        // 50 + 2 Pa/h reaches 250 at 100 h.
        let mut t = LifeTracker::new(&spec("signal = \"dp\"\nthreshold = 250.0\n")).expect("spec");
        for i in 0..=50u64 {
            let v = 50.0 + 2.0 * i as f64 + noise(1, i);
            assert_eq!(
                t.observe(i as i64 * HOUR, &sample(&[("dp", v)])),
                Observed::Updated
            );
        }
        let e = t.estimate(None, 0.9).expect("estimate");
        assert_eq!(e.limit, Limit::Wear);
        assert!((e.remaining_ms / HOUR as f64 - 50.0).abs() < 3.0, "{e:?}");
        assert!((e.used - 50.0).abs() < 1e-9);
        let (lo, hi) = e.interval_ms;
        assert!(
            lo <= 50.0 * HOUR as f64 && hi.expect("clear wear") >= 50.0 * HOUR as f64,
            "{e:?}"
        );
        assert_eq!(e.usage_per_day, Some(24.0));
        assert!(e.model.contains("linear trend"), "{}", e.model);
        assert_eq!(e.end_ms(), e.as_of_ms + e.remaining_ms as i64);
    }

    #[test]
    fn exponential_wear_with_outliers_on_a_usage_counter() {
        // 10·e^{u/40} reaches 200 at u = 40 ln 20 ≈ 119.8 run hours; the
        // counter runs at half speed (0.5 h per hour), every 13th reading is wild.
        let mut t =
            LifeTracker::new(&spec("signal = \"dp\"\nthreshold = 200.0\nusage = \"hours\"\n")).expect("spec");
        for i in 0..=120u64 {
            let u = 1000.0 + 0.5 * i as f64;
            let mut v = 10.0 * ((u - 1000.0) / 40.0).exp() * (1.0 + 0.01 * noise(2, i));
            if i % 13 == 5 {
                v *= 2.5;
            }
            t.observe(i as i64 * HOUR, &sample(&[("dp", v), ("hours", u)]));
        }
        let e = t.estimate(None, 0.9).expect("estimate");
        let truth = 40.0 * 20f64.ln() - 60.0;
        let rem = e.remaining_usage.expect("usage");
        assert!((rem - truth).abs() < 0.1 * truth, "{rem} vs {truth}: {e:?}");
        assert!(
            (e.remaining_ms / HOUR as f64 - 2.0 * rem).abs() < 0.05 * rem,
            "half an hour of use per hour"
        );
        assert!(e.model.contains("exponential"), "{}", e.model);
    }

    #[test]
    fn a_replacement_ends_the_life_and_a_flat_signal_is_not_one() {
        let mut t = LifeTracker::new(&spec("signal = \"dp\"\nthreshold = 250.0\n")).expect("spec");
        // Flat, noisy: no replacement however it wobbles.
        for i in 0..20u64 {
            let v = 80.0 + 3.0 * noise(3, i);
            assert_eq!(
                t.observe(i as i64 * HOUR, &sample(&[("dp", v)])),
                Observed::Updated
            );
        }
        // Wear up to and past the threshold.
        let mut ts = 20;
        for k in 0..100u64 {
            let v = 80.0 + 2.0 * k as f64;
            t.observe(ts * HOUR, &sample(&[("dp", v)]));
            ts += 1;
        }
        assert_eq!(t.estimate(None, 0.9).expect("spent").remaining_ms, 0.0);
        let Observed::Replaced(life) = t.observe(ts * HOUR, &sample(&[("dp", 81.0)])) else {
            panic!("replacement not seen");
        };
        // 80 + 2k ≥ 250 first at k = 85, i.e. 105 h after the first sample.
        assert_eq!(life.life, Some(105.0));
        assert_eq!(life.used, 119.0);
        assert_eq!((life.started_ms, life.ended_ms), (0, 119 * HOUR));
        assert!(!life.checkpoints.is_empty());
        assert_eq!(t.points(), 1, "the new life starts with the replacement's sample");
        assert_eq!(
            t.estimate(None, 0.9),
            None,
            "nothing known yet about the new part"
        );
        // Out of order and missing values are ignored.
        assert_eq!(t.observe(ts * HOUR, &sample(&[("dp", 82.0)])), Observed::Ignored);
        assert_eq!(
            t.observe((ts + 1) * HOUR, &sample(&[("x", 82.0)])),
            Observed::Ignored
        );
    }

    #[test]
    fn usage_counter_with_rated_life_and_calendar_limit() {
        let resets =
            spec("usage = \"hours\"\nusage_resets = true\nrated_life = 100.0\ncalendar_limit_days = 30\n");
        let mut t = LifeTracker::new(&resets).expect("spec");
        for i in 0..=10i64 {
            // 2 run hours per hour: 80 of 100 used after 10 h (wait: 20 used).
            t.observe(i * HOUR, &sample(&[("hours", 2.0 * i as f64)]));
        }
        let e = t.estimate(None, 0.9).expect("estimate");
        assert_eq!(e.limit, Limit::RatedLife);
        assert_eq!(e.remaining_usage, Some(80.0));
        assert!((e.remaining_ms / HOUR as f64 - 40.0).abs() < 1e-6, "{e:?}");
        assert_eq!(e.model, "rated life at the recent usage rate");
        // A counter restarting is a replacement when it counts the part only.
        let Observed::Replaced(life) = t.observe(11 * HOUR, &sample(&[("hours", 0.5)])) else {
            panic!("counter restart not seen");
        };
        assert_eq!((life.used, life.life), (20.0, None));

        // A device-wide counter going back is not a replacement: usage stays continuous.
        let mut t = LifeTracker::new(&spec(
            "usage = \"hours\"\nrated_life = 1000.0\ncalendar_limit_days = 2\n",
        ))
        .expect("spec");
        t.observe(0, &sample(&[("hours", 500.0)]));
        t.observe(HOUR, &sample(&[("hours", 501.0)]));
        assert_eq!(t.observe(2 * HOUR, &sample(&[("hours", 3.0)])), Observed::Updated);
        t.observe(3 * HOUR, &sample(&[("hours", 4.0)]));
        let e = t.estimate(None, 0.9).expect("estimate");
        assert_eq!(e.used, 2.0, "the jump back is bridged");
        assert_eq!(
            e.limit,
            Limit::Calendar,
            "45 h of calendar left before 998 run hours"
        );
        assert_eq!(e.remaining_ms, 45.0 * HOUR as f64);
    }

    /// A fleet whose filters last 200 h × (10 / dust); each life is fed hourly.
    fn run_life(t: &mut LifeTracker, seed: u64, dust: f64, start_h: i64, until_fraction: f64) -> f64 {
        let life = 200.0 * 10.0 / dust;
        let mut h = 0;
        while (h as f64) < until_fraction * life {
            let x = h as f64 / life;
            let v = 80.0 + 85.0 * x + 85.0 * x * x + 0.5 * noise(seed, h as u64);
            t.observe(
                (start_h + h) * HOUR,
                &sample(&[
                    ("dp", v),
                    ("dust", dust * (1.0 + 0.02 * noise(seed + 7, h as u64))),
                ]),
            );
            h += 1;
        }
        life
    }

    fn fleet_spec() -> Consumable {
        spec("signal = \"dp\"\nthreshold = 250.0\ncovariates = [\"dust\"]\n")
    }

    fn learned_fleet() -> FleetKnowledge {
        let mut lives = Vec::new();
        for k in 0..30u64 {
            let mut t = LifeTracker::new(&fleet_spec()).expect("spec");
            let dust = 5.0 + (k as f64 * 7.3) % 15.0;
            run_life(&mut t, 100 + k, dust, 0, 1.05);
            let Observed::Replaced(l) = t.observe(100_000 * HOUR, &sample(&[("dp", 80.0), ("dust", dust)]))
            else {
                panic!("no replacement");
            };
            lives.push(l);
        }
        FleetKnowledge::learn(&lives)
    }

    #[test]
    fn the_fleet_prior_gives_a_new_part_an_estimate_and_yields_to_its_data() {
        let fleet = learned_fleet();
        assert_eq!(fleet.lives, 30);
        let mut t = LifeTracker::new(&fleet_spec()).expect("spec");
        let truth = run_life(&mut t, 9, 8.0, 0, 0.012);
        let early = t.estimate(Some(&fleet), 0.9).expect("prior estimate");
        assert!(early.model.contains("fleet prior"), "{}", early.model);
        assert_eq!(early.prior_lives, 30);
        let total = early.used + early.remaining_usage.expect("usage");
        assert!((total - truth).abs() < 0.1 * truth, "{total} vs {truth}");
        assert!(t.estimate(None, 0.9).is_none(), "alone, two readings say nothing");

        let mut t = LifeTracker::new(&fleet_spec()).expect("spec");
        let truth = run_life(&mut t, 10, 12.0, 0, 0.5);
        let half = t.estimate(Some(&fleet), 0.9).expect("estimate");
        let total = half.used + half.remaining_usage.expect("usage");
        assert!(
            (total - truth).abs() < 0.1 * truth,
            "{total} vs {truth}: {half:?}"
        );
        assert_eq!(half.covariates.keys().collect::<Vec<_>>(), ["dust"]);
    }

    #[test]
    fn intervals_cover_the_truth_about_as_often_as_they_say() {
        // Linear wear with normal noise; the 90 % interval at mid-life should
        // cover the true end for about 90 % of items.
        let mut covered = 0;
        let n = 400;
        for seed in 0..n {
            let mut t = LifeTracker::new(&spec("signal = \"dp\"\nthreshold = 250.0\n")).expect("spec");
            for i in 0..60u64 {
                let v = 50.0 + 2.0 * i as f64 + 8.0 * noise(seed, i);
                t.observe(i as i64 * HOUR, &sample(&[("dp", v)]));
            }
            let e = t.estimate(None, 0.9).expect("estimate");
            let truth = 41.0 * HOUR as f64;
            if e.interval_ms.0 <= truth && e.interval_ms.1.is_some_and(|h| truth <= h) {
                covered += 1;
            }
        }
        let rate = f64::from(covered) / n as f64;
        assert!((0.84..=0.96).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn state_survives_a_restart() {
        let s = spec("signal = \"dp\"\nthreshold = 250.0\n");
        let mut t = LifeTracker::new(&s).expect("spec");
        for i in 0..30u64 {
            t.observe(
                i as i64 * HOUR,
                &sample(&[("dp", 50.0 + 3.0 * i as f64 + noise(4, i))]),
            );
        }
        let json = serde_json::to_string(t.state()).expect("serialise");
        let state: LifeState = serde_json::from_str(&json).expect("parse");
        let resumed = LifeTracker::resume(&s, state).expect("resume");
        let (a, b) = (
            resumed.estimate(None, 0.9).expect("a"),
            t.estimate(None, 0.9).expect("b"),
        );
        // JSON keeps floats to within an ulp.
        assert!((a.remaining_ms - b.remaining_ms).abs() < 1e-6 * b.remaining_ms);
        assert!((a.interval_ms.0 - b.interval_ms.0).abs() < 1e-6 * b.remaining_ms);
        assert_eq!(
            (a.used, a.basis.map(|b| b.points)),
            (b.used, b.basis.map(|b| b.points))
        );
        let other = spec("signal = \"dp\"\nthreshold = 300.0\n");
        let state: LifeState = serde_json::from_str(&json).expect("parse");
        assert!(LifeTracker::resume(&other, state).is_err(), "profile changed");
    }
}
