//! Events and attendances as stored and as shown.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::types::{User, UserOut, UserRef};
use crate::db::schema::{attendances, events};

/// The answers a user can give, as the Django app spells them.
pub const STATUSES: [&str; 3] = ["Going", "Maybe", "Not Going"];
/// The fourth attendance status: a `Going` answer to a full event. Only the server sets it.
pub const WAITLISTED: &str = "Waitlisted";

/// An event's lifecycle (`events.status`).
pub const DRAFT: &str = "draft";
pub const PUBLISHED: &str = "published";
pub const CANCELLED: &str = "cancelled";
pub const EVENT_STATUSES: [&str; 3] = [DRAFT, PUBLISHED, CANCELLED];
/// Who finds an event in lists (`events.visibility`); both are readable by id.
pub const PUBLIC: &str = "public";
pub const UNLISTED: &str = "unlisted";
pub const VISIBILITIES: [&str; 2] = [PUBLIC, UNLISTED];

/// An event's columns as the API and calendars use them (the bookkeeping timestamps are
/// left unread: decoding them was a sixth of a SQLite list's CPU).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub name: String,
    pub date: NaiveDate,
    pub organizer_id: Option<i64>,
    /// UTC.
    pub starts_at: Option<NaiveDateTime>,
    /// UTC.
    pub ends_at: Option<NaiveDateTime>,
    /// An IANA zone name.
    pub timezone: Option<String>,
    pub description: String,
    pub location: String,
    pub online_url: Option<String>,
    pub capacity: Option<i32>,
    pub status: String,
    pub visibility: String,
    /// The JSON array of ISO 8601 durations, as stored.
    pub reminders: String,
    /// iCalendar SEQUENCE.
    pub sequence: i32,
}

impl EventRow {
    /// Listed for everyone: published or cancelled, and public.
    pub fn is_listed(&self) -> bool {
        self.status != DRAFT && self.visibility == PUBLIC
    }

    /// The reminder offsets as given (an unreadable stored value reads as none).
    pub fn reminder_list(&self) -> Vec<String> {
        serde_json::from_str(&self.reminders).unwrap_or_default()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub date: NaiveDate,
    pub organizer_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub starts_at: Option<NaiveDateTime>,
    pub ends_at: Option<NaiveDateTime>,
    pub timezone: Option<&'a str>,
    pub description: &'a str,
    pub location: &'a str,
    pub online_url: Option<&'a str>,
    pub capacity: Option<i32>,
    pub status: &'a str,
    pub visibility: &'a str,
    pub reminders: &'a str,
}

impl<'a> NewEvent<'a> {
    pub fn of(row: &'a EventRow, now: NaiveDateTime) -> Self {
        Self {
            id: &row.id,
            name: &row.name,
            date: row.date,
            organizer_id: row.organizer_id,
            created_at: now,
            updated_at: now,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            timezone: row.timezone.as_deref(),
            description: &row.description,
            location: &row.location,
            online_url: row.online_url.as_deref(),
            capacity: row.capacity,
            status: &row.status,
            visibility: &row.visibility,
            reminders: &row.reminders,
        }
    }
}

/// Every column an update writes: the whole row as it is to be (`updated_at` with it).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = events, treat_none_as_null = true)]
pub struct EventChanges<'a> {
    pub name: &'a str,
    pub date: NaiveDate,
    pub starts_at: Option<NaiveDateTime>,
    pub ends_at: Option<NaiveDateTime>,
    pub timezone: Option<&'a str>,
    pub description: &'a str,
    pub location: &'a str,
    pub online_url: Option<&'a str>,
    pub capacity: Option<i32>,
    pub status: &'a str,
    pub visibility: &'a str,
    pub reminders: &'a str,
    pub sequence: i32,
    pub updated_at: NaiveDateTime,
}

impl<'a> EventChanges<'a> {
    pub fn of(row: &'a EventRow, now: NaiveDateTime) -> Self {
        Self {
            name: &row.name,
            date: row.date,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            timezone: row.timezone.as_deref(),
            description: &row.description,
            location: &row.location,
            online_url: row.online_url.as_deref(),
            capacity: row.capacity,
            status: &row.status,
            visibility: &row.visibility,
            reminders: &row.reminders,
            sequence: row.sequence,
            updated_at: now,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = attendances)]
pub struct NewAttendance<'a> {
    pub event_id: &'a str,
    pub user_id: i64,
    pub status: &'a str,
    pub waitlist_seq: Option<i64>,
}

/// An event as lists, create and update return it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The day of the event; derived from `starts_at` in the event's time zone when that is set.
    pub date: NaiveDate,
    /// Null once the organizer's account is deleted.
    pub organizer: Option<UserOut>,
    /// RFC 3339, UTC **(beyond)**.
    pub starts_at: Option<DateTime<Utc>>,
    /// RFC 3339, UTC; not before `starts_at` **(beyond)**.
    pub ends_at: Option<DateTime<Utc>>,
    /// IANA time zone name, e.g. `Europe/Berlin` **(beyond)**.
    pub timezone: Option<String>,
    /// **(beyond)**
    pub description: String,
    /// **(beyond)**
    pub location: String,
    /// An http(s) URL **(beyond)**.
    pub online_url: Option<String>,
    /// Seats for `Going`; null means unlimited **(beyond)**.
    pub capacity: Option<i32>,
    /// `draft`, `published` or `cancelled` **(beyond)**.
    #[schema(value_type = crate::openapi::EventStatus)]
    pub status: String,
    /// `public` (listed) or `unlisted` (readable by id only) **(beyond)**.
    #[schema(value_type = crate::openapi::Visibility)]
    pub visibility: String,
    /// Reminder offsets before `starts_at`, ISO 8601 durations **(beyond)**.
    #[schema(example = json!(["P1D", "PT1H"]))]
    pub reminders: Vec<String>,
    /// Attendances answered "Going" **(beyond)**.
    pub going_count: i64,
    /// Attendances answered "Maybe" **(beyond)**.
    pub maybe_count: i64,
    /// Attendances answered "Not Going" **(beyond)**.
    pub not_going_count: i64,
    /// Attendances waiting for a seat **(beyond)**.
    pub waitlist_count: i64,
}

/// How many attendances an event has of each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttendanceCounts {
    pub going: i64,
    pub maybe: i64,
    pub not_going: i64,
    pub waitlisted: i64,
}

impl AttendanceCounts {
    /// Counts one more answer of `status`; an unknown status (the column's CHECK forbids
    /// one) is not counted.
    pub fn add(&mut self, status: &str, n: i64) {
        match status {
            "Going" => self.going += n,
            "Maybe" => self.maybe += n,
            "Not Going" => self.not_going += n,
            WAITLISTED => self.waitlisted += n,
            _ => {}
        }
    }
}

/// An event with its attendances, as the detail returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventOut,
    pub attendances: Vec<AttendanceOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttendanceOut {
    pub user: UserOut,
    #[schema(value_type = crate::openapi::StoredAttendanceStatus)]
    pub status: String,
}

/// Who is looking, for deciding whether an embedded user's email is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub id: Option<i64>,
    pub is_staff: bool,
    /// A co-organizer of the one event at hand (`store::viewer_for` sets it); always
    /// false in lists, which show many events.
    pub co_organizer: bool,
}

impl Viewer {
    pub fn of(user: Option<&User>) -> Self {
        Self {
            id: user.map(|u| u.id),
            is_staff: user.is_some_and(|u| u.is_staff),
            co_organizer: false,
        }
    }

    /// The organizer of an event whose organizer is `event_organizer`.
    pub fn organizes(self, event_organizer: Option<i64>) -> bool {
        self.id.is_some() && self.id == event_organizer
    }

    /// An email is shown to its owner, to staff, and to the organizer and co-organizers
    /// of the event shown.
    pub fn sees_email_of(self, user_id: i64, event_organizer: Option<i64>) -> bool {
        self.is_staff
            || self.id == Some(user_id)
            || self.organizes(event_organizer)
            || self.co_organizer
    }
}

impl EventRow {
    /// The event as the API shows it; the organizer's email only where the viewer may see it.
    pub fn show(
        self,
        organizer: Option<UserRef>,
        viewer: Viewer,
        counts: AttendanceCounts,
    ) -> EventOut {
        let reminders = self.reminder_list();
        let organizer_id = self.organizer_id;
        EventOut {
            id: self.id,
            name: self.name,
            date: self.date,
            organizer: organizer.map(|o| {
                let visible = viewer.sees_email_of(o.id, organizer_id);
                o.show(visible)
            }),
            starts_at: self.starts_at.map(|t| t.and_utc()),
            ends_at: self.ends_at.map(|t| t.and_utc()),
            timezone: self.timezone,
            description: self.description,
            location: self.location,
            online_url: self.online_url,
            capacity: self.capacity,
            status: self.status,
            visibility: self.visibility,
            reminders,
            going_count: counts.going,
            maybe_count: counts.maybe,
            not_going_count: counts.not_going,
            waitlist_count: counts.waitlisted,
        }
    }
}
