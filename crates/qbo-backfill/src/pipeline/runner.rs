//! Executing one claimed run: several windows at once (the client keeps them inside the company's
//! API budget), each paged in a stable order with every page written in one transaction together
//! with the window's progress; failed windows are recorded and the rest go on; `invalid_grant`
//! stops everything at once; an interrupt (Ctrl-C, SIGTERM) or a cancel stops gracefully; a lost
//! claim stops silently. What happens is emitted as [`RunEvent`]s; nothing here prints.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::events::{RunEvent, RunEvents, TokenFailure};
use super::report::{RequestCounters, Summary};
use super::{DateRange, Mode, Pipeline, Window};
use crate::store::raw::{PageWrite, UpsertCounts, upsert_page, upsert_spread_page};
use crate::store::runs::{
    self, Claim, CursorMove, Execution, RequestTotals, RunStatus, RunTotals, WindowEnd,
};
use crate::store::workers;

/// A cancellation signal shared by every task of a run.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Cancel {
    /// A signal not yet raised.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the signal was raised.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is raised.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

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
enum Stop {
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
    pub interrupt: Cancel,
    /// How long claims last without a heartbeat.
    pub lease: Duration,
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
    events: Arc<dyn RunEvents>,
    queue: Mutex<VecDeque<Work>>,
    totals: Mutex<RunTotals>,
    failed_days: Mutex<Vec<Date>>,
    stop: Mutex<Option<Stop>>,
    /// Raised when the run must stop (fatal error, interrupt, cancel, lost claim).
    halt: Cancel,
    /// How often each day was taken over by another run while this one loaded it.
    takeovers: Mutex<HashMap<Date, u32>>,
    /// Where an incremental sync that loaded everything moves its cursor, when it ends.
    cursor: Mutex<Option<CursorMove>>,
    /// The run's first access token was obtained.
    token_ok: AtomicBool,
}

/// A day taken over by other runs this many times is given up (failed, for a retry) instead of
/// being queued again.
const MAX_TAKEOVERS: u32 = 3;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scope {
    fn stop_with(&self, stop: Stop) -> bool {
        let first = {
            let mut slot = lock(&self.stop);
            let first = slot.is_none();
            if first {
                *slot = Some(stop);
            }
            first
        };
        self.halt.cancel();
        first
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
        self.events.emit(event);
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
        let stats_before = self.client.stats();
        let windows = ctx.windows.len();
        let scope = Arc::new(Scope {
            runner: self.clone(),
            queue: Mutex::new(plan(&ctx.windows, self.span_max_pages > 0)),
            totals: Mutex::new(RunTotals {
                windows: windows as u64,
                ..RunTotals::default()
            }),
            ctx,
            events,
            failed_days: Mutex::new(Vec::new()),
            stop: Mutex::new(None),
            halt: Cancel::new(),
            takeovers: Mutex::new(HashMap::new()),
            cursor: Mutex::new(None),
            token_ok: AtomicBool::new(false),
        });
        scope.emit(&RunEvent::Started {
            run_id: scope.exec().run_id,
            pipeline: scope.ctx.pipeline,
            range: scope.ctx.range,
            windows,
            realm_id: &scope.ctx.realm_id,
        });
        // The heartbeat starts first: the first token refresh may wait on the company's token
        // lock for longer than a lease.
        let heartbeat = tokio::spawn(heartbeat_loop(scope.clone()));
        // Fail fast on a bad refresh token, before any window starts; this is the run's only
        // refresh before its windows, so a refused token is never sent twice.
        if let Err(e) = self.client.ensure_access_token().await {
            scope.token_failure(&e);
        } else {
            scope.token_ok.store(true, Ordering::SeqCst);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..self.concurrency.min(windows).max(1) {
                let scope = scope.clone();
                tasks.spawn(async move { scope.window_worker().await });
            }
            while let Some(joined) = tasks.join_next().await {
                if let Err(e) = joined {
                    let message = format!("A window worker stopped unexpectedly: {e}");
                    scope.emit(&RunEvent::Warning { message: &message });
                }
            }
            if scope.ctx.pipeline.mode() == Mode::Incremental && scope.all_loaded() {
                scope.sync_deletions_and_cursor().await;
            }
        }
        heartbeat.abort();
        scope.finish(started, stats_before).await
    }
}

/// Renews the run's leases; raises the run's stop on a cancel request or a lost claim.
async fn heartbeat_loop(scope: Arc<Scope>) {
    let pool = &scope.runner.pool;
    loop {
        tokio::time::sleep(runs::HEARTBEAT_EVERY.min(scope.runner.lease / 3)).await;
        let _ = workers::heartbeat(pool, scope.exec().worker_id).await;
        match runs::heartbeat(pool, scope.exec(), scope.runner.lease).await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => {
                scope.stop_with(Stop::Cancelled);
            }
            Ok(None) => {
                scope.stop_with(Stop::Lost);
                return;
            }
            Err(e) => {
                let message = format!("Heartbeat failed: {e}");
                scope.emit(&RunEvent::Warning { message: &message });
            }
        }
    }
}

impl Scope {
    async fn finish(
        &self,
        started: Instant,
        stats_before: qbo::ClientStats,
    ) -> Result<RunOutcome, RunError> {
        let stop = lock(&self.stop).clone();
        let totals = *lock(&self.totals);
        let mut failed_days = lock(&self.failed_days).clone();
        failed_days.sort_unstable();
        let run_id = self.exec().run_id;
        let (status, fatal) = match stop {
            Some(Stop::Fatal(msg)) => (RunStatus::Failed, Some(msg)),
            Some(Stop::Interrupted) => (RunStatus::Interrupted, None),
            Some(Stop::Cancelled) => (RunStatus::Cancelled, None),
            Some(Stop::Lost) => {
                self.emit(&RunEvent::Lost { run_id });
                return Ok(self.outcome(None, totals, failed_days, started, None));
            }
            None if totals.failed_windows > 0 => (RunStatus::Failed, None),
            None => (RunStatus::Succeeded, None),
        };
        let error_text = fatal.clone().or_else(|| {
            (!failed_days.is_empty()).then(|| format!("{} windows failed", failed_days.len()))
        });
        let stats = self.runner.client.stats();
        let requests = RequestTotals {
            requests: stats.requests.saturating_sub(stats_before.requests),
            retries: stats.retries.saturating_sub(stats_before.retries),
            throttled: stats.throttled.saturating_sub(stats_before.throttled),
            refreshes: stats.refreshes.saturating_sub(stats_before.refreshes),
        };
        let cursor = lock(&self.cursor).take();
        let stored = runs::finish_run_moving_cursor(
            &self.runner.pool,
            self.exec(),
            status,
            &totals,
            &requests,
            error_text.as_deref(),
            cursor.as_ref(),
        )
        .await?;
        let Some(stored) = stored else {
            self.emit(&RunEvent::Lost { run_id });
            return Ok(self.outcome(None, totals, failed_days, started, fatal));
        };
        let outcome = self.outcome(Some(stored), totals, failed_days, started, fatal);
        self.emit(&RunEvent::Finished {
            summary: &Summary {
                pipeline: self.ctx.pipeline,
                range: self.ctx.range,
                run_id,
                status: stored,
                totals,
                failed_days: &outcome.failed_days,
                duration: outcome.duration,
                requests: RequestCounters {
                    requests: requests.requests,
                    retries: requests.retries,
                    throttled: requests.throttled,
                },
            },
        });
        Ok(outcome)
    }

    fn outcome(
        &self,
        status: Option<RunStatus>,
        totals: RunTotals,
        failed_days: Vec<Date>,
        started: Instant,
        fatal: Option<String>,
    ) -> RunOutcome {
        RunOutcome {
            run_id: self.exec().run_id,
            status,
            totals,
            failed_days,
            duration: started.elapsed(),
            fatal,
            token_ok: self.token_ok.load(Ordering::SeqCst),
        }
    }

    fn token_failure(&self, e: &qbo::QboError) {
        if !self.stop_with(Stop::Fatal(format!("Token refresh failed: {e}"))) {
            return;
        }
        let kind = if e.is_invalid_grant() {
            TokenFailure::InvalidGrant
        } else if e.is_terminal_auth() {
            TokenFailure::InvalidClient
        } else {
            TokenFailure::Other
        };
        let message = e.to_string();
        self.emit(&RunEvent::TokenFailed {
            run_id: self.exec().run_id,
            kind,
            message: &message,
        });
    }

    async fn window_worker(&self) {
        loop {
            if self.runner.interrupt.is_cancelled() {
                self.stop_with(Stop::Interrupted);
            }
            if self.halt.is_cancelled() {
                return;
            }
            let next = lock(&self.queue).pop_front();
            match next {
                None => return,
                Some(Work::Window(window)) => {
                    WindowTask {
                        scope: self,
                        window,
                        started: Instant::now(),
                    }
                    .run()
                    .await;
                }
                Some(Work::Span(windows)) => self.span(windows).await,
            }
        }
    }
}

/// One window being loaded by one execution.
struct WindowTask<'a> {
    scope: &'a Scope,
    window: Window,
    started: Instant,
}

/// How a window's paging ended early.
enum Early {
    /// The run stopped (already recorded as unfinished).
    Stopped,
    /// The window failed with this message and transaction id.
    Failed(String, Option<String>),
    /// The window was taken over.
    TakenOver,
}

impl WindowTask<'_> {
    fn runner(&self) -> &Runner {
        &self.scope.runner
    }

    async fn run(&self) {
        let scope = self.scope;
        scope.emit(&RunEvent::WindowStarted {
            pipeline: scope.ctx.pipeline,
            day: self.window.day,
        });
        match self.claim().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.failed(&format!("cannot claim the window: {e}"), None)
                    .await;
                return;
            }
        }
        match self.load().await {
            Ok((pages, rows, written_pages, counts)) => {
                self.succeeded(pages, rows, written_pages, counts).await;
            }
            Err(Early::Stopped) => {}
            Err(Early::TakenOver) => {
                scope.emit(&RunEvent::WindowTakenOver {
                    day: self.window.day,
                });
                scope.requeue_taken_over(vec![self.window]).await;
            }
            Err(Early::Failed(message, tid)) => self.failed(&message, tid.as_deref()).await,
        }
    }

    /// Waits until the window can be claimed by this run. `false` when the run stopped.
    async fn claim(&self) -> Result<bool, sqlx::Error> {
        let scope = self.scope;
        let mut told = false;
        loop {
            let claim = runs::claim_window(
                &self.runner().pool,
                scope.exec(),
                scope.ctx.pipeline,
                &scope.ctx.realm_id,
                &self.window,
                self.runner().lease,
            )
            .await?;
            match claim {
                Claim::Claimed => return Ok(true),
                Claim::Lost => {
                    scope.stop_with(Stop::Lost);
                    return Ok(false);
                }
                Claim::Busy { holder } => {
                    if !told {
                        scope.emit(&RunEvent::WindowWaiting {
                            day: self.window.day,
                            holder,
                        });
                        told = true;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = scope.halt.cancelled() => return Ok(false),
                () = self.runner().interrupt.cancelled() => {
                    scope.stop_with(Stop::Interrupted);
                    return Ok(false);
                }
            }
        }
    }

    /// Pages through the window, writing each page. Returns pages fetched, rows, pages written
    /// and the upsert counts.
    async fn load(&self) -> Result<(u64, u64, u64, UpsertCounts), Early> {
        let scope = self.scope;
        let mut pager = self.runner().client.pager(
            scope.ctx.pipeline.entity(),
            scope.ctx.pipeline.time_field(),
            qbo::TimeWindow {
                start: self.window.start,
                end: self.window.end,
            },
        );
        let (mut written_pages, mut rows, mut counts) = (0_u64, 0_u64, UpsertCounts::default());
        loop {
            let next = tokio::select! {
                r = pager.next_page() => r,
                () = scope.halt.cancelled() => {
                    self.unfinished("the run stopped before this window finished").await;
                    return Err(Early::Stopped);
                }
                () = self.runner().interrupt.cancelled() => {
                    scope.stop_with(Stop::Interrupted);
                    self.unfinished("interrupted by the operator").await;
                    return Err(Early::Stopped);
                }
            };
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) if e.is_terminal_auth() => {
                    scope.token_failure(&e);
                    self.unfinished("the run stopped: token refresh failed")
                        .await;
                    return Err(Early::Stopped);
                }
                Err(e) => {
                    return Err(Early::Failed(
                        e.to_string(),
                        e.intuit_tid().map(str::to_owned),
                    ));
                }
            };
            // The page and the window's progress commit together, or not at all. A stop
            // request never interrupts this: the page in flight commits or rolls back whole.
            match self.write_page(&page).await {
                Ok(Some(page_counts)) => {
                    written_pages += 1;
                    rows += page.rows.len() as u64;
                    counts += page_counts;
                    let totals = scope.add(|t| {
                        t.pages += 1;
                        t.rows += page.rows.len() as u64;
                        t.counts += page_counts;
                    });
                    scope.emit(&RunEvent::PageWritten {
                        run_rows: totals.rows,
                    });
                }
                Ok(None) => return Err(Early::TakenOver),
                Err(e) => {
                    return Err(Early::Failed(
                        format!("cannot write page {} to PostgreSQL: {e}", page.number),
                        page.intuit_tid.clone(),
                    ));
                }
            }
        }
        Ok((u64::from(pager.pages()), rows, written_pages, counts))
    }

    async fn write_page(
        &self,
        page: &qbo::Page,
    ) -> Result<Option<UpsertCounts>, Box<dyn std::error::Error + Send + Sync>> {
        let scope = self.scope;
        let mut tx = self.runner().pool.begin().await?;
        let counts = upsert_page(
            &mut tx,
            &PageWrite {
                realm_id: &scope.ctx.realm_id,
                table: scope.ctx.pipeline.table(),
                window_start: self.window.start,
                window_end: self.window.end,
                page,
                run_id: Some(scope.exec().run_id),
            },
        )
        .await?;
        let held = runs::record_page(
            &mut tx,
            scope.exec(),
            scope.ctx.pipeline,
            &scope.ctx.realm_id,
            &self.window,
            page.rows.len() as u64,
            counts,
        )
        .await?;
        if !held {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn succeeded(&self, pages: u64, rows: u64, written_pages: u64, counts: UpsertCounts) {
        let duration = self.started.elapsed();
        match self.end(&WindowEnd::Succeeded).await {
            Ok(true) => self.scope.emit(&RunEvent::WindowCompleted {
                day: self.window.day,
                pages,
                rows,
                written_pages,
                counts,
                duration,
            }),
            Ok(false) => {
                self.scope.emit(&RunEvent::WindowTakenOver {
                    day: self.window.day,
                });
                self.scope.requeue_taken_over(vec![self.window]).await;
            }
            Err(e) => {
                self.failed(&format!("cannot record the window: {e}"), None)
                    .await;
            }
        }
    }

    async fn failed(&self, message: &str, intuit_tid: Option<&str>) {
        let scope = self.scope;
        scope.add(|t| t.failed_windows += 1);
        lock(&scope.failed_days).push(self.window.day);
        self.record(&WindowEnd::Failed {
            error: message,
            intuit_tid,
        })
        .await;
        scope.emit(&RunEvent::WindowFailed {
            day: self.window.day,
            error: message,
            intuit_tid,
        });
    }

    async fn unfinished(&self, reason: &str) {
        self.record(&WindowEnd::Unfinished { reason }).await;
    }

    async fn end(&self, end: &WindowEnd<'_>) -> Result<bool, sqlx::Error> {
        let scope = self.scope;
        runs::end_window(
            &self.runner().pool,
            scope.exec(),
            scope.ctx.pipeline,
            &scope.ctx.realm_id,
            &self.window,
            end,
            self.started.elapsed(),
        )
        .await
    }

    /// Records how a window ended; a failure to record is reported (the lease then expires and
    /// the window is claimable again).
    async fn record(&self, end: &WindowEnd<'_>) {
        if let Err(e) = self.end(end).await {
            let message = format!("Cannot record the end of window {}: {e}", self.window.day);
            self.scope.emit(&RunEvent::Warning { message: &message });
        }
    }
}

/// One unit of work of a run: a day loaded on its own, or consecutive days loaded together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    /// One window, paged on its own (a retry of one day asks only for that day).
    Window(Window),
    /// Consecutive windows: one `COUNT(*)` decides whether they are fetched together (their rows
    /// split into their days on our side) or split in two.
    Span(Vec<Window>),
}

/// The work for `windows`: each run of consecutive days is one span (when `spans`); a lone day
/// is a window. A span whose `COUNT(*)` is above [`Runner::span_max_pages`] pages is split in two
/// (so that a re-page after a change costs little and several workers share a long history); at
/// or below it, it is paged in one pass.
fn plan(windows: &[Window], spans: bool) -> VecDeque<Work> {
    let mut sorted = windows.to_vec();
    sorted.sort_unstable();
    if !spans {
        return sorted.into_iter().map(Work::Window).collect();
    }
    let mut out = VecDeque::new();
    let mut run: Vec<Window> = Vec::new();
    let flush = |run: &mut Vec<Window>, out: &mut VecDeque<Work>| match run.len() {
        0 => {}
        1 => out.push_back(Work::Window(run[0])),
        _ => out.push_back(Work::Span(std::mem::take(run))),
    };
    for window in sorted {
        if run.last().is_some_and(|last| last.end != window.start) {
            flush(&mut run, &mut out);
            run.clear();
        }
        run.push(window);
    }
    flush(&mut run, &mut out);
    out
}

/// How a span's `COUNT(*)` ended.
enum Counted {
    Rows(u64),
    Stopped,
    Failed(String),
}

impl Scope {
    /// Whether every window of this execution loaded (no failure, no stop).
    fn all_loaded(&self) -> bool {
        lock(&self.stop).is_none() && lock(&self.totals).failed_windows == 0
    }

    fn span_window(windows: &[Window]) -> Option<qbo::TimeWindow> {
        Some(qbo::TimeWindow {
            start: windows.first()?.start,
            end: windows.last()?.end,
        })
    }

    async fn count_span(&self, span: qbo::TimeWindow) -> Counted {
        let pipeline = self.ctx.pipeline;
        let counted = tokio::select! {
            r = self.runner.client.count_within(pipeline.entity(), pipeline.time_field(), span) => r,
            () = self.halt.cancelled() => return Counted::Stopped,
            () = self.runner.interrupt.cancelled() => {
                self.stop_with(Stop::Interrupted);
                return Counted::Stopped;
            }
        };
        match counted {
            Ok(n) => Counted::Rows(n),
            Err(e) if e.is_terminal_auth() => {
                self.token_failure(&e);
                Counted::Stopped
            }
            Err(e) => Counted::Failed(e.to_string()),
        }
    }

    /// Loads consecutive windows together: count them, then fetch them in one paged query and
    /// write each row into its own day's window, or split the span when it is dense.
    async fn span(&self, windows: Vec<Window>) {
        let Some(span) = Self::span_window(&windows) else {
            return;
        };
        let count = match self.count_span(span).await {
            Counted::Rows(n) => n,
            Counted::Stopped => return,
            Counted::Failed(message) => {
                // Retries are spent: smaller spans, down to single days, fail (or not) on
                // their own, so one bad answer never fails a whole month.
                self.warn_split(&windows, &message);
                self.split(&windows);
                return;
            }
        };
        let page_size = u64::from(self.runner.client.settings().page_size);
        if count > self.runner.span_max_pages.saturating_mul(page_size) && windows.len() > 1 {
            self.split(&windows);
            return;
        }
        let tasks = self.claim_span(&windows).await;
        if tasks.is_empty() {
            return;
        }
        let mut loaded = vec![SpanDay::default(); tasks.len()];
        let result = if count == 0 {
            Ok(0)
        } else {
            self.page_span(span, count, &tasks, &mut loaded).await
        };
        match result {
            Ok(pages) => self.span_succeeded(&tasks, &loaded, pages).await,
            Err(Early::Stopped) => {
                for task in &tasks {
                    task.unfinished("the run stopped before this window finished")
                        .await;
                }
            }
            Err(Early::TakenOver) => {
                // What was written stays (upserts are idempotent); the days are loaded again,
                // those another run holds once it is done with them.
                for task in &tasks {
                    self.emit(&RunEvent::WindowTakenOver {
                        day: task.window.day,
                    });
                    task.unfinished("another execution holds part of its span")
                        .await;
                }
                self.requeue_taken_over(tasks.iter().map(|t| t.window).collect())
                    .await;
            }
            Err(Early::Failed(message, tid)) if tasks.len() == 1 => {
                for task in &tasks {
                    task.failed(&message, tid.as_deref()).await;
                }
            }
            Err(Early::Failed(message, _)) => {
                // What was written stays (upserts are idempotent); the days load again in
                // smaller spans, down to single days that fail on their own.
                for task in &tasks {
                    task.unfinished("loading again in smaller spans").await;
                }
                let held: Vec<Window> = tasks.iter().map(|t| t.window).collect();
                self.warn_split(&held, &message);
                self.split(&held);
            }
        }
    }

    /// Queues again days that another run took over while this one loaded them (they wait for
    /// it, then load on their own, or together when they are several). A day taken over
    /// [`MAX_TAKEOVERS`] times is given up instead: this run's record of it fails, for a retry.
    async fn requeue_taken_over(&self, windows: Vec<Window>) {
        let mut again = Vec::with_capacity(windows.len());
        let mut given_up = Vec::new();
        {
            let mut takeovers = lock(&self.takeovers);
            for window in windows {
                let n = takeovers.entry(window.day).or_default();
                *n += 1;
                if *n > MAX_TAKEOVERS {
                    given_up.push(window);
                } else {
                    again.push(window);
                }
            }
        }
        match again.len() {
            0 => {}
            1 => lock(&self.queue).push_back(Work::Window(again[0])),
            _ => lock(&self.queue).push_back(Work::Span(again)),
        }
        for window in given_up {
            let message = format!(
                "taken over by other runs {MAX_TAKEOVERS} times while this run loaded it; retry the run"
            );
            self.add(|t| t.failed_windows += 1);
            lock(&self.failed_days).push(window.day);
            if let Err(e) =
                runs::give_up_run_window(&self.runner.pool, self.exec(), &window, &message).await
            {
                let warning = format!("Cannot record the end of window {}: {e}", window.day);
                self.emit(&RunEvent::Warning { message: &warning });
            }
            self.emit(&RunEvent::WindowFailed {
                day: window.day,
                error: &message,
                intuit_tid: None,
            });
        }
    }

    /// Puts the two halves of `windows` at the front of the queue.
    fn split(&self, windows: &[Window]) {
        let (first, second) = windows.split_at(windows.len() / 2);
        let mut queue = lock(&self.queue);
        for half in [second, first] {
            match half {
                [] => {}
                [one] => queue.push_front(Work::Window(*one)),
                more => queue.push_front(Work::Span(more.to_vec())),
            }
        }
    }

    fn warn_split(&self, windows: &[Window], error: &str) {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return;
        };
        let message = format!(
            "Windows {} → {} failed together ({error}); loading them again in smaller spans",
            first.day,
            last.end_day()
        );
        self.emit(&RunEvent::Warning { message: &message });
    }

    /// Claims every window of a span that is free now, at once; a window another run holds
    /// goes back to the queue on its own (it waits there).
    async fn claim_span<'a>(&'a self, windows: &[Window]) -> Vec<WindowTask<'a>> {
        if self.halt.is_cancelled() {
            return Vec::new();
        }
        let claim = runs::claim_windows(
            &self.runner.pool,
            self.exec(),
            self.ctx.pipeline,
            &self.ctx.realm_id,
            windows,
            self.runner.lease,
        )
        .await;
        let claim = match claim {
            Ok(claim) => claim,
            Err(e) => {
                // Nothing was claimed: the days go back one by one, each claimed (or failed) on
                // its own.
                let message =
                    format!("Cannot claim a span of windows ({e}); loading its days one by one");
                self.emit(&RunEvent::Warning { message: &message });
                let mut queue = lock(&self.queue);
                for window in windows.iter().rev() {
                    queue.push_front(Work::Window(*window));
                }
                return Vec::new();
            }
        };
        if claim.lost {
            self.stop_with(Stop::Lost);
            return Vec::new();
        }
        {
            let mut queue = lock(&self.queue);
            for (window, _) in claim.busy {
                queue.push_back(Work::Window(window));
            }
        }
        let started = Instant::now();
        claim
            .claimed
            .into_iter()
            .map(|window| {
                self.emit(&RunEvent::WindowStarted {
                    pipeline: self.ctx.pipeline,
                    day: window.day,
                });
                WindowTask {
                    scope: self,
                    window,
                    started,
                }
            })
            .collect()
    }

    /// Ends a loaded span's windows as succeeded, at once, and reports each.
    async fn span_succeeded(&self, tasks: &[WindowTask<'_>], loaded: &[SpanDay], pages: u64) {
        let windows: Vec<Window> = tasks.iter().map(|t| t.window).collect();
        let duration = tasks
            .first()
            .map_or(Duration::ZERO, |t| t.started.elapsed());
        let ended = runs::end_windows_succeeded(
            &self.runner.pool,
            self.exec(),
            self.ctx.pipeline,
            &self.ctx.realm_id,
            &windows,
            duration,
        )
        .await;
        let held: std::collections::HashSet<Date> = match ended {
            Ok(held) => held.iter().map(|w| w.day).collect(),
            Err(e) => {
                for task in tasks {
                    task.failed(&format!("cannot record the window: {e}"), None)
                        .await;
                }
                return;
            }
        };
        let mut lost = Vec::new();
        for (task, day) in tasks.iter().zip(loaded) {
            if held.contains(&task.window.day) {
                // An empty day cost no request of its own; a day with rows shares the span's.
                self.emit(&RunEvent::WindowCompleted {
                    day: task.window.day,
                    pages: if day.rows == 0 { 0 } else { pages },
                    rows: day.rows,
                    written_pages: day.written_pages,
                    counts: day.counts,
                    duration,
                });
            } else {
                self.emit(&RunEvent::WindowTakenOver {
                    day: task.window.day,
                });
                lost.push(task.window);
            }
        }
        // Days another run took over are loaded again on their own, once it is done with them.
        for window in lost {
            self.requeue_taken_over(vec![window]).await;
        }
    }

    /// Pages the span and writes every page, each row into the window of its day. Returns the
    /// pages fetched. Pages are written as they arrive, up to [`SPAN_WRITES_IN_FLIGHT`] at once
    /// (each in its own transaction), while the next pages are fetched: the rows of a span load
    /// as fast as PostgreSQL takes them, as a calendar scan's days would. Before it returns,
    /// every write in flight has committed or rolled back whole and is accounted for.
    async fn page_span(
        &self,
        span: qbo::TimeWindow,
        count: u64,
        tasks: &[WindowTask<'_>],
        loaded: &mut [SpanDay],
    ) -> Result<u64, Early> {
        let pipeline = self.ctx.pipeline;
        let mut pager = self
            .runner
            .client
            .pager(pipeline.entity(), pipeline.time_field(), span);
        pager.expect_count(count);
        let writer = Arc::new(SpreadWriter {
            pool: self.runner.pool.clone(),
            realm_id: self.ctx.realm_id.clone(),
            pipeline,
            exec: *self.exec(),
            windows: tasks.iter().map(|t| t.window).collect(),
        });
        let mut writes: tokio::task::JoinSet<(SpanPage, WriteResult)> = tokio::task::JoinSet::new();
        let mut ended: Option<Result<u64, Early>> = None;
        while ended.is_none() {
            // Account for the writes that are done; wait for one when enough are in flight.
            while let Some(joined) = writes.try_join_next() {
                if let Err(early) = self.written(joined, loaded) {
                    ended = Some(Err(early));
                }
            }
            if ended.is_some() {
                break;
            }
            if writes.len() >= SPAN_WRITES_IN_FLIGHT {
                if let Some(joined) = writes.join_next().await
                    && let Err(early) = self.written(joined, loaded)
                {
                    ended = Some(Err(early));
                }
                continue;
            }
            let fetched = tokio::select! {
                r = pager.next_page() => Some(r),
                () = self.halt.cancelled() => None,
                () = self.runner.interrupt.cancelled() => {
                    self.stop_with(Stop::Interrupted);
                    None
                }
            };
            let page = match fetched {
                None => {
                    ended = Some(Err(Early::Stopped));
                    continue;
                }
                Some(Ok(Some(page))) => page,
                Some(Ok(None)) => {
                    ended = Some(Ok(u64::from(pager.pages())));
                    continue;
                }
                Some(Err(e)) if e.is_terminal_auth() => {
                    self.token_failure(&e);
                    ended = Some(Err(Early::Stopped));
                    continue;
                }
                Some(Err(e)) => {
                    ended = Some(Err(Early::Failed(
                        e.to_string(),
                        e.intuit_tid().map(str::to_owned),
                    )));
                    continue;
                }
            };
            let (page, row_window) = assign_days(page, pipeline.time_field(), span, tasks);
            if !page.rows.is_empty() {
                let mut received = vec![0_u64; tasks.len()];
                for &w in &row_window {
                    received[w] += 1;
                }
                let part = SpanPage {
                    page,
                    row_window,
                    received,
                };
                let writer = writer.clone();
                writes.spawn(async move {
                    let result = writer.write(&part).await.map_err(|e| e.to_string());
                    (part, result)
                });
            }
        }
        // Nothing in flight is abandoned: each write commits or rolls back whole, and is counted.
        while let Some(joined) = writes.join_next().await {
            if let Err(early) = self.written(joined, loaded)
                && matches!(ended, Some(Ok(_)))
            {
                ended = Some(Err(early));
            }
        }
        ended.unwrap_or(Err(Early::Stopped))
    }

    /// Accounts for one finished page write of a span.
    fn written(
        &self,
        joined: Result<(SpanPage, WriteResult), tokio::task::JoinError>,
        loaded: &mut [SpanDay],
    ) -> Result<(), Early> {
        match joined {
            Ok((part, Ok(Some(counts)))) => {
                self.account_spread(&part, &counts, loaded);
                Ok(())
            }
            Ok((_, Ok(None))) => Err(Early::TakenOver),
            Ok((_, Err(e))) => Err(Early::Failed(
                format!("cannot write a page to PostgreSQL: {e}"),
                None,
            )),
            Err(e) => Err(Early::Failed(
                format!("a page write stopped unexpectedly: {e}"),
                None,
            )),
        }
    }

    /// Adds a written span page to its days' figures and the run's totals.
    fn account_spread(&self, part: &SpanPage, written: &[UpsertCounts], loaded: &mut [SpanDay]) {
        let received = &part.received;
        let mut counts = UpsertCounts::default();
        for (index, part_counts) in written.iter().enumerate() {
            if received[index] == 0 {
                continue;
            }
            let day = &mut loaded[index];
            day.rows += received[index];
            day.written_pages += 1;
            day.counts += *part_counts;
            counts += *part_counts;
        }
        let rows = part.page.rows.len() as u64;
        let totals = self.add(|t| {
            t.pages += 1;
            t.rows += rows;
            t.counts += counts;
        });
        self.emit(&RunEvent::PageWritten {
            run_rows: totals.rows,
        });
    }

    /// An incremental sync that loaded every window: mark what QuickBooks reports deleted since
    /// the range began (change data capture looks back 30 days), then say where the cursor
    /// moves when the run ends (it moves in the transaction that stores the run succeeded).
    async fn sync_deletions_and_cursor(&self) {
        let pipeline = self.ctx.pipeline;
        let (Ok(range_start), Ok(range_end)) = (self.ctx.range.start(), self.ctx.range.end())
        else {
            return;
        };
        let now = jiff::Timestamp::now();
        match self.mark_deletions(range_start, now).await {
            Ok(()) => {}
            Err(message) => {
                self.stop_with(Stop::Fatal(message.clone()));
                self.emit(&RunEvent::Warning { message: &message });
                return;
            }
        }
        let created = runs::created_at(&self.runner.pool, self.exec().run_id).await;
        let through = match created {
            Ok(Some(created)) => created.min(range_end),
            Ok(None) => return,
            Err(e) => {
                let message = format!("Cannot read the run to move the sync cursor: {e}");
                self.emit(&RunEvent::Warning { message: &message });
                return;
            }
        };
        *lock(&self.cursor) = Some(CursorMove {
            realm_id: self.ctx.realm_id.clone(),
            entity: pipeline.entity(),
            range_start,
            through,
        });
    }

    async fn mark_deletions(
        &self,
        range_start: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<(), String> {
        let entity = self.ctx.pipeline.entity();
        let verify = format!(
            "`qbo-backfill verify {} --fecha-inicio {} --fecha-fin {}` finds them",
            self.ctx.pipeline.spec().plural,
            self.ctx.range.fecha_inicio,
            self.ctx.range.fecha_fin
        );
        if !entity.has_cdc() {
            let message = format!(
                "Deletions of {entity} cannot be seen: QuickBooks' change data capture does not report {entity}; {verify}"
            );
            self.emit(&RunEvent::Warning { message: &message });
            return Ok(());
        }
        // QuickBooks looks back 30 days at most; stay a little inside that.
        let oldest = now
            .checked_sub(jiff::SignedDuration::from_hours(30 * 24 - 1))
            .unwrap_or(now);
        if range_start < oldest {
            let message = format!(
                "Deletions before {} cannot be seen: QuickBooks' change data capture looks back 30 days; {verify}",
                oldest.strftime("%Y-%m-%dT%H:%M:%SZ")
            );
            self.emit(&RunEvent::Warning { message: &message });
        }
        let since = range_start.max(oldest);
        let Some((deleted, answers)) = self.read_deletions(since).await? else {
            return Ok(());
        };
        let marked = if deleted.is_empty() {
            0
        } else {
            let mut conn = self
                .runner
                .pool
                .acquire()
                .await
                .map_err(|e| format!("Cannot mark deletions in PostgreSQL: {e}"))?;
            crate::store::raw::mark_deleted(
                &mut conn,
                self.ctx.pipeline.table(),
                &self.ctx.realm_id,
                &deleted,
                crate::store::raw::DeletionSource::Cdc,
            )
            .await
            .map_err(|e| format!("Cannot mark deletions in PostgreSQL: {e}"))?
        };
        self.emit(&RunEvent::Deletions {
            since,
            reported: deleted.len() as u64,
            marked,
            answers,
        });
        Ok(())
    }

    /// Every deletion QuickBooks' change data capture reports since `since`, with how many
    /// answers it took: an answer at the cap of [`qbo::CDC_MAX_OBJECTS`] may leave changes out,
    /// so the next is asked from the newest change it carried, until an answer is under the
    /// cap. `None` when the run stopped meanwhile.
    ///
    /// # Errors
    /// A failed read, or an answer at the cap that cannot be followed (as many changes at one
    /// instant as the cap): the sync must not report success then.
    async fn read_deletions(
        &self,
        since: jiff::Timestamp,
    ) -> Result<Option<(Vec<(String, jiff::Timestamp)>, u32)>, String> {
        let entity = self.ctx.pipeline.entity();
        let now = jiff::Timestamp::now();
        let mut deleted: HashMap<String, jiff::Timestamp> = HashMap::new();
        let mut from = since;
        let mut answers = 0_u32;
        loop {
            let changes = tokio::select! {
                r = self.runner.client.cdc(entity, from) => r,
                () = self.halt.cancelled() => return Ok(None),
            };
            let changes = match changes {
                Ok(changes) => changes,
                Err(e) if e.is_terminal_auth() => {
                    self.token_failure(&e);
                    return Ok(None);
                }
                Err(e) => return Err(format!("Cannot read deletions (change data capture): {e}")),
            };
            answers += 1;
            for change in changes.iter().filter(|c| c.deleted) {
                let at = change.updated.unwrap_or(now);
                deleted
                    .entry(change.id.clone())
                    .and_modify(|t| *t = (*t).max(at))
                    .or_insert(at);
            }
            if changes.len() < qbo::CDC_MAX_OBJECTS {
                break;
            }
            let newest = changes.iter().filter_map(|c| c.updated).max();
            match newest {
                Some(newest) if newest > from && answers < MAX_CDC_ANSWERS => from = newest,
                _ => {
                    return Err(format!(
                        "Cannot read every deletion of {entity} since {}: QuickBooks' change data capture answered its maximum of {} objects without reaching past {}; run `qbo-backfill verify` over this range to find them",
                        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        qbo::CDC_MAX_OBJECTS,
                        from.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ));
                }
            }
        }
        let mut deleted: Vec<(String, jiff::Timestamp)> = deleted.into_iter().collect();
        deleted.sort_unstable();
        Ok(Some((deleted, answers)))
    }
}

/// At most this many change-data-capture answers are followed for one sync (a million changes).
const MAX_CDC_ANSWERS: u32 = 1000;

/// Page writes of one span in flight at once, each in its own transaction.
const SPAN_WRITES_IN_FLIGHT: usize = 3;

/// How a span's page write ended: its counts per window, `None` when a window is no longer held
/// by this execution (nothing written), or the error.
type WriteResult = Result<Option<Vec<UpsertCounts>>, String>;

/// What a span's page writes need, owned, so that several can be in flight at once.
struct SpreadWriter {
    pool: PgPool,
    realm_id: String,
    pipeline: Pipeline,
    exec: Execution,
    /// The span's windows this execution holds, in day order.
    windows: Vec<Window>,
}

impl SpreadWriter {
    /// Writes one page of a span, each row into its day's window, and the progress of those
    /// windows, in one transaction. Returns the counts per window (by position in `windows`), or
    /// `None` when a window is no longer held by this execution (nothing is written then).
    async fn write(
        &self,
        part: &SpanPage,
    ) -> Result<Option<Vec<UpsertCounts>>, Box<dyn std::error::Error + Send + Sync>> {
        let bounds: Vec<(jiff::Timestamp, jiff::Timestamp)> =
            self.windows.iter().map(|w| (w.start, w.end)).collect();
        let mut tx = self.pool.begin().await?;
        let counts = upsert_spread_page(
            &mut tx,
            &self.realm_id,
            self.pipeline.table(),
            &part.page,
            &part.row_window,
            &bounds,
            Some(self.exec.run_id),
        )
        .await?;
        let parts: Vec<(Window, u64, UpsertCounts)> = self
            .windows
            .iter()
            .zip(&counts)
            .zip(&part.received)
            .filter(|(_, rows)| **rows > 0)
            .map(|((window, c), rows)| (*window, *rows, *c))
            .collect();
        let held =
            runs::record_spread_page(&mut tx, &self.exec, self.pipeline, &self.realm_id, &parts)
                .await?;
        if !held {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(counts))
    }
}

/// A span's page ready to write: its rows, the window (position in the span's tasks) of each,
/// and how many rows each window receives.
struct SpanPage {
    page: qbo::Page,
    row_window: Vec<usize>,
    received: Vec<u64>,
}

/// What one window of a span received.
#[derive(Debug, Clone, Copy, Default)]
struct SpanDay {
    rows: u64,
    written_pages: u64,
    counts: UpsertCounts,
}

/// The window (position in `tasks`) of every row of a span's page, by the UTC day of its
/// `field`; the page keeps only the rows of days this execution holds, so a span never writes
/// into a window it does not hold. A row of a day another run holds is left to that run. A row
/// outside the span's bounds (QuickBooks read the bounds differently) goes to the span's first or
/// last day when this execution holds that day, and is otherwise left to the day's holder, whose
/// query has the same bound; a row without a readable time goes to the first held day.
fn assign_days(
    mut page: qbo::Page,
    field: qbo::TimeField,
    span: qbo::TimeWindow,
    tasks: &[WindowTask<'_>],
) -> (qbo::Page, Vec<usize>) {
    let windows: Vec<Window> = tasks.iter().map(|t| t.window).collect();
    let mut row_window = Vec::with_capacity(page.rows.len());
    page.rows.retain(|row| {
        let index = held_window(row.time(field), span, &windows);
        if let Some(index) = index {
            row_window.push(index);
        }
        index.is_some()
    });
    (page, row_window)
}

/// The position in `held` (days in order) of the window a row at `time` belongs to, as
/// [`assign_days`] decides.
fn held_window(
    time: Option<jiff::Timestamp>,
    span: qbo::TimeWindow,
    held: &[Window],
) -> Option<usize> {
    let first = held.first()?;
    let last = held.len() - 1;
    let Some(t) = time else { return Some(0) };
    if t < span.start {
        return (first.start == span.start).then_some(0);
    }
    if t >= span.end {
        return (held[last].end == span.end).then_some(last);
    }
    let index = held.partition_point(|w| w.end <= t);
    held.get(index).filter(|w| t >= w.start).map(|_| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn day(d: i8) -> Window {
        Window::for_day(date(2026, 3, d)).expect("day")
    }

    fn at(text: &str) -> Option<jiff::Timestamp> {
        Some(text.parse().expect("timestamp"))
    }

    fn span(first: i8, last: i8) -> qbo::TimeWindow {
        qbo::TimeWindow {
            start: day(first).start,
            end: day(last).end,
        }
    }

    #[test]
    fn rows_go_to_their_own_held_day_and_never_to_a_day_held_elsewhere() {
        // A span of 1..=5 March whose 1st, 3rd and 5th days another run holds.
        let held = [day(2), day(4)];
        let s = span(1, 5);
        assert_eq!(held_window(at("2026-03-02T10:00:00Z"), s, &held), Some(0));
        assert_eq!(held_window(at("2026-03-04T23:59:59Z"), s, &held), Some(1));
        for busy in [
            "2026-03-01T00:00:00Z",
            "2026-03-01T12:00:00Z",
            "2026-03-03T00:00:00Z",
            "2026-03-05T23:00:00Z",
        ] {
            assert_eq!(held_window(at(busy), s, &held), None, "{busy}");
        }
        // Outside the span's bounds: only into an edge day this execution holds.
        assert_eq!(held_window(at("2026-02-28T23:00:00Z"), s, &held), None);
        assert_eq!(held_window(at("2026-03-06T01:00:00Z"), s, &held), None);
        let all = [day(1), day(2), day(3)];
        let s = span(1, 3);
        assert_eq!(held_window(at("2026-02-28T23:00:00Z"), s, &all), Some(0));
        assert_eq!(held_window(at("2026-03-04T01:00:00Z"), s, &all), Some(2));
        assert_eq!(held_window(None, s, &all), Some(0));
        assert_eq!(held_window(at("2026-03-02T00:00:00Z"), s, &all), Some(1));
        assert_eq!(held_window(at("2026-03-02T00:00:00Z"), s, &[]), None);
    }

    #[test]
    fn consecutive_days_are_planned_as_spans_and_lone_days_alone() {
        let work = plan(&[day(5), day(1), day(2), day(3), day(7), day(8)], true);
        assert_eq!(
            Vec::from(work),
            vec![
                Work::Span(vec![day(1), day(2), day(3)]),
                Work::Window(day(5)),
                Work::Span(vec![day(7), day(8)]),
            ]
        );
        assert_eq!(plan(&[day(2), day(1)], false).len(), 2);
    }
}
