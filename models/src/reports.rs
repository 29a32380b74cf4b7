//! Service reports from work orders: the top causes per device model and
//! month (feedback for R&D), mean time between failures, first-time-fix
//! rate and service-level compliance. Pure: the hub passes the facts.

use crate::time::rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a report needs of one work order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFacts {
    /// The device's model (its profile).
    pub model: String,
    pub kind: String,
    pub cause: String,
    pub opened_ms: i64,
    pub started_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub respond_by_ms: i64,
    pub resolve_by_ms: i64,
    /// Times it was reopened.
    pub reopens: u32,
}

/// How long a device has been watched (first to last sample).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpan {
    pub model: String,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The work orders of one model in one month, by cause, most first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthCauses {
    pub model: String,
    /// `YYYY-MM` (UTC) of opening.
    pub month: String,
    pub orders: u64,
    /// `(cause, orders)`, most first, then by name.
    pub causes: Vec<(String, u64)>,
}

/// The top `top` causes per model and month, months oldest first.
pub fn top_causes(orders: &[OrderFacts], top: usize) -> Vec<MonthCauses> {
    let mut by: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for o in orders {
        let month = rfc3339(o.opened_ms).get(..7).unwrap_or("").to_string();
        *by.entry((o.model.clone(), month))
            .or_default()
            .entry(o.cause.clone())
            .or_default() += 1;
    }
    let mut out: Vec<MonthCauses> = by
        .into_iter()
        .map(|((model, month), causes)| {
            let orders = causes.values().sum();
            let mut causes: Vec<(String, u64)> = causes.into_iter().collect();
            causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            causes.truncate(top);
            MonthCauses {
                model,
                month,
                orders,
                causes,
            }
        })
        .collect();
    out.sort_by(|a, b| a.month.cmp(&b.month).then_with(|| a.model.cmp(&b.model)));
    out
}

/// Service figures of one model (or `*`, all).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceFigures {
    pub model: String,
    pub orders: u64,
    /// Corrective orders: the failures.
    pub failures: u64,
    /// Device-hours watched.
    pub watched_hours: f64,
    /// Watched hours per failure; `None` without a failure.
    pub mtbf_hours: Option<f64>,
    /// Of the orders resolved at least once, the share never reopened.
    pub first_time_fix_rate: Option<f64>,
    /// Of the orders whose response is decided (started, or past due), the
    /// share started by `respond_by`.
    pub response_sla_met: Option<f64>,
    /// Likewise for resolution by `resolve_by`.
    pub resolution_sla_met: Option<f64>,
}

/// Service figures per model and overall (`*`, last), at `now_ms`.
pub fn service_figures(orders: &[OrderFacts], devices: &[DeviceSpan], now_ms: i64) -> Vec<ServiceFigures> {
    let mut models: Vec<String> = orders
        .iter()
        .map(|o| o.model.clone())
        .chain(devices.iter().map(|d| d.model.clone()))
        .collect();
    models.sort();
    models.dedup();
    let mut out: Vec<ServiceFigures> = models
        .iter()
        .map(|m| {
            figures(
                m,
                orders.iter().filter(|o| o.model == *m),
                devices.iter().filter(|d| d.model == *m),
                now_ms,
            )
        })
        .collect();
    out.push(figures("*", orders.iter(), devices.iter(), now_ms));
    out
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn figures<'a>(
    model: &str,
    orders: impl Iterator<Item = &'a OrderFacts>,
    devices: impl Iterator<Item = &'a DeviceSpan>,
    now_ms: i64,
) -> ServiceFigures {
    let (mut n, mut failures, mut resolved, mut fixed_first) = (0, 0, 0, 0);
    let (mut resp_known, mut resp_met, mut res_known, mut res_met) = (0, 0, 0, 0);
    for o in orders {
        n += 1;
        if o.kind == "corrective" {
            failures += 1;
        }
        if o.resolved_ms.is_some() || o.reopens > 0 {
            resolved += 1;
            if o.reopens == 0 {
                fixed_first += 1;
            }
        }
        match o.started_ms {
            Some(t) => {
                resp_known += 1;
                resp_met += u64::from(t <= o.respond_by_ms);
            }
            None if now_ms > o.respond_by_ms => resp_known += 1,
            None => {}
        }
        match o.resolved_ms {
            Some(t) => {
                res_known += 1;
                res_met += u64::from(t <= o.resolve_by_ms);
            }
            None if now_ms > o.resolve_by_ms => res_known += 1,
            None => {}
        }
    }
    let watched_hours: f64 = devices
        .map(|d| (d.last_ms - d.first_ms).max(0) as f64 / 3_600_000.0)
        .sum();
    ServiceFigures {
        model: model.to_string(),
        orders: n,
        failures,
        watched_hours,
        mtbf_hours: (failures > 0).then(|| watched_hours / failures as f64),
        first_time_fix_rate: ratio(fixed_first, resolved),
        response_sla_met: ratio(resp_met, resp_known),
        resolution_sla_met: ratio(res_met, res_known),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2025-06-01T00:00:00Z.
    const JUNE: i64 = 1_748_736_000_000;

    fn order(model: &str, kind: &str, cause: &str, opened: i64) -> OrderFacts {
        OrderFacts {
            model: model.into(),
            kind: kind.into(),
            cause: cause.into(),
            opened_ms: opened,
            started_ms: None,
            resolved_ms: None,
            respond_by_ms: opened + DAY,
            resolve_by_ms: opened + 3 * DAY,
            reopens: 0,
        }
    }

    #[test]
    fn causes_are_counted_per_model_and_month_most_first() {
        let orders = [
            order("purifier", "preventive", "consumable:filter", JUNE),
            order("purifier", "preventive", "consumable:filter", JUNE + DAY),
            order(
                "purifier",
                "corrective",
                "alert:vibration_anomaly",
                JUNE + 2 * DAY,
            ),
            order("purifier", "corrective", "offline", JUNE + 3 * DAY),
            order("fan", "corrective", "offline", JUNE),
            order("purifier", "preventive", "consumable:filter", JUNE + 31 * DAY),
        ];
        let r = top_causes(&orders, 2);
        type Flat<'a> = (&'a str, &'a str, u64, Vec<(&'a str, u64)>);
        let flat: Vec<Flat> = r
            .iter()
            .map(|m| {
                (
                    m.model.as_str(),
                    m.month.as_str(),
                    m.orders,
                    m.causes.iter().map(|(c, n)| (c.as_str(), *n)).collect(),
                )
            })
            .collect();
        assert_eq!(
            flat,
            [
                ("fan", "2025-06", 1, vec![("offline", 1)]),
                (
                    "purifier",
                    "2025-06",
                    4,
                    vec![("consumable:filter", 2), ("alert:vibration_anomaly", 1)]
                ),
                ("purifier", "2025-07", 1, vec![("consumable:filter", 1)]),
            ]
        );
    }

    #[test]
    fn mtbf_first_time_fix_and_sla_compliance() {
        let mut a = order("purifier", "corrective", "offline", JUNE);
        a.started_ms = Some(JUNE + DAY / 2); // responded in time
        a.resolved_ms = Some(JUNE + 4 * DAY); // resolved late
        let mut b = order("purifier", "corrective", "alert:x", JUNE);
        b.started_ms = Some(JUNE + 2 * DAY); // responded late
        b.resolved_ms = Some(JUNE + 2 * DAY);
        b.reopens = 1;
        let c = order("purifier", "preventive", "consumable:filter", JUNE); // untouched, overdue at `now`
        let d = order("purifier", "preventive", "consumable:filter", JUNE + 10 * DAY); // not due yet
        let devices = [
            DeviceSpan {
                model: "purifier".into(),
                first_ms: JUNE - 100 * DAY,
                last_ms: JUNE + 10 * DAY,
            },
            DeviceSpan {
                model: "purifier".into(),
                first_ms: JUNE,
                last_ms: JUNE + 10 * DAY,
            },
        ];
        let now = JUNE + 10 * DAY + 1;
        let figures = service_figures(&[a, b, c, d], &devices, now);
        let p = &figures[0];
        assert_eq!((p.model.as_str(), p.orders, p.failures), ("purifier", 4, 2));
        assert_eq!(p.watched_hours, 120.0 * 24.0);
        assert_eq!(p.mtbf_hours, Some(60.0 * 24.0));
        assert_eq!(p.first_time_fix_rate, Some(0.5), "b was reopened");
        // Response decided for a (met), b (missed), c (overdue): 1 of 3; d is not due.
        assert_eq!(p.response_sla_met, Some(1.0 / 3.0));
        // Resolution decided for a (late), b (met), c (overdue): 1 of 3.
        assert_eq!(p.resolution_sla_met, Some(1.0 / 3.0));
        let all = figures.last().expect("overall");
        assert_eq!((all.model.as_str(), all.orders), ("*", 4));
        let none = service_figures(&[], &[], now);
        assert_eq!(
            (none.len(), none[0].mtbf_hours, none[0].first_time_fix_rate),
            (1, None, None)
        );
    }
}
