//! Wiring the agent together: one poller task per device, one uplink task,
//! and a handle to stop them.

use crate::buffer::DiskQueue;
use crate::clock::Clock;
use crate::commands::{Commander, Verdict};
use crate::config::AgentConfig;
use crate::health::HostProbe;
use crate::sequence::{SequenceError, Sequences};
use crate::sources::SampleSink;
use crate::sources::modbus::bus::Bus;
use crate::sources::modbus::poller::Poller;
use crate::uplink;
use crate::uplink::mqtt::Uplink;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wearline_models::wire::{Alert, Command, CommandResult, Sample, VERSION};

/// Samples that may wait between the pollers and the uplink.
const QUEUE: usize = 65_536;

/// A sample or an alert on its way uplink.
#[derive(Debug)]
pub enum Outgoing {
    Sample {
        device: String,
        profile: String,
        sample: Sample,
    },
    Alert(Alert),
    /// The outcome of a command from the hub.
    CommandResult(CommandResult),
}

/// Per-device poll counters, for gateway health.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Sample time of the last good read (0 = never).
    pub last_ok_ms: AtomicI64,
}

/// Counters shared by the agent's tasks.
#[derive(Debug, Default)]
pub struct AgentStats {
    pub samples: AtomicU64,
    pub published: AtomicU64,
    pub poll_errors: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Entries the disk queue could not take or give back.
    pub buffer_errors: AtomicU64,
    /// MQTT input payloads that did not map to a sample.
    pub input_errors: AtomicU64,
    pub uplink_connected: AtomicBool,
    /// By device id; fixed at start.
    pub devices: BTreeMap<String, Arc<DeviceCounters>>,
    /// The disk queue, as of its last maintenance tick.
    pub queue: QueueGauges,
}

/// The disk queue's figures, updated by the uplink about once a second.
#[derive(Debug, Default)]
pub struct QueueGauges {
    pub depth: AtomicU64,
    pub bytes: AtomicU64,
    /// Push time of the oldest unconfirmed entry (0 = none).
    pub oldest_ms: AtomicI64,
    pub evicted: AtomicU64,
    pub corrupt: AtomicU64,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("opening the disk queue")]
    Queue(#[from] crate::buffer::QueueError),
    #[error("binding the metrics listener on {addr}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The agent, ready to start.
pub struct Agent {
    config: AgentConfig,
    clock: Clock,
}

/// A running agent.
pub struct AgentHandle {
    cancel: CancellationToken,
    pollers: JoinSet<()>,
    uplink: tokio::task::JoinHandle<()>,
    pub stats: Arc<AgentStats>,
    /// Where `/metrics` is served, when configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Agent {
    pub fn new(config: AgentConfig, clock: Clock) -> Agent {
        Agent { config, clock }
    }

    /// Opens the agent's state and starts its tasks on the current runtime.
    pub fn start(self) -> Result<AgentHandle, StartError> {
        let sequences = Arc::new(Mutex::new(Sequences::open(&self.config.data_dir)?));
        let queue_dir = self.config.data_dir.join("queue");
        let queue = DiskQueue::open(&queue_dir, self.config.buffer)?;
        let backlog = queue.stats();
        if backlog.depth > 0 {
            tracing::info!(
                depth = backlog.depth,
                "replaying entries queued before the last stop"
            );
        }
        let counters: BTreeMap<String, Arc<DeviceCounters>> = self
            .config
            .devices
            .iter()
            .map(|d| (d.id.clone(), Arc::default()))
            .collect();
        let stats = Arc::new(AgentStats {
            devices: counters.clone(),
            ..AgentStats::default()
        });
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let mut pollers = JoinSet::new();
        let sink = SampleSink {
            sequences: sequences.clone(),
            tx: tx.clone(),
            stats: stats.clone(),
        };
        if let Some(input) = &self.config.mqtt_input {
            let devices = self.config.mqtt_devices.clone();
            pollers.spawn(crate::sources::mqtt::run(
                input.clone(),
                devices,
                sink.clone(),
                self.clock,
                cancel.child_token(),
            ));
        }
        // One bus per endpoint: devices behind one gateway or on one line share it.
        let mut buses: Vec<Arc<Bus>> = Vec::new();
        let mut writable = Vec::new();
        for device in &self.config.devices {
            let bus = match buses.iter().find(|b| *b.endpoint() == device.endpoint) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Bus::new(device.endpoint.clone()));
                    buses.push(b.clone());
                    b
                }
            };
            writable.push((device.clone(), bus.clone()));
            let poller = Poller {
                device: device.clone(),
                bus,
                clock: self.clock,
                sink: sink.clone(),
                counters: counters.get(&device.id).cloned().unwrap_or_default(),
                gateway: self.config.gateway.clone(),
            };
            pollers.spawn(poller.run(cancel.child_token()));
        }
        let (commands, mut command_rx) = tokio::sync::mpsc::channel::<Command>(64);
        let mut commander = Commander::new(writable);
        let results = tx.clone();
        let (gateway, clock) = (self.config.gateway.clone(), self.clock);
        let command_cancel = cancel.child_token();
        pollers.spawn(async move {
            loop {
                let cmd = tokio::select! {
                    () = command_cancel.cancelled() => break,
                    c = command_rx.recv() => match c { Some(c) => c, None => break },
                };
                if commander.admit(&cmd) == Verdict::Duplicate {
                    tracing::debug!(id = %cmd.id, "command already carried out");
                    continue;
                }
                let outcome = commander.execute(&cmd).await;
                if let Err(e) = &outcome {
                    tracing::warn!(id = %cmd.id, device = %cmd.device, error = %e, "command failed");
                }
                let result = CommandResult {
                    v: VERSION,
                    id: cmd.id.clone(),
                    gateway: gateway.clone(),
                    device: cmd.device.clone(),
                    ts_ms: clock.now_ms(),
                    ok: outcome.is_ok(),
                    error: outcome.err().map(|e| e.to_string()),
                };
                if results.send(Outgoing::CommandResult(result)).await.is_err() {
                    break;
                }
            }
        });
        drop(tx);
        let up = Uplink {
            commands,
            cfg: self.config.uplink.clone(),
            gateway: self.config.gateway.clone(),
            queue,
            stats: stats.clone(),
            clock: self.clock,
            probe: HostProbe::new(&self.config.data_dir),
        };
        let uplink = tokio::spawn(uplink::mqtt::run(up, rx, cancel.clone()));
        let metrics_addr = match self.config.metrics_listen {
            None => None,
            Some(addr) => {
                let bind = || -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
                    let l = std::net::TcpListener::bind(addr)?;
                    l.set_nonblocking(true)?;
                    let local = l.local_addr()?;
                    Ok((tokio::net::TcpListener::from_std(l)?, local))
                };
                let (listener, local) = bind().map_err(|source| StartError::Metrics { addr, source })?;
                let clock = self.clock;
                pollers.spawn(crate::metrics::serve(
                    listener,
                    stats.clone(),
                    move || clock.now_ms(),
                    cancel.child_token(),
                ));
                Some(local)
            }
        };
        tracing::info!(gateway = %self.config.gateway, devices = self.config.devices.len(), "agent started");
        Ok(AgentHandle {
            cancel,
            pollers,
            uplink,
            stats,
            metrics_addr,
        })
    }
}

impl AgentHandle {
    /// Stops polling, sends what is pending, and disconnects.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.pollers.join_next().await.is_some() {}
        let _ = self.uplink.await;
    }
}
