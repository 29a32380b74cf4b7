//! Cost of one remaining-life update: a new reading into the incremental
//! trend and a fresh estimate (trend alone, and blended with a fleet prior).
//! The goal is under 10 µs per point; no history is refitted.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wearline_models::rul::prior::{CompletedLife, FleetPrior, blend};
use wearline_models::rul::trend::{RulTrend, TrendConfig};

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

criterion_group!(benches, bench);
criterion_main!(benches);
