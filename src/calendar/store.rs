//! The calendar queries: each feed is a fixed number of them, whatever its size.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::ics::FEED_LIMIT;
use crate::accounts::types::UserRef;
use crate::db::DbConn;
use crate::db::schema::{attendances, calendar_tokens, events, users};
use crate::events::store::EventWithOrganizer;
use crate::events::types::{DRAFT, EventRow, PUBLIC};

#[derive(Debug, Insertable)]
#[diesel(table_name = calendar_tokens)]
struct NewCalendarToken<'a> {
    user_id: i64,
    token_sha256: &'a str,
    created_at: NaiveDateTime,
}

/// Stores `token_sha256` as the user's one feed token, replacing any earlier one: one
/// statement, so the old token stops working as the new one starts. Upserts are not in
/// Diesel's cross-backend subset, hence one arm per backend.
pub fn set_token(
    conn: &mut DbConn,
    user_id: i64,
    token_sha256: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let row = NewCalendarToken {
        user_id,
        token_sha256,
        created_at: now,
    };
    macro_rules! upsert {
        ($conn:expr) => {
            diesel::insert_into(calendar_tokens::table)
                .values(&row)
                .on_conflict(calendar_tokens::user_id)
                .do_update()
                .set((
                    calendar_tokens::token_sha256.eq(excluded(calendar_tokens::token_sha256)),
                    calendar_tokens::created_at.eq(excluded(calendar_tokens::created_at)),
                ))
                .execute($conn)
        };
    }
    match conn {
        DbConn::Sqlite(c) => upsert!(c)?,
        DbConn::Postgres(c) => upsert!(c)?,
    };
    Ok(())
}

/// The user a token hash belongs to (looked up by the hash's unique index). A
/// deactivated user's feed stops with their other credentials.
pub fn token_owner(conn: &mut DbConn, token_sha256: &str) -> QueryResult<Option<UserRef>> {
    calendar_tokens::table
        .inner_join(users::table)
        .filter(calendar_tokens::token_sha256.eq(token_sha256))
        .filter(users::is_active.eq(true))
        .select(UserRef::as_select())
        .first(conn)
        .optional()
}

/// The caller's stored answer to an event, if any.
pub fn answer_of(conn: &mut DbConn, event_id: &str, user_id: i64) -> QueryResult<Option<String>> {
    attendances::table
        .filter(attendances::event_id.eq(event_id))
        .filter(attendances::user_id.eq(user_id))
        .select(attendances::status)
        .first(conn)
        .optional()
}

/// The events `user_id` answered Going or Maybe, drafts left out, with the answer and
/// the organizer: one query, the most recent `FEED_LIMIT` by date.
pub fn answered_events(
    conn: &mut DbConn,
    user_id: i64,
) -> QueryResult<Vec<(String, EventWithOrganizer)>> {
    let rows: Vec<(String, EventRow, Option<UserRef>)> = attendances::table
        .inner_join(events::table.left_join(users::table))
        .filter(attendances::user_id.eq(user_id))
        .filter(attendances::status.eq_any(["Going", "Maybe"]))
        .filter(events::status.ne(DRAFT))
        .order((events::date.desc(), events::id.asc()))
        .limit(FEED_LIMIT)
        .select((
            attendances::status,
            EventRow::as_select(),
            Option::<UserRef>::as_select(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(answer, event, organizer)| (answer, (event, organizer)))
        .collect())
}

/// A user as events embed them.
pub fn user(conn: &mut DbConn, id: i64) -> QueryResult<Option<UserRef>> {
    users::table
        .find(id)
        .select(UserRef::as_select())
        .first(conn)
        .optional()
}

/// The organizer's listed events (published or cancelled, and public): the most recent
/// `FEED_LIMIT` by date.
pub fn listed_events_of(conn: &mut DbConn, organizer_id: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::organizer_id.eq(organizer_id))
        .filter(events::status.ne(DRAFT))
        .filter(events::visibility.eq(PUBLIC))
        .order((events::date.desc(), events::id.asc()))
        .limit(FEED_LIMIT)
        .select(EventRow::as_select())
        .load(conn)
}
