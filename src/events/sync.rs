//! Incremental sync (SPEC.md §15): every change to an event stamps `events.updated_at`,
//! a delete leaves a tombstone, and `GET /api/events/?updated_since=` returns both in
//! change order with a cursor that no later-committing change can be older than.
//!
//! The cursor's guarantee: every change not visible to a sync read carries a stamp at
//! or after the cursor that read returns, so the next sync from it finds the change.
//! - SQLite: the read runs inside `BEGIN IMMEDIATE`, so no writer is in flight, and the
//!   cursor is the clock then; writers stamp while holding the same lock, later.
//! - PostgreSQL: writers stamp with the server's `clock_timestamp()` after their
//!   transaction has an id; the read takes `least(now(), the oldest xact_start of the
//!   other transactions holding an id)` before it reads any data. A writer without an
//!   id yet stamps later than that `now()`; a writer with one started before its stamp.

use std::time::Duration;

use chrono::{NaiveDateTime, SecondsFormat, Timelike, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Timestamp;
use serde::Serialize;

use super::listing::ListQuery;
use super::store::{self, CountsById, EventWithOrganizer};
use super::types::{EventOut, EventRow, Viewer};
use crate::db::schema::{event_tombstones, events};
use crate::db::{self, DbConn};

/// The response header carrying the cursor for the next sync.
pub const CURSOR_HEADER: &str = "x-sync-cursor";

/// The server's clock, as a naive UTC timestamp, once the transaction has an id (the
/// `CASE` evaluates `pg_current_xact_id()`, which assigns one, before the clock): a
/// concurrent sync read either sees this transaction in `pg_stat_activity` or took its
/// own `now()` before this stamp.
const PG_STAMP: &str = "(CASE WHEN pg_current_xact_id() IS NOT NULL \
     THEN clock_timestamp() AT TIME ZONE 'UTC' END)";

/// Now, to the microsecond: what PostgreSQL keeps, and what the cursor is written with.
pub fn now_micros() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A change time as the API writes it: RFC 3339, UTC, microseconds.
pub fn format_time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Sets `updated_at` of the events `$target` selects: PostgreSQL's stamp (see
/// `PG_STAMP`), or the clock on SQLite, where this writer holds the only write lock.
macro_rules! stamp {
    ($conn:expr, $target:expr) => {
        match $conn {
            DbConn::Postgres(c) => diesel::update($target)
                .set(events::updated_at.eq(sql::<Timestamp>(PG_STAMP)))
                .execute(c)?,
            DbConn::Sqlite(c) => diesel::update($target)
                .set(events::updated_at.eq(now_micros()))
                .execute(c)?,
        }
    };
}

/// Marks events as changed now (their row or their attendances). Call in the write
/// transaction, after the change's own writes.
pub fn touch(conn: &mut DbConn, ids: &[&str]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    stamp!(conn, events::table.filter(events::id.eq_any(ids)));
    Ok(())
}

/// Marks as changed every event a user organizes or has answered: deleting the user
/// changes them all (the organizer becomes null, counts drop). One statement, before the
/// delete (the answers go with the user), whatever the number of events.
pub fn touch_events_of(conn: &mut DbConn, user_id: i64) -> QueryResult<()> {
    use crate::db::schema::attendances;
    stamp!(
        conn,
        events::table.filter(
            events::organizer_id.eq(user_id).or(events::id.eq_any(
                attendances::table
                    .filter(attendances::user_id.eq(user_id))
                    .select(attendances::event_id),
            ))
        )
    );
    Ok(())
}

/// The oldest change time still answerable: tombstones before it may be gone.
pub fn retention_cutoff(retention: Duration) -> NaiveDateTime {
    let kept = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    now_micros()
        .checked_sub_signed(kept)
        .unwrap_or(NaiveDateTime::MIN)
}

/// Records a deleted event's tombstone (call in the delete's transaction, with the
/// event locked), and drops tombstones past retention: they only accumulate through
/// deletes, so pruning here bounds the table without a background job.
pub fn bury(conn: &mut DbConn, event: &EventRow, retention: Duration) -> QueryResult<()> {
    diesel::delete(
        event_tombstones::table
            .filter(event_tombstones::deleted_at.lt(retention_cutoff(retention))),
    )
    .execute(conn)?;
    let row = (
        event_tombstones::event_id.eq(&event.id),
        event_tombstones::organizer_id.eq(event.organizer_id),
        event_tombstones::listed.eq(event.is_listed()),
    );
    match conn {
        DbConn::Postgres(c) => diesel::insert_into(event_tombstones::table)
            .values((
                row,
                event_tombstones::deleted_at.eq(sql::<Timestamp>(PG_STAMP)),
            ))
            .execute(c)?,
        DbConn::Sqlite(c) => diesel::insert_into(event_tombstones::table)
            .values((row, event_tombstones::deleted_at.eq(now_micros())))
            .execute(c)?,
    };
    if !event.is_listed() {
        // Its co-organizers listed it too; their rows go with the event.
        use crate::db::schema::{co_organizers, event_tombstone_viewers as viewers};
        diesel::insert_into(viewers::table)
            .values(
                co_organizers::table
                    .filter(co_organizers::event_id.eq(&event.id))
                    .select((co_organizers::event_id, co_organizers::user_id)),
            )
            .into_columns((viewers::event_id, viewers::user_id))
            .execute(conn)?;
    }
    Ok(())
}

/// One change, in change order.
pub enum Change {
    Live(Box<EventWithOrganizer>, NaiveDateTime),
    Gone(String, NaiveDateTime),
}

impl Change {
    fn key(&self) -> (NaiveDateTime, &str) {
        match self {
            Change::Live(live, t) => (*t, &live.0.id),
            Change::Gone(id, t) => (*t, id),
        }
    }
}

/// A page of changes, the live events' counts, and the cursor for the next sync.
pub struct SyncPage {
    pub changes: Vec<Change>,
    pub counts: CountsById,
    pub cursor: NaiveDateTime,
}

/// The changes since `since` that `q.viewer` may see, at most `q.limit` (more when
/// several share the last one's change time, so that paging always moves on).
pub fn read(conn: &mut DbConn, q: &ListQuery, since: NaiveDateTime) -> QueryResult<SyncPage> {
    match conn {
        // No writer is in flight while this lock is held; writers stamp after it.
        DbConn::Sqlite(_) => db::write_tx(conn, |conn| page(conn, q, since, now_micros())),
        DbConn::Postgres(c) => {
            let safe = pg_safe_cursor(c)?;
            page(conn, q, since, safe)
        }
    }
}

/// `least(now(), the oldest start of another transaction holding an id)`, read in its
/// own statement, before the data (each later statement's snapshot sees every
/// transaction that ended before this one ran).
fn pg_safe_cursor(c: &mut diesel::pg::PgConnection) -> QueryResult<NaiveDateTime> {
    #[derive(QueryableByName)]
    struct Cursor {
        #[diesel(sql_type = Timestamp)]
        cursor: NaiveDateTime,
    }
    Ok(diesel::sql_query(
        "SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_xid IS NOT NULL)) AT TIME ZONE 'UTC' AS cursor",
    )
    .get_result::<Cursor>(c)?
    .cursor)
}

fn page(
    conn: &mut DbConn,
    q: &ListQuery,
    since: NaiveDateTime,
    safe: NaiveDateTime,
) -> QueryResult<SyncPage> {
    let limit = q.limit;
    let mut changes = merged(conn, q, since, None, Some(limit))?;
    let full = changes.len() as i64 >= limit;
    let cursor = if full {
        let last = changes.last().map_or(since, |c| c.key().0);
        // Every change stamped `last` joins the page, so the next page may start just
        // after it: a run of equal stamps longer than `limit` cannot stall the paging.
        // No change still in flight is older than `safe`, so the cursor stays at or
        // below it.
        changes = merged(conn, q, since, Some(last), None)?;
        (last + chrono::Duration::microseconds(1)).min(safe)
    } else {
        safe
    };
    let ids: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Live(live, _) => Some(live.0.id.as_str()),
            Change::Gone(..) => None,
        })
        .collect();
    let counts = store::counts_of(conn, &ids)?;
    Ok(SyncPage {
        changes,
        counts,
        cursor,
    })
}

/// Live events and tombstones with a change time in `since..=until`, merged in
/// (change time, id) order, each side at most `limit`.
fn merged(
    conn: &mut DbConn,
    q: &ListQuery,
    since: NaiveDateTime,
    until: Option<NaiveDateTime>,
    limit: Option<i64>,
) -> QueryResult<Vec<Change>> {
    let live = store::changed_since(conn, q, since, until, limit)?;
    let gone = store::deleted_since(conn, q.viewer, since, until, limit)?;
    let mut changes: Vec<Change> = live
        .into_iter()
        .map(|(event, t, organizer)| Change::Live(Box::new((event, organizer)), t))
        .chain(gone.into_iter().map(|(id, t)| Change::Gone(id, t)))
        .collect();
    changes.sort_by(|a, b| a.key().cmp(&b.key()));
    if let Some(limit) = limit {
        changes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(changes)
}

/// An event in a list: the event, and in a sync response its change time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncedEvent {
    #[serde(flatten)]
    pub event: EventOut,
    /// Sync responses (`updated_since`) only: when the event or its attendances last
    /// changed, RFC 3339, UTC, microseconds **(beyond, §15)**.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A deleted event in a sync response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tombstone {
    #[schema(format = Uuid)]
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// RFC 3339, UTC, microseconds.
    #[schema(format = DateTime)]
    pub deleted_at: String,
}

/// An item of a list: an event (to upsert, in a sync), or in a sync response a deleted
/// event to forget.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SyncItem {
    Event(Box<SyncedEvent>),
    Deleted(Tombstone),
}

impl SyncPage {
    /// The response body's items, in change order.
    pub fn items(mut self, viewer: Viewer) -> Vec<SyncItem> {
        self.changes
            .into_iter()
            .map(|change| match change {
                Change::Live(live, t) => {
                    let (event, organizer) = *live;
                    let n = self.counts.remove(&event.id).unwrap_or_default();
                    SyncItem::Event(Box::new(SyncedEvent {
                        event: event.show(organizer, viewer, n),
                        updated_at: Some(format_time(t)),
                    }))
                }
                Change::Gone(id, t) => SyncItem::Deleted(Tombstone {
                    id,
                    deleted: true,
                    deleted_at: format_time(t),
                }),
            })
            .collect()
    }
}
