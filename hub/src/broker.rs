//! The embedded MQTT broker (rumqttd), run in-process so the hub needs no
//! external server.
//!
//! rumqttd's `start()` blocks and spawns runtimes of its own, so it runs on a
//! dedicated OS thread. It binds internally and cannot report the port it got,
//! so for port 0 we pick a free port first. Readiness is a successful TCP
//! connect to the listener.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

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
}

/// Starts the embedded broker on `addr` and returns the address it listens on.
pub fn start_embedded(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let addr = if addr.port() == 0 {
        let l = TcpListener::bind(addr).map_err(|source| BrokerError::Port { addr, source })?;
        l.local_addr()
            .map_err(|source| BrokerError::Port { addr, source })?
    } else {
        addr
    };
    let mut broker = Broker::new(config(addr));
    std::thread::Builder::new()
        .name("wearline-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotReady(addr))
}

fn config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            // The router's log of each filter: 8 × 8 MB bounds the broker's
            // memory (a subscriber more than that behind loses the oldest).
            max_segment_size: 8 << 20,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        ..Config::default()
    }
}
