//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types below, and the Swagger UI page that renders it from assets in the binary.

use std::collections::BTreeMap;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::accounts::recovery::Detail;
use crate::accounts::sessions::{Ended, SessionOut};
use crate::accounts::tokens::TokenPair;
use crate::accounts::types::{Me, UserAdmin, UserOut};
use crate::calendar::routes::CalendarToken;
use crate::events::types::{AttendanceOut, EventDetail, EventOut};
use crate::http::resource;
use crate::mail::routes::{FailedMail, OutboxStatus, Requeued};
use crate::webhooks::routes::{DeliveryOut, WebhookOut};
use crate::{accounts, calendar, events, health, mail, webhooks};

/// An attendance answer, as the Django app spells it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum AttendanceStatus {
    Going,
    Maybe,
    #[serde(rename = "Not Going")]
    NotGoing,
}

/// An attendance as stored: the three answers, and `Waitlisted`, which only the server
/// sets (a `Going` answer to a full event) **(beyond)**.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum StoredAttendanceStatus {
    Going,
    Maybe,
    #[serde(rename = "Not Going")]
    NotGoing,
    Waitlisted,
}

/// An event's lifecycle: `draft` (seen only by its organizer and staff), `published`,
/// `cancelled` (kept and readable; answers are refused with 409).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
}

/// `public`: listed for everyone; `unlisted`: readable by id, listed only for its
/// organizer and staff.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Unlisted,
}

// The request bodies below describe what the handlers read. The handlers read them
// field by field (`validation.rs`) so that every problem is reported in DRF's words; these
// types exist for the document.

/// `POST /api/users/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RegisterRequest {
    /// 1–150 letters, digits and `@.+-_`.
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = r"^[\w.@+-]+$",
        example = "ada"
    )]
    username: String,
    #[schema(format = "email", example = "ada@example.com")]
    email: String,
    /// At least 8 characters, not entirely numeric, not common, not like the username or email.
    #[schema(min_length = 8, format = Password)]
    password: String,
}

/// `POST /api/token/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenObtainRequest {
    #[schema(min_length = 1, max_length = 150)]
    username: String,
    #[schema(min_length = 1, format = Password)]
    password: String,
}

/// `POST /api/token/refresh/` and `POST /api/token/blacklist/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefreshTokenRequest {
    #[schema(min_length = 1)]
    refresh: String,
}

/// `POST /api/token/verify/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenVerifyRequest {
    #[schema(min_length = 1)]
    token: String,
}

/// `DELETE /api/users/me/`: the password again, to confirm.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordConfirmation {
    #[schema(min_length = 1, format = Password)]
    password: String,
}

/// `POST /api/users/me/password/` **(beyond, §11)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordChange {
    #[schema(min_length = 1, format = Password)]
    old_password: String,
    /// Validated as at registration.
    #[schema(min_length = 8, format = Password)]
    new_password: String,
}

/// `POST /api/users/password_reset/` **(beyond, §13)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordResetRequest {
    #[schema(format = "email", max_length = 254, example = "ada@example.com")]
    email: String,
}

/// `POST /api/users/password_reset/confirm/` **(beyond, §13)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordResetConfirm {
    /// The token from the reset mail.
    #[schema(min_length = 1)]
    token: String,
    /// Validated as at registration.
    #[schema(min_length = 8, format = Password)]
    password: String,
}

/// `POST /api/users/verify_email/confirm/` **(beyond, §13)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerifyEmailConfirm {
    /// The token from the verification mail.
    #[schema(min_length = 1)]
    token: String,
}

/// `POST /api/events/` and `PUT /api/events/{id}/`. `name` is required; `date` is
/// required unless `starts_at` is given, from which it is then derived. Every other field
/// is optional **(beyond)**; on PUT a field left out keeps its value, as in DRF.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventWrite {
    /// Not blank; surrounding whitespace is trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*\S[^\u0000]*$",
        example = "Rust meetup"
    )]
    name: String,
    /// Must equal `starts_at`'s day in the event's time zone when both are given.
    #[schema(nullable = false)]
    date: Option<NaiveDate>,
    #[serde(flatten)]
    details: EventDetails,
}

/// The optional fields of an event **(beyond)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventDetails {
    /// RFC 3339 with an offset; stored in UTC. Null clears it (and needs `ends_at` null too).
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339 with an offset; not before `starts_at`, and only with one.
    ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An IANA time zone name.
    #[schema(example = "Europe/Berlin", max_length = 64)]
    timezone: Option<String>,
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$", nullable = false)]
    description: Option<String>,
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$", nullable = false)]
    location: Option<String>,
    /// An absolute http or https URL.
    #[schema(max_length = 2000, example = "https://meet.example.com/rust")]
    online_url: Option<String>,
    /// Seats for Going; null for no limit.
    #[schema(minimum = 1, maximum = 1000000)]
    capacity: Option<i32>,
    /// Created as `draft` or `published` (default); a published event cannot go back to draft.
    #[schema(nullable = false)]
    status: Option<EventStatus>,
    #[schema(nullable = false)]
    visibility: Option<Visibility>,
    /// Up to five ISO 8601 durations in weeks, days, hours, minutes or seconds, each
    /// between PT1M and P366D; a reminder mail goes to everyone Going that long before
    /// `starts_at`.
    #[schema(max_items = 5, nullable = false, example = json!(["P1D", "PT1H"]))]
    reminders: Option<Vec<String>>,
}

/// `PATCH /api/events/{id}/`: any subset.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventPatch {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*\S[^\u0000]*$",
        nullable = false
    )]
    name: Option<String>,
    #[schema(nullable = false)]
    date: Option<NaiveDate>,
    #[serde(flatten)]
    details: EventDetails,
}

/// `PATCH /api/users/{id}/`: either flag, or both.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserFlagsPatch {
    /// Staff see and change everything, the users and the outbox included.
    #[schema(nullable = false)]
    is_staff: Option<bool>,
    /// False: the user cannot sign in and their tokens stop working.
    #[schema(nullable = false)]
    is_active: Option<bool>,
}

/// `POST /api/events/{id}/change_attendee_status/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AttendanceRequest {
    status: AttendanceStatus,
}

/// `POST /api/events/{id}/co_organizers/` **(beyond)**.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CoOrganizerRequest {
    /// The user to add: not the organizer, not already a co-organizer.
    #[schema(minimum = 1)]
    user_id: i64,
}

/// The answer to `change_attendee_status`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AttendanceAnswer {
    user: UserOut,
    /// `Waitlisted` when the event is full.
    status: StoredAttendanceStatus,
    /// The caller's place on the waitlist, from 1; only when waitlisted **(beyond)**.
    #[schema(minimum = 1)]
    waitlist_position: Option<i64>,
}

/// Any error with a single message.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    #[schema(example = "Not found.")]
    detail: String,
}

/// A refused token, as Simple JWT words it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenError {
    #[schema(example = "Given token not valid for any token type")]
    detail: String,
    #[schema(example = "token_not_valid")]
    code: Option<String>,
    messages: Option<Vec<BTreeMap<String, String>>>,
}

/// Field name → its problems; `non_field_errors` for the body as a whole.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"name": ["This field is required."]}))]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

/// A 400: field problems, or one `detail` for a body that is not JSON at all.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum BadRequest {
    Fields(FieldErrors),
    Detail(ErrorDetail),
}

// The error responses operations share, each status once.

/// What any operation with a JSON body can answer besides its own statuses.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    #[response(
        status = 400,
        description = "Invalid fields, each named with its problems, or a body that is not JSON"
    )]
    Invalid(BadRequest),
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(ErrorDetail),
    #[response(status = 415, description = "Body is not JSON")]
    NotJson(ErrorDetail),
    #[response(status = 503, description = "Database unavailable; retry")]
    Unavailable(ErrorDetail),
}

/// A missing, malformed, expired or refused token.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Unauthorized {
    #[response(status = 401, description = "Missing, bad or expired credentials")]
    Token(TokenError),
}

/// Signed in, but neither the organizer nor staff.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Forbidden {
    #[response(status = 403, description = "Not the organizer nor staff")]
    Denied(ErrorDetail),
}

/// Signed in, but not staff.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum StaffOnly {
    #[response(status = 403, description = "Not staff")]
    Denied(ErrorDetail),
}

/// No such user, or an id that is not an integer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum UserNotFound {
    #[response(status = 404, description = "No such user (or a malformed id)")]
    Missing(ErrorDetail),
}

/// No such webhook of the caller's (someone else's reads as missing), or a malformed id.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WebhookNotFound {
    #[response(
        status = 404,
        description = "No such webhook of the caller's, no such delivery, or a malformed id"
    )]
    Missing(ErrorDetail),
}

/// What a webhook can be told about **(beyond)**.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum WebhookEventType {
    #[serde(rename = "event.created")]
    EventCreated,
    #[serde(rename = "event.updated")]
    EventUpdated,
    #[serde(rename = "event.cancelled")]
    EventCancelled,
    #[serde(rename = "event.deleted")]
    EventDeleted,
    #[serde(rename = "attendance.changed")]
    AttendanceChanged,
    #[serde(rename = "waitlist.promoted")]
    WaitlistPromoted,
}

/// `POST /api/webhooks/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookCreate {
    /// `https://` (at most 2000 characters, no credentials, not a private or link-local
    /// address); `http://` only to loopback where the server allows it.
    #[schema(
        format = "uri",
        max_length = 2000,
        example = "https://hooks.example.com/rally"
    )]
    url: String,
    /// The types to receive, at least one.
    #[schema(min_items = 1)]
    events: Vec<WebhookEventType>,
}

/// `PATCH /api/webhooks/{id}/`: any of the fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookPatch {
    #[schema(format = "uri", max_length = 2000)]
    url: Option<String>,
    #[schema(min_items = 1)]
    events: Option<Vec<WebhookEventType>>,
    /// `false` pauses deliveries; `true` resumes them and clears `disabled_reason`.
    active: Option<bool>,
}

/// No such event, or an id that is not a UUID.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum EventNotFound {
    #[response(
        status = 404,
        description = "No such event, a malformed id, or a draft the caller may not see"
    )]
    Missing(ErrorDetail),
}

/// The event does not take answers in its state.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NotOpen {
    #[response(
        status = 409,
        description = "The event is cancelled or a draft: no answers"
    )]
    Closed(ErrorDetail),
}

/// `If-None-Match` named the current version.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NotModified {
    #[response(
        status = 304,
        description = "Not modified: an If-None-Match tag is current. No body; the ETag header repeats the tag",
        headers(("ETag" = String, description = "The current tag"))
    )]
    Current,
}

/// `If-Match` named a version that is no longer current.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum PreconditionFailed {
    #[response(
        status = 412,
        description = "If-Match does not match: the event changed since the client read it; nothing was stored"
    )]
    Changed(ErrorDetail),
}

/// The database did not answer in time.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Unavailable {
    #[response(status = 503, description = "Database unavailable; retry")]
    Database(ErrorDetail),
}

/// `{}`.
#[derive(ToSchema)]
pub struct Empty {}

/// A probe's answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
    database: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/token/: `Authorization: Bearer <access>`",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rally",
        description = "Events, RSVPs and accounts. Errors follow Django REST Framework's shapes; \
                       tokens follow Simple JWT.",
    ),
    paths(
        accounts::routes::register,
        accounts::routes::me,
        accounts::routes::delete_me,
        accounts::routes::obtain,
        accounts::routes::refresh,
        accounts::routes::verify,
        accounts::routes::blacklist,
        accounts::routes::list_users,
        accounts::routes::update_user,
        accounts::sessions::change_password,
        accounts::recovery::request_reset,
        accounts::recovery::confirm_reset,
        accounts::recovery::resend_verification,
        accounts::recovery::confirm_verification,
        accounts::sessions::list,
        accounts::sessions::end,
        accounts::sessions::logout_all,
        mail::routes::status,
        mail::routes::retry,
        events::routes::list,
        events::routes::create,
        events::routes::detail,
        events::routes::put,
        events::routes::patch,
        events::routes::delete,
        events::routes::change_attendee_status,
        events::export::attendees_csv,
        events::co_organizers::list,
        events::co_organizers::add,
        events::co_organizers::remove,
        webhooks::routes::create,
        webhooks::routes::list,
        webhooks::routes::detail,
        webhooks::routes::update,
        webhooks::routes::remove,
        webhooks::routes::deliveries,
        webhooks::routes::redeliver,
        calendar::routes::event_ics,
        calendar::routes::create_token,
        calendar::routes::private_feed,
        calendar::routes::organizer_feed,
        health::healthz,
        health::readyz,
        schema,
    ),
    components(schemas(
        Me, UserOut, TokenPair, EventOut, EventDetail, AttendanceOut, AttendanceStatus,
        StoredAttendanceStatus, EventStatus, Visibility, EventDetails,
        AttendanceAnswer, RegisterRequest, TokenObtainRequest, RefreshTokenRequest,
        TokenVerifyRequest, PasswordConfirmation, EventWrite, EventPatch, AttendanceRequest,
        CoOrganizerRequest,
        ErrorDetail, TokenError, FieldErrors, BadRequest, Empty, Health, UserAdmin,
        UserFlagsPatch, OutboxStatus, FailedMail, Requeued, CalendarToken, PasswordChange,
        SessionOut, Ended, WebhookOut, DeliveryOut, WebhookCreate, WebhookPatch,
        WebhookEventType, PasswordResetRequest, PasswordResetConfirm, VerifyEmailConfirm,
        Detail,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Registration, the caller's account, password reset and email verification"),
        (name = "tokens", description = "Simple JWT: obtain, refresh (rotating), verify, blacklist"),
        (name = "sessions", description = "Sessions (refresh token families): list, end one, end all"),
        (name = "events", description = "Events and attendance"),
        (name = "calendars", description = "iCalendar (RFC 5545): one event, the caller's private feed and its token, an organizer's public feed"),
        (name = "webhooks", description = "Signed HTTPS callbacks for the caller's events, their delivery log, redelivery"),
        (name = "staff", description = "User administration and the mail outbox, for staff only"),
        (name = "operations", description = "Probes and this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub struct Document(pub serde_json::Value);

impl Document {
    pub fn build() -> Self {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let mut doc = serde_json::to_value(&doc).unwrap_or_default();
        document_idempotency_keys(&mut doc);
        Self(doc)
    }
}

/// The `Idempotency-Key` header and its 409 and 422 on every POST and PATCH: the
/// middleware (src/idempotency.rs) serves all of them, so they are added here rather than
/// repeated in each annotation. A 409 the operation already has keeps its description,
/// with this one appended.
fn document_idempotency_keys(doc: &mut serde_json::Value) {
    use serde_json::json;
    let parameter = json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "1 to 255 visible ASCII characters (a UUID, say). A repeat with the same \
            key by the same caller gets the first response again, with \
            `Idempotent-Replayed: true`; keys expire after 24 hours (SPEC.md §12).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255}
    });
    let detail =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}});
    let in_progress =
        "A request with this Idempotency-Key is still in progress; retry after `Retry-After`";
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        for method in ["post", "patch"] {
            let Some(op) = item.get_mut(method).and_then(|o| o.as_object_mut()) else {
                continue;
            };
            let params = op.entry("parameters").or_insert_with(|| json!([]));
            if let Some(params) = params.as_array_mut() {
                params.push(parameter.clone());
            }
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            match responses
                .get_mut("409")
                .and_then(|r| r.get_mut("description"))
            {
                Some(serde_json::Value::String(d)) => {
                    *d = format!("{d}; or: {in_progress}");
                }
                _ => {
                    responses.insert(
                        "409".into(),
                        json!({"description": in_progress, "content": detail.clone()}),
                    );
                }
            }
            responses.insert(
                "422".into(),
                json!({
                    "description": "This Idempotency-Key was used with a different request",
                    "content": detail.clone(),
                }),
            );
            // A malformed key is a 400 naming the header, also where the body has none.
            responses.entry("400").or_insert_with(|| {
                json!({
                    "description": "A malformed Idempotency-Key, named",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FieldErrors"}}},
                })
            });
        }
    }
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    get,
    path = "/api/schema/",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub(crate) async fn schema(doc: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().json(&doc.0)
}

/// `/api/schema/` and the docs page (Swagger UI, vendored into the binary).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(Document::build()))
        .service(resource("/api/schema/", &[Method::GET]).route(web::get().to(schema)))
        .service(web::resource("/api/docs").route(web::get().to(|| async {
            HttpResponse::MovedPermanently()
                .insert_header(("Location", "/api/docs/"))
                .finish()
        })))
        .service(
            SwaggerUi::new("/api/docs/{_:.*}").config(
                Config::new(["/api/schema/"])
                    // Swagger UI's default validator badge would call an outside server.
                    .validator_url("none")
                    .try_it_out_enabled(true)
                    .persist_authorization(false),
            ),
        );
}
