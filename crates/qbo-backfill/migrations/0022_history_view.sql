-- History without writing every row twice. `raw.qb_<plural>_history` (0009) became a view with
-- the same columns: the versions a raw table no longer holds (`raw.qb_<plural>_versions`,
-- the former history table renamed, so every version recorded so far stays there) and the
-- version each raw row holds now. A first load writes each row once, like PostgreSQL's `COPY`
-- (before, it wrote it a second time into history); a write that replaces a row first moves the
-- version it replaces into `_versions`, in the same transaction, under the row's lock.
--
-- The raw tables get the two columns the current version needs for the view: the payload's
-- `MetaData.LastUpdatedTime` and the run that wrote it. Rows written before this migration have
-- them NULL; their versions are all in `_versions` already, and the view shows a version the raw
-- table holds only when `_versions` does not (one row per version, as before).
--
-- Tables created on start-up from the catalog (every entity but the first three) are converted
-- here too; start-up creates the missing ones in the new shape.

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT h.relname::text AS history, left(h.relname, length(h.relname) - 8) AS base
        FROM pg_class h
        WHERE h.relnamespace = 'raw'::regnamespace AND h.relkind = 'r'
          AND h.relname LIKE 'qb\_%\_history'
          AND EXISTS (SELECT 1 FROM pg_class b
                      WHERE b.relnamespace = 'raw'::regnamespace AND b.relkind = 'r'
                        AND b.relname = left(h.relname, length(h.relname) - 8))
        ORDER BY h.relname
    LOOP
        EXECUTE format(
            'ALTER TABLE raw.%I ADD COLUMN IF NOT EXISTS last_updated_time timestamptz, '
            'ADD COLUMN IF NOT EXISTS run_id uuid', t.base);
        EXECUTE format('ALTER TABLE raw.%I RENAME TO %I', t.history, t.base || '_versions');
        EXECUTE format('ALTER INDEX IF EXISTS raw.%I RENAME TO %I',
                       t.history || '_pkey', t.base || '_versions_pkey');
        EXECUTE format('ALTER INDEX IF EXISTS raw.%I RENAME TO %I',
                       t.history || '_as_of', t.base || '_versions_as_of');
        EXECUTE format(
            'CREATE VIEW raw.%1$I AS '
            'SELECT realm_id, id, payload_hash, sync_token, payload, last_updated_time, '
            '       seen_at_utc, run_id '
            'FROM raw.%2$I '
            'UNION ALL '
            'SELECT c.realm_id, c.id, c.payload_hash, c.sync_token, c.payload, '
            '       c.last_updated_time, c.ingested_at_utc, c.run_id '
            'FROM raw.%3$I c '
            'WHERE c.payload_hash IS NOT NULL AND NOT EXISTS ('
            '    SELECT 1 FROM raw.%2$I v '
            '    WHERE v.realm_id = c.realm_id AND v.id = c.id '
            '      AND v.payload_hash = c.payload_hash)',
            t.history, t.base || '_versions', t.base);
        EXECUTE format(
            'COMMENT ON VIEW raw.%I IS %L', t.history,
            'Every version of raw.' || t.base || ' rows, one row per distinct payload: '
            'the superseded ones (raw.' || t.base || '_versions) and the current one');
        EXECUTE format(
            'COMMENT ON TABLE raw.%I IS %L', t.base || '_versions',
            'The versions raw.' || t.base || ' rows held before their current one');
    END LOOP;
END
$$;

COMMENT ON COLUMN raw.qb_customers.last_updated_time IS
    'The payload''s MetaData.LastUpdatedTime (NULL when absent or malformed, or written before 0022)';
COMMENT ON COLUMN raw.qb_customers.run_id IS
    'The run that wrote this version (NULL when not written by a run, or written before 0022)';
