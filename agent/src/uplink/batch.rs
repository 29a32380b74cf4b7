//! What goes into the disk queue and what comes out as MQTT messages: each
//! sample is queued on its own, and entries handed out by the queue are
//! assembled into per-device telemetry batches (up to a count) and alerts.
//!
//! Pure: no IO, no clock. Order per device is the queue's order.

use crate::buffer::{Entry, Lane};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wearline_models::wire::{Alert, Payload, Sample, Telemetry, Topic, TopicForm, VERSION, decode, encode};

/// A sample as stored in the disk queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedSample {
    pub device: String,
    pub profile: String,
    pub sample: Sample,
}

/// Encodes a sample for the queue.
pub fn queue_sample(device: &str, profile: &str, sample: Sample) -> Vec<u8> {
    let q = QueuedSample {
        device: device.to_string(),
        profile: profile.to_string(),
        sample,
    };
    serde_json::to_vec(&q).unwrap_or_default()
}

/// Encodes an alert for the queue.
pub fn queue_alert(alert: &Alert) -> Vec<u8> {
    encode(alert)
}

/// One MQTT message to publish, and the queue entries it confirms once the
/// broker acknowledges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub topic: String,
    pub payload: Vec<u8>,
    pub entries: Vec<(Lane, u64)>,
    /// Samples it carries (0 for an alert).
    pub samples: usize,
}

/// Assembles handed-out entries into messages: alerts one by one, samples
/// grouped by device (in queue order) into batches of at most `max_samples`.
/// Entries that cannot be decoded are returned apart, to be confirmed and
/// counted rather than retried forever. Topics are in `form`.
pub fn assemble(
    gateway: &str,
    form: TopicForm,
    entries: Vec<Entry>,
    max_samples: usize,
) -> (Vec<Outbound>, Vec<(Lane, u64)>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    // Device batches in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (String, Vec<(Sample, u64)>)> = BTreeMap::new();
    for e in entries {
        match e.lane {
            Lane::Alerts => match decode::<Alert>(&e.payload) {
                Ok(a) => {
                    let topic = Topic::Alert {
                        gateway: gateway.to_string(),
                        device: a.device.clone(),
                    }
                    .render_in(form);
                    out.push(Outbound {
                        topic,
                        payload: e.payload,
                        entries: vec![(e.lane, e.id)],
                        samples: 0,
                    });
                }
                Err(_) => bad.push((e.lane, e.id)),
            },
            Lane::Telemetry => match serde_json::from_slice::<QueuedSample>(&e.payload) {
                Ok(q) => {
                    let g = groups.entry(q.device.clone()).or_insert_with(|| {
                        order.push(q.device.clone());
                        (q.profile.clone(), Vec::new())
                    });
                    g.1.push((q.sample, e.id));
                }
                Err(_) => bad.push((e.lane, e.id)),
            },
        }
    }
    for device in order {
        let Some((profile, samples)) = groups.remove(&device) else {
            continue;
        };
        let mut rest = samples.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<(Sample, u64)> = rest.by_ref().take(max_samples.max(1)).collect();
            let entries = chunk.iter().map(|(_, id)| (Lane::Telemetry, *id)).collect();
            let t = Telemetry {
                v: VERSION,
                gateway: gateway.to_string(),
                device: device.clone(),
                profile: profile.clone(),
                samples: chunk.into_iter().map(|(s, _)| s).collect(),
            };
            // A replayed backlog may repeat a sequence number only if the
            // queue did; the hub's check would refuse the whole batch.
            if t.check().is_err() {
                out.extend(split_checked(&t, form, entries));
                continue;
            }
            let samples = t.samples.len();
            let topic = Topic::Telemetry {
                gateway: t.gateway.clone(),
                device: device.clone(),
            }
            .render_in(form);
            out.push(Outbound {
                topic,
                payload: encode(&t),
                entries,
                samples,
            });
        }
    }
    (out, bad)
}

/// Sends samples one per message when a batch would not pass the hub's check.
fn split_checked(t: &Telemetry, form: TopicForm, entries: Vec<(Lane, u64)>) -> Vec<Outbound> {
    let topic = Topic::Telemetry {
        gateway: t.gateway.clone(),
        device: t.device.clone(),
    }
    .render_in(form);
    t.samples
        .iter()
        .zip(entries)
        .map(|(s, id)| {
            let one = Telemetry {
                samples: vec![s.clone()],
                ..t.clone()
            };
            Outbound {
                topic: topic.clone(),
                payload: encode(&one),
                entries: vec![id],
                samples: 1,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wearline_models::wire::{AlertState, Severity};

    fn entry(lane: Lane, id: u64, payload: Vec<u8>) -> Entry {
        Entry {
            lane,
            id,
            ts_ms: 0,
            payload,
        }
    }

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            ts_ms: seq as i64,
            values: BTreeMap::from([("x".to_string(), seq as f64)]),
            text: BTreeMap::new(),
            restart: false,
        }
    }

    #[test]
    fn groups_by_device_in_order_and_splits_by_count() {
        let entries = vec![
            entry(Lane::Telemetry, 1, queue_sample("a", "p", sample(10))),
            entry(Lane::Telemetry, 2, queue_sample("b", "p", sample(20))),
            entry(Lane::Telemetry, 3, queue_sample("a", "p", sample(11))),
            entry(Lane::Telemetry, 4, queue_sample("a", "p", sample(12))),
            entry(Lane::Telemetry, 5, b"garbage".to_vec()),
        ];
        let (out, bad) = assemble("gw", TopicForm::Plain, entries, 2);
        assert_eq!(bad, vec![(Lane::Telemetry, 5)]);
        let summary: Vec<(String, Vec<u64>)> = out
            .iter()
            .map(|o| (o.topic.clone(), o.entries.iter().map(|e| e.1).collect()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("wearline/v1/gw/telemetry/a".to_string(), vec![1, 3]),
                ("wearline/v1/gw/telemetry/a".to_string(), vec![4]),
                ("wearline/v1/gw/telemetry/b".to_string(), vec![2]),
            ]
        );
        let t: Telemetry = decode(&out[0].payload).expect("valid telemetry");
        assert_eq!(t.samples.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![10, 11]);
    }

    #[test]
    fn alerts_go_out_alone_on_their_topic() {
        let a = Alert {
            v: VERSION,
            gateway: "gw".into(),
            device: "d".into(),
            ts_ms: 1,
            kind: "data_gap".into(),
            metric: "*".into(),
            severity: Severity::Warning,
            score: 1.0,
            baseline: 1.0,
            value: 5.0,
            state: AlertState::Open,
        };
        let (out, bad) = assemble(
            "gw",
            TopicForm::Plain,
            vec![entry(Lane::Alerts, 7, queue_alert(&a))],
            10,
        );
        assert!(bad.is_empty());
        assert_eq!(out[0].topic, "wearline/v1/gw/alerts/d");
        assert_eq!(out[0].entries, vec![(Lane::Alerts, 7)]);
        assert_eq!(decode::<Alert>(&out[0].payload), Ok(a));
    }

    #[test]
    fn tenant_topics_carry_the_gateway_prefix() {
        let entries = vec![
            entry(Lane::Telemetry, 1, queue_sample("a", "p", sample(10))),
            // A repeated number: the batch is split, each message still in the tenant form.
            entry(Lane::Telemetry, 2, queue_sample("a", "p", sample(10))),
        ];
        let (out, _) = assemble("gw1", TopicForm::Tenant, entries, 10);
        assert_eq!(out.len(), 2);
        for o in &out {
            assert_eq!(o.topic, "/tenants/gw1/wearline/v1/gw1/telemetry/a");
        }
    }
}
