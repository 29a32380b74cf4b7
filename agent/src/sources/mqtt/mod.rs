//! MQTT input: subscribe to topics on a local broker where appliances publish
//! their own readings as JSON, and turn each payload into a sample.
//!
//! One task for all MQTT devices (one connection to the local broker). A
//! payload that does not map is counted and logged (at most every 10 s per
//! device) and never stops the task.

pub mod map;

use super::SampleSink;
use crate::clock::Clock;
use map::PayloadMap;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wearline_models::config::host_port;

/// The local broker the appliances publish to.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttInput {
    pub broker: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// One appliance publishing its own readings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttDevice {
    pub id: String,
    pub profile: String,
    /// Topic filter (MQTT wildcards allowed).
    pub topic: String,
    pub map: PayloadMap,
    /// The detectors of the device's profile.
    pub detectors: Vec<wearline_models::detect::DetectorSpec>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

/// Runs until `cancel` fires.
pub async fn run(
    input: MqttInput,
    devices: Vec<MqttDevice>,
    sink: SampleSink,
    clock: Clock,
    cancel: CancellationToken,
) {
    let Some((host, port)) = host_port(&input.broker) else {
        tracing::error!(broker = %input.broker, "MQTT input broker must be host:port");
        return;
    };
    let mut opts = MqttOptions::new(input.client_id.clone(), host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    if let (Some(u), Some(p)) = (&input.username, &input.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut last_log: HashMap<String, Instant> = HashMap::new();
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                tracing::info!(broker = %input.broker, "MQTT input connected");
                let filters = devices
                    .iter()
                    .map(|d| SubscribeFilter::new(d.topic.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "cannot subscribe to the MQTT input topics");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                tracing::info!(broker = %input.broker, topics = devices.len(), "MQTT input subscribed");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let arrived = clock.now_ms();
                for d in devices.iter().filter(|d| rumqttc::matches(&p.topic, &d.topic)) {
                    match d.map.apply(&p.payload, arrived) {
                        Ok(m) => {
                            if !sink
                                .emit(&d.id, &d.profile, m.ts_ms, m.values, Default::default())
                                .await
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            sink.stats.input_errors.fetch_add(1, Ordering::Relaxed);
                            let now = Instant::now();
                            if last_log
                                .get(&d.id)
                                .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY)
                            {
                                last_log.insert(d.id.clone(), now);
                                tracing::warn!(device = %d.id, topic = %p.topic, error = %e, "MQTT payload ignored");
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                tracing::warn!(broker = %input.broker, error = %e, retry_in = ?wait, "MQTT input connection lost");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
