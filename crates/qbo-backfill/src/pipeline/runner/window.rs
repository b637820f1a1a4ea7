//! One window (a day, or a verification's month) loaded on its own: claimed (waiting while
//! another run holds it), paged, each page written with the window's progress in one
//! transaction, and ended.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::control::RunControl;
use super::{RunContext, Runner, Scope, Stop, lock};
use crate::pipeline::Window;
use crate::pipeline::events::RunEvent;
use crate::store::raw::{PageWrite, UpsertCounts, upsert_page};
use crate::store::runs::{self, Claim, WindowEnd};

/// One window being loaded by one execution.
pub(super) struct WindowTask<'a> {
    pub(super) scope: &'a Scope,
    pub(super) window: Window,
    pub(super) started: Instant,
}

/// How a window's paging ended early.
pub(super) enum Early {
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

    pub(super) async fn run(&self) {
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

    /// This window's claim for this execution.
    fn claim_of(&self) -> WindowClaim<'_> {
        let scope = self.scope;
        WindowClaim {
            pool: &self.runner().pool,
            exec: scope.exec(),
            pipeline: scope.ctx.pipeline,
            realm_id: &scope.ctx.realm_id,
            window: &self.window,
            lease: self.runner().lease,
        }
    }

    /// Waits until the window can be claimed by this run. `false` when the run stopped.
    async fn claim(&self) -> Result<bool, sqlx::Error> {
        Ok(claim_for_run(&self.claim_of(), &self.scope.control)
            .await?
            .is_some())
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
                interrupted = scope.control.until_halted() => {
                    self.unfinished(if interrupted {
                        "interrupted by the operator"
                    } else {
                        "the run stopped before this window finished"
                    })
                    .await;
                    return Err(Early::Stopped);
                }
            };
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) if e.is_terminal_auth() => {
                    scope.control.token_failure(&e);
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
        write_held_page(&self.claim_of(), page).await
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

    pub(super) async fn failed(&self, message: &str, intuit_tid: Option<&str>) {
        let scope = self.scope;
        scope.add(|t| t.failed_windows += 1);
        lock(&scope.failed_days).push(self.window.day);
        let pool = &self.runner().pool;
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

    pub(super) async fn unfinished(&self, reason: &str) {
        self.record(&WindowEnd::Unfinished { reason }).await;
    }

    async fn end(&self, end: &WindowEnd<'_>) -> Result<bool, sqlx::Error> {
        end_window(
            &self.runner().pool,
            &self.scope.ctx,
            &self.window,
            end,
            self.started,
        )
        .await
    }

    async fn record(&self, end: &WindowEnd<'_>) {
        let pool = &self.runner().pool;
        record_end(
            pool,
            &self.scope.ctx,
            &self.window,
            end,
            self.started,
            &self.scope.control,
        )
        .await;
    }
}

/// Records `window` failed with `message` ([`record_end`]) and tells the run's events
/// (`Window failed | …`). The one failure of a window of loads and reports.
pub(crate) async fn record_failure(
    pool: &PgPool,
    ctx: &RunContext,
    window: &Window,
    started: Instant,
    control: &RunControl,
    message: &str,
    intuit_tid: Option<&str>,
) {
    let end = WindowEnd::Failed {
        error: message,
        intuit_tid,
    };
    record_end(pool, ctx, window, &end, started, control).await;
    control.emit(&RunEvent::WindowFailed {
        day: window.day,
        error: message,
        intuit_tid,
    });
}

/// Ends `window` as [`end_window`] does; a failure to record is told as a warning naming the
/// window (`window 2026-01-05`, or `month 2026-01` for a verification or a report), and the
/// lease then expires so the window is claimable again. The one record of every window's end.
pub(crate) async fn record_end(
    pool: &PgPool,
    ctx: &RunContext,
    window: &Window,
    end: &WindowEnd<'_>,
    started: Instant,
    control: &RunControl,
) {
    if let Err(e) = end_window(pool, ctx, window, end, started).await {
        let what = match ctx.pipeline.mode() {
            crate::pipeline::Mode::Verify | crate::pipeline::Mode::Report => {
                format!("month {}", window.day.strftime("%Y-%m"))
            }
            crate::pipeline::Mode::Backfill | crate::pipeline::Mode::Incremental => {
                format!("window {}", window.day)
            }
        };
        warn_unrecorded(control, &what, &e);
    }
}

/// Ends `window` (a day, or a verification's month) of the run in `ctx` as `end`: in
/// `ops.windows` and in the run's own record, fenced by its execution. `false` when another
/// execution took the window over.
///
/// # Errors
/// Database errors.
pub(crate) async fn end_window(
    pool: &PgPool,
    ctx: &RunContext,
    window: &Window,
    end: &WindowEnd<'_>,
    started: Instant,
) -> Result<bool, sqlx::Error> {
    runs::end_window(
        pool,
        &ctx.execution,
        ctx.pipeline,
        &ctx.realm_id,
        window,
        end,
        started.elapsed(),
    )
    .await
}

/// Tells that the end of `what` (`window 2026-01-05`, `month 2026-01`) could not be recorded.
pub(crate) fn warn_unrecorded(control: &RunControl, what: &str, error: &sqlx::Error) {
    let message = format!("Cannot record the end of {what}: {error}");
    control.emit(&RunEvent::Warning { message: &message });
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
    if !held {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(counts))
}
