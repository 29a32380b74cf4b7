//! Any topic and payload: `decode_uplink` must not panic, and a telemetry
//! message it accepts must carry only finite values and ids that match the
//! topic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wearline_models::wire::{Uplink, decode_uplink};

fuzz_target!(|data: &[u8]| {
    // The first line is the topic, the rest the payload.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(topic) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let payload = data.get(split + 1..).unwrap_or_default();
    if let Ok(Uplink::Telemetry(t)) = decode_uplink(topic, payload) {
        assert!(t.samples.iter().all(|s| s.values.values().all(|v| v.is_finite())));
        assert!(topic.ends_with(&format!("/telemetry/{}", t.device)));
    }
});
