-- Keep GET /api/events/ flat as the table grows, and cheap (bench/README.md).
-- A page in the default order (date, then id), filtered by date or by organizer or not,
-- is read in order from an index that also carries every column a list shows (an
-- index-only scan once VACUUM has marked the pages visible). Matches are counted from the
-- same indexes.
DROP INDEX events_date_id_idx;
CREATE INDEX events_date_id_list_idx ON events (date, id) INCLUDE (name, organizer_id);
DROP INDEX events_organizer_date_idx;
CREATE INDEX events_organizer_date_id_list_idx ON events (organizer_id, date, id) INCLUDE (name);
-- ordering=name / -name without sorting the whole table.
CREATE INDEX events_name_id_idx ON events (name, id);

-- search: `lower(name) LIKE lower('%term%')` uses a trigram index where pg_trgm can be
-- had. The extension is database-wide: it is installed once, in `public` (not in the
-- schema being migrated, which may be dropped with everything in it), and found where it
-- already is otherwise. Without it (no contrib package, no privilege) the migration still
-- succeeds and search stays a scan.
DO $$
DECLARE
    trgm_schema name;
BEGIN
    SELECT n.nspname INTO trgm_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NULL THEN
        BEGIN
            CREATE EXTENSION pg_trgm SCHEMA public;
        EXCEPTION WHEN OTHERS THEN
            -- Another database session may have installed it meanwhile.
            RAISE NOTICE 'pg_trgm not installed (%)', SQLERRM;
        END;
        SELECT n.nspname INTO trgm_schema
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm';
    END IF;
    IF trgm_schema IS NULL THEN
        RAISE NOTICE 'pg_trgm is unavailable: events_name_trgm_idx not created, search scans';
    ELSE
        EXECUTE format(
            'CREATE INDEX events_name_trgm_idx ON events USING gin (lower(name) %I.gin_trgm_ops)',
            trgm_schema);
    END IF;
END
$$;

-- The default page's X-Total-Count without counting the whole table on every request:
-- the number of events, kept by statement triggers in the same transaction as each
-- insert, delete and truncate (src/events/store.rs sums it). Sixteen shards, one per
-- backend process (pid modulo 16), so concurrent creates do not queue on one row lock,
-- and a transaction only ever locks its own shard (no deadlock between two of them).
CREATE TABLE event_counts (
    shard INTEGER PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO event_counts (shard, n) SELECT s, 0 FROM generate_series(0, 15) AS s;
UPDATE event_counts SET n = (SELECT count(*) FROM events) WHERE shard = 0;

CREATE FUNCTION events_count_change() RETURNS trigger
LANGUAGE plpgsql
-- The tables are found in the schema they were created in, whatever the caller's path.
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
CREATE TRIGGER events_count_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_count_change();
CREATE TRIGGER events_count_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_count_change();
CREATE TRIGGER events_count_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_count_change();
