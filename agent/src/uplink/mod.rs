//! Sending telemetry uplink: samples are batched per device (pure, in
//! `batch`) and published over MQTT with QoS 1 (in `mqtt`).

pub mod batch;
pub mod link;
pub mod mqtt;
