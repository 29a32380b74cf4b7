//! Wiring the agent together: one poller task per device, one uplink task,
//! and a handle to stop them.

use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::sequence::{SequenceError, Sequences};
use crate::sources::modbus::bus::Bus;
use crate::sources::modbus::poller::Poller;
use crate::uplink;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wearline_models::wire::Sample;

/// Samples that may wait between the pollers and the uplink.
const QUEUE: usize = 65_536;

/// A sample on its way uplink.
#[derive(Debug)]
pub struct Outgoing {
    pub device: String,
    pub profile: String,
    pub sample: Sample,
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
    pub uplink_connected: AtomicBool,
    /// By device id; fixed at start.
    pub devices: BTreeMap<String, Arc<DeviceCounters>>,
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
}

impl Agent {
    pub fn new(config: AgentConfig, clock: Clock) -> Agent {
        Agent { config, clock }
    }

    /// Opens the agent's state and starts its tasks on the current runtime.
    pub fn start(self) -> Result<AgentHandle, SequenceError> {
        let sequences = Arc::new(Mutex::new(Sequences::open(&self.config.data_dir)?));
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
        // One bus per endpoint: devices behind one gateway or on one line share it.
        let mut buses: Vec<Arc<Bus>> = Vec::new();
        for device in &self.config.devices {
            let bus = match buses.iter().find(|b| *b.endpoint() == device.endpoint) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Bus::new(device.endpoint.clone()));
                    buses.push(b.clone());
                    b
                }
            };
            let poller = Poller {
                device: device.clone(),
                bus,
                clock: self.clock,
                sequences: sequences.clone(),
                tx: tx.clone(),
                stats: stats.clone(),
                counters: counters.get(&device.id).cloned().unwrap_or_default(),
            };
            pollers.spawn(poller.run(cancel.child_token()));
        }
        drop(tx);
        let clock = self.clock;
        let uplink = tokio::spawn(uplink::mqtt::run(
            self.config.uplink.clone(),
            self.config.gateway.clone(),
            u32::try_from(self.config.devices.len()).unwrap_or(u32::MAX),
            rx,
            stats.clone(),
            move || clock.now_ms(),
            cancel.clone(),
        ));
        tracing::info!(gateway = %self.config.gateway, devices = self.config.devices.len(), "agent started");
        Ok(AgentHandle {
            cancel,
            pollers,
            uplink,
            stats,
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
