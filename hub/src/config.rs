//! The hub's config file: broker, HTTP API, store (with history retention),
//! profiles, the optional InfluxDB sink and reminder delivery
//! (`[reminders]`, e-mail over SMTP).
//!
//! Unknown keys, wrong types and invalid values are errors that name the
//! file, the line and the key.

use crate::passwords::PasswordFile;
use crate::store::{Location, Retention};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wearline_models::config::{ConfigError, host_port, parse_toml};
use wearline_models::profile::Profile;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    broker: BrokerConfig,
    #[serde(default)]
    http: HttpConfig,
    store: StoreConfig,
    /// Raw telemetry also written to InfluxDB; absent: no sink.
    influx: Option<RawInflux>,
    #[serde(default)]
    ingest: IngestSection,
    /// The `indicator` reminder channel.
    #[serde(default)]
    indicator: IndicatorSection,
    /// Reminder delivery; absent: no e-mail channel.
    #[serde(default)]
    reminders: RawReminders,
    /// Who hears of overdue work orders.
    #[serde(default)]
    escalation: RawEscalation,
    /// Folder of device profiles, relative to the config file.
    #[serde(default = "default_profiles_dir")]
    profiles_dir: PathBuf,
}

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("profiles")
}

/// How ingest judges devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    /// A device heard from no message for this many seconds is offline (an alert).
    #[serde(default = "default_offline_after_secs")]
    offline_after_secs: u64,
    /// What to do with telemetry from a device the hub does not know.
    #[serde(default)]
    unknown_devices: UnknownDevices,
    /// Devices the hub knows beforehand: one id per line, `#` comments;
    /// relative to the config file.
    #[serde(default)]
    devices_file: Option<PathBuf>,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            offline_after_secs: default_offline_after_secs(),
            unknown_devices: UnknownDevices::default(),
            devices_file: None,
        }
    }
}

/// Telemetry from a device the hub does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDevices {
    /// Register it on its first message.
    #[default]
    Register,
    /// Refuse it (counted and logged): only devices in `devices_file` or
    /// already registered are taken.
    Reject,
}

const fn default_offline_after_secs() -> u64 {
    300
}

/// The `indicator` reminder channel: lighting an appliance's indicator
/// through its gateway's agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorSection {
    /// How long an attempt waits for the agent's result before it counts
    /// as failed (and is retried with the reminders' backoff).
    #[serde(default = "default_result_timeout_secs")]
    result_timeout_secs: u64,
}

impl Default for IndicatorSection {
    fn default() -> Self {
        IndicatorSection {
            result_timeout_secs: default_result_timeout_secs(),
        }
    }
}

const fn default_result_timeout_secs() -> u64 {
    crate::reminders::indicator::DEFAULT_RESULT_TIMEOUT.as_secs()
}

/// Which MQTT broker the hub uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// Run rumqttd inside the hub process.
    Embedded,
    /// Connect to a broker that runs elsewhere.
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `embedded` (default) or `external`.
    #[serde(default = "default_broker_kind")]
    pub kind: BrokerKind,
    /// Embedded: where the broker listens (port 0 picks a free port).
    /// External: the broker's `host:port`.
    pub address: String,
    /// MQTT client id of the hub's subscriber.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// External broker: subscribe through this shared-subscription group
    /// (`$share/GROUP/…`), so that several hubs split one fleet, each message
    /// going to one of them. Every hub of a group needs its own `client_id`,
    /// kept across restarts (its persistent session holds what it had not
    /// acknowledged).
    #[serde(default)]
    pub shared_group: Option<String>,
    /// Embedded: every client must log in as a user of this mosquitto
    /// password file (`user:$7$…`, from `mosquitto_passwd`), relative to the
    /// config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Embedded: most client connections at once.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Embedded: largest MQTT packet accepted; a bigger one disconnects its client.
    #[serde(default)]
    pub max_payload_bytes: Option<usize>,
    /// Embedded: telemetry held for a subscriber that falls behind, MiB.
    #[serde(default)]
    pub backlog_mib: Option<usize>,
    /// Embedded: a TLS listener for gateways with client certificates.
    #[serde(default)]
    pub tls: Option<BrokerTls>,
}

/// `[broker.tls]`: the embedded broker's TLS listener. Paths are relative
/// to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerTls {
    /// Where the TLS listener listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The broker's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The broker's private key (PEM).
    pub key_file: PathBuf,
    /// The CA that signs the gateways' client certificates (PEM; its first
    /// certificate is used). Required: rumqttd's tenant check needs them.
    pub client_ca_file: PathBuf,
}

/// Highest `max_connections`.
const MAX_CONNECTIONS_LIMIT: usize = 100_000;
/// `max_payload_bytes` bounds.
const PAYLOAD_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=(256 << 20);
/// `backlog_mib` bounds.
const BACKLOG_MIB_RANGE: std::ops::RangeInclusive<usize> = 8..=4096;

const fn default_broker_kind() -> BrokerKind {
    BrokerKind::Embedded
}
fn default_client_id() -> String {
    "wearline-hub".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the REST API listens.
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
    /// A file holding an admin token (one line, at least 32 visible
    /// characters, e.g. from `openssl rand -hex 32`), relative to the config
    /// file. The hub records it at start as the admin token `bootstrap`, so a
    /// fresh installation (or a test) can call the API before any token was
    /// made with `wearline token create`. Revoking it sticks; a new token in
    /// the file replaces the old one at the next start.
    #[serde(default)]
    pub bootstrap_token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http(),
            bootstrap_token_file: None,
        }
    }
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file, relative to the config file; created and migrated at start.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user:password@host:port/database`) instead.
    #[serde(default)]
    pub postgres: Option<String>,
    /// How often new samples are rolled up into the 1-minute and 1-hour
    /// history. Longer merges more samples per bucket write.
    #[serde(default = "default_rollup_every_secs")]
    pub rollup_every_secs: u64,
    /// How long each resolution of the history is kept.
    #[serde(default)]
    pub retention: RetentionSection,
}

const fn default_rollup_every_secs() -> u64 {
    60
}

/// `[store.retention]`: days each resolution is kept; 0 keeps it forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Raw samples.
    #[serde(default = "default_raw_days")]
    pub raw_days: u32,
    /// 1-minute rollups.
    #[serde(default = "default_minute_days")]
    pub minute_days: u32,
    /// 1-hour rollups.
    #[serde(default)]
    pub hour_days: u32,
}

const fn default_raw_days() -> u32 {
    7
}
const fn default_minute_days() -> u32 {
    90
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            raw_days: default_raw_days(),
            minute_days: default_minute_days(),
            hour_days: 0,
        }
    }
}

/// Validates `[store.retention]`: a finer resolution is kept no longer than
/// a coarser one (0, forever, is the longest).
fn retention(
    raw: &RetentionSection,
    invalid: &dyn Fn(&str, &str) -> LoadError,
) -> Result<Retention, LoadError> {
    let days = |d: u32| (d > 0).then(|| Duration::from_secs(u64::from(d) * 86_400));
    let keep = |d: u32| if d == 0 { u64::MAX } else { u64::from(d) };
    let steps = [
        ("raw_days", raw.raw_days, "minute_days", raw.minute_days),
        ("minute_days", raw.minute_days, "hour_days", raw.hour_days),
    ];
    for (fine, f, coarse, c) in steps {
        if keep(f) > keep(c) {
            let shown = |d: u32| {
                if d == 0 {
                    "forever (0)".to_string()
                } else {
                    format!("{d} days")
                }
            };
            return Err(invalid(
                &format!("store.retention.{fine}"),
                &format!(
                    "keeps {} but `{coarse}` keeps {}: a finer resolution may not outlive a coarser one",
                    shown(f),
                    shown(c)
                ),
            ));
        }
    }
    Ok(Retention {
        raw: days(raw.raw_days),
        minute: days(raw.minute_days),
        hour: days(raw.hour_days),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInflux {
    /// Base URL, `http://host:port` or `https://…`, with no path.
    url: String,
    /// Organisation (InfluxDB 2); ignored by victoria-metrics.
    #[serde(default)]
    org: String,
    /// Bucket the points go to.
    bucket: String,
    /// API token; or `token_file`, or neither for a server without auth.
    token: Option<String>,
    /// File holding the token (trimmed), relative to the config file.
    token_file: Option<PathBuf>,
    /// A batch is written once it holds this many points…
    #[serde(default = "default_batch_points")]
    batch_points: usize,
    /// …or this long after its oldest point was accepted.
    #[serde(default = "default_flush_ms")]
    flush_ms: u64,
    /// Most points held in memory (queued or being written); ingest waits
    /// for room beyond it.
    #[serde(default = "default_max_queue_points")]
    max_queue_points: usize,
    /// How long after it was accepted a point is retried before it is dropped
    /// and counted as `retry_exhausted`.
    #[serde(default = "default_retry_max_secs")]
    retry_max_secs: u64,
    /// Time limit of one write or readiness request.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

const fn default_batch_points() -> usize {
    5000
}
const fn default_flush_ms() -> u64 {
    200
}
const fn default_max_queue_points() -> usize {
    200_000
}
const fn default_retry_max_secs() -> u64 {
    30
}
const fn default_timeout_ms() -> u64 {
    10_000
}

/// Most points a queue may hold: its permits are counted in `u32`.
const MAX_QUEUE_LIMIT: usize = 100_000_000;

/// The validated `[influx]` section.
#[derive(Clone)]
pub struct InfluxConfig {
    /// Base URL with no path (the influxdb2 crate replaces it).
    pub url: url::Url,
    pub org: String,
    pub bucket: String,
    /// Empty for a server without authentication.
    pub token: String,
    pub batch_points: usize,
    pub flush: Duration,
    pub max_queue_points: usize,
    pub retry_max: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url.as_str())
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("batch_points", &self.batch_points)
            .field("flush", &self.flush)
            .field("max_queue_points", &self.max_queue_points)
            .field("retry_max", &self.retry_max)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `[escalation]`: who is told when a work order misses a service-level
/// target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    /// Addresses e-mailed (through `[reminders.smtp]`) on each escalation.
    #[serde(default)]
    notify_email: Vec<String>,
}

/// `[reminders]`: how reminders are delivered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReminders {
    /// The e-mail channel's SMTP relay; absent: no e-mail channel.
    smtp: Option<RawSmtp>,
    /// For tests: the first retry's wait (then doubling, at most 60 times
    /// it); default a minute.
    retry_first_ms: Option<u64>,
    /// For tests: how often due reminders are sent; default 5 s.
    deliver_every_ms: Option<u64>,
}

/// `[reminders.smtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    /// Default by `tls`: 25, 587 (`starttls`), 465 (`tls`).
    port: Option<u16>,
    #[serde(default)]
    tls: SmtpTls,
    /// The sender, `reminders@example.com` or `Wearline <reminders@example.com>`.
    from: String,
    username: Option<String>,
    /// File holding the password (its line ending dropped), relative to the
    /// config file.
    password_file: Option<PathBuf>,
    /// PEM file of the CA that signs the relay's certificate, relative to
    /// the config file; trusted instead of the public roots.
    ca_file: Option<PathBuf>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (a relay on the same machine or network).
    None,
    /// Plain connection upgraded with STARTTLS, which is required.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// The validated `[reminders.smtp]` section.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: lettre::message::Mailbox,
    /// User name and password (from `password_file`).
    pub login: Option<(String, String)>,
    /// PEM of the CA trusted instead of the public roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("username", &self.login.as_ref().map(|(u, _)| u))
            .field("password", &self.login.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_pem.is_some())
            .finish()
    }
}

/// The validated `[reminders]` section.
#[derive(Debug, Clone)]
pub struct RemindersConfig {
    /// The e-mail channel's relay; `None`: no e-mail channel.
    pub smtp: Option<SmtpConfig>,
    /// The first retry's wait (doubling, at most 60 times it).
    pub retry_first: Duration,
    pub deliver_every: Duration,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        RemindersConfig {
            smtp: None,
            retry_first: Duration::from_secs(60),
            deliver_every: crate::reminders::DELIVER_EVERY,
        }
    }
}

/// A validated hub config.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    /// The database: an SQLite file or a PostgreSQL server.
    pub store: Location,
    /// How long raw samples and each rollup resolution are kept.
    pub retention: Retention,
    /// How often new samples are rolled up.
    pub rollup_every: Duration,
    /// The InfluxDB sink, when configured.
    pub influx: Option<InfluxConfig>,
    /// A device silent this long is offline.
    pub offline_after: std::time::Duration,
    /// How long an `indicator` reminder's attempt waits for the agent's result.
    pub indicator_result_timeout: Duration,
    pub unknown_devices: UnknownDevices,
    /// Devices known beforehand (from `devices_file`).
    pub known_devices: std::collections::BTreeSet<String>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// The embedded broker's credentials (`broker.password_file`).
    pub passwords: Option<std::sync::Arc<PasswordFile>>,
    /// SHA-256 (hex) of the token in `http.bootstrap_token_file`.
    pub bootstrap_token_hash: Option<String>,
    /// Reminder delivery (`[reminders]`).
    pub reminders: RemindersConfig,
    /// Addresses told of each escalation by e-mail (`[escalation]`).
    pub escalation_notify: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl HubConfig {
    /// Reads and validates the config at `path` and every profile in its folder.
    pub fn load(path: &Path) -> Result<HubConfig, LoadError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&path.display().to_string(), &text, base)
    }

    pub fn parse(origin: &str, text: &str, base: &Path) -> Result<HubConfig, LoadError> {
        let raw: RawConfig = parse_toml(origin, text)?;
        let invalid = |key: &str, msg: &str| LoadError::Invalid(ConfigError::invalid(origin, text, key, msg));
        if host_port(&raw.broker.address).is_none() {
            return Err(invalid("broker.address", "expected `host:port`"));
        }
        if raw.broker.kind == BrokerKind::Embedded && raw.broker.address.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "broker.address",
                "the embedded broker needs an IP address and port, e.g. `127.0.0.1:1883`",
            ));
        }
        if raw.broker.username.is_some() != raw.broker.password.is_some() {
            return Err(invalid(
                "broker.username",
                "set both `username` and `password`, or neither",
            ));
        }
        if let Some(g) = &raw.broker.shared_group {
            if raw.broker.kind == BrokerKind::Embedded {
                return Err(invalid(
                    "broker.shared_group",
                    "shared subscriptions split a fleet between hubs on an external broker; the embedded broker has one hub",
                ));
            }
            if g.is_empty() || g.contains(['/', '+', '#']) {
                return Err(invalid(
                    "broker.shared_group",
                    "a group name is non-empty and has no `/`, `+` or `#`",
                ));
            }
        }
        let retention = retention(&raw.store.retention, &invalid)?;
        if raw.store.rollup_every_secs == 0 || raw.store.rollup_every_secs > 3600 {
            return Err(invalid(
                "store.rollup_every_secs",
                "must be between 1 and 3600 seconds",
            ));
        }
        let rollup_every = Duration::from_secs(raw.store.rollup_every_secs);
        let store = match (raw.store.sqlite, raw.store.postgres) {
            (Some(path), None) => Location::Sqlite(base.join(path)),
            (None, Some(url)) => {
                let ok = url::Url::parse(&url)
                    .map(|u| matches!(u.scheme(), "postgres" | "postgresql") && u.host_str().is_some())
                    .unwrap_or(false);
                if !ok {
                    return Err(invalid(
                        "store.postgres",
                        "expected a URL `postgres://user:password@host:port/database`",
                    ));
                }
                Location::Postgres(url)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "store.postgres",
                    "set `sqlite` (a file) or `postgres` (a URL), not both",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "store.sqlite",
                    "set `sqlite` (a file, e.g. `sqlite = \"hub.db\"`) or `postgres` (a URL)",
                ));
            }
        };
        let mut broker = raw.broker;
        let passwords = embedded_security(&mut broker, base, &invalid)?;
        let influx = match raw.influx {
            Some(i) => Some(influx(i, base, &invalid)?),
            None => None,
        };
        if raw.ingest.offline_after_secs == 0 {
            return Err(invalid("ingest.offline_after_secs", "must be at least 1 second"));
        }
        if !(1..=86_400).contains(&raw.indicator.result_timeout_secs) {
            return Err(invalid(
                "indicator.result_timeout_secs",
                "must be 1 to 86400 seconds",
            ));
        }
        let mut known_devices = std::collections::BTreeSet::new();
        if let Some(f) = &raw.ingest.devices_file {
            let path = base.join(f);
            let list = read(&path)?;
            for (i, line) in list.lines().enumerate() {
                let id = line.split('#').next().unwrap_or("").trim();
                if id.is_empty() {
                    continue;
                }
                if let Err(e) = wearline_models::wire::validate_id(id) {
                    let mut err = ConfigError::invalid(
                        &path.display().to_string(),
                        &list,
                        "",
                        format!("device id `{id}`: {e}"),
                    );
                    err.line = Some(i + 1);
                    return Err(LoadError::Invalid(err));
                }
                known_devices.insert(id.to_string());
            }
        } else if raw.ingest.unknown_devices == UnknownDevices::Reject {
            return Err(invalid(
                "ingest.unknown_devices",
                "`reject` needs `devices_file`, the list of devices the hub takes",
            ));
        }
        let mut http = raw.http;
        let bootstrap_token_hash = match &http.bootstrap_token_file {
            Some(f) => {
                let path = base.join(f);
                let text = read(&path)?;
                let token = text.trim();
                if let Err(msg) = crate::auth::check_token_text(token) {
                    return Err(invalid(
                        "http.bootstrap_token_file",
                        &format!("{}: {msg}", path.display()),
                    ));
                }
                http.bootstrap_token_file = Some(path);
                Some(crate::auth::hash(token))
            }
            None => None,
        };
        let reminders = reminders(raw.reminders, base, &invalid)?;
        let escalation_notify: Vec<String> = raw
            .escalation
            .notify_email
            .iter()
            .map(|a| a.trim().to_string())
            .collect();
        if let Some(bad) = escalation_notify
            .iter()
            .find(|a| a.parse::<lettre::Address>().is_err())
        {
            return Err(invalid(
                "escalation.notify_email",
                &format!("`{bad}` is not an e-mail address such as service@example.com"),
            ));
        }
        if !escalation_notify.is_empty() && reminders.smtp.is_none() {
            return Err(invalid(
                "escalation.notify_email",
                "needs `[reminders.smtp]`, the relay the notifications go through",
            ));
        }
        let dir = base.join(&raw.profiles_dir);
        let profiles = load_profiles(&dir)?;
        Ok(HubConfig {
            broker,
            http,
            store,
            retention,
            rollup_every,
            influx,
            offline_after: std::time::Duration::from_secs(raw.ingest.offline_after_secs),
            indicator_result_timeout: Duration::from_secs(raw.indicator.result_timeout_secs),
            unknown_devices: raw.ingest.unknown_devices,
            known_devices,
            profiles,
            passwords,
            bootstrap_token_hash,
            reminders,
            escalation_notify,
        })
    }
}

/// Checks the embedded broker's security keys, resolves their paths against
/// `base` and reads the password file.
fn embedded_security(
    b: &mut BrokerConfig,
    base: &Path,
    invalid: &dyn Fn(&str, &str) -> LoadError,
) -> Result<Option<std::sync::Arc<PasswordFile>>, LoadError> {
    if b.kind == BrokerKind::External {
        for (key, set) in [
            ("broker.password_file", b.password_file.is_some()),
            ("broker.max_connections", b.max_connections.is_some()),
            ("broker.max_payload_bytes", b.max_payload_bytes.is_some()),
            ("broker.backlog_mib", b.backlog_mib.is_some()),
            ("broker.tls", b.tls.is_some()),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "only for the embedded broker; configure an external broker itself (see docs/configuration.md)",
                ));
            }
        }
        return Ok(None);
    }
    let limits = [
        (
            "broker.max_connections",
            b.max_connections,
            1..=MAX_CONNECTIONS_LIMIT,
        ),
        (
            "broker.max_payload_bytes",
            b.max_payload_bytes,
            PAYLOAD_BYTES_RANGE,
        ),
        ("broker.backlog_mib", b.backlog_mib, BACKLOG_MIB_RANGE),
    ];
    for (key, value, range) in limits {
        if let Some(n) = value
            && !range.contains(&n)
        {
            return Err(invalid(
                key,
                &format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }
    if let Some(t) = &mut b.tls {
        let plain_loopback = b
            .address
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if !plain_loopback {
            return Err(invalid(
                "broker.address",
                "with `[broker.tls]`, the plain listener must be on loopback (127.0.0.1 or ::1): traffic that leaves the machine goes over TLS",
            ));
        }
        for (key, path, marker) in [
            (
                "broker.tls.cert_file",
                &mut t.cert_file,
                "-----BEGIN CERTIFICATE-----",
            ),
            ("broker.tls.key_file", &mut t.key_file, "PRIVATE KEY-----"),
            (
                "broker.tls.client_ca_file",
                &mut t.client_ca_file,
                "-----BEGIN CERTIFICATE-----",
            ),
        ] {
            *path = base.join(&*path);
            let text = std::fs::read_to_string(&*path)
                .map_err(|e| invalid(key, &format!("cannot read {}: {e}", path.display())))?;
            if !text.contains(marker) {
                return Err(invalid(
                    key,
                    &format!("{} is not a PEM file with `{marker}`", path.display()),
                ));
            }
        }
    }
    match &mut b.password_file {
        Some(f) => {
            *f = base.join(&*f);
            let text = read(f)?;
            let file = PasswordFile::parse(&f.display().to_string(), &text)?;
            if file.is_empty() {
                return Err(invalid(
                    "broker.password_file",
                    &format!("{} has no user: no device could log in", f.display()),
                ));
            }
            Ok(Some(std::sync::Arc::new(file)))
        }
        None => Ok(None),
    }
}

/// Validates the `[influx]` section into typed values.
fn influx(
    raw: RawInflux,
    base: &Path,
    invalid: &dyn Fn(&str, &str) -> LoadError,
) -> Result<InfluxConfig, LoadError> {
    let url = url::Url::parse(&raw.url).map_err(|e| {
        invalid(
            "influx.url",
            &format!("not a URL ({e}), e.g. `http://127.0.0.1:8086`"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "influx.url",
            "expected `http://host:port` or `https://host:port`",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(invalid(
            "influx.url",
            "the server must be at the root: influxdb2 replaces the URL's path",
        ));
    }
    if raw.bucket.is_empty() {
        return Err(invalid("influx.bucket", "must not be empty"));
    }
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "influx.token_file",
                "set `token` or `token_file`, not both",
            ));
        }
        (Some(t), None) => t,
        (None, Some(file)) => read(&base.join(file))?.trim().to_string(),
        (None, None) => String::new(),
    };
    if raw.batch_points == 0 {
        return Err(invalid("influx.batch_points", "must be at least 1"));
    }
    if raw.max_queue_points < raw.batch_points || raw.max_queue_points > MAX_QUEUE_LIMIT {
        return Err(invalid(
            "influx.max_queue_points",
            &format!("must be between `batch_points` and {MAX_QUEUE_LIMIT}"),
        ));
    }
    for (key, v) in [
        ("influx.flush_ms", raw.flush_ms),
        ("influx.timeout_ms", raw.timeout_ms),
    ] {
        if v == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    Ok(InfluxConfig {
        url,
        org: raw.org,
        bucket: raw.bucket,
        token,
        batch_points: raw.batch_points,
        flush: Duration::from_millis(raw.flush_ms),
        max_queue_points: raw.max_queue_points,
        retry_max: Duration::from_secs(raw.retry_max_secs),
        timeout: Duration::from_millis(raw.timeout_ms),
    })
}

/// Validates `[reminders]`: the SMTP relay (an address, a sender, a login
/// only over TLS unless on loopback, a readable password and CA file) and
/// the test keys.
fn reminders(
    raw: RawReminders,
    base: &Path,
    invalid: &dyn Fn(&str, &str) -> LoadError,
) -> Result<RemindersConfig, LoadError> {
    let mut out = RemindersConfig::default();
    if let Some(ms) = raw.retry_first_ms {
        if !(100..=3_600_000).contains(&ms) {
            return Err(invalid(
                "reminders.retry_first_ms",
                "must be between 100 and 3600000 (for tests; the default is a minute)",
            ));
        }
        out.retry_first = Duration::from_millis(ms);
    }
    if let Some(ms) = raw.deliver_every_ms {
        if !(50..=60_000).contains(&ms) {
            return Err(invalid(
                "reminders.deliver_every_ms",
                "must be between 50 and 60000 (for tests; the default is 5000)",
            ));
        }
        out.deliver_every = Duration::from_millis(ms);
    }
    let Some(s) = raw.smtp else {
        return Ok(out);
    };
    let host = s.host.trim().to_string();
    if host.is_empty() || (host.contains([' ', '/', ':']) && host.parse::<std::net::IpAddr>().is_err()) {
        return Err(invalid(
            "reminders.smtp.host",
            "expected the relay's host name or IP address, e.g. `smtp.example.com`",
        ));
    }
    let port = s.port.unwrap_or(match s.tls {
        SmtpTls::None => 25,
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
    });
    if port == 0 {
        return Err(invalid("reminders.smtp.port", "must be 1 to 65535"));
    }
    let from: lettre::message::Mailbox = s.from.parse().map_err(|e| {
        invalid(
            "reminders.smtp.from",
            &format!(
                "`{}` is not an e-mail address ({e}); e.g. `Wearline <reminders@example.com>`",
                s.from
            ),
        )
    })?;
    let login = match (s.username, s.password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "reminders.smtp.password_file",
                    &format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let password = text.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() || password.contains(['\r', '\n']) {
                return Err(invalid(
                    "reminders.smtp.password_file",
                    &format!("{} must hold the password on one line", path.display()),
                ));
            }
            if user.is_empty() {
                return Err(invalid("reminders.smtp.username", "must not be empty"));
            }
            Some((user, password))
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                "reminders.smtp.username",
                "set both `username` and `password_file`, or neither",
            ));
        }
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if s.tls == SmtpTls::None && login.is_some() && !loopback {
        return Err(invalid(
            "reminders.smtp.tls",
            "`none` would send the password in clear over the network: use `starttls` or `tls` (or a relay on loopback)",
        ));
    }
    let ca_pem = match s.ca_file {
        Some(_) if s.tls == SmtpTls::None => {
            return Err(invalid(
                "reminders.smtp.ca_file",
                "only with `tls = \"starttls\"` or `\"tls\"`",
            ));
        }
        Some(file) => {
            let path = base.join(file);
            let pem = std::fs::read(&path).map_err(|e| {
                invalid(
                    "reminders.smtp.ca_file",
                    &format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid(
                    "reminders.smtp.ca_file",
                    &format!(
                        "{} is not a PEM file with `-----BEGIN CERTIFICATE-----`",
                        path.display()
                    ),
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let smtp = SmtpConfig {
        host,
        port,
        tls: s.tls,
        from,
        login,
        ca_pem,
    };
    // What only building the transport checks: a TLS server name, the CA.
    if let Err(e) = crate::reminders::email::Mailer::new(&smtp) {
        return Err(invalid("reminders.smtp.host", &e));
    }
    out.smtp = Some(smtp);
    Ok(out)
}

/// Loads every `*.toml` profile in `dir`.
pub fn load_profiles(dir: &Path) -> Result<BTreeMap<String, Profile>, LoadError> {
    let io = |source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = BTreeMap::new();
    for p in paths {
        let text = read(&p)?;
        let origin = p.display().to_string();
        let profile = Profile::parse(&origin, &text)?;
        if out.contains_key(&profile.name) {
            return Err(ConfigError::invalid(
                &origin,
                &text,
                "name",
                format!("another profile is already named `{}`", profile.name),
            )
            .into());
        }
        out.insert(profile.name.clone(), profile);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}
