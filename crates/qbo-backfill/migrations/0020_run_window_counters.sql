-- GET /api/v1/runs and the Runs page while many runs load: a queued or running run's window
-- counts were summed from its windows on every read (50 running one-year runs: 18,250 windows
-- per read, 215 ms median under load). Now every run keeps them in its row, moved by the
-- statements that change its windows (one UPDATE of ops.runs per statement and run, after the
-- statement, from its transition tables), so a read sums nothing.
UPDATE ops.runs r SET
    w_failed = a.failed, w_succeeded = a.succeeded, w_rows = a.rows, w_inserted = a.inserted,
    w_updated = a.updated, w_unchanged = a.unchanged
FROM (SELECT run_id,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
             coalesce(sum(rows_total), 0) AS rows, coalesce(sum(inserted), 0) AS inserted,
             coalesce(sum(updated), 0) AS updated, coalesce(sum(unchanged), 0) AS unchanged
      FROM ops.run_windows GROUP BY run_id) a
WHERE a.run_id = r.id AND r.w_rows IS NULL;

UPDATE ops.runs SET w_failed = 0, w_succeeded = 0, w_rows = 0, w_inserted = 0, w_updated = 0,
    w_unchanged = 0
WHERE w_rows IS NULL;

ALTER TABLE ops.runs
    ALTER COLUMN w_failed SET DEFAULT 0, ALTER COLUMN w_failed SET NOT NULL,
    ALTER COLUMN w_succeeded SET DEFAULT 0, ALTER COLUMN w_succeeded SET NOT NULL,
    ALTER COLUMN w_rows SET DEFAULT 0, ALTER COLUMN w_rows SET NOT NULL,
    ALTER COLUMN w_inserted SET DEFAULT 0, ALTER COLUMN w_inserted SET NOT NULL,
    ALTER COLUMN w_updated SET DEFAULT 0, ALTER COLUMN w_updated SET NOT NULL,
    ALTER COLUMN w_unchanged SET DEFAULT 0, ALTER COLUMN w_unchanged SET NOT NULL;

COMMENT ON COLUMN ops.runs.w_rows IS
    'w_*: the sums of the run''s windows (ops.run_windows), kept by the run_windows_counters triggers';

-- Moves the w_* of the runs whose windows a statement inserted, changed or deleted by what it
-- changed (new rows counted in, old rows counted out). One function for the three triggers:
-- each sees only its own transition tables, so the statement is put together for TG_OP.
CREATE FUNCTION ops.run_windows_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted_in  text := 'SELECT run_id, 1 AS sign, status, rows_total, inserted, updated, '
                        'unchanged FROM run_windows_new';
    counted_out text := 'SELECT run_id, -1 AS sign, status, rows_total, inserted, updated, '
                        'unchanged FROM run_windows_old';
    moved_ids uuid[];
    moved_failed bigint[];
    moved_succeeded bigint[];
    moved_rows_total bigint[];
    moved_inserted bigint[];
    moved_updated bigint[];
    moved_unchanged bigint[];
BEGIN
    EXECUTE format(
        'SELECT array_agg(run_id ORDER BY run_id), array_agg(failed ORDER BY run_id), '
        '  array_agg(succeeded ORDER BY run_id), array_agg(rows ORDER BY run_id), '
        '  array_agg(inserted ORDER BY run_id), array_agg(updated ORDER BY run_id), '
        '  array_agg(unchanged ORDER BY run_id) '
        'FROM (SELECT run_id, '
        '    coalesce(sum(sign) FILTER (WHERE status = ''failed''), 0) AS failed, '
        '    coalesce(sum(sign) FILTER (WHERE status = ''succeeded''), 0) AS succeeded, '
        '    sum(sign * rows_total) AS rows, sum(sign * inserted) AS inserted, '
        '    sum(sign * updated) AS updated, sum(sign * unchanged) AS unchanged '
        '  FROM (%s) changed GROUP BY run_id) d '
        'WHERE (failed, succeeded, rows, inserted, updated, unchanged) '
        '  IS DISTINCT FROM (0, 0, 0, 0, 0, 0)',
        CASE TG_OP
            WHEN 'INSERT' THEN counted_in
            WHEN 'DELETE' THEN counted_out
            ELSE counted_in || ' UNION ALL ' || counted_out
        END)
    INTO moved_ids, moved_failed, moved_succeeded, moved_rows_total, moved_inserted,
        moved_updated, moved_unchanged;
    -- Nothing moved (a claim, a release): the runs are not written at all.
    IF moved_ids IS NOT NULL THEN
        UPDATE ops.runs r SET w_failed = r.w_failed + d.failed,
            w_succeeded = r.w_succeeded + d.succeeded, w_rows = r.w_rows + d.rows,
            w_inserted = r.w_inserted + d.inserted, w_updated = r.w_updated + d.updated,
            w_unchanged = r.w_unchanged + d.unchanged
        FROM unnest(moved_ids, moved_failed, moved_succeeded, moved_rows_total,
                    moved_inserted, moved_updated, moved_unchanged)
            AS d(run_id, failed, succeeded, rows, inserted, updated, unchanged)
        WHERE r.id = d.run_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_windows_counters_insert AFTER INSERT ON ops.run_windows
    REFERENCING NEW TABLE AS run_windows_new
    FOR EACH STATEMENT EXECUTE FUNCTION ops.run_windows_count();
CREATE TRIGGER run_windows_counters_update AFTER UPDATE ON ops.run_windows
    REFERENCING OLD TABLE AS run_windows_old NEW TABLE AS run_windows_new
    FOR EACH STATEMENT EXECUTE FUNCTION ops.run_windows_count();
CREATE TRIGGER run_windows_counters_delete AFTER DELETE ON ops.run_windows
    REFERENCING OLD TABLE AS run_windows_old
    FOR EACH STATEMENT EXECUTE FUNCTION ops.run_windows_count();
