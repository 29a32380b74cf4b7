//! The embedded MQTT broker (rumqttd), run in-process so the hub needs no
//! external server.
//!
//! rumqttd's `start()` blocks and spawns runtimes of its own, so it runs on a
//! dedicated OS thread. It binds internally and cannot report the port it got,
//! so for port 0 we pick a free port first. Readiness is a successful TCP
//! connect to each listener.
//!
//! Security. A plain listener (`address`) and optionally a TLS listener.
//! With `validate-tenant-prefix` (this crate's rumqttd feature) the TLS
//! listener requires a client certificate signed by the client CA, takes the
//! certificate's subject O as the client's tenant, and refuses any publish or
//! subscription of that client outside `/tenants/{O}/` (and disconnects it).
//! The gateway id is the O, so a certificate gateway can publish only its own
//! topics; the hub then checks that the inner topic names the same gateway
//! (`wire::decode_uplink`). With a password file, every client of every
//! listener must log in as a user of the file with its user name as client
//! id; the hub itself logs in with a random secret made at each start.
//! rumqttd refuses a failed login with no hook the hub could count; it
//! logs under `rumqttd`, which the default filter silences.

use crate::passwords::PasswordFile;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Most client connections by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest MQTT packet by default (a bigger one disconnects its client).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Telemetry the broker holds per subscription filter by default, MiB: what
/// a hub may fall behind by before the oldest is dropped.
pub const DEFAULT_BACKLOG_MIB: usize = 16;
/// Segments of that backlog: the oldest is dropped a segment at a time.
const BACKLOG_SEGMENTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot find a free port on {addr}")]
    Port {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    #[error("embedded broker did not start listening on {0} within 10 s")]
    NotReady(SocketAddr),
    #[error("cannot make the hub's broker secret from /dev/urandom")]
    Random(#[source] std::io::Error),
}

/// The TLS listener: server certificate and key, and the CA that signs
/// the gateways' client certificates (PEM files; only the first certificate
/// of `client_ca_file` is used).
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
}

/// What the embedded broker runs with.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// The plain listener (the hub's own ingest connects here).
    pub plain: SocketAddr,
    pub tls: Option<TlsListener>,
    /// When set, every client must log in.
    pub passwords: Option<Arc<PasswordFile>>,
    pub max_connections: usize,
    pub max_payload_bytes: usize,
    /// Per subscription filter, MiB (see [`DEFAULT_BACKLOG_MIB`]).
    pub backlog_mib: usize,
    /// The hub's own client id (its login when `passwords` is set).
    pub hub_client_id: String,
}

/// A started broker.
#[derive(Debug, Clone)]
pub struct Started {
    pub plain: SocketAddr,
    pub tls: Option<SocketAddr>,
    /// The hub's login (user, secret) when the broker checks passwords.
    pub hub_login: Option<(String, String)>,
}

/// Starts the embedded broker and waits until every listener accepts connections.
pub fn start_embedded(settings: &EmbeddedSettings) -> Result<Started, BrokerError> {
    let plain = pick_port(settings.plain)?;
    let tls = match &settings.tls {
        Some(t) => Some(TlsListener {
            listen: pick_port(t.listen)?,
            ..t.clone()
        }),
        None => None,
    };
    let hub_login = match &settings.passwords {
        Some(_) => Some((settings.hub_client_id.clone(), secret()?)),
        None => None,
    };
    let auth = settings
        .passwords
        .clone()
        .map(|p| Auth::new(p, hub_login.clone()));
    let config = config(plain, tls.as_ref(), auth, settings);
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("wearline-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    wait_listening(plain)?;
    if let Some(t) = &tls {
        wait_listening(t.listen)?;
    }
    Ok(Started {
        plain,
        tls: tls.map(|t| t.listen),
        hub_login,
    })
}

/// For port 0, a free port (rumqttd cannot report the one it got).
fn pick_port(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let l = TcpListener::bind(addr).map_err(|source| BrokerError::Port { addr, source })?;
    l.local_addr()
        .map_err(|source| BrokerError::Port { addr, source })
}

fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotReady(addr))
}

/// 32 random bytes, base64: the hub's password on its own broker.
fn secret() -> Result<String, BrokerError> {
    use base64::Engine as _;
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(BrokerError::Random)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The login check rumqttd calls on each CONNECT.
#[derive(Clone)]
struct Auth {
    passwords: Arc<PasswordFile>,
    hub: Option<(String, String)>,
}

impl Auth {
    fn new(passwords: Arc<PasswordFile>, hub: Option<(String, String)>) -> Auth {
        Auth { passwords, hub }
    }

    /// A user of the file whose client id is its user name, or the hub with
    /// its secret. The client id rule keeps one device from taking over
    /// another's session (a new connection with a client id replaces the old).
    fn check(&self, client_id: &str, user: &str, password: &str) -> bool {
        if let Some((hub, secret)) = &self.hub
            && user == hub
        {
            return client_id == hub && bool::from(password.as_bytes().ct_eq(secret.as_bytes()));
        }
        let ok = self.passwords.verify(user, password) && client_id == user;
        if !ok {
            tracing::warn!(user, client_id, "broker login refused");
        }
        ok
    }
}

fn config(plain: SocketAddr, tls: Option<&TlsListener>, auth: Option<Auth>, s: &EmbeddedSettings) -> Config {
    let connections = || {
        let mut c = ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: s.max_payload_bytes,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        if let Some(a) = auth.clone() {
            c.set_auth_handler(move |client_id: String, user: String, password: String| {
                std::future::ready(a.check(&client_id, &user, &password))
            });
        }
        c
    };
    let mut servers = HashMap::from([(
        "plain".to_string(),
        ServerSettings {
            name: "plain".into(),
            listen: plain,
            tls: None,
            next_connection_delay_ms: 1,
            connections: connections(),
        },
    )]);
    if let Some(t) = tls {
        servers.insert(
            "tls".to_string(),
            ServerSettings {
                name: "tls".into(),
                listen: t.listen,
                tls: Some(TlsConfig::Rustls {
                    capath: Some(t.client_ca_file.display().to_string()),
                    certpath: t.cert_file.display().to_string(),
                    keypath: t.key_file.display().to_string(),
                }),
                next_connection_delay_ms: 1,
                connections: connections(),
            },
        );
    }
    Config {
        id: 0,
        router: RouterConfig {
            // The hub's own connection on top of the devices'.
            max_connections: s.max_connections.saturating_add(1),
            max_outgoing_packet_count: 1000,
            // The router's log of each filter bounds the broker's memory (a
            // subscriber further behind loses the oldest). It takes about
            // twice its nominal size: each message also keeps its packet's
            // read buffer and a properties slot. At 8 × 8 MB the hub's peak
            // RSS under `bench ingest --rate 10000` was 323–330 MB; at
            // 8 × 2 MB, 230–265 MB, with nothing lost.
            max_segment_size: (s.backlog_mib << 20) / BACKLOG_SEGMENTS,
            max_segment_count: BACKLOG_SEGMENTS,
            ..RouterConfig::default()
        },
        v4: Some(servers),
        ..Config::default()
    }
}
