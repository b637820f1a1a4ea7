//! What every execution of a run shares, loads, verifications and reports alike: what it runs
//! with ([`Engine`]), how it runs ([`execute`]: the start, the heartbeat, the tasks that drain
//! its queue, the end), why it stopped, the signal that stops its tasks, whether its first access
//! token came, and the requests it spent. A run's own scope (the loader's, the verifier's, the
//! report reader's) holds one [`RunControl`], implements [`RunScope`] and adds its work.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use tokio_util::sync::CancellationToken;

use super::window::HeldWindow;
use super::{RunContext, RunError, RunOutcome, Stop, lock};
use crate::pipeline::Window;
use crate::pipeline::events::{RunEvent, RunEvents, TokenFailure};
use crate::store::runs::workers;
use crate::store::runs::{self, CursorMove, Execution, RequestTotals, RunStatus, RunTotals};

/// What every kind of run executes with: the database, the company's client, how many windows
/// (or months) at once, the interrupt and the claims' lease.
#[derive(Clone)]
pub struct Engine {
    /// The database.
    pub pool: PgPool,
    /// The company's QuickBooks client.
    pub client: qbo::QboClient,
    /// Windows (or months) worked on at once.
    pub concurrency: usize,
    /// Raised by the operator (Ctrl-C) or a shutting-down worker.
    pub interrupt: CancellationToken,
    /// How long claims last without a heartbeat.
    pub lease: Duration,
    /// The page writes of this process, shared by all its runs.
    pub writes: WriteGate,
}

/// Bounds the page writes a process runs at once, over all its runs and companies: each write
/// waits for a place before it takes a connection and holds it until it commits.
#[derive(Clone, Debug)]
pub struct WriteGate(Arc<tokio::sync::Semaphore>);

impl WriteGate {
    /// A gate for `places` writes at once (at least 1, at most what a semaphore holds).
    #[must_use]
    pub fn new(places: usize) -> Self {
        let places = places.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        Self(Arc::new(tokio::sync::Semaphore::new(places)))
    }

    /// Waits for a place; the write holds the permit until it ends. `None` only if the gate
    /// was closed, which nothing does: the write then goes ahead unbounded.
    pub(crate) async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.0.acquire().await.ok()
    }
}

/// What every execution of a run holds, whatever its kind: what it runs with, the claimed run,
/// its control, the work not taken yet, its totals and the days (or months) that failed.
pub(crate) struct RunCore<W> {
    /// What it runs with.
    pub(crate) engine: Engine,
    /// The claimed run.
    pub(crate) ctx: RunContext,
    /// Why it stops, its halt signal, its first token, its requests.
    pub(crate) control: Arc<RunControl>,
    /// The work not taken yet.
    pub(crate) queue: Mutex<VecDeque<W>>,
    /// Tasks working on an item taken from the queue (changed with the queue locked): while
    /// one is, more work may come (a split span's halves, days taken over), so idle tasks wait.
    busy: AtomicUsize,
    /// Wakes the tasks waiting for work: work was queued, or a task finished its item.
    woken: tokio::sync::Notify,
    /// The run's totals.
    pub(crate) totals: Mutex<RunTotals>,
    /// The days (or months) whose window failed.
    pub(crate) failed: Mutex<Vec<jiff::civil::Date>>,
}

impl<W> RunCore<W> {
    /// The core of an execution of `ctx` about to start, with `queue` to work through.
    pub(crate) fn new(
        engine: &Engine,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
        queue: VecDeque<W>,
    ) -> Self {
        Self {
            engine: engine.clone(),
            control: Arc::new(RunControl::new(
                ctx.execution.run_id,
                events,
                &engine.client,
                &engine.interrupt,
            )),
            totals: Mutex::new(RunTotals {
                windows: ctx.windows.len() as u64,
                ..RunTotals::default()
            }),
            ctx,
            queue: Mutex::new(queue),
            busy: AtomicUsize::new(0),
            woken: tokio::sync::Notify::new(),
            failed: Mutex::new(Vec::new()),
        }
    }

    /// The core of an execution of `ctx` whose queue is its windows (months), oldest first.
    pub(crate) fn in_order(engine: &Engine, ctx: RunContext, events: Arc<dyn RunEvents>) -> Self
    where
        W: From<Window>,
    {
        let mut windows = ctx.windows.clone();
        windows.sort_unstable();
        let queue = windows.into_iter().map(W::from).collect();
        Self::new(engine, ctx, events, queue)
    }

    /// Changes the queue with `f` (queues work) and wakes the tasks waiting for some.
    pub(crate) fn requeue(&self, f: impl FnOnce(&mut VecDeque<W>)) {
        f(&mut lock(&self.queue));
        self.woken.notify_waiters();
    }

    /// Tells the run's event sink.
    pub(crate) fn emit(&self, event: &RunEvent<'_>) {
        self.control.emit(event);
    }

    /// Adds to the run's totals with `f`; returns them after.
    pub(crate) fn add(&self, f: impl FnOnce(&mut RunTotals)) -> RunTotals {
        let mut totals = lock(&self.totals);
        f(&mut totals);
        *totals
    }

    /// Counts the window of `day` failed.
    pub(crate) fn window_failed(&self, day: jiff::civil::Date) {
        self.add(|t| t.failed_windows += 1);
        lock(&self.failed).push(day);
    }

    /// Records this run's own record of `window` failed with `message` though this execution
    /// does not hold the window (its claim failed, or other runs kept taking it over), so that
    /// the record agrees with the outcome, which counts it failed; a failure to record is a
    /// warning.
    pub(crate) async fn give_up(&self, window: Window, message: &str) {
        let pool = &self.engine.pool;
        if let Err(e) =
            crate::store::runs::give_up_run_window(pool, &self.ctx.execution, &window, message)
                .await
        {
            let warning = format!("Cannot record the end of window {}: {e}", window.day);
            self.emit(&RunEvent::Warning { message: &warning });
        }
    }

    /// `window` in this execution's hands, worked on since `started`.
    pub(crate) fn held(&self, window: Window, started: Instant) -> HeldWindow<'_> {
        HeldWindow {
            engine: &self.engine,
            ctx: &self.ctx,
            control: &self.control,
            window,
            started,
        }
    }
}

/// One execution of a run of some kind, as [`execute`] drives it: its core, what one item of
/// its queue does, and how its end is told.
pub(crate) trait RunScope: Send + Sync + 'static {
    /// One item of the queue: a window, a span of days, a month.
    type Work: Send;
    /// What a task is called in a warning (`window`, `month`).
    const TASK: &'static str;
    /// The error text of a run that ended with `n` failed windows.
    fn failed_text(n: usize) -> String;
    /// What every execution holds.
    fn core(&self) -> &RunCore<Self::Work>;
    /// Done once the first token came, before any task starts; `false` stops the run.
    fn prepare(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }
    /// Does one item of work.
    fn work(&self, item: Self::Work) -> impl Future<Output = ()> + Send;
    /// Done once every task ended (and only when `prepare` went on).
    fn after(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Where an incremental sync's cursor moves when the run ends, if it does.
    fn cursor(&self) -> Option<CursorMove> {
        None
    }
    /// Tells how the execution ended: the summary block and the exporter line by default.
    fn tell_end(&self, outcome: &RunOutcome, requests: &RequestTotals) {
        let core = self.core();
        super::emit_summary(&core.control, &core.ctx, outcome, requests);
    }
}

/// Executes a run to its end: announces it, takes its first token under its heartbeat, then
/// drains its queue with as many tasks as the engine's concurrency allows (at most one per
/// window), stores how it ended ([`RunControl::end_run`]) and tells it. The one execution of
/// loads, verifications and reports.
///
/// # Errors
/// Only when the run cannot be recorded at all.
pub(crate) async fn execute<S: RunScope>(scope: Arc<S>) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let core = scope.core();
    let engine = &core.engine;
    let tasks = engine.concurrency.min(core.ctx.windows.len());
    with_heartbeat(
        &core.control,
        &engine.pool,
        &engine.client,
        &core.ctx,
        engine.lease,
        || async {
            if !scope.prepare().await {
                return;
            }
            run_tasks(&core.control, tasks, S::TASK, || {
                let scope = scope.clone();
                async move {
                    let core = scope.core();
                    drain(core, |item| scope.work(item)).await;
                }
            })
            .await;
            scope.after().await;
        },
    )
    .await;
    let end = EndOf {
        pool: &engine.pool,
        exec: &core.ctx.execution,
        client: &engine.client,
        totals: *lock(&core.totals),
        failed: lock(&core.failed).clone(),
        started,
        cursor: scope.cursor(),
    };
    let (outcome, requests) = core.control.end_run(end, S::failed_text).await?;
    scope.tell_end(&outcome, &requests);
    Ok(outcome)
}

/// The shared state of one execution of a run.
pub(crate) struct RunControl {
    run_id: Uuid,
    events: Arc<dyn RunEvents>,
    stop: Mutex<Option<Stop>>,
    /// Raised by the operator (Ctrl-C) or a shutting-down worker: the parent of [`Self::halt`].
    interrupt: CancellationToken,
    /// Raised when the run must stop (fatal error, interrupt, cancel, lost claim): a child of
    /// the interrupt, so an interrupt halts every task of the run at once.
    pub(crate) halt: CancellationToken,
    token_ok: AtomicBool,
    stats_before: qbo::ClientStats,
}

/// How an execution ends, from why it stopped and how many of its windows failed.
pub(crate) enum Ending {
    /// This execution lost its claim: nothing is stored.
    Lost,
    /// The run's status to store, and the error that stopped it if one did.
    Stored(RunStatus, Option<String>),
}

/// What [`RunControl::end_run`] stores.
pub(crate) struct EndOf<'a> {
    /// The database.
    pub(crate) pool: &'a PgPool,
    /// The execution that ends.
    pub(crate) exec: &'a Execution,
    /// The client whose requests the run spent.
    pub(crate) client: &'a qbo::QboClient,
    /// The run's totals.
    pub(crate) totals: RunTotals,
    /// The days (or months) whose window failed.
    pub(crate) failed: Vec<jiff::civil::Date>,
    /// When the execution started.
    pub(crate) started: std::time::Instant,
    /// Where an incremental sync's cursor moves, if it does.
    pub(crate) cursor: Option<CursorMove>,
}

/// Announces the run of `ctx` (its `Run … started` line), then, with its heartbeat running
/// (the first token refresh may wait on the company's token lock for longer than a lease), takes
/// its first access token and, only if it came (a refused token stops the run before any
/// window), does `work`.
async fn with_heartbeat<Fut>(
    control: &Arc<RunControl>,
    pool: &PgPool,
    client: &qbo::QboClient,
    ctx: &RunContext,
    lease: Duration,
    work: impl FnOnce() -> Fut,
) where
    Fut: Future<Output = ()>,
{
    control.emit(&RunEvent::Started {
        run_id: ctx.execution.run_id,
        pipeline: ctx.pipeline,
        range: ctx.range,
        windows: ctx.windows.len(),
        realm_id: &ctx.realm_id,
    });
    let heartbeat = start_heartbeat(control.clone(), pool.clone(), ctx.execution, lease);
    if control.first_token(client).await {
        work().await;
    }
    drop(heartbeat);
}

/// Takes work from `core`'s queue, one item at a time, until the run halts or the queue is
/// empty with no task working on an item (whose work could queue more: then this task waits for
/// it, so that the halves of a split span are loaded at once, not one after another).
async fn drain<W, F, Fut>(core: &RunCore<W>, mut work: F)
where
    F: FnMut(W) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if core.control.halted() {
            return;
        }
        let woken = core.woken.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let next = {
            let mut queue = lock(&core.queue);
            let next = queue.pop_front();
            if next.is_some() {
                core.busy.fetch_add(1, Ordering::SeqCst);
            } else if core.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            next
        };
        let Some(item) = next else {
            tokio::select! {
                () = woken => {}
                _ = core.control.until_halted() => return,
            }
            continue;
        };
        let _busy = Busy(core);
        work(item).await;
    }
}

/// A task working on an item of the queue; when it is done (or panicked) the tasks waiting for
/// work look again.
struct Busy<'a, W>(&'a RunCore<W>);

impl<W> Drop for Busy<'_, W> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.woken.notify_waiters();
    }
}

impl RunControl {
    /// The control of a run about to start, counting requests from `client`'s figures now.
    pub(crate) fn new(
        run_id: Uuid,
        events: Arc<dyn RunEvents>,
        client: &qbo::QboClient,
        interrupt: &CancellationToken,
    ) -> Self {
        Self {
            run_id,
            events,
            stop: Mutex::new(None),
            interrupt: interrupt.clone(),
            halt: interrupt.child_token(),
            token_ok: AtomicBool::new(false),
            stats_before: client.stats(),
        }
    }

    /// Tells the run's event sink.
    pub(crate) fn emit(&self, event: &RunEvent<'_>) {
        self.events.emit(event);
    }

    /// Records why the run stops (the first reason wins) and raises [`Self::halt`]; `true`
    /// when this was the first reason.
    pub(crate) fn stop_with(&self, stop: Stop) -> bool {
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

    /// Whether the run stopped for any reason.
    pub(crate) fn stopped(&self) -> bool {
        lock(&self.stop).is_some()
    }

    /// Whether the run was interrupted; an interrupt becomes the run's stop (unless another
    /// reason came first).
    pub(crate) fn interrupted(&self) -> bool {
        let interrupted = self.interrupt.is_cancelled();
        if interrupted {
            self.stop_with(Stop::Interrupted);
        }
        interrupted
    }

    /// Whether a task should stop taking work.
    pub(crate) fn halted(&self) -> bool {
        self.interrupted();
        self.halt.is_cancelled()
    }

    /// Resolves when the run must stop; `true` when that is an interrupt (then the run's stop).
    pub(crate) async fn until_halted(&self) -> bool {
        self.halt.cancelled().await;
        self.interrupted()
    }

    /// Whether the run's first access token was obtained.
    pub(crate) fn token_ok(&self) -> bool {
        self.token_ok.load(Ordering::SeqCst)
    }

    /// Obtains the run's first access token (its only refresh before its work starts, so a
    /// refused token is never sent twice); `false`, with the run stopped, when it failed.
    pub(crate) async fn first_token(&self, client: &qbo::QboClient) -> bool {
        match client.ensure_access_token().await {
            Ok(()) => {
                self.token_ok.store(true, Ordering::SeqCst);
                true
            }
            Err(e) => {
                self.token_failure(&e);
                false
            }
        }
    }

    /// Stops the run on a failed token refresh, telling the operator which kind it was.
    pub(crate) fn token_failure(&self, e: &qbo::QboError) {
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
            run_id: self.run_id,
            kind,
            message: &message,
        });
    }

    /// The run's status from why it stopped and `failed` windows; a lost claim is told here.
    pub(crate) fn ending(&self, failed: u64) -> Ending {
        let stop = lock(&self.stop).clone();
        match stop {
            Some(Stop::Fatal(message)) => Ending::Stored(RunStatus::Failed, Some(message)),
            Some(Stop::Interrupted) => Ending::Stored(RunStatus::Interrupted, None),
            Some(Stop::Cancelled) => Ending::Stored(RunStatus::Cancelled, None),
            Some(Stop::Lost) => {
                self.emit(&RunEvent::Lost {
                    run_id: self.run_id,
                });
                Ending::Lost
            }
            None if failed > 0 => Ending::Stored(RunStatus::Failed, None),
            None => Ending::Stored(RunStatus::Succeeded, None),
        }
    }

    /// The requests `client` spent since the run started.
    pub(crate) fn requests(&self, client: &qbo::QboClient) -> RequestTotals {
        let stats = client.stats();
        let before = &self.stats_before;
        RequestTotals {
            requests: stats.requests.saturating_sub(before.requests),
            retries: stats.retries.saturating_sub(before.retries),
            throttled: stats.throttled.saturating_sub(before.throttled),
            refreshes: stats.refreshes.saturating_sub(before.refreshes),
        }
    }

    /// Stores how this execution ended, from why it stopped and its totals: the run's status,
    /// totals, requests and error text (the stopping error, else `failed_text` of the failed
    /// windows), fenced by its execution, with an incremental sync's cursor moved in the same
    /// transaction. Returns the outcome and the requests spent. The one end of loads,
    /// verifications and reports.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn end_run(
        &self,
        end: EndOf<'_>,
        failed_text: impl FnOnce(usize) -> String,
    ) -> Result<(RunOutcome, RequestTotals), sqlx::Error> {
        let (status, fatal) = match self.ending(end.totals.failed_windows) {
            Ending::Lost => (None, None),
            Ending::Stored(status, fatal) => (Some(status), fatal),
        };
        let requests = self.requests(end.client);
        let stored = match status {
            None => None,
            Some(status) => {
                let failed = end.failed.len();
                let error_text = fatal
                    .clone()
                    .or_else(|| (failed > 0).then(|| failed_text(failed)));
                let run_end = runs::RunEnd {
                    status,
                    totals: end.totals,
                    requests,
                    error: error_text.as_deref(),
                };
                let stored = runs::finish_run_moving_cursor(
                    end.pool,
                    end.exec,
                    &run_end,
                    end.cursor.as_ref(),
                )
                .await?;
                if stored.is_none() {
                    self.lost();
                }
                stored
            }
        };
        let mut failed_days = end.failed;
        failed_days.sort_unstable();
        let outcome = RunOutcome {
            run_id: self.run_id,
            status: stored,
            totals: end.totals,
            failed_days,
            duration: end.started.elapsed(),
            fatal: if status.is_some() { fatal } else { None },
            token_ok: self.token_ok(),
        };
        Ok((outcome, requests))
    }

    /// Tells that the run was stored by nobody: this execution lost its claim at the end.
    pub(crate) fn lost(&self) {
        self.emit(&RunEvent::Lost {
            run_id: self.run_id,
        });
    }
}

/// Runs `tasks` copies of what `task` makes and waits for them all; a task that panicked is
/// told as a warning naming `what` (`window`, `month`).
async fn run_tasks<F, Fut>(control: &RunControl, tasks: usize, what: &str, task: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks.max(1) {
        set.spawn(task());
    }
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            let message = format!("A {what} worker stopped unexpectedly: {e}");
            control.emit(&RunEvent::Warning { message: &message });
        }
    }
}

/// The heartbeat task of an execution; it stops when this is dropped.
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts renewing the execution's leases; a cancel request or a lost claim stops the run.
fn start_heartbeat(
    control: Arc<RunControl>,
    pool: PgPool,
    exec: Execution,
    lease: Duration,
) -> Heartbeat {
    Heartbeat(tokio::spawn(async move {
        keep_alive(&pool, &exec, lease, |beat| match beat {
            Beat::Cancelled => {
                control.stop_with(Stop::Cancelled);
            }
            Beat::Lost => {
                control.stop_with(Stop::Lost);
            }
            Beat::Failed(message) => control.emit(&RunEvent::Warning { message }),
        })
        .await;
    }))
}

/// What a run's heartbeat learned.
pub(crate) enum Beat<'a> {
    /// A cancel was requested (through the API or the UI).
    Cancelled,
    /// This execution no longer holds its run: the heartbeat stops.
    Lost,
    /// The beat could not be recorded (it is tried again next time).
    Failed(&'a str),
}

/// Renews an execution's leases (its run's, its windows' and its worker's) every beat until its
/// claim is lost, telling `on` what happens.
pub(crate) async fn keep_alive(
    pool: &PgPool,
    exec: &Execution,
    lease: Duration,
    on: impl Fn(Beat<'_>),
) {
    loop {
        tokio::time::sleep(runs::HEARTBEAT_EVERY.min(lease / 3)).await;
        let _ = workers::heartbeat(pool, exec.worker_id).await;
        match runs::heartbeat(pool, exec, lease).await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => on(Beat::Cancelled),
            Ok(None) => {
                on(Beat::Lost);
                return;
            }
            Err(e) => on(Beat::Failed(&format!("Heartbeat failed: {e}"))),
        }
    }
}
