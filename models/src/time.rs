//! Rendering timestamps (milliseconds since the Unix epoch) for people and
//! for JSON, as RFC 3339 in UTC.

use std::time::{Duration, UNIX_EPOCH};

/// `1795392000000` → `2026-11-23T00:00:00Z` (to the second).
pub fn rfc3339(ms: i64) -> String {
    let t = if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `2026-11-23T00:00:00Z` (fractions of a second allowed, UTC only) →
/// `1795392000000`; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|ms| -ms),
    }
}

/// `1795392000000` → `2026-11-23` (the UTC date).
pub fn date(ms: i64) -> String {
    rfc3339(ms).chars().take(10).collect()
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
