//! The Wearline edge agent: polls devices, stamps each poll with a time and a
//! per-device sequence number, and publishes telemetry uplink over MQTT.
//!
//! Each device is polled by its own task, so a dead or slow device never
//! delays another. Every sample passes the detectors its device's profile
//! declares, which raise alerts on the spot. The pure pieces the agent relies
//! on (register decoding, wire payloads, the detectors) live in
//! `wearline-models`.

pub mod buffer;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod detection;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod reconfig;
pub mod run;
pub mod sequence;
pub mod sources;
pub mod uplink;

pub use config::AgentConfig;
pub use run::{Agent, AgentHandle};
