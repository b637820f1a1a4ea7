//! Executing a claimed report run (`qb_<report>_backfill`): one calendar month per window, each
//! claimed like any window (leases, takeover, cancel and retry work as for loads), read in every
//! basis the report takes ([`crate::domain::catalog::REPORTS`]) with
//! [`load_report_range`] (which reads a range QuickBooks refuses as too large in halves, down to
//! a day) and stored in `raw.qb_reports` and `raw.qb_report_rows`. An unchanged answer writes
//! nothing. A month that fails is recorded and the others go on; `invalid_grant` stops the run;
//! an interrupt gives the month back unfinished (a piece in flight rolls back whole). Requests
//! go through the company's client, so they count against the same budget as queries.
//!
//! Totals: `pages` counts the answers stored, `rows` the cells written, and the upsert counts
//! are per answer (inserted, updated, unchanged).

use std::sync::Arc;
use std::time::Instant;

use qbo::report::ReportRequest;

use super::events::{RunEvent, RunEvents};
use super::report_load::{ReportLineage, ReportLoadError, StoredPiece, load_report_range};
use super::runner::control::{Engine, RunCore, RunScope, execute};
use super::runner::window::{Early, HeldWindow};
use super::runner::{RunContext, RunError, RunOutcome, lock};
use super::{Pipeline, Window};
use crate::domain::catalog::ReportSpec;
use crate::store::raw::UpsertCounts;
use crate::store::raw::reports::ReportOutcome;
use crate::store::runs::WindowEnd;

/// The requests of a month of a report `pipeline`: one per basis the report takes (one without
/// a basis for the aging reports, as of the month's last day).
///
/// # Errors
/// Not a report pipeline, or a month at the edge of the calendar.
pub fn month_requests(pipeline: Pipeline, window: Window) -> Result<Vec<ReportRequest>, String> {
    let report: &ReportSpec = pipeline
        .report()
        .ok_or_else(|| format!("{pipeline} is not a report pipeline"))?;
    let last_day = window
        .end_day()
        .yesterday()
        .map_err(|e| format!("the month has no last day: {e}"))?;
    let base =
        ReportRequest::new(report.report, window.day, last_day).map_err(|e| e.to_string())?;
    Ok(match report.bases {
        [] => vec![base],
        bases => bases.iter().map(|&b| base.clone().basis(b)).collect(),
    })
}

/// The requests a run of report `pipeline` over `months` sends at least: those of every month
/// ([`month_requests`]); a range QuickBooks refuses as too large is read in halves, which costs
/// more.
///
/// # Errors
/// As [`month_requests`].
pub fn report_requests(pipeline: Pipeline, months: &[Window]) -> Result<u64, String> {
    months.iter().try_fold(0, |n, &month| {
        Ok(n + month_requests(pipeline, month)?.len() as u64)
    })
}

/// One execution of a report run.
struct Scope {
    core: RunCore<Window>,
}

impl Engine {
    /// Executes a claimed report run to its end, emitting what happens to `events`:
    /// `concurrency` months at once.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; month failures are part of the outcome.
    pub async fn read_reports(
        &self,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, RunError> {
        execute(Arc::new(Scope {
            core: RunCore::in_order(self, ctx, events),
        }))
        .await
    }
}

impl RunScope for Scope {
    type Work = Window;
    const TASK: &'static str = "month";

    fn failed_text(n: usize) -> String {
        format!("{n} months could not be read")
    }

    fn core(&self) -> &RunCore<Window> {
        &self.core
    }

    async fn work(&self, window: Window) {
        MonthTask {
            scope: self,
            window,
            started: Instant::now(),
        }
        .run()
        .await;
    }
}

/// What a month stored.
#[derive(Default)]
struct Loaded {
    pieces: u64,
    cells: u64,
    counts: UpsertCounts,
}

impl Loaded {
    fn add(&mut self, piece: &StoredPiece) {
        self.pieces += 1;
        self.cells += piece.write.rows_written;
        match piece.write.outcome {
            ReportOutcome::Inserted => self.counts.inserted += 1,
            ReportOutcome::Updated => self.counts.updated += 1,
            ReportOutcome::Unchanged => self.counts.unchanged += 1,
        }
    }
}

/// One month being read by one execution.
struct MonthTask<'a> {
    scope: &'a Scope,
    window: Window,
    started: Instant,
}

impl MonthTask<'_> {
    fn held(&self) -> HeldWindow<'_> {
        self.scope.core.held(self.window, self.started)
    }

    async fn run(&self) {
        let scope = self.scope;
        scope.core.emit(&RunEvent::ReportMonthStarted {
            pipeline: scope.core.ctx.pipeline,
            window: self.window,
        });
        match self.held().claim().await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                return self
                    .failed(&format!("cannot claim the month: {e}"), None)
                    .await;
            }
        }
        match self.load().await {
            Ok(loaded) => self.succeeded(&loaded).await,
            Err(Early::Stopped) => {}
            Err(Early::Failed(message, tid)) => self.failed(&message, tid.as_deref()).await,
            // A month is never taken over halfway: each answer is stored whole.
            Err(Early::TakenOver) => {}
        }
    }

    async fn load(&self) -> Result<Loaded, Early> {
        let scope = self.scope;
        let lineage = ReportLineage {
            run_id: Some(scope.core.ctx.execution.run_id),
            window: Some((self.window.start, self.window.end)),
        };
        let held = self.held();
        let mut loaded = Loaded::default();
        let requests = month_requests(scope.core.ctx.pipeline, self.window);
        for request in requests.map_err(|e| Early::Failed(e, None))? {
            let engine = &scope.core.engine;
            let read = held
                .unless_halted(
                    load_report_range(&engine.client, &engine.pool, &request, lineage),
                    "the run stopped before this month was read",
                )
                .await?;
            match read {
                Ok(pieces) => pieces.iter().for_each(|p| loaded.add(p)),
                Err(ReportLoadError::Fetch { source, .. }) if source.is_terminal_auth() => {
                    return Err(held.request_failed(&source, "").await);
                }
                Err(e) => {
                    let tid = match &e {
                        ReportLoadError::Fetch { source, .. } => {
                            source.intuit_tid().map(str::to_owned)
                        }
                        _ => None,
                    };
                    return Err(Early::Failed(e.to_string(), tid));
                }
            }
        }
        Ok(loaded)
    }

    async fn succeeded(&self, loaded: &Loaded) {
        let scope = self.scope;
        let held = self.held();
        match held.end(&WindowEnd::Succeeded).await {
            Ok(true) => {}
            Ok(false) => {
                scope.core.emit(&RunEvent::WindowTakenOver {
                    day: self.window.day,
                });
                return;
            }
            Err(e) => held.warn_unrecorded(&e),
        }
        {
            let mut totals = lock(&scope.core.totals);
            totals.pages += loaded.pieces;
            totals.rows += loaded.cells;
            totals.counts += loaded.counts;
        }
        scope.core.emit(&RunEvent::ReportMonthLoaded {
            pipeline: scope.core.ctx.pipeline,
            window: self.window,
            pieces: loaded.pieces,
            cells: loaded.cells,
            counts: loaded.counts,
            duration: self.started.elapsed(),
        });
    }

    async fn failed(&self, message: &str, intuit_tid: Option<&str>) {
        self.scope.core.window_failed(self.window.day);
        self.held().fail(message, intuit_tid).await;
    }
}
