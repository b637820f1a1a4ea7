//! Claims: a run's and its windows' leases, renewed by the heartbeat, taken over when their
//! holder is gone, and a span's claim of many days at once.

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use super::{Execution, LEASE_EXPIRED, Result, RunStatus, WindowStatus, ts};
use crate::domain::pipeline::{Pipeline, Window};
use crate::store::runs::workers;

/// Renews the run's lease and heartbeat and its windows' leases. Returns `None` when this
/// execution no longer holds the run (taken over, reaped), else whether a cancel was requested.
///
/// # Errors
/// Database errors.
pub async fn heartbeat(pool: &PgPool, exec: &Execution, lease: Duration) -> Result<Option<bool>> {
    let lease_s = lease.as_secs_f64();
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE ops.runs SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $3) \
         WHERE id = $1 AND execution_id = $2 AND status = 'running' RETURNING cancel_requested",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .bind(lease_s)
    .fetch_optional(pool)
    .await?;
    if cancel.is_some() {
        // Rows a page's transaction holds are skipped (never waited for, so a heartbeat cannot
        // deadlock with a span's writes, which lock its days in order); the next beat renews them.
        sqlx::query(
            "UPDATE ops.windows AS w SET lease_until = now() + make_interval(secs => $2) \
             FROM (SELECT pipeline, realm_id, window_start FROM ops.windows \
                   WHERE execution_id = $1 AND status = 'running' \
                   ORDER BY window_start FOR UPDATE SKIP LOCKED) AS held \
             WHERE w.pipeline = held.pipeline AND w.realm_id = held.realm_id \
               AND w.window_start = held.window_start",
        )
        .bind(exec.execution_id)
        .bind(lease_s)
        .execute(pool)
        .await?;
    }
    Ok(cancel)
}

/// The outcome of trying to claim a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This run now holds the window.
    Claimed,
    /// Another live run is loading it.
    Busy {
        /// The run holding it.
        holder: Uuid,
    },
    /// This execution no longer holds its run: stop.
    Lost,
}

/// Whether the run holding a window claim (as seen inside the claiming transaction) is gone.
async fn holder_gone(
    conn: &mut PgConnection,
    holder: Uuid,
    holder_execution: Option<Uuid>,
) -> Result<bool> {
    let run = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.status, r.execution_id, {LEASE_EXPIRED} AS expired, w.liveness_key \
         FROM ops.runs r LEFT JOIN ops.workers w ON w.id = r.worker_id WHERE r.id = $1"
    )))
    .bind(holder)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = run else { return Ok(true) };
    let status: RunStatus = run.try_get("status")?;
    let execution: Option<Uuid> = run.try_get("execution_id")?;
    let expired: bool = run.try_get("expired")?;
    let key: Option<String> = run.try_get("liveness_key")?;
    let dead_here = key.as_deref().and_then(workers::alive_here) == Some(false);
    Ok(status != RunStatus::Running
        || (holder_execution.is_some() && execution != holder_execution)
        || expired
        || dead_here)
}

/// When the window (`row`, locked) is running for another live execution, its run; otherwise
/// `None`, after giving the gone holder's own record of the window back to `pending`.
async fn busy_holder(
    conn: &mut PgConnection,
    exec: &Execution,
    window: &Window,
    row: &sqlx::postgres::PgRow,
) -> Result<Option<Uuid>> {
    let status: WindowStatus = row.try_get("status")?;
    let holder: Option<Uuid> = row.try_get("run_id")?;
    let holder_execution: Option<Uuid> = row.try_get("execution_id")?;
    let expired: bool = row.try_get("expired")?;
    if status == WindowStatus::Running
        && let Some(holder) = holder
        && holder_execution != Some(exec.execution_id)
    {
        let gone = expired || holder_gone(&mut *conn, holder, holder_execution).await?;
        if !gone {
            return Ok(Some(holder));
        }
        // The holder's own record of this window must not stay `running` forever.
        sqlx::query(
            "UPDATE ops.run_windows SET status = 'pending', \
               error = coalesce(error, 'taken over by run ' || $3::text) \
             WHERE run_id = $1 AND window_start = $2::timestamptz AND status = 'running'",
        )
        .bind(holder)
        .bind(ts(window.start))
        .bind(exec.run_id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(None)
}

/// Claims `window` for the execution, as [`claim_windows`] claims each of its windows.
///
/// # Errors
/// Database errors.
pub async fn claim_window(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    lease: Duration,
) -> Result<Claim> {
    let claim = claim_windows(
        pool,
        exec,
        pipeline,
        realm_id,
        std::slice::from_ref(window),
        lease,
    )
    .await?;
    Ok(if claim.lost {
        Claim::Lost
    } else if let Some((_, holder)) = claim.busy.first() {
        Claim::Busy { holder: *holder }
    } else {
        Claim::Claimed
    })
}

/// What [`claim_windows`] got.
#[derive(Debug, Default)]
pub struct SpanClaim {
    /// Windows this execution now holds, in order.
    pub claimed: Vec<Window>,
    /// Windows another live run holds, with that run (load them on their own, waiting).
    pub busy: Vec<(Window, Uuid)>,
    /// This execution no longer holds its run: stop.
    pub lost: bool,
}

/// Claims windows (in day order) at once, in one transaction (a span of a long history holds
/// thousands), locking them in day order: each is claimed when it is not running, or its holder
/// run is over, was claimed again since, lost its lease or died. Resets the windows' counters (a
/// window is always re-loaded whole).
///
/// # Errors
/// Database errors.
pub async fn claim_windows(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    windows: &[Window],
    lease: Duration,
) -> Result<SpanClaim> {
    let mut out = SpanClaim::default();
    if windows.is_empty() {
        return Ok(out);
    }
    let mut tx = pool.begin().await?;
    let busy_holders = busy_holders(&mut tx, exec, pipeline, realm_id, windows).await?;
    if !run_still_held(&mut tx, exec).await? {
        out.lost = true;
        return Ok(out);
    }
    for window in windows {
        match busy_holders.get(&window.start) {
            Some(holder) => out.busy.push((*window, *holder)),
            None => out.claimed.push(*window),
        }
    }
    if out.claimed.is_empty() {
        return Ok(out);
    }
    take_windows(&mut tx, exec, pipeline, realm_id, &out.claimed, lease).await?;
    tx.commit().await?;
    Ok(out)
}

/// The windows of `windows` (locked, in day order) that another live run holds, with that run.
async fn busy_holders(
    conn: &mut PgConnection,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    windows: &[Window],
) -> Result<std::collections::HashMap<jiff::Timestamp, Uuid>> {
    let starts: Vec<String> = windows.iter().map(|w| ts(w.start)).collect();
    let current = sqlx::query(
        "SELECT w.window_start, w.status, w.run_id, w.execution_id, \
                (w.lease_until IS NULL OR w.lease_until < now()) AS expired \
         FROM unnest($3::timestamptz[]) AS d(ws) \
         JOIN ops.windows w ON w.pipeline = $1 AND w.realm_id = $2 AND w.window_start = d.ws \
         ORDER BY w.window_start FOR UPDATE OF w",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&starts)
    .fetch_all(&mut *conn)
    .await?;
    // Rows are read in day order, like `windows`: one pass pairs them.
    let mut busy_holders = std::collections::HashMap::new();
    let mut rest = windows.iter();
    for row in &current {
        let start: crate::store::PgTimestamp = row.try_get("window_start")?;
        let Some(window) = rest.find(|w| w.start == start.0) else {
            continue;
        };
        if let Some(holder) = busy_holder(&mut *conn, exec, window, row).await? {
            busy_holders.insert(window.start, holder);
        }
    }
    Ok(busy_holders)
}

/// Whether this execution still holds its run (locked `FOR SHARE` until the transaction ends).
async fn run_still_held(conn: &mut PgConnection, exec: &Execution) -> Result<bool> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM ops.runs WHERE id = $1 AND execution_id = $2 AND status = 'running' \
         FOR SHARE",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Marks `claimed` running for this execution with a fresh lease and zeroed counters, in
/// `ops.windows` and in the run's own `ops.run_windows`.
async fn take_windows(
    conn: &mut PgConnection,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    claimed: &[Window],
    lease: Duration,
) -> Result<()> {
    let starts: Vec<String> = claimed.iter().map(|w| ts(w.start)).collect();
    let ends: Vec<String> = claimed.iter().map(|w| ts(w.end)).collect();
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status, run_id, \
                                 execution_id, lease_until, attempts, started_at) \
         SELECT $1, $2, s, e, 'running', $5, $7, now() + make_interval(secs => $6), 1, now() \
         FROM unnest($3::timestamptz[], $4::timestamptz[]) AS t(s, e) \
         ON CONFLICT (pipeline, realm_id, window_start) DO UPDATE SET \
           status = 'running', run_id = $5, execution_id = $7, \
           lease_until = now() + make_interval(secs => $6), \
           attempts = ops.windows.attempts + 1, pages = 0, rows_total = 0, inserted = 0, \
           updated = 0, unchanged = 0, started_at = now(), finished_at = NULL, \
           duration_ms = NULL, last_error = NULL, last_intuit_tid = NULL",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&starts)
    .bind(&ends)
    .bind(exec.run_id)
    .bind(lease.as_secs_f64())
    .bind(exec.execution_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'running', pages = 0, rows_total = 0, inserted = 0, \
         updated = 0, unchanged = 0, error = NULL, intuit_tid = NULL, duration_ms = NULL \
         FROM unnest($2::timestamptz[]) AS d(ws) \
         WHERE run_id = $1 AND window_start = d.ws",
    )
    .bind(exec.run_id)
    .bind(&starts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
