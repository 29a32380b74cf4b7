//! Detection: vibration features from waveform windows, streaming drift and
//! anomaly detectors, a multivariate novelty model, the alert state machine,
//! and NAB scoring for evaluating all of it.
//!
//! Pure like the rest of `models`: no IO, no clock. Samples arrive as numbers
//! (and, where time matters, as timestamps passed in by the caller), so the
//! agent, `wearline detect` and the evaluations run the very same code.
//!
//! Every streaming detector keeps to two rules:
//! - its score for a sample depends only on that sample and the ones before it
//!   (no look-ahead: scoring a prefix gives the same scores as the same prefix of
//!   a longer run);
//! - the score lies in `[0, 1]`, with `0.5` meaning "at the detector's own
//!   alarm threshold" (see [`ratio_score`]).
//!
//! Map: [`waveform`] (the metrics the agent derives from a waveform window),
//! [`channel`] (the per-metric detectors a device profile declares,
//! with their alerts: what the agent runs), [`features`] (RMS, kurtosis, band energies, envelope spectrum, bearing
//! defect frequencies, ISO 10816-3 zones), [`stream`] (EWMA baseline, CUSUM,
//! Page-Hinkley, rate of change, stuck and out-of-range sensors), [`novelty`]
//! (Hotelling T² with a robust covariance, fitted on a healthy period),
//! [`alert`] (hysteresis and debounce), [`combined`] (the default row
//! detector behind `wearline detect`), [`nab`] (Numenta Anomaly Benchmark
//! scoring, as published and as SKAB applies it).

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod alert;
pub mod change;
pub mod channel;
pub mod combined;
pub mod features;
pub mod linalg;
pub mod nab;
pub mod novelty;
#[cfg(test)]
mod properties;
pub mod stream;
pub mod waveform;

pub use alert::{Alert, AlertEvent, AlertState};
pub use change::{ChangeConfig, ChangeDetector, ChangeScore};
pub use channel::{ChannelDetector, ChannelEvent, DetectorSpec, DetectorType};
pub use combined::{DetectorConfig, RowDetector, RowScore};
pub use novelty::Novelty;

/// What went wrong building or feeding a detector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// A row had a different number of values than the detector was built for.
    #[error("expected {expected} values per row, got {got}")]
    Width {
        /// Values the detector was built for.
        expected: usize,
        /// Values in the offending row.
        got: usize,
    },
    /// Too few rows to fit a model on.
    #[error("need at least {needed} training rows, got {got}")]
    TooFewRows {
        /// Minimum rows needed.
        needed: usize,
        /// Rows given.
        got: usize,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter `{name}`: {message}")]
    Parameter {
        /// Parameter name, as in the config file.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A window too short or otherwise unusable for a feature.
    #[error("invalid window: {0}")]
    Window(String),
}

/// Maps a non-negative statistic and its alarm threshold to a score in
/// `[0, 1]`: `0` for no evidence, `0.5` exactly at the threshold, towards `1`
/// far beyond it. NaN or negative statistics give `0`.
pub fn ratio_score(stat: f64, threshold: f64) -> f64 {
    if !(stat > 0.0) || !(threshold > 0.0) {
        return 0.0;
    }
    if stat.is_infinite() {
        return 1.0;
    }
    let s = stat / (stat + threshold);
    s.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_score_is_half_at_threshold_and_bounded() {
        assert_eq!(ratio_score(3.0, 3.0), 0.5);
        assert_eq!(ratio_score(0.0, 3.0), 0.0);
        assert_eq!(ratio_score(f64::NAN, 3.0), 0.0);
        assert_eq!(ratio_score(-1.0, 3.0), 0.0);
        assert_eq!(ratio_score(f64::INFINITY, 3.0), 1.0);
        assert!(ratio_score(1e300, 1e-300) <= 1.0);
    }
}
