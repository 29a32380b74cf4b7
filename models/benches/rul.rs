//! Cost of one remaining-life update: a new reading into the incremental
//! trend and a fresh estimate (trend alone, and blended with a fleet prior),
//! and the whole per-sample step the hub runs for a consumable (its
//! `LifeTracker`: usage, covariates, replacement check, trend, every limit,
//! prior and calibration). The goal is under 10 µs per point; no history is
//! refitted.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use wearline_models::profile::Profile;
use wearline_models::rul::prior::{CompletedLife, FleetPrior, blend};
use wearline_models::rul::tracker::{FleetKnowledge, LifeTracker, Observed};
use wearline_models::rul::trend::{RulTrend, TrendConfig};

const PROFILE: &str = include_str!("../../configs/profiles/air-purifier.toml");

fn reading(h: u32, dust: f64) -> BTreeMap<String, f64> {
    let x = f64::from(h) * dust / 40_000.0;
    BTreeMap::from([
        (
            "filter_dp".to_string(),
            80.0 + 85.0 * x + 85.0 * x * x + f64::from(h % 5) * 0.1,
        ),
        ("run_hours".to_string(), 1000.0 + f64::from(h)),
        ("pm25".to_string(), dust),
        ("fan_speed".to_string(), 900.0),
    ])
}

fn filled() -> RulTrend {
    let mut t = RulTrend::new(TrendConfig::new(600.0, 0.0)).expect("config");
    for i in 0..1000u32 {
        let u = f64::from(i);
        t.update(i64::from(i) * 60_000, u, 20.0 + 0.3 * u + f64::from(i % 7));
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut t = filled();
    let mut i = 1000u32;
    c.bench_function("rul_update_and_predict", |b| {
        b.iter(|| {
            i += 1;
            let u = f64::from(i);
            t.update(i64::from(i) * 60_000, u, 20.0 + 0.3 * u + f64::from(i % 7));
            black_box(t.predict())
        })
    });
    let lives: Vec<CompletedLife> = (0..30)
        .map(|k| CompletedLife {
            covariates: vec![f64::from(k % 5), 1000.0 + f64::from(k)],
            life: 1500.0 + 40.0 * f64::from(k % 7),
        })
        .collect();
    let prior = FleetPrior::learn(&lives, 1.0).expect("prior");
    let mut t = filled();
    let mut i = 1000u32;
    c.bench_function("rul_update_and_blend", |b| {
        b.iter(|| {
            i += 1;
            let u = f64::from(i);
            t.update(i64::from(i) * 60_000, u, 20.0 + 0.3 * u + f64::from(i % 7));
            let p = prior.remaining(&[2.0, 1010.0], u);
            black_box(blend(&t, &p, 0.9))
        })
    });
}

fn bench_tracker(c: &mut Criterion) {
    let profile = Profile::parse("air-purifier.toml", PROFILE).expect("profile");
    let spec = &profile.consumables[0];
    // A fleet of 30 completed lives, then one filter a third of the way through.
    let mut lives = Vec::new();
    for k in 0..30u32 {
        let dust = 10.0 + f64::from(k);
        let mut t = LifeTracker::new(spec).expect("spec");
        let mut h = 0;
        while reading(h, dust)["filter_dp"] < 252.0 {
            t.observe(i64::from(h) * 3_600_000, &reading(h, dust));
            h += 1;
        }
        let mut fresh = reading(h, dust);
        fresh.insert("filter_dp".into(), 80.0);
        if let Observed::Replaced(l) = t.observe(i64::from(h) * 3_600_000, &fresh) {
            lives.push(l);
        }
    }
    let fleet = FleetKnowledge::learn(&lives);
    let mut t = LifeTracker::new(spec).expect("spec");
    let mut h = 0u32;
    while h < 500 {
        t.observe(i64::from(h) * 3_600_000, &reading(h, 20.0));
        h += 1;
    }
    // Each measured step takes the next reading into a copy of this life
    // (the copy is made outside the timing), so every step is mid-life.
    let next = reading(h, 20.0);
    let ts = i64::from(h) * 3_600_000;
    c.bench_function("tracker_observe_and_estimate", |b| {
        b.iter_batched(
            || t.clone(),
            |mut t| {
                t.observe(ts, &next);
                black_box(t.estimate(Some(&fleet), 0.9))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench, bench_tracker);
criterion_main!(benches);
