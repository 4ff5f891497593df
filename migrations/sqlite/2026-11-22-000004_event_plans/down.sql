DROP TABLE calendar_tokens;
DROP TABLE reminders;
DROP TRIGGER events_count_update;
DROP TRIGGER events_count_insert;
DROP TRIGGER events_count_delete;
CREATE TRIGGER events_count_insert AFTER INSERT ON events
BEGIN
    UPDATE event_counts SET n = n + 1 WHERE shard = 0;
END;
CREATE TRIGGER events_count_delete AFTER DELETE ON events
BEGIN
    UPDATE event_counts SET n = n - 1 WHERE shard = 0;
END;
ALTER TABLE event_counts DROP COLUMN hidden;
CREATE TABLE attendances_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('Going', 'Maybe', 'Not Going')),
    UNIQUE (event_id, user_id)
);
INSERT INTO attendances_old (id, event_id, user_id, status)
    SELECT id, event_id, user_id, CASE status WHEN 'Waitlisted' THEN 'Maybe' ELSE status END
      FROM attendances;
DROP TABLE attendances;
ALTER TABLE attendances_old RENAME TO attendances;
CREATE INDEX attendances_user_idx ON attendances (user_id);
DROP INDEX events_starts_at_idx;
ALTER TABLE events DROP COLUMN reminders;
ALTER TABLE events DROP COLUMN sequence;
ALTER TABLE events DROP COLUMN visibility;
ALTER TABLE events DROP COLUMN status;
ALTER TABLE events DROP COLUMN capacity;
ALTER TABLE events DROP COLUMN online_url;
ALTER TABLE events DROP COLUMN location;
ALTER TABLE events DROP COLUMN description;
ALTER TABLE events DROP COLUMN timezone;
ALTER TABLE events DROP COLUMN ends_at;
ALTER TABLE events DROP COLUMN starts_at;
