//! Who may see and do what through the API: pure decisions on an
//! authenticated [`Caller`] and the facts of one device or work order.
//!
//! No IO and no HTTP here: `api/` fetches the facts and turns a
//! [`Decision`] into a status code; the store turns a [`Scope`] into SQL for
//! lists. The rules:
//! - `admin` and `manager` see and do everything (admin is kept apart for
//!   administration endpoints to come; today they are alike);
//! - a `customer` sees their own devices (and their consumables and alerts)
//!   and the work orders of those devices; anything else does not exist for
//!   them (404, not 403, so ids of other customers leak nothing). They may
//!   not change work orders (403 on their own, 404 on others');
//! - a `technician` sees the work orders assigned to them (`assignee` = their
//!   technician name) and the devices of those orders, and may `start` and
//!   `resolve` those orders (403 for other actions on them, 404 elsewhere).

use wearline_models::workorder::Action;

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Manager,
    Technician,
    Customer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Technician, Role::Customer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Technician => "technician",
            Role::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a caller's token gives access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Admin,
    Manager,
    /// The technician's name, as orders are assigned to it.
    Technician(String),
    /// The customer's id.
    Customer(i64),
}

/// An authenticated API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (who holds it).
    pub name: String,
    pub access: Access,
}

impl Caller {
    pub fn role(&self) -> Role {
        match self.access {
            Access::Admin => Role::Admin,
            Access::Manager => Role::Manager,
            Access::Technician(_) => Role::Technician,
            Access::Customer(_) => Role::Customer,
        }
    }

    /// Who the caller is in a work order's audit trail: a technician's name
    /// (as orders are assigned to it), else the token's name.
    pub fn actor(&self) -> &str {
        match &self.access {
            Access::Technician(t) => t,
            _ => &self.name,
        }
    }

    /// The part of the fleet the caller's lists cover.
    pub fn scope(&self) -> Scope {
        match &self.access {
            Access::Admin | Access::Manager => Scope::All,
            Access::Technician(t) => Scope::Assignee(t.clone()),
            Access::Customer(c) => Scope::Customer(*c),
        }
    }
}

/// Whether the caller runs the service: technicians, device locations and
/// reports are managers' and admins' (others get 403).
pub fn may_manage(caller: &Caller) -> bool {
    matches!(caller.access, Access::Admin | Access::Manager)
}

/// Whether the caller may rate a visit on an order they see: its customer,
/// or a manager recording the customer's answer; not a technician.
pub fn may_rate(caller: &Caller) -> bool {
    !matches!(caller.access, Access::Technician(_))
}

/// Which devices, alerts and work orders a list covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    /// Devices of this customer, and their alerts and orders.
    Customer(i64),
    /// Orders assigned to this technician, and their devices and the
    /// devices' alerts.
    Assignee(String),
}

/// What the API needs to know of a device to decide.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    /// The customer owning it.
    pub owner: Option<i64>,
    /// The assignees of its work orders.
    pub assignees: &'a [String],
}

/// What the API needs to know of a work order to decide.
#[derive(Debug, Clone, Copy)]
pub struct OrderFacts<'a> {
    /// The customer owning the order's device.
    pub device_owner: Option<i64>,
    pub assignee: Option<&'a str>,
}

/// The answer to "may this caller do that".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not for this caller to know about: answered as not found (404).
    Hidden,
    /// Seen but not allowed (403), with the reason.
    Forbidden(&'static str),
}

/// Whether `caller` may see a device, its consumables and its alerts.
pub fn may_see_device(caller: &Caller, device: DeviceFacts<'_>) -> bool {
    match &caller.access {
        Access::Admin | Access::Manager => true,
        Access::Customer(c) => device.owner == Some(*c),
        Access::Technician(t) => device.assignees.iter().any(|a| a == t),
    }
}

/// Whether `caller` may see a work order and its trail.
pub fn may_see_order(caller: &Caller, order: OrderFacts<'_>) -> bool {
    match &caller.access {
        Access::Admin | Access::Manager => true,
        Access::Customer(c) => order.device_owner == Some(*c),
        Access::Technician(t) => order.assignee == Some(t.as_str()),
    }
}

/// Whether `caller` may apply `action` to a work order.
pub fn may_change_order(caller: &Caller, order: OrderFacts<'_>, action: Action) -> Decision {
    if !may_see_order(caller, order) {
        return Decision::Hidden;
    }
    match &caller.access {
        Access::Admin | Access::Manager => Decision::Allow,
        Access::Customer(_) => Decision::Forbidden("customers cannot change work orders"),
        Access::Technician(_) => match action {
            Action::Accept | Action::Decline | Action::Start | Action::Resolve => Decision::Allow,
            _ => Decision::Forbidden(
                "a technician may only `accept`, `decline`, `start` and `resolve` their own assignments",
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(access: Access) -> Caller {
        Caller {
            name: "token".into(),
            access,
        }
    }

    fn everyone() -> [Caller; 6] {
        [
            caller(Access::Admin),
            caller(Access::Manager),
            caller(Access::Technician("tom".into())),
            caller(Access::Technician("tina".into())),
            caller(Access::Customer(1)),
            caller(Access::Customer(2)),
        ]
    }

    #[track_caller]
    fn check_devices(owner: Option<i64>, assignees: &[&str], expected: [bool; 6]) {
        let assignees: Vec<String> = assignees.iter().map(|a| a.to_string()).collect();
        let facts = DeviceFacts {
            owner,
            assignees: &assignees,
        };
        let got = everyone().map(|c| may_see_device(&c, facts));
        assert_eq!(got, expected, "owner {owner:?}, assignees {assignees:?}");
    }

    #[test]
    fn who_sees_a_device() {
        // admin, manager, tom, tina, customer 1, customer 2
        check_devices(None, &[], [true, true, false, false, false, false]);
        check_devices(Some(1), &[], [true, true, false, false, true, false]);
        check_devices(Some(2), &["tom"], [true, true, true, false, false, true]);
        check_devices(None, &["tina", "tom"], [true, true, true, true, false, false]);
    }

    #[track_caller]
    fn check_change(order: OrderFacts<'_>, action: Action, expected: [Decision; 6]) {
        let got = everyone().map(|c| may_change_order(&c, order, action));
        assert_eq!(got, expected, "{order:?} {action:?}");
    }

    #[test]
    fn who_changes_a_work_order() {
        use Decision::{Allow, Forbidden, Hidden};
        let tech_only =
            "a technician may only `accept`, `decline`, `start` and `resolve` their own assignments";
        let customers = "customers cannot change work orders";
        let toms = OrderFacts {
            device_owner: Some(1),
            assignee: Some("tom"),
        };
        for action in [Action::Accept, Action::Decline, Action::Start, Action::Resolve] {
            check_change(
                toms,
                action,
                [Allow, Allow, Allow, Hidden, Forbidden(customers), Hidden],
            );
        }
        for action in [Action::Assign, Action::Close, Action::Cancel, Action::Reopen] {
            check_change(
                toms,
                action,
                [
                    Allow,
                    Allow,
                    Forbidden(tech_only),
                    Hidden,
                    Forbidden(customers),
                    Hidden,
                ],
            );
        }
        let unassigned = OrderFacts {
            device_owner: None,
            assignee: None,
        };
        check_change(
            unassigned,
            Action::Assign,
            [Allow, Allow, Hidden, Hidden, Hidden, Hidden],
        );
    }

    #[test]
    fn who_sees_a_work_order() {
        let order = OrderFacts {
            device_owner: Some(2),
            assignee: Some("tina"),
        };
        let got = everyone().map(|c| may_see_order(&c, order));
        assert_eq!(got, [true, true, false, true, false, true]);
    }

    #[test]
    fn scopes_and_actors() {
        let tom = Caller {
            name: "tom-phone".into(),
            access: Access::Technician("tom".into()),
        };
        assert_eq!(tom.scope(), Scope::Assignee("tom".into()));
        assert_eq!(tom.actor(), "tom");
        assert_eq!(tom.role(), Role::Technician);
        let maria = Caller {
            name: "maria".into(),
            access: Access::Manager,
        };
        assert_eq!((maria.scope(), maria.actor()), (Scope::All, "maria"));
        assert_eq!(caller(Access::Customer(7)).scope(), Scope::Customer(7));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn managing_and_rating() {
        let who = |access: Access| Caller {
            name: "x".into(),
            access,
        };
        assert!(may_manage(&who(Access::Admin)) && may_manage(&who(Access::Manager)));
        assert!(!may_manage(&who(Access::Technician("t".into()))) && !may_manage(&who(Access::Customer(1))));
        assert!(may_rate(&who(Access::Customer(1))) && may_rate(&who(Access::Manager)));
        assert!(!may_rate(&who(Access::Technician("t".into()))));
    }
}
