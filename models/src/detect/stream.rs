//! Univariate streaming detectors: an adaptive baseline (robust EWMA mean and
//! variance), CUSUM and Page-Hinkley for slow drift, rate of change, stuck
//! (flat-lined) and out-of-range sensors.
//!
//! Each one is O(1) per sample, allocation-free after construction, and gives
//! a score in `[0, 1]` (0.5 at its alarm threshold) from the samples seen so
//! far only. Non-finite samples are ignored (score 0, state unchanged), so a
//! dropped reading never poisons a baseline.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::ratio_score;

/// A univariate detector fed one sample at a time.
pub trait StreamDetector {
    /// Takes the next sample and returns its score in `[0, 1]`.
    fn update(&mut self, x: f64) -> f64;
}

/// Mean and variance estimated from the first `n` samples (warm-up), used as
/// the frozen reference by the drift detectors.
#[derive(Debug, Clone)]
struct Warmup {
    need: usize,
    n: usize,
    mean: f64,
    m2: f64,
}

impl Warmup {
    fn new(need: usize) -> Self {
        Warmup {
            need: need.max(2),
            n: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Feeds a sample; returns `Some((mean, sd))` once warm.
    fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        if self.n < self.need {
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
            return None;
        }
        Some(self.stats())
    }

    fn stats(&self) -> (f64, f64) {
        let var = self.m2 / (self.n.max(2) - 1) as f64;
        let floor = (1e-6 * self.mean.abs()).max(1e-12);
        (self.mean, var.sqrt().max(floor))
    }
}

/// Adaptive baseline: exponentially weighted mean and variance whose updates
/// are Huber-clipped at `clip` standard deviations, so outliers barely move
/// it. Scores `|x − mean| / sd` against `threshold` (in standard deviations).
#[derive(Debug, Clone)]
pub struct RobustEwma {
    alpha: f64,
    clip: f64,
    threshold: f64,
    warm: Warmup,
    mean: f64,
    var: f64,
    ready: bool,
}

impl RobustEwma {
    /// `alpha` in (0, 1], the weight of a new sample; `warmup` samples before
    /// the first score.
    pub fn new(alpha: f64, threshold: f64, warmup: usize) -> Self {
        RobustEwma {
            alpha: alpha.clamp(1e-6, 1.0),
            clip: 3.0,
            threshold,
            warm: Warmup::new(warmup),
            mean: 0.0,
            var: 0.0,
            ready: false,
        }
    }

    /// Current baseline `(mean, standard deviation)`, once warm.
    pub fn baseline(&self) -> Option<(f64, f64)> {
        self.ready.then(|| (self.mean, self.sd()))
    }

    fn sd(&self) -> f64 {
        self.var.sqrt().max((1e-6 * self.mean.abs()).max(1e-12))
    }

    /// The standardised residual of `x` before it updates the baseline.
    pub fn z(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        if !self.ready {
            if let Some((m, sd)) = self.warm.push(x) {
                self.mean = m;
                self.var = sd * sd;
                self.ready = true;
            } else {
                return None;
            }
        }
        let sd = self.sd();
        let r = x - self.mean;
        let z = r / sd;
        let rc = r.clamp(-self.clip * sd, self.clip * sd);
        self.mean += self.alpha * rc;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * rc * rc);
        Some(z)
    }
}

impl StreamDetector for RobustEwma {
    fn update(&mut self, x: f64) -> f64 {
        self.z(x).map_or(0.0, |z| ratio_score(z.abs(), self.threshold))
    }
}

/// Two-sided tabular CUSUM on samples standardised by a warm-up reference:
/// `S⁺ = max(0, S⁺ + z − k)`, `S⁻ = max(0, S⁻ − z − k)`, alarm at `h`.
/// Flags a shift of `δ` standard deviations after about `h / (δ − k)` samples.
#[derive(Debug, Clone)]
pub struct Cusum {
    k: f64,
    h: f64,
    warm: Warmup,
    pos: f64,
    neg: f64,
}

impl Cusum {
    /// `k`: allowance (half the shift to detect, in sd); `h`: decision interval.
    pub fn new(k: f64, h: f64, warmup: usize) -> Self {
        Cusum {
            k,
            h,
            warm: Warmup::new(warmup),
            pos: 0.0,
            neg: 0.0,
        }
    }

    /// Current statistic `max(S⁺, S⁻)`.
    pub fn statistic(&self) -> f64 {
        self.pos.max(self.neg)
    }
}

impl StreamDetector for Cusum {
    fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let Some((m, sd)) = self.warm.push(x) else {
            return 0.0;
        };
        let z = (x - m) / sd;
        self.pos = (self.pos + z - self.k).max(0.0);
        self.neg = (self.neg - z - self.k).max(0.0);
        ratio_score(self.statistic(), self.h)
    }
}

/// Two-sided Page-Hinkley test on samples standardised by a warm-up
/// reference: cumulative deviation from the running mean, less a tolerance
/// `delta`, against its running extreme; alarm at `lambda`.
#[derive(Debug, Clone)]
pub struct PageHinkley {
    delta: f64,
    lambda: f64,
    warm: Warmup,
    n: f64,
    mean: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_max: f64,
}

impl PageHinkley {
    /// `delta`: tolerated drift per sample (sd); `lambda`: alarm threshold (sd).
    pub fn new(delta: f64, lambda: f64, warmup: usize) -> Self {
        PageHinkley {
            delta,
            lambda,
            warm: Warmup::new(warmup),
            n: 0.0,
            mean: 0.0,
            up: 0.0,
            up_min: 0.0,
            down: 0.0,
            down_max: 0.0,
        }
    }
}

impl StreamDetector for PageHinkley {
    fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let Some((m, sd)) = self.warm.push(x) else {
            return 0.0;
        };
        let z = (x - m) / sd;
        self.n += 1.0;
        self.mean += (z - self.mean) / self.n;
        self.up += z - self.mean - self.delta;
        self.up_min = self.up_min.min(self.up);
        self.down += z - self.mean + self.delta;
        self.down_max = self.down_max.max(self.down);
        let stat = (self.up - self.up_min).max(self.down_max - self.down);
        ratio_score(stat, self.lambda)
    }
}

/// Rate of change: `|x − previous|` against `max_step`, the largest change
/// between consecutive samples that is still physical.
#[derive(Debug, Clone)]
pub struct RateOfChange {
    max_step: f64,
    prev: Option<f64>,
}

impl RateOfChange {
    /// `max_step` in the signal's units per sample.
    pub fn new(max_step: f64) -> Self {
        RateOfChange { max_step, prev: None }
    }
}

impl StreamDetector for RateOfChange {
    fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let score = self
            .prev
            .map_or(0.0, |p| ratio_score((x - p).abs(), self.max_step));
        self.prev = Some(x);
        score
    }
}

/// Stuck or flat-lined sensor: how many consecutive samples have stayed
/// within `tolerance` of each other, against `max_run`.
#[derive(Debug, Clone)]
pub struct Stuck {
    tolerance: f64,
    max_run: usize,
    anchor: Option<f64>,
    run: usize,
}

impl Stuck {
    /// A run of `max_run` repeated samples scores 0.5.
    pub fn new(tolerance: f64, max_run: usize) -> Self {
        Stuck {
            tolerance: tolerance.abs(),
            max_run: max_run.max(1),
            anchor: None,
            run: 0,
        }
    }
}

impl StreamDetector for Stuck {
    fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        match self.anchor {
            Some(a) if (x - a).abs() <= self.tolerance => self.run += 1,
            _ => {
                self.anchor = Some(x);
                self.run = 0;
            }
        }
        ratio_score(self.run as f64, self.max_run as f64)
    }
}

/// Out of the physical range `[low, high]`: 0 inside, above 0.5 outside,
/// growing with the excess relative to the range's width.
#[derive(Debug, Clone)]
pub struct OutOfRange {
    low: f64,
    high: f64,
}

impl OutOfRange {
    /// `low ≤ high`; swapped if given the other way round.
    pub fn new(low: f64, high: f64) -> Self {
        OutOfRange {
            low: low.min(high),
            high: low.max(high),
        }
    }
}

impl StreamDetector for OutOfRange {
    fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return 0.0;
        }
        let excess = if x < self.low {
            self.low - x
        } else if x > self.high {
            x - self.high
        } else {
            return 0.0;
        };
        let width = (self.high - self.low).max(1e-12);
        0.5 + 0.5 * ratio_score(excess, width)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic noise, roughly uniform on [-1, 1] with sd ≈ 0.58.
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0
            })
            .collect()
    }

    fn scores(d: &mut dyn StreamDetector, xs: &[f64]) -> Vec<f64> {
        xs.iter().map(|&x| d.update(x)).collect()
    }

    fn first_alarm(s: &[f64]) -> Option<usize> {
        s.iter().position(|&v| v >= 0.5)
    }

    fn all() -> Vec<Box<dyn StreamDetector>> {
        vec![
            Box::new(RobustEwma::new(0.05, 4.0, 50)),
            Box::new(Cusum::new(0.5, 8.0, 50)),
            Box::new(PageHinkley::new(0.5, 20.0, 50)),
            Box::new(RateOfChange::new(3.0)),
            Box::new(Stuck::new(0.0, 10)),
            Box::new(OutOfRange::new(-5.0, 5.0)),
        ]
    }

    #[test]
    fn slow_ramp_is_flagged_by_cusum_within_a_bound() {
        // 200 samples of noise (sd ≈ 0.577), then a ramp of 0.005 per sample
        // (0.00866 sd per sample). CUSUM (k = 0.5,
        // h = 8) accumulates once the mean passes k·sd ≈ 0.29, i.e. ~58
        // samples into the ramp; the excess then grows linearly, so S⁺ reaches
        // h = 12 when 0.00866·t²/2 = 12, t ≈ 53 more. Bound: 300 samples.
        let mut xs = noise(200, 1);
        let ramp: Vec<f64> = noise(600, 2)
            .iter()
            .enumerate()
            .map(|(i, e)| e + 0.005 * i as f64)
            .collect();
        xs.extend(ramp);
        let mut c = Cusum::new(0.5, 12.0, 100);
        let s = scores(&mut c, &xs);
        let at = first_alarm(&s).unwrap();
        assert!(at >= 200, "no alarm before the ramp, got {at}");
        assert!(at < 200 + 300, "ramp flagged at {at}");
        let mut ph = PageHinkley::new(0.25, 25.0, 100);
        let at = first_alarm(&scores(&mut ph, &xs)).unwrap();
        assert!((200..200 + 400).contains(&at), "page-hinkley at {at}");
    }

    #[test]
    fn stationary_noise_does_not_alarm() {
        let xs = noise(20_000, 3);
        let mut c = Cusum::new(0.5, 12.0, 500);
        assert_eq!(first_alarm(&scores(&mut c, &xs)), None);
        let mut e = RobustEwma::new(0.01, 4.0, 500);
        assert_eq!(first_alarm(&scores(&mut e, &xs)), None);
        let mut ph = PageHinkley::new(0.5, 25.0, 500);
        assert_eq!(first_alarm(&scores(&mut ph, &xs)), None);
    }

    #[test]
    fn step_is_flagged_by_ewma_and_rate() {
        let mut xs = noise(300, 4);
        xs.extend(noise(50, 5).iter().map(|e| e + 10.0));
        let mut e = RobustEwma::new(0.01, 4.0, 100);
        assert_eq!(first_alarm(&scores(&mut e, &xs)), Some(300));
        let mut r = RateOfChange::new(3.0);
        assert_eq!(first_alarm(&scores(&mut r, &xs)), Some(300));
    }

    #[test]
    fn stuck_and_out_of_range() {
        let mut s = Stuck::new(1e-9, 5);
        let xs = [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0];
        let got = scores(&mut s, &xs);
        assert_eq!(first_alarm(&got), Some(7));
        assert_eq!(got[8], 0.0);
        let mut r = OutOfRange::new(0.0, 10.0);
        assert_eq!(r.update(5.0), 0.0);
        assert!(r.update(10.5) > 0.5);
        assert!(r.update(-100.0) > 0.9);
    }

    #[test]
    fn scores_stay_in_unit_interval_on_wild_input() {
        let mut xs = noise(2000, 6);
        xs.extend([f64::NAN, f64::INFINITY, -1e300, 1e300, 0.0, f64::NEG_INFINITY]);
        xs.extend(noise(100, 7).iter().map(|e| e * 1e12));
        for mut d in all() {
            for &x in &xs {
                let s = d.update(x);
                assert!((0.0..=1.0).contains(&s), "{s} for {x}");
            }
        }
    }

    #[test]
    fn scores_never_depend_on_future_samples() {
        let long: Vec<f64> = noise(3000, 8)
            .iter()
            .enumerate()
            .map(|(i, e)| e + if i > 1500 { 0.002 * i as f64 } else { 0.0 })
            .collect();
        for cut in [1, 60, 777, 2200] {
            for (mut a, mut b) in all().into_iter().zip(all()) {
                let full = scores(a.as_mut(), &long);
                let prefix = scores(b.as_mut(), &long[..cut]);
                assert_eq!(prefix, full[..cut]);
            }
        }
    }
}
