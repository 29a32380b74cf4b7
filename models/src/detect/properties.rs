//! Property tests over generated series: every detector's score stays in
//! `[0, 1]`, and scoring a prefix gives the same results as the same prefix
//! of a longer run (no look-ahead). The series are random mixtures of noise,
//! steps, ramps, spikes and non-finite values at random scales, drawn from
//! fixed seeds so a failure reproduces; the seed is in the message.

use super::DetectError;
use super::change::{ChangeConfig, ChangeDetector};
use super::combined::{DetectorConfig, RowDetector, RowScore};
use super::stream::{Cusum, OutOfRange, PageHinkley, RateOfChange, RobustEwma, StreamDetector, Stuck};

/// Cases per property.
const CASES: u64 = 200;

struct Gen(u64);

impl Gen {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// One channel of `n` samples.
    fn series(&mut self, n: usize) -> Vec<f64> {
        let scale = 10f64.powf(6.0 * self.unit() - 3.0);
        let mut level = scale * (self.unit() - 0.5) * 10.0;
        let mut slope = 0.0;
        (0..n)
            .map(|_| {
                match self.below(200) {
                    0 => level += scale * 20.0 * (self.unit() - 0.5),
                    1 => slope = scale * 0.2 * (self.unit() - 0.5),
                    2 => slope = 0.0,
                    _ => {}
                }
                level += slope;
                match self.below(400) {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -1e300,
                    3 | 4 => level + scale * 1e3 * (self.unit() - 0.5),
                    _ => level + scale * (self.unit() - 0.5),
                }
            })
            .collect()
    }

    /// `n` rows of `width` channels.
    fn rows(&mut self, n: usize, width: usize) -> Vec<Vec<f64>> {
        let cols: Vec<Vec<f64>> = (0..width).map(|_| self.series(n)).collect();
        (0..n).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
    }
}

fn stream_detectors(g: &mut Gen) -> Vec<Box<dyn StreamDetector>> {
    let warm = 2 + g.below(100);
    vec![
        Box::new(RobustEwma::new(0.001 + g.unit(), 0.5 + 5.0 * g.unit(), warm)),
        Box::new(Cusum::new(g.unit(), 0.5 + 20.0 * g.unit(), warm)),
        Box::new(PageHinkley::new(g.unit(), 0.5 + 30.0 * g.unit(), warm)),
        Box::new(RateOfChange::new(10f64.powf(4.0 * g.unit() - 2.0))),
        Box::new(Stuck::new(g.unit() * 1e-3, 1 + g.below(20))),
        Box::new(OutOfRange::new(-g.unit() * 100.0, g.unit() * 100.0)),
    ]
}

#[test]
fn stream_detectors_are_bounded_and_causal() {
    for seed in 0..CASES {
        let mut g = Gen(seed);
        let n = 1 + g.below(1500);
        let xs = g.series(n);
        let cut = g.below(n + 1);
        let params = g.0;
        let full: Vec<Vec<f64>> = stream_detectors(&mut Gen(params))
            .iter_mut()
            .map(|d| xs.iter().map(|&x| d.update(x)).collect())
            .collect();
        let prefix: Vec<Vec<f64>> = stream_detectors(&mut Gen(params))
            .iter_mut()
            .map(|d| xs[..cut].iter().map(|&x| d.update(x)).collect())
            .collect();
        for (f, p) in full.iter().zip(&prefix) {
            assert!(f.iter().all(|s| (0.0..=1.0).contains(s)), "seed {seed}: {f:?}");
            assert_eq!(p[..], f[..cut], "seed {seed}, cut {cut}");
        }
    }
}

fn change_config(g: &mut Gen) -> ChangeConfig {
    let allowance = 2.0 * g.unit();
    ChangeConfig {
        allowance,
        threshold: 0.5 + 20.0 * g.unit(),
        refractory: 1 + g.below(80),
        clip: allowance + 0.1 + 6.0 * g.unit(),
        slow_inflation: g.below(2) == 0,
    }
}

#[test]
fn changepoint_detector_is_bounded_and_causal() {
    for seed in 0..CASES {
        let mut g = Gen(1000 + seed);
        let width = 1 + g.below(5);
        let train = 3 + g.below(200);
        let n = train + g.below(1500);
        let data = g.rows(n, width);
        let cfg = change_config(&mut g);
        let cut = train + g.below(n - train + 1);
        let run = |upto: usize| {
            let mut d = ChangeDetector::fit(&cfg, &data[..train]).unwrap();
            data[train..upto]
                .iter()
                .map(|r| d.push(r).unwrap())
                .collect::<Vec<_>>()
        };
        let full = run(n);
        for s in &full {
            assert!((0.0..=1.0).contains(&s.score), "seed {seed}: {s:?}");
            assert!(!s.changepoint || s.score >= 0.5, "seed {seed}: {s:?}");
        }
        assert_eq!(run(cut)[..], full[..cut - train], "seed {seed}, cut {cut}");
    }
}

#[test]
fn row_detector_is_bounded_and_causal() {
    for seed in 0..CASES / 4 {
        let mut g = Gen(2000 + seed);
        let width = 1 + g.below(6);
        let train = 10 + g.below(150);
        let n = g.below(train + 1200);
        let data = g.rows(n, width);
        let cfg = DetectorConfig {
            train_rows: train,
            smoothing: 0.01 + 0.99 * g.unit(),
            adapt: 0.1 * g.unit(),
            changepoint: change_config(&mut g),
            ..DetectorConfig::default()
        };
        let cut = g.below(n + 1);
        // Errors (a healthy period too wild to fit) are part of the output.
        let run = |upto: usize| -> Vec<Result<RowScore, DetectError>> {
            let mut d = RowDetector::new(cfg.clone(), width).unwrap();
            data[..upto].iter().map(|r| d.push(r)).collect()
        };
        let full = run(n);
        for s in full.iter().flatten() {
            assert!((0.0..=1.0).contains(&s.score), "seed {seed}: {s:?}");
        }
        assert_eq!(run(cut)[..], full[..cut], "seed {seed}, cut {cut}");
    }
}
