//! The planned cost of a run or a batch before it starts, for every front end (`run … --plan`,
//! `POST /api/v1/runs/preview`, the pages' Preview cost): about how many requests it would send
//! to QuickBooks and how many rows it would load, the least time the company's limits let those
//! requests take, and where they would take the month's request allowance.
//!
//! The ranges are planned as a run plans them (a batch as [`batch::plan`] plans it), and loads
//! are estimated by the runner's own planner ([`estimate_loads`]): each planned span's
//! `COUNT(*)` asked of QuickBooks exactly as the runner will ask it, split by the same rule, its
//! pages as the pager will send them. Where QuickBooks does not change in between, the estimate
//! of a load is the run's requests exactly. The counts cost requests themselves: at most
//! [`MAX_PREVIEW_COUNTS`] per preview (one per pipeline at least), counted in the month like any
//! request; past them, part of the range is taken to hold its rows evenly and the estimate says
//! it is not exact. Reports cost one request per month and basis (more when QuickBooks refuses
//! a range as too large), verifications one count per month at least; neither is counted first.
//! Nothing is written: no run, no window, no row.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::PgPool;

use crate::domain::batch::RunTarget;
use crate::domain::cost::{MonthOutlook, least_duration};
use crate::domain::health::Allowance;
use crate::domain::pipeline::{DateRange, Mode, Pipeline, RangeError};
use crate::pipeline::report_run::report_requests;
use crate::pipeline::runner::estimate::{LoadCost, PlannedLoad, estimate_loads};
use crate::pipeline::{SinceError, range_or_since_cursor};
use crate::service::batch::{self, BatchError, PlannedRun};
use crate::service::company::{CompanyError, client_for};
use crate::settings::ClientTuning;
use crate::store::auth::secrets::SecretKey;

/// The most `COUNT(*)` requests one preview sends (a batch of more pipelines sends one per
/// pipeline).
pub const MAX_PREVIEW_COUNTS: u64 = 40;

/// What is asked: a pipeline or a batch, for a company, over dates (or, for incremental syncs,
/// from their cursors).
#[derive(Debug, Clone, Copy)]
pub struct PreviewAsk<'a> {
    /// The pipeline or batch.
    pub target: RunTarget,
    /// The company.
    pub realm_id: &'a str,
    /// The dates, validated; `None` for incremental syncs continuing from their cursors.
    pub dates: Option<DateRange>,
}

/// How firm an estimate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Every count it rests on was asked of QuickBooks: the run's requests, unless QuickBooks
    /// changes meanwhile.
    Counted,
    /// Part of the range was taken to hold its share of an enclosing count (the preview's cap).
    Spread,
    /// A floor: reports and verifications may send more.
    AtLeast,
}

impl Basis {
    /// `counted`, `spread`, `at_least`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counted => "counted",
            Self::Spread => "spread",
            Self::AtLeast => "at_least",
        }
    }

    /// The firmer of two is the weaker: a sum is as firm as its least firm part.
    #[must_use]
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Counted, b) | (b, Self::Counted) => b,
            (Self::AtLeast, _) | (_, Self::AtLeast) => Self::AtLeast,
            (Self::Spread, Self::Spread) => Self::Spread,
        }
    }
}

/// The estimate of one run.
#[derive(Debug, Clone)]
pub struct RunEstimate {
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Its range.
    pub range: DateRange,
    /// Its windows (days, or months for reports and verifications).
    pub windows: u64,
    /// Requests it would send.
    pub requests: u64,
    /// Rows it would load (`None` for reports and verifications).
    pub rows: Option<u64>,
    /// For a load: its counts, pages, spans; `None` for reports and verifications.
    pub load: Option<LoadCost>,
    /// How firm the figures are.
    pub basis: Basis,
}

/// The planned cost of a run or a batch.
#[derive(Debug, Clone)]
pub struct Preview {
    /// What was asked.
    pub target: RunTarget,
    /// The company.
    pub realm_id: String,
    /// Each run, in catalog order.
    pub runs: Vec<RunEstimate>,
    /// Requests every run together would send.
    pub requests: u64,
    /// Rows the loads would receive.
    pub rows: u64,
    /// How firm the sum is.
    pub basis: Basis,
    /// The `COUNT(*)` requests this preview sent (already in the month's requests).
    pub preview_requests: u64,
    /// The least time the company's limits let the requests take.
    pub least_duration: Duration,
    /// Requests per second, per minute and in flight the client keeps to (`None`: no limit).
    pub limits: [Option<u32>; 3],
    /// Consecutive days are fetched together while their count fits in this many pages.
    pub span_max_pages: u64,
    /// Rows per query page.
    pub page_size: u32,
    /// The month's requests with the run's added.
    pub month: MonthOutlook,
}

/// Why there is no estimate.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// A pipeline's range cannot be planned (dates required, no cursor, …): bad input.
    #[error(transparent)]
    Since(#[from] SinceError),
    /// A batch cannot be planned: bad input (or the database).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A range out of what can be represented: bad input.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The company is not connected or its settings are unusable.
    #[error("{0}")]
    Company(#[from] CompanyError),
    /// QuickBooks did not answer a count (after the client's retries).
    #[error("cannot estimate: QuickBooks did not answer a COUNT(*): {0}")]
    QuickBooks(#[from] qbo::QboError),
    /// This month's requests could not be read.
    #[error("cannot read this month's requests from PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
}

/// The runs `ask` would start, planned as they would be (nothing written).
async fn planned_runs(
    pool: &PgPool,
    ask: &PreviewAsk<'_>,
    now: Timestamp,
) -> Result<Vec<PlannedRun>, PreviewError> {
    match ask.target {
        RunTarget::Batch(b) => Ok(batch::plan(pool, b, ask.realm_id, ask.dates, now).await?),
        RunTarget::Pipeline(pipeline) => {
            let range = range_or_since_cursor(pool, ask.realm_id, pipeline, ask.dates, now).await?;
            let windows = pipeline.windows(&range)?;
            Ok(vec![PlannedRun {
                pipeline,
                range,
                windows,
            }])
        }
    }
}

/// The estimate of a report or a verification: a floor, without asking QuickBooks.
fn floor_estimate(run: &PlannedRun) -> Result<RunEstimate, PreviewError> {
    let requests = match run.pipeline.mode() {
        // Fails only for a month at the edge of the calendar.
        Mode::Report => {
            report_requests(run.pipeline, &run.windows).map_err(|_| RangeError::OutOfRange)?
        }
        _ => run.windows.len() as u64,
    };
    Ok(RunEstimate {
        pipeline: run.pipeline,
        range: run.range,
        windows: run.windows.len() as u64,
        requests,
        rows: None,
        load: None,
        basis: Basis::AtLeast,
    })
}

/// Estimates every run of `runs` (loads through QuickBooks' counts, the others as floors).
async fn estimate_runs(
    client: &qbo::QboClient,
    runs: &[PlannedRun],
    span_max_pages: u64,
) -> Result<(Vec<RunEstimate>, u64), PreviewError> {
    let is_load = |r: &&PlannedRun| matches!(r.pipeline.mode(), Mode::Backfill | Mode::Incremental);
    let loads: Vec<PlannedLoad> = runs
        .iter()
        .filter(is_load)
        .map(|r| PlannedLoad {
            pipeline: r.pipeline,
            windows: r.windows.clone(),
        })
        .collect();
    let estimated = estimate_loads(client, &loads, span_max_pages, MAX_PREVIEW_COUNTS).await?;
    let mut costs = estimated.costs.into_iter();
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        if !is_load(&run) {
            out.push(floor_estimate(run)?);
            continue;
        }
        let cost = costs.next().unwrap_or_default();
        out.push(RunEstimate {
            pipeline: run.pipeline,
            range: run.range,
            windows: run.windows.len() as u64,
            requests: cost.requests(),
            rows: Some(cost.rows),
            load: Some(cost),
            basis: if cost.exact {
                Basis::Counted
            } else {
                Basis::Spread
            },
        });
    }
    Ok((out, estimated.asked))
}

/// The month of `realm_id` at `now` with `planned` requests added.
async fn month_outlook(
    pool: &PgPool,
    realm_id: &str,
    planned: u64,
    allowance: Allowance,
    now: Timestamp,
) -> Result<MonthOutlook, sqlx::Error> {
    let this_month = crate::store::infra::allowance::this_month(pool).await?;
    let mine = this_month.into_iter().find(|m| m.realm_id == realm_id);
    Ok(MonthOutlook {
        month: mine.as_ref().map_or_else(
            || {
                now.to_zoned(jiff::tz::TimeZone::UTC)
                    .strftime("%Y-%m")
                    .to_string()
            },
            |m| m.month.clone(),
        ),
        spent: mine.map_or(0, |m| u64::try_from(m.requests).unwrap_or(0)),
        planned,
        allowance,
    })
}

/// The planned cost of `ask` with the client `tuning` (its limits, page size and
/// `span_max_pages`, as the workers run with them) against `allowance`. Bad input is refused
/// before any request; the counts are sent through the company's client and budget.
///
/// # Errors
/// [`PreviewError`].
pub async fn preview(
    pool: &PgPool,
    key: &SecretKey,
    ask: PreviewAsk<'_>,
    tuning: &ClientTuning,
    allowance: Allowance,
) -> Result<Preview, PreviewError> {
    let now = Timestamp::now();
    let runs = planned_runs(pool, &ask, now).await?;
    let client = client_for(pool, key, ask.realm_id, tuning).await?;
    let (runs, asked) = estimate_runs(&client, &runs, tuning.span_max_pages).await?;
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let rows: u64 = runs.iter().filter_map(|r| r.rows).sum();
    let basis = runs.iter().fold(Basis::Counted, |b, r| b.and(r.basis));
    let limits = client.settings().limits.clone();
    let month = month_outlook(pool, ask.realm_id, requests, allowance, now).await?;
    Ok(Preview {
        target: ask.target,
        realm_id: ask.realm_id.to_owned(),
        runs,
        requests,
        rows,
        basis,
        preview_requests: asked,
        least_duration: least_duration(
            requests,
            limits.requests_per_second,
            limits.requests_per_minute,
        ),
        limits: [
            limits.requests_per_second,
            limits.requests_per_minute,
            limits.max_in_flight,
        ],
        span_max_pages: tuning.span_max_pages,
        page_size: client.settings().page_size,
        month,
    })
}
