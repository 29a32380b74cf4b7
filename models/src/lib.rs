//! Wearline's pure core: the wire contract between agent and hub, device
//! profiles and register decoding, detectors, remaining-life models and the
//! ticket rules and the work-order lifecycle.
//!
//! This crate does no IO and never reads the clock: every function takes the
//! time and the data it works on as arguments, so tests and benchmarks drive it
//! directly. Only the types that cross a process boundary (MQTT payloads,
//! config files, the life trackers' state the hub stores) derive serde.

pub mod config;
pub mod detect;
pub mod dispatch;
pub mod profile;
pub mod registers;
pub mod reminders;
pub mod reports;
pub mod rul;
pub mod rules;
pub mod time;
pub mod wire;
pub mod workorder;
