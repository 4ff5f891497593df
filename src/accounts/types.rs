//! Users as stored and as shown.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::users;

/// A row of `users`. Never serialized: it carries the password hash.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: NaiveDateTime,
    /// Tokens issued (`iat`) before this instant are refused: set by a password change.
    pub tokens_valid_after: Option<NaiveDateTime>,
    /// The user proved they read mail at `email` (a verification link was followed).
    pub is_verified: bool,
}

/// A new user, hash already computed.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: NaiveDateTime,
}

/// The columns an embedded user needs: no hash leaves the database for these.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRef {
    pub id: i64,
    pub username: String,
    pub email: String,
}

/// A user embedded in another object: `{id, username}`, plus `email` when the viewer may
/// see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    /// Shown to the user, to staff, and to an event's organizer and co-organizers for its
    /// attendees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl UserRef {
    pub fn show(self, with_email: bool) -> UserOut {
        UserOut {
            id: self.id,
            username: self.username,
            email: with_email.then_some(self.email),
        }
    }
}

/// The caller's own account, as `GET /api/users/me/` and registration return it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub is_staff: bool,
    /// Whether the email address was confirmed by a mailed link; nothing depends on it.
    pub is_verified: bool,
    #[schema(format = DateTime)]
    pub date_joined: String,
}

impl From<&User> for Me {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            is_staff: u.is_staff,
            is_verified: u.is_verified,
            date_joined: date_joined(u),
        }
    }
}

/// `date_joined` as Django REST Framework writes a datetime.
fn date_joined(u: &User) -> String {
    u.date_joined
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A user as staff see them in the user administration **(beyond)**.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserAdmin {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub is_staff: bool,
    /// An inactive user cannot sign in, and their tokens stop working at once.
    pub is_active: bool,
    /// Whether the email address was confirmed by a mailed link.
    pub is_verified: bool,
    #[schema(format = DateTime)]
    pub date_joined: String,
}

impl From<&User> for UserAdmin {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            is_staff: u.is_staff,
            is_active: u.is_active,
            is_verified: u.is_verified,
            date_joined: date_joined(u),
        }
    }
}

/// What staff may change on a user; `None` leaves a flag as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserFlags {
    pub is_staff: Option<bool>,
    pub is_active: Option<bool>,
}
