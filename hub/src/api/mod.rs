//! The REST API: devices, their consumables and telemetry history, work
//! orders, health and Prometheus metrics, and the OpenAPI document that
//! describes them.
//!
//! `router(state)` is kept apart from serving so handlers can be tested with
//! `oneshot` requests; `serve` runs it on a listener.
//!
//! Every `/api/v1` route needs a bearer token (`auth::authenticate`, 401
//! without one) and answers by the caller's role (`policy.rs`): lists are
//! filtered to what the caller may see, and a device or work order they may
//! not see is a 404, as if it did not exist. `/health` and `/metrics` stay
//! open: load balancers, orchestrators' probes and Prometheus scrape them
//! without credentials, and they hold counters, not customers' data.
//!
//! The OpenAPI document (`GET /api/v1/openapi.json`, no token) is generated
//! from the same calls that build the router: every handler carries a
//! `#[utoipa::path]` and is registered with `routes!` in [`secured`] or
//! [`open`], so a route cannot be served without being documented. The
//! bearer requirement and the 401/500 answers of the secured routes are
//! added to the document by [`document`], from the same grouping that puts
//! `auth::authenticate` in front of them.

use crate::influx::InfluxHandle;
use crate::ingest::IngestStats;
use crate::policy::{self, Access, Caller, DeviceFacts, OrderFacts};
use crate::store::{DeviceRow, Retention, Store, StoreError, WorkOrderRow};
use axum::extract::{FromRequestParts, rejection::JsonRejection};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, PathItem, RefOr, Response as DocResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub stats: Arc<IngestStats>,
    /// The InfluxDB sink, when configured.
    pub influx: Option<InfluxHandle>,
    /// Whether the `email` reminder channel is set up (`[reminders.smtp]`).
    pub email_channel: bool,
    /// How long each resolution of the history is kept (for `auto`).
    pub retention: Retention,
}

/// An error answered as JSON `{"error": "..."}` ([`ErrorBody`]).
#[derive(Debug)]
pub enum AppError {
    NotFound(String),
    BadRequest(String),
    /// The caller sees the resource but may not do this to it.
    Forbidden(String),
    /// The request conflicts with the resource's state (a refused
    /// lifecycle change, a concurrent change).
    Conflict(String),
    Store(StoreError),
}

/// Every error the API answers, 4xx and 5xx alike.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    #[schema(example = "no work order 42")]
    pub error: String,
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, error) = match self {
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store error in API");
                (StatusCode::INTERNAL_SERVER_ERROR, "store error".to_string())
            }
        };
        (code, Json(ErrorBody { error })).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, AppError>;

/// `axum::extract::Path`, with a bad value (`/work-orders/abc`) answered
/// as a JSON 400 like every other error, not axum's plain text.
pub(super) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

/// `axum::extract::Query`, with a bad query (`?limit=x`, an unknown key)
/// answered as a JSON 400.
pub(super) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

mod customers;
mod devices;
mod ops;
mod reminders;
mod reports;
mod technicians;
mod telemetry;
mod work_orders;

/// The document's frame: what the API is, its tags, and the bearer scheme
/// the secured operations name. The operations come from the routers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Wearline hub API",
        description = "Devices, their consumables' predicted lives, alerts, work orders, \
            technicians, customer reminders and service reports. Every `/api/v1` operation \
            needs `Authorization: Bearer <token>` (a token has a role: admin, manager, \
            technician or customer); what a token may not see answers 404, what it may see \
            but not do answers 403. This document itself needs no token.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "devices", description = "Devices, their consumables and alerts"),
        (name = "work-orders", description = "Work orders: lifecycle, trail, comments, rating"),
        (name = "technicians", description = "The service team (managers and admins)"),
        (name = "customers", description = "Customers (added with the `wearline customer` CLI)"),
        (name = "reminders", description = "Customer reminders and their settings"),
        (name = "reports", description = "Reports for R&D and the service manager"),
        (name = "ops", description = "Health, metrics and this document: no token")
    ),
    components(schemas(ErrorBody))
)]
struct Frame;

/// The security scheme's name in the document.
pub const BEARER: &str = "bearer";

/// The `/api/v1` routes: each behind `auth::authenticate`, documented with
/// the bearer requirement and a 401. A new endpoint is a handler with a
/// `#[utoipa::path]` added here (or to [`open`], if it needs no token).
fn secured() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(devices::devices))
        .routes(routes!(devices::device))
        .routes(routes!(devices::device_consumables))
        .routes(routes!(telemetry::device_telemetry))
        .routes(routes!(devices::put_location))
        .routes(routes!(devices::alerts))
        .routes(routes!(work_orders::work_orders, work_orders::create_work_order))
        .routes(routes!(work_orders::work_order))
        .routes(routes!(work_orders::transition_work_order))
        .routes(routes!(work_orders::work_order_events))
        .routes(routes!(work_orders::comment_work_order))
        .routes(routes!(work_orders::rate_work_order))
        .routes(routes!(reports::report_causes))
        .routes(routes!(reports::report_service))
        .routes(routes!(reminders::reminders))
        .routes(routes!(customers::customers))
        .routes(routes!(customers::customer))
        .routes(routes!(
            reminders::get_reminder_settings,
            reminders::put_reminder_settings
        ))
        .routes(routes!(technicians::technicians))
        .routes(routes!(technicians::put_technician))
}

/// The routes open without a token: probes, Prometheus, the document.
fn open() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::health))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// The whole document: the frame, the open operations as they are, and the
/// secured ones with the bearer requirement, a 401 and a 500 each.
fn document(open: OpenApi, mut secured: OpenApi) -> OpenApi {
    let mut doc = Frame::openapi();
    let requirement = SecurityRequirement::new(BEARER, Vec::<String>::new());
    let error = |what: &str| -> RefOr<DocResponse> {
        DocResponse::builder()
            .description(what)
            .content(
                "application/json",
                utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))),
            )
            .build()
            .into()
    };
    for item in secured.paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![requirement.clone()]);
            op.responses.responses.insert(
                "401".into(),
                error("No bearer token, or an unknown or revoked one (with `WWW-Authenticate: Bearer`)"),
            );
            op.responses
                .responses
                .insert("500".into(), error("The store failed"));
        }
    }
    doc.merge(open);
    doc.merge(secured);
    for rule in [
        work_orders::assign_rule(),
        work_orders::visit_rule(),
        reminders::webhook_rule(),
        reminders::email_rule(),
    ] {
        rule.apply(&mut doc);
    }
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    doc
}

/// A rule across the fields of a request body, which `derive(ToSchema)`
/// cannot say ("with this action, that field is needed"): JSON Schema's
/// `if`/`then`, added to the named schema by [`document`]. A handler that
/// checks such a rule returns one from its resource's file, so the
/// document promises what the handler takes (schemathesis checks both).
pub(super) struct Rule {
    pub schema: &'static str,
    pub when: serde_json::Value,
    pub then: serde_json::Value,
}

impl Rule {
    /// Writes the rule into its schema, one `{"if", "then"}` of the
    /// schema's `allOf` per rule (a schema may have several). They ride in
    /// the schema object's extension map, which serialises flat into the
    /// object.
    fn apply(self, doc: &mut OpenApi) {
        let schema = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut(self.schema));
        if let Some(RefOr::T(utoipa::openapi::Schema::Object(o))) = schema {
            let all = o
                .extensions
                .get_or_insert_with(Default::default)
                .entry("allOf".to_string())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(rules) = all {
                rules.push(serde_json::json!({"if": self.when, "then": self.then}));
            }
        } else {
            tracing::error!(schema = self.schema, "a rule names a schema the document lacks");
        }
    }
}

/// The operations of one path, whichever methods it has.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The API's OpenAPI 3.1 document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> OpenApi {
    document(open().into_openapi(), secured().into_openapi())
}

/// The document as served, rendered once (cloned per request for free).
#[derive(Clone)]
pub(super) struct DocumentJson(bytes::Bytes);

pub fn router(state: AppState) -> Router {
    let (open, open_doc) = open().split_for_parts();
    let (api, api_doc) = secured().split_for_parts();
    let doc = document(open_doc, api_doc);
    // Serialising a document of strings and maps cannot fail; an empty
    // object would still be valid JSON if it ever did.
    let json = serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into());
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.store.clone(),
        crate::auth::authenticate,
    ));
    open.merge(api)
        .layer(Extension(DocumentJson(json.into())))
        .with_state(state)
}

/// The device `id` if `caller` may see it; else, as when there is none, 404.
pub(super) async fn visible_device(s: &AppState, caller: &Caller, id: &str) -> Result<DeviceRow, AppError> {
    let not_found = || AppError::NotFound(format!("no device `{id}`"));
    let row = s.store.device(id).await?.ok_or_else(not_found)?;
    let assignees = match caller.access {
        Access::Technician(_) => s.store.device_assignees(id).await?,
        _ => Vec::new(),
    };
    let facts = DeviceFacts {
        owner: row.customer_id,
        assignees: &assignees,
    };
    if policy::may_see_device(caller, facts) {
        Ok(row)
    } else {
        Err(not_found())
    }
}

/// The work order `id` and the owner of its device, if `caller` may see
/// it; else, as when there is none, 404.
pub(super) async fn visible_order(
    s: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(WorkOrderRow, Option<i64>), AppError> {
    let not_found = || AppError::NotFound(format!("no work order {id}"));
    let row = s.store.work_order(id).await?.ok_or_else(not_found)?;
    let owner = match caller.access {
        Access::Customer(_) => s.store.device(&row.device_id).await?.and_then(|d| d.customer_id),
        _ => None,
    };
    let facts = OrderFacts {
        device_owner: owner,
        assignee: row.assignee.as_deref(),
    };
    if policy::may_see_order(caller, facts) {
        Ok((row, owner))
    } else {
        Err(not_found())
    }
}

/// Most orders in one page, and the default.
pub(super) const PAGE_MAX: i64 = 500;
pub(super) const PAGE_DEFAULT: i64 = 100;

/// A JSON body, or a 400 that says what is wrong with it.
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    b.map(|Json(t)| t)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// serde helpers for integers in request bodies: a JSON number without a
/// fraction, `5` or `5.0`. JSON Schema, and so the document and the clients
/// generated from it, count both as integers.
pub(super) mod whole {
    use serde::{Deserialize, Deserializer};
    use serde_json::Number;

    fn int<E: serde::de::Error>(n: &Number) -> Result<i64, E> {
        // Beyond 2^53 a float no longer holds every integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        n.as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| E::custom(format!("expected an integer, found {n}")))
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        int(&Number::deserialize(d)?)
    }

    pub fn pair<'de, D: Deserializer<'de>>(d: D) -> Result<[i64; 2], D::Error> {
        let [a, b] = <[Number; 2]>::deserialize(d)?;
        Ok([int(&a)?, int(&b)?])
    }

    pub fn opt_pair<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[i64; 2]>, D::Error> {
        match Option::<[Number; 2]>::deserialize(d)? {
            Some([a, b]) => Ok(Some([int(&a)?, int(&b)?])),
            None => Ok(None),
        }
    }

    #[cfg(test)]
    mod tests {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            #[serde(deserialize_with = "super::one")]
            n: i64,
            #[serde(default, deserialize_with = "super::opt_pair")]
            p: Option<[i64; 2]>,
        }

        #[track_caller]
        fn check(json: &str, expected: Result<(i64, Option<[i64; 2]>), &str>) {
            let got = serde_json::from_str::<T>(json)
                .map(|t| (t.n, t.p))
                .map_err(|e| e.to_string());
            match (got, expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{json}"),
                (Err(g), Err(e)) => assert!(g.contains(e), "{json}: {g}"),
                (g, e) => panic!("{json}: got {g:?}, expected {e:?}"),
            }
        }

        #[test]
        fn integers_with_or_without_a_point() {
            check(r#"{"n": 5}"#, Ok((5, None)));
            check(r#"{"n": 5.0, "p": [8, 17.0]}"#, Ok((5, Some([8, 17]))));
            check(r#"{"n": -3, "p": null}"#, Ok((-3, None)));
            check(r#"{"n": 5.5}"#, Err("expected an integer, found 5.5"));
            check(r#"{"n": 1e300}"#, Err("expected an integer"));
            check(r#"{"n": "5"}"#, Err("invalid type"));
            check(r#"{"n": 1, "p": [1]}"#, Err("invalid length 1"));
        }
    }
}

/// 403 unless the caller runs the service.
pub(super) fn managers_only(caller: &Caller) -> Result<(), AppError> {
    if policy::may_manage(caller) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "a {} token may not do this: managers and admins only",
            caller.role().as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn doc() -> Value {
        serde_json::to_value(openapi()).expect("the document serialises")
    }

    #[test]
    fn exactly_the_secured_routes_need_the_bearer_token() {
        let doc = doc();
        let secured: Vec<String> = secured().into_openapi().paths.paths.into_keys().collect();
        let open: Vec<String> = open().into_openapi().paths.paths.into_keys().collect();
        assert!(open.contains(&"/api/v1/openapi.json".to_string()), "{open:?}");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let what = format!("{method} {path}");
                if secured.contains(path) {
                    assert_eq!(op["security"], json!([{ BEARER: [] }]), "{what}");
                    assert!(op["responses"]["401"].is_object(), "{what}");
                } else {
                    assert!(open.contains(path), "{what} is in neither group");
                    assert!(op.get("security").is_none(), "{what}");
                }
            }
        }
    }

    #[test]
    fn word_lists_in_the_document_are_the_codes_own() {
        let doc = doc();
        let params = doc["paths"]["/api/v1/work-orders"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let status = params
            .iter()
            .find(|p| p["name"] == "status")
            .expect("a status parameter");
        let statuses: Vec<&str> = wearline_models::workorder::Status::ALL
            .map(|s| s.as_str())
            .to_vec();
        assert_eq!(status["schema"]["enum"], json!(statuses));
        let action = &doc["components"]["schemas"]["TransitionRequest"]["properties"]["action"];
        let actions: Vec<&str> = wearline_models::workorder::Action::ALL
            .map(|a| a.as_str())
            .to_vec();
        assert_eq!(action["enum"], json!(actions), "{action}");
    }

    #[test]
    fn rules_across_fields_reach_their_schemas() {
        let doc = doc();
        for (schema, field) in [
            ("TransitionRequest", "assignee"),
            ("SettingsRequest", "webhook_url"),
            ("SettingsRequest", "email"),
        ] {
            let s = &doc["components"]["schemas"][schema];
            let rules = s["allOf"].as_array().unwrap_or_else(|| panic!("{schema}: {s}"));
            assert!(
                rules.iter().any(|r| r["if"].is_object()
                    && r["then"]["required"]
                        .as_array()
                        .is_some_and(|req| req.contains(&json!(field)))),
                "{schema} {field}: {s}"
            );
        }
    }
}
