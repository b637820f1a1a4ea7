-- History: every version a raw table has held, and how a deletion was found.
--
-- `raw.qb_<plural>_history` gets one row per version of an entity: written by the same statement
-- that inserts or updates the raw row, and only when that statement writes (an unchanged row is
-- never written, so it adds no version). A version is stored once: `payload_hash` (SHA-256 of
-- the raw JSON text, as in the raw table) is part of the key. The history tables of the other
-- entities are created on start-up from the catalog (`LIKE raw.qb_customers_history INCLUDING
-- ALL`), like their raw tables.

CREATE TABLE raw.qb_customers_history (
    realm_id          text        NOT NULL,
    id                text        NOT NULL,
    payload_hash      bytea       NOT NULL,
    sync_token        bigint,
    payload           jsonb       NOT NULL,
    last_updated_time timestamptz,
    seen_at_utc       timestamptz NOT NULL,
    run_id            uuid,
    PRIMARY KEY (realm_id, id, payload_hash)
);

-- "As of" queries: the newest version of an entity whose LastUpdatedTime is before a moment.
CREATE INDEX qb_customers_history_as_of
    ON raw.qb_customers_history (realm_id, id, last_updated_time);

COMMENT ON TABLE raw.qb_customers_history IS
    'Every version of raw.qb_customers rows, one row per distinct payload';
COMMENT ON COLUMN raw.qb_customers_history.last_updated_time IS
    'The payload''s MetaData.LastUpdatedTime (NULL when absent or malformed)';
COMMENT ON COLUMN raw.qb_customers_history.seen_at_utc IS
    'When this version was first written to the raw table';
COMMENT ON COLUMN raw.qb_customers_history.run_id IS
    'The run that wrote it (NULL when not written by a run, or copied from a table older than history)';

CREATE TABLE raw.qb_items_history (LIKE raw.qb_customers_history INCLUDING ALL);
CREATE TABLE raw.qb_invoices_history (LIKE raw.qb_customers_history INCLUDING ALL);

-- `text` to `timestamptz`, NULL instead of an error: for copying the versions already stored
-- (here, and on start-up for the catalog's other tables), whose payloads nothing has validated.
CREATE FUNCTION ops.timestamptz_or_null(value text) RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

-- The versions stored before history existed are its first versions (seen when ingested; run
-- unknown).
INSERT INTO raw.qb_customers_history
SELECT realm_id, id, payload_hash, sync_token, payload,
       ops.timestamptz_or_null(payload #>> '{MetaData,LastUpdatedTime}'), ingested_at_utc, NULL
FROM raw.qb_customers WHERE payload_hash IS NOT NULL;
INSERT INTO raw.qb_items_history
SELECT realm_id, id, payload_hash, sync_token, payload,
       ops.timestamptz_or_null(payload #>> '{MetaData,LastUpdatedTime}'), ingested_at_utc, NULL
FROM raw.qb_items WHERE payload_hash IS NOT NULL;
INSERT INTO raw.qb_invoices_history
SELECT realm_id, id, payload_hash, sync_token, payload,
       ops.timestamptz_or_null(payload #>> '{MetaData,LastUpdatedTime}'), ingested_at_utc, NULL
FROM raw.qb_invoices WHERE payload_hash IS NOT NULL;

-- How a deletion was found: `cdc` (change data capture, during an incremental sync) or `verify`
-- (a comparison of raw with QuickBooks). Set with `deleted_at_utc`, cleared with it when the
-- entity is seen again. Until now only change data capture marked rows deleted.
ALTER TABLE raw.qb_customers ADD COLUMN deleted_by text CHECK (deleted_by IN ('cdc', 'verify'));
ALTER TABLE raw.qb_items ADD COLUMN deleted_by text CHECK (deleted_by IN ('cdc', 'verify'));
ALTER TABLE raw.qb_invoices ADD COLUMN deleted_by text CHECK (deleted_by IN ('cdc', 'verify'));

COMMENT ON COLUMN raw.qb_customers.deleted_by IS
    'How the deletion was found: cdc (change data capture) or verify (comparison with QuickBooks)';

UPDATE raw.qb_customers SET deleted_by = 'cdc' WHERE deleted_at_utc IS NOT NULL;
UPDATE raw.qb_items SET deleted_by = 'cdc' WHERE deleted_at_utc IS NOT NULL;
UPDATE raw.qb_invoices SET deleted_by = 'cdc' WHERE deleted_at_utc IS NOT NULL;
