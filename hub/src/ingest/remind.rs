//! Queuing customer reminders as predictions come in: when a consumable's
//! remaining life reaches one of its owner's reminder points, one reminder
//! per channel is queued (the store keeps each once per life, point and
//! channel), to be sent after the customer's quiet hours by
//! `crate::reminders`. Every device's owner and every customer's settings
//! are read from the store in two queries, at most every [`CACHE_FOR`]: the
//! prediction path never waits on the store for them (a lookup per device
//! made the p99 of publish-to-queryable 880 ms in `bench ingest`).

use super::Ingest;
use crate::clock::wall_ms;
use crate::store::{NewReminder, ReminderSettings};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wearline_models::profile::{Consumable, Profile};
use wearline_models::reminders::{QuietHours, message, reached, what};
use wearline_models::rul::tracker::LifeEstimate;

/// How long a device's owner and a customer's settings are kept.
pub const CACHE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Reminding {
    /// Device → its owner.
    owners: HashMap<String, i64>,
    /// Customer → stored settings (others use the defaults).
    settings: HashMap<i64, ReminderSettings>,
    /// When they were read (`None`: read at the next prediction).
    pub(super) loaded: Option<Instant>,
    /// (device, consumable, life start, point) already queued by this hub.
    queued: HashSet<(String, String, i64, u64)>,
}

impl Ingest {
    /// Queues the reminders a new estimate calls for, if any.
    pub(super) async fn remind(&mut self, device: &str, profile: &Profile, c: &Consumable, e: &LifeEstimate) {
        let remaining = e.remaining_days();
        let Some(customer) = self.owner_of(device).await else {
            return;
        };
        let Some(settings) = self.settings_of(customer).await else {
            return;
        };
        if settings.opted_out {
            return;
        }
        let Some(point) = reached(&settings.points, remaining) else {
            return;
        };
        let key = (
            device.to_string(),
            c.name.clone(),
            e.life_start_ms,
            point.to_bits(),
        );
        if self.reminding.queued.contains(&key) {
            return;
        }
        let what = what(&c.name, &profile.name);
        let now = wall_ms();
        let quiet = QuietHours {
            start: u8::try_from(settings.quiet_hours[0].clamp(0, 24)).unwrap_or(0),
            end: u8::try_from(settings.quiet_hours[1].clamp(0, 24)).unwrap_or(0),
            utc_offset_minutes: i32::try_from(settings.utc_offset_minutes).unwrap_or(0),
        };
        for channel in &settings.channels {
            let r = NewReminder {
                customer_id: customer,
                device_id: device.to_string(),
                consumable: c.name.clone(),
                life_start_ms: e.life_start_ms,
                point_days: point,
                channel: channel.clone(),
                remaining_days: remaining,
                message: message(&what, remaining, None),
                created_ms: now,
                send_at_ms: quiet.next_send_ms(now),
            };
            match self.store.queue_reminder(&r).await {
                Ok(true) => tracing::info!(device, consumable = %c.name, point, channel, "reminder queued"),
                Ok(false) => {}
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, device, "cannot queue a reminder; tried again on the next prediction");
                    return;
                }
            }
        }
        self.reminding.queued.insert(key);
    }

    async fn owner_of(&mut self, device: &str) -> Option<i64> {
        self.load_owners().await;
        self.reminding.owners.get(device).copied()
    }

    async fn settings_of(&mut self, customer: i64) -> Option<ReminderSettings> {
        self.load_owners().await;
        Some(
            self.reminding
                .settings
                .get(&customer)
                .cloned()
                .unwrap_or_else(|| ReminderSettings::defaults(customer)),
        )
    }

    /// Reads the owners and settings when older than [`CACHE_FOR`]; on a
    /// failure the old ones stay (retried after another [`CACHE_FOR`]).
    async fn load_owners(&mut self) {
        if self.reminding.loaded.is_some_and(|t| t.elapsed() < CACHE_FOR) {
            return;
        }
        self.reminding.loaded = Some(Instant::now());
        match (
            self.store.device_owners().await,
            self.store.all_reminder_settings().await,
        ) {
            (Ok(owners), Ok(settings)) => {
                self.reminding.owners = owners.into_iter().filter_map(|(d, c, _)| Some((d, c?))).collect();
                self.reminding.settings = settings.into_iter().map(|s| (s.customer_id, s)).collect();
            }
            (Err(e), _) | (_, Err(e)) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot read device owners and reminder settings");
            }
        }
    }
}
