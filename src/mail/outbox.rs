//! The outbox table: mails written in the same transaction as the change that causes
//! them, then claimed, sent and marked by the worker.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use super::message::NewMail;
use crate::db::schema::outbox;
use crate::db::{DbConn, write_tx};

/// A claimed row, ready to send.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body: String,
    #[diesel(sql_type = Text)]
    pub message_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Writes a mail; call it inside the transaction of the change it reports.
pub fn enqueue(conn: &mut DbConn, mail: &NewMail) -> QueryResult<()> {
    enqueue_many(conn, std::slice::from_ref(mail))
}

/// Writes many mails in as few statements as the backends' bind limits allow.
pub fn enqueue_many(conn: &mut DbConn, mails: &[NewMail]) -> QueryResult<()> {
    let now = Utc::now().naive_utc();
    // 7 binds a row: 500 rows stay under SQLite's 32,766 and PostgreSQL's 65,535.
    for chunk in mails.chunks(500) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|mail| {
                (
                    outbox::recipient.eq(&mail.recipient),
                    outbox::subject.eq(&mail.subject),
                    outbox::body.eq(&mail.body),
                    outbox::message_id.eq(format!("<{}@rally>", uuid::Uuid::new_v4().simple())),
                    outbox::created_at.eq(now),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_at.eq(now),
                )
            })
            .collect();
        crate::db::insert_many!(conn, outbox::table, rows);
    }
    Ok(())
}

const CLAIMABLE: &str = "sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= {now} \
     AND (locked_until IS NULL OR locked_until < {now})";

/// Claims up to `limit` due rows until `lease_until`. On PostgreSQL the candidate rows
/// are locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers in several processes
/// never take the same row; SQLite serializes writers with `BEGIN IMMEDIATE`.
pub fn claim(
    conn: &mut DbConn,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<Claimed>> {
    let returning = "RETURNING id, recipient, subject, body, message_id, attempts";
    match conn {
        DbConn::Postgres(c) => {
            // The locking select runs once, in a CTE; inside `IN (…)` the planner may
            // re-run a LIMIT subquery and claim more rows than it locked.
            let sql = format!(
                "WITH due AS (SELECT id FROM outbox WHERE {} ORDER BY next_attempt_at, id \
                   LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET locked_until = $1 FROM due WHERE outbox.id = due.id \
                 RETURNING outbox.id, recipient, subject, body, message_id, attempts",
                CLAIMABLE.replace("{now}", "$2")
            );
            diesel::sql_query(sql)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(c)
        }
        DbConn::Sqlite(_) => write_tx(conn, |conn| {
            let DbConn::Sqlite(c) = conn else {
                unreachable!("matched as SQLite")
            };
            let sql = format!(
                "UPDATE outbox SET locked_until = ?1 WHERE id IN (\
                   SELECT id FROM outbox WHERE {} ORDER BY next_attempt_at, id LIMIT ?3) \
                 {returning}",
                CLAIMABLE.replace("{now}", "?2")
            );
            diesel::sql_query(sql)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(c)
        }),
    }
}

pub fn mark_sent(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
    let now = Utc::now().naive_utc();
    diesel::update(outbox::table.find(id))
        .set((
            outbox::sent_at.eq(Some(now)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
        .execute(conn)
}

/// Marks sends that were accepted earlier but could not be recorded then.
pub fn mark_sent_many(conn: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
    let now = Utc::now().naive_utc();
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .filter(outbox::sent_at.is_null())
        .set((
            outbox::sent_at.eq(Some(now)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
        .execute(conn)
}

/// Records a failed attempt: retried at `retry_at`, or marked failed for good when
/// `retry_at` is `None`. The error is kept either way.
pub fn mark_attempt_failed(
    conn: &mut DbConn,
    id: i64,
    error: &str,
    retry_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    let now = Utc::now().naive_utc();
    let error: String = error.chars().take(2000).collect();
    diesel::update(outbox::table.find(id))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(Some(error)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::next_attempt_at.eq(retry_at.unwrap_or(now)),
            outbox::failed_at.eq(if retry_at.is_some() { None } else { Some(now) }),
        ))
        .execute(conn)
}

/// Gives claimed but unsent rows back (a worker stopping before it sent them).
pub fn release(conn: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .filter(outbox::sent_at.is_null())
        .set(outbox::locked_until.eq(None::<NaiveDateTime>))
        .execute(conn)
}

/// Clears every lease. Only for SQLite at start: one process owns a SQLite file, so a
/// lease still set there was left by a process that died mid-send.
pub fn release_all(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::sent_at.is_null()))
        .filter(outbox::locked_until.is_not_null())
        .set(outbox::locked_until.eq(None::<NaiveDateTime>))
        .execute(conn)
}

/// Counts for `rally mail status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub oldest_pending: Option<NaiveDateTime>,
}

pub fn status(conn: &mut DbConn) -> QueryResult<Status> {
    let pending_rows = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::failed_at.is_null());
    Ok(Status {
        pending: pending_rows.count().get_result(conn)?,
        sent: outbox::table
            .filter(outbox::sent_at.is_not_null())
            .count()
            .get_result(conn)?,
        failed: outbox::table
            .filter(outbox::failed_at.is_not_null())
            .count()
            .get_result(conn)?,
        oldest_pending: pending_rows
            .select(diesel::dsl::min(outbox::created_at))
            .get_result(conn)?,
    })
}

/// A failed mail, for operators.
#[derive(Debug, Clone, Queryable)]
pub struct Failed {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

/// The oldest `limit` failed mails.
pub fn failed(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<Failed>> {
    outbox::table
        .filter(outbox::failed_at.is_not_null())
        .order(outbox::id.asc())
        .limit(limit)
        .select((
            outbox::id,
            outbox::recipient,
            outbox::subject,
            outbox::attempts,
            outbox::last_error,
            outbox::created_at,
        ))
        .load(conn)
}

/// Puts failed mails back in the queue with a fresh set of attempts.
pub fn retry_failed(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::failed_at.is_not_null()))
        .set((
            outbox::failed_at.eq(None::<NaiveDateTime>),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)
}
