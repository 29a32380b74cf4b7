//! Modbus TCP polling: a pure plan of read requests per profile, and a poller
//! task per device that connects, reads, decodes and reconnects with backoff.

pub mod bus;
pub mod plan;
pub mod poller;
