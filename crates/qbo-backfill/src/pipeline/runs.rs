//! Run and window bookkeeping in `ops`: creating a run with its windows, claiming a window so
//! two runs never load it at once (a lease, renewed by a heartbeat, taken over when its holder
//! died), recording each page's progress in the page's own transaction, and ending windows and
//! runs.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use super::{DateRange, Pipeline, Window};
use crate::store::raw::UpsertCounts;

/// How long a window claim lasts without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(60);

/// How often a running run renews its leases.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// A failure of the bookkeeping queries.
pub type Result<T> = std::result::Result<T, sqlx::Error>;

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Loading.
    Running,
    /// Every window succeeded.
    Succeeded,
    /// Some windows failed, or a fatal error stopped it.
    Failed,
    /// Stopped by the operator (Ctrl-C) or found dead; retryable.
    Interrupted,
}

impl RunStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            _ => Self::Running,
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Run id.
    pub id: Uuid,
    /// Pipeline name.
    pub pipeline: String,
    /// Company.
    pub realm_id: String,
    /// The range asked.
    pub range: DateRange,
    /// Status.
    pub status: RunStatus,
    /// Host that ran it.
    pub host: Option<String>,
    /// Process that ran it.
    pub pid: Option<i32>,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: Option<f64>,
}

/// Totals of a run, as written at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Windows in the run.
    pub windows: u64,
    /// Windows that failed.
    pub failed_windows: u64,
    /// Pages written.
    pub pages: u64,
    /// Rows received.
    pub rows: u64,
    /// Upsert counts.
    pub counts: UpsertCounts,
}

/// This machine's name, for telling whether a run's process is still alive.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Whether process `pid` exists on this machine.
#[must_use]
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn ts(t: Timestamp) -> String {
    t.to_string()
}

/// Creates a running run for `windows` of `range` and makes sure every window has a row.
///
/// # Errors
/// Database errors.
pub async fn create_run(
    pool: &PgPool,
    pipeline: Pipeline,
    realm_id: &str,
    range: DateRange,
    windows: &[Window],
    retry_of: Option<Uuid>,
    trigger: &str,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO ops.runs (id, pipeline, realm_id, fecha_inicio, fecha_fin, status, trigger, \
         retry_of, host, pid, started_at, heartbeat_at, windows_total) \
         VALUES ($1, $2, $3, $4::date, $5::date, 'running', $6, $7, $8, $9, now(), now(), $10)",
    )
    .bind(id)
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(range.fecha_inicio.to_string())
    .bind(range.fecha_fin.to_string())
    .bind(trigger)
    .bind(retry_of)
    .bind(host_name())
    .bind(i32::try_from(std::process::id()).unwrap_or(0))
    .bind(i32::try_from(windows.len()).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    let starts: Vec<String> = windows.iter().map(|w| ts(w.start)).collect();
    let ends: Vec<String> = windows.iter().map(|w| ts(w.end)).collect();
    sqlx::query(
        "INSERT INTO ops.run_windows (run_id, window_start, window_end) \
         SELECT $1, s::timestamptz, e::timestamptz FROM unnest($2::text[], $3::text[]) AS t(s, e)",
    )
    .bind(id)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status) \
         SELECT $1, $2, s::timestamptz, e::timestamptz, 'pending' \
         FROM unnest($3::text[], $4::text[]) AS t(s, e) ON CONFLICT DO NOTHING",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Renews the run's heartbeat and the leases of the windows it holds.
///
/// # Errors
/// Database errors.
pub async fn heartbeat(pool: &PgPool, run_id: Uuid) -> Result<()> {
    let lease_s = LEASE.as_secs_f64();
    sqlx::query("UPDATE ops.runs SET heartbeat_at = now() WHERE id = $1")
        .bind(run_id)
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE ops.windows SET lease_until = now() + make_interval(secs => $2) \
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(lease_s)
    .execute(pool)
    .await?;
    Ok(())
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
}

/// Claims `window` for `run_id`: succeeds when the window is not running, its lease has
/// expired, or its holder run is over or died on this host. Resets the window's counters (a
/// window is always re-loaded whole).
///
/// # Errors
/// Database errors.
pub async fn claim_window(
    pool: &PgPool,
    run_id: Uuid,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
) -> Result<Claim> {
    let mut tx = pool.begin().await?;
    // Lock the window row on its own, then read its holder in a second statement. A join in
    // the locking statement would be wrong: when the lock had to wait for another claim, the
    // row is re-read after that claim commits but the joined run row is not, so the new
    // holder's liveness would come from a stale (or missing) row and a live run's window
    // would be taken over.
    let current = sqlx::query(
        "SELECT status, run_id, (lease_until IS NULL OR lease_until < now()) AS expired \
         FROM ops.windows \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = $3::timestamptz \
         FOR UPDATE",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(ts(window.start))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = current {
        let status: String = row.try_get("status")?;
        let holder: Option<Uuid> = row.try_get("run_id")?;
        let expired: bool = row.try_get("expired")?;
        if status == "running"
            && let Some(holder) = holder
            && holder != run_id
        {
            let run = sqlx::query("SELECT status, host, pid FROM ops.runs WHERE id = $1")
                .bind(holder)
                .fetch_optional(&mut *tx)
                .await?;
            let run_status: Option<String> =
                run.as_ref().map(|r| r.try_get("status")).transpose()?;
            let host: Option<String> = run
                .as_ref()
                .map(|r| r.try_get("host"))
                .transpose()?
                .flatten();
            let pid: Option<i32> = run
                .as_ref()
                .map(|r| r.try_get("pid"))
                .transpose()?
                .flatten();
            let holder_over = run_status.as_deref() != Some("running");
            let holder_dead =
                host.as_deref() == Some(host_name().as_str()) && pid.is_some_and(|p| !pid_alive(p));
            if !(expired || holder_over || holder_dead) {
                return Ok(Claim::Busy { holder });
            }
            if holder_dead || expired {
                sqlx::query(
                    "UPDATE ops.runs SET status = 'interrupted', finished_at = now(), \
                     error = coalesce(error, 'its process stopped without finishing') \
                     WHERE id = $1 AND status = 'running'",
                )
                .bind(holder)
                .execute(&mut *tx)
                .await?;
            }
            // The holder's own record of this window must not stay `running` forever.
            sqlx::query(
                "UPDATE ops.run_windows SET status = 'pending', \
                   error = coalesce(error, 'taken over by run ' || $3::text) \
                 WHERE run_id = $1 AND window_start = $2::timestamptz AND status = 'running'",
            )
            .bind(holder)
            .bind(ts(window.start))
            .bind(run_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
    }
    let lease_s = LEASE.as_secs_f64();
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status, run_id, \
                                 lease_until, attempts, started_at) \
         VALUES ($1, $2, $3::timestamptz, $4::timestamptz, 'running', $5, \
                 now() + make_interval(secs => $6), 1, now()) \
         ON CONFLICT (pipeline, realm_id, window_start) DO UPDATE SET \
           status = 'running', run_id = $5, lease_until = now() + make_interval(secs => $6), \
           attempts = ops.windows.attempts + 1, pages = 0, rows_total = 0, inserted = 0, \
           updated = 0, unchanged = 0, started_at = now(), finished_at = NULL, \
           duration_ms = NULL, last_error = NULL, last_intuit_tid = NULL",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(ts(window.start))
    .bind(ts(window.end))
    .bind(run_id)
    .bind(lease_s)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'running', pages = 0, rows_total = 0, inserted = 0, \
         updated = 0, unchanged = 0, error = NULL WHERE run_id = $1 AND window_start = $2::timestamptz",
    )
    .bind(run_id)
    .bind(ts(window.start))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claim::Claimed)
}

/// Records one written page in the page's own transaction. Returns `false` when this run no
/// longer holds the window (another run took it over): the caller must roll back.
///
/// # Errors
/// Database errors.
pub async fn record_page(
    conn: &mut PgConnection,
    run_id: Uuid,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    rows: u64,
    counts: UpsertCounts,
) -> Result<bool> {
    let lease_s = LEASE.as_secs_f64();
    let held = sqlx::query(
        "UPDATE ops.windows SET pages = pages + 1, rows_total = rows_total + $5, \
           inserted = inserted + $6, updated = updated + $7, unchanged = unchanged + $8, \
           lease_until = now() + make_interval(secs => $9) \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = $3::timestamptz \
           AND run_id = $4 AND status = 'running'",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(ts(window.start))
    .bind(run_id)
    .bind(to_i64(rows))
    .bind(to_i64(counts.inserted))
    .bind(to_i64(counts.updated))
    .bind(to_i64(counts.unchanged))
    .bind(lease_s)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !held {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE ops.run_windows SET pages = pages + 1, rows_total = rows_total + $3, \
           inserted = inserted + $4, updated = updated + $5, unchanged = unchanged + $6 \
         WHERE run_id = $1 AND window_start = $2::timestamptz",
    )
    .bind(run_id)
    .bind(ts(window.start))
    .bind(to_i64(rows))
    .bind(to_i64(counts.inserted))
    .bind(to_i64(counts.updated))
    .bind(to_i64(counts.unchanged))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
    /// Stopped before it finished (Ctrl-C, or the run stopped on a fatal error).
    Unfinished {
        /// Why.
        reason: &'a str,
    },
}

/// Ends a window held by `run_id`.
///
/// # Errors
/// Database errors.
pub async fn end_window(
    pool: &PgPool,
    run_id: Uuid,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    end: &WindowEnd<'_>,
    duration: Duration,
) -> Result<()> {
    let (status, run_window_status, error, tid) = match end {
        WindowEnd::Succeeded => ("succeeded", "succeeded", None, None),
        WindowEnd::Failed { error, intuit_tid } => ("failed", "failed", Some(*error), *intuit_tid),
        WindowEnd::Unfinished { reason } => ("pending", "pending", Some(*reason), None),
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE ops.windows SET status = $5, lease_until = NULL, finished_at = now(), \
           duration_ms = $6, last_error = $7, last_intuit_tid = $8 \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = $3::timestamptz AND run_id = $4",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(ts(window.start))
    .bind(run_id)
    .bind(status)
    .bind(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
    .bind(error)
    .bind(tid)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = $3, error = $4 \
         WHERE run_id = $1 AND window_start = $2::timestamptz",
    )
    .bind(run_id)
    .bind(ts(window.start))
    .bind(run_window_status)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Ends a run with its totals.
///
/// # Errors
/// Database errors.
pub async fn finish_run(
    pool: &PgPool,
    run_id: Uuid,
    status: RunStatus,
    totals: &RunTotals,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE ops.runs SET status = $2, finished_at = now(), heartbeat_at = now(), \
           windows_failed = $3, pages = $4, rows_total = $5, inserted = $6, updated = $7, \
           unchanged = $8, error = $9 WHERE id = $1",
    )
    .bind(run_id)
    .bind(status.as_str())
    .bind(i32::try_from(totals.failed_windows).unwrap_or(i32::MAX))
    .bind(to_i64(totals.pages))
    .bind(to_i64(totals.rows))
    .bind(to_i64(totals.counts.inserted))
    .bind(to_i64(totals.counts.updated))
    .bind(to_i64(totals.counts.unchanged))
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Loads a run.
///
/// # Errors
/// Database errors.
pub async fn load_run(pool: &PgPool, run_id: Uuid) -> Result<Option<RunRecord>> {
    let row = sqlx::query(
        "SELECT id, pipeline, realm_id, fecha_inicio::text AS fi, fecha_fin::text AS ff, status, \
                host, pid, extract(epoch FROM now() - heartbeat_at)::float8 AS age \
         FROM ops.runs WHERE id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let parse_date = |col: &str| -> Result<Date> {
        let text: String = row.try_get(col)?;
        text.parse::<Date>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let range = DateRange {
        fecha_inicio: parse_date("fi")?,
        fecha_fin: parse_date("ff")?,
    };
    let status: String = row.try_get("status")?;
    Ok(Some(RunRecord {
        id: row.try_get("id")?,
        pipeline: row.try_get("pipeline")?,
        realm_id: row.try_get("realm_id")?,
        range,
        status: RunStatus::parse(&status),
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        heartbeat_age_s: row.try_get("age")?,
    }))
}

/// Whether a run marked running is really alive: its heartbeat is fresh and, when it ran on
/// this host, its process still exists.
#[must_use]
pub fn run_is_alive(run: &RunRecord) -> bool {
    if run.status != RunStatus::Running {
        return false;
    }
    if run.host.as_deref() == Some(host_name().as_str())
        && let Some(pid) = run.pid
        && !pid_alive(pid)
    {
        return false;
    }
    run.heartbeat_age_s
        .is_some_and(|age| age < LEASE.as_secs_f64())
}

/// Marks a run whose process died as interrupted, and puts the windows it still held (in
/// `ops.windows` and in its own `ops.run_windows`) back to `pending`, so nothing stays
/// `running` after its process is gone. Does nothing to a run that is no longer running.
///
/// Locks windows before the run row, the same order as [`claim_window`], so the two never
/// deadlock.
///
/// # Errors
/// Database errors.
pub async fn mark_interrupted(pool: &PgPool, run_id: Uuid, reason: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE ops.windows SET status = 'pending', lease_until = NULL, finished_at = now(), \
           last_error = $2 \
         WHERE run_id = $1 AND status = 'running' \
           AND EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = $1 AND r.status = 'running')",
    )
    .bind(run_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ops.run_windows SET status = 'pending', error = coalesce(error, $2) \
         WHERE run_id = $1 AND status = 'running' \
           AND EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = $1 AND r.status = 'running')",
    )
    .bind(run_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ops.runs SET status = 'interrupted', finished_at = now(), \
         error = coalesce(error, $2) WHERE id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Finds the runs recorded as `running` whose process is gone (on this host its pid no longer
/// exists; on any host, no heartbeat for a whole [`LEASE`]) and marks each one interrupted
/// with [`mark_interrupted`]. Returns their ids.
///
/// # Errors
/// Database errors.
pub async fn reap_dead_runs(pool: &PgPool) -> Result<Vec<Uuid>> {
    let rows = sqlx::query(
        "SELECT id, host, pid, \
                (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $1)) AS stale \
         FROM ops.runs WHERE status = 'running'",
    )
    .bind(LEASE.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let here = host_name();
    let mut reaped = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let host: Option<String> = row.try_get("host")?;
        let pid: Option<i32> = row.try_get("pid")?;
        let stale: bool = row.try_get("stale")?;
        let gone = host.as_deref() == Some(here.as_str()) && pid.is_some_and(|p| !pid_alive(p));
        if stale || gone {
            mark_interrupted(pool, id, "its process stopped without finishing").await?;
            reaped.push(id);
        }
    }
    Ok(reaped)
}

/// The windows of a run that did not succeed (failed, or never finished), in order.
///
/// # Errors
/// Database errors.
pub async fn unfinished_windows(pool: &PgPool, run_id: Uuid) -> Result<Vec<Window>> {
    let rows = sqlx::query(
        "SELECT (window_start AT TIME ZONE 'UTC')::date::text AS day FROM ops.run_windows \
         WHERE run_id = $1 AND status <> 'succeeded' ORDER BY window_start",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let day: String = row.try_get("day")?;
            let day = day
                .parse::<Date>()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Window::for_day(day).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}
