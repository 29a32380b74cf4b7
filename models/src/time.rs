//! Timestamps (milliseconds since the Unix epoch): rendered for people and
//! for JSON as RFC 3339 in UTC, parsed from RFC 3339 with any offset, and
//! calendar dates (local at an offset from UTC).

/// `1795392000000` → `2026-11-23T00:00:00Z` (to the second). Any `i64`:
/// years outside 0–9999 are written with their sign or more digits rather
/// than refused (times come from outside, and formatting must not fail).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `1795392000000` → `2026-11-23` (the UTC date).
pub fn date(ms: i64) -> String {
    rfc3339(ms).chars().take(10).collect()
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1–12, day 1–31) `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

const DAY_MS: i64 = 86_400_000;

/// The local date (year, month, day) of `ms` (UTC) at `utc_offset_minutes`.
pub fn local_date(ms: i64, utc_offset_minutes: i32) -> (i64, u32, u32) {
    let local = ms + i64::from(utc_offset_minutes) * 60_000;
    civil_from_days(local.div_euclid(DAY_MS))
}

/// An RFC 3339 date-time, `2026-12-03T09:00:00Z` or with an offset
/// (`+01:00`), fractions of a second allowed, to milliseconds since the
/// epoch; `None` for anything else (a date alone, a missing offset, a
/// month 13, a 30 February).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(day).ok().filter(|d| *d >= 1)?;
    let days = days_from_civil(year, month, day);
    // A day past the month's end comes back as another month.
    if civil_from_days(days) != (year, month, day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if sep(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = num(i + 1, digits.min(3))?;
        millis = frac * 10i64.pow(3 - u32::try_from(digits.min(3)).ok()?);
        i += 1 + digits;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && sep(i + 3, b":") => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    // A leap second counts as the last second of its minute.
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_392_000_000), "2026-11-23T00:00:00Z");
        assert_eq!(super::date(1_795_392_000_000), "2026-11-23");
    }

    #[test]
    fn any_time_is_written_without_failing() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_392_000_999), "2026-11-23T00:00:00Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(-62_167_219_200_000), "0000-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(253_402_300_800_000), "10000-01-01T00:00:00Z");
        for ms in [i64::MIN, i64::MAX, i64::MIN / 2, i64::MAX / 3] {
            let _ = super::rfc3339(ms);
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        use super::{civil_from_days, days_from_civil};
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 23), 1_795_392_000_000 / 86_400_000);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for d in [-800_000, -1, 0, 59, 10_957, 20_000, 2_932_896] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d, "{y}-{m}-{day}");
        }
    }

    #[test]
    fn rfc3339_with_offsets_parses_to_utc() {
        use super::parse_rfc3339 as p;
        let t = 1_795_392_000_000; // 2026-11-23T00:00:00Z
        assert_eq!(p("2026-11-23T00:00:00Z"), Some(t));
        assert_eq!(p("2026-11-23t00:00:00z"), Some(t));
        assert_eq!(p("2026-11-23T01:30:00+01:30"), Some(t));
        assert_eq!(p("2026-11-22T19:00:00-05:00"), Some(t));
        assert_eq!(p("2026-11-23T00:00:00.25Z"), Some(t + 250));
        assert_eq!(p("2026-11-23T00:00:00.123456Z"), Some(t + 123));
        assert_eq!(p(&super::rfc3339(t)), Some(t), "round trip");
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T00:00:00+1:00",
            "2026-11-23T00:00:00.Z",
            "2026-11-23T00:00:00Zjunk",
            "tomorrow",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_utc_and_refuses_the_rest() {
        assert_eq!(
            super::parse_rfc3339("2026-11-23T00:00:00Z"),
            Some(1_795_392_000_000)
        );
        assert_eq!(
            super::parse_rfc3339("2026-11-23T00:00:00.250Z"),
            Some(1_795_392_000_250)
        );
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "1795392000000",
        ] {
            assert_eq!(super::parse_rfc3339(bad), None, "{bad}");
        }
    }
}
