-- Alert channels (a webhook or an e-mail address) and the deliveries of the events raised to
-- them. Raising an event is one INSERT of a `pending` delivery per subscribed channel; the
-- delivery loop of `serve` sends them, retrying with backoff, and records how each ended, so a
-- crash or a restart loses none.

CREATE TABLE ops.alert_channels (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    kind        text        NOT NULL CHECK (kind IN ('webhook', 'email')),
    -- The webhook's URL or the e-mail address.
    target      text        NOT NULL,
    -- The event names the channel receives (`run_failed`, `auth_failed`, …).
    events      text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- A webhook's signing secret, sealed with the secret store's key (NULL for e-mail).
    secret_enc  bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE ops.alert_channels IS
    'Where alerts go: a signed JSON webhook or an e-mail address, and the events it receives';

CREATE TABLE ops.alert_deliveries (
    id              uuid        PRIMARY KEY,
    channel_id      uuid        NOT NULL REFERENCES ops.alert_channels (id) ON DELETE CASCADE,
    event           text        NOT NULL,
    realm_id        text,
    run_id          uuid,
    pipeline        text,
    -- When the event happened, and what a person reads (never a secret).
    occurred_at     timestamptz NOT NULL,
    text            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    -- A pending delivery is sent when this time has come (a claim pushes it past its lease).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);

CREATE INDEX alert_deliveries_due ON ops.alert_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX alert_deliveries_recent ON ops.alert_deliveries (created_at DESC);
CREATE INDEX alert_deliveries_channel ON ops.alert_deliveries (channel_id, created_at DESC);

COMMENT ON TABLE ops.alert_deliveries IS
    'One row per event and channel: pending until delivered, or failed after its last attempt';
