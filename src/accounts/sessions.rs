//! Sessions (SPEC.md §11): each refresh token belongs to one, a rotation family recorded
//! server-side with its device and last use. Ending a session kills its refresh token and
//! every access token issued in it; a password change ends them all.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::extract::{AuthUser, access_claims};
use super::tokens::TokenService;
use super::types::User;
use super::{passwords, store};
use crate::db::schema::{sessions, users};
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::http::{JsonBody, resource};
use crate::startup::AppState;
use crate::validation::{Input, Text};

/// The `user_agent` column's CHECK.
pub const USER_AGENT_MAX: usize = 500;
const WRONG_OLD_PASSWORD: &str =
    "Your old password was entered incorrectly. Please enter it again.";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/sessions/", &[Method::GET]).route(web::get().to(list)))
        .service(resource("/api/sessions/{id}/", &[Method::DELETE]).route(web::delete().to(end)))
        .service(
            resource("/api/token/logout_all/", &[Method::POST]).route(web::post().to(logout_all)),
        )
        .service(
            resource("/api/users/me/password/", &[Method::POST])
                .route(web::post().to(change_password)),
        );
}

/// A row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub user_agent: String,
    pub ended_at: Option<NaiveDateTime>,
    pub current_jti: String,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionOut {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its refresh token was last used (or the session began).
    #[schema(format = DateTime)]
    pub last_used_at: String,
    /// The `User-Agent` of the last login or refresh, at most 500 characters.
    pub user_agent: String,
    /// The session of the access token this request was made with.
    pub current: bool,
}

/// `{"ended": n}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ended {
    pub ended: usize,
}

fn drf_datetime(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The request's `User-Agent`, lossily decoded and cut to what the column holds.
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(USER_AGENT_MAX)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a token issued at `iat` predates the user's last password change. A token
/// without `iat` is refused once there has been one.
pub fn predates_password_change(user: &User, iat: Option<i64>) -> bool {
    user.tokens_valid_after
        .is_some_and(|t| iat.is_none_or(|iat| iat < t.and_utc().timestamp()))
}

/// The `min_iat` for tokens issued to `user`: never before their last password change.
pub fn min_iat(user: &User) -> Option<i64> {
    user.tokens_valid_after.map(|t| t.and_utc().timestamp())
}

/// Starts a session whose refresh token is `jti`; returns its id.
pub fn create(conn: &mut DbConn, user_id: i64, user_agent: &str, jti: &str) -> QueryResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now().naive_utc();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&id),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::last_used_at.eq(now),
            sessions::user_agent.eq(user_agent),
            sessions::current_jti.eq(jti),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Moves a live session from refresh token `old_jti` to `new_jti`. The `WHERE` on the
/// current token makes two rotations of one token exclusive: on PostgreSQL the second
/// waits for the first's row lock and then matches nothing; SQLite writes one at a time.
pub fn rotate(
    conn: &mut DbConn,
    sid: &str,
    user_id: i64,
    old_jti: &str,
    new_jti: &str,
    user_agent: &str,
) -> QueryResult<bool> {
    let changed = diesel::update(
        sessions::table
            .filter(sessions::id.eq(sid))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::current_jti.eq(old_jti)),
    )
    .set((
        sessions::current_jti.eq(new_jti),
        sessions::last_used_at.eq(Utc::now().naive_utc()),
        sessions::user_agent.eq(user_agent),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn find(conn: &mut DbConn, sid: &str, user_id: i64) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::id.eq(sid))
        .filter(sessions::user_id.eq(user_id))
        .select(Session::as_select())
        .first(conn)
        .optional()
}

/// Ends one live session of `user_id`; false when there is none by that id.
pub fn end_one(conn: &mut DbConn, sid: &str, user_id: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        sessions::table
            .filter(sessions::id.eq(sid))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null()),
    )
    .set(sessions::ended_at.eq(Utc::now().naive_utc()))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Ends every live session of `user_id`; the number ended.
pub fn end_all(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null()),
    )
    .set(sessions::ended_at.eq(Utc::now().naive_utc()))
    .execute(conn)
}

/// The user, and whether session `sid` (when given) is theirs and live: one query, so a
/// signed-in request costs no more than before sessions.
pub fn user_with_session(
    conn: &mut DbConn,
    user_id: i64,
    sid: Option<&str>,
) -> QueryResult<Option<(User, bool)>> {
    let Some(sid) = sid else {
        return Ok(store::find_by_id(conn, user_id)?.map(|u| (u, true)));
    };
    users::table
        .find(user_id)
        .select((
            User::as_select(),
            diesel::dsl::exists(
                sessions::table
                    .filter(sessions::id.eq(sid))
                    .filter(sessions::user_id.eq(user_id))
                    .filter(sessions::ended_at.is_null()),
            ),
        ))
        .first(conn)
        .optional()
}

/// The live sessions of `user_id`, newest use first. A session unused for longer than a
/// refresh token lives is left out: nothing can use it any more.
fn live(
    conn: &mut DbConn,
    user_id: i64,
    refresh_ttl: std::time::Duration,
) -> QueryResult<Vec<Session>> {
    let ttl = chrono::Duration::from_std(refresh_ttl).unwrap_or(chrono::Duration::MAX);
    let since = Utc::now()
        .naive_utc()
        .checked_sub_signed(ttl)
        .unwrap_or(NaiveDateTime::MIN);
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::ended_at.is_null())
        .filter(sessions::last_used_at.ge(since))
        .order((sessions::last_used_at.desc(), sessions::id.asc()))
        .select(Session::as_select())
        .load(conn)
}

#[utoipa::path(
    get,
    operation_id = "list_sessions",
    path = "/api/sessions/",
    tag = "sessions",
    summary = "The caller's live sessions, most recently used first.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = Vec<SessionOut>),
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let current = access_claims(&req, &state.tokens).and_then(|v| v.sid);
    let user_id = user.0.id;
    let ttl = state.tokens.refresh_ttl;
    let rows = db::run(&state.pool, move |conn| Ok(live(conn, user_id, ttl)?)).await?;
    let out: Vec<SessionOut> = rows
        .into_iter()
        .map(|s| SessionOut {
            current: current.as_deref() == Some(s.id.as_str()),
            id: s.id,
            created_at: drf_datetime(s.created_at),
            last_used_at: drf_datetime(s.last_used_at),
            user_agent: s.user_agent,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/",
    tag = "sessions",
    summary = "End one of the caller's sessions: its refresh and access tokens stop working.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        crate::openapi::Unauthorized,
        (status = 404, description = "No live session of the caller's by that id", body = crate::openapi::ErrorDetail),
    )
)]
pub(crate) async fn end(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sid = path.into_inner();
    let user_id = user.0.id;
    let ended = db::run(&state.pool, move |conn| Ok(end_one(conn, &sid, user_id)?)).await?;
    if !ended {
        return Err(ApiError::NotFound);
    }
    tracing::info!(user_id, "session ended");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/token/logout_all/",
    tag = "sessions",
    summary = "End every session of the caller's, this one included.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many sessions were ended", body = Ended),
        crate::openapi::Unauthorized,
    )
)]
pub(crate) async fn logout_all(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user_id = user.0.id;
    let ended = db::run(&state.pool, move |conn| Ok(end_all(conn, user_id)?)).await?;
    tracing::info!(user_id, ended, "signed out everywhere");
    Ok(HttpResponse::Ok().json(Ended { ended }))
}

/// `tokens_valid_after` for a change made now: the start of the next second. JWT `iat` is
/// in whole seconds, so every token issued up to now (`iat` ≤ this second) falls before it,
/// and tokens issued from now on get `iat` of at least it (`TokenService::issue_session_pair`).
pub(crate) fn next_second(now: DateTime<Utc>) -> NaiveDateTime {
    DateTime::from_timestamp(now.timestamp() + 1, 0)
        .unwrap_or(now)
        .naive_utc()
}

#[utoipa::path(
    post,
    path = "/api/users/me/password/",
    tag = "accounts",
    summary = "Change the caller's password: every session ends, a fresh pair comes back.",
    security(("bearer" = [])),
    request_body = crate::openapi::PasswordChange,
    responses(
        (status = 200, description = "Changed; a pair for a new session", body = crate::accounts::tokens::TokenPair),
        crate::openapi::Unauthorized,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let user = user.0;
    let mut input = Input::new(body.0)?;
    let old = input.text("old_password", Text::password());
    let new = input.text("new_password", Text::password());
    if let Some(new) = &new {
        for problem in passwords::validate(new, &user.username, &user.email) {
            input.error("new_password", problem);
        }
    }
    if let Some(old) = old {
        // Guesses at the old password count against the login throttle: a stolen access
        // token must not become an unthrottled way to try passwords.
        let address = crate::http::client_address(&req, &state.settings.trusted_proxies);
        if let Some(wait) = state.login_throttle.blocked_for(&user.username, address) {
            return Err(ApiError::Throttled {
                retry_after_secs: wait.as_secs() + 1,
            });
        }
        let stored = user.password.clone();
        if !web::block(move || passwords::verify(&old, &stored)).await? {
            state.login_throttle.record_failure(&user.username, address);
            input.error("old_password", WRONG_OLD_PASSWORD);
        }
    }
    input.finish()?;
    let new =
        new.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated password missing")))?;
    let hash = web::block(move || passwords::hash(&new))
        .await?
        .map_err(ApiError::internal)?;
    let valid_after = next_second(Utc::now());
    let agent = user_agent(&req);
    let jti = TokenService::new_jti();
    let refresh_jti = jti.clone();
    let user_id = user.id;
    let (sid, ended) = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            diesel::update(users::table.find(user_id))
                .set((
                    users::password.eq(&hash),
                    users::tokens_valid_after.eq(Some(valid_after)),
                ))
                .execute(conn)?;
            let ended = end_all(conn, user_id)?;
            let sid = create(conn, user_id, &agent, &refresh_jti)?;
            Ok::<_, ApiError>((sid, ended))
        })
    })
    .await?;
    let pair = state
        .tokens
        .issue_session_pair(user_id, &sid, jti, Some(valid_after.and_utc().timestamp()))
        .map_err(ApiError::internal)?;
    tracing::info!(user_id, ended, "password changed");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!(pair)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_second_splits_old_tokens_from_new() {
        let now = DateTime::from_timestamp(1_000, 900_000_000).unwrap();
        let after = next_second(now).and_utc().timestamp();
        // Issued earlier in the same second: refused.
        assert!(now.timestamp() < after);
        assert_eq!(after, 1_001);
    }
}
