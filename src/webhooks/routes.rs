//! `/api/webhooks/`: a user's endpoints, their delivery log, and redelivery.

use std::net::IpAddr;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::EVENT_TYPES;
use super::store::{self, Delivery, Webhook};
use crate::accounts::extract::AuthUser;
use crate::db;
use crate::error::ApiError;
use crate::http::{JsonBody, last_param, query_pairs, resource};
use crate::startup::AppState;
use crate::validation::Input;

/// Endpoints one user may register.
const MAX_WEBHOOKS: usize = 20;
const MAX_URL_CHARS: usize = 2000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/webhooks/", &[Method::GET, Method::POST])
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource(
            "/api/webhooks/{id}/",
            &[Method::GET, Method::PATCH, Method::DELETE],
        )
        .route(web::get().to(detail))
        .route(web::patch().to(update))
        .route(web::delete().to(remove)),
    )
    .service(
        resource("/api/webhooks/{id}/deliveries/", &[Method::GET]).route(web::get().to(deliveries)),
    )
    .service(
        resource(
            "/api/webhooks/{id}/deliveries/{delivery_id}/redeliver/",
            &[Method::POST],
        )
        .route(web::post().to(redeliver)),
    );
}

fn timestamp(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An endpoint as the API shows it (the secret only once, at creation).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    /// The subscribed types.
    #[schema(value_type = Vec<crate::openapi::WebhookEventType>)]
    pub events: Vec<String>,
    /// False when its owner paused it or it answered 410 Gone.
    pub active: bool,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The signing key, shown only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookOut {
    fn of(hook: &Webhook, with_secret: bool) -> Self {
        Self {
            id: hook.id.clone(),
            url: hook.url.clone(),
            events: hook.event_list(),
            active: hook.active,
            disabled_reason: hook.disabled_reason.clone(),
            created_at: timestamp(hook.created_at),
            secret: with_secret.then(|| hook.secret.clone()),
        }
    }
}

/// One delivery in an endpoint's log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    #[schema(value_type = crate::openapi::WebhookEventType)]
    pub event_type: String,
    /// The rally event the delivery is about.
    #[schema(format = Uuid)]
    pub event_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub attempts: i32,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// Set when it was given up on (out of time, or the endpoint answered 410).
    #[schema(format = DateTime)]
    pub failed_at: Option<String>,
    /// The HTTP status of the last attempt; null when none got an answer.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_type: d.event_type,
            event_id: d.event_id,
            created_at: timestamp(d.created_at),
            attempts: d.attempts,
            delivered_at: d.delivered_at.map(timestamp),
            failed_at: d.failed_at.map(timestamp),
            last_status: d.last_status,
            last_error: d.last_error,
        }
    }
}

/// Whether `ip` is an address of this host or a private network: a webhook there would
/// let any user make rally call into its own network (SSRF).
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 0
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// `https://` to a public host; `http://` only to loopback, and only when the setting
/// allows it. Host names are not resolved here (see SPEC.md §14 on SSRF).
fn check_url(raw: &str, allow_http_loopback: bool) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|_| "Enter a valid URL.".to_string())?;
    let host = url.host().ok_or("Enter a valid URL.")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("Credentials in the URL are not allowed.".into());
    }
    let loopback = match &host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    let internal_ip = match host {
        url::Host::Ipv4(ip) => is_internal(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => is_internal(IpAddr::V6(ip)),
        url::Host::Domain(_) => false,
    };
    match url.scheme() {
        "https" if loopback && !allow_http_loopback => {
            Err("Loopback addresses are not allowed.".into())
        }
        "https" if internal_ip && !loopback => {
            Err("Private and link-local addresses are not allowed.".into())
        }
        "https" => Ok(url.to_string()),
        "http" if loopback && allow_http_loopback => Ok(url.to_string()),
        _ => Err("The URL must start with https://.".into()),
    }
}

fn read_url(input: &mut Input, state: &AppState, required: bool) -> Option<String> {
    let raw = input.text(
        "url",
        if required {
            crate::validation::Text::required(MAX_URL_CHARS)
        } else {
            crate::validation::Text::optional(MAX_URL_CHARS)
        },
    )?;
    match check_url(&raw, state.settings.webhooks.allow_http_loopback) {
        Ok(url) => Some(url),
        Err(message) => {
            input.error("url", message);
            None
        }
    }
}

/// A non-empty list of known types, each once, in the order given.
fn read_events(input: &mut Input, required: bool) -> Option<Vec<String>> {
    let value = match input.nullable("events", |_, v| Some(v.clone())) {
        None => {
            if required {
                input.error("events", crate::validation::REQUIRED);
            }
            return None;
        }
        Some(None) => {
            input.error("events", crate::validation::NULL);
            return None;
        }
        Some(Some(v)) => v,
    };
    let Value::Array(items) = value else {
        input.error("events", "Expected a list of items.");
        return None;
    };
    if items.is_empty() {
        input.error("events", "This list may not be empty.");
        return None;
    }
    let mut events: Vec<String> = Vec::new();
    for item in items {
        let name = match &item {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !EVENT_TYPES.contains(&name.as_str()) {
            let shown: String = name.chars().take(100).collect();
            input.error("events", format!("\"{shown}\" is not a valid choice."));
            return None;
        }
        if !events.contains(&name) {
            events.push(name);
        }
    }
    Some(events)
}

/// A malformed id is as unknown as a missing one, as for events.
fn webhook_id(raw: &str) -> Result<String, ApiError> {
    crate::events::routes::event_id(raw)
}

fn new_secret() -> String {
    format!("whsec_{}", crate::secrets::new_token())
}

fn to_json(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

#[utoipa::path(
    post,
    operation_id = "create_webhook",
    path = "/api/webhooks/",
    tag = "webhooks",
    summary = "Register an endpoint for the caller's events; the answer shows its signing secret, once.",
    security(("bearer" = [])),
    request_body = crate::openapi::WebhookCreate,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = WebhookOut),
        crate::openapi::Unauthorized,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut input = Input::new(body.0)?;
    let url = read_url(&mut input, &state, true);
    let events = read_events(&mut input, true);
    input.finish()?;
    let (Some(url), Some(events)) = (url, events) else {
        return Err(ApiError::BadRequest("Invalid webhook.".into()));
    };
    let hook = Webhook {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        user_id: user.0.id,
        url,
        secret: new_secret(),
        events: to_json(&events),
        active: true,
        disabled_reason: None,
        created_at: Utc::now().naive_utc(),
    };
    let stored = hook.clone();
    db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            if store::list_owned(conn, stored.user_id)?.len() >= MAX_WEBHOOKS {
                return Err(ApiError::field(
                    "non_field_errors",
                    format!("At most {MAX_WEBHOOKS} webhooks per user."),
                ));
            }
            store::insert_webhook(conn, &stored)?;
            Ok(())
        })
    })
    .await?;
    tracing::info!(webhook_id = %hook.id, user_id = hook.user_id, "webhook registered");
    Ok(HttpResponse::Created().json(WebhookOut::of(&hook, true)))
}

#[utoipa::path(
    get,
    operation_id = "list_webhooks",
    path = "/api/webhooks/",
    tag = "webhooks",
    summary = "The caller's endpoints (without secrets).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoints, oldest first", body = Vec<WebhookOut>),
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = user.0.id;
    let hooks = db::run(&state.pool, move |conn| Ok(store::list_owned(conn, id)?)).await?;
    let body: Vec<_> = hooks.iter().map(|h| WebhookOut::of(h, false)).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    operation_id = "webhook_detail",
    path = "/api/webhooks/{id}/",
    tag = "webhooks",
    summary = "One of the caller's endpoints.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The webhook's UUID")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookOut),
        crate::openapi::Unauthorized,
        crate::openapi::WebhookNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn detail(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    let owner = user.0.id;
    let hook = db::run(&state.pool, move |conn| {
        store::find_owned(conn, &id, owner)?.ok_or(ApiError::NotFound)
    })
    .await?;
    Ok(HttpResponse::Ok().json(WebhookOut::of(&hook, false)))
}

#[utoipa::path(
    patch,
    operation_id = "update_webhook",
    path = "/api/webhooks/{id}/",
    tag = "webhooks",
    summary = "Change an endpoint's url, events or active flag; activating it clears disabled_reason.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The webhook's UUID")),
    request_body = crate::openapi::WebhookPatch,
    responses(
        (status = 200, description = "Updated", body = WebhookOut),
        crate::openapi::Unauthorized,
        crate::openapi::WebhookNotFound,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    let owner = user.0.id;
    // As elsewhere, an unknown id is a 404 before any problem with the body.
    let check = id.clone();
    let mut hook = db::run(&state.pool, move |conn| {
        store::find_owned(conn, &check, owner)?.ok_or(ApiError::NotFound)
    })
    .await?;
    let mut input = Input::new(body.0)?;
    let url = read_url(&mut input, &state, false);
    let events = read_events(&mut input, false);
    let active = if input.is_present("active") {
        input.boolean("active")
    } else {
        None
    };
    input.finish()?;
    if let Some(url) = url {
        hook.url = url;
    }
    if let Some(events) = events {
        hook.events = to_json(&events);
    }
    if let Some(active) = active {
        if active {
            hook.disabled_reason = None;
        } else if hook.active {
            hook.disabled_reason = Some("Paused by its owner.".into());
        }
        hook.active = active;
    }
    let stored = hook.clone();
    let updated = db::run(&state.pool, move |conn| Ok(store::save(conn, &stored)?)).await?;
    if updated == 0 {
        return Err(ApiError::NotFound);
    }
    if hook.active {
        // Deliveries held while it was inactive are due again.
        state.webhook_wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(WebhookOut::of(&hook, false)))
}

#[utoipa::path(
    delete,
    operation_id = "delete_webhook",
    path = "/api/webhooks/{id}/",
    tag = "webhooks",
    summary = "Delete an endpoint and its delivery log; nothing more is sent to it.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The webhook's UUID")),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::Unauthorized,
        crate::openapi::WebhookNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn remove(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    let owner = user.0.id;
    let deleted = db::run(&state.pool, move |conn| {
        Ok(store::delete_owned(conn, &id, owner)?)
    })
    .await?;
    if deleted == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `limit` (default 50, capped at 200) and `offset`, read and reported as the event list
/// reads them.
fn paging(req: &HttpRequest) -> Result<(i64, i64), ApiError> {
    let pairs = query_pairs(req);
    let mut errors = crate::error::FieldErrors::new();
    let paging = crate::events::listing::paging_within(
        last_param(&pairs, "limit"),
        last_param(&pairs, "offset"),
        &mut errors,
        50,
        200,
    );
    if errors.is_empty() {
        Ok(paging)
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[utoipa::path(
    get,
    operation_id = "webhook_deliveries",
    path = "/api/webhooks/{id}/deliveries/",
    tag = "webhooks",
    summary = "An endpoint's delivery log, newest first.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The webhook's UUID"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Page size, default 50, capped at 200"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 2147483647, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = Vec<DeliveryOut>,
         headers(("X-Total-Count" = i64, description = "Deliveries in the log, over all pages"))),
        (status = 400, description = "A malformed parameter, named", body = crate::openapi::FieldErrors),
        crate::openapi::Unauthorized,
        crate::openapi::WebhookNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn deliveries(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    let owner = user.0.id;
    let paging = paging(&req);
    let (rows, total) = db::run(&state.pool, move |conn| {
        store::find_owned(conn, &id, owner)?.ok_or(ApiError::NotFound)?;
        let (limit, offset) = paging?;
        Ok(store::deliveries(conn, &id, limit, offset)?)
    })
    .await?;
    let body: Vec<DeliveryOut> = rows.into_iter().map(DeliveryOut::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(body))
}

#[utoipa::path(
    post,
    operation_id = "redeliver_webhook",
    path = "/api/webhooks/{id}/deliveries/{delivery_id}/redeliver/",
    tag = "webhooks",
    summary = "Queue a new delivery of the same payload (same `id` in the body), behind anything still pending for its event.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The webhook's UUID"),
        ("delivery_id" = i64, Path, description = "The delivery to send again"),
    ),
    responses(
        (status = 202, description = "Queued; the new delivery", body = DeliveryOut),
        crate::openapi::Unauthorized,
        crate::openapi::WebhookNotFound,
        (status = 409, description = "The endpoint is inactive; activate it first", body = crate::openapi::ErrorDetail),
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn redeliver(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_delivery) = path.into_inner();
    let id = webhook_id(&raw_id)?;
    let delivery_id: i64 = raw_delivery.parse().map_err(|_| ApiError::NotFound)?;
    let owner = user.0.id;
    let queued = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let hook = store::find_owned(conn, &id, owner)?.ok_or(ApiError::NotFound)?;
            let queued =
                store::redeliver(conn, &hook.id, delivery_id)?.ok_or(ApiError::NotFound)?;
            if !hook.active {
                return Err(ApiError::Conflict(
                    "This webhook is inactive; activate it before redelivering.".into(),
                ));
            }
            Ok(queued)
        })
    })
    .await?;
    state.webhook_wake.notify_one();
    Ok(HttpResponse::Accepted().json(DeliveryOut::from(queued)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_to_public_hosts() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false).is_err());
        assert!(check_url("http://127.0.0.1:9/x", false).is_err());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("http://localhost:9/x", true).is_ok());
        assert!(check_url("http://example.com/x", true).is_err());
        assert!(check_url("https://10.0.0.1/x", false).is_err());
        assert!(check_url("https://169.254.169.254/x", false).is_err());
        assert!(check_url("https://[fd00::1]/x", false).is_err());
        assert!(check_url("https://[::ffff:10.0.0.1]/x", false).is_err());
        assert!(check_url("https://user:pw@example.com/x", false).is_err());
        assert!(check_url("ftp://example.com/x", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
