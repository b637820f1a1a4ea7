//! Pipelines and their ranges, as values: a pipeline's name, entity (or report) and mode, a
//! validated `[fecha_inicio, fecha_fin)` range and the UTC windows (days, or calendar months for
//! a verification or a report) that tile it. No database, no I/O: parsed once at the edge, then passed.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;

use super::catalog;

/// What a pipeline windows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `qb_<plural>_backfill`: history, windowed by `MetaData.CreateTime`.
    Backfill,
    /// `qb_<plural>_incremental`: changes, windowed by `MetaData.LastUpdatedTime`, with
    /// deletions from change data capture and a cursor per company and entity.
    Incremental,
    /// `qb_<plural>_verify`: reconciles `raw` with QuickBooks by `MetaData.CreateTime`, one
    /// calendar month per window (see [`verify`]).
    Verify,
    /// `qb_<report>_backfill`: one of QuickBooks' financial reports ([`catalog::REPORTS`]),
    /// read one calendar month per window into `raw.qb_reports` and `raw.qb_report_rows`.
    Report,
}

/// A pipeline, as operators name it: an entity of [`catalog::ENTITIES`] and a [`Mode`], or a
/// report of [`catalog::REPORTS`] ([`Mode::Report`]; `index` is then the report's position).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pipeline {
    index: u8,
    mode: Mode,
}

impl Pipeline {
    /// `qb_customers_backfill`.
    pub const CUSTOMERS: Self = Self::backfill_at(0);
    /// `qb_items_backfill`.
    pub const ITEMS: Self = Self::backfill_at(1);
    /// `qb_invoices_backfill`.
    pub const INVOICES: Self = Self::backfill_at(2);

    const fn backfill_at(index: u8) -> Self {
        Self {
            index,
            mode: Mode::Backfill,
        }
    }

    /// Every pipeline: the backfills in catalog order, then the incremental syncs, then the
    /// verifications, then the reports.
    pub fn all() -> impl Iterator<Item = Self> {
        [
            Mode::Backfill,
            Mode::Incremental,
            Mode::Verify,
            Mode::Report,
        ]
        .into_iter()
        .flat_map(Self::every)
    }

    /// Every pipeline of one mode, in catalog order.
    pub fn every(mode: Mode) -> impl Iterator<Item = Self> {
        let count = match mode {
            Mode::Report => catalog::REPORTS.len(),
            Mode::Backfill | Mode::Incremental | Mode::Verify => catalog::ENTITIES.len(),
        };
        (0..count).filter_map(move |i| u8::try_from(i).ok().map(|index| Self { index, mode }))
    }

    /// The report pipeline of `report` (`qb_profit_and_loss_backfill`).
    #[must_use]
    pub fn of_report(report: qbo::ReportName) -> Option<Self> {
        let index = catalog::REPORTS.iter().position(|r| r.report == report)?;
        Some(Self {
            index: u8::try_from(index).ok()?,
            mode: Mode::Report,
        })
    }

    /// The report this pipeline loads, for a [`Mode::Report`] pipeline.
    #[must_use]
    pub fn report(self) -> Option<&'static catalog::ReportSpec> {
        match self.mode {
            Mode::Report => catalog::REPORTS.get(usize::from(self.index)),
            Mode::Backfill | Mode::Incremental | Mode::Verify => None,
        }
    }

    /// The pipeline of `mode` for `entity`, if we load it.
    #[must_use]
    pub fn of(entity: qbo::Entity, mode: Mode) -> Option<Self> {
        let index = u8::try_from(catalog::position(entity)?).ok()?;
        Some(Self { index, mode })
    }

    /// The same entity in another mode (`qb_customers_backfill` → `qb_customers_incremental`).
    #[must_use]
    pub const fn with_mode(self, mode: Mode) -> Self {
        Self {
            index: self.index,
            mode,
        }
    }

    /// The entity's position in [`catalog::ENTITIES`] (its raw table is the one at the same
    /// position).
    #[must_use]
    pub fn position(self) -> usize {
        usize::from(self.index)
    }

    /// The entity's entry in the catalog. Entity pipelines only: a [`Mode::Report`] pipeline
    /// has no entity (see [`Self::report`]); the worker hands those to the report loader, and
    /// nothing that reads an entity's table is given one.
    #[must_use]
    pub fn spec(self) -> &'static catalog::EntitySpec {
        debug_assert!(self.mode != Mode::Report, "{self} has no entity");
        &catalog::ENTITIES[usize::from(self.index)]
    }

    /// What the pipeline loads, as the UI and `pipelines` show it: the entity (`Customer`) or
    /// the report (`ProfitAndLoss`).
    #[must_use]
    pub fn subject(self) -> String {
        match self.report() {
            Some(report) => report.label.to_owned(),
            None => self.entity().to_string(),
        }
    }

    /// The table it writes: `raw.qb_<plural>`, or `raw.qb_reports` (with its cells in
    /// `raw.qb_report_rows`) for a report.
    #[must_use]
    pub fn target_table(self) -> &'static str {
        match self.mode {
            Mode::Report => "raw.qb_reports",
            Mode::Backfill | Mode::Incremental | Mode::Verify => self.spec().table,
        }
    }

    /// Backfill, incremental or verify.
    #[must_use]
    pub const fn mode(self) -> Mode {
        self.mode
    }

    /// The pipeline's name (`qb_customers_backfill`, `qb_customers_incremental`,
    /// `qb_customers_verify`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.mode {
            Mode::Backfill => self.spec().backfill,
            Mode::Incremental => self.spec().incremental,
            Mode::Verify => self.spec().verify,
            Mode::Report => self.report().map_or("", |r| r.backfill),
        }
    }

    /// The QBO entity it loads.
    #[must_use]
    pub fn entity(self) -> qbo::Entity {
        self.spec().entity
    }

    /// The plural label used in log lines (`Customers`).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self.report() {
            Some(report) => report.label,
            None => self.spec().label,
        }
    }

    /// The timestamp its windows filter on: `CreateTime` for backfills and verifications,
    /// `LastUpdatedTime` for incremental syncs.
    #[must_use]
    pub const fn time_field(self) -> qbo::TimeField {
        match self.mode {
            Mode::Backfill | Mode::Verify | Mode::Report => qbo::TimeField::Created,
            Mode::Incremental => qbo::TimeField::LastUpdated,
        }
    }

    /// The windows of a run of this pipeline over `range`: calendar months (the first and last
    /// clipped to the range) for verifications and reports, UTC days otherwise.
    ///
    /// # Errors
    /// Dates at the edge of what can be represented.
    pub fn windows(self, range: &DateRange) -> Result<Vec<Window>, RangeError> {
        match self.mode {
            Mode::Verify | Mode::Report => range.months(),
            Mode::Backfill | Mode::Incremental => range.windows(),
        }
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given is not a pipeline.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown pipeline `{0}` (expected qb_<entity>_backfill, _incremental or _verify, e.g. qb_customers_backfill; a report's, e.g. qb_profit_and_loss_backfill; or all_backfill / all_incremental; `qbo-backfill pipelines` lists them)"
)]
pub struct UnknownPipeline(pub String);

impl FromStr for Pipeline {
    type Err = UnknownPipeline;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::all()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPipeline(echo(s)))
    }
}

/// How far before its cursor an incremental sync without dates starts again, so that a change
/// committed by QuickBooks just as the last sync read never falls between two syncs.
pub const CURSOR_OVERLAP: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// The range an incremental sync without dates loads: from the UTC day of
/// `cursor - CURSOR_OVERLAP` to the end of today (UTC).
///
/// # Errors
/// A range longer than [`MAX_WINDOWS`] or outside what can be represented.
pub fn range_since(cursor: Timestamp, now: Timestamp) -> Result<DateRange, RangeError> {
    let utc = jiff::tz::TimeZone::UTC;
    let from = cursor
        .checked_sub(CURSOR_OVERLAP)
        .map_err(|_| RangeError::OutOfRange)?
        .to_zoned(utc.clone())
        .date();
    let today = now.to_zoned(utc).date();
    let fin = today.tomorrow().map_err(|_| RangeError::OutOfRange)?;
    DateRange::new(from.min(today), fin)
}

/// One UTC window `[start, end)`: a day for loads, a calendar month (or the part of one inside
/// the range) for verifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// The (first) day the window covers.
    pub day: Date,
    /// `day 00:00Z`.
    pub start: Timestamp,
    /// The end: `day+1 00:00Z` for a daily window.
    pub end: Timestamp,
}

impl Window {
    /// The window covering `day` (UTC).
    ///
    /// # Errors
    /// When `day` is the last representable date.
    pub fn for_day(day: Date) -> Result<Self, RangeError> {
        let next = day.tomorrow().map_err(|_| RangeError::OutOfRange)?;
        Ok(Self {
            day,
            start: utc_midnight(day)?,
            end: utc_midnight(next)?,
        })
    }
}

impl Window {
    /// The window `[start, end)` as stored (`ops.run_windows`); its day is `start`'s UTC date.
    #[must_use]
    pub fn between(start: Timestamp, end: Timestamp) -> Self {
        Self {
            day: start.to_zoned(jiff::tz::TimeZone::UTC).date(),
            start,
            end,
        }
    }

    /// The first day after the window.
    #[must_use]
    pub fn end_day(&self) -> Date {
        self.end.to_zoned(jiff::tz::TimeZone::UTC).date()
    }
}

fn utc_midnight(day: Date) -> Result<Timestamp, RangeError> {
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| RangeError::OutOfRange)
}

/// What is wrong with a requested range (bad input: exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A date did not parse.
    #[error("{flag}: `{value}` is not a valid date (expected YYYY-MM-DD, e.g. 2026-01-31)")]
    BadDate {
        /// The flag (`--fecha-inicio`).
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// `fecha_fin` is not after `fecha_inicio`.
    #[error(
        "--fecha-fin ({fin}) must be after --fecha-inicio ({inicio}): the range is half-open, so one day is --fecha-inicio D --fecha-fin D+1"
    )]
    Empty {
        /// `fecha_inicio`.
        inicio: Date,
        /// `fecha_fin`.
        fin: Date,
    },
    /// Too many windows for one run.
    #[error(
        "the range {inicio}..{fin} has {days} days; at most {MAX_WINDOWS} windows fit in one run"
    )]
    TooLong {
        /// `fecha_inicio`.
        inicio: Date,
        /// `fecha_fin`.
        fin: Date,
        /// Days asked.
        days: i64,
    },
    /// A date outside what can be represented.
    #[error("the date range is outside what can be represented")]
    OutOfRange,
}

/// At most this many windows in one run (about 100 years).
pub const MAX_WINDOWS: i64 = 36_600;

/// The longest part of a rejected value echoed back in an error message.
const MAX_ECHO_CHARS: usize = 40;

/// `value` as echoed in a one-line error: at most [`MAX_ECHO_CHARS`] characters, control
/// characters escaped.
pub(crate) fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_ECHO_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}

/// Parses a `YYYY-MM-DD` date strictly (no times, no offsets, no surrounding junk), from year
/// 0001 (PostgreSQL has no year 0000).
///
/// # Errors
/// [`RangeError::BadDate`] naming `flag`.
pub fn parse_date(flag: &'static str, value: &str) -> Result<Date, RangeError> {
    let bad = || RangeError::BadDate {
        flag,
        value: echo(value),
    };
    let bytes = value.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let date = value.parse::<Date>().map_err(|_| bad())?;
    if date.year() < 1 {
        return Err(bad());
    }
    Ok(date)
}

/// A validated `[fecha_inicio, fecha_fin)` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// First day loaded.
    pub fecha_inicio: Date,
    /// First day not loaded.
    pub fecha_fin: Date,
}

impl DateRange {
    /// Validates a range.
    ///
    /// # Errors
    /// An empty, reversed or too long range.
    pub fn new(fecha_inicio: Date, fecha_fin: Date) -> Result<Self, RangeError> {
        if fecha_fin <= fecha_inicio {
            return Err(RangeError::Empty {
                inicio: fecha_inicio,
                fin: fecha_fin,
            });
        }
        let days = i64::from(
            fecha_inicio
                .until((jiff::Unit::Day, fecha_fin))
                .map_err(|_| RangeError::OutOfRange)?
                .get_days(),
        );
        if days > MAX_WINDOWS {
            return Err(RangeError::TooLong {
                inicio: fecha_inicio,
                fin: fecha_fin,
                days,
            });
        }
        Ok(Self {
            fecha_inicio,
            fecha_fin,
        })
    }

    /// Parses and validates the CLI's `--fecha-inicio` and `--fecha-fin`.
    ///
    /// # Errors
    /// A bad date or range, with a one-line message.
    pub fn parse(fecha_inicio: &str, fecha_fin: &str) -> Result<Self, RangeError> {
        Self::new(
            parse_date("--fecha-inicio", fecha_inicio)?,
            parse_date("--fecha-fin", fecha_fin)?,
        )
    }

    /// The daily windows that tile the range, in order, without gaps or overlaps.
    ///
    /// # Errors
    /// Dates at the edge of what can be represented.
    pub fn windows(&self) -> Result<Vec<Window>, RangeError> {
        let mut out = Vec::new();
        let mut day = self.fecha_inicio;
        while day < self.fecha_fin {
            out.push(Window::for_day(day)?);
            day = day.tomorrow().map_err(|_| RangeError::OutOfRange)?;
        }
        Ok(out)
    }

    /// The calendar months that tile the range, in order: `[month start, next month start)`,
    /// the first starting at `fecha_inicio` and the last ending at `fecha_fin`.
    ///
    /// # Errors
    /// Dates at the edge of what can be represented.
    pub fn months(&self) -> Result<Vec<Window>, RangeError> {
        let mut out = Vec::new();
        let mut from = self.fecha_inicio;
        while from < self.fecha_fin {
            let next_month = from
                .first_of_month()
                .checked_add(jiff::Span::new().months(1))
                .map_err(|_| RangeError::OutOfRange)?;
            let to = next_month.min(self.fecha_fin);
            out.push(Window {
                day: from,
                start: utc_midnight(from)?,
                end: utc_midnight(to)?,
            });
            from = to;
        }
        Ok(out)
    }

    /// `fecha_inicio 00:00Z`.
    ///
    /// # Errors
    /// Out of range.
    pub fn start(&self) -> Result<Timestamp, RangeError> {
        utc_midnight(self.fecha_inicio)
    }

    /// `fecha_fin 00:00Z`.
    ///
    /// # Errors
    /// Out of range.
    pub fn end(&self) -> Result<Timestamp, RangeError> {
        utc_midnight(self.fecha_fin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    #[test]
    fn january_is_thirty_windows_ending_on_the_31st() {
        let range = DateRange::parse("2026-01-01", "2026-01-31").unwrap();
        let windows = range.windows().unwrap();
        assert_eq!(windows.len(), 30);
        assert_eq!(windows[0].start.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(windows[29].end.to_string(), "2026-01-31T00:00:00Z");
        assert_eq!(range.end().unwrap().to_string(), "2026-01-31T00:00:00Z");
    }

    #[test]
    fn bad_input_is_rejected_with_one_line() {
        for (a, b) in [
            ("2026-13-01", "2026-01-02"),
            ("2026-01-01T00:00", "2026-01-02"),
            ("26-01-01", "2026-01-02"),
            ("2026-02-30", "2026-03-01"),
            ("", "2026-01-01"),
            ("2026-01-01", "2026-01-01"),
            ("2026-01-02", "2026-01-01"),
            ("1900-01-01", "2026-01-01"),
            (" 2026-01-01", "2026-01-02"),
            ("0000-01-01", "0000-01-02"),
            ("2026-01-01", "2026-01-0\n"),
        ] {
            let err = DateRange::parse(a, b).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
        }
        let huge = "9".repeat(100_000);
        let err = DateRange::parse("2026-01-01", &huge)
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 200,
            "the whole value was echoed: {} bytes",
            err.len()
        );
        assert!(DateRange::parse("0001-01-01", "0001-01-02").is_ok());
    }

    #[test]
    fn pipelines_parse_by_name_only() {
        assert_eq!(
            "qb_items_backfill".parse::<Pipeline>().unwrap(),
            Pipeline::ITEMS
        );
        let sync = "qb_journal_entries_incremental"
            .parse::<Pipeline>()
            .unwrap();
        assert_eq!(sync.entity(), qbo::Entity::JournalEntry);
        assert_eq!(sync.mode(), Mode::Incremental);
        assert_eq!(
            Pipeline::all().count(),
            3 * catalog::ENTITIES.len() + catalog::REPORTS.len()
        );
        assert_eq!(Pipeline::all().count(), 85);
        let verify = "qb_time_activities_verify".parse::<Pipeline>().unwrap();
        assert_eq!(verify.mode(), Mode::Verify);
        assert_eq!(verify.entity(), qbo::Entity::TimeActivity);
        assert_eq!(verify.time_field(), qbo::TimeField::Created);
        for p in Pipeline::all() {
            assert_eq!(p.name().parse::<Pipeline>().unwrap(), p);
        }
        assert!("Customers".parse::<Pipeline>().is_err());
    }

    #[test]
    fn report_pipelines_name_their_report_and_window_by_month() {
        let pl = "qb_profit_and_loss_backfill".parse::<Pipeline>().unwrap();
        assert_eq!(pl.mode(), Mode::Report);
        assert_eq!(
            pl.report().map(|r| r.report),
            Some(qbo::ReportName::ProfitAndLoss)
        );
        assert_eq!(
            Pipeline::of_report(qbo::ReportName::ProfitAndLoss),
            Some(pl)
        );
        assert_eq!(
            (pl.label(), pl.subject()),
            ("ProfitAndLoss", "ProfitAndLoss".to_owned())
        );
        assert_eq!(pl.target_table(), "raw.qb_reports");
        let aged = Pipeline::of_report(qbo::ReportName::AgedPayables).unwrap();
        assert_eq!(aged.name(), "qb_aged_payables_backfill");
        assert_eq!(Pipeline::INVOICES.report(), None);
        assert_eq!(Pipeline::INVOICES.target_table(), "raw.qb_invoices");
        assert_eq!(Pipeline::INVOICES.subject(), "Invoice");
        let range = DateRange::parse("2026-01-15", "2026-03-01").unwrap();
        let months = pl.windows(&range).unwrap();
        assert_eq!(months.len(), 2);
        assert_eq!(months[0].day, date(2026, 1, 15));
        assert_eq!(months[1].end.to_string(), "2026-03-01T00:00:00Z");
        let err = "qb_profit_and_loss".parse::<Pipeline>().unwrap_err();
        assert!(
            err.to_string().contains("qb_profit_and_loss_backfill"),
            "{err}"
        );
    }

    #[test]
    fn a_sync_without_dates_starts_a_little_before_its_cursor() {
        let now: Timestamp = "2026-03-10T15:00:00Z".parse().unwrap();
        let range = range_since("2026-03-09T15:00:00Z".parse().unwrap(), now).unwrap();
        assert_eq!(
            (range.fecha_inicio, range.fecha_fin),
            (date(2026, 3, 9), date(2026, 3, 11))
        );
        // Just after midnight, the overlap reaches into the day before.
        let range = range_since("2026-03-10T00:05:00Z".parse().unwrap(), now).unwrap();
        assert_eq!(range.fecha_inicio, date(2026, 3, 9));
        // A cursor in the future (clock skew) still loads today.
        let range = range_since("2026-03-12T00:00:00Z".parse().unwrap(), now).unwrap();
        assert_eq!(
            (range.fecha_inicio, range.fecha_fin),
            (date(2026, 3, 10), date(2026, 3, 11))
        );
    }

    #[test]
    fn verify_windows_are_calendar_months_clipped_to_the_range() {
        let range = DateRange::parse("2025-11-15", "2026-02-10").unwrap();
        let verify = Pipeline::INVOICES.with_mode(Mode::Verify);
        let months = verify.windows(&range).unwrap();
        let shown: Vec<(String, String)> = months
            .iter()
            .map(|w| (w.start.to_string(), w.end.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("2025-11-15T00:00:00Z", "2025-12-01T00:00:00Z"),
                ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"),
                ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
                ("2026-02-01T00:00:00Z", "2026-02-10T00:00:00Z"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(months[0].day, date(2025, 11, 15));
        assert_eq!(months[1].day, date(2025, 12, 1));
        assert_eq!(Window::between(months[2].start, months[2].end), months[2]);
        // Loads keep their daily windows.
        assert_eq!(Pipeline::INVOICES.windows(&range).unwrap().len(), 87);
        // One day is one (clipped) month.
        let day = DateRange::parse("2026-03-31", "2026-04-01").unwrap();
        assert_eq!(verify.windows(&day).unwrap(), day.windows().unwrap());
    }

    proptest! {
        #[test]
        fn months_tile_the_range(start in 0i64..20_000, len in 1i64..2_000) {
            let inicio = date(1990, 1, 1).checked_add(jiff::Span::new().days(start)).unwrap();
            let fin = inicio.checked_add(jiff::Span::new().days(len)).unwrap();
            let range = DateRange::new(inicio, fin).unwrap();
            let months = range.months().unwrap();
            prop_assert_eq!(months[0].start, range.start().unwrap());
            prop_assert_eq!(months[months.len() - 1].end, range.end().unwrap());
            for pair in months.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert_eq!(pair[1].day.day(), 1);
                prop_assert!(pair[0].day.month() != pair[1].day.month() || pair[0].day.year() != pair[1].day.year());
            }
        }

        #[test]
        fn windows_tile_the_range(start in 0i64..20_000, len in 1i64..800) {
            let inicio = date(1990, 1, 1).checked_add(jiff::Span::new().days(start)).unwrap();
            let fin = inicio.checked_add(jiff::Span::new().days(len)).unwrap();
            let range = DateRange::new(inicio, fin).unwrap();
            let windows = range.windows().unwrap();
            prop_assert_eq!(windows.len() as i64, len);
            prop_assert_eq!(windows[0].start, range.start().unwrap());
            prop_assert_eq!(windows[windows.len() - 1].end, range.end().unwrap());
            for pair in windows.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert_eq!(pair[0].end.as_second() - pair[0].start.as_second(), 86_400);
            }
        }
    }
}
