//! The outbox for staff over HTTP **(beyond)**: what `rally mail status` and
//! `rally mail retry` show and do, for the admin console.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::outbox;
use crate::accounts::extract::AuthUser;
use crate::accounts::routes::require_staff;
use crate::db;
use crate::error::ApiError;
use crate::http::resource;
use crate::startup::AppState;

/// Failed mails listed at most; the count says how many there are in all.
const FAILED_LISTED: i64 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/outbox/", &[Method::GET]).route(web::get().to(status)))
        .service(resource("/api/outbox/retry/", &[Method::POST]).route(web::post().to(retry)));
}

/// The outbox's counts and its failed mails.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxStatus {
    /// Waiting for their first or next attempt.
    pub pending: i64,
    pub sent: i64,
    /// Given up after the last attempt; `POST /api/outbox/retry/` requeues them.
    pub failed: i64,
    /// Age of the oldest pending mail; null when none is pending.
    pub oldest_pending_age_seconds: Option<i64>,
    /// The oldest 100 failed mails.
    pub failed_mails: Vec<FailedMail>,
}

/// A mail given up on, with the last error the mail server or the network gave.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailedMail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The answer to a retry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Requeued {
    /// Failed mails put back in the queue with a fresh set of attempts.
    pub requeued: usize,
}

fn timestamp(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[utoipa::path(
    get,
    path = "/api/outbox/",
    tag = "staff",
    summary = "Pending, sent and failed mail counts and the failed mails (staff only).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The outbox", body = OutboxStatus),
        crate::openapi::Unauthorized,
        crate::openapi::StaffOnly,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn status(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    require_staff(&user.0)?;
    let (counts, failed) = db::run(&state.pool, |conn| {
        Ok((outbox::status(conn)?, outbox::failed(conn, FAILED_LISTED)?))
    })
    .await?;
    let now = Utc::now().naive_utc();
    Ok(HttpResponse::Ok().json(OutboxStatus {
        pending: counts.pending,
        sent: counts.sent,
        failed: counts.failed,
        oldest_pending_age_seconds: counts
            .oldest_pending
            .map(|at| (now - at).num_seconds().max(0)),
        failed_mails: failed
            .into_iter()
            .map(|f| FailedMail {
                id: f.id,
                recipient: f.recipient,
                subject: f.subject,
                attempts: f.attempts,
                last_error: f.last_error,
                created_at: timestamp(f.created_at),
            })
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/outbox/retry/",
    tag = "staff",
    summary = "Requeue every failed mail with a fresh set of attempts (staff only).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many were requeued", body = Requeued),
        crate::openapi::Unauthorized,
        crate::openapi::StaffOnly,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn retry(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    require_staff(&user.0)?;
    let requeued = db::run(&state.pool, |conn| Ok(outbox::retry_failed(conn)?)).await?;
    if requeued > 0 {
        // Due now: the worker need not wait for its next poll.
        state.mail_wake.notify_one();
    }
    tracing::info!(requeued, by = user.0.id, "failed mails requeued");
    Ok(HttpResponse::Ok().json(Requeued { requeued }))
}
