DROP TABLE event_tombstones;
DROP INDEX events_updated_at_idx;
