//! Dispatch: which technician a work order goes to, and why. Pure.
//!
//! A technician can take an order when they have its skill, are under their
//! capacity of active orders, and the order's device has a known place or
//! not. Among those, on-shift technicians come first; then the lowest cost:
//! the distance from their home base to the device plus
//! [`KM_PER_ACTIVE_ORDER`] for each order they already hold, so a nearby
//! but busy technician yields to one a little further who is free.
//!
//! The visit is booked at the start of the chosen technician's next
//! working hours that leaves [`TRAVEL_MS`] to get there ([`next_visit_ms`]).

use std::fmt::Write as _;

/// Each active order counts as this many kilometres of detour.
pub const KM_PER_ACTIVE_ORDER: f64 = 25.0;

/// Time left before a visit to get there: the visit is the first shift
/// start at least this long after the assignment.
pub const TRAVEL_MS: i64 = 3_600_000;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A technician as dispatch sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Technician {
    pub name: String,
    /// Causes they can work on: exact (`consumable:filter`), a family
    /// (`consumable:*`, `alert:*`) or anything (`*`).
    pub skills: Vec<String>,
    /// Home base, degrees.
    pub latitude: f64,
    pub longitude: f64,
    /// Most active orders at once.
    pub capacity: u32,
    /// Working hours, local hour of day, `start..end` (e.g. 8..17); equal
    /// bounds mean around the clock.
    pub shift: (u8, u8),
    /// Their local time's offset from UTC, minutes (daylight saving is the
    /// manager's to update).
    pub utc_offset_minutes: i32,
    /// Active orders they hold now.
    pub load: u32,
}

impl Technician {
    pub fn has_skill(&self, cause: &str) -> bool {
        self.skills.iter().any(|s| skill_matches(s, cause))
    }

    /// Whether they are at work at `now_ms` (UTC).
    pub fn on_shift_at(&self, now_ms: i64) -> bool {
        let local_min = now_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        let hour = local_min.rem_euclid(24 * 60) / 60;
        self.on_shift(u8::try_from(hour).unwrap_or(0))
    }

    /// When a visit assigned at `now_ms` (UTC) is booked: the first start
    /// of their working hours (their local time) at or after `now_ms` +
    /// [`TRAVEL_MS`]; around the clock, `now_ms` + [`TRAVEL_MS`].
    pub fn next_visit_ms(&self, now_ms: i64) -> i64 {
        let earliest = now_ms.saturating_add(TRAVEL_MS);
        let (start, end) = self.shift;
        if start == end {
            return earliest;
        }
        let offset_ms = i64::from(self.utc_offset_minutes) * 60_000;
        let local_day = (earliest + offset_ms).div_euclid(DAY_MS);
        let today = local_day * DAY_MS + i64::from(start % 24) * HOUR_MS - offset_ms;
        if today >= earliest { today } else { today + DAY_MS }
    }

    /// Whether `hour` (0–23, local) is in their working hours.
    pub fn on_shift(&self, hour: u8) -> bool {
        let (start, end) = self.shift;
        match start.cmp(&end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (start..end).contains(&hour),
            // A night shift, e.g. 22..6.
            std::cmp::Ordering::Greater => hour >= start || hour < end,
        }
    }
}

/// Whether a skill covers a cause.
pub fn skill_matches(skill: &str, cause: &str) -> bool {
    match skill.strip_suffix('*') {
        Some(prefix) => cause.starts_with(prefix),
        None => skill == cause,
    }
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6371.0;
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

/// The technician chosen and the reason, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub technician: String,
    pub reason: String,
    /// The visit booked ([`Technician::next_visit_ms`]), UTC.
    pub visit_ms: i64,
}

/// Why no one could take the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoOne {
    #[error("no technician has the skill `{0}`")]
    NoSkill(String),
    #[error("every technician with the skill `{0}` is at capacity")]
    AllBusy(String),
}

/// Chooses the technician for an order with `cause` on a device at `place`
/// (unknown: distance does not count), at `now_ms` (UTC).
pub fn choose(
    technicians: &[Technician],
    cause: &str,
    place: Option<(f64, f64)>,
    now_ms: i64,
) -> Result<Assignment, NoOne> {
    let skilled: Vec<&Technician> = technicians.iter().filter(|t| t.has_skill(cause)).collect();
    if skilled.is_empty() {
        return Err(NoOne::NoSkill(cause.to_string()));
    }
    let cost = |t: &Technician| {
        let km = place.map_or(0.0, |p| distance_km((t.latitude, t.longitude), p));
        (km, km + KM_PER_ACTIVE_ORDER * f64::from(t.load))
    };
    let best = skilled
        .into_iter()
        .filter(|t| t.load < t.capacity)
        .map(|t| (t, t.on_shift_at(now_ms), cost(t)))
        // On shift first, then the lowest cost, then the name (stable).
        .min_by(|a, b| {
            b.1.cmp(&a.1)
                .then(a.2.1.total_cmp(&b.2.1))
                .then_with(|| a.0.name.cmp(&b.0.name))
        });
    let Some((t, on_shift, (km, _))) = best else {
        return Err(NoOne::AllBusy(cause.to_string()));
    };
    let mut reason = format!("skill `{cause}`");
    if place.is_some() {
        let _ = write!(reason, "; {km:.1} km from base");
    } else {
        reason.push_str("; device location unknown");
    }
    let _ = write!(reason, "; {} of {} orders", t.load, t.capacity);
    reason.push_str(if on_shift {
        "; on shift"
    } else {
        "; off shift (no one skilled is on shift)"
    });
    Ok(Assignment {
        technician: t.name.clone(),
        reason,
        visit_ms: t.next_visit_ms(now_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tech(name: &str, skills: &[&str], at: (f64, f64), load: u32) -> Technician {
        Technician {
            name: name.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            latitude: at.0,
            longitude: at.1,
            capacity: 3,
            shift: (8, 17),
            utc_offset_minutes: 0,
            load,
        }
    }

    /// `hour` o'clock UTC on some day.
    fn at(hour: i64) -> i64 {
        1_750_000_000_000 / 86_400_000 * 86_400_000 + hour * 3_600_000
    }

    const MUNICH: (f64, f64) = (48.137, 11.575);
    const AUGSBURG: (f64, f64) = (48.371, 10.898);
    const BERLIN: (f64, f64) = (52.520, 13.405);

    #[test]
    fn distances_are_great_circle_km() {
        assert!(
            (distance_km(MUNICH, BERLIN) - 504.0).abs() < 5.0,
            "{}",
            distance_km(MUNICH, BERLIN)
        );
        assert!((distance_km(MUNICH, AUGSBURG) - 56.0).abs() < 3.0);
        assert_eq!(distance_km(MUNICH, MUNICH), 0.0);
    }

    #[test]
    fn skills_match_exactly_by_family_or_all() {
        assert!(skill_matches("consumable:filter", "consumable:filter"));
        assert!(!skill_matches("consumable:filter", "consumable:belt"));
        assert!(skill_matches("consumable:*", "consumable:belt"));
        assert!(!skill_matches("alert:*", "consumable:belt"));
        assert!(skill_matches("*", "offline"));
    }

    #[test]
    fn the_nearest_free_skilled_technician_on_shift_is_chosen() {
        let team = [
            tech("ana", &["consumable:*"], MUNICH, 0),
            tech("ben", &["consumable:filter"], AUGSBURG, 0),
            tech("cem", &["alert:*"], MUNICH, 0),
        ];
        let near_augsburg = (48.36, 10.90);
        let a = choose(&team, "consumable:filter", Some(near_augsburg), at(10)).expect("someone");
        assert_eq!(a.technician, "ben");
        assert!(
            a.reason
                .starts_with("skill `consumable:filter`; 1.2 km from base; 0 of 3 orders; on shift"),
            "{}",
            a.reason
        );
        // Ben with two orders costs 1.2 + 50 km, still under Ana's 55 km.
        let mut busy = team.clone();
        busy[1].load = 2;
        assert_eq!(
            choose(&busy, "consumable:filter", Some(near_augsburg), at(10))
                .expect("x")
                .technician,
            "ben"
        );
        busy[1].load = 3;
        assert_eq!(
            choose(&busy, "consumable:filter", Some(near_augsburg), at(10))
                .expect("x")
                .technician,
            "ana",
            "ben is full"
        );
        assert_eq!(
            choose(&team, "alert:vibration_anomaly", None, at(10))
                .expect("x")
                .technician,
            "cem"
        );
        assert_eq!(
            choose(&team, "offline", Some(MUNICH), at(10)),
            Err(NoOne::NoSkill("offline".into()))
        );
        let full: Vec<Technician> = team.iter().map(|t| Technician { load: 3, ..t.clone() }).collect();
        assert_eq!(
            choose(&full, "consumable:filter", Some(MUNICH), at(10)),
            Err(NoOne::AllBusy("consumable:filter".into()))
        );
    }

    #[test]
    fn someone_on_shift_beats_someone_nearer_off_shift() {
        let mut night = tech("nia", &["*"], AUGSBURG, 0);
        night.shift = (22, 6);
        let day = tech("dan", &["*"], MUNICH, 0);
        let at_augsburg = Some(AUGSBURG);
        assert_eq!(
            choose(&[night.clone(), day.clone()], "offline", at_augsburg, at(12))
                .expect("x")
                .technician,
            "dan"
        );
        let a = choose(&[night.clone(), day.clone()], "offline", at_augsburg, at(23)).expect("x");
        assert_eq!(a.technician, "nia");
        let a = choose(&[night, day], "offline", at_augsburg, at(20)).expect("no one on shift");
        assert_eq!(a.technician, "nia");
        assert!(
            a.reason.ends_with("off shift (no one skilled is on shift)"),
            "{}",
            a.reason
        );
        let all_day = Technician {
            shift: (0, 0),
            ..tech("al", &["*"], MUNICH, 0)
        };
        assert!((0..24).all(|h| all_day.on_shift(h)));
    }

    #[test]
    fn visits_are_booked_at_the_next_shift_start_that_leaves_travel_time() {
        const H: i64 = HOUR_MS;
        let day = at(0);
        let ana = tech("ana", &["*"], MUNICH, 0); // 8..17 UTC
        // Before the shift, with time to travel: today's start.
        assert_eq!(ana.next_visit_ms(day + 5 * H), day + 8 * H);
        assert_eq!(
            ana.next_visit_ms(day + 7 * H),
            day + 8 * H,
            "exactly an hour ahead"
        );
        // Less than an hour before, during or after it: tomorrow's start.
        assert_eq!(ana.next_visit_ms(day + 7 * H + 1), day + 32 * H);
        assert_eq!(ana.next_visit_ms(day + 10 * H), day + 32 * H);
        assert_eq!(ana.next_visit_ms(day + 23 * H), day + 32 * H);
        // Her 08:00 at UTC+2 is 06:00 UTC; at UTC-5, 13:00 UTC.
        let berlin = Technician {
            utc_offset_minutes: 120,
            ..ana.clone()
        };
        assert_eq!(berlin.next_visit_ms(day + 3 * H), day + 6 * H);
        assert_eq!(berlin.next_visit_ms(day + 6 * H), day + 30 * H);
        // 23:30 UTC is already 01:30 tomorrow in Berlin: that day's 08:00.
        assert_eq!(berlin.next_visit_ms(day + 23 * H + 30 * 60_000), day + 30 * H);
        let new_york = Technician {
            utc_offset_minutes: -300,
            ..ana.clone()
        };
        // 02:00 UTC is 21:00 yesterday in New York: today's (local) 08:00.
        assert_eq!(new_york.next_visit_ms(day + 2 * H), day + 13 * H);
        assert_eq!(new_york.next_visit_ms(day + 12 * H + 1), day + 37 * H);
        // A night shift starts at 22:00.
        let nia = Technician {
            shift: (22, 6),
            ..ana.clone()
        };
        assert_eq!(nia.next_visit_ms(day + 12 * H), day + 22 * H);
        assert_eq!(
            nia.next_visit_ms(day + 23 * H),
            day + 46 * H,
            "on shift: the next night"
        );
        // Around the clock: in an hour, whatever the offset.
        let al = Technician {
            shift: (0, 0),
            utc_offset_minutes: 330,
            ..ana
        };
        assert_eq!(al.next_visit_ms(day + 5 * H + 7), day + 6 * H + 7);
        // The choice carries the chosen one's visit.
        let a = choose(&[nia], "offline", None, day + 12 * H).expect("nia");
        assert_eq!(a.visit_ms, day + 22 * H);
    }
}
