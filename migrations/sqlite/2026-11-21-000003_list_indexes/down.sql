DROP TRIGGER events_count_delete;
DROP TRIGGER events_count_insert;
DROP TABLE event_counts;
DROP INDEX events_name_id_idx;
DROP INDEX events_organizer_date_id_list_idx;
CREATE INDEX events_organizer_date_idx ON events (organizer_id, date);
DROP INDEX events_date_id_list_idx;
CREATE INDEX events_date_id_idx ON events (date, id);
