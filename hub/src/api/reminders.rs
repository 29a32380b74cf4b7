//! Customers' reminders and their reminder settings.

use super::{
    ApiPath, ApiQuery, ApiResult, AppError, AppState, ErrorBody, PAGE_DEFAULT, PAGE_MAX, Rule, body,
};
use crate::policy::{Access, Caller};
use crate::store::ReminderSettings;
use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use wearline_models::time::rfc3339;

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RemindersQuery {
    /// Reminders in one answer (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A reminder and its delivery state (`pending`, `sent`, `failed`, `skipped`).
#[derive(Serialize, ToSchema)]
pub(super) struct ReminderView {
    #[serde(flatten)]
    row: crate::store::ReminderRow,
    /// RFC 3339.
    created_at: String,
    sent_at: Option<String>,
}

/// Reminders, newest first: a customer's own; everyone's for managers.
#[utoipa::path(
    get,
    path = "/api/v1/reminders",
    tag = "reminders",
    params(RemindersQuery),
    responses(
        (status = 200, description = "Reminders, newest first", body = Vec<ReminderView>),
        (status = 400, description = "A bad `limit`, or an unknown parameter", body = ErrorBody),
        (status = 403, description = "A technician", body = ErrorBody),
    )
)]
pub(super) async fn reminders(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<RemindersQuery>,
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

/// A customer's reminder settings (the defaults until set): the customer
/// or a manager.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/reminder-settings",
    tag = "reminders",
    params(("id" = i64, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The settings (never the webhook secret)", body = ReminderSettings),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 403, description = "A technician", body = ErrorBody),
        (status = 404, description = "Another customer", body = ErrorBody),
    )
)]
pub(super) async fn get_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ReminderSettings> {
    settings_access(&caller, id)?;
    Ok(Json(s.store.reminder_settings(id).await?))
}

/// A customer's reminder settings. With the `webhook` channel,
/// `webhook_url` (http or https) and `webhook_secret` (16 characters or
/// more) are needed.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsRequest {
    /// `portal`, `webhook`, `email` and/or `indicator`.
    #[schema(schema_with = channels_schema)]
    channels: Vec<String>,
    /// Days of life left at which to remind (default 30, 7, 0).
    #[schema(schema_with = points_schema)]
    points: Option<Vec<f64>>,
    /// Local `[start, end)` hours; equal: none (default 21 to 8).
    #[schema(schema_with = quiet_hours_schema)]
    #[serde(default, deserialize_with = "super::whole::opt_pair")]
    quiet_hours: Option<[i64; 2]>,
    #[serde(default, deserialize_with = "super::whole::one")]
    #[schema(minimum = -840, maximum = 840)]
    utc_offset_minutes: i64,
    #[serde(default)]
    opted_out: bool,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    /// Where `email` sends. (The document promises a plain subset of the
    /// addresses taken: at most 64 characters before the `@`, as SMTP
    /// allows.)
    #[schema(
        pattern = r"^[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,2}@[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){1,3}$",
        max_length = 254
    )]
    email: Option<String>,
}

/// The channels built so far, from `store::CHANNELS`.
fn channels_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::store::CHANNELS)),
    )
}

/// Two hours of day, or `null` for the defaults.
fn quiet_hours_schema() -> ArrayBuilder {
    super::technicians::hours_schema().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::Array,
        Type::Null,
    ]))
}

/// 1 to 10 numbers of days, 0 to 3650, or `null` for the defaults.
fn points_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Double,
                )))
                .minimum(Some(0.0))
                .maximum(Some(3650.0)),
        )
        .min_items(Some(1))
        .max_items(Some(10))
}

/// What `put_reminder_settings` asks of a webhook, a rule across fields
/// (see `Rule`): the `webhook` channel needs a URL and a secret.
pub(super) fn webhook_rule() -> Rule {
    Rule {
        schema: "SettingsRequest",
        when: json!({
            "required": ["channels"],
            "properties": {"channels": {"contains": {"const": "webhook"}}}
        }),
        then: json!({
            "required": ["webhook_url", "webhook_secret"],
            "properties": {
                "webhook_url": {"type": "string", "pattern": WEBHOOK_URL_PATTERN},
                "webhook_secret": {"type": "string", "minLength": 16}
            }
        }),
    }
}

/// The `email` channel needs an address (and the hub's SMTP relay, which
/// the document cannot know: a 400 without it).
pub(super) fn email_rule() -> Rule {
    Rule {
        schema: "SettingsRequest",
        when: json!({
            "required": ["channels"],
            "properties": {"channels": {"contains": {"const": "email"}}}
        }),
        then: json!({"required": ["email"], "properties": {"email": {"type": "string"}}}),
    }
}

/// The webhook URLs the document promises to take (the handler takes any
/// http(s) URL that parses).
const WEBHOOK_URL_PATTERN: &str = r"^https?://[a-z0-9]+(\.[a-z0-9]+)*(:[0-9]{1,4})?(/[A-Za-z0-9._~-]*)*$";

/// Sets a customer's reminder settings (replacing them): the customer or a
/// manager.
#[utoipa::path(
    put,
    path = "/api/v1/customers/{id}/reminder-settings",
    tag = "reminders",
    params(("id" = i64, Path, description = "The customer's id")),
    request_body = SettingsRequest,
    responses(
        (status = 200, description = "The settings, as stored (never the webhook secret)", body = ReminderSettings),
        (status = 400, description = "A bad id or body (`webhook` without its URL or secret)", body = ErrorBody),
        (status = 403, description = "A technician", body = ErrorBody),
        (status = 404, description = "Another customer, or no such customer", body = ErrorBody),
    )
)]
pub(super) async fn put_reminder_settings(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    req: Result<Json<SettingsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<ReminderSettings> {
    settings_access(&caller, id)?;
    let req = body(req)?;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if let Some(c) = req
        .channels
        .iter()
        .find(|c| !crate::store::CHANNELS.contains(&c.as_str()))
    {
        return bad(format!(
            "channel `{c}`: expected {}",
            crate::store::CHANNELS.join(" or ")
        ));
    }
    let email = email_settings(&s, &req.channels, req.email.as_deref())?;
    let defaults = ReminderSettings::defaults(id);
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
        if req
            .webhook_secret
            .as_deref()
            .is_none_or(|k| k.chars().count() < 16)
        {
            return bad("`webhook` needs `webhook_secret`, at least 16 characters".into());
        }
    }
    if s.store.customers().await?.iter().all(|c| c.id != id) {
        return Err(AppError::NotFound(format!("no customer {id}")));
    }
    let settings = ReminderSettings {
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
