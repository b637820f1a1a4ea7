//! Batches in `ops.batches`: one row per `all_backfill` / `all_incremental` action, its runs
//! marked with its id in `ops.runs.batch_id`, and the batch read back with its runs.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::batch::Batch;
use crate::domain::pipeline::DateRange;
use crate::domain::run::RunOrigin;
use crate::store::runs::views::{self, RunView};
use crate::store::{PgDate, PgTimestamp};

/// A batch to record.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    /// Which batch.
    pub batch: Batch,
    /// The company.
    pub realm_id: &'a str,
    /// The dates asked (`None`: each sync from its cursor).
    pub range: Option<DateRange>,
    /// What started it.
    pub trigger: RunOrigin,
    /// The trigger that fired it.
    pub trigger_id: Option<Uuid>,
    /// Who started it (as [`super::queue::NewRun::started_by`]; its runs carry the same).
    pub started_by: Option<&'a str>,
    /// The worker of the command line that runs the batch's runs itself, one after another
    /// (`None`: the queue's workers run them). Its runs are not requeued when their worker is
    /// lost, and are cancelled once that command line is gone.
    pub run_by: Option<Uuid>,
}

/// Records `batch` and marks `runs` (enqueued in the same transaction) as its runs.
///
/// # Errors
/// Database errors.
pub async fn insert(
    conn: &mut PgConnection,
    batch: &NewBatch<'_>,
    runs: &[Uuid],
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ops.batches (id, name, realm_id, fecha_inicio, fecha_fin, trigger, trigger_id, \
           run_by, started_by) VALUES ($1, $2, $3, $4::date, $5::date, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(batch.batch.name())
    .bind(batch.realm_id)
    .bind(batch.range.map(|r| PgDate(r.fecha_inicio)))
    .bind(batch.range.map(|r| PgDate(r.fecha_fin)))
    .bind(batch.trigger)
    .bind(batch.trigger_id)
    .bind(batch.run_by)
    .bind(batch.started_by)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ops.runs SET batch_id = $1 WHERE id = ANY($2)")
        .bind(id)
        .bind(runs)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// A batch with its runs, as the API answers it and the batch page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    /// Batch id.
    pub id: Uuid,
    /// `all_backfill` or `all_incremental`.
    pub name: String,
    /// The company.
    pub realm_id: String,
    /// The first day asked, if dates were given.
    pub fecha_inicio: Option<String>,
    /// The first day not loaded, if dates were given.
    pub fecha_fin: Option<String>,
    /// What started it.
    pub trigger: String,
    /// Who started it (as [`RunView::started_by`]).
    pub started_by: Option<String>,
    /// When it was enqueued.
    pub created_at: String,
    /// Each entity's latest run (a run retried counts through its retry) by status (`queued`,
    /// `running`, `succeeded`, …), and `total` (one per entity): every run `succeeded` once
    /// the batch loaded everything.
    pub status_counts: std::collections::BTreeMap<String, usize>,
    /// The windows the batch planned (its first runs', retries not counted again).
    pub windows_total: i64,
    /// Of those, the ones loaded: all but what each entity's latest run has left to load.
    pub windows_succeeded: i64,
    /// The windows each entity's latest run failed.
    pub windows_failed: i64,
    /// Rows received by every run.
    pub rows: i64,
    /// Its runs, oldest first (catalog order), retries after the run they retry.
    pub runs: Vec<RunView>,
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: Uuid,
    name: String,
    realm_id: String,
    fecha_inicio: Option<PgDate>,
    fecha_fin: Option<PgDate>,
    trigger: String,
    started_by: Option<String>,
    created_at: PgTimestamp,
}

/// Batch `id` with its runs, or `None`.
///
/// # Errors
/// Database errors.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<BatchView>, sqlx::Error> {
    let row = sqlx::query_as::<_, BatchRow>(
        "SELECT id, name, realm_id, fecha_inicio, fecha_fin, trigger, started_by, created_at \
         FROM ops.batches WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let runs = views::of_batch(pool, id).await?;
    // Each entity's latest run: a run retried is counted through its retry (retries join the
    // batch of the run they retry; one from before they did is not in it).
    let ids: std::collections::HashSet<Uuid> = runs.iter().map(|r| r.id).collect();
    let latest = || {
        runs.iter()
            .filter(|r| r.retried_by.is_none_or(|retry| !ids.contains(&retry)))
    };
    let mut status_counts = std::collections::BTreeMap::new();
    for run in latest() {
        *status_counts.entry(run.status.to_string()).or_insert(0) += 1;
    }
    status_counts.insert("total".to_owned(), latest().count());
    let windows_total: i64 = runs
        .iter()
        .filter(|r| r.retry_of.is_none())
        .map(|r| i64::from(r.windows_total))
        .sum();
    let left: i64 = latest().map(|r| r.windows_outstanding).sum();
    Ok(Some(BatchView {
        id: row.id,
        name: row.name,
        realm_id: row.realm_id,
        fecha_inicio: row.fecha_inicio.map(|d| d.0.to_string()),
        fecha_fin: row.fecha_fin.map(|d| d.0.to_string()),
        trigger: row.trigger,
        started_by: row.started_by,
        created_at: row.created_at.0.to_string(),
        status_counts,
        windows_total,
        windows_succeeded: (windows_total - left).max(0),
        windows_failed: latest().map(|r| r.windows_failed).sum(),
        rows: runs.iter().map(|r| r.rows).sum(),
        runs,
    }))
}
