//! `wearline rul-eval fleet`: the hub's remaining-life model on the simulated
//! fleet, scored against the simulator's ground truth.
//!
//! A training fleet runs filters from new to the end of their life (250 Pa)
//! and replaces them: the ended lives teach the fleet prior and the trend
//! calibration, exactly as the hub learns them. A test fleet (other devices,
//! other seeds) runs new filters to a given fraction of their true life; each
//! is then predicted once. Readings go through the register map's resolution
//! (0.1 Pa, 0.01 h), one sample per simulated hour, and are fed to the same
//! `LifeTracker` the hub runs, with the shipped air-purifier profile's
//! `filter` consumable.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use wearline_models::profile::{Consumable, Profile};
use wearline_models::rul::tracker::{EndedLife, FleetKnowledge, LifeTracker, Observed};
use wearline_simulators::{AirPurifier, PurifierParams, fleet_params};

const PROFILE: &str = include_str!("../configs/profiles/air-purifier.toml");
const HOUR_MS: i64 = 3_600_000;
/// Coverage of the intervals scored.
const COVERAGE: f64 = 0.9;

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Devices whose completed filter lives teach the fleet prior.
    #[arg(long, default_value_t = 60)]
    train_devices: usize,
    /// Devices predicted.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Fraction of each test filter's true life at which it is predicted.
    #[arg(long, default_value_t = 0.5)]
    at: f64,
    /// Seed of the training fleet; the test fleet uses the next one.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print `device true_life predicted low high` (hours) for every test device.
    #[arg(long)]
    predictions: bool,
}

/// One prediction against the truth, in run hours.
struct Scored {
    truth: f64,
    predicted: f64,
    low: f64,
    high: Option<f64>,
}

impl Scored {
    fn within(&self, tolerance: f64) -> bool {
        (self.predicted - self.truth).abs() <= tolerance * self.truth
    }

    fn covered(&self) -> bool {
        self.low <= self.truth && self.high.is_some_and(|h| self.truth <= h)
    }
}

fn filter_spec() -> Result<Consumable> {
    let profile = Profile::parse("configs/profiles/air-purifier.toml", PROFILE)?;
    profile
        .consumables
        .into_iter()
        .find(|c| c.name == "filter")
        .context("the air-purifier profile has no `filter` consumable")
}

/// The readings the agent would send, at the register map's resolution.
fn reading(p: &AirPurifier) -> BTreeMap<String, f64> {
    let q = |v: f64, step: f64| (v / step).round() * step;
    BTreeMap::from([
        ("filter_dp".to_string(), q(p.filter_dp_pa(), 0.1)),
        ("run_hours".to_string(), q(p.run_hours(), 0.01)),
        ("pm25".to_string(), p.pm25_ugm3()),
        ("fan_speed".to_string(), q(p.fan_speed_rpm(), 1.0)),
    ])
}

/// A new filter in a device; returns it and its true life in run hours
/// (the dust load grows linearly, so one hour tells the whole life).
fn fitted(params: PurifierParams) -> (AirPurifier, f64) {
    let params = PurifierParams {
        initial_filter_load: 0.0,
        ..params
    };
    let mut probe = AirPurifier::new(params);
    probe.advance(3600.0);
    (AirPurifier::new(params), 1.0 / probe.filter_life_used())
}

/// Runs a device hourly, feeding its readings to the tracker, while `go_on` holds.
fn run(
    p: &mut AirPurifier,
    t: &mut LifeTracker,
    hour: &mut i64,
    mut go_on: impl FnMut(&AirPurifier) -> bool,
) {
    while go_on(p) {
        t.observe(*hour * HOUR_MS, &reading(p));
        p.advance(3600.0);
        *hour += 1;
    }
}

fn train(spec: &Consumable, args: &FleetArgs) -> Result<FleetKnowledge> {
    let mut lives: Vec<EndedLife> = Vec::new();
    for params in fleet_params(args.seed, args.train_devices, &[], &[]) {
        let (mut p, _) = fitted(params);
        let mut t = LifeTracker::new(spec)?;
        let mut hour = 0;
        // Until the first reading at or past 250 Pa, then a few more hours (a
        // visit is not instantaneous), then a new filter.
        let mut after = 3;
        run(&mut p, &mut t, &mut hour, |p| {
            if spent(p) {
                after -= 1;
            }
            after > 0
        });
        p.replace_filter();
        match t.observe(hour * HOUR_MS, &reading(&p)) {
            Observed::Replaced(life) => lives.push(life),
            other => bail!(
                "training device {}: replacement not seen ({other:?})",
                params.seed
            ),
        }
    }
    Ok(FleetKnowledge::learn(&lives))
}

fn spent(p: &AirPurifier) -> bool {
    p.filter_dp_pa() >= wearline_simulators::air_purifier::END_OF_LIFE_DP_PA
}

fn summary(scored: &[Scored]) -> serde_json::Value {
    let n = scored.len().max(1) as f64;
    let share = |f: &dyn Fn(&Scored) -> bool| scored.iter().filter(|s| f(s)).count() as f64 / n;
    let mut errors: Vec<f64> = scored
        .iter()
        .map(|s| 100.0 * (s.predicted - s.truth).abs() / s.truth)
        .collect();
    errors.sort_by(f64::total_cmp);
    let median = errors.get(errors.len() / 2).copied().unwrap_or(f64::NAN);
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "within_10pct": r3(share(&|s| s.within(0.1))),
        "coverage_90": r3(share(&|s| s.covered())),
        "median_abs_error_pct": r3(median),
    })
}

pub fn run_eval(args: &FleetArgs) -> Result<()> {
    if !(args.at > 0.0 && args.at < 1.0) {
        bail!("--at must be a fraction of life in (0, 1), got {}", args.at);
    }
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let spec = filter_spec()?;
    eprintln!("training on {} completed filter lives", args.train_devices);
    let fleet = train(&spec, args)?;
    eprintln!(
        "predicting {} filters at {:.0} % of their life",
        args.devices,
        100.0 * args.at
    );
    let (mut with_fleet, mut trend_only) = (Vec::new(), Vec::new());
    let mut models = BTreeMap::<String, usize>::new();
    for (i, params) in fleet_params(args.seed.wrapping_add(1), args.devices, &[], &[])
        .into_iter()
        .enumerate()
    {
        let (mut p, truth) = fitted(params);
        let mut t = LifeTracker::new(&spec)?;
        let mut hour = 0;
        run(&mut p, &mut t, &mut hour, |p| p.filter_life_used() < args.at);
        for (knowledge, out) in [(Some(&fleet), &mut with_fleet), (None, &mut trend_only)] {
            let e = t.estimate(knowledge, COVERAGE);
            let scored = match e {
                Some(e) => {
                    let rate_h = e.usage_per_day.unwrap_or(24.0) / 24.0;
                    let to_h = |ms: f64| e.used + ms / HOUR_MS as f64 * rate_h;
                    if knowledge.is_some() {
                        *models.entry(model_kind(&e.model)).or_default() += 1;
                    }
                    Scored {
                        truth,
                        predicted: to_h(e.remaining_ms),
                        low: to_h(e.interval_ms.0),
                        high: e.interval_ms.1.map(to_h),
                    }
                }
                // No estimate counts as a miss.
                None => Scored {
                    truth,
                    predicted: f64::INFINITY,
                    low: f64::INFINITY,
                    high: None,
                },
            };
            if args.predictions && knowledge.is_some() {
                println!(
                    "{i} {:.1} {:.1} {:.1} {}",
                    scored.truth,
                    scored.predicted,
                    scored.low,
                    scored.high.map_or("-".into(), |h| format!("{h:.1}"))
                );
            }
            out.push(scored);
        }
    }
    let mut report = summary(&with_fleet);
    if let serde_json::Value::Object(m) = &mut report {
        m.insert("devices".into(), args.devices.into());
        m.insert("at_fraction_of_life".into(), args.at.into());
        m.insert("train_lives".into(), fleet.lives.into());
        m.insert("trend_only".into(), summary(&trend_only));
        m.insert("models".into(), serde_json::to_value(&models)?);
    }
    println!("{report}");
    Ok(())
}

/// The model's description without its figures (the parts in parentheses),
/// to count which ones ran.
fn model_kind(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    let mut depth = 0usize;
    for ch in model.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
