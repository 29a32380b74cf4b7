//! Fleet prior: what completed lives of the same consumable say about a new
//! one before its own trend is clear, and the blend of the two.
//!
//! The log of the total life (in usage units) is a ridge regression on
//! standardised covariates (dust load, fan speed, …), with a Gaussian residual:
//! a log-normal life. A covariate that is positive in every completed life
//! enters as its logarithm, so life may scale as a power of it (a filter's
//! life goes as one over its dust load). Given the usage an item has already survived, the prior
//! of its remaining life is that log-normal truncated below at the current
//! usage. [`blend`] weights the item's own trend against it by their
//! variances, so a new item starts at the fleet's figure and moves to its own
//! data as its trend tightens.

// Negated comparisons (`!(x > 0.0)`) are deliberate: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::trend::{Estimate, RulTrend, Shape, Source, normal_quantile};
use super::{Result, RulError};
use ndarray::{Array1, Array2, Axis};

/// One completed life: its covariates and the usage it lasted.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedLife {
    pub covariates: Vec<f64>,
    pub life: f64,
}

/// The learned prior.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPrior {
    /// Per covariate: taken as its logarithm.
    log: Vec<bool>,
    mean: Array1<f64>,
    scale: Array1<f64>,
    /// Intercept first.
    beta: Array1<f64>,
    /// `(XᵀX + λI)⁻¹`, for the uncertainty of the mean.
    cov: Array2<f64>,
    /// Residual standard deviation of log-life.
    sigma: f64,
    lives: usize,
}

/// The prior's view of one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorEstimate {
    /// Mean remaining usage given survival so far.
    pub remaining: f64,
    /// Its standard deviation.
    pub sd: f64,
    /// Median total life for these covariates.
    pub median_life: f64,
}

impl FleetPrior {
    /// Learns from completed lives (all with the same number of covariates);
    /// `lambda` is the ridge penalty on standardised covariates.
    pub fn learn(lives: &[CompletedLife], lambda: f64) -> Result<FleetPrior> {
        let n = lives.len();
        if n < 2 {
            return Err(RulError::Data(format!(
                "{n} completed lives; the prior needs at least 2"
            )));
        }
        let p = lives[0].covariates.len();
        if lives.iter().any(|l| l.covariates.len() != p) {
            return Err(RulError::Data("completed lives have different covariates".into()));
        }
        if lives
            .iter()
            .any(|l| !(l.life > 0.0) || l.covariates.iter().any(|c| !c.is_finite()))
        {
            return Err(RulError::Data(
                "a completed life is not positive or a covariate not finite".into(),
            ));
        }
        let log: Vec<bool> = (0..p)
            .map(|j| lives.iter().all(|l| l.covariates[j] > 0.0))
            .collect();
        let raw = Array2::from_shape_fn((n, p), |(i, j)| transform(log[j], lives[i].covariates[j]));
        let mean = raw.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(p));
        let scale = raw.std_axis(Axis(0), 0.0).mapv(|s| if s > 0.0 { s } else { 1.0 });
        let mut x = Array2::ones((n, p + 1));
        for j in 0..p {
            let col = raw.column(j).mapv(|v| (v - mean[j]) / scale[j]);
            x.column_mut(j + 1).assign(&col);
        }
        let y = Array1::from_iter(lives.iter().map(|l| l.life.ln()));
        let mut xtx = x.t().dot(&x);
        for j in 1..=p {
            xtx[[j, j]] += lambda.max(0.0);
        }
        let cov = invert(&xtx).ok_or_else(|| RulError::Data("covariates are degenerate".into()))?;
        let beta = cov.dot(&x.t().dot(&y));
        let resid = &y - &x.dot(&beta);
        let dof = (n as f64 - (p + 1) as f64).max(1.0);
        let sigma = (resid.dot(&resid) / dof).sqrt().max(1e-6);
        Ok(FleetPrior {
            log,
            mean,
            scale,
            beta,
            cov,
            sigma,
            lives: n,
        })
    }

    /// Completed lives learned from.
    pub fn lives(&self) -> usize {
        self.lives
    }

    /// Mean and standard deviation of log-life for these covariates,
    /// including the uncertainty of the fitted coefficients.
    pub fn log_life(&self, covariates: &[f64]) -> (f64, f64) {
        let p = self.mean.len();
        let mut x = Array1::ones(p + 1);
        for j in 0..p {
            let c = covariates
                .get(j)
                .filter(|c| c.is_finite() && (!self.log[j] || **c > 0.0))
                .map_or(self.mean[j], |c| transform(self.log[j], *c));
            x[j + 1] = (c - self.mean[j]) / self.scale[j];
        }
        let mu = x.dot(&self.beta);
        let var = self.sigma * self.sigma * (1.0 + x.dot(&self.cov.dot(&x)));
        (mu, var.sqrt())
    }

    /// Remaining usage of an item with these covariates that has survived `usage`.
    pub fn remaining(&self, covariates: &[f64], usage: f64) -> PriorEstimate {
        let (mu, s) = self.log_life(covariates);
        // Log-life truncated below at ln(usage): mean and variance of the truncated normal.
        let (m, v, surv) = if usage > 0.0 {
            let a = (usage.ln() - mu) / s;
            let surv = (1.0 - normal_cdf(a)).max(1e-12);
            let lam = normal_pdf(a) / surv;
            (
                mu + s * lam,
                (s * s * (1.0 + a * lam - lam * lam)).max(1e-12),
                surv,
            )
        } else {
            (mu, s * s, 1.0)
        };
        // Back to usage: the log-normal's mean and sd with these log moments.
        let life = (m + v / 2.0).exp();
        // An item that has outlived what the prior thought likely shows the
        // prior does not describe it: its spread widens as survival gets
        // improbable, so the item's own trend takes over.
        let sd = life * (v.exp() - 1.0).sqrt() / surv.sqrt();
        PriorEstimate {
            remaining: (life - usage.max(0.0)).max(0.0),
            sd,
            median_life: mu.exp(),
        }
    }
}

/// Blends an item's trend with the fleet prior by precision; the trend's
/// variance is read off its interval (`coverage` two-sided). Without a trend
/// estimate the prior stands alone, with the trend's data as its basis.
pub fn blend(trend: &RulTrend, prior: &PriorEstimate, coverage: f64) -> Estimate {
    blend_with(trend, None, prior, coverage, 1.0)
}

/// [`blend`] with a given trend shape (`None`: the most likely one) and the
/// trend's standard deviation scaled by `trend_sd_scale` (a calibration
/// learned from completed lives: how far trends really miss).
pub fn blend_with(
    trend: &RulTrend,
    shape: Option<Shape>,
    prior: &PriorEstimate,
    coverage: f64,
    trend_sd_scale: f64,
) -> Estimate {
    let estimate = match shape {
        Some(s) => trend.predict_shape(s),
        None => trend.predict(),
    };
    let with_sd = estimate.map(|e| {
        let sd = e.sd_usage(coverage) * trend_sd_scale.max(0.0);
        (e, sd)
    });
    blend_estimate(trend, with_sd, prior, coverage)
}

/// Blends a trend estimate whose standard deviation the caller has settled
/// (`None`: the trend shows no wear yet) with the prior, by precision.
pub fn blend_estimate(
    trend: &RulTrend,
    estimate: Option<(Estimate, f64)>,
    prior: &PriorEstimate,
    coverage: f64,
) -> Estimate {
    let prior_var = (prior.sd * prior.sd).max(1e-12);
    let z = normal_quantile(0.5 + coverage / 2.0);
    if let Some((e, tsd)) = estimate {
        let shape = match e.source {
            Source::Trend(s) | Source::Blend { shape: s, .. } => s,
            Source::Prior => return e,
        };
        let wt = if tsd.is_finite() {
            let tv = (tsd * tsd).max(1e-12);
            (1.0 / tv) / (1.0 / tv + 1.0 / prior_var)
        } else {
            0.0
        };
        let mean = wt * e.remaining_usage + (1.0 - wt) * prior.remaining;
        let sd = if wt > 0.0 {
            (1.0 / (1.0 / (tsd * tsd).max(1e-12) + 1.0 / prior_var)).sqrt()
        } else {
            prior.sd
        };
        return Estimate {
            source: Source::Blend {
                shape,
                trend_weight: wt,
            },
            remaining_usage: mean,
            interval_usage: ((mean - z * sd).max(0.0), Some(mean + z * sd)),
            ..e
        };
    }
    let (basis, rate, _, as_of) = trend.context();
    Estimate {
        source: Source::Prior,
        basis,
        remaining_usage: prior.remaining,
        interval_usage: (
            (prior.remaining - z * prior.sd).max(0.0),
            Some(prior.remaining + z * prior.sd),
        ),
        usage_rate_per_ms: rate,
        as_of_ms: as_of,
    }
}

fn transform(log: bool, c: f64) -> f64 {
    if log { c.ln() } else { c }
}

fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal CDF via erfc (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc }
}

/// Inverse of a small square matrix by Gauss–Jordan with partial pivoting.
fn invert(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::eye(n);
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| m[[i, c]].abs().total_cmp(&m[[j, c]].abs()))?;
        if !(m[[piv, c]].abs() > 1e-12) {
            return None;
        }
        for k in 0..n {
            m.swap([c, k], [piv, k]);
            inv.swap([c, k], [piv, k]);
        }
        let d = m[[c, c]];
        for k in 0..n {
            m[[c, k]] /= d;
            inv[[c, k]] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[[r, c]];
                if f != 0.0 {
                    for k in 0..n {
                        m[[r, k]] -= f * m[[c, k]];
                        inv[[r, k]] -= f * inv[[c, k]];
                    }
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::super::trend::TrendConfig;
    use super::*;

    /// Lives of 1000 / dust: dust load 1..=5, a little scatter.
    fn fleet() -> FleetPrior {
        let lives: Vec<CompletedLife> = (0..40)
            .map(|i| {
                let dust = 1.0 + f64::from(i % 5);
                let scatter = 1.0 + 0.05 * (f64::from(i % 3) - 1.0);
                CompletedLife {
                    covariates: vec![dust],
                    life: 1000.0 / dust * scatter,
                }
            })
            .collect();
        FleetPrior::learn(&lives, 0.0).expect("prior")
    }

    #[test]
    fn prior_learns_life_against_covariates() {
        let p = fleet();
        let clean = p.remaining(&[1.0], 0.0);
        let dusty = p.remaining(&[5.0], 0.0);
        assert!(clean.remaining > 2.0 * dusty.remaining, "{clean:?} {dusty:?}");
        // Log-life is linear here only approximately (1/dust), so allow 25 %.
        assert!((dusty.median_life - 200.0).abs() < 50.0, "{dusty:?}");
        // Having survived longer than the median, some life is still expected.
        let old = p.remaining(&[3.0], 400.0);
        assert!(old.remaining > 0.0 && old.remaining < 200.0, "{old:?}");
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!(FleetPrior::learn(&[], 0.0).is_err());
    }

    #[test]
    fn blend_moves_from_prior_to_own_data() {
        let p = fleet();
        // This filter wears slower than the fleet: 10 + 0.5u reaches 600 at u = 1180,
        // while the fleet expects about 333 at dust load 3.
        let mut t = RulTrend::new(TrendConfig::new(600.0, 0.0)).expect("config");
        let mut weights = Vec::new();
        let mut last = None;
        for i in 0..800u32 {
            let u = f64::from(i);
            let wobble = if i % 2 == 0 { 4.0 } else { -4.0 };
            t.update(i64::from(i) * 1000, u, 10.0 + 0.5 * u + wobble);
            if i == 2 || i % 100 == 99 {
                let pr = p.remaining(&[3.0], u);
                let e = blend(&t, &pr, 0.9);
                weights.push(match e.source {
                    Source::Blend { trend_weight, .. } => trend_weight,
                    _ => 0.0,
                });
                if i == 2 {
                    assert_eq!(e.source, Source::Prior, "too few points for a trend");
                    assert!((e.remaining_usage - pr.remaining).abs() < 1e-9);
                }
                last = Some((u, e));
            }
        }
        // The prior is tight (life goes exactly as 1/dust in the fleet), so the
        // trend takes over once its own spread is smaller: by 200 points.
        assert!(
            weights[1] > 0.1 && weights[2] > 0.5,
            "a clear trend counts early: {weights:?}"
        );
        assert!(weights[weights.len() - 1] > 0.95, "{weights:?}");
        let (u, e) = last.expect("estimate");
        let truth = 1180.0 - u;
        assert!(
            (e.remaining_usage - truth).abs() < 0.05 * truth,
            "{e:?} vs {truth}"
        );
    }
}
