//! Running one pipeline over a set of windows: several windows at once (the client keeps them
//! inside the company's API budget), each paged in a stable order with every page written in
//! one transaction together with the window's progress; failed windows are recorded and the
//! rest go on; `invalid_grant` stops everything at once; Ctrl-C stops gracefully.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::report::{Progress, RequestCounters, Summary, summary_lines};
use super::runs::{self, Claim, RunStatus, RunTotals, WindowEnd};
use super::{DateRange, Pipeline, Window};
use crate::store::raw::{PageWrite, UpsertCounts, upsert_page};

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

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The range as the operator gave it.
    pub range: DateRange,
    /// The windows to load (all of the range, or a retry's subset).
    pub windows: Vec<Window>,
    /// The run this one retries.
    pub retry_of: Option<Uuid>,
    /// What started it (`cli`, `retry`, `demo`, …).
    pub trigger: &'static str,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run.
    pub run_id: Uuid,
    /// Its final status.
    pub status: RunStatus,
    /// Totals.
    pub totals: RunTotals,
    /// Days whose window failed.
    pub failed_days: Vec<Date>,
    /// Wall time.
    pub duration: Duration,
    /// The error that stopped the whole run, if any.
    pub fatal: Option<String>,
}

impl RunOutcome {
    /// The process exit status for this outcome: 0 succeeded, 1 failed, 130 interrupted.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self.status {
            RunStatus::Succeeded => 0,
            RunStatus::Interrupted => 130,
            RunStatus::Failed | RunStatus::Running => 1,
        }
    }
}

/// Why a run stopped before loading every window.
#[derive(Debug, Clone)]
enum Stop {
    /// A fatal error (invalid_grant, …): the run failed.
    Fatal(String),
    /// The operator interrupted it.
    Interrupted,
}

/// The run's shared, mutable state.
struct Shared {
    queue: Mutex<VecDeque<Window>>,
    totals: Mutex<RunTotals>,
    failed_days: Mutex<Vec<Date>>,
    stop: Mutex<Option<Stop>>,
    /// Raised by a fatal error inside the run.
    halt: Cancel,
}

impl Shared {
    fn stop_with(&self, stop: Stop) -> bool {
        let mut slot = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = slot.is_none();
        if first {
            *slot = Some(stop);
        }
        self.halt.cancel();
        first
    }

    fn add(&self, f: impl FnOnce(&mut RunTotals)) -> RunTotals {
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut totals);
        *totals
    }
}

/// Runs pipelines for one company.
#[derive(Clone)]
pub struct Runner {
    /// The database.
    pub pool: PgPool,
    /// The company's QuickBooks client.
    pub client: qbo::QboClient,
    /// Windows loaded at once.
    pub concurrency: usize,
    /// Raised by the operator (Ctrl-C).
    pub interrupt: Cancel,
}

/// A failure of the run's own bookkeeping (the database), not of a window.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bookkeeping query failed.
    #[error("cannot record the run in PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// The lines that tell the operator what to do after `invalid_grant`.
#[must_use]
pub fn invalid_grant_advice(run_id: Uuid) -> [String; 2] {
    [
        "The refresh token is no longer valid (expired, rotated elsewhere, or from another environment). Reconnect the app in Intuit's developer portal (Connect to QuickBooks), then store the new refresh token with `qbo-backfill secrets set QBO_REFRESH_TOKEN` (or the UI's secrets page).".to_owned(),
        format!("Then re-run: qbo-backfill retry {run_id}"),
    ]
}

impl Runner {
    /// Runs `plan` to its end and prints the summary.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; window failures are part of the outcome.
    pub async fn execute(&self, plan: RunPlan) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let realm_id = self.client.realm_id().to_owned();
        // Runs whose process died are recorded as interrupted before this one starts, so
        // `runs` and the ops tables never show a dead run (or its windows) as running.
        for dead in runs::reap_dead_runs(&self.pool).await? {
            warn!(
                "Run {dead} stopped without finishing; marked interrupted (finish it with: qbo-backfill retry {dead})"
            );
        }
        let run_id = runs::create_run(
            &self.pool,
            plan.pipeline,
            &realm_id,
            plan.range,
            &plan.windows,
            plan.retry_of,
            plan.trigger,
        )
        .await?;
        info!(
            "Run {run_id} started: {} {}..{} windows={} realm_id={realm_id}",
            plan.pipeline,
            plan.range.fecha_inicio,
            plan.range.fecha_fin,
            plan.windows.len()
        );
        let stats_before = self.client.stats();
        let heartbeat = {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(runs::HEARTBEAT_EVERY).await;
                    if let Err(e) = runs::heartbeat(&pool, run_id).await {
                        warn!("Heartbeat failed: {e}");
                    }
                }
            })
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(plan.windows.iter().copied().collect()),
            totals: Mutex::new(RunTotals {
                windows: plan.windows.len() as u64,
                ..RunTotals::default()
            }),
            failed_days: Mutex::new(Vec::new()),
            stop: Mutex::new(None),
            halt: Cancel::new(),
        });

        // Fail fast on a bad refresh token, before any window starts.
        if let Err(e) = self.client.ensure_access_token().await {
            self.token_failure(&shared, run_id, &e);
        } else {
            let progress = Arc::new(Progress::start(plan.pipeline, plan.windows.len()));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..self.concurrency.min(plan.windows.len()).max(1) {
                let this = self.clone();
                let shared = shared.clone();
                let progress = progress.clone();
                let pipeline = plan.pipeline;
                workers.spawn(async move {
                    this.worker(run_id, pipeline, &shared, &progress).await;
                });
            }
            while let Some(joined) = workers.join_next().await {
                if let Err(e) = joined {
                    error!("A window worker stopped unexpectedly: {e}");
                }
            }
        }
        heartbeat.abort();

        let stop = shared
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let totals = *shared
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut failed_days = shared
            .failed_days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        failed_days.sort_unstable();
        let (status, fatal) = match stop {
            Some(Stop::Fatal(msg)) => (RunStatus::Failed, Some(msg)),
            Some(Stop::Interrupted) => (RunStatus::Interrupted, None),
            None if totals.failed_windows > 0 => (RunStatus::Failed, None),
            None => (RunStatus::Succeeded, None),
        };
        let error_text = fatal.clone().or_else(|| {
            (!failed_days.is_empty()).then(|| format!("{} windows failed", failed_days.len()))
        });
        runs::finish_run(&self.pool, run_id, status, &totals, error_text.as_deref()).await?;
        let stats = self.client.stats();
        let outcome = RunOutcome {
            run_id,
            status,
            totals,
            failed_days,
            duration: started.elapsed(),
            fatal,
        };
        for line in summary_lines(&Summary {
            pipeline: plan.pipeline,
            range: plan.range,
            run_id,
            status,
            totals,
            failed_days: &outcome.failed_days,
            duration: outcome.duration,
            requests: RequestCounters {
                requests: stats.requests.saturating_sub(stats_before.requests),
                retries: stats.retries.saturating_sub(stats_before.retries),
                throttled: stats.throttled.saturating_sub(stats_before.throttled),
            },
        }) {
            info!("{line}");
        }
        match status {
            RunStatus::Failed if !outcome.failed_days.is_empty() => {
                let days: Vec<String> = outcome
                    .failed_days
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                error!(
                    "Run failed: {} of {} windows failed ({}). Retry only those with: qbo-backfill retry {run_id}",
                    outcome.failed_days.len(),
                    totals.windows,
                    days.join(", ")
                );
            }
            RunStatus::Interrupted => {
                warn!("Run interrupted. Finish it with: qbo-backfill retry {run_id}");
            }
            _ => {}
        }
        Ok(outcome)
    }

    fn token_failure(&self, shared: &Shared, run_id: Uuid, e: &qbo::QboError) {
        let first = shared.stop_with(Stop::Fatal(format!("Token refresh failed: {e}")));
        if !first {
            return;
        }
        if e.is_invalid_grant() {
            error!("Token refresh failed: invalid_grant");
            for line in invalid_grant_advice(run_id) {
                error!("{line}");
            }
        } else if e.is_terminal_auth() {
            error!("Token refresh failed: invalid_client");
            error!(
                "Intuit rejected the app's credentials: check QBO_CLIENT_ID and QBO_CLIENT_SECRET (and that QBO_ENVIRONMENT matches the keys), then re-run: qbo-backfill retry {run_id}"
            );
        } else {
            error!("Token refresh failed: {e}");
            error!("Then re-run: qbo-backfill retry {run_id}");
        }
    }

    async fn worker(&self, run_id: Uuid, pipeline: Pipeline, shared: &Shared, progress: &Progress) {
        loop {
            if self.interrupt.is_cancelled() {
                shared.stop_with(Stop::Interrupted);
            }
            if shared.halt.is_cancelled() {
                return;
            }
            let next = shared
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop_front();
            let Some(window) = next else { return };
            self.load_window(run_id, pipeline, &window, shared, progress)
                .await;
            progress.window_done();
        }
    }

    /// Waits until the window can be claimed by this run. Returns `false` when the run stopped.
    async fn claim(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        shared: &Shared,
    ) -> Result<bool, sqlx::Error> {
        let realm_id = self.client.realm_id();
        let mut told = false;
        loop {
            match runs::claim_window(&self.pool, run_id, pipeline, realm_id, window).await? {
                Claim::Claimed => return Ok(true),
                Claim::Busy { holder } => {
                    if !told {
                        info!(
                            "Window {} is being loaded by run {holder}; waiting for it to finish",
                            window.day
                        );
                        told = true;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = shared.halt.cancelled() => return Ok(false),
                () = self.interrupt.cancelled() => return Ok(false),
            }
        }
    }

    async fn load_window(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        shared: &Shared,
        progress: &Progress,
    ) {
        let realm_id = self.client.realm_id();
        let day = window.day;
        let next_day = window.day.tomorrow().unwrap_or(window.day);
        info!("Processing {} window {day} → {next_day}", pipeline.label());
        let started = Instant::now();
        match self.claim(run_id, pipeline, window, shared).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.window_failed(
                    run_id,
                    pipeline,
                    window,
                    shared,
                    &format!("cannot claim the window: {e}"),
                    None,
                    started,
                )
                .await;
                return;
            }
        }
        let mut pager = self.client.window_pager(
            pipeline.entity(),
            qbo::TimeWindow {
                start: window.start,
                end: window.end,
            },
        );
        let mut written_pages: u64 = 0;
        let mut rows: u64 = 0;
        let mut counts = UpsertCounts::default();
        loop {
            let next = tokio::select! {
                r = pager.next_page() => r,
                () = shared.halt.cancelled() => {
                    self.window_unfinished(run_id, pipeline, window, "the run stopped before this window finished", started).await;
                    return;
                }
                () = self.interrupt.cancelled() => {
                    shared.stop_with(Stop::Interrupted);
                    self.window_unfinished(run_id, pipeline, window, "interrupted by the operator", started).await;
                    return;
                }
            };
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) if e.is_terminal_auth() => {
                    self.token_failure(shared, run_id, &e);
                    self.window_unfinished(
                        run_id,
                        pipeline,
                        window,
                        "the run stopped: token refresh failed",
                        started,
                    )
                    .await;
                    return;
                }
                Err(e) => {
                    let message = e.to_string();
                    self.window_failed(
                        run_id,
                        pipeline,
                        window,
                        shared,
                        &message,
                        e.intuit_tid(),
                        started,
                    )
                    .await;
                    return;
                }
            };
            // The page and the window's progress commit together, or not at all. A stop
            // request never interrupts this: the page in flight commits or rolls back whole.
            match self.write_page(run_id, pipeline, window, &page).await {
                Ok(Some(page_counts)) => {
                    written_pages += 1;
                    rows += page.rows.len() as u64;
                    counts += page_counts;
                    let totals = shared.add(|t| {
                        t.pages += 1;
                        t.rows += page.rows.len() as u64;
                        t.counts += page_counts;
                    });
                    progress.rows(totals.rows);
                }
                Ok(None) => {
                    warn!("Window {day} was taken over by another run; leaving it to that run");
                    return;
                }
                Err(e) => {
                    let message = format!("cannot write page {} to PostgreSQL: {e}", page.number);
                    self.window_failed(
                        run_id,
                        pipeline,
                        window,
                        shared,
                        &message,
                        page.intuit_tid.as_deref(),
                        started,
                    )
                    .await;
                    return;
                }
            }
        }
        let duration = started.elapsed();
        if let Err(e) = runs::end_window(
            &self.pool,
            run_id,
            pipeline,
            realm_id,
            window,
            &WindowEnd::Succeeded,
            duration,
        )
        .await
        {
            self.window_failed(
                run_id,
                pipeline,
                window,
                shared,
                &format!("cannot record the window: {e}"),
                None,
                started,
            )
            .await;
            return;
        }
        // `pages` counts query pages fetched, as the runbook's lines do (an empty window is
        // `pages=1 rows=0`); `written` counts pages that carried rows.
        info!(
            "Window completed | pages={} rows={rows} duration_s={:.2} window={day} written_pages={written_pages} inserted={} updated={} unchanged={}",
            pager.pages(),
            duration.as_secs_f64(),
            counts.inserted,
            counts.updated,
            counts.unchanged
        );
    }

    async fn write_page(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        page: &qbo::Page,
    ) -> Result<Option<UpsertCounts>, Box<dyn std::error::Error + Send + Sync>> {
        let realm_id = self.client.realm_id();
        let mut tx = self.pool.begin().await?;
        let counts = upsert_page(
            &mut tx,
            &PageWrite {
                realm_id,
                table: pipeline.table(),
                window_start: window.start,
                window_end: window.end,
                page,
            },
        )
        .await?;
        let held = runs::record_page(
            &mut tx,
            run_id,
            pipeline,
            realm_id,
            window,
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

    #[allow(clippy::too_many_arguments)]
    async fn window_failed(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        shared: &Shared,
        message: &str,
        intuit_tid: Option<&str>,
        started: Instant,
    ) {
        shared.add(|t| t.failed_windows += 1);
        shared
            .failed_days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(window.day);
        let end = WindowEnd::Failed {
            error: message,
            intuit_tid,
        };
        self.record_window_end(run_id, pipeline, window, &end, started)
            .await;
        match intuit_tid {
            Some(tid) if !message.contains(tid) => {
                error!(
                    "Window failed | window={} error={message}; intuit_tid={tid}",
                    window.day
                );
            }
            _ => error!("Window failed | window={} error={message}", window.day),
        }
    }

    async fn window_unfinished(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        reason: &str,
        started: Instant,
    ) {
        self.record_window_end(
            run_id,
            pipeline,
            window,
            &WindowEnd::Unfinished { reason },
            started,
        )
        .await;
    }

    /// Records how a window ended; a failure to record is logged (the lease then expires and
    /// the window is claimable again).
    async fn record_window_end(
        &self,
        run_id: Uuid,
        pipeline: Pipeline,
        window: &Window,
        end: &WindowEnd<'_>,
        started: Instant,
    ) {
        let realm_id = self.client.realm_id();
        let elapsed = started.elapsed();
        if let Err(e) =
            runs::end_window(&self.pool, run_id, pipeline, realm_id, window, end, elapsed).await
        {
            error!("Cannot record the end of window {}: {e}", window.day);
        }
    }
}
