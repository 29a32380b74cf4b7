//! Deterministic parameters for a fleet of simulated air purifiers.
//!
//! Pure: derives every device's [`PurifierParams`] from one seed (and optional
//! explicit values). It must not do IO or read the clock; the same arguments
//! always give the same fleet.

use crate::air_purifier::PurifierParams;
use crate::prng::{SplitMix64, mix};

/// Derived filter loads are spread over `0..MAX_DERIVED_FILTER_LOAD`.
pub const MAX_DERIVED_FILTER_LOAD: f64 = 0.97;
/// Derived PM2.5 values are spread over this range, µg/m³.
pub const DERIVED_PM25_RANGE: (f64, f64) = (5.0, 80.0);
/// Fan levels a derived device is set to, percent.
pub const DERIVED_FAN_LEVELS: [f64; 5] = [40.0, 50.0, 60.0, 70.0, 80.0];

/// Parameters for `devices` purifiers.
///
/// `filter_loads` and `pm25` are cycled over the devices when non-empty;
/// when empty they are derived from `seed`, stratified so that even a small
/// fleet covers the whole range (loads 0–0.97, PM2.5 5–80 µg/m³) and shuffled
/// so the two are not correlated with each other or with the device index.
/// Fan levels and per-device seeds are always derived from `seed`.
#[must_use]
pub fn fleet_params(seed: u64, devices: usize, filter_loads: &[f64], pm25: &[f64]) -> Vec<PurifierParams> {
    let mut rng = SplitMix64::new(seed);
    let loads = cycled_or_spread(&mut rng, devices, filter_loads, 0.0, MAX_DERIVED_FILTER_LOAD);
    let (lo, hi) = DERIVED_PM25_RANGE;
    let pm25 = cycled_or_spread(&mut rng, devices, pm25, lo, hi);
    loads
        .into_iter()
        .zip(pm25)
        .enumerate()
        .map(|(i, (initial_filter_load, pm25_ugm3))| PurifierParams {
            pm25_ugm3,
            fan_level_pct: DERIVED_FAN_LEVELS[rng.index(DERIVED_FAN_LEVELS.len())],
            initial_filter_load,
            seed: mix(seed ^ mix(i as u64 + 1)),
        })
        .collect()
}

fn cycled_or_spread(rng: &mut SplitMix64, n: usize, given: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    if !given.is_empty() {
        return given.iter().copied().cycle().take(n).collect();
    }
    // One value per equal-width stratum, then a Fisher–Yates shuffle.
    let width = (hi - lo) / n.max(1) as f64;
    let mut values: Vec<f64> = (0..n).map(|i| lo + width * (i as f64 + rng.next_f64())).collect();
    for i in (1..values.len()).rev() {
        values.swap(i, rng.index(i + 1));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_from_seed() {
        assert_eq!(fleet_params(5, 10, &[], &[]), fleet_params(5, 10, &[], &[]));
        assert_ne!(fleet_params(5, 10, &[], &[]), fleet_params(6, 10, &[], &[]));
    }

    #[test]
    fn derived_values_are_varied_and_in_range() {
        let fleet = fleet_params(1, 20, &[], &[]);
        assert_eq!(fleet.len(), 20);
        for p in &fleet {
            assert!((0.0..MAX_DERIVED_FILTER_LOAD).contains(&p.initial_filter_load));
            assert!((5.0..80.0).contains(&p.pm25_ugm3));
            assert!(DERIVED_FAN_LEVELS.contains(&p.fan_level_pct));
        }
        let max_load = fleet.iter().map(|p| p.initial_filter_load).fold(0.0, f64::max);
        let min_load = fleet.iter().map(|p| p.initial_filter_load).fold(1.0, f64::min);
        assert!(max_load > 0.9 && min_load < 0.1, "{min_load}..{max_load}");
        let mut seeds: Vec<u64> = fleet.iter().map(|p| p.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 20);
        // Even three devices get three distinct strata.
        let small = fleet_params(1, 3, &[], &[]);
        let mut strata: Vec<u64> = small
            .iter()
            .map(|p| (p.initial_filter_load / (MAX_DERIVED_FILTER_LOAD / 3.0)) as u64)
            .collect();
        strata.sort_unstable();
        assert_eq!(strata, [0, 1, 2]);
    }

    #[test]
    fn explicit_values_are_cycled() {
        let fleet = fleet_params(1, 5, &[0.1, 0.9], &[12.0]);
        let loads: Vec<f64> = fleet.iter().map(|p| p.initial_filter_load).collect();
        assert_eq!(loads, [0.1, 0.9, 0.1, 0.9, 0.1]);
        assert!(fleet.iter().all(|p| (p.pm25_ugm3 - 12.0).abs() < f64::EPSILON));
        assert!(fleet_params(1, 0, &[], &[]).is_empty());
    }
}
