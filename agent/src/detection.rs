//! Edge detection: the detectors each device's profile declares, run on every
//! sample the agent takes, turning their alert changes into wire alerts.
//!
//! The detectors themselves are pure (`wearline_models::detect::channel`);
//! this file keeps one set per device and survives a configuration change:
//! a device whose detectors did not change keeps its learned baselines and
//! open alerts.

use std::collections::{BTreeMap, HashMap};
use wearline_models::detect::{ChannelDetector, DetectorSpec};
use wearline_models::wire::{Alert, AlertState, VERSION};

/// Detector specs by device id.
pub type DetectorPlan = BTreeMap<String, Vec<DetectorSpec>>;

/// The running detectors of every device.
pub struct Detectors {
    gateway: String,
    by_device: HashMap<String, Vec<ChannelDetector>>,
}

impl Detectors {
    pub fn new(gateway: &str, plan: &DetectorPlan) -> Detectors {
        let mut d = Detectors {
            gateway: gateway.to_string(),
            by_device: HashMap::new(),
        };
        d.reconfigure(plan, 0);
        d
    }

    /// Adopts a new plan: devices whose specs are unchanged keep their state,
    /// others start afresh, and devices no longer listed are dropped. Alerts
    /// left open by a detector that goes away are cleared (returned), so the
    /// hub is not left with an alert nothing will ever close.
    pub fn reconfigure(&mut self, plan: &DetectorPlan, ts_ms: i64) -> Vec<Alert> {
        let mut old = std::mem::take(&mut self.by_device);
        for (device, specs) in plan {
            let Some(running) = old.remove(device) else {
                if !specs.is_empty() {
                    self.by_device
                        .insert(device.clone(), specs.iter().map(ChannelDetector::new).collect());
                }
                continue;
            };
            let same = running.len() == specs.len() && running.iter().zip(specs).all(|(r, s)| r.spec() == s);
            if same {
                self.by_device.insert(device.clone(), running);
            } else {
                old.insert(device.clone(), running);
                if !specs.is_empty() {
                    self.by_device
                        .insert(device.clone(), specs.iter().map(ChannelDetector::new).collect());
                }
            }
        }
        let mut cleared = Vec::new();
        for (device, running) in old {
            for d in running.iter().filter(|d| d.is_open()) {
                let Some(last) = d.last_event() else { continue };
                cleared.push(Alert {
                    v: VERSION,
                    gateway: self.gateway.clone(),
                    device: device.clone(),
                    ts_ms,
                    kind: d.spec().alert_kind().to_string(),
                    metric: d.spec().metric.clone(),
                    severity: last.severity,
                    score: 0.0,
                    baseline: last.baseline,
                    value: last.value,
                    state: AlertState::Cleared,
                });
            }
        }
        cleared
    }

    /// Feeds one sample of `device`; returns the alerts it opened, raised or cleared.
    pub fn observe(&mut self, device: &str, ts_ms: i64, values: &BTreeMap<String, f64>) -> Vec<Alert> {
        let Some(detectors) = self.by_device.get_mut(device) else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        for d in detectors {
            let Some(&x) = values.get(&d.spec().metric) else {
                continue;
            };
            let Some(e) = d.push(x) else { continue };
            alerts.push(Alert {
                v: VERSION,
                gateway: self.gateway.clone(),
                device: device.to_string(),
                ts_ms,
                kind: d.spec().alert_kind().to_string(),
                metric: d.spec().metric.clone(),
                severity: e.severity,
                score: e.score,
                baseline: e.baseline,
                value: e.value,
                state: if e.open {
                    AlertState::Open
                } else {
                    AlertState::Cleared
                },
            });
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(device: &str, spec: &str) -> DetectorPlan {
        let s: DetectorSpec = toml::from_str(spec).expect("spec");
        [(device.to_string(), vec![s])].into()
    }

    fn sample(t: f64) -> BTreeMap<String, f64> {
        [("temp".to_string(), t)].into()
    }

    #[test]
    fn alerts_carry_the_device_metric_and_state_and_survive_an_unchanged_plan() {
        let p = plan(
            "d1",
            "metric = \"temp\"\ntype = \"range\"\nhigh = 50.0\nalert = \"overheat\"",
        );
        let mut d = Detectors::new("gw", &p);
        assert!(d.observe("d1", 1, &sample(60.0)).is_empty(), "debounced");
        // Same plan again: the pending run is kept, so the next sample opens.
        assert!(d.reconfigure(&p, 1).is_empty());
        let a = d.observe("d1", 2, &sample(61.0));
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].kind.as_str(), a[0].metric.as_str(), a[0].state, a[0].ts_ms),
            ("overheat", "temp", AlertState::Open, 2)
        );
        assert_eq!((a[0].baseline, a[0].value), (50.0, 61.0));
        assert!(d.observe("other", 3, &sample(99.0)).is_empty());
        // A changed plan starts afresh, and clears the alert the old one left open.
        let cleared = d.reconfigure(&plan("d1", "metric = \"temp\"\ntype = \"range\"\nhigh = 70.0"), 3);
        assert_eq!(cleared.len(), 1);
        assert_eq!(
            (cleared[0].state, cleared[0].ts_ms, cleared[0].value),
            (AlertState::Cleared, 3, 61.0)
        );
        assert!(d.observe("d1", 4, &sample(60.0)).is_empty());
        assert!(d.reconfigure(&DetectorPlan::new(), 4).is_empty());
        assert!(d.observe("d1", 5, &sample(1000.0)).is_empty());
        assert!(d.observe("d1", 6, &sample(1000.0)).is_empty());
    }
}
