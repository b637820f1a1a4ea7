-- Batches (issue 17): one action for the whole company. `all_backfill` enqueues one backfill run
-- per entity, `all_incremental` one incremental sync per entity, in one transaction; each run
-- names its batch, so the batch's progress is the sum of its runs' and a retry of the batch
-- retries its failed runs.

CREATE TABLE ops.batches (
    id             uuid        PRIMARY KEY,
    name           text        NOT NULL CHECK (name IN ('all_backfill', 'all_incremental')),
    realm_id       text        NOT NULL,
    -- NULL for an incremental batch without dates (each sync continues from its cursor).
    fecha_inicio   date,
    fecha_fin      date,
    trigger        text        NOT NULL,
    trigger_id     uuid,
    created_at     timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE ops.runs ADD COLUMN batch_id uuid REFERENCES ops.batches (id);
CREATE INDEX runs_batch ON ops.runs (batch_id) WHERE batch_id IS NOT NULL;

COMMENT ON TABLE ops.batches IS
    'One action over every entity of a company (all_backfill, all_incremental): its runs are the rows of ops.runs with this batch_id';
COMMENT ON COLUMN ops.runs.batch_id IS
    'The batch (ops.batches) this run was enqueued with, if any; a retry of a batch run keeps it';
