//! `wearline detect` and `wearline eval-detect`: the detection core of
//! `wearline_models::detect` run over CSV files.
//!
//! `detect` streams a file's rows through the default [`RowDetector`] (the code
//! the agent runs) and writes `timestamp,anomaly_score,is_anomaly` to stdout,
//! one row per input row, without look-ahead. `eval-detect` scores the same
//! detector on public data sets by their published protocols (SKAB: F1, FAR,
//! MAR and NAB; IMS: lead time before failure; CWRU: separation of faulty from
//! healthy bearings). All the logic lives in `models`; this file reads files,
//! turns flags into settings and prints.

use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use wearline_models::detect::features::{self, BearingGeometry, Spectrum};
use wearline_models::detect::nab::{self, Tally, Variant};
use wearline_models::detect::{ChangeConfig, ChangeDetector, DetectorConfig, Novelty, RowDetector};

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// CSV file with a header row.
    #[arg(long)]
    input: PathBuf,
    /// Column echoed as the timestamp (default: the first column).
    #[arg(long)]
    timestamp_column: Option<String>,
    /// Comma-separated value columns (default: every column but the timestamp).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Field separator.
    #[arg(long, default_value_t = ',')]
    separator: char,
    /// Detector settings (TOML); defaults are used when absent.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    dataset: Dataset,
}

#[derive(Debug, clap::Subcommand)]
enum Dataset {
    /// SKAB: outlier F1/FAR/MAR and changepoint NAB, first 400 rows of each file to train.
    Skab {
        /// The SKAB `data` folder (with valve1/, valve2/, other/).
        #[arg(long)]
        data: PathBuf,
        /// Detector settings (TOML), the same for every file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sensor columns to use (default: all eight).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Choose the changepoint settings from a fixed grid on one group
        /// (`valve1`, `valve2`, `other`) and report the other groups as held
        /// out; `logo` reports leave-one-group-out instead.
        #[arg(long)]
        select_on: Option<String>,
        /// With `--select-on`: only settings with at most this many false
        /// changepoints per hour of data are eligible (`inf`: no limit).
        #[arg(long, default_value_t = 5.0)]
        max_fp_per_hour: f64,
    },
    /// IMS test 2 (averaged): when bearing 1 is first flagged, false alarms before.
    Ims {
        /// `Averaged_BearingTest_Dataset.csv`.
        #[arg(long)]
        data: PathBuf,
        /// Healthy rows (10 min each) before scoring starts.
        #[arg(long, default_value_t = 144)]
        train_rows: usize,
    },
    /// CWRU: how well the vibration features separate faulty from healthy bearings.
    Cwru {
        /// The `cwru` folder (with files.json and csv/).
        #[arg(long)]
        data: PathBuf,
    },
}

/// A CSV file read whole: header and rows of fields, with 1-based line numbers.
struct Table {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

fn split(line: &str, sep: char) -> Vec<String> {
    line.trim_end_matches(['\r', '\n'])
        .split(sep)
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|g| g.strip_suffix('"'))
                .unwrap_or(f)
                .to_string()
        })
        .collect()
}

fn read_table(path: &Path, sep: char) -> Result<Table> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = BufReader::new(file).lines();
    let header = match lines.next() {
        Some(h) => split(&h.with_context(|| format!("reading {}", path.display()))?, sep),
        None => bail!("{}: empty file, expected a header row", path.display()),
    };
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.with_context(|| format!("reading {}:{}", path.display(), i + 2))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push((i + 2, split(&line, sep)));
    }
    Ok(Table { header, rows })
}

fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        anyhow!(
            "{}:1: no column `{name}` (columns: {})",
            path.display(),
            header.join(", ")
        )
    })
}

fn number(fields: &[String], col: usize, name: &str, path: &Path, line: usize) -> Result<f64> {
    let text = fields
        .get(col)
        .ok_or_else(|| anyhow!("{}:{line}: missing value for column `{name}`", path.display()))?;
    text.parse::<f64>().map_err(|_| {
        anyhow!(
            "{}:{line}: column `{name}`: `{text}` is not a number",
            path.display()
        )
    })
}

fn load_config(path: Option<&Path>) -> Result<DetectorConfig> {
    let Some(path) = path else {
        return Ok(DetectorConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: DetectorConfig = wearline_models::config::parse_toml(&path.display().to_string(), &text)?;
    config
        .validate()
        .with_context(|| format!("in {}", path.display()))?;
    Ok(config)
}

/// `wearline detect`: streams rows through the default detector.
pub fn run_detect(args: DetectArgs) -> Result<()> {
    let config = load_config(args.config.as_deref())?;
    let path = &args.input;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut lines = BufReader::new(file).lines();
    let header = match lines.next() {
        Some(h) => split(
            &h.with_context(|| format!("reading {}", path.display()))?,
            args.separator,
        ),
        None => bail!("{}: empty file, expected a header row", path.display()),
    };
    let ts_col = match &args.timestamp_column {
        Some(name) => column(&header, name, path)?,
        None => 0,
    };
    let names: Vec<String> = if args.columns.is_empty() {
        header
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != ts_col)
            .map(|(_, h)| h.clone())
            .collect()
    } else {
        args.columns.clone()
    };
    if names.is_empty() {
        bail!("{}:1: no value columns besides the timestamp", path.display());
    }
    let cols = names
        .iter()
        .map(|n| column(&header, n, path))
        .collect::<Result<Vec<_>>>()?;
    let mut detector = RowDetector::new(config, cols.len())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(out, "timestamp,anomaly_score,is_anomaly")?;
    let progress = std::io::stderr().is_terminal() && total > 0;
    let (mut read, mut shown) = (0u64, 0u64);
    let mut row = vec![0.0; cols.len()];
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.with_context(|| format!("reading {}:{n}", path.display()))?;
        read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(&line, args.separator);
        let ts = fields
            .get(ts_col)
            .ok_or_else(|| anyhow!("{}:{n}: missing timestamp", path.display()))?;
        if ts.is_empty() {
            bail!("{}:{n}: empty timestamp", path.display());
        }
        for (v, (&c, name)) in row.iter_mut().zip(cols.iter().zip(&names)) {
            *v = number(&fields, c, name, path, n)?;
        }
        let s = detector
            .push(&row)
            .with_context(|| format!("{}:{n}", path.display()))?;
        let ts = if ts.contains([',', '"']) {
            format!("\"{}\"", ts.replace('"', "\"\""))
        } else {
            ts.clone()
        };
        writeln!(out, "{ts},{:.6},{}", s.score, u8::from(s.is_anomaly))?;
        if progress && read * 100 / total > shown {
            shown = read * 100 / total;
            eprint!("\rdetect: {shown:>3} %");
        }
    }
    if progress {
        eprintln!();
    }
    out.flush()?;
    Ok(())
}

/// `wearline eval-detect`.
pub fn run_eval(args: EvalArgs) -> Result<()> {
    match args.dataset {
        Dataset::Skab {
            data,
            config,
            columns,
            select_on,
            max_fp_per_hour,
        } => eval_skab(
            &data,
            config.as_deref(),
            &columns,
            select_on.as_deref(),
            max_fp_per_hour,
        ),
        Dataset::Ims { data, train_rows } => eval_ims(&data, train_rows),
        Dataset::Cwru { data } => eval_cwru(&data),
    }
}

/// Seconds since 1970 of `YYYY-MM-DD HH:MM:SS` (or with a `T`), UTC.
fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time
        .split(':')
        .map(|p| p.split('.').next().and_then(|q| q.parse::<i64>().ok()));
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

const SKAB_FEATURES: [&str; 8] = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
];
const SKAB_TRAIN: usize = 400;
const SKAB_WINDOW_S: i64 = 60;

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csv_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Confusion {
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
}

impl Confusion {
    fn add(&mut self, truth: bool, pred: bool) {
        match (truth, pred) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }
    fn f1(&self) -> f64 {
        self.tp as f64 / (self.tp as f64 + (self.fn_ + self.fp) as f64 / 2.0)
    }
    fn far(&self) -> f64 {
        100.0 * self.fp as f64 / (self.fp + self.tn) as f64
    }
    fn mar(&self) -> f64 {
        100.0 * self.fn_ as f64 / (self.fn_ + self.tp) as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One SKAB run: every row (training included) and, for the scored rows
/// after the first [`SKAB_TRAIN`], times, labels and changepoint indices.
struct SkabFile {
    /// Group folder (`valve1`, `valve2`, `other`).
    group: String,
    /// Path below the data folder.
    name: String,
    rows: Vec<Vec<f64>>,
    times: Vec<i64>,
    truth: Vec<bool>,
    windows: Vec<nab::Window>,
}

fn load_skab(dir: &Path, names: &[String]) -> Result<Vec<SkabFile>> {
    let mut paths = Vec::new();
    csv_files(dir, &mut paths)?;
    paths.retain(|p| !p.to_string_lossy().contains("anomaly-free"));
    if paths.is_empty() {
        bail!("no SKAB csv files under {}", dir.display());
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let t = read_table(path, ';')?;
        let ts = column(&t.header, "datetime", path)?;
        let cols = names
            .iter()
            .map(|n| column(&t.header, n, path))
            .collect::<Result<Vec<_>>>()?;
        let (an, cp) = (
            column(&t.header, "anomaly", path)?,
            column(&t.header, "changepoint", path)?,
        );
        let mut file = SkabFile {
            group: path
                .parent()
                .and_then(|p| p.file_name())
                .map(|g| g.to_string_lossy().into_owned())
                .unwrap_or_default(),
            name: path.strip_prefix(dir).unwrap_or(path).display().to_string(),
            rows: Vec::with_capacity(t.rows.len()),
            times: Vec::new(),
            truth: Vec::new(),
            windows: Vec::new(),
        };
        let mut cps = Vec::new();
        for (i, (line, f)) in t.rows.iter().enumerate() {
            let row = cols
                .iter()
                .zip(names)
                .map(|(&c, name)| number(f, c, name, path, *line))
                .collect::<Result<Vec<_>>>()?;
            file.rows.push(row);
            if i < SKAB_TRAIN {
                continue;
            }
            let time = f
                .get(ts)
                .and_then(|s| parse_datetime(s))
                .ok_or_else(|| anyhow!("{}:{line}: bad datetime", path.display()))?;
            file.times.push(time);
            file.truth.push(number(f, an, "anomaly", path, *line)? >= 0.5);
            if number(f, cp, "changepoint", path, *line)? >= 0.5 {
                cps.push(file.times.len() - 1);
            }
        }
        file.windows = nab::right_windows(&file.times, &cps, SKAB_WINDOW_S);
        files.push(file);
    }
    Ok(files)
}

/// Changepoint flags of the scored rows of one file, from the changepoint
/// detector alone, fitted on the first `train` rows: the same flags as
/// [`RowDetector`] reports as `changepoint` with `train_rows = train`.
fn skab_changepoints(file: &SkabFile, config: &ChangeConfig, train: usize) -> Result<Vec<bool>> {
    let train = train.min(file.rows.len());
    let mut det = ChangeDetector::fit(config, &file.rows[..train])?;
    let mut flags = Vec::with_capacity(file.times.len());
    for (i, r) in file.rows.iter().enumerate() {
        let cp = i >= train && det.push(r)?.changepoint;
        if i >= SKAB_TRAIN {
            flags.push(cp);
        }
    }
    Ok(flags)
}

fn skab_nab(files: &[&SkabFile], config: &ChangeConfig, train: usize) -> Result<Tally> {
    let mut tally = Tally::default();
    for f in files {
        let flags = skab_changepoints(f, config, train)?;
        tally.add(&nab::score_file(&f.times, &flags, &f.windows, Variant::Skab, 0));
    }
    Ok(tally)
}

/// The candidate changepoint settings that `--select-on` chooses among.
fn change_grid() -> Vec<ChangeConfig> {
    let mut grid = Vec::new();
    for slow_inflation in [true, false] {
        for allowance in [0.5, 1.0, 2.0, 3.0, 4.0] {
            for threshold in [8.0, 16.0, 32.0, 48.0, 64.0] {
                for refractory in [20, 30, 60] {
                    for clip in [5.0, 8.0] {
                        grid.push(ChangeConfig {
                            allowance,
                            threshold,
                            refractory,
                            clip,
                            slow_inflation,
                        });
                    }
                }
            }
        }
    }
    grid
}

/// Hours of scored data in `files`.
fn skab_hours(files: &[&SkabFile]) -> f64 {
    files
        .iter()
        .map(|f| match (f.times.first(), f.times.last()) {
            (Some(a), Some(b)) => (b - a) as f64 / 3600.0,
            _ => 0.0,
        })
        .sum()
}

/// The grid setting with the best NAB standard score on `files` among those
/// with at most `max_fp_per_hour` false changepoints per hour of data (the
/// first one on a tie); `None` when no setting keeps to the budget.
fn select_change(
    files: &[&SkabFile],
    train: usize,
    max_fp_per_hour: f64,
) -> Result<Option<(ChangeConfig, f64)>> {
    let hours = skab_hours(files).max(1e-9);
    let mut best: Option<(ChangeConfig, f64)> = None;
    for c in change_grid() {
        let t = skab_nab(files, &c, train)?;
        if t.false_positives as f64 / hours > max_fp_per_hour {
            continue;
        }
        let s = t.normalised()[0];
        if best.as_ref().is_none_or(|(_, b)| s > *b) {
            best = Some((c, s));
        }
    }
    Ok(best)
}

fn nab_line(label: &str, t: &Tally) -> String {
    let [std, low_fp, low_fn] = t.normalised();
    format!(
        "{label}: standard {std:.2}  low FP {low_fp:.2}  low FN {low_fn:.2}  (windows {}, missed {}, FP {})",
        t.perfect[0] as usize, t.missed, t.false_positives
    )
}

fn eval_skab(
    dir: &Path,
    config: Option<&Path>,
    columns: &[String],
    select_on: Option<&str>,
    max_fp_per_hour: f64,
) -> Result<()> {
    let mut config = match config {
        Some(_) => load_config(config)?,
        None => DetectorConfig {
            train_rows: SKAB_TRAIN,
            ..DetectorConfig::default()
        },
    };
    let names: Vec<String> = if columns.is_empty() {
        SKAB_FEATURES.map(String::from).to_vec()
    } else {
        columns.to_vec()
    };
    let files = load_skab(dir, &names)?;
    let groups: Vec<String> = {
        let mut g: Vec<String> = files.iter().map(|f| f.group.clone()).collect();
        g.sort();
        g.dedup();
        g
    };
    let all: Vec<&SkabFile> = files.iter().collect();
    let in_group = |g: &str, inside: bool| -> Vec<&SkabFile> {
        files.iter().filter(|f| (f.group == g) == inside).collect()
    };
    let train = config.train_rows;
    let budget = |files: &[&SkabFile]| -> Result<(ChangeConfig, f64)> {
        select_change(files, train, max_fp_per_hour)?.ok_or_else(|| {
            anyhow!("no setting in the grid keeps to {max_fp_per_hour} false changepoints per hour")
        })
    };
    match select_on {
        None => {}
        Some("logo") => {
            // Leave one group out: choose on the other groups, score the one left out.
            let mut held = Tally::default();
            for g in &groups {
                let (chosen, s) = budget(&in_group(g, false))?;
                let t = skab_nab(&in_group(g, true), &chosen, train)?;
                println!("select on all but {g} (standard {s:.2}): {chosen:?}");
                println!("  {}", nab_line(&format!("held-out {g}"), &t));
                held.add(&t);
            }
            println!(
                "{}",
                nab_line("changepoint, leave-one-group-out, all held-out files", &held)
            );
        }
        Some(g) => {
            if !groups.iter().any(|x| x == g) {
                bail!(
                    "--select-on {g}: no such group (groups: {}, or logo)",
                    groups.join(", ")
                );
            }
            let (chosen, s) = budget(&in_group(g, true))?;
            println!(
                "selected on {g} (standard {s:.2}, at most {max_fp_per_hour} FP/h) from {} settings: {chosen:?}",
                change_grid().len()
            );
            println!(
                "{}",
                nab_line(
                    &format!("changepoint, held out (all but {g})"),
                    &skab_nab(&in_group(g, false), &chosen, train)?
                )
            );
            config.changepoint = chosen;
        }
    }
    println!(
        "skab: {} files, first {SKAB_TRAIN} rows of each to train, detector {config:?}",
        files.len()
    );
    let mut total = Confusion::default();
    let mut tally = Tally::default();
    for file in &all {
        let mut det = RowDetector::new(config.clone(), names.len())?;
        let mut pred = Vec::with_capacity(file.truth.len());
        let mut cps = Vec::with_capacity(file.truth.len());
        for (i, r) in file.rows.iter().enumerate() {
            let s = det.push(r)?;
            if i >= SKAB_TRAIN {
                pred.push(s.is_anomaly);
                cps.push(s.changepoint);
            }
        }
        let mut c = Confusion::default();
        for (&y, &p) in file.truth.iter().zip(&pred) {
            c.add(y, p);
            total.add(y, p);
        }
        let ft = nab::score_file(&file.times, &cps, &file.windows, Variant::Skab, 0);
        tally.add(&ft);
        println!(
            "{:<16} rows {:>5}  f1 {:.2}  far {:>6.2} %  mar {:>6.2} %  cp missed {}/{} fp {}",
            file.name,
            file.truth.len(),
            c.f1(),
            c.far(),
            c.mar(),
            ft.missed,
            file.windows.len(),
            ft.false_positives
        );
    }
    for g in &groups {
        println!(
            "{}",
            nab_line(
                &format!("changepoint, {g}"),
                &skab_nab(&in_group(g, true), &config.changepoint, train)?
            )
        );
    }
    // For scale: SKAB's own way of deriving changepoints, the transitions of
    // the outlier alarm.
    let mut from_alarm = Tally::default();
    for file in &all {
        let mut det = RowDetector::new(config.clone(), names.len())?;
        let mut pred = Vec::new();
        for (i, r) in file.rows.iter().enumerate() {
            let s = det.push(r)?;
            if i >= SKAB_TRAIN {
                pred.push(s.is_anomaly);
            }
        }
        from_alarm.add(&nab::score_file(
            &file.times,
            &nab::transitions(&pred),
            &file.windows,
            Variant::Skab,
            0,
        ));
    }
    println!(
        "{}",
        nab_line(
            "changepoint from outlier-alarm transitions (for comparison)",
            &from_alarm
        )
    );
    // For scale: a detector that looks at no data and flags every n-th row,
    // as often as the changepoint detector flags, and once a minute.
    let rows: usize = all.iter().map(|f| f.times.len()).sum();
    let flags = tally.false_positives + (tally.perfect[0] as usize - tally.missed);
    for every in [rows / flags.max(1), 60] {
        let every = every.max(1);
        let mut blind = Tally::default();
        for file in &all {
            let flags: Vec<bool> = (0..file.times.len()).map(|i| i % every == every - 1).collect();
            blind.add(&nab::score_file(
                &file.times,
                &flags,
                &file.windows,
                Variant::Skab,
                0,
            ));
        }
        println!(
            "{}",
            nab_line(&format!("blind flag every {every} rows (for scale)"), &blind)
        );
    }
    let [std, low_fp, low_fn] = tally.normalised();
    println!(
        "outlier: F1 {:.2}  FAR {:.2} %  MAR {:.2} %  (TP {} FP {} TN {} FN {})",
        total.f1(),
        total.far(),
        total.mar(),
        total.tp,
        total.fp,
        total.tn,
        total.fn_
    );
    println!(
        "{}",
        nab_line(
            &format!("changepoint (NAB, {SKAB_WINDOW_S} s right windows), all files"),
            &tally
        )
    );
    let json = serde_json::json!({
        "outlier": {"f1": round2(total.f1()), "far": round2(total.far()), "mar": round2(total.mar())},
        "changepoint": {"nab_standard": round2(std), "nab_low_fp": round2(low_fp), "nab_low_fn": round2(low_fn)},
    });
    println!("{json}");
    Ok(())
}

fn eval_ims(path: &Path, train_rows: usize) -> Result<()> {
    let t = read_table(path, ',')?;
    let bearings: Vec<usize> = (1..t.header.len()).collect();
    let mut times = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for (line, f) in &t.rows {
        let time = f
            .first()
            .and_then(|s| parse_datetime(s))
            .ok_or_else(|| anyhow!("{}:{line}: bad timestamp", path.display()))?;
        let row = bearings
            .iter()
            .map(|&c| number(f, c, &t.header[c], path, *line))
            .collect::<Result<Vec<_>>>()?;
        times.push(time);
        values.push(row);
    }
    // The run ends at the last row with the machine running (post-shutdown
    // rows read near zero on every bearing).
    let running = |r: &Vec<f64>| r.iter().any(|v| *v > 0.01);
    let end = values
        .iter()
        .rposition(running)
        .ok_or_else(|| anyhow!("no running rows"))?;
    let end_time = times[end];
    let running_rows = end + 1;
    let half = running_rows / 2;
    let config = DetectorConfig {
        train_rows,
        ..DetectorConfig::default()
    };
    println!(
        "ims: {} rows, run ends at row {} ({:.1} h), first half = rows < {half}, {train_rows} rows to train",
        values.len(),
        end + 1,
        (end_time - times[0]) as f64 / 3600.0
    );
    let mut summary = serde_json::Map::new();
    for (b, &c) in bearings.iter().enumerate() {
        let mut det = RowDetector::new(config.clone(), 1)?;
        let mut first = None;
        let mut false_alarms = 0;
        let mut opened = 0;
        for (i, r) in values[..=end].iter().enumerate() {
            let s = det.push(&[r[b]])?;
            if s.event == Some(wearline_models::detect::AlertEvent::Opened) {
                opened += 1;
                if i < half {
                    false_alarms += 1;
                }
            }
            if s.is_anomaly && first.is_none() && i >= half {
                first = Some(i);
            }
        }
        let lead = first.map(|i| (end_time - times[i]) as f64 / 3600.0);
        println!(
            "{:<10} alerts opened {opened}, in the first half {false_alarms}, first flagged in the second half: {}",
            t.header[c],
            match (first, lead) {
                (Some(i), Some(h)) => format!("row {} ({h:.1} h before the end)", i + 1),
                _ => "never".into(),
            }
        );
        summary.insert(
            t.header[c].clone(),
            serde_json::json!({"first_half_alarms": false_alarms, "lead_hours": lead.map(round2)}),
        );
    }
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

/// Shaft-speed multiples of the CWRU drive-end bearing (SKF 6205-2RS).
const CWRU_BEARING: BearingGeometry = BearingGeometry {
    balls: 9,
    ball_diameter: 0.3126,
    pitch_diameter: 1.537,
    contact_angle_deg: 0.0,
};
const CWRU_FS: f64 = 12_000.0;
const CWRU_WINDOW: usize = 2048;
const CWRU_HOP: usize = 1024;
const CWRU_FEATURES: [&str; 8] = [
    "rms", "peak", "crest", "kurtosis", "|skew|", "bpfo", "bpfi", "bsf",
];

fn cwru_windows(path: &Path, rate: f64, rpm: f64) -> Result<Vec<Vec<f64>>> {
    let t = read_table(path, ',')?;
    let mut x = Vec::with_capacity(t.rows.len());
    for (line, f) in &t.rows {
        x.push(number(f, 0, &t.header[0], path, *line)?);
    }
    // 48 kHz files: 4-sample mean then decimate, so every file is compared at 12 kHz.
    let step = (rate / CWRU_FS).round().max(1.0) as usize;
    let x: Vec<f64> = x
        .chunks_exact(step)
        .map(|c| c.iter().sum::<f64>() / step as f64)
        .collect();
    let mut spec = Spectrum::new(CWRU_WINDOW, CWRU_FS)?;
    let freqs = CWRU_BEARING.defect_frequencies(rpm / 60.0);
    let df = spec.resolution();
    let mut out = Vec::new();
    for start in (0..x.len().saturating_sub(CWRU_WINDOW - 1)).step_by(CWRU_HOP) {
        let w = &x[start..start + CWRU_WINDOW];
        let tf = features::time_features(w)?;
        let env = spec.envelope_spectrum(w, (2000.0, 5500.0))?;
        let p = |f: f64| features::defect_prominence(&env, df, f, 3, 3.0 * df).ln_1p();
        out.push(vec![
            tf.rms,
            tf.peak,
            tf.crest_factor,
            tf.kurtosis,
            tf.skewness.abs(),
            p(freqs.bpfo),
            p(freqs.bpfi),
            p(freqs.bsf),
        ]);
    }
    Ok(out)
}

/// Probability that a random faulty value exceeds a random healthy one.
fn auc(faulty: &[f64], healthy: &[f64]) -> f64 {
    let mut wins = 0.0;
    for f in faulty {
        for h in healthy {
            wins += if f > h {
                1.0
            } else if f == h {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (faulty.len() * healthy.len()).max(1) as f64
}

fn eval_cwru(dir: &Path) -> Result<()> {
    let index = dir.join("files.json");
    let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let files: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
    let mut healthy = Vec::new();
    let mut faulty: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for f in &files {
        let csv = f["csv"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: entry without `csv`", index.display()))?;
        let rate = f["sample_rate_hz"].as_f64().unwrap_or(CWRU_FS);
        let rpm = f["rpm"].as_f64().unwrap_or(1797.0);
        let label = f["label"].as_str().unwrap_or(csv).to_string();
        let fault = f["fault"].as_str().unwrap_or("");
        let windows = cwru_windows(&dir.join(csv), rate, rpm)?;
        if fault.eq_ignore_ascii_case("normal") || fault.is_empty() || label.to_lowercase().contains("normal")
        {
            healthy.extend(windows);
        } else {
            faulty.push((format!("{label} {rate:.0}Hz"), windows));
        }
    }
    if healthy.len() < 8 || faulty.is_empty() {
        bail!("need healthy and faulty files in {}", index.display());
    }
    println!(
        "cwru: {} healthy windows, {} faulty files, {CWRU_WINDOW} samples at 12 kHz per window, hop {CWRU_HOP}",
        healthy.len(),
        faulty.len()
    );
    // Per-feature AUC, faulty vs healthy.
    println!(
        "{:<16} {}",
        "AUC vs healthy",
        CWRU_FEATURES.map(|n| format!("{n:>8}")).join("")
    );
    for (name, w) in &faulty {
        let aucs: Vec<String> = (0..CWRU_FEATURES.len())
            .map(|j| {
                let f: Vec<f64> = w.iter().map(|r| r[j]).collect();
                let h: Vec<f64> = healthy.iter().map(|r| r[j]).collect();
                format!("{:>8.3}", auc(&f, &h))
            })
            .collect();
        println!("{name:<16} {}", aucs.join(""));
    }
    // T² novelty on standardised log-features: fit on half the healthy
    // windows, threshold at 1.5 × their largest T², test on the rest.
    let log = |r: &Vec<f64>| r.iter().map(|v| v.abs().max(1e-12).ln()).collect::<Vec<f64>>();
    let (train, test) = healthy.split_at(healthy.len() / 2);
    let train: Vec<Vec<f64>> = train.iter().map(log).collect();
    let mut model = Novelty::fit(&train, 0.01)?;
    let mut max_t2: f64 = 0.0;
    for r in &train {
        max_t2 = max_t2.max(model.t2(r)?);
    }
    let threshold = 1.5 * max_t2;
    let mut flagged = |rows: &[Vec<f64>]| -> Result<f64> {
        let mut n = 0;
        for r in rows {
            if model.t2(&log(r))? > threshold {
                n += 1;
            }
        }
        Ok(n as f64 / rows.len().max(1) as f64)
    };
    let fpr = flagged(test)?;
    println!(
        "novelty (T² on log features, threshold {threshold:.1}): held-out healthy flagged {:.1} %",
        100.0 * fpr
    );
    let mut detection = serde_json::Map::new();
    let mut min_rate: f64 = 1.0;
    for (name, w) in &faulty {
        let rate = flagged(w)?;
        min_rate = min_rate.min(rate);
        println!(
            "  {name:<16} flagged {:.1} % of {} windows",
            100.0 * rate,
            w.len()
        );
        detection.insert(name.clone(), serde_json::json!(round2(100.0 * rate)));
    }
    println!(
        "{}",
        serde_json::json!({"healthy_flagged_pct": round2(100.0 * fpr), "faulty_min_flagged_pct": round2(100.0 * min_rate), "faulty_flagged_pct": detection})
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_seconds() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("2020-03-09 10:14:33"), Some(1_583_748_873));
        assert_eq!(parse_datetime("2004-02-12T10:52:39"), Some(1_076_583_159));
        assert_eq!(parse_datetime("garbage"), None);
    }

    #[test]
    fn auc_of_separated_and_equal_sets() {
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auc(&[1.0], &[1.0]), 0.5);
    }
}
