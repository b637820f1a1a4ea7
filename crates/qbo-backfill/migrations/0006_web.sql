-- The web UI: operators (argon2 password hashes), their sessions (only a SHA-256 of the session
-- id is stored, with the session's CSRF token), failed logins (for rate limiting, shared by every
-- server process), and the `state` of each "Connect QuickBooks" round trip.

CREATE TABLE ops.users (
    username       text PRIMARY KEY,
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ops.sessions (
    id_hash     bytea PRIMARY KEY,
    username    text        NOT NULL REFERENCES ops.users (username) ON DELETE CASCADE,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON ops.sessions (expires_at);

CREATE TABLE ops.login_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  text        NOT NULL,
    client    text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_recent ON ops.login_failures (at);

CREATE TABLE ops.oauth_states (
    state_hash    bytea PRIMARY KEY,
    session_hash  bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
