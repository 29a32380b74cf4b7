//! Wiring the hub together: broker, store, the optional InfluxDB sink, ingest
//! task and HTTP API, with a handle to stop them and a stream of events (work
//! orders opened).

use crate::api::{AppState, router};
use crate::broker;
use crate::config::{BrokerKind, HubConfig};
use crate::ingest::{Ingest, IngestConfig, IngestStats};
use crate::store::{Store, WorkOrderRow};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// The name the hub gives the token of `http.bootstrap_token_file`.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";
use tokio_util::sync::CancellationToken;
use wearline_models::config::host_port;

/// How long start-up waits for the ingest subscription.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Something the hub did that a front end may want to show.
#[derive(Debug, Clone)]
pub enum HubEvent {
    WorkOrderOpened(WorkOrderRow),
    /// An active order missed a service-level target (`response` or
    /// `resolution`); its priority was raised.
    WorkOrderEscalated {
        order: WorkOrderRow,
        breach: &'static str,
    },
}

pub struct Hub;

/// A running hub.
pub struct HubHandle {
    pub api_addr: SocketAddr,
    /// The broker agents should publish to.
    pub broker_addr: String,
    /// The embedded broker's TLS listener, when configured.
    pub broker_tls_addr: Option<SocketAddr>,
    pub store: Store,
    pub stats: Arc<IngestStats>,
    events: broadcast::Sender<HubEvent>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Hub {
    /// Starts the hub's parts on the current runtime.
    pub async fn start(config: HubConfig) -> anyhow::Result<HubHandle> {
        let mut login = (config.broker.username.clone(), config.broker.password.clone());
        let mut tls_addr = None;
        let broker_addr = match config.broker.kind {
            BrokerKind::Embedded => {
                let plain: SocketAddr = config.broker.address.parse().context("broker.address")?;
                let settings = broker::EmbeddedSettings {
                    plain,
                    tls: config.broker.tls.as_ref().map(|t| broker::TlsListener {
                        listen: t.listen,
                        cert_file: t.cert_file.clone(),
                        key_file: t.key_file.clone(),
                        client_ca_file: t.client_ca_file.clone(),
                    }),
                    passwords: config.passwords.clone(),
                    max_connections: config
                        .broker
                        .max_connections
                        .unwrap_or(broker::DEFAULT_MAX_CONNECTIONS),
                    max_payload_bytes: config
                        .broker
                        .max_payload_bytes
                        .unwrap_or(broker::DEFAULT_MAX_PAYLOAD_BYTES),
                    backlog_mib: config.broker.backlog_mib.unwrap_or(broker::DEFAULT_BACKLOG_MIB),
                    hub_client_id: config.broker.client_id.clone(),
                };
                let started = tokio::task::spawn_blocking(move || broker::start_embedded(&settings))
                    .await
                    .context("starting the embedded broker")??;
                if let Some((user, secret)) = started.hub_login {
                    login = (Some(user), Some(secret));
                }
                tls_addr = started.tls;
                started.plain.to_string()
            }
            BrokerKind::External => config.broker.address.clone(),
        };
        let (host, port) = host_port(&broker_addr).context("broker address must be host:port")?;
        let host = host.to_string();
        let store = Store::open(&config.store)
            .await
            .with_context(|| format!("opening the store {}", config.store))?;
        let stats = Arc::new(IngestStats::default());
        let (events, _) = broadcast::channel(1024);
        let cancel = CancellationToken::new();

        let mut tasks = Vec::new();
        let influx = match &config.influx {
            Some(cfg) => {
                let (handle, sink_tasks) =
                    crate::influx::start(cfg, cancel.child_token()).context("starting the InfluxDB sink")?;
                tasks.extend(sink_tasks);
                Some(handle)
            }
            None => None,
        };

        let (subscribed, mut ready) = tokio::sync::watch::channel(false);
        let mut ingest = Ingest::new(
            store.clone(),
            Arc::new(config.profiles.clone()),
            stats.clone(),
            events.clone(),
            subscribed,
        );
        ingest.influx = influx.clone();
        let downlink = crate::downlink::Downlink::new();
        ingest.downlink = Some(downlink.clone());
        ingest.offline_after = config.offline_after;
        if config.unknown_devices == crate::config::UnknownDevices::Reject {
            ingest.known_devices = Some(config.known_devices.iter().cloned().collect());
        }
        if config.broker.shared_group.is_some() {
            ingest.shared = Some(crate::ingest::Shared::new(config.broker.client_id.clone()));
        }
        ingest.replay().await.context("replaying history")?;
        let ingest_cfg = IngestConfig {
            host,
            port,
            client_id: config.broker.client_id.clone(),
            username: login.0,
            password: login.1,
            ack_after_commit: config.broker.kind == BrokerKind::External,
            shared_group: config.broker.shared_group.clone(),
            tenant_topics: tls_addr.is_some(),
        };
        tasks.push(tokio::spawn(ingest.run(ingest_cfg, cancel.child_token())));
        tasks.push(tokio::spawn(crate::history::run(
            store.clone(),
            config.retention,
            config.rollup_every,
            cancel.child_token(),
        )));
        let mailer = match &config.reminders.smtp {
            Some(smtp) => Some(crate::reminders::email::Mailer::new(smtp).map_err(anyhow::Error::msg)?),
            None => None,
        };
        // The config refuses notify_email without a relay.
        let notify = mailer
            .clone()
            .filter(|_| !config.escalation_notify.is_empty())
            .map(|mailer| crate::escalation::Notify {
                mailer,
                to: config.escalation_notify.clone(),
            });
        let delivery = crate::reminders::Delivery {
            mailer,
            retry_first_ms: i64::try_from(config.reminders.retry_first.as_millis()).unwrap_or(60_000),
            every: config.reminders.deliver_every,
            indicator: Some(crate::reminders::indicator::IndicatorChannel {
                downlink: Some(downlink),
                profiles: Arc::new(config.profiles.clone()),
                result_timeout: config.indicator_result_timeout,
            }),
        };
        tasks.push(tokio::spawn(crate::reminders::run(
            store.clone(),
            delivery,
            cancel.child_token(),
        )));
        tasks.push(tokio::spawn(crate::escalation::run(
            store.clone(),
            events.clone(),
            stats.clone(),
            notify,
            cancel.child_token(),
        )));
        // Ready means subscribed: agents started after this lose nothing. An
        // external broker that is down does not stop the hub from serving.
        match tokio::time::timeout(SUBSCRIBE_WAIT, ready.wait_for(|s| *s)).await {
            Ok(Ok(_)) => {}
            _ => {
                tracing::warn!(broker = %broker_addr, "not subscribed to the broker yet; ingest keeps retrying")
            }
        }

        if let Some(hash) = &config.bootstrap_token_hash {
            let recorded = store
                .ensure_admin_token(BOOTSTRAP_TOKEN_NAME, hash, crate::clock::wall_ms())
                .await
                .context("recording the bootstrap token")?;
            if recorded {
                tracing::info!(name = BOOTSTRAP_TOKEN_NAME, "bootstrap admin token recorded");
            }
        }
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding the API on {}", config.http.listen))?;
        let api_addr = listener.local_addr()?;
        let app = router(AppState {
            store: store.clone(),
            stats: stats.clone(),
            influx,
            email_channel: config.reminders.smtp.is_some(),
            retention: config.retention,
        });
        let api_cancel = cancel.child_token();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(api_cancel.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped");
            }
        }));
        tracing::info!(api = %api_addr, broker = %broker_addr, "hub started");
        Ok(HubHandle {
            api_addr,
            broker_addr,
            broker_tls_addr: tls_addr,
            store,
            stats,
            events,
            cancel,
            tasks,
        })
    }
}

impl HubHandle {
    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// Stops ingest and the API, and flushes the InfluxDB sink (within
    /// `influx::SHUTDOWN_GRACE`). The embedded broker lives until the process ends.
    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
