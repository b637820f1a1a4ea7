//! What every execution of a run shares, loads and verifications alike: why it stopped, the
//! signal that stops its tasks, whether its first access token came, its heartbeat, and the
//! requests it spent. A run's own scope (`Scope` here, the verifier's) holds one
//! [`RunControl`] and adds its work.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use tokio_util::sync::CancellationToken;

use super::{RunOutcome, Stop, lock};
use crate::pipeline::events::{RunEvent, RunEvents, TokenFailure};
use crate::store::runs::workers;
use crate::store::runs::{self, CursorMove, Execution, RequestTotals, RunStatus, RunTotals};

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
/// window), does `work`. The one start of loads, verifications and reports.
pub(crate) async fn with_heartbeat<Fut>(
    control: &Arc<RunControl>,
    pool: &PgPool,
    client: &qbo::QboClient,
    ctx: &super::RunContext,
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

/// Takes work from `queue` until it is empty or the run halts, doing one item at a time.
pub(crate) async fn drain<T, F, Fut>(control: &RunControl, queue: &Mutex<VecDeque<T>>, mut work: F)
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if control.halted() {
            return;
        }
        let next = lock(queue).pop_front();
        let Some(item) = next else { return };
        work(item).await;
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
                let stored = runs::finish_run_moving_cursor(
                    end.pool,
                    end.exec,
                    status,
                    &end.totals,
                    &requests,
                    error_text.as_deref(),
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
pub(crate) async fn run_tasks<F, Fut>(control: &RunControl, tasks: usize, what: &str, task: F)
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
