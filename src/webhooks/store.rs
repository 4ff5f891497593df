//! The `webhooks` and `webhook_deliveries` tables: endpoints, and the durable queue of
//! their deliveries, claimed by the worker as the mail outbox is.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use crate::db::schema::{webhook_deliveries as d, webhooks as w};
use crate::db::{DbConn, write_tx};

/// An endpoint as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = w)]
pub struct Webhook {
    pub id: String,
    pub user_id: i64,
    pub url: String,
    pub secret: String,
    /// The JSON array of subscribed types.
    pub events: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub created_at: NaiveDateTime,
}

impl Webhook {
    pub fn event_list(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

/// A delivery as its log shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = d)]
pub struct Delivery {
    pub id: i64,
    pub event_type: String,
    pub event_id: String,
    pub created_at: NaiveDateTime,
    pub attempts: i32,
    pub delivered_at: Option<NaiveDateTime>,
    pub failed_at: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

pub fn insert_webhook(conn: &mut DbConn, hook: &Webhook) -> QueryResult<usize> {
    diesel::insert_into(w::table)
        .values((
            w::id.eq(&hook.id),
            w::user_id.eq(hook.user_id),
            w::url.eq(&hook.url),
            w::secret.eq(&hook.secret),
            w::events.eq(&hook.events),
            w::active.eq(hook.active),
            w::disabled_reason.eq(&hook.disabled_reason),
            w::created_at.eq(hook.created_at),
        ))
        .execute(conn)
}

/// The owner's endpoint `id`; someone else's reads as missing.
pub fn find_owned(conn: &mut DbConn, id: &str, user_id: i64) -> QueryResult<Option<Webhook>> {
    w::table
        .filter(w::id.eq(id))
        .filter(w::user_id.eq(user_id))
        .select(Webhook::as_select())
        .first(conn)
        .optional()
}

pub fn list_owned(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<Webhook>> {
    w::table
        .filter(w::user_id.eq(user_id))
        .order((w::created_at.asc(), w::id.asc()))
        .select(Webhook::as_select())
        .load(conn)
}

/// Writes url, events, active and reason as given.
pub fn save(conn: &mut DbConn, hook: &Webhook) -> QueryResult<usize> {
    diesel::update(w::table.find(&hook.id))
        .set((
            w::url.eq(&hook.url),
            w::events.eq(&hook.events),
            w::active.eq(hook.active),
            w::disabled_reason.eq(&hook.disabled_reason),
        ))
        .execute(conn)
}

pub fn delete_owned(conn: &mut DbConn, id: &str, user_id: i64) -> QueryResult<usize> {
    diesel::delete(w::table.filter(w::id.eq(id)).filter(w::user_id.eq(user_id))).execute(conn)
}

pub fn insert_delivery(
    conn: &mut DbConn,
    webhook_id: &str,
    event_type: &str,
    event_id: &str,
    payload: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(d::table)
        .values((
            d::webhook_id.eq(webhook_id),
            d::event_type.eq(event_type),
            d::event_id.eq(event_id),
            d::payload.eq(payload),
            d::created_at.eq(now),
            d::attempts.eq(0),
            d::next_attempt_at.eq(now),
        ))
        .returning(d::id)
        .get_result(conn)
}

/// The endpoint's deliveries, newest first.
pub fn deliveries(
    conn: &mut DbConn,
    webhook_id: &str,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<Delivery>, i64)> {
    let rows = d::table
        .filter(d::webhook_id.eq(webhook_id))
        .order(d::id.desc())
        .limit(limit)
        .offset(offset)
        .select(Delivery::as_select())
        .load(conn)?;
    let total = d::table
        .filter(d::webhook_id.eq(webhook_id))
        .count()
        .get_result(conn)?;
    Ok((rows, total))
}

/// A new delivery of delivery `id`'s payload, queued behind whatever its event still
/// has pending. `None` when the endpoint has no such delivery.
pub fn redeliver(conn: &mut DbConn, webhook_id: &str, id: i64) -> QueryResult<Option<Delivery>> {
    let old: Option<(String, String, String)> = d::table
        .filter(d::id.eq(id))
        .filter(d::webhook_id.eq(webhook_id))
        .select((d::event_type, d::event_id, d::payload))
        .first(conn)
        .optional()?;
    let Some((event_type, event_id, payload)) = old else {
        return Ok(None);
    };
    let new_id = insert_delivery(
        conn,
        webhook_id,
        &event_type,
        &event_id,
        &payload,
        Utc::now().naive_utc(),
    )?;
    d::table
        .find(new_id)
        .select(Delivery::as_select())
        .first(conn)
        .optional()
}

/// A claimed delivery with where and how to send it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub webhook_id: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamp)]
    pub created_at: NaiveDateTime,
}

/// Due, unleased, pending, for an active endpoint, and the head of its (endpoint, event)
/// queue: a later change to an event never overtakes an earlier one still pending.
const CLAIMABLE: &str = "d.delivered_at IS NULL AND d.failed_at IS NULL \
     AND d.next_attempt_at <= {now} AND (d.locked_until IS NULL OR d.locked_until < {now}) \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
       AND e.event_id = d.event_id AND e.id < d.id \
       AND e.delivered_at IS NULL AND e.failed_at IS NULL) \
     AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.active)";

/// Claims up to `limit` deliveries until `lease_until`: `FOR UPDATE SKIP LOCKED` on
/// PostgreSQL (a head another process holds is skipped, and the rows behind it are not
/// heads), `BEGIN IMMEDIATE` on SQLite.
pub fn claim(
    conn: &mut DbConn,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<Claimed>> {
    match conn {
        DbConn::Postgres(c) => {
            let sql = format!(
                "WITH due AS (SELECT d.id FROM webhook_deliveries d WHERE {} \
                   ORDER BY d.next_attempt_at, d.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE webhook_deliveries SET locked_until = $1 FROM due \
                 WHERE webhook_deliveries.id = due.id \
                 RETURNING webhook_deliveries.id, webhook_id, payload, attempts, created_at",
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
                "UPDATE webhook_deliveries SET locked_until = ?1 WHERE id IN (\
                   SELECT d.id FROM webhook_deliveries d WHERE {} \
                   ORDER BY d.next_attempt_at, d.id LIMIT ?3) \
                 RETURNING id, webhook_id, payload, attempts, created_at",
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

/// Url and secret of the given endpoints.
pub fn targets(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<(String, String, String)>> {
    w::table
        .filter(w::id.eq_any(ids))
        .select((w::id, w::url, w::secret))
        .load(conn)
}

/// Delivery `id` while still pending: a 410 from a sibling attempt may have failed it
/// meanwhile, and that outcome stands.
macro_rules! still_pending {
    ($id:expr) => {
        d::table
            .find($id)
            .filter(d::delivered_at.is_null())
            .filter(d::failed_at.is_null())
    };
}

pub fn mark_delivered(conn: &mut DbConn, id: i64, status: i32) -> QueryResult<usize> {
    diesel::update(still_pending!(id))
        .set((
            d::delivered_at.eq(Some(Utc::now().naive_utc())),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::attempts.eq(d::attempts + 1),
            d::last_status.eq(Some(status)),
            d::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// A failed attempt: retried at `retry_at`, or failed for good when `None`.
pub fn mark_attempt_failed(
    conn: &mut DbConn,
    id: i64,
    status: Option<i32>,
    error: &str,
    retry_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    let now = Utc::now().naive_utc();
    let error: String = error.chars().take(2000).collect();
    diesel::update(still_pending!(id))
        .set((
            d::attempts.eq(d::attempts + 1),
            d::last_status.eq(status),
            d::last_error.eq(Some(error)),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::next_attempt_at.eq(retry_at.unwrap_or(now)),
            d::failed_at.eq(if retry_at.is_some() { None } else { Some(now) }),
        ))
        .execute(conn)
}

/// The endpoint answered 410 Gone to delivery `id`: it is disabled, and every delivery
/// still pending for it fails with the reason.
pub fn disable_gone(conn: &mut DbConn, webhook_id: &str, id: i64) -> QueryResult<()> {
    let now = Utc::now().naive_utc();
    let reason = "The endpoint answered 410 Gone.";
    write_tx(conn, |conn| {
        diesel::update(d::table.find(id))
            .set((
                d::attempts.eq(d::attempts + 1),
                d::last_status.eq(Some(410)),
            ))
            .execute(conn)?;
        diesel::update(w::table.find(webhook_id))
            .set((w::active.eq(false), w::disabled_reason.eq(Some(reason))))
            .execute(conn)?;
        diesel::update(
            d::table
                .filter(d::webhook_id.eq(webhook_id))
                .filter(d::delivered_at.is_null())
                .filter(d::failed_at.is_null()),
        )
        .set((
            d::failed_at.eq(Some(now)),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::last_error.eq(Some(reason)),
        ))
        .execute(conn)?;
        Ok(())
    })
}

/// Gives claimed but unsent deliveries back (a worker stopping).
pub fn release(conn: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(d::table.filter(d::id.eq_any(ids)))
        .filter(d::delivered_at.is_null())
        .set(d::locked_until.eq(None::<NaiveDateTime>))
        .execute(conn)
}
