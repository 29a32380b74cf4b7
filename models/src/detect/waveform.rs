//! Metrics from one window of a waveform (an accelerometer's samples), named
//! after the channel: what the agent publishes for a waveform it receives and
//! what the detectors then watch.
//!
//! For a channel `vibration` the metrics are `vibration_rms`, `_peak`,
//! `_peak_to_peak`, `_crest_factor`, `_kurtosis`, `_skewness`, one
//! `_band{i}` per requested band (mean-square energy, in the signal's unit
//! squared), and with `velocity` (samples in g) `_velocity_rms` in mm/s over
//! 10–1000 Hz, the quantity ISO 10816 zones are stated in.

use super::DetectError;
use super::features::{Spectrum, time_features};

/// What to compute from a channel's windows.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveformSpec {
    /// Samples per second.
    pub sample_rate_hz: f64,
    /// Frequency bands `[low, high)` in Hz whose energies are reported.
    pub bands: Vec<(f64, f64)>,
    /// The samples are accelerations in g: also report velocity RMS in mm/s.
    pub velocity: bool,
}

/// The metrics of one window of channel `name`, in a fixed order.
pub fn waveform_metrics(
    name: &str,
    x: &[f64],
    spec: &WaveformSpec,
) -> Result<Vec<(String, f64)>, DetectError> {
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(DetectError::Window(format!(
            "sample {bad} is not a finite number"
        )));
    }
    let t = time_features(x)?;
    let mut out = vec![
        (format!("{name}_rms"), t.rms),
        (format!("{name}_peak"), t.peak),
        (format!("{name}_peak_to_peak"), t.peak_to_peak),
        (format!("{name}_crest_factor"), t.crest_factor),
        (format!("{name}_kurtosis"), t.kurtosis),
        (format!("{name}_skewness"), t.skewness),
    ];
    if !spec.bands.is_empty() || spec.velocity {
        let mut spectrum = Spectrum::new(x.len(), spec.sample_rate_hz)?;
        if !spec.bands.is_empty() {
            let energies = spectrum.band_energies(x, &spec.bands)?;
            out.extend(
                energies
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| (format!("{name}_band{i}"), e)),
            );
        }
        if spec.velocity {
            out.push((format!("{name}_velocity_rms"), spectrum.velocity_rms_mm_s(x)?));
        }
    }
    Ok(out)
}

/// The metric names [`waveform_metrics`] gives for channel `name`.
pub fn waveform_metric_names(name: &str, spec: &WaveformSpec) -> Vec<String> {
    let mut names: Vec<String> = [
        "rms",
        "peak",
        "peak_to_peak",
        "crest_factor",
        "kurtosis",
        "skewness",
    ]
    .iter()
    .map(|s| format!("{name}_{s}"))
    .collect();
    names.extend((0..spec.bands.len()).map(|i| format!("{name}_band{i}")));
    if spec.velocity {
        names.push(format!("{name}_velocity_rms"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sine_gives_its_known_features_and_band_energy() {
        let fs = 10_000.0;
        let x: Vec<f64> = (0..4096)
            .map(|i| 2.0 * (2.0 * std::f64::consts::PI * 500.0 * f64::from(i) / fs).sin())
            .collect();
        let spec = WaveformSpec {
            sample_rate_hz: fs,
            bands: vec![(0.0, 400.0), (400.0, 600.0)],
            velocity: true,
        };
        let m: std::collections::BTreeMap<String, f64> = waveform_metrics("vib", &x, &spec)
            .expect("features")
            .into_iter()
            .collect();
        let names = waveform_metric_names("vib", &spec);
        assert_eq!(m.len(), names.len());
        assert!(names.iter().all(|n| m.contains_key(n)));
        assert!((m["vib_rms"] - 2.0 / 2f64.sqrt()).abs() < 0.01);
        assert!((m["vib_kurtosis"] - 1.5).abs() < 0.01);
        assert!((m["vib_crest_factor"] - 2f64.sqrt()).abs() < 0.01);
        // The sine's power (A²/2 = 2) lies in the band around 500 Hz.
        assert!(m["vib_band0"] < 0.05 * m["vib_band1"]);
        assert!((m["vib_band1"] - 2.0).abs() < 0.1, "{}", m["vib_band1"]);
        // 2 g at 500 Hz: v = a / ω = 2·9.80665 / (2π·500) m/s peak → 4.41 mm/s RMS.
        assert!(
            (m["vib_velocity_rms"] - 4.41).abs() < 0.2,
            "{}",
            m["vib_velocity_rms"]
        );
    }

    #[test]
    fn bad_windows_are_errors() {
        let spec = WaveformSpec {
            sample_rate_hz: 1000.0,
            bands: vec![],
            velocity: false,
        };
        assert!(waveform_metrics("v", &[], &spec).is_err());
        assert!(waveform_metrics("v", &[1.0, f64::NAN], &spec).is_err());
    }
}
