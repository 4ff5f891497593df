-- Issue 9: incremental sync (SPEC.md §15). `events.updated_at` is the change time of
-- an event (its row or its attendances); a deleted event leaves a tombstone, with what
-- the list's visibility rule needs, kept for TOMBSTONE_RETENTION.
CREATE INDEX events_updated_at_idx ON events (updated_at, id);
CREATE TABLE event_tombstones (
    event_id TEXT PRIMARY KEY NOT NULL,
    deleted_at TIMESTAMP NOT NULL,
    organizer_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    listed BOOLEAN NOT NULL CHECK (listed IN (0, 1))
);
CREATE INDEX event_tombstones_deleted_at_idx ON event_tombstones (deleted_at, event_id);
