//! What happens during a run, as typed events: the runner emits them and knows nothing of how
//! they are shown. [`lines`] renders an event as the contract's operator lines (the same text on
//! the CLI, in the stored run log and in the UI); sinks ([`RunEvents`]) print them, store them,
//! count them or draw a progress bar.

use std::sync::Mutex;
use std::time::Duration;

use jiff::civil::Date;
use uuid::Uuid;

use super::report::{Progress, Summary, summary_lines};
use super::verify::VerifyTotals;
use super::{DateRange, Pipeline, Window};
use crate::store::raw::UpsertCounts;
use crate::store::raw::verify::{MonthRecord, MonthStatus};
use crate::store::runs::RunStatus;

/// Why the token could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    /// `invalid_grant`: the refresh token is dead; reconnect.
    InvalidGrant,
    /// `invalid_client`: the app's keys are wrong.
    InvalidClient,
    /// Anything else (the token endpoint kept failing).
    Other,
}

/// One thing that happened in a run.
#[derive(Debug, Clone)]
pub enum RunEvent<'a> {
    /// The run started (or resumed) on this worker.
    Started {
        /// Run id.
        run_id: Uuid,
        /// Pipeline.
        pipeline: Pipeline,
        /// The range asked.
        range: DateRange,
        /// Windows to load in this execution.
        windows: usize,
        /// Company.
        realm_id: &'a str,
    },
    /// A window starts.
    WindowStarted {
        /// Pipeline.
        pipeline: Pipeline,
        /// The window's day.
        day: Date,
    },
    /// A window waits for another run that holds it.
    WindowWaiting {
        /// The window's day.
        day: Date,
        /// The run holding it.
        holder: Uuid,
    },
    /// A page was written; the run's rows so far.
    PageWritten {
        /// Rows received by the run so far.
        run_rows: u64,
    },
    /// A window was loaded completely.
    WindowCompleted {
        /// The window's day.
        day: Date,
        /// Query pages fetched (an empty window is one page).
        pages: u64,
        /// Rows received.
        rows: u64,
        /// Pages that carried rows.
        written_pages: u64,
        /// Upsert counts.
        counts: UpsertCounts,
        /// Wall time.
        duration: Duration,
    },
    /// A window failed; the others go on.
    WindowFailed {
        /// The window's day.
        day: Date,
        /// What went wrong (no secrets).
        error: &'a str,
        /// Intuit's transaction id, when known.
        intuit_tid: Option<&'a str>,
    },
    /// A window's claim was taken over by another run.
    WindowTakenOver {
        /// The window's day.
        day: Date,
    },
    /// The token could not be had: the run stops.
    TokenFailed {
        /// Run id (for the advice).
        run_id: Uuid,
        /// Which failure.
        kind: TokenFailure,
        /// The error (no secrets).
        message: &'a str,
    },
    /// A warning worth an operator's eye.
    Warning {
        /// The text.
        message: &'a str,
    },
    /// An incremental sync read QuickBooks' deletions (change data capture) and marked them.
    Deletions {
        /// The changes asked for are those since this instant.
        since: jiff::Timestamp,
        /// Deletions QuickBooks reported.
        reported: u64,
        /// Rows of `raw` marked deleted now (the others were marked before or never loaded).
        marked: u64,
        /// Change-data-capture answers read: more than one when QuickBooks answered its maximum
        /// of objects and the rest was asked for from the newest change it carried.
        answers: u32,
    },
    /// The run ended: the summary block and the exporter line.
    Finished {
        /// The summary.
        summary: &'a Summary<'a>,
    },
    /// This worker lost its claim on the run (taken over): it reports nothing more.
    Lost {
        /// Run id.
        run_id: Uuid,
    },
    /// A report pipeline starts reading a month (each basis, in pieces when QuickBooks
    /// refuses the range as too large).
    ReportMonthStarted {
        /// The report pipeline.
        pipeline: Pipeline,
        /// The month (clipped to the run's range).
        window: Window,
    },
    /// A report pipeline stored every piece of a month.
    ReportMonthLoaded {
        /// The report pipeline.
        pipeline: Pipeline,
        /// The month.
        window: Window,
        /// Answers stored (one per basis, more when a range was read in pieces).
        pieces: u64,
        /// Cells written to `raw.qb_report_rows` (0 for an unchanged answer).
        cells: u64,
        /// Answers new, changed and unchanged.
        counts: UpsertCounts,
        /// Wall time.
        duration: Duration,
    },
    /// A verification's month ended (agreed, drifted and repaired, or failed).
    MonthVerified {
        /// The verify pipeline.
        pipeline: Pipeline,
        /// What the month found and did.
        month: &'a MonthRecord,
        /// Intuit's transaction id of a failure, when known.
        intuit_tid: Option<&'a str>,
    },
    /// A verification ended: its `Verify | …` line.
    Verified {
        /// Run id.
        run_id: Uuid,
        /// The verify pipeline.
        pipeline: Pipeline,
        /// How it ended.
        status: RunStatus,
        /// What it found.
        totals: VerifyTotals,
        /// First days of the months that could not be verified.
        failed_months: &'a [Date],
        /// Wall time.
        duration: Duration,
    },
}

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Progress and results.
    Info,
    /// Something to look at.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The lines that tell the operator what to do after `invalid_grant`.
#[must_use]
pub fn invalid_grant_advice(run_id: Uuid) -> [String; 2] {
    [
        "The refresh token is no longer valid (expired, rotated elsewhere, or from another environment). Reconnect the app: Connect QuickBooks in the web UI (/connect) does it in one click; or get a new refresh token from Intuit's developer portal and store it with `qbo-backfill secrets set QBO_REFRESH_TOKEN` (or the UI's Secrets page).".to_owned(),
        format!("Then re-run: qbo-backfill retry {run_id}"),
    ]
}

/// The operator lines for `event`, exactly as the contract writes them.
#[must_use]
pub fn lines(event: &RunEvent<'_>) -> Vec<(Level, String)> {
    use Level::{Error, Info, Warn};
    match event {
        RunEvent::Started {
            run_id,
            pipeline,
            range,
            windows,
            realm_id,
        } => vec![(
            Info,
            started_text(*run_id, *pipeline, range, *windows, realm_id),
        )],
        RunEvent::WindowStarted { pipeline, day } => {
            let next = day.tomorrow().unwrap_or(*day);
            vec![(
                Info,
                format!("Processing {} window {day} → {next}", pipeline.label()),
            )]
        }
        RunEvent::WindowWaiting { day, holder } => vec![(
            Info,
            format!("Window {day} is being loaded by run {holder}; waiting for it to finish"),
        )],
        RunEvent::PageWritten { .. } => Vec::new(),
        RunEvent::WindowCompleted {
            day,
            pages,
            rows,
            written_pages,
            counts,
            duration,
        } => vec![(
            Info,
            completed_text(*day, *pages, *rows, *written_pages, counts, *duration),
        )],
        RunEvent::WindowFailed {
            day,
            error,
            intuit_tid,
        } => vec![(Error, failed_text(*day, error, *intuit_tid))],
        RunEvent::WindowTakenOver { day } => vec![(Warn, format!("Window {day} {TAKEN_OVER}"))],
        RunEvent::TokenFailed {
            run_id,
            kind,
            message,
        } => token_lines(*run_id, *kind, message),
        RunEvent::Warning { message } => vec![(Warn, (*message).to_owned())],
        RunEvent::Deletions {
            since,
            reported,
            marked,
            answers,
        } => deletion_lines(*since, *reported, *marked, *answers),
        RunEvent::Finished { summary } => finished_lines(summary),
        RunEvent::Lost { run_id } => vec![(Warn, format!("Run {run_id} {LOST}"))],
        RunEvent::ReportMonthStarted { .. }
        | RunEvent::ReportMonthLoaded { .. }
        | RunEvent::MonthVerified { .. } => month_lines(event),
        RunEvent::Verified {
            run_id,
            pipeline,
            status,
            totals,
            failed_months,
            duration,
        } => verified_lines(
            *run_id,
            *pipeline,
            *status,
            totals,
            failed_months,
            *duration,
        ),
    }
}

/// The lines of a month of a report or a verification: `Processing <Report> report month
/// YYYY-MM (… → …)`, `Report completed | report=… month=… pieces=… rows=… inserted=… updated=…
/// unchanged=… duration_s=… window=… → …`, `Month verified | …`.
fn month_lines(event: &RunEvent<'_>) -> Vec<(Level, String)> {
    use Level::Info;
    match event {
        RunEvent::MonthVerified {
            pipeline,
            month,
            intuit_tid,
        } => vec![month_line(*pipeline, month, *intuit_tid)],
        RunEvent::ReportMonthStarted { pipeline, window } => vec![(
            Info,
            format!(
                "Processing {} report month {} ({} → {})",
                pipeline.label(),
                window.day.strftime("%Y-%m"),
                window.day,
                window.end_day()
            ),
        )],
        RunEvent::ReportMonthLoaded {
            pipeline,
            window,
            pieces,
            cells,
            counts,
            duration,
        } => vec![(
            Info,
            format!(
                "Report completed | report={} month={} pieces={pieces} rows={cells} inserted={} updated={} unchanged={} duration_s={:.2} window={} → {}",
                pipeline.label(),
                window.day.strftime("%Y-%m"),
                counts.inserted,
                counts.updated,
                counts.unchanged,
                duration.as_secs_f64(),
                window.day,
                window.end_day()
            ),
        )],
        _ => Vec::new(),
    }
}

/// What follows `Window {day}` when another run took the day over.
const TAKEN_OVER: &str =
    "was taken over by another run; loading it again once that run is done with it";

/// What follows `Run {run_id}` when this worker lost its claim.
const LOST: &str =
    "was taken over by another worker (this worker lost its lease); stopping without reporting";

/// `Run … started: <pipeline> <fecha_inicio>..<fecha_fin> windows=… realm_id=…`.
fn started_text(
    run_id: Uuid,
    pipeline: Pipeline,
    range: &DateRange,
    windows: usize,
    realm_id: &str,
) -> String {
    format!(
        "Run {run_id} started: {pipeline} {}..{} windows={windows} realm_id={realm_id}",
        range.fecha_inicio, range.fecha_fin
    )
}

/// `Window completed | pages=… rows=… duration_s=… window=… written_pages=… inserted=… …`.
fn completed_text(
    day: Date,
    pages: u64,
    rows: u64,
    written_pages: u64,
    counts: &UpsertCounts,
    duration: Duration,
) -> String {
    format!(
        "Window completed | pages={pages} rows={rows} duration_s={:.2} window={day} written_pages={written_pages} inserted={} updated={} unchanged={}",
        duration.as_secs_f64(),
        counts.inserted,
        counts.updated,
        counts.unchanged
    )
}

/// `Window failed | window=… error=…`, with QuickBooks' `intuit_tid` unless the error names it.
fn failed_text(day: Date, error: &str, intuit_tid: Option<&str>) -> String {
    match intuit_tid {
        Some(tid) if !error.contains(tid) => {
            format!("Window failed | window={day} error={error}; intuit_tid={tid}")
        }
        _ => format!("Window failed | window={day} error={error}"),
    }
}

/// `Deletions marked | …`, and a second line when CDC's cap made several answers necessary.
fn deletion_lines(
    since: jiff::Timestamp,
    reported: u64,
    marked: u64,
    answers: u32,
) -> Vec<(Level, String)> {
    let since = since.strftime("%Y-%m-%dT%H:%M:%SZ");
    let mut lines = vec![(
        Level::Info,
        format!("Deletions marked | deleted={marked} reported={reported} since={since}"),
    )];
    if answers > 1 {
        lines.push((
            Level::Info,
            format!(
                "Change data capture answered its maximum of {} objects; {answers} answers read to reach every change since {since}",
                qbo::CDC_MAX_OBJECTS,
            ),
        ));
    }
    lines
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// `Month verified | entity=… month=YYYY-MM status=… qbo=… raw=… …`.
fn month_line(pipeline: Pipeline, m: &MonthRecord, intuit_tid: Option<&str>) -> (Level, String) {
    let mut line = format!(
        "Month verified | entity={} month={} status={} qbo={} raw={} loaded={} marked_deleted={} requests={} window={} → {}",
        pipeline.spec().plural,
        m.window.day.strftime("%Y-%m"),
        m.status,
        count(m.qbo_count),
        count(m.raw_count),
        m.loaded,
        m.marked_deleted,
        m.requests,
        m.window.day,
        m.window.end_day(),
    );
    if m.qbo_count_after.is_some() || m.raw_count_after.is_some() {
        line.push_str(&format!(
            " qbo_after={} raw_after={}",
            count(m.qbo_count_after),
            count(m.raw_count_after)
        ));
    }
    if let Some(error) = &m.error {
        line.push_str(&format!(" error={error}"));
        if let Some(tid) = intuit_tid.filter(|tid| !error.contains(tid)) {
            line.push_str(&format!("; intuit_tid={tid}"));
        }
    }
    let level = match m.status {
        MonthStatus::Agreed => Level::Info,
        MonthStatus::Drifted => Level::Warn,
        MonthStatus::Failed => Level::Error,
    };
    (level, line)
}

/// The `Verify | entity=… months=… agreed=… drifted=… loaded=… marked_deleted=… requests=…` line
/// (then `failed=`, `run_id=`, `status=`, `duration_s=`), and what to do when it did not
/// succeed.
fn verified_lines(
    run_id: Uuid,
    pipeline: Pipeline,
    status: RunStatus,
    t: &VerifyTotals,
    failed_months: &[Date],
    duration: Duration,
) -> Vec<(Level, String)> {
    let mut out = vec![(
        Level::Info,
        format!(
            "Verify | entity={} months={} agreed={} drifted={} loaded={} marked_deleted={} requests={} failed={} run_id={run_id} status={status} duration_s={:.2}",
            pipeline.spec().plural,
            t.months,
            t.agreed,
            t.drifted,
            t.loaded,
            t.marked_deleted,
            t.requests,
            t.failed,
            duration.as_secs_f64()
        ),
    )];
    match status {
        RunStatus::Failed if !failed_months.is_empty() => {
            let months: Vec<String> = failed_months
                .iter()
                .map(|d| d.strftime("%Y-%m").to_string())
                .collect();
            out.push((
                Level::Error,
                format!(
                    "Verify failed: {} of {} months could not be verified ({}). Retry only those with: qbo-backfill retry {run_id}",
                    failed_months.len(),
                    t.months,
                    months.join(", ")
                ),
            ));
        }
        RunStatus::Failed => out.push((
            Level::Error,
            format!("Verify failed. Retry it with: qbo-backfill retry {run_id}"),
        )),
        status => out.extend(stopped_line(status, run_id)),
    }
    out
}

/// The line of a run that stopped before its end (interrupted, back in the queue, cancelled).
fn stopped_line(status: RunStatus, run_id: Uuid) -> Option<(Level, String)> {
    match status {
        RunStatus::Interrupted => Some((
            Level::Warn,
            format!("Run interrupted. Finish it with: qbo-backfill retry {run_id}"),
        )),
        RunStatus::Queued => Some((
            Level::Warn,
            format!("Run {run_id} stopped on this worker and went back to the queue"),
        )),
        RunStatus::Cancelled => Some((Level::Warn, format!("Run {run_id} cancelled"))),
        _ => None,
    }
}

fn token_lines(run_id: Uuid, kind: TokenFailure, message: &str) -> Vec<(Level, String)> {
    use Level::Error;
    match kind {
        TokenFailure::InvalidGrant => {
            let mut out = vec![(Error, "Token refresh failed: invalid_grant".to_owned())];
            if message.contains("answer was lost") {
                out.push((
                    Error,
                    "Cause: an earlier token answer was lost on the way (a dropped connection) after Intuit had rotated the refresh token, so the stored one is no longer valid.".to_owned(),
                ));
            }
            out.extend(invalid_grant_advice(run_id).map(|l| (Error, l)));
            out
        }
        TokenFailure::InvalidClient => vec![
            (Error, "Token refresh failed: invalid_client".to_owned()),
            (
                Error,
                format!(
                    "Intuit rejected the app's credentials: check QBO_CLIENT_ID and QBO_CLIENT_SECRET (and that QBO_ENVIRONMENT matches the keys), then re-run: qbo-backfill retry {run_id}"
                ),
            ),
        ],
        TokenFailure::Other => vec![
            (Error, format!("Token refresh failed: {message}")),
            (Error, format!("Then re-run: qbo-backfill retry {run_id}")),
        ],
    }
}

fn finished_lines(summary: &Summary<'_>) -> Vec<(Level, String)> {
    let mut out: Vec<(Level, String)> = summary_lines(summary)
        .into_iter()
        .map(|l| (Level::Info, l))
        .collect();
    let run_id = summary.run_id;
    match summary.status {
        RunStatus::Failed if !summary.failed_days.is_empty() => {
            let days: Vec<String> = summary
                .failed_days
                .iter()
                .map(ToString::to_string)
                .collect();
            out.push((
                Level::Error,
                format!(
                    "Run failed: {} of {} windows failed ({}). Retry only those with: qbo-backfill retry {run_id}",
                    summary.failed_days.len(),
                    summary.totals.windows,
                    days.join(", ")
                ),
            ));
        }
        status => out.extend(stopped_line(status, run_id)),
    }
    out
}

/// Where a run's events go.
pub trait RunEvents: Send + Sync {
    /// Handles one event.
    fn emit(&self, event: &RunEvent<'_>);
}

/// Prints an event's lines through `tracing` (the process's log output).
pub fn log_lines(event: &RunEvent<'_>) {
    for (level, line) in lines(event) {
        match level {
            Level::Info => tracing::info!("{line}"),
            Level::Warn => tracing::warn!("{line}"),
            Level::Error => tracing::error!("{line}"),
        }
    }
}

/// The command line's sink: the lines on stdout and, on a terminal, a progress bar.
#[derive(Default)]
pub struct TerminalEvents {
    progress: Mutex<Option<Progress>>,
}

impl TerminalEvents {
    /// A sink with no bar yet (one appears when the run starts).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with_progress(&self, f: impl FnOnce(&Progress)) {
        if let Ok(slot) = self.progress.lock()
            && let Some(p) = slot.as_ref()
        {
            f(p);
        }
    }
}

impl RunEvents for TerminalEvents {
    fn emit(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started {
                pipeline, windows, ..
            } => {
                if let Ok(mut slot) = self.progress.lock() {
                    *slot = Some(Progress::start(*pipeline, *windows));
                }
            }
            RunEvent::PageWritten { run_rows } => self.with_progress(|p| p.rows(*run_rows)),
            RunEvent::WindowCompleted { .. }
            | RunEvent::WindowFailed { .. }
            | RunEvent::ReportMonthLoaded { .. }
            | RunEvent::MonthVerified { .. } => {
                self.with_progress(Progress::window_done);
            }
            RunEvent::Finished { .. } | RunEvent::Lost { .. } | RunEvent::Verified { .. } => {
                if let Ok(mut slot) = self.progress.lock() {
                    slot.take();
                }
            }
            _ => {}
        }
        log_lines(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_month_lines_name_the_report_and_month() {
        let pl = Pipeline::of_report(qbo::ReportName::ProfitAndLoss).expect("report pipeline");
        let range = DateRange::parse("2026-01-15", "2026-03-01").expect("range");
        let window = range.months().expect("months")[0];
        assert_eq!(
            lines(&RunEvent::ReportMonthStarted {
                pipeline: pl,
                window
            }),
            vec![(
                Level::Info,
                "Processing ProfitAndLoss report month 2026-01 (2026-01-15 → 2026-02-01)"
                    .to_owned()
            )]
        );
        let loaded = lines(&RunEvent::ReportMonthLoaded {
            pipeline: pl,
            window,
            pieces: 2,
            cells: 40,
            counts: UpsertCounts {
                inserted: 1,
                updated: 1,
                unchanged: 0,
            },
            duration: Duration::from_millis(250),
        });
        assert_eq!(
            loaded,
            vec![(
                Level::Info,
                "Report completed | report=ProfitAndLoss month=2026-01 pieces=2 rows=40 inserted=1 updated=1 unchanged=0 duration_s=0.25 window=2026-01-15 → 2026-02-01".to_owned()
            )]
        );
    }

    #[test]
    fn window_lines_are_the_contracts() {
        let day = jiff::civil::date(2026, 1, 10);
        assert_eq!(
            lines(&RunEvent::WindowStarted {
                pipeline: Pipeline::CUSTOMERS,
                day
            }),
            vec![(
                Level::Info,
                "Processing Customers window 2026-01-10 → 2026-01-11".to_owned()
            )]
        );
        let done = lines(&RunEvent::WindowCompleted {
            day,
            pages: 1,
            rows: 0,
            written_pages: 0,
            counts: UpsertCounts::default(),
            duration: Duration::from_millis(1040),
        });
        assert_eq!(
            done[0].1,
            "Window completed | pages=1 rows=0 duration_s=1.04 window=2026-01-10 written_pages=0 inserted=0 updated=0 unchanged=0"
        );
        let grant = lines(&RunEvent::TokenFailed {
            run_id: Uuid::nil(),
            kind: TokenFailure::InvalidGrant,
            message: "x",
        });
        assert_eq!(grant[0].1, "Token refresh failed: invalid_grant");
        assert!(grant[1].1.contains("Reconnect the app"));
        let lost = lines(&RunEvent::TokenFailed {
            run_id: Uuid::nil(),
            kind: TokenFailure::InvalidGrant,
            message: "QuickBooks refused the refresh token (invalid_grant: an earlier token answer was lost on the way after Intuit had rotated the refresh token, so the stored one is no longer valid)",
        });
        assert_eq!(lost[0].1, "Token refresh failed: invalid_grant");
        assert!(
            lost[1]
                .1
                .starts_with("Cause: an earlier token answer was lost")
        );
        assert!(lost[2].1.contains("Reconnect the app"));
    }

    #[test]
    fn verify_lines_start_as_the_issue_pins_them() {
        let verify = Pipeline::INVOICES.with_mode(super::super::Mode::Verify);
        let totals = VerifyTotals {
            months: 120,
            agreed: 119,
            drifted: 1,
            failed: 0,
            loaded: 0,
            marked_deleted: 2,
            requests: 123,
        };
        let out = lines(&RunEvent::Verified {
            run_id: Uuid::nil(),
            pipeline: verify,
            status: RunStatus::Succeeded,
            totals,
            failed_months: &[],
            duration: Duration::from_millis(1500),
        });
        assert_eq!(out.len(), 1);
        assert!(
            out[0].1.starts_with(
                "Verify | entity=invoices months=120 agreed=119 drifted=1 loaded=0 marked_deleted=2 requests=123 "
            ),
            "{}",
            out[0].1
        );
        let failed = lines(&RunEvent::Verified {
            run_id: Uuid::nil(),
            pipeline: verify,
            status: RunStatus::Failed,
            totals: VerifyTotals {
                failed: 1,
                agreed: 118,
                ..totals
            },
            failed_months: &[jiff::civil::date(2026, 3, 1)],
            duration: Duration::ZERO,
        });
        assert_eq!(failed[1].0, Level::Error);
        assert!(failed[1].1.contains("(2026-03)"), "{}", failed[1].1);
        assert!(
            failed[1].1.contains("qbo-backfill retry"),
            "{}",
            failed[1].1
        );
        let month = MonthRecord {
            window: jiff::civil::date(2026, 1, 10)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| crate::pipeline::Window::between(z.timestamp(), z.timestamp()))
                .unwrap(),
            qbo_count: Some(10),
            raw_count: Some(12),
            qbo_count_after: Some(10),
            raw_count_after: Some(10),
            status: MonthStatus::Drifted,
            loaded: 0,
            marked_deleted: 2,
            requests: 3,
            error: None,
        };
        let line = lines(&RunEvent::MonthVerified {
            pipeline: verify,
            month: &month,
            intuit_tid: None,
        });
        assert_eq!(line[0].0, Level::Warn);
        assert!(
            line[0]
                .1
                .starts_with("Month verified | entity=invoices month=2026-01 status=drifted qbo=10 raw=12 loaded=0 marked_deleted=2 requests=3"),
            "{}",
            line[0].1
        );
    }
}
