//! The wall clock, read in one place. The hub predicts in data time (see
//! ARCHITECTURE.md); the wall clock stamps what people do (work-order
//! changes, service-level due times) and times leases.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
