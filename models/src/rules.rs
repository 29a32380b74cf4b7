//! Ticket rules: when a prediction becomes a preventive work order, and how
//! urgent it is.
//!
//! Pure: the caller passes the predicted remaining life and the consumable's lead time; the
//! store enforces that at most one order per device and cause is open.

// Negated comparisons (`!(x <= y)`) are deliberate: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

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

    pub fn parse(s: &str) -> Option<Priority> {
        [Priority::P1, Priority::P2, Priority::P3]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A preventive work order the prediction calls for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreventiveOrder {
    pub priority: Priority,
    /// Days of life left at the prediction's time (≤ 0 when already spent).
    pub remaining_days: f64,
}

/// Whether a preventive work order is due: the predicted end of life
/// (`remaining_days` from now) falls within the lead time. Priority: P1 when
/// already spent, P2 within half the lead time, P3 otherwise.
pub fn preventive_due(remaining_days: f64, lead_time_days: f64) -> Option<PreventiveOrder> {
    if !(remaining_days <= lead_time_days) {
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

    #[track_caller]
    fn check(remaining: i64, lead: f64, expected: Option<Priority>) {
        assert_eq!(
            preventive_due(remaining as f64, lead).map(|o| o.priority),
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
        assert_eq!(preventive_due(f64::NAN, 14.0), None, "no figure, no order");
    }
}
