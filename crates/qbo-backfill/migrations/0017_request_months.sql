-- Requests per company and calendar month (UTC), against Intuit's monthly allowance (the free
-- tier allows 500,000 read requests a month, then blocks the app until the month ends). Every
-- request holds a slot in ops.budget_slots (every process on the database); the slots still there
-- are counted live, and a statement trigger adds the ones the budget prunes (five minutes after
-- they end) here, so nothing is added to the hot path of a request.
CREATE TABLE ops.request_months (
    realm_id   text        NOT NULL,
    month      date        NOT NULL,
    requests   bigint      NOT NULL DEFAULT 0,
    -- When the 80 % warning was given for this month (once).
    warned_at  timestamptz,
    PRIMARY KEY (realm_id, month)
);

CREATE FUNCTION ops.count_pruned_slots() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO ops.request_months AS m (realm_id, month, requests)
    SELECT realm_id, date_trunc('month', started_at AT TIME ZONE 'UTC')::date, count(*)
    FROM pruned GROUP BY 1, 2
    ON CONFLICT (realm_id, month) DO UPDATE SET requests = m.requests + EXCLUDED.requests;
    RETURN NULL;
END
$$;

CREATE TRIGGER budget_slots_counted AFTER DELETE ON ops.budget_slots
REFERENCING OLD TABLE AS pruned FOR EACH STATEMENT EXECUTE FUNCTION ops.count_pruned_slots();

-- The refresh-token end a `token_expiring` warning was given for (once per token).
ALTER TABLE ops.oauth_tokens ADD COLUMN expiry_warned_for timestamptz;
