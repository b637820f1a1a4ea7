//! A run's lifecycle after its claims: each page's progress, window and run ends (the cursor
//! moving with the run's success), reaping runs whose worker died, and what is left to load.

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use super::{
    Execution, LEASE_EXPIRED, RequestTotals, Result, RunRecord, RunStatus, RunTotals, WindowStatus,
    to_i64, ts,
};
use crate::domain::pipeline::{Pipeline, Window};
use crate::store::PgTimestamp;
use crate::store::raw::UpsertCounts;
use crate::store::runs::workers;

/// When the run was created (enqueued), if it exists.
///
/// # Errors
/// A database error.
pub async fn created_at(pool: &PgPool, run_id: Uuid) -> Result<Option<jiff::Timestamp>> {
    let at: Option<crate::store::PgTimestamp> =
        sqlx::query_scalar("SELECT created_at FROM ops.runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
    Ok(at.map(|t| t.0))
}

/// Ends windows this execution holds as succeeded, at once. Returns the windows it still held
/// (the others were taken over and are left alone).
///
/// # Errors
/// Database errors.
pub async fn end_windows_succeeded(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    windows: &[Window],
    duration: Duration,
) -> Result<Vec<Window>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let starts: Vec<PgTimestamp> = windows.iter().map(|w| PgTimestamp(w.start)).collect();
    let mut tx = pool.begin().await?;
    // `= ANY` rather than a join with `unnest`: one index probe per day, whatever the planner
    // believes of a table it has no statistics for yet (a join became quadratic there).
    let ended: Vec<PgTimestamp> = sqlx::query_scalar(
        "UPDATE ops.windows SET status = 'succeeded', lease_until = NULL, \
           finished_at = now(), duration_ms = $5, last_error = NULL, last_intuit_tid = NULL \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = ANY($3) \
           AND execution_id = $4 AND status = 'running' \
         RETURNING window_start",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&starts)
    .bind(exec.execution_id)
    .bind(duration_ms)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'succeeded', error = NULL, intuit_tid = NULL, \
           duration_ms = $3 \
         WHERE run_id = $1 AND window_start = ANY($2)",
    )
    .bind(exec.run_id)
    .bind(&ended)
    .bind(duration_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let ended: std::collections::HashSet<jiff::Timestamp> = ended.iter().map(|t| t.0).collect();
    Ok(windows
        .iter()
        .filter(|w| ended.contains(&w.start))
        .copied()
        .collect())
}

/// Records one written page in the page's own transaction. Returns `false` when this execution
/// no longer holds the window (another run or execution took it over): the caller must roll back.
///
/// # Errors
/// Database errors.
pub async fn record_page(
    conn: &mut PgConnection,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    rows: u64,
    counts: UpsertCounts,
) -> Result<bool> {
    update_held(
        conn,
        &Held {
            exec,
            pipeline,
            realm_id,
            window,
        },
        "pages = pages + 1, rows_total = rows_total + $5, inserted = inserted + $6, \
         updated = updated + $7, unchanged = unchanged + $8",
        "pages = pages + 1, rows_total = rows_total + $3, inserted = inserted + $4, \
         updated = updated + $5, unchanged = unchanged + $6",
        |q| {
            q.bind(to_i64(rows))
                .bind(to_i64(counts.inserted))
                .bind(to_i64(counts.updated))
                .bind(to_i64(counts.unchanged))
        },
    )
    .await
}

/// One window an execution holds.
struct Held<'a> {
    exec: &'a Execution,
    pipeline: Pipeline,
    realm_id: &'a str,
    window: &'a Window,
}

/// A query of the store with its arguments.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Updates the window `at` holds (`SET window_set` on `ops.windows`, fenced by the execution:
/// `$1` … `$4` are the pipeline, company, start and execution) and, when it still held it, the
/// run's own record of it (`SET run_set` on `ops.run_windows`: `$1`, `$2` are the run and
/// start), both on `conn`. `bind` binds the values both read next (`$5` … and `$3` …). Returns
/// whether the execution held the window (nothing is written when it did not).
async fn update_held<'q>(
    conn: &mut PgConnection,
    at: &Held<'q>,
    window_set: &str,
    run_set: &str,
    bind: impl Fn(PgQuery<'q>) -> PgQuery<'q>,
) -> Result<bool> {
    let window = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE ops.windows SET {window_set} \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = $3::timestamptz \
           AND execution_id = $4 AND status = 'running'"
    )))
    .bind(at.pipeline.name())
    .bind(at.realm_id)
    .bind(ts(at.window.start))
    .bind(at.exec.execution_id);
    if bind(window).execute(&mut *conn).await?.rows_affected() != 1 {
        return Ok(false);
    }
    let run = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE ops.run_windows SET {run_set} WHERE run_id = $1 AND window_start = $2::timestamptz"
    )))
    .bind(at.exec.run_id)
    .bind(ts(at.window.start));
    bind(run).execute(&mut *conn).await?;
    Ok(true)
}

/// [`record_page`] for a page spread over several windows: one row of `(window, rows, counts)`
/// per window it wrote into. Returns `false` (the caller must roll back) unless this execution
/// still holds every one of them.
///
/// # Errors
/// Database errors.
pub async fn record_spread_page(
    conn: &mut PgConnection,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    parts: &[(Window, u64, UpsertCounts)],
) -> Result<bool> {
    let rows: Vec<i64> = parts.iter().map(|(_, r, _)| to_i64(*r)).collect();
    let inserted: Vec<i64> = parts.iter().map(|(_, _, c)| to_i64(c.inserted)).collect();
    let updated: Vec<i64> = parts.iter().map(|(_, _, c)| to_i64(c.updated)).collect();
    let unchanged: Vec<i64> = parts.iter().map(|(_, _, c)| to_i64(c.unchanged)).collect();
    // Lock in day order, as claims do, so that a takeover never deadlocks with this write.
    let day_starts: Vec<PgTimestamp> = parts.iter().map(|(w, _, _)| PgTimestamp(w.start)).collect();
    let locked: Vec<i32> = sqlx::query_scalar(
        "SELECT 1 FROM ops.windows \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = ANY($3) \
           AND execution_id = $4 AND status = 'running' \
         ORDER BY window_start FOR UPDATE",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&day_starts)
    .bind(exec.execution_id)
    .fetch_all(&mut *conn)
    .await?;
    if locked.len() != parts.len() {
        return Ok(false);
    }
    // Both records of each day, in one statement.
    sqlx::query(
        "WITH d AS (SELECT * FROM unnest($3::timestamptz[], $5::int8[], $6::int8[], $7::int8[], \
                      $8::int8[]) AS d(ws, rows, ins, upd, unch)), \
         w AS (UPDATE ops.windows AS w SET pages = w.pages + 1, \
                 rows_total = w.rows_total + d.rows, inserted = w.inserted + d.ins, \
                 updated = w.updated + d.upd, unchanged = w.unchanged + d.unch \
               FROM d WHERE w.pipeline = $1 AND w.realm_id = $2 AND w.window_start = d.ws \
                 AND w.execution_id = $4) \
         UPDATE ops.run_windows AS w SET pages = w.pages + 1, \
           rows_total = w.rows_total + d.rows, inserted = w.inserted + d.ins, \
           updated = w.updated + d.upd, unchanged = w.unchanged + d.unch \
         FROM d WHERE w.run_id = $9 AND w.window_start = d.ws",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&day_starts)
    .bind(exec.execution_id)
    .bind(&rows)
    .bind(&inserted)
    .bind(&updated)
    .bind(&unchanged)
    .bind(exec.run_id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// How a window ended for a run.
#[derive(Debug, Clone)]
pub enum WindowEnd<'a> {
    /// Loaded completely.
    Succeeded,
    /// Failed after the client's retries.
    Failed {
        /// What went wrong (no secrets).
        error: &'a str,
        /// Intuit's transaction id of the failing response.
        intuit_tid: Option<&'a str>,
    },
    /// Stopped before it finished (Ctrl-C, cancel, or the run stopped on a fatal error).
    Unfinished {
        /// Why.
        reason: &'a str,
    },
}

/// Ends a window held by the execution. Returns `false` when the execution no longer held it
/// (nothing was written).
///
/// # Errors
/// Database errors.
pub async fn end_window(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    end: &WindowEnd<'_>,
    duration: Duration,
) -> Result<bool> {
    let (status, error, tid) = match end {
        WindowEnd::Succeeded => (WindowStatus::Succeeded, None, None),
        WindowEnd::Failed { error, intuit_tid } => {
            (WindowStatus::Failed, Some(*error), *intuit_tid)
        }
        WindowEnd::Unfinished { reason } => (WindowStatus::Pending, Some(*reason), None),
    };
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let held = update_held(
        &mut tx,
        &Held {
            exec,
            pipeline,
            realm_id,
            window,
        },
        "status = $5, lease_until = NULL, finished_at = now(), duration_ms = $6, \
         last_error = $7, last_intuit_tid = $8",
        "status = $3, duration_ms = $4, error = $5, intuit_tid = $6",
        |q| q.bind(status).bind(duration_ms).bind(error).bind(tid),
    )
    .await?;
    // Dropping `tx` rolls back when the execution no longer held the window.
    if held {
        tx.commit().await?;
    }
    Ok(held)
}

/// How an execution ends its run: what [`finish_run`] stores.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    /// The status asked for (`succeeded` is stored `failed` while a window did not succeed).
    pub status: RunStatus,
    /// What the execution loaded.
    pub totals: RunTotals,
    /// What its requests cost.
    pub requests: RequestTotals,
    /// Why it did not succeed, if it did not.
    pub error: Option<&'a str>,
}

impl<'a> RunEnd<'a> {
    /// `status` with nothing loaded and no request made, for `error`.
    #[must_use]
    pub fn bare(status: RunStatus, error: Option<&'a str>) -> Self {
        Self {
            status,
            totals: RunTotals::default(),
            requests: RequestTotals::default(),
            error,
        }
    }
}

/// Ends a run held by the execution with its totals. A run asked to succeed while one of its
/// windows did not is stored `failed`; an interrupted run that belongs to the queue
/// (`requeue_on_loss`) goes back to `queued` for another worker. Returns the status stored, or
/// `None` when the execution no longer held the run (nothing was written).
///
/// # Errors
/// Database errors.
pub async fn finish_run(
    pool: &PgPool,
    exec: &Execution,
    end: &RunEnd<'_>,
) -> Result<Option<RunStatus>> {
    finish_run_moving_cursor(pool, exec, end, None).await
}

/// Where an incremental sync that succeeded moves its entity's cursor (see
/// [`finish_run_moving_cursor`]).
#[derive(Debug, Clone)]
pub struct CursorMove {
    /// The company.
    pub realm_id: String,
    /// The entity synced.
    pub entity: qbo::Entity,
    /// The start of the range the run loaded: a cursor before it would leave a gap.
    pub range_start: jiff::Timestamp,
    /// The instant up to which every change is loaded now.
    pub through: jiff::Timestamp,
}

/// [`finish_run`], and for an incremental sync the move of its cursor, in the same
/// transaction: the cursor moves only when the run is stored `succeeded` with every one of its
/// windows succeeded (checked in SQL there), when the range starts at or before the cursor (a
/// later range would leave a gap), and never backwards.
///
/// # Errors
/// Database errors.
pub async fn finish_run_moving_cursor(
    pool: &PgPool,
    exec: &Execution,
    end: &RunEnd<'_>,
    cursor: Option<&CursorMove>,
) -> Result<Option<RunStatus>> {
    let mut tx = pool.begin().await?;
    // Give back what this execution still holds (windows it never ended).
    sqlx::query(
        "UPDATE ops.windows w SET status = 'pending', lease_until = NULL, \
           last_error = coalesce(w.last_error, 'the run stopped before this window finished') \
         FROM ops.runs r WHERE r.id = $2 AND w.pipeline = r.pipeline AND w.realm_id = r.realm_id \
           AND w.execution_id = $1 AND w.status = 'running'",
    )
    .bind(exec.execution_id)
    .bind(exec.run_id)
    .execute(&mut *tx)
    .await?;
    let stored: Option<RunStatus> = sqlx::query_scalar(
        "UPDATE ops.runs r SET \
           status = CASE \
             WHEN $3 = 'succeeded' AND EXISTS (SELECT 1 FROM ops.run_windows w \
                  WHERE w.run_id = r.id AND w.status <> 'succeeded') THEN 'failed' \
             WHEN $3 = 'interrupted' AND r.requeue_on_loss AND NOT r.cancel_requested THEN 'queued' \
             ELSE $3 END, \
           finished_at = CASE WHEN $3 = 'interrupted' AND r.requeue_on_loss \
             AND NOT r.cancel_requested THEN NULL ELSE now() END, \
           heartbeat_at = now(), lease_until = NULL, execution_id = NULL, \
           windows_failed = $4, pages = r.pages + $5[1], rows_total = r.rows_total + $5[2], \
           inserted = r.inserted + $5[3], updated = r.updated + $5[4], \
           unchanged = r.unchanged + $5[5], requests = r.requests + $5[6], \
           retries = r.retries + $5[7], throttled = r.throttled + $5[8], \
           refreshes = r.refreshes + $5[9], error = $6 \
         WHERE r.id = $1 AND r.execution_id = $2 AND r.status = 'running' RETURNING r.status",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .bind(end.status)
    .bind(i32::try_from(end.totals.failed_windows).unwrap_or(i32::MAX))
    .bind(&added_counts(&end.totals, &end.requests)[..])
    .bind(end.error)
    .fetch_optional(&mut *tx)
    .await?;
    // Dropping `tx` rolls back: the run had changed, nothing is written.
    let Some(stored) = stored else {
        return Ok(None);
    };
    release_run_windows(&mut tx, exec.run_id, None).await?;
    if let Some(cursor) = cursor
        && stored == RunStatus::Succeeded
    {
        move_cursor(&mut tx, exec, cursor).await?;
    }
    tx.commit().await?;
    Ok(Some(stored))
}

/// What an execution adds to its run's counters, in the order `finish_run_moving_cursor` reads
/// them (`$5[1]` … `$5[9]`): pages, rows, inserted, updated, unchanged, requests, retries,
/// throttled, refreshes.
fn added_counts(totals: &RunTotals, requests: &RequestTotals) -> [i64; 9] {
    [
        totals.pages,
        totals.rows,
        totals.counts.inserted,
        totals.counts.updated,
        totals.counts.unchanged,
        requests.requests,
        requests.retries,
        requests.throttled,
        requests.refreshes,
    ]
    .map(to_i64)
}

/// After a run's row was given up or ended in `tx`: its own records of windows still `running`
/// go back to `pending` (noting `error` where they have none). Its window sums (`w_*`) follow
/// its windows by themselves (the `run_windows_counters` triggers, migration 0020).
async fn release_run_windows(
    conn: &mut PgConnection,
    run_id: Uuid,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'pending', error = coalesce(error, $2) \
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the cursor of a run stored `succeeded` (inside the transaction that stored it): only
/// when every one of the run's windows succeeded, the range starts at or before the cursor, and
/// never backwards. A webhook-driven sync (origin `webhook`) only moves a cursor that exists:
/// its range starts at the changes it was told of, so it cannot vouch for what came before.
async fn move_cursor(conn: &mut PgConnection, exec: &Execution, cursor: &CursorMove) -> Result<()> {
    sqlx::query(
        "INSERT INTO ops.sync_cursors AS c (realm_id, entity, synced_through, run_id) \
         SELECT $1, $2, $3, $4 \
         WHERE EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = $4 AND r.status = 'succeeded' \
                         AND (r.trigger <> 'webhook' OR EXISTS (SELECT 1 FROM ops.sync_cursors g \
                              WHERE g.realm_id = $1 AND g.entity = $2))) \
           AND NOT EXISTS (SELECT 1 FROM ops.run_windows w \
                           WHERE w.run_id = $4 AND w.status <> 'succeeded') \
           AND NOT EXISTS (SELECT 1 FROM ops.sync_cursors g \
                           WHERE g.realm_id = $1 AND g.entity = $2 AND g.synced_through < $5) \
         ON CONFLICT (realm_id, entity) DO UPDATE \
         SET synced_through = EXCLUDED.synced_through, run_id = EXCLUDED.run_id, \
             updated_at = now() \
         WHERE c.synced_through < EXCLUDED.synced_through",
    )
    .bind(&cursor.realm_id)
    .bind(cursor.entity.qbo_name())
    .bind(PgTimestamp(cursor.through))
    .bind(exec.run_id)
    .bind(PgTimestamp(cursor.range_start))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends this run's own record of a window it no longer holds (another run took the window over
/// and this run gave up waiting for it): the window stays as its holder leaves it, and this
/// run's record says `failed` with `error` instead of staying `pending`. Returns `false` when
/// the execution no longer holds its run (nothing written).
///
/// # Errors
/// Database errors.
pub async fn give_up_run_window(
    pool: &PgPool,
    exec: &Execution,
    window: &Window,
    error: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE ops.run_windows rw SET status = 'failed', error = $4 \
         FROM ops.runs r \
         WHERE rw.run_id = $1 AND rw.window_start = $3::timestamptz AND rw.status <> 'succeeded' \
           AND r.id = rw.run_id AND r.execution_id = $2 AND r.status = 'running'",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .bind(ts(window.start))
    .bind(error)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Loads a run.
///
/// # Errors
/// Database errors.
pub async fn load_run(pool: &PgPool, run_id: Uuid) -> Result<Option<RunRecord>> {
    sqlx::query_as::<_, RunRecord>(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.pipeline, r.realm_id, r.fecha_inicio, r.fecha_fin, r.status, r.host, \
                r.pid, {LEASE_EXPIRED} AS lease_expired, w.liveness_key \
         FROM ops.runs r LEFT JOIN ops.workers w ON w.id = r.worker_id WHERE r.id = $1"
    )))
    .bind(run_id)
    .fetch_optional(pool)
    .await
}

/// Whether a run marked running is really alive: its lease holds and, when its worker ran in
/// this pid namespace of this boot, its process still exists.
#[must_use]
pub fn run_is_alive(run: &RunRecord) -> bool {
    run.status == RunStatus::Running
        && !run.lease_expired
        && run.liveness_key.as_deref().and_then(workers::alive_here) != Some(false)
}

/// What [`reap_lost_runs`] did with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The run.
    pub run_id: Uuid,
    /// What it is now: back in the queue (`queued`), `interrupted` (a CLI run, finished with
    /// `retry`), or `cancelled` (cancel requested before its worker died, or queued for a
    /// command line that is gone).
    pub status: RunStatus,
}

/// How long a worker's heartbeat may be silent before its worker is taken for gone when its
/// process cannot be looked at (another host or container). Workers beat every
/// [`super::HEARTBEAT_EVERY`] while they run, wait or follow a run.
const WORKER_SILENT_FOR: &str = "interval '60 seconds'";

/// Finds the runs recorded as `running` whose worker is gone (its lease expired, or it died in
/// this pid namespace) and gives them up: their windows go back to `pending`, and the run goes
/// back to the queue (runs queued for workers) or becomes `interrupted` (CLI runs, finished with
/// `retry`). Then cancels the runs still queued for a command line that is gone
/// ([`cancel_runs_of_gone_command_lines`]). Safe to call from any number of processes at once.
///
/// # Errors
/// Database errors.
pub async fn reap_lost_runs(pool: &PgPool) -> Result<Vec<Reaped>> {
    let mut reaped = give_up_lost_runs(pool).await?;
    reaped.extend(cancel_runs_of_gone_command_lines(pool).await?);
    Ok(reaped)
}

/// The `running` runs whose worker is gone, given up.
async fn give_up_lost_runs(pool: &PgPool) -> Result<Vec<Reaped>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.execution_id, {LEASE_EXPIRED} AS expired, w.liveness_key \
         FROM ops.runs r LEFT JOIN ops.workers w ON w.id = r.worker_id \
         WHERE r.status = 'running'"
    )))
    .fetch_all(pool)
    .await?;
    let mut reaped = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let execution: Option<Uuid> = row.try_get("execution_id")?;
        let expired: bool = row.try_get("expired")?;
        let key: Option<String> = row.try_get("liveness_key")?;
        let dead_here = key.as_deref().and_then(workers::alive_here) == Some(false);
        if (expired || dead_here)
            && let Some(status) =
                give_up(pool, id, execution, "its worker stopped without finishing").await?
        {
            reaped.push(Reaped { run_id: id, status });
        }
    }
    Ok(reaped)
}

/// Cancels the runs still `queued` in a batch a command line was running here one run after
/// another ([`super::batches::NewBatch::run_by`]) once that command line is gone: stopped, dead
/// in this pid namespace, or silent for [`WORKER_SILENT_FOR`]. It may have died during a run
/// (that run is given up first) or between two, or before it took its first: its Ctrl-C would
/// have cancelled them, and so they neither wait for nobody nor run weeks later on whatever
/// worker starts next; a retry of the batch (or of each run) loads them.
async fn cancel_runs_of_gone_command_lines(pool: &PgPool) -> Result<Vec<Reaped>> {
    let owners: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT b.run_by, w.liveness_key, \
           (w.id IS NULL OR w.stopped_at IS NOT NULL \
            OR w.heartbeat_at < now() - {WORKER_SILENT_FOR}) AS silent \
         FROM ops.runs q JOIN ops.batches b ON b.id = q.batch_id \
           LEFT JOIN ops.workers w ON w.id = b.run_by \
         WHERE q.status = 'queued' AND NOT q.requeue_on_loss AND b.run_by IS NOT NULL"
    )))
    .fetch_all(pool)
    .await?;
    let mut cancelled = Vec::new();
    for (worker, key, silent) in owners {
        let dead_here = key.as_deref().and_then(workers::alive_here) == Some(false);
        if !(silent || dead_here) {
            continue;
        }
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE ops.runs q SET status = 'cancelled', cancel_requested = true, \
               finished_at = now(), \
               error = coalesce(q.error, 'cancelled before it started: the command line running \
its batch stopped') \
             FROM ops.batches b \
             WHERE b.run_by = $1 AND q.batch_id = b.id AND q.status = 'queued' \
               AND NOT q.requeue_on_loss \
             RETURNING q.id",
        )
        .bind(worker)
        .fetch_all(pool)
        .await?;
        cancelled.extend(ids.into_iter().map(|run_id| Reaped {
            run_id,
            status: RunStatus::Cancelled,
        }));
    }
    Ok(cancelled)
}

/// Gives up a running run held by `execution` (a dead worker's): windows back to `pending`, the
/// run back to `queued`, or `interrupted` (`cancelled` when a cancel was asked). Returns its
/// status now, or `None` when the run had changed meanwhile (nothing done).
async fn give_up(
    pool: &PgPool,
    run_id: Uuid,
    execution: Option<Uuid>,
    reason: &str,
) -> Result<Option<RunStatus>> {
    let mut tx = pool.begin().await?;
    // Windows before the run row: the order claim_window locks them in.
    sqlx::query(
        "UPDATE ops.windows w SET status = 'pending', lease_until = NULL, finished_at = now(), \
           last_error = $3 \
         FROM ops.runs r WHERE r.id = $1 AND w.pipeline = r.pipeline AND w.realm_id = r.realm_id \
           AND w.run_id = $1 AND w.execution_id IS NOT DISTINCT FROM $2 AND w.status = 'running'",
    )
    .bind(run_id)
    .bind(execution)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    let status: Option<RunStatus> = sqlx::query_scalar(
        "UPDATE ops.runs SET \
           status = CASE WHEN requeue_on_loss AND NOT cancel_requested THEN 'queued' \
                         WHEN cancel_requested THEN 'cancelled' ELSE 'interrupted' END, \
           finished_at = CASE WHEN requeue_on_loss AND NOT cancel_requested THEN NULL \
                              ELSE now() END, \
           execution_id = NULL, lease_until = NULL, error = coalesce(error, $3) \
         WHERE id = $1 AND execution_id IS NOT DISTINCT FROM $2 AND status = 'running' \
         RETURNING status",
    )
    .bind(run_id)
    .bind(execution)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    // Dropping `tx` rolls back: the run had changed, nothing is written.
    let Some(status) = status else {
        return Ok(None);
    };
    release_run_windows(&mut tx, run_id, Some(reason)).await?;
    tx.commit().await?;
    Ok(Some(status))
}

/// Marks a run whose worker died as given up (see [`reap_lost_runs`]); does nothing to a run
/// that is not running.
///
/// # Errors
/// Database errors.
pub async fn mark_interrupted(pool: &PgPool, run_id: Uuid, reason: &str) -> Result<()> {
    let execution: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT execution_id FROM ops.runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
    if let Some(execution) = execution {
        give_up(pool, run_id, execution, reason).await?;
    }
    Ok(())
}

/// The windows of a run that it has not loaded yet, in order: what an execution of it loads.
///
/// # Errors
/// Database errors.
pub async fn pending_windows<'e>(
    db: impl sqlx::PgExecutor<'e>,
    run_id: Uuid,
) -> Result<Vec<Window>> {
    let bounds: Vec<(PgTimestamp, PgTimestamp)> = sqlx::query_as(
        "SELECT window_start, window_end FROM ops.run_windows \
         WHERE run_id = $1 AND status <> 'succeeded' ORDER BY window_start",
    )
    .bind(run_id)
    .fetch_all(db)
    .await?;
    Ok(stored_windows(bounds))
}

/// Windows as stored (`window_start`, `window_end`): a day for loads, a month for verifications.
fn stored_windows(bounds: Vec<(PgTimestamp, PgTimestamp)>) -> Vec<Window> {
    bounds
        .into_iter()
        .map(|(start, end)| Window::between(start.0, end.0))
        .collect()
}

/// The windows of a run that did not succeed (failed, or never finished) and have not been
/// loaded since by another run (a retry), in order: what retrying the run would load.
///
/// # Errors
/// Database errors.
pub async fn unfinished_windows<'e>(
    db: impl sqlx::PgExecutor<'e>,
    run_id: Uuid,
) -> Result<Vec<Window>> {
    let bounds: Vec<(PgTimestamp, PgTimestamp)> = sqlx::query_as(
        "SELECT rw.window_start, rw.window_end FROM ops.run_windows rw \
         JOIN ops.runs r ON r.id = rw.run_id \
         LEFT JOIN ops.windows w ON w.pipeline = r.pipeline AND w.realm_id = r.realm_id \
              AND w.window_start = rw.window_start \
         WHERE rw.run_id = $1 AND rw.status <> 'succeeded' \
           AND w.status IS DISTINCT FROM 'succeeded' \
         ORDER BY rw.window_start",
    )
    .bind(run_id)
    .fetch_all(db)
    .await?;
    Ok(stored_windows(bounds))
}
