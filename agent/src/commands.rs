//! Commands from the hub: write a coil or holding register of a device (for
//! instance light the filter indicator), once per command id, and report the
//! outcome.
//!
//! The commander owns nothing but a view of the devices and their buses; a
//! write takes its turn on the device's bus like any poll.

use crate::config::DeviceConfig;
use crate::sources::modbus::bus::{Bus, BusError};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use wearline_models::registers::{DataType, RegisterKind, encode_words};
use wearline_models::wire::{Action, Command};

/// Command ids remembered, to act once on a command delivered twice.
const REMEMBER: usize = 1024;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no device `{0}` on this gateway")]
    UnknownDevice(String),
    #[error("profile `{profile}` has no field `{metric}`")]
    UnknownField { profile: String, metric: String },
    #[error("field `{0}` is not writable (only coils and holding registers are)")]
    ReadOnly(String),
    #[error("value {value} does not fit field `{metric}`")]
    Value { metric: String, value: f64 },
    #[error("{0}")]
    Bus(#[from] BusError),
}

/// Devices and their buses, by device id.
pub struct Commander {
    devices: HashMap<String, (DeviceConfig, Arc<Bus>)>,
    seen: VecDeque<String>,
}

/// What to do with a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Already carried out: ignore it.
    Duplicate,
    Run,
}

impl Commander {
    pub fn new(devices: impl IntoIterator<Item = (DeviceConfig, Arc<Bus>)>) -> Commander {
        Commander {
            devices: devices.into_iter().map(|(d, b)| (d.id.clone(), (d, b))).collect(),
            seen: VecDeque::new(),
        }
    }

    /// Replaces the devices commands can reach (after a config change);
    /// the command ids seen are kept.
    pub fn set_devices(&mut self, devices: impl IntoIterator<Item = (DeviceConfig, Arc<Bus>)>) {
        self.devices = devices.into_iter().map(|(d, b)| (d.id.clone(), (d, b))).collect();
    }

    /// Remembers the command's id; a command seen before is a duplicate.
    pub fn admit(&mut self, cmd: &Command) -> Verdict {
        if self.seen.iter().any(|id| *id == cmd.id) {
            return Verdict::Duplicate;
        }
        if self.seen.len() == REMEMBER {
            self.seen.pop_front();
        }
        self.seen.push_back(cmd.id.clone());
        Verdict::Run
    }

    /// Carries out the command on its device.
    pub async fn execute(&self, cmd: &Command) -> Result<(), CommandError> {
        let (device, bus) = self
            .devices
            .get(&cmd.device)
            .ok_or_else(|| CommandError::UnknownDevice(cmd.device.clone()))?;
        let (metric, value) = match &cmd.action {
            Action::SetIndicator { indicator, on } => {
                (format!("{indicator}_indicator"), f64::from(u8::from(*on)))
            }
            Action::Write { metric, value } => (metric.clone(), *value),
        };
        let profile = &device.profile;
        let field = profile.field(&metric).ok_or_else(|| CommandError::UnknownField {
            profile: profile.name.clone(),
            metric: metric.clone(),
        })?;
        let mut session = bus.session(device.unit, device.timeout).await?;
        match field.kind {
            RegisterKind::Coil => session.write_coils(field.address, &[value != 0.0]).await?,
            RegisterKind::Holding if field.data_type == DataType::Bool => {
                return Err(CommandError::ReadOnly(format!("{metric} (a bit of a register)")));
            }
            RegisterKind::Holding => {
                let raw = field.calibration().invert(value);
                let words =
                    encode_words(raw, field.data_type, field.order).map_err(|_| CommandError::Value {
                        metric: metric.clone(),
                        value,
                    })?;
                session.write_registers(field.address, &words).await?;
            }
            RegisterKind::Input | RegisterKind::Discrete => return Err(CommandError::ReadOnly(metric)),
        }
        tracing::info!(id = %cmd.id, device = %cmd.device, metric, value, "command carried out");
        Ok(())
    }
}
