//! `verify ENTITY|all|reports --fecha-inicio D1 --fecha-fin D2`: reconciles `raw` with
//! QuickBooks, one verify run per entity, one after the other in this process; `reports` (and
//! `all`, after the entities) compares the stored Trial Balance with the one computed from
//! `raw`, month by month.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::civil::Date;
use sqlx::PgPool;
use tracing::info;

use crate::cli::parse::VerifyTarget;
use crate::cli::setup::{Session, asked_run};
use crate::cli::{CliError, bad, fail};
use crate::domain::reconcile::TRIAL_BALANCE_PIPELINE;
use crate::orchestrator::worker::Tee;
use crate::pipeline::events::{RunEvent, RunEvents, TerminalEvents};
use crate::pipeline::verify::VerifyTotals;
use crate::pipeline::{DateRange, Pipeline, Window};
use crate::service::reconcile::{months_of, reconcile_trial_balances};
use crate::service::shutdown::shutdown_signal;
use crate::settings::ClientTuning;

/// Remembers what each verification reported, for the summary line.
#[derive(Default)]
struct VerifyTally(Mutex<VerifyTotals>);

impl VerifyTally {
    /// The totals so far.
    fn totals(&self) -> VerifyTotals {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunEvents for VerifyTally {
    fn emit(&self, event: &RunEvent<'_>) {
        if let RunEvent::Verified { totals, .. } = event {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += *totals;
        }
    }
}

/// Verifies `target`'s entities over `[fecha_inicio, fecha_fin)`, each with its `Verify | …`
/// line, then `Verify done | …`; then, for `reports` and `all`, reconciles the Trial Balance
/// month by month (`Reconcile | …` lines, `Reconcile done | …`). Exit 0 when every month agreed
/// or was repaired, 1 when one could not be verified or a Trial Balance differs or is missing,
/// 2 for bad input (nothing written), 130 when interrupted.
pub(crate) async fn verify(
    target: &VerifyTarget,
    fecha_inicio: Date,
    fecha_fin: Date,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    // Validate everything first: bad input writes nothing, not even the database.
    let range = DateRange::new(fecha_inicio, fecha_fin).map_err(bad)?;
    let mut planned = Vec::with_capacity(target.pipelines.len());
    for &pipeline in &target.pipelines {
        planned.push((pipeline, pipeline.windows(&range).map_err(bad)?));
    }
    if target.reports {
        months_of(&range).map_err(bad)?;
    }
    let (session, settings) = Session::for_local_run(tuning).await?;
    let mut code = 0;
    if !planned.is_empty() {
        code = verify_entities(&session, &settings.realm_id, range, planned, tuning).await?;
    }
    if target.reports && code != 130 {
        // Alone, `reports` must find a Trial Balance; within `all`, a company that loads no
        // reports is not failed for it.
        let required = target.pipelines.is_empty();
        let reconciled = reconcile(&session.pool, &settings.realm_id, &range, required).await?;
        if code == 0 {
            code = reconciled;
        }
    }
    Ok(code)
}

/// Runs the verify `planned` runs one after the other, then prints `Verify done | …`.
async fn verify_entities(
    session: &Session,
    realm_id: &str,
    range: DateRange,
    planned: Vec<(Pipeline, Vec<Window>)>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    let executor = session.executor(tuning);
    let interrupt = shutdown_signal();
    let tally = Arc::new(VerifyTally::default());
    let sink: Arc<dyn RunEvents> =
        Arc::new(Tee(vec![Arc::new(TerminalEvents::new()), tally.clone()]));
    let (mut entities, mut code) = (0_u64, 0_u8);
    for (pipeline, windows) in planned {
        if interrupt.is_cancelled() {
            code = 130;
            break;
        }
        let run = asked_run(pipeline, realm_id, range, windows);
        let outcome = executor
            .run_here(run, interrupt.clone(), sink.clone())
            .await
            .map_err(fail)?;
        entities += 1;
        match outcome.exit_code() {
            0 => {}
            130 => {
                code = 130;
                break;
            }
            other => code = other,
        }
        // A refused token fails every entity the same way: stop at the first.
        if outcome.fatal.is_some() {
            break;
        }
    }
    let t = tally.totals();
    info!(
        "Verify done | entities={entities} months={} agreed={} drifted={} failed={} loaded={} marked_deleted={} requests={}",
        t.months, t.agreed, t.drifted, t.failed, t.loaded, t.marked_deleted, t.requests
    );
    Ok(code)
}

/// Reconciles the Trial Balance of every month of `range` and prints what it found; 0 when
/// every month and basis agreed, else 1. Unless `required`, a company with no Trial Balance
/// stored at all is skipped with one line (and 0).
async fn reconcile(
    pool: &PgPool,
    realm_id: &str,
    range: &DateRange,
    required: bool,
) -> Result<u8, CliError> {
    let found = reconcile_trial_balances(pool, realm_id, range)
        .await
        .map_err(fail)?;
    if !required && !found.any_stored {
        info!(
            "Reconcile skipped | no TrialBalance stored for this company: run `qbo-backfill run {TRIAL_BALANCE_PIPELINE} --fecha-inicio {} --fecha-fin {}` to reconcile the reports",
            range.fecha_inicio, range.fecha_fin
        );
        return Ok(0);
    }
    for month in &found.months {
        for line in month.lines() {
            info!("{line}");
        }
    }
    let totals = found.totals();
    info!("{}", totals.line());
    Ok(totals.exit_code())
}
