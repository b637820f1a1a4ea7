-- API token scopes and expiry (issue 17): `read` (GETs, /metrics), `run` (also runs, retries,
-- cancels, verifications, triggers), `admin` (everything). Existing tokens stay `admin`, as
-- they were; a token past `expires_at` is refused like an unknown one.
ALTER TABLE ops.api_tokens
    ADD COLUMN scope      text        NOT NULL DEFAULT 'admin'
        CHECK (scope IN ('read', 'run', 'admin')),
    ADD COLUMN expires_at timestamptz;
