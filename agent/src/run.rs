//! Wiring the agent together: one poller task per device, one uplink task,
//! a supervisor that carries out the hub's commands and pushed configs, and
//! a handle to stop them.

use crate::buffer::DiskQueue;
use crate::clock::Clock;
use crate::commands::{Commander, Verdict};
use crate::config::{AgentConfig, DeviceConfig};
use crate::detection::Detectors;
use crate::health::HostProbe;
use crate::reconfig::{ConfigOrigin, Reconfig};
use crate::sequence::{SequenceError, Sequences};
use crate::sources::SampleSink;
use crate::sources::modbus::bus::Bus;
use crate::sources::modbus::poller::Poller;
use crate::sources::mqtt::{MqttDevice, MqttInput};
use crate::uplink;
use crate::uplink::mqtt::Uplink;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use wearline_models::wire::{Alert, Command, CommandResult, ConfigPush, ConfigResult, Sample, VERSION};

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
    /// The outcome of a config pushed by the hub.
    ConfigResult(ConfigResult),
}

/// What the hub asks of the agent, as the uplink receives it.
#[derive(Debug)]
pub enum Control {
    Command(Command),
    Config(ConfigPush),
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
    /// Alerts raised or cleared by the edge detectors.
    pub alerts: AtomicU64,
    pub published: AtomicU64,
    pub poll_errors: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Entries the disk queue could not take or give back.
    pub buffer_errors: AtomicU64,
    /// MQTT input payloads that did not map to a sample.
    pub input_errors: AtomicU64,
    pub uplink_connected: AtomicBool,
    /// By device id; follows the configuration in effect.
    pub devices: Mutex<BTreeMap<String, Arc<DeviceCounters>>>,
    /// Pushed configs applied and refused.
    pub configs_applied: AtomicU64,
    pub configs_refused: AtomicU64,
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
    origin: Option<ConfigOrigin>,
}

/// A running agent.
pub struct AgentHandle {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    supervisor: JoinHandle<()>,
    uplink: JoinHandle<()>,
    pub stats: Arc<AgentStats>,
    /// Where `/metrics` is served, when configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Agent {
    pub fn new(config: AgentConfig, clock: Clock) -> Agent {
        Agent {
            config,
            clock,
            origin: None,
        }
    }

    /// Accepts configs pushed by the hub, checked against `origin` (the file
    /// the agent was started from). Without it, pushed configs are refused.
    pub fn with_origin(mut self, origin: ConfigOrigin) -> Agent {
        self.origin = Some(origin);
        self
    }

    /// Opens the agent's state and starts its tasks on the current runtime.
    pub fn start(self) -> Result<AgentHandle, StartError> {
        let mut reconfig = Reconfig::new(self.origin.clone(), &self.config.data_dir);
        let config = match reconfig.restore() {
            Some((push, config)) => {
                tracing::info!(revision = %push.revision, "starting from the config the hub pushed last");
                config
            }
            None => self.config,
        };
        let sequences = Arc::new(Mutex::new(Sequences::open(&config.data_dir)?));
        let queue_dir = config.data_dir.join("queue");
        let queue = DiskQueue::open(&queue_dir, config.buffer)?;
        let backlog = queue.stats();
        if backlog.depth > 0 {
            tracing::info!(
                depth = backlog.depth,
                "replaying entries queued before the last stop"
            );
        }
        let stats = Arc::new(AgentStats::default());
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let mut tasks = JoinSet::new();
        let sink = SampleSink {
            sequences,
            tx: tx.clone(),
            stats: stats.clone(),
            detectors: Arc::new(Mutex::new(Detectors::new(
                &config.gateway,
                &config.detector_plan(),
            ))),
        };
        let mut acquisition = Acquisition {
            clock: self.clock,
            gateway: config.gateway.clone(),
            sink,
            cancel: cancel.child_token(),
            pollers: BTreeMap::new(),
            buses: Vec::new(),
            mqtt: None,
        };
        acquisition.apply(&config);
        let (control, control_rx) = tokio::sync::mpsc::channel::<Control>(64);
        let supervisor = Supervisor {
            commander: Commander::new(acquisition.writable()),
            acquisition,
            reconfig,
            tx,
        };
        let supervisor = tokio::spawn(supervisor.run(control_rx, cancel.child_token()));
        let up = Uplink {
            control,
            cfg: config.uplink.clone(),
            gateway: config.gateway.clone(),
            queue,
            stats: stats.clone(),
            clock: self.clock,
            probe: HostProbe::new(&config.data_dir),
        };
        let uplink = tokio::spawn(uplink::mqtt::run(up, rx, cancel.clone()));
        let metrics_addr = match config.metrics_listen {
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
                tasks.spawn(crate::metrics::serve(
                    listener,
                    stats.clone(),
                    move || clock.now_ms(),
                    cancel.child_token(),
                ));
                Some(local)
            }
        };
        tracing::info!(gateway = %config.gateway, devices = config.devices.len(), "agent started");
        Ok(AgentHandle {
            cancel,
            tasks,
            supervisor,
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
        while self.tasks.join_next().await.is_some() {}
        let _ = self.supervisor.await;
        let _ = self.uplink.await;
    }
}

/// The sources that feed the uplink: one task per Modbus device and one for
/// the MQTT input, changed in place when a new config arrives.
struct Acquisition {
    clock: Clock,
    gateway: String,
    sink: SampleSink,
    cancel: CancellationToken,
    pollers: BTreeMap<String, Running<DeviceConfig>>,
    /// One bus per endpoint: devices behind one gateway or on one line share it.
    buses: Vec<Arc<Bus>>,
    mqtt: Option<Running<(MqttInput, Vec<MqttDevice>)>>,
}

/// A task started for `config`, and how to stop it.
struct Running<C> {
    config: C,
    bus: Option<Arc<Bus>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl<C> Running<C> {
    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl Acquisition {
    /// Makes the running sources match `config`: unchanged devices keep
    /// running, changed ones restart, new ones start, removed ones stop.
    async fn reapply(&mut self, config: &AgentConfig) {
        let stale: Vec<String> = self
            .pollers
            .iter()
            .filter(|(id, r)| config.devices.iter().all(|d| d.id != **id || d != &r.config))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(r) = self.pollers.remove(&id) {
                r.stop().await;
            }
        }
        let wanted = config
            .mqtt_input
            .clone()
            .map(|i| (i, config.mqtt_devices.clone()));
        if self.mqtt.as_ref().map(|r| &r.config) != wanted.as_ref()
            && let Some(r) = self.mqtt.take()
        {
            r.stop().await;
        }
        self.apply(config);
    }

    /// Starts what `config` lists and is not running yet.
    fn apply(&mut self, config: &AgentConfig) {
        {
            let mut counters = lock(&self.sink.stats.devices);
            counters.retain(|id, _| {
                config.devices.iter().any(|d| d.id == *id) || config.mqtt_devices.iter().any(|d| d.id == *id)
            });
            for d in &config.devices {
                counters.entry(d.id.clone()).or_default();
            }
        }
        for device in &config.devices {
            if self.pollers.contains_key(&device.id) {
                continue;
            }
            let bus = match self.buses.iter().find(|b| *b.endpoint() == device.endpoint) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Bus::new(device.endpoint.clone()));
                    self.buses.push(b.clone());
                    b
                }
            };
            let counters = lock(&self.sink.stats.devices)
                .get(&device.id)
                .cloned()
                .unwrap_or_default();
            let poller = Poller {
                device: device.clone(),
                bus: bus.clone(),
                clock: self.clock,
                sink: self.sink.clone(),
                counters,
                gateway: self.gateway.clone(),
            };
            let cancel = self.cancel.child_token();
            let task = tokio::spawn(poller.run(cancel.clone()));
            self.pollers.insert(
                device.id.clone(),
                Running {
                    config: device.clone(),
                    bus: Some(bus),
                    cancel,
                    task,
                },
            );
        }
        // A bus nobody uses any more closes with its last device.
        self.buses.retain(|b| Arc::strong_count(b) > 1);
        if self.mqtt.is_none()
            && let Some(input) = &config.mqtt_input
        {
            let cancel = self.cancel.child_token();
            let task = tokio::spawn(crate::sources::mqtt::run(
                input.clone(),
                config.mqtt_devices.clone(),
                self.sink.clone(),
                self.clock,
                cancel.clone(),
            ));
            self.mqtt = Some(Running {
                config: (input.clone(), config.mqtt_devices.clone()),
                bus: None,
                cancel,
                task,
            });
        }
    }

    /// The devices a command can write to, with their buses.
    fn writable(&self) -> Vec<(DeviceConfig, Arc<Bus>)> {
        self.pollers
            .values()
            .filter_map(|r| r.bus.clone().map(|b| (r.config.clone(), b)))
            .collect()
    }

    async fn stop(self) {
        for r in self.pollers.into_values() {
            r.stop().await;
        }
        if let Some(r) = self.mqtt {
            r.stop().await;
        }
    }
}

/// Carries out the hub's commands and pushed configs, one at a time.
struct Supervisor {
    acquisition: Acquisition,
    commander: Commander,
    reconfig: Reconfig,
    tx: tokio::sync::mpsc::Sender<Outgoing>,
}

impl Supervisor {
    async fn run(mut self, mut control: tokio::sync::mpsc::Receiver<Control>, cancel: CancellationToken) {
        loop {
            let msg = tokio::select! {
                () = cancel.cancelled() => break,
                c = control.recv() => match c { Some(c) => c, None => break },
            };
            let out = match msg {
                Control::Command(cmd) => match self.command(cmd).await {
                    Some(r) => Outgoing::CommandResult(r),
                    None => continue,
                },
                Control::Config(push) => Outgoing::ConfigResult(self.config(push).await),
            };
            if self.tx.send(out).await.is_err() {
                break;
            }
        }
        self.acquisition.stop().await;
    }

    async fn command(&mut self, cmd: Command) -> Option<CommandResult> {
        if self.commander.admit(&cmd) == Verdict::Duplicate {
            tracing::debug!(id = %cmd.id, "command already carried out");
            return None;
        }
        let outcome = self.commander.execute(&cmd).await;
        if let Err(e) = &outcome {
            tracing::warn!(id = %cmd.id, device = %cmd.device, error = %e, "command failed");
        }
        Some(CommandResult {
            v: VERSION,
            id: cmd.id.clone(),
            gateway: self.acquisition.gateway.clone(),
            device: cmd.device.clone(),
            ts_ms: self.acquisition.clock.now_ms(),
            ok: outcome.is_ok(),
            error: outcome.err().map(|e| e.to_string()),
        })
    }

    async fn config(&mut self, push: ConfigPush) -> ConfigResult {
        let outcome = if self.reconfig.active() == Some(push.revision.as_str()) {
            tracing::debug!(revision = %push.revision, "pushed config already in effect");
            Ok(())
        } else {
            match self.reconfig.evaluate(&push) {
                Err(e) => Err(e),
                Ok(config) => match self.reconfig.commit(&push) {
                    Err(e) => Err(format!("cannot keep revision {} on disk: {e}", push.revision)),
                    Ok(()) => {
                        self.adopt(&config).await;
                        Ok(())
                    }
                },
            }
        };
        let stats = &self.acquisition.sink.stats;
        match &outcome {
            Ok(()) => {
                stats.configs_applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(revision = %push.revision, "pushed config in effect");
            }
            Err(e) => {
                stats.configs_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(revision = %push.revision, error = %e, "pushed config refused; keeping the one in effect");
            }
        }
        ConfigResult {
            v: VERSION,
            gateway: self.acquisition.gateway.clone(),
            revision: push.revision,
            ts_ms: self.acquisition.clock.now_ms(),
            ok: outcome.is_ok(),
            active: self.reconfig.active().map(str::to_string),
            error: outcome.err(),
        }
    }

    /// Switches the sources and detectors to `config`.
    async fn adopt(&mut self, config: &AgentConfig) {
        self.acquisition.reapply(config).await;
        self.commander.set_devices(self.acquisition.writable());
        let cleared = lock(&self.acquisition.sink.detectors)
            .reconfigure(&config.detector_plan(), self.acquisition.clock.now_ms());
        for a in cleared {
            let _ = self.acquisition.sink.alert(a).await;
        }
    }
}

/// Locks a mutex, taking the data even if a panicking holder poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
