//! Loading one report range: fetch it, and when QuickBooks refuses the range as too large
//! (a truncated answer, [`ReportFetchError::RangeTooLarge`], or a 5xx or timeout that outlasted
//! the client's retries), read it in halves
//! ([`ReportRequest::halves`]), recursively, down to a single day. Each piece is stored with its
//! own period in its own transaction ([`crate::store::raw::reports::upsert_report`]), so a
//! failure later in the range keeps the pieces already stored (and re-running stores nothing for
//! them again). A truncated answer is never stored: a single day that is still too large, or an
//! as-of report (aging), which cannot be split by date, is an error naming the report and day.
//!
//! [`load_report_range_with`] takes the fetch as a function, so the halving is tested without a
//! server; [`load_report_range`] fetches with a [`qbo::QboClient`].

use std::future::Future;

use jiff::Timestamp;
use jiff::civil::Date;
use qbo::report::{FetchedReport, ReportFetchError, ReportName, ReportRequest};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::raw::reports::{ReportPiece, ReportStoreError, ReportWrite, upsert_report};

/// Where the pieces of a load come from: the run and the run window that asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportLineage {
    /// The run (`run_id`), if any.
    pub run_id: Option<Uuid>,
    /// The run window (`extract_window_*_utc`); `None`: the whole requested range, from
    /// midnight UTC of its first day to midnight UTC after its last.
    pub window: Option<(Timestamp, Timestamp)>,
}

/// One piece stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPiece {
    /// What was asked for this piece (its period).
    pub request: ReportRequest,
    /// The Intuit transaction id of the answer.
    pub intuit_tid: Option<String>,
    /// What the store did.
    pub write: ReportWrite,
}

/// Why a report range was not loaded completely (pieces stored before the failure stay).
#[derive(Debug, thiserror::Error)]
pub enum ReportLoadError {
    /// QuickBooks failed to answer (after the client's retries), or answered something else
    /// than a report.
    #[error("fetching the {report} report for {start}..={end}: {source}")]
    Fetch {
        /// The report.
        report: ReportName,
        /// First day of the piece.
        start: Date,
        /// Last day of the piece.
        end: Date,
        /// What failed.
        source: qbo::QboError,
    },
    /// QuickBooks truncated the report even for one day.
    #[error(
        "QuickBooks truncated the {report} report even for the single day {day} (\"Unable to \
         display more data\"); it cannot be read in smaller date windows, and nothing of that \
         day was stored"
    )]
    DayTooLarge {
        /// The report.
        report: ReportName,
        /// The day.
        day: Date,
    },
    /// QuickBooks truncated an as-of report, which has no range to split.
    #[error(
        "QuickBooks truncated the {report} report as of {day} (\"Unable to display more \
         data\"); an as-of report cannot be split by date, and nothing was stored"
    )]
    AsOfTooLarge {
        /// The report.
        report: ReportName,
        /// The report date.
        day: Date,
    },
    /// The requested range has no UTC window (dates out of range).
    #[error("the {report} range {start}..={end} has no UTC window")]
    Window {
        /// The report.
        report: ReportName,
        /// First day asked.
        start: Date,
        /// Last day asked.
        end: Date,
    },
    /// A piece could not be stored.
    #[error(transparent)]
    Store(#[from] ReportStoreError),
}

impl From<sqlx::Error> for ReportLoadError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The UTC window of `request`: midnight of its first day (its report date for as-of reports)
/// to midnight after its last.
fn request_window(request: &ReportRequest) -> Option<(Timestamp, Timestamp)> {
    let first = if request.name.is_as_of() {
        request.end_date
    } else {
        request.start_date
    };
    let midnight = |d: Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    };
    Some((
        midnight(first)?,
        midnight(request.end_date.tomorrow().ok()?)?,
    ))
}

/// Reads `request` with [`qbo::QboClient::fetch_report`] and stores it for the client's
/// company, halving on truncation (see the module docs).
///
/// # Errors
/// As [`load_report_range_with`].
pub async fn load_report_range(
    client: &qbo::QboClient,
    pool: &PgPool,
    request: &ReportRequest,
    lineage: ReportLineage,
) -> Result<Vec<StoredPiece>, ReportLoadError> {
    load_report_range_with(
        move |piece: ReportRequest| async move { client.fetch_report(&piece).await },
        pool,
        client.realm_id(),
        request,
        lineage,
    )
    .await
}

/// Reads `request` with `fetch` and stores it for `realm_id`: each answer in its own
/// transaction, with its own period; a truncated answer (an error
/// [`ReportFetchError::RangeTooLarge`], or an answer holding QuickBooks' notice) is asked again
/// as two halves, first half first, down to a single day. Returns the pieces in date order.
///
/// # Errors
/// [`ReportLoadError::DayTooLarge`] / [`ReportLoadError::AsOfTooLarge`] when a piece cannot be
/// split any more; [`ReportLoadError::Fetch`] when QuickBooks fails;
/// [`ReportLoadError::Store`] when a piece cannot be stored. Pieces stored before stay stored.
pub async fn load_report_range_with<F, Fut>(
    mut fetch: F,
    pool: &PgPool,
    realm_id: &str,
    request: &ReportRequest,
    lineage: ReportLineage,
) -> Result<Vec<StoredPiece>, ReportLoadError>
where
    F: FnMut(ReportRequest) -> Fut,
    Fut: Future<Output = Result<FetchedReport, ReportFetchError>>,
{
    let (window_start, window_end) =
        lineage
            .window
            .or_else(|| request_window(request))
            .ok_or(ReportLoadError::Window {
                report: request.name,
                start: request.start_date,
                end: request.end_date,
            })?;
    let mut stored = Vec::new();
    // Pieces still to read, the next on top.
    let mut todo = vec![request.clone()];
    while let Some(piece) = todo.pop() {
        let fetched = match answer_of(&piece, fetch(piece.clone()).await, realm_id) {
            Answer::Report(fetched) => *fetched,
            Answer::Halves(first, second) => {
                todo.push(second);
                todo.push(first);
                continue;
            }
            Answer::Failed(e) => return Err(*e),
        };
        let mut tx = pool.begin().await?;
        let write = upsert_report(
            &mut tx,
            &ReportPiece {
                realm_id,
                request: &piece,
                fetched: &fetched,
                run_id: lineage.run_id,
                window_start,
                window_end,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::debug!(
            realm_id,
            report = %piece.name,
            start = %piece.start_date,
            end = %piece.end_date,
            outcome = write.outcome.as_str(),
            rows = write.rows_written,
            "Report piece stored"
        );
        stored.push(StoredPiece {
            request: piece,
            intuit_tid: fetched.intuit_tid,
            write,
        });
    }
    Ok(stored)
}

/// What to do with one piece after its fetch.
enum Answer {
    /// Store this report.
    Report(Box<FetchedReport>),
    /// Read these two halves instead (first, then second).
    Halves(ReportRequest, ReportRequest),
    /// Give up: the range cannot be read.
    Failed(Box<ReportLoadError>),
}

/// Decides on `piece`'s fetch: a complete report is stored; a truncated one, or a 5xx or
/// timeout that outlasted the client's retries, is read again as two halves while it can be
/// split; anything else, or a piece that cannot be split, is the error.
fn answer_of(
    piece: &ReportRequest,
    fetched: Result<FetchedReport, ReportFetchError>,
    realm_id: &str,
) -> Answer {
    let why = match fetched {
        Ok(f) if !qbo::is_range_too_large(&f.report) => return Answer::Report(Box::new(f)),
        Ok(_) | Err(ReportFetchError::RangeTooLarge { .. }) => match piece.halves() {
            Some(halves) => (
                halves,
                "Report range too large; reading it in halves".to_owned(),
            ),
            None => return Answer::Failed(Box::new(too_large(piece))),
        },
        Err(ReportFetchError::Qbo(source)) => match piece.halves() {
            Some(halves) if gives_up_on_size(&source) => (
                halves,
                format!("Report range failed on QuickBooks' side ({source}); reading it in halves"),
            ),
            _ => {
                return Answer::Failed(Box::new(ReportLoadError::Fetch {
                    report: piece.name,
                    start: piece.start_date,
                    end: piece.end_date,
                    source,
                }));
            }
        },
    };
    let ((first, second), message) = why;
    tracing::info!(
        realm_id,
        report = %piece.name,
        start = %piece.start_date,
        end = %piece.end_date,
        "{message}"
    );
    Answer::Halves(first, second)
}

/// Whether QuickBooks failed a report in a way a shorter range may avoid: a server error or a
/// timeout that outlasted the client's retries (a large report is slow to build).
fn gives_up_on_size(error: &qbo::QboError) -> bool {
    matches!(
        error,
        qbo::QboError::Server { .. } | qbo::QboError::Timeout { .. }
    )
}

/// The error for a truncated piece that cannot be halved.
fn too_large(piece: &ReportRequest) -> ReportLoadError {
    if piece.name.is_as_of() {
        ReportLoadError::AsOfTooLarge {
            report: piece.name,
            day: piece.end_date,
        }
    } else {
        ReportLoadError::DayTooLarge {
            report: piece.name,
            day: piece.start_date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_days_asked() {
        let date = |s: &str| s.parse::<Date>().expect("date");
        let ts = |s: &str| s.parse::<Timestamp>().expect("ts");
        let pl = ReportRequest::new(
            ReportName::ProfitAndLoss,
            date("2024-01-01"),
            date("2024-01-31"),
        )
        .expect("range");
        assert_eq!(
            request_window(&pl),
            Some((ts("2024-01-01T00:00:00Z"), ts("2024-02-01T00:00:00Z")))
        );
        let aged = ReportRequest {
            name: ReportName::AgedReceivables,
            ..pl
        };
        assert_eq!(
            request_window(&aged),
            Some((ts("2024-01-31T00:00:00Z"), ts("2024-02-01T00:00:00Z")))
        );
    }
}
