//! Commands to gateways, over the ingest task's own MQTT connection (one
//! connection, one login: the embedded broker ties the hub's login to its
//! client id, and an external broker's ACL already lets the hub write
//! `wearline/v1/+/commands`).
//!
//! A command goes out at QoS 1 in every form of `TopicForm::downlink`
//! (plain, and the tenant form a certificate gateway subscribes in), from
//! the hub's client of the plain listener: the hub need not know how a
//! gateway connects, and the gateway, subscribed in one form, gets it once.
//! Publishing only queues the message; whether the device was written is
//! what the agent's `CommandResult` says, and callers wait for that, not
//! for the broker.

use rumqttc::{AsyncClient, QoS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use wearline_models::wire::{Command, Topic, TopicForm, encode};

/// Why a command could not be handed to the broker.
#[derive(Debug, thiserror::Error)]
pub enum DownlinkError {
    #[error("the hub is not connected to the broker")]
    NotConnected,
    #[error("cannot queue the command for the broker: {0}")]
    Queue(String),
}

/// A handle to publish commands; cheap to clone. Until ingest has
/// connected, sending fails with [`DownlinkError::NotConnected`].
#[derive(Debug, Clone, Default)]
pub struct Downlink {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    client: OnceLock<AsyncClient>,
    connected: AtomicBool,
}

impl Downlink {
    pub fn new() -> Downlink {
        Downlink::default()
    }

    /// The ingest task's client (set once, when it starts).
    pub(crate) fn attach(&self, client: AsyncClient) {
        let _ = self.inner.client.set(client);
    }

    /// Whether ingest's connection is up.
    pub(crate) fn set_connected(&self, up: bool) {
        self.inner.connected.store(up, Ordering::Relaxed);
    }

    /// Queues `cmd` for `gateway` in every downlink topic form, QoS 1.
    pub fn send(&self, gateway: &str, cmd: &Command) -> Result<(), DownlinkError> {
        let client = self
            .inner
            .client
            .get()
            .filter(|_| self.inner.connected.load(Ordering::Relaxed))
            .ok_or(DownlinkError::NotConnected)?;
        let payload = encode(cmd);
        let topic = Topic::Command {
            gateway: gateway.to_string(),
        };
        for form in TopicForm::downlink(gateway) {
            client
                .try_publish(topic.render_in(*form), QoS::AtLeastOnce, false, payload.clone())
                .map_err(|e| DownlinkError::Queue(e.to_string()))?;
        }
        tracing::debug!(id = %cmd.id, gateway, device = %cmd.device, "command published");
        Ok(())
    }
}
