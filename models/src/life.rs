//! Remaining-life trend of one consumable: an exponentially weighted linear
//! fit of the wear signal against data time, updated in O(1) per sample.
//!
//! Pure: time is the sample's own timestamp, never the clock. The fit forgets
//! old samples with a half-life in data time, so an accelerating wear curve
//! (a filter loading with dust) is followed by its recent slope. A replacement
//! shows as the signal falling back; the estimator then starts a new life.

const MS_PER_DAY: f64 = 86_400_000.0;

/// Tuning of the trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendConfig {
    /// Weight of a sample halves after this much data time.
    pub half_life_days: f64,
    /// Samples needed in the current life before predicting.
    pub min_samples: u32,
    /// Data time the current life must span before predicting.
    pub min_span_days: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            half_life_days: 5.0,
            min_samples: 5,
            min_span_days: 2.0,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The sample extended the current life.
    Extended,
    /// The signal fell back: the part was replaced and a new life started.
    Replaced,
    /// Out of order or not finite: ignored.
    Ignored,
}

/// A remaining-life estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Time of the latest sample the prediction is based on.
    pub as_of_ms: i64,
    /// When the fitted trend reaches the threshold (the latest sample's time
    /// when the signal is already past it).
    pub end_of_life_ms: i64,
    /// 90 % interval of the end of life; `None` upper bound when the slope
    /// is not clearly positive.
    pub interval_ms: (i64, Option<i64>),
    /// Wear rate, signal units per day.
    pub slope_per_day: f64,
    /// Latest observed value of the signal.
    pub last_value: f64,
    /// Effective number of samples behind the fit.
    pub samples: f64,
    /// Start of the current life (first sample after the last replacement).
    pub life_start_ms: i64,
}

impl Prediction {
    /// Remaining life in days from the prediction's own time.
    pub fn remaining_days(&self) -> f64 {
        (self.end_of_life_ms - self.as_of_ms) as f64 / MS_PER_DAY
    }
}

/// Incremental trend state of one consumable.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    cfg: TrendConfig,
    threshold: f64,
    reset_fraction: f64,
    life_start_ms: i64,
    last_ms: i64,
    count: u32,
    last_value: f64,
    base: f64,
    peak: f64,
    // Exponentially weighted moments (West's algorithm), x in days since life start.
    weight: f64,
    weight_sq: f64,
    mean_x: f64,
    mean_y: f64,
    cxx: f64,
    cxy: f64,
    cyy: f64,
}

impl Trend {
    /// A trend for a signal spent at `threshold`; a fall of `reset_fraction`
    /// of the rise so far marks a replacement.
    pub fn new(cfg: TrendConfig, threshold: f64, reset_fraction: f64) -> Trend {
        Trend {
            cfg,
            threshold,
            reset_fraction,
            life_start_ms: 0,
            last_ms: i64::MIN,
            count: 0,
            last_value: f64::NAN,
            base: f64::INFINITY,
            peak: f64::NEG_INFINITY,
            weight: 0.0,
            weight_sq: 0.0,
            mean_x: 0.0,
            mean_y: 0.0,
            cxx: 0.0,
            cxy: 0.0,
            cyy: 0.0,
        }
    }

    /// Samples in the current life.
    pub fn samples(&self) -> u32 {
        self.count
    }

    /// Adds one sample.
    pub fn update(&mut self, ts_ms: i64, value: f64) -> Update {
        if !value.is_finite() || ts_ms <= self.last_ms {
            return Update::Ignored;
        }
        let mut outcome = Update::Extended;
        if self.count > 0 && self.is_replacement(value) {
            *self = Trend::new(self.cfg, self.threshold, self.reset_fraction);
            outcome = Update::Replaced;
        }
        if self.count == 0 {
            self.life_start_ms = ts_ms;
        }
        let x = (ts_ms - self.life_start_ms) as f64 / MS_PER_DAY;
        if self.count > 0 {
            let dt_days = (ts_ms - self.last_ms) as f64 / MS_PER_DAY;
            let decay = 0.5f64.powf(dt_days / self.cfg.half_life_days);
            self.weight *= decay;
            self.weight_sq *= decay * decay;
            self.cxx *= decay;
            self.cxy *= decay;
            self.cyy *= decay;
        }
        self.weight += 1.0;
        self.weight_sq += 1.0;
        let dx = x - self.mean_x;
        let dy = value - self.mean_y;
        self.mean_x += dx / self.weight;
        self.mean_y += dy / self.weight;
        self.cxx += dx * (x - self.mean_x);
        self.cxy += dx * (value - self.mean_y);
        self.cyy += dy * (value - self.mean_y);

        self.count += 1;
        self.last_ms = ts_ms;
        self.last_value = value;
        self.base = self.base.min(value);
        self.peak = self.peak.max(value);
        outcome
    }

    fn is_replacement(&self, value: f64) -> bool {
        let rise = self.peak - self.base;
        // Only a real rise can fall back; noise on a flat signal is not a replacement.
        let meaningful = rise >= 0.2 * (self.threshold - self.base).abs();
        meaningful && value <= self.peak - self.reset_fraction * rise
    }

    /// The current remaining-life estimate, or `None` while the life is too
    /// short or shows no wear.
    pub fn predict(&self) -> Option<Prediction> {
        let span_days = (self.last_ms - self.life_start_ms) as f64 / MS_PER_DAY;
        if self.count < self.cfg.min_samples || span_days < self.cfg.min_span_days || self.cxx <= 0.0 {
            return None;
        }
        let slope = self.cxy / self.cxx;
        let last_x = span_days;
        let base = Prediction {
            as_of_ms: self.last_ms,
            end_of_life_ms: self.last_ms,
            interval_ms: (self.last_ms, Some(self.last_ms)),
            slope_per_day: slope,
            last_value: self.last_value,
            samples: self.effective_samples(),
            life_start_ms: self.life_start_ms,
        };
        if self.last_value >= self.threshold {
            return Some(base);
        }
        if slope <= 0.0 {
            return None;
        }
        // Fitted level now, then time to reach the threshold at the fitted slope.
        let level = self.mean_y + slope * (last_x - self.mean_x);
        let days_at = |s: f64| ((self.threshold - level) / s).max(0.0);
        let n_eff = self.effective_samples();
        let resid = ((self.cyy - slope * self.cxy) / self.weight).max(0.0);
        let se = if n_eff > 2.0 {
            (resid / self.cxx * n_eff / (n_eff - 2.0)).sqrt()
        } else {
            f64::INFINITY
        };
        let z = 1.645;
        let eol = self.last_ms + days_ms(days_at(slope));
        let early = self.last_ms + days_ms(days_at(slope + z * se));
        let late = (slope - z * se > 0.0).then(|| self.last_ms + days_ms(days_at(slope - z * se)));
        Some(Prediction {
            end_of_life_ms: eol,
            interval_ms: (early, late),
            ..base
        })
    }

    /// Kish's effective sample size of the weighted fit.
    fn effective_samples(&self) -> f64 {
        if self.weight_sq > 0.0 {
            self.weight * self.weight / self.weight_sq
        } else {
            0.0
        }
    }
}

fn days_ms(days: f64) -> i64 {
    // Clamp absurd horizons (a nearly flat slope) to a century.
    (days.min(36_500.0) * MS_PER_DAY).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn trend() -> Trend {
        Trend::new(TrendConfig::default(), 250.0, 0.5)
    }

    #[test]
    fn linear_wear_predicts_the_crossing() {
        let mut t = trend();
        // 80 Pa rising 2 Pa/day: reaches 250 on day 85.
        for d in 0..=40 {
            assert_eq!(t.update(d * DAY, 80.0 + 2.0 * d as f64), Update::Extended);
        }
        let p = t.predict().expect("prediction");
        assert!((p.slope_per_day - 2.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.end_of_life_ms, 85 * DAY);
        assert!((p.remaining_days() - 45.0).abs() < 1e-6);
        assert_eq!(p.interval_ms, (85 * DAY, Some(85 * DAY)), "no noise, no width");
    }

    #[test]
    fn needs_enough_history_and_a_rising_signal() {
        let mut t = trend();
        for d in 0..4 {
            t.update(d * DAY, 100.0 + d as f64);
        }
        assert_eq!(t.predict(), None, "four samples are not enough");
        let mut flat = trend();
        for d in 0..20 {
            flat.update(d * DAY, 100.0);
        }
        assert_eq!(flat.predict(), None, "a flat signal shows no wear");
    }

    #[test]
    fn noise_widens_the_interval_around_the_estimate() {
        let mut t = trend();
        for d in 0..30 {
            let noise = if d % 2 == 0 { 3.0 } else { -3.0 };
            t.update(d * DAY, 80.0 + 3.0 * d as f64 + noise);
        }
        let p = t.predict().expect("prediction");
        let (lo, hi) = p.interval_ms;
        let hi = hi.expect("clearly rising");
        assert!(lo < p.end_of_life_ms && p.end_of_life_ms < hi, "{p:?}");
        let truth = (170.0 / 3.0 * DAY as f64) as i64;
        assert!((p.end_of_life_ms - truth).abs() < 3 * DAY, "{p:?}");
    }

    #[test]
    fn accelerating_wear_follows_the_recent_slope() {
        let mut t = trend();
        // Quadratic rise: slope at day 60 is 0.04*60 = 2.4 Pa/day; an
        // unweighted fit of the whole life would say 1.2.
        for d in 0..=60 {
            t.update(d * DAY, 80.0 + 0.02 * (d * d) as f64);
        }
        let p = t.predict().expect("prediction");
        assert!(p.slope_per_day > 1.8, "recent slope dominates: {p:?}");
    }

    #[test]
    fn past_threshold_means_end_of_life_now() {
        let mut t = trend();
        for d in 0..10 {
            t.update(d * DAY, 240.0 + 2.0 * d as f64);
        }
        let p = t.predict().expect("prediction");
        assert_eq!(p.end_of_life_ms, 9 * DAY);
    }

    #[test]
    fn replacement_starts_a_new_life() {
        let mut t = trend();
        for d in 0..50 {
            t.update(d * DAY, 80.0 + 3.0 * d as f64);
        }
        assert_eq!(t.update(50 * DAY, 82.0), Update::Replaced);
        assert_eq!(t.samples(), 1);
        assert_eq!(t.predict(), None);
        // Small noise on a fresh filter is not another replacement.
        assert_eq!(t.update(51 * DAY, 81.0), Update::Extended);
    }

    #[test]
    fn out_of_order_and_nan_are_ignored() {
        let mut t = trend();
        t.update(10 * DAY, 100.0);
        assert_eq!(t.update(5 * DAY, 90.0), Update::Ignored);
        assert_eq!(t.update(11 * DAY, f64::NAN), Update::Ignored);
        assert_eq!(t.samples(), 1);
    }
}
