//! The agent's config file: which gateway this is, where to send telemetry,
//! and which devices to poll with which profile.
//!
//! Loaded once at start. Unknown keys, wrong types and invalid values are
//! errors that name the file, the line and the key.

use crate::sources::modbus::bus::{Endpoint, Parity, SerialLine};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wearline_models::config::{ConfigError, host_port, parse_toml};
use wearline_models::profile::Profile;
use wearline_models::wire::validate_id;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// This gateway's id; topics are scoped by it.
    gateway: String,
    /// Where the agent keeps its state (sequence numbers). Relative paths are
    /// resolved against the config file's folder.
    data_dir: PathBuf,
    /// Folder of device profiles (`NAME.toml`), relative to the config file.
    #[serde(default = "default_profiles_dir")]
    profiles_dir: PathBuf,
    /// The MQTT uplink.
    uplink: UplinkConfig,
    /// Serial lines (RS-485) by name, referenced by devices' `serial`.
    #[serde(default)]
    serial: BTreeMap<String, RawSerial>,
    /// Devices to poll.
    #[serde(default)]
    devices: Vec<RawDevice>,
}

/// One serial line shared by the devices on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerial {
    /// Device path, e.g. `/dev/ttyUSB0`.
    port: String,
    /// Baud rate.
    #[serde(default = "default_baud")]
    baud: u32,
    /// `none`, `even` or `odd`.
    #[serde(default = "default_parity")]
    parity: Parity,
    /// 5–8.
    #[serde(default = "default_data_bits")]
    data_bits: u8,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    stop_bits: u8,
}

const fn default_baud() -> u32 {
    9600
}
const fn default_parity() -> Parity {
    Parity::None
}
const fn default_data_bits() -> u8 {
    8
}
const fn default_stop_bits() -> u8 {
    1
}

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("profiles")
}

/// The MQTT connection to the hub's broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Broker host and port, e.g. `hub.example.net:1883`.
    pub broker: String,
    /// MQTT client id; defaults to the gateway id.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Largest number of samples of one device sent in one message.
    #[serde(default = "default_batch_max")]
    pub batch_max_samples: usize,
    /// Longest a sample waits for its batch to fill, in milliseconds.
    #[serde(default = "default_batch_delay_ms")]
    pub batch_delay_ms: u64,
    /// MQTT keep-alive, seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

const fn default_batch_max() -> usize {
    10
}
const fn default_batch_delay_ms() -> u64 {
    1000
}
const fn default_keep_alive() -> u64 {
    15
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    /// Fleet-unique device id (serial number).
    id: String,
    /// Name of the device profile in `profiles_dir`.
    profile: String,
    /// Modbus TCP address, `host:port` (a device, or a gateway: several
    /// devices may share one address with different unit ids).
    tcp: Option<SocketAddr>,
    /// Name of a `[serial.NAME]` line, for Modbus RTU.
    serial: Option<String>,
    /// Modbus unit id.
    #[serde(default = "default_unit")]
    unit: u8,
    /// Poll interval, milliseconds.
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    /// Timeout of one request, milliseconds.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// Extra attempts of a request after a timeout or transport error.
    #[serde(default = "default_retries")]
    retries: u8,
    /// Largest number of registers read in one request (1–125); some devices need fewer.
    #[serde(default = "default_max_registers")]
    max_registers_per_request: u16,
}

const fn default_retries() -> u8 {
    1
}
const fn default_max_registers() -> u16 {
    125
}

const fn default_unit() -> u8 {
    1
}
const fn default_interval_ms() -> u64 {
    5000
}
const fn default_timeout_ms() -> u64 {
    1000
}

/// A validated agent config.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub gateway: String,
    pub data_dir: PathBuf,
    pub uplink: UplinkConfig,
    pub devices: Vec<DeviceConfig>,
}

/// One device to poll, with its profile resolved.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub id: String,
    pub profile: Profile,
    pub endpoint: Endpoint,
    pub unit: u8,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u8,
    pub max_registers_per_request: u16,
}

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl AgentConfig {
    /// Reads and validates the config at `path`, and the profiles it uses.
    pub fn load(path: &Path) -> Result<AgentConfig, LoadError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&path.display().to_string(), &text, base)
    }

    /// Parses config text; `base` resolves relative paths.
    pub fn parse(origin: &str, text: &str, base: &Path) -> Result<AgentConfig, LoadError> {
        let raw: RawConfig = parse_toml(origin, text)?;
        let invalid =
            |key: &str, msg: String| LoadError::Invalid(ConfigError::invalid(origin, text, key, msg));
        if validate_id(&raw.gateway).is_err() {
            return Err(invalid(
                "gateway",
                "use 1–64 letters, digits, `-`, `_`, `.` or `:`".into(),
            ));
        }
        if raw.uplink.username.is_some() != raw.uplink.password.is_some() {
            return Err(invalid(
                "uplink.username",
                "set both `username` and `password`, or neither".into(),
            ));
        }
        if raw.uplink.batch_max_samples == 0 {
            return Err(invalid("uplink.batch_max_samples", "must be at least 1".into()));
        }
        if host_port(&raw.uplink.broker).is_none() {
            return Err(invalid("uplink.broker", "expected `host:port`".into()));
        }
        let profiles_dir = base.join(&raw.profiles_dir);
        let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();
        let mut devices = Vec::with_capacity(raw.devices.len());
        for (i, d) in raw.devices.iter().enumerate() {
            let key = |k: &str| format!("devices[{i}].{k}");
            if validate_id(&d.id).is_err() {
                return Err(invalid(
                    &key("id"),
                    "use 1–64 letters, digits, `-`, `_`, `.` or `:`".into(),
                ));
            }
            if raw.devices[..i].iter().any(|e| e.id == d.id) {
                return Err(invalid(&key("id"), format!("device `{}` is listed twice", d.id)));
            }
            if d.interval_ms == 0 {
                return Err(invalid(&key("interval_ms"), "must be > 0".into()));
            }
            if d.timeout_ms == 0 {
                return Err(invalid(&key("timeout_ms"), "must be > 0".into()));
            }
            if !(1..=125).contains(&d.max_registers_per_request) {
                return Err(invalid(&key("max_registers_per_request"), "must be 1–125".into()));
            }
            let endpoint = match (&d.tcp, &d.serial) {
                (Some(addr), None) => Endpoint::Tcp(*addr),
                (None, Some(name)) => {
                    let Some(s) = raw.serial.get(name) else {
                        return Err(invalid(
                            &key("serial"),
                            format!("no `[serial.{name}]` line is defined"),
                        ));
                    };
                    if !(5..=8).contains(&s.data_bits) || !(1..=2).contains(&s.stop_bits) || s.baud == 0 {
                        return Err(invalid(
                            &format!("serial.{name}"),
                            "baud > 0, data_bits 5–8, stop_bits 1–2".into(),
                        ));
                    }
                    Endpoint::Serial(SerialLine {
                        path: s.port.clone(),
                        baud: s.baud,
                        parity: s.parity,
                        data_bits: s.data_bits,
                        stop_bits: s.stop_bits,
                    })
                }
                _ => {
                    return Err(invalid(
                        &key("tcp"),
                        "give exactly one of `tcp` or `serial`".into(),
                    ));
                }
            };
            if let Some(other) = raw.devices[..i].iter().position(|e| {
                e.unit == d.unit
                    && ((e.tcp.is_some() && e.tcp == d.tcp) || (e.serial.is_some() && e.serial == d.serial))
            }) {
                return Err(invalid(
                    &key("unit"),
                    format!(
                        "devices[{other}] already uses unit {} on the same endpoint",
                        d.unit
                    ),
                ));
            }
            if !profiles.contains_key(&d.profile) {
                let file = profiles_dir.join(format!("{}.toml", d.profile));
                if validate_id(&d.profile).is_err() || !file.is_file() {
                    return Err(invalid(
                        &key("profile"),
                        format!("no profile file {}", file.display()),
                    ));
                }
                let ptext = read(&file)?;
                let profile = Profile::parse(&file.display().to_string(), &ptext)?;
                if profile.name != d.profile {
                    return Err(LoadError::Invalid(ConfigError::invalid(
                        &file.display().to_string(),
                        &ptext,
                        "name",
                        format!("profile file for `{}` is named `{}`", d.profile, profile.name),
                    )));
                }
                profiles.insert(d.profile.clone(), profile);
            }
            let Some(profile) = profiles.get(&d.profile).cloned() else {
                continue;
            };
            devices.push(DeviceConfig {
                id: d.id.clone(),
                profile,
                endpoint,
                unit: d.unit,
                interval: Duration::from_millis(d.interval_ms),
                timeout: Duration::from_millis(d.timeout_ms),
                retries: d.retries,
                max_registers_per_request: d.max_registers_per_request,
            });
        }
        Ok(AgentConfig {
            gateway: raw.gateway,
            data_dir: base.join(raw.data_dir),
            uplink: raw.uplink,
            devices,
        })
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}
