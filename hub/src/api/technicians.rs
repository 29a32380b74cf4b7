//! The service team: technicians' skills, home base, capacity and hours.

use super::{ApiResult, AppError, AppState, body, managers_only};
use crate::policy::Caller;
use crate::store::TechnicianRow;
use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::Serialize;

#[derive(Serialize)]
pub(super) struct TechnicianView {
    #[serde(flatten)]
    row: TechnicianRow,
    skills: Vec<String>,
}

pub(super) async fn technicians(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Vec<TechnicianView>> {
    managers_only(&caller)?;
    Ok(Json(
        s.store
            .technicians()
            .await?
            .into_iter()
            .map(|row| TechnicianView {
                skills: serde_json::from_str(&row.skills).unwrap_or_default(),
                row,
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TechnicianRequest {
    skills: Vec<String>,
    latitude: f64,
    longitude: f64,
    capacity: i64,
    /// Working hours, local: `[start, end)` hours of day (`[8, 17]`); equal
    /// bounds: around the clock.
    shift: [i64; 2],
    #[serde(default)]
    utc_offset_minutes: i64,
    #[serde(default = "yes")]
    active: bool,
}

const fn yes() -> bool {
    true
}

/// Adds a technician or replaces their details.
pub(super) async fn put_technician(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: Result<Json<TechnicianRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<TechnicianView> {
    managers_only(&caller)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if name.trim().is_empty() || name.len() > 64 {
        return bad("a technician's name is 1 to 64 characters".into());
    }
    if req.skills.is_empty() || req.skills.iter().any(|k| k.trim().is_empty()) {
        return bad("`skills`: at least one, none empty (a cause such as `consumable:filter`, `consumable:*`, or `*`)".into());
    }
    if !(-90.0..=90.0).contains(&req.latitude) || !(-180.0..=180.0).contains(&req.longitude) {
        return bad("`latitude` is -90 to 90 and `longitude` -180 to 180".into());
    }
    if !(1..=1000).contains(&req.capacity) {
        return bad("`capacity` is 1 to 1000 orders".into());
    }
    if req.shift.iter().any(|h| !(0..=24).contains(h)) {
        return bad("`shift` hours are 0 to 24".into());
    }
    if !(-14 * 60..=14 * 60).contains(&req.utc_offset_minutes) {
        return bad("`utc_offset_minutes` is -840 to 840".into());
    }
    let row = TechnicianRow {
        name: name.clone(),
        skills: serde_json::to_string(&req.skills).unwrap_or_else(|_| "[]".into()),
        latitude: req.latitude,
        longitude: req.longitude,
        capacity: req.capacity,
        shift_start: req.shift[0] % 24,
        shift_end: req.shift[1] % 24,
        utc_offset_minutes: req.utc_offset_minutes,
        active: i64::from(req.active),
        load: 0,
    };
    s.store.upsert_technician(&row).await?;
    let row = s
        .store
        .technicians()
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| AppError::NotFound(format!("no technician {name}")))?;
    Ok(Json(TechnicianView {
        skills: req.skills,
        row,
    }))
}
