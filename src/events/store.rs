//! The event and attendance queries. Each request does a fixed number of them, whatever
//! the page size or the number of attendees.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::upsert::excluded;

use super::listing::{ListQuery, Sort, SortKey};
use super::types::{
    AttendanceCounts, EventChanges, EventOut, EventRow, NewAttendance, NewEvent, Viewer,
};
use crate::accounts::types::UserRef;
use crate::db::DbConn;
use crate::db::schema::{attendances, events, users};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// `%`, `_` and the escape character itself match literally in a search term.
pub fn like_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Applies the list filters to a boxed query over `events` (joined or not).
macro_rules! filtered {
    ($query:expr, $q:expr) => {{
        let q: &ListQuery = $q;
        let mut query = $query;
        for term in &q.search {
            query = query.filter(
                lower(events::name)
                    .like(lower(like_pattern(term)))
                    .escape('\\'),
            );
        }
        if let Some(id) = q.organizer {
            query = query.filter(events::organizer_id.eq(id));
        }
        if let Some(d) = q.date_after {
            query = query.filter(events::date.ge(d));
        }
        if let Some(d) = q.date_before {
            query = query.filter(events::date.le(d));
        }
        query
    }};
}

/// An event with its organizer, if it still has one.
pub type EventWithOrganizer = (EventRow, Option<UserRef>);

/// An event as a list shows it: only the columns shown are read (decoding the two
/// timestamps was a sixth of a SQLite list's CPU).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct ListedEvent {
    pub id: String,
    pub name: String,
    pub date: NaiveDate,
    pub organizer_id: Option<i64>,
}

impl ListedEvent {
    /// The event as the API shows it (`EventRow::show` shows its row through this).
    pub fn show(
        self,
        organizer: Option<UserRef>,
        viewer: Viewer,
        counts: AttendanceCounts,
    ) -> EventOut {
        EventOut::new(
            self.id,
            self.name,
            self.date,
            self.organizer_id,
            organizer,
            viewer,
            counts,
        )
    }
}

/// The number of an event's attendances with one status, for `ordering`: a correlated
/// count over the `(event_id, user_id)` index. Only an ordering by a count pays for it.
fn status_count(status: &'static str) -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    debug_assert!(super::types::STATUSES.contains(&status));
    // `status` is one of the constant STATUSES, never client text.
    diesel::dsl::sql(&format!(
        "(SELECT COUNT(*) FROM attendances a WHERE a.event_id = events.id AND a.status = '{status}')"
    ))
}

/// A listed event with its organizer, if it still has one.
pub type ListedWithOrganizer = (ListedEvent, Option<UserRef>);

diesel::table! {
    /// The number of events, kept by triggers on `events` (migration
    /// `2026-11-21-000003_list_indexes`): one row on SQLite, a few shards on PostgreSQL
    /// so that concurrent inserts do not queue on one row. Their sum is the total.
    event_counts (shard) {
        shard -> Integer,
        n -> BigInt,
    }
}

fn unfiltered(q: &ListQuery) -> bool {
    q.search.is_empty()
        && q.organizer.is_none()
        && q.date_after.is_none()
        && q.date_before.is_none()
}

/// The events of one page, joined with their organizers, in the order asked for (the
/// id breaks ties, so pages never overlap or skip): a boxed query to select from.
macro_rules! page {
    ($q:expr) => {{
        let q: &ListQuery = $q;
        let mut page = filtered!(events::table.left_join(users::table).into_boxed(), q);
        let ordering: &[Sort] = if q.ordering.is_empty() {
            &[Sort {
                key: SortKey::Date,
                descending: false,
            }]
        } else {
            &q.ordering
        };
        for sort in ordering {
            page = match (sort.key, sort.descending) {
                (SortKey::Date, false) => page.then_order_by(events::date.asc()),
                (SortKey::Date, true) => page.then_order_by(events::date.desc()),
                (SortKey::Name, false) => page.then_order_by(events::name.asc()),
                (SortKey::Name, true) => page.then_order_by(events::name.desc()),
                (SortKey::Organizer, descending) => {
                    // Events whose organizer was deleted come last in both directions, the
                    // same on both backends (they sort NULL differently).
                    let page = page.then_order_by(users::username.is_null().asc());
                    if descending {
                        page.then_order_by(users::username.desc())
                    } else {
                        page.then_order_by(users::username.asc())
                    }
                }
                (key, descending) => {
                    let count = status_count(match key {
                        SortKey::GoingCount => "Going",
                        SortKey::MaybeCount => "Maybe",
                        _ => "Not Going",
                    });
                    if descending {
                        page.then_order_by(count.desc())
                    } else {
                        page.then_order_by(count.asc())
                    }
                }
            };
        }
        page.then_order_by(events::id.asc())
            .limit(q.limit)
            .offset(q.offset)
    }};
}

/// One page of events with their organizers and attendance counts, and the total
/// matching: three queries, whatever the page size. The total of the whole table is read
/// from `event_counts` (counting a million rows took tens of milliseconds); a filtered
/// total is counted, from the indexes where they serve.
pub fn list(
    conn: &mut DbConn,
    q: &ListQuery,
) -> QueryResult<(Vec<ListedWithOrganizer>, i64, CountsById)> {
    let rows = page!(q)
        .select((ListedEvent::as_select(), Option::<UserRef>::as_select()))
        .load(conn)?;
    let total = if unfiltered(q) {
        event_counts::table
            .select(event_counts::n)
            .load::<i64>(conn)?
            .into_iter()
            .sum()
    } else {
        filtered!(events::table.into_boxed(), q)
            .count()
            .get_result(conn)?
    };
    // The page's ids as a subquery rather than a list of binds: a statement with one bind
    // per id cannot be kept prepared, and parsing and planning it each time was a third
    // of a SQLite list's cost.
    let counts = if rows.is_empty() {
        CountsById::new()
    } else {
        // Boxed per backend: Diesel's MultiConnection cannot nest a boxed subquery.
        macro_rules! page_counts {
            () => {
                attendances::table
                    .group_by((attendances::event_id, attendances::status))
                    .select((
                        attendances::event_id,
                        attendances::status,
                        diesel::dsl::count_star(),
                    ))
                    .into_boxed()
                    .filter(attendances::event_id.eq_any(page!(q).select(events::id)))
            };
        }
        grouped_counts(match conn {
            DbConn::Sqlite(c) => page_counts!().load(c)?,
            DbConn::Postgres(c) => page_counts!().load(c)?,
        })
    };
    Ok((rows, total, counts))
}

/// Attendance counts by event id; an event with no attendances is absent.
pub type CountsById = std::collections::HashMap<String, AttendanceCounts>;

fn grouped_counts(rows: Vec<(String, String, i64)>) -> CountsById {
    let mut counts = CountsById::new();
    for (event_id, status, n) in rows {
        counts.entry(event_id).or_default().add(&status, n);
    }
    counts
}

/// The attendance counts of the given events, in one grouped query.
pub fn counts_of(conn: &mut DbConn, ids: &[&str]) -> QueryResult<CountsById> {
    if ids.is_empty() {
        return Ok(CountsById::new());
    }
    Ok(grouped_counts(
        attendances::table
            .filter(attendances::event_id.eq_any(ids))
            .group_by((attendances::event_id, attendances::status))
            .select((
                attendances::event_id,
                attendances::status,
                diesel::dsl::count_star(),
            ))
            .load(conn)?,
    ))
}

/// An event with its organizer.
pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<EventWithOrganizer>> {
    events::table
        .left_join(users::table)
        .filter(events::id.eq(id))
        .select((EventRow::as_select(), Option::<UserRef>::as_select()))
        .first(conn)
        .optional()
}

pub fn exists(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(events::table.filter(events::id.eq(id)))).get_result(conn)
}

/// An event's attendances with their users, oldest answer first.
pub fn attendances_of(conn: &mut DbConn, id: &str) -> QueryResult<Vec<(String, UserRef)>> {
    attendances::table
        .inner_join(users::table)
        .filter(attendances::event_id.eq(id))
        .order(attendances::id.asc())
        .select((attendances::status, UserRef::as_select()))
        .load(conn)
}

pub fn insert(conn: &mut DbConn, new: &NewEvent<'_>) -> QueryResult<usize> {
    diesel::insert_into(events::table).values(new).execute(conn)
}

pub fn update(conn: &mut DbConn, id: &str, changes: &EventChanges) -> QueryResult<usize> {
    diesel::update(events::table.find(id))
        .set(changes)
        .execute(conn)
}

pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    diesel::delete(events::table.find(id)).execute(conn)
}

/// Sets the caller's answer in one statement (`INSERT … ON CONFLICT DO UPDATE`), so
/// concurrent answers by one user leave exactly one row. `Ok(false)` when the event is
/// gone. Upserts are not in Diesel's cross-backend subset, hence one arm per backend.
pub fn upsert_attendance(conn: &mut DbConn, row: &NewAttendance<'_>) -> QueryResult<bool> {
    macro_rules! upsert {
        ($conn:expr) => {
            diesel::insert_into(attendances::table)
                .values(row)
                .on_conflict((attendances::event_id, attendances::user_id))
                .do_update()
                .set(attendances::status.eq(excluded(attendances::status)))
                .execute($conn)
        };
    }
    let result = match conn {
        DbConn::Sqlite(c) => upsert!(c),
        DbConn::Postgres(c) => upsert!(c),
    };
    match result {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
