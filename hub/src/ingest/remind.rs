//! Queuing customer reminders as predictions come in: when a consumable's
//! remaining life reaches one of its owner's reminder points, one reminder
//! per channel is queued (the store keeps each once per life, point and
//! channel), to be sent after the customer's quiet hours by
//! `crate::reminders`. Owners and settings are read from the store at most
//! every [`CACHE_FOR`].

use super::Ingest;
use crate::clock::wall_ms;
use crate::store::{NewReminder, ReminderSettings};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wearline_models::profile::{Consumable, Profile};
use wearline_models::reminders::{QuietHours, message, reached};
use wearline_models::rul::tracker::LifeEstimate;

/// How long a device's owner and a customer's settings are kept.
pub const CACHE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Reminding {
    owners: HashMap<String, (Option<i64>, Instant)>,
    settings: HashMap<i64, (ReminderSettings, Instant)>,
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
        let what = format!("the {} of your {}", c.name, profile.name.replace(['-', '_'], " "));
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
        if let Some((owner, at)) = self.reminding.owners.get(device)
            && at.elapsed() < CACHE_FOR
        {
            return *owner;
        }
        let owner = match self.store.device(device).await {
            Ok(d) => d.and_then(|d| d.customer_id),
            Err(e) => {
                tracing::warn!(error = %e, device, "cannot read the device's owner");
                return None;
            }
        };
        self.reminding
            .owners
            .insert(device.to_string(), (owner, Instant::now()));
        owner
    }

    async fn settings_of(&mut self, customer: i64) -> Option<ReminderSettings> {
        if let Some((s, at)) = self.reminding.settings.get(&customer)
            && at.elapsed() < CACHE_FOR
        {
            return Some(s.clone());
        }
        match self.store.reminder_settings(customer).await {
            Ok(s) => {
                self.reminding
                    .settings
                    .insert(customer, (s.clone(), Instant::now()));
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, customer, "cannot read reminder settings");
                None
            }
        }
    }
}
