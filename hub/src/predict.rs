//! Remaining-life state of every consumable in the fleet, updated sample by
//! sample as telemetry arrives (no refit of the history per point).
//!
//! Holds one `Trend` per (device, consumable) in memory; the store keeps the
//! latest prediction of each, and at start the hub replays recent history to
//! rebuild the trends.

use std::collections::HashMap;
use wearline_models::life::{Prediction, Trend, TrendConfig, Update};
use wearline_models::profile::{Consumable, Profile};
use wearline_models::wire::Sample;

/// Name of the model behind predictions, recorded with each one.
pub const MODEL: &str = "ewls-linear-v1";

/// What a batch of samples did to one consumable.
#[derive(Debug, Clone)]
pub struct ConsumableUpdate {
    pub consumable: Consumable,
    pub prediction: Option<Prediction>,
    /// A replacement was seen in this batch.
    pub replaced: bool,
    /// Samples in the current life.
    pub samples: u32,
}

#[derive(Debug, Default)]
pub struct Predictor {
    cfg: TrendConfig,
    trends: HashMap<(String, String), Trend>,
}

impl Predictor {
    pub fn new(cfg: TrendConfig) -> Predictor {
        Predictor {
            cfg,
            trends: HashMap::new(),
        }
    }

    /// Feeds a device's new samples through the trends of its profile's
    /// consumables; returns one update per consumable whose signal appeared.
    pub fn observe(&mut self, device: &str, profile: &Profile, samples: &[Sample]) -> Vec<ConsumableUpdate> {
        let mut out = Vec::new();
        for c in &profile.consumables {
            let trend = self
                .trends
                .entry((device.to_string(), c.name.clone()))
                .or_insert_with(|| Trend::new(self.cfg, c.threshold, c.reset_fraction));
            let mut seen = false;
            let mut replaced = false;
            for s in samples {
                if let Some(&v) = s.values.get(&c.signal) {
                    seen = true;
                    replaced |= trend.update(s.ts_ms, v) == Update::Replaced;
                }
            }
            if seen {
                out.push(ConsumableUpdate {
                    consumable: c.clone(),
                    prediction: trend.predict(),
                    replaced,
                    samples: trend.samples(),
                });
            }
        }
        out
    }
}
