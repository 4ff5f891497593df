//! The events API the Django clients use: list, create, detail, update, delete, and
//! `change_attendee_status`.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;

use super::attendance;
use super::conditional::{self, IfMatch, etag_of, to_json};
use super::export;
use super::fields;
use super::listing::{self, ListQuery};
use super::permissions::{can_change, can_edit, can_view};
use super::store;
use super::sync;
use super::types::{
    AttendanceCounts, AttendanceOut, EventChanges, EventDetail, EventRow, NewEvent, STATUSES,
    Viewer,
};
use crate::accounts::extract::{AuthUser, MaybeUser};
use crate::accounts::types::UserRef;
use crate::db;
use crate::error::ApiError;
use crate::http::{JsonBody, query_pairs, resource};
use crate::mail::{message, outbox};
use crate::reminders::schedule::reschedule;
use crate::startup::AppState;
use crate::validation::Input;
use crate::webhooks;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/events/", &[Method::GET, Method::POST])
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource(
            "/api/events/{id}/",
            &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
        )
        .route(web::get().to(detail))
        .route(web::put().to(put))
        .route(web::patch().to(patch))
        .route(web::delete().to(delete)),
    )
    .service(
        resource("/api/events/{id}/change_attendee_status/", &[Method::POST])
            .route(web::post().to(change_attendee_status)),
    )
    .service(
        resource("/api/events/{id}/attendees.csv", &[Method::GET])
            .route(web::get().to(export::attendees_csv)),
    )
    .configure(super::co_organizers::routes);
}

/// A malformed id is as unknown as a missing one: 404, as Django answers.
pub(crate) fn event_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::NotFound)
}

/// The list URL as the client reached it, for `Link` headers.
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.path())
}

#[utoipa::path(
    get,
    path = "/api/events/",
    tag = "events",
    summary = "List events, a page at a time: published and cancelled public events, plus the caller's own and co-organized drafts and unlisted events (staff: all).",
    security((), ("bearer" = [])),
    params(
        ("search" = Option<String>, Query, description = "Terms split on spaces and commas; each must occur in the name, case-insensitively"),
        ("organizer" = Option<i64>, Query, description = "Organizer's user id"),
        ("date_after" = Option<chrono::NaiveDate>, Query, description = "On or after this date"),
        ("date_before" = Option<chrono::NaiveDate>, Query, description = "On or before this date"),
        ("starts_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "starts_at on or after this instant (RFC 3339 with offset); events without starts_at are left out"),
        ("starts_before" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "starts_at on or before this instant (RFC 3339 with offset); events without starts_at are left out"),
        ("ordering" = Option<String>, Query, pattern = r"^-?(date|starts_at|name|organizer|going_count|maybe_count|not_going_count|waitlist_count)(,-?(date|starts_at|name|organizer|going_count|maybe_count|not_going_count|waitlist_count))*$", description = "Comma-separated: date, starts_at, name, organizer (username), going_count, maybe_count, not_going_count, waitlist_count, each optionally with a leading - for descending (default: date, then id). Events without starts_at or organizer sort last either way."),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Page size, default 100, capped at 1000"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Rows to skip"),
        ("updated_since" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Incremental sync (beyond, SPEC §15): instead of a page, the events changed (row or attendances) at or after this instant and the deleted ones as tombstones `{id, deleted: true, deleted_at}`, oldest change first, at most `limit` (more when several share the last change time); pass `X-Sync-Cursor` next time. Combines only with `limit`; older than TOMBSTONE_RETENTION is 400 (list in full)."),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds (or `*`); when one is current the answer is 304 with no body (weak comparison)"),
    ),
    responses(
        (status = 200, description = "A page of events; the paging is in the headers. With `updated_since`: the changes, events with `updated_at` and tombstones, and `X-Sync-Cursor` instead of the paging headers and ETag", body = Vec<crate::events::sync::SyncItem>, headers(("X-Total-Count" = i64, description = "Events matching, over all pages"), ("Link" = String, description = "RFC 8288 links: next, prev"), ("ETag" = String, description = "Strong validator of this page: its body and paging headers"), ("X-Sync-Cursor" = String, description = "With updated_since: the updated_since of the next sync, RFC 3339 UTC with microseconds"))),
        crate::openapi::NotModified,
        (status = 400, description = "A malformed parameter, named", body = crate::openapi::FieldErrors),
        crate::openapi::Unauthorized,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: MaybeUser,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    let mut query = ListQuery::parse(&pairs)?;
    let viewer = Viewer::of(viewer.0.as_ref());
    query.viewer = viewer;
    if let Some(since) = query.updated_since {
        return sync_list(&state, query, since).await;
    }
    let q = query.clone();
    let (rows, total_n, mut counts) =
        db::run(&state.pool, move |conn| Ok(store::list(conn, &q)?)).await?;
    let body: Vec<_> = rows
        .into_iter()
        .map(|(event, organizer)| {
            let n = counts.remove(&event.id).unwrap_or_default();
            event.show(organizer, viewer, n)
        })
        .collect();
    let body = to_json(&body)?;
    let total = total_n.to_string();
    let link = listing::link_header(&base_url(&req), &pairs, query.limit, query.offset, total_n);
    // The paging headers are part of what the page says: a page whose rows stay the same
    // while the total changes is a new version too.
    let etag = etag_of(&[
        &body,
        total.as_bytes(),
        link.as_deref().unwrap_or("").as_bytes(),
    ]);
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Total-Count", total));
    if let Some(link) = link {
        response.insert_header((header::LINK, link));
    }
    Ok(conditional::ok_or_not_modified(
        req.headers(),
        response,
        body,
        etag,
    ))
}

/// `GET /api/events/?updated_since=`: the changes since then, in change order, and the
/// cursor for the next call (SPEC.md §15).
async fn sync_list(
    state: &AppState,
    query: ListQuery,
    since: chrono::NaiveDateTime,
) -> Result<HttpResponse, ApiError> {
    let cutoff = sync::retention_cutoff(state.settings.tombstone_retention);
    if since < cutoff {
        // Deletions before the cutoff may have been forgotten: only a full list is sure.
        return Err(ApiError::field(
            "updated_since",
            format!(
                "Too old: deletions are kept since {}; list in full and sync from a new cursor.",
                sync::format_time(cutoff)
            ),
        ));
    }
    let viewer = query.viewer;
    let page = db::run(&state.pool, move |conn| {
        Ok(sync::read(conn, &query, since)?)
    })
    .await?;
    let cursor = sync::format_time(page.cursor);
    Ok(HttpResponse::Ok()
        .insert_header((sync::CURSOR_HEADER, cursor))
        .json(page.items(viewer)))
}

/// The body's event fields, each checked; the rules across fields come in `fields::merge`.
fn read_body(
    body: serde_json::Value,
    partial: bool,
    creating: bool,
) -> Result<fields::EventInput, ApiError> {
    let mut input = Input::new(body)?;
    let fields = fields::read(&mut input, partial, creating);
    input.finish().map(|()| fields)
}

#[utoipa::path(
    post,
    path = "/api/events/",
    tag = "events",
    summary = "Create an event; the caller is its organizer and is mailed.",
    security(("bearer" = [])),
    request_body = crate::openapi::EventWrite,
    responses(
        (status = 201, description = "Created", body = crate::events::types::EventOut),
        crate::openapi::Unauthorized,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let organizer = user.0;
    let mut row = fields::merge(None, read_body(body.0, false, true)?, false)?;
    row.id = uuid::Uuid::new_v4().hyphenated().to_string();
    row.organizer_id = Some(organizer.id);
    let stored = row.clone();
    // The organizer's mail is written in the same transaction as the event: both or neither.
    let mail = message::event_created(&organizer.email, &row.name, row.date, &row.id);
    let viewer = Viewer::of(Some(&organizer));
    let organizer_ref = UserRef {
        id: organizer.id,
        username: organizer.username.clone(),
        email: organizer.email.clone(),
    };
    let shown = row.show(Some(organizer_ref), viewer, AttendanceCounts::default());
    let hooked = shown.clone();
    let organizer_id = organizer.id;
    let queued = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            store::insert(conn, &NewEvent::of(&stored, sync::now_micros()))?;
            // Stamped again with the clock the sync cursor is taken on (PostgreSQL's).
            sync::touch(conn, &[&stored.id])?;
            reschedule(conn, &stored)?;
            outbox::enqueue(conn, &mail)?;
            let queued = webhooks::event_created(conn, &hooked, organizer_id)?;
            Ok::<_, ApiError>(queued)
        })
    })
    .await?;
    state.mail_wake.notify_one();
    if queued > 0 {
        state.webhook_wake.notify_one();
    }
    tracing::info!(event_id = %shown.id, organizer_id, "event created");
    Ok(HttpResponse::Created().json(shown))
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/",
    tag = "events",
    summary = "An event with its attendances.",
    security((), ("bearer" = [])),
    params(
        ("id" = String, Path, description = "The event's UUID"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds (or `*`); when one is current the answer is 304 with no body (weak comparison)"),
    ),
    responses(
        (status = 200, description = "The event", body = crate::events::types::EventDetail,
         headers(("ETag" = String, description = "Strong validator of this representation (as this caller sees it); send it back in If-Match to change the event safely"))),
        crate::openapi::NotModified,
        crate::openapi::Unauthorized,
        crate::openapi::EventNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn detail(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    viewer: MaybeUser,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let viewer = Viewer::of(viewer.0.as_ref());
    let detail = db::run(&state.pool, move |conn| {
        let (event, organizer) = store::find(conn, &id)?.ok_or(ApiError::NotFound)?;
        // A signed-in caller may be a co-organizer: one more query, then the event is
        // shown as to its organizer.
        let viewer = store::viewer_for(conn, viewer, &event)?;
        if !can_view(viewer, &event) {
            return Err(ApiError::NotFound);
        }
        let attendances = store::attendances_of(conn, &id)?;
        Ok(render_detail(event, organizer, attendances, viewer))
    })
    .await?;
    let (body, etag) = tagged(&detail)?;
    Ok(conditional::ok_or_not_modified(
        req.headers(),
        HttpResponse::Ok(),
        body,
        etag,
    ))
}

/// The detail representation as `viewer` GETs it. The detail, `If-Match` and the ETag of
/// a change's response all render through here, so their tags agree byte for byte.
pub fn render_detail(
    event: EventRow,
    organizer: Option<UserRef>,
    attendances: Vec<(String, UserRef)>,
    viewer: Viewer,
) -> EventDetail {
    let organizer_id = event.organizer_id;
    let mut counts = AttendanceCounts::default();
    for (status, _) in &attendances {
        counts.add(status, 1);
    }
    let attendances = attendances
        .into_iter()
        .map(|(status, user)| {
            let visible = viewer.sees_email_of(user.id, organizer_id);
            AttendanceOut {
                user: user.show(visible),
                status,
            }
        })
        .collect();
    EventDetail {
        event: event.show(organizer, viewer, counts),
        attendances,
    }
}

/// The detail of an event read in this transaction: its organizer and attendances are
/// read here (two queries).
fn load_detail(
    conn: &mut db::DbConn,
    event: EventRow,
    viewer: Viewer,
) -> Result<EventDetail, ApiError> {
    let organizer = store::user_ref(conn, event.organizer_id)?;
    let attendances = store::attendances_of(conn, &event.id)?;
    Ok(render_detail(event, organizer, attendances, viewer))
}

/// The detail's JSON bytes and their ETag.
fn tagged(detail: &EventDetail) -> Result<(Vec<u8>, String), ApiError> {
    let body = to_json(detail)?;
    let etag = etag_of(&[&body]);
    Ok((body, etag))
}

/// Checks `If-Match` against the event as `viewer` would GET it now (the event locked by
/// the caller's transaction, so nothing changes between the check and the write).
fn check_if_match(
    conn: &mut db::DbConn,
    condition: Option<&IfMatch>,
    event: &EventRow,
    viewer: Viewer,
) -> Result<(), ApiError> {
    let Some(condition) = condition else {
        return Ok(());
    };
    let holds = condition.holds(|| {
        let detail = load_detail(conn, event.clone(), viewer)?;
        Ok(tagged(&detail)?.1)
    })?;
    if holds {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

#[utoipa::path(
    put,
    path = "/api/events/{id}/",
    tag = "events",
    summary = "Replace an event's name and date (organizer, co-organizer or staff).",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The event's UUID"),
        ("If-Match" = Option<String>, Header, description = "The detail ETag the change is based on (or `*`); when the event has changed since, 412 and nothing is stored. Without it the change is unconditional"),
    ),
    request_body = crate::openapi::EventWrite,
    responses(
        (status = 200, description = "Updated", body = crate::events::types::EventOut,
         headers(("ETag" = String, description = "The ETag of the event's detail after the change, for the next If-Match"))),
        crate::openapi::PreconditionFailed,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::EventNotFound,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn put(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    update(
        state,
        path,
        user,
        body,
        false,
        IfMatch::from_headers(req.headers()),
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/api/events/{id}/",
    tag = "events",
    summary = "Change some of an event's fields (organizer, co-organizer or staff).",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The event's UUID"),
        ("If-Match" = Option<String>, Header, description = "The detail ETag the change is based on (or `*`); when the event has changed since, 412 and nothing is stored. Without it the change is unconditional"),
    ),
    request_body = crate::openapi::EventPatch,
    responses(
        (status = 200, description = "Updated", body = crate::events::types::EventOut,
         headers(("ETag" = String, description = "The ETag of the event's detail after the change, for the next If-Match"))),
        crate::openapi::PreconditionFailed,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::EventNotFound,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn patch(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    update(
        state,
        path,
        user,
        body,
        true,
        IfMatch::from_headers(req.headers()),
    )
    .await
}

/// PUT and PATCH. As in DRF, a missing event (404) and a refused caller (403) are
/// reported before any problem with the body (400); a failed `If-Match` (412) between.
async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
    body: JsonBody,
    partial: bool,
    if_match: Option<IfMatch>,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let user = user.0;
    let validated = read_body(body.0, partial, false);
    let caller = user.clone();
    let (detail, mailed, hooked) = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let (old, viewer) = store::visible_event(conn, &id, Viewer::of(Some(&caller)), true)?;
            // Co-organizers change the event as its organizer does (never who that is).
            if !can_change(viewer, old.organizer_id) {
                return Err(ApiError::PermissionDenied);
            }
            check_if_match(conn, if_match.as_ref(), &old, viewer)?;
            let mut new = fields::merge(Some(&old), validated?, partial)?;
            let changes = fields::important_changes(&old, &new);
            if !changes.is_empty() {
                new.sequence += 1;
            }
            store::update(conn, &id, &EventChanges::of(&new, Utc::now().naive_utc()))?;
            let mut mailed = false;
            if !changes.is_empty() {
                // One mail per attendee, in this transaction: the change and its notice
                // are stored together or not at all.
                let mails: Vec<_> = attendance::interested_emails(conn, &id)?
                    .iter()
                    .map(|to| message::event_changed(to, &new, &changes))
                    .collect();
                outbox::enqueue_many(conn, &mails)?;
                mailed |= !mails.is_empty();
            }
            if (old.starts_at, &old.reminders, &old.status)
                != (new.starts_at, &new.reminders, &new.status)
            {
                reschedule(conn, &new)?;
                mailed = true;
            }
            // More seats, no limit any more, or published again: the waitlist moves up.
            let promoted = (old.capacity != new.capacity || old.status != new.status)
                && attendance::promote(conn, &new)? > 0;
            mailed |= promoted;
            sync::touch(conn, &[&id])?;
            // The event as stored, as the caller would now GET it: the response is its
            // event part, and the ETag is the detail's, so the next change can chain on.
            let (event, organizer) = store::find(conn, &id)?.ok_or(ApiError::NotFound)?;
            let attendances = store::attendances_of(conn, &id)?;
            let detail = render_detail(event, organizer, attendances, viewer);
            // Promotions may have queued `waitlist.promoted` deliveries as well.
            let hooked = webhooks::event_updated(conn, &old, &new, &detail.event)? > 0 || promoted;
            Ok((detail, mailed, hooked))
        })
    })
    .await?;
    if mailed {
        state.mail_wake.notify_one();
    }
    if hooked {
        state.webhook_wake.notify_one();
    }
    tracing::info!(event_id = %detail.event.id, user_id = user.id, "event updated");
    let etag = tagged(&detail)?.1;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .json(&detail.event))
}

#[utoipa::path(
    delete,
    path = "/api/events/{id}/",
    tag = "events",
    summary = "Delete an event and its attendances (organizer or staff; not co-organizers).",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The event's UUID"),
        ("If-Match" = Option<String>, Header, description = "The detail ETag the change is based on (or `*`); when the event has changed since, 412 and nothing is stored. Without it the change is unconditional"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::PreconditionFailed,
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::EventNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let if_match = IfMatch::from_headers(req.headers());
    let user = user.0;
    let caller = user.clone();
    let deleted_id = id.clone();
    let retention = state.settings.tombstone_retention;
    let queued = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            // Locked, so that no change slips in between the If-Match check and the delete.
            let (event, viewer) = store::visible_event(conn, &id, Viewer::of(Some(&caller)), true)?;
            // Co-organizers see a draft (so 403, not 404) but may not delete it.
            if !can_edit(&caller, event.organizer_id) {
                return Err(ApiError::PermissionDenied);
            }
            check_if_match(conn, if_match.as_ref(), &event, viewer)?;
            let queued = webhooks::event_deleted(conn, &event)?;
            sync::bury(conn, &event, retention)?;
            store::delete(conn, &id)?;
            Ok(queued)
        })
    })
    .await?;
    if queued > 0 {
        state.webhook_wake.notify_one();
    }
    tracing::info!(event_id = %deleted_id, user_id = user.id, "event deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/events/{id}/change_attendee_status/",
    tag = "events",
    summary = "Set the caller's answer for an event.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event's UUID")), request_body = crate::openapi::AttendanceRequest,
    responses(
        (status = 200, description = "The answer as stored: Waitlisted when a Going answer meets a full event", body = crate::openapi::AttendanceAnswer),
        crate::openapi::Unauthorized,
        crate::openapi::EventNotFound,
        crate::openapi::NotOpen,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn change_attendee_status(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let user = user.0;
    let validated = Input::new(body.0).and_then(|mut input| {
        let status = input.choice("status", &STATUSES);
        input.finish().map(|()| status.unwrap_or(STATUSES[0]))
    });
    let viewer = Viewer::of(Some(&user));
    let wanted = match validated {
        Ok(status) => status,
        Err(e) => {
            // An unknown event is a 404 before any problem with the body, as in DRF.
            let check = id.clone();
            let visible = db::run(&state.pool, move |conn| {
                Ok(store::visible_event(conn, &check, viewer, false).is_ok())
            })
            .await?;
            return Err(if visible { e } else { ApiError::NotFound });
        }
    };
    let user_id = user.id;
    let stored = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            attendance::answer(conn, &id, user_id, viewer, wanted)
        })
    })
    .await?;
    if stored.promoted {
        state.mail_wake.notify_one();
    }
    if stored.hooked {
        state.webhook_wake.notify_one();
    }
    let mut body = json!({
        "user": {"id": user.id, "username": user.username, "email": user.email},
        "status": stored.status,
    });
    if let Some(position) = stored.position {
        body["waitlist_position"] = json!(position);
    }
    Ok(HttpResponse::Ok().json(body))
}
