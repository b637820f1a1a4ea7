-- The QuickBooks request budget of each company, shared by every process (CLI runs, workers,
-- the server): Intuit allows 500 requests per rolling minute, 10 per rolling second and 10 in
-- flight per company, whoever sends them.
--
-- A request holds a slot from its start until a window span after it completed (the server
-- counts arrivals, somewhere in between). `ops.budget_acquire` decides and inserts a slot in one
-- statement under the company row's lock, so the lock is held for microseconds, not round trips.

-- One row per company: the lock that serialises decisions, and the shared pause after a 429.
CREATE TABLE ops.budget_companies (
    realm_id      text PRIMARY KEY,
    -- No new request starts before this (set after a 429, by any process).
    paused_until  timestamptz,
    -- Last time old slot rows were deleted.
    pruned_at     timestamptz NOT NULL DEFAULT '-infinity'
);

-- One row per request. While in flight `completed_at` is NULL and the request is assumed to end
-- by `expires_at` (start + request timeout + margin): a slot whose process died counts as
-- completed at `expires_at`. `ends_at` is when the request completed, or will at the latest.
CREATE TABLE ops.budget_slots (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    realm_id      text        NOT NULL,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    expires_at    timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL GENERATED ALWAYS AS (coalesce(completed_at, expires_at)) STORED
);

-- A slot counts in a window of span S while ends_at > now - S: one range scan per window.
CREATE INDEX budget_slots_window ON ops.budget_slots (realm_id, ends_at);
CREATE INDEX budget_slots_in_flight ON ops.budget_slots (realm_id, expires_at)
    WHERE completed_at IS NULL;

-- Decides whether one more request of `p_realm` may start now, by the database clock, and if so
-- records its slot. Limits are NULL when off; spans include the guards (60.5 s, 1.05 s); the
-- lease bounds how long an unreleased slot counts as in flight. Returns the new slot's id, or
-- NULL with how long to wait: `wait_ms` > 0 until a window frees a slot or a pause ends;
-- `on_completion` when, besides, an in-flight request must complete first (poll).
CREATE FUNCTION ops.budget_acquire(
    p_realm          text,
    p_per_minute     integer,
    p_per_second     integer,
    p_max_in_flight  integer,
    p_minute_span_us bigint,
    p_second_span_us bigint,
    p_lease_us       bigint,
    OUT slot_id       bigint,
    OUT wait_ms       double precision,
    OUT on_completion boolean
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_now         timestamptz;
    v_paused      timestamptz;
    v_pruned      timestamptz;
    v_wait_until  timestamptz;
    v_limit       integer;
    v_span        interval;
    v_used        bigint;
    v_edge        timestamptz;
    v_minute_span interval := p_minute_span_us * interval '1 microsecond';
    v_second_span interval := p_second_span_us * interval '1 microsecond';
BEGIN
    on_completion := false;
    wait_ms := 0;
    SELECT paused_until, pruned_at INTO v_paused, v_pruned
    FROM ops.budget_companies WHERE realm_id = p_realm FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO ops.budget_companies (realm_id) VALUES (p_realm) ON CONFLICT DO NOTHING;
        SELECT paused_until, pruned_at INTO v_paused, v_pruned
        FROM ops.budget_companies WHERE realm_id = p_realm FOR UPDATE;
    END IF;
    -- After the lock, and each statement below takes a fresh snapshot: every slot committed by
    -- the previous holder is seen.
    v_now := clock_timestamp();

    IF v_paused > v_now THEN
        v_wait_until := v_paused;
    END IF;

    IF p_max_in_flight IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM ops.budget_slots
        WHERE realm_id = p_realm AND completed_at IS NULL AND expires_at > v_now;
        IF v_used >= p_max_in_flight THEN
            on_completion := true;
        END IF;
    END IF;

    FOR v_limit, v_span IN
        SELECT * FROM (VALUES (p_per_minute, v_minute_span), (p_per_second, v_second_span)) w
        WHERE w.column1 IS NOT NULL
    LOOP
        SELECT count(*) INTO v_used FROM ops.budget_slots
        WHERE realm_id = p_realm AND ends_at > v_now - v_span;
        IF v_used >= v_limit THEN
            -- Completed slots (ends_at <= now) leave the window first, oldest first; the
            -- (used - limit)-th one leaving makes room. If that one is still in flight, only its
            -- completion tells when.
            SELECT ends_at INTO v_edge FROM ops.budget_slots
            WHERE realm_id = p_realm AND ends_at > v_now - v_span
            ORDER BY ends_at OFFSET v_used - v_limit LIMIT 1;
            IF v_edge <= v_now THEN
                v_wait_until := greatest(v_wait_until, v_edge + v_span);
            ELSE
                on_completion := true;
            END IF;
        END IF;
    END LOOP;

    IF v_wait_until IS NULL AND NOT on_completion THEN
        INSERT INTO ops.budget_slots (realm_id, started_at, expires_at)
        VALUES (p_realm, v_now, v_now + p_lease_us * interval '1 microsecond')
        RETURNING id INTO slot_id;
        IF v_pruned < v_now - interval '10 seconds' THEN
            -- Kept five minutes after they ended: far beyond the longest window (60.5 s).
            DELETE FROM ops.budget_slots
            WHERE realm_id = p_realm AND ends_at < v_now - interval '5 minutes';
            UPDATE ops.budget_companies SET pruned_at = v_now WHERE realm_id = p_realm;
        END IF;
    ELSIF v_wait_until IS NOT NULL THEN
        wait_ms := greatest(extract(epoch FROM v_wait_until - v_now) * 1000, 0);
    END IF;
END
$$;

-- Marks a slot's request completed (by the database clock). Idempotent.
CREATE FUNCTION ops.budget_release(p_slot_id bigint) RETURNS void
LANGUAGE sql
AS $$
    UPDATE ops.budget_slots SET completed_at = greatest(clock_timestamp(), started_at)
    WHERE id = p_slot_id AND completed_at IS NULL;
$$;

-- Holds every process's new requests of `p_realm` back for `p_wait_us` from now; never shortens
-- a pause already in place.
CREATE FUNCTION ops.budget_pause(p_realm text, p_wait_us bigint) RETURNS timestamptz
LANGUAGE sql
AS $$
    INSERT INTO ops.budget_companies AS c (realm_id, paused_until)
    VALUES (p_realm, clock_timestamp() + p_wait_us * interval '1 microsecond')
    ON CONFLICT (realm_id) DO UPDATE
        SET paused_until = greatest(c.paused_until, EXCLUDED.paused_until)
    RETURNING paused_until;
$$;
