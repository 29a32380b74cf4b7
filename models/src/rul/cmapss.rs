//! C-MAPSS turbofan data: parsing, the feature pipeline and the learned RUL
//! model ([`CmapssModel`]).
//!
//! Everything the model knows comes from the training file: operating
//! conditions are found by k-means on the three settings (the number of
//! clusters chosen by how much of the settings' spread they explain (all but 0.1 %), so a
//! single-condition set yields one), each sensor is standardised per condition,
//! sensors constant within every condition are dropped, with several
//! conditions each sensor is put on one wear scale across them (and readings
//! weighted by how clearly their condition shows wear), and each cycle is
//! described by windowed features of the recent past (last value, mean,
//! least-squares slope, EWMA) plus its age. A health index, a ridge fit of the
//! capped RUL on the standardised sensors (one fit per operating condition, as
//! a sensor's response to wear may differ between conditions), adds one
//! denoised signal: its last value, window mean and slope, two EWMAs, and its
//! mean and slope over a long window (250 cycles, in practice the whole
//! history), which tell a unit that has been degrading for a while from a
//! noisy healthy one. A gradient-boosted
//! ensemble ([`super::gbm`]) maps those to the piecewise-linear target, capped
//! at the remaining life of the shortest training unit at its first cycle (the
//! largest cap at which every training unit starts on the plateau: 127 for
//! FD001 and FD002).

use super::gbm::{Gbm, GbmConfig, matrix};
use super::{Result, RulError};
use ndarray::Array1;

pub const SETTINGS: usize = 3;
pub const SENSORS: usize = 21;

/// One row: a unit's flight cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub unit: u32,
    pub cycle: u32,
    pub settings: [f64; SETTINGS],
    pub sensors: [f64; SENSORS],
}

/// Parses a whitespace-separated C-MAPSS file (`unit cycle 3 settings 21 sensors`).
/// `file` names the source in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let err = |reason: String| RulError::Parse {
            file: file.to_string(),
            line: line_no,
            reason,
        };
        if fields.len() != 2 + SETTINGS + SENSORS {
            return Err(err(format!(
                "{} fields, expected {}",
                fields.len(),
                2 + SETTINGS + SENSORS
            )));
        }
        let int = |k: usize, name: &str| {
            fields[k]
                .parse::<u32>()
                .map_err(|_| err(format!("{name} `{}` is not a whole number", fields[k])))
        };
        let num = |k: usize| {
            fields[k]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(format!("field {} `{}` is not a number", k + 1, fields[k])))
        };
        let mut row = Row {
            unit: int(0, "unit")?,
            cycle: int(1, "cycle")?,
            settings: [0.0; SETTINGS],
            sensors: [0.0; SENSORS],
        };
        for k in 0..SETTINGS {
            row.settings[k] = num(2 + k)?;
        }
        for k in 0..SENSORS {
            row.sensors[k] = num(2 + SETTINGS + k)?;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Parses the truth file: one remaining life per line, in test-unit order.
pub fn parse_truth(file: &str, text: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let v = t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
        out.push(v.ok_or_else(|| RulError::Parse {
            file: file.to_string(),
            line: i + 1,
            reason: format!("`{t}` is not a remaining life"),
        })?);
    }
    Ok(out)
}

/// Rows grouped by unit, in file order, each unit's rows sorted by cycle.
pub fn units(rows: &[Row]) -> Vec<Vec<&Row>> {
    let mut order: Vec<u32> = Vec::new();
    let mut map: std::collections::HashMap<u32, Vec<&Row>> = std::collections::HashMap::new();
    for r in rows {
        map.entry(r.unit)
            .or_insert_with(|| {
                order.push(r.unit);
                Vec::new()
            })
            .push(r);
    }
    order
        .into_iter()
        .filter_map(|u| map.remove(&u))
        .map(|mut v| {
            v.sort_by_key(|r| r.cycle);
            v
        })
        .collect()
}

/// Checks a run-to-failure file: every unit needs at least two cycles (one
/// cycle shows no degradation and has no history to learn from). The error
/// names the line of the offending unit's row.
pub fn check_training(file: &str, text: &str, rows: &[Row]) -> Result<()> {
    for unit in units(rows) {
        if let [only] = unit.as_slice() {
            let line = text
                .lines()
                .position(|l| l.split_whitespace().next() == Some(only.unit.to_string().as_str()))
                .map_or(0, |i| i + 1);
            return Err(RulError::Parse {
                file: file.to_string(),
                line,
                reason: format!(
                    "unit {} has a single cycle; a run to failure needs at least 2",
                    only.unit
                ),
            });
        }
    }
    Ok(())
}

/// Settings of the pipeline; the same for every data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CmapssConfig {
    /// Targets are `min(RUL, cap)`. `None`: the cap is learned from the
    /// training file, as the remaining life of its shortest unit at that
    /// unit's first cycle, so every training unit starts on the plateau
    /// ([`CmapssModel::cap`]).
    pub cap: Option<f64>,
    /// Cycles in the feature window.
    pub window: usize,
    /// Smoothing factor of the EWMA feature.
    pub ewma_alpha: f64,
    /// Most operating conditions tried.
    pub max_conditions: usize,
    /// Clusters must leave at most this fraction of the settings' spread.
    pub cluster_residual: f64,
    /// Ensembles averaged, each boosted with its own row-subsampling seed.
    pub members: usize,
    pub gbm: GbmConfig,
    /// Cycles of the long window of the health-index features (0 = no health
    /// index). The index is a ridge fit of the capped RUL on the standardised
    /// sensors, learned from the training rows (per condition, see
    /// [`Self::health_per_condition`]): one denoised degradation signal whose
    /// long-window mean and slope the trees can use.
    pub health: usize,
    /// One health index per operating condition (each a ridge fit on that
    /// condition's rows) instead of one shared by all conditions.
    pub health_per_condition: bool,
    /// With several operating conditions: puts each sensor on one wear
    /// scale across the conditions ([`Normaliser::calibrate`]: per condition,
    /// the standardised reading is fitted as a line in the wear fraction and
    /// mapped so that the same wear reads the same in every condition), and
    /// weights each cycle in the window means and slopes by how much its
    /// condition's reading says about wear (inverse noise variance on that
    /// scale; for the health index, the inverse residual variance of its
    /// condition's fit). A sensor's wear shows three times more clearly in
    /// some of FD002's conditions than in others.
    pub calibrate: bool,
}

impl Default for CmapssConfig {
    fn default() -> Self {
        CmapssConfig {
            cap: None,
            window: 30,
            ewma_alpha: 0.1,
            max_conditions: 8,
            cluster_residual: 1e-3,
            members: 3,
            gbm: GbmConfig {
                trees: 500,
                learning_rate: 0.03,
                max_depth: 5,
                min_leaf: 40,
                lambda: 1.0,
                bins: 64,
                subsample: 0.7,
                seed: 7,
            },
            health: 250,
            health_per_condition: true,
            calibrate: true,
        }
    }
}

/// Operating conditions: centroids of the settings, each setting scaled by
/// its spread in the training data.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    scale: [f64; SETTINGS],
    centroids: Vec<[f64; SETTINGS]>,
}

impl Conditions {
    /// Clusters the settings with k = 1.. until the clusters explain all but
    /// `residual` of the spread (else one cluster).
    pub fn learn(rows: &[Row], max_k: usize, residual: f64) -> Result<Conditions> {
        if rows.is_empty() {
            return Err(RulError::Data(
                "no rows to learn operating conditions from".into(),
            ));
        }
        let mut scale = [1.0; SETTINGS];
        for (k, s) in scale.iter_mut().enumerate() {
            let n = rows.len() as f64;
            let m = rows.iter().map(|r| r.settings[k]).sum::<f64>() / n;
            let v = rows.iter().map(|r| (r.settings[k] - m).powi(2)).sum::<f64>() / n;
            *s = if v > 0.0 { v.sqrt() } else { 1.0 };
        }
        let pts: Vec<[f64; SETTINGS]> = rows
            .iter()
            .map(|r| std::array::from_fn(|k| r.settings[k] / scale[k]))
            .collect();
        let one = kmeans(&pts, 1);
        let total = within(&pts, &one);
        let mut chosen = one;
        if total > 0.0 {
            for k in 2..=max_k.max(1) {
                let c = kmeans(&pts, k);
                if within(&pts, &c) <= residual * total {
                    chosen = c;
                    break;
                }
            }
        }
        Ok(Conditions {
            scale,
            centroids: chosen,
        })
    }

    /// Number of conditions.
    pub fn len(&self) -> usize {
        self.centroids.len()
    }

    /// Always false: there is at least one condition.
    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    /// Condition of a row's settings.
    pub fn of(&self, settings: &[f64; SETTINGS]) -> usize {
        let p: [f64; SETTINGS] = std::array::from_fn(|k| settings[k] / self.scale[k]);
        nearest(&self.centroids, &p).0
    }
}

fn dist2(a: &[f64; SETTINGS], b: &[f64; SETTINGS]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn nearest(c: &[[f64; SETTINGS]], p: &[f64; SETTINGS]) -> (usize, f64) {
    c.iter()
        .enumerate()
        .map(|(i, q)| (i, dist2(p, q)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

fn within(pts: &[[f64; SETTINGS]], c: &[[f64; SETTINGS]]) -> f64 {
    pts.iter().map(|p| nearest(c, p).1).sum()
}

/// Lloyd's k-means with farthest-point seeding (deterministic).
fn kmeans(pts: &[[f64; SETTINGS]], k: usize) -> Vec<[f64; SETTINGS]> {
    let n = pts.len() as f64;
    let mean: [f64; SETTINGS] = std::array::from_fn(|j| pts.iter().map(|p| p[j]).sum::<f64>() / n);
    // Start from the point farthest from the mean, then keep adding the point
    // farthest from every centroid so far: one seed per well-separated cluster.
    let first = pts
        .iter()
        .max_by(|a, b| dist2(a, &mean).total_cmp(&dist2(b, &mean)))
        .copied()
        .unwrap_or(mean);
    let mut c = vec![if k == 1 { mean } else { first }];
    while c.len() < k {
        let far = pts
            .iter()
            .max_by(|a, b| nearest(&c, a).1.total_cmp(&nearest(&c, b).1))
            .copied()
            .unwrap_or(mean);
        c.push(far);
    }
    for _ in 0..50 {
        let mut sum = vec![[0.0; SETTINGS]; c.len()];
        let mut cnt = vec![0usize; c.len()];
        for p in pts {
            let (i, _) = nearest(&c, p);
            cnt[i] += 1;
            for j in 0..SETTINGS {
                sum[i][j] += p[j];
            }
        }
        let mut moved = false;
        for i in 0..c.len() {
            if cnt[i] > 0 {
                let next: [f64; SETTINGS] = std::array::from_fn(|j| sum[i][j] / cnt[i] as f64);
                moved |= next != c[i];
                c[i] = next;
            }
        }
        if !moved {
            break;
        }
    }
    c
}

/// Per-condition standardisation of the sensors that vary.
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    pub conditions: Conditions,
    /// Indices of the sensors kept.
    pub kept: Vec<usize>,
    /// `[condition][sensor] = (mean, std)`.
    stats: Vec<[(f64, f64); SENSORS]>,
    /// `[condition][sensor]`: weight of a reading in window means and
    /// slopes (1 unless [`Normaliser::calibrate`] sets it).
    weight: Vec<[f64; SENSORS]>,
}

impl Normaliser {
    pub fn learn(rows: &[Row], cfg: &CmapssConfig) -> Result<Normaliser> {
        let conditions = Conditions::learn(rows, cfg.max_conditions, cfg.cluster_residual)?;
        let k = conditions.len();
        let mut sum = vec![[0.0; SENSORS]; k];
        let mut sq = vec![[0.0; SENSORS]; k];
        let mut cnt = vec![0.0; k];
        for r in rows {
            let c = conditions.of(&r.settings);
            cnt[c] += 1.0;
            for s in 0..SENSORS {
                sum[c][s] += r.sensors[s];
                sq[c][s] += r.sensors[s] * r.sensors[s];
            }
        }
        let mut stats = vec![[(0.0, 1.0); SENSORS]; k];
        let mut varies = [false; SENSORS];
        for c in 0..k {
            if cnt[c] == 0.0 {
                continue;
            }
            for s in 0..SENSORS {
                let m = sum[c][s] / cnt[c];
                let v = (sq[c][s] / cnt[c] - m * m).max(0.0);
                let sd = v.sqrt();
                // Rounding noise of a constant channel is not variation.
                if sd > 1e-6 * (1.0 + m.abs()) {
                    varies[s] = true;
                }
                stats[c][s] = (m, if sd > 0.0 { sd } else { 1.0 });
            }
        }
        let kept: Vec<usize> = (0..SENSORS).filter(|&s| varies[s]).collect();
        if kept.is_empty() {
            return Err(RulError::Data("every sensor is constant".into()));
        }
        Ok(Normaliser {
            weight: vec![[1.0; SENSORS]; conditions.len()],
            conditions,
            kept,
            stats,
        })
    }

    /// Maps each kept sensor, per condition, onto one wear scale: with the
    /// wear fraction `w = 1 - min(RUL, cap) / cap` of every training row, the
    /// standardised reading `z` of condition `c` is fitted as `a_c + b_c·w`,
    /// and the sensor then reads `(z - a_c) · b̄ / b_c`, `b̄` the mean slope
    /// over the conditions: the same wear gives the same reading in every
    /// condition. A sensor whose slopes disagree in sign is left alone. Each
    /// condition's readings of a sensor also get a weight `(b_c / (b̄ σ_c))²`,
    /// `σ_c` the residual spread of the fit: the inverse noise variance on
    /// the common scale, relative to the sensor's largest. Nothing changes
    /// with a single condition.
    pub fn calibrate(&mut self, rows: &[Row], cap: f64) {
        let k = self.conditions.len();
        if k < 2 {
            return;
        }
        // Per condition and sensor: Σw, Σw², Σz, Σwz, n, Σz².
        let mut acc = vec![[[0.0f64; 6]; SENSORS]; k];
        for unit in units(rows) {
            let last = unit.last().map_or(0, |r| r.cycle);
            for r in &unit {
                let c = self.conditions.of(&r.settings);
                let w = 1.0 - f64::from(last - r.cycle).min(cap) / cap;
                for &s in &self.kept {
                    let (m, sd) = self.stats[c][s];
                    let z = (r.sensors[s] - m) / sd;
                    let a = &mut acc[c][s];
                    a[0] += w;
                    a[1] += w * w;
                    a[2] += z;
                    a[3] += w * z;
                    a[4] += 1.0;
                    a[5] += z * z;
                }
            }
        }
        for &s in &self.kept {
            let fits: Vec<Option<(f64, f64, f64)>> = (0..k)
                .map(|c| {
                    let [sw, sww, sz, swz, n, szz] = acc[c][s];
                    let var = n * sww - sw * sw;
                    (n >= 2.0 && var > 0.0).then(|| {
                        let b = (n * swz - sw * sz) / var;
                        let sxy = swz - sw * sz / n;
                        let resid = ((szz - sz * sz / n - b * sxy) / n).max(1e-12);
                        ((sz - b * sw) / n, b, resid)
                    })
                })
                .collect();
            let slopes: Vec<f64> = fits.iter().flatten().map(|f| f.1).collect();
            if slopes.is_empty() {
                continue;
            }
            let mean = slopes.iter().sum::<f64>() / slopes.len() as f64;
            if mean == 0.0 || slopes.iter().any(|b| b.signum() != mean.signum()) {
                continue;
            }
            let precision = |b: f64, resid: f64| (b / mean).powi(2) / resid;
            let best = fits
                .iter()
                .flatten()
                .map(|&(_, b, r)| precision(b, r))
                .fold(0.0, f64::max);
            for (c, fit) in fits.iter().enumerate() {
                let Some((a, b, resid)) = *fit else { continue };
                if best > 0.0 {
                    self.weight[c][s] = precision(b, resid) / best;
                }
                let (m, sd) = self.stats[c][s];
                self.stats[c][s] = (m + a * sd, sd * b / mean);
            }
        }
    }

    /// Weights of the kept sensors of `row` in window means and slopes.
    pub fn weights(&self, row: &Row) -> Vec<f64> {
        let c = self.conditions.of(&row.settings);
        self.kept.iter().map(|&s| self.weight[c][s]).collect()
    }

    /// The kept sensors of `row`, standardised for its condition.
    pub fn apply(&self, row: &Row) -> Vec<f64> {
        let c = self.conditions.of(&row.settings);
        self.kept
            .iter()
            .map(|&s| {
                let (m, sd) = self.stats[c][s];
                (row.sensors[s] - m) / sd
            })
            .collect()
    }
}

/// Features of every cycle of one unit (row `i` uses cycles `..=i` only).
/// With `weights` (one per reading), the window mean and slope are weighted
/// least squares.
pub fn unit_features(
    z: &[Vec<f64>],
    weights: Option<&[Vec<f64>]>,
    cycles: &[u32],
    cfg: &CmapssConfig,
) -> Vec<Vec<f64>> {
    let s = z.first().map_or(0, Vec::len);
    let mut ewma = z.first().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        let lo = (i + 1).saturating_sub(cfg.window.max(1));
        let w = &z[lo..=i];
        let n = w.len() as f64;
        let tm = (n - 1.0) / 2.0;
        let stt: f64 = (0..w.len()).map(|t| (t as f64 - tm).powi(2)).sum();
        let mut f = Vec::with_capacity(4 * s + 1);
        f.push(f64::from(cycles[i]));
        for j in 0..s {
            let (m, slope) = if let Some(wt) = weights {
                let xs: Vec<f64> = w.iter().map(|r| r[j]).collect();
                let ws: Vec<f64> = wt[lo..=i].iter().map(|r| r[j]).collect();
                weighted_line_fit(&xs, &ws)
            } else {
                let m = w.iter().map(|r| r[j]).sum::<f64>() / n;
                let slope = if stt > 0.0 {
                    w.iter()
                        .enumerate()
                        .map(|(t, r)| (t as f64 - tm) * (r[j] - m))
                        .sum::<f64>()
                        / stt
                } else {
                    0.0
                };
                (m, slope)
            };
            if i > 0 {
                ewma[j] += cfg.ewma_alpha * (z[i][j] - ewma[j]);
            }
            f.extend_from_slice(&[z[i][j], m, slope, ewma[j]]);
        }
        out.push(f);
    }
    out
}

/// The trained C-MAPSS model.
#[derive(Debug, Clone, PartialEq)]
pub struct CmapssModel {
    pub cfg: CmapssConfig,
    pub normaliser: Normaliser,
    /// Boosted ensembles whose predictions are averaged.
    pub members: Vec<Gbm>,
    /// Training rows used.
    pub rows: usize,
    /// The cap of the targets and predictions ([`CmapssConfig::cap`]).
    pub cap: f64,
    /// Health-index weights `[intercept, one per kept sensor..]`: one set, or
    /// one per operating condition ([`CmapssConfig::health_per_condition`]);
    /// empty when [`CmapssConfig::health`] is 0.
    pub hi: Vec<Vec<f64>>,
    /// Weight of each health index's readings in its window fits, relative
    /// to the best-fitting one; empty: unweighted
    /// ([`CmapssConfig::calibrate`]).
    pub hi_weight: Vec<f64>,
}

/// Mean of `w` and its least-squares slope against `0..w.len()`.
fn line_fit(w: &[f64]) -> (f64, f64) {
    let n = w.len() as f64;
    let tm = (n - 1.0) / 2.0;
    let m = w.iter().sum::<f64>() / n;
    let stt: f64 = (0..w.len()).map(|t| (t as f64 - tm).powi(2)).sum();
    let slope = if stt > 0.0 {
        w.iter()
            .enumerate()
            .map(|(t, v)| (t as f64 - tm) * (v - m))
            .sum::<f64>()
            / stt
    } else {
        0.0
    };
    (m, slope)
}

/// Weighted mean of `x` and its weighted least-squares slope against
/// `0..x.len()` (the plain fit when the weights sum to nothing).
fn weighted_line_fit(x: &[f64], w: &[f64]) -> (f64, f64) {
    let sw: f64 = w.iter().sum();
    if sw.is_nan() || sw <= 0.0 {
        return line_fit(x);
    }
    let tm = w.iter().enumerate().map(|(t, w)| t as f64 * w).sum::<f64>() / sw;
    let m = x.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let (mut sxy, mut stt) = (0.0, 0.0);
    for (t, (x, w)) in x.iter().zip(w).enumerate() {
        let dt = t as f64 - tm;
        sxy += w * dt * (x - m);
        stt += w * dt * dt;
    }
    (m, if stt > 0.0 { sxy / stt } else { 0.0 })
}

/// A ridge fit `[b, w..]` ([`ridge`]) at the standardised reading `z`.
fn linear(w: &[f64], z: &[f64]) -> f64 {
    w.first().copied().unwrap_or(0.0) + z.iter().zip(w.iter().skip(1)).map(|(a, b)| a * b).sum::<f64>()
}

/// The health index of one standardised reading `z` of `row`.
fn health(hi: &[Vec<f64>], norm: &Normaliser, z: &[f64], row: &Row) -> f64 {
    let w = match hi {
        [one] => one,
        _ => hi.get(norm.conditions.of(&row.settings)).unwrap_or(&hi[0]),
    };
    linear(w, z)
}

/// Ridge regression `y ≈ b + w·z` (the intercept not penalised); returns
/// `[b, w..]`.
fn ridge(z: &[Vec<f64>], y: &[f64], lambda: f64) -> Vec<f64> {
    let d = z.first().map_or(0, Vec::len) + 1;
    let mut a = vec![vec![0.0; d + 1]; d];
    for (row, &t) in z.iter().zip(y) {
        let x: Vec<f64> = std::iter::once(1.0).chain(row.iter().copied()).collect();
        for i in 0..d {
            for j in 0..d {
                a[i][j] += x[i] * x[j];
            }
            a[i][d] += x[i] * t;
        }
    }
    for (i, r) in a.iter_mut().enumerate().skip(1) {
        r[i] += lambda;
    }
    // Gauss–Jordan with partial pivoting.
    for c in 0..d {
        let p = (c..d)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        let piv = a[c][c];
        if piv.abs() < 1e-12 {
            continue;
        }
        for v in a[c].iter_mut() {
            *v /= piv;
        }
        let pivot_row = a[c].clone();
        for (i, r) in a.iter_mut().enumerate() {
            if i != c {
                let f = r[c];
                for (v, pv) in r.iter_mut().zip(&pivot_row) {
                    *v -= f * pv;
                }
            }
        }
    }
    a.iter().map(|r| r[d]).collect()
}

/// [`unit_features`] of one unit's standardised sensors, then, with a health
/// index `hi`, per cycle: the index, its mean and slope over the window, two
/// EWMAs (α and α/3), and its mean and slope over the long window
/// ([`CmapssConfig::health`] cycles). With [`CmapssConfig::calibrate`] and
/// several conditions, the window fits weight each cycle by its condition.
fn features_of(
    unit: &[&Row],
    norm: &Normaliser,
    cfg: &CmapssConfig,
    hi: &[Vec<f64>],
    hi_weight: &[f64],
) -> Vec<Vec<f64>> {
    let z: Vec<Vec<f64>> = unit.iter().map(|r| norm.apply(r)).collect();
    let cycles: Vec<u32> = unit.iter().map(|r| r.cycle).collect();
    let weights: Option<Vec<Vec<f64>>> =
        (cfg.calibrate && norm.conditions.len() > 1).then(|| unit.iter().map(|r| norm.weights(r)).collect());
    let mut f = unit_features(&z, weights.as_deref(), &cycles, cfg);
    if cfg.health > 0 && !hi.is_empty() {
        let h: Vec<f64> = z
            .iter()
            .zip(unit)
            .map(|(zr, r)| health(hi, norm, zr, r))
            .collect();
        let hw: Vec<f64> = unit
            .iter()
            .map(|r| match hi_weight {
                [] | [_] => 1.0,
                _ => hi_weight
                    .get(norm.conditions.of(&r.settings))
                    .copied()
                    .unwrap_or(1.0),
            })
            .collect();
        let (mut e1, mut e2) = (h[0], h[0]);
        for (i, row) in f.iter_mut().enumerate() {
            if i > 0 {
                e1 += cfg.ewma_alpha * (h[i] - e1);
                e2 += cfg.ewma_alpha / 3.0 * (h[i] - e2);
            }
            let short = (i + 1).saturating_sub(cfg.window.max(1))..=i;
            let long = (i + 1).saturating_sub(cfg.health)..=i;
            let (m, sl) = weighted_line_fit(&h[short.clone()], &hw[short]);
            let (ml, sll) = weighted_line_fit(&h[long.clone()], &hw[long]);
            row.extend_from_slice(&[h[i], m, sl, e1, e2, ml, sll]);
        }
    }
    f
}

impl CmapssModel {
    /// Trains on run-to-failure units: each unit's last cycle is its failure.
    pub fn train(rows: &[Row], cfg: &CmapssConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        let mut normaliser = Normaliser::learn(rows, cfg)?;
        let cap = match cfg.cap {
            Some(c) => c,
            None => units(rows)
                .iter()
                .filter_map(|u| Some(f64::from(u.last()?.cycle - u.first()?.cycle)))
                .min_by(f64::total_cmp)
                .unwrap_or(0.0),
        };
        if cap.is_nan() || cap <= 0.0 {
            return Err(RulError::Config {
                name: "cap",
                reason: format!("{cap} is not a positive remaining life"),
            });
        }
        if cfg.calibrate {
            normaliser.calibrate(rows, cap);
        }
        let (hi, hi_weight) = if cfg.health > 0 {
            let groups = if cfg.health_per_condition {
                normaliser.conditions.len()
            } else {
                1
            };
            let mut z = vec![Vec::new(); groups];
            let mut t = vec![Vec::new(); groups];
            for unit in units(rows) {
                let last = unit.last().map_or(0, |r| r.cycle);
                for r in &unit {
                    let g = if groups > 1 {
                        normaliser.conditions.of(&r.settings)
                    } else {
                        0
                    };
                    z[g].push(normaliser.apply(r));
                    t[g].push(f64::from(last - r.cycle).min(cap));
                }
            }
            let hi: Vec<Vec<f64>> = z.iter().zip(&t).map(|(z, t)| ridge(z, t, 1.0)).collect();
            let hi_weight = if cfg.calibrate && groups > 1 {
                let precision: Vec<f64> = (0..groups)
                    .map(|g| {
                        let w = &hi[g];
                        let n = t[g].len().max(1) as f64;
                        let sse: f64 = z[g]
                            .iter()
                            .zip(&t[g])
                            .map(|(zr, y)| (y - linear(w, zr)).powi(2))
                            .sum();
                        n / sse.max(1e-12)
                    })
                    .collect();
                let best = precision.iter().copied().fold(0.0, f64::max);
                precision.iter().map(|p| p / best).collect()
            } else {
                Vec::new()
            };
            (hi, hi_weight)
        } else {
            (Vec::new(), Vec::new())
        };
        let mut x = Vec::with_capacity(rows.len());
        let mut y = Vec::with_capacity(rows.len());
        for unit in units(rows) {
            let last = unit.last().map_or(0, |r| r.cycle);
            for (r, f) in unit
                .iter()
                .zip(features_of(&unit, &normaliser, cfg, &hi, &hi_weight))
            {
                x.push(f);
                y.push(f64::from(last - r.cycle).min(cap));
            }
        }
        let x = matrix(&x)?;
        let y = Array1::from(y);
        let k = cfg.members.max(1);
        let total = k * cfg.gbm.trees;
        let mut members = Vec::with_capacity(k);
        for m in 0..k {
            let gcfg = GbmConfig {
                seed: cfg.gbm.seed.wrapping_add(m as u64 * 0x9E37_79B9),
                ..cfg.gbm
            };
            let done = m * cfg.gbm.trees;
            members.push(Gbm::fit(x.view(), y.view(), &gcfg, &mut |d, _| {
                progress(done + d, total)
            })?);
        }
        Ok(CmapssModel {
            cfg: *cfg,
            normaliser,
            members,
            rows: x.nrows(),
            cap,
            hi,
            hi_weight,
        })
    }

    /// RUL at the last cycle of each unit of `rows`, in unit order, as `(unit, rul)`.
    pub fn predict_last(&self, rows: &[Row]) -> Vec<(u32, f64)> {
        units(rows)
            .iter()
            .filter_map(|unit| {
                let f = features_of(unit, &self.normaliser, &self.cfg, &self.hi, &self.hi_weight);
                let id = unit.first()?.unit;
                let last = f.last()?;
                let p = self.members.iter().map(|g| g.predict(last)).sum::<f64>()
                    / self.members.len().max(1) as f64;
                Some((id, p.clamp(0.0, self.cap)))
            })
            .collect()
    }
}

/// One held-out cut of [`cross_validate`]: the prediction at the cut, the
/// true (uncapped) remaining life there, and the cap of the fold's model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvCut {
    pub predicted: f64,
    pub truth: f64,
    pub cap: f64,
}

/// Mimics the test protocol on a run-to-failure file alone. Units go to
/// `folds` folds by `unit % folds`; in each fold a model is trained on the
/// other units and every held-out unit is cut `cuts` times at a uniformly
/// drawn cycle (at least one cycle seen and one left; a fixed hash of unit and
/// cut, so the cuts are the same for every configuration), then predicted once
/// at the cut. Nothing but `rows` is used. `progress(done, folds)` after each
/// fold. The cuts come back in fold order.
pub fn cross_validate(
    rows: &[Row],
    cfg: &CmapssConfig,
    folds: u32,
    cuts: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<CvCut>> {
    if folds < 2 {
        return Err(RulError::Config {
            name: "folds",
            reason: format!("{folds} folds: cross-validation needs at least 2"),
        });
    }
    let all = units(rows);
    for fold in 0..folds {
        if !all
            .iter()
            .any(|u| u.first().is_some_and(|r| r.unit % folds == fold))
        {
            return Err(RulError::Data(format!(
                "fold {fold} of {folds} holds no unit: too few units for {folds} folds"
            )));
        }
    }
    let mut out = Vec::new();
    for fold in 0..folds {
        let held = |unit: u32| unit % folds == fold;
        let fit: Vec<Row> = rows.iter().filter(|r| !held(r.unit)).cloned().collect();
        let mut val = Vec::new();
        let mut truth = Vec::new();
        for unit in all.iter().filter(|u| u.first().is_some_and(|r| held(r.unit))) {
            let life = unit.len();
            if life < 2 {
                continue;
            }
            for cut in 0..cuts {
                let h = (u64::from(unit[0].unit) * cuts + cut).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                let keep = 1 + (h % (life as u64 - 1)) as usize;
                // A distinct id per cut, so each cut is predicted on its own.
                let id = u32::try_from(truth.len()).map_err(|_| RulError::Data("too many cuts".into()))?;
                val.extend(unit[..keep].iter().map(|r| Row {
                    unit: id,
                    ..(*r).clone()
                }));
                truth.push((life - keep) as f64);
            }
        }
        let model = CmapssModel::train(&fit, cfg, &mut |_, _| {})?;
        let preds = model.predict_last(&val);
        out.extend(preds.iter().zip(&truth).map(|(p, &t)| CvCut {
            predicted: p.1,
            truth: t,
            cap: model.cap,
        }));
        progress(fold as usize + 1, folds as usize);
    }
    Ok(out)
}

/// Scores of [`cross_validate`]'s cuts: against the true remaining life (as
/// the test protocol scores), and against it capped at `cap`, or at each
/// fold model's own cap when `cap` is `None` (what a capped model can be
/// judged on).
pub fn cv_scores(cuts: &[CvCut], cap: Option<f64>) -> (super::metrics::Scores, super::metrics::Scores) {
    let plain: Vec<(f64, f64)> = cuts.iter().map(|c| (c.predicted, c.truth)).collect();
    let capped: Vec<(f64, f64)> = cuts
        .iter()
        .map(|c| (c.predicted, c.truth.min(cap.unwrap_or(c.cap))))
        .collect();
    (super::metrics::score(&plain), super::metrics::score(&capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(unit: u32, cycle: u32, setting: f64, sensor: f64) -> String {
        let mut s = format!("{unit} {cycle} {setting} 0.0 100.0");
        for k in 0..SENSORS {
            s.push_str(&format!(" {}", if k == 1 { sensor } else { 5.0 }));
        }
        s
    }

    #[test]
    fn parses_rows_and_names_the_bad_line() {
        let text = format!("{}\n{}\n\n", line(1, 1, 0.0, 1.5), line(1, 2, 0.0, 1.6));
        let rows = parse("train.txt", &text).expect("parse");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].unit, rows[1].cycle), (1, 2));
        assert_eq!(rows[1].sensors[1], 1.6);

        let bad = format!(
            "{}\n{}\n",
            line(1, 1, 0.0, 1.5),
            line(1, 2, 0.0, 1.6).replace("1.6", "x")
        );
        let e = parse("train.txt", &bad).expect_err("bad number");
        assert!(
            matches!(&e, RulError::Parse { file, line: 2, .. } if file == "train.txt"),
            "{e}"
        );
        assert!(e.to_string().starts_with("train.txt:2:"), "{e}");
        let short = parse("t.txt", "1 2 3\n").expect_err("short row");
        assert!(short.to_string().contains("t.txt:1: 3 fields"), "{short}");

        assert_eq!(
            parse_truth("RUL.txt", "112\n98 \n").expect("truth"),
            vec![112.0, 98.0]
        );
        let e = parse_truth("RUL.txt", "112\n-3\n").expect_err("negative");
        assert!(e.to_string().starts_with("RUL.txt:2:"), "{e}");
    }

    #[test]
    fn conditions_are_found_from_the_settings() {
        let mut rows = Vec::new();
        for i in 0..300u32 {
            // Three operating points with a little jitter.
            let op = f64::from(i % 3) * 20.0 + f64::from((i * 37) % 101) * 1e-5;
            let text = line(1, i + 1, op, 1.0);
            rows.extend(parse("x", &text).expect("row"));
        }
        let c = Conditions::learn(&rows, 8, 0.01).expect("learn");
        assert_eq!(c.len(), 3);
        assert_ne!(c.of(&[0.0, 0.0, 100.0]), c.of(&[40.0, 0.0, 100.0]));
        // Jitter alone is one condition.
        let one: Vec<Row> = rows.iter().filter(|r| r.settings[0] < 1.0).cloned().collect();
        assert_eq!(Conditions::learn(&one, 8, 0.01).expect("learn").len(), 1);
    }

    #[test]
    fn window_features_see_the_trend() {
        let z: Vec<Vec<f64>> = (0..40).map(|t| vec![2.0 * t as f64]).collect();
        let cycles: Vec<u32> = (1..=40).collect();
        let f = unit_features(&z, None, &cycles, &CmapssConfig::default());
        let last = &f[39];
        assert_eq!(last[0], 40.0);
        assert_eq!(last[1], 78.0, "last value");
        assert!(
            (last[2] - (78.0 + 20.0) / 2.0).abs() < 1e-9,
            "mean of the last 30"
        );
        assert!((last[3] - 2.0).abs() < 1e-9, "slope");
        assert!(last[4] < 78.0 && last[4] > 50.0, "ewma lags");
    }

    #[test]
    fn ridge_recovers_a_linear_map() {
        let z: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![f64::from(i) / 10.0, f64::from((i * 7) % 11)])
            .collect();
        let y: Vec<f64> = z.iter().map(|r| 3.0 + 2.0 * r[0] - 0.5 * r[1]).collect();
        let w = ridge(&z, &y, 1e-9);
        for (got, want) in w.iter().zip([3.0, 2.0, -0.5]) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
        let (m, slope) = line_fit(&[1.0, 3.0, 5.0]);
        assert_eq!((m, slope), (3.0, 2.0));
    }

    /// 30 units, one sensor drifting up as failure nears, the others constant.
    fn synthetic_fleet() -> Vec<Row> {
        let mut text = String::new();
        for u in 1..=30u32 {
            let life = 80 + (u * 7) % 50;
            for c in 1..=life {
                let rul = f64::from(life - c);
                let wear = (-rul / 30.0).exp() * 10.0 + f64::from((c * 13 + u) % 5) * 0.05;
                text.push_str(&line(u, c, 0.0, wear));
                text.push('\n');
            }
        }
        parse("synthetic", &text).expect("parse")
    }

    #[test]
    fn cross_validation_cuts_held_out_units() {
        let rows = synthetic_fleet();
        let cfg = CmapssConfig {
            members: 1,
            gbm: GbmConfig {
                trees: 60,
                learning_rate: 0.1,
                min_leaf: 10,
                ..GbmConfig::default()
            },
            ..CmapssConfig::default()
        };
        let mut folds_done = Vec::new();
        let cuts = cross_validate(&rows, &cfg, 3, 4, &mut |d, t| folds_done.push((d, t))).expect("cv");
        assert_eq!(folds_done, vec![(1, 3), (2, 3), (3, 3)]);
        assert_eq!(cuts.len(), 30 * 4, "every unit cut 4 times");
        let longest = 80.0 + 49.0;
        for c in &cuts {
            assert!(c.truth >= 1.0 && c.truth < longest, "{c:?}");
            assert!(c.predicted >= 0.0 && c.predicted <= c.cap, "{c:?}");
        }
        // The cuts do not all fall at one point of life.
        let near = cuts.iter().filter(|c| c.truth < 30.0).count();
        assert!(near > 10 && near < 100, "{near} of 120 cuts within 30 of failure");
        // Reproducible: the same cuts and predictions again.
        assert_eq!(
            cross_validate(&rows, &cfg, 3, 4, &mut |_, _| {}).expect("cv"),
            cuts
        );
        // Held-out units are predicted far better than by the mean capped life.
        let (plain, capped) = cv_scores(&cuts, None);
        let mean = cuts.iter().map(|c| c.truth.min(c.cap)).sum::<f64>() / cuts.len() as f64;
        let flat: Vec<(f64, f64)> = cuts.iter().map(|c| (mean, c.truth.min(c.cap))).collect();
        let baseline = super::super::metrics::score(&flat).rmse;
        assert!(capped.rmse < 0.5 * baseline, "{} vs {baseline}", capped.rmse);
        assert!(plain.rmse >= capped.rmse);
        let (_, at10) = cv_scores(&cuts, Some(10.0));
        assert!(at10.rmse != capped.rmse, "an explicit cap is used");

        assert!(cross_validate(&rows, &cfg, 1, 4, &mut |_, _| {}).is_err());
        let few: Vec<Row> = rows.iter().filter(|r| r.unit <= 2).cloned().collect();
        let e = cross_validate(&few, &cfg, 3, 4, &mut |_, _| {}).expect_err("3 folds of 2 units");
        assert!(e.to_string().contains("holds no unit"), "{e}");
    }

    #[test]
    fn a_health_index_per_condition() {
        // Two operating conditions; the wear sensor rises with wear in the
        // first and falls in the second.
        let mut text = String::new();
        for u in 1..=20u32 {
            let life = 90 + (u * 11) % 40;
            for c in 1..=life {
                let rul = f64::from(life - c);
                let wear = (-rul / 30.0).exp() * 10.0 + f64::from((c * 13 + u) % 5) * 0.05;
                let (setting, sensor) = if c % 2 == 0 { (0.0, wear) } else { (40.0, -wear) };
                text.push_str(&line(u, c, setting, sensor));
                text.push('\n');
            }
        }
        let rows = parse("two conditions", &text).expect("parse");
        let cfg = CmapssConfig {
            members: 1,
            gbm: GbmConfig {
                trees: 20,
                ..GbmConfig::default()
            },
            ..CmapssConfig::default()
        };
        let model = CmapssModel::train(&rows, &cfg, &mut |_, _| {}).expect("train");
        assert_eq!(model.normaliser.conditions.len(), 2);
        assert_eq!(model.hi.len(), 2, "one index per condition");
        let weight = |c: usize| model.hi[c][1];
        assert!(weight(0) * weight(1) < 0.0, "opposite signs: {:?}", model.hi);
        let shared = CmapssConfig {
            health_per_condition: false,
            ..cfg
        };
        let one = CmapssModel::train(&rows, &shared, &mut |_, _| {}).expect("train");
        assert_eq!(one.hi.len(), 1);
    }

    #[test]
    fn calibration_puts_every_condition_on_one_wear_scale() {
        // Two conditions: the wear sensor rises by 3 over a life in the
        // first, with little noise, and by 1 in the second, with much more.
        let cap = 60.0;
        let mut text = String::new();
        for u in 1..=20u32 {
            let life = 90 + (u * 11) % 40;
            for c in 1..=life {
                let wear = 1.0 - f64::from(life - c).min(cap) / cap;
                let jitter = f64::from((c * 13 + u) % 5) - 2.0;
                let (setting, sensor) = if c % 2 == 0 {
                    (0.0, 10.0 + 3.0 * wear + 0.01 * jitter)
                } else {
                    (40.0, 50.0 + wear + 0.3 * jitter)
                };
                text.push_str(&line(u, c, setting, sensor));
                text.push('\n');
            }
        }
        let rows = parse("two conditions", &text).expect("parse");
        let cfg = CmapssConfig::default();
        let plain = Normaliser::learn(&rows, &cfg).expect("learn");
        let mut norm = plain.clone();
        norm.calibrate(&rows, cap);
        let reading = |setting: f64, sensor: f64| {
            let text = line(1, 1, setting, sensor);
            let row = parse("x", &text).expect("row").remove(0);
            (norm.apply(&row)[0], norm.weights(&row)[0], plain.apply(&row)[0])
        };
        let (new0, w0, fresh0) = reading(0.0, 10.0);
        let (worn0, _, old_worn0) = reading(0.0, 13.0);
        let (new1, w1, fresh1) = reading(40.0, 50.0);
        let (worn1, _, old_worn1) = reading(40.0, 51.0);
        // Standardised per condition only, a whole life moves the two
        // conditions' readings by different amounts; calibrated, by one.
        let (rise0, rise1) = (worn0 - new0, worn1 - new1);
        assert!((rise0 - rise1).abs() < 0.05 * rise0, "{rise0} vs {rise1}");
        assert!(
            (new0 - new1).abs() < 0.05 * rise0,
            "a new part reads alike: {new0} vs {new1}"
        );
        assert!(((old_worn0 - fresh0) - (old_worn1 - fresh1)).abs() > 0.1 * rise0);
        // The clear condition weighs most; the noisy one far less.
        assert_eq!(w0, 1.0);
        assert!(w1 > 0.0 && w1 < 0.1, "{w1}");

        // One condition: nothing changes.
        let one: Vec<Row> = rows.iter().filter(|r| r.settings[0] == 0.0).cloned().collect();
        let plain = Normaliser::learn(&one, &cfg).expect("learn");
        let mut norm = plain.clone();
        norm.calibrate(&one, cap);
        assert_eq!(norm, plain);
    }

    #[test]
    fn weighted_window_fits() {
        let x = [1.0, 3.0, 5.0, 100.0];
        assert_eq!(weighted_line_fit(&x[..3], &[1.0; 3]), line_fit(&x[..3]));
        // A reading of no weight is ignored.
        let (m, slope) = weighted_line_fit(&x, &[1.0, 1.0, 1.0, 0.0]);
        assert!(
            (m - 3.0).abs() < 1e-12 && (slope - 2.0).abs() < 1e-12,
            "{m} {slope}"
        );
        // Weights all zero: the plain fit.
        assert_eq!(weighted_line_fit(&x, &[0.0; 4]), line_fit(&x));
        // Through unit_features: the window mean leans to the heavy readings.
        let z: Vec<Vec<f64>> = vec![vec![0.0], vec![10.0]];
        let w: Vec<Vec<f64>> = vec![vec![1.0], vec![3.0]];
        let f = unit_features(&z, Some(&w), &[1, 2], &CmapssConfig::default());
        assert!((f[1][2] - 7.5).abs() < 1e-12, "{:?}", f[1]);
    }

    #[test]
    fn learns_synthetic_degradation() {
        let rows = synthetic_fleet();
        let cfg = CmapssConfig {
            gbm: GbmConfig {
                trees: 150,
                learning_rate: 0.1,
                min_leaf: 10,
                ..GbmConfig::default()
            },
            ..CmapssConfig::default()
        };
        let model = CmapssModel::train(&rows, &cfg, &mut |_, _| {}).expect("train");
        assert_eq!(model.normaliser.kept, vec![1], "constant sensors dropped");
        // The shortest unit lives 83 cycles: 82 left at its first.
        assert_eq!(model.cap, 82.0, "cap learned from the shortest life");
        let fixed = CmapssConfig {
            cap: Some(60.0),
            members: 1,
            ..cfg
        };
        let m60 = CmapssModel::train(&rows, &fixed, &mut |_, _| {}).expect("train");
        assert_eq!(m60.cap, 60.0);
        let early: Vec<Row> = rows
            .iter()
            .filter(|r| r.unit == 5 && r.cycle <= 3)
            .cloned()
            .collect();
        assert!(
            m60.predict_last(&early)[0].1 <= 60.0,
            "predictions stop at the cap"
        );
        // Cut one unit 20 cycles before failure.
        let cut: Vec<Row> = rows
            .iter()
            .filter(|r| r.unit == 5 && r.cycle <= 95)
            .cloned()
            .collect();
        let life = 80 + 35;
        let p = model.predict_last(&cut);
        assert_eq!(p.len(), 1);
        let truth = f64::from(life - 95);
        assert!((p[0].1 - truth).abs() < 8.0, "{p:?} vs {truth}");
    }
}
