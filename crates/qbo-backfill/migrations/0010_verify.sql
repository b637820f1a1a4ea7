-- Verification (`qbo-backfill verify`, pipelines `qb_<plural>_verify`): raw against QuickBooks,
-- one calendar month per window. Each month's result is kept, written as the month ends.

CREATE TABLE ops.verify_months (
    run_id          uuid        NOT NULL REFERENCES ops.runs (id) ON DELETE CASCADE,
    realm_id        text        NOT NULL,
    -- The catalog plural (`time_activities`).
    entity          text        NOT NULL,
    -- The month, clipped to the run's range: [month_start, month_end).
    month_start     timestamptz NOT NULL,
    month_end       timestamptz NOT NULL,
    -- QuickBooks' COUNT(*) and the live raw rows (deleted_at_utc IS NULL) created in the month,
    -- before any repair; NULL when it could not be read.
    qbo_count       bigint,
    raw_count       bigint,
    -- The same two after a repair (NULL when the month agreed at once).
    qbo_count_after bigint,
    raw_count_after bigint,
    status          text        NOT NULL CHECK (status IN ('agreed', 'drifted', 'failed')),
    -- Rows the repair inserted into raw, and live rows it marked deleted.
    loaded          bigint      NOT NULL DEFAULT 0,
    marked_deleted  bigint      NOT NULL DEFAULT 0,
    -- QuickBooks requests the month cost (counts and pages).
    requests        bigint      NOT NULL DEFAULT 0,
    error           text,
    verified_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, month_start)
);

CREATE INDEX verify_months_entity ON ops.verify_months (realm_id, entity, verified_at DESC);

COMMENT ON TABLE ops.verify_months IS
    'One row per month a verify run checked: QuickBooks COUNT(*) against live raw rows by MetaData.CreateTime, and what the repair did';

-- `MetaData.CreateTime` text as a timestamptz, or NULL when it is not an RFC 3339 time with an
-- offset (never an error: one malformed payload must not stop a whole verification). The shape
-- is checked by one regular expression, the day of the month only past the 28th.
CREATE FUNCTION ops.qbo_time(t text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN t ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])$'
             AND left(t, 4) <> '0000'
        THEN CASE
            WHEN substr(t, 9, 2) <= '28'
              OR substr(t, 9, 2)::int
                 <= extract(day FROM (substr(t, 1, 7) || '-01')::date + interval '1 month' - interval '1 day')
            THEN t::timestamptz
        END
    END
$$;
