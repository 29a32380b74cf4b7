//! The agent's config file: which gateway this is, where to send telemetry,
//! and which devices to poll with which profile.
//!
//! Loaded once at start. Unknown keys, wrong types and invalid values are
//! errors that name the file, the line and the key.

use crate::buffer::{FsyncPolicy, QueueConfig};
use crate::sources::modbus::bus::{Endpoint, Parity, SerialLine};
use crate::sources::mqtt::map::{PayloadMap, TimeFormat};
use crate::sources::mqtt::{MqttDevice, MqttInput};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wearline_models::config::{ConfigError, host_port, parse_toml};
use wearline_models::detect::waveform::WaveformSpec;
use wearline_models::profile::Profile;
use wearline_models::wire::{TopicForm, validate_id, validate_tenant};

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// This gateway's id; topics are scoped by it.
    gateway: String,
    /// Where the agent keeps its state (sequence numbers). Relative paths are
    /// resolved against the config file's folder.
    data_dir: PathBuf,
    /// Serve Prometheus `/metrics` and `/health` here (port 0: any free port).
    metrics_listen: Option<SocketAddr>,
    /// Folder of device profiles (`NAME.toml`), relative to the config file.
    #[serde(default = "default_profiles_dir")]
    profiles_dir: PathBuf,
    /// The MQTT uplink.
    uplink: UplinkConfig,
    /// The disk queue that holds samples and alerts until the broker has them.
    #[serde(default)]
    buffer: RawBuffer,
    /// Serial lines (RS-485) by name, referenced by devices' `serial`.
    #[serde(default)]
    serial: BTreeMap<String, RawSerial>,
    /// Devices to poll.
    #[serde(default)]
    devices: Vec<RawDevice>,
    /// The local MQTT broker appliances publish their own readings to.
    mqtt_input: Option<RawMqttInput>,
    /// Appliances read from `mqtt_input`.
    #[serde(default)]
    mqtt_devices: Vec<RawMqttDevice>,
}

/// Bounds and durability of the disk queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuffer {
    /// Most disk space the queue uses, in MiB; reaching it evicts the oldest telemetry.
    #[serde(default = "default_buffer_mib")]
    max_mib: u64,
    /// Oldest entry kept, in hours.
    #[serde(default = "default_buffer_hours")]
    max_age_hours: u64,
    /// `batch` (default: fsync every `fsync_records` entries or `fsync_interval_ms`),
    /// `always` (fsync every entry) or `never` (leave it to the OS).
    #[serde(default = "default_fsync")]
    fsync: FsyncMode,
    #[serde(default = "default_fsync_records")]
    fsync_records: u32,
    #[serde(default = "default_fsync_interval_ms")]
    fsync_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FsyncMode {
    Always,
    Batch,
    Never,
}

impl Default for RawBuffer {
    fn default() -> Self {
        RawBuffer {
            max_mib: default_buffer_mib(),
            max_age_hours: default_buffer_hours(),
            fsync: default_fsync(),
            fsync_records: default_fsync_records(),
            fsync_interval_ms: default_fsync_interval_ms(),
        }
    }
}

const fn default_buffer_mib() -> u64 {
    256
}
const fn default_buffer_hours() -> u64 {
    7 * 24
}
const fn default_fsync() -> FsyncMode {
    FsyncMode::Batch
}
const fn default_fsync_records() -> u32 {
    1000
}
const fn default_fsync_interval_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttInput {
    /// Broker `host:port`.
    broker: String,
    /// MQTT client id; defaults to `{gateway}-input`.
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttDevice {
    /// Fleet-unique device id.
    id: String,
    /// Device profile (its consumables matter to the hub; its register map is unused).
    profile: String,
    /// Topic filter the appliance publishes to (MQTT wildcards allowed).
    topic: String,
    /// Metric name to JSON pointer in the payload.
    #[serde(default)]
    metrics: BTreeMap<String, String>,
    /// JSON pointer of the timestamp; absent: the time the payload arrived.
    timestamp: Option<String>,
    /// `unix_ms` (default), `unix_s` or `rfc3339`.
    #[serde(default)]
    time_format: TimeFormat,
    /// Waveform channels: name to where the samples are and what to compute.
    #[serde(default)]
    waveforms: BTreeMap<String, RawWaveform>,
}

/// An array of samples in the payload, turned into features.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaveform {
    /// JSON pointer of the array.
    pointer: String,
    /// Samples per second.
    sample_rate_hz: f64,
    /// Bands `[low, high]` in Hz whose energies are reported as `{name}_band{i}`.
    #[serde(default)]
    bands: Vec<[f64; 2]>,
    /// Samples are accelerations in g: also report `{name}_velocity_rms` (mm/s).
    #[serde(default)]
    velocity: bool,
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
    /// How often gateway health is published, seconds.
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u64,
    /// `v3.1.1` (default) or `v5`.
    #[serde(default)]
    pub protocol: MqttVersion,
    /// Publish and subscribe under `/tenants/{gateway}/` (the embedded
    /// broker's TLS listener, where a client certificate's O confines a
    /// gateway to that prefix). The gateway id must then be letters and digits.
    #[serde(default)]
    pub tenant_topics: bool,
    /// TLS to the broker; absent: plain TCP.
    pub tls: Option<TlsFiles>,
    /// The TLS files' contents, read at load.
    #[serde(skip)]
    pub tls_material: Option<TlsMaterial>,
}

impl UplinkConfig {
    /// The form of this gateway's topics (`tenant_topics`).
    pub fn topic_form(&self) -> TopicForm {
        if self.tenant_topics {
            TopicForm::Tenant
        } else {
            TopicForm::Plain
        }
    }
}

/// MQTT protocol version of the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "v3.1.1")]
    V311,
    #[serde(rename = "v5")]
    V5,
}

/// Where the uplink's TLS certificates are, relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file of the CA(s) that sign the broker's certificate.
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
    /// PEM certificate and key for mutual TLS; both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

fn default_ca_file() -> PathBuf {
    PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
}

/// PEM bytes for the uplink's TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    pub ca: Vec<u8>,
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

const fn default_health_interval() -> u64 {
    30
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
    /// Raise a `data_gap` alert after this many intervals without a good read (0: never).
    #[serde(default = "default_gap_intervals")]
    gap_alert_intervals: u32,
}

const fn default_gap_intervals() -> u32 {
    5
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
    pub metrics_listen: Option<SocketAddr>,
    pub buffer: QueueConfig,
    pub devices: Vec<DeviceConfig>,
    /// The local broker of `mqtt_devices`, if any.
    pub mqtt_input: Option<MqttInput>,
    pub mqtt_devices: Vec<MqttDevice>,
}

/// One device to poll, with its profile resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    pub id: String,
    /// Shared by every device of the profile.
    pub profile: Arc<Profile>,
    pub endpoint: Endpoint,
    pub unit: u8,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u8,
    pub max_registers_per_request: u16,
    pub gap_alert_intervals: u32,
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
        Self::parse_with(origin, text, base, &BTreeMap::new())
    }

    /// Parses config text, taking the profiles in `inline` (name to TOML text)
    /// before the files in `profiles_dir`: how a config pushed by the hub
    /// with its own profiles is read.
    pub fn parse_with(
        origin: &str,
        text: &str,
        base: &Path,
        inline: &BTreeMap<String, String>,
    ) -> Result<AgentConfig, LoadError> {
        let raw: RawConfig = parse_toml(origin, text)?;
        let invalid =
            |key: &str, msg: String| LoadError::Invalid(ConfigError::invalid(origin, text, key, msg));
        if validate_id(&raw.gateway).is_err() {
            return Err(invalid(
                "gateway",
                "use 1–64 letters, digits, `-`, `_`, `.` or `:`".into(),
            ));
        }
        if raw.uplink.tenant_topics && validate_tenant(&raw.gateway).is_err() {
            return Err(invalid(
                "gateway",
                "with `uplink.tenant_topics = true` the gateway id is the broker's tenant \
                 (its certificate's O): use 1–64 ASCII letters and digits only"
                    .into(),
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
        let mut profiles: BTreeMap<String, Arc<Profile>> = BTreeMap::new();
        for (name, text) in inline {
            let origin = format!("{origin}: profile {name}");
            let profile = Profile::parse(&origin, text)?;
            if profile.name != *name {
                let msg = format!("profile `{name}` is named `{}` inside", profile.name);
                return Err(ConfigError::invalid(&origin, text, "name", msg).into());
            }
            profiles.insert(name.clone(), Arc::new(profile));
        }
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
            let profile = resolve_profile(&profiles_dir, &d.profile, &mut profiles).map_err(|e| {
                e.unwrap_or_else(|| invalid(&key("profile"), no_profile(&profiles_dir, &d.profile)))
            })?;
            devices.push(DeviceConfig {
                id: d.id.clone(),
                profile,
                endpoint,
                unit: d.unit,
                interval: Duration::from_millis(d.interval_ms),
                timeout: Duration::from_millis(d.timeout_ms),
                retries: d.retries,
                max_registers_per_request: d.max_registers_per_request,
                gap_alert_intervals: d.gap_alert_intervals,
            });
        }
        let mut mqtt_devices = Vec::with_capacity(raw.mqtt_devices.len());
        for (i, d) in raw.mqtt_devices.iter().enumerate() {
            let key = |k: &str| format!("mqtt_devices[{i}].{k}");
            if raw.mqtt_input.is_none() {
                return Err(invalid(
                    &key("topic"),
                    "MQTT devices need an `[mqtt_input]` broker".into(),
                ));
            }
            if validate_id(&d.id).is_err() {
                return Err(invalid(
                    &key("id"),
                    "use 1–64 letters, digits, `-`, `_`, `.` or `:`".into(),
                ));
            }
            if raw.devices.iter().any(|e| e.id == d.id) || raw.mqtt_devices[..i].iter().any(|e| e.id == d.id)
            {
                return Err(invalid(&key("id"), format!("device `{}` is listed twice", d.id)));
            }
            if d.topic.is_empty() {
                return Err(invalid(&key("topic"), "must not be empty".into()));
            }
            if d.metrics.is_empty() && d.waveforms.is_empty() {
                return Err(invalid(
                    &key("metrics"),
                    "map at least one metric (or a waveform) to a JSON pointer".into(),
                ));
            }
            let mut waveforms = BTreeMap::new();
            for (name, w) in &d.waveforms {
                let wkey = |k: &str| key(&format!("waveforms.{name}.{k}"));
                if validate_id(name).is_err() {
                    return Err(invalid(
                        &key("waveforms"),
                        format!("`{name}` is not a valid channel name"),
                    ));
                }
                if !(w.sample_rate_hz > 0.0 && w.sample_rate_hz.is_finite()) {
                    return Err(invalid(
                        &wkey("sample_rate_hz"),
                        "must be a positive number".into(),
                    ));
                }
                let nyquist = w.sample_rate_hz / 2.0;
                if let Some([lo, hi]) = w
                    .bands
                    .iter()
                    .find(|[lo, hi]| !(0.0 <= *lo && lo < hi && *hi <= nyquist))
                {
                    return Err(invalid(
                        &wkey("bands"),
                        format!(
                            "band [{lo}, {hi}] must satisfy 0 ≤ low < high ≤ {nyquist} (half the sample rate)"
                        ),
                    ));
                }
                if !w.pointer.starts_with('/') {
                    return Err(invalid(
                        &wkey("pointer"),
                        format!("`{}` is not a JSON pointer", w.pointer),
                    ));
                }
                let spec = WaveformSpec {
                    sample_rate_hz: w.sample_rate_hz,
                    bands: w.bands.iter().map(|[lo, hi]| (*lo, *hi)).collect(),
                    velocity: w.velocity,
                };
                waveforms.insert(name.clone(), (w.pointer.clone(), spec));
            }
            let pointers = d.metrics.values().chain(d.timestamp.iter());
            if let Some(bad) = pointers
                .into_iter()
                .find(|p| !p.is_empty() && !p.starts_with('/'))
            {
                return Err(invalid(
                    &key("metrics"),
                    format!("`{bad}` is not a JSON pointer (they start with `/`)"),
                ));
            }
            let profile = resolve_profile(&profiles_dir, &d.profile, &mut profiles).map_err(|e| {
                e.unwrap_or_else(|| invalid(&key("profile"), no_profile(&profiles_dir, &d.profile)))
            })?;
            mqtt_devices.push(MqttDevice {
                id: d.id.clone(),
                detectors: profile.detectors.clone(),
                profile: profile.name.clone(),
                topic: d.topic.clone(),
                map: PayloadMap {
                    metrics: d.metrics.clone(),
                    timestamp: d.timestamp.clone(),
                    time_format: d.time_format,
                    waveforms,
                },
            });
        }
        if let Some(input) = &raw.mqtt_input {
            if host_port(&input.broker).is_none() {
                return Err(invalid("mqtt_input.broker", "expected `host:port`".into()));
            }
            if input.username.is_some() != input.password.is_some() {
                return Err(invalid(
                    "mqtt_input.username",
                    "set both `username` and `password`, or neither".into(),
                ));
            }
        }
        let mqtt_input = raw.mqtt_input.map(|i| MqttInput {
            broker: i.broker,
            client_id: i.client_id.unwrap_or_else(|| format!("{}-input", raw.gateway)),
            username: i.username,
            password: i.password,
        });
        let mut uplink = raw.uplink;
        if let Some(tls) = &uplink.tls {
            let pem = |key: &str, path: &Path| -> Result<Vec<u8>, LoadError> {
                let path = base.join(path);
                let bytes = std::fs::read(&path)
                    .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
                if !bytes.starts_with(b"-----BEGIN") {
                    return Err(invalid(key, format!("{} is not a PEM file", path.display())));
                }
                Ok(bytes)
            };
            let ca = pem("uplink.tls.ca_file", &tls.ca_file)?;
            let client_auth = match (&tls.client_cert_file, &tls.client_key_file) {
                (None, None) => None,
                (Some(c), Some(k)) => Some((
                    pem("uplink.tls.client_cert_file", c)?,
                    pem("uplink.tls.client_key_file", k)?,
                )),
                _ => {
                    return Err(invalid(
                        "uplink.tls.client_cert_file",
                        "set both `client_cert_file` and `client_key_file`, or neither".into(),
                    ));
                }
            };
            uplink.tls_material = Some(TlsMaterial { ca, client_auth });
        }
        let b = &raw.buffer;
        let max_bytes = b.max_mib.saturating_mul(1 << 20);
        let buffer = QueueConfig {
            max_bytes,
            max_age: Duration::from_secs(b.max_age_hours.saturating_mul(3600)),
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 8 << 20),
            fsync: match b.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Never => FsyncPolicy::Never,
                FsyncMode::Batch => FsyncPolicy::Batch {
                    records: b.fsync_records.max(1),
                    interval: Duration::from_millis(b.fsync_interval_ms),
                },
            },
        };
        if b.max_mib < 1 || b.max_age_hours < 1 {
            return Err(invalid(
                "buffer.max_mib",
                "max_mib and max_age_hours must be at least 1".into(),
            ));
        }
        Ok(AgentConfig {
            gateway: raw.gateway,
            data_dir: base.join(raw.data_dir),
            uplink,
            metrics_listen: raw.metrics_listen,
            buffer,
            devices,
            mqtt_input,
            mqtt_devices,
        })
    }
}

impl AgentConfig {
    /// The detectors each device's profile declares, by device id.
    pub fn detector_plan(&self) -> crate::detection::DetectorPlan {
        let modbus = self
            .devices
            .iter()
            .map(|d| (d.id.clone(), d.profile.detectors.clone()));
        let mqtt = self
            .mqtt_devices
            .iter()
            .map(|d| (d.id.clone(), d.detectors.clone()));
        modbus.chain(mqtt).collect()
    }
}

/// Top-level keys a running agent cannot change: its identity, its state, and
/// its way to the hub.
pub const RESTART_KEYS: [&str; 5] = ["gateway", "data_dir", "uplink", "buffer", "metrics_listen"];

/// The first of [`RESTART_KEYS`] whose value differs between two config
/// texts (both already parsed successfully).
pub fn restart_key_changed(old: &str, new: &str) -> Option<&'static str> {
    let table = |t: &str| t.parse::<toml::Table>().unwrap_or_default();
    let (a, b) = (table(old), table(new));
    RESTART_KEYS.into_iter().find(|k| a.get(*k) != b.get(*k))
}

/// The profile `name` from `dir`, read once and cached in `cache`. `Err(None)`
/// means there is no such profile file; the caller names the key.
fn resolve_profile(
    dir: &Path,
    name: &str,
    cache: &mut BTreeMap<String, Arc<Profile>>,
) -> Result<Arc<Profile>, Option<LoadError>> {
    if let Some(p) = cache.get(name) {
        return Ok(p.clone());
    }
    let file = dir.join(format!("{name}.toml"));
    if validate_id(name).is_err() || !file.is_file() {
        return Err(None);
    }
    let text = read(&file).map_err(Some)?;
    let origin = file.display().to_string();
    let profile = Profile::parse(&origin, &text).map_err(|e| Some(e.into()))?;
    if profile.name != name {
        let msg = format!("profile file for `{name}` is named `{}`", profile.name);
        return Err(Some(ConfigError::invalid(&origin, &text, "name", msg).into()));
    }
    let profile = Arc::new(profile);
    cache.insert(name.to_string(), profile.clone());
    Ok(profile)
}

fn no_profile(dir: &Path, name: &str) -> String {
    format!("no profile file {}", dir.join(format!("{name}.toml")).display())
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}
