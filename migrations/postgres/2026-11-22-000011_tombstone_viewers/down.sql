DROP TABLE event_tombstone_viewers;
