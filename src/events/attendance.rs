//! Answers under capacity: a `Going` answer to a full event is stored as `Waitlisted`,
//! and seats that free up go to the waitlist in arrival order, in the same transaction,
//! with a mail through the outbox. Each answer locks its event's row first (PostgreSQL:
//! `FOR UPDATE`; SQLite: the write transaction is already exclusive), so concurrent
//! answers to one event are decided one at a time and never overfill it.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::upsert::excluded;

use super::permissions::can_view;
use super::types::{CANCELLED, DRAFT, EventRow, NewAttendance, Viewer, WAITLISTED};
use crate::db::DbConn;
use crate::db::schema::{attendances, events, users};
use crate::error::ApiError;
use crate::mail::{message, outbox};

const GOING: &str = "Going";

/// The event's row, locked against concurrent answers and edits until the transaction ends.
pub fn lock_event(conn: &mut DbConn, id: &str) -> QueryResult<Option<EventRow>> {
    macro_rules! query {
        () => {
            events::table.find(id).select(EventRow::as_select())
        };
    }
    match conn {
        DbConn::Postgres(c) => query!().for_update().first(c).optional(),
        DbConn::Sqlite(c) => query!().first(c).optional(),
    }
}

/// How an answer was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: &'static str,
    /// 1-based place on the waitlist, when waitlisted.
    pub position: Option<i64>,
    /// Someone was promoted from the waitlist: the mail sender has work.
    pub promoted: bool,
    /// Webhook deliveries were queued: the webhook worker has work.
    pub hooked: bool,
}

/// Records `user_id`'s answer `wanted` (one of the three a client may give). Call inside
/// a write transaction.
pub fn answer(
    conn: &mut DbConn,
    event_id: &str,
    user_id: i64,
    viewer: Viewer,
    wanted: &'static str,
) -> Result<Stored, ApiError> {
    let event = lock_event(conn, event_id)?.ok_or(ApiError::NotFound)?;
    if event.status == DRAFT {
        // Only a draft is hidden from some: a co-organizer sees it (409, as the organizer
        // gets), anyone else does not (404). Whether the caller co-organizes costs a query,
        // so only a draft asks.
        let viewer = super::store::viewer_for(conn, viewer, &event)?;
        return Err(if can_view(viewer, &event) {
            ApiError::Conflict(
                "This event is a draft; it takes answers once it is published.".into(),
            )
        } else {
            ApiError::NotFound
        });
    }
    if event.status == CANCELLED {
        return Err(ApiError::Conflict(
            "This event is cancelled; it takes no new answers.".into(),
        ));
    }
    let previous: Option<(String, Option<i64>)> = attendances::table
        .filter(attendances::event_id.eq(event_id))
        .filter(attendances::user_id.eq(user_id))
        .select((attendances::status, attendances::waitlist_seq))
        .first(conn)
        .optional()?;
    let (status, seq) = match (wanted, &previous) {
        (GOING, Some((s, _))) if s == GOING => (GOING, None),
        // Asking again keeps one's place in the queue.
        (GOING, Some((s, seq))) if s == WAITLISTED => (WAITLISTED, *seq),
        (GOING, _) => match event.capacity {
            Some(seats) if going(conn, event_id)? >= i64::from(seats) => {
                (WAITLISTED, Some(next_seq(conn, event_id)?))
            }
            _ => (GOING, None),
        },
        (wanted, _) => (wanted, None),
    };
    let old_status = previous.as_ref().map(|(s, _)| s.as_str());
    // The same answer again changes nothing: no write, no webhook, no sync stamp.
    let changed = old_status != Some(status);
    let mut hooked = false;
    if changed {
        upsert(conn, event_id, user_id, status, seq)?;
        hooked =
            crate::webhooks::attendance_changed(conn, &event, user_id, old_status, status)? > 0;
        // The event's counts changed: a sync must return it again.
        super::sync::touch(conn, &[event_id])?;
    }
    let left_a_seat = old_status == Some(GOING) && status != GOING;
    let promoted = left_a_seat && promote(conn, &event)? > 0;
    let position = match seq {
        Some(seq) if status == WAITLISTED => Some(
            attendances::table
                .filter(attendances::event_id.eq(event_id))
                .filter(attendances::status.eq(WAITLISTED))
                .filter(attendances::waitlist_seq.le(seq))
                .count()
                .get_result(conn)?,
        ),
        _ => None,
    };
    Ok(Stored {
        status,
        position,
        promoted,
        // A promotion may have queued `waitlist.promoted` deliveries too.
        hooked: hooked || promoted,
    })
}

fn going(conn: &mut DbConn, event_id: &str) -> QueryResult<i64> {
    attendances::table
        .filter(attendances::event_id.eq(event_id))
        .filter(attendances::status.eq(GOING))
        .count()
        .get_result(conn)
}

/// The next place in the event's queue. Only called with the event locked.
fn next_seq(conn: &mut DbConn, event_id: &str) -> QueryResult<i64> {
    let last: Option<i64> = attendances::table
        .filter(attendances::event_id.eq(event_id))
        .select(diesel::dsl::max(attendances::waitlist_seq))
        .first(conn)?;
    Ok(last.unwrap_or(0) + 1)
}

/// One statement, so concurrent answers by one user leave one row. Upserts are not in
/// Diesel's cross-backend subset, hence one arm per backend.
fn upsert(
    conn: &mut DbConn,
    event_id: &str,
    user_id: i64,
    status: &str,
    waitlist_seq: Option<i64>,
) -> Result<(), ApiError> {
    let row = NewAttendance {
        event_id,
        user_id,
        status,
        waitlist_seq,
    };
    macro_rules! upsert {
        ($conn:expr) => {
            diesel::insert_into(attendances::table)
                .values(&row)
                .on_conflict((attendances::event_id, attendances::user_id))
                .do_update()
                .set((
                    attendances::status.eq(excluded(attendances::status)),
                    attendances::waitlist_seq.eq(excluded(attendances::waitlist_seq)),
                ))
                .execute($conn)
        };
    }
    let result = match conn {
        DbConn::Sqlite(c) => upsert!(c),
        DbConn::Postgres(c) => upsert!(c),
    };
    match result {
        Ok(_) => Ok(()),
        // The event was deleted since it was read (SQLite only; PostgreSQL holds its lock).
        Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
            Err(ApiError::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives free seats to the waitlist, first come first served, and mails each person
/// promoted. Call with the event locked, after any change that may free a seat. Returns
/// how many were promoted.
pub fn promote(conn: &mut DbConn, event: &EventRow) -> QueryResult<usize> {
    if event.status != super::types::PUBLISHED {
        return Ok(0);
    }
    let free = match event.capacity {
        Some(c) => (i64::from(c) - going(conn, &event.id)?).max(0),
        None => i64::MAX,
    };
    if free == 0 {
        return Ok(0);
    }
    let next: Vec<(i64, String)> = attendances::table
        .inner_join(users::table)
        .filter(attendances::event_id.eq(&event.id))
        .filter(attendances::status.eq(WAITLISTED))
        .order((attendances::waitlist_seq.asc(), attendances::id.asc()))
        .limit(free)
        .select((attendances::id, users::email))
        .load(conn)?;
    if next.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = next.iter().map(|(id, _)| *id).collect();
    diesel::update(attendances::table.filter(attendances::id.eq_any(&ids)))
        .set((
            attendances::status.eq(GOING),
            attendances::waitlist_seq.eq(None::<i64>),
        ))
        .execute(conn)?;
    let mails: Vec<_> = next
        .iter()
        .map(|(_, email)| message::waitlist_promoted(email, event))
        .collect();
    outbox::enqueue_many(conn, &mails)?;
    crate::webhooks::waitlist_promoted(conn, event, &ids)?;
    Ok(next.len())
}

/// The events with a capacity where the user holds a seat (is Going): deleting the user
/// frees those seats.
pub fn seats_held_by(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<String>> {
    attendances::table
        .inner_join(events::table)
        .filter(attendances::user_id.eq(user_id))
        .filter(attendances::status.eq(GOING))
        .filter(events::capacity.is_not_null())
        .select(attendances::event_id)
        .load(conn)
}

/// The addresses of everyone Going, Maybe or Waitlisted: those a change concerns.
pub fn interested_emails(conn: &mut DbConn, event_id: &str) -> QueryResult<Vec<String>> {
    attendances::table
        .inner_join(users::table)
        .filter(attendances::event_id.eq(event_id))
        .filter(attendances::status.eq_any([GOING, "Maybe", WAITLISTED]))
        .order(attendances::id.asc())
        .select(users::email)
        .load(conn)
}
