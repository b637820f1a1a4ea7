//! Executing one claimed run: several windows at once (the client keeps them inside the company's
//! API budget), each paged in a stable order with every page written in one transaction together
//! with the window's progress; failed windows are recorded and the rest go on; `invalid_grant`
//! stops everything at once; an interrupt (Ctrl-C, SIGTERM) or a cancel stops gracefully; a lost
//! claim stops silently. What happens is emitted as [`RunEvent`]s; nothing here prints.
//!
//! Read top-down: this module holds the run (its context, outcome, heartbeat and end); `window`
//! loads one day on its own; `span` plans consecutive days and loads them in one paged query,
//! each row into its own day; `sync` is what an incremental sync does once every window loaded
//! (deletions from change data capture, the cursor).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::{RunEvent, RunEvents};
use super::report::{RequestCounters, Summary};
use super::{DateRange, Mode, Pipeline, Window};
use crate::store::runs::{CursorMove, Execution, RequestTotals, RunStatus, RunTotals};

pub(crate) mod control;
mod span;
mod sync;
pub(crate) mod window;

use control::{EndOf, RunControl, drain, run_tasks, with_heartbeat};
use span::{Work, plan};
use window::WindowTask;

/// A claimed run to execute: the context every window of it carries.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The claim every write is fenced by.
    pub execution: Execution,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The company.
    pub realm_id: String,
    /// The range as asked.
    pub range: DateRange,
    /// The windows to load in this execution (those not loaded yet).
    pub windows: Vec<Window>,
}

/// How a run ended on this worker.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run.
    pub run_id: Uuid,
    /// Its status as stored (`queued` when an interrupted server run went back to the queue);
    /// `None` when this worker lost its claim and stored nothing.
    pub status: Option<RunStatus>,
    /// Totals of this execution.
    pub totals: RunTotals,
    /// Days whose window failed.
    pub failed_days: Vec<Date>,
    /// Wall time.
    pub duration: Duration,
    /// The error that stopped the whole run, if any.
    pub fatal: Option<String>,
    /// Whether the run's first access token was obtained (the company's credentials work).
    pub token_ok: bool,
}

impl RunOutcome {
    /// The process exit status for this outcome: 0 succeeded, 1 failed or lost, 130
    /// interrupted.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Some(RunStatus::Succeeded) => 0,
            Some(RunStatus::Interrupted | RunStatus::Queued | RunStatus::Cancelled) => 130,
            _ => 1,
        }
    }
}

/// Why a run stopped before loading every window.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    /// A fatal error (invalid_grant, …): the run failed.
    Fatal(String),
    /// The operator interrupted it, or the worker is shutting down.
    Interrupted,
    /// Cancelled through the API.
    Cancelled,
    /// This execution lost its claim.
    Lost,
}

/// Runs pipelines for one company.
#[derive(Clone)]
pub struct Runner {
    /// The database.
    pub pool: PgPool,
    /// The company's QuickBooks client.
    pub client: qbo::QboClient,
    /// Windows (or spans of days) loaded at once.
    pub concurrency: usize,
    /// Consecutive days are fetched together while their `COUNT(*)` fits in this many pages;
    /// 0 loads every day on its own.
    pub span_max_pages: u64,
    /// Raised by the operator (Ctrl-C) or a shutting-down worker.
    pub interrupt: CancellationToken,
    /// How long claims last without a heartbeat.
    pub lease: Duration,
}

/// Emits the summary block and the exporter line of a load or report run that stored its end
/// (nothing when it lost its claim).
pub(crate) fn emit_summary(
    control: &RunControl,
    ctx: &RunContext,
    outcome: &RunOutcome,
    requests: &RequestTotals,
) {
    let Some(status) = outcome.status else { return };
    control.emit(&RunEvent::Finished {
        summary: &Summary {
            pipeline: ctx.pipeline,
            range: ctx.range,
            run_id: outcome.run_id,
            status,
            totals: outcome.totals,
            failed_days: &outcome.failed_days,
            duration: outcome.duration,
            requests: RequestCounters {
                requests: requests.requests,
                retries: requests.retries,
                throttled: requests.throttled,
            },
        },
    });
}

/// A failure of the run's own bookkeeping (the database), not of a window.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bookkeeping query failed.
    #[error("cannot record the run in PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// One execution of a run: the context, the shared progress and the event sink that every
/// window task works with.
struct Scope {
    runner: Runner,
    ctx: RunContext,
    /// Why the run stops, its halt signal, its first token, its requests.
    control: Arc<RunControl>,
    queue: Mutex<VecDeque<Work>>,
    totals: Mutex<RunTotals>,
    failed_days: Mutex<Vec<Date>>,
    /// How often each day was taken over by another run while this one loaded it.
    takeovers: Mutex<HashMap<Date, u32>>,
    /// Where an incremental sync that loaded everything moves its cursor, when it ends.
    cursor: Mutex<Option<CursorMove>>,
}

/// A day taken over by other runs this many times is given up (failed, for a retry) instead of
/// being queued again.
const MAX_TAKEOVERS: u32 = 3;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scope {
    fn stop_with(&self, stop: Stop) -> bool {
        self.control.stop_with(stop)
    }

    fn add(&self, f: impl FnOnce(&mut RunTotals)) -> RunTotals {
        let mut totals = lock(&self.totals);
        f(&mut totals);
        *totals
    }

    fn exec(&self) -> &Execution {
        &self.ctx.execution
    }

    fn emit(&self, event: &RunEvent<'_>) {
        self.control.emit(event);
    }
}

impl Runner {
    /// Executes a claimed run to its end, emitting what happens to `events`.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; window failures are part of the outcome.
    pub async fn execute(
        &self,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let windows = ctx.windows.len();
        let scope = Arc::new(Scope {
            runner: self.clone(),
            queue: Mutex::new(plan(&ctx.windows, self.span_max_pages > 0)),
            totals: Mutex::new(RunTotals {
                windows: windows as u64,
                ..RunTotals::default()
            }),
            control: Arc::new(RunControl::new(
                ctx.execution.run_id,
                events,
                &self.client,
                &self.interrupt,
            )),
            ctx,
            failed_days: Mutex::new(Vec::new()),
            takeovers: Mutex::new(HashMap::new()),
            cursor: Mutex::new(None),
        });
        with_heartbeat(
            &scope.control,
            &self.pool,
            &self.client,
            &scope.ctx,
            self.lease,
            || async {
                let tasks = self.concurrency.min(windows);
                run_tasks(&scope.control, tasks, "window", || {
                    let scope = scope.clone();
                    async move { scope.window_worker().await }
                })
                .await;
                if scope.ctx.pipeline.mode() == Mode::Incremental && scope.all_loaded() {
                    scope.sync_deletions_and_cursor().await;
                }
            },
        )
        .await;
        scope.finish(started).await
    }
}

impl Scope {
    async fn finish(&self, started: Instant) -> Result<RunOutcome, RunError> {
        let end = EndOf {
            pool: &self.runner.pool,
            exec: self.exec(),
            client: &self.runner.client,
            totals: *lock(&self.totals),
            failed: lock(&self.failed_days).clone(),
            started,
            cursor: lock(&self.cursor).take(),
        };
        let (outcome, requests) = self
            .control
            .end_run(end, |n| format!("{n} windows failed"))
            .await?;
        emit_summary(&self.control, &self.ctx, &outcome, &requests);
        Ok(outcome)
    }

    async fn window_worker(&self) {
        drain(&self.control, &self.queue, |work| async move {
            match work {
                Work::Window(window) => {
                    WindowTask {
                        scope: self,
                        window,
                        started: Instant::now(),
                    }
                    .run()
                    .await;
                }
                Work::Span(windows) => self.span(windows).await,
            }
        })
        .await;
    }
}
