-- Raw QBO data (schema `raw`) and the app's own state (schema `ops`): secrets and OAuth tokens.
-- Runs, windows and triggers follow in later migrations.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ops;

-- Sessions of this database think in UTC, so the runbook's `extract_window_start_utc::date`
-- gives the UTC day whatever the server's TimeZone. Needs ownership of the database; without it
-- the server's setting stays (and the operator can set it).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET timezone TO %L', current_database(), 'UTC');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'Cannot set timezone=UTC on database %: %', current_database(), SQLERRM;
END
$$;

-- One row per QBO entity and company. `payload` is the entity exactly as QBO returned it;
-- `payload_hash` (SHA-256 of the raw JSON text) lets an unchanged row be recognised without
-- rewriting it. The three tables are identical in shape.
CREATE TABLE raw.qb_customers (
    realm_id                 text        NOT NULL,
    id                       text        NOT NULL,
    payload                  jsonb       NOT NULL,
    payload_hash             bytea,
    sync_token               bigint,
    ingested_at_utc          timestamptz NOT NULL,
    extract_window_start_utc timestamptz NOT NULL,
    extract_window_end_utc   timestamptz NOT NULL,
    page_number              integer,
    page_size                integer,
    request_payload          jsonb,
    PRIMARY KEY (realm_id, id)
);

COMMENT ON COLUMN raw.qb_customers.payload_hash IS 'SHA-256 of the raw JSON text as received';

CREATE TABLE raw.qb_items (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE raw.qb_invoices (LIKE raw.qb_customers INCLUDING ALL);

-- Named secrets (client secret, …), encrypted: key_id (1 byte) || nonce (24) || ciphertext.
CREATE TABLE ops.secrets (
    name       text PRIMARY KEY,
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One company's OAuth tokens, encrypted like ops.secrets. The row is locked (FOR UPDATE) for
-- the length of a refresh so that one refresh token is never spent twice.
CREATE TABLE ops.oauth_tokens (
    realm_id                 text PRIMARY KEY,
    refresh_token_enc        bytea       NOT NULL,
    access_token_enc         bytea,
    access_token_expires_at  timestamptz,
    refresh_token_expires_at timestamptz,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    refresh_count            bigint      NOT NULL DEFAULT 0
);
