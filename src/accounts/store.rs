//! The account queries.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::types::{NewUser, User, UserFlags};
use crate::db::DbConn;
use crate::db::schema::{token_blacklist, users};
use crate::events::store::{like_pattern, lower};

pub fn find_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn username_taken(conn: &mut DbConn, username: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::username.eq(username)),
    ))
    .get_result(conn)
}

/// Inserts a user; `Ok(None)` when the username was taken in the meantime.
pub fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<Option<User>> {
    let inserted = diesel::insert_into(users::table)
        .values(new)
        .returning(users::id)
        .get_result::<i64>(conn);
    match inserted {
        Ok(id) => find_by_id(conn, id),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A page of users matching every search term (in the username or the email,
/// case-insensitively), by username, and the number matching: two queries.
pub fn list(
    conn: &mut DbConn,
    search: &[String],
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<User>, i64)> {
    let filtered = || {
        let mut query = users::table.into_boxed();
        for term in search {
            let pattern = like_pattern(term);
            query = query.filter(
                lower(users::username)
                    .like(lower(pattern.clone()))
                    .escape('\\')
                    .or(lower(users::email).like(lower(pattern)).escape('\\')),
            );
        }
        query
    };
    let rows = filtered()
        .order((users::username.asc(), users::id.asc()))
        .select(User::as_select())
        .limit(limit)
        .offset(offset)
        .load(conn)?;
    let total = filtered().count().get_result(conn)?;
    Ok((rows, total))
}

/// Sets a user's staff and active flags; the number of rows changed.
pub fn set_flags(conn: &mut DbConn, id: i64, flags: &UserFlags) -> QueryResult<usize> {
    if flags.is_staff.is_none() && flags.is_active.is_none() {
        // Diesel refuses an empty SET; nothing to change is no change.
        return Ok(0);
    }
    diesel::update(users::table.find(id))
        .set(flags)
        .execute(conn)
}

/// Deletes a user: their events stay with no organizer, their attendances go (both by
/// foreign-key actions).
pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
    diesel::delete(users::table.find(id)).execute(conn)
}

pub fn is_blacklisted(conn: &mut DbConn, jti: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        token_blacklist::table.filter(token_blacklist::jti.eq(jti)),
    ))
    .get_result(conn)
}

/// Blacklists a token id; false when it already was (another request got there first).
pub fn blacklist(
    conn: &mut DbConn,
    jti: &str,
    user_id: Option<i64>,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    // In a savepoint: callers run this inside their transaction, and on PostgreSQL a
    // failed statement would abort the whole of it (the retry below, and everything after).
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(token_blacklist::table)
            .values((
                token_blacklist::jti.eq(jti),
                token_blacklist::user_id.eq(user_id),
                token_blacklist::expires_at.eq(expires_at),
                token_blacklist::blacklisted_at.eq(Utc::now().naive_utc()),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        // The user was deleted between the token check and here.
        Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
            blacklist(conn, jti, None, expires_at)
        }
        Err(e) => Err(e),
    }
}

/// Drops blacklist rows of tokens that have expired anyway.
pub fn prune_blacklist(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::delete(
        token_blacklist::table.filter(token_blacklist::expires_at.lt(Utc::now().naive_utc())),
    )
    .execute(conn)
}
