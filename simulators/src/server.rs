//! Serves a fleet of simulated air purifiers over Modbus TCP, one port each.
//!
//! This is the only module with IO and a clock. It binds the listeners, maps
//! real time to simulated time (`sim = real elapsed × time_scale`), advances a
//! device just before answering each request and delegates the answer to
//! [`crate::registers`]. It must not implement physics or register encodings
//! itself, and must never hold a device lock across an `.await`.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, sync::watch, task::JoinSet, time::Instant};
use tokio_modbus::{
    ExceptionCode, Response, SlaveRequest,
    server::{
        Service,
        tcp::{Server, accept_tcp_connection},
    },
};
use tracing::{debug, error, info, trace};

use crate::{
    air_purifier::{AirPurifier, PurifierParams},
    fleet::fleet_params,
    registers::handle_request,
};

/// How to run a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Seed from which every device is derived.
    pub seed: u64,
    /// Number of devices (at least 1).
    pub devices: usize,
    /// Simulated seconds per real second (e.g. 86 400 = one day per second).
    pub time_scale: f64,
    /// Port 0: each device gets an ephemeral port; otherwise device `i`
    /// listens on `port + i`.
    pub listen: SocketAddr,
    /// Initial fractions of filter life used, cycled over devices; empty =
    /// derived from the seed (spread over 0–0.97).
    pub filter_loads: Vec<f64>,
    /// Ambient PM2.5 in µg/m³, cycled over devices; empty = derived from the
    /// seed (spread over 5–80).
    pub pm25: Vec<f64>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            devices: 1,
            time_scale: 1.0,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            filter_loads: Vec::new(),
            pm25: Vec::new(),
        }
    }
}

impl FleetConfig {
    /// Checks the values [`start_fleet`] cannot work with.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |msg: &str| Err(SimError::InvalidConfig(msg.to_owned()));
        if self.devices == 0 {
            return invalid("devices must be at least 1");
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return invalid("time_scale must be finite and positive");
        }
        let bad = |v: &[f64]| v.iter().any(|x| !(x.is_finite() && *x >= 0.0));
        if bad(&self.filter_loads) {
            return invalid("filter_loads must be finite and non-negative");
        }
        if bad(&self.pm25) {
            return invalid("pm25 must be finite and non-negative");
        }
        Ok(())
    }
}

/// Errors of the fleet server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration cannot be run.
    #[error("invalid fleet config: {0}")]
    InvalidConfig(String),
    /// `listen.port() + device index` does not fit in a port number.
    #[error("device {index} would listen past port 65535 (base port {base})")]
    PortOverflow {
        /// Device index.
        index: usize,
        /// Configured base port.
        base: u16,
    },
    /// A listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// Address that was asked for.
        addr: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A device server stopped with an error.
    #[error("Modbus server of {id} failed")]
    Serve {
        /// Device id.
        id: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A device of a running fleet, as seen from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDevice {
    /// `purifier-0001`, `purifier-0002`, …
    pub id: String,
    /// Where the device's Modbus TCP server listens.
    pub addr: SocketAddr,
    /// The parameters the device started with.
    pub params: PurifierParams,
}

/// Maps real time to simulated time.
#[derive(Debug, Clone, Copy)]
struct SimClock {
    start: Instant,
    time_scale: f64,
}

impl SimClock {
    fn sim_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.time_scale
    }
}

/// The Modbus service of one device; cloned into every connection.
#[derive(Debug, Clone)]
struct DeviceService {
    id: Arc<str>,
    clock: SimClock,
    state: Arc<Mutex<AirPurifier>>,
}

impl DeviceService {
    fn handle(&self, req: &SlaveRequest<'_>) -> Result<Response, ExceptionCode> {
        let Ok(mut dev) = self.state.lock() else {
            error!(device = %self.id, "device state poisoned");
            return Err(ExceptionCode::ServerDeviceFailure);
        };
        // Read the clock under the lock so concurrent clients never see time go back.
        let dt = self.clock.sim_secs() - dev.sim_secs();
        dev.advance(dt);
        trace!(device = %self.id, unit = req.slave, request = ?req.request, "request");
        handle_request(&mut dev, &req.request).map_err(|e| {
            debug!(device = %self.id, request = ?req.request, "exception: {e}");
            e.into()
        })
    }
}

impl Service for DeviceService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        std::future::ready(self.handle(&req))
    }
}

/// A fleet being served. Dropping it aborts every server.
#[derive(Debug)]
pub struct RunningFleet {
    devices: Vec<SimDevice>,
    clock: SimClock,
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), SimError>>,
}

impl RunningFleet {
    /// The devices, in id order, with their bound addresses.
    #[must_use]
    pub fn devices(&self) -> &[SimDevice] {
        &self.devices
    }

    /// Simulated time since the fleet started.
    #[must_use]
    pub fn simulated_elapsed(&self) -> Duration {
        Duration::try_from_secs_f64(self.clock.sim_secs()).unwrap_or(Duration::MAX)
    }

    /// Asks every server to stop; [`Self::wait`] then returns.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every server has stopped (after the shutdown future
    /// completes or [`Self::stop`] is called). A failing server stops the rest.
    pub async fn wait(mut self) -> Result<(), SimError> {
        while let Some(res) = self.tasks.join_next().await {
            res??;
        }
        info!("fleet stopped");
        Ok(())
    }

    /// [`Self::stop`] then [`Self::wait`].
    pub async fn shutdown(self) -> Result<(), SimError> {
        self.stop();
        self.wait().await
    }
}

/// Binds one listener per device, then serves them all until `shutdown`
/// completes (or the fleet is stopped or dropped). The returned devices carry
/// their actual addresses, so ephemeral ports are known before any request.
pub async fn start_fleet(
    cfg: FleetConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningFleet, SimError> {
    cfg.validate()?;
    let params = fleet_params(cfg.seed, cfg.devices, &cfg.filter_loads, &cfg.pm25);

    let mut bound = Vec::with_capacity(params.len());
    for (index, params) in params.into_iter().enumerate() {
        let addr = device_addr(cfg.listen, index)?;
        let bind_err = |source| SimError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let id = format!("purifier-{:04}", index + 1);
        info!(device = %id, %addr, ?params, "simulated purifier listening");
        bound.push((SimDevice { id, addr, params }, listener));
    }

    let clock = SimClock {
        start: Instant::now(),
        time_scale: cfg.time_scale,
    };
    let (stop, _) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let trigger = stop.clone();
    let mut stopped = stop.subscribe();
    tasks.spawn(async move {
        tokio::select! {
            () = shutdown => { trigger.send_replace(true); }
            _ = stopped.wait_for(|s| *s) => {}
        }
        Ok(())
    });

    let mut devices = Vec::with_capacity(bound.len());
    for (device, listener) in bound {
        let service = DeviceService {
            id: Arc::from(device.id.as_str()),
            clock,
            state: Arc::new(Mutex::new(AirPurifier::new(device.params))),
        };
        tasks.spawn(serve_device(service, listener, stop.subscribe()));
        devices.push(device);
    }

    Ok(RunningFleet {
        devices,
        clock,
        stop,
        tasks,
    })
}

async fn serve_device(
    service: DeviceService,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SimError> {
    let id = Arc::clone(&service.id);
    let on_connected = |stream, peer: SocketAddr| {
        debug!(device = %service.id, %peer, "client connected");
        let service = service.clone();
        async move { accept_tcp_connection(stream, peer, |_| Ok(Some(service.clone()))) }
    };
    let error_id = Arc::clone(&id);
    let on_process_error = move |err: io::Error| {
        debug!(device = %error_id, "connection ended with error: {err}");
    };
    let abort = async move {
        // Also returns if the sender is gone, i.e. the fleet was dropped.
        let _ = stop.wait_for(|s| *s).await;
    };
    Server::new(listener)
        .serve_until(&on_connected, on_process_error, abort)
        .await
        .map_err(|source| SimError::Serve {
            id: id.to_string(),
            source,
        })?;
    debug!(device = %id, "server stopped");
    Ok(())
}

fn device_addr(listen: SocketAddr, index: usize) -> Result<SocketAddr, SimError> {
    let base = listen.port();
    if base == 0 {
        return Ok(listen);
    }
    let port = u16::try_from(index)
        .ok()
        .and_then(|i| base.checked_add(i))
        .ok_or(SimError::PortOverflow { index, base })?;
    Ok(SocketAddr::new(listen.ip(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ports_follow_the_base_port() {
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(device_addr(at(0), 7).ok(), Some(at(0)));
        assert_eq!(device_addr(at(5020), 0).ok(), Some(at(5020)));
        assert_eq!(device_addr(at(5020), 3).ok(), Some(at(5023)));
        assert!(matches!(
            device_addr(at(65535), 1),
            Err(SimError::PortOverflow {
                index: 1,
                base: 65535
            })
        ));
    }

    #[test]
    fn config_is_validated() {
        assert!(FleetConfig::default().validate().is_ok());
        let bad = [
            FleetConfig {
                devices: 0,
                ..FleetConfig::default()
            },
            FleetConfig {
                time_scale: 0.0,
                ..FleetConfig::default()
            },
            FleetConfig {
                time_scale: f64::INFINITY,
                ..FleetConfig::default()
            },
            FleetConfig {
                filter_loads: vec![f64::NAN],
                ..FleetConfig::default()
            },
            FleetConfig {
                pm25: vec![-1.0],
                ..FleetConfig::default()
            },
        ];
        for cfg in bad {
            assert!(
                matches!(cfg.validate(), Err(SimError::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
    }
}
