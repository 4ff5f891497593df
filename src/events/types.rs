//! Events and attendances as stored and as shown.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::types::{User, UserOut, UserRef};
use crate::db::schema::{attendances, events};

/// The answers a user can give, as the Django app spells them.
pub const STATUSES: [&str; 3] = ["Going", "Maybe", "Not Going"];

/// A row of `events`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub name: String,
    pub date: NaiveDate,
    pub organizer_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
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
}

/// What a PUT or PATCH changes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = events)]
pub struct EventChanges {
    pub name: Option<String>,
    pub date: Option<NaiveDate>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = attendances)]
pub struct NewAttendance<'a> {
    pub event_id: &'a str,
    pub user_id: i64,
    pub status: &'a str,
}

/// An event as lists, create and update return it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub date: NaiveDate,
    /// Null once the organizer's account is deleted.
    pub organizer: Option<UserOut>,
    /// Attendances answered "Going" **(beyond)**.
    pub going_count: i64,
    /// Attendances answered "Maybe" **(beyond)**.
    pub maybe_count: i64,
    /// Attendances answered "Not Going" **(beyond)**.
    pub not_going_count: i64,
}

/// How many attendances an event has of each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttendanceCounts {
    pub going: i64,
    pub maybe: i64,
    pub not_going: i64,
}

impl AttendanceCounts {
    /// Counts one more answer of `status`; an unknown status (the column's CHECK forbids
    /// one) is not counted.
    pub fn add(&mut self, status: &str, n: i64) {
        match status {
            "Going" => self.going += n,
            "Maybe" => self.maybe += n,
            "Not Going" => self.not_going += n,
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
    #[schema(value_type = crate::openapi::AttendanceStatus)]
    pub status: String,
}

/// Who is looking, for deciding whether an embedded user's email is shown.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub id: Option<i64>,
    pub is_staff: bool,
}

impl Viewer {
    pub fn of(user: Option<&User>) -> Self {
        Self {
            id: user.map(|u| u.id),
            is_staff: user.is_some_and(|u| u.is_staff),
        }
    }

    /// An email is shown to its owner, to staff, and to the organizer of the event shown.
    pub fn sees_email_of(self, user_id: i64, event_organizer: Option<i64>) -> bool {
        self.is_staff
            || self.id == Some(user_id)
            || (self.id.is_some() && self.id == event_organizer)
    }
}

impl EventRow {
    pub fn show(
        self,
        organizer: Option<UserRef>,
        viewer: Viewer,
        counts: AttendanceCounts,
    ) -> EventOut {
        super::store::ListedEvent {
            id: self.id,
            name: self.name,
            date: self.date,
            organizer_id: self.organizer_id,
        }
        .show(organizer, viewer, counts)
    }
}

impl EventOut {
    /// The shown form of an event's columns; the organizer's email only where the viewer
    /// may see it.
    pub fn new(
        id: String,
        name: String,
        date: NaiveDate,
        organizer_id: Option<i64>,
        organizer: Option<UserRef>,
        viewer: Viewer,
        counts: AttendanceCounts,
    ) -> Self {
        Self {
            id,
            name,
            date,
            organizer: organizer.map(|o| {
                let visible = viewer.sees_email_of(o.id, organizer_id);
                o.show(visible)
            }),
            going_count: counts.going,
            maybe_count: counts.maybe,
            not_going_count: counts.not_going,
        }
    }
}
