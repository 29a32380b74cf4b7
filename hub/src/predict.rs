//! Remaining-life state of every consumable in the fleet, updated sample by
//! sample as telemetry arrives (no refit of the history per point).
//!
//! One `LifeTracker` per (device, consumable) holds the current life; what
//! the fleet has learned from ended lives (`FleetKnowledge`: the prior and
//! the trend calibration) is kept per (profile, consumable) and relearned
//! when a life ends and is stored. The ingest task stores each tracker's state with its
//! prediction, so a restart resumes every life where it was.

use std::collections::HashMap;
use wearline_models::profile::{Consumable, Profile};
use wearline_models::rul::tracker::{
    EndedLife, FleetKnowledge, LifeEstimate, LifeState, LifeTracker, Observed,
};
use wearline_models::wire::Sample;

/// Coverage of the prediction intervals the hub reports.
pub const COVERAGE: f64 = 0.9;
/// Version of the model behind predictions, recorded with each one.
pub const MODEL_VERSION: &str = "wearline-rul/2";

/// What a batch of samples did to one consumable.
#[derive(Debug, Clone)]
pub struct ConsumableUpdate {
    /// Index of the consumable in its profile.
    pub index: usize,
    pub estimate: Option<LifeEstimate>,
    /// Lives ended by replacements seen in this batch.
    pub ended: Vec<EndedLife>,
}

/// A consumable's current life, as the store keeps it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub estimate: Option<LifeEstimate>,
    pub state: LifeState,
    /// Samples in the current life.
    pub samples: u64,
}

#[derive(Debug, Default)]
struct Kind {
    lives: Vec<EndedLife>,
    knowledge: FleetKnowledge,
}

/// One device's trackers, by consumable name: a profile has a few
/// consumables, so a list sized to them. A map per device took room for
/// four 872-byte trackers for one consumable: 18 MB of the hub's heap for
/// 5000 devices (heaptrack under `bench ingest`).
#[derive(Debug, Default)]
struct DeviceTrackers(Vec<(String, LifeTracker)>);

impl DeviceTrackers {
    fn get(&self, consumable: &str) -> Option<&LifeTracker> {
        self.0.iter().find(|(n, _)| n == consumable).map(|(_, t)| t)
    }

    fn get_mut(&mut self, consumable: &str) -> Option<&mut LifeTracker> {
        self.0.iter_mut().find(|(n, _)| n == consumable).map(|(_, t)| t)
    }

    /// Sets `consumable`'s tracker, replacing any; room is taken for
    /// `expected` consumables in all.
    fn set(&mut self, consumable: &str, tracker: LifeTracker, expected: usize) {
        match self.get_mut(consumable) {
            Some(t) => *t = tracker,
            None => {
                self.0.reserve_exact(expected.saturating_sub(self.0.len()).max(1));
                self.0.push((consumable.to_string(), tracker));
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Predictor {
    /// By device, then consumable name.
    trackers: HashMap<String, DeviceTrackers>,
    /// By profile, then consumable name.
    fleet: HashMap<String, HashMap<String, Kind>>,
}

impl Predictor {
    pub fn new() -> Predictor {
        Predictor::default()
    }

    /// Resumes a consumable's life from a saved state; a state that does not
    /// fit the profile any more is dropped (the life restarts from the data).
    pub fn resume(&mut self, device: &str, consumable: &Consumable, state: LifeState) -> bool {
        match LifeTracker::resume(consumable, state) {
            Ok(t) => {
                self.trackers
                    .entry(device.to_string())
                    .or_default()
                    .set(&consumable.name, t, 1);
                true
            }
            Err(e) => {
                tracing::warn!(device, consumable = %consumable.name, error = %e, "saved life state dropped");
                false
            }
        }
    }

    /// Drops a device's trackers (another hub makes its predictions now).
    pub fn forget(&mut self, device: &str) {
        self.trackers.remove(device);
    }

    /// Time stamp of the latest sample a consumable's tracker has taken.
    pub fn last_ms(&self, device: &str, consumable: &str) -> Option<i64> {
        self.trackers
            .get(device)
            .and_then(|d| d.get(consumable))
            .and_then(|t| t.state().last_ms())
    }

    /// Adds ended lives learned elsewhere (the store, at start) and relearns.
    pub fn add_lives(&mut self, profile: &str, consumable: &str, lives: Vec<EndedLife>) {
        let kind = self
            .fleet
            .entry(profile.to_string())
            .or_default()
            .entry(consumable.to_string())
            .or_default();
        kind.lives.extend(lives);
        kind.knowledge = FleetKnowledge::learn(&kind.lives);
    }

    /// What the fleet knows about a consumable of a profile.
    pub fn knowledge(&self, profile: &str, consumable: &str) -> Option<&FleetKnowledge> {
        self.fleet
            .get(profile)
            .and_then(|p| p.get(consumable))
            .map(|k| &k.knowledge)
    }

    /// The current life of a device's consumable, with a fresh estimate.
    pub fn snapshot(&self, device: &str, profile: &str, consumable: &str) -> Option<Snapshot> {
        let t = self.trackers.get(device)?.get(consumable)?;
        Some(Snapshot {
            estimate: t.estimate(self.knowledge(profile, consumable), COVERAGE),
            state: t.state().clone(),
            samples: t.points(),
        })
    }

    /// Feeds a device's new samples (in time order) through the trackers of
    /// its profile's consumables; returns one update per consumable that took
    /// a sample.
    pub fn observe(&mut self, device: &str, profile: &Profile, samples: &[&Sample]) -> Vec<ConsumableUpdate> {
        let mut out = Vec::new();
        if profile.consumables.is_empty() {
            return out;
        }
        if !self.trackers.contains_key(device) {
            self.trackers
                .insert(device.to_string(), DeviceTrackers::default());
        }
        let Some(trackers) = self.trackers.get_mut(device) else {
            return out;
        };
        for (index, c) in profile.consumables.iter().enumerate() {
            if trackers.get(&c.name).is_none() {
                match LifeTracker::new(c) {
                    Ok(t) => trackers.set(&c.name, t, profile.consumables.len()),
                    Err(e) => {
                        tracing::warn!(device, consumable = %c.name, error = %e, "consumable cannot be tracked");
                        continue;
                    }
                }
            }
            let Some(tracker) = trackers.get_mut(&c.name) else {
                continue;
            };
            let mut ended = Vec::new();
            let mut took = false;
            for s in samples {
                match tracker.observe(s.ts_ms, &s.values) {
                    Observed::Ignored => {}
                    Observed::Updated => took = true,
                    Observed::Replaced(life) => {
                        took = true;
                        ended.push(life);
                    }
                }
            }
            if !took {
                continue;
            }
            // Ended lives join the fleet's knowledge once stored (`add_lives`),
            // so one seen again after a restart is not learned twice.
            let knowledge = self
                .fleet
                .get(&profile.name)
                .and_then(|p| p.get(&c.name))
                .map(|k| &k.knowledge);
            out.push(ConsumableUpdate {
                index,
                estimate: tracker.estimate(knowledge, COVERAGE),
                ended,
            });
        }
        out
    }
}
