//! Executing one claimed run: several windows at once (the client keeps them inside the company's
//! API budget), each paged in a stable order with every page written in one transaction together
//! with the window's progress; failed windows are recorded and the rest go on; `invalid_grant`
//! stops everything at once; an interrupt (Ctrl-C, SIGTERM) or a cancel stops gracefully; a lost
//! claim stops silently. What happens is emitted as [`RunEvent`]s; nothing here prints.
//!
//! Read top-down: this module holds the run (its context, outcome, heartbeat and end); `window`
//! loads one day on its own; `span` plans consecutive days and loads them in one paged query,
//! each row into its own day; `estimate` says what a load would cost by the same plan before it
//! runs; `sync` is what an incremental sync does once every window loaded
//! (deletions from change data capture, the cursor).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use uuid::Uuid;

use super::events::{RunEvent, RunEvents};
use super::report::{RequestCounters, Summary};
use super::{DateRange, Mode, Pipeline, Window};
use crate::store::runs::{CursorMove, Execution, RequestTotals, RunStatus, RunTotals};

pub(crate) mod control;
pub mod estimate;
mod span;
mod sync;
pub(crate) mod window;

pub use control::{Engine, WriteGate};
use control::{RunControl, RunCore, RunScope, execute};
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
    core: RunCore<Work>,
    /// Consecutive days are fetched together while their `COUNT(*)` fits in this many pages;
    /// 0 loads every day on its own.
    span_max_pages: u64,
    /// Pages the run's spans may request ahead of the one they read, together (one permit a
    /// page until it is read): as many as windows are worked on at once.
    ahead: Arc<tokio::sync::Semaphore>,
    /// How often each day was taken over by another run while this one loaded it.
    takeovers: Mutex<HashMap<Date, u32>>,
    /// Where an incremental sync that loaded everything moves its cursor, when it ends.
    cursor: Mutex<Option<CursorMove>>,
}

/// A day taken over by other runs this many times is given up (failed, for a retry) instead of
/// being queued again.
const MAX_TAKEOVERS: u32 = 3;

/// The guard of `m`, whether or not a task panicked while holding it.
pub(in crate::pipeline) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scope {
    fn stop_with(&self, stop: Stop) -> bool {
        self.core.control.stop_with(stop)
    }

    fn add(&self, f: impl FnOnce(&mut RunTotals)) -> RunTotals {
        self.core.add(f)
    }

    fn exec(&self) -> &Execution {
        &self.core.ctx.execution
    }

    fn emit(&self, event: &RunEvent<'_>) {
        self.core.emit(event);
    }
}

impl Engine {
    /// Executes a claimed load or incremental sync to its end, emitting what happens to
    /// `events`: windows, or spans of consecutive days while their `COUNT(*)` fits in
    /// `span_max_pages` pages (0: every day on its own), `concurrency` at once.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; window failures are part of the outcome.
    pub async fn load(
        &self,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
        span_max_pages: u64,
    ) -> Result<RunOutcome, RunError> {
        let queue = plan(&ctx.windows, span_max_pages > 0);
        execute(Arc::new(Scope {
            core: RunCore::new(self, ctx, events, queue),
            span_max_pages,
            ahead: Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1))),
            takeovers: Mutex::new(HashMap::new()),
            cursor: Mutex::new(None),
        }))
        .await
    }
}

impl RunScope for Scope {
    type Work = Work;
    const TASK: &'static str = "window";

    fn failed_text(n: usize) -> String {
        format!("{n} windows failed")
    }

    fn core(&self) -> &RunCore<Work> {
        &self.core
    }

    async fn work(&self, work: Work) {
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
    }

    async fn after(&self) {
        if self.core.ctx.pipeline.mode() == Mode::Incremental && self.all_loaded() {
            self.sync_deletions_and_cursor().await;
        }
    }

    fn cursor(&self) -> Option<CursorMove> {
        lock(&self.cursor).take()
    }
}
