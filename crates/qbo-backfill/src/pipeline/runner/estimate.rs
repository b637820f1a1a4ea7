//! What loads and syncs would cost before they run, by the runner's own plan: the planner's
//! spans ([`plan`]), each `COUNT(*)`ed as the runner counts it and split by the runner's rule
//! ([`splits`], [`halves`]), each span or day paged as the pager pages it
//! ([`qbo::WindowPager::pages_for`]). Nothing is written.
//!
//! The counts an estimate asks QuickBooks are capped: the first span of every load is always
//! counted, then the parts of the range level by level (as the runner splits them) while the cap
//! allows. Past it, a part is taken to hold its share of the enclosing count, spread evenly over
//! its days, and the estimate says it is not exact. With `span_max_pages` 0 (every day paged on
//! its own) the days are counted the same way, halves of the range first, only to learn their
//! rows: such a run sends no `COUNT(*)` of its own but one page per day at least.

use super::span::{Work, halves, plan, splits};
use crate::pipeline::{Mode, Pipeline, Window};

/// One load to estimate: its pipeline and the windows a run of it would load.
#[derive(Debug, Clone)]
pub struct PlannedLoad {
    /// A backfill or an incremental sync.
    pub pipeline: Pipeline,
    /// Its windows (UTC days).
    pub windows: Vec<Window>,
}

/// What one load would cost, in requests to QuickBooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadCost {
    /// `COUNT(*)` requests the run would send: one per span it plans (split spans included),
    /// and one verifying each day paged on its own in more than one page.
    pub counts: u64,
    /// Query pages.
    pub pages: u64,
    /// Change-data-capture reads (an incremental sync reads deletions once at least).
    pub cdc: u64,
    /// Rows the run would receive.
    pub rows: u64,
    /// Spans of several days paged in one query.
    pub spans: u64,
    /// Days paged on their own.
    pub days_alone: u64,
    /// Every count this rests on was asked of QuickBooks; `false` when part of the range was
    /// taken to hold its share of an enclosing count (the cap was reached).
    pub exact: bool,
}

impl Default for LoadCost {
    fn default() -> Self {
        Self {
            counts: 0,
            pages: 0,
            cdc: 0,
            rows: 0,
            spans: 0,
            days_alone: 0,
            exact: true,
        }
    }
}

impl LoadCost {
    /// Every request the run would send.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.counts + self.pages + self.cdc
    }
}

/// The estimates of several loads made together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimates {
    /// One per load, in the order given.
    pub costs: Vec<LoadCost>,
    /// `COUNT(*)` requests the estimate itself sent.
    pub asked: u64,
}

/// What the runner does with a part of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Consecutive days the runner counts, then pages together or splits.
    Span,
    /// One day the runner pages on its own.
    Day,
    /// Consecutive days the runner pages one by one (`span_max_pages` 0): counted only to
    /// learn how their rows spread.
    Block,
}

/// A part of one load's range, with its share of the enclosing count when it has one.
struct Node {
    load: usize,
    windows: Vec<Window>,
    part: Part,
    share: Option<u64>,
    /// The halves of one part share a family: both are counted or neither, so that their rows
    /// always add up to the enclosing count.
    family: usize,
}

/// The first parts of every load: the planner's spans and lone days.
fn roots(loads: &[PlannedLoad], span_max_pages: u64) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for (load, planned) in loads.iter().enumerate() {
        for work in plan(&planned.windows, true) {
            let (windows, part) = match work {
                Work::Window(one) => (vec![one], Part::Day),
                Work::Span(more) if span_max_pages > 0 => (more, Part::Span),
                Work::Span(more) => (more, Part::Block),
            };
            let family = nodes.len();
            nodes.push(Node {
                load,
                windows,
                part,
                share: None,
                family,
            });
        }
    }
    nodes
}

/// The halves of `node`, each with its share of `rows` (by days), in `family`.
fn children(node: &Node, rows: u64, part: Part, family: usize) -> Vec<Node> {
    let (first, second) = halves(&node.windows);
    let days = node.windows.len().max(1) as u128;
    let first_rows = u64::try_from(u128::from(rows) * first.len() as u128 / days).unwrap_or(rows);
    [(first, first_rows), (second, rows - first_rows)]
        .into_iter()
        .filter(|(half, _)| !half.is_empty())
        .map(|(half, share)| Node {
            load: node.load,
            windows: half.to_vec(),
            part: if half.len() == 1 { Part::Day } else { part },
            share: Some(share),
            family,
        })
        .collect()
}

/// How the runner treats parts: its `span_max_pages` and the client's page size.
#[derive(Debug, Clone, Copy)]
struct Rule {
    span_max_pages: u64,
    page_size: u32,
}

/// Adds what the runner spends on `node`, which holds `rows` rows, to `cost`; the parts it
/// splits into (in family `family`), to estimate next.
fn visit(node: &Node, rows: u64, cost: &mut LoadCost, rule: Rule, family: usize) -> Vec<Node> {
    let page_size = rule.page_size;
    match node.part {
        Part::Span => {
            cost.counts += 1;
            if splits(rows, node.windows.len(), rule.span_max_pages, page_size) {
                return children(node, rows, Part::Span, family);
            }
            cost.spans += 1;
            cost.rows += rows;
            if rows > 0 {
                // The pager is told the count: a clean pass is not counted again.
                cost.pages += qbo::WindowPager::pages_for(rows, page_size);
            }
            Vec::new()
        }
        Part::Day => {
            let pages = qbo::WindowPager::pages_for(rows, page_size);
            cost.pages += pages;
            cost.counts += qbo::WindowPager::verifying_counts(pages, false);
            cost.rows += rows;
            cost.days_alone += 1;
            Vec::new()
        }
        Part::Block => children(node, rows, Part::Block, family),
    }
}

/// The rows of every node of `level`, and whether each was counted: a node without a share (the
/// first of its load) always is, the others (a family at a time) while no more than
/// `max_counts` are asked in all. The counts of a level are asked at once (the client keeps
/// them within the company's limits).
async fn count_level(
    client: &qbo::QboClient,
    loads: &[PlannedLoad],
    level: &[Node],
    asked: &mut u64,
    max_counts: u64,
) -> Result<Vec<(u64, bool)>, qbo::QboError> {
    let mut counts = tokio::task::JoinSet::new();
    let mut rows: Vec<(u64, bool)> = Vec::with_capacity(level.len());
    // Whether the family of the node at hand is counted, decided at its first member.
    let mut family: Option<(usize, bool)> = None;
    for (i, node) in level.iter().enumerate() {
        if family.is_none_or(|(f, _)| f != node.family) {
            let members = level[i..]
                .iter()
                .take_while(|n| n.family == node.family)
                .count() as u64;
            family = Some((node.family, *asked + members <= max_counts));
        }
        let counted = family.is_some_and(|(_, counted)| counted);
        match node.share {
            Some(share) if !counted => rows.push((share, false)),
            _ => {
                *asked += 1;
                rows.push((0, true));
                let pipeline = loads[node.load].pipeline;
                let (Some(first), Some(last)) = (node.windows.first(), node.windows.last()) else {
                    continue;
                };
                let span = qbo::TimeWindow::new(first.start, last.end);
                let client = client.clone();
                counts.spawn(async move {
                    let n = client
                        .count_within(pipeline.entity(), pipeline.time_field(), span)
                        .await;
                    (i, n)
                });
            }
        }
    }
    while let Some(joined) = counts.join_next().await {
        let (i, n) = joined.map_err(|e| qbo::QboError::Connection {
            message: format!("a count stopped unexpectedly: {e}"),
        })?;
        rows[i].0 = n?;
    }
    Ok(rows)
}

/// Estimates `loads` as the runner would run them with `span_max_pages` (its
/// `QBO_SPAN_MAX_PAGES`), asking QuickBooks at most `max_counts` `COUNT(*)`s beyond the first
/// of each load.
///
/// # Errors
/// A count QuickBooks did not answer (after the client's retries).
pub async fn estimate_loads(
    client: &qbo::QboClient,
    loads: &[PlannedLoad],
    span_max_pages: u64,
    max_counts: u64,
) -> Result<Estimates, qbo::QboError> {
    let rule = Rule {
        span_max_pages,
        page_size: client.settings().page_size,
    };
    let mut costs = vec![LoadCost::default(); loads.len()];
    let mut level = roots(loads, span_max_pages);
    let mut families = level.len();
    let mut asked = 0;
    while !level.is_empty() {
        let rows = count_level(client, loads, &level, &mut asked, max_counts).await?;
        let mut next = Vec::new();
        for (node, (n, counted)) in level.iter().zip(rows) {
            let cost = &mut costs[node.load];
            cost.exact &= counted;
            next.extend(visit(node, n, cost, rule, families));
            families += 1;
        }
        level = next;
    }
    for (cost, load) in costs.iter_mut().zip(loads) {
        let syncs = load.pipeline.mode() == Mode::Incremental;
        if syncs && load.pipeline.entity().has_cdc() && !load.windows.is_empty() {
            cost.cdc = 1;
        }
    }
    Ok(Estimates { costs, asked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn days(n: i8) -> Vec<Window> {
        (1..=n)
            .map(|d| Window::for_day(date(2026, 3, d)).expect("day"))
            .collect()
    }

    fn node(windows: Vec<Window>, part: Part) -> Node {
        Node {
            load: 0,
            windows,
            part,
            share: None,
            family: 0,
        }
    }

    fn rule(span_max_pages: u64) -> Rule {
        Rule {
            span_max_pages,
            page_size: 1000,
        }
    }

    #[test]
    fn a_span_that_fits_costs_its_count_and_its_pages() {
        let mut cost = LoadCost::default();
        let next = visit(&node(days(30), Part::Span), 2500, &mut cost, rule(50), 1);
        assert!(next.is_empty());
        assert_eq!(
            (cost.counts, cost.pages, cost.rows, cost.spans),
            (1, 3, 2500, 1)
        );
        // An empty span is counted, never paged.
        let mut cost = LoadCost::default();
        visit(&node(days(30), Part::Span), 0, &mut cost, rule(50), 1);
        assert_eq!(cost.requests(), 1);
    }

    #[test]
    fn a_dense_span_splits_into_halves_sharing_its_rows_and_a_day_pays_its_own_pages() {
        let mut cost = LoadCost::default();
        let next = visit(&node(days(5), Part::Span), 2001, &mut cost, rule(1), 1);
        assert_eq!(cost.requests(), 1, "only the count");
        let shares: Vec<(usize, Option<u64>, Part)> = next
            .iter()
            .map(|n| (n.windows.len(), n.share, n.part))
            .collect();
        assert_eq!(
            shares,
            [(2, Some(800), Part::Span), (3, Some(1201), Part::Span)]
        );
        // A day alone: its pages and, for several, the verifying count; an empty day one page.
        let mut cost = LoadCost::default();
        visit(&node(days(1), Part::Day), 1500, &mut cost, rule(1), 1);
        assert_eq!((cost.pages, cost.counts), (2, 1));
        visit(&node(days(1), Part::Day), 0, &mut cost, rule(1), 1);
        assert_eq!((cost.pages, cost.days_alone), (3, 2));
        // Days loaded one by one: a block costs nothing itself; its halves are days or blocks.
        let mut cost = LoadCost::default();
        let next = visit(&node(days(3), Part::Block), 9, &mut cost, rule(0), 1);
        assert_eq!(cost.requests(), 0);
        let parts: Vec<Part> = next.iter().map(|n| n.part).collect();
        assert_eq!(parts, [Part::Day, Part::Block]);
    }
}
