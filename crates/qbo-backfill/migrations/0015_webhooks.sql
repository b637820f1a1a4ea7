-- QuickBooks webhooks (issue 19): every signed delivery is stored before it is answered, each of
-- its events once (by id); the scheduler coalesces the pending events of a company and entity
-- into one incremental sync (a run with trigger 'webhook') and records which run took them.

CREATE TABLE ops.webhook_deliveries (
    id           uuid        PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    format       text        CHECK (format IN ('legacy', 'cloudevents')),
    status       text        NOT NULL CHECK (status IN ('accepted', 'rejected')),
    -- Events the delivery carried, and how many of them were new (the others: redeliveries).
    events       integer     NOT NULL DEFAULT 0,
    new_events   integer     NOT NULL DEFAULT 0,
    -- Why it (or some of its events) could not be read; a rejected delivery keeps its body.
    error        text,
    body         text
);

CREATE INDEX webhook_deliveries_received ON ops.webhook_deliveries (received_at);

CREATE TABLE ops.webhook_events (
    event_id     text        PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES ops.webhook_deliveries (id),
    received_at  timestamptz NOT NULL DEFAULT now(),
    realm_id     text        NOT NULL,
    entity       text        NOT NULL,
    entity_id    text        NOT NULL,
    operation    text        NOT NULL,
    event_time   timestamptz,
    -- pending: waiting for its quiet period; synced: a run (run_id) loads it; ignored: unknown
    -- company or entity (reason).
    status       text        NOT NULL CHECK (status IN ('pending', 'synced', 'ignored')),
    reason       text,
    run_id       uuid        REFERENCES ops.runs (id),
    coalesced_at timestamptz
);

CREATE INDEX webhook_events_pending ON ops.webhook_events (realm_id, entity) WHERE status = 'pending';
CREATE INDEX webhook_events_run ON ops.webhook_events (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX webhook_events_received ON ops.webhook_events (received_at);

COMMENT ON TABLE ops.webhook_deliveries IS
    'Every POST /webhooks/intuit whose signature verified, stored before it was answered 200';
COMMENT ON TABLE ops.webhook_events IS
    'Each QuickBooks change a webhook reported, once per event id; run_id is the incremental sync that loads it';
