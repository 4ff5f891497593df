//! `GET /api/events/{id}/attendees.csv`: an event's attendances as a spreadsheet file
//! for its organizer, co-organizers and staff. Two queries whatever the size; the rows are written out
//! in blocks as the response streams, so a big event never becomes one giant string.

use std::convert::Infallible;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use diesel::prelude::*;

use super::permissions::can_change;
use super::routes::event_id;
use super::store;
use super::types::{Viewer, WAITLISTED};
use crate::accounts::extract::AuthUser;
use crate::db::schema::{attendances, users};
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::startup::AppState;

pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8";
/// The first line of the file.
pub const HEADER: &str = "username,email,status,waitlist_position";
/// Rows per streamed chunk.
const BLOCK: usize = 500;
/// Lets Excel recognise the file as UTF-8 (without it, non-ASCII names are garbled).
const BOM: &str = "\u{feff}";

/// One attendance as exported.
#[derive(Debug, Queryable)]
struct Row {
    username: String,
    email: String,
    status: String,
}

/// An event's attendances with their users: Going, Maybe, Waitlisted (in queue order),
/// Not Going, each in the order the answers were first given. One query.
fn rows(conn: &mut DbConn, event_id: &str) -> QueryResult<Vec<Row>> {
    // A constant expression over the status column, never client text.
    let rank = diesel::dsl::sql::<diesel::sql_types::Integer>(
        "CASE attendances.status WHEN 'Going' THEN 0 WHEN 'Maybe' THEN 1 \
         WHEN 'Waitlisted' THEN 2 ELSE 3 END",
    );
    attendances::table
        .inner_join(users::table)
        .filter(attendances::event_id.eq(event_id))
        .order((
            rank.asc(),
            attendances::waitlist_seq.asc(),
            attendances::id.asc(),
        ))
        .select((users::username, users::email, attendances::status))
        .load(conn)
}

/// Appends one RFC 4180 field. A value a spreadsheet would read as a formula (it starts
/// with `=`, `+`, `-`, `@`, TAB or CR) gets a leading `'`, as OWASP advises against CSV
/// injection; a value holding `,`, `"`, CR or LF is quoted, its quotes doubled.
pub fn push_field(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = value.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// Renders a block of rows; `position` counts waitlisted rows across blocks.
fn render_block(rows: &[Row], position: &mut i64) -> String {
    let mut out = String::with_capacity(rows.len() * 64);
    for row in rows {
        push_field(&mut out, &row.username);
        out.push(',');
        push_field(&mut out, &row.email);
        out.push(',');
        push_field(&mut out, &row.status);
        out.push(',');
        if row.status == WAITLISTED {
            *position += 1;
            out.push_str(&position.to_string());
        }
        out.push_str("\r\n");
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/attendees.csv",
    tag = "events",
    summary = "The event's attendances as a CSV file (organizer, co-organizer or staff).",
    description = "UTF-8 with a byte order mark, CRLF line ends, RFC 4180 quoting. Columns: \
                   `username,email,status,waitlist_position`; rows Going, Maybe, Waitlisted \
                   (queue order, position from 1), then Not Going. A cell starting with \
                   `=`, `+`, `-`, `@`, TAB or CR is prefixed with `'` so spreadsheets do not \
                   run it as a formula.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event's UUID")),
    responses(
        (status = 200, description = "The attendees", content_type = "text/csv", body = String,
         headers(("Content-Disposition" = String, description = "attachment; filename=\"attendees-<id>.csv\""))),
        crate::openapi::Unauthorized,
        crate::openapi::Forbidden,
        crate::openapi::EventNotFound,
        crate::openapi::Unavailable,
    )
)]
pub(crate) async fn attendees_csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let user = user.0;
    let lookup = id.clone();
    let rows = db::run(&state.pool, move |conn| {
        let (event, viewer) = store::visible_event(conn, &lookup, Viewer::of(Some(&user)), false)?;
        if !can_change(viewer, event.organizer_id) {
            return Err(ApiError::PermissionDenied);
        }
        Ok(rows(conn, &lookup)?)
    })
    .await?;
    let head = std::iter::once(format!("{BOM}{HEADER}\r\n"));
    let mut position = 0;
    let mut rest = rows.into_iter().peekable();
    // Each block is rendered only when the client is ready for it.
    let blocks = std::iter::from_fn(move || {
        rest.peek()?;
        let block: Vec<Row> = rest.by_ref().take(BLOCK).collect();
        Some(render_block(&block, &mut position))
    });
    let chunks = head
        .chain(blocks)
        .map(|s| Ok::<_, Infallible>(Bytes::from(s)));
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"attendees-{id}.csv\""),
        ))
        // Email addresses: no shared cache may keep them.
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .streaming(futures_util::stream::iter(chunks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &str) -> String {
        let mut out = String::new();
        push_field(&mut out, v);
        out
    }

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(field("ada"), "ada");
        assert_eq!(field("Zoë"), "Zoë");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("O\"Brien"), "\"O\"\"Brien\"");
        assert_eq!(field("line\r\nbreak"), "\"line\r\nbreak\"");
        assert_eq!(field("=1+2"), "'=1+2");
        assert_eq!(field("-x"), "'-x");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("+1"), "'+1");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(field("=1,2"), "\"'=1,2\"");
        assert_eq!(field(""), "");
    }
}
