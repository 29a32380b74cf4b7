//! Wire contract v1: the MQTT topics and JSON payloads exchanged between the
//! agent and the hub. Defined once here and documented in `docs/protocol.md`,
//! whose examples are parsed by this module's tests.
//!
//! Every payload carries its version in `v`. Decoding validates everything the
//! hub relies on (ids usable as topic segments, topic and payload agreeing,
//! sequence numbers growing within a batch) and never panics on input.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The payload version this build speaks.
pub const VERSION: u32 = 1;
/// Prefix of every topic of this version.
pub const ROOT: &str = "wearline/v1";

/// Why a message was refused. The hub counts malformed input by this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("topic `{0}` is not a Wearline v1 topic")]
    Topic(String),
    #[error("payload is not valid JSON for {what}: {detail}")]
    Json { what: &'static str, detail: String },
    #[error("payload version {0} is not supported (this build speaks {VERSION})")]
    Version(u32),
    #[error("invalid payload: {0}")]
    Invalid(String),
    /// A topic under `/tenants/{tenant}/` (a client-certificate gateway on the
    /// embedded broker) that names another gateway.
    #[error("gateway `{gateway}` published under tenant `{tenant}`: a gateway publishes only its own topics")]
    Tenant { tenant: String, gateway: String },
}

impl WireError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Topic(_) => "topic",
            WireError::Json { .. } => "json",
            WireError::Version(_) => "version",
            WireError::Invalid(_) => "invalid",
            WireError::Tenant { .. } => "tenant",
        }
    }
}

/// Prefix of the topics of a gateway that authenticates with a client
/// certificate on the embedded broker: rumqttd takes the certificate's
/// subject O as the tenant and lets it publish and subscribe only under
/// `/tenants/{O}/`. Such a gateway's topics are `/tenants/{gateway}/wearline/v1/{gateway}/…`.
pub const TENANT_PREFIX: &str = "/tenants/";

/// The topic prefix of `gateway` in tenant mode: `/tenants/{gateway}/`.
pub fn tenant_prefix(gateway: &str) -> String {
    format!("{TENANT_PREFIX}{gateway}/")
}

/// Checks that `gateway` can be a tenant of the embedded broker (its client
/// certificate's O): rumqttd takes only letters and digits there, so
/// 1–64 ASCII letters and digits.
pub fn validate_tenant(gateway: &str) -> Result<(), WireError> {
    let ok = !gateway.is_empty() && gateway.len() <= 64 && gateway.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(WireError::Invalid(format!(
            "`{gateway}` cannot be a tenant: use 1–64 ASCII letters and digits"
        )))
    }
}

/// Where a gateway's topics live on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicForm {
    /// `wearline/v1/{gateway}/…`: password gateways, external brokers.
    #[default]
    Plain,
    /// `/tenants/{gateway}/wearline/v1/{gateway}/…`: a gateway with a client
    /// certificate (O = its id) on the embedded broker's TLS listener, which
    /// confines it to its tenant's prefix.
    Tenant,
}

impl TopicForm {
    /// The forms a message to `gateway` (a command, a config) is published
    /// in so that it reaches the gateway however it connects: always the
    /// plain one, and the tenant one when `gateway` can be a tenant. A
    /// gateway subscribes in one form only, so it gets the message once.
    pub fn downlink(gateway: &str) -> &'static [TopicForm] {
        if validate_tenant(gateway).is_ok() {
            &[TopicForm::Plain, TopicForm::Tenant]
        } else {
            &[TopicForm::Plain]
        }
    }
}

/// Splits a tenant topic `/tenants/{tenant}/{rest}` into `(Some(tenant), rest)`,
/// and any other topic into `(None, topic)`.
pub fn split_tenant(topic: &str) -> (Option<&str>, &str) {
    match topic.strip_prefix(TENANT_PREFIX).and_then(|r| r.split_once('/')) {
        Some((tenant, rest)) => (Some(tenant), rest),
        None => (None, topic),
    }
}

/// A parsed Wearline topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `wearline/v1/{gateway}/telemetry/{device}`: [`Telemetry`], QoS 1.
    Telemetry { gateway: String, device: String },
    /// `wearline/v1/{gateway}/alerts/{device}`: [`Alert`], QoS 1.
    Alert { gateway: String, device: String },
    /// `wearline/v1/{gateway}/status`: [`GatewayStatus`], retained, also the last will.
    Status { gateway: String },
    /// `wearline/v1/{gateway}/health`: [`GatewayHealth`].
    Health { gateway: String },
    /// `wearline/v1/{gateway}/commands`: [`Command`], hub to agent, QoS 1.
    Command { gateway: String },
    /// `wearline/v1/{gateway}/command-results`: [`CommandResult`], QoS 1.
    CommandResult { gateway: String },
    /// `wearline/v1/{gateway}/config`: [`ConfigPush`], hub to agent, retained, QoS 1.
    Config { gateway: String },
    /// `wearline/v1/{gateway}/config-results`: [`ConfigResult`], QoS 1.
    ConfigResult { gateway: String },
}

impl Topic {
    /// The gateway whose topic this is.
    pub fn gateway(&self) -> &str {
        match self {
            Topic::Telemetry { gateway, .. }
            | Topic::Alert { gateway, .. }
            | Topic::Status { gateway }
            | Topic::Health { gateway }
            | Topic::Command { gateway }
            | Topic::CommandResult { gateway }
            | Topic::Config { gateway }
            | Topic::ConfigResult { gateway } => gateway,
        }
    }
}

/// Subscription filters for the hub (everything agents publish).
pub const HUB_FILTERS: [&str; 6] = [
    "wearline/v1/+/telemetry/+",
    "wearline/v1/+/alerts/+",
    "wearline/v1/+/status",
    "wearline/v1/+/health",
    "wearline/v1/+/command-results",
    "wearline/v1/+/config-results",
];

impl Topic {
    /// The topic string.
    pub fn render(&self) -> String {
        match self {
            Topic::Telemetry { gateway, device } => format!("{ROOT}/{gateway}/telemetry/{device}"),
            Topic::Alert { gateway, device } => format!("{ROOT}/{gateway}/alerts/{device}"),
            Topic::Status { gateway } => format!("{ROOT}/{gateway}/status"),
            Topic::Health { gateway } => format!("{ROOT}/{gateway}/health"),
            Topic::Command { gateway } => format!("{ROOT}/{gateway}/commands"),
            Topic::CommandResult { gateway } => format!("{ROOT}/{gateway}/command-results"),
            Topic::Config { gateway } => format!("{ROOT}/{gateway}/config"),
            Topic::ConfigResult { gateway } => format!("{ROOT}/{gateway}/config-results"),
        }
    }

    /// The topic string in `form`: the one place a tenant prefix is added.
    pub fn render_in(&self, form: TopicForm) -> String {
        match form {
            TopicForm::Plain => self.render(),
            TopicForm::Tenant => format!("{}{}", tenant_prefix(self.gateway()), self.render()),
        }
    }

    /// Parses a topic of either form. A tenant topic must name its own
    /// tenant's gateway ([`WireError::Tenant`] otherwise).
    pub fn parse_in(topic: &str) -> Result<(TopicForm, Topic), WireError> {
        let (tenant, inner) = split_tenant(topic);
        let parsed = Topic::parse(inner).map_err(|_| WireError::Topic(topic.to_string()))?;
        match tenant {
            None => Ok((TopicForm::Plain, parsed)),
            Some(t) if t == parsed.gateway() => Ok((TopicForm::Tenant, parsed)),
            Some(t) => Err(WireError::Tenant {
                tenant: t.to_string(),
                gateway: parsed.gateway().to_string(),
            }),
        }
    }

    /// Parses a topic string in the plain form.
    pub fn parse(topic: &str) -> Result<Topic, WireError> {
        let bad = || WireError::Topic(topic.to_string());
        let rest = topic
            .strip_prefix(ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| validate_id(s).map(|()| s.to_string()).map_err(|_| bad());
        match parts.as_slice() {
            [g, "telemetry", d] => Ok(Topic::Telemetry {
                gateway: id(g)?,
                device: id(d)?,
            }),
            [g, "alerts", d] => Ok(Topic::Alert {
                gateway: id(g)?,
                device: id(d)?,
            }),
            [g, "status"] => Ok(Topic::Status { gateway: id(g)? }),
            [g, "health"] => Ok(Topic::Health { gateway: id(g)? }),
            [g, "commands"] => Ok(Topic::Command { gateway: id(g)? }),
            [g, "command-results"] => Ok(Topic::CommandResult { gateway: id(g)? }),
            [g, "config"] => Ok(Topic::Config { gateway: id(g)? }),
            [g, "config-results"] => Ok(Topic::ConfigResult { gateway: id(g)? }),
            _ => Err(bad()),
        }
    }
}

/// Checks that `id` can be a topic segment: 1–64 characters of ASCII letters,
/// digits, `-`, `_`, `.` or `:`.
pub fn validate_id(id: &str) -> Result<(), WireError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(WireError::Invalid(format!("`{id}` is not a valid id")))
    }
}

/// A batch of samples from one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Payload version, [`VERSION`].
    pub v: u32,
    pub gateway: String,
    pub device: String,
    /// Name of the device profile the metrics follow.
    pub profile: String,
    /// One entry per poll, in sequence order.
    pub samples: Vec<Sample>,
}

/// One poll of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Per-device sequence number; strictly increasing over the device's life,
    /// across agent restarts. The hub drops a (device, seq) it has seen.
    pub seq: u64,
    /// Sample time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Metric name to value, after scaling.
    pub values: BTreeMap<String, f64>,
    /// Text fields (serial number, firmware version…), when the profile has any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text: BTreeMap<String, String>,
    /// The device's first sample since the agent started: sequence numbers
    /// skipped just before it (the rest of a reservation block) were never
    /// used, so the hub does not count them as a gap.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restart: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An alert raised on the edge, or its clearing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub v: u32,
    pub gateway: String,
    pub device: String,
    pub ts_ms: i64,
    /// What was detected, e.g. `temperature_drift`, `vibration_anomaly`, `stuck_sensor`.
    pub kind: String,
    pub metric: String,
    pub severity: Severity,
    /// Detector score in [0, 1].
    pub score: f64,
    /// The learned baseline the value departed from.
    pub baseline: f64,
    pub value: f64,
    pub state: AlertState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Cleared,
}

/// Whether a gateway is connected. Published retained on connect (`online`)
/// and registered as the last will (`offline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayStatus {
    pub v: u32,
    pub gateway: String,
    pub state: Connectivity,
    /// When the agent connected (for `online`) or registered its will (`offline`).
    pub since_ms: i64,
    /// Agent version.
    pub agent_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    Online,
    Offline,
}

/// Periodic gateway health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayHealth {
    pub v: u32,
    pub gateway: String,
    pub ts_ms: i64,
    /// Devices configured.
    pub devices: u32,
    /// Polls that failed since the agent started.
    pub poll_errors: u64,
    /// Samples and alerts queued on disk, not yet confirmed by the broker.
    pub buffer_depth: u64,
    /// When the oldest of them was queued, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_oldest_ms: Option<i64>,
    /// Queued entries dropped by the queue's size or age bound since start.
    #[serde(default)]
    pub buffer_evicted: u64,
    /// Damaged queue records skipped since start.
    #[serde(default)]
    pub buffer_corrupt: u64,
    /// Agent process resident memory, bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Agent process CPU use, percent of one core, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// Gateway memory in use and in total, bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    /// Free space on the disk that holds the agent's data, bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// Per-device poll counters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_polls: Vec<DevicePolls>,
}

/// Poll counters of one device since the agent started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePolls {
    pub device: String,
    pub ok: u64,
    pub errors: u64,
    /// Sample time of the last good read; absent if none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_ms: Option<i64>,
}

/// A command from the hub to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub v: u32,
    /// Unique id, so the agent can ignore a command delivered twice.
    pub id: String,
    pub ts_ms: i64,
    pub device: String,
    pub action: Action,
}

/// What a command asks the agent to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Switch an indicator on the appliance (e.g. the filter light) on or
    /// off: writes the profile's field `{indicator}_indicator`.
    SetIndicator { indicator: String, on: bool },
    /// Write a value (in the metric's units) to a writable field: a coil or
    /// holding register of the device's profile.
    Write { metric: String, value: f64 },
}

/// The outcome of a command, published by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    pub v: u32,
    /// The command's id.
    pub id: String,
    pub gateway: String,
    pub device: String,
    pub ts_ms: i64,
    pub ok: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A new agent configuration from the hub, published retained so that an
/// agent gets the current one whenever it connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPush {
    pub v: u32,
    /// Names this configuration; the agent reports it back and applies a
    /// revision once.
    pub revision: String,
    pub ts_ms: i64,
    /// The whole agent config file (TOML), as `wearline agent --config` reads it.
    pub agent_toml: String,
    /// Device profiles by name (TOML), used instead of the gateway's own files
    /// of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, String>,
}

/// Whether an agent applied a pushed configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigResult {
    pub v: u32,
    pub gateway: String,
    /// The pushed revision.
    pub revision: String,
    pub ts_ms: i64,
    /// True when the revision is in effect.
    pub ok: bool,
    /// The revision in effect after this push (the old one when it was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// Why it was refused: file, line and key where the config names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A payload type of this contract.
pub trait Payload: Serialize + DeserializeOwned {
    /// Name used in errors.
    const WHAT: &'static str;
    /// The payload's version field.
    fn version(&self) -> u32;
    /// Checks beyond the JSON shape.
    fn check(&self) -> Result<(), WireError> {
        Ok(())
    }
}

/// Serialises a payload.
pub fn encode<T: Payload>(payload: &T) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail: no maps with
    // non-string keys, no custom serialisers.
    serde_json::to_vec(payload).unwrap_or_default()
}

/// Parses and validates a payload.
pub fn decode<T: Payload>(bytes: &[u8]) -> Result<T, WireError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(p) if p.version() != VERSION => Err(WireError::Version(p.version())),
        Ok(p) => p.check().map(|()| p),
        Err(e) => {
            #[derive(Deserialize)]
            struct Peek {
                v: Option<u32>,
            }
            match serde_json::from_slice::<Peek>(bytes) {
                Ok(Peek { v: Some(v) }) if v != VERSION => Err(WireError::Version(v)),
                _ => Err(WireError::Json {
                    what: T::WHAT,
                    detail: e.to_string(),
                }),
            }
        }
    }
}

impl Payload for Telemetry {
    const WHAT: &'static str = "telemetry";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)?;
        validate_id(&self.device)?;
        if self.samples.is_empty() {
            return Err(WireError::Invalid("telemetry has no samples".into()));
        }
        if self.samples.windows(2).any(|w| w[1].seq <= w[0].seq) {
            return Err(WireError::Invalid("sample sequence numbers must increase".into()));
        }
        Ok(())
    }
}

impl Payload for Alert {
    const WHAT: &'static str = "alert";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)?;
        validate_id(&self.device)?;
        if !(0.0..=1.0).contains(&self.score) {
            return Err(WireError::Invalid(format!(
                "score {} is outside [0, 1]",
                self.score
            )));
        }
        Ok(())
    }
}

impl Payload for GatewayStatus {
    const WHAT: &'static str = "gateway status";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)
    }
}

impl Payload for GatewayHealth {
    const WHAT: &'static str = "gateway health";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)
    }
}

impl Payload for CommandResult {
    const WHAT: &'static str = "command result";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)?;
        validate_id(&self.device)
    }
}

impl Payload for ConfigPush {
    const WHAT: &'static str = "config push";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        if self.revision.is_empty() || self.revision.len() > 128 {
            return Err(WireError::Invalid("revision must be 1–128 characters".into()));
        }
        if let Some(bad) = self.profiles.keys().find(|k| validate_id(k).is_err()) {
            return Err(WireError::Invalid(format!("`{bad}` is not a valid profile name")));
        }
        Ok(())
    }
}

impl Payload for ConfigResult {
    const WHAT: &'static str = "config result";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.gateway)
    }
}

impl Payload for Command {
    const WHAT: &'static str = "command";
    fn version(&self) -> u32 {
        self.v
    }
    fn check(&self) -> Result<(), WireError> {
        validate_id(&self.device)
    }
}

/// A message from an agent, decoded and checked against its topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    Telemetry(Telemetry),
    Alert(Alert),
    Status(GatewayStatus),
    Health(GatewayHealth),
    CommandResult(CommandResult),
    ConfigResult(ConfigResult),
}

/// Decodes a message an agent published, checking that the ids in the
/// payload match the topic it arrived on.
///
/// A topic under [`TENANT_PREFIX`] is accepted only when its tenant is the
/// gateway its inner topic names ([`WireError::Tenant`] otherwise), and the
/// payload is then checked against the inner topic as usual.
pub fn decode_uplink(topic: &str, payload: &[u8]) -> Result<Uplink, WireError> {
    let (_, parsed) = Topic::parse_in(topic)?;
    let mismatch = |what: &str| WireError::Invalid(format!("payload {what} does not match topic `{topic}`"));
    match parsed {
        Topic::Telemetry { gateway, device } => {
            let t: Telemetry = decode(payload)?;
            if t.gateway != gateway || t.device != device {
                return Err(mismatch("gateway/device"));
            }
            Ok(Uplink::Telemetry(t))
        }
        Topic::Alert { gateway, device } => {
            let a: Alert = decode(payload)?;
            if a.gateway != gateway || a.device != device {
                return Err(mismatch("gateway/device"));
            }
            Ok(Uplink::Alert(a))
        }
        Topic::Status { gateway } => {
            let s: GatewayStatus = decode(payload)?;
            if s.gateway != gateway {
                return Err(mismatch("gateway"));
            }
            Ok(Uplink::Status(s))
        }
        Topic::Health { gateway } => {
            let h: GatewayHealth = decode(payload)?;
            if h.gateway != gateway {
                return Err(mismatch("gateway"));
            }
            Ok(Uplink::Health(h))
        }
        Topic::CommandResult { gateway } => {
            let r: CommandResult = decode(payload)?;
            if r.gateway != gateway {
                return Err(mismatch("gateway"));
            }
            Ok(Uplink::CommandResult(r))
        }
        Topic::ConfigResult { gateway } => {
            let r: ConfigResult = decode(payload)?;
            if r.gateway != gateway {
                return Err(mismatch("gateway"));
            }
            Ok(Uplink::ConfigResult(r))
        }
        Topic::Command { .. } | Topic::Config { .. } => Err(WireError::Topic(topic.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fenced blocks of `docs/protocol.md` tagged `json topic=...`, as
    /// `(topic, body)`.
    fn protocol_examples() -> Vec<(String, String)> {
        let doc = include_str!("../../docs/protocol.md");
        let mut out = Vec::new();
        let mut lines = doc.lines();
        while let Some(line) = lines.next() {
            if let Some(topic) = line.trim().strip_prefix("```json topic=") {
                let body: String = lines
                    .by_ref()
                    .take_while(|l| l.trim() != "```")
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push((topic.trim().to_string(), body));
            }
        }
        out
    }

    /// Hostile input: the protocol examples truncated, with bytes flipped,
    /// and with numbers replaced by out-of-range or non-finite spellings. The
    /// decoder must never panic, and whatever it accepts must be valid (the
    /// same property the `decode_uplink` fuzz target in `models/fuzz` checks
    /// with coverage guidance).
    #[test]
    fn hostile_payloads_never_panic_and_never_pass_bad_values() {
        let examples = protocol_examples();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for (topic, body) in &examples {
            let bytes = body.as_bytes();
            let mut cases: Vec<Vec<u8>> = (0..bytes.len()).step_by(7).map(|n| bytes[..n].to_vec()).collect();
            for _ in 0..300 {
                let mut m = bytes.to_vec();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % m.len().max(1);
                    if let Some(b) = m.get_mut(i) {
                        *b = (next() % 256) as u8;
                    }
                }
                cases.push(m);
            }
            for bad in [
                "1e999",
                "-1e999",
                "NaN",
                "Infinity",
                "null",
                "\"1\"",
                "1e308",
                "18446744073709551616",
            ] {
                cases.push(body.replacen(": 1", &format!(": {bad}"), 1).into_bytes());
            }
            for case in cases {
                if let Ok(Uplink::Telemetry(t)) = decode_uplink(topic, &case) {
                    accepted += 1;
                    assert!(
                        t.samples.iter().all(|s| s.values.values().all(|v| v.is_finite())),
                        "accepted a non-finite value: {}",
                        String::from_utf8_lossy(&case)
                    );
                }
            }
        }
        assert!(
            accepted > 0,
            "some mutations (e.g. of a value's digits) stay valid"
        );
    }

    /// The examples in `docs/protocol.md`: each fenced block tagged
    /// `json topic=...` must decode on that topic and survive a round trip.
    #[test]
    fn protocol_doc_examples_decode() {
        let mut checked = 0;
        for (topic, body) in protocol_examples() {
            let topic = topic.as_str();
            let (form, parsed) = Topic::parse_in(topic).unwrap_or_else(|e| panic!("{topic}: {e}"));
            assert_eq!(parsed.render_in(form), topic);
            if let Topic::Command { .. } = parsed {
                let c: Command = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{topic}: {e}\n{body}"));
                assert_eq!(decode::<Command>(&encode(&c)), Ok(c));
            } else if let Topic::Config { .. } = parsed {
                let c: ConfigPush =
                    decode(body.as_bytes()).unwrap_or_else(|e| panic!("{topic}: {e}\n{body}"));
                assert_eq!(decode::<ConfigPush>(&encode(&c)), Ok(c));
            } else {
                let m =
                    decode_uplink(topic, body.as_bytes()).unwrap_or_else(|e| panic!("{topic}: {e}\n{body}"));
                let again = match &m {
                    Uplink::Telemetry(t) => encode(t),
                    Uplink::Alert(a) => encode(a),
                    Uplink::Status(s) => encode(s),
                    Uplink::Health(h) => encode(h),
                    Uplink::CommandResult(r) => encode(r),
                    Uplink::ConfigResult(r) => encode(r),
                };
                assert_eq!(decode_uplink(topic, &again), Ok(m));
            }
            checked += 1;
        }
        assert!(
            checked >= 5,
            "docs/protocol.md should show every payload; found {checked}"
        );
    }

    fn telemetry() -> Telemetry {
        Telemetry {
            v: 1,
            gateway: "gw-1".into(),
            device: "d1".into(),
            profile: "air-purifier".into(),
            samples: vec![
                Sample {
                    seq: 7,
                    ts_ms: 1000,
                    values: [("filter_dp".to_string(), 120.5)].into(),
                    text: BTreeMap::new(),
                    restart: false,
                },
                Sample {
                    seq: 8,
                    ts_ms: 2000,
                    values: [("filter_dp".to_string(), 121.0)].into(),
                    text: BTreeMap::new(),
                    restart: false,
                },
            ],
        }
    }

    #[test]
    fn telemetry_round_trips() {
        let t = telemetry();
        let topic = Topic::Telemetry {
            gateway: "gw-1".into(),
            device: "d1".into(),
        }
        .render();
        assert_eq!(topic, "wearline/v1/gw-1/telemetry/d1");
        assert_eq!(decode_uplink(&topic, &encode(&t)), Ok(Uplink::Telemetry(t)));
    }

    #[test]
    fn tenant_topics_carry_only_their_own_gateway() {
        let t = telemetry();
        let own = format!("{}wearline/v1/gw-1/telemetry/d1", tenant_prefix("gw-1"));
        assert_eq!(own, "/tenants/gw-1/wearline/v1/gw-1/telemetry/d1");
        assert_eq!(decode_uplink(&own, &encode(&t)), Ok(Uplink::Telemetry(t.clone())));
        // Another gateway's topic under this tenant: refused whatever the payload says.
        check_refused(
            "/tenants/gw1/wearline/v1/gw-1/telemetry/d1",
            &encode(&t),
            "tenant",
        );
        check_refused(
            "/tenants/gw1/wearline/v1/gw-1/telemetry/d1",
            b"{not json",
            "tenant",
        );
        // The payload must still agree with the inner topic.
        check_refused(
            "/tenants/gw-2/wearline/v1/gw-2/telemetry/d1",
            &encode(&t),
            "invalid",
        );
        check_refused("/tenants/gw-1/other/v1/gw-1/status", b"{}", "topic");
        check_refused("/tenants/gw-1", b"{}", "topic");
        assert_eq!(
            split_tenant("wearline/v1/g/status"),
            (None, "wearline/v1/g/status")
        );
    }

    #[test]
    fn topics_render_and_parse_in_both_forms() {
        let topics = [
            Topic::Telemetry {
                gateway: "gw1".into(),
                device: "d-1".into(),
            },
            Topic::Alert {
                gateway: "gw1".into(),
                device: "d-1".into(),
            },
            Topic::Status {
                gateway: "gw1".into(),
            },
            Topic::Health {
                gateway: "gw1".into(),
            },
            Topic::Command {
                gateway: "gw1".into(),
            },
            Topic::CommandResult {
                gateway: "gw1".into(),
            },
            Topic::Config {
                gateway: "gw1".into(),
            },
            Topic::ConfigResult {
                gateway: "gw1".into(),
            },
        ];
        for t in topics {
            let plain = t.render_in(TopicForm::Plain);
            let tenant = t.render_in(TopicForm::Tenant);
            assert_eq!(plain, t.render());
            assert_eq!(tenant, format!("/tenants/gw1/{plain}"));
            assert_eq!(Topic::parse_in(&plain), Ok((TopicForm::Plain, t.clone())));
            assert_eq!(Topic::parse_in(&tenant), Ok((TopicForm::Tenant, t.clone())));
        }
        assert_eq!(
            Topic::parse_in("/tenants/gw2/wearline/v1/gw1/commands").map_err(|e| e.reason()),
            Err("tenant")
        );
        assert_eq!(
            Topic::parse_in("/tenants/gw1/commands").map_err(|e| e.reason()),
            Err("topic")
        );
    }

    #[test]
    fn tenants_are_letters_and_digits() {
        assert!(validate_tenant("gw1").is_ok());
        assert!(validate_tenant("GatewayLab7").is_ok());
        for bad in ["", "gw-1", "gw_1", "gw.1", "gw:1", "gwé", &"x".repeat(65)] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
        assert_eq!(TopicForm::downlink("gw1"), &[TopicForm::Plain, TopicForm::Tenant]);
        assert_eq!(TopicForm::downlink("gw-lab-1"), &[TopicForm::Plain]);
    }

    #[track_caller]
    fn check_refused(topic: &str, payload: &[u8], reason: &str) {
        let err = decode_uplink(topic, payload).expect_err("must be refused");
        assert_eq!(err.reason(), reason, "{err}");
    }

    #[test]
    fn malformed_input_is_refused_with_a_reason() {
        let topic = "wearline/v1/gw-1/telemetry/d1";
        check_refused(topic, b"{not json", "json");
        check_refused(topic, b"", "json");
        check_refused(topic, br#"{"v":2,"gateway":"gw-1"}"#, "version");
        check_refused("wearline/v1/gw-1/telemetry", b"{}", "topic");
        check_refused("other/v1/gw-1/status", b"{}", "topic");
        check_refused("wearline/v1/gw+1/status", b"{}", "topic");

        let mut t = telemetry();
        t.samples[1].seq = 7;
        check_refused(topic, &encode(&t), "invalid");
        let mut t = telemetry();
        t.device = "d2".into();
        check_refused(topic, &encode(&t), "invalid");
        let mut t = telemetry();
        t.samples.clear();
        check_refused(topic, &encode(&t), "invalid");
        let with_extra = String::from_utf8(encode(&telemetry()))
            .unwrap_or_default()
            .replacen('{', r#"{"x":1,"#, 1);
        check_refused(topic, with_extra.as_bytes(), "json");
    }

    #[test]
    fn ids_are_topic_safe() {
        assert!(validate_id("purifier-0001").is_ok());
        for bad in ["", "a/b", "a+b", "a#", "é", &"x".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
