-- A deleted draft or unlisted event was listed for its co-organizers too: they are kept
-- with its tombstone, so their sync learns of the deletion (SPEC.md §15).
CREATE TABLE event_tombstone_viewers (
    event_id TEXT NOT NULL REFERENCES event_tombstones (event_id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, event_id)
);
