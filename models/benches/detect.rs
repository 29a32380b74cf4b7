//! Throughput of the edge detection path on waveform input: a window of raw
//! samples → time features (RMS, peak, crest factor, kurtosis, skewness) and
//! band energies from a real FFT → a robust EWMA baseline and a CUSUM on
//! every feature. Reported in samples per second on one core.
//!
//! Goal: ≥ 5 million samples/s, so that 10 channels at 25.6 kHz (256,000
//! samples/s) cost under 5 % of a core. Run with
//! `cargo bench -p wearline-models --bench detect`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wearline_models::detect::features::{Spectrum, time_features};
use wearline_models::detect::stream::{Cusum, RobustEwma, StreamDetector};

const FS: f64 = 25_600.0;
/// Octave-ish bands up to Nyquist (12.8 kHz).
const BANDS: [(f64, f64); 8] = [
    (0.0, 100.0),
    (100.0, 200.0),
    (200.0, 400.0),
    (400.0, 800.0),
    (800.0, 1600.0),
    (1600.0, 3200.0),
    (3200.0, 6400.0),
    (6400.0, 12_800.1),
];
/// Time features kept per window, plus one per band.
const FEATURES: usize = 5 + BANDS.len();

/// A shaft tone, a bearing resonance rung by periodic impacts, and noise.
fn signal(n: usize) -> Vec<f64> {
    let mut s: u64 = 42;
    let two_pi = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = 2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0;
            let t = i as f64 / FS;
            let since_impact = t % (1.0 / 107.0);
            0.5 * (two_pi * 29.5 * t).sin()
                + (-since_impact * 900.0).exp() * (two_pi * 3000.0 * t).sin()
                + 0.1 * noise
        })
        .collect()
}

/// Per-channel state: the FFT plan and the detectors, built once.
struct Channel {
    spectrum: Spectrum,
    baselines: Vec<RobustEwma>,
    cusums: Vec<Cusum>,
    bands: Vec<f64>,
}

impl Channel {
    fn new(len: usize) -> Channel {
        Channel {
            spectrum: Spectrum::new(len, FS).expect("valid window"),
            baselines: (0..FEATURES).map(|_| RobustEwma::new(0.01, 4.0, 50)).collect(),
            cusums: (0..FEATURES).map(|_| Cusum::new(0.5, 8.0, 50)).collect(),
            bands: vec![0.0; BANDS.len()],
        }
    }

    /// One window through features and detectors; returns the largest score.
    fn process(&mut self, window: &[f64]) -> f64 {
        let t = time_features(window).expect("non-empty window");
        self.spectrum
            .band_energies_into(window, &BANDS, &mut self.bands)
            .expect("window of the planned length");
        let time = [t.rms, t.peak, t.crest_factor, t.kurtosis, t.skewness];
        let mut worst: f64 = 0.0;
        for (i, &x) in time.iter().chain(self.bands.iter()).enumerate() {
            worst = worst.max(self.baselines[i].update(x));
            worst = worst.max(self.cusums[i].update(x));
        }
        worst
    }
}

fn features_and_detectors(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_to_scores");
    for len in [1024usize, 4096, 16_384] {
        let x = signal(len * 16);
        let windows: Vec<&[f64]> = x.chunks_exact(len).collect();
        let mut channel = Channel::new(len);
        // Past the detectors' warm-up, as in steady state.
        for w in windows.iter().cycle().take(60) {
            channel.process(w);
        }
        let mut next = 0;
        group.throughput(Throughput::Elements(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
            b.iter(|| {
                next = (next + 1) % windows.len();
                black_box(channel.process(black_box(windows[next])))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, features_and_detectors);
criterion_main!(benches);
