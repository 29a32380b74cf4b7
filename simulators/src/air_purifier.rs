//! Physics of one simulated air purifier: fan, filter loading, motor and sensors.
//!
//! Pure model code: it must not do any IO, must not read the clock and must not
//! use ambient randomness. Time only moves through [`AirPurifier::advance`], and
//! all noise comes from a PRNG seeded by [`PurifierParams::seed`], so the same
//! parameters and the same sequence of calls always give the same readings.
//!
//! # Model
//!
//! * **Fan.** Speed `n = 300 + 12 · fan_level_pct` rpm (300 rpm idle, 1 500 rpm
//!   at 100 %). By the fan affinity law the airflow is proportional to speed:
//!   `Q = 400 m³/h · n / 1500`.
//! * **Filter loading.** The filter captures the dust carried by the airflow,
//!   `dm/dt = (PM2.5 + 4 µg/m³) · Q` (the 4 µg/m³ stands for coarse dust and lint
//!   that loads the media but does not show up as PM2.5). The load is tracked in
//!   grams and as the fraction `x` of the nominal filter life: the dust captured
//!   in 90 days at PM2.5 = 35 µg/m³ and fan 60 %, about 22.9 g. Loading is
//!   linear in time, so the life scales as `1 / (PM2.5 + 4)`: ~42 days at 80
//!   µg/m³, ~250 days at 10 µg/m³.
//! * **Differential pressure.** `DP = 80 + 85 x + 85 x²` Pa: 80 Pa clean, 250 Pa
//!   at the end of the nominal life; the quadratic term models the dust cake
//!   that makes clogging accelerate. Capped at 1 000 Pa. Measured with ±1 Pa
//!   noise.
//! * **Motor.** Temperature tends to `35 + 10 f + 5 (DP − 80) / 170` °C (`f` =
//!   fan fraction: a faster fan and a clogged filter both load the motor) with
//!   a first-order lag of 15 min. Vibration RMS `0.8 + 0.6 f` mm/s.
//! * **Run hours.** The device runs 100 % of the time; the counter starts at a
//!   seed-derived value in 100–5 000 h.

use crate::prng::SplitMix64;

/// Differential pressure of a clean filter, Pa.
pub const CLEAN_DP_PA: f64 = 80.0;
/// Differential pressure at which the filter's nominal life ends, Pa.
pub const END_OF_LIFE_DP_PA: f64 = 250.0;
/// Differential pressure never exceeds this (the media is fully blocked), Pa.
pub const MAX_DP_PA: f64 = 1000.0;

const IDLE_RPM: f64 = 300.0;
const RPM_PER_PCT: f64 = 12.0;
const MAX_RPM: f64 = IDLE_RPM + 100.0 * RPM_PER_PCT;
/// Airflow at full speed, m³/h.
const MAX_AIRFLOW_M3H: f64 = 400.0;
/// Non-PM2.5 dust (coarse particles, lint) that also loads the filter, µg/m³.
const BACKGROUND_DUST_UGM3: f64 = 4.0;

const NOMINAL_PM25_UGM3: f64 = 35.0;
const NOMINAL_FAN_PCT: f64 = 60.0;
const NOMINAL_LIFE_H: f64 = 90.0 * 24.0;
/// Dust mass (g) that brings a fresh filter to [`END_OF_LIFE_DP_PA`].
pub const FILTER_LIFE_DUST_G: f64 = (NOMINAL_PM25_UGM3 + BACKGROUND_DUST_UGM3)
    * 1e-6
    * MAX_AIRFLOW_M3H
    * ((IDLE_RPM + RPM_PER_PCT * NOMINAL_FAN_PCT) / MAX_RPM)
    * NOMINAL_LIFE_H;

/// DP rise per unit of life fraction: linear (media) and quadratic (cake) parts,
/// split evenly so `DP(1) = END_OF_LIFE_DP_PA`.
const DP_LINEAR_PA: f64 = (END_OF_LIFE_DP_PA - CLEAN_DP_PA) / 2.0;
const DP_QUADRATIC_PA: f64 = (END_OF_LIFE_DP_PA - CLEAN_DP_PA) / 2.0;

const MOTOR_TAU_SECS: f64 = 15.0 * 60.0;
/// Longest internal integration step, simulated seconds.
pub const MAX_STEP_SECS: f64 = 3600.0;

const RPM_SIGMA: f64 = 4.0;
const TEMP_SIGMA_C: f64 = 0.2;
const VIBRATION_SIGMA_MMS: f64 = 0.03;
/// Extra vibration RMS of a fully developed bearing fault, mm/s.
pub const BEARING_FAULT_MMS: f64 = 12.0;
/// Clipped at 2.5 σ, i.e. ±1 Pa.
const DP_SIGMA_PA: f64 = 0.4;
const PM25_REL_SIGMA: f64 = 0.03;

/// What a purifier is set up with. Everything else follows from these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurifierParams {
    /// Ambient PM2.5 concentration, µg/m³ (constant over the simulation).
    pub pm25_ugm3: f64,
    /// Initial fan level, percent 0–100 (changeable later).
    pub fan_level_pct: f64,
    /// Fraction of the nominal filter life already used (0 = new, 1 = 250 Pa).
    pub initial_filter_load: f64,
    /// Seed of every random draw of this device.
    pub seed: u64,
}

/// The sensor values as last sampled; getters return these.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Readings {
    fan_speed_rpm: f64,
    motor_temp_c: f64,
    vibration_rms_mms: f64,
    filter_dp_pa: f64,
    pm25_ugm3: f64,
}

/// One simulated air purifier.
#[derive(Debug, Clone, PartialEq)]
pub struct AirPurifier {
    params: PurifierParams,
    rng: SplitMix64,
    fan_level_pct: f64,
    dust_g: f64,
    run_hours: f64,
    motor_temp_c: f64,
    sim_secs: f64,
    filter_indicator: bool,
    /// An injected bearing fault, 0 (none) to 1 (severe).
    bearing_fault: f64,
    readings: Readings,
}

impl AirPurifier {
    /// A purifier in the state described by `params`, with sensors sampled once.
    /// Out-of-range parameters are tamed: NaN or negative PM2.5 and load become
    /// 0, the fan level is clamped to 0–100 %; [`Self::params`] shows the result.
    #[must_use]
    pub fn new(params: PurifierParams) -> Self {
        let params = PurifierParams {
            pm25_ugm3: finite_non_negative(params.pm25_ugm3),
            fan_level_pct: clamp_pct(params.fan_level_pct),
            initial_filter_load: finite_non_negative(params.initial_filter_load),
            seed: params.seed,
        };
        let mut rng = SplitMix64::new(params.seed);
        let run_hours = rng.range(100.0, 5000.0);
        let mut purifier = Self {
            params,
            rng,
            fan_level_pct: params.fan_level_pct,
            dust_g: params.initial_filter_load * FILTER_LIFE_DUST_G,
            run_hours,
            motor_temp_c: 0.0,
            sim_secs: 0.0,
            filter_indicator: false,
            bearing_fault: 0.0,
            readings: Readings::default(),
        };
        purifier.motor_temp_c = purifier.motor_temp_target_c();
        purifier.sample();
        purifier
    }

    /// Runs the device for `dt_sim_secs` simulated seconds, integrating in steps
    /// of at most [`MAX_STEP_SECS`], then samples the sensors once.
    /// Non-positive or non-finite durations are ignored.
    pub fn advance(&mut self, dt_sim_secs: f64) {
        if !(dt_sim_secs.is_finite() && dt_sim_secs > 0.0) {
            return;
        }
        let mut left = dt_sim_secs;
        while left > 0.0 {
            let h = left.min(MAX_STEP_SECS);
            self.dust_g += self.dust_rate_g_per_s() * h;
            self.run_hours += h / 3600.0;
            let relax = 1.0 - (-h / MOTOR_TAU_SECS).exp();
            self.motor_temp_c += (self.motor_temp_target_c() - self.motor_temp_c) * relax;
            left -= h;
        }
        self.sim_secs += dt_sim_secs;
        self.sample();
    }

    /// Fits a clean filter and clears the filter indicator.
    pub fn replace_filter(&mut self) {
        self.dust_g = 0.0;
        self.filter_indicator = false;
        self.sample();
    }

    /// Sets the fan level, clamped to 0–100 %.
    pub fn set_fan_level_pct(&mut self, pct: f64) {
        self.fan_level_pct = clamp_pct(pct);
        self.sample();
    }

    /// Injects a bearing fault of `severity`, 0 (none, the default) to 1
    /// (severe), clamped: the fan motor's vibration rises by
    /// [`BEARING_FAULT_MMS`] at full severity (ISO 10816 zone D for this
    /// machine from about 0.35). 0 repairs it.
    pub fn set_bearing_fault(&mut self, severity: f64) {
        self.bearing_fault = if severity.is_finite() {
            severity.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.sample();
    }

    /// The injected bearing fault's severity, 0 to 1.
    #[must_use]
    pub const fn bearing_fault(&self) -> f64 {
        self.bearing_fault
    }

    /// Sets the "replace filter" indicator on the front panel.
    pub const fn set_filter_indicator(&mut self, on: bool) {
        self.filter_indicator = on;
    }

    /// The parameters this device was created with.
    #[must_use]
    pub const fn params(&self) -> &PurifierParams {
        &self.params
    }

    /// Total simulated time advanced so far, seconds.
    #[must_use]
    pub const fn sim_secs(&self) -> f64 {
        self.sim_secs
    }

    /// Current fan level setting, percent.
    #[must_use]
    pub const fn fan_level_pct(&self) -> f64 {
        self.fan_level_pct
    }

    /// Measured fan speed, rpm.
    #[must_use]
    pub const fn fan_speed_rpm(&self) -> f64 {
        self.readings.fan_speed_rpm
    }

    /// Measured motor temperature, °C.
    #[must_use]
    pub const fn motor_temp_c(&self) -> f64 {
        self.readings.motor_temp_c
    }

    /// Measured vibration RMS, mm/s.
    #[must_use]
    pub const fn vibration_rms_mms(&self) -> f64 {
        self.readings.vibration_rms_mms
    }

    /// Measured filter differential pressure, Pa.
    #[must_use]
    pub const fn filter_dp_pa(&self) -> f64 {
        self.readings.filter_dp_pa
    }

    /// Noise-free filter differential pressure, Pa (ground truth for tests).
    #[must_use]
    pub fn true_filter_dp_pa(&self) -> f64 {
        let x = self.filter_life_used();
        (CLEAN_DP_PA + DP_LINEAR_PA * x + DP_QUADRATIC_PA * x * x).min(MAX_DP_PA)
    }

    /// Fraction of the nominal filter life used (exceeds 1 past end of life).
    #[must_use]
    pub fn filter_life_used(&self) -> f64 {
        self.dust_g / FILTER_LIFE_DUST_G
    }

    /// Run-hours counter, h.
    #[must_use]
    pub const fn run_hours(&self) -> f64 {
        self.run_hours
    }

    /// Measured ambient PM2.5, µg/m³.
    #[must_use]
    pub const fn pm25_ugm3(&self) -> f64 {
        self.readings.pm25_ugm3
    }

    /// The "replace filter" indicator.
    #[must_use]
    pub const fn filter_indicator(&self) -> bool {
        self.filter_indicator
    }

    /// Whether the fan runs; the simulated device always does.
    #[must_use]
    pub const fn running(&self) -> bool {
        true
    }

    fn fan_fraction(&self) -> f64 {
        self.fan_level_pct / 100.0
    }

    fn nominal_rpm(&self) -> f64 {
        IDLE_RPM + RPM_PER_PCT * self.fan_level_pct
    }

    fn dust_rate_g_per_s(&self) -> f64 {
        let airflow_m3h = MAX_AIRFLOW_M3H * self.nominal_rpm() / MAX_RPM;
        let dust_ugm3 = self.params.pm25_ugm3 + BACKGROUND_DUST_UGM3;
        dust_ugm3 * 1e-6 * airflow_m3h / 3600.0
    }

    fn motor_temp_target_c(&self) -> f64 {
        let clogging = (self.true_filter_dp_pa() - CLEAN_DP_PA) / (END_OF_LIFE_DP_PA - CLEAN_DP_PA);
        35.0 + 10.0 * self.fan_fraction() + 5.0 * clogging
    }

    /// Draws fresh sensor noise around the current true state.
    fn sample(&mut self) {
        let rpm = self.nominal_rpm();
        let vibration = 0.8 + 0.6 * self.fan_fraction() + BEARING_FAULT_MMS * self.bearing_fault;
        let dp = self.true_filter_dp_pa();
        let pm25 = self.params.pm25_ugm3;
        let rng = &mut self.rng;
        self.readings = Readings {
            fan_speed_rpm: (rpm + rng.noise(RPM_SIGMA)).max(0.0),
            motor_temp_c: self.motor_temp_c + rng.noise(TEMP_SIGMA_C),
            vibration_rms_mms: (vibration + rng.noise(VIBRATION_SIGMA_MMS)).max(0.0),
            filter_dp_pa: (dp + rng.noise(DP_SIGMA_PA)).max(0.0),
            pm25_ugm3: (pm25 * (1.0 + rng.noise(PM25_REL_SIGMA))).max(0.0),
        };
    }
}

fn clamp_pct(pct: f64) -> f64 {
    if pct.is_nan() { 0.0 } else { pct.clamp(0.0, 100.0) }
}

fn finite_non_negative(v: f64) -> f64 {
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86_400.0;

    fn params(pm25: f64, load: f64, seed: u64) -> PurifierParams {
        PurifierParams {
            pm25_ugm3: pm25,
            fan_level_pct: 60.0,
            initial_filter_load: load,
            seed,
        }
    }

    /// Simulated days until the measured DP first reaches 250 Pa, stepping hourly.
    fn days_to_end_of_life(pm25: f64) -> f64 {
        let mut p = AirPurifier::new(params(pm25, 0.0, 1));
        let mut hours = 0.0;
        while p.filter_dp_pa() < END_OF_LIFE_DP_PA && hours < 24.0 * 1000.0 {
            p.advance(3600.0);
            hours += 1.0;
        }
        hours / 24.0
    }

    #[test]
    fn same_seed_and_calls_give_identical_values() {
        let run = |seed| {
            let mut p = AirPurifier::new(params(35.0, 0.3, seed));
            let mut trace = Vec::new();
            for i in 0..50 {
                p.advance(f64::from(i) * 97.0);
                if i == 20 {
                    p.set_fan_level_pct(80.0);
                }
                trace.push(p.clone());
            }
            trace
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn readings_are_plausible() {
        let p = AirPurifier::new(params(35.0, 0.0, 3));
        assert!((p.fan_speed_rpm() - 1020.0).abs() < 15.0);
        assert!((p.filter_dp_pa() - CLEAN_DP_PA).abs() <= 1.0);
        assert!((p.motor_temp_c() - 41.0).abs() < 1.0);
        assert!((p.vibration_rms_mms() - 1.16).abs() < 0.1);
        assert!((p.pm25_ugm3() - 35.0).abs() < 35.0 * 0.1);
        assert!((100.0..5000.0).contains(&p.run_hours()));
        assert!(p.running());
    }

    #[test]
    fn dp_rises_monotonically_apart_from_noise() {
        let mut p = AirPurifier::new(params(35.0, 0.0, 5));
        let mut previous = p.filter_dp_pa();
        for _ in 0..30 {
            p.advance(7.0 * DAY);
            assert!(p.filter_dp_pa() > previous - 2.0);
            previous = p.filter_dp_pa();
        }
        assert!(previous > 400.0, "DP keeps rising past end of life: {previous}");
        p.advance(10_000.0 * DAY);
        assert!(p.filter_dp_pa() <= MAX_DP_PA + 1.0);
    }

    #[test]
    fn nominal_filter_life_is_about_90_days() {
        let days = days_to_end_of_life(35.0);
        assert!((76.5..=103.5).contains(&days), "{days} days");
    }

    #[test]
    fn filter_life_scales_with_dust() {
        let dirty = days_to_end_of_life(80.0);
        let clean = days_to_end_of_life(10.0);
        assert!((34.0..=46.0).contains(&dirty), "{dirty} days");
        assert!((212.0..=288.0).contains(&clean), "{clean} days");
    }

    #[test]
    fn higher_pm25_and_fan_load_faster() {
        let mut low = AirPurifier::new(params(10.0, 0.0, 2));
        let mut high = AirPurifier::new(params(80.0, 0.0, 2));
        let mut fast = AirPurifier::new(PurifierParams {
            fan_level_pct: 100.0,
            ..params(10.0, 0.0, 2)
        });
        for p in [&mut low, &mut high, &mut fast] {
            p.advance(30.0 * DAY);
        }
        assert!(high.true_filter_dp_pa() > low.true_filter_dp_pa() + 50.0);
        assert!(fast.true_filter_dp_pa() > low.true_filter_dp_pa());
    }

    #[test]
    fn initial_load_sets_dp() {
        let p = AirPurifier::new(params(35.0, 0.95, 4));
        assert!(
            (230.0..=245.0).contains(&p.filter_dp_pa()),
            "{}",
            p.filter_dp_pa()
        );
        let new = AirPurifier::new(params(35.0, 0.0, 4));
        assert!((new.true_filter_dp_pa() - CLEAN_DP_PA).abs() < 1e-9);
    }

    #[test]
    fn replace_filter_resets_dp_and_indicator() {
        let mut p = AirPurifier::new(params(35.0, 1.2, 6));
        p.set_filter_indicator(true);
        assert!(p.filter_dp_pa() > 250.0);
        p.replace_filter();
        assert!((p.filter_dp_pa() - CLEAN_DP_PA).abs() <= 1.0);
        assert!(!p.filter_indicator());
        p.advance(DAY);
        assert!(p.filter_life_used() > 0.0);
    }

    #[test]
    fn run_hours_and_motor_follow_time() {
        let mut p = AirPurifier::new(params(35.0, 0.0, 8));
        let start = p.run_hours();
        p.set_fan_level_pct(100.0);
        p.advance(2.0 * 3600.0);
        assert!((p.run_hours() - start - 2.0).abs() < 1e-9);
        assert!((p.motor_temp_c() - 45.0).abs() < 1.0, "{}", p.motor_temp_c());
        assert!((p.fan_speed_rpm() - 1500.0).abs() < 15.0);
        assert!((p.sim_secs() - 7200.0).abs() < 1e-9);
    }

    #[test]
    fn bad_inputs_are_tamed() {
        let mut p = AirPurifier::new(PurifierParams {
            pm25_ugm3: f64::NAN,
            fan_level_pct: 250.0,
            initial_filter_load: -1.0,
            seed: 0,
        });
        assert!((p.fan_level_pct() - 100.0).abs() < f64::EPSILON);
        assert!(p.params().pm25_ugm3.abs() < f64::EPSILON);
        assert!(p.filter_life_used().abs() < f64::EPSILON);
        let before = p.clone();
        p.advance(-5.0);
        p.advance(f64::INFINITY);
        assert_eq!(p, before);
        p.set_fan_level_pct(f64::NAN);
        assert!(p.fan_level_pct().abs() < f64::EPSILON);
    }
}
