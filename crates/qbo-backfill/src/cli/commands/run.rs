//! `run PIPELINE [--fecha-inicio D1 --fecha-fin D2]`: one load in this process; `run
//! all_backfill|all_incremental …`: every entity's, enqueued as one batch and run here one
//! after the other.

use jiff::civil::Date;

use std::sync::Arc;

use tracing::info;

use crate::cli::setup::{Session, asked_run};
use crate::cli::{CliError, bad, fail};
use crate::domain::batch::{Batch, RunTarget};
use crate::domain::run::RunOrigin;
use crate::pipeline::events::TerminalEvents;
use crate::pipeline::{DateRange, Mode, Pipeline, SinceError, range_or_since_cursor};
use crate::service::batch::{self as batch_service, BatchError};
use crate::service::shutdown::shutdown_signal;
use crate::settings::ClientTuning;
use crate::store::runs::batches::NewBatch;

/// Runs `target`: a pipeline ([`run`]) or a batch ([`run_batch`]).
pub(crate) async fn run_target(
    target: RunTarget,
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    match target {
        RunTarget::Pipeline(pipeline) => run(pipeline, fecha_inicio, fecha_fin, tuning).await,
        RunTarget::Batch(batch) => run_batch(batch, fecha_inicio, fecha_fin, tuning).await,
    }
}

/// The range asked: both dates, or neither for an incremental `mode` (then `None`: from the
/// cursor); otherwise `required()` or the one-date refusal.
pub(crate) fn asked_dates(
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    mode: Mode,
    required: impl FnOnce() -> CliError,
) -> Result<Option<DateRange>, CliError> {
    match (fecha_inicio, fecha_fin) {
        (Some(inicio), Some(fin)) => Ok(Some(DateRange::new(inicio, fin).map_err(bad)?)),
        (None, None) if mode == Mode::Incremental => Ok(None),
        (None, None) => Err(required()),
        _ => Err(bad(SinceError::OneDate)),
    }
}

/// Loads `pipeline` over the dates given, or, for an incremental pipeline without dates, from
/// its cursor; returns the exit status. Bad input writes nothing, not even the database.
async fn run(
    pipeline: Pipeline,
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    let dates = asked_dates(fecha_inicio, fecha_fin, pipeline.mode(), || {
        bad(SinceError::DatesRequired(pipeline))
    })?;
    let (session, settings) = Session::for_local_run(tuning).await?;
    let range = range_or_since_cursor(
        &session.pool,
        &settings.realm_id,
        pipeline,
        dates,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        SinceError::Database(e) => fail(e),
        other => bad(other),
    })?;
    let windows = pipeline.windows(&range).map_err(bad)?;
    let run = asked_run(pipeline, &settings.realm_id, range, windows);
    session.run_in_terminal(tuning, run).await
}

/// Plans `batch` (refused whole, with nothing written, when an entity cannot run), enqueues its
/// runs as one batch and runs them here one after another, then prints `Batch done | …`. Exit 0
/// when every run succeeded, 1 when one did not, 130 when interrupted (the runs not started are
/// cancelled; `qbo-backfill retry` finishes an interrupted one).
async fn run_batch(
    batch: Batch,
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    let dates = asked_dates(fecha_inicio, fecha_fin, batch.mode(), || {
        bad(BatchError::DatesRequired(batch))
    })?;
    let (session, settings) = Session::for_local_run(tuning).await?;
    let realm_id = settings.realm_id.as_str();
    let planned = batch_service::plan(
        &session.pool,
        batch,
        realm_id,
        dates,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        BatchError::Database(e) => fail(e),
        other => bad(other),
    })?;
    let executor = session.executor(tuning);
    // Registered before the runs are enqueued: were this process to die before it took its
    // first run, or between two, they are cancelled by the next command that reaps.
    let identity = executor.start_local_worker().await.map_err(fail)?;
    let started_by = crate::cli::setup::system_user();
    let new = NewBatch {
        batch,
        realm_id,
        range: dates,
        trigger: RunOrigin::Cli,
        trigger_id: None,
        started_by: started_by.as_deref(),
        run_by: Some(identity.id),
    };
    let started = std::time::Instant::now();
    let (batch_id, run_ids) = batch_service::enqueue(&session.pool, &new, &planned)
        .await
        .map_err(fail)?;
    info!(
        "Batch {batch_id} started: {batch} runs={} realm_id={realm_id}",
        run_ids.len()
    );
    let outcomes = executor
        .run_queued_here(
            &identity,
            &run_ids,
            shutdown_signal(),
            Arc::new(TerminalEvents::new()),
        )
        .await
        .map_err(fail)?;
    let count = |code: u8| outcomes.iter().filter(|o| o.exit_code() == code).count();
    let (succeeded, interrupted) = (count(0), count(130));
    let failed = outcomes.len() - succeeded - interrupted;
    let not_started = run_ids.len() - outcomes.len();
    let rows: u64 = outcomes.iter().map(|o| o.totals.rows).sum();
    info!(
        "Batch done | batch={batch} runs={} succeeded={succeeded} failed={failed} interrupted={interrupted} cancelled={not_started} rows={rows} batch_id={batch_id} duration_s={:.2}",
        run_ids.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if interrupted + not_started > 0 {
        130
    } else if failed > 0 {
        1
    } else {
        0
    })
}
