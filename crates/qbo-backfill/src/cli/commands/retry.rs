//! `retry RUN_ID`: re-runs only the failed or unfinished windows of a run, in this process.

use tracing::info;
use uuid::Uuid;

use crate::cli::setup::Session;
use crate::cli::{CliError, bad};
use crate::domain::run::RunOrigin;
use crate::orchestrator::worker::LocalRun;
use crate::service::retry::{RetryRefusal, plan_retry};
use crate::settings::{ClientTuning, QboSettings, env};

/// Retries run `run_id`; returns the exit status (0 when there is nothing to retry).
pub(crate) async fn retry(run_id: Uuid, tuning: &ClientTuning) -> Result<u8, CliError> {
    let session = Session::open().await?;
    let plan = match plan_retry(&session.pool, run_id).await {
        Ok(plan) => plan,
        Err(RetryRefusal::NothingToRetry(_)) => {
            info!("Run {run_id} has no failed or unfinished windows; nothing to retry");
            return Ok(0);
        }
        Err(RetryRefusal::Database(e)) => return Err(anyhow::Error::from(e).into()),
        Err(refusal) => return Err(bad(refusal)),
    };
    // New credentials in the environment (a reconnect) apply to the run's company.
    if let Ok(settings) = QboSettings::resolve(tuning, &session.stored().await?) {
        if settings.realm_id != plan.run.realm_id {
            return Err(bad(format!(
                "run {run_id} loaded realm {} but {} is {}",
                plan.run.realm_id,
                env::QBO_REALM_ID,
                settings.realm_id
            )));
        }
        session.save_company(&settings).await?;
    }
    let local = LocalRun {
        pipeline: plan.pipeline,
        realm_id: &plan.run.realm_id,
        range: plan.run.range(),
        windows: plan.windows,
        trigger: RunOrigin::Retry,
        started_by: crate::cli::setup::system_user(),
        retry_of: Some(run_id),
    };
    session.run_in_terminal(tuning, local).await
}
