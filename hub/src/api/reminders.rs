//! Customers' reminders and their reminder settings.

use super::{ApiResult, AppError, AppState, PAGE_DEFAULT, PAGE_MAX, body};
use crate::policy::{Access, Caller};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Serialize;
use wearline_models::time::rfc3339;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemindersQuery {
    limit: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct ReminderView {
    #[serde(flatten)]
    row: crate::store::ReminderRow,
    created_at: String,
    sent_at: Option<String>,
}

/// Reminders, newest first: a customer's own; everyone's for managers.
pub(super) async fn reminders(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RemindersQuery>,
) -> ApiResult<Vec<ReminderView>> {
    let customer = match caller.access {
        Access::Customer(c) => Some(c),
        Access::Admin | Access::Manager => None,
        Access::Technician(_) => {
            return Err(AppError::Forbidden(
                "reminders are the customers' and their service managers'".into(),
            ));
        }
    };
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit {limit}: expected 1 to {PAGE_MAX}"
        )));
    }
    Ok(Json(
        s.store
            .reminders(customer, limit)
            .await?
            .into_iter()
            .map(|row| ReminderView {
                created_at: rfc3339(row.created_ms),
                sent_at: row.sent_ms.map(rfc3339),
                row,
            })
            .collect(),
    ))
}

/// The customer `id` if the caller may manage their reminders: the
/// customer themselves or a manager; another customer gets 404.
fn settings_access(caller: &Caller, id: i64) -> Result<(), AppError> {
    match caller.access {
        Access::Admin | Access::Manager => Ok(()),
        Access::Customer(c) if c == id => Ok(()),
        Access::Customer(_) => Err(AppError::NotFound(format!("no customer {id}"))),
        Access::Technician(_) => Err(AppError::Forbidden(
            "reminder settings are the customers' and their service managers'".into(),
        )),
    }
}

pub(super) async fn get_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<crate::store::ReminderSettings> {
    settings_access(&caller, id)?;
    Ok(Json(s.store.reminder_settings(id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsRequest {
    /// `portal`, `webhook` and/or `email`.
    channels: Vec<String>,
    /// Days of life left at which to remind (default 30, 7, 0).
    points: Option<Vec<f64>>,
    /// Local `[start, end)` hours; equal: none (default 21 to 8).
    quiet_hours: Option<[i64; 2]>,
    #[serde(default)]
    utc_offset_minutes: i64,
    #[serde(default)]
    opted_out: bool,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    /// Where `email` sends.
    email: Option<String>,
}

/// Sets a customer's reminder settings (replacing them).
pub(super) async fn put_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    req: Result<Json<SettingsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<crate::store::ReminderSettings> {
    settings_access(&caller, id)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if let Some(c) = req
        .channels
        .iter()
        .find(|c| !crate::store::CHANNELS.contains(&c.as_str()))
    {
        return bad(format!(
            "channel `{c}`: expected {} (the appliance's indicator is not available yet)",
            crate::store::CHANNELS.join(" or ")
        ));
    }
    let email = email_settings(&s, &req.channels, req.email.as_deref())?;
    let defaults = crate::store::ReminderSettings::defaults(id);
    let points = req.points.unwrap_or(defaults.points);
    if points.is_empty() || points.len() > 10 || points.iter().any(|p| !(0.0..=3650.0).contains(p)) {
        return bad("`points`: 1 to 10 numbers of days, 0 to 3650".into());
    }
    let quiet = req.quiet_hours.unwrap_or(defaults.quiet_hours);
    if quiet.iter().any(|h| !(0..=24).contains(h)) {
        return bad("`quiet_hours`: two hours of day, 0 to 24".into());
    }
    if !(-14 * 60..=14 * 60).contains(&req.utc_offset_minutes) {
        return bad("`utc_offset_minutes` is -840 to 840".into());
    }
    if req.channels.iter().any(|c| c == "webhook") {
        let url_ok = req
            .webhook_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
        if !url_ok {
            return bad("`webhook` needs `webhook_url`, an http(s) URL".into());
        }
        if req.webhook_secret.as_deref().is_none_or(|k| k.len() < 16) {
            return bad("`webhook` needs `webhook_secret`, at least 16 characters".into());
        }
    }
    if s.store.customers().await?.iter().all(|c| c.id != id) {
        return Err(AppError::NotFound(format!("no customer {id}")));
    }
    let settings = crate::store::ReminderSettings {
        customer_id: id,
        channels: req.channels,
        points,
        quiet_hours: quiet,
        utc_offset_minutes: req.utc_offset_minutes,
        opted_out: req.opted_out,
        webhook_url: req.webhook_url,
        webhook_secret: req.webhook_secret,
        email,
    };
    s.store.put_reminder_settings(&settings).await?;
    Ok(Json(settings))
}

/// The e-mail address of a settings request, checked: `email` needs the
/// hub's relay (`[reminders.smtp]`) and an address; an address given
/// without the channel is kept too (the channel may be turned on later).
fn email_settings(
    s: &AppState,
    channels: &[String],
    email: Option<&str>,
) -> Result<Option<String>, AppError> {
    let wanted = channels.iter().any(|c| c == "email");
    if wanted && !s.email_channel {
        return Err(AppError::BadRequest(
            "channel `email` is not available: this hub has no SMTP relay (`[reminders.smtp]` in its config)"
                .into(),
        ));
    }
    let Some(address) = email.map(str::trim) else {
        if wanted {
            return Err(AppError::BadRequest(
                "`email` needs `email`, the address to send to".into(),
            ));
        }
        return Ok(None);
    };
    let valid = address.len() <= 254
        && address.parse::<lettre::Address>().is_ok()
        && address
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
    if !valid {
        return Err(AppError::BadRequest(format!(
            "`email` `{address}`: expected an address such as ann@example.com"
        )));
    }
    Ok(Some(address.to_string()))
}
