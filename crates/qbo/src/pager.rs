//! [`WindowPager`]: pages every row of one entity created in one [`TimeWindow`], the core of
//! the backfill. Ordered by `Id`, 1-based `STARTPOSITION`, consecutive pages overlapping by one
//! row so that a row deleted mid-paging (which shifts every later offset) is seen at the next
//! page boundary, stops on a missing array or a short page, and verifies multi-page windows with
//! `COUNT(*)`, re-paging when the window changed. When the caller knows the window's `COUNT(*)`,
//! the pages of the first pass can be requested several at once ([`WindowPager::fetch_ahead`]),
//! by `STARTPOSITION`; their answers are still checked and returned in order.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::query::{Query, TimeField};
use crate::{Entity, Page, QboClient, QboError, TimeWindow};

/// How many times a window is paged again when its `COUNT(*)` disagrees with what paging saw.
pub const MAX_REPAGES: u32 = 2;

/// The smallest page a window falls back to after failed pages: Intuit has timed out pages of
/// 1,000 rows (`TimeActivity`) that it served in pages of 100.
pub const MIN_FALLBACK_PAGE_SIZE: u32 = 100;

/// Retries a page gets at the size it was first asked in, for a failure a smaller page might
/// avoid ([`QboError::may_be_too_big`]), before it is asked for in half the size.
const RETRIES_BEFORE_HALVING: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Paging,
    NeedsCount,
    Done,
}

/// Pages through `SELECT * FROM {Entity} WHERE MetaData.CreateTime >= start AND
/// MetaData.CreateTime < end [AND Active IN (true, false)] ORDERBY Id STARTPOSITION n
/// MAXRESULTS page_size`.
///
/// - Only pages with rows are returned; `Ok(None)` means the window is finished.
/// - Each page after the first starts at the previous page's last requested position, so its
///   first row must be the row that ended the previous page (it is not returned twice). If it is
///   another row, rows before the boundary disappeared (deleted while paging) and every later
///   offset moved: without this check the row that slid across the boundary would be skipped
///   while the `COUNT(*)` still matched. The window is then paged again from the start.
/// - A page with fewer rows than requested, or without the entity array, is the last one. A page
///   with *more* rows than requested (QBO has answered 101 rows to `MAXRESULTS 100`) is not
///   short: paging continues at `start + page_size`, so rows may repeat; nothing is deduplicated.
/// - When a pass took more than one page, a `COUNT(*)` with the same filter follows; if it
///   differs from the distinct Ids seen, the window is paged again from `STARTPOSITION 1`
///   (rows are then returned again: consumers must upsert by Id). After [`MAX_REPAGES`]
///   re-pages the pager fails with [`QboError::WindowUnstable`].
/// - After an error the pager stays where it was: calling `next_page` again retries the same
///   request.
/// - A page of more than [`MIN_FALLBACK_PAGE_SIZE`] rows that fails in a way a smaller page
///   might avoid (a 5xx, a timeout, a dropped connection, a truncated body) twice in a row is
///   asked for again at the same `STARTPOSITION` in half the size, then in half again after
///   each failure, down to [`MIN_FALLBACK_PAGE_SIZE`], sequentially. Every attempt counts
///   against the settings' `max_retries` for that page, as without halving (with no retries,
///   nothing is halved). The overlap check is unchanged, since the next page opens on the
///   previous page's last requested row whatever its size. When a smaller page is answered the
///   client remembers its size, so later windows of the entity start there.
/// - With [`WindowPager::fetch_ahead`] and [`WindowPager::expect_count`], the first pass knows
///   its pages in advance (their starts follow from the count) and requests several at once,
///   each in its own task; answers are taken in `STARTPOSITION` order and go
///   through exactly the checks above, so a page that arrives early waits for the ones before
///   it. Whatever order QuickBooks served them in, two consecutive pages agree on their shared
///   row only if no row before it appeared or disappeared between the two answers, so a shift
///   is caught as in a sequential pass (and a row present throughout lies between two checked
///   boundaries, inside the page that covers it). The requests are those a sequential pass
///   sends; only when the window changes (a shift, an early short page) can a few pages fetched
///   ahead go unused. Re-pages are sequential.
#[derive(Debug)]
pub struct WindowPager {
    client: QboClient,
    entity: Entity,
    field: TimeField,
    window: TimeWindow,
    page_size: u32,
    state: State,
    next_start: u32,
    pass: u32,
    pass_pages: u32,
    seen: HashSet<String>,
    /// The Id that must open the next page (the previous page's `page_size`-th row).
    boundary: Option<String>,
    pages: u32,
    rows: u64,
    /// A `COUNT(*)` of the same filter taken just before paging: when the first pass sees
    /// exactly that many rows, the verifying count is not sent again.
    expected: Option<u64>,
    /// Permits for pages of the first pass requested ahead of the one being read, one per page
    /// until it is read (shared with whoever else pages ahead with them); `None`: one page at
    /// a time.
    ahead_permits: Option<Arc<Semaphore>>,
    /// Pages requested ahead, in `STARTPOSITION` order, consecutive.
    ahead: VecDeque<Ahead>,
    /// Attempts left for the page at `next_start` (the settings' retries plus one), over all the
    /// sizes it is asked in.
    attempts_left: u32,
    /// Times the page at `next_start` was halved (no page has been answered since).
    halvings: u32,
}

/// A page requested ahead of its turn.
#[derive(Debug)]
struct Ahead {
    start: u32,
    task: tokio::task::JoinHandle<Result<crate::QueryPage, QboError>>,
    /// Held until the page is read (the page being read next needs none).
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for WindowPager {
    /// Pages requested ahead and not read are not waited for.
    fn drop(&mut self) {
        for ahead in &self.ahead {
            ahead.task.abort();
        }
    }
}

impl WindowPager {
    pub(crate) fn new(
        client: QboClient,
        entity: Entity,
        field: TimeField,
        window: TimeWindow,
    ) -> Self {
        let page_size = client.page_size_for(entity);
        Self {
            client,
            entity,
            field,
            window,
            page_size,
            state: if window.is_empty() {
                State::Done
            } else {
                State::Paging
            },
            next_start: 1,
            pass: 1,
            pass_pages: 0,
            seen: HashSet::new(),
            boundary: None,
            pages: 0,
            rows: 0,
            expected: None,
            ahead_permits: None,
            ahead: VecDeque::new(),
            attempts_left: 0,
            halvings: 0,
        }
    }

    /// Positions between the starts of consecutive pages: one less than the page size, so
    /// consecutive pages share one row (a page of one row cannot overlap).
    fn stride(&self) -> u32 {
        if self.page_size > 1 {
            self.page_size - 1
        } else {
            self.page_size
        }
    }

    /// The query pages one clean pass over a window of `rows` rows takes at `page_size` rows a
    /// page, as [`Self::next_page`] sends them: consecutive pages overlap by one row, so 999
    /// rows take one page of 1,000, 1,000 rows take two and 1,999 rows three; a window without
    /// rows still takes one page.
    #[must_use]
    pub fn pages_for(rows: u64, page_size: u32) -> u64 {
        let size = u64::from(page_size.max(1));
        let stride = if size > 1 { size - 1 } else { size };
        if rows < size {
            1
        } else {
            (rows - size + 1).div_ceil(stride) + 1
        }
    }

    /// The verifying `COUNT(*)` requests one clean pass of `pages` pages adds: one when it took
    /// several pages and the caller did not [`Self::expect_count`] a count that matched.
    #[must_use]
    pub fn verifying_counts(pages: u64, counted: bool) -> u64 {
        u64::from(pages > 1 && !counted)
    }

    /// Tells the pager the window's `COUNT(*)` as the caller just measured it: a first pass that
    /// sees exactly that many distinct rows is complete without counting again.
    pub fn expect_count(&mut self, count: u64) {
        self.expected = Some(count);
    }

    /// Lets the first pass request its pages ahead of their turn, once [`Self::expect_count`]
    /// told it the window's `COUNT(*)`: besides the page to read next, one page per permit it
    /// can take from `permits` (each held until its page is read, so pagers sharing `permits`
    /// hold that many pages ahead at most, together). Each request is a task of its own; the
    /// client's rate limiter and shared budget still pace them.
    pub fn fetch_ahead(&mut self, permits: Arc<Semaphore>) {
        self.ahead_permits = Some(permits);
    }

    /// The start of the last page of the first pass as the expected count predicts it (the
    /// first page with fewer rows than asked), when pages may be fetched ahead.
    fn planned_last_start(&self) -> Option<u32> {
        if self.ahead_permits.is_none() || self.pass != 1 {
            return None;
        }
        let count = self.expected?;
        let (size, stride) = (u64::from(self.page_size), u64::from(self.stride()));
        let pages_before = if count < size {
            0
        } else {
            (count - size) / stride + 1
        };
        u32::try_from(1 + pages_before * stride).ok()
    }

    /// Requests the pages from `from` on, up to the last one the count predicts: the page at
    /// `from` (again, after an error), and after it as many as permits allow.
    fn fill_ahead(&mut self, from: u32) {
        let (Some(last), Some(permits)) = (self.planned_last_start(), self.ahead_permits.clone())
        else {
            return;
        };
        while self.ahead.front().is_some_and(|a| a.start < from) {
            self.ahead.pop_front();
        }
        if from <= last && self.ahead.front().is_none_or(|a| a.start != from) {
            let task = self.spawn_page(from, None);
            self.ahead.push_front(task);
        }
        let mut next = self
            .ahead
            .back()
            .map_or(from, |a| a.start.saturating_add(self.stride()));
        while next <= last {
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                break;
            };
            let task = self.spawn_page(next, Some(permit));
            self.ahead.push_back(task);
            next = next.saturating_add(self.stride());
        }
    }

    /// Requests the page at `start` in a task of its own.
    fn spawn_page(&self, start: u32, permit: Option<OwnedSemaphorePermit>) -> Ahead {
        let client = self.client.clone();
        let query = self.page_query(start);
        let key = self.entity.qbo_name();
        let size_retries = self.size_retries();
        Ahead {
            start,
            task: tokio::spawn(async move {
                client.run_page_query(&query, Some(key), size_retries).await
            }),
            _permit: permit,
        }
    }

    /// The answer to the page at `start`: from its request ahead when there is one, else asked
    /// now. The pages after it are requested ahead first.
    async fn answer(&mut self, start: u32, query: &str) -> Result<crate::QueryPage, QboError> {
        self.fill_ahead(start);
        match self.ahead.front() {
            Some(front) if front.start == start => {
                let Some(ahead) = self.ahead.pop_front() else {
                    unreachable!("the front was just seen");
                };
                ahead.task.await.unwrap_or_else(|e| {
                    Err(QboError::Connection {
                        message: format!("a page requested ahead stopped unexpectedly: {e}"),
                    })
                })
            }
            _ => {
                let key = Some(self.entity.qbo_name());
                self.client
                    .run_page_query(query, key, self.size_retries())
                    .await
            }
        }
    }

    /// Retries the next request of the page at `next_start` may spend on a failure a smaller
    /// page might avoid: one at its first size while it can still be halved, none after a
    /// halving, all that are left at the smallest size.
    fn size_retries(&self) -> u32 {
        let left = self.attempts_left.saturating_sub(1);
        if self.page_size <= MIN_FALLBACK_PAGE_SIZE {
            left
        } else if self.halvings == 0 {
            left.min(RETRIES_BEFORE_HALVING)
        } else {
            0
        }
    }

    /// Gives the page at `next_start` its full count of attempts again.
    fn reset_attempts(&mut self) {
        self.attempts_left = self.client.settings().retry.max_retries.saturating_add(1);
        self.halvings = 0;
    }

    /// After `err` on a page: when a smaller page might avoid it and the page can still shrink,
    /// halves the page size, drops the pages fetched ahead (their sizes are the old one) and
    /// pages on sequentially; `true` when it did.
    fn halve_after(&mut self, err: &QboError, spent: u32) -> bool {
        self.attempts_left = self.attempts_left.saturating_sub(spent);
        if !err.may_be_too_big()
            || self.page_size <= MIN_FALLBACK_PAGE_SIZE
            || self.attempts_left == 0
        {
            self.reset_attempts();
            return false;
        }
        let from = self.page_size;
        self.page_size = (from / 2).max(MIN_FALLBACK_PAGE_SIZE);
        self.halvings += 1;
        for ahead in self.ahead.drain(..) {
            ahead.task.abort();
        }
        self.ahead_permits = None;
        tracing::warn!(
            entity = %self.entity,
            window = %self.window,
            start = self.next_start,
            from,
            to = self.page_size,
            "QuickBooks failed a page of {from} rows; asking for {} rows a page from here: {err}",
            self.page_size
        );
        true
    }

    /// The query of the page at `start`.
    fn page_query(&self, start: u32) -> String {
        self.base_query()
            .order_by("Id")
            .start_position(start)
            .max_results(self.page_size)
            .to_string()
    }

    /// Starts the window over from its first page. Pages requested ahead are left to finish
    /// unread: they are few, most already answered, and the window goes on.
    fn restart(&mut self) {
        self.ahead.clear();
        self.expected = None;
        self.pass += 1;
        self.pass_pages = 0;
        self.next_start = 1;
        self.seen.clear();
        self.boundary = None;
        self.state = State::Paging;
    }

    /// The filter every query of this window shares.
    fn base_query(&self) -> Query {
        Query::select(self.entity).within(self.field, self.window)
    }

    /// The next page with rows, or `None` when the window is done.
    pub async fn next_page(&mut self) -> Result<Option<Page>, QboError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::NeedsCount => self.verify_count().await?,
                State::Paging => {
                    if let Some(page) = self.fetch_page().await? {
                        return Ok(Some(page));
                    }
                }
            }
        }
    }

    async fn fetch_page(&mut self) -> Result<Option<Page>, QboError> {
        let start = self.next_start;
        let query = self.page_query(start);
        if self.attempts_left == 0 {
            self.reset_attempts();
        }
        let spent = self.size_retries() + 1;
        let result = match self.answer(start, &query).await {
            Ok(result) => result,
            Err(err) if self.halve_after(&err, spent) => return Ok(None),
            Err(err) => return Err(err),
        };
        if self.halvings > 0 {
            // The smaller page worked where the larger failed: later windows start there.
            self.client.remember_page_size(self.entity, self.page_size);
        }
        self.reset_attempts();
        self.pages += 1;
        self.pass_pages += 1;
        let mut rows = result.rows;
        let requested = usize::try_from(self.page_size).unwrap_or(usize::MAX);
        let returned = rows.len();
        let last = result.entity_key.is_none() || returned < requested;
        if let Some(expected) = self.boundary.take() {
            match rows.first() {
                Some(first) if first.id == expected => {
                    rows.remove(0);
                }
                // The previous page's last row is gone or moved: offsets shifted under us.
                _ if self.stride() < self.page_size => {
                    return self.shifted(start, &expected).map(|()| None);
                }
                _ => {}
            }
        }
        self.seen.extend(rows.iter().map(|r| r.id.clone()));
        if last {
            // Pages requested ahead beyond a page that ended early are not read.
            self.ahead.clear();
            let counted = self.expected == Some(self.seen.len() as u64);
            self.state = if self.pass_pages > 1 && !counted {
                State::NeedsCount
            } else {
                State::Done
            };
        } else {
            self.next_start = start.saturating_add(self.stride());
            if self.stride() < self.page_size {
                self.boundary = rows_boundary(&rows, returned, requested);
            }
            // While the caller reads this page, the next ones are on their way.
            self.fill_ahead(self.next_start);
        }
        tracing::debug!(
            entity = %self.entity,
            window = %self.window,
            start,
            rows = returned,
            last,
            intuit_tid = result.intuit_tid.as_deref(),
            "fetched a page"
        );
        if rows.is_empty() {
            return Ok(None);
        }
        self.rows += rows.len() as u64;
        Ok(Some(Page {
            entity: self.entity,
            number: self.pages,
            start_position: start,
            page_size: self.page_size,
            query,
            minor_version: self.client.settings().minor_version,
            intuit_tid: result.intuit_tid,
            rows,
        }))
    }

    /// Records a shift seen at the page starting at `start` and pages the window again (or
    /// gives up after [`MAX_REPAGES`]).
    fn shifted(&mut self, start: u32, expected: &str) -> Result<(), QboError> {
        let seen = self.seen.len() as u64;
        if self.pass > MAX_REPAGES {
            self.state = State::Done;
            return Err(QboError::WindowUnstable {
                entity: self.entity,
                window: self.window,
                count: seen,
                seen,
                passes: self.pass,
            });
        }
        tracing::warn!(
            entity = %self.entity,
            window = %self.window,
            start,
            expected,
            pass = self.pass,
            "rows disappeared while the window was paged (offsets shifted); paging it again"
        );
        self.restart();
        Ok(())
    }

    async fn verify_count(&mut self) -> Result<(), QboError> {
        let count = self
            .client
            .count(&self.base_query().to_count().to_string())
            .await?;
        let seen = self.seen.len() as u64;
        if count == seen {
            self.state = State::Done;
            return Ok(());
        }
        if self.pass > MAX_REPAGES {
            self.state = State::Done;
            return Err(QboError::WindowUnstable {
                entity: self.entity,
                window: self.window,
                count,
                seen,
                passes: self.pass,
            });
        }
        tracing::warn!(
            entity = %self.entity,
            window = %self.window,
            count,
            seen,
            pass = self.pass,
            "the window changed while it was paged; paging it again"
        );
        self.restart();
        Ok(())
    }

    /// Pages fetched so far (every query page, across re-pages, including empty ones).
    #[must_use]
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Rows returned so far, as returned (duplicates and re-pages included).
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The entity paged.
    #[must_use]
    pub fn entity(&self) -> Entity {
        self.entity
    }

    /// The window paged.
    #[must_use]
    pub fn window(&self) -> TimeWindow {
        self.window
    }
}

/// The Id that must open the next page: the row at the last requested position of this page
/// (`requested`-th), where the next page starts. `rows` no longer holds the overlapping first
/// row when this page had one (`returned` counts it).
fn rows_boundary(rows: &[crate::Row], returned: usize, requested: usize) -> Option<String> {
    let dropped = returned - rows.len();
    requested
        .checked_sub(1 + dropped)
        .and_then(|i| rows.get(i))
        .map(|r| r.id.clone())
}
