//! Executing a claimed verification (`qb_<plural>_verify`): `raw.qb_<plural>` against
//! QuickBooks, one calendar month (by `MetaData.CreateTime`, UTC) per window.
//!
//! The live raw rows of every month are counted in one grouped query, with the newest change
//! (`MetaData.LastUpdatedTime`) among them. Each month is then claimed like any window (so
//! leases, takeover, cancel and retry work as for loads) and costs two `COUNT(*)` when it
//! agrees: its rows, and its rows changed after the newest change the copy holds (an edit the
//! copy has not seen, which a count alone cannot tell). A month that differs is repaired: paged
//! whole from QuickBooks, every row upserted (new rows count as `loaded`), and the live rows of
//! the month that QuickBooks did not return, written before the paging started, marked deleted;
//! then both sides are counted again: the month is `drifted` when they now agree, `failed` when
//! they do not. Each month's result goes to `ops.verify_months` as it ends. What happens is
//! emitted as [`RunEvent`]s.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::PgPool;

use super::events::{RunEvent, RunEvents};
use super::runner::control::{Engine, RunCore, RunScope, execute};
use super::runner::window::{Early, HeldWindow};
use super::runner::{RunContext, RunError, RunOutcome, Stop, lock};
use super::{Pipeline, Window};
use crate::store::raw::verify::{self as verify_store, MonthRecord, MonthRows, MonthStatus};
use crate::store::runs::{RequestTotals, WindowEnd};

/// What a verification found, as its `Verify | …` line reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyTotals {
    /// Months in this execution of the run.
    pub months: u64,
    /// Months whose counts agreed.
    pub agreed: u64,
    /// Months that differed and were repaired.
    pub drifted: u64,
    /// Months that could not be verified.
    pub failed: u64,
    /// Rows inserted into `raw` by repairs.
    pub loaded: u64,
    /// Live rows marked deleted by repairs.
    pub marked_deleted: u64,
    /// QuickBooks requests sent (retries included).
    pub requests: u64,
}

impl std::ops::AddAssign for VerifyTotals {
    fn add_assign(&mut self, rhs: Self) {
        self.months += rhs.months;
        self.agreed += rhs.agreed;
        self.drifted += rhs.drifted;
        self.failed += rhs.failed;
        self.loaded += rhs.loaded;
        self.marked_deleted += rhs.marked_deleted;
        self.requests += rhs.requests;
    }
}

/// One execution of a verify run.
struct Scope {
    core: RunCore<Window>,
    /// Live raw rows per month (by window start), counted before the months start.
    raw_before: Mutex<HashMap<jiff::Timestamp, MonthRows>>,
    /// What the months found.
    verified: Mutex<VerifyTotals>,
}

/// Why a month is given back unfinished when the run stopped for another reason than an
/// interrupt.
const STOPPED: &str = "the run stopped before this month was verified";

impl Engine {
    /// Executes a claimed verify run to its end, emitting what happens to `events`:
    /// `concurrency` months at once.
    ///
    /// # Errors
    /// Only when the run cannot be recorded at all; month failures are part of the outcome.
    pub async fn verify(
        &self,
        ctx: RunContext,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, RunError> {
        let months = ctx.windows.len() as u64;
        execute(Arc::new(Scope {
            core: RunCore::in_order(self, ctx, events),
            raw_before: Mutex::new(HashMap::new()),
            verified: Mutex::new(VerifyTotals {
                months,
                ..VerifyTotals::default()
            }),
        }))
        .await
    }
}

impl Scope {
    fn emit(&self, event: &RunEvent<'_>) {
        self.core.control.emit(event);
    }

    fn pipeline(&self) -> Pipeline {
        self.core.ctx.pipeline
    }

    fn stop_with(&self, stop: Stop) -> bool {
        self.core.control.stop_with(stop)
    }
}

impl RunScope for Scope {
    type Work = Window;
    const TASK: &'static str = "month";

    fn failed_text(n: usize) -> String {
        format!("{n} months could not be verified")
    }

    fn core(&self) -> &RunCore<Window> {
        &self.core
    }

    /// Counts the live raw rows of every month at once. `false` (the run failed) when the
    /// database cannot answer.
    async fn prepare(&self) -> bool {
        let counted = verify_store::live_counts(
            &self.core.engine.pool,
            self.pipeline().table(),
            &self.core.ctx.realm_id,
            &self.core.ctx.windows,
        )
        .await;
        match counted {
            Ok(counts) => {
                *lock(&self.raw_before) = counts;
                true
            }
            Err(e) => {
                let message = format!(
                    "Cannot count the rows of {} in PostgreSQL: {e}",
                    self.pipeline().table()
                );
                self.emit(&RunEvent::Warning { message: &message });
                self.stop_with(Stop::Fatal(message));
                false
            }
        }
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

    fn tell_end(&self, outcome: &RunOutcome, requests: &RequestTotals) {
        if let Some(status) = outcome.status {
            self.emit(&RunEvent::Verified {
                run_id: outcome.run_id,
                pipeline: self.pipeline(),
                status,
                totals: VerifyTotals {
                    requests: requests.requests,
                    ..*lock(&self.verified)
                },
                failed_months: &outcome.failed_days,
                duration: outcome.duration,
            });
        }
    }
}

/// One month being verified by one execution.
struct MonthTask<'a> {
    scope: &'a Scope,
    window: Window,
    started: Instant,
}

impl MonthTask<'_> {
    fn pool(&self) -> &PgPool {
        &self.scope.core.engine.pool
    }

    fn held(&self) -> HeldWindow<'_> {
        self.scope.core.held(self.window, self.started)
    }

    fn realm_id(&self) -> &str {
        &self.scope.core.ctx.realm_id
    }

    fn qbo_window(&self) -> qbo::TimeWindow {
        qbo::TimeWindow {
            start: self.window.start,
            end: self.window.end,
        }
    }

    async fn run(&self) {
        let waited = match self.held().claim().await {
            Ok(Some(waited)) => waited,
            Ok(None) => return,
            Err(e) => {
                self.failed_unclaimed(&format!("cannot claim the month: {e}"))
                    .await;
                return;
            }
        };
        let mut record = failed_month(self.window, None);
        match self.verify(&mut record, waited).await {
            Ok(()) => self.ended(record, None).await,
            Err(Early::Failed(message, tid)) => {
                record.status = MonthStatus::Failed;
                record.error = Some(message);
                self.ended(record, tid).await;
            }
            Err(Early::Stopped) => {}
            Err(Early::TakenOver) => self.scope.emit(&RunEvent::WindowTakenOver {
                day: self.window.day,
            }),
        }
    }

    /// QuickBooks' `COUNT(*)` of the month (one request).
    async fn count_qbo(&self, record: &mut MonthRecord) -> Result<u64, Early> {
        let scope = self.scope;
        let (entity, field) = (scope.pipeline().entity(), scope.pipeline().time_field());
        let count = scope
            .core
            .engine
            .client
            .count_within(entity, field, self.qbo_window());
        self.ask(record, count, "cannot count the month in QuickBooks: ")
            .await
    }

    /// Whether QuickBooks holds a row of the month changed after `newest`, the newest change
    /// among the month's stored rows (one request; `false` without stored rows, which a count
    /// of 0 on both sides already settles).
    async fn changed_since(
        &self,
        record: &mut MonthRecord,
        newest: Option<jiff::Timestamp>,
    ) -> Result<bool, Early> {
        let Some(newest) = newest else {
            return Ok(false);
        };
        let scope = self.scope;
        let (entity, field) = (scope.pipeline().entity(), scope.pipeline().time_field());
        let count =
            scope
                .core
                .engine
                .client
                .count_changed_after(entity, field, self.qbo_window(), newest);
        let changed = self
            .ask(
                record,
                count,
                "cannot count the month's changes in QuickBooks: ",
            )
            .await?;
        Ok(changed > 0)
    }

    /// One request of the month, counted in `record` (unless the run halted first); a failure
    /// ends the month, its message led by `failing`.
    async fn ask(
        &self,
        record: &mut MonthRecord,
        request: impl Future<Output = Result<u64, qbo::QboError>>,
        failing: &str,
    ) -> Result<u64, Early> {
        let held = self.held();
        let answered = held.unless_halted(request, STOPPED).await?;
        record.requests += 1;
        match answered {
            Ok(n) => Ok(n),
            Err(e) => Err(held.request_failed(&e, failing).await),
        }
    }

    /// Live raw rows of the month now.
    async fn count_raw(&self) -> Result<MonthRows, Early> {
        verify_store::live_rows(
            self.pool(),
            self.scope.pipeline().table(),
            self.realm_id(),
            &self.window,
        )
        .await
        .map_err(|e| {
            Early::Failed(
                format!("cannot count the month's rows in PostgreSQL: {e}"),
                None,
            )
        })
    }

    /// Compares the month and repairs it when it differs; sets the record's status (`failed`
    /// when the counts still differ after the repair).
    async fn verify(&self, record: &mut MonthRecord, waited: bool) -> Result<(), Early> {
        // A month that waited for another run may have been repaired meanwhile: count it again.
        let counted = if waited {
            None
        } else {
            lock(&self.scope.raw_before)
                .get(&self.window.start)
                .copied()
        };
        let raw = match counted {
            Some(rows) => rows,
            None => self.count_raw().await?,
        };
        record.raw_count = Some(raw.live);
        let qbo = self.count_qbo(record).await?;
        record.qbo_count = Some(qbo);
        // The same count may still hide an edit the copy missed: asked only when the counts
        // agree (a month that differs is paged whole anyway).
        if qbo == raw.live && !self.changed_since(record, raw.newest_change).await? {
            record.status = MonthStatus::Agreed;
            return Ok(());
        }
        let paged_from = verify_store::database_now(self.pool())
            .await
            .map_err(|e| Early::Failed(format!("cannot read the database clock: {e}"), None))?;
        let returned = self.page(record, qbo).await?;
        let marked = verify_store::mark_missing(
            self.pool(),
            &self.scope.core.ctx.execution,
            self.scope.pipeline(),
            self.realm_id(),
            &self.window,
            &returned,
            paged_from,
            jiff::Timestamp::now(),
        )
        .await
        .map_err(|e| Early::Failed(format!("cannot mark deleted rows in PostgreSQL: {e}"), None))?;
        match marked {
            Some(n) => record.marked_deleted = n,
            None => return Err(Early::TakenOver),
        }
        let qbo_after = self.count_qbo(record).await?;
        let raw_after = self.count_raw().await?.live;
        record.qbo_count_after = Some(qbo_after);
        record.raw_count_after = Some(raw_after);
        if qbo_after == raw_after {
            record.status = MonthStatus::Drifted;
            return Ok(());
        }
        let mut error = format!(
            "still differs after the repair: QuickBooks counts {qbo_after}, raw has {raw_after} live rows"
        );
        let table = self.scope.pipeline().table();
        if let Ok(n @ 1..) =
            verify_store::deleted_among(self.pool(), table, self.realm_id(), &returned).await
        {
            error.push_str(&format!(
                "; {n} rows that QuickBooks returns are marked deleted in {table}"
            ));
        }
        record.status = MonthStatus::Failed;
        record.error = Some(error);
        Ok(())
    }

    /// Pages the whole month from QuickBooks, upserting every page together with the month's
    /// progress; returns every id QuickBooks returned.
    async fn page(&self, record: &mut MonthRecord, count: u64) -> Result<HashSet<String>, Early> {
        let scope = self.scope;
        let pipeline = scope.pipeline();
        let held = self.held();
        let mut pager = scope.core.engine.client.pager(
            pipeline.entity(),
            pipeline.time_field(),
            self.qbo_window(),
        );
        pager.expect_count(count);
        let mut returned = HashSet::new();
        let result = loop {
            let next = match held.unless_halted(pager.next_page(), STOPPED).await {
                Ok(next) => next,
                Err(early) => break Err(early),
            };
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => break Ok(()),
                Err(e) => {
                    break Err(held
                        .request_failed(&e, "cannot page the month from QuickBooks: ")
                        .await);
                }
            };
            returned.extend(page.rows.iter().map(|r| r.id.clone()));
            match held.write_page(&page).await {
                Ok(Some(counts)) => {
                    record.loaded += counts.inserted;
                    let rows = page.rows.len() as u64;
                    let run_rows = scope
                        .core
                        .add(|t| {
                            t.pages += 1;
                            t.rows += rows;
                            t.counts += counts;
                        })
                        .rows;
                    lock(&scope.verified).loaded += counts.inserted;
                    scope.emit(&RunEvent::PageWritten { run_rows });
                }
                Ok(None) => break Err(Early::TakenOver),
                Err(e) => {
                    break Err(Early::Failed(
                        format!("cannot write page {} to PostgreSQL: {e}", page.number),
                        page.intuit_tid.clone(),
                    ));
                }
            }
        };
        record.requests += u64::from(pager.pages());
        result.map(|()| returned)
    }

    /// Stores the month's result, ends its window (succeeded unless it failed) and reports it.
    async fn ended(&self, mut record: MonthRecord, intuit_tid: Option<String>) {
        let scope = self.scope;
        let entity = scope.pipeline().spec().plural;
        if let Err(e) = verify_store::record_month(
            self.pool(),
            scope.core.ctx.execution.run_id,
            self.realm_id(),
            entity,
            &record,
        )
        .await
        {
            record.status = MonthStatus::Failed;
            record.error = Some(format!("cannot record the month's result: {e}"));
        }
        let end = match (&record.status, &record.error) {
            (MonthStatus::Failed, error) => WindowEnd::Failed {
                error: error
                    .as_deref()
                    .unwrap_or("the month could not be verified"),
                intuit_tid: intuit_tid.as_deref(),
            },
            _ => WindowEnd::Succeeded,
        };
        let held = self.held();
        match held.end(&end).await {
            Ok(true) => {}
            Ok(false) => {
                scope.emit(&RunEvent::WindowTakenOver {
                    day: self.window.day,
                });
                return;
            }
            Err(e) => held.warn_unrecorded(&e),
        }
        self.account(&record);
        scope.emit(&RunEvent::MonthVerified {
            pipeline: scope.pipeline(),
            month: &record,
            intuit_tid: intuit_tid.as_deref(),
        });
    }

    /// A month that failed before it could be claimed.
    async fn failed_unclaimed(&self, message: &str) {
        let record = failed_month(self.window, Some(message.to_owned()));
        self.account(&record);
        self.scope.emit(&RunEvent::MonthVerified {
            pipeline: self.scope.pipeline(),
            month: &record,
            intuit_tid: None,
        });
    }

    /// Adds a month's result to the run's totals.
    fn account(&self, record: &MonthRecord) {
        let scope = self.scope;
        {
            let mut totals = lock(&scope.verified);
            match record.status {
                MonthStatus::Agreed => totals.agreed += 1,
                MonthStatus::Drifted => totals.drifted += 1,
                MonthStatus::Failed => totals.failed += 1,
            }
            totals.marked_deleted += record.marked_deleted;
        }
        if record.status == MonthStatus::Failed {
            scope.core.window_failed(self.window.day);
        }
    }
}

/// A month's record before anything is known of it: failed, with `error` if one is known.
fn failed_month(window: Window, error: Option<String>) -> MonthRecord {
    MonthRecord {
        window,
        qbo_count: None,
        raw_count: None,
        qbo_count_after: None,
        raw_count_after: None,
        status: MonthStatus::Failed,
        loaded: 0,
        marked_deleted: 0,
        requests: 0,
        error,
    }
}

/// The name given to `verify` is neither an entity nor `all`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown entity `{0}` (expected `all` or an entity as pipelines name it: {list}; `qbo-backfill pipelines` lists them)",
    list = entity_names().join(", ")
)]
pub struct UnknownEntity(pub String);

/// Every entity's plural, in catalog order (`customers`, `items`, …).
#[must_use]
pub fn entity_names() -> Vec<&'static str> {
    super::catalog::ENTITIES.iter().map(|s| s.plural).collect()
}

/// The verify pipelines `entity` names: one for an entity's plural (`journal_entries`), every
/// one (in catalog order) for `all`.
///
/// # Errors
/// [`UnknownEntity`], echoing the name safely.
pub fn pipelines_for(entity: &str) -> Result<Vec<Pipeline>, UnknownEntity> {
    if entity == "all" {
        return Ok(Pipeline::every(super::Mode::Verify).collect());
    }
    super::catalog::by_plural(entity)
        .and_then(|spec| Pipeline::of(spec.entity, super::Mode::Verify))
        .map(|p| vec![p])
        .ok_or_else(|| UnknownEntity(super::echo(entity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_named_as_pipelines_name_them() {
        let one = pipelines_for("time_activities").unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name(), "qb_time_activities_verify");
        let all = pipelines_for("all").unwrap();
        assert_eq!(all.len(), 26);
        assert!(all.iter().all(|p| p.mode() == super::super::Mode::Verify));
        for bad in ["TimeActivity", "qb_invoices_verify", "", "invoices\n"] {
            let err = pipelines_for(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains("journal_entries"), "{err}");
        }
    }
}
