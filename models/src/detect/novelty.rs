//! Multivariate novelty: Hotelling T² against a healthy period, with robust
//! standardisation and a robust (trimmed, C-step) covariance.
//!
//! Why T² and not a mixture model or a one-class SVM: on a gateway it is
//! O(d²) per sample with no allocation, it needs no iterative training that
//! can fail to converge, and a healthy period of a few hundred rows is enough
//! to estimate it. Channels are first centred on their median and scaled by
//! their MAD, so one spike in the healthy period does not set the scale; the
//! covariance is then re-estimated on the 75 % of rows closest to the centre
//! (concentration steps as in MCD), plus a small ridge so collinear or constant
//! channels keep the matrix invertible.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::{DetectError, linalg};

/// Fraction of training rows kept by each concentration step.
const KEEP: f64 = 0.75;
/// Concentration steps after the first full fit.
const C_STEPS: usize = 3;

/// A fitted T² model. Pure: fit on rows, then score rows.
#[derive(Debug, Clone)]
pub struct Novelty {
    center: Vec<f64>,
    scale: Vec<f64>,
    mean: Vec<f64>,
    chol: Vec<f64>,
    work: Vec<f64>,
    z: Vec<f64>,
}

impl Novelty {
    /// Fits on healthy `rows`, each of the same width. `ridge` (≥ 0) is added
    /// to the diagonal of the standardised covariance.
    pub fn fit(rows: &[Vec<f64>], ridge: f64) -> Result<Self, DetectError> {
        Self::fit_with(rows, ridge, false)
    }

    /// Like [`Novelty::fit`]; with `slow_inflation`, rows are taken to be in
    /// time order and each channel's variance is inflated by its lag-1
    /// autocorrelation `ρ` (adding `2ρ/(1 − ρ)` in standardised units, the
    /// variance of a level estimated from an AR(1) of that `ρ`): a slow
    /// channel, such as a temperature, wanders further than a short healthy
    /// period shows, so its excursions count for less.
    pub fn fit_with(rows: &[Vec<f64>], ridge: f64, slow_inflation: bool) -> Result<Self, DetectError> {
        let d = rows.first().map_or(0, Vec::len);
        if rows.len() < 2 || d == 0 {
            return Err(DetectError::TooFewRows {
                needed: 2,
                got: rows.len(),
            });
        }
        if let Some(bad) = rows.iter().find(|r| r.len() != d) {
            return Err(DetectError::Width {
                expected: d,
                got: bad.len(),
            });
        }
        if !(ridge >= 0.0) || !ridge.is_finite() {
            return Err(DetectError::Parameter {
                name: "ridge",
                message: format!("{ridge} is not ≥ 0"),
            });
        }
        let mut center = vec![0.0; d];
        let mut scale = vec![1.0; d];
        let mut col = Vec::with_capacity(rows.len());
        for j in 0..d {
            col.clear();
            col.extend(rows.iter().map(|r| r[j]).filter(|v| v.is_finite()));
            let (med, s) = robust_location_scale(&mut col);
            center[j] = med;
            scale[j] = s;
        }
        let z: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| {
                (0..d)
                    .map(|j| finite_or_zero((r[j] - center[j]) / scale[j]))
                    .collect()
            })
            .collect();
        let inflation: Vec<f64> = (0..d)
            .map(|j| {
                if !slow_inflation {
                    return 0.0;
                }
                let rho = lag1_autocorrelation(z.iter().map(|r| r[j])).clamp(0.0, 0.995);
                2.0 * rho / (1.0 - rho)
            })
            .collect();
        let mut idx: Vec<usize> = (0..z.len()).collect();
        let mut model = None;
        for step in 0..=C_STEPS {
            let subset: Vec<&[f64]> = idx.iter().map(|&i| z[i].as_slice()).collect();
            let mean = linalg::mean(&subset, d);
            let mut cov = linalg::covariance(&subset, &mean);
            for i in 0..d {
                cov[i * d + i] += ridge.max(1e-9) + inflation[i];
            }
            let Some(chol) = linalg::cholesky(&cov, d) else {
                break;
            };
            model = Some((mean.clone(), chol.clone()));
            if step == C_STEPS {
                break;
            }
            let mut work = vec![0.0; d];
            let mut dev = vec![0.0; d];
            let mut dist: Vec<(f64, usize)> = z
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    for k in 0..d {
                        dev[k] = r[k] - mean[k];
                    }
                    (linalg::mahalanobis_sq(&chol, &dev, &mut work), i)
                })
                .collect();
            dist.sort_by(|a, b| a.0.total_cmp(&b.0));
            let h = ((z.len() as f64 * KEEP).ceil() as usize).max(d + 1).min(z.len());
            idx = dist[..h].iter().map(|&(_, i)| i).collect();
        }
        let (mean, chol) = model.ok_or_else(|| DetectError::Parameter {
            name: "ridge",
            message: "covariance of the training rows is not positive definite".into(),
        })?;
        Ok(Novelty {
            center,
            scale,
            mean,
            chol,
            work: vec![0.0; d],
            z: vec![0.0; d],
        })
    }

    /// Number of channels.
    pub fn width(&self) -> usize {
        self.center.len()
    }

    /// T² of one row (squared Mahalanobis distance in standardised units).
    /// Non-finite values count as the healthy centre of their channel.
    pub fn t2(&mut self, row: &[f64]) -> Result<f64, DetectError> {
        let d = self.width();
        if row.len() != d {
            return Err(DetectError::Width {
                expected: d,
                got: row.len(),
            });
        }
        for (j, (z, x)) in self.z.iter_mut().zip(row).enumerate() {
            *z = finite_or_zero((x - self.center[j]) / self.scale[j]) - self.mean[j];
        }
        Ok(linalg::mahalanobis_sq(&self.chol, &self.z, &mut self.work))
    }

    /// Moves the healthy centre a fraction `rate` of the way towards `row`
    /// (an adaptive baseline for slow, benign drift such as warming up).
    /// Call it only with rows judged healthy.
    pub fn adapt(&mut self, row: &[f64], rate: f64) {
        if !(rate > 0.0) || row.len() != self.width() {
            return;
        }
        let rate = rate.min(1.0);
        for (j, x) in row.iter().enumerate() {
            let z = finite_or_zero((x - self.center[j]) / self.scale[j]);
            self.mean[j] += rate * (z - self.mean[j]);
        }
    }

    /// Each channel's standardised deviation from the healthy centre, for
    /// explaining an alert (which metric moved).
    pub fn standardised(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.center.iter().zip(&self.scale))
            .map(|(x, (c, s))| finite_or_zero((x - c) / s))
            .collect()
    }
}

pub(crate) fn lag1_autocorrelation(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = x.clone().count();
    if n < 3 {
        return 0.0;
    }
    let mean = x.clone().sum::<f64>() / n as f64;
    let var: f64 = x.clone().map(|v| (v - mean) * (v - mean)).sum();
    if !(var > 0.0) {
        return 0.0;
    }
    let cov: f64 = x
        .clone()
        .zip(x.skip(1))
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    cov / var
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// Median and a robust scale (1.4826 · MAD), falling back to the standard
/// deviation, then to a floor (the sensor's quantisation step, or a fraction
/// of the level) for flat or quantised channels.
/// Sorts `values` in place.
pub fn robust_location_scale(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    values.sort_by(f64::total_cmp);
    let med = median_sorted(values);
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    let mut dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = 1.4826 * median_sorted(&dev);
    // A quantised sensor cannot vary by less than its step: the smallest gap
    // between distinct values floors the scale.
    let step = values
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 0.0)
        .fold(f64::INFINITY, f64::min);
    let step = if step.is_finite() { step } else { 0.0 };
    let floor = (1e-3 * med.abs()).max(1e-9).max(step);
    let scale = if mad > floor {
        mad
    } else if sd > floor {
        sd
    } else {
        floor
    };
    (med, scale)
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64) / ((1u64 << 53) as f64)
    }

    #[test]
    fn far_points_score_higher_than_healthy_ones() {
        let mut s = 7;
        let rows: Vec<Vec<f64>> = (0..300)
            .map(|_| {
                let a = lcg(&mut s) - 0.5;
                vec![10.0 + a, 5.0 + 2.0 * a + 0.1 * (lcg(&mut s) - 0.5)]
            })
            .collect();
        let mut m = Novelty::fit(&rows, 0.01).unwrap();
        let healthy = m.t2(&[10.0, 5.0]).unwrap();
        // Breaks the correlation between the channels while staying in range.
        let broken = m.t2(&[10.3, 4.4]).unwrap();
        assert!(healthy < 1.0, "{healthy}");
        assert!(broken > 20.0, "{broken}");
        assert!(m.t2(&[1.0]).is_err());
    }

    #[test]
    fn constant_channels_do_not_break_the_fit() {
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![32.0, i as f64 % 3.0]).collect();
        let mut m = Novelty::fit(&rows, 0.01).unwrap();
        assert!(m.t2(&[32.0, 1.0]).unwrap().is_finite());
        assert!(m.t2(&[40.0, 1.0]).unwrap() > 100.0);
    }

    #[test]
    fn fewer_rows_than_channels_do_not_panic() {
        let rows: Vec<Vec<f64>> = (0..3).map(|i| (0..8).map(|j| (i * j) as f64).collect()).collect();
        let mut m = Novelty::fit_with(&rows, 0.01, true).unwrap();
        assert!(m.t2(&[0.0; 8]).unwrap().is_finite());
    }

    #[test]
    fn slow_channels_count_for_less() {
        // Channel 0 is a slow random walk, channel 1 white noise; a
        // deviation of 5 robust units on the slow channel is less novel once
        // its autocorrelation is taken into account.
        let e = crate::detect::stream::tests::noise(800, 11);
        let mut level = 0.0;
        let rows: Vec<Vec<f64>> = (0..400)
            .map(|i| {
                level += 0.1 * e[2 * i];
                vec![level, e[2 * i + 1]]
            })
            .collect();
        let plain = Novelty::fit_with(&rows, 0.01, false).unwrap();
        let probe = vec![rows[399][0] + 5.0 * plain.scale[0], plain.center[1]];
        let (mut plain, mut slow) = (plain, Novelty::fit_with(&rows, 0.01, true).unwrap());
        assert!(slow.t2(&probe).unwrap() < 0.5 * plain.t2(&probe).unwrap());
    }

    #[test]
    fn robust_scale_of_known_values() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 100.0];
        let (med, s) = robust_location_scale(&mut v);
        assert_eq!(med, 3.0);
        // Deviations 2,1,0,1,97 → MAD 1.
        assert!((s - 1.4826).abs() < 1e-12);
    }
}
