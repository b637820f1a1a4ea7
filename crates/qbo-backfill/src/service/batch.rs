//! Loading a whole company in one action: planning a batch (`all_backfill`, `all_incremental`)
//! as one run per entity, each with its range and windows, refusing it whole when any entity
//! cannot run (nothing is written then), and enqueueing its runs together with the batch in one
//! transaction; retrying a batch is retrying each of its runs that has something left to load.

use jiff::Timestamp;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::batch::Batch;
use crate::domain::pipeline::{DateRange, Pipeline, RangeError, Window};
use crate::pipeline::{SinceError, range_or_since_cursor};
use crate::service::retry::{RetryRefusal, plan_retry, queue_retry};
use crate::store::runs::batches::{self, NewBatch};
use crate::store::runs::queue::{self, NewRun};

/// One run of a planned batch.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Its range: the batch's dates, or for a sync without dates, from its own cursor.
    pub range: DateRange,
    /// Its windows.
    pub windows: Vec<Window>,
}

/// Why a batch cannot start (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A backfill batch was given no dates, or only one.
    #[error(
        "{0} needs --fecha-inicio and --fecha-fin (only all_incremental runs without dates, each sync from its cursor)"
    )]
    DatesRequired(Batch),
    /// Some entities have never been synced, so a batch without dates has no range for them.
    #[error(
        "all_incremental without dates needs every entity synced once, and {count} never were for company {realm_id} (first: {first}): run it once with --fecha-inicio and --fecha-fin"
    )]
    NoCursor {
        /// How many entities have no cursor.
        count: usize,
        /// The first of them.
        first: Pipeline,
        /// The company.
        realm_id: String,
    },
    /// A range is out of what can be represented.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The database failed.
    #[error("cannot plan the batch in PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// Plans `batch` for company `realm_id` over `dates` (or, for `all_incremental`, each sync
/// from its cursor when `dates` is `None`).
///
/// # Errors
/// [`BatchError`]; nothing is written.
pub async fn plan(
    pool: &PgPool,
    batch: Batch,
    realm_id: &str,
    dates: Option<DateRange>,
    now: Timestamp,
) -> Result<Vec<PlannedRun>, BatchError> {
    let mut planned = Vec::new();
    let mut uncursored = Vec::new();
    for pipeline in batch.pipelines() {
        let range = match range_or_since_cursor(pool, realm_id, pipeline, dates, now).await {
            Ok(range) => range,
            Err(SinceError::NoCursor { .. }) => {
                uncursored.push(pipeline);
                continue;
            }
            Err(SinceError::DatesRequired(_) | SinceError::OneDate) => {
                return Err(BatchError::DatesRequired(batch));
            }
            Err(SinceError::Database(e)) => return Err(e.into()),
            Err(SinceError::Range(e)) => return Err(e.into()),
        };
        let windows = pipeline.windows(&range)?;
        planned.push(PlannedRun {
            pipeline,
            range,
            windows,
        });
    }
    if let Some(&first) = uncursored.first() {
        return Err(BatchError::NoCursor {
            count: uncursored.len(),
            first,
            realm_id: realm_id.to_owned(),
        });
    }
    Ok(planned)
}

/// Enqueues the runs of a planned batch and the batch itself in one transaction (all or none);
/// returns the batch id and its runs' ids in catalog order. The runs of a batch a command line
/// runs itself ([`NewBatch::run_by`]) are not requeued when their worker is lost; the others
/// are.
///
/// # Errors
/// Database errors.
pub async fn enqueue(
    pool: &PgPool,
    batch: &NewBatch<'_>,
    planned: &[PlannedRun],
) -> Result<(Uuid, Vec<Uuid>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(planned.len());
    for run in planned {
        let new = NewRun {
            pipeline: run.pipeline,
            realm_id: batch.realm_id,
            range: run.range,
            windows: &run.windows,
            trigger: batch.trigger,
            trigger_id: batch.trigger_id,
            started_by: batch.started_by,
            retry_of: None,
            requeue_on_loss: batch.run_by.is_none(),
        };
        ids.push(queue::enqueue_run(&mut tx, &new).await?);
    }
    let id = batches::insert(&mut tx, batch, &ids).await?;
    tx.commit().await?;
    Ok((id, ids))
}

/// Retries every run of batch `id` that has something left to load (the retry rule of
/// [`plan_retry`], run by run), each retry part of the batch; returns the new runs. Runs with
/// nothing to retry (succeeded, queued, still running) and runs already retried (their retry,
/// also in the batch, is the one retried when it failed too) are skipped, so retrying twice
/// never loads a window twice. The retries are started by `started_by`.
///
/// # Errors
/// Database errors.
pub async fn retry_failed(
    pool: &PgPool,
    id: Uuid,
    started_by: Option<&str>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let Some(batch) = batches::get(pool, id).await? else {
        return Ok(Vec::new());
    };
    let mut retried = Vec::new();
    for run in batch.runs.iter().filter(|r| r.retried_by.is_none()) {
        let plan = match plan_retry(pool, run.id).await {
            Ok(plan) => plan,
            Err(RetryRefusal::Database(e)) => return Err(e),
            Err(_) => continue,
        };
        // The retry joins the batch of the run it retries; one retried meanwhile (a second
        // click, another script) is left to the retry already queued.
        match queue_retry(pool, &plan, started_by).await {
            Ok(run_id) => retried.push(run_id),
            Err(RetryRefusal::Database(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(retried)
}
