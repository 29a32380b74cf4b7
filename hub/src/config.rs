//! The hub's config file: broker, HTTP API, store and profiles.
//!
//! Unknown keys, wrong types and invalid values are errors that name the
//! file, the line and the key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wearline_models::config::{ConfigError, host_port, parse_toml};
use wearline_models::profile::Profile;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    broker: BrokerConfig,
    #[serde(default)]
    http: HttpConfig,
    store: StoreConfig,
    /// Folder of device profiles, relative to the config file.
    #[serde(default = "default_profiles_dir")]
    profiles_dir: PathBuf,
}

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("profiles")
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
}

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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http(),
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
    pub sqlite: PathBuf,
}

/// A validated hub config.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub sqlite: PathBuf,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
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
        let dir = base.join(&raw.profiles_dir);
        let profiles = load_profiles(&dir)?;
        Ok(HubConfig {
            broker: raw.broker,
            http: raw.http,
            sqlite: base.join(raw.store.sqlite),
            profiles,
        })
    }
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
