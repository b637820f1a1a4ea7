//! Claims: a run's lease, renewed by the heartbeat, which holds the run's windows too; windows
//! taken over when their holder is gone; and a span's claim of many days at once, set-based.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use super::{Execution, LEASE_EXPIRED, Result, RunStatus};
use crate::domain::pipeline::{Pipeline, Window};
use crate::store::PgTimestamp;
use crate::store::runs::workers;

/// Renews the run's lease and heartbeat: one row, however many windows the run holds (a window
/// held by an execution is held as long as the execution's run lease; see [`claim_windows`]).
/// Returns `None` when this execution no longer holds the run (taken over, reaped), else whether
/// a cancel was requested.
///
/// # Errors
/// Database errors.
pub async fn heartbeat(pool: &PgPool, exec: &Execution, lease: Duration) -> Result<Option<bool>> {
    sqlx::query_scalar(
        "UPDATE ops.runs SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $3) \
         WHERE id = $1 AND execution_id = $2 AND status = 'running' RETURNING cancel_requested",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await
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

/// Claims windows (in day order) at once, in one transaction of a fixed number of statements
/// however many windows there are (a span of a long history holds thousands): their rows are
/// locked in day order; each is claimed when it is not running, or its holder run is over, was
/// claimed again since, lost its lease or died. Resets the windows' counters (a window is always
/// re-loaded whole).
///
/// A claimed window holds no lease of its own (`lease_until` is NULL): it is held as long as the
/// claiming execution holds its run, whose one lease row the heartbeat renews. A `lease_until`
/// set on a running window caps its claim (once past, anyone may take the window). `_lease`,
/// the run's lease, is therefore not written here.
///
/// # Errors
/// Database errors.
pub async fn claim_windows(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    windows: &[Window],
    _lease: Duration,
) -> Result<SpanClaim> {
    let mut out = SpanClaim::default();
    if windows.is_empty() {
        return Ok(out);
    }
    let at = ClaimAt {
        exec,
        pipeline: pipeline.name(),
        realm_id,
    };
    let starts: Vec<PgTimestamp> = windows.iter().map(|w| PgTimestamp(w.start)).collect();
    let mut tx = pool.begin().await?;
    let held = lock_windows(&mut tx, &at, windows, &starts).await?;
    let gone = gone_holders(&mut tx, &held).await?;
    let busy: HashMap<jiff::Timestamp, Uuid> = held
        .iter()
        .filter(|h| !gone.contains(&(h.run_id, h.execution_id)))
        .map(|h| (h.start.0, h.run_id))
        .collect();
    give_back_taken(&mut tx, exec, &held, &gone).await?;
    if !run_still_held(&mut tx, exec).await? {
        out.lost = true;
        return Ok(out);
    }
    for window in windows {
        match busy.get(&window.start) {
            Some(holder) => out.busy.push((*window, *holder)),
            None => out.claimed.push(*window),
        }
    }
    if out.claimed.is_empty() {
        return Ok(out);
    }
    take_windows(&mut tx, &at, &out.claimed).await?;
    tx.commit().await?;
    Ok(out)
}

/// Who claims, and where.
struct ClaimAt<'a> {
    exec: &'a Execution,
    pipeline: &'a str,
    realm_id: &'a str,
}

/// A window of a claim running for another execution (and whose own `lease_until`, if set, has
/// not passed), as read under the claim's lock.
struct HeldWindow {
    start: PgTimestamp,
    run_id: Uuid,
    execution_id: Option<Uuid>,
}

/// Locks the windows' rows in day order (creating the missing ones `pending`) and returns those
/// another execution holds, in one statement.
async fn lock_windows(
    conn: &mut PgConnection,
    at: &ClaimAt<'_>,
    windows: &[Window],
    starts: &[PgTimestamp],
) -> Result<Vec<HeldWindow>> {
    let mut inserted = false;
    loop {
        let row = sqlx::query(
            "WITH locked AS (SELECT w.window_start, w.status, w.run_id, w.execution_id, \
                 w.lease_until FROM ops.windows w \
               WHERE w.pipeline = $1 AND w.realm_id = $2 AND w.window_start = ANY($3) \
               ORDER BY w.window_start FOR UPDATE) \
             SELECT count(*) AS present, \
               coalesce(array_agg(window_start ORDER BY window_start) FILTER (WHERE held), '{}') \
                 AS starts, \
               coalesce(array_agg(run_id ORDER BY window_start) FILTER (WHERE held), '{}') \
                 AS runs, \
               coalesce(array_agg(execution_id ORDER BY window_start) FILTER (WHERE held), '{}') \
                 AS executions \
             FROM locked CROSS JOIN LATERAL (SELECT status = 'running' AND run_id IS NOT NULL \
               AND execution_id IS DISTINCT FROM $4 \
               AND (lease_until IS NULL OR lease_until >= now()) AS held) h",
        )
        .bind(at.pipeline)
        .bind(at.realm_id)
        .bind(starts)
        .bind(at.exec.execution_id)
        .fetch_one(&mut *conn)
        .await?;
        let present: i64 = row.try_get("present")?;
        if present < i64::try_from(starts.len()).unwrap_or(i64::MAX) && !inserted {
            // Windows enqueued runs never had (a claim outside a run's own windows).
            insert_missing(&mut *conn, at, windows).await?;
            inserted = true;
            continue;
        }
        let starts: Vec<PgTimestamp> = row.try_get("starts")?;
        let runs: Vec<Uuid> = row.try_get("runs")?;
        let executions: Vec<Option<Uuid>> = row.try_get("executions")?;
        return Ok(starts
            .into_iter()
            .zip(runs)
            .zip(executions)
            .map(|((start, run_id), execution_id)| HeldWindow {
                start,
                run_id,
                execution_id,
            })
            .collect());
    }
}

/// Creates the windows' rows that do not exist yet, `pending`.
async fn insert_missing(
    conn: &mut PgConnection,
    at: &ClaimAt<'_>,
    windows: &[Window],
) -> Result<()> {
    let starts: Vec<PgTimestamp> = windows.iter().map(|w| PgTimestamp(w.start)).collect();
    let ends: Vec<PgTimestamp> = windows.iter().map(|w| PgTimestamp(w.end)).collect();
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status) \
         SELECT $1, $2, s, e, 'pending' FROM unnest($3::timestamptz[], $4::timestamptz[]) AS t(s, e) \
         ON CONFLICT DO NOTHING",
    )
    .bind(at.pipeline)
    .bind(at.realm_id)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Of the holders of `held` (run, execution), those that are gone (as seen inside the claiming
/// transaction, in one statement): the run is over, was claimed again since, lost its lease, or
/// its worker died.
async fn gone_holders(
    conn: &mut PgConnection,
    held: &[HeldWindow],
) -> Result<HashSet<(Uuid, Option<Uuid>)>> {
    let holders: HashSet<(Uuid, Option<Uuid>)> =
        held.iter().map(|h| (h.run_id, h.execution_id)).collect();
    if holders.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = holders.iter().map(|(run, _)| *run).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.status, r.execution_id, {LEASE_EXPIRED} AS expired, w.liveness_key \
         FROM ops.runs r LEFT JOIN ops.workers w ON w.id = r.worker_id WHERE r.id = ANY($1)"
    )))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut runs = HashMap::new();
    for run in rows {
        let id: Uuid = run.try_get("id")?;
        let status: RunStatus = run.try_get("status")?;
        let execution: Option<Uuid> = run.try_get("execution_id")?;
        let expired: bool = run.try_get("expired")?;
        let key: Option<String> = run.try_get("liveness_key")?;
        let dead_here = key.as_deref().and_then(workers::alive_here) == Some(false);
        runs.insert(
            id,
            (
                status != RunStatus::Running || expired || dead_here,
                execution,
            ),
        );
    }
    Ok(holders
        .into_iter()
        .filter(|(run, holder_execution)| match runs.get(run) {
            None => true,
            Some((over, execution)) => {
                *over || (holder_execution.is_some() && execution != holder_execution)
            }
        })
        .collect())
}

/// Gives the gone holders' own records of the windows taken from them back to `pending` (they
/// must not stay `running` forever): one statement per gone holder run, whatever the windows.
async fn give_back_taken(
    conn: &mut PgConnection,
    exec: &Execution,
    held: &[HeldWindow],
    gone: &HashSet<(Uuid, Option<Uuid>)>,
) -> Result<()> {
    let mut taken: HashMap<Uuid, Vec<PgTimestamp>> = HashMap::new();
    for h in held
        .iter()
        .filter(|h| gone.contains(&(h.run_id, h.execution_id)))
    {
        taken.entry(h.run_id).or_default().push(h.start);
    }
    for (run_id, starts) in taken {
        sqlx::query(
            "UPDATE ops.run_windows SET status = 'pending', \
               error = coalesce(error, 'taken over by run ' || $3::text) \
             WHERE run_id = $1 AND window_start = ANY($2) AND status = 'running'",
        )
        .bind(run_id)
        .bind(&starts)
        .bind(exec.run_id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether this execution still holds its run (locked `FOR NO KEY UPDATE` until the transaction
/// ends). Not `FOR SHARE`: a claim that resets a window's counters moves the run's own (the
/// `run_windows_counters` trigger updates its row), and two claims of one run that both held the
/// row shared and then both wanted to update it deadlocked. The claims of one run take turns on
/// its row instead, as its page writes already do.
async fn run_still_held(conn: &mut PgConnection, exec: &Execution) -> Result<bool> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM ops.runs WHERE id = $1 AND execution_id = $2 AND status = 'running' \
         FOR NO KEY UPDATE",
    )
    .bind(exec.run_id)
    .bind(exec.execution_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Marks `claimed` (locked) running for this execution, held by its run's lease, with zeroed
/// counters, in `ops.windows` and in the run's own `ops.run_windows`: two statements.
async fn take_windows(conn: &mut PgConnection, at: &ClaimAt<'_>, claimed: &[Window]) -> Result<()> {
    let starts: Vec<PgTimestamp> = claimed.iter().map(|w| PgTimestamp(w.start)).collect();
    sqlx::query(
        "UPDATE ops.windows SET status = 'running', run_id = $4, execution_id = $5, \
           lease_until = NULL, attempts = attempts + 1, pages = 0, rows_total = 0, inserted = 0, \
           updated = 0, unchanged = 0, started_at = now(), finished_at = NULL, \
           duration_ms = NULL, last_error = NULL, last_intuit_tid = NULL \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = ANY($3)",
    )
    .bind(at.pipeline)
    .bind(at.realm_id)
    .bind(&starts)
    .bind(at.exec.run_id)
    .bind(at.exec.execution_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'running', pages = 0, rows_total = 0, inserted = 0, \
         updated = 0, unchanged = 0, error = NULL, intuit_tid = NULL, duration_ms = NULL \
         WHERE run_id = $1 AND window_start = ANY($2)",
    )
    .bind(at.exec.run_id)
    .bind(&starts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
