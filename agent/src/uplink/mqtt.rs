//! The MQTT uplink with store and forward: every sample and alert goes to the
//! disk queue first; a sender hands queued entries out as QoS 1 messages and
//! confirms them in the queue only when the broker acknowledges them.
//!
//! Each connection gets a fresh rumqttc client, so the mapping from packet id
//! to queue entries belongs to one connection: when it drops, everything
//! unconfirmed is handed out again on the next one (the hub drops the
//! duplicates by sequence number). A retained `online` status is published on
//! connect, with an `offline` last will; gateway health every
//! `health_interval_secs`. With `tenant_topics` every topic, the last will's
//! and the subscriptions included, is in the tenant form
//! (`/tenants/{gateway}/…`, `wire::TopicForm`); topics are rendered only in
//! `Uplink::topic` and `batch::assemble`.

use super::batch::{assemble, queue_alert, queue_sample};
use super::link::{self, Client, LinkEvent, LinkSettings, Qos};
use crate::buffer::{DiskQueue, Lane};
use crate::clock::Clock;
use crate::config::UplinkConfig;
use crate::health::HostProbe;
use crate::run::{AgentStats, Control, Outgoing, lock};
use crate::sources::modbus::poller::backoff;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use wearline_models::config::host_port;
use wearline_models::wire::{
    Command, ConfigPush, Connectivity, DevicePolls, GatewayHealth, GatewayStatus, Topic, VERSION, decode,
    encode,
};

/// Messages published and not yet acknowledged, at most.
const WINDOW: usize = 64;
/// How long shutdown waits for the broker to confirm what is queued.
const DRAIN: Duration = Duration::from_secs(3);

/// Everything the uplink owns.
pub struct Uplink {
    /// Where commands and configs from the hub go.
    pub control: mpsc::Sender<Control>,
    pub cfg: UplinkConfig,
    pub gateway: String,
    pub queue: DiskQueue,
    pub stats: Arc<AgentStats>,
    pub clock: Clock,
    pub probe: HostProbe,
}

/// One connection and what is in flight on it.
struct Conn {
    client: Client,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    driver: JoinHandle<()>,
    connected: bool,
    /// Published, waiting for the packet id rumqttc gives them, in order.
    awaiting: VecDeque<(Vec<(Lane, u64)>, usize)>,
    /// By packet id, waiting for the broker's acknowledgement.
    in_flight: HashMap<u16, (Vec<(Lane, u64)>, usize)>,
}

impl Conn {
    fn free(&self) -> usize {
        WINDOW.saturating_sub(self.awaiting.len() + self.in_flight.len())
    }
}

enum Step {
    Outgoing(Option<Outgoing>),
    Link(Option<LinkEvent>),
    Fill,
    Tick,
    Health,
    Retry,
    Cancel,
}

/// Runs until `cancel` fires, the sources are done, and what is queued has
/// been confirmed (or `DRAIN` has passed: the queue keeps the rest for the
/// next start).
pub async fn run(mut up: Uplink, mut rx: mpsc::Receiver<Outgoing>, cancel: CancellationToken) {
    let mut conn: Option<Conn> = None;
    let mut failures = 0u32;
    let mut retry_at = Instant::now();
    let mut fill = tokio::time::interval(Duration::from_millis(up.cfg.batch_delay_ms.max(10)));
    fill.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut health = tokio::time::interval(Duration::from_secs(up.cfg.health_interval_secs.max(1)));
    let mut sources_done = false;
    let mut drain_until: Option<Instant> = None;
    loop {
        if conn.is_none() && Instant::now() >= retry_at && drain_until.is_none_or(|d| Instant::now() < d) {
            conn = connect(&up);
        }
        let step = tokio::select! {
            o = rx.recv(), if !sources_done => Step::Outgoing(o),
            e = next_event(&mut conn) => Step::Link(e),
            _ = fill.tick() => Step::Fill,
            _ = tick.tick() => Step::Tick,
            _ = health.tick() => Step::Health,
            () = tokio::time::sleep_until(retry_at), if conn.is_none() => Step::Retry,
            () = cancel.cancelled(), if drain_until.is_none() => Step::Cancel,
        };
        match step {
            Step::Outgoing(Some(Outgoing::CommandResult(r))) => {
                let topic = Topic::CommandResult {
                    gateway: up.gateway.clone(),
                };
                up.publish_result(&mut conn, topic, &encode(&r), &r.id);
            }
            Step::Outgoing(Some(Outgoing::ConfigResult(r))) => {
                let topic = Topic::ConfigResult {
                    gateway: up.gateway.clone(),
                };
                up.publish_result(&mut conn, topic, &encode(&r), &r.revision);
            }
            Step::Outgoing(Some(o)) => {
                let alert = matches!(o, Outgoing::Alert(_));
                up.enqueue(o);
                if alert {
                    up.send(&mut conn);
                }
            }
            Step::Outgoing(None) => sources_done = true,
            Step::Link(Some(LinkEvent::Connected)) => {
                failures = 0;
                up.stats.uplink_connected.store(true, Ordering::Relaxed);
                tracing::info!(broker = %up.cfg.broker, "uplink connected");
                if let Some(c) = conn.as_mut() {
                    c.connected = true;
                    // Subscribed before it says online: the broker takes a
                    // connection's packets in order, so a hub that sends a
                    // command on seeing `online` reaches the agent.
                    let gateway = up.gateway.clone();
                    for topic in [
                        Topic::Command {
                            gateway: gateway.clone(),
                        },
                        Topic::Config { gateway },
                    ] {
                        let topic = up.topic(&topic);
                        if let Err(e) = c.client.try_subscribe(topic.clone()) {
                            tracing::warn!(error = %e, topic, "cannot subscribe");
                        }
                    }
                    let online = up.status(Connectivity::Online);
                    // Takes a packet id like any QoS 1 publish: track it, confirming nothing.
                    c.awaiting.push_back((Vec::new(), 0));
                    if let Err(e) = c
                        .client
                        .try_publish(up.status_topic(), Qos::AtLeastOnce, true, online)
                    {
                        tracing::warn!(error = %e, "cannot queue the online status");
                        c.awaiting.pop_back();
                    }
                }
                up.send(&mut conn);
            }
            Step::Link(Some(LinkEvent::Message { topic, payload })) => {
                let control = match Topic::parse_in(&topic) {
                    Ok((_, Topic::Command { .. })) => decode::<Command>(&payload).map(Control::Command),
                    Ok((_, Topic::Config { .. })) => decode::<ConfigPush>(&payload).map(Control::Config),
                    _ => {
                        tracing::warn!(topic, "message on an unexpected topic ignored");
                        continue;
                    }
                };
                match control {
                    Ok(c) => {
                        if up.control.try_send(c).is_err() {
                            tracing::warn!(topic, "message from the hub dropped: too many pending");
                        }
                    }
                    Err(e) => tracing::warn!(topic, error = %e, "malformed message from the hub ignored"),
                }
            }
            Step::Link(Some(LinkEvent::Sent(pkid))) => {
                if let Some(c) = conn.as_mut()
                    && pkid != 0
                    && !c.in_flight.contains_key(&pkid)
                    && let Some(next) = c.awaiting.pop_front()
                {
                    c.in_flight.insert(pkid, next);
                }
            }
            Step::Link(Some(LinkEvent::Acked(pkid))) => {
                if let Some((entries, samples)) = conn.as_mut().and_then(|c| c.in_flight.remove(&pkid)) {
                    up.confirm(&entries, samples);
                }
                up.send(&mut conn);
            }
            Step::Link(closed @ (Some(LinkEvent::Closed(_)) | None)) if conn.is_some() => {
                let reason = match closed {
                    Some(LinkEvent::Closed(r)) => r,
                    _ => "event loop ended".to_string(),
                };
                up.drop_link(&mut conn);
                failures = failures.saturating_add(1);
                let wait = backoff(failures, &up.gateway);
                retry_at = Instant::now() + wait;
                tracing::warn!(broker = %up.cfg.broker, error = %reason, retry_in = ?wait, depth = up.queue.stats().depth, "uplink down; samples stay queued on disk");
            }
            Step::Link(_) => {}
            Step::Fill => up.send(&mut conn),
            Step::Tick => {
                if let Err(e) = up.queue.tick(up.clock.now_ms()) {
                    tracing::error!(error = %e, "disk queue maintenance failed");
                }
                let q = up.queue.stats();
                let g = &up.stats.queue;
                g.depth.store(q.depth, Ordering::Relaxed);
                g.bytes.store(q.bytes, Ordering::Relaxed);
                g.oldest_ms.store(q.oldest_ms.unwrap_or(0), Ordering::Relaxed);
                g.evicted.store(q.evicted, Ordering::Relaxed);
                g.corrupt.store(q.corrupt_records, Ordering::Relaxed);
            }
            Step::Health => up.publish_health(&conn),
            Step::Retry => {}
            Step::Cancel => {
                rx.close();
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
        if let Some(deadline) = drain_until
            && sources_done
            && (up.queue.stats().depth == 0 || Instant::now() >= deadline)
        {
            break;
        }
    }
    if let Some(c) = conn.take() {
        if c.connected {
            let offline = up.status(Connectivity::Offline);
            let _ = c
                .client
                .try_publish(up.status_topic(), Qos::AtLeastOnce, true, offline);
            c.client.try_disconnect();
            // Let the driver flush the goodbye; it ends on the disconnect.
            let _ = tokio::time::timeout(Duration::from_secs(1), c.driver).await;
        } else {
            c.driver.abort();
        }
    }
    let depth = up.queue.stats().depth;
    if depth > 0 {
        tracing::info!(
            depth,
            "stopping with entries queued on disk; they are sent at the next start"
        );
    }
    if let Err(e) = up.queue.close() {
        tracing::error!(error = %e, "cannot close the disk queue cleanly");
    }
}

async fn next_event(conn: &mut Option<Conn>) -> Option<LinkEvent> {
    match conn {
        Some(c) => c.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens a fresh connection: a new client whose event loop runs in its own
/// task and reports what happens.
fn connect(up: &Uplink) -> Option<Conn> {
    let (host, port) = host_port(&up.cfg.broker)?;
    let settings = LinkSettings {
        version: up.cfg.protocol,
        host: host.to_string(),
        port,
        client_id: up.cfg.client_id.clone().unwrap_or_else(|| up.gateway.clone()),
        keep_alive: Duration::from_secs(up.cfg.keep_alive_secs.max(5)),
        inflight: u16::try_from(WINDOW + 8).unwrap_or(u16::MAX),
        credentials: up.cfg.username.clone().zip(up.cfg.password.clone()),
        tls: up.cfg.tls_material.clone(),
        will: (up.status_topic(), up.status(Connectivity::Offline)),
        capacity: WINDOW + 16,
    };
    let (client, events, driver) = link::open(settings);
    Some(Conn {
        client,
        events,
        driver,
        connected: false,
        awaiting: VecDeque::new(),
        in_flight: HashMap::new(),
    })
}

impl Uplink {
    /// `topic` in this gateway's form (`uplink.tenant_topics`): every topic
    /// the uplink publishes or subscribes to is rendered here or in `assemble`.
    fn topic(&self, topic: &Topic) -> String {
        topic.render_in(self.cfg.topic_form())
    }

    fn status_topic(&self) -> String {
        self.topic(&Topic::Status {
            gateway: self.gateway.clone(),
        })
    }

    fn status(&self, state: Connectivity) -> Vec<u8> {
        encode(&GatewayStatus {
            v: VERSION,
            gateway: self.gateway.clone(),
            state,
            since_ms: self.clock.now_ms(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// Puts a sample or alert in the disk queue.
    fn enqueue(&mut self, o: Outgoing) {
        let (lane, payload) = match &o {
            Outgoing::Sample {
                device,
                profile,
                sample,
            } => (Lane::Telemetry, queue_sample(device, profile, sample.clone())),
            Outgoing::Alert(a) => (Lane::Alerts, queue_alert(a)),
            // Published at once by the caller, never queued.
            Outgoing::CommandResult(_) | Outgoing::ConfigResult(_) => return,
        };
        if let Err(e) = self.queue.push(lane, &payload, self.clock.now_ms()) {
            self.stats.buffer_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, lane = lane.name(), "cannot queue on disk; entry lost");
        }
    }

    /// Hands out queued entries as messages while the window has room.
    fn send(&mut self, conn: &mut Option<Conn>) {
        let Some(c) = conn.as_mut().filter(|c| c.connected) else {
            return;
        };
        let max_samples = self.cfg.batch_max_samples.max(1);
        while c.free() > 0 {
            // At most one message per entry, so taking `free` entries never
            // makes more messages than the window (and the client's request
            // channel) can hold, even when every entry is another device's.
            let want = c.free();
            let entries = match self.queue.next_batch(want) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the disk queue");
                    return;
                }
            };
            if entries.is_empty() {
                return;
            }
            let full = entries.len() == want;
            let (messages, bad) = assemble(&self.gateway, self.cfg.topic_form(), entries, max_samples);
            if !bad.is_empty() {
                tracing::error!(entries = bad.len(), "undecodable queue entries dropped");
                self.stats
                    .buffer_errors
                    .fetch_add(bad.len() as u64, Ordering::Relaxed);
                self.confirm(&bad, 0);
            }
            for m in messages {
                c.awaiting.push_back((m.entries, m.samples));
                if let Err(e) = c.client.try_publish(m.topic, Qos::AtLeastOnce, false, m.payload) {
                    // The client is closed (or, against the window's
                    // accounting, full): what was handed out cannot go out on
                    // this connection. Drop it, so that everything unconfirmed
                    // is handed out again on the next one, at once.
                    tracing::warn!(error = %e, "cannot publish; reconnecting");
                    self.drop_link(conn);
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Ends the connection: everything handed out and not confirmed goes
    /// back to the queue, to be handed out again on the next connection.
    fn drop_link(&mut self, conn: &mut Option<Conn>) {
        if let Some(c) = conn.take() {
            c.driver.abort();
        }
        self.queue.rewind();
        self.stats.uplink_connected.store(false, Ordering::Relaxed);
    }

    fn confirm(&mut self, entries: &[(Lane, u64)], samples: usize) {
        for &(lane, id) in entries {
            if let Err(e) = self.queue.ack(lane, id) {
                tracing::error!(error = %e, "cannot confirm a queue entry");
            }
        }
        self.stats.published.fetch_add(samples as u64, Ordering::Relaxed);
    }

    /// Publishes the outcome of a command or config now; with the link down
    /// it is logged only (the hub can ask again: commands carry ids, and a
    /// pushed config is retained, so it comes back on reconnect).
    fn publish_result(&self, conn: &mut Option<Conn>, topic: Topic, payload: &[u8], id: &str) {
        let Some(c) = conn.as_mut().filter(|c| c.connected) else {
            tracing::warn!(id, "result not sent: uplink down");
            return;
        };
        c.awaiting.push_back((Vec::new(), 0));
        if let Err(e) = c
            .client
            .try_publish(self.topic(&topic), Qos::AtLeastOnce, false, payload.to_vec())
        {
            c.awaiting.pop_back();
            tracing::warn!(error = %e, id, "cannot publish a result");
        }
    }

    fn publish_health(&mut self, conn: &Option<Conn>) {
        let Some(c) = conn.as_ref().filter(|c| c.connected) else {
            return;
        };
        let host = self.probe.sample();
        let q = self.queue.stats();
        let devices = lock(&self.stats.devices);
        let device_polls = devices
            .iter()
            .map(|(id, d)| DevicePolls {
                device: id.clone(),
                ok: d.ok.load(Ordering::Relaxed),
                errors: d.errors.load(Ordering::Relaxed),
                last_ok_ms: Some(d.last_ok_ms.load(Ordering::Relaxed)).filter(|&t| t > 0),
            })
            .collect();
        let h = GatewayHealth {
            v: VERSION,
            gateway: self.gateway.clone(),
            ts_ms: self.clock.now_ms(),
            devices: u32::try_from(devices.len()).unwrap_or(u32::MAX),
            poll_errors: self.stats.poll_errors.load(Ordering::Relaxed),
            buffer_depth: q.depth,
            buffer_oldest_ms: q.oldest_ms,
            buffer_evicted: q.evicted,
            buffer_corrupt: q.corrupt_records,
            rss_bytes: host.rss_bytes,
            cpu_pct: host.cpu_pct,
            mem_used_bytes: host.mem_used_bytes,
            mem_total_bytes: host.mem_total_bytes,
            disk_free_bytes: host.disk_free_bytes,
            device_polls,
        };
        let topic = self.topic(&Topic::Health {
            gateway: self.gateway.clone(),
        });
        // QoS 0 takes no packet id, so it does not disturb the in-flight mapping.
        if let Err(e) = c.client.try_publish(topic, Qos::AtMostOnce, false, encode(&h)) {
            tracing::debug!(error = %e, "health not sent");
        }
    }
}
