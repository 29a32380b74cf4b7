//! One MQTT connection, in MQTT 3.1.1 or 5, behind one small interface: the
//! uplink publishes and subscribes through [`Client`] and learns what happened
//! from [`LinkEvent`]s, whatever the protocol version.
//!
//! Each call to [`open`] makes a fresh rumqttc client whose event loop runs in
//! its own task until the connection ends; it is never reused.

use crate::config::{MqttVersion, TlsMaterial};
use rumqttc::{TlsConfiguration, Transport};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the connection reports.
#[derive(Debug)]
pub enum LinkEvent {
    Connected,
    /// A message arrived on a subscribed topic (commands, configs).
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    /// A QoS 1 publish went out with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// The connection ended.
    Closed(String),
}

/// Delivery guarantee of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// A client of either protocol version.
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// What a connection needs.
pub struct LinkSettings {
    pub version: MqttVersion,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub inflight: u16,
    pub credentials: Option<(String, String)>,
    pub tls: Option<TlsMaterial>,
    /// Topic and payload of the retained last will (QoS 1).
    pub will: (String, Vec<u8>),
    /// Requests that may wait in the client before the event loop takes them.
    pub capacity: usize,
}

impl Client {
    /// Queues a publish without waiting; fails only when the client is closed or full.
    pub fn try_publish(&self, topic: String, qos: Qos, retain: bool, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, v4_qos(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, v5_qos(qos), retain, payload)
                .map_err(|e| e.to_string()),
        }
    }

    /// Subscribes with QoS 1.
    pub fn try_subscribe(&self, topic: String) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_subscribe(topic, rumqttc::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        }
    }

    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

fn v4_qos(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn v5_qos(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

fn transport(tls: &Option<TlsMaterial>) -> Option<Transport> {
    tls.as_ref().map(|t| {
        Transport::tls_with_config(TlsConfiguration::Simple {
            ca: t.ca.clone(),
            alpn: None,
            client_auth: t.client_auth.clone(),
        })
    })
}

/// Opens a connection: the client, its events, and the task driving it.
pub fn open(s: LinkSettings) -> (Client, mpsc::UnboundedReceiver<LinkEvent>, JoinHandle<()>) {
    let (tx, events) = mpsc::unbounded_channel();
    let (client, driver) = match s.version {
        MqttVersion::V311 => {
            use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
            let mut opts = MqttOptions::new(s.client_id, s.host, s.port);
            opts.set_keep_alive(s.keep_alive);
            opts.set_max_packet_size(1 << 20, 1 << 20);
            opts.set_inflight(s.inflight);
            if let Some((u, p)) = s.credentials {
                opts.set_credentials(u, p);
            }
            if let Some(t) = transport(&s.tls) {
                opts.set_transport(t);
            }
            opts.set_last_will(LastWill::new(s.will.0, s.will.1, QoS::AtLeastOnce, true));
            let (client, mut eventloop) = AsyncClient::new(opts, s.capacity);
            let driver = tokio::spawn(async move {
                loop {
                    let ev = match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => LinkEvent::Connected,
                        Ok(Event::Incoming(Packet::PubAck(a))) => LinkEvent::Acked(a.pkid),
                        Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                        },
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => LinkEvent::Closed("disconnected".into()),
                        Ok(_) => continue,
                        Err(e) => LinkEvent::Closed(e.to_string()),
                    };
                    let last = matches!(ev, LinkEvent::Closed(_));
                    if tx.send(ev).is_err() || last {
                        break;
                    }
                }
            });
            (Client::V4(client), driver)
        }
        MqttVersion::V5 => {
            use rumqttc::Outgoing;
            use rumqttc::v5::mqttbytes::QoS;
            use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
            use rumqttc::v5::{AsyncClient, Event, MqttOptions};
            let mut opts = MqttOptions::new(s.client_id, s.host, s.port);
            opts.set_keep_alive(s.keep_alive);
            opts.set_max_packet_size(Some(1 << 20));
            opts.set_outgoing_inflight_upper_limit(s.inflight);
            if let Some((u, p)) = s.credentials {
                opts.set_credentials(u, p);
            }
            if let Some(t) = transport(&s.tls) {
                opts.set_transport(t);
            }
            opts.set_last_will(LastWill::new(s.will.0, s.will.1, QoS::AtLeastOnce, true, None));
            let (client, mut eventloop) = AsyncClient::new(opts, s.capacity);
            let driver = tokio::spawn(async move {
                loop {
                    let ev = match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => LinkEvent::Connected,
                        Ok(Event::Incoming(Packet::PubAck(a))) => {
                            if !matches!(
                                a.reason,
                                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                            ) {
                                // The broker took the message but refused it: retrying
                                // would be refused again. Counted by the caller as acked.
                                tracing::error!(reason = ?a.reason, "broker refused a message");
                            }
                            LinkEvent::Acked(a.pkid)
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                        },
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => LinkEvent::Closed("disconnected".into()),
                        Ok(_) => continue,
                        Err(e) => LinkEvent::Closed(e.to_string()),
                    };
                    let last = matches!(ev, LinkEvent::Closed(_));
                    if tx.send(ev).is_err() || last {
                        break;
                    }
                }
            });
            (Client::V5(client), driver)
        }
    };
    (client, events, driver)
}
