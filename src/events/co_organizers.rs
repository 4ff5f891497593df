//! Co-organizers (SPEC.md §16): users the organizer lets change the event and see its
//! attendees' emails. They cannot delete the event, add other co-organizers, or change
//! who the organizer is; the organizer is never a row of `co_organizers`.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::permissions::can_edit;
use super::routes::event_id;
use super::store;
use super::types::Viewer;
use crate::accounts::extract::{AuthUser, MaybeUser};
use crate::accounts::types::{User, UserOut, UserRef};
use crate::db::schema::{co_organizers, users};
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::http::{JsonBody, resource};
use crate::startup::AppState;
use crate::validation::Input;

/// At most this many co-organizers per event: each is one more person with every
/// attendee's email address.
pub const LIMIT: i64 = 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(
            "/api/events/{id}/co_organizers/",
            &[Method::GET, Method::POST],
        )
        .route(web::get().to(list))
        .route(web::post().to(add)),
    )
    .service(
        resource(
            "/api/events/{id}/co_organizers/{user_id}/",
            &[Method::DELETE],
        )
        .route(web::delete().to(remove)),
    );
}

/// An event's co-organizers with their users, first added first.
fn users_of(conn: &mut DbConn, event_id: &str) -> QueryResult<Vec<UserRef>> {
    co_organizers::table
        .inner_join(users::table)
        .filter(co_organizers::event_id.eq(event_id))
        .order((co_organizers::added_at.asc(), co_organizers::user_id.asc()))
        .select(UserRef::as_select())
        .load(conn)
}

#[utoipa::path(
    get,
    operation_id = "list_co_organizers",
    path = "/api/events/{id}/co_organizers/",
    tag = "events",
    summary = "The event's co-organizers, first added first (anyone who can see the event) (beyond).",
    description = "Emails are shown as everywhere else: to the user themself, to staff, and to \
                   the event's organizer and co-organizers.",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The event's UUID")),
    responses(
        (status = 200, description = "The co-organizers", body = Vec<crate::accounts::types::UserOut>),
        crate::openapi::Unauthorized,
        crate::openapi::EventNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    viewer: MaybeUser,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let viewer = Viewer::of(viewer.0.as_ref());
    let body: Vec<UserOut> = db::run(&state.pool, move |conn| {
        let (event, viewer) = store::visible_event(conn, &id, viewer, false)?;
        Ok(users_of(conn, &id)?
            .into_iter()
            .map(|u| {
                let shown = viewer.sees_email_of(u.id, event.organizer_id);
                u.show(shown)
            })
            .collect())
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Why a user cannot be added, as the `user_id` field's error.
fn refuse(message: &str) -> ApiError {
    ApiError::field("user_id", message)
}

#[utoipa::path(
    post,
    operation_id = "add_co_organizer",
    path = "/api/events/{id}/co_organizers/",
    tag = "events",
    summary = "Add a co-organizer (organizer or staff; co-organizers cannot add others) (beyond).",
    description = "400 on `user_id` for an unknown user, the organizer, a user who already is a \
                   co-organizer, or an event that has 20 already.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event's UUID")),
    request_body = crate::openapi::CoOrganizerRequest,
    responses(
        (status = 201, description = "Added: the user, email shown", body = crate::accounts::types::UserOut),
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::EventNotFound,
        crate::openapi::BodyErrors,
    )
)]
pub(crate) async fn add(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let caller: User = user.0;
    let validated = Input::new(body.0).and_then(|mut input| {
        let user_id =
            match input.nullable("user_id", |i, v| i.read_integer("user_id", v, 1, i64::MAX)) {
                Some(Some(n)) => Some(n),
                Some(None) => {
                    input.error("user_id", crate::validation::NULL);
                    None
                }
                None => {
                    if !input.has_error("user_id") {
                        input.error("user_id", crate::validation::REQUIRED);
                    }
                    None
                }
            };
        input.finish().map(|()| user_id.unwrap_or_default())
    });
    let added = db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            // Locked: two adds at once cannot both pass the limit.
            let (event, _) = store::visible_event(conn, &id, Viewer::of(Some(&caller)), true)?;
            if !can_edit(&caller, event.organizer_id) {
                return Err(ApiError::PermissionDenied);
            }
            // As DRF: the event (404) and the permission (403) before the body (400).
            let user_id = validated?;
            if event.organizer_id == Some(user_id) {
                return Err(refuse("The organizer is already organizing this event."));
            }
            let added: UserRef = users::table
                .find(user_id)
                .select(UserRef::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| {
                    refuse(&format!(
                        "Invalid pk \"{user_id}\" - object does not exist."
                    ))
                })?;
            let present: i64 = co_organizers::table
                .filter(co_organizers::event_id.eq(&id))
                .count()
                .get_result(conn)?;
            let already = diesel::select(diesel::dsl::exists(
                co_organizers::table.find((&id, user_id)),
            ))
            .get_result::<bool>(conn)?;
            if already {
                return Err(refuse("This user is already a co-organizer of this event."));
            }
            if present >= LIMIT {
                return Err(refuse(&format!(
                    "An event has at most {LIMIT} co-organizers."
                )));
            }
            diesel::insert_into(co_organizers::table)
                .values((
                    co_organizers::event_id.eq(&id),
                    co_organizers::user_id.eq(user_id),
                    co_organizers::added_at.eq(Utc::now().naive_utc()),
                ))
                .execute(conn)
                .map_err(|e| match e {
                    // The user's account was deleted meanwhile: as unknown.
                    DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                        refuse(&format!(
                            "Invalid pk \"{user_id}\" - object does not exist."
                        ))
                    }
                    DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                        refuse("This user is already a co-organizer of this event.")
                    }
                    e => e.into(),
                })?;
            // The new co-organizer now lists a draft or unlisted event: their sync must
            // return it, as a full list would.
            super::sync::touch(conn, &[&id])?;
            Ok(added)
        })
    })
    .await?;
    tracing::info!(user_id = added.id, "co-organizer added");
    // The caller is the organizer or staff: they see the email.
    Ok(HttpResponse::Created().json(added.show(true)))
}

#[utoipa::path(
    delete,
    operation_id = "remove_co_organizer",
    path = "/api/events/{id}/co_organizers/{user_id}/",
    tag = "events",
    summary = "Remove a co-organizer (organizer or staff; a co-organizer may remove themself) (beyond).",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The event's UUID"),
        ("user_id" = i64, Path, description = "The co-organizer's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        (status = 404, description = "No such event, a malformed id, a draft the caller may not see, or the user is not a co-organizer of it", body = crate::openapi::ErrorDetail),
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_user) = path.into_inner();
    let id = event_id(&raw_id)?;
    let user_id: i64 = raw_user.parse().map_err(|_| ApiError::NotFound)?;
    let caller: User = user.0;
    db::run(&state.pool, move |conn| {
        db::write_tx(conn, |conn| {
            let (event, _) = store::visible_event(conn, &id, Viewer::of(Some(&caller)), true)?;
            if !can_edit(&caller, event.organizer_id) && caller.id != user_id {
                return Err(ApiError::PermissionDenied);
            }
            let n = diesel::delete(co_organizers::table.find((&id, user_id))).execute(conn)?;
            if n == 0 {
                return Err(ApiError::NotFound);
            }
            super::sync::touch(conn, &[&id])?;
            Ok(())
        })
    })
    .await?;
    tracing::info!(user_id, "co-organizer removed");
    Ok(HttpResponse::NoContent().finish())
}
