//! The agent's notion of "now" for sample timestamps.
//!
//! On a real gateway this is the wall clock. Simulated fleets run faster than
//! real time; `time_scale` stretches elapsed time so the timestamps follow the
//! simulated devices (one simulated day per real second at 86 400).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A wall clock, optionally running faster than real time from its start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start_ms: i64,
    start: Instant,
    scale: f64,
}

impl Clock {
    /// Real time.
    pub fn wall() -> Clock {
        Clock::scaled(1.0)
    }

    /// Time that advances `scale` times faster than real time from now.
    pub fn scaled(scale: f64) -> Clock {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Clock {
            start_ms,
            start: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let elapsed = self.start.elapsed().as_secs_f64() * 1000.0 * self.scale;
        self.start_ms + elapsed as i64
    }
}
