//! Robust, incremental degradation trend of one signal, extrapolated to a
//! threshold: remaining life in usage units (operating hours, air volume, dust
//! mass, …) and in calendar time from the recent usage rate, with an interval.
//!
//! Three shapes are fitted side by side, each as a straight line in its own
//! coordinates, on weighted sufficient statistics (O(1) per point, nothing
//! refitted): linear `y = a + b·u`, exponential `ln(y − floor) = a + b·u` and
//! power law `ln(y − floor) = a + b·ln(u − u₀)`. The shape with the highest
//! likelihood of the observed `y` (log shapes pay their Jacobian) is used.
//! Outliers are down-weighted as they arrive: each point gets the Huber weight
//! of its residual against the fit so far (a one-step IRLS); the first
//! `warmup` points are taken at full weight. Optional forgetting (a half-life
//! in usage) lets the fit follow a changing regime.
//!
//! Pure: usage, time stamps and values are the caller's; no clock.

// Negated comparisons (`!(x > 0.0)`) are deliberate: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::{Result, RulError};
use serde::{Deserialize, Serialize};

/// Trend shapes, each linear in transformed coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Linear,
    Exponential,
    Power,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Linear, Shape::Exponential, Shape::Power];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Linear => "linear",
            Shape::Exponential => "exponential",
            Shape::Power => "power",
        }
    }
}

/// Settings of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendConfig {
    /// The signal is spent when it reaches this value (it rises towards it).
    pub threshold: f64,
    /// Baseline of the log shapes; readings at or below it (drop-outs) are ignored.
    pub floor: f64,
    /// Weight of a point halves after this much usage; `None`: whole life.
    pub half_life: Option<f64>,
    /// Huber tuning constant, in residual standard deviations.
    pub huber_k: f64,
    /// Points taken at full weight before outliers are judged.
    pub warmup: usize,
    /// Points needed before a prediction.
    pub min_points: usize,
    /// Two-sided coverage of the interval (e.g. 0.9).
    pub coverage: f64,
    /// Half-life of the usage-rate estimate, in milliseconds of data time.
    pub rate_half_life_ms: f64,
    /// The item is spent at the first reading past the threshold; with
    /// reading noise σ that comes when the trend is about `margin·σ` below it.
    pub threshold_margin: f64,
    /// The interval is for the first single reading past the threshold
    /// (reading noise included) rather than for the wear itself crossing it.
    pub reading_interval: bool,
}

impl TrendConfig {
    /// Defaults for a signal spent at `threshold` with baseline `floor`.
    pub fn new(threshold: f64, floor: f64) -> TrendConfig {
        TrendConfig {
            threshold,
            floor,
            half_life: None,
            huber_k: 1.345,
            warmup: 8,
            min_points: 5,
            coverage: 0.9,
            rate_half_life_ms: 86_400_000.0,
            threshold_margin: 0.0,
            reading_interval: false,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(RulError::Config { name, reason });
        if !(self.threshold > self.floor) {
            return bad(
                "threshold",
                format!("{} is not above the floor {}", self.threshold, self.floor),
            );
        }
        if self.half_life.is_some_and(|h| !(h > 0.0)) {
            return bad("half_life", "must be positive".into());
        }
        if !(self.coverage > 0.0 && self.coverage < 1.0) {
            return bad("coverage", format!("{} is not in (0, 1)", self.coverage));
        }
        if !(self.huber_k > 0.0) || !(self.rate_half_life_ms > 0.0) {
            return bad(
                "huber_k",
                "Huber constant and rate half-life must be positive".into(),
            );
        }
        Ok(())
    }
}

/// Weighted moments of `(x, z)` for one shape (West's update), with forgetting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Moments {
    w: f64,
    w2: f64,
    mx: f64,
    mz: f64,
    sxx: f64,
    sxz: f64,
    szz: f64,
    /// Σ w·ln(y − floor): the Jacobian of the log shapes.
    jac: f64,
    n: usize,
}

impl Moments {
    fn decay(&mut self, f: f64) {
        self.w *= f;
        self.w2 *= f * f;
        self.sxx *= f;
        self.sxz *= f;
        self.szz *= f;
        self.jac *= f;
    }

    fn add(&mut self, x: f64, z: f64, w: f64, jac: f64) {
        self.w += w;
        self.w2 += w * w;
        let dx = x - self.mx;
        let dz = z - self.mz;
        self.mx += w * dx / self.w;
        self.mz += w * dz / self.w;
        self.sxx += w * dx * (x - self.mx);
        self.sxz += w * dx * (z - self.mz);
        self.szz += w * dz * (z - self.mz);
        self.jac += w * jac;
        self.n += 1;
    }

    fn slope(&self) -> Option<f64> {
        (self.sxx > 0.0).then(|| self.sxz / self.sxx)
    }

    /// Weighted residual variance of the fitted line.
    fn resid_var(&self) -> f64 {
        match self.slope() {
            Some(b) if self.w > 0.0 => ((self.szz - b * self.sxz) / self.w).max(0.0),
            _ => f64::INFINITY,
        }
    }

    /// [`Self::resid_var`] made consistent for normal noise: Huber weights
    /// shrink the largest residuals, so the weighted variance reads low by
    /// `factor` (see [`huber_consistency`]).
    fn noise_var(&self, factor: f64) -> f64 {
        self.resid_var() / factor
    }

    fn n_eff(&self) -> f64 {
        if self.w2 > 0.0 {
            self.w * self.w / self.w2
        } else {
            0.0
        }
    }

    /// Huber weight of a new point against the current fit.
    fn huber(&self, x: f64, z: f64, k: f64) -> f64 {
        let (Some(b), s) = (self.slope(), self.resid_var().sqrt()) else {
            return 1.0;
        };
        let r = (z - (self.mz + b * (x - self.mx))).abs();
        if !(s > 0.0) || r <= k * s { 1.0 } else { k * s / r }
    }

    /// Log-likelihood of `y` per unit weight (Gaussian residuals, profile).
    fn loglik(&self) -> f64 {
        let v = self.resid_var().max(1e-300);
        -0.5 * v.ln() - if self.w > 0.0 { self.jac / self.w } else { 0.0 }
    }
}

/// Which model produced an estimate and from what data, so a work order can explain itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The item's own trend.
    Trend(Shape),
    /// The fleet prior alone (own trend not yet usable).
    Prior,
    /// Precision-weighted blend; `trend_weight` in 0..=1.
    Blend { shape: Shape, trend_weight: f64 },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Trend(s) => write!(f, "{} trend", s.name()),
            Source::Prior => write!(f, "fleet prior"),
            Source::Blend { shape, trend_weight } => write!(
                f,
                "{} trend ({:.0} %) blended with the fleet prior",
                shape.name(),
                100.0 * trend_weight
            ),
        }
    }
}

/// The data behind an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// Points of the current life used by the fit.
    pub points: usize,
    /// Effective number of points after Huber and forgetting weights.
    pub effective_points: f64,
    /// Usage at the first and the latest point.
    pub usage_window: (f64, f64),
    /// Time stamps of the first and the latest point.
    pub time_window_ms: (i64, i64),
}

/// A remaining-life estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub source: Source,
    pub basis: Basis,
    /// Remaining usage until the threshold.
    pub remaining_usage: f64,
    /// Interval of the remaining usage; `None` upper bound when wear is not clearly shown.
    pub interval_usage: (f64, Option<f64>),
    /// Usage per millisecond, recently; `None` before two time-stamped points.
    pub usage_rate_per_ms: Option<f64>,
    /// Time stamp of the latest point.
    pub as_of_ms: i64,
}

impl Estimate {
    /// Remaining calendar time in milliseconds at the recent usage rate.
    pub fn remaining_ms(&self) -> Option<f64> {
        let r = self.usage_rate_per_ms.filter(|r| *r > 0.0)?;
        Some(self.remaining_usage / r)
    }

    /// Calendar interval in milliseconds at the recent usage rate.
    pub fn interval_ms(&self) -> Option<(f64, Option<f64>)> {
        let r = self.usage_rate_per_ms.filter(|r| *r > 0.0)?;
        Some((self.interval_usage.0 / r, self.interval_usage.1.map(|u| u / r)))
    }

    /// A standard deviation read off the interval (infinite without an upper bound).
    pub fn sd_usage(&self, coverage: f64) -> f64 {
        match self.interval_usage.1 {
            Some(hi) => (hi - self.interval_usage.0).max(0.0) / (2.0 * normal_quantile(0.5 + coverage / 2.0)),
            None => f64::INFINITY,
        }
    }
}

/// Incremental robust trend of one item's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulTrend {
    cfg: TrendConfig,
    /// `huber_consistency(cfg.huber_k)`.
    consistency: f64,
    fits: [Moments; 3],
    start_usage: f64,
    start_ms: i64,
    last_usage: f64,
    last_ms: i64,
    points: usize,
    rate_du: f64,
    rate_dt: f64,
}

impl RulTrend {
    pub fn new(cfg: TrendConfig) -> Result<RulTrend> {
        cfg.check()?;
        Ok(RulTrend {
            consistency: huber_consistency(cfg.huber_k),
            cfg,
            fits: [Moments::default(); 3],
            start_usage: 0.0,
            start_ms: 0,
            last_usage: 0.0,
            last_ms: i64::MIN,
            points: 0,
            rate_du: 0.0,
            rate_dt: 0.0,
        })
    }

    pub fn config(&self) -> &TrendConfig {
        &self.cfg
    }

    /// Points taken into the current life.
    pub fn points(&self) -> usize {
        self.points
    }

    /// Adds a reading `value` at cumulative `usage` and time `ts_ms`. Returns
    /// false (and changes nothing) for a reading that is not finite, goes back
    /// in usage or time, or sits at or below the floor.
    pub fn update(&mut self, ts_ms: i64, usage: f64, value: f64) -> bool {
        if !usage.is_finite() || !value.is_finite() || value <= self.cfg.floor || ts_ms < self.last_ms {
            return false;
        }
        if self.points > 0 && usage < self.last_usage {
            return false;
        }
        if self.points == 0 {
            self.start_usage = usage;
            self.start_ms = ts_ms;
        } else {
            let dt = (ts_ms - self.last_ms) as f64;
            let f = 0.5f64.powf(dt / self.cfg.rate_half_life_ms);
            self.rate_du = self.rate_du * f + (usage - self.last_usage);
            self.rate_dt = self.rate_dt * f + dt;
            if let Some(h) = self.cfg.half_life {
                let f = 0.5f64.powf((usage - self.last_usage) / h);
                self.fits.iter_mut().for_each(|m| m.decay(f));
            }
        }
        let ly = (value - self.cfg.floor).ln();
        let rel = usage - self.start_usage;
        let warm = self.points < self.cfg.warmup;
        for (m, shape) in self.fits.iter_mut().zip(Shape::ALL) {
            let (x, z, jac) = match shape {
                Shape::Linear => (rel, value, 0.0),
                Shape::Exponential => (rel, ly, ly),
                Shape::Power if rel > 0.0 => (rel.ln(), ly, ly),
                Shape::Power => continue,
            };
            let w = if warm {
                1.0
            } else {
                m.huber(x, z, self.cfg.huber_k)
            };
            m.add(x, z, w, jac);
        }
        self.points += 1;
        self.last_usage = usage;
        self.last_ms = ts_ms;
        true
    }

    /// The most likely shape, if any is fitted with a rising trend.
    pub fn best_shape(&self) -> Option<Shape> {
        Shape::ALL
            .into_iter()
            .zip(&self.fits)
            .filter(|(_, m)| m.n >= self.cfg.min_points.max(3) && m.slope().is_some_and(|b| b > 0.0))
            .max_by(|a, b| a.1.loglik().total_cmp(&b.1.loglik()))
            .map(|(s, _)| s)
    }

    fn basis(&self, shape: Option<Shape>) -> Basis {
        let eff = shape.map_or(0.0, |s| self.fits[s as usize].n_eff());
        Basis {
            points: self.points,
            effective_points: eff,
            usage_window: (self.start_usage, self.last_usage),
            time_window_ms: (self.start_ms, self.last_ms),
        }
    }

    fn rate(&self) -> Option<f64> {
        (self.rate_dt > 0.0).then(|| self.rate_du / self.rate_dt)
    }

    /// Estimate from the best shape, or `None` while no shape shows wear.
    pub fn predict(&self) -> Option<Estimate> {
        let shape = self.best_shape()?;
        self.predict_shape(shape)
    }

    /// Estimate from a given shape.
    pub fn predict_shape(&self, shape: Shape) -> Option<Estimate> {
        let m = &self.fits[shape as usize];
        let b = m.slope().filter(|b| *b > 0.0)?;
        if m.n < self.cfg.min_points.max(3) {
            return None;
        }
        let log = shape != Shape::Linear;
        let z_thr = if log {
            (self.cfg.threshold - self.cfg.floor).ln()
        } else {
            self.cfg.threshold
        } - self.cfg.threshold_margin.max(0.0) * m.resid_var().sqrt();
        let rel_now = self.last_usage - self.start_usage;
        let to_x = |rel: f64| {
            if shape == Shape::Power {
                rel.max(1e-300).ln()
            } else {
                rel
            }
        };
        let to_rel = |x: f64| if shape == Shape::Power { x.exp() } else { x };
        let x_now = to_x(rel_now);
        let n_eff = m.n_eff();
        let var = m.noise_var(self.consistency)
            * if n_eff > 2.0 {
                n_eff / (n_eff - 2.0)
            } else {
                f64::INFINITY
            };
        let var_mean = var / n_eff.max(1.0);
        let var_slope = var * (m.w / n_eff.max(1.0)) / m.sxx;
        let k = student_t_quantile(0.5 + self.cfg.coverage / 2.0, (n_eff - 2.0).max(1.0));
        let level = |x: f64| m.mz + b * (x - m.mx);
        let var_reading = if self.cfg.reading_interval { var } else { 0.0 };
        let se = |x: f64| (var_reading + var_mean + var_slope * (x - m.mx).powi(2)).sqrt();
        // Crossing of the trend, and of its band's upper (early) and lower (late) edges.
        let x_mid = (m.mx + (z_thr - m.mz) / b).max(x_now);
        let early = crossing(|x| level(x) + k * se(x) - z_thr, x_now, b);
        let late = if b - k * var_slope.sqrt() > 0.0 {
            crossing(|x| level(x) - k * se(x) - z_thr, x_now, b)
        } else {
            None
        };
        let rem = |x: f64| (to_rel(x) - rel_now).max(0.0);
        let remaining = rem(x_mid);
        if !remaining.is_finite() {
            return None;
        }
        let lo = early.map_or(0.0, rem).min(remaining);
        let hi = late.map(|x| rem(x).max(remaining)).filter(|v| v.is_finite());
        Some(Estimate {
            source: Source::Trend(shape),
            basis: self.basis(Some(shape)),
            remaining_usage: remaining,
            interval_usage: (lo, hi),
            usage_rate_per_ms: self.rate(),
            as_of_ms: self.last_ms,
        })
    }

    /// Basis and rate of the current life with no estimate attached (for a prior-only estimate).
    pub fn context(&self) -> (Basis, Option<f64>, f64, i64) {
        let usage = if self.points > 0 { self.last_usage } else { 0.0 };
        (self.basis(self.best_shape()), self.rate(), usage, self.last_ms)
    }
}

/// For standard normal residuals `Z` and Huber weights `w = min(1, k/|Z|)`:
/// `E[w Z²] / E[w]`, the factor by which the weighted residual variance
/// underestimates the noise variance. `E[w Z²] = 2Φ(k) − 1` in closed form;
/// `E[w]` adds `2k ∫ₖ^∞ φ(z)/z dz`, integrated numerically.
pub fn huber_consistency(k: f64) -> f64 {
    if !(k > 0.0) || k > 8.0 {
        return 1.0;
    }
    let inner = 2.0 * super::prior::normal_cdf(k) - 1.0;
    let (hi, steps) = (k + 10.0, 2000);
    let h = (hi - k) / f64::from(steps);
    let f = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt() / z;
    // Simpson's rule.
    let mut tail = f(k) + f(hi);
    for i in 1..steps {
        let z = k + f64::from(i) * h;
        tail += if i % 2 == 1 { 4.0 } else { 2.0 } * f(z);
    }
    tail *= h / 3.0;
    inner / (inner + 2.0 * k * tail)
}

/// Smallest `x ≥ x0` where the increasing function `f` is `≥ 0` (bisection
/// after doubling the bracket); `None` when it stays below within reach.
fn crossing(f: impl Fn(f64) -> f64, x0: f64, slope: f64) -> Option<f64> {
    if f(x0) >= 0.0 {
        return Some(x0);
    }
    let mut step = (-f(x0) / slope).max(1e-9);
    let mut hi = x0 + step;
    let mut tries = 0;
    while f(hi) < 0.0 {
        step *= 2.0;
        hi = x0 + step;
        tries += 1;
        if tries > 60 || !hi.is_finite() {
            return None;
        }
    }
    let mut lo = x0;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if f(mid) >= 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-9 * (1.0 + hi.abs()) {
            break;
        }
    }
    Some(hi)
}

/// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student-t quantile by the Cornish–Fisher expansion around the normal one.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    let z = normal_quantile(p);
    let (z3, z5) = (z.powi(3), z.powi(5));
    z + (z3 + z) / (4.0 * dof) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * dof * dof)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Deterministic noise in [-1, 1].
    fn noise(i: u64) -> f64 {
        let mut s = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        s ^= s >> 31;
        s = s.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s ^= s >> 29;
        (s % 20_001) as f64 / 10_000.0 - 1.0
    }

    /// Feeds `f(u)` for usage 0..n (one unit per hour) with relative noise and
    /// a few gross outliers; returns the trend.
    fn feed(cfg: TrendConfig, n: u64, f: impl Fn(f64) -> f64, rel_noise: f64) -> RulTrend {
        let mut t = RulTrend::new(cfg).expect("config");
        for i in 0..n {
            let u = i as f64;
            let mut y = f(u) * (1.0 + rel_noise * noise(i));
            if i > 20 && i % 17 == 0 {
                y *= 1.8; // a gross outlier
            }
            assert!(t.update(i as i64 * HOUR, u, y));
        }
        t
    }

    #[track_caller]
    fn check(t: &RulTrend, shape: Shape, truth: f64, tol: f64) {
        let e = t.predict().expect("estimate");
        assert_eq!(e.source, Source::Trend(shape), "{e:?}");
        assert!(
            (e.remaining_usage - truth).abs() <= tol * truth,
            "{e:?} vs {truth}"
        );
        let (lo, hi) = e.interval_usage;
        let hi = hi.expect("clear wear");
        assert!(lo <= truth && truth <= hi, "interval {lo}..{hi} misses {truth}");
        let ms = e.remaining_ms().expect("rate");
        assert!(
            (ms / HOUR as f64 - e.remaining_usage).abs() < 1e-6,
            "one usage unit per hour"
        );
    }

    #[test]
    fn linear_wear_is_linear() {
        // 50 + 2u reaches 450 at u = 200; at u = 119, 81 remain.
        let t = feed(TrendConfig::new(450.0, 0.0), 120, |u| 50.0 + 2.0 * u, 0.02);
        check(&t, Shape::Linear, 81.0, 0.1);
    }

    #[test]
    fn exponential_wear_is_exponential() {
        // 10·e^{u/50} reaches 400 at u = 50 ln 40 ≈ 184.4.
        let t = feed(
            TrendConfig::new(400.0, 0.0),
            120,
            |u| 10.0 * (u / 50.0).exp(),
            0.03,
        );
        check(&t, Shape::Exponential, 50.0 * 40f64.ln() - 119.0, 0.1);
    }

    #[test]
    fn power_law_wear_is_power() {
        // 5·u^0.5 reaches 80 at u = 256.
        let t = feed(
            TrendConfig::new(80.0, 0.0),
            120,
            |u| 5.0 * u.max(0.5).sqrt(),
            0.02,
        );
        check(&t, Shape::Power, 256.0 - 119.0, 0.12);
    }

    #[test]
    fn outliers_are_down_weighted() {
        let mut cfg = TrendConfig::new(450.0, 0.0);
        cfg.huber_k = 1e9; // no down-weighting
        let plain = feed(cfg, 120, |u| 50.0 + 2.0 * u, 0.0);
        let robust = feed(TrendConfig::new(450.0, 0.0), 120, |u| 50.0 + 2.0 * u, 0.0);
        let err = |t: &RulTrend| {
            let e = t.predict_shape(Shape::Linear).expect("estimate");
            (e.remaining_usage - 81.0).abs()
        };
        assert!(
            err(&robust) < 0.5 * err(&plain),
            "{} vs {}",
            err(&robust),
            err(&plain)
        );
    }

    #[test]
    fn flat_signal_and_bad_points() {
        let mut t = RulTrend::new(TrendConfig::new(100.0, 0.0)).expect("config");
        for i in 0..30 {
            t.update(i * HOUR, i as f64, 20.0 + noise(i as u64) * 0.1);
        }
        let e = t.predict();
        assert!(
            e.is_none_or(|e| e.interval_usage.1.is_none()),
            "no clear wear: {e:?}"
        );
        assert!(!t.update(40 * HOUR, 10.0, 30.0), "usage went back");
        assert!(!t.update(41 * HOUR, 41.0, f64::NAN));
        assert!(!t.update(42 * HOUR, 42.0, -1.0), "drop-out below the floor");
        assert_eq!(t.points(), 30);
        assert!(RulTrend::new(TrendConfig::new(0.0, 5.0)).is_err());
    }

    #[test]
    fn calendar_time_follows_the_usage_rate() {
        // Two usage units per hour: 81 usage units remain, so 40.5 hours.
        let mut t = RulTrend::new(TrendConfig::new(450.0, 0.0)).expect("config");
        for i in 0..120 {
            let u = i as f64;
            t.update(i * HOUR / 2, u, 50.0 + 2.0 * u);
        }
        let e = t.predict().expect("estimate");
        assert!(
            (e.remaining_ms().expect("rate") / HOUR as f64 - 40.5).abs() < 0.5,
            "{e:?}"
        );
        assert_eq!(e.basis.points, 120);
        assert_eq!(e.basis.usage_window, (0.0, 119.0));
    }

    #[test]
    fn huber_consistency_matches_a_simulation() {
        // Weighted residual variance of N(0,1) draws with Huber weights at k = 1.345.
        let k = 1.345;
        let (mut wz2, mut w) = (0.0, 0.0);
        for i in 1..200_000u32 {
            let z = normal_quantile(f64::from(i) / 200_000.0);
            let wi = if z.abs() <= k { 1.0 } else { k / z.abs() };
            wz2 += wi * z * z;
            w += wi;
        }
        assert!(
            (huber_consistency(k) - wz2 / w).abs() < 2e-3,
            "{} vs {}",
            huber_consistency(k),
            wz2 / w
        );
        assert_eq!(huber_consistency(1e9), 1.0);
    }

    #[test]
    fn quantiles() {
        assert!((normal_quantile(0.95) - 1.644_853_6).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((student_t_quantile(0.95, 10.0) - 1.812).abs() < 0.01);
    }
}
