//! The alert state machine: hysteresis and debounce, so that an episode opens
//! one alert and clears it once, however noisy the score is around the
//! threshold.
//!
//! An alert opens after `open_after` consecutive scores at or above `open_at`,
//! and clears after `close_after` consecutive scores below `close_at`
//! (`close_at ≤ open_at`). Pure: the caller feeds scores in order.

use super::DetectError;

/// Whether an alert is currently open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// No alert.
    Clear,
    /// An alert is open.
    Open,
}

/// A change of state, reported on the sample that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEvent {
    /// The alert opened on this sample.
    Opened,
    /// The alert cleared on this sample.
    Cleared,
}

/// Hysteresis and debounce over a score stream.
#[derive(Debug, Clone)]
pub struct Alert {
    open_at: f64,
    close_at: f64,
    open_after: usize,
    close_after: usize,
    state: AlertState,
    run: usize,
}

impl Alert {
    /// `open_at` and `close_at` in `[0, 1]` with `close_at ≤ open_at`;
    /// `open_after` and `close_after` at least 1.
    pub fn new(
        open_at: f64,
        close_at: f64,
        open_after: usize,
        close_after: usize,
    ) -> Result<Self, DetectError> {
        if !(0.0..=1.0).contains(&open_at) || !(0.0..=1.0).contains(&close_at) || close_at > open_at {
            return Err(DetectError::Parameter {
                name: "alert",
                message: format!("need 0 ≤ close_at ({close_at}) ≤ open_at ({open_at}) ≤ 1"),
            });
        }
        Ok(Alert {
            open_at,
            close_at,
            open_after: open_after.max(1),
            close_after: close_after.max(1),
            state: AlertState::Clear,
            run: 0,
        })
    }

    /// Current state.
    pub fn state(&self) -> AlertState {
        self.state
    }

    /// Whether an alert is open.
    pub fn is_open(&self) -> bool {
        self.state == AlertState::Open
    }

    /// Feeds the next score; returns the event it caused, if any.
    pub fn update(&mut self, score: f64) -> Option<AlertEvent> {
        match self.state {
            AlertState::Clear => {
                self.run = if score >= self.open_at { self.run + 1 } else { 0 };
                if self.run >= self.open_after {
                    self.state = AlertState::Open;
                    self.run = 0;
                    return Some(AlertEvent::Opened);
                }
            }
            AlertState::Open => {
                self.run = if score < self.close_at { self.run + 1 } else { 0 };
                if self.run >= self.close_after {
                    self.state = AlertState::Clear;
                    self.run = 0;
                    return Some(AlertEvent::Cleared);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(alert: &mut Alert, scores: &[f64], expected: &str) {
        let got: String = scores
            .iter()
            .map(|&s| match alert.update(s) {
                Some(AlertEvent::Opened) => 'O',
                Some(AlertEvent::Cleared) => 'C',
                None if alert.is_open() => '+',
                None => '.',
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn chattering_score_opens_once_and_clears_once() {
        let mut a = Alert::new(0.5, 0.3, 2, 3).unwrap();
        // A single spike does not open; two in a row do; dips to 0.4 (between
        // the thresholds) keep it open; three below 0.3 clear it.
        check(
            &mut a,
            &[
                0.1, 0.9, 0.1, 0.6, 0.7, 0.4, 0.6, 0.4, 0.2, 0.1, 0.45, 0.2, 0.2, 0.2, 0.1,
            ],
            "....O++++++++C.",
        );
    }

    #[test]
    fn invalid_thresholds_are_rejected() {
        assert!(Alert::new(0.3, 0.5, 1, 1).is_err());
        assert!(Alert::new(1.5, 0.5, 1, 1).is_err());
    }
}
