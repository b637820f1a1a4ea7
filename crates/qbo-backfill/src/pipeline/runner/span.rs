//! Consecutive days loaded together: planned into spans, one `COUNT(*)` deciding whether a span
//! is paged in one query or split in two, its free days claimed at once, its pages written
//! (several at once) each row into the day it belongs to, and the days another run took over
//! queued again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use sqlx::PgPool;

use super::window::{Early, WindowTask, commit_if_held};
use super::{MAX_TAKEOVERS, Scope, Stop, lock};
use crate::pipeline::events::RunEvent;
use crate::pipeline::{Pipeline, Window};
use crate::store::raw::{UpsertCounts, upsert_spread_page};
use crate::store::runs::{self, Execution};

/// One unit of work of a run: a day loaded on its own, or consecutive days loaded together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Work {
    /// One window, paged on its own (a retry of one day asks only for that day).
    Window(Window),
    /// Consecutive windows: one `COUNT(*)` decides whether they are fetched together (their rows
    /// split into their days on our side) or split in two.
    Span(Vec<Window>),
}

/// The work for `windows`: each run of consecutive days is one span (when `spans`); a lone day
/// is a window. A span whose `COUNT(*)` is above the run's `span_max_pages` pages is split in two
/// (so that a re-page after a change costs little and several workers share a long history); at
/// or below it, it is paged in one pass.
pub(super) fn plan(windows: &[Window], spans: bool) -> VecDeque<Work> {
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

impl Work {
    /// The work of consecutive `windows`: a span, one window on its own, or nothing.
    pub(super) fn of(windows: &[Window]) -> Option<Self> {
        match windows {
            [] => None,
            [one] => Some(Self::Window(*one)),
            more => Some(Self::Span(more.to_vec())),
        }
    }
}

/// Whether a span of `days` consecutive windows whose `COUNT(*)` is `count` is split in two
/// instead of paged: when it would take more than `span_max_pages` pages of `page_size` rows
/// and is more than one day.
pub(super) fn splits(count: u64, days: usize, span_max_pages: u64, page_size: u32) -> bool {
    days > 1 && count > span_max_pages.saturating_mul(u64::from(page_size))
}

/// The two halves a span that [`splits`] becomes (the second one the longer by a day at most).
pub(super) fn halves(windows: &[Window]) -> (&[Window], &[Window]) {
    windows.split_at(windows.len() / 2)
}

/// How a span's `COUNT(*)` ended.
enum Counted {
    Rows(u64),
    Stopped,
    Failed(String),
}

impl Scope {
    fn span_window(windows: &[Window]) -> Option<qbo::TimeWindow> {
        Some(qbo::TimeWindow {
            start: windows.first()?.start,
            end: windows.last()?.end,
        })
    }

    async fn count_span(&self, span: qbo::TimeWindow) -> Counted {
        let pipeline = self.core.ctx.pipeline;
        let counted = tokio::select! {
            r = self.core.engine.client.count_within(pipeline.entity(), pipeline.time_field(), span) => r,
            _ = self.core.control.until_halted() => return Counted::Stopped,
        };
        match counted {
            Ok(n) => Counted::Rows(n),
            Err(e) if e.is_terminal_auth() => {
                self.core.control.token_failure(&e);
                Counted::Stopped
            }
            Err(e) => Counted::Failed(e.to_string()),
        }
    }

    /// Loads consecutive windows together: count them, then fetch them in one paged query and
    /// write each row into its own day's window, or split the span when it is dense.
    pub(super) async fn span(&self, windows: Vec<Window>) {
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
        let page_size = self.core.engine.client.settings().page_size;
        if splits(count, windows.len(), self.span_max_pages, page_size) {
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
                self.take_back(&loaded);
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
                self.take_back(&loaded);
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
    pub(super) async fn requeue_taken_over(&self, windows: Vec<Window>) {
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
            1 => self.core.requeue(|q| q.push_back(Work::Window(again[0]))),
            _ => self.core.requeue(|q| q.push_back(Work::Span(again))),
        }
        for window in given_up {
            let message = format!(
                "taken over by other runs {MAX_TAKEOVERS} times while this run loaded it; retry the run"
            );
            self.core.window_failed(window.day);
            self.core.give_up(window, &message).await;
            self.emit(&RunEvent::WindowFailed {
                day: window.day,
                error: &message,
                intuit_tid: None,
            });
        }
    }

    /// Puts the two halves of `windows` at the front of the queue.
    fn split(&self, windows: &[Window]) {
        let (first, second) = halves(windows);
        self.core.requeue(|queue| {
            for half in [second, first].into_iter().filter_map(Work::of) {
                queue.push_front(half);
            }
        });
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
        if self.core.control.halt.is_cancelled() {
            return Vec::new();
        }
        let claim = runs::claim_windows(
            &self.core.engine.pool,
            self.exec(),
            self.core.ctx.pipeline,
            &self.core.ctx.realm_id,
            windows,
            self.core.engine.lease,
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
                self.core.requeue(|queue| {
                    for window in windows.iter().rev() {
                        queue.push_front(Work::Window(*window));
                    }
                });
                return Vec::new();
            }
        };
        if claim.lost {
            self.stop_with(Stop::Lost);
            return Vec::new();
        }
        if !claim.busy.is_empty() {
            self.core.requeue(|queue| {
                for (window, _) in claim.busy {
                    queue.push_back(Work::Window(window));
                }
            });
        }
        let started = Instant::now();
        claim
            .claimed
            .into_iter()
            .map(|window| {
                self.emit(&RunEvent::WindowStarted {
                    pipeline: self.core.ctx.pipeline,
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
            &self.core.engine.pool,
            self.exec(),
            self.core.ctx.pipeline,
            &self.core.ctx.realm_id,
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
        let pipeline = self.core.ctx.pipeline;
        let mut pager =
            self.core
                .engine
                .client
                .pager(pipeline.entity(), pipeline.time_field(), span);
        pager.expect_count(count);
        // Its pages are requested several at once (by STARTPOSITION, within the run's permits
        // to page ahead), and read, checked and written in order.
        pager.fetch_ahead(Arc::clone(&self.ahead));
        let writer = Arc::new(SpreadWriter {
            pool: self.core.engine.pool.clone(),
            writes: self.core.engine.writes.clone(),
            realm_id: self.core.ctx.realm_id.clone(),
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
            let page = match self.next_span_page(&mut pager).await {
                Ok(page) => page,
                Err(end) => {
                    ended = Some(end);
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

    /// The span's next page, or how its paging ended: `Ok(pages)` when every page was read,
    /// or the reason it stopped early.
    async fn next_span_page(
        &self,
        pager: &mut qbo::WindowPager,
    ) -> Result<qbo::Page, Result<u64, Early>> {
        let fetched = tokio::select! {
            r = pager.next_page() => Some(r),
            _ = self.core.control.until_halted() => None,
        };
        match fetched {
            None => Err(Err(Early::Stopped)),
            Some(Ok(Some(page))) => Ok(page),
            Some(Ok(None)) => Err(Ok(u64::from(pager.pages()))),
            Some(Err(e)) if e.is_terminal_auth() => {
                self.core.control.token_failure(&e);
                Err(Err(Early::Stopped))
            }
            Some(Err(e)) => Err(Err(Early::Failed(
                e.to_string(),
                e.intuit_tid().map(str::to_owned),
            ))),
        }
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

    /// Takes back from the run's totals the rows and counts a span's attempt added when its days
    /// are loaded again in this run: the run's totals stay the sums of its windows' own figures
    /// (the page, the API and the summary agree), each day counted by the load that ends it.
    fn take_back(&self, loaded: &[SpanDay]) {
        let rows: u64 = loaded.iter().map(|day| day.rows).sum();
        let counts = loaded
            .iter()
            .fold(UpsertCounts::default(), |sum, day| sum + day.counts);
        let totals = self.add(|t| {
            t.rows = t.rows.saturating_sub(rows);
            t.counts = t.counts.saturating_sub(counts);
        });
        self.emit(&RunEvent::PageWritten {
            run_rows: totals.rows,
        });
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
}

/// Page writes of one span in flight at once, each in its own transaction.
const SPAN_WRITES_IN_FLIGHT: usize = 3;

/// How a span's page write ended: its counts per window, `None` when a window is no longer held
/// by this execution (nothing written), or the error.
type WriteResult = Result<Option<Vec<UpsertCounts>>, String>;

/// What a span's page writes need, owned, so that several can be in flight at once.
struct SpreadWriter {
    pool: PgPool,
    /// The process's page writes.
    writes: super::WriteGate,
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
        let _place = self.writes.enter().await;
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
        Ok(commit_if_held(tx, held, counts).await?)
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
