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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use qbo::report::ReportRequest;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::Window;
use super::events::{RunEvent, RunEvents};
use super::report_load::{ReportLineage, ReportLoadError, StoredPiece, load_report_range};
use super::runner::control::{EndOf, RunControl, drain, run_tasks, with_heartbeat};
use super::runner::window::{
    WindowClaim, claim_for_run, end_window, record_end, record_failure, warn_unrecorded,
};
use super::runner::{RunContext, RunError, RunOutcome, emit_summary};
use crate::domain::catalog::ReportSpec;
use crate::store::raw::UpsertCounts;
use crate::store::raw::reports::ReportOutcome;
use crate::store::runs::{RunTotals, WindowEnd};

/// Reads the months of claimed report runs for one company.
#[derive(Clone)]
pub struct ReportRunner {
    /// The database.
    pub pool: PgPool,
    /// The company's QuickBooks client.
    pub client: qbo::QboClient,
    /// Months read at once.
    pub concurrency: usize,
    /// Raised by the operator (Ctrl-C) or a shutting-down worker.
    pub interrupt: CancellationToken,
    /// How long claims last without a heartbeat.
    pub lease: Duration,
}

/// One execution of a report run.
struct Scope {
    runner: ReportRunner,
    ctx: RunContext,
    control: Arc<RunControl>,
    queue: Mutex<VecDeque<Window>>,
    totals: Mutex<RunTotals>,
    failed_months: Mutex<Vec<Date>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReportRunner {
    /// Executes a claimed report run to its end, emitting what happens to `events`.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; month failures are part of the outcome.
    pub async fn execute(
        &self,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let months = ctx.windows.len();
        let control = Arc::new(RunControl::new(
            ctx.execution.run_id,
            events,
            &self.client,
            &self.interrupt,
        ));
        let scope = Arc::new(self.scope(ctx, control));
        with_heartbeat(
            &scope.control,
            &self.pool,
            &self.client,
            &scope.ctx,
            self.lease,
            || async {
                run_tasks(
                    &scope.control,
                    self.concurrency.min(months),
                    "month",
                    || {
                        let scope = scope.clone();
                        async move { scope.month_worker().await }
                    },
                )
                .await;
            },
        )
        .await;
        scope.finish(started).await
    }

    fn scope(&self, ctx: RunContext, control: Arc<RunControl>) -> Scope {
        let mut queue = ctx.windows.clone();
        queue.sort_unstable();
        Scope {
            runner: self.clone(),
            totals: Mutex::new(RunTotals {
                windows: queue.len() as u64,
                ..RunTotals::default()
            }),
            queue: Mutex::new(queue.into()),
            control,
            ctx,
            failed_months: Mutex::new(Vec::new()),
        }
    }
}

impl Scope {
    fn emit(&self, event: &RunEvent<'_>) {
        self.control.emit(event);
    }

    async fn month_worker(&self) {
        drain(&self.control, &self.queue, |window| async move {
            MonthTask {
                scope: self,
                window,
                started: Instant::now(),
            }
            .run()
            .await;
        })
        .await;
    }

    async fn finish(&self, started: Instant) -> Result<RunOutcome, RunError> {
        let end = EndOf {
            pool: &self.runner.pool,
            exec: &self.ctx.execution,
            client: &self.runner.client,
            totals: *lock(&self.totals),
            failed: lock(&self.failed_months).clone(),
            started,
            cursor: None,
        };
        let (outcome, requests) = self
            .control
            .end_run(end, |n| format!("{n} months could not be read"))
            .await?;
        emit_summary(&self.control, &self.ctx, &outcome, &requests);
        Ok(outcome)
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

/// How a month ended early.
enum Early {
    /// The run stopped (already recorded as unfinished).
    Stopped,
    /// The month failed with this message and Intuit transaction id.
    Failed(String, Option<String>),
}

/// One month being read by one execution.
struct MonthTask<'a> {
    scope: &'a Scope,
    window: Window,
    started: Instant,
}

impl MonthTask<'_> {
    async fn run(&self) {
        let scope = self.scope;
        scope.emit(&RunEvent::ReportMonthStarted {
            pipeline: scope.ctx.pipeline,
            window: self.window,
        });
        let claim = WindowClaim {
            pool: &scope.runner.pool,
            exec: &scope.ctx.execution,
            pipeline: scope.ctx.pipeline,
            realm_id: &scope.ctx.realm_id,
            window: &self.window,
            lease: scope.runner.lease,
        };
        match claim_for_run(&claim, &scope.control).await {
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
        }
    }

    /// The requests of the month: one per basis the report takes (one without a basis for
    /// the aging reports, as of the month's last day).
    fn requests(&self) -> Result<Vec<ReportRequest>, String> {
        let pipeline = self.scope.ctx.pipeline;
        let report: &ReportSpec = pipeline
            .report()
            .ok_or_else(|| format!("{pipeline} is not a report pipeline"))?;
        let last_day = self
            .window
            .end_day()
            .yesterday()
            .map_err(|e| format!("the month has no last day: {e}"))?;
        let base = ReportRequest::new(report.report, self.window.day, last_day)
            .map_err(|e| e.to_string())?;
        Ok(match report.bases {
            [] => vec![base],
            bases => bases.iter().map(|&b| base.clone().basis(b)).collect(),
        })
    }

    async fn load(&self) -> Result<Loaded, Early> {
        let scope = self.scope;
        let lineage = ReportLineage {
            run_id: Some(scope.ctx.execution.run_id),
            window: Some((self.window.start, self.window.end)),
        };
        let mut loaded = Loaded::default();
        for request in self.requests().map_err(|e| Early::Failed(e, None))? {
            let read = tokio::select! {
                r = load_report_range(&scope.runner.client, &scope.runner.pool, &request, lineage) => r,
                interrupted = scope.control.until_halted() => {
                    self.unfinished(if interrupted {
                        "interrupted by the operator"
                    } else {
                        "the run stopped before this month was read"
                    })
                    .await;
                    return Err(Early::Stopped);
                }
            };
            match read {
                Ok(pieces) => pieces.iter().for_each(|p| loaded.add(p)),
                Err(ReportLoadError::Fetch { source, .. }) if source.is_terminal_auth() => {
                    scope.control.token_failure(&source);
                    self.unfinished("the run stopped: token refresh failed")
                        .await;
                    return Err(Early::Stopped);
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
        match self.end(&WindowEnd::Succeeded).await {
            Ok(true) => {}
            Ok(false) => {
                scope.emit(&RunEvent::WindowTakenOver {
                    day: self.window.day,
                });
                return;
            }
            Err(e) => warn_unrecorded(
                &scope.control,
                &format!("month {}", self.window.day.strftime("%Y-%m")),
                &e,
            ),
        }
        {
            let mut totals = lock(&scope.totals);
            totals.pages += loaded.pieces;
            totals.rows += loaded.cells;
            totals.counts += loaded.counts;
        }
        scope.emit(&RunEvent::ReportMonthLoaded {
            pipeline: scope.ctx.pipeline,
            window: self.window,
            pieces: loaded.pieces,
            cells: loaded.cells,
            counts: loaded.counts,
            duration: self.started.elapsed(),
        });
    }

    async fn failed(&self, message: &str, intuit_tid: Option<&str>) {
        let scope = self.scope;
        lock(&scope.totals).failed_windows += 1;
        lock(&scope.failed_months).push(self.window.day);
        let pool = &scope.runner.pool;
        record_failure(
            pool,
            &scope.ctx,
            &self.window,
            self.started,
            &scope.control,
            message,
            intuit_tid,
        )
        .await;
    }

    async fn unfinished(&self, reason: &str) {
        self.record(&WindowEnd::Unfinished { reason }).await;
    }

    async fn end(&self, end: &WindowEnd<'_>) -> Result<bool, sqlx::Error> {
        end_window(
            &self.scope.runner.pool,
            &self.scope.ctx,
            &self.window,
            end,
            self.started,
        )
        .await
    }

    async fn record(&self, end: &WindowEnd<'_>) {
        let scope = self.scope;
        record_end(
            &scope.runner.pool,
            &scope.ctx,
            &self.window,
            end,
            self.started,
            &scope.control,
        )
        .await;
    }
}
