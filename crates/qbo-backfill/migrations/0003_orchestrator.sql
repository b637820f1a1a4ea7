-- The orchestrator: runs become a queue that workers claim, every process that executes runs is a
-- registered worker with its own identity and heartbeat, run logs are stored, companies are
-- records, and API tokens are stored hashed.

-- Runs: queued until a worker claims them; `execution_id` fences each claim so a worker whose
-- claim was taken over can never write the run's end (or a page) again.
ALTER TABLE ops.runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE ops.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled'));
ALTER TABLE ops.runs
    ADD COLUMN worker_id        uuid,
    ADD COLUMN execution_id     uuid,
    ADD COLUMN lease_until      timestamptz,
    ADD COLUMN executions       integer     NOT NULL DEFAULT 0,
    ADD COLUMN cancel_requested boolean     NOT NULL DEFAULT false,
    ADD COLUMN requeue_on_loss  boolean     NOT NULL DEFAULT false,
    ADD COLUMN trigger_id       uuid,
    ADD COLUMN requests         bigint      NOT NULL DEFAULT 0,
    ADD COLUMN retries          bigint      NOT NULL DEFAULT 0,
    ADD COLUMN throttled        bigint      NOT NULL DEFAULT 0,
    ADD COLUMN refreshes        bigint      NOT NULL DEFAULT 0;

COMMENT ON COLUMN ops.runs.requeue_on_loss IS
    'true for runs queued for workers (API, UI, triggers): when their worker dies they go back to the queue; CLI runs become interrupted instead';

CREATE INDEX runs_queue ON ops.runs (created_at) WHERE status = 'queued';
CREATE INDEX runs_running ON ops.runs (lease_until) WHERE status = 'running';
CREATE INDEX runs_created ON ops.runs (created_at DESC);
CREATE INDEX runs_status ON ops.runs (status);

-- The execution that holds a window claim (see ops.runs.execution_id).
ALTER TABLE ops.windows ADD COLUMN execution_id uuid;

-- Every process that executes runs (a CLI run, a `worker`, a `serve`), with an identity of its
-- own: host names and pids repeat across containers, so liveness is decided by heartbeat, and by
-- the pid only when the record comes from this very pid namespace of this very boot.
CREATE TABLE ops.workers (
    id            uuid PRIMARY KEY,
    kind          text        NOT NULL,
    host          text        NOT NULL,
    pid           integer     NOT NULL,
    liveness_key  text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);

-- A run's log: the contract's lines, warnings and errors, in order (`id` orders them).
CREATE TABLE ops.run_logs (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  uuid        NOT NULL REFERENCES ops.runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    level   text        NOT NULL,
    text    text        NOT NULL
);
CREATE INDEX run_logs_run ON ops.run_logs (run_id, id);

-- API tokens: only a SHA-256 of the token is kept; the token is shown once when created.
CREATE TABLE ops.api_tokens (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL,
    token_hash   bytea       NOT NULL UNIQUE,
    hint         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Connected QuickBooks companies. The client secret is encrypted like ops.secrets; the tokens
-- live in ops.oauth_tokens under the same realm id.
CREATE TABLE ops.companies (
    realm_id           text PRIMARY KEY,
    environment        text        NOT NULL CHECK (environment IN ('sandbox', 'production')),
    client_id          text        NOT NULL,
    client_secret_enc  bytea       NOT NULL,
    api_base_url       text,
    token_url          text,
    minor_version      integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_auth_error    text,
    last_auth_error_at timestamptz
);

-- How long each window of a run took, and the Intuit transaction id of its failure.
ALTER TABLE ops.run_windows
    ADD COLUMN duration_ms bigint,
    ADD COLUMN intuit_tid  text;
