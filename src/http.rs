//! HTTP plumbing shared by every route: the JSON body extractor, path and query parsing,
//! resources that answer with and without the trailing slash, and JSON for actix's own
//! errors (unknown route, wrong method).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Resource};
use serde_json::Value;
use std::time::Duration;

use crate::db;
use crate::error::ApiError;
use crate::startup::AppState;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// A client has this long to send its whole body (slow-body clients hold a connection).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A request body parsed as JSON. An empty body reads as `{}`, as in DRF, so a missing
/// body reports the required fields; a non-empty body must be `application/json`.
pub struct JsonBody(pub Value);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_string());
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            if declared_len.is_some_and(|n| n > BODY_LIMIT) {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            let body = tokio::time::timeout(BODY_READ_TIMEOUT, bytes)
                .await
                .map_err(|_| ApiError::RequestTimeout)?
                .map_err(|e| {
                    // A streamed (chunked) body over the limit is actix's 413 "payload reached
                    // size limit": it has no Content-Length for the check above.
                    if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge { limit: BODY_LIMIT }
                    } else {
                        ApiError::BadRequest(format!("Could not read the request body: {e}"))
                    }
                })?;
            if body.len() > BODY_LIMIT {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(Value::Object(Default::default())));
            }
            match content_type.as_deref() {
                Some(ct) if is_json(ct) => {}
                Some(ct) => return Err(ApiError::UnsupportedMediaType(ct.to_string())),
                None => return Err(ApiError::UnsupportedMediaType(String::new())),
            }
            serde_json::from_slice::<Value>(&body)
                .map(Self)
                .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))
        })
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The payload limit actix applies before `JsonBody` sees the bytes.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(BODY_LIMIT)
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_address(req: &HttpRequest, trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

/// The query string as ordered pairs; a malformed escape is dropped by the decoder.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of a query parameter; the last one wins when it is repeated, as in Django.
pub fn last_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A resource at `path` and at `path` + `/`: both forms answer, with no redirect. Methods
/// it does not route get DRF's 405 with an `Allow` header. `Idempotency-Key` is honoured on
/// the POST and PATCH it routes (src/idempotency.rs): the key is handled only once the
/// router has matched the request, so a 404 or a 405 never claims one.
pub fn resource(
    path: &str,
    allow: &'static [Method],
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let trimmed = path.trim_end_matches('/').to_string();
    register_route(path, allow);
    web::resource([trimmed.clone(), format!("{trimmed}/")])
        .wrap(actix_web::middleware::from_fn(
            move |req: ServiceRequest, next: actix_web::middleware::Next<BoxBody>| {
                crate::idempotency::idempotency(allow, req, next)
            },
        ))
        .default_service(web::to(move |req: HttpRequest| async move {
            let allowed = allow
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut response = actix_web::ResponseError::error_response(
                &ApiError::MethodNotAllowed(req.method().to_string()),
            );
            if let Ok(value) = header::HeaderValue::from_str(&allowed) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }))
}

/// Every route the app serves, as registered through `resource`: path → methods. The
/// OpenAPI test checks the document against it.
static ROUTES: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn register_route(path: &str, allow: &[Method]) {
    if let Ok(mut routes) = ROUTES.lock() {
        routes.insert(
            path.to_string(),
            allow.iter().map(|m| m.as_str().to_lowercase()).collect(),
        );
    }
}

/// The routes registered so far (each app build registers all of them).
pub fn registered_routes() -> std::collections::BTreeMap<String, Vec<String>> {
    ROUTES.lock().map(|r| r.clone()).unwrap_or_default()
}

/// The JSON 404 for any path no route matches.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The Content-Security-Policy of JSON responses: nothing may load, nothing may frame.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The docs page loads its own scripts and styles (Swagger UI sets inline styles).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Security headers on every response.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let csp = if req.path().starts_with("/api/docs") {
        DOCS_CSP
    } else if req.path() == "/admin" || req.path().starts_with("/admin/") {
        crate::admin::CSP
    } else {
        API_CSP
    };
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("content-security-policy", csp),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    Ok(res)
}

/// Error responses that did not come from `ApiError` (actix's own, CORS refusals) get a
/// JSON body in DRF's shape; their headers (`Allow`, `Retry-After`, CORS) are kept.
pub fn json_errors<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = match status.as_u16() {
        404 => "Not found.".to_string(),
        408 => "Request timed out.".to_string(),
        _ => format!("{}.", status.canonical_reason().unwrap_or("Error")),
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status).json(serde_json::json!({ "detail": detail }));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// CORS for the origins listed in `CORS_ORIGINS` (none by default). A request from any
/// other origin is served without CORS headers, so browsers keep it from the page.
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static(crate::idempotency::HEADER),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-total-count"),
            header::LINK,
            header::RETRY_AFTER,
            header::ETAG,
            header::HeaderName::from_static(crate::idempotency::REPLAYED),
            header::HeaderName::from_static(crate::events::sync::CURSOR_HEADER),
        ])
        .max_age(3600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// One log line per request: method, path (never the query: it may hold tokens), status,
/// latency. Bodies and headers are never logged.
pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let expose = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.settings.expose_query_count);
    let (mut result, queries) = db::REQUEST_QUERIES
        .scope(Cell::new(0), async move {
            let result = next.call(req).await;
            (result, db::REQUEST_QUERIES.with(Cell::get))
        })
        .await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match &mut result {
        Ok(res) => {
            tracing::info!(
                target: "rally::http",
                %method,
                %path,
                status = res.status().as_u16(),
                queries,
                latency_ms = format!("{latency_ms:.2}"),
                "request"
            );
            if expose {
                res.headers_mut()
                    .insert(QUERY_COUNT.clone(), header::HeaderValue::from(queries));
            }
        }
        Err(e) => tracing::warn!(
            target: "rally::http",
            %method,
            %path,
            status = e.as_response_error().status_code().as_u16(),
            queries,
            latency_ms = format!("{latency_ms:.2}"),
            "request"
        ),
    }
    result
}

static QUERY_COUNT: header::HeaderName = header::HeaderName::from_static("x-query-count");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
