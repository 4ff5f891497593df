//! Writing an event's reminder rows when it is saved: one per offset, due that long
//! before `starts_at`. Pending rows are rewritten on every save that touches the start,
//! the offsets or the status; a row already sent is kept and never sent again.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::reminders;
use crate::events::types::{EventRow, PUBLISHED};

/// Replaces the event's pending reminders with those its row now asks for. Call it in the
/// transaction that saves the event.
pub fn reschedule(conn: &mut DbConn, event: &EventRow) -> QueryResult<()> {
    diesel::delete(
        reminders::table
            .filter(reminders::event_id.eq(&event.id))
            .filter(reminders::sent_at.is_null()),
    )
    .execute(conn)?;
    let Some(starts_at) = event.starts_at.filter(|_| event.status == PUBLISHED) else {
        return Ok(());
    };
    let sent: Vec<i64> = reminders::table
        .filter(reminders::event_id.eq(&event.id))
        .select(reminders::offset_seconds)
        .load(conn)?;
    let rows: Vec<_> = offsets(event)
        .into_iter()
        .filter(|offset| !sent.contains(offset))
        .map(|offset| {
            (
                reminders::event_id.eq(&event.id),
                reminders::offset_seconds.eq(offset),
                reminders::due_at.eq(due_at(starts_at, offset)),
            )
        })
        .collect();
    if !rows.is_empty() {
        crate::db::insert_many!(conn, reminders::table, rows);
    }
    Ok(())
}

/// The event's offsets in seconds; stored offsets are valid, anything else is skipped.
pub fn offsets(event: &EventRow) -> Vec<i64> {
    event
        .reminder_list()
        .iter()
        .filter_map(|raw| super::duration::parse(raw).ok())
        .collect()
}

fn due_at(starts_at: NaiveDateTime, offset_seconds: i64) -> NaiveDateTime {
    starts_at
        .checked_sub_signed(Duration::seconds(offset_seconds))
        .unwrap_or(NaiveDateTime::MIN)
}
