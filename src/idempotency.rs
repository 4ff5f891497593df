//! `Idempotency-Key` on POST and PATCH (SPEC.md §12): a repeat of a request with the same
//! key, by the same caller, gets the first response again instead of running twice.
//!
//! The key is claimed (a row in `in_progress`) before the handler runs; the primary key
//! (owner, key) makes concurrent repeats lose that insert. The response is then stored,
//! or the claim dropped when the response is 429 or 5xx, so a retry runs again.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::accounts::extract::{AuthorizationHeader, parse_authorization};
use crate::accounts::tokens::TokenType;
use crate::db::schema::idempotency_keys as ik;
use crate::db::{self, DbConn, Pool};
use crate::error::ApiError;
use crate::http::BODY_LIMIT;
use crate::startup::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// A claim older than this whose request never finished (the process died under it) is
/// taken over: requests are bounded far below it (statement timeout 30 s, body 15 s).
const STALE_CLAIM: Duration = Duration::from_secs(120);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Response headers that belong to the response itself and are replayed with it; the
/// rest (security headers, CORS, query count) are added again on the way out.
const REPLAYED_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "etag",
    "x-total-count",
    "link",
    "www-authenticate",
    "allow",
    "retry-after",
    "content-disposition",
];

pub const IN_PROGRESS: &str = "A request with this Idempotency-Key is still in progress.";
pub const MISMATCH: &str = "This Idempotency-Key was used with a different request.";

/// Checks the header's value: 1 to 255 visible ASCII characters.
pub fn validate_key(raw: &[u8]) -> Result<&str, ApiError> {
    let message = if raw.is_empty() {
        "This header may not be blank."
    } else if raw.len() > MAX_KEY_LEN {
        "Ensure this header has no more than 255 characters."
    } else if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        "Only visible ASCII characters (no spaces) are allowed."
    } else {
        // Visible ASCII is UTF-8.
        return std::str::from_utf8(raw).map_err(|_| ApiError::field("Idempotency-Key", "?"));
    };
    Err(ApiError::field("Idempotency-Key", message))
}

/// Whether a response is kept for replay: not 429 and not 5xx, which a retry should run
/// again (the throttle or the outage may be over).
pub fn should_store(status: StatusCode) -> bool {
    status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error()
}

/// SHA-256 of method, path with query, and body, hex.
pub fn request_hash(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(path_and_query.as_bytes());
    h.update([0]);
    h.update(body);
    crate::secrets::hex(&h.finalize())
}

/// Who a key belongs to. `None`: a bearer token that does not verify; the request is
/// passed through unrecorded (every route that reads the token answers 401).
fn owner(state: &AppState, req: &ServiceRequest, path: &str) -> Option<String> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Some(format!("anon {path}"));
    };
    match parse_authorization(value.as_bytes()) {
        AuthorizationHeader::Other => Some(format!("anon {path}")),
        AuthorizationHeader::Malformed => None,
        AuthorizationHeader::Bearer(token) => {
            let token = std::str::from_utf8(token).ok()?;
            let verified = state.tokens.verify(token, Some(TokenType::Access)).ok()?;
            verified.user_id.map(|id| format!("user {id}"))
        }
    }
}

#[derive(Queryable)]
struct Row {
    request_hash: String,
    state: String,
    status: Option<i32>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
    created_at: NaiveDateTime,
}

/// What the claim found.
enum Claim {
    /// The key is ours: run the handler.
    New,
    Replay {
        status: i32,
        headers: String,
        body: Vec<u8>,
    },
    InProgress,
    Mismatch,
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn claim(
    conn: &mut DbConn,
    owner: &str,
    key: &str,
    method: &str,
    path: &str,
    hash: &str,
) -> Result<Claim, ApiError> {
    let now = now();
    let ttl = chrono::Duration::from_std(TTL).map_err(ApiError::internal)?;
    let stale = chrono::Duration::from_std(STALE_CLAIM).map_err(ApiError::internal)?;
    db::write_tx(conn, |conn| {
        // Expired keys go first, everyone's: cheap on the expiry index, and an expired
        // key of this caller is then claimed as new below.
        diesel::delete(ik::table.filter(ik::expires_at.le(now))).execute(conn)?;
        let row = (
            ik::owner.eq(owner),
            ik::idem_key.eq(key),
            ik::method.eq(method),
            ik::path.eq(path),
            ik::request_hash.eq(hash),
            ik::state.eq("in_progress"),
            ik::created_at.eq(now),
            ik::expires_at.eq(now + ttl),
        );
        let inserted = match conn {
            DbConn::Sqlite(c) => diesel::insert_into(ik::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
            DbConn::Postgres(c) => diesel::insert_into(ik::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
        };
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let found: Option<Row> = ik::table
            .find((owner, key))
            .select((
                ik::request_hash,
                ik::state,
                ik::status,
                ik::headers,
                ik::body,
                ik::created_at,
            ))
            .first(conn)
            .optional()?;
        // Released between the insert and this read: another request has it in hand.
        let Some(found) = found else {
            return Ok(Claim::InProgress);
        };
        if found.request_hash != hash {
            return Ok(Claim::Mismatch);
        }
        match (found.state.as_str(), found.status) {
            ("done", Some(status)) => Ok(Claim::Replay {
                status,
                headers: found.headers.unwrap_or_default(),
                body: found.body.unwrap_or_default(),
            }),
            _ if found.created_at + stale < now => {
                // Its request never finished: this one takes the claim over, unless another
                // took it first (the claim it saw is no longer there).
                let taken = diesel::update(
                    ik::table
                        .find((owner, key))
                        .filter(ik::state.eq("in_progress"))
                        .filter(ik::created_at.eq(found.created_at)),
                )
                .set(ik::created_at.eq(now))
                .execute(conn)?;
                Ok(if taken == 1 {
                    Claim::New
                } else {
                    Claim::InProgress
                })
            }
            _ => Ok(Claim::InProgress),
        }
    })
}

/// Drops an unfinished claim, so the next request with the key runs.
fn release(conn: &mut DbConn, owner: &str, key: &str) -> Result<(), ApiError> {
    diesel::delete(
        ik::table
            .find((owner, key))
            .filter(ik::state.eq("in_progress")),
    )
    .execute(conn)?;
    Ok(())
}

/// Reads the whole request body under the app's limit, as `JsonBody` does.
async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
    }
    let mut payload = req.take_payload();
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::BadRequest(format!("Could not read the request body: {e}"))
            })?;
            if buf.len() + chunk.len() > BODY_LIMIT {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

fn error(req: ServiceRequest, e: ApiError) -> ServiceResponse<BoxBody> {
    req.into_response(e.error_response())
}

fn stored_headers(res: &HttpResponse<()>) -> String {
    let pairs: Vec<(&str, &str)> = res
        .headers()
        .iter()
        .filter(|(name, _)| REPLAYED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

fn replay(status: i32, headers: &str, body: Vec<u8>) -> HttpResponse {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    let pairs: Vec<(String, String)> = serde_json::from_str(headers).unwrap_or_default();
    for (name, value) in pairs {
        res.append_header((name, value));
    }
    res.insert_header((REPLAYED, "true"));
    res.body(body)
}

/// The middleware: requests without the header, or not POST/PATCH, pass untouched.
/// Each resource's middleware (`http::resource`); `allow` is what the resource routes. A
/// method it does not route is its 405, never a claim, so that the key stays free for the
/// request it was meant for.
pub async fn idempotency(
    allow: &'static [Method],
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let keyed = matches!(*req.method(), Method::POST | Method::PATCH)
        && allow.contains(req.method())
        && req.headers().contains_key(HEADER);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (true, Some(state)) = (keyed, state) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let mut values = req.headers().get_all(HEADER);
    let key = match (values.next(), values.next()) {
        (Some(v), None) => match validate_key(v.as_bytes()) {
            Ok(k) => k.to_string(),
            Err(e) => return Ok(error(req, e)),
        },
        _ => {
            let e = ApiError::field("Idempotency-Key", "Send one Idempotency-Key header.");
            return Ok(error(req, e));
        }
    };
    // `/api/events` and `/api/events/` are one route.
    let path = req.path().trim_end_matches('/').to_string();
    let Some(owner) = owner(&state, &req, &path) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(e) => return Ok(error(req, e)),
    };
    let query = req.query_string();
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let method = req.method().to_string();
    let hash = request_hash(req.method(), &target, &body);
    req.set_payload(Payload::from(body));

    let found = {
        let (owner, key, path) = (owner.clone(), key.clone(), path.clone());
        db::run(&state.pool, move |conn| {
            claim(conn, &owner, &key, &method, &path, &hash)
        })
        .await
    };
    match found {
        Err(e) => return Ok(error(req, e)),
        Ok(Claim::New) => {}
        Ok(Claim::Replay {
            status,
            headers,
            body,
        }) => return Ok(req.into_response(replay(status, &headers, body))),
        Ok(Claim::InProgress) => {
            let mut res = ApiError::Conflict(IN_PROGRESS.into()).error_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return Ok(req.into_response(res));
        }
        Ok(Claim::Mismatch) => {
            return Ok(error(req, ApiError::Unprocessable(MISMATCH.into())));
        }
    }

    // The handler runs in a task of its own, so that it finishes, and its response is
    // stored, even when the client goes away: a dropped request whose transaction still
    // committed must replay, not run again on the retry.
    let pool = state.pool.clone();
    let task = actix_web::rt::spawn(async move {
        let res = next.call(req).await?;
        finish(pool, owner, key, res).await
    });
    task.await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("idempotent request task: {e}")))?
}

/// Stores the response under the claim (or releases the claim for a 429 or 5xx) and
/// hands the response on.
async fn finish<B: MessageBody + 'static>(
    pool: Pool,
    owner: String,
    key: String,
    res: ServiceResponse<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let status = res.status();
    if !should_store(status) {
        let released = db::run(&pool, move |conn| release(conn, &owner, &key)).await;
        if let Err(e) = released {
            // The response still goes out; the claim is taken over once stale.
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return Ok(res.map_into_boxed_body());
    }
    let (http_req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        ApiError::internal(anyhow::anyhow!("response body: {e}"))
    })?;
    let headers = stored_headers(&head);
    let stored = bytes.to_vec();
    let code = i32::from(status.as_u16());
    let saved = db::run(&pool, move |conn| {
        diesel::update(ik::table.find((&owner, &key)))
            .set((
                ik::state.eq("done"),
                ik::status.eq(code),
                ik::headers.eq(headers),
                ik::body.eq(stored),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await;
    if let Err(e) = saved {
        // The action ran; its response still goes out. A retry then finds the claim
        // in progress until it is stale.
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Ok(ServiceResponse::new(http_req, head.set_body(bytes)).map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(validate_key(b"abc-123_XYZ.~").is_ok());
        assert!(validate_key(&[b'a'; 255]).is_ok());
        assert!(validate_key(&[b'a'; 256]).is_err());
        assert!(validate_key(b"").is_err());
        assert!(validate_key(b"a b").is_err());
        assert!(validate_key("é".as_bytes()).is_err());
    }

    #[test]
    fn throttles_and_server_errors_are_not_stored() {
        assert!(should_store(StatusCode::CREATED));
        assert!(should_store(StatusCode::OK));
        assert!(should_store(StatusCode::BAD_REQUEST));
        assert!(should_store(StatusCode::NOT_FOUND));
        assert!(should_store(StatusCode::CONFLICT));
        assert!(!should_store(StatusCode::TOO_MANY_REQUESTS));
        assert!(!should_store(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!should_store(StatusCode::SERVICE_UNAVAILABLE));
    }

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let a = request_hash(&Method::POST, "/api/events", b"{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, request_hash(&Method::PATCH, "/api/events", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/users", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/events", b"{ }"));
    }
}
