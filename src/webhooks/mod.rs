//! Webhooks **(beyond)**: organizers register HTTPS endpoints; changes to their events
//! write delivery rows in the transaction of the change (as mail does with the outbox),
//! and the worker POSTs them, signed, in order per event, with retries.

pub mod routes;
pub mod store;
pub mod worker;

use chrono::{SecondsFormat, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;

use crate::db::DbConn;
use crate::db::schema::{attendances, users, webhooks};
use crate::events::store as events_store;
use crate::events::types::{EventOut, EventRow, Viewer};

pub const EVENT_CREATED: &str = "event.created";
pub const EVENT_UPDATED: &str = "event.updated";
pub const EVENT_CANCELLED: &str = "event.cancelled";
pub const EVENT_DELETED: &str = "event.deleted";
pub const ATTENDANCE_CHANGED: &str = "attendance.changed";
pub const WAITLIST_PROMOTED: &str = "waitlist.promoted";

/// Every type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    EVENT_CREATED,
    EVENT_UPDATED,
    EVENT_CANCELLED,
    EVENT_DELETED,
    ATTENDANCE_CHANGED,
    WAITLIST_PROMOTED,
];

/// The `v1=` signature: hex HMAC-SHA256 keyed with the secret (its text, as shown at
/// registration) over `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", crate::secrets::hex(&mac.finalize().into_bytes()))
}

/// The organizer's active endpoints subscribed to `event_type`: (id). One indexed query;
/// none for an event without an organizer.
fn subscribers(
    conn: &mut DbConn,
    organizer_id: Option<i64>,
    event_type: &str,
) -> QueryResult<Vec<String>> {
    let Some(organizer_id) = organizer_id else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, String)> = webhooks::table
        .filter(webhooks::user_id.eq(organizer_id))
        .filter(webhooks::active.eq(true))
        .select((webhooks::id, webhooks::events))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, events)| {
            serde_json::from_str::<Vec<String>>(events)
                .is_ok_and(|list| list.iter().any(|t| t == event_type))
        })
        .map(|(id, _)| id)
        .collect())
}

/// Queues one delivery of `data` to each of `endpoints`. Each delivery gets its own id,
/// which the payload and the `Rally-Webhook-Id` header carry.
fn queue(
    conn: &mut DbConn,
    endpoints: &[String],
    event_type: &str,
    event_id: &str,
    data: &serde_json::Value,
) -> QueryResult<usize> {
    let now = Utc::now();
    for webhook_id in endpoints {
        let payload = json!({
            "id": uuid::Uuid::new_v4().hyphenated().to_string(),
            "type": event_type,
            "created_at": now.to_rfc3339_opts(SecondsFormat::Micros, true),
            "data": data,
        });
        store::insert_delivery(
            conn,
            webhook_id,
            event_type,
            event_id,
            &payload.to_string(),
            now.naive_utc(),
        )?;
    }
    Ok(endpoints.len())
}

/// Queues `event_type` for the organizer's endpoints, building the data only when someone
/// listens. Returns the deliveries queued: the caller wakes the worker only for some.
fn emit<T: Serialize>(
    conn: &mut DbConn,
    organizer_id: Option<i64>,
    event_type: &str,
    event_id: &str,
    data: impl FnOnce(&mut DbConn) -> QueryResult<T>,
) -> QueryResult<usize> {
    let endpoints = subscribers(conn, organizer_id, event_type)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let data = serde_json::to_value(data(conn)?).unwrap_or_default();
    queue(conn, &endpoints, event_type, event_id, &data)
}

/// The event as its organizer would GET it from the list: organizer and counts read here.
fn event_out(conn: &mut DbConn, event: &EventRow) -> QueryResult<EventOut> {
    let organizer = events_store::user_ref(conn, event.organizer_id)?;
    let counts = events_store::counts_of(conn, &[event.id.as_str()])?
        .remove(&event.id)
        .unwrap_or_default();
    let viewer = Viewer {
        id: event.organizer_id,
        is_staff: false,
        co_organizer: false,
    };
    Ok(event.clone().show(organizer, viewer, counts))
}

/// `event.created`, with the event as the create answered it. In the create's transaction.
pub fn event_created(conn: &mut DbConn, event: &EventOut, organizer_id: i64) -> QueryResult<usize> {
    emit(conn, Some(organizer_id), EVENT_CREATED, &event.id, |_| {
        Ok(event.clone())
    })
}

/// `event.updated` when anything changed, and `event.cancelled` too when the status
/// became `cancelled`. `shown` is the event as the update answers. In the update's
/// transaction.
pub fn event_updated(
    conn: &mut DbConn,
    old: &EventRow,
    new: &EventRow,
    shown: &EventOut,
) -> QueryResult<usize> {
    if old == new {
        return Ok(0);
    }
    let mut queued = emit(conn, new.organizer_id, EVENT_UPDATED, &new.id, |_| {
        Ok(shown.clone())
    })?;
    if new.status == crate::events::types::CANCELLED && old.status != new.status {
        queued += emit(conn, new.organizer_id, EVENT_CANCELLED, &new.id, |_| {
            Ok(shown.clone())
        })?;
    }
    Ok(queued)
}

/// `event.deleted`, with the event as it was last. Call before the delete, in its
/// transaction.
pub fn event_deleted(conn: &mut DbConn, event: &EventRow) -> QueryResult<usize> {
    emit(conn, event.organizer_id, EVENT_DELETED, &event.id, |conn| {
        event_out(conn, event)
    })
}

/// The user an attendance webhook names (never the email).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attendee {
    pub id: i64,
    pub username: String,
}

/// `attendance.changed` when a user's answer changed what is stored. In the answer's
/// transaction.
pub fn attendance_changed(
    conn: &mut DbConn,
    event: &EventRow,
    user_id: i64,
    old_status: Option<&str>,
    new_status: &str,
) -> QueryResult<usize> {
    if old_status == Some(new_status) {
        return Ok(0);
    }
    emit(
        conn,
        event.organizer_id,
        ATTENDANCE_CHANGED,
        &event.id,
        |conn| {
            let username: String = users::table
                .find(user_id)
                .select(users::username)
                .first(conn)?;
            Ok(json!({
                "event_id": event.id,
                "user": Attendee { id: user_id, username },
                "old_status": old_status,
                "new_status": new_status,
            }))
        },
    )
}

/// `waitlist.promoted`, one per attendance moved from the waitlist to Going. In the
/// promotion's transaction.
pub fn waitlist_promoted(
    conn: &mut DbConn,
    event: &EventRow,
    attendance_ids: &[i64],
) -> QueryResult<usize> {
    if attendance_ids.is_empty() {
        return Ok(0);
    }
    let endpoints = subscribers(conn, event.organizer_id, WAITLIST_PROMOTED)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let promoted: Vec<(i64, String)> = attendances::table
        .inner_join(users::table)
        .filter(attendances::id.eq_any(attendance_ids))
        .order(attendances::id.asc())
        .select((users::id, users::username))
        .load(conn)?;
    let mut queued = 0;
    for (id, username) in promoted {
        let data = json!({
            "event_id": event.id,
            "user": Attendee { id, username },
            "old_status": crate::events::types::WAITLISTED,
            "new_status": "Going",
        });
        queued += queue(conn, &endpoints, WAITLIST_PROMOTED, &event.id, &data)?;
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_over_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; message "1.x" computed independently.
        let sig = sign("Jefe", 1, "x");
        assert!(sig.starts_with("v1="));
        assert_eq!(sig.len(), 3 + 64);
        assert_ne!(sign("Jefe", 2, "x"), sig);
        assert_ne!(sign("Jefe", 1, "y"), sig);
    }
}
