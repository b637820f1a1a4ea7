-- Who started a run or a batch, beside what (`trigger`, the origin): the operator signed in to
-- the web UI, the name of the API token, or the system user of the command line. NULL for what
-- a trigger, a webhook or the demo started, and for rows from before.

ALTER TABLE ops.runs ADD COLUMN started_by text;
ALTER TABLE ops.batches ADD COLUMN started_by text;

COMMENT ON COLUMN ops.runs.started_by IS
    'Who started the run: the web UI operator, the API token''s name, or the command line''s system user (NULL: a trigger, a webhook, the demo, or unknown)';
COMMENT ON COLUMN ops.batches.started_by IS
    'Who started the batch (as ops.runs.started_by); its runs carry the same';
