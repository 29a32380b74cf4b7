//! The MQTT uplink: one connection to the hub's broker, a retained online
//! status with an offline last will, telemetry published with QoS 1, and
//! periodic gateway health.
//!
//! The connection is driven by its own task so that publishing never waits on
//! a reconnect; rumqttc reconnects on its own when its event loop is polled.

use super::batch::Batcher;
use crate::config::UplinkConfig;
use crate::run::{AgentStats, Outgoing};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wearline_models::config::host_port;
use wearline_models::wire::{Connectivity, GatewayHealth, GatewayStatus, Telemetry, Topic, VERSION, encode};

/// How often gateway health is published.
const HEALTH_EVERY: Duration = Duration::from_secs(30);

/// Runs the uplink until `cancel` fires and `rx` is drained.
pub async fn run(
    cfg: UplinkConfig,
    gateway: String,
    devices: u32,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<AgentStats>,
    now_ms: impl Fn() -> i64 + Send + 'static,
    cancel: CancellationToken,
) {
    let (host, port) = match host_port(&cfg.broker) {
        Some(hp) => hp,
        None => {
            tracing::error!(broker = %cfg.broker, "uplink broker must be host:port");
            return;
        }
    };
    let client_id = cfg.client_id.clone().unwrap_or_else(|| gateway.clone());
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_secs.max(5)));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    let status_topic = Topic::Status {
        gateway: gateway.clone(),
    }
    .render();
    let status = |state| {
        encode(&GatewayStatus {
            v: VERSION,
            gateway: gateway.clone(),
            state,
            since_ms: now_ms(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    };
    opts.set_last_will(LastWill::new(
        &status_topic,
        status(Connectivity::Offline),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);

    let online = status(Connectivity::Online);
    let driver_client = client.clone();
    let driver_topic = status_topic.clone();
    let driver_stats = stats.clone();
    let driver = tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    driver_stats.uplink_connected.store(true, Ordering::Relaxed);
                    tracing::info!("uplink connected");
                    if let Err(e) =
                        driver_client.try_publish(&driver_topic, QoS::AtLeastOnce, true, online.clone())
                    {
                        tracing::warn!(error = %e, "cannot queue online status");
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    driver_stats.uplink_connected.store(false, Ordering::Relaxed);
                    if matches!(e, rumqttc::ConnectionError::RequestsDone) {
                        break;
                    }
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                    tracing::warn!(error = %e, retry_in = ?wait, "uplink connection lost");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    });

    let mut batcher = Batcher::new(
        &gateway,
        cfg.batch_max_samples,
        Duration::from_millis(cfg.batch_delay_ms),
    );
    let tick_every = Duration::from_millis((cfg.batch_delay_ms / 4).clamp(10, 1000));
    let mut tick = tokio::time::interval(tick_every);
    let mut health = tokio::time::interval(HEALTH_EVERY);
    let health_topic = Topic::Health {
        gateway: gateway.clone(),
    }
    .render();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(o) => {
                    if let Some(t) = batcher.push(Instant::now(), &o.device, &o.profile, o.sample) {
                        publish(&client, &t, &stats).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                for t in batcher.due(Instant::now()) {
                    publish(&client, &t, &stats).await;
                }
            }
            _ = health.tick() => {
                let h = GatewayHealth {
                    v: VERSION,
                    gateway: gateway.clone(),
                    ts_ms: now_ms(),
                    devices,
                    poll_errors: stats.poll_errors.load(Ordering::Relaxed),
                    buffer_depth: (batcher.depth() + rx.len()) as u64,
                    rss_bytes: rss_bytes(),
                };
                let _ = client.try_publish(&health_topic, QoS::AtMostOnce, false, encode(&h));
            }
            () = cancel.cancelled() => {
                rx.close();
            }
        }
    }
    for t in batcher.drain() {
        publish(&client, &t, &stats).await;
    }
    // Say goodbye: the retained status turns offline without waiting for the will.
    let _ = client
        .publish(
            &status_topic,
            QoS::AtLeastOnce,
            true,
            status(Connectivity::Offline),
        )
        .await;
    let _ = client.disconnect().await;
    if tokio::time::timeout(Duration::from_secs(3), driver)
        .await
        .is_err()
    {
        tracing::warn!("uplink did not drain within 3 s");
    }
}

async fn publish(client: &AsyncClient, t: &Telemetry, stats: &AgentStats) {
    let topic = Topic::Telemetry {
        gateway: t.gateway.clone(),
        device: t.device.clone(),
    }
    .render();
    match client.publish(topic, QoS::AtLeastOnce, false, encode(t)).await {
        Ok(()) => {
            stats
                .published
                .fetch_add(t.samples.len() as u64, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(device = %t.device, error = %e, "cannot queue telemetry"),
    }
}

/// Resident memory of this process, from `/proc/self/statm` where present.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
