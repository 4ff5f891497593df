//! The calendar endpoints: one event as `.ics`, the caller's private feed and its token,
//! and an organizer's public feed.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::ics::{self, OrganizerAddress};
use super::store;
use crate::accounts::extract::{AuthUser, MaybeUser};
use crate::accounts::types::UserRef;
use crate::db;
use crate::error::ApiError;
use crate::events::permissions::can_view;
use crate::events::store as events_store;
use crate::events::types::Viewer;
use crate::http::resource;
use crate::secrets::{new_token, sha256_hex, token_hash};
use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/events/{id}/ics/", &[Method::GET]).route(web::get().to(event_ics)))
        .service(
            resource("/api/users/me/calendar_token/", &[Method::POST])
                .route(web::post().to(create_token)),
        )
        .service(
            resource("/api/calendar/{token}.ics", &[Method::GET])
                .route(web::get().to(private_feed)),
        )
        .service(
            resource("/api/users/{id}/calendar.ics", &[Method::GET])
                .route(web::get().to(organizer_feed)),
        );
}

/// `scheme://host` as the client reached the server (behind a proxy: as forwarded).
fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A feed. Calendar clients poll feeds, so they may keep one for five minutes (`cache`
/// says who may: the subscriber only, or shared caches too).
fn feed_response(cal: &icalendar::Calendar, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, cache))
        .body(ics::render(cal))
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/ics/",
    tag = "calendars",
    summary = "One event as an iCalendar file, with the caller's answer as ATTENDEE when signed in.",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The event's UUID")),
    responses(
        (status = 200, description = "A VCALENDAR with one VEVENT", content_type = "text/calendar", body = String,
         headers(("Content-Disposition" = String, description = "inline; filename=\"event-<id>.ics\""))),
        crate::openapi::Unauthorized,
        crate::openapi::EventNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn event_ics(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: MaybeUser,
) -> Result<HttpResponse, ApiError> {
    let id = crate::events::routes::event_id(&path)?;
    let caller = caller.0;
    let viewer = Viewer::of(caller.as_ref());
    let (event, organizer, answer, viewer) = db::run(&state.pool, move |conn| {
        let (event, organizer) = events_store::find(conn, &id)?.ok_or(ApiError::NotFound)?;
        // Co-organizers see a draft and the organizer's address, as the organizer does.
        let viewer = events_store::viewer_for(conn, viewer, &event)?;
        if !can_view(viewer, &event) {
            return Err(ApiError::NotFound);
        }
        let answer = match viewer.id {
            Some(user_id) => store::answer_of(conn, &id, user_id)?,
            None => None,
        };
        Ok((event, organizer, answer, viewer))
    })
    .await?;
    let base = origin(&req);
    let organizer = organizer.as_ref().map(|o| {
        let address = if viewer.sees_email_of(o.id, event.organizer_id) {
            OrganizerAddress::Email
        } else {
            OrganizerAddress::Feed { base }
        };
        (o, address)
    });
    let me = caller.as_ref().map(|u| UserRef {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
    });
    let attendee = me.as_ref().zip(answer.as_deref());
    let mut cal = ics::calendar(None);
    cal.push(ics::vevent(&event, organizer, attendee, Utc::now()));
    let filename = format!("inline; filename=\"event-{}.ics\"", event.id);
    Ok(HttpResponse::Ok()
        .content_type(ics::CONTENT_TYPE)
        .insert_header((header::CONTENT_DISPOSITION, filename))
        .body(ics::render(&cal)))
}

/// A new feed token, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarToken {
    /// 32 random bytes, base64url without padding; only its SHA-256 is stored.
    #[schema(example = "kq0Xw3yQm1…")]
    pub token: String,
    /// The private feed's URL, for a calendar app's "subscribe".
    #[schema(example = "https://rally.example.com/api/calendar/kq0Xw3yQm1….ics")]
    pub url: String,
}

#[utoipa::path(
    post,
    path = "/api/users/me/calendar_token/",
    tag = "calendars",
    summary = "Create or rotate the caller's private feed token; the old feed URL stops working at once.",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new token and feed URL (shown only now)", body = CalendarToken),
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user_id = user.0.id;
    let token = new_token();
    let hash = sha256_hex(token.as_bytes());
    db::run(&state.pool, move |conn| {
        Ok(store::set_token(
            conn,
            user_id,
            &hash,
            Utc::now().naive_utc(),
        )?)
    })
    .await?;
    tracing::info!(user_id, "calendar token rotated");
    let url = format!("{}/api/calendar/{token}.ics", origin(&req));
    // The body is a credential: no cache may keep it.
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CalendarToken { token, url }))
}

#[utoipa::path(
    get,
    path = "/api/calendar/{token}.ics",
    tag = "calendars",
    summary = "The private feed of a token's owner: the events they answered Going or Maybe (drafts left out, cancelled ones marked).",
    params(("token" = String, Path, description = "The token from POST /api/users/me/calendar_token/")),
    responses(
        (status = 200, description = "A VCALENDAR, the most recent 2000 events by date", content_type = "text/calendar", body = String,
         headers(("Cache-Control" = String, description = "private, max-age=300"))),
        (status = 404, description = "Unknown or rotated token", body = crate::openapi::ErrorDetail),
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn private_feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hash = token_hash(&path).ok_or(ApiError::NotFound)?;
    let (user, rows) = db::run(&state.pool, move |conn| {
        let user = store::token_owner(conn, &hash)?.ok_or(ApiError::NotFound)?;
        let rows = store::answered_events(conn, user.id)?;
        Ok((user, rows))
    })
    .await?;
    let base = origin(&req);
    let stamp = Utc::now();
    let mut cal = ics::calendar(Some(&format!("rally — {}", user.username)));
    // Oldest first, as people read a calendar.
    for (answer, (event, organizer)) in rows.iter().rev() {
        let organizer = organizer.as_ref().map(|o| {
            let address = if o.id == user.id {
                OrganizerAddress::Email
            } else {
                OrganizerAddress::Feed { base: base.clone() }
            };
            (o, address)
        });
        cal.push(ics::vevent(event, organizer, Some((&user, answer)), stamp));
    }
    Ok(feed_response(&cal, "private, max-age=300"))
}

#[utoipa::path(
    get,
    path = "/api/users/{id}/calendar.ics",
    tag = "calendars",
    summary = "An organizer's public feed: their published and cancelled public events.",
    params(("id" = i64, Path, description = "The organizer's user id")),
    responses(
        (status = 200, description = "A VCALENDAR, the most recent 2000 events by date", content_type = "text/calendar", body = String,
         headers(("Cache-Control" = String, description = "public, max-age=300"))),
        crate::openapi::UserNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn organizer_feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path.parse().map_err(|_| ApiError::NotFound)?;
    let (organizer, events) = db::run(&state.pool, move |conn| {
        let organizer = store::user(conn, id)?.ok_or(ApiError::NotFound)?;
        let events = store::listed_events_of(conn, id)?;
        Ok((organizer, events))
    })
    .await?;
    let base = origin(&req);
    let stamp = Utc::now();
    let mut cal = ics::calendar(Some(&format!("rally — {}", organizer.username)));
    for event in events.iter().rev() {
        // Anyone reads this feed: the organizer's email stays hidden, as in the API.
        let address = OrganizerAddress::Feed { base: base.clone() };
        cal.push(ics::vevent(event, Some((&organizer, address)), None, stamp));
    }
    Ok(feed_response(&cal, "public, max-age=300"))
}
