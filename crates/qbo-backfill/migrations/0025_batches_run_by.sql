-- A batch the command line runs itself (`qbo-backfill run all_backfill …`) names the worker of
-- that command line in `run_by`. Its runs wait `queued` between one and the next; when that
-- command line is gone (killed, or died) they would wait for nobody, or run weeks later on
-- whatever worker starts next. Any process that reaps lost runs cancels them instead, as the
-- command line's Ctrl-C would have, whether the process died during a run or between two.

ALTER TABLE ops.batches ADD COLUMN run_by uuid;

COMMENT ON COLUMN ops.batches.run_by IS
    'The worker (ops.workers.id) of the command line running this batch''s runs one after another; NULL for a batch the queue''s workers run';
