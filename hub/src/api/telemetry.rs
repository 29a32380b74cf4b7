//! A device's telemetry history: raw samples, or 1-minute or 1-hour
//! buckets, per metric, chosen by the caller or by a point budget.

use super::{ApiResult, AppError, AppState, ErrorBody, visible_device};
use crate::policy::Caller;
use crate::store::{Resolution, Retention};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};
use wearline_models::time::{parse_rfc3339, rfc3339};

/// Points per series when `limit` is not given, and the most allowed.
pub(super) const LIMIT_DEFAULT: i64 = 1000;
pub(super) const LIMIT_MAX: i64 = 10_000;
/// The window when `from` is not given: this long before `to`.
const WINDOW_DEFAULT_MS: i64 = 86_400_000;

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryQuery {
    /// Only this metric (default: all of the device's).
    #[param(min_length = 1, max_length = 128)]
    metric: Option<String>,
    /// Start of the window, included (RFC 3339; default: 24 hours before `to`).
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the window, excluded (RFC 3339; default: now).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `raw`, `1m`, `1h` or `auto` (the default).
    #[param(schema_with = resolution_schema)]
    resolution: Option<String>,
    /// Points per series, 1 to 10 000 (default 1000); the newest are kept.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

fn resolution_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            ["raw", "1m", "1h", "auto"].map(Some).into_iter().chain([None]),
        ))
}

/// One point of a series: a raw sample's value, or a bucket's figures.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum PointView {
    Raw {
        t: String,
        ts_ms: i64,
        seq: i64,
        value: f64,
    },
    Bucket {
        /// The bucket's start.
        t: String,
        ts_ms: i64,
        count: i64,
        min: f64,
        max: f64,
        mean: f64,
        sum: f64,
        last: f64,
    },
}

/// One metric's points, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct SeriesView {
    metric: String,
    /// More points were in the window than `limit`: these are the newest.
    truncated: bool,
    points: Vec<PointView>,
}

/// A device's history in a window, at one resolution.
#[derive(Serialize, ToSchema)]
pub(super) struct TelemetryView {
    device_id: String,
    /// The resolution answered (`raw`, `1m` or `1h`).
    resolution: &'static str,
    /// The resolution asked for (`auto` when not given).
    requested: String,
    from: String,
    to: String,
    limit: i64,
    series: Vec<SeriesView>,
}

/// A device's telemetry in `[from, to)` (RFC 3339, UTC; default: the last
/// 24 hours), one series per metric (or only `metric`), each point oldest
/// first and at most `limit` per series (default 1000, at most 10 000; the
/// newest are kept). `resolution` is `raw`, `1m`, `1h` or `auto` (the
/// default): the finest resolution whose retention still covers `from` and
/// whose series fit in `limit` points. An empty window (`from` not before
/// `to`) has no points.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/telemetry",
    tag = "devices",
    params(("id" = String, Path, description = "The device's id"), TelemetryQuery),
    responses(
        (status = 200, description = "The device's series in the window", body = TelemetryView),
        (status = 400, description = "A bad time, resolution, limit or metric, or an unknown parameter", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's", body = ErrorBody),
    )
)]
pub(super) async fn device_telemetry(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<TelemetryQuery>, QueryRejection>,
) -> ApiResult<TelemetryView> {
    let Query(q) = q.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let now = crate::clock::wall_ms();
    let to = match &q.to {
        Some(t) => time_param("to", t)?,
        None => now,
    };
    let from = match &q.from {
        Some(t) => time_param("from", t)?,
        None => to.saturating_sub(WINDOW_DEFAULT_MS),
    };
    let limit = match &q.limit {
        None => LIMIT_DEFAULT,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=LIMIT_MAX).contains(&n) => n,
            _ => {
                return Err(AppError::BadRequest(format!(
                    "limit `{l}`: expected a whole number from 1 to {LIMIT_MAX}"
                )));
            }
        },
    };
    let metric = q.metric.as_deref();
    if let Some(m) = metric
        && (m.is_empty() || m.len() > 128)
    {
        return Err(AppError::BadRequest(
            "metric: expected a metric name (1 to 128 characters)".into(),
        ));
    }
    let requested = q.resolution.clone().unwrap_or_else(|| "auto".into());
    let fixed = match requested.as_str() {
        "raw" => Some(Resolution::Raw),
        "1m" => Some(Resolution::Minute),
        "1h" => Some(Resolution::Hour),
        "auto" => None,
        other => {
            return Err(AppError::BadRequest(format!(
                "resolution `{other}`: expected `raw`, `1m`, `1h` or `auto`"
            )));
        }
    };
    let device = visible_device(&s, &caller, &id).await?;
    let resolution = match fixed {
        Some(r) => r,
        None => {
            let (raw, minutes) = s.store.history_sizes(&device.id, metric, from, to).await?;
            choose(&s.retention, now, from, limit, raw, minutes)
        }
    };
    let series = match resolution {
        Resolution::Raw => {
            let rows = s
                .store
                .raw_history(&device.id, metric, from, to, limit + 1)
                .await?;
            let cut = rows.len() as i64 > limit;
            let mut by_metric: BTreeMap<String, Vec<PointView>> = BTreeMap::new();
            for p in rows.into_iter().skip(usize::from(cut)) {
                for (m, v) in p.values {
                    by_metric.entry(m).or_default().push(PointView::Raw {
                        t: rfc3339(p.ts_ms),
                        ts_ms: p.ts_ms,
                        seq: p.seq,
                        value: v,
                    });
                }
            }
            by_metric
                .into_iter()
                .map(|(metric, points)| SeriesView {
                    metric,
                    truncated: cut,
                    points,
                })
                .collect()
        }
        r => {
            let width = r.width_ms().unwrap_or(1);
            // Buckets that overlap the window.
            let first = crate::store::bucket_start(from, width);
            let rows = s
                .store
                .rollup_history(r, &device.id, metric, first, to, limit + 1)
                .await?;
            let mut by_metric: BTreeMap<String, Vec<PointView>> = BTreeMap::new();
            for row in rows {
                by_metric.entry(row.metric).or_default().push(PointView::Bucket {
                    t: rfc3339(row.bucket_ms),
                    ts_ms: row.bucket_ms,
                    count: row.n,
                    min: row.min_v,
                    max: row.max_v,
                    mean: row.sum_v / row.n as f64,
                    sum: row.sum_v,
                    last: row.last_v,
                });
            }
            by_metric
                .into_iter()
                .map(|(metric, mut points)| {
                    let cut = points.len() as i64 > limit;
                    if cut {
                        points.remove(0);
                    }
                    SeriesView {
                        metric,
                        truncated: cut,
                        points,
                    }
                })
                .collect()
        }
    };
    Ok(Json(TelemetryView {
        device_id: device.id,
        resolution: resolution.as_str(),
        requested,
        from: rfc3339(from),
        to: rfc3339(to),
        limit,
        series,
    }))
}

/// `auto`: the finest resolution that still holds `from` under `retention`
/// at `now_ms` and whose largest series (`raw` samples, `minutes` buckets)
/// fits in `budget` points; else 1 hour.
pub(super) fn choose(
    retention: &Retention,
    now_ms: i64,
    from_ms: i64,
    budget: i64,
    raw: i64,
    minutes: i64,
) -> Resolution {
    let holds = |r| retention.horizon_ms(r, now_ms).is_none_or(|h| from_ms >= h);
    if holds(Resolution::Raw) && raw <= budget {
        Resolution::Raw
    } else if holds(Resolution::Minute) && minutes <= budget {
        Resolution::Minute
    } else {
        Resolution::Hour
    }
}

fn time_param(name: &str, text: &str) -> Result<i64, AppError> {
    parse_rfc3339(text).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{name} `{text}`: expected an RFC 3339 time, e.g. `2026-11-23T08:00:00Z`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[track_caller]
    fn check(from_days_ago: i64, raw: i64, minutes: i64, want: Resolution) {
        let day = 86_400_000;
        let now = 100 * day;
        let r = Retention::default();
        assert_eq!(
            choose(&r, now, now - from_days_ago * day, 1000, raw, minutes),
            want
        );
    }

    #[test]
    fn auto_takes_the_finest_resolution_that_fits_and_is_kept() {
        check(1, 1000, 17, Resolution::Raw);
        check(1, 1001, 1000, Resolution::Minute);
        check(1, 90_000, 1440, Resolution::Hour);
        // Raw samples are kept 7 days, minutes 90.
        check(8, 10, 10, Resolution::Minute);
        check(91, 10, 10, Resolution::Hour);
        let keep = Retention {
            raw: None,
            minute: None,
            hour: None,
        };
        assert_eq!(choose(&keep, 0, -1_000_000_000, 5, 5, 1), Resolution::Raw);
        let short = Retention {
            raw: Some(Duration::from_secs(60)),
            ..keep
        };
        assert_eq!(choose(&short, 120_000, 0, 5, 5, 1), Resolution::Minute);
    }
}
