-- The Runs page and GET /api/v1/runs with a million run windows: a run's window counts are
-- summed once, when it ends (its windows never change after that), instead of on every read;
-- only a queued or running run is summed live. And the keyset (created_at, id) has indexes of
-- its own, with and without a status or pipeline filter.
ALTER TABLE ops.runs
    ADD COLUMN w_failed    bigint,
    ADD COLUMN w_succeeded bigint,
    ADD COLUMN w_rows      bigint,
    ADD COLUMN w_inserted  bigint,
    ADD COLUMN w_updated   bigint,
    ADD COLUMN w_unchanged bigint;

COMMENT ON COLUMN ops.runs.w_rows IS
    'w_*: the run''s windows (ops.run_windows) summed when it ended; NULL while it is queued or running (summed live then)';

UPDATE ops.runs r SET
    w_failed = a.failed, w_succeeded = a.succeeded, w_rows = a.rows, w_inserted = a.inserted,
    w_updated = a.updated, w_unchanged = a.unchanged
FROM (SELECT run_id,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
             coalesce(sum(rows_total), 0) AS rows, coalesce(sum(inserted), 0) AS inserted,
             coalesce(sum(updated), 0) AS updated, coalesce(sum(unchanged), 0) AS unchanged
      FROM ops.run_windows GROUP BY run_id) a
WHERE a.run_id = r.id AND r.status IN ('succeeded', 'failed', 'interrupted', 'cancelled');

-- What a retry would load: the few windows of a run that did not succeed.
CREATE INDEX run_windows_unsucceeded ON ops.run_windows (run_id) WHERE status <> 'succeeded';

-- Newest first, and the next page after (created_at, id).
DROP INDEX ops.runs_created;
CREATE INDEX runs_created ON ops.runs (created_at DESC, id DESC);
DROP INDEX ops.runs_status;
CREATE INDEX runs_status ON ops.runs (status, created_at DESC, id DESC);
CREATE INDEX runs_pipeline_created ON ops.runs (pipeline, created_at DESC, id DESC);
