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
    pub fn show(self, organizer: Option<UserRef>, viewer: Viewer) -> EventOut {
        let organizer_id = self.organizer_id;
        EventOut {
            id: self.id,
            name: self.name,
            date: self.date,
            organizer: organizer.map(|o| {
                let visible = viewer.sees_email_of(o.id, organizer_id);
                o.show(visible)
            }),
        }
    }
}
