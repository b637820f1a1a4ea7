//! `verify ENTITY|all --fecha-inicio D1 --fecha-fin D2`: reconciles `raw` with QuickBooks, one
//! verify run per entity, one after the other in this process.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::civil::Date;
use tracing::info;

use crate::cli::setup::{Session, asked_run};
use crate::cli::{CliError, bad, fail};
use crate::orchestrator::worker::Tee;
use crate::pipeline::events::{RunEvent, RunEvents, TerminalEvents};
use crate::pipeline::verify::VerifyTotals;
use crate::pipeline::{DateRange, Pipeline};
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

/// Verifies `pipelines` over `[fecha_inicio, fecha_fin)`, each with its `Verify | …` line, then
/// `Verify done | …`. Exit 0 when every month agreed or was repaired, 1 when one could not be
/// verified, 2 for bad input (nothing written), 130 when interrupted.
pub(crate) async fn verify(
    pipelines: &[Pipeline],
    fecha_inicio: Date,
    fecha_fin: Date,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    // Validate everything first: bad input writes nothing, not even the database.
    let range = DateRange::new(fecha_inicio, fecha_fin).map_err(bad)?;
    let mut planned = Vec::with_capacity(pipelines.len());
    for &pipeline in pipelines {
        planned.push((pipeline, pipeline.windows(&range).map_err(bad)?));
    }
    let (session, settings) = Session::for_local_run(tuning).await?;
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
        let run = asked_run(pipeline, &settings.realm_id, range, windows);
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
