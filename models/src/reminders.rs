//! Customer reminders: when a consumable's remaining life reaches one of
//! the customer's reminder points, what the reminder says, when it may be
//! sent (quiet hours), and how failed deliveries are retried. Pure.
//!
//! A reminder is identified by (device, consumable, the life's start,
//! point, channel), so each point reminds once per life and channel,
//! whatever the number of predictions, restarts or hubs; a new part starts
//! its reminders afresh.

/// Default reminder points, days of life left: a month ahead, a week
/// ahead, and when it is due.
pub const DEFAULT_POINTS: [f64; 3] = [30.0, 7.0, 0.0];

/// The most urgent point `remaining_days` has reached (the smallest point
/// at or above it), if any. With points 30, 7, 0: 12 days left reaches 30;
/// 5 reaches 7; 0 or less reaches 0; 45 reaches none.
pub fn reached(points: &[f64], remaining_days: f64) -> Option<f64> {
    if !remaining_days.is_finite() {
        return None;
    }
    points
        .iter()
        .copied()
        .filter(|p| p.is_finite() && remaining_days <= *p)
        .min_by(f64::total_cmp)
}

/// How much life is left, in plain words: "about 12 days", "about a day",
/// "less than a day", or "it is due now".
pub fn life_left(remaining_days: f64) -> String {
    if remaining_days <= 0.0 {
        "it is due now".into()
    } else if remaining_days < 0.75 {
        "less than a day".into()
    } else if remaining_days < 1.5 {
        "about a day".into()
    } else {
        format!("about {} days", remaining_days.round())
    }
}

/// The reminder's text. `what` names the part and the appliance ("the
/// filter of your air purifier"); `visit` is the booked visit's date in
/// words ("3 December"), when there is one.
pub fn message(what: &str, remaining_days: f64, visit: Option<&str>) -> String {
    let left = life_left(remaining_days);
    let head = if remaining_days <= 0.0 {
        format!("Time to replace {what}: {left}.")
    } else {
        format!("{} has {left} of life left.", capitalised(what))
    };
    match visit {
        Some(date) => format!("{head} A replacement visit is booked for {date}."),
        None => format!("{head} We will contact you to book a replacement visit."),
    }
}

/// What a reminder is about, in words: `filter` of an `air-purifier` is
/// "the filter of your air purifier".
pub fn what(consumable: &str, profile: &str) -> String {
    format!("the {consumable} of your {}", profile.replace(['-', '_'], " "))
}

/// An e-mail's subject: "Filter replacement due in about 12 days",
/// "Filter replacement due now".
pub fn subject(consumable: &str, remaining_days: f64) -> String {
    let part = capitalised(&consumable.replace(['-', '_'], " "));
    if remaining_days <= 0.0 {
        format!("{part} replacement due now")
    } else {
        format!("{part} replacement due in {}", life_left(remaining_days))
    }
}

/// An e-mail's plain-text body: the reminder, the appliance, and where
/// the settings are changed.
pub fn email_body(message: &str, device: &str) -> String {
    format!(
        "{message}\n\nAppliance: {device}\n\n-- \nWearline service reminders. To change how and when you are \
         reminded, or to stop these reminders, update your reminder settings in the customer portal.\n"
    )
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A visit's date in words, local at the customer's offset from UTC: "3
/// December"; with the year ("3 January 2027") when it is not the year of
/// `now_ms` there.
pub fn visit_date(visit_ms: i64, utc_offset_minutes: i32, now_ms: i64) -> String {
    let (year, month, day) = crate::time::local_date(visit_ms, utc_offset_minutes);
    let (this_year, _, _) = crate::time::local_date(now_ms, utc_offset_minutes);
    let name = MONTHS[usize::try_from(month.clamp(1, 12) - 1).unwrap_or(0)];
    if year == this_year {
        format!("{day} {name}")
    } else {
        format!("{day} {name} {year}")
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A customer's quiet hours: local `start..end` hours of day (a night
/// span such as 21..8 crosses midnight; equal bounds: none), and their
/// local time's offset from UTC in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: u8,
    pub end: u8,
    pub utc_offset_minutes: i32,
}

const MINUTE_MS: i64 = 60_000;
const DAY_MIN: i64 = 24 * 60;

impl QuietHours {
    /// The earliest time at or after `now_ms` (UTC) outside quiet hours.
    pub fn next_send_ms(&self, now_ms: i64) -> i64 {
        let (start, end) = (i64::from(self.start % 24) * 60, i64::from(self.end % 24) * 60);
        if start == end {
            return now_ms;
        }
        let local_min = now_ms.div_euclid(MINUTE_MS) + i64::from(self.utc_offset_minutes);
        let minute_of_day = local_min.rem_euclid(DAY_MIN);
        let quiet = if start < end {
            (start..end).contains(&minute_of_day)
        } else {
            minute_of_day >= start || minute_of_day < end
        };
        if !quiet {
            return now_ms;
        }
        let wait_min = (end - minute_of_day).rem_euclid(DAY_MIN);
        // From the start of the current minute, to the end of quiet hours.
        now_ms.div_euclid(MINUTE_MS) * MINUTE_MS + wait_min * MINUTE_MS
    }
}

/// Deliveries are tried at most this many times before the reminder is
/// marked failed (visible in the API).
pub const MAX_ATTEMPTS: u32 = 8;

/// How long to wait after failed attempt number `attempt` (1-based): one
/// minute, doubling, at most an hour; `None` once [`MAX_ATTEMPTS`] are used.
pub fn retry_after_ms(attempt: u32) -> Option<i64> {
    retry_after_ms_from(MINUTE_MS, attempt)
}

/// [`retry_after_ms`] with the first wait `first_ms` instead of a minute
/// (doubling, at most 60 times the first): the same schedule, scaled.
pub fn retry_after_ms_from(first_ms: i64, attempt: u32) -> Option<i64> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let exp = attempt.saturating_sub(1).min(6);
    let first = first_ms.max(1);
    Some(first.saturating_mul(1 << exp).min(first.saturating_mul(60)))
}

/// Prefix of the ids of the commands that light an appliance's indicator
/// for a reminder.
const INDICATOR_COMMAND: &str = "reminder-";

/// The id of the command for delivery attempt `attempt` (1-based) of
/// reminder `reminder_id` on the `indicator` channel:
/// `reminder-{id}-{attempt}`. A redelivered message (QoS 1, or the same
/// command in both topic forms) carries the same id, so the agent acts on
/// it once; a retry after a failed or unanswered attempt carries a new one,
/// so the agent tries again (it answers a known id with nothing), and
/// writing the same value twice leaves the indicator as it was.
pub fn indicator_command_id(reminder_id: i64, attempt: u32) -> String {
    format!("{INDICATOR_COMMAND}{reminder_id}-{attempt}")
}

/// The reminder and attempt an indicator command's id stands for; `None`
/// for any other command id.
pub fn parse_indicator_command_id(id: &str) -> Option<(i64, u32)> {
    let (reminder, attempt) = id.strip_prefix(INDICATOR_COMMAND)?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(reminder) || !digits(attempt) {
        return None;
    }
    Some((reminder.parse().ok()?, attempt.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_point_reached() {
        let p = DEFAULT_POINTS;
        assert_eq!(reached(&p, 45.0), None);
        assert_eq!(reached(&p, 30.0), Some(30.0));
        assert_eq!(reached(&p, 12.0), Some(30.0));
        assert_eq!(reached(&p, 7.0), Some(7.0));
        assert_eq!(reached(&p, 0.4), Some(7.0));
        assert_eq!(reached(&p, 0.0), Some(0.0));
        assert_eq!(reached(&p, -3.0), Some(0.0));
        assert_eq!(reached(&p, f64::NAN), None);
        assert_eq!(reached(&[], 1.0), None);
    }

    #[test]
    fn reminders_say_plainly_how_much_life_is_left() {
        assert_eq!(
            message("the filter of your air purifier", 12.3, Some("3 December")),
            "The filter of your air purifier has about 12 days of life left. A replacement visit is booked for 3 December."
        );
        assert_eq!(
            message("the filter of your air purifier", 1.2, None),
            "The filter of your air purifier has about a day of life left. We will contact you to book a replacement visit."
        );
        assert_eq!(
            message("the filter", -2.0, Some("1 December")),
            "Time to replace the filter: it is due now. A replacement visit is booked for 1 December."
        );
        assert_eq!(life_left(0.5), "less than a day");
        assert_eq!(what("filter", "air-purifier"), "the filter of your air purifier");
    }

    #[test]
    fn subjects_say_what_is_due_and_when() {
        assert_eq!(subject("filter", 12.3), "Filter replacement due in about 12 days");
        assert_eq!(subject("filter", 1.2), "Filter replacement due in about a day");
        assert_eq!(
            subject("filter", 0.3),
            "Filter replacement due in less than a day"
        );
        assert_eq!(subject("uv_lamp", 0.0), "Uv lamp replacement due now");
        assert_eq!(subject("filter", -4.0), "Filter replacement due now");
        let body = email_body("The filter has about 12 days of life left.", "p-1");
        assert!(
            body.starts_with("The filter has about 12 days of life left.\n\nAppliance: p-1\n"),
            "{body}"
        );
    }

    #[test]
    fn visit_dates_are_the_customers_local_day() {
        // 2026-12-03T02:30:00Z.
        let visit = crate::time::days_from_civil(2026, 12, 3) * 86_400_000 + 150 * MINUTE_MS;
        let now = crate::time::days_from_civil(2026, 11, 20) * 86_400_000;
        assert_eq!(visit_date(visit, 0, now), "3 December");
        assert_eq!(visit_date(visit, 60, now), "3 December", "03:30 in Berlin");
        assert_eq!(visit_date(visit, -300, now), "2 December", "21:30 in New York");
        assert_eq!(visit_date(visit, -150, now), "3 December", "00:00 at -02:30");
        assert_eq!(visit_date(visit, -151, now), "2 December", "23:59 at -02:31");
        assert_eq!(visit_date(visit, 14 * 60, now), "3 December");
        // Into the next year: the year is named.
        let new_year = crate::time::days_from_civil(2027, 1, 1) * 86_400_000 + 60 * MINUTE_MS;
        assert_eq!(visit_date(new_year, 0, now), "1 January 2027");
        assert_eq!(
            visit_date(new_year, -120, now),
            "31 December",
            "still 2026 at -02:00"
        );
        assert_eq!(
            message(
                &what("filter", "air-purifier"),
                12.0,
                Some(&visit_date(visit, 60, now))
            ),
            "The filter of your air purifier has about 12 days of life left. A replacement visit is booked for 3 December."
        );
    }

    /// 2025-06-15T00:00:00Z.
    const DAY0: i64 = 1_749_945_600_000;
    const H: i64 = 3_600_000;

    #[test]
    fn quiet_hours_hold_reminders_until_they_end() {
        let night = QuietHours {
            start: 21,
            end: 8,
            utc_offset_minutes: 0,
        };
        assert_eq!(
            night.next_send_ms(DAY0 + 12 * H),
            DAY0 + 12 * H,
            "midday: at once"
        );
        assert_eq!(
            night.next_send_ms(DAY0 + 22 * H + 30 * MINUTE_MS),
            DAY0 + 32 * H,
            "22:30 → 08:00 next day"
        );
        assert_eq!(night.next_send_ms(DAY0 + 3 * H), DAY0 + 8 * H, "03:00 → 08:00");
        assert_eq!(night.next_send_ms(DAY0 + 8 * H), DAY0 + 8 * H, "08:00 is awake");
        // At UTC+2, 06:00 UTC is 08:00 local: awake; 05:00 UTC is 07:00: wait an hour.
        let cest = QuietHours {
            utc_offset_minutes: 120,
            ..night
        };
        assert_eq!(cest.next_send_ms(DAY0 + 6 * H), DAY0 + 6 * H);
        assert_eq!(cest.next_send_ms(DAY0 + 5 * H), DAY0 + 6 * H);
        let lunch = QuietHours {
            start: 12,
            end: 14,
            utc_offset_minutes: 0,
        };
        assert_eq!(lunch.next_send_ms(DAY0 + 13 * H), DAY0 + 14 * H);
        let none = QuietHours {
            start: 0,
            end: 0,
            utc_offset_minutes: 0,
        };
        assert_eq!(none.next_send_ms(DAY0 + 3 * H + 7), DAY0 + 3 * H + 7);
    }

    #[test]
    fn indicator_command_ids_name_reminder_and_attempt() {
        assert_eq!(indicator_command_id(42, 1), "reminder-42-1");
        assert_eq!(indicator_command_id(42, 1), indicator_command_id(42, 1), "stable");
        assert_ne!(indicator_command_id(42, 1), indicator_command_id(42, 2));
        assert_ne!(indicator_command_id(4, 21), indicator_command_id(42, 1));
        for (id, attempt) in [(42, 1), (1, 8), (i64::MAX, u32::MAX)] {
            assert_eq!(
                parse_indicator_command_id(&indicator_command_id(id, attempt)),
                Some((id, attempt))
            );
        }
        for other in [
            "",
            "reminder-",
            "reminder-42",
            "reminder-42-",
            "reminder--1-1",
            "reminder-4x-1",
            "reminder-42-1-2",
            "reminder-99999999999999999999-1",
            "cmd-1",
            "Reminder-1-1",
        ] {
            assert_eq!(parse_indicator_command_id(other), None, "{other}");
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let delays: Vec<Option<i64>> = (1..=MAX_ATTEMPTS).map(retry_after_ms).collect();
        let m = MINUTE_MS;
        assert_eq!(
            delays,
            [
                Some(m),
                Some(2 * m),
                Some(4 * m),
                Some(8 * m),
                Some(16 * m),
                Some(32 * m),
                Some(60 * m),
                None
            ]
        );
        // Scaled (tests: a quarter second): the same doubling and cap.
        let scaled: Vec<Option<i64>> = (1..=MAX_ATTEMPTS).map(|a| retry_after_ms_from(250, a)).collect();
        assert_eq!(
            scaled,
            [
                Some(250),
                Some(500),
                Some(1000),
                Some(2000),
                Some(4000),
                Some(8000),
                Some(15_000),
                None
            ]
        );
    }
}
