-- Keep GET /api/events/ flat as the table grows, and cheap (bench/README.md).
-- A page in the default order (date, then id), filtered by date or by organizer or not,
-- is read from an index that holds every column a list shows: no lookup in the table
-- per row. Matches are counted from the same indexes.
DROP INDEX events_date_id_idx;
CREATE INDEX events_date_id_list_idx ON events (date, id, name, organizer_id);
DROP INDEX events_organizer_date_idx;
CREATE INDEX events_organizer_date_id_list_idx ON events (organizer_id, date, id, name);
-- ordering=name / -name without sorting the whole table.
CREATE INDEX events_name_id_idx ON events (name, id);

-- The default page's X-Total-Count without counting the whole table on every request:
-- the number of events, kept by triggers in the same transaction as each insert and
-- delete (src/events/store.rs reads it). SQLite has one writer at a time: one row.
CREATE TABLE event_counts (
    shard INTEGER PRIMARY KEY NOT NULL,
    n BIGINT NOT NULL
);
INSERT INTO event_counts (shard, n) SELECT 0, count(*) FROM events;
CREATE TRIGGER events_count_insert AFTER INSERT ON events
BEGIN
    UPDATE event_counts SET n = n + 1 WHERE shard = 0;
END;
CREATE TRIGGER events_count_delete AFTER DELETE ON events
BEGIN
    UPDATE event_counts SET n = n - 1 WHERE shard = 0;
END;
