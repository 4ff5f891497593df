//! Account recovery and email verification (SPEC.md §13): single-use tokens, mailed
//! through the outbox and stored only as their SHA-256.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::extract::AuthUser;
use super::routes::{EMAIL_INVALID, EMAIL_MAX, normalize_email, valid_email};
use super::types::User;
use super::{passwords, sessions};
use crate::db::schema::{account_tokens, users};
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::events::store::lower;
use crate::http::{JsonBody, resource};
use crate::mail::{message, outbox};
use crate::secrets::{new_token, sha256_hex, token_hash};
use crate::startup::AppState;
use crate::validation::{Input, Text};

pub const PASSWORD_RESET: &str = "password_reset";
pub const EMAIL_VERIFICATION: &str = "email_verification";

/// A verification link lives long enough for a mail read after a week away.
pub const VERIFICATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Mails of one purpose to one address in an hour, so the endpoints cannot be used to
/// flood someone's inbox.
pub const MAILS_PER_HOUR: i64 = 3;

const RESET_SENT: &str = "If an account uses that address, a reset link has been sent.";
const RESET_DONE: &str = "Your password has been reset.";
const BAD_RESET: &str = "This reset link is invalid or has expired.";
const VERIFY_SENT: &str = "A verification link has been sent.";
const VERIFIED: &str = "Your email address has been verified.";
const BAD_VERIFY: &str = "This verification link is invalid or has expired.";
const ALREADY_VERIFIED: &str = "Already verified.";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/users/password_reset/", &[Method::POST])
            .route(web::post().to(request_reset)),
    )
    .service(
        resource("/api/users/password_reset/confirm/", &[Method::POST])
            .route(web::post().to(confirm_reset)),
    )
    .service(
        resource("/api/users/me/verify_email/", &[Method::POST])
            .route(web::post().to(resend_verification)),
    )
    .service(
        resource("/api/users/verify_email/confirm/", &[Method::POST])
            .route(web::post().to(confirm_verification)),
    );
}

/// `{"detail": …}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Detail {
    pub detail: String,
}

fn detail(status: actix_web::http::StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(Detail {
        detail: text.to_string(),
    })
}

/// The base of mailed links, or none: then a mail carries only its token.
#[derive(Debug, Clone)]
pub struct LinkBase(Option<String>);

/// Where mailed links point: `PUBLIC_URL`; without it, the origin the request came to,
/// but only on a loopback host (development). Any other host is named by the client, so a
/// link built on it could send a victim's reset token to whoever asked: the mail then
/// carries the token alone.
pub(crate) fn site(state: &AppState, req: &HttpRequest) -> LinkBase {
    if let Some(url) = &state.settings.public_url {
        return LinkBase(Some(url.clone()));
    }
    let info = req.connection_info();
    let host = info.host();
    let name = host
        .rsplit_once(':')
        .filter(|(name, port)| !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    LinkBase(loopback.then(|| format!("{}://{}", info.scheme(), host)))
}

fn ago(now: NaiveDateTime, d: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(NaiveDateTime::MIN)
}

fn later(now: NaiveDateTime, d: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Tokens of `purpose` mailed to `email` (any case) in the last hour.
/// How many mails of `purpose` went to `email` in the last hour. On PostgreSQL it first
/// takes a transaction lock on the address, so that two requests at once cannot both
/// count below the limit and both send (SQLite's write transaction is exclusive already).
fn recent_mails(
    conn: &mut DbConn,
    email: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    if let DbConn::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext(lower($1)))")
            .bind::<diesel::sql_types::Text, _>(email)
            .execute(c)?;
    }
    account_tokens::table
        .filter(lower(account_tokens::email).eq(lower(email)))
        .filter(account_tokens::purpose.eq(purpose))
        .filter(account_tokens::created_at.gt(ago(now, Duration::from_secs(3600))))
        .count()
        .get_result(conn)
}

/// Writes a new token of `purpose` for `user`, mailed to their address, and its mail, in
/// the caller's transaction. Their earlier unused tokens of that purpose stop working: only
/// the newest link counts.
fn issue(
    conn: &mut DbConn,
    user: &User,
    purpose: &'static str,
    ttl: Duration,
    site: &LinkBase,
) -> QueryResult<()> {
    let now = Utc::now().naive_utc();
    let token = new_token();
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user.id))
            .filter(account_tokens::purpose.eq(purpose))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(Some(now)))
    .execute(conn)?;
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::user_id.eq(user.id),
            account_tokens::purpose.eq(purpose),
            account_tokens::token_sha256.eq(sha256_hex(token.as_bytes())),
            account_tokens::email.eq(&user.email),
            account_tokens::created_at.eq(now),
            account_tokens::expires_at.eq(later(now, ttl)),
        ))
        .execute(conn)?;
    let valid_for =
        crate::reminders::duration::describe(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let mail = if purpose == PASSWORD_RESET {
        message::password_reset(
            &user.email,
            &user.username,
            site.0
                .as_ref()
                .map(|base| format!("{base}/reset?token={token}")),
            &token,
            &valid_for,
        )
    } else {
        message::email_verification(
            &user.email,
            &user.username,
            site.0
                .as_ref()
                .map(|base| format!("{base}/verify_email?token={token}")),
            &token,
            &valid_for,
        )
    };
    outbox::enqueue(conn, &mail)
}

/// Registration's verification mail, in the transaction that inserts the user.
pub fn issue_verification(conn: &mut DbConn, user: &User, site: &LinkBase) -> QueryResult<()> {
    issue(conn, user, EMAIL_VERIFICATION, VERIFICATION_TTL, site)
}

/// The active user a live (unused, unexpired) token of `purpose` belongs to, with the
/// address it was mailed to.
fn live_token_owner(
    conn: &mut DbConn,
    hash: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<(User, String)>> {
    account_tokens::table
        .inner_join(users::table)
        .filter(account_tokens::token_sha256.eq(hash))
        .filter(account_tokens::purpose.eq(purpose))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .filter(users::is_active.eq(true))
        .select((User::as_select(), account_tokens::email))
        .first(conn)
        .optional()
}

/// Marks a token used if it still is live: of two requests with one token, only one
/// matches (PostgreSQL: the second waits for the row lock, then finds it used; SQLite
/// writes one at a time).
fn consume(conn: &mut DbConn, hash: &str, user_id: i64, now: NaiveDateTime) -> QueryResult<bool> {
    let changed = diesel::update(
        account_tokens::table
            .filter(account_tokens::token_sha256.eq(hash))
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::used_at.is_null())
            .filter(account_tokens::expires_at.gt(now))
            // Deactivated since the token was read: it no longer works (checked here, in
            // the transaction that uses it up).
            .filter(diesel::dsl::exists(
                users::table
                    .filter(users::id.eq(user_id))
                    .filter(users::is_active.eq(true)),
            )),
    )
    .set(account_tokens::used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(changed == 1)
}

#[utoipa::path(
    post,
    path = "/api/users/password_reset/",
    tag = "accounts",
    summary = "Ask for a password reset link by mail; always 202, whether or not an account uses the address.",
    description = "Each active account with that address (case-insensitively) gets a mail \
                   with a single-use token that works for `PASSWORD_RESET_TTL` (1 hour), and \
                   the link `<PUBLIC_URL>/reset?token=<token>` (without PUBLIC_URL: the request's \
                   origin on a loopback host only; otherwise the token alone). At most 3 \
                   reset mails go to one address per hour; beyond that the answer is the \
                   same 202 and nothing is sent.",
    request_body = crate::openapi::PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted; the same answer for any well-formed address", body = Detail),
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut input = Input::new(body.0)?;
    let email = input
        .text("email", Text::required(EMAIL_MAX))
        .map(|e| normalize_email(&e));
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        input.error("email", EMAIL_INVALID);
    }
    input.finish()?;
    let email = email.unwrap_or_default();
    let site = site(&state, &req);
    let ttl = state.settings.password_reset_ttl;
    // The same queries run for a known and an unknown address, so neither the answer nor
    // its timing tells whether an account uses it.
    let sent = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let now = Utc::now().naive_utc();
            let owners: Vec<User> = users::table
                .filter(lower(users::email).eq(lower(&email)))
                .filter(users::is_active.eq(true))
                .order(users::id.asc())
                .select(User::as_select())
                .load(conn)?;
            // The limit is on mails to the address, however many accounts share it.
            let room = (MAILS_PER_HOUR - recent_mails(conn, &email, PASSWORD_RESET, now)?).max(0);
            let sending = owners.len().min(usize::try_from(room).unwrap_or(0));
            if sending < owners.len() {
                tracing::warn!("password reset mail limit reached for an address");
            }
            for user in &owners[..sending] {
                issue(conn, user, PASSWORD_RESET, ttl, &site)?;
            }
            Ok::<_, ApiError>(sending)
        })
    })
    .await?;
    if sent > 0 {
        state.mail_wake.notify_one();
        tracing::info!(accounts = sent, "password reset mailed");
    }
    Ok(detail(actix_web::http::StatusCode::ACCEPTED, RESET_SENT))
}

#[utoipa::path(
    post,
    path = "/api/users/password_reset/confirm/",
    tag = "accounts",
    summary = "Set a new password with a mailed reset token; every session of the account ends.",
    description = "An unknown, used or expired token is 400 on `token`; the password is \
                   validated as at registration (400 on `password`, the token stays usable). \
                   On success the token is used up, and as after a password change every token issued before is \
                   refused and every session ends.",
    request_body = crate::openapi::PasswordResetConfirm,
    responses(
        (status = 200, description = "The password was reset", body = Detail),
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn confirm_reset(
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut input = Input::new(body.0)?;
    let token = input.text("token", Text::password());
    let password = input.text("password", Text::password());
    let hash = token.as_deref().and_then(token_hash);
    let owner = match hash.clone() {
        Some(hash) => {
            db::run(&state.pool, move |conn| {
                let now = Utc::now().naive_utc();
                Ok(live_token_owner(conn, &hash, PASSWORD_RESET, now)?)
            })
            .await?
        }
        None => None,
    };
    if token.is_some() && owner.is_none() {
        input.error("token", BAD_RESET);
    }
    if let Some(pw) = &password {
        let (username, email) = owner
            .as_ref()
            .map(|(u, _)| (u.username.as_str(), u.email.as_str()))
            .unwrap_or(("", ""));
        for problem in passwords::validate(pw, username, email) {
            input.error("password", problem);
        }
    }
    input.finish()?;
    let (Some(hash), Some((user, _)), Some(password)) = (hash, owner, password) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "validated reset missing"
        )));
    };
    let new_hash = web::block(move || passwords::hash(&password))
        .await?
        .map_err(ApiError::internal)?;
    let user_id = user.id;
    let ended = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let now = Utc::now();
            if !consume(conn, &hash, user_id, now.naive_utc())? {
                return Err(ApiError::field("token", BAD_RESET));
            }
            // As a password change: tokens issued until now are refused from the next
            // second on, and every session ends.
            diesel::update(users::table.find(user_id))
                .set((
                    users::password.eq(&new_hash),
                    users::tokens_valid_after.eq(Some(sessions::next_second(now))),
                ))
                .execute(conn)?;
            // Other reset links mailed earlier are useless now.
            diesel::update(
                account_tokens::table
                    .filter(account_tokens::user_id.eq(user_id))
                    .filter(account_tokens::purpose.eq(PASSWORD_RESET))
                    .filter(account_tokens::used_at.is_null()),
            )
            .set(account_tokens::used_at.eq(Some(now.naive_utc())))
            .execute(conn)?;
            Ok::<_, ApiError>(sessions::end_all(conn, user_id)?)
        })
    })
    .await?;
    tracing::info!(user_id, ended, "password reset");
    Ok(detail(actix_web::http::StatusCode::OK, RESET_DONE))
}

#[utoipa::path(
    post,
    path = "/api/users/me/verify_email/",
    tag = "accounts",
    summary = "Mail the caller a new email verification link.",
    description = "Earlier links stop working. At most 3 verification mails go to one address \
                   per hour; beyond that the answer is the same 202 and nothing is sent.",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted", body = Detail),
        (status = 400, description = "The address is verified already (`detail`), or a malformed `Idempotency-Key` (on that header)", body = crate::openapi::BadRequest),
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user = user.0;
    if user.is_verified {
        return Err(ApiError::BadRequest(ALREADY_VERIFIED.into()));
    }
    let site = site(&state, &req);
    let user_id = user.id;
    let sent = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let now = Utc::now().naive_utc();
            if recent_mails(conn, &user.email, EMAIL_VERIFICATION, now)? >= MAILS_PER_HOUR {
                return Ok::<_, ApiError>(false);
            }
            issue_verification(conn, &user, &site)?;
            Ok(true)
        })
    })
    .await?;
    if sent {
        state.mail_wake.notify_one();
        tracing::info!(user_id, "verification mailed");
    }
    Ok(detail(actix_web::http::StatusCode::ACCEPTED, VERIFY_SENT))
}

#[utoipa::path(
    post,
    path = "/api/users/verify_email/confirm/",
    tag = "accounts",
    summary = "Confirm an email address with a mailed verification token.",
    description = "An unknown, used or expired token is 400 on `token`.",
    request_body = crate::openapi::VerifyEmailConfirm,
    responses(
        (status = 200, description = "Verified", body = Detail),
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn confirm_verification(
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut input = Input::new(body.0)?;
    let token = input.text("token", Text::password());
    input.finish()?;
    let hash = token
        .as_deref()
        .and_then(token_hash)
        .ok_or_else(|| ApiError::field("token", BAD_VERIFY))?;
    let user_id = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let now = Utc::now().naive_utc();
            let Some((user, mailed_to)) = live_token_owner(conn, &hash, EMAIL_VERIFICATION, now)?
            else {
                return Err(ApiError::field("token", BAD_VERIFY));
            };
            if !consume(conn, &hash, user.id, now)? {
                return Err(ApiError::field("token", BAD_VERIFY));
            }
            // It proves the address it was mailed to, not one the account has since.
            let verified = diesel::update(
                users::table
                    .find(user.id)
                    .filter(lower(users::email).eq(lower(&mailed_to))),
            )
            .set(users::is_verified.eq(true))
            .execute(conn)?;
            if verified != 1 {
                return Err(ApiError::field("token", BAD_VERIFY));
            }
            Ok::<_, ApiError>(user.id)
        })
    })
    .await?;
    tracing::info!(user_id, "email verified");
    Ok(detail(actix_web::http::StatusCode::OK, VERIFIED))
}
