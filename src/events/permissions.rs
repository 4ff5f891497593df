//! Who may do what to an event: the workshop's `IsOrganizerOrReadOnly`, made complete.

use super::types::{DRAFT, EventRow, Viewer};
use crate::accounts::types::User;

/// Read by id (detail, calendar, answers): everyone, except a draft, which only its
/// organizer, its co-organizers and staff see. Others get a 404, as for an event that
/// does not exist. `viewer` must come from `store::viewer_for` for co-organizers to count.
pub fn can_view(viewer: Viewer, event: &EventRow) -> bool {
    event.status != DRAFT
        || viewer.is_staff
        || viewer.organizes(event.organizer_id)
        || viewer.co_organizer
}

/// Delete, and manage co-organizers: the organizer, or staff. An event whose organizer
/// was deleted has no organizer, so only staff can.
pub fn can_edit(user: &User, organizer_id: Option<i64>) -> bool {
    user.is_staff || organizer_id == Some(user.id)
}

/// Change the event (PUT, PATCH) and export its attendees: the organizer, staff, and the
/// event's co-organizers (`viewer` from `store::viewer_for`).
pub fn can_change(viewer: Viewer, organizer_id: Option<i64>) -> bool {
    viewer.is_staff || viewer.organizes(organizer_id) || viewer.co_organizer
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
    fn co_organizers_change_but_do_not_delete() {
        let co = Viewer {
            id: Some(2),
            is_staff: false,
            co_organizer: true,
        };
        assert!(can_change(co, Some(1)));
        assert!(!can_edit(&user(2, false), Some(1)));
        assert!(!can_change(
            Viewer {
                co_organizer: false,
                ..co
            },
            Some(1)
        ));
        assert!(can_change(Viewer::of(Some(&user(1, false))), Some(1)));
        assert!(!can_change(Viewer::of(None), None));
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
