-- Issue 9: users the organizer lets edit the event (SPEC.md §16). The organizer is not a
-- row here; deleting the event or the user removes the row.
CREATE TABLE co_organizers (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
-- The list filter and account deletion look rows up by user.
CREATE INDEX co_organizers_user_idx ON co_organizers (user_id, event_id);
