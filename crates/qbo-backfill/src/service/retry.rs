//! Retrying a run: the one rule every front end applies.
//!
//! A run can be retried once it is over. A run recorded `running` whose worker is gone (its
//! lease ran out, or its process died on this machine) is over too: it is marked interrupted
//! first. A queued run, or a running one that is alive, is refused, and so is a run whose retry
//! is still queued or running (asked twice at once, only one retry is queued). The retry loads
//! only the windows that did not succeed and that no other run has loaded since.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::run::RunOrigin;
use crate::pipeline::{Pipeline, UnknownPipeline, Window};
use crate::store::runs::queue::{self, NewRun, RetryEnqueued};
use crate::store::runs::{self, RunRecord, RunStatus};

/// What a retry of a run loads.
#[derive(Debug, Clone)]
pub struct RetryPlan {
    /// The run retried.
    pub run: RunRecord,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// The windows to load again, in order (never empty).
    pub windows: Vec<Window>,
}

impl RetryPlan {
    /// The run that retries this plan through the queue (its `retry_of` names the run retried;
    /// queued again if its worker is lost), started by `started_by`.
    #[must_use]
    pub fn queued_run<'a>(&'a self, started_by: Option<&'a str>) -> NewRun<'a> {
        NewRun {
            pipeline: self.pipeline,
            realm_id: &self.run.realm_id,
            range: self.run.range(),
            windows: &self.windows,
            trigger: RunOrigin::Retry,
            trigger_id: None,
            started_by,
            retry_of: Some(self.run.id),
            requeue_on_loss: true,
        }
    }
}

/// Whether [`plan_retry`] would take run `id` now, marking nothing: it has `outstanding`
/// unfinished windows and is over, or is recorded running by a worker that is gone.
///
/// # Errors
/// Database errors.
pub async fn retry_offered(
    pool: &PgPool,
    id: Uuid,
    status: RunStatus,
    outstanding: i64,
) -> Result<bool, sqlx::Error> {
    if outstanding <= 0 {
        return Ok(false);
    }
    if status.is_final() {
        return Ok(true);
    }
    if status != RunStatus::Running {
        return Ok(false);
    }
    let record = runs::load_run(pool, id).await?;
    Ok(record.is_some_and(|r| !runs::run_is_alive(&r)))
}

/// Why a run cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryRefusal {
    /// No such run.
    #[error("no run `{0}` in this database")]
    NotFound(Uuid),
    /// The run is queued, or running with a live worker.
    #[error("run {id} is still {status} (host {host}, pid {pid}); wait for it or cancel it first")]
    Active {
        /// The run.
        id: Uuid,
        /// `queued` or `running`.
        status: RunStatus,
        /// Where it runs, when known.
        host: String,
        /// Its process, when known.
        pid: i32,
    },
    /// A retry of the run is still queued or running.
    #[error("run {id} is being retried already by run {retry}; follow that run")]
    Retrying {
        /// The run.
        id: Uuid,
        /// Its retry still queued or running.
        retry: Uuid,
    },
    /// Every window of the run succeeded, or was loaded since by another run.
    #[error(
        "run {0} has no failed or unfinished windows left to load (any it left have been loaded \
         since by another run); nothing to retry"
    )]
    NothingToRetry(Uuid),
    /// The run names a pipeline this version does not know.
    #[error(transparent)]
    UnknownPipeline(#[from] UnknownPipeline),
    /// PostgreSQL failed.
    #[error("cannot read the run from PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// Decides whether run `id` can be retried and what the retry loads; a run whose worker is gone
/// is marked interrupted on the way.
///
/// # Errors
/// [`RetryRefusal`].
pub async fn plan_retry(pool: &PgPool, id: Uuid) -> Result<RetryPlan, RetryRefusal> {
    let run = runs::load_run(pool, id)
        .await?
        .ok_or(RetryRefusal::NotFound(id))?;
    if run.status == RunStatus::Queued || runs::run_is_alive(&run) {
        return Err(RetryRefusal::Active {
            id,
            status: run.status,
            host: run.host.clone().unwrap_or_else(|| "?".to_owned()),
            pid: run.pid.unwrap_or(0),
        });
    }
    if run.status == RunStatus::Running {
        runs::mark_interrupted(pool, id, "its worker stopped without finishing").await?;
    }
    if let Some(retry) = queue::active_retry(pool, id).await? {
        return Err(RetryRefusal::Retrying { id, retry });
    }
    let pipeline: Pipeline = run.pipeline.parse()?;
    let windows = runs::unfinished_windows(pool, id).await?;
    if windows.is_empty() {
        return Err(RetryRefusal::NothingToRetry(id));
    }
    Ok(RetryPlan {
        run,
        pipeline,
        windows,
    })
}

/// Queues the retry `plan` describes, started by `started_by`, in a transaction of its own: the
/// one way the API, the UI and batch retries queue a retry. [`RetryRefusal::Retrying`] (nothing
/// written) when another retry of the run was queued meanwhile.
///
/// # Errors
/// [`RetryRefusal::Retrying`]; database errors.
pub async fn queue_retry(
    pool: &PgPool,
    plan: &RetryPlan,
    started_by: Option<&str>,
) -> Result<Uuid, RetryRefusal> {
    let mut tx = pool.begin().await?;
    match queue::enqueue_retry(&mut tx, &plan.queued_run(started_by)).await? {
        RetryEnqueued::Queued(id) => {
            tx.commit().await?;
            Ok(id)
        }
        RetryEnqueued::AlreadyRetrying(retry) => Err(RetryRefusal::Retrying {
            id: plan.run.id,
            retry,
        }),
    }
}
