-- The rolling second counts a request on a warm connection from its start (the client's
-- `qbo::Counted`): such a request reaches QuickBooks a steady network delay after it starts, so
-- holding its slot until a span after its answer, as before, spent a quarter of the allowance
-- (1.35 s a slot with 300 ms answers). A slot that may have opened a connection, and every slot
-- of a client that was throttled in the last hour, still counts from its completion, as does
-- every slot in the rolling minute.

ALTER TABLE ops.budget_slots ADD COLUMN from_start boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN ops.budget_slots.from_start IS
    'Counts in the rolling second from started_at (warm connection) instead of from ends_at';

DROP FUNCTION ops.budget_acquire(text, integer, integer, integer, bigint, bigint, bigint);

-- As in 0004, plus `p_from_start` for the new slot: in the rolling second a slot counts while
-- its base (started_at when from_start, else ends_at) is inside the span; in the minute, while
-- ends_at is. Every slot counted by its start also has ends_at >= started_at, so the range scan
-- on (realm_id, ends_at) still finds every slot of either window.
CREATE FUNCTION ops.budget_acquire(
    p_realm          text,
    p_per_minute     integer,
    p_per_second     integer,
    p_max_in_flight  integer,
    p_minute_span_us bigint,
    p_second_span_us bigint,
    p_lease_us       bigint,
    p_from_start     boolean DEFAULT false,
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
    v_by_start    boolean;
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

    FOR v_limit, v_span, v_by_start IN
        SELECT * FROM (VALUES (p_per_minute, v_minute_span, false),
                              (p_per_second, v_second_span, true)) w
        WHERE w.column1 IS NOT NULL
    LOOP
        SELECT count(*) INTO v_used FROM ops.budget_slots
        WHERE realm_id = p_realm AND ends_at > v_now - v_span
          AND (CASE WHEN v_by_start AND from_start THEN started_at ELSE ends_at END)
              > v_now - v_span;
        IF v_used >= v_limit THEN
            -- Slots leave the window in the order of their base, oldest first; the
            -- (used - limit)-th one leaving makes room. If its base is still ahead (a slot
            -- counted from a completion that has not happened), only that completion tells when.
            SELECT b.base INTO v_edge FROM (
                SELECT CASE WHEN v_by_start AND from_start THEN started_at ELSE ends_at END
                       AS base
                FROM ops.budget_slots
                WHERE realm_id = p_realm AND ends_at > v_now - v_span
            ) b
            WHERE b.base > v_now - v_span
            ORDER BY b.base OFFSET v_used - v_limit LIMIT 1;
            IF v_edge <= v_now THEN
                v_wait_until := greatest(v_wait_until, v_edge + v_span);
            ELSE
                on_completion := true;
            END IF;
        END IF;
    END LOOP;

    IF v_wait_until IS NULL AND NOT on_completion THEN
        INSERT INTO ops.budget_slots (realm_id, started_at, expires_at, from_start)
        VALUES (p_realm, v_now, v_now + p_lease_us * interval '1 microsecond', p_from_start)
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
