//! Remaining-useful-life (RUL) estimation: how much longer a consumable or a
//! machine lasts, with an interval and an account of where the figure came from.
//!
//! Two families, both pure (no IO, no clock: usage, time and data are arguments):
//! - [`trend`]: a robust, incremental fit of one degradation signal (linear,
//!   exponential or power-law shape, chosen by likelihood), extrapolated to a
//!   threshold; [`prior`]: a fleet prior learned from completed lives, blended
//!   with the trend by their uncertainties; [`tracker`]: one consumable's life
//!   sample by sample (usage, replacements, every limit). This is what runs per device.
//! - [`gbm`] with [`cmapss`]: a learned regressor on windowed features of many
//!   sensors, trained offline on run-to-failure fleets (C-MAPSS turbofans).
//!
//! [`filter`] reads the air-filter run-to-failure data and holds its baselines;
//! [`metrics`] has the scores every evaluation reports (RMSE, PHM08).

pub mod cmapss;
pub mod filter;
pub mod gbm;
pub mod metrics;
pub mod prior;
pub mod tracker;
pub mod trend;

/// What went wrong in RUL estimation or in reading its data sets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulError {
    /// A data file row that does not parse; `line` is 1-based.
    #[error("{file}:{line}: {reason}")]
    Parse {
        file: String,
        line: usize,
        reason: String,
    },
    /// Data that parse but cannot be used (too few units, no failures, ...).
    #[error("{0}")]
    Data(String),
    /// A setting out of its range.
    #[error("invalid setting `{name}`: {reason}")]
    Config { name: &'static str, reason: String },
}

/// Result with [`RulError`].
pub type Result<T, E = RulError> = std::result::Result<T, E>;
