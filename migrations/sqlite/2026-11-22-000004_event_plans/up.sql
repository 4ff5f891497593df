-- Issue 8: times and places, capacity and a waitlist, lifecycle, calendars, reminders.
-- Every column is optional or defaulted, so events written before keep working as they are.
ALTER TABLE events ADD COLUMN starts_at TIMESTAMP;
ALTER TABLE events ADD COLUMN ends_at TIMESTAMP;
ALTER TABLE events ADD COLUMN timezone TEXT;
ALTER TABLE events ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN location TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN online_url TEXT;
ALTER TABLE events ADD COLUMN capacity INTEGER CHECK (capacity IS NULL OR capacity >= 1);
ALTER TABLE events ADD COLUMN status TEXT NOT NULL DEFAULT 'published'
    CHECK (status IN ('draft', 'published', 'cancelled'));
ALTER TABLE events ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'unlisted'));
-- iCalendar SEQUENCE: bumped by every important change (SPEC.md §8).
ALTER TABLE events ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
-- Reminder offsets as a JSON array of ISO 8601 durations, e.g. ["P1D","PT1H"].
ALTER TABLE events ADD COLUMN reminders TEXT NOT NULL DEFAULT '[]';
CREATE INDEX events_starts_at_idx ON events (starts_at, id) WHERE starts_at IS NOT NULL;

-- A fourth status, set only by the server, and the waitlist's arrival order. SQLite
-- cannot change a CHECK in place: the table is rebuilt (nothing references it).
CREATE TABLE attendances_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('Going', 'Maybe', 'Not Going', 'Waitlisted')),
    waitlist_seq BIGINT,
    UNIQUE (event_id, user_id)
);
INSERT INTO attendances_new (id, event_id, user_id, status)
    SELECT id, event_id, user_id, status FROM attendances;
DROP TABLE attendances;
ALTER TABLE attendances_new RENAME TO attendances;
CREATE INDEX attendances_user_idx ON attendances (user_id);
CREATE INDEX attendances_waitlist_idx ON attendances (event_id, waitlist_seq)
    WHERE status = 'Waitlisted';

-- The listed total without counting: `hidden` is the number of drafts and unlisted events.
ALTER TABLE event_counts ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
DROP TRIGGER events_count_insert;
DROP TRIGGER events_count_delete;
CREATE TRIGGER events_count_insert AFTER INSERT ON events
BEGIN
    UPDATE event_counts
       SET n = n + 1, hidden = hidden + (NEW.status = 'draft' OR NEW.visibility <> 'public')
     WHERE shard = 0;
END;
CREATE TRIGGER events_count_delete AFTER DELETE ON events
BEGIN
    UPDATE event_counts
       SET n = n - 1, hidden = hidden - (OLD.status = 'draft' OR OLD.visibility <> 'public')
     WHERE shard = 0;
END;
CREATE TRIGGER events_count_update AFTER UPDATE OF status, visibility ON events
WHEN (OLD.status = 'draft' OR OLD.visibility <> 'public')
  <> (NEW.status = 'draft' OR NEW.visibility <> 'public')
BEGIN
    UPDATE event_counts
       SET hidden = hidden + (NEW.status = 'draft' OR NEW.visibility <> 'public')
                           - (OLD.status = 'draft' OR OLD.visibility <> 'public')
     WHERE shard = 0;
END;

-- One row per (event, offset): written when the event is saved, turned into outbox mails
-- when due (src/reminders/). A sent row is kept, so it is never sent twice.
CREATE TABLE reminders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    offset_seconds BIGINT NOT NULL CHECK (offset_seconds > 0),
    due_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    UNIQUE (event_id, offset_seconds)
);
CREATE INDEX reminders_due_idx ON reminders (due_at, id) WHERE sent_at IS NULL;

-- A user's private calendar feed: only a SHA-256 of the token is kept.
CREATE TABLE calendar_tokens (
    user_id INTEGER PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
