//! Dispatch: gives a work order to a technician (`models::dispatch::choose`:
//! skill, working hours, distance from home base, current load), as the
//! hub (actor `hub`) with the reason in the trail. New orders are
//! dispatched when they open; those no one could take are tried again
//! every minute (with the escalation check), so an order waits for a
//! technician to come on shift or free up, not for a manager. The order's
//! visit is booked at the technician's next shift start that leaves time to
//! travel (`Technician::next_visit_ms`).

use crate::store::{Change, ChangeError, Store, StoreError, TechnicianRow, WorkOrderFilter, WorkOrderRow};
use wearline_models::dispatch::{Assignment, NoOne, Technician, choose};
use wearline_models::workorder::{Action, Status};

/// What dispatch did with an order.
#[derive(Debug)]
pub enum Dispatched {
    Assigned(Assignment),
    /// No one can take it now (the reason).
    Waiting(NoOne),
    /// It was changed meanwhile (assigned by a manager, cancelled).
    Skipped,
}

fn technician(t: &TechnicianRow) -> Technician {
    let hour = |h: i64| u8::try_from(h.clamp(0, 23)).unwrap_or(0);
    Technician {
        name: t.name.clone(),
        skills: serde_json::from_str(&t.skills).unwrap_or_default(),
        latitude: t.latitude,
        longitude: t.longitude,
        capacity: u32::try_from(t.capacity.max(0)).unwrap_or(u32::MAX),
        shift: (hour(t.shift_start), hour(t.shift_end)),
        utc_offset_minutes: i32::try_from(t.utc_offset_minutes).unwrap_or(0),
        load: u32::try_from(t.load.max(0)).unwrap_or(u32::MAX),
    }
}

/// The technicians taking assignments, with their current loads.
pub async fn team(store: &Store) -> Result<Vec<Technician>, StoreError> {
    Ok(store
        .technicians()
        .await?
        .iter()
        .filter(|t| t.active != 0)
        .map(technician)
        .collect())
}

/// Assigns `order` to the best technician of `team` now, if anyone can
/// take it, leaving out those who declined it; the chosen one's load in
/// `team` goes up by one.
pub async fn dispatch(
    store: &Store,
    team: &mut [Technician],
    order: &WorkOrderRow,
    now_ms: i64,
) -> Result<Dispatched, StoreError> {
    if team.is_empty() {
        return Ok(Dispatched::Waiting(NoOne::NoSkill(order.cause.clone())));
    }
    let place = store.device_location(&order.device_id).await?;
    // Those who gave this order back are not asked again.
    let declined: Vec<String> = serde_json::from_str(&order.declined_by).unwrap_or_default();
    let willing: Vec<Technician> = team
        .iter()
        .filter(|t| !declined.contains(&t.name))
        .cloned()
        .collect();
    let a = match choose(&willing, &order.cause, place, now_ms) {
        Ok(a) => a,
        Err(no_one) => return Ok(Dispatched::Waiting(no_one)),
    };
    let note = format!("dispatch: {}", a.reason);
    let change = Change {
        action: Action::Assign,
        actor: "hub",
        assignee: Some(&a.technician),
        note: Some(&note),
        parts: &[],
        at_ms: now_ms,
        visit_ms: Some(a.visit_ms),
    };
    match store.change_work_order(order.id, &change).await {
        Ok(_) => {
            tracing::info!(work_order = order.id, technician = %a.technician, reason = %a.reason, "work order dispatched");
            if let Some(t) = team.iter_mut().find(|t| t.name == a.technician) {
                t.load += 1;
            }
            Ok(Dispatched::Assigned(a))
        }
        Err(ChangeError::Store(e)) => Err(e),
        Err(_) => Ok(Dispatched::Skipped),
    }
}

/// Tries every open or reopened order not yet assigned; how many were.
pub async fn dispatch_waiting(store: &Store, now_ms: i64) -> Result<usize, StoreError> {
    let mut team = team(store).await?;
    if team.is_empty() {
        return Ok(0);
    }
    let mut assigned = 0;
    for status in [Status::Open, Status::Reopened] {
        let filter = WorkOrderFilter {
            status: Some(status),
            limit: 1000,
            ..WorkOrderFilter::default()
        };
        for order in store.list_work_orders(&filter).await? {
            if let Dispatched::Assigned(_) = dispatch(store, &mut team, &order, now_ms).await? {
                assigned += 1;
            }
        }
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewWorkOrder;
    use crate::testing::TestDb;
    use wearline_models::wire::{Sample, Telemetry};

    crate::on_each_backend!(orders_go_to_the_nearest_free_skilled_technician);
    crate::on_each_backend!(a_declined_order_goes_to_someone_else);

    fn tech(name: &str, skills: &[&str], at: (f64, f64), capacity: i64) -> TechnicianRow {
        TechnicianRow {
            name: name.into(),
            skills: serde_json::to_string(skills).expect("json"),
            latitude: at.0,
            longitude: at.1,
            capacity,
            shift_start: 0,
            shift_end: 0,
            utc_offset_minutes: 0,
            active: 1,
            load: 0,
        }
    }

    /// A store that knows device `d1` (from one sample).
    async fn store_with_d1(db: &TestDb) -> Store {
        let store = Store::open(&db.location).await.expect("open");
        let t = Telemetry {
            v: wearline_models::wire::VERSION,
            gateway: "gw".into(),
            device: "d1".into(),
            profile: "p".into(),
            samples: vec![Sample {
                seq: 1,
                ts_ms: 1,
                values: Default::default(),
                text: Default::default(),
                restart: false,
            }],
        };
        store.insert_batch(&[t]).await.expect("device");
        store
    }

    /// A P2 preventive order on `d1` for `cause`.
    fn open(cause: &str) -> NewWorkOrder {
        NewWorkOrder {
            device_id: "d1".into(),
            kind: "preventive",
            cause: cause.into(),
            priority: "P2",
            title: "t".into(),
            opened_at_ms: 1,
            predicted_eol_ms: None,
            lead_time_days: None,
            explanation: serde_json::json!({}).to_string(),
        }
    }

    async fn orders_go_to_the_nearest_free_skilled_technician(db: TestDb) {
        let store = store_with_d1(&db).await;
        assert!(
            store
                .set_device_location("d1", 48.36, 10.90)
                .await
                .expect("located")
        );
        assert!(
            !store
                .set_device_location("nope", 0.0, 0.0)
                .await
                .expect("unknown")
        );
        let first = store
            .open_work_order(&open("consumable:filter"))
            .await
            .expect("open")
            .expect("new");
        match dispatch(&store, &mut team(&store).await.expect("team"), &first, 10)
            .await
            .expect("dispatch")
        {
            Dispatched::Waiting(NoOne::NoSkill(cause)) => assert_eq!(cause, "consumable:filter"),
            other => panic!("{other:?}"),
        }
        store
            .upsert_technician(&tech("ana", &["consumable:*"], (48.137, 11.575), 2))
            .await
            .expect("ana");
        store
            .upsert_technician(&tech("ben", &["consumable:filter"], (48.371, 10.898), 1))
            .await
            .expect("ben");
        assert_eq!(dispatch_waiting(&store, 10).await.expect("retry"), 1);
        let row = store.work_order(first.id).await.expect("get").expect("row");
        assert_eq!(
            (row.status.as_str(), row.assignee.as_deref()),
            ("assigned", Some("ben"))
        );
        assert_eq!(
            row.visit_ms,
            Some(10 + wearline_models::dispatch::TRAVEL_MS),
            "around the clock: in an hour"
        );
        let trail = store.work_order_events(first.id).await.expect("trail");
        let last = trail.last().expect("assign");
        assert_eq!((last.actor.as_str(), last.action.as_str()), ("hub", "assign"));
        assert!(
            last.detail
                .contains("dispatch: skill `consumable:filter`; 1.2 km from base; 0 of 1 orders"),
            "{}",
            last.detail
        );
        // Ben is at capacity: the next filter order goes to Ana.
        let second = store
            .open_work_order(&open("consumable:belt"))
            .await
            .expect("open")
            .expect("new");
        match dispatch(&store, &mut team(&store).await.expect("team"), &second, 10)
            .await
            .expect("dispatch")
        {
            Dispatched::Assigned(a) => assert_eq!(a.technician, "ana"),
            other => panic!("{other:?}"),
        }
        let loads: Vec<(String, i64)> = store
            .technicians()
            .await
            .expect("team")
            .into_iter()
            .map(|t| (t.name, t.load))
            .collect();
        assert_eq!(loads, [("ana".to_string(), 1), ("ben".to_string(), 1)]);
    }

    /// A technician accepts one assignment and declines another: the
    /// declined order is open again, without an assignee, names the
    /// decliner, and dispatch gives it to someone else, or leaves it waiting
    /// when no one else can take it; a reassignment needs a new acceptance.
    async fn a_declined_order_goes_to_someone_else(db: TestDb) {
        let store = store_with_d1(&db).await;
        store
            .upsert_technician(&tech("ana", &["*"], (48.137, 11.575), 5))
            .await
            .expect("ana");
        let change = |action, at_ms| Change {
            action,
            actor: "ana",
            assignee: None,
            note: Some("busy that week"),
            parts: &[],
            at_ms,
            visit_ms: None,
        };
        let first = store
            .open_work_order(&open("consumable:filter"))
            .await
            .expect("open")
            .expect("new");
        let second = store
            .open_work_order(&open("consumable:belt"))
            .await
            .expect("open")
            .expect("new");
        assert_eq!(dispatch_waiting(&store, 10).await.expect("dispatch"), 2);
        let accepted = store
            .change_work_order(first.id, &change(Action::Accept, 20))
            .await
            .expect("accept");
        assert_eq!(
            (accepted.status.as_str(), accepted.accepted_ms),
            ("assigned", Some(20))
        );
        let declined = store
            .change_work_order(second.id, &change(Action::Decline, 21))
            .await
            .expect("decline");
        assert_eq!(
            (
                declined.status.as_str(),
                declined.assignee.as_deref(),
                declined.accepted_ms,
                declined.declined_by.as_str()
            ),
            ("open", None, None, r#"["ana"]"#)
        );
        let trail = store.work_order_events(second.id).await.expect("trail");
        let last = trail.last().expect("decline");
        assert_eq!(
            (last.actor.as_str(), last.action.as_str(), last.to_status.as_str()),
            ("ana", "decline", "open")
        );
        // Ana alone: the declined order waits rather than going back to her.
        assert_eq!(dispatch_waiting(&store, 30).await.expect("dispatch"), 0);
        let waiting = store.work_order(second.id).await.expect("get").expect("row");
        match dispatch(&store, &mut team(&store).await.expect("team"), &waiting, 30)
            .await
            .expect("dispatch")
        {
            Dispatched::Waiting(NoOne::NoSkill(cause)) => assert_eq!(cause, "consumable:belt"),
            other => panic!("{other:?}"),
        }
        store
            .upsert_technician(&tech("ben", &["consumable:*"], (52.52, 13.40), 5))
            .await
            .expect("ben");
        assert_eq!(dispatch_waiting(&store, 40).await.expect("dispatch"), 1);
        let row = store.work_order(second.id).await.expect("get").expect("row");
        assert_eq!(
            (row.status.as_str(), row.assignee.as_deref()),
            ("assigned", Some("ben"))
        );
        // Reassigning the accepted order to Ben needs his acceptance anew.
        let mut reassign = change(Action::Assign, 50);
        reassign.assignee = Some("ben");
        let moved = store
            .change_work_order(first.id, &reassign)
            .await
            .expect("reassign");
        assert_eq!(
            (moved.assignee.as_deref(), moved.accepted_ms),
            (Some("ben"), None)
        );
        // Starting accepts implicitly.
        let started = store
            .change_work_order(first.id, &change(Action::Start, 60))
            .await
            .expect("start");
        assert_eq!(
            (started.status.as_str(), started.accepted_ms),
            ("in_progress", Some(60))
        );
    }
}
