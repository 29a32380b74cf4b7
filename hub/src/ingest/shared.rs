//! Predictions when several hubs share one store through a shared
//! subscription. The broker hands each message to one hub of the group, so
//! every hub sees only part of each device's samples; the store sees them
//! all. A device's predictions are therefore made by one hub at a time, the
//! holder of its lease (`device_leases`, renewed while the device talks),
//! from the store, in sequence order:
//!
//! - A hub takes a device's lease when it is free or expired, resumes the
//!   device's trackers from their saved states, and feeds them the samples
//!   stored after those states.
//! - It then feeds each sequence number once, in order. A missing number is
//!   usually another hub's sample not yet committed: it waits up to
//!   [`GAP_WAIT`] for it before going on without it (a lost message, or an
//!   agent restart's skip).
//! - A hub that finds its lease taken (it was too slow to renew, or was
//!   killed and came back after [`LEASE_TTL`]) drops the device's trackers
//!   and unwritten states.
//! - Samples other hubs store for a held device are fed when this hub next
//!   stores one of the device's, or within [`CATCH_UP_EVERY`] (a device held
//!   back by a gap is looked at again then, so a filled gap does not wait
//!   out [`GAP_WAIT`]).
//! - Ended lives are learned from the store every [`LIVES_SYNC_EVERY`], so
//!   every hub's fleet prior knows the lives the others recorded.
//!
//! Lease times are wall-clock: hubs on several machines need synchronised
//! clocks (NTP), as any lease does.

use super::{Ingest, REPLAY};
use crate::clock::wall_ms;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wearline_models::rul::tracker::EndedLife;
use wearline_models::wire::Sample;

/// How long a lease lasts without renewal; renewed once half has passed.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a missing sequence number holds back a device's later samples:
/// long enough for a killed hub to be restarted and store what its broker
/// session kept for it (a sample fed after later ones would be lost to the
/// trackers). A real loss or an agent restart's skip delays the device's
/// predictions this long, once.
pub const GAP_WAIT: Duration = Duration::from_secs(60);
/// How often ended lives recorded by other hubs are learned.
pub const LIVES_SYNC_EVERY: Duration = Duration::from_secs(10);
/// How often a hub looks for samples other hubs stored for the devices it
/// holds (when it does not receive any of a device's messages itself).
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

/// What a hub of a shared group knows about its leases.
#[derive(Debug)]
pub struct Shared {
    /// This hub's name in `device_leases` (its MQTT client id, kept across
    /// restarts, so a restarted hub finds its leases still its own).
    pub owner: String,
    /// Held devices: when the lease expires, by this hub's clock.
    held: HashMap<String, Instant>,
    /// Held devices: how far their trackers were fed.
    fed: HashMap<String, Feed>,
    /// Ended lives already learned: (device, consumable, started_ms).
    pub(super) known_lives: HashSet<(String, String, i64)>,
    last_lives_sync: Instant,
    last_catch_up: Instant,
}

#[derive(Debug)]
struct Feed {
    profile: String,
    /// Last sequence number fed (or, right after taking the lease, the last
    /// one in the saved states); `None` for a device without saved states,
    /// fed from its first sample.
    seq: Option<i64>,
    /// Since when a missing number holds the device back.
    gap_since: Option<Instant>,
    /// A device new to every hub is first fed after [`SETTLE`], so that
    /// its first samples, split between hubs, are all committed.
    settle_until: Option<Instant>,
}

/// How long a device without saved states waits before its first feed.
pub const SETTLE: Duration = Duration::from_secs(2);

impl Shared {
    pub fn new(owner: String) -> Shared {
        Shared {
            owner,
            held: HashMap::new(),
            fed: HashMap::new(),
            known_lives: HashSet::new(),
            last_lives_sync: Instant::now(),
            last_catch_up: Instant::now(),
        }
    }
}

impl Ingest {
    /// Renews or takes the leases of `devices` (each with its profile) that
    /// just stored samples, then feeds the held ones from the store.
    pub(super) async fn feed_shared(&mut self, devices: BTreeMap<String, String>) {
        let Some(shared) = &mut self.shared else {
            return;
        };
        let now = Instant::now();
        let renew: Vec<&str> = devices
            .keys()
            .filter(|d| {
                shared
                    .held
                    .get(*d)
                    .is_none_or(|exp| exp.saturating_duration_since(now) < LEASE_TTL / 2)
            })
            .map(String::as_str)
            .collect();
        if !renew.is_empty() {
            let ttl_ms = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
            let held = match self
                .store
                .lease_devices(&shared.owner, &renew, wall_ms(), ttl_ms)
                .await
            {
                Ok(h) => h.into_iter().collect::<HashSet<String>>(),
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot renew device leases; predictions wait for the next batch");
                    return;
                }
            };
            let renew: Vec<String> = renew.into_iter().map(str::to_string).collect();
            for device in renew {
                let Some(shared) = &mut self.shared else {
                    return;
                };
                if held.contains(&device) {
                    let new = shared.held.insert(device.clone(), now + LEASE_TTL).is_none();
                    if new {
                        let profile = devices.get(&device).cloned().unwrap_or_default();
                        self.take_device(&device, profile).await;
                    }
                } else if shared.held.remove(&device).is_some() {
                    self.drop_device(&device);
                }
            }
        }
        for device in devices.keys() {
            if self.shared.as_ref().is_some_and(|s| s.held.contains_key(device)) {
                self.feed_device(device).await;
            }
        }
    }

    /// A lease newly held: the device's trackers resume from their saved
    /// states (what another hub, or this one before a restart, wrote).
    async fn take_device(&mut self, device: &str, profile: String) {
        tracing::debug!(device, "device lease taken");
        self.predictor.forget(device);
        let mut resumed = false;
        match self.store.consumables(device).await {
            Ok(rows) => {
                for row in rows {
                    let consumable = self
                        .profiles
                        .get(&row.profile)
                        .and_then(|p| p.consumables.iter().find(|c| c.name == row.name));
                    if let (Some(c), Ok(state)) = (consumable, serde_json::from_str(&row.state)) {
                        resumed |= self.predictor.resume(device, c, state);
                    }
                }
            }
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, device, "cannot load saved life states; rebuilt from history");
            }
        }
        // Where the saved states end, as a sequence number, so that the next
        // one is waited for like any other.
        let mut seq = None;
        if resumed && let Some(p) = self.profiles.get(&profile) {
            let since = p
                .consumables
                .iter()
                .filter_map(|c| self.predictor.last_ms(device, &c.name))
                .min();
            if let Some(ms) = since {
                match self.store.seq_at(device, ms).await {
                    Ok(s) => seq = s,
                    Err(e) => {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, device, "cannot find where the saved states end");
                    }
                }
            }
        }
        if let Some(shared) = &mut self.shared {
            shared.fed.insert(
                device.to_string(),
                Feed {
                    profile,
                    seq,
                    gap_since: None,
                    settle_until: seq.is_none().then(|| Instant::now() + SETTLE),
                },
            );
        }
    }

    /// A lease lost to another hub: what this hub held of the device goes.
    fn drop_device(&mut self, device: &str) {
        tracing::info!(
            device,
            "device lease lost to another hub; its predictions are made there"
        );
        self.predictor.forget(device);
        self.dirty.remove(device);
        self.due.remove(device);
        if let Some(shared) = &mut self.shared {
            shared.fed.remove(device);
        }
    }

    /// Feeds a held device's trackers with the samples stored after the
    /// last one fed, in sequence order, up to a gap still within
    /// [`GAP_WAIT`].
    async fn feed_device(&mut self, device: &str) {
        let Some(profile) = self
            .shared
            .as_ref()
            .and_then(|s| s.fed.get(device))
            .and_then(|f| self.profiles.get(&f.profile))
            .cloned()
        else {
            return;
        };
        loop {
            let Some(feed) = self.shared.as_ref().and_then(|s| s.fed.get(device)) else {
                return;
            };
            if feed.settle_until.is_some_and(|t| Instant::now() < t) {
                return;
            }
            let after_ms = profile
                .consumables
                .iter()
                .map(|c| self.predictor.last_ms(device, &c.name).unwrap_or(i64::MIN))
                .min()
                .unwrap_or(i64::MIN);
            let rows = match self.store.samples_since(device, feed.seq, after_ms, REPLAY).await {
                Ok(r) => r,
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device, "cannot read samples to predict from; retried on the next batch");
                    return;
                }
            };
            let full = rows.len() as i64 == REPLAY;
            let Some(feed) = self.shared.as_mut().and_then(|s| s.fed.get_mut(device)) else {
                return;
            };
            feed.settle_until = None;
            let mut samples = Vec::with_capacity(rows.len());
            let mut held_back = false;
            for (seq, ts_ms, body) in rows {
                if feed.seq.is_some_and(|last| seq != last + 1) {
                    let since = *feed.gap_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < GAP_WAIT {
                        held_back = true;
                        break;
                    }
                    tracing::debug!(device, after = ?feed.seq, next = seq, "sequence gap waited out; going on without it");
                }
                feed.gap_since = None;
                feed.seq = Some(seq);
                let Ok(values) = serde_json::from_str(&body) else {
                    continue;
                };
                samples.push(Sample {
                    seq: u64::try_from(seq).unwrap_or(0),
                    ts_ms,
                    values,
                    text: Default::default(),
                    restart: false,
                });
            }
            if !samples.is_empty() {
                let refs: Vec<&Sample> = samples.iter().collect();
                for update in self.predictor.observe(device, &profile, &refs) {
                    if let Err(e) = self.apply(device, &profile, update).await {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, device, "cannot record a prediction");
                    }
                }
            }
            if held_back || !full {
                return;
            }
        }
    }

    /// Periodic work of a shared hub: held devices with samples stored by
    /// other hubs, or held back by a gap now waited out, are fed; lives
    /// other hubs recorded are learned.
    pub(super) async fn shared_tick(&mut self) {
        let Some(shared) = &mut self.shared else {
            return;
        };
        let mut waiting: Vec<String> = shared
            .fed
            .iter()
            .filter(|(_, f)| f.gap_since.is_some_and(|t| t.elapsed() >= GAP_WAIT))
            .map(|(d, _)| d.clone())
            .collect();
        if shared.last_catch_up.elapsed() >= CATCH_UP_EVERY && !shared.fed.is_empty() {
            shared.last_catch_up = Instant::now();
            match self.store.last_seqs().await {
                Ok(rows) => {
                    let Some(shared) = &self.shared else {
                        return;
                    };
                    waiting.extend(rows.into_iter().filter_map(|(device, last)| {
                        let f = shared.fed.get(&device)?;
                        // Held back by a gap too: it may have been filled since.
                        f.seq.is_none_or(|s| last > s).then_some(device)
                    }));
                }
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot read the devices' last sequence numbers");
                }
            }
        }
        let Some(shared) = &self.shared else {
            return;
        };
        let sync = shared.last_lives_sync.elapsed() >= LIVES_SYNC_EVERY;
        waiting.sort_unstable();
        waiting.dedup();
        for device in waiting {
            self.feed_device(&device).await;
        }
        if sync {
            self.sync_lives().await;
        }
    }

    /// Learns the ended lives in the store not yet known here.
    pub(super) async fn sync_lives(&mut self) {
        let rows = match self.store.lives_keyed().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot read ended lives");
                return;
            }
        };
        let Some(shared) = &mut self.shared else {
            return;
        };
        shared.last_lives_sync = Instant::now();
        let mut new: BTreeMap<(String, String), Vec<EndedLife>> = BTreeMap::new();
        for (device, name, started_ms, profile, body) in rows {
            if shared
                .known_lives
                .contains(&(device.clone(), name.clone(), started_ms))
            {
                continue;
            }
            match serde_json::from_str(&body) {
                Ok(life) => {
                    shared.known_lives.insert((device, name.clone(), started_ms));
                    new.entry((profile, name)).or_default().push(life);
                }
                Err(e) => {
                    tracing::warn!(%device, consumable = %name, error = %e, "stored life unreadable; skipped")
                }
            }
        }
        for ((profile, name), lives) in new {
            self.predictor.add_lives(&profile, &name, lives);
        }
    }
}
