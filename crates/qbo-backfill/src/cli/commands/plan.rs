//! `run PIPELINE|all_backfill|all_incremental … --plan`: the planned cost of the run or batch
//! ([`crate::service::preview`]), one `Plan |` line per run and the totals, with nothing
//! written (no run is created). Exit 0; 2 for bad input (before any request); 1 when QuickBooks
//! or the database fails.

use jiff::civil::Date;
use tracing::{info, warn};

use crate::cli::commands::run::asked_dates;
use crate::cli::setup::Session;
use crate::cli::{CliError, bad, fail};
use crate::domain::batch::RunTarget;
use crate::pipeline::SinceError;
use crate::service::batch::BatchError;
use crate::service::preview::{Preview, PreviewAsk, PreviewError, RunEstimate, preview};
use crate::settings::ClientTuning;

/// Prints the planned cost of running `target` over the dates given (or, for incremental
/// syncs without dates, from their cursors); returns the exit status.
pub(crate) async fn plan(
    target: RunTarget,
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    let mode = target
        .pipelines()
        .first()
        .map_or(crate::pipeline::Mode::Backfill, |p| p.mode());
    let dates = asked_dates(fecha_inicio, fecha_fin, mode, || match target {
        RunTarget::Pipeline(p) => bad(SinceError::DatesRequired(p)),
        RunTarget::Batch(b) => bad(BatchError::DatesRequired(b)),
    })?;
    let allowance = crate::service::allowance::configured().map_err(CliError::BadInput)?;
    let (session, settings) = Session::for_local_run(tuning).await?;
    let ask = PreviewAsk {
        target,
        realm_id: &settings.realm_id,
        dates,
    };
    let preview = preview(&session.pool, &session.key, ask, tuning, allowance)
        .await
        .map_err(refused)?;
    print(&preview);
    Ok(0)
}

/// Bad input (exit 2) or a failure (exit 1).
fn refused(e: PreviewError) -> CliError {
    match e {
        PreviewError::Since(SinceError::Database(e))
        | PreviewError::Batch(BatchError::Database(e)) => fail(e),
        PreviewError::Since(_) | PreviewError::Batch(_) | PreviewError::Range(_) => bad(e),
        other => fail(other),
    }
}

/// One run's line.
fn run_line(run: &RunEstimate) -> String {
    let mut line = format!(
        "Plan | pipeline={} fecha_inicio={} fecha_fin={} windows={} requests={}",
        run.pipeline, run.range.fecha_inicio, run.range.fecha_fin, run.windows, run.requests
    );
    if let Some(rows) = run.rows {
        line.push_str(&format!(" rows={rows}"));
    }
    if let Some(load) = &run.load {
        line.push_str(&format!(
            " counts={} pages={} spans={} days_alone={}",
            load.counts, load.pages, load.spans, load.days_alone
        ));
        if load.cdc > 0 {
            line.push_str(&format!(" cdc={}", load.cdc));
        }
    }
    line.push_str(&format!(" estimate={}", run.basis.as_str()));
    line
}

/// A limit as printed: the number, or `none`.
fn limit(n: Option<u32>) -> String {
    n.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

/// Prints `preview`: a line per run, the summary, the budget, and a warning when the run would
/// take the month to 80 % of its allowance or past it.
fn print(preview: &Preview) {
    for run in &preview.runs {
        info!("{}", run_line(run));
    }
    info!(
        "Plan summary | target={} realm_id={} runs={} requests={} rows={} estimate={} duration_at_least_s={} preview_requests={}",
        preview.target,
        preview.realm_id,
        preview.runs.len(),
        preview.requests,
        preview.rows,
        preview.basis.as_str(),
        preview.least_duration.as_secs(),
        preview.preview_requests
    );
    let month = &preview.month;
    let [per_second, per_minute, in_flight] = preview.limits;
    info!(
        "Plan budget | month={} requests_this_month={} after_run={} allowance={} percent_after={} per_second={} per_minute={} in_flight={} span_max_pages={} page_size={}",
        month.month,
        month.spent,
        month.after(),
        month.allowance.monthly,
        month.percent_after(),
        limit(per_second),
        limit(per_minute),
        limit(in_flight),
        preview.span_max_pages,
        preview.page_size
    );
    if month.exceeds() {
        warn!(
            "Plan warning | this would take {} past its allowance ({} of {} requests): Intuit blocks the app for the rest of the month; load a shorter range now and the rest next month",
            month.month,
            month.after(),
            month.allowance.monthly
        );
    } else if month.reaches_warning() {
        warn!(
            "Plan warning | this would take {} to {} % of its allowance ({} of {} requests)",
            month.month,
            month.percent_after(),
            month.after(),
            month.allowance.monthly
        );
    }
    info!("Nothing was written: run it without --plan to start it.");
}
