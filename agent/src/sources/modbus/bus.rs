//! A Modbus endpoint shared by the devices behind it: one TCP address (a
//! device, or a gateway with several unit ids) or one serial RS-485 line.
//!
//! Requests on one bus are serialised: a half-duplex line carries one
//! transaction at a time, and many TCP gateways accept only one connection.
//! Devices on different buses never wait for each other. The connection is
//! opened lazily, dropped after a transport error, and reopened with
//! exponential backoff and jitter.

use super::poller::backoff;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use wearline_models::registers::RegisterKind;

/// Where a bus connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Serial(SerialLine),
}

/// Settings of a serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Serial(s) => write!(f, "{}@{}", s.path, s.baud),
        }
    }
}

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("waiting {0:?} before reconnecting")]
    Backoff(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport: {0}")]
    Transport(#[from] tokio_modbus::Error),
    #[error("device answered with exception {0:?}")]
    Exception(ExceptionCode),
}

impl BusError {
    /// Whether retrying the same request may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Timeout(_) | BusError::Transport(_))
    }
}

struct Link {
    ctx: Option<Context>,
    failures: u32,
    retry_at: Instant,
}

/// One endpoint and its connection.
pub struct Bus {
    endpoint: Endpoint,
    link: Mutex<Link>,
}

/// A connection borrowed for one device's transaction; the bus stays locked
/// while it lives.
pub struct Session<'a> {
    guard: tokio::sync::MutexGuard<'a, Link>,
    endpoint: &'a Endpoint,
    timeout: Duration,
}

impl Bus {
    pub fn new(endpoint: Endpoint) -> Bus {
        Bus {
            endpoint,
            link: Mutex::new(Link {
                ctx: None,
                failures: 0,
                retry_at: Instant::now(),
            }),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Locks the bus, connects if needed, and addresses `unit`.
    pub async fn session(&self, unit: u8, request_timeout: Duration) -> Result<Session<'_>, BusError> {
        let mut guard = self.link.lock().await;
        if guard.ctx.is_none() {
            let now = Instant::now();
            if now < guard.retry_at {
                return Err(BusError::Backoff(guard.retry_at - now));
            }
            match self.connect(request_timeout).await {
                Ok(ctx) => {
                    tracing::info!(endpoint = %self.endpoint, "connected");
                    guard.ctx = Some(ctx);
                    guard.failures = 0;
                }
                Err(e) => {
                    guard.failures = guard.failures.saturating_add(1);
                    guard.retry_at = Instant::now() + backoff(guard.failures, &self.endpoint.to_string());
                    return Err(e);
                }
            }
        }
        if let Some(ctx) = guard.ctx.as_mut() {
            ctx.set_slave(Slave(unit));
        }
        Ok(Session {
            guard,
            endpoint: &self.endpoint,
            timeout: request_timeout,
        })
    }

    async fn connect(&self, within: Duration) -> Result<Context, BusError> {
        match &self.endpoint {
            Endpoint::Tcp(addr) => match timeout(within, tokio_modbus::client::tcp::connect(*addr)).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(BusError::Connect(e)),
                Err(_) => Err(BusError::Timeout(within)),
            },
            Endpoint::Serial(line) => {
                use tokio_serial::SerialPortBuilderExt as _;
                let parity = match line.parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                };
                let data_bits = match line.data_bits {
                    5 => tokio_serial::DataBits::Five,
                    6 => tokio_serial::DataBits::Six,
                    7 => tokio_serial::DataBits::Seven,
                    _ => tokio_serial::DataBits::Eight,
                };
                let stop_bits = if line.stop_bits == 2 {
                    tokio_serial::StopBits::Two
                } else {
                    tokio_serial::StopBits::One
                };
                let port = tokio_serial::new(&line.path, line.baud)
                    .parity(parity)
                    .data_bits(data_bits)
                    .stop_bits(stop_bits)
                    .open_native_async()
                    .map_err(|e| BusError::Connect(std::io::Error::other(e)))?;
                Ok(tokio_modbus::client::rtu::attach(port))
            }
        }
    }
}

impl Session<'_> {
    /// Reads `count` registers (or bits, as 0/1) of `kind` from `address`.
    pub async fn read(&mut self, kind: RegisterKind, address: u16, count: u16) -> Result<Vec<u16>, BusError> {
        let t = self.timeout;
        let Some(ctx) = self.guard.ctx.as_mut() else {
            return Err(BusError::Backoff(Duration::ZERO));
        };
        let bits = |r: Vec<bool>| r.into_iter().map(u16::from).collect::<Vec<u16>>();
        let result = match kind {
            RegisterKind::Coil => timeout(t, ctx.read_coils(address, count))
                .await
                .map(|r| r.map(|r| r.map(bits))),
            RegisterKind::Discrete => timeout(t, ctx.read_discrete_inputs(address, count))
                .await
                .map(|r| r.map(|r| r.map(bits))),
            RegisterKind::Holding => timeout(t, ctx.read_holding_registers(address, count)).await,
            RegisterKind::Input => timeout(t, ctx.read_input_registers(address, count)).await,
        };
        self.settle(result)
    }

    /// Writes 16-bit registers (function code 6 for one, 16 for several).
    pub async fn write_registers(&mut self, address: u16, words: &[u16]) -> Result<(), BusError> {
        let t = self.timeout;
        let Some(ctx) = self.guard.ctx.as_mut() else {
            return Err(BusError::Backoff(Duration::ZERO));
        };
        let result = match words {
            [w] => timeout(t, ctx.write_single_register(address, *w)).await,
            _ => timeout(t, ctx.write_multiple_registers(address, words)).await,
        };
        self.settle(result)
    }

    /// Writes coils (function code 5 for one, 15 for several).
    pub async fn write_coils(&mut self, address: u16, bits: &[bool]) -> Result<(), BusError> {
        let t = self.timeout;
        let Some(ctx) = self.guard.ctx.as_mut() else {
            return Err(BusError::Backoff(Duration::ZERO));
        };
        let result = match bits {
            [b] => timeout(t, ctx.write_single_coil(address, *b)).await,
            _ => timeout(t, ctx.write_multiple_coils(address, bits)).await,
        };
        self.settle(result)
    }

    /// Maps a request's nested result, dropping the connection after a
    /// transport error or (on TCP) a timeout: a late answer would otherwise
    /// be taken for the next request's.
    fn settle<T>(
        &mut self,
        result: Result<tokio_modbus::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, BusError> {
        let result = match result {
            Err(_) => Err(BusError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(BusError::Transport(e)),
            Ok(Ok(Err(code))) => Err(BusError::Exception(code)),
            Ok(Ok(Ok(v))) => Ok(v),
        };
        let drop_link = match &result {
            Err(BusError::Transport(_)) => true,
            Err(BusError::Timeout(_)) => matches!(self.endpoint, Endpoint::Tcp(_)),
            _ => false,
        };
        if drop_link {
            self.guard.ctx = None;
            self.guard.failures = self.guard.failures.saturating_add(1);
            self.guard.retry_at = Instant::now() + backoff(self.guard.failures, &self.endpoint.to_string());
        }
        result
    }
}
