//! Where samples come from. Each source runs one task per device and sends
//! `(device, sample)` pairs to the uplink; a source never waits on another.

pub mod modbus;
