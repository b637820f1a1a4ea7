//! What operators see: log lines exactly as the contract writes them (`Processing Customers
//! window …`, `Window completed | …`, the summary block, `Export completed | …`), printed through
//! `tracing` as bare lines on stdout (or, with `QBO_LOG_FORMAT=json`, one JSON object a line
//! whose `message` is that text, for container log collectors), and a progress bar when stdout
//! is a terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::{DateRange, Pipeline};
use crate::store::runs::{RunStatus, RunTotals};

static BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn bar_slot() -> &'static Mutex<Option<ProgressBar>> {
    BAR.get_or_init(|| Mutex::new(None))
}

fn current_bar() -> Option<ProgressBar> {
    bar_slot().lock().ok().and_then(|slot| slot.clone())
}

/// The log filter without `RUST_LOG`.
const DEFAULT_LOG_FILTER: &str = "warn,qbo_backfill=info,qbo=warn,qbo_sim=warn,sqlx=error";

/// Installs the process's log output: operator lines on stdout (bare, as the contract writes
/// them; JSON lines when `QBO_LOG_FORMAT=json`), filtered by `RUST_LOG` (default: `info` for this
/// program, `warn` for the rest, `error` for `sqlx`, whose "slow statement" warnings would print
/// whole SQL statements among the operator's lines).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let json = std::env::var("QBO_LOG_FORMAT").is_ok_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(OperatorFormat { json })
        .with_writer(BarAwareStdout)
        .try_init();
}

/// Formats an event as its message followed by ` key=value` for each field; events from other
/// crates carry their level and target so they are told apart from operator lines. In JSON, one
/// object a line: `ts`, `level`, `target`, `message` (the same text) and the fields.
pub struct OperatorFormat {
    /// One JSON object a line instead of text.
    pub json: bool,
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
    values: serde_json::Map<String, serde_json::Value>,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
            self.values.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let text = format!("{value:?}");
            let _ = write!(self.fields, " {}={text}", field.name());
            self.values.insert(field.name().to_owned(), text.into());
        }
    }
}

/// One log event as a JSON line.
fn json_line(meta: &tracing::Metadata<'_>, visitor: LineVisitor) -> String {
    let mut object = serde_json::Map::new();
    object.insert("ts".into(), jiff::Timestamp::now().to_string().into());
    object.insert("level".into(), meta.level().as_str().into());
    object.insert("target".into(), meta.target().into());
    object.insert("message".into(), visitor.message.into());
    for (k, v) in visitor.values {
        object.entry(k).or_insert(v);
    }
    serde_json::Value::Object(object).to_string()
}

impl<S, N> FormatEvent<S, N> for OperatorFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        if self.json {
            return writeln!(writer, "{}", json_line(meta, visitor));
        }
        if !meta.target().starts_with("qbo_backfill") {
            write!(writer, "{} {}: ", meta.level(), meta.target())?;
        }
        writeln!(writer, "{}{}", visitor.message, visitor.fields)
    }
}

/// Writes each formatted line to stdout in one piece, above the progress bar if one is shown.
pub struct BarAwareStdout;

/// One line being written by [`BarAwareStdout`].
pub struct LineWriter {
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&self.buf);
            let _ = out.flush();
        };
        match current_bar() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for BarAwareStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            buf: Vec::with_capacity(128),
        }
    }
}

/// Live progress of one run: a bar on a terminal, nothing extra otherwise (the per-window log
/// lines are the progress then).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts progress for `windows` windows of `pipeline`; shows a bar only when stdout is a
    /// terminal.
    #[must_use]
    pub fn start(pipeline: Pipeline, windows: usize) -> Self {
        if !std::io::stdout().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(windows as u64),
            ProgressDrawTarget::stdout_with_hz(8),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed_precise}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(pipeline.label());
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut slot) = bar_slot().lock() {
            *slot = Some(bar.clone());
        }
        Self { bar: Some(bar) }
    }

    /// Updates the running totals shown.
    pub fn rows(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{rows} rows"));
        }
    }

    /// One more window ended.
    pub fn window_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut slot) = bar_slot().lock() {
                *slot = None;
            }
        }
    }
}

/// The request counters shown in the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCounters {
    /// API requests sent.
    pub requests: u64,
    /// Retries after transient failures.
    pub retries: u64,
    /// 429 answers waited out.
    pub throttled: u64,
}

/// Everything the summary block reports.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    /// Pipeline.
    pub pipeline: Pipeline,
    /// The run's range.
    pub range: DateRange,
    /// The run.
    pub run_id: uuid::Uuid,
    /// How it ended.
    pub status: RunStatus,
    /// Totals.
    pub totals: RunTotals,
    /// Days whose window failed.
    pub failed_days: &'a [jiff::civil::Date],
    /// Wall time.
    pub duration: Duration,
    /// Request counters.
    pub requests: RequestCounters,
}

/// The summary block and the exporter line, one string per line, exactly as the contract
/// writes them (extra `key=value` lines follow the contract's four).
#[must_use]
pub fn summary_lines(s: &Summary<'_>) -> Vec<String> {
    let title = s.pipeline.label().to_uppercase();
    let mut lines = vec![
        format!("==== QB {title} BACKFILL SUMMARY ===="),
        format!("window_start_utc={}", midnight(s.range.fecha_inicio)),
        format!("window_end_utc={}", midnight(s.range.fecha_fin)),
        format!("total_rows={}", s.totals.rows),
        format!("duration_seconds={:.2}", s.duration.as_secs_f64()),
        format!("windows={}", s.totals.windows),
        format!("failed_windows={}", s.totals.failed_windows),
        format!("pages={}", s.totals.pages),
        format!("requests={}", s.requests.requests),
        format!("retries={}", s.requests.retries),
        format!("throttled_waits={}", s.requests.throttled),
        format!("run_id={}", s.run_id),
        format!("status={}", s.status.as_str()),
    ];
    if !s.failed_days.is_empty() {
        let days: Vec<String> = s.failed_days.iter().map(ToString::to_string).collect();
        lines.push(format!("failed_days={}", days.join(",")));
    }
    let c = s.totals.counts;
    lines.push(format!(
        "Export completed | inserted={} updated={} unchanged={} total={}",
        c.inserted,
        c.updated,
        c.unchanged,
        c.inserted + c.updated + c.unchanged
    ));
    lines
}

fn midnight(day: jiff::civil::Date) -> String {
    day.to_zoned(jiff::tz::TimeZone::UTC).map_or_else(
        |_| format!("{day}T00:00:00Z"),
        |z| z.timestamp().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::raw::UpsertCounts;

    #[test]
    fn summary_block_is_the_contracts() {
        let range = DateRange::parse("2026-01-01", "2026-01-31").unwrap();
        let lines = summary_lines(&Summary {
            pipeline: Pipeline::CUSTOMERS,
            range,
            run_id: uuid::Uuid::nil(),
            status: RunStatus::Succeeded,
            totals: RunTotals {
                windows: 30,
                failed_windows: 0,
                pages: 30,
                rows: 22,
                counts: UpsertCounts {
                    inserted: 0,
                    updated: 0,
                    unchanged: 22,
                },
            },
            failed_days: &[],
            duration: Duration::from_millis(37_114),
            requests: RequestCounters {
                requests: 30,
                retries: 0,
                throttled: 0,
            },
        });
        assert_eq!(
            lines.join("\n"),
            "==== QB CUSTOMERS BACKFILL SUMMARY ====\n\
             window_start_utc=2026-01-01T00:00:00Z\n\
             window_end_utc=2026-01-31T00:00:00Z\n\
             total_rows=22\n\
             duration_seconds=37.11\n\
             windows=30\n\
             failed_windows=0\n\
             pages=30\n\
             requests=30\n\
             retries=0\n\
             throttled_waits=0\n\
             run_id=00000000-0000-0000-0000-000000000000\n\
             status=succeeded\n\
             Export completed | inserted=0 updated=0 unchanged=22 total=22"
        );
    }
}
