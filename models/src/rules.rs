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

/// How far beyond the lead time a due part's remaining life must move before
/// it stops being due: [`preventive_due`] opens when the remaining life falls
/// within the lead time, and the part stays due until the prediction is
/// beyond `RELEASE_FACTOR` times it (or the part is replaced). A young trend
/// swings (1 day, then 15, then 10 left): without this band each swing
/// across the lead time would open another order once the first is closed.
pub const RELEASE_FACTOR: f64 = 1.5;

/// Whether a part that was due is due no longer: its predicted remaining
/// life is clearly beyond the lead time. No figure (NaN) keeps it due.
pub fn released(remaining_days: f64, lead_time_days: f64) -> bool {
    remaining_days > lead_time_days * RELEASE_FACTOR
}

/// One prediction's step of a consumable's due state: whether it is due
/// after it, and the order to open when it has just become due. `was_due` is
/// the state before (false for a new part); `remaining_days` is `None` when
/// there is no estimate, which changes nothing.
pub fn due_step(
    was_due: bool,
    remaining_days: Option<f64>,
    lead_time_days: f64,
) -> (bool, Option<PreventiveOrder>) {
    match remaining_days.and_then(|r| preventive_due(r, lead_time_days)) {
        Some(order) => (true, (!was_due).then_some(order)),
        None => {
            let released = remaining_days.is_some_and(|r| released(r, lead_time_days));
            (was_due && !released, None)
        }
    }
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

    #[test]
    fn a_due_part_is_released_only_clearly_beyond_its_lead_time() {
        // The swings of a young trend stay due...
        for remaining in [15.0, 20.9, 21.0, f64::NAN] {
            assert!(!released(remaining, 14.0), "{remaining}");
        }
        // ...a prediction well beyond the lead time does not.
        assert!(released(21.1, 14.0));
        assert!(released(0.5, 0.0));
    }

    /// The orders a run of predictions opens (`None`: no estimate).
    fn opened(predictions: &[Option<f64>], lead: f64) -> Vec<usize> {
        let mut due = false;
        let mut opened = Vec::new();
        for (i, remaining) in predictions.iter().enumerate() {
            let (now, open) = due_step(due, *remaining, lead);
            if open.is_some() {
                opened.push(i);
            }
            due = now;
        }
        opened
    }

    #[test]
    fn a_swinging_prediction_opens_one_order() {
        // A young trend's predictions as a hub saw them under load: one order.
        let seen = [365.0, 364.7, 1.03, 15.0, 10.3, 0.7].map(Some);
        assert_eq!(opened(&seen, 14.0), vec![2]);
        // A missing estimate changes nothing.
        assert_eq!(opened(&[Some(3.0), None, Some(2.0)], 14.0), vec![0]);
        assert_eq!(opened(&[None, None], 14.0), Vec::<usize>::new());
        // Clearly beyond the lead time (the usage slowed): due again later.
        assert_eq!(
            opened(&[Some(10.0), Some(40.0), Some(30.0), Some(12.0)], 14.0),
            vec![0, 3]
        );
        // Within the lead time, the order opens with the urgency of the moment.
        assert_eq!(
            due_step(false, Some(-1.0), 14.0).1.map(|o| o.priority),
            Some(Priority::P1)
        );
        assert_eq!(due_step(true, Some(-1.0), 14.0), (true, None));
    }
}
