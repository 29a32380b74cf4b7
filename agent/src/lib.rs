//! The Wearline edge agent: polls devices, stamps each poll with a time and a
//! per-device sequence number, and publishes telemetry uplink over MQTT.
//!
//! Each device is polled by its own task, so a dead or slow device never
//! delays another. The agent keeps no analytics of its own yet; the pure
//! pieces it relies on (register decoding, wire payloads) live in
//! `wearline-models`.

pub mod buffer;
pub mod clock;
pub mod commands;
pub mod config;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod run;
pub mod sequence;
pub mod sources;
pub mod uplink;

pub use config::AgentConfig;
pub use run::{Agent, AgentHandle};
