//! Ticket rules: when a prediction becomes a preventive work order, and how
//! urgent it is.
//!
//! Pure: the caller passes the prediction and the consumable's lead time; the
//! store enforces that at most one order per device and cause is open.

use crate::life::Prediction;

/// Priority of a work order; `P1` is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    P1,
    P2,
    P3,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }
}

/// A preventive work order the prediction calls for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreventiveOrder {
    pub priority: Priority,
    /// Days of life left at the prediction's time (≤ 0 when already spent).
    pub remaining_days: f64,
}

/// Whether a preventive work order is due: the predicted end of life falls
/// within the lead time. Priority: P1 when already spent, P2 within half the
/// lead time, P3 otherwise.
pub fn preventive_due(prediction: &Prediction, lead_time_days: f64) -> Option<PreventiveOrder> {
    let remaining_days = prediction.remaining_days();
    if remaining_days > lead_time_days {
        return None;
    }
    let priority = if remaining_days <= 0.0 {
        Priority::P1
    } else if remaining_days <= lead_time_days / 2.0 {
        Priority::P2
    } else {
        Priority::P3
    };
    Some(PreventiveOrder {
        priority,
        remaining_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn prediction(remaining_days: i64) -> Prediction {
        Prediction {
            as_of_ms: 100 * DAY,
            end_of_life_ms: (100 + remaining_days) * DAY,
            interval_ms: (0, None),
            slope_per_day: 1.0,
            last_value: 0.0,
            samples: 10.0,
            life_start_ms: 0,
        }
    }

    #[track_caller]
    fn check(remaining: i64, lead: f64, expected: Option<Priority>) {
        assert_eq!(
            preventive_due(&prediction(remaining), lead).map(|o| o.priority),
            expected
        );
    }

    #[test]
    fn opens_within_lead_time_with_urgency() {
        check(30, 14.0, None);
        check(15, 14.0, None);
        check(14, 14.0, Some(Priority::P3));
        check(7, 14.0, Some(Priority::P2));
        check(0, 14.0, Some(Priority::P1));
        check(0, 0.0, Some(Priority::P1));
    }
}
