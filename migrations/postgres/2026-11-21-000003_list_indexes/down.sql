DROP TRIGGER events_count_truncate ON events;
DROP TRIGGER events_count_delete ON events;
DROP TRIGGER events_count_insert ON events;
DROP FUNCTION events_count_change();
DROP TABLE event_counts;
-- pg_trgm stays: other schemas and databases may use it.
DROP INDEX IF EXISTS events_name_trgm_idx;
DROP INDEX events_name_id_idx;
DROP INDEX events_organizer_date_id_list_idx;
CREATE INDEX events_organizer_date_idx ON events (organizer_id, date);
DROP INDEX events_date_id_list_idx;
CREATE INDEX events_date_id_idx ON events (date, id);
