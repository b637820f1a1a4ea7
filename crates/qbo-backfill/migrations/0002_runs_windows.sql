-- Runs and windows: what was asked, what is loaded, what failed and why.

CREATE TABLE ops.runs (
    id              uuid PRIMARY KEY,
    pipeline        text        NOT NULL,
    realm_id        text        NOT NULL,
    fecha_inicio    date        NOT NULL,
    fecha_fin       date        NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    trigger         text        NOT NULL DEFAULT 'cli',
    retry_of        uuid        REFERENCES ops.runs (id),
    host            text,
    pid             integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    heartbeat_at    timestamptz,
    finished_at     timestamptz,
    windows_total   integer     NOT NULL DEFAULT 0,
    windows_failed  integer     NOT NULL DEFAULT 0,
    pages           bigint      NOT NULL DEFAULT 0,
    rows_total      bigint      NOT NULL DEFAULT 0,
    inserted        bigint      NOT NULL DEFAULT 0,
    updated         bigint      NOT NULL DEFAULT 0,
    unchanged       bigint      NOT NULL DEFAULT 0,
    error           text,
    CHECK (fecha_fin > fecha_inicio)
);

CREATE INDEX runs_pipeline_realm_created ON ops.runs (pipeline, realm_id, created_at DESC);

-- One row per pipeline, company and window start: the latest truth about that window.
CREATE TABLE ops.windows (
    pipeline          text        NOT NULL,
    realm_id          text        NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    status            text        NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    run_id            uuid        REFERENCES ops.runs (id),
    lease_until       timestamptz,
    attempts          integer     NOT NULL DEFAULT 0,
    pages             integer     NOT NULL DEFAULT 0,
    rows_total        bigint      NOT NULL DEFAULT 0,
    inserted          bigint      NOT NULL DEFAULT 0,
    updated           bigint      NOT NULL DEFAULT 0,
    unchanged         bigint      NOT NULL DEFAULT 0,
    started_at        timestamptz,
    finished_at       timestamptz,
    duration_ms       bigint,
    last_error        text,
    last_intuit_tid   text,
    PRIMARY KEY (pipeline, realm_id, window_start)
);

-- Which windows a run was asked to load, and how each ended for that run.
CREATE TABLE ops.run_windows (
    run_id        uuid        NOT NULL REFERENCES ops.runs (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    status        text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    pages         integer     NOT NULL DEFAULT 0,
    rows_total    bigint      NOT NULL DEFAULT 0,
    inserted      bigint      NOT NULL DEFAULT 0,
    updated       bigint      NOT NULL DEFAULT 0,
    unchanged     bigint      NOT NULL DEFAULT 0,
    error         text,
    PRIMARY KEY (run_id, window_start)
);
