//! `wearline rul-eval`: remaining-useful-life models of
//! `wearline_models::rul` scored on public run-to-failure data by their
//! protocols (C-MAPSS: one prediction at each test unit's last cycle; air
//! filter: one prediction at each test's cut-off), with simple baselines.
//!
//! All the logic lives in `models`; this file reads files, turns flags into
//! settings, reports progress on stderr and prints. The last stdout line is
//! always one JSON object with the figures.

use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wearline_models::rul::cmapss::{self, CmapssConfig, CmapssModel};
use wearline_models::rul::filter::{self, FilterEval};
use wearline_models::rul::metrics::{self, Scores};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    dataset: Dataset,
}

#[derive(Debug, clap::Subcommand)]
enum Dataset {
    /// NASA C-MAPSS: train on a training file, predict at each test unit's last cycle.
    Cmapss {
        /// `train_FD00x.txt`.
        #[arg(long)]
        train: PathBuf,
        /// `test_FD00x.txt` (not needed with `--cv`).
        #[arg(long, required_unless_present = "cv")]
        test: Option<PathBuf>,
        /// `RUL_FD00x.txt`: the true remaining life of each test unit (not needed with `--cv`).
        #[arg(long, required_unless_present = "cv")]
        truth: Option<PathBuf>,
        /// Also print `unit predicted true` for every test unit.
        #[arg(long)]
        predictions: bool,
        /// First cross-validate on the training file alone: 5 folds of whole
        /// units, each held-out unit cut 8 times at uniformly drawn cycles,
        /// true RUL uncapped (and capped).
        #[arg(long)]
        validate: bool,
        /// Only cross-validate on the training file, in K folds of whole units
        /// (each held-out unit cut 8 times at uniformly drawn cycles), and print
        /// the scores as JSON; the test file is not read.
        #[arg(long, value_name = "K", conflicts_with_all = ["validate", "predictions"])]
        cv: Option<u32>,
        #[command(flatten)]
        tuning: Box<Tuning>,
    },
    /// Air-filter clogging: direct regressor or trend + fleet prior (by CV) against linear and mean-life baselines.
    Filter {
        /// `Train_Data_CSV.csv` (run-to-failure tests).
        #[arg(long)]
        train: PathBuf,
        /// `Test_Data_CSV.csv` (tests cut before failure; true RUL on the last row).
        #[arg(long)]
        test: PathBuf,
        /// Also print `test predicted true` for every test.
        #[arg(long)]
        predictions: bool,
    },
    /// The simulated air-purifier fleet: filters predicted at half their life (by default)
    /// by the hub's model, against the simulator's truth.
    Fleet(crate::fleet_eval::FleetArgs),
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    match args.dataset {
        Dataset::Cmapss {
            train,
            test,
            truth,
            predictions,
            validate,
            cv,
            tuning,
        } => match (cv, test, truth) {
            (Some(k), _, _) => cv_cmapss(&train, k, &tuning),
            (None, Some(test), Some(truth)) => {
                eval_cmapss(&train, &test, &truth, predictions, validate, &tuning)
            }
            _ => anyhow::bail!("rul-eval cmapss needs --test and --truth, or --cv K"),
        },
        Dataset::Filter {
            train,
            test,
            predictions,
        } => eval_filter(&train, &test, predictions),
        Dataset::Fleet(f) => crate::fleet_eval::run_eval(&f),
    }
}

/// Overrides of the C-MAPSS settings, for validation experiments only: the
/// defaults are the settings used for every data set.
#[derive(Debug, clap::Args)]
struct Tuning {
    #[arg(long, hide = true)]
    trees: Option<usize>,
    #[arg(long, hide = true)]
    learning_rate: Option<f64>,
    #[arg(long, hide = true)]
    depth: Option<usize>,
    #[arg(long, hide = true)]
    window: Option<usize>,
    #[arg(long, hide = true)]
    min_leaf: Option<usize>,
    #[arg(long, hide = true)]
    cap: Option<f64>,
    #[arg(long, hide = true)]
    members: Option<usize>,
    #[arg(long, hide = true)]
    subsample: Option<f64>,
    /// One health index shared by all operating conditions (the default is one per condition).
    #[arg(long, hide = true)]
    health_shared: bool,
    /// Long window of the health-index features; 0 turns the index off.
    #[arg(long, hide = true)]
    health: Option<usize>,
    /// Seed of the first ensemble's row subsampling.
    #[arg(long, hide = true)]
    seed: Option<u64>,
    /// Sensors standardised per condition only, not put on one wear scale
    /// nor weighted by condition (the default before).
    #[arg(long, hide = true)]
    uncalibrated: bool,
    /// Stop after the validation (experiments only).
    #[arg(long, hide = true)]
    validate_only: bool,
}

impl Tuning {
    fn apply(&self, mut cfg: CmapssConfig) -> CmapssConfig {
        cfg.gbm.trees = self.trees.unwrap_or(cfg.gbm.trees);
        cfg.gbm.learning_rate = self.learning_rate.unwrap_or(cfg.gbm.learning_rate);
        cfg.gbm.max_depth = self.depth.unwrap_or(cfg.gbm.max_depth);
        cfg.gbm.min_leaf = self.min_leaf.unwrap_or(cfg.gbm.min_leaf);
        cfg.window = self.window.unwrap_or(cfg.window);
        cfg.cap = self.cap.or(cfg.cap);
        cfg.members = self.members.unwrap_or(cfg.members);
        cfg.gbm.subsample = self.subsample.unwrap_or(cfg.gbm.subsample);
        cfg.health_per_condition &= !self.health_shared;
        cfg.health = self.health.unwrap_or(cfg.health);
        cfg.calibrate &= !self.uncalibrated;
        cfg.gbm.seed = self.seed.unwrap_or(cfg.gbm.seed);
        cfg
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A one-line progress report on stderr, redrawn in place on a terminal.
struct Progress {
    label: &'static str,
    tty: bool,
    last_pct: usize,
}

impl Progress {
    fn new(label: &'static str) -> Progress {
        Progress {
            label,
            tty: std::io::stderr().is_terminal(),
            last_pct: usize::MAX,
        }
    }

    fn update(&mut self, done: usize, total: usize) {
        let pct = 100 * done / total.max(1);
        let step = if self.tty { 1 } else { 25 };
        if pct == self.last_pct || (!pct.is_multiple_of(step) && done != total) {
            return;
        }
        self.last_pct = pct;
        let mut err = std::io::stderr();
        let end = if done == total { "\n" } else { "" };
        if self.tty {
            let _ = write!(err, "\r{}: {done}/{total} ({pct} %){end}", self.label);
        } else {
            let _ = writeln!(err, "{}: {done}/{total} ({pct} %)", self.label);
        }
        let _ = err.flush();
    }
}

fn scores_json(s: &Scores) -> serde_json::Value {
    serde_json::json!({"rmse": round3(s.rmse), "score": round3(s.score), "units": s.units})
}

/// Folds of `--validate`.
const FOLDS: u32 = 5;
/// Cut points per held-out unit.
const CUTS: u64 = 8;

/// [`cmapss::cross_validate`] with a progress line; see there for the protocol.
fn validate_cmapss(rows: &[cmapss::Row], cfg: &CmapssConfig, folds: u32) -> Result<Vec<cmapss::CvCut>> {
    let mut progress = Progress::new("validation folds");
    Ok(cmapss::cross_validate(rows, cfg, folds, CUTS, &mut |d, t| {
        progress.update(d, t)
    })?)
}

/// Life of the cuts whose truth is at least this far beyond the cap: "healthy".
const HEALTHY_MARGIN: f64 = 25.0;

/// Detail of the validation: RMSE against the life capped at 150, and the
/// number and mean prediction of the healthy cuts.
fn cv_detail(cuts: &[cmapss::CvCut]) -> (Scores, usize, f64) {
    let (_, c150) = cmapss::cv_scores(cuts, Some(150.0));
    let healthy: Vec<f64> = cuts
        .iter()
        .filter(|c| c.truth >= c.cap + HEALTHY_MARGIN)
        .map(|c| c.predicted)
        .collect();
    let mean = healthy.iter().sum::<f64>() / healthy.len().max(1) as f64;
    (c150, healthy.len(), mean)
}

/// `--cv K`: the validation alone, its figures as JSON on the last line.
fn cv_cmapss(train: &Path, folds: u32, tuning: &Tuning) -> Result<()> {
    let train_text = read(train)?;
    let rows = cmapss::parse(&train.display().to_string(), &train_text)?;
    cmapss::check_training(&train.display().to_string(), &train_text, &rows)?;
    let cfg = tuning.apply(CmapssConfig::default());
    let started = Instant::now();
    let cuts = validate_cmapss(&rows, &cfg, folds)?;
    let (plain, capped) = cmapss::cv_scores(&cuts, None);
    let (c150, healthy, healthy_mean) = cv_detail(&cuts);
    let mut json = scores_json(&plain);
    json["bias"] = serde_json::json!(round3(plain.bias));
    json["rmse_capped"] = serde_json::json!(round3(capped.rmse));
    json["score_capped"] = serde_json::json!(round3(capped.score));
    json["rmse_cap150"] = serde_json::json!(round3(c150.rmse));
    json["healthy_cuts"] = serde_json::json!(healthy);
    json["healthy_mean_prediction"] = serde_json::json!(round3(healthy_mean));
    json["folds"] = serde_json::json!(folds);
    json["cuts_per_unit"] = serde_json::json!(CUTS);
    json["seconds"] = serde_json::json!(round3(started.elapsed().as_secs_f64()));
    println!(
        "{folds}-fold validation on {}: RMSE {:.2}, PHM08 score {:.1}, bias {:+.2} over {} cuts; against the capped life {:.2}, capped at 150 {:.2}",
        train.display(),
        plain.rmse,
        plain.score,
        plain.bias,
        plain.units,
        capped.rmse,
        c150.rmse
    );
    println!("{json}");
    Ok(())
}

fn eval_cmapss(
    train: &Path,
    test: &Path,
    truth: &Path,
    predictions: bool,
    validate: bool,
    tuning: &Tuning,
) -> Result<()> {
    let train_text = read(train)?;
    let train_rows = cmapss::parse(&train.display().to_string(), &train_text)?;
    cmapss::check_training(&train.display().to_string(), &train_text, &train_rows)?;
    let test_rows = cmapss::parse(&test.display().to_string(), &read(test)?)?;
    let truth_v = cmapss::parse_truth(&truth.display().to_string(), &read(truth)?)?;
    let cfg = tuning.apply(CmapssConfig::default());
    if validate {
        let cuts = validate_cmapss(&train_rows, &cfg, FOLDS)?;
        let (v, vc) = cmapss::cv_scores(&cuts, None);
        let (c150, healthy, healthy_mean) = cv_detail(&cuts);
        eprintln!(
            "5-fold validation on {} (held-out units cut at uniformly drawn cycles): RMSE {:.2}, PHM08 score {:.1}, bias {:+.2} over {} cuts; against the capped life RMSE {:.2}",
            train.display(),
            v.rmse,
            v.score,
            v.bias,
            v.units,
            vc.rmse
        );
        eprintln!(
            "validation detail: RMSE against the life capped at 150 {:.2}; mean prediction of the {} cuts with at least cap + 25 left {:.1}",
            c150.rmse, healthy, healthy_mean
        );
    }
    if tuning.validate_only {
        return Ok(());
    }
    let started = Instant::now();
    let mut progress = Progress::new("training trees");
    let model = CmapssModel::train(&train_rows, &cfg, &mut |d, t| progress.update(d, t))
        .with_context(|| format!("training on {}", train.display()))?;
    let sensors: Vec<String> = model
        .normaliser
        .kept
        .iter()
        .map(|s| format!("s{}", s + 1))
        .collect();
    eprintln!(
        "trained on {} rows of {} in {:.1} s: cap {}, {} operating condition(s), sensors kept: {}",
        model.rows,
        train.display(),
        started.elapsed().as_secs_f64(),
        model.cap,
        model.normaliser.conditions.len(),
        sensors.join(" ")
    );
    let preds = model.predict_last(&test_rows);
    anyhow::ensure!(
        preds.len() == truth_v.len(),
        "{} has {} units but {} lists {} remaining lives",
        test.display(),
        preds.len(),
        truth.display(),
        truth_v.len()
    );
    let pairs: Vec<(f64, f64)> = preds.iter().zip(&truth_v).map(|(p, t)| (p.1, *t)).collect();
    if predictions {
        println!("unit predicted true");
        for ((unit, p), t) in preds.iter().zip(&truth_v) {
            println!("{unit} {p:.1} {t}");
        }
    }
    let s = metrics::score(&pairs);
    println!(
        "cmapss {}: RMSE {:.2}, PHM08 score {:.1}, bias {:+.2} over {} units",
        test.display(),
        s.rmse,
        s.score,
        s.bias,
        s.units
    );
    println!("{}", scores_json(&s));
    Ok(())
}

fn eval_filter(train: &Path, test: &Path, predictions: bool) -> Result<()> {
    let train_data = filter::parse(&train.display().to_string(), &read(train)?)?;
    let test_data = filter::parse(&test.display().to_string(), &read(test)?)?;
    for (path, d) in [(train, &train_data), (test, &test_data)] {
        if d.swapped {
            eprintln!(
                "{}: the column headed `RUL` holds the dust feed and `Dust_feed` counts down to 0 at failure; \
                 read them the other way round",
                path.display()
            );
        }
    }
    let eval = FilterEval::run(&train_data, &test_data)?;
    let c = &eval.choice;
    eprintln!(
        "chosen by leave-one-life-out cross-validation on {}: usage {}, shape {}, half-life {} s, \
         trend sd x{}, threshold margin {} sd (CV RMSE {:.2}; mean-life baseline {:.2})",
        train.display(),
        c.usage.name(),
        c.shape.map_or("most likely", |s| s.name()),
        c.half_life_s,
        c.trend_sd_scale,
        c.margin,
        c.cv_rmse,
        c.cv_mean_life_rmse
    );
    eprintln!(
        "direct regressor (gradient boosting on windowed features at the cut), same cuts in 5 folds of lives: \
         CV RMSE {:.2}; model used: {}",
        eval.direct_cv_rmse,
        if eval.direct {
            "direct regressor"
        } else {
            "trend + fleet prior"
        }
    );
    if predictions {
        println!("test predicted linear mean_life true model");
        for p in &eval.per_test {
            println!(
                "{} {:.1} {:.1} {:.1} {:.1} {}",
                p.test, p.predicted, p.linear, p.mean_life, p.truth, p.explanation
            );
        }
    }
    let line = |name: &str, s: &Scores| {
        println!(
            "filter {name:<22} RMSE {:6.2}  PHM08 score {:8.2}  bias {:+6.2}  ({} tests)",
            s.rmse, s.score, s.bias, s.units
        );
    };
    line(
        if eval.direct {
            "direct regressor"
        } else {
            "trend + fleet prior"
        },
        &eval.model,
    );
    line("linear extrapolation", &eval.linear);
    line("mean life", &eval.mean_life);
    let best = eval.linear.rmse.min(eval.mean_life.rmse);
    println!(
        "improvement over the better baseline: {:.1} %",
        100.0 * (1.0 - eval.model.rmse / best)
    );
    let mut json = scores_json(&eval.model);
    json["baseline_linear_rmse"] = serde_json::json!(round3(eval.linear.rmse));
    json["baseline_linear_score"] = serde_json::json!(round3(eval.linear.score));
    json["baseline_mean_life_rmse"] = serde_json::json!(round3(eval.mean_life.rmse));
    json["baseline_mean_life_score"] = serde_json::json!(round3(eval.mean_life.score));
    println!("{json}");
    Ok(())
}
