-- Incremental syncs: deletions seen through change data capture, and one cursor per company and
-- entity. The raw tables of the other entities are created on start-up from the catalog
-- (`LIKE raw.qb_customers INCLUDING ALL`), so they get `deleted_at_utc` too.

ALTER TABLE raw.qb_customers ADD COLUMN deleted_at_utc timestamptz;
ALTER TABLE raw.qb_items ADD COLUMN deleted_at_utc timestamptz;
ALTER TABLE raw.qb_invoices ADD COLUMN deleted_at_utc timestamptz;

COMMENT ON COLUMN raw.qb_customers.deleted_at_utc IS
    'When QuickBooks reported the entity deleted (change data capture); the payload is the last one seen';

-- Where the last successful incremental sync of an entity ended for a company. The next sync
-- without dates starts a little before it.
CREATE TABLE ops.sync_cursors (
    realm_id       text        NOT NULL,
    entity         text        NOT NULL,
    synced_through timestamptz NOT NULL,
    run_id         uuid,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm_id, entity)
);

-- Heartbeats renew the leases of an execution's running windows (a span holds thousands).
CREATE INDEX windows_running_execution ON ops.windows (execution_id) WHERE status = 'running';
