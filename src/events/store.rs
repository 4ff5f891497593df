//! The event and attendance queries. Each request does a fixed number of them, whatever
//! the page size or the number of attendees.

use diesel::prelude::*;

use super::listing::{ListQuery, Sort, SortKey};
use super::types::{AttendanceCounts, EventChanges, EventRow, NewEvent, Viewer};
use crate::accounts::types::UserRef;
use crate::db::DbConn;
use crate::db::schema::{attendances, co_organizers, events, users};

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
        if let Some(t) = q.starts_after {
            query = query.filter(events::starts_at.ge(t));
        }
        if let Some(t) = q.starts_before {
            query = query.filter(events::starts_at.le(t));
        }
        // Drafts and unlisted events are listed only for their organizer, their
        // co-organizers and staff.
        if !q.viewer.is_staff {
            let listed = events::status
                .ne(super::types::DRAFT)
                .and(events::visibility.eq(super::types::PUBLIC));
            query = match q.viewer.id {
                Some(id) => query.filter(
                    listed
                        .or(events::organizer_id.eq(id))
                        .or(events::id.eq_any(co_organized_by(id))),
                ),
                None => query.filter(listed),
            };
        }
        query
    }};
}

/// The ids of the events `user_id` co-organizes, as a subquery.
fn co_organized_by(
    user_id: i64,
) -> diesel::dsl::Select<
    diesel::dsl::Filter<co_organizers::table, diesel::dsl::Eq<co_organizers::user_id, i64>>,
    co_organizers::event_id,
> {
    co_organizers::table
        .filter(co_organizers::user_id.eq(user_id))
        .select(co_organizers::event_id)
}

/// The viewer as they stand to this one event: a co-organizer or not. One query, and only
/// for a signed-in caller who is neither staff nor the organizer (for them it changes
/// nothing).
pub fn viewer_for(conn: &mut DbConn, viewer: Viewer, event: &EventRow) -> QueryResult<Viewer> {
    let Some(id) = viewer.id else {
        return Ok(viewer);
    };
    if viewer.is_staff || viewer.organizes(event.organizer_id) {
        return Ok(viewer);
    }
    let co_organizer = diesel::select(diesel::dsl::exists(
        co_organizers::table.find((&event.id, id)),
    ))
    .get_result(conn)?;
    Ok(Viewer {
        co_organizer,
        ..viewer
    })
}

/// Event `id` as `viewer` stands to it (co-organizer or not, from `viewer_for`), or 404 for
/// an unknown event or a draft they may not see: the one way single-event requests start.
/// `lock` takes the row for a change (PostgreSQL `FOR UPDATE`).
pub fn visible_event(
    conn: &mut DbConn,
    id: &str,
    viewer: Viewer,
    lock: bool,
) -> Result<(EventRow, Viewer), crate::error::ApiError> {
    let event = if lock {
        super::attendance::lock_event(conn, id)?
    } else {
        events::table
            .find(id)
            .select(EventRow::as_select())
            .first(conn)
            .optional()?
    }
    .ok_or(crate::error::ApiError::NotFound)?;
    let viewer = viewer_for(conn, viewer, &event)?;
    if super::permissions::can_view(viewer, &event) {
        Ok((event, viewer))
    } else {
        Err(crate::error::ApiError::NotFound)
    }
}

/// An event with its organizer, if it still has one.
pub type EventWithOrganizer = (EventRow, Option<UserRef>);

/// The number of an event's attendances with one status, for `ordering`: a correlated
/// count over the `(event_id, user_id)` index. Only an ordering by a count pays for it.
fn status_count(status: &'static str) -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    debug_assert!(super::types::STATUSES.contains(&status) || status == super::types::WAITLISTED);
    // `status` is one of the constant STATUSES, never client text.
    diesel::dsl::sql(&format!(
        "(SELECT COUNT(*) FROM attendances a WHERE a.event_id = events.id AND a.status = '{status}')"
    ))
}

diesel::table! {
    /// The number of events, kept by triggers on `events` (migration
    /// `2026-11-21-000003_list_indexes`): one row on SQLite, a few shards on PostgreSQL
    /// so that concurrent inserts do not queue on one row. Their sum is the total.
    event_counts (shard) {
        shard -> Integer,
        n -> BigInt,
        /// Drafts and unlisted events, also counted in `n`.
        hidden -> BigInt,
    }
}

fn unfiltered(q: &ListQuery) -> bool {
    q.search.is_empty()
        && q.organizer.is_none()
        && q.date_after.is_none()
        && q.date_before.is_none()
        && q.starts_after.is_none()
        && q.starts_before.is_none()
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
                (SortKey::StartsAt, descending) => {
                    // Events without a start time come last in both directions.
                    let page = page.then_order_by(events::starts_at.is_null().asc());
                    if descending {
                        page.then_order_by(events::starts_at.desc())
                    } else {
                        page.then_order_by(events::starts_at.asc())
                    }
                }
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
                        SortKey::WaitlistCount => super::types::WAITLISTED,
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
) -> QueryResult<(Vec<EventWithOrganizer>, i64, CountsById)> {
    let rows = page!(q)
        .select((EventRow::as_select(), Option::<UserRef>::as_select()))
        .load(conn)?;
    let total = if unfiltered(q) {
        let shards: Vec<(i64, i64)> = event_counts::table
            .select((event_counts::n, event_counts::hidden))
            .load(conn)?;
        let (all, hidden) = shards
            .into_iter()
            .fold((0, 0), |(n, h), (sn, sh)| (n + sn, h + sh));
        match q.viewer.id {
            _ if q.viewer.is_staff => all,
            // The caller's own and co-organized drafts and unlisted events are listed for
            // them too.
            Some(id) => {
                let own_hidden: i64 = events::table
                    .filter(
                        events::organizer_id
                            .eq(id)
                            .or(events::id.eq_any(co_organized_by(id))),
                    )
                    .filter(
                        events::status
                            .eq(super::types::DRAFT)
                            .or(events::visibility.ne(super::types::PUBLIC)),
                    )
                    .count()
                    .get_result(conn)?;
                all - hidden + own_hidden
            }
            None => all - hidden,
        }
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

/// Events `q.viewer` may list with a change time in `since..=until`, oldest change
/// first (then id), with their change times and organizers (incremental sync, §15).
pub fn changed_since(
    conn: &mut DbConn,
    q: &ListQuery,
    since: chrono::NaiveDateTime,
    until: Option<chrono::NaiveDateTime>,
    limit: Option<i64>,
) -> QueryResult<Vec<(EventRow, chrono::NaiveDateTime, Option<UserRef>)>> {
    let mut query = filtered!(events::table.left_join(users::table).into_boxed(), q)
        .filter(events::updated_at.ge(since));
    if let Some(until) = until {
        query = query.filter(events::updated_at.le(until));
    }
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    query
        .order((events::updated_at.asc(), events::id.asc()))
        .select((
            EventRow::as_select(),
            events::updated_at,
            Option::<UserRef>::as_select(),
        ))
        .load(conn)
}

/// Tombstones of events `viewer` could have listed (the list's rule, as the event was
/// when deleted) with a deletion time in `since..=until`, oldest first (then id).
pub fn deleted_since(
    conn: &mut DbConn,
    viewer: super::types::Viewer,
    since: chrono::NaiveDateTime,
    until: Option<chrono::NaiveDateTime>,
    limit: Option<i64>,
) -> QueryResult<Vec<(String, chrono::NaiveDateTime)>> {
    use crate::db::schema::event_tombstones as t;
    let mut query = t::table.filter(t::deleted_at.ge(since)).into_boxed();
    if let Some(until) = until {
        query = query.filter(t::deleted_at.le(until));
    }
    if !viewer.is_staff {
        query = match viewer.id {
            Some(id) => query.filter(
                t::listed
                    .eq(true)
                    .or(t::organizer_id.eq(id))
                    .or(t::event_id.eq_any(
                        crate::db::schema::event_tombstone_viewers::table
                            .filter(crate::db::schema::event_tombstone_viewers::user_id.eq(id))
                            .select(crate::db::schema::event_tombstone_viewers::event_id),
                    )),
            ),
            None => query.filter(t::listed.eq(true)),
        };
    }
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    query
        .order((t::deleted_at.asc(), t::event_id.asc()))
        .select((t::event_id, t::deleted_at))
        .load(conn)
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

/// A user as events embed them, if there is one.
pub fn user_ref(conn: &mut DbConn, id: Option<i64>) -> QueryResult<Option<UserRef>> {
    let Some(id) = id else { return Ok(None) };
    users::table
        .find(id)
        .select(UserRef::as_select())
        .first(conn)
        .optional()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
