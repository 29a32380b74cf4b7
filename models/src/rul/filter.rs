//! Air-filter clogging data (differential pressure until 600 Pa, 10 Hz):
//! parsing, header checks, two baselines and the trend + fleet-prior model.
//!
//! One published copy of the training file has its `Dust_feed` and `RUL`
//! headers swapped. Which column is the remaining life is decided from the
//! data, not the file name: the RUL column counts down by the elapsed time
//! from one row to the next. [`FilterData::swapped`] tells the caller so.
//!
//! The model treats running time as the usage (the rig runs continuously),
//! fits [`RulTrend`] to the pressure (drop-outs at 0 Pa ignored, a short
//! half-life so the fit follows changes of the dust feed) and blends it with a
//! [`FleetPrior`] of the training lives against the early dust load and flow.
//! A direct regressor ([`cut_features`] → time left, gradient boosting trained
//! on cuts of the training lives) replaces it when it cross-validates better.

use super::gbm::{Gbm, GbmConfig, matrix};
use super::metrics::{self, Scores};
use super::prior::{CompletedLife, FleetPrior, blend_with};
use super::trend::{Estimate, RulTrend, Shape, TrendConfig};
use super::{Result, RulError};
use ndarray::Array1;

/// Pressure at which a filter is spent, in Pa.
pub const THRESHOLD_PA: f64 = 600.0;

/// One test (a filter's life, possibly cut before failure).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterTest {
    pub id: String,
    /// Seconds since the start of the test.
    pub time: Vec<f64>,
    pub dp: Vec<f64>,
    pub flow: Vec<f64>,
    pub feed: Vec<f64>,
    pub rul: Vec<f64>,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterData {
    pub tests: Vec<FilterTest>,
    /// The headers `RUL` and `Dust_feed` were the wrong way round.
    pub swapped: bool,
}

/// Parses a filter CSV (`Data_No, Differential_pressure, Flow_rate, Time,
/// Dust_feed, RUL`, other columns ignored).
pub fn parse(file: &str, text: &str) -> Result<FilterData> {
    let mut lines = text.lines().enumerate();
    let perr = |line: usize, reason: String| RulError::Parse {
        file: file.to_string(),
        line,
        reason,
    };
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(|s| s.trim().trim_matches('"')).collect(),
        None => return Err(perr(1, "empty file, expected a header row".into())),
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| perr(1, format!("no column `{name}` (columns: {})", header.join(", "))))
    };
    let (c_id, c_dp, c_flow, c_time, c_feed, c_rul) = (
        col("Data_No")?,
        col("Differential_pressure")?,
        col("Flow_rate")?,
        col("Time")?,
        col("Dust_feed")?,
        col("RUL")?,
    );
    let mut tests: Vec<FilterTest> = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(|s| s.trim().trim_matches('"')).collect();
        let num = |c: usize| {
            let t = f.get(c).copied().unwrap_or("");
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| perr(i + 1, format!("column `{}`: `{t}` is not a number", header[c])))
        };
        let id = f.get(c_id).copied().unwrap_or("").to_string();
        if id.is_empty() {
            return Err(perr(i + 1, "empty `Data_No`".into()));
        }
        if tests.last().is_none_or(|t| t.id != id) {
            tests.push(FilterTest {
                id,
                ..FilterTest::default()
            });
        }
        let (dp, flow, time, feed, rul) = (num(c_dp)?, num(c_flow)?, num(c_time)?, num(c_feed)?, num(c_rul)?);
        if let Some(t) = tests.last_mut() {
            if t.time.last().is_some_and(|&last| time <= last) {
                return Err(perr(i + 1, format!("time {time} does not advance")));
            }
            t.time.push(time);
            t.dp.push(dp);
            t.flow.push(flow);
            t.feed.push(feed);
            t.rul.push(rul);
        }
    }
    if tests.is_empty() {
        return Err(perr(2, "no data rows".into()));
    }
    let swapped = countdown(&tests, |t| &t.feed) > countdown(&tests, |t| &t.rul);
    if swapped {
        for t in &mut tests {
            std::mem::swap(&mut t.feed, &mut t.rul);
        }
    }
    Ok(FilterData { tests, swapped })
}

/// Fraction of consecutive rows in which the column falls by the elapsed time.
fn countdown(tests: &[FilterTest], column: impl Fn(&FilterTest) -> &Vec<f64>) -> f64 {
    let (mut hit, mut all) = (0usize, 0usize);
    for t in tests {
        let c = column(t);
        for i in 1..t.time.len() {
            let dt = t.time[i] - t.time[i - 1];
            all += 1;
            if ((c[i - 1] - c[i]) - dt).abs() <= 1e-3 * (1.0 + dt.abs()) {
                hit += 1;
            }
        }
    }
    hit as f64 / all.max(1) as f64
}

/// Settings of the filter evaluation; the same for any file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    /// Candidate half-lives of the trend's weights, in seconds of running time.
    pub half_lives_s: Vec<f64>,
    /// Candidate scales of the trend's standard deviation in the blend.
    pub trend_sd_scales: Vec<f64>,
    /// Candidate threshold margins, in reading-noise standard deviations.
    pub margins: Vec<f64>,
    /// Points of each training life (as fractions of it) where cross-validation predicts.
    pub cv_cuts: Vec<f64>,
    /// Seconds at the start of a test that give the prior's covariates.
    pub covariate_window_s: f64,
    /// Seconds the linear baseline looks back.
    pub linear_window_s: f64,
    /// Ridge penalty of the prior.
    pub ridge: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            half_lives_s: vec![2.0, 3.0, 5.0, 10.0],
            trend_sd_scales: vec![0.5, 1.0, 2.0, 4.0],
            margins: vec![0.0, 1.0, 2.0],
            cv_cuts: vec![0.6, 0.7, 0.8, 0.9],
            covariate_window_s: 30.0,
            linear_window_s: 20.0,
            ridge: 1.0,
        }
    }
}

/// Trend settings chosen by cross-validation on the training lives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub usage: Usage,
    /// Mean usage per second over the training lives (converts the half-life).
    pub usage_per_s: f64,
    /// `None`: the most likely shape at each prediction.
    pub shape: Option<Shape>,
    pub half_life_s: f64,
    pub trend_sd_scale: f64,
    pub margin: f64,
    /// Leave-one-life-out RMSE of this choice on the training lives.
    pub cv_rmse: f64,
    /// The mean-life baseline's RMSE on the same cuts.
    pub cv_mean_life_rmse: f64,
}

/// Covariates of a test: mean dust feed and mean flow over its first seconds.
fn covariates(t: &FilterTest, window: f64) -> Vec<f64> {
    let start = t.time.first().copied().unwrap_or(0.0);
    let idx: Vec<usize> = (0..t.time.len())
        .filter(|&i| t.time[i] - start <= window)
        .collect();
    let n = idx.len().max(1) as f64;
    vec![
        idx.iter().map(|&i| t.feed[i]).sum::<f64>() / n,
        idx.iter().map(|&i| t.flow[i]).sum::<f64>() / n,
    ]
}

/// Linear extrapolation of the pressure over the last `window` seconds;
/// `None` when it does not rise.
pub fn linear_baseline(t: &FilterTest, window: f64) -> Option<f64> {
    let now = *t.time.last()?;
    let pts: Vec<(f64, f64)> = t
        .time
        .iter()
        .zip(&t.dp)
        .filter(|(x, _)| now - **x <= window)
        .map(|(x, y)| (*x, *y))
        .collect();
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = (sxx > 0.0).then(|| sxy / sxx).filter(|b| *b > 0.0)?;
    Some(((THRESHOLD_PA - (my + b * (now - mx))) / b).max(0.0))
}

/// One test's predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    pub test: String,
    pub predicted: f64,
    pub linear: f64,
    pub mean_life: f64,
    pub truth: f64,
    /// Which model produced `predicted`, from what data.
    pub explanation: String,
}

/// Scores of the model and the baselines on a test file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEval {
    pub model: Scores,
    pub linear: Scores,
    pub mean_life: Scores,
    pub choice: Choice,
    /// Cross-validated RMSE of the direct regressor on the same cuts.
    pub direct_cv_rmse: f64,
    /// The direct regressor won the cross-validation and made `model`.
    pub direct: bool,
    pub per_test: Vec<TestResult>,
}

/// What the trend and the prior count as usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Running time, s.
    Time,
    /// Dust fed so far (feed × time): the pressure rises with the dust caught,
    /// so a change of feed rate does not bend the trend.
    Dust,
}

impl Usage {
    pub fn name(self) -> &'static str {
        match self {
            Usage::Time => "running time",
            Usage::Dust => "dust fed",
        }
    }
}

/// Cumulative usage at each of the first `n` rows.
fn usage_of(t: &FilterTest, n: usize, usage: Usage) -> Vec<f64> {
    match usage {
        Usage::Time => t.time.iter().take(n).copied().collect(),
        Usage::Dust => {
            let mut acc = 0.0;
            let mut prev = 0.0;
            t.time
                .iter()
                .zip(&t.feed)
                .take(n)
                .map(|(x, f)| {
                    acc += f * (x - prev).max(0.0);
                    prev = *x;
                    acc
                })
                .collect()
        }
    }
}

/// The model's estimate for the first `n` rows of a test, and the remaining
/// life in seconds (usage turned into time at the recent usage rate).
fn estimate(
    t: &FilterTest,
    n: usize,
    prior: &FleetPrior,
    choice: &Choice,
    cfg: &FilterConfig,
) -> Result<(Estimate, f64)> {
    let mut tc = TrendConfig::new(THRESHOLD_PA, 0.0);
    tc.half_life = Some(choice.half_life_s * choice.usage_per_s);
    tc.rate_half_life_ms = 5_000.0;
    tc.threshold_margin = choice.margin;
    tc.reading_interval = true;
    let mut trend = RulTrend::new(tc)?;
    let usage = usage_of(t, n, choice.usage);
    for ((x, u), y) in t.time.iter().zip(&usage).zip(&t.dp) {
        trend.update((x * 1000.0).round() as i64, *u, *y);
    }
    let now = usage.last().copied().unwrap_or(0.0);
    let pr = prior.remaining(&covariates(t, cfg.covariate_window_s), now);
    let e = blend_with(&trend, choice.shape, &pr, tc.coverage, choice.trend_sd_scale);
    let seconds = match choice.usage {
        Usage::Time => e.remaining_usage,
        Usage::Dust => e
            .remaining_ms()
            .map_or(e.remaining_usage / choice.usage_per_s, |ms| ms / 1000.0),
    };
    Ok((e, seconds))
}

fn completed(t: &FilterTest, cfg: &FilterConfig, usage: Usage) -> Option<CompletedLife> {
    t.rul.last().filter(|r| r.abs() < 1e-6)?;
    Some(CompletedLife {
        covariates: covariates(t, cfg.covariate_window_s),
        life: *usage_of(t, t.time.len(), usage).last()?,
    })
}

/// Leave-one-out priors of the lives in `usage` units.
fn loo_priors(
    train: &[&FilterTest],
    cfg: &FilterConfig,
    usage: Usage,
) -> Result<(Vec<f64>, Vec<FleetPrior>)> {
    let lives: Vec<CompletedLife> = train.iter().filter_map(|t| completed(t, cfg, usage)).collect();
    if lives.len() < 3 || lives.len() != train.len() {
        return Err(RulError::Data(
            "cross-validation needs at least 3 lives, all run to failure".into(),
        ));
    }
    let priors = (0..lives.len())
        .map(|i| {
            let rest: Vec<CompletedLife> = lives
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| l.clone())
                .collect();
            FleetPrior::learn(&rest, cfg.ridge)
        })
        .collect::<Result<_>>()?;
    Ok((lives.iter().map(|l| l.life).collect(), priors))
}

/// Picks usage, shape, half-life and trend calibration by leave-one-life-out
/// cross-validation on the training lives, cut at `cfg.cv_cuts` of each life.
pub fn choose(train: &[&FilterTest], cfg: &FilterConfig) -> Result<Choice> {
    let total_time: f64 = train.iter().filter_map(|t| t.time.last()).sum();
    let total_dust: f64 = train
        .iter()
        .filter_map(|t| usage_of(t, t.time.len(), Usage::Dust).last().copied())
        .sum();
    // The mean-life baseline on the same cuts, for reference.
    let (time_lives, _) = loo_priors(train, cfg, Usage::Time)?;
    let mut base = Vec::new();
    for (i, t) in train.iter().enumerate() {
        let others = (time_lives.iter().sum::<f64>() - time_lives[i]) / (time_lives.len() - 1) as f64;
        for &cut in &cfg.cv_cuts {
            let n = ((t.time.len() as f64 * cut) as usize).clamp(1, t.time.len());
            base.push(((others - t.time[n - 1]).max(0.0), time_lives[i] - t.time[n - 1]));
        }
    }
    let cv_mean_life_rmse = metrics::score(&base).rmse;
    let mut best: Option<Choice> = None;
    for usage in [Usage::Time, Usage::Dust] {
        let usage_per_s = match usage {
            Usage::Time => 1.0,
            Usage::Dust if total_time > 0.0 && total_dust > 0.0 => total_dust / total_time,
            Usage::Dust => continue,
        };
        let (_, priors) = loo_priors(train, cfg, usage)?;
        let shapes = [
            None,
            Some(Shape::Linear),
            Some(Shape::Exponential),
            Some(Shape::Power),
        ];
        for shape in shapes {
            for &half_life_s in &cfg.half_lives_s {
                for (&trend_sd_scale, &margin) in cfg
                    .trend_sd_scales
                    .iter()
                    .flat_map(|s| cfg.margins.iter().map(move |m| (s, m)))
                {
                    let mut choice = Choice {
                        usage,
                        usage_per_s,
                        shape,
                        half_life_s,
                        trend_sd_scale,
                        margin,
                        cv_rmse: 0.0,
                        cv_mean_life_rmse,
                    };
                    let mut pairs = Vec::new();
                    for (i, t) in train.iter().enumerate() {
                        let end = t.time.last().copied().unwrap_or(0.0);
                        for &cut in &cfg.cv_cuts {
                            let n = ((t.time.len() as f64 * cut) as usize).clamp(1, t.time.len());
                            let (_, seconds) = estimate(t, n, &priors[i], &choice, cfg)?;
                            pairs.push((seconds, end - t.time[n - 1]));
                        }
                    }
                    choice.cv_rmse = metrics::score(&pairs).rmse;
                    if best.is_none_or(|b| choice.cv_rmse < b.cv_rmse) {
                        best = Some(choice);
                    }
                }
            }
        }
    }
    best.ok_or_else(|| RulError::Data("no candidate settings".into()))
}

/// Seconds over which the direct regressor takes pressure slopes.
const SLOPE_WINDOWS_S: [f64; 3] = [3.0, 10.0, 30.0];
/// Rows between two training cuts of the direct regressor.
const DIRECT_STRIDE: usize = 5;
/// Folds of the direct regressor's cross-validation (whole lives held out).
const DIRECT_FOLDS: usize = 5;

/// Least-squares slope of the pressure (drop-outs at or below 0 Pa ignored)
/// over the last `window` seconds of the first `n` rows, and its mean.
fn recent_slope(t: &FilterTest, n: usize, window: f64) -> (f64, f64) {
    let now = t.time[n - 1];
    let pts: Vec<(f64, f64)> = (0..n)
        .rev()
        .take_while(|&i| now - t.time[i] <= window)
        .filter(|&i| t.dp[i] > 0.0)
        .map(|i| (t.time[i], t.dp[i]))
        .collect();
    if pts.is_empty() {
        return (0.0, 0.0);
    }
    let k = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / k;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (b, my + b * (now - mx))
}

/// Features of a test's first `n` rows, seen at its last row: age, pressure
/// now, its slopes over 3, 10 and 30 s, their linear time to 600 Pa, dust feed
/// now and on average, flow now, and the dust fed so far.
pub fn cut_features(t: &FilterTest, n: usize) -> Vec<f64> {
    let n = n.clamp(1, t.time.len());
    let start = t.time[0];
    let age = t.time[n - 1] - start;
    let (_, dp_now) = recent_slope(t, n, 1.0);
    let mut f = vec![age, dp_now];
    for w in SLOPE_WINDOWS_S {
        let (b, level) = recent_slope(t, n, w);
        f.push(b);
        f.push(if b > 0.0 {
            ((THRESHOLD_PA - level) / b).clamp(0.0, 1000.0)
        } else {
            1000.0
        });
    }
    let dust = *usage_of(t, n, Usage::Dust).last().unwrap_or(&0.0);
    f.push(t.feed[n - 1]);
    f.push(if age > 0.0 { dust / age } else { t.feed[n - 1] });
    f.push(t.flow[n - 1]);
    f.push(dust);
    f
}

/// Training rows of the direct regressor: cuts every few rows of each
/// run-to-failure life (after its first 5 s), target the time left.
fn direct_samples(lives: &[&FilterTest]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for t in lives {
        let Some(&end) = t.time.last() else { continue };
        let first = t.time.iter().position(|&s| s - t.time[0] >= 5.0).unwrap_or(0);
        for n in (first.max(1)..=t.time.len()).step_by(DIRECT_STRIDE) {
            x.push(cut_features(t, n));
            y.push(end - t.time[n - 1]);
        }
    }
    (x, y)
}

/// Settings of the direct regressor's boosting.
pub fn direct_gbm_config() -> GbmConfig {
    GbmConfig {
        trees: 300,
        learning_rate: 0.05,
        max_depth: 4,
        min_leaf: 20,
        lambda: 1.0,
        bins: 64,
        subsample: 0.8,
        seed: 7,
    }
}

/// A gradient-boosted regressor from [`cut_features`] to the time left.
pub fn train_direct(lives: &[&FilterTest]) -> Result<Gbm> {
    let (x, y) = direct_samples(lives);
    let x = matrix(&x)?;
    Gbm::fit(
        x.view(),
        Array1::from(y).view(),
        &direct_gbm_config(),
        &mut |_, _| {},
    )
}

/// Cross-validated RMSE of the direct regressor: lives held out in
/// [`DIRECT_FOLDS`] folds, each cut at `cfg.cv_cuts` like the trend's CV.
pub fn direct_cv(train: &[&FilterTest], cfg: &FilterConfig) -> Result<f64> {
    let mut pairs = Vec::new();
    for fold in 0..DIRECT_FOLDS {
        let fit: Vec<&FilterTest> = train
            .iter()
            .enumerate()
            .filter(|(i, _)| i % DIRECT_FOLDS != fold)
            .map(|(_, t)| *t)
            .collect();
        let gbm = train_direct(&fit)?;
        for t in train.iter().skip(fold).step_by(DIRECT_FOLDS) {
            let end = t.time.last().copied().unwrap_or(0.0);
            for &cut in &cfg.cv_cuts {
                let n = ((t.time.len() as f64 * cut) as usize).clamp(1, t.time.len());
                let p = gbm.predict(&cut_features(t, n)).max(0.0);
                pairs.push((p, end - t.time[n - 1]));
            }
        }
    }
    Ok(metrics::score(&pairs).rmse)
}

impl FilterEval {
    pub fn run(train: &FilterData, test: &FilterData) -> Result<FilterEval> {
        Self::run_with(train, test, &FilterConfig::default())
    }

    pub fn run_with(train: &FilterData, test: &FilterData, cfg: &FilterConfig) -> Result<FilterEval> {
        let done: Vec<&FilterTest> = train
            .tests
            .iter()
            .filter(|t| completed(t, cfg, Usage::Time).is_some())
            .collect();
        let lives: Vec<CompletedLife> = done
            .iter()
            .filter_map(|t| completed(t, cfg, Usage::Time))
            .collect();
        if lives.len() < 3 {
            return Err(RulError::Data(format!(
                "{} training tests run to failure (RUL 0 on the last row); need 3",
                lives.len()
            )));
        }
        let choice = choose(&done, cfg)?;
        let mean_life = lives.iter().map(|l| l.life).sum::<f64>() / lives.len() as f64;
        let prior_lives: Vec<CompletedLife> = done
            .iter()
            .filter_map(|t| completed(t, cfg, choice.usage))
            .collect();
        let prior = FleetPrior::learn(&prior_lives, cfg.ridge)?;
        // The direct regressor replaces the trend + prior when it
        // cross-validates better on the training lives.
        let direct_cv_rmse = direct_cv(&done, cfg)?;
        let direct = direct_cv_rmse < choice.cv_rmse;
        let gbm = if direct { Some(train_direct(&done)?) } else { None };
        let mut per_test = Vec::new();
        for t in &test.tests {
            let (Some(&age), Some(&truth)) = (t.time.last(), t.rul.last()) else {
                continue;
            };
            let (e, seconds) = estimate(t, t.time.len(), &prior, &choice, cfg)?;
            let mean_b = (mean_life - age).max(0.0);
            let linear = linear_baseline(t, cfg.linear_window_s).unwrap_or(mean_b);
            let (seconds, source) = match &gbm {
                Some(g) => (
                    g.predict(&cut_features(t, t.time.len())).max(0.0),
                    "direct regressor".to_string(),
                ),
                None => (seconds, e.source.to_string()),
            };
            per_test.push(TestResult {
                test: t.id.clone(),
                predicted: seconds,
                linear,
                mean_life: mean_b,
                truth,
                explanation: format!(
                    "{} (trend on {}: {} readings, usage {:.1}..{:.1} (effective {:.0}); prior from {} lives)",
                    source,
                    choice.usage.name(),
                    e.basis.points,
                    e.basis.usage_window.0,
                    e.basis.usage_window.1,
                    e.basis.effective_points,
                    prior.lives()
                )
                .replace(' ', "_"),
            });
        }
        let sc = |f: fn(&TestResult) -> f64| {
            metrics::score(&per_test.iter().map(|r| (f(r), r.truth)).collect::<Vec<_>>())
        };
        Ok(FilterEval {
            model: sc(|r| r.predicted),
            linear: sc(|r| r.linear),
            mean_life: sc(|r| r.mean_life),
            choice,
            direct_cv_rmse,
            direct,
            per_test,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file with the training copy's swapped headers: `Dust_feed` counts down.
    fn swapped_csv(tests: u32, rows: u32) -> String {
        let mut s =
            String::from("Data_No,Differential_pressure,Flow_rate,Time,Dust_feed,Sampling,Bias_type,RUL\n");
        for t in 1..=tests {
            let n = rows + t * 10;
            for i in 1..=n {
                let time = f64::from(i) / 10.0;
                let left = f64::from(n - i) / 10.0;
                let dp = 600.0 * (time / (f64::from(n) / 10.0)).powi(2);
                s.push_str(&format!("{t},{dp:.3},80,{time:.1},{left:.1},10,a,59.1\n"));
            }
        }
        s
    }

    #[test]
    fn swapped_headers_are_detected_from_the_data() {
        let d = parse("train.csv", &swapped_csv(2, 50)).expect("parse");
        assert!(d.swapped);
        assert_eq!(d.tests.len(), 2);
        assert_eq!(d.tests[0].rul.last(), Some(&0.0));
        assert_eq!(d.tests[0].feed[0], 59.1);
        let right = "Data_No,Differential_pressure,Flow_rate,Time,Dust_feed,Sampling,RUL,Bias_type\n\
                     1,10,80,0.1,59.1,10,3.0,c\n1,12,80,0.2,59.1,10,2.9,c\n";
        let d = parse("test.csv", right).expect("parse");
        assert!(!d.swapped);
        assert_eq!(d.tests[0].rul, vec![3.0, 2.9]);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let text = "Data_No,Differential_pressure,Flow_rate,Time,Dust_feed,RUL\n1,10,80,0.1,59,3\n1,oops,80,0.2,59,2.9\n";
        let e = parse("f.csv", text).expect_err("bad number");
        assert!(
            e.to_string()
                .starts_with("f.csv:3: column `Differential_pressure`"),
            "{e}"
        );
        let e = parse("f.csv", "Data_No,Time\n").expect_err("missing column");
        assert!(e.to_string().starts_with("f.csv:1: no column"), "{e}");
        let back = "Data_No,Differential_pressure,Flow_rate,Time,Dust_feed,RUL\n1,10,80,0.2,59,3\n1,10,80,0.1,59,3\n";
        assert!(
            parse("f.csv", back)
                .expect_err("time back")
                .to_string()
                .contains("f.csv:3:")
        );
    }

    #[test]
    fn evaluation_runs_on_synthetic_lives() {
        let train = parse("train.csv", &swapped_csv(6, 600)).expect("train");
        // Cut copies of the same kind of lives 20 s before the end.
        let mut test = parse("train.csv", &swapped_csv(3, 650)).expect("test");
        for t in &mut test.tests {
            let keep = t.time.len() - 200;
            for v in [&mut t.time, &mut t.dp, &mut t.flow, &mut t.feed, &mut t.rul] {
                v.truncate(keep);
            }
        }
        let eval = FilterEval::run(&train, &test).expect("eval");
        assert_eq!(eval.model.units, 3);
        for r in &eval.per_test {
            assert!((r.truth - 20.0).abs() < 1e-9);
            assert!((r.predicted - r.truth).abs() < 5.0, "{r:?}");
        }
        assert!(eval.model.rmse < eval.mean_life.rmse, "{eval:?}");
    }

    #[test]
    fn cut_features_see_the_pressure_ramp() {
        // 10 Pa/s from 100 Pa, a drop-out every 50 rows, constant feed 2 and flow 80.
        let n = 600;
        let t = FilterTest {
            id: "r".into(),
            time: (1..=n).map(|i| f64::from(i) / 10.0).collect(),
            dp: (1..=n)
                .map(|i| if i % 50 == 0 { 0.0 } else { 100.0 + f64::from(i) })
                .collect(),
            flow: vec![80.0; n as usize],
            feed: vec![2.0; n as usize],
            rul: vec![0.0; n as usize],
        };
        let f = cut_features(&t, 400);
        assert!((f[0] - 39.9).abs() < 1e-9, "age {}", f[0]);
        assert!((f[1] - 500.0).abs() < 1e-6, "pressure now {}", f[1]);
        for k in 0..3 {
            assert!((f[2 + 2 * k] - 10.0).abs() < 1e-6, "slope {}", f[2 + 2 * k]);
            assert!(
                (f[3 + 2 * k] - 10.0).abs() < 1e-6,
                "time to 600 Pa {}",
                f[3 + 2 * k]
            );
        }
        assert_eq!((f[8], f[10]), (2.0, 80.0));
    }
}
