//! One window (a day) loaded on its own: claimed (waiting while another run holds it), paged,
//! each page written with the window's progress in one transaction, and ended. Also what every
//! kind of run does with a window it holds ([`HeldWindow`]): claim, write, end, record.

use std::future::Future;
use std::time::{Duration, Instant};

use super::control::{Engine, RunControl};
use super::{RunContext, Scope, Stop};
use crate::pipeline::events::RunEvent;
use crate::pipeline::{Mode, Window};
use crate::store::raw::{PageWrite, UpsertCounts, upsert_page};
use crate::store::runs::{self, Claim, WindowEnd};

/// One window being loaded by one execution.
pub(super) struct WindowTask<'a> {
    pub(super) scope: &'a Scope,
    pub(super) window: Window,
    pub(super) started: Instant,
}

/// How work on a window ended early.
pub(crate) enum Early {
    /// The run stopped (already recorded as unfinished).
    Stopped,
    /// The window failed with this message and transaction id.
    Failed(String, Option<String>),
    /// The window was taken over.
    TakenOver,
}

impl WindowTask<'_> {
    fn held(&self) -> HeldWindow<'_> {
        self.scope.core.held(self.window, self.started)
    }

    pub(super) async fn run(&self) {
        let scope = self.scope;
        scope.emit(&RunEvent::WindowStarted {
            pipeline: scope.core.ctx.pipeline,
            day: self.window.day,
        });
        match self.held().claim().await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                let message = format!("cannot claim the window: {e}");
                self.failed(&message, None).await;
                // Not held, so the failure is recorded on this run's own record of the window,
                // which the outcome counts: a final run leaves no window pending.
                scope.core.give_up(self.window, &message).await;
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

    /// Pages through the window, writing each page. Returns pages fetched, rows, pages written
    /// and the upsert counts.
    async fn load(&self) -> Result<(u64, u64, u64, UpsertCounts), Early> {
        let scope = self.scope;
        let held = self.held();
        let mut pager = scope.core.engine.client.pager(
            scope.core.ctx.pipeline.entity(),
            scope.core.ctx.pipeline.time_field(),
            qbo::TimeWindow {
                start: self.window.start,
                end: self.window.end,
            },
        );
        let (mut written_pages, mut rows, mut counts) = (0_u64, 0_u64, UpsertCounts::default());
        loop {
            let next = held
                .unless_halted(
                    pager.next_page(),
                    "the run stopped before this window finished",
                )
                .await?;
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => return Err(held.request_failed(&e, "").await),
            };
            // The page and the window's progress commit together, or not at all. A stop
            // request never interrupts this: the page in flight commits or rolls back whole.
            match held.write_page(&page).await {
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

    async fn succeeded(&self, pages: u64, rows: u64, written_pages: u64, counts: UpsertCounts) {
        let duration = self.started.elapsed();
        match self.held().end(&WindowEnd::Succeeded).await {
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

    pub(super) async fn failed(&self, message: &str, intuit_tid: Option<&str>) {
        self.scope.core.window_failed(self.window.day);
        self.held().fail(message, intuit_tid).await;
    }

    pub(super) async fn unfinished(&self, reason: &str) {
        self.held().unfinished(reason).await;
    }
}

/// A window (a day, or a month of a verification or a report) in the hands of one execution:
/// what it takes to claim it, write a page to it, end it and record its end. The load's, the
/// verifier's and the report reader's tasks each make one of their window.
pub(crate) struct HeldWindow<'a> {
    /// What the run executes with.
    pub(crate) engine: &'a Engine,
    /// The claimed run.
    pub(crate) ctx: &'a RunContext,
    /// The run's control.
    pub(crate) control: &'a RunControl,
    /// The window.
    pub(crate) window: Window,
    /// When work on it started.
    pub(crate) started: Instant,
}

impl HeldWindow<'_> {
    /// The window's claim for this execution.
    pub(crate) fn claim_of(&self) -> WindowClaim<'_> {
        WindowClaim {
            pool: &self.engine.pool,
            exec: &self.ctx.execution,
            pipeline: self.ctx.pipeline,
            realm_id: &self.ctx.realm_id,
            window: &self.window,
            lease: self.engine.lease,
            writes: &self.engine.writes,
        }
    }

    /// Claims the window as [`claim_for_run`] does: `Some(waited for another run)` once
    /// claimed, `None` when the run stopped.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn claim(&self) -> Result<Option<bool>, sqlx::Error> {
        claim_for_run(&self.claim_of(), self.control).await
    }

    /// Writes one page of the window with its progress ([`write_held_page`]).
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn write_page(
        &self,
        page: &qbo::Page,
    ) -> Result<Option<UpsertCounts>, Box<dyn std::error::Error + Send + Sync>> {
        write_held_page(&self.claim_of(), page).await
    }

    /// `window 2026-01-05`, or `month 2026-01` for a verification or a report.
    pub(crate) fn label(&self) -> String {
        match self.ctx.pipeline.mode() {
            Mode::Verify | Mode::Report => format!("month {}", self.window.day.strftime("%Y-%m")),
            Mode::Backfill | Mode::Incremental => format!("window {}", self.window.day),
        }
    }

    /// Ends the window as `end`: in `ops.windows` and in the run's own record, fenced by its
    /// execution. `false` when another execution took the window over.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn end(&self, end: &WindowEnd<'_>) -> Result<bool, sqlx::Error> {
        runs::end_window(
            &self.engine.pool,
            &self.ctx.execution,
            self.ctx.pipeline,
            &self.ctx.realm_id,
            &self.window,
            end,
            self.started.elapsed(),
        )
        .await
    }

    /// Ends the window as [`Self::end`] does; a failure to record is told as a warning naming
    /// the window, and the lease then expires so the window is claimable again.
    pub(crate) async fn record(&self, end: &WindowEnd<'_>) {
        if let Err(e) = self.end(end).await {
            self.warn_unrecorded(&e);
        }
    }

    /// Tells that the window's end could not be recorded.
    pub(crate) fn warn_unrecorded(&self, error: &sqlx::Error) {
        let message = format!("Cannot record the end of {}: {error}", self.label());
        self.control.emit(&RunEvent::Warning { message: &message });
    }

    /// Gives the window back unfinished, for `reason`.
    pub(crate) async fn unfinished(&self, reason: &str) {
        self.record(&WindowEnd::Unfinished { reason }).await;
    }

    /// Records the window failed with `message` and tells the run's events
    /// (`Window failed | …`).
    pub(crate) async fn fail(&self, message: &str, intuit_tid: Option<&str>) {
        let end = WindowEnd::Failed {
            error: message,
            intuit_tid,
        };
        self.record(&end).await;
        self.control.emit(&RunEvent::WindowFailed {
            day: self.window.day,
            error: message,
            intuit_tid,
        });
    }

    /// `work`, unless the run halts first: then the window is given back unfinished (`stopped`
    /// naming why, when the run stopped for another reason than an interrupt) and the answer is
    /// [`Early::Stopped`].
    pub(crate) async fn unless_halted<T>(
        &self,
        work: impl Future<Output = T>,
        stopped: &str,
    ) -> Result<T, Early> {
        tokio::select! {
            r = work => Ok(r),
            interrupted = self.control.until_halted() => {
                self.unfinished(if interrupted { "interrupted by the operator" } else { stopped })
                    .await;
                Err(Early::Stopped)
            }
        }
    }

    /// What a failed request means for the window: Intuit refusing the company's tokens stops
    /// the run (the window is given back unfinished); anything else fails the window with
    /// `context` and Intuit's transaction id.
    pub(crate) async fn request_failed(&self, e: &qbo::QboError, context: &str) -> Early {
        if e.is_terminal_auth() {
            self.control.token_failure(e);
            self.unfinished("the run stopped: token refresh failed")
                .await;
            return Early::Stopped;
        }
        Early::Failed(format!("{context}{e}"), e.intuit_tid().map(str::to_owned))
    }
}

/// One window to claim for an execution.
pub(crate) struct WindowClaim<'a> {
    /// The database.
    pub(crate) pool: &'a sqlx::PgPool,
    /// The claiming execution.
    pub(crate) exec: &'a crate::store::runs::Execution,
    /// The window's pipeline.
    pub(crate) pipeline: crate::pipeline::Pipeline,
    /// The company.
    pub(crate) realm_id: &'a str,
    /// The window.
    pub(crate) window: &'a Window,
    /// The claim's lease.
    pub(crate) lease: Duration,
    /// The process's page writes.
    pub(crate) writes: &'a super::WriteGate,
}

/// How waiting for a window's claim ended.
pub(crate) enum ClaimWait {
    /// This execution holds the window; `waited` when another run held it first.
    Claimed {
        /// Another run held the window first.
        waited: bool,
    },
    /// This execution no longer holds its run.
    Lost,
    /// The operator (or a stopping worker) interrupted the run.
    Interrupted,
    /// The run stopped for another reason meanwhile.
    Stopped,
}

/// Claims a window, waiting (every half second) while another live run holds it; `on_wait` is
/// told the holder once. The one claim loop of loads and verifications.
///
/// # Errors
/// Database errors.
pub(crate) async fn claim_when_free(
    claim: &WindowClaim<'_>,
    control: &RunControl,
    on_wait: impl Fn(uuid::Uuid),
) -> Result<ClaimWait, sqlx::Error> {
    let mut waited = false;
    loop {
        let got = runs::claim_window(
            claim.pool,
            claim.exec,
            claim.pipeline,
            claim.realm_id,
            claim.window,
            claim.lease,
        )
        .await?;
        match got {
            Claim::Claimed => return Ok(ClaimWait::Claimed { waited }),
            Claim::Lost => return Ok(ClaimWait::Lost),
            Claim::Busy { holder } => {
                if !waited {
                    on_wait(holder);
                    waited = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            interrupted = control.until_halted() => return Ok(if interrupted {
                ClaimWait::Interrupted
            } else {
                ClaimWait::Stopped
            }),
        }
    }
}

/// Claims a window for its run as [`claim_when_free`] does, telling the run's events that it
/// waits, and stopping the run when its execution lost the run or was interrupted meanwhile:
/// `Some(waited for another run)` once claimed, `None` when the run stopped. The one claim of
/// loads, verifications and reports.
///
/// # Errors
/// Database errors.
pub(crate) async fn claim_for_run(
    claim: &WindowClaim<'_>,
    control: &RunControl,
) -> Result<Option<bool>, sqlx::Error> {
    let day = claim.window.day;
    let waited = claim_when_free(claim, control, |holder| {
        control.emit(&RunEvent::WindowWaiting { day, holder });
    })
    .await?;
    Ok(match waited {
        ClaimWait::Claimed { waited } => Some(waited),
        ClaimWait::Lost => {
            control.stop_with(Stop::Lost);
            None
        }
        ClaimWait::Interrupted => {
            control.stop_with(Stop::Interrupted);
            None
        }
        ClaimWait::Stopped => None,
    })
}

/// Writes one page of a window `at` holds, with the window's progress, in one transaction: the
/// one page write of loads and verifications. `None` (nothing written) when the execution no
/// longer holds the window.
///
/// # Errors
/// Database errors.
pub(crate) async fn write_held_page(
    at: &WindowClaim<'_>,
    page: &qbo::Page,
) -> Result<Option<UpsertCounts>, Box<dyn std::error::Error + Send + Sync>> {
    let _place = at.writes.enter().await;
    let mut tx = at.pool.begin().await?;
    let counts = upsert_page(
        &mut tx,
        &PageWrite {
            realm_id: at.realm_id,
            table: at.pipeline.table(),
            window_start: at.window.start,
            window_end: at.window.end,
            page,
            run_id: Some(at.exec.run_id),
        },
    )
    .await?;
    let held = runs::record_page(
        &mut tx,
        at.exec,
        at.pipeline,
        at.realm_id,
        at.window,
        page.rows.len() as u64,
        counts,
    )
    .await?;
    Ok(commit_if_held(tx, held, counts).await?)
}

/// Ends a page write's transaction: committed when the execution still holds the page's
/// windows (`held`), answering `Some(counts)`; otherwise rolled back, nothing written, `None`.
///
/// # Errors
/// Database errors.
pub(crate) async fn commit_if_held<T>(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    held: bool,
    counts: T,
) -> Result<Option<T>, sqlx::Error> {
    if !held {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(counts))
}
