//! Wearline simulators: a fleet of simulated air purifiers speaking Modbus TCP.
//!
//! Everything is deterministic from a seed, and simulated time can run faster
//! than real time, so filter clogging that takes months happens in seconds.
//! The physics ([`air_purifier`]), the register map ([`registers`]) and the
//! fleet parameters ([`fleet`]) are pure; only [`server`] does IO. This crate
//! must not depend on the agent or the hub: it plays the field devices only.

pub mod air_purifier;
pub mod fleet;
mod prng;
pub mod registers;
pub mod server;

pub use air_purifier::{AirPurifier, PurifierParams};
pub use fleet::fleet_params;
pub use registers::RegisterError;
pub use server::{FleetConfig, RunningFleet, SimDevice, SimError, start_fleet};
