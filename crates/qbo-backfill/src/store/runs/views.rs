//! Read models of runs for the API and the UI: a run with its live counts (summed from its
//! windows, so they move while it runs) and its daily windows, in the contract's JSON shape.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::pipeline::Pipeline;
use crate::store::runs::{RunStatus, WindowStatus};
use crate::store::{PgDate, PgTimestamp};

fn rfc3339(t: Option<PgTimestamp>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

/// Upsert counts of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows unchanged.
    pub unchanged: i64,
    /// Their sum.
    pub total: i64,
}

/// One window of a run.
#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    /// `D 00:00Z`.
    pub start_utc: String,
    /// `D+1 00:00Z`.
    pub end_utc: String,
    /// Status for this run.
    pub status: WindowStatus,
    /// Pages written.
    pub pages: i32,
    /// Rows received.
    pub rows: i64,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows unchanged.
    pub unchanged: i64,
    /// How long it took.
    pub duration_s: Option<f64>,
    /// Why it failed (or stopped).
    pub error: Option<String>,
    /// Intuit's transaction id of the failure.
    pub intuit_tid: Option<String>,
}

/// A run in the contract's JSON shape.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Run id.
    pub id: Uuid,
    /// Pipeline.
    pub pipeline: String,
    /// Company.
    pub realm_id: String,
    /// Status.
    pub status: RunStatus,
    /// First day.
    pub fecha_inicio: String,
    /// First day not loaded.
    pub fecha_fin: String,
    /// What started it: `cli`, `api`, `ui`, `retry`, `trigger`, `demo`.
    pub trigger: String,
    /// The trigger that fired it.
    pub trigger_id: Option<Uuid>,
    /// Who started it: the web UI operator, the API token's name, the command line's system
    /// user (`null` for a trigger, a webhook, the demo, and runs from before this was kept).
    pub started_by: Option<String>,
    /// The run it retries.
    pub retry_of: Option<Uuid>,
    /// When it was queued.
    pub created_at: Option<String>,
    /// When a worker first started it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Whether a cancel was asked.
    pub cancel_requested: bool,
    /// Windows in the run.
    pub windows_total: i32,
    /// Windows failed.
    pub windows_failed: i64,
    /// Windows succeeded.
    pub windows_succeeded: i64,
    /// What a retry would load: windows of this run neither loaded by it nor since; while it
    /// is queued or running, the windows it has not loaded yet.
    pub windows_outstanding: i64,
    /// The newest run that retries this one.
    pub retried_by: Option<Uuid>,
    /// Rows received.
    pub rows: i64,
    /// Upsert counts, live.
    pub counts: Counts,
    /// QuickBooks requests sent (written when an execution ends).
    pub requests: i64,
    /// Throttled answers.
    pub throttled: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its windows (only in a single run's view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<WindowView>>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    pipeline: String,
    realm_id: String,
    status: RunStatus,
    fecha_inicio: PgDate,
    fecha_fin: PgDate,
    trigger: String,
    trigger_id: Option<Uuid>,
    started_by: Option<String>,
    retry_of: Option<Uuid>,
    created_at: Option<PgTimestamp>,
    started_at: Option<PgTimestamp>,
    finished_at: Option<PgTimestamp>,
    cancel_requested: bool,
    windows_total: i32,
    w_failed: i64,
    w_succeeded: i64,
    w_outstanding: i64,
    retried_by: Option<Uuid>,
    w_rows: i64,
    w_inserted: i64,
    w_updated: i64,
    w_unchanged: i64,
    requests: i64,
    throttled: i64,
    error: Option<String>,
}

impl From<RunRow> for RunView {
    fn from(r: RunRow) -> Self {
        Self {
            id: r.id,
            pipeline: r.pipeline,
            realm_id: r.realm_id,
            status: r.status,
            fecha_inicio: r.fecha_inicio.0.to_string(),
            fecha_fin: r.fecha_fin.0.to_string(),
            trigger: r.trigger,
            trigger_id: r.trigger_id,
            started_by: r.started_by,
            retry_of: r.retry_of,
            created_at: rfc3339(r.created_at),
            started_at: rfc3339(r.started_at),
            finished_at: rfc3339(r.finished_at),
            cancel_requested: r.cancel_requested,
            windows_total: r.windows_total,
            windows_failed: r.w_failed,
            windows_succeeded: r.w_succeeded,
            windows_outstanding: r.w_outstanding,
            retried_by: r.retried_by,
            rows: r.w_rows,
            counts: Counts {
                inserted: r.w_inserted,
                updated: r.w_updated,
                unchanged: r.w_unchanged,
                total: r.w_inserted + r.w_updated + r.w_unchanged,
            },
            requests: r.requests,
            throttled: r.throttled,
            error: r.error,
            windows: None,
        }
    }
}

/// A run with its window counts, kept in its row as its windows change (`r.w_*`, migration
/// 0020). What a retry would load: for a queued or running run, the windows it has not loaded
/// yet; for an ended one, its windows that did not succeed and were not loaded since, each
/// looked up by its key (a join there was planned as a quadratic loop while the tables had no
/// statistics yet: 0.7 s for 50 running runs of a year).
const RUN_SELECT: &str = "SELECT r.id, r.pipeline, r.realm_id, r.status, r.fecha_inicio, \
    r.fecha_fin, r.trigger, r.trigger_id, r.started_by, r.retry_of, r.created_at, r.started_at, r.finished_at, \
    r.cancel_requested, r.windows_total, r.w_failed, r.w_succeeded, \
    CASE WHEN r.status IN ('queued', 'running') THEN r.windows_total - r.w_succeeded \
      ELSE o.outstanding END AS w_outstanding, \
    (SELECT id FROM ops.runs n WHERE n.retry_of = r.id ORDER BY n.created_at DESC LIMIT 1) \
      AS retried_by, \
    r.w_rows, r.w_inserted, r.w_updated, r.w_unchanged, r.requests, r.throttled, r.error \
    FROM ops.runs r \
    CROSS JOIN LATERAL (SELECT count(*) AS outstanding FROM ops.run_windows rw \
      WHERE rw.run_id = r.id AND r.status NOT IN ('queued', 'running') \
        AND rw.status <> 'succeeded' AND (SELECT ow.status \
        FROM ops.windows ow WHERE ow.pipeline = r.pipeline AND ow.realm_id = r.realm_id \
          AND ow.window_start = rw.window_start) IS DISTINCT FROM 'succeeded') o";

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Only this pipeline.
    pub pipeline: Option<Pipeline>,
    /// Only runs listed after this one: created before it, or at the same time with a smaller id
    /// (keyset pagination on the list's order).
    pub before: Option<Uuid>,
}

/// The newest `limit` runs matching `filter`, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(
    pool: &PgPool,
    filter: &RunFilter,
    limit: i64,
) -> Result<Vec<RunView>, sqlx::Error> {
    let rows = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(format!(
        "{RUN_SELECT} WHERE ($1::text IS NULL OR r.status = $1) \
           AND ($2::text IS NULL OR r.pipeline = $2) \
           AND ($3::uuid IS NULL OR (r.created_at, r.id) < \
             (SELECT b.created_at, b.id FROM ops.runs b WHERE b.id = $3)) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $4"
    )))
    .bind(filter.status)
    .bind(filter.pipeline.map(Pipeline::name))
    .bind(filter.before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RunView::from).collect())
}

/// The runs of batch `id`, in the order they were enqueued (catalog order, then retries).
///
/// # Errors
/// Database errors.
pub async fn of_batch(pool: &PgPool, id: Uuid) -> Result<Vec<RunView>, sqlx::Error> {
    let rows = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(format!(
        "{RUN_SELECT} WHERE r.batch_id = $1 ORDER BY r.id"
    )))
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RunView::from).collect())
}

/// The newest run of each of `pipelines` that has one, in one query (the Pipelines page shows
/// one per pipeline).
///
/// # Errors
/// Database errors.
pub async fn latest_per_pipeline(
    pool: &PgPool,
    pipelines: &[&str],
) -> Result<Vec<RunView>, sqlx::Error> {
    let rows = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(format!(
        "{RUN_SELECT} WHERE r.id IN (SELECT l.id FROM unnest($1::text[]) AS p(name) \
           CROSS JOIN LATERAL (SELECT n.id FROM ops.runs n WHERE n.pipeline = p.name \
             ORDER BY n.created_at DESC, n.id DESC LIMIT 1) AS l)"
    )))
    .bind(pipelines)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RunView::from).collect())
}

#[derive(sqlx::FromRow)]
struct WindowRow {
    window_start: PgTimestamp,
    window_end: PgTimestamp,
    status: WindowStatus,
    pages: i32,
    rows_total: i64,
    inserted: i64,
    updated: i64,
    unchanged: i64,
    duration_ms: Option<i64>,
    error: Option<String>,
    intuit_tid: Option<String>,
}

/// One run with its windows.
///
/// # Errors
/// Database errors.
pub async fn get(pool: &PgPool, run_id: Uuid) -> Result<Option<RunView>, sqlx::Error> {
    // Two reads on two connections at once: under load each round trip waits for a CPU, so the
    // page waits for one instead of two (the windows of a run that does not exist are none).
    let run =
        sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(format!("{RUN_SELECT} WHERE r.id = $1")))
            .bind(run_id)
            .fetch_optional(pool);
    let windows = sqlx::query_as::<_, WindowRow>(
        "SELECT window_start, window_end, status, pages, rows_total, inserted, updated, unchanged, \
                duration_ms, error, intuit_tid \
         FROM ops.run_windows WHERE run_id = $1 ORDER BY window_start",
    )
    .bind(run_id)
    .fetch_all(pool);
    let (row, windows) = tokio::try_join!(run, windows)?;
    let Some(row) = row else { return Ok(None) };
    let mut view = RunView::from(row);
    #[allow(clippy::cast_precision_loss)]
    let windows = windows
        .into_iter()
        .map(|w| WindowView {
            start_utc: w.window_start.0.to_string(),
            end_utc: w.window_end.0.to_string(),
            status: w.status,
            pages: w.pages,
            rows: w.rows_total,
            inserted: w.inserted,
            updated: w.updated,
            unchanged: w.unchanged,
            duration_s: w.duration_ms.map(|ms| ms as f64 / 1000.0),
            error: w.error,
            intuit_tid: w.intuit_tid,
        })
        .collect();
    view.windows = Some(windows);
    Ok(Some(view))
}
