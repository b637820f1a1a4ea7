-- Requests per company and calendar month (UTC), against Intuit's monthly allowance (the free
-- tier allows 500,000 read requests a month, then blocks the app until the month ends). Counted
-- when a request's budget slot is released, so every process on the database counts; a slot
-- never released (its process died mid-request) is not counted.
CREATE TABLE ops.request_months (
    realm_id   text        NOT NULL,
    month      date        NOT NULL,
    requests   bigint      NOT NULL DEFAULT 0,
    -- When the 80 % warning was given for this month (once).
    warned_at  timestamptz,
    PRIMARY KEY (realm_id, month)
);

CREATE OR REPLACE FUNCTION ops.budget_release(p_slot_id bigint) RETURNS void
LANGUAGE sql
AS $$
    WITH done AS (
        UPDATE ops.budget_slots SET completed_at = greatest(clock_timestamp(), started_at)
        WHERE id = p_slot_id AND completed_at IS NULL
        RETURNING realm_id, started_at
    )
    INSERT INTO ops.request_months AS m (realm_id, month, requests)
    SELECT realm_id, date_trunc('month', started_at AT TIME ZONE 'UTC')::date, 1 FROM done
    ON CONFLICT (realm_id, month) DO UPDATE SET requests = m.requests + 1;
$$;
