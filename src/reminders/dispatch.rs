//! Turning due reminders into outbox mails. The mail worker calls this before each claim,
//! so a reminder that fell due while rally was down goes out as soon as it is back, once:
//! the reminder is marked and its mails are written in one transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{attendances, events, reminders, users};
use crate::db::{DbConn, write_tx};
use crate::events::types::{EventRow, PUBLISHED};
use crate::mail::{message, outbox};

/// Reminders handled per transaction.
const BATCH: i64 = 100;

/// Writes the mails of every reminder due at `now`, to those Going; a reminder whose
/// event has started, or is no longer published, is marked without mail. Returns the
/// number of mails written.
pub fn queue_due(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    let mut written = 0;
    loop {
        let (handled, mails) = write_tx(conn, |conn| queue_batch(conn, now))?;
        written += mails;
        if handled < BATCH as usize {
            return Ok(written);
        }
    }
}

fn queue_batch(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<(usize, usize)> {
    macro_rules! due {
        () => {
            reminders::table
                .filter(reminders::sent_at.is_null())
                .filter(reminders::due_at.le(now))
                .order((reminders::due_at.asc(), reminders::id.asc()))
                .limit(BATCH)
                .select((
                    reminders::id,
                    reminders::event_id,
                    reminders::offset_seconds,
                ))
        };
    }
    // Several processes on one PostgreSQL database each take different reminders;
    // SQLite's write transaction is exclusive already.
    let due: Vec<(i64, String, i64)> = match conn {
        DbConn::Postgres(c) => due!().for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => due!().load(c)?,
    };
    let mut mails = Vec::new();
    for (_, event_id, offset) in &due {
        let event: Option<EventRow> = events::table
            .find(event_id)
            .select(EventRow::as_select())
            .first(conn)
            .optional()?;
        let Some(event) =
            event.filter(|e| e.status == PUBLISHED && e.starts_at.is_some_and(|start| start > now))
        else {
            continue;
        };
        let going: Vec<String> = attendances::table
            .inner_join(users::table)
            .filter(attendances::event_id.eq(event_id))
            .filter(attendances::status.eq("Going"))
            .order(attendances::id.asc())
            .select(users::email)
            .load(conn)?;
        mails.extend(
            going
                .iter()
                .map(|to| message::reminder(to, &event, *offset)),
        );
    }
    outbox::enqueue_many(conn, &mails)?;
    let ids: Vec<i64> = due.iter().map(|(id, _, _)| *id).collect();
    diesel::update(reminders::table.filter(reminders::id.eq_any(&ids)))
        .set(reminders::sent_at.eq(Some(now)))
        .execute(conn)?;
    Ok((due.len(), mails.len()))
}
