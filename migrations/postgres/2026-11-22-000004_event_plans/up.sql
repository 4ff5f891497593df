-- Issue 8: times and places, capacity and a waitlist, lifecycle, calendars, reminders.
-- Every column is optional or defaulted, so events written before keep working as they are.
ALTER TABLE events
    ADD COLUMN starts_at TIMESTAMP,
    ADD COLUMN ends_at TIMESTAMP,
    ADD COLUMN timezone TEXT,
    ADD COLUMN description TEXT NOT NULL DEFAULT '',
    ADD COLUMN location TEXT NOT NULL DEFAULT '',
    ADD COLUMN online_url TEXT,
    ADD COLUMN capacity INTEGER CHECK (capacity IS NULL OR capacity >= 1),
    ADD COLUMN status TEXT NOT NULL DEFAULT 'published'
        CHECK (status IN ('draft', 'published', 'cancelled')),
    ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
        CHECK (visibility IN ('public', 'unlisted')),
    -- iCalendar SEQUENCE: bumped by every important change (SPEC.md §8).
    ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0,
    -- Reminder offsets as a JSON array of ISO 8601 durations, e.g. ["P1D","PT1H"].
    ADD COLUMN reminders TEXT NOT NULL DEFAULT '[]';
CREATE INDEX events_starts_at_idx ON events (starts_at, id) WHERE starts_at IS NOT NULL;

-- A fourth status, set only by the server, and the waitlist's arrival order.
ALTER TABLE attendances DROP CONSTRAINT attendances_status_check;
ALTER TABLE attendances ADD CONSTRAINT attendances_status_check
    CHECK (status IN ('Going', 'Maybe', 'Not Going', 'Waitlisted'));
ALTER TABLE attendances ADD COLUMN waitlist_seq BIGINT;
CREATE INDEX attendances_waitlist_idx ON attendances (event_id, waitlist_seq)
    WHERE status = 'Waitlisted';

-- The listed total without counting: `hidden` is the number of drafts and unlisted events.
ALTER TABLE event_counts ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION events_count_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    delta BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE event_counts
           SET n = n + (SELECT count(*) FROM new_rows),
               hidden = hidden + (SELECT count(*) FROM new_rows
                                   WHERE status = 'draft' OR visibility <> 'public')
         WHERE shard = pg_backend_pid() % 16;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE event_counts
           SET n = n - (SELECT count(*) FROM old_rows),
               hidden = hidden - (SELECT count(*) FROM old_rows
                                   WHERE status = 'draft' OR visibility <> 'public')
         WHERE shard = pg_backend_pid() % 16;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Most updates leave listing alone: then no counter row is touched.
        delta := (SELECT count(*) FROM new_rows WHERE status = 'draft' OR visibility <> 'public')
               - (SELECT count(*) FROM old_rows WHERE status = 'draft' OR visibility <> 'public');
        IF delta <> 0 THEN
            UPDATE event_counts SET hidden = hidden + delta WHERE shard = pg_backend_pid() % 16;
        END IF;
    ELSE
        UPDATE event_counts SET n = 0, hidden = 0;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_count_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_count_change();

-- One row per (event, offset): written when the event is saved, turned into outbox mails
-- when due (src/reminders/). A sent row is kept, so it is never sent twice.
CREATE TABLE reminders (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    offset_seconds BIGINT NOT NULL CHECK (offset_seconds > 0),
    due_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    UNIQUE (event_id, offset_seconds)
);
CREATE INDEX reminders_due_idx ON reminders (due_at, id) WHERE sent_at IS NULL;

-- A user's private calendar feed: only a SHA-256 of the token is kept.
CREATE TABLE calendar_tokens (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
