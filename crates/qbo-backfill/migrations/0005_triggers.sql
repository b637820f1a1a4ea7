-- Triggers: one-time (a local time in an IANA zone) and cron (in an IANA zone). The local time or
-- cron text and the zone are stored as given; next_fire_utc is the resolved instant the scheduler
-- looks for. Rules (DST gaps and folds, lateness, relative params) live in
-- src/orchestrator/triggers.rs.

CREATE TABLE ops.triggers (
    id              uuid PRIMARY KEY,
    pipeline        text        NOT NULL,
    realm_id        text,
    kind            text        NOT NULL CHECK (kind IN ('once', 'cron')),
    local_time      text,
    cron            text,
    time_zone       text        NOT NULL,
    params          jsonb       NOT NULL,
    enabled         boolean     NOT NULL DEFAULT true,
    state           text        NOT NULL
        CHECK (state IN ('scheduled', 'fired', 'missed', 'disabled')),
    next_fire_utc   timestamptz,
    last_fired_utc  timestamptz,
    last_run_id     uuid        REFERENCES ops.runs (id) ON DELETE SET NULL,
    missed_count    bigint      NOT NULL DEFAULT 0,
    last_missed_utc timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'once') = (local_time IS NOT NULL)),
    CHECK ((kind = 'cron') = (cron IS NOT NULL)),
    -- Enabled exactly when scheduled, and then with a time to fire.
    CHECK (enabled = (state = 'scheduled')),
    CHECK (NOT enabled OR next_fire_utc IS NOT NULL),
    -- Only cron triggers come back to `scheduled` after firing; a one-time trigger is `fired`
    -- or `missed` for good unless an operator sets a new local time.
    CHECK (kind = 'once' OR state NOT IN ('fired', 'missed'))
);

-- The scheduler's look-up: enabled triggers by due time.
CREATE INDEX triggers_due ON ops.triggers (next_fire_utc) WHERE enabled;
CREATE INDEX triggers_created ON ops.triggers (created_at);

-- Every occurrence the scheduler handled, fired or missed. The primary key is the idempotency
-- key of a firing: one trigger's occurrence is handled once, whatever schedulers race.
CREATE TABLE ops.trigger_occurrences (
    trigger_id     uuid        NOT NULL REFERENCES ops.triggers (id) ON DELETE CASCADE,
    scheduled_utc  timestamptz NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('fired', 'missed')),
    run_id         uuid        REFERENCES ops.runs (id) ON DELETE SET NULL,
    missed         integer     NOT NULL DEFAULT 0,
    handled_at     timestamptz NOT NULL,
    detail         text,
    PRIMARY KEY (trigger_id, scheduled_utc)
);
