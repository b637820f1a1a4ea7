//! The run queue in `ops.runs`: enqueueing a run (with its windows), claiming queued runs for a
//! worker (`FOR UPDATE SKIP LOCKED`), renewing and fencing a claim, cancelling, and putting runs
//! whose worker died back in the queue (or marking them interrupted, for CLI runs).

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::pipeline::{DateRange, Pipeline, Window};
use crate::domain::run::RunOrigin;
use crate::store::PgDate;
use crate::store::runs::workers::WorkerIdentity;
use crate::store::runs::{Execution, RunStatus};

/// A run to enqueue.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The company.
    pub realm_id: &'a str,
    /// The range as asked.
    pub range: DateRange,
    /// The windows to load: all of `range` as the pipeline windows it
    /// ([`Pipeline::windows`]: days, or calendar months for a verification), or a retry's
    /// subset.
    pub windows: &'a [Window],
    /// What started it.
    pub trigger: RunOrigin,
    /// The trigger that fired it.
    pub trigger_id: Option<Uuid>,
    /// Who started it: the web UI operator, the API token's name, the command line's system
    /// user (`None` for a trigger, a webhook, the demo).
    pub started_by: Option<&'a str>,
    /// The run it retries.
    pub retry_of: Option<Uuid>,
    /// Whether a worker that dies gives the run back to the queue (server runs) rather than
    /// leaving it `interrupted` for `qbo-backfill retry` (CLI runs).
    pub requeue_on_loss: bool,
}

/// Enqueues of one pipeline and company take turns (until their transactions end), so two
/// inserting overlapping windows at once never deadlock, and two retries of one run never both
/// pass [`enqueue_retry`]'s check.
async fn take_enqueue_turn(conn: &mut PgConnection, run: &NewRun<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('ops.enqueue:' || $1 || ':' || $2, 0))",
    )
    .bind(run.pipeline.name())
    .bind(run.realm_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The retry of run `run_id` still queued or running, if there is one.
///
/// # Errors
/// Database errors.
pub async fn active_retry<'e>(
    db: impl sqlx::PgExecutor<'e>,
    run_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM ops.runs WHERE retry_of = $1 AND status IN ('queued', 'running') \
         ORDER BY created_at LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(db)
    .await
}

/// What [`enqueue_retry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryEnqueued {
    /// The retry, queued.
    Queued(Uuid),
    /// This other retry of the same run is still queued or running: nothing was written.
    AlreadyRetrying(Uuid),
}

/// Enqueues `run`, a retry of the run its `retry_of` names, unless another retry of that run is
/// still queued or running. Checked in the enqueue's turn ([`take_enqueue_turn`]), so retries
/// of one run asked at once (two clicks, two scripts, two batch retries) queue one retry, not
/// one each. Without `retry_of`, as [`enqueue_run`].
///
/// # Errors
/// Database errors.
pub async fn enqueue_retry(
    conn: &mut PgConnection,
    run: &NewRun<'_>,
) -> Result<RetryEnqueued, sqlx::Error> {
    if let Some(retried) = run.retry_of {
        take_enqueue_turn(conn, run).await?;
        if let Some(active) = active_retry(&mut *conn, retried).await? {
            return Ok(RetryEnqueued::AlreadyRetrying(active));
        }
    }
    Ok(RetryEnqueued::Queued(enqueue_run(conn, run).await?))
}

/// Inserts a `queued` run with one `ops.run_windows` row per window, and makes sure every
/// window has its `ops.windows` row. A retry joins the batch of the run it retries, if any.
/// Runs inside the caller's transaction, so a trigger can record the run it started in the same
/// commit. A retry goes through [`enqueue_retry`].
///
/// # Errors
/// Database errors.
pub async fn enqueue_run(conn: &mut PgConnection, run: &NewRun<'_>) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    take_enqueue_turn(conn, run).await?;
    sqlx::query(
        "INSERT INTO ops.runs (id, pipeline, realm_id, fecha_inicio, fecha_fin, status, trigger, \
           trigger_id, retry_of, windows_total, requeue_on_loss, started_by, batch_id) \
         VALUES ($1, $2, $3, $4::date, $5::date, 'queued', $6, $7, $8, $9, $10, $11, \
           (SELECT batch_id FROM ops.runs WHERE id = $8))",
    )
    .bind(id)
    .bind(run.pipeline.name())
    .bind(run.realm_id)
    .bind(run.range.fecha_inicio.to_string())
    .bind(run.range.fecha_fin.to_string())
    .bind(run.trigger)
    .bind(run.trigger_id)
    .bind(run.retry_of)
    .bind(i32::try_from(run.windows.len()).unwrap_or(i32::MAX))
    .bind(run.requeue_on_loss)
    .bind(run.started_by)
    .execute(&mut *conn)
    .await?;
    let starts: Vec<String> = run.windows.iter().map(|w| w.start.to_string()).collect();
    let ends: Vec<String> = run.windows.iter().map(|w| w.end.to_string()).collect();
    sqlx::query(
        "INSERT INTO ops.run_windows (run_id, window_start, window_end) \
         SELECT $1, s::timestamptz, e::timestamptz FROM unnest($2::text[], $3::text[]) AS t(s, e)",
    )
    .bind(id)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status) \
         SELECT $1, $2, s::timestamptz, e::timestamptz, 'pending' \
         FROM unnest($3::text[], $4::text[]) AS t(s, e) ON CONFLICT DO NOTHING",
    )
    .bind(run.pipeline.name())
    .bind(run.realm_id)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// A run a worker just claimed: what it must load.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The claim every write is fenced by.
    pub execution: Execution,
    /// The pipeline name as stored (parsed by the worker).
    pub pipeline: String,
    /// The company.
    pub realm_id: String,
    /// The range as asked.
    pub range: DateRange,
    /// What started it.
    pub trigger: RunOrigin,
    /// Whether it goes back to the queue when its worker is lost.
    pub requeue_on_loss: bool,
    /// Its windows that are not loaded yet, in order.
    pub windows: Vec<Window>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    pipeline: String,
    realm_id: String,
    fecha_inicio: PgDate,
    fecha_fin: PgDate,
    trigger: RunOrigin,
    requeue_on_loss: bool,
}

/// The columns a claim sets: `$1` worker, `$2` execution, `$3` lease seconds, `$4` host, `$5` pid.
const CLAIM_SET: &str = "status = 'running', worker_id = $1, execution_id = $2, \
    lease_until = now() + make_interval(secs => $3), heartbeat_at = now(), \
    started_at = coalesce(started_at, now()), executions = executions + 1, host = $4, pid = $5, \
    finished_at = NULL";

/// Claims the oldest queued run for `worker` (`FOR UPDATE SKIP LOCKED`: any number of workers
/// can call this at once and each run goes to exactly one).
///
/// # Errors
/// Database errors.
pub async fn claim_next(
    conn: &mut PgConnection,
    worker: &WorkerIdentity,
    lease: Duration,
) -> Result<Option<ClaimedRun>, sqlx::Error> {
    claim_where(conn, worker, lease, Pick::Oldest).await
}

/// Claims the queued run `run_id` for `worker`: the CLI enqueues and claims its own run in one
/// transaction, so no worker can take it. `None` when the run is not queued (another worker took
/// it, or it was cancelled).
///
/// # Errors
/// Database errors.
pub async fn claim_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    worker: &WorkerIdentity,
    lease: Duration,
) -> Result<Option<ClaimedRun>, sqlx::Error> {
    claim_where(conn, worker, lease, Pick::Run(run_id)).await
}

/// Which queued run a claim takes.
enum Pick {
    /// The oldest one no other worker is claiming.
    Oldest,
    /// This one.
    Run(Uuid),
}

/// Claims for `worker` the run `pick` names, with a new execution.
async fn claim_where(
    conn: &mut PgConnection,
    worker: &WorkerIdentity,
    lease: Duration,
    pick: Pick,
) -> Result<Option<ClaimedRun>, sqlx::Error> {
    let execution_id = Uuid::now_v7();
    let condition = match pick {
        Pick::Oldest => {
            "id = (SELECT id FROM ops.runs WHERE status = 'queued' AND NOT cancel_requested \
               ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)"
        }
        Pick::Run(_) => "id = $6 AND status = 'queued'",
    };
    let mut query = sqlx::query_as::<_, ClaimedRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE ops.runs SET {CLAIM_SET} WHERE {condition} \
         RETURNING id, pipeline, realm_id, fecha_inicio, fecha_fin, trigger, requeue_on_loss"
    )))
    .bind(worker.id)
    .bind(execution_id)
    .bind(lease.as_secs_f64())
    .bind(&worker.host)
    .bind(worker.pid);
    if let Pick::Run(run_id) = pick {
        query = query.bind(run_id);
    }
    match query.fetch_optional(&mut *conn).await? {
        Some(row) => Ok(Some(claimed(conn, row, execution_id, worker.id).await?)),
        None => Ok(None),
    }
}

async fn claimed(
    conn: &mut PgConnection,
    row: ClaimedRow,
    execution_id: Uuid,
    worker_id: Uuid,
) -> Result<ClaimedRun, sqlx::Error> {
    let windows = crate::store::runs::pending_windows(&mut *conn, row.id).await?;
    Ok(ClaimedRun {
        execution: Execution {
            run_id: row.id,
            execution_id,
            worker_id,
        },
        pipeline: row.pipeline,
        realm_id: row.realm_id,
        range: DateRange {
            fecha_inicio: row.fecha_inicio.0,
            fecha_fin: row.fecha_fin.0,
        },
        trigger: row.trigger,
        requeue_on_loss: row.requeue_on_loss,
        windows,
    })
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was queued: it is cancelled now.
    Cancelled,
    /// The run is running: its worker stops it within a heartbeat.
    Requested,
    /// The run was already over.
    AlreadyOver(RunStatus),
    /// No such run.
    NotFound,
}

/// Cancels a queued run at once, or asks the worker of a running one to stop it.
///
/// # Errors
/// Database errors.
pub async fn cancel_run(pool: &PgPool, run_id: Uuid) -> Result<CancelOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let status: Option<RunStatus> =
        sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1 FOR UPDATE")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
    let outcome = match status {
        None => CancelOutcome::NotFound,
        Some(RunStatus::Queued) => {
            sqlx::query(
                "UPDATE ops.runs SET status = 'cancelled', cancel_requested = true, \
                 finished_at = now(), error = coalesce(error, 'cancelled before it started') \
                 WHERE id = $1",
            )
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            CancelOutcome::Cancelled
        }
        Some(RunStatus::Running) => {
            sqlx::query("UPDATE ops.runs SET cancel_requested = true WHERE id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            CancelOutcome::Requested
        }
        Some(other) => CancelOutcome::AlreadyOver(other),
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Runs waiting in the queue.
///
/// # Errors
/// Database errors.
pub async fn depth(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM ops.runs WHERE status = 'queued'")
        .fetch_one(pool)
        .await
}
