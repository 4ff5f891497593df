//! Who may do what to an event: the workshop's `IsOrganizerOrReadOnly`, made complete.

use super::types::{DRAFT, EventRow, Viewer};
use crate::accounts::types::User;

/// Read by id (detail, calendar, answers): everyone, except a draft, which only its
/// organizer and staff see. Others get a 404, as for an event that does not exist.
pub fn can_view(viewer: Viewer, event: &EventRow) -> bool {
    event.status != DRAFT
        || viewer.is_staff
        || (viewer.id.is_some() && viewer.id == event.organizer_id)
}

/// Change or delete: the organizer, or staff. An event whose organizer was deleted has
/// no organizer, so only staff can change it.
pub fn can_edit(user: &User, organizer_id: Option<i64>) -> bool {
    user.is_staff || organizer_id == Some(user.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, is_staff: bool) -> User {
        User {
            id,
            username: format!("u{id}"),
            email: format!("u{id}@example.com"),
            password: String::new(),
            is_staff,
            is_active: true,
            date_joined: chrono::Utc::now().naive_utc(),
            tokens_valid_after: None,
            is_verified: false,
        }
    }

    #[test]
    fn edit_permission_table() {
        let cases = [
            // (user id, staff, organizer, allowed)
            (1, false, Some(1), true),
            (2, false, Some(1), false),
            (2, true, Some(1), true),
            (1, false, None, false),
            (3, true, None, true),
        ];
        for (id, staff, organizer, allowed) in cases {
            assert_eq!(
                can_edit(&user(id, staff), organizer),
                allowed,
                "user {id} staff={staff} organizer={organizer:?}"
            );
        }
    }
}
