//! The service team: technicians' skills, home base, capacity and hours.

use super::{ApiPath, ApiResult, AppError, AppState, ErrorBody, body, managers_only};
use crate::policy::Caller;
use crate::store::TechnicianRow;
use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

/// A technician, with the orders they hold now (`load`).
#[derive(Serialize, ToSchema)]
pub(super) struct TechnicianView {
    #[serde(flatten)]
    row: TechnicianRow,
    /// Causes they can handle: `consumable:filter`, `consumable:*`, `*`.
    skills: Vec<String>,
}

/// The technicians with their skills, home base, capacity, shift and load:
/// managers and admins.
#[utoipa::path(
    get,
    path = "/api/v1/technicians",
    tag = "technicians",
    responses(
        (status = 200, description = "The technicians, by name", body = Vec<TechnicianView>),
        (status = 403, description = "Not a manager or an admin", body = ErrorBody),
    )
)]
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

/// A technician's details.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TechnicianRequest {
    /// At least one, none blank: a cause (`consumable:filter`), a family
    /// (`consumable:*`) or `*`.
    #[schema(schema_with = skills_schema)]
    skills: Vec<String>,
    /// Home base.
    #[schema(minimum = -90.0, maximum = 90.0)]
    latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    longitude: f64,
    /// Orders held at once.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "super::whole::one")]
    capacity: i64,
    /// Working hours, local: `[start, end)` hours of day (`[8, 17]`); equal
    /// bounds: around the clock.
    #[schema(schema_with = hours_schema)]
    #[serde(deserialize_with = "super::whole::pair")]
    shift: [i64; 2],
    #[serde(default, deserialize_with = "super::whole::one")]
    #[schema(minimum = -840, maximum = 840)]
    utc_offset_minutes: i64,
    #[serde(default = "yes")]
    active: bool,
}

const fn yes() -> bool {
    true
}

/// Skills: at least one string, none blank.
fn skills_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"\S")),
        )
        .min_items(Some(1))
}

/// Two hours of day, 0 to 24: `[start, end)`.
pub(super) fn hours_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
                .maximum(Some(24)),
        )
        .min_items(Some(2))
        .max_items(Some(2))
}

/// Adds a technician or replaces their details: managers and admins.
#[utoipa::path(
    put,
    path = "/api/v1/technicians/{name}",
    tag = "technicians",
    params(("name" = String, Path, description = "The technician's name, as orders are assigned to it: 1 to 64 characters, not blank",
            min_length = 1, max_length = 64, pattern = r"\S")),
    request_body = TechnicianRequest,
    responses(
        (status = 200, description = "The technician, as stored", body = TechnicianView),
        (status = 400, description = "A bad name or body", body = ErrorBody),
        (status = 403, description = "Not a manager or an admin", body = ErrorBody),
    )
)]
pub(super) async fn put_technician(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    req: Result<Json<TechnicianRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<TechnicianView> {
    managers_only(&caller)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if name.trim().is_empty() || name.chars().count() > 64 {
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
