//! The Wearline hub: an MQTT broker (embedded by default), ingestion of agent
//! telemetry, a store (embedded SQLite, or PostgreSQL), remaining-life predictions per
//! consumable, preventive work orders, the REST API, and an optional copy of
//! the raw telemetry in InfluxDB.
//!
//! Analytics and ticket rules are pure and live in `wearline-models`; this
//! crate does the IO around them.

pub mod api;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod downlink;
pub mod escalation;
pub mod histogram;
pub mod history;
pub mod influx;
pub mod ingest;
pub mod metrics;
pub mod passwords;
pub mod policy;
pub mod predict;
pub mod reminders;
pub mod run;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::HubConfig;
pub use run::{Hub, HubEvent, HubHandle};
