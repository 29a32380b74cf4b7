//! The work-order lifecycle: statuses, the actions that move an order
//! between them, priorities from urgency and the device's criticality, and
//! service-level due times with their escalation. Pure: the hub's store
//! applies a transition atomically and records who made it.
//!
//! ```text
//!            assign            start             resolve            close
//!   open ───────────▶ assigned ──────▶ in_progress ──────▶ resolved ──────▶ closed
//!    ▲ │ ▲  decline    │  ▲ assign,      │                   │  reopen        │ reopen
//!    │ │ └─────────────┤  │ accept       │                   ▼                ▼
//!    │ └─ cancel ──┐   │  └─────┘        │               reopened ◀──────────┘
//!    │             ▼   ▼                 ▼                   │ assign
//!    │          cancelled ◀──────────────┘                   │
//!    └── (reopened behaves as open) ◀────────────────────────┘
//! ```
//!
//! `accept` keeps an assigned order assigned and records that the
//! technician took it on; `decline` gives it back (open again, and the
//! decliner is not chosen for it again by dispatch).

use crate::rules::Priority;
use std::fmt;

/// Where a work order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Open,
    Assigned,
    InProgress,
    Resolved,
    Closed,
    Cancelled,
    Reopened,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Open,
        Status::Assigned,
        Status::InProgress,
        Status::Resolved,
        Status::Closed,
        Status::Cancelled,
        Status::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Assigned => "assigned",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
            Status::Reopened => "reopened",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the order still needs work: at most one such order per
    /// device and cause (the store's `work_orders_one_open` index lists the
    /// same statuses).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Open | Status::Assigned | Status::InProgress | Status::Reopened
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What someone (or the hub) does to a work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Give it to a technician (again, to reassign).
    Assign,
    /// The technician takes the assignment on.
    Accept,
    /// The technician gives the assignment back.
    Decline,
    /// The technician starts the work (on site).
    Start,
    /// The technician is done.
    Resolve,
    /// Verified (by data, or by the customer's rating): finished.
    Close,
    /// A resolved or closed order whose fault persists.
    Reopen,
    /// Not needed any more.
    Cancel,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Assign,
        Action::Accept,
        Action::Decline,
        Action::Start,
        Action::Resolve,
        Action::Close,
        Action::Reopen,
        Action::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Assign => "assign",
            Action::Accept => "accept",
            Action::Decline => "decline",
            Action::Start => "start",
            Action::Resolve => "resolve",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a work order that is {from}: {hint}", action = .action.as_str())]
pub struct TransitionError {
    pub from: Status,
    pub action: Action,
    /// What is allowed from `from` instead.
    pub hint: String,
}

/// The status `action` leads to from `from`, or why it cannot be done.
pub fn transition(from: Status, action: Action) -> Result<Status, TransitionError> {
    next(from, action).ok_or_else(|| {
        let allowed: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| next(from, *a).is_some())
            .map(Action::as_str)
            .collect();
        TransitionError {
            from,
            action,
            hint: if allowed.is_empty() {
                format!("a {from} work order is final")
            } else {
                format!("allowed: {}", allowed.join(", "))
            },
        }
    })
}

/// The lifecycle's table.
fn next(from: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (from, action) {
        (S::Open | S::Reopened | S::Assigned, A::Assign) => Some(S::Assigned),
        (S::Assigned, A::Accept) => Some(S::Assigned),
        (S::Assigned, A::Decline) => Some(S::Open),
        (S::Assigned, A::Start) => Some(S::InProgress),
        (S::InProgress, A::Resolve) => Some(S::Resolved),
        (S::Resolved, A::Close) => Some(S::Closed),
        (S::Resolved | S::Closed, A::Reopen) => Some(S::Reopened),
        (S::Open | S::Assigned | S::InProgress | S::Reopened, A::Cancel) => Some(S::Cancelled),
        _ => None,
    }
}

/// How much a device's failure matters to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Criticality {
    Low,
    #[default]
    Normal,
    High,
}

impl Criticality {
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Normal => "normal",
            Criticality::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Criticality> {
        match s {
            "low" => Some(Criticality::Low),
            "normal" => Some(Criticality::Normal),
            "high" => Some(Criticality::High),
            _ => None,
        }
    }
}

/// A work order's priority: the cause's urgency, one step more urgent for
/// a high-criticality device, one step less for a low one.
pub fn priority(urgency: Priority, criticality: Criticality) -> Priority {
    match criticality {
        Criticality::Normal => urgency,
        Criticality::High => raise(urgency),
        Criticality::Low => match urgency {
            Priority::P1 => Priority::P2,
            Priority::P2 | Priority::P3 => Priority::P3,
        },
    }
}

/// One step more urgent (P1 stays P1).
pub fn raise(p: Priority) -> Priority {
    match p {
        Priority::P1 | Priority::P2 => Priority::P1,
        Priority::P3 => Priority::P2,
    }
}

/// Service-level targets of a priority: a technician has started within
/// `respond_ms` of opening, and resolved within `resolve_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    pub respond_ms: i64,
    pub resolve_ms: i64,
}

const HOUR_MS: i64 = 3_600_000;

/// The default targets: P1 4 h / 24 h, P2 24 h / 72 h, P3 72 h / 14 days.
pub fn sla(p: Priority) -> Sla {
    let (respond_h, resolve_h) = match p {
        Priority::P1 => (4, 24),
        Priority::P2 => (24, 72),
        Priority::P3 => (72, 14 * 24),
    };
    Sla {
        respond_ms: respond_h * HOUR_MS,
        resolve_ms: resolve_h * HOUR_MS,
    }
}

/// A target an active order has missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Not started by `respond_by`.
    Response,
    /// Not resolved by `resolve_by`.
    Resolution,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::Response => "response",
            Breach::Resolution => "resolution",
        }
    }
}

/// The target an order has newly missed at `now_ms`, if any: each target
/// escalates once (`escalated` lists those already escalated). Only orders
/// still needing work escalate.
pub fn overdue(
    status: Status,
    now_ms: i64,
    respond_by_ms: i64,
    resolve_by_ms: i64,
    escalated: &[Breach],
) -> Option<Breach> {
    if !status.is_active() {
        return None;
    }
    let started = status == Status::InProgress;
    if !started && now_ms > respond_by_ms && !escalated.contains(&Breach::Response) {
        return Some(Breach::Response);
    }
    if now_ms > resolve_by_ms && !escalated.contains(&Breach::Resolution) {
        return Some(Breach::Resolution);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (status, action) pair: allowed ones go where the lifecycle says,
    /// the others are refused with what is allowed instead.
    #[test]
    fn the_transition_table() {
        use Action as A;
        use Status as S;
        let allowed = [
            (S::Open, A::Assign, S::Assigned),
            (S::Open, A::Cancel, S::Cancelled),
            (S::Assigned, A::Assign, S::Assigned),
            (S::Assigned, A::Accept, S::Assigned),
            (S::Assigned, A::Decline, S::Open),
            (S::Assigned, A::Start, S::InProgress),
            (S::Assigned, A::Cancel, S::Cancelled),
            (S::InProgress, A::Resolve, S::Resolved),
            (S::InProgress, A::Cancel, S::Cancelled),
            (S::Resolved, A::Close, S::Closed),
            (S::Resolved, A::Reopen, S::Reopened),
            (S::Closed, A::Reopen, S::Reopened),
            (S::Reopened, A::Assign, S::Assigned),
            (S::Reopened, A::Cancel, S::Cancelled),
        ];
        for from in Status::ALL {
            for action in Action::ALL {
                let expected = allowed
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (transition(from, action), expected) {
                    (Ok(to), Some(e)) => assert_eq!(to, e, "{from} + {action:?}"),
                    (Err(err), None) => {
                        assert_eq!((err.from, err.action), (from, action));
                        assert!(
                            err.to_string().starts_with(&format!(
                                "cannot {} a work order that is {from}",
                                action.as_str()
                            ))
                        );
                    }
                    (got, e) => panic!("{from} + {action:?}: got {got:?}, expected {e:?}"),
                }
            }
        }
        let e = transition(S::Cancelled, A::Start).expect_err("final");
        assert_eq!(
            e.to_string(),
            "cannot start a work order that is cancelled: a cancelled work order is final"
        );
        let e = transition(S::Open, A::Resolve).expect_err("not started");
        assert_eq!(
            e.to_string(),
            "cannot resolve a work order that is open: allowed: assign, cancel"
        );
    }

    #[test]
    fn names_round_trip_and_active_matches_the_store_index() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Status::parse("done"), None);
        let active: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .map(Status::as_str)
            .collect();
        assert_eq!(active, ["open", "assigned", "in_progress", "reopened"]);
    }

    #[test]
    fn criticality_moves_priority_one_step() {
        use Priority::*;
        let cases = [
            (P1, Criticality::High, P1),
            (P2, Criticality::High, P1),
            (P3, Criticality::High, P2),
            (P2, Criticality::Normal, P2),
            (P1, Criticality::Low, P2),
            (P3, Criticality::Low, P3),
        ];
        for (urgency, c, expected) in cases {
            assert_eq!(priority(urgency, c), expected, "{urgency:?} {c:?}");
        }
        assert!(sla(P1).respond_ms < sla(P2).respond_ms && sla(P2).resolve_ms < sla(P3).resolve_ms);
    }

    #[test]
    fn each_target_escalates_once_while_work_is_needed() {
        let (respond_by, resolve_by) = (100, 1000);
        assert_eq!(
            overdue(Status::Open, 100, respond_by, resolve_by, &[]),
            None,
            "on time"
        );
        assert_eq!(
            overdue(Status::Open, 101, respond_by, resolve_by, &[]),
            Some(Breach::Response)
        );
        assert_eq!(
            overdue(Status::Assigned, 500, respond_by, resolve_by, &[Breach::Response]),
            None
        );
        assert_eq!(
            overdue(Status::InProgress, 500, respond_by, resolve_by, &[]),
            None,
            "started: responded"
        );
        assert_eq!(
            overdue(Status::InProgress, 1001, respond_by, resolve_by, &[]),
            Some(Breach::Resolution)
        );
        assert_eq!(
            overdue(Status::Open, 1001, respond_by, resolve_by, &[Breach::Response]),
            Some(Breach::Resolution)
        );
        assert_eq!(
            overdue(
                Status::Assigned,
                2000,
                respond_by,
                resolve_by,
                &[Breach::Response, Breach::Resolution]
            ),
            None
        );
        assert_eq!(
            overdue(Status::Resolved, 5000, respond_by, resolve_by, &[]),
            None,
            "done"
        );
    }
}
