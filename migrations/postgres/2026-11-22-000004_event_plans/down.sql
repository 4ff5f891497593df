DROP TABLE calendar_tokens;
DROP TABLE reminders;
DROP TRIGGER events_count_update ON events;
ALTER TABLE event_counts DROP COLUMN hidden;
CREATE OR REPLACE FUNCTION events_count_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE event_counts SET n = n + (SELECT count(*) FROM new_rows)
         WHERE shard = pg_backend_pid() % 16;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE event_counts SET n = n - (SELECT count(*) FROM old_rows)
         WHERE shard = pg_backend_pid() % 16;
    ELSE
        UPDATE event_counts SET n = 0;
    END IF;
    RETURN NULL;
END
$$;
DROP INDEX attendances_waitlist_idx;
ALTER TABLE attendances DROP COLUMN waitlist_seq;
UPDATE attendances SET status = 'Maybe' WHERE status = 'Waitlisted';
ALTER TABLE attendances DROP CONSTRAINT attendances_status_check;
ALTER TABLE attendances ADD CONSTRAINT attendances_status_check
    CHECK (status IN ('Going', 'Maybe', 'Not Going'));
DROP INDEX events_starts_at_idx;
ALTER TABLE events
    DROP COLUMN reminders, DROP COLUMN sequence, DROP COLUMN visibility, DROP COLUMN status,
    DROP COLUMN capacity, DROP COLUMN online_url, DROP COLUMN location,
    DROP COLUMN description, DROP COLUMN timezone, DROP COLUMN ends_at, DROP COLUMN starts_at;
