//! Triggers, as pure logic (no database): parsing and validating what an operator asks for
//! (pipeline, one-time local time or cron, IANA zone, `fecha_inicio`/`fecha_fin` params),
//! turning local wall-clock times into UTC instants, and deciding what the scheduler does with a
//! due trigger (fire, or record it as missed) and when it fires next. `crate::store::runs::triggers`
//! stores triggers and applies these decisions in transactions.
//!
//! # Time rules
//!
//! A trigger's time is a local wall-clock time in its zone. **A trigger fires at the first
//! instant at which the zone's wall clock reaches (or passes) the scheduled local time**, and
//! each scheduled local time fires at most once:
//!
//! - in a DST **gap** (the time does not exist, e.g. 02:30 on the spring-forward day in
//!   `America/New_York`), it fires when the gap ends: 03:00 local (07:00Z);
//! - in a DST **fold** (the time happens twice, e.g. 01:30 on the fall-back day), it fires at
//!   the first (earlier) of the two instants, 01:30 EDT (05:30Z), and not again at 01:30 EST.
//!
//! The same rule applies to one-time and cron triggers. For a cron whose several times fall in
//! one gap (`*/15 2 * * *`), they collapse into one firing at the end of the gap; a cron
//! evaluated every minute does not run again during the repeated hour of a fold.
//!
//! # Lateness
//!
//! A due occurrence fires when the scheduler reaches it at most `grace` late. Later than that
//! it is missed: a one-time trigger becomes `missed` (disabled, no run); a cron trigger counts
//! the miss and moves to its next occurrence after now. When several cron occurrences passed
//! while the scheduler was down, at most one run starts (for the latest occurrence within the
//! grace); the others are counted as missed. There are never catch-up bursts.
//!
//! # Params
//!
//! `fecha_inicio` and `fecha_fin` are `YYYY-MM-DD` dates or days relative to the firing:
//! `today`, `yesterday`, `today-Nd`, `today+Nd`, `yesterday-Nd`, `yesterday+Nd`. Relative days
//! are dates in the trigger's zone at the occurrence's scheduled instant (a 23:59 trigger
//! that the scheduler reaches at 00:00:01 still loads the day it was meant for).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use super::pipeline::{DateRange, Pipeline, echo};

/// The zone of a trigger created without one.
pub const DEFAULT_TIME_ZONE: &str = "America/Guayaquil";

/// How late a due trigger may still fire (see the module docs) unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);

/// The most cron occurrences one look-up or one firing step walks through.
const MAX_CRON_STEPS: u32 = 100_000;

/// Missed cron occurrences counted one by one in a firing step; beyond this many the count
/// stops (a cron every minute that was down for a year counts 10 000, not 525 600).
const MAX_COUNTED_MISSES: u32 = 10_000;

/// The largest `N` in `today-Nd`.
const MAX_RELATIVE_DAYS: u32 = 100_000;

/// What is wrong with a trigger as asked for. Each has a stable [`code`](Self::code) for the API
/// and a one-line message for a person that echoes at most ~40 characters of the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// The pipeline is missing or not one of ours.
    #[error("{0}")]
    UnknownPipeline(String),
    /// `kind` is missing or unknown, or a field of the other kind was given.
    #[error("{0}")]
    InvalidKind(String),
    /// `time_zone` is not an IANA zone name.
    #[error("{0}")]
    InvalidTimeZone(String),
    /// `local_time` is missing, malformed, or already past.
    #[error("{0}")]
    InvalidLocalTime(String),
    /// `cron` is missing, malformed, or never fires.
    #[error("{0}")]
    InvalidCron(String),
    /// `params` are missing, malformed, or do not make a valid range.
    #[error("{0}")]
    InvalidParams(String),
    /// `realm_id` is empty or malformed.
    #[error("{0}")]
    InvalidRealm(String),
    /// A one-time trigger that already fired (or was missed) was asked to run again without a
    /// new local time.
    #[error("{0}")]
    Finished(String),
}

impl TriggerError {
    /// The stable snake_case code for API error bodies.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownPipeline(_) => "unknown_pipeline",
            Self::InvalidKind(_) => "invalid_kind",
            Self::InvalidTimeZone(_) => "invalid_time_zone",
            Self::InvalidLocalTime(_) => "invalid_local_time",
            Self::InvalidCron(_) => "invalid_cron",
            Self::InvalidParams(_) => "invalid_params",
            Self::InvalidRealm(_) => "invalid_realm_id",
            Self::Finished(_) => "trigger_finished",
        }
    }
}

/// One-time or cron.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// Fires once at a local time (`local_time`), then disables itself.
    Once,
    /// Fires at every occurrence of a 5-field cron expression (`cron`).
    Cron,
}

impl TriggerKind {
    /// The stored and API name: `once` or `cron`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Cron => "cron",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerKind {
    type Err = TriggerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(Self::Once),
            "cron" => Ok(Self::Cron),
            other => Err(TriggerError::InvalidKind(format!(
                "kind: `{}` is not a trigger kind (expected once or cron)",
                echo(other)
            ))),
        }
    }
}

/// Where a trigger stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    /// Enabled, with a next firing time.
    Scheduled,
    /// A one-time trigger that fired (and disabled itself).
    Fired,
    /// A one-time trigger whose time passed while no scheduler could fire it within the grace
    /// period, or whose params did not resolve at its time (disabled, no run).
    Missed,
    /// Disabled by an operator (or a cron with no further occurrence).
    Disabled,
}

impl TriggerState {
    /// The stored and API name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Fired => "fired",
            Self::Missed => "missed",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for TriggerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Scheduled, Self::Fired, Self::Missed, Self::Disabled]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown trigger state `{}`", echo(s)))
    }
}

/// An IANA time zone with its canonical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The name as the time zone database spells it (`America/Guayaquil`).
    pub name: String,
    /// The zone.
    pub tz: TimeZone,
}

impl Zone {
    /// Looks `name` up in the bundled IANA database (case-insensitively).
    ///
    /// # Errors
    /// [`TriggerError::InvalidTimeZone`].
    pub fn parse(name: &str) -> Result<Self, TriggerError> {
        let bad = || {
            TriggerError::InvalidTimeZone(format!(
                "time_zone: `{}` is not an IANA time zone (e.g. America/Guayaquil, \
                 Europe/Madrid, UTC)",
                echo(name)
            ))
        };
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(bad());
        }
        let tz = TimeZone::get(trimmed).map_err(|_| bad())?;
        let canonical = tz.iana_name().unwrap_or(trimmed).to_owned();
        Ok(Self {
            name: canonical,
            tz,
        })
    }

    /// `at` as local time with its offset, e.g. `2026-02-02T10:00:00-05:00`.
    #[must_use]
    pub fn local_text(&self, at: Timestamp) -> String {
        at.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    /// The local date at `at`.
    #[must_use]
    pub fn date_at(&self, at: Timestamp) -> Date {
        self.tz.to_datetime(at).date()
    }
}

/// Parses a one-time trigger's local date-time: `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`
/// (a space may replace the `T`). No offset or zone: those come from `time_zone`.
///
/// # Errors
/// [`TriggerError::InvalidLocalTime`].
pub fn parse_local_time(text: &str) -> Result<DateTime, TriggerError> {
    let bad = || {
        TriggerError::InvalidLocalTime(format!(
            "local_time: `{}` is not a local date-time (expected YYYY-MM-DDTHH:MM, e.g. \
             2026-02-02T10:00, without offset; the zone goes in time_zone)",
            echo(text)
        ))
    };
    let bytes = text.as_bytes();
    let shape_ok = matches!(bytes.len(), 16 | 19)
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => matches!(*b, b'T' | b' '),
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let normalized = text.replacen(' ', "T", 1);
    let dt: DateTime = normalized.parse().map_err(|_| bad())?;
    if dt.year() < 1 {
        return Err(bad());
    }
    Ok(dt)
}

/// The first instant at which the wall clock of `tz` reads `local` or later: `local` itself
/// when it exists once, the earlier instant in a fold, the end of the gap in a gap (see the
/// module docs).
///
/// # Errors
/// Times at the edge of what can be represented.
pub fn resolve_local(tz: &TimeZone, local: DateTime) -> Result<Timestamp, jiff::Error> {
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local),
        AmbiguousOffset::Gap { before, after } => {
            // Read with the offset after the gap, `local` is an instant before the
            // transition; the transition that follows it is where the gap ends.
            let probe = after.to_timestamp(local)?;
            match tz.following(probe).next() {
                Some(transition) => Ok(transition.timestamp()),
                None => before.to_timestamp(local),
            }
        }
    }
}

/// A validated 5-field cron expression (minute hour day-of-month month day-of-week, or a
/// nickname like `@daily`), evaluated on a zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    text: String,
    cron: Box<Cron>,
}

impl CronSchedule {
    /// Parses `text` (5 fields; no seconds or years).
    ///
    /// # Errors
    /// [`TriggerError::InvalidCron`].
    pub fn parse(text: &str) -> Result<Self, TriggerError> {
        let text = text.trim();
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let fields = text.split_whitespace().count();
        let parsed = if text.starts_with('@') || fields == 5 {
            parser.parse(text).map_err(|e| one_line(&e.to_string()))
        } else {
            Err(format!("it has {fields} fields, not 5"))
        };
        match parsed {
            Ok(cron) => Ok(Self {
                text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                cron: Box::new(cron),
            }),
            Err(reason) => Err(TriggerError::InvalidCron(format!(
                "cron: `{}` is not a 5-field cron expression (minute hour day-of-month month \
                 day-of-week, e.g. `0 10 * * *`): {}",
                echo(text),
                truncate(&reason, 80)
            ))),
        }
    }

    /// The expression as stored (whitespace normalised).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `after`, on the wall clock of `tz` with the rules of
    /// the module docs; `None` when there is none (or it is beyond the search limits).
    #[must_use]
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        // Every wall-clock time before the one at `after` resolves to an instant at or before
        // `after` (resolution is "the first instant the clock reaches it"), so the walk starts
        // there. Resolution never decreases along the wall clock, so the first time that
        // resolves past `after` is the answer; in a fold, a few resolve before it.
        let mut wall = tz.to_datetime(after);
        for _ in 0..MAX_CRON_STEPS {
            wall = self.cron.find_next_occurrence(&wall, false).ok()?;
            let at = resolve_local(tz, wall).ok()?;
            if at > after {
                return Some(at);
            }
        }
        None
    }
}

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Once, at a local wall-clock time.
    Once {
        /// The local time as given (normalised to `YYYY-MM-DDTHH:MM[:SS]`).
        text: String,
        /// The parsed local time.
        local: DateTime,
    },
    /// At every occurrence of a cron expression.
    Cron(CronSchedule),
}

impl Schedule {
    /// One-time or cron.
    #[must_use]
    pub const fn kind(&self) -> TriggerKind {
        match self {
            Self::Once { .. } => TriggerKind::Once,
            Self::Cron(_) => TriggerKind::Cron,
        }
    }

    /// A one-time schedule from its local-time text.
    ///
    /// # Errors
    /// [`TriggerError::InvalidLocalTime`].
    pub fn once(text: &str) -> Result<Self, TriggerError> {
        let local = parse_local_time(text)?;
        Ok(Self::Once {
            text: text.replacen(' ', "T", 1),
            local,
        })
    }

    /// The local-time text of a one-time schedule.
    #[must_use]
    pub fn local_time(&self) -> Option<&str> {
        match self {
            Self::Once { text, .. } => Some(text),
            Self::Cron(_) => None,
        }
    }

    /// The expression of a cron schedule.
    #[must_use]
    pub fn cron(&self) -> Option<&str> {
        match self {
            Self::Once { .. } => None,
            Self::Cron(c) => Some(c.as_str()),
        }
    }

    /// The instant a one-time schedule fires at, or the first cron occurrence after `after`.
    #[must_use]
    pub fn next_fire(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Once { local, .. } => resolve_local(tz, *local).ok(),
            Self::Cron(c) => c.next_after(tz, after),
        }
    }
}

/// The base of a relative day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Today,
    Yesterday,
}

/// A `fecha_inicio`/`fecha_fin` value: a date, or a day relative to the firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSpec {
    /// `YYYY-MM-DD`.
    Date(Date),
    /// `today`, `yesterday`, `today-Nd`, `today+Nd`, `yesterday-Nd`, `yesterday+Nd`.
    Relative {
        /// Whether the base is yesterday rather than today.
        from_yesterday: bool,
        /// Days added to the base (negative for `-Nd`).
        days: i32,
    },
}

impl DateSpec {
    /// Parses the value of parameter `field`.
    ///
    /// # Errors
    /// [`TriggerError::InvalidParams`].
    pub fn parse(field: &'static str, text: &str) -> Result<Self, TriggerError> {
        if let Some(spec) = parse_relative(text) {
            return Ok(spec);
        }
        if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            let date = super::pipeline::parse_date(field, text)
                .map_err(|e| TriggerError::InvalidParams(format!("params.{e}")))?;
            return Ok(Self::Date(date));
        }
        Err(TriggerError::InvalidParams(format!(
            "params.{field}: `{}` is not a date (YYYY-MM-DD) or a relative day (today, \
             yesterday, today-Nd, today+Nd, yesterday-Nd)",
            echo(text)
        )))
    }

    /// The date this value means when the trigger fires on local date `today`.
    ///
    /// # Errors
    /// Dates outside what can be represented.
    pub fn resolve(self, today: Date) -> Result<Date, TriggerError> {
        match self {
            Self::Date(d) => Ok(d),
            Self::Relative {
                from_yesterday,
                days,
            } => {
                let total = i64::from(days) - i64::from(from_yesterday);
                Span::new()
                    .try_days(total)
                    .and_then(|span| today.checked_add(span))
                    .map_err(|_| {
                        TriggerError::InvalidParams(format!(
                            "params: `{self}` from {today} is outside the representable dates"
                        ))
                    })
            }
        }
    }
}

impl fmt::Display for DateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Date(d) => write!(f, "{d}"),
            Self::Relative {
                from_yesterday,
                days,
            } => {
                let base = if from_yesterday { "yesterday" } else { "today" };
                match days {
                    0 => f.write_str(base),
                    d if d > 0 => write!(f, "{base}+{d}d"),
                    d => write!(f, "{base}-{}d", d.unsigned_abs()),
                }
            }
        }
    }
}

/// `today`, `yesterday`, `today±Nd`, `yesterday±Nd`, or `None`.
fn parse_relative(text: &str) -> Option<DateSpec> {
    let (base, rest) = if let Some(rest) = text.strip_prefix("today") {
        (Base::Today, rest)
    } else {
        (Base::Yesterday, text.strip_prefix("yesterday")?)
    };
    let days = if rest.is_empty() {
        0
    } else {
        let (sign, digits) = match rest.as_bytes().first()? {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return None,
        };
        let digits = digits.strip_suffix('d')?;
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = digits.parse().ok()?;
        if n > MAX_RELATIVE_DAYS {
            return None;
        }
        sign * i32::try_from(n).ok()?
    };
    Some(DateSpec::Relative {
        from_yesterday: base == Base::Yesterday,
        days,
    })
}

/// A trigger's `fecha_inicio` and `fecha_fin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerParams {
    /// First day loaded.
    pub fecha_inicio: DateSpec,
    /// First day not loaded.
    pub fecha_fin: DateSpec,
}

/// The JSON form of [`TriggerParams`]: `{"fecha_inicio": "…", "fecha_fin": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamsView {
    /// `fecha_inicio` as text.
    pub fecha_inicio: String,
    /// `fecha_fin` as text.
    pub fecha_fin: String,
}

impl TriggerParams {
    /// Parses `{"fecha_inicio": "…", "fecha_fin": "…"}` (no other keys).
    ///
    /// # Errors
    /// [`TriggerError::InvalidParams`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TriggerError> {
        let invalid = |m: String| TriggerError::InvalidParams(m);
        let Some(map) = value.as_object() else {
            return Err(invalid(
                "params must be an object {\"fecha_inicio\": …, \"fecha_fin\": …}".to_owned(),
            ));
        };
        if let Some(other) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "fecha_inicio" | "fecha_fin"))
        {
            return Err(invalid(format!(
                "params: unknown parameter `{}` (expected fecha_inicio and fecha_fin)",
                echo(other)
            )));
        }
        let field = |name: &'static str| match map.get(name) {
            None | Some(serde_json::Value::Null) => {
                Err(invalid(format!("params.{name} is required")))
            }
            Some(serde_json::Value::String(s)) => DateSpec::parse(name, s),
            Some(_) => Err(invalid(format!("params.{name} must be a string"))),
        };
        Ok(Self {
            fecha_inicio: field("fecha_inicio")?,
            fecha_fin: field("fecha_fin")?,
        })
    }

    /// The stored and API form.
    #[must_use]
    pub fn view(&self) -> ParamsView {
        ParamsView {
            fecha_inicio: self.fecha_inicio.to_string(),
            fecha_fin: self.fecha_fin.to_string(),
        }
    }

    /// The stored JSON form.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "fecha_inicio": self.fecha_inicio.to_string(),
            "fecha_fin": self.fecha_fin.to_string(),
        })
    }

    /// The range to load when the trigger fires on local date `today`, validated like the CLI
    /// (non-empty, at most [`super::pipeline::MAX_WINDOWS`] days, windows representable).
    ///
    /// # Errors
    /// [`TriggerError::InvalidParams`].
    pub fn resolve(&self, today: Date) -> Result<DateRange, TriggerError> {
        let inicio = self.fecha_inicio.resolve(today)?;
        let fin = self.fecha_fin.resolve(today)?;
        let range = DateRange::new(inicio, fin).map_err(|e| {
            TriggerError::InvalidParams(format!(
                "params (fecha_inicio={}, fecha_fin={}, on {today}): {e}",
                self.fecha_inicio, self.fecha_fin
            ))
        })?;
        range
            .windows()
            .map_err(|e| TriggerError::InvalidParams(format!("params ({inicio}..{fin}): {e}")))?;
        Ok(range)
    }
}

/// A validated trigger definition: what to run, for which company, when, and with which params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDef {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The company; `None` means the only (default) company, resolved when it fires.
    pub realm_id: Option<String>,
    /// When.
    pub schedule: Schedule,
    /// The zone the schedule and relative params are read in.
    pub zone: Zone,
    /// The range, possibly relative.
    pub params: TriggerParams,
}

impl TriggerDef {
    /// Parses stored (or asked-for) fields.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn parse(
        pipeline: &str,
        realm_id: Option<&str>,
        kind: TriggerKind,
        local_time: Option<&str>,
        cron: Option<&str>,
        time_zone: &str,
        params: &serde_json::Value,
    ) -> Result<Self, TriggerError> {
        let schedule = match (kind, local_time, cron) {
            (TriggerKind::Once, Some(t), None) => Schedule::once(t)?,
            (TriggerKind::Cron, None, Some(c)) => Schedule::Cron(CronSchedule::parse(c)?),
            (TriggerKind::Once, None, _) => {
                return Err(TriggerError::InvalidLocalTime(
                    "local_time is required for a one-time trigger (e.g. 2026-02-02T10:00)"
                        .to_owned(),
                ));
            }
            (TriggerKind::Cron, _, None) => {
                return Err(TriggerError::InvalidCron(
                    "cron is required for a cron trigger (e.g. `0 10 * * *`)".to_owned(),
                ));
            }
            (TriggerKind::Once, Some(_), Some(_)) => {
                return Err(TriggerError::InvalidKind(
                    "a one-time trigger takes local_time, not cron".to_owned(),
                ));
            }
            (TriggerKind::Cron, Some(_), Some(_)) => {
                return Err(TriggerError::InvalidKind(
                    "a cron trigger takes cron, not local_time".to_owned(),
                ));
            }
        };
        Ok(Self {
            pipeline: parse_pipeline(pipeline)?,
            realm_id: realm_id.map(parse_realm).transpose()?,
            schedule,
            zone: Zone::parse(time_zone)?,
            params: TriggerParams::from_json(params)?,
        })
    }

    /// The local time of a firing at `at`, with offset.
    #[must_use]
    pub fn local_text(&self, at: Timestamp) -> String {
        self.zone.local_text(at)
    }
}

fn parse_pipeline(name: &str) -> Result<Pipeline, TriggerError> {
    name.parse::<Pipeline>()
        .map_err(|e| TriggerError::UnknownPipeline(e.to_string()))
}

fn parse_realm(realm: &str) -> Result<String, TriggerError> {
    let ok = !realm.is_empty()
        && realm.len() <= 64
        && realm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(realm.to_owned())
    } else {
        Err(TriggerError::InvalidRealm(format!(
            "realm_id: `{}` is not a company id (letters, digits, - _ . ; at most 64)",
            echo(realm)
        )))
    }
}

/// A trigger as asked for (API body, CLI flags): raw values, validated by
/// [`NewTrigger::validate`] so every problem gets a coded error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTrigger {
    /// Pipeline name.
    pub pipeline: Option<String>,
    /// `once` or `cron`; inferred from `local_time`/`cron` when absent.
    pub kind: Option<String>,
    /// For `once`: `YYYY-MM-DDTHH:MM[:SS]`.
    pub local_time: Option<String>,
    /// For `cron`: 5 fields.
    pub cron: Option<String>,
    /// IANA zone; default [`DEFAULT_TIME_ZONE`].
    pub time_zone: Option<String>,
    /// `{"fecha_inicio", "fecha_fin"}`.
    pub params: Option<serde_json::Value>,
    /// The company; absent means the only company.
    pub realm_id: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// State, enabled flag and next firing time of a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arming {
    /// Whether the scheduler considers it.
    pub enabled: bool,
    /// Its state.
    pub state: TriggerState,
    /// When it fires next (`None` unless enabled).
    pub next_fire_utc: Option<Timestamp>,
}

impl NewTrigger {
    /// Validates everything and computes the first firing time relative to `now`.
    ///
    /// # Errors
    /// The first invalid field; a one-time trigger whose time is not after `now`; a cron that
    /// never fires; params that do not resolve to a valid range at the first firing.
    pub fn validate(&self, now: Timestamp) -> Result<(TriggerDef, Arming), TriggerError> {
        let kind = match (&self.kind, &self.local_time, &self.cron) {
            (Some(k), _, _) => k.parse()?,
            (None, Some(_), None) => TriggerKind::Once,
            (None, None, Some(_)) => TriggerKind::Cron,
            (None, _, _) => {
                return Err(TriggerError::InvalidKind(
                    "kind is required: once (with local_time) or cron (with cron)".to_owned(),
                ));
            }
        };
        let Some(pipeline) = self.pipeline.as_deref() else {
            return Err(TriggerError::UnknownPipeline(
                "pipeline is required (qb_customers_backfill, qb_items_backfill or \
                 qb_invoices_backfill)"
                    .to_owned(),
            ));
        };
        let Some(params) = &self.params else {
            return Err(TriggerError::InvalidParams(
                "params are required: {\"fecha_inicio\": …, \"fecha_fin\": …}".to_owned(),
            ));
        };
        let def = TriggerDef::parse(
            pipeline,
            self.realm_id.as_deref(),
            kind,
            self.local_time.as_deref(),
            self.cron.as_deref(),
            self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE),
            params,
        )?;
        let arming = arm(&def, self.enabled.unwrap_or(true), now)?;
        Ok((def, arming))
    }
}

/// Arms `def` at `now`: its next firing time when `enabled`, with the checks of
/// [`NewTrigger::validate`].
///
/// # Errors
/// As [`NewTrigger::validate`].
pub fn arm(def: &TriggerDef, enabled: bool, now: Timestamp) -> Result<Arming, TriggerError> {
    let next = match &def.schedule {
        Schedule::Once { text, local } => {
            let at = resolve_local(&def.zone.tz, *local).map_err(|_| {
                TriggerError::InvalidLocalTime(format!(
                    "local_time: {text} is outside the representable times"
                ))
            })?;
            if at <= now {
                return Err(TriggerError::InvalidLocalTime(format!(
                    "local_time: {text} {} ({at}) is already past; pick a future time (or start \
                     a run now)",
                    def.zone.name
                )));
            }
            at
        }
        Schedule::Cron(c) => c.next_after(&def.zone.tz, now).ok_or_else(|| {
            TriggerError::InvalidCron(format!(
                "cron: `{}` never fires (no matching date, e.g. 30 February)",
                echo(c.as_str())
            ))
        })?,
    };
    let fire_date = def.zone.date_at(if enabled { next } else { now });
    def.params.resolve(fire_date)?;
    Ok(if enabled {
        Arming {
            enabled: true,
            state: TriggerState::Scheduled,
            next_fire_utc: Some(next),
        }
    } else {
        Arming {
            enabled: false,
            state: TriggerState::Disabled,
            next_fire_utc: None,
        }
    })
}

/// An edit of a trigger; absent fields stay as they are. The kind cannot change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerPatch {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New local time (one-time triggers).
    pub local_time: Option<String>,
    /// New expression (cron triggers).
    pub cron: Option<String>,
    /// New zone.
    pub time_zone: Option<String>,
    /// New params.
    pub params: Option<serde_json::Value>,
    /// New pipeline.
    pub pipeline: Option<String>,
    /// New company: `Some(None)` (JSON `null`) means the only company.
    #[serde(default, deserialize_with = "present")]
    pub realm_id: Option<Option<String>>,
}

/// A field that is present (even as `null`) deserialises to `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Applies `patch` to a trigger whose definition is `def` and whose arming is `current`, at
/// `now`. Returns the new definition and arming.
///
/// Rules:
/// - A one-time trigger that already fired (or was missed) stays so through any edit, except
///   one that sets `local_time`: that re-arms it (enabled unless the patch says otherwise), and
///   the new time must be in the future. Asking to enable it without a new `local_time` is
///   [`TriggerError::Finished`]. So an edit can never make it fire again by accident.
/// - Otherwise a change of schedule (local time, cron or zone) or enabling a disabled trigger
///   computes the next firing from `now` (a one-time time must be in the future; a cron gets
///   its next occurrence: no catch-up); disabling clears the next firing.
/// - Edits that leave the schedule and the enabled flag alone keep the pending firing time.
///
/// # Errors
/// Any invalid field, as for creation, and [`TriggerError::Finished`].
pub fn apply_patch(
    def: &TriggerDef,
    current: Arming,
    patch: &TriggerPatch,
    now: Timestamp,
) -> Result<(TriggerDef, Arming), TriggerError> {
    let new = patched_def(def, patch)?;
    let finished = matches!(current.state, TriggerState::Fired | TriggerState::Missed);
    if def.schedule.kind() == TriggerKind::Once && finished {
        if patch.local_time.is_some() {
            // Re-armed on purpose: the new time must be in the future (checked by `arm`).
            let arming = arm(&new, patch.enabled.unwrap_or(true), now)?;
            return Ok((new, arming));
        }
        if patch.enabled == Some(true) {
            return Err(TriggerError::Finished(format!(
                "this one-time trigger {} and cannot fire again; set a new local_time in the \
                 future to schedule it again",
                if current.state == TriggerState::Fired {
                    "already fired"
                } else {
                    "was missed"
                }
            )));
        }
        new.params.resolve(new.zone.date_at(now))?;
        return Ok((new, current));
    }
    let schedule_changed = new.schedule != def.schedule || new.zone != def.zone;
    let wants_enabled = patch.enabled.unwrap_or(current.enabled);
    if schedule_changed || wants_enabled != current.enabled {
        let arming = arm(&new, wants_enabled, now)?;
        return Ok((new, arming));
    }
    // Same schedule, same flag: keep the pending firing, but the new params must still work.
    let fire_date = new.zone.date_at(current.next_fire_utc.unwrap_or(now));
    new.params.resolve(fire_date)?;
    Ok((new, current))
}

/// `def` with the fields of `patch`, validated.
fn patched_def(def: &TriggerDef, patch: &TriggerPatch) -> Result<TriggerDef, TriggerError> {
    let schedule = match (&def.schedule, &patch.local_time, &patch.cron) {
        (Schedule::Once { .. }, _, Some(_)) => {
            return Err(TriggerError::InvalidKind(
                "cron applies to cron triggers; this is a one-time trigger (edit local_time)"
                    .to_owned(),
            ));
        }
        (Schedule::Cron(_), Some(_), _) => {
            return Err(TriggerError::InvalidKind(
                "local_time applies to one-time triggers; this is a cron trigger (edit cron)"
                    .to_owned(),
            ));
        }
        (Schedule::Once { .. }, Some(t), None) => Schedule::once(t)?,
        (Schedule::Cron(_), None, Some(c)) => Schedule::Cron(CronSchedule::parse(c)?),
        (s, None, None) => s.clone(),
    };
    Ok(TriggerDef {
        pipeline: match &patch.pipeline {
            Some(p) => parse_pipeline(p)?,
            None => def.pipeline,
        },
        realm_id: match &patch.realm_id {
            Some(Some(r)) => Some(parse_realm(r)?),
            Some(None) => None,
            None => def.realm_id.clone(),
        },
        schedule,
        zone: match &patch.time_zone {
            Some(z) => Zone::parse(z)?,
            None => def.zone.clone(),
        },
        params: match &patch.params {
            Some(p) => TriggerParams::from_json(p)?,
            None => def.params,
        },
    })
}

/// What the scheduler does with a due trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a run over `range` for the occurrence due at `occurrence`.
    Fire {
        /// The scheduled instant being fired.
        occurrence: Timestamp,
        /// The resolved range.
        range: DateRange,
    },
    /// Start nothing: the occurrence at `occurrence` is missed.
    Miss {
        /// The scheduled instant missed (the latest one, for a cron).
        occurrence: Timestamp,
        /// Why, for a person.
        reason: String,
    },
}

/// The scheduler's plan for one due trigger: the decision and the trigger's state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Fire or miss.
    pub decision: Decision,
    /// Occurrences missed in this step (besides a fired one): late ones, ones skipped because a
    /// later one fired, and the missed one itself.
    pub missed: u32,
    /// The trigger afterwards.
    pub after: Arming,
    /// An error to record on the trigger (params that did not resolve, no next occurrence).
    pub error: Option<String>,
}

/// Decides what to do with `def`, due at `due`, when the scheduler reaches it at `now`
/// (see the module docs for the rules).
#[must_use]
pub fn plan_fire(def: &TriggerDef, due: Timestamp, now: Timestamp, grace: Duration) -> FirePlan {
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    match &def.schedule {
        Schedule::Once { .. } => {
            let (decision, error) = decide(def, due, now, grace, 0);
            let state = match decision {
                Decision::Fire { .. } => TriggerState::Fired,
                Decision::Miss { .. } => TriggerState::Missed,
            };
            FirePlan {
                missed: u32::from(state == TriggerState::Missed),
                decision,
                after: Arming {
                    enabled: false,
                    state,
                    next_fire_utc: None,
                },
                error,
            }
        }
        Schedule::Cron(cron) => plan_cron(def, cron, due, now, grace),
    }
}

fn plan_cron(
    def: &TriggerDef,
    cron: &CronSchedule,
    due: Timestamp,
    now: Timestamp,
    grace: SignedDuration,
) -> FirePlan {
    let tz = &def.zone.tz;
    let window_start = now.checked_sub(grace).unwrap_or(Timestamp::MIN).max(due);
    let mut missed = 0u32;
    // Occurrences older than the grace: missed, counted up to a limit.
    let mut occurrence = Some(due);
    while let Some(o) = occurrence.filter(|o| *o < window_start) {
        if missed >= MAX_COUNTED_MISSES {
            occurrence = window_start
                .checked_sub(SignedDuration::from_nanos(1))
                .ok()
                .and_then(|t| cron.next_after(tz, t));
            break;
        }
        missed += 1;
        occurrence = cron.next_after(tz, o);
    }
    // Occurrences within the grace: the latest fires, earlier ones are skipped.
    let mut latest = None;
    let mut steps = 0u32;
    while let Some(o) = occurrence.filter(|o| *o <= now) {
        if latest.is_some() {
            missed = missed.saturating_add(1);
        }
        latest = Some(o);
        steps += 1;
        occurrence = if steps > MAX_CRON_STEPS {
            cron.next_after(tz, now)
        } else {
            cron.next_after(tz, o)
        };
    }
    let (decision, mut error) = match latest {
        Some(o) => decide(def, o, now, grace, missed),
        None => {
            let reason = format!(
                "{missed} occurrence(s) from {due} missed: more than the grace ({grace:#}) late"
            );
            (
                Decision::Miss {
                    occurrence: due,
                    reason,
                },
                None,
            )
        }
    };
    if matches!(decision, Decision::Miss { .. }) && latest.is_some() {
        missed = missed.saturating_add(1);
    }
    let after = match occurrence {
        Some(next) => Arming {
            enabled: true,
            state: TriggerState::Scheduled,
            next_fire_utc: Some(next),
        },
        None => {
            error = Some(format!(
                "cron `{}` has no further occurrence; trigger disabled",
                cron.as_str()
            ));
            Arming {
                enabled: false,
                state: TriggerState::Disabled,
                next_fire_utc: None,
            }
        }
    };
    FirePlan {
        decision,
        missed,
        after,
        error,
    }
}

/// Fire or miss one occurrence: missed when more than `grace` late or when the params do not
/// resolve on its local date. Returns the decision and an error to record.
fn decide(
    def: &TriggerDef,
    occurrence: Timestamp,
    now: Timestamp,
    grace: SignedDuration,
    already_missed: u32,
) -> (Decision, Option<String>) {
    let late = now.duration_since(occurrence);
    if late > grace {
        let reason = format!(
            "{}due at {occurrence}, reached {late:#} late (grace {grace:#})",
            if already_missed > 0 {
                format!("{already_missed} earlier occurrence(s) missed; last ")
            } else {
                String::new()
            }
        );
        return (Decision::Miss { occurrence, reason }, None);
    }
    match def.params.resolve(def.zone.date_at(occurrence)) {
        Ok(range) => (Decision::Fire { occurrence, range }, None),
        Err(e) => {
            let reason = e.to_string();
            (
                Decision::Miss {
                    occurrence,
                    reason: reason.clone(),
                },
                Some(reason),
            )
        }
    }
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut to `max` characters (with `…`).
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn zone(name: &str) -> Zone {
        Zone::parse(name).expect("zone")
    }

    fn local(text: &str) -> DateTime {
        parse_local_time(text).expect("local time")
    }

    fn cron(text: &str) -> CronSchedule {
        CronSchedule::parse(text).expect("cron")
    }

    /// The cron's occurrences in `(from, to]`.
    fn occurrences(c: &CronSchedule, z: &Zone, from: &str, to: &str) -> Vec<String> {
        let (mut at, to) = (ts(from), ts(to));
        let mut out = Vec::new();
        while let Some(next) = c.next_after(&z.tz, at).filter(|n| *n <= to) {
            out.push(next.to_string());
            at = next;
        }
        out
    }

    fn params(inicio: &str, fin: &str) -> serde_json::Value {
        serde_json::json!({"fecha_inicio": inicio, "fecha_fin": fin})
    }

    fn new_once(local_time: &str, tz: &str) -> NewTrigger {
        NewTrigger {
            pipeline: Some("qb_customers_backfill".to_owned()),
            kind: Some("once".to_owned()),
            local_time: Some(local_time.to_owned()),
            time_zone: Some(tz.to_owned()),
            params: Some(params("2026-01-01", "2026-01-31")),
            ..NewTrigger::default()
        }
    }

    fn new_cron(expr: &str, tz: &str, inicio: &str, fin: &str) -> NewTrigger {
        NewTrigger {
            pipeline: Some("qb_invoices_backfill".to_owned()),
            kind: Some("cron".to_owned()),
            cron: Some(expr.to_owned()),
            time_zone: Some(tz.to_owned()),
            params: Some(params(inicio, fin)),
            ..NewTrigger::default()
        }
    }

    fn code(r: Result<(TriggerDef, Arming), TriggerError>) -> &'static str {
        r.expect_err("invalid").code()
    }

    #[test]
    fn guayaquil_ten_am_is_fifteen_utc() {
        let z = zone("America/Guayaquil");
        let at = resolve_local(&z.tz, local("2026-02-02T10:00")).expect("resolves");
        assert_eq!(at, ts("2026-02-02T15:00:00Z"));
        assert_eq!(z.local_text(at), "2026-02-02T10:00:00-05:00");
        let (def, arming) = new_once("2026-02-02T10:00", "America/Guayaquil")
            .validate(ts("2026-01-15T00:00:00Z"))
            .expect("valid");
        assert_eq!(arming.next_fire_utc, Some(ts("2026-02-02T15:00:00Z")));
        assert_eq!(arming.state, TriggerState::Scheduled);
        assert_eq!(def.schedule.local_time(), Some("2026-02-02T10:00"));
        // Seconds are accepted, and so is a space for the `T`; the zone defaults to Guayaquil.
        let mut t = new_once("2026-02-02 10:00:30", "x");
        t.time_zone = None;
        let (def, arming) = t.validate(ts("2026-01-15T00:00:00Z")).expect("valid");
        assert_eq!(def.zone.name, DEFAULT_TIME_ZONE);
        assert_eq!(arming.next_fire_utc, Some(ts("2026-02-02T15:00:30Z")));
    }

    #[test]
    fn zone_names_are_canonical_and_checked() {
        assert_eq!(zone("america/new_york").name, "America/New_York");
        assert_eq!(zone("UTC").name, "UTC");
        assert_eq!(zone(" America/Guayaquil ").name, "America/Guayaquil");
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "-05:00",
            "EST+5",
            "../../etc/passwd",
        ] {
            let err = Zone::parse(bad).err();
            assert_eq!(err.map(|e| e.code()), Some("invalid_time_zone"), "{bad}");
        }
    }

    #[test]
    fn one_time_dst_gap_fires_when_the_gap_ends() {
        // New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
        let ny = zone("America/New_York");
        let at = resolve_local(&ny.tz, local("2026-03-08T02:30")).expect("resolves");
        assert_eq!(at, ts("2026-03-08T07:00:00Z"));
        assert_eq!(ny.local_text(at), "2026-03-08T03:00:00-04:00");
        // Madrid springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z).
        let madrid = zone("Europe/Madrid");
        let at = resolve_local(&madrid.tz, local("2026-03-29T02:30")).expect("resolves");
        assert_eq!(at, ts("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn one_time_dst_fold_takes_the_earlier_instant() {
        // New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
        let ny = zone("America/New_York");
        let at = resolve_local(&ny.tz, local("2026-11-01T01:30")).expect("resolves");
        assert_eq!(at, ts("2026-11-01T05:30:00Z"));
        assert_eq!(ny.local_text(at), "2026-11-01T01:30:00-04:00");
        let madrid = zone("Europe/Madrid");
        let at = resolve_local(&madrid.tz, local("2026-10-25T02:30")).expect("resolves");
        assert_eq!(at, ts("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn cron_in_a_dst_gap_fires_exactly_once_at_the_end_of_the_gap() {
        let ny = zone("America/New_York");
        let got = occurrences(
            &cron("30 2 * * *"),
            &ny,
            "2026-03-06T12:00:00Z",
            "2026-03-10T12:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
                "2026-03-09T06:30:00Z", // 02:30 EDT
                "2026-03-10T06:30:00Z",
            ]
        );
        let madrid = zone("Europe/Madrid");
        let got = occurrences(
            &cron("30 2 * * *"),
            &madrid,
            "2026-03-28T12:00:00Z",
            "2026-03-30T12:00:00Z",
        );
        assert_eq!(got, ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);
        // Several times in one gap collapse into one firing; the regular 03:00 is the same one.
        let got = occurrences(
            &cron("*/20 2,3 * * *"),
            &ny,
            "2026-03-08T06:00:00Z",
            "2026-03-08T08:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:20:00Z",
                "2026-03-08T07:40:00Z"
            ]
        );
    }

    #[test]
    fn cron_in_a_dst_fold_fires_exactly_once_at_the_first_pass() {
        let ny = zone("America/New_York");
        let got = occurrences(
            &cron("30 1 * * *"),
            &ny,
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
        );
        assert_eq!(
            got,
            [
                "2026-10-31T05:30:00Z", // 01:30 EDT
                "2026-11-01T05:30:00Z", // first 01:30 (EDT); not again at 06:30Z (EST)
                "2026-11-02T06:30:00Z", // 01:30 EST
            ]
        );
        // Asked from inside the second pass of the fold, it does not fire the repeated time.
        let next = cron("30 1 * * *").next_after(&ny.tz, ts("2026-11-01T06:10:00Z"));
        assert_eq!(next, Some(ts("2026-11-02T06:30:00Z")));
        let madrid = zone("Europe/Madrid");
        let got = occurrences(
            &cron("30 2 * * *"),
            &madrid,
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z",
        );
        assert_eq!(got, ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
        // An hourly cron does not run again during the repeated hour.
        let got = occurrences(
            &cron("0 * * * *"),
            &ny,
            "2026-11-01T04:30:00Z",
            "2026-11-01T07:30:00Z",
        );
        assert_eq!(got, ["2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"]);
    }

    #[test]
    fn cron_is_five_fields_and_must_fire() {
        for bad in [
            "",
            "0 10 * *",
            "0 0 10 * * *",
            "61 * * * *",
            "every day",
            "0 10 * * * 2026",
        ] {
            let err = CronSchedule::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_cron", "{bad}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        assert_eq!(cron("  0   10 * * MON-FRI ").as_str(), "0 10 * * MON-FRI");
        assert!(CronSchedule::parse("@daily").is_ok());
        let now = ts("2026-01-01T00:00:00Z");
        let never = new_cron("0 0 30 2 *", "UTC", "yesterday", "today").validate(now);
        assert_eq!(code(never), "invalid_cron");
        let long = "x".repeat(500);
        let err = CronSchedule::parse(&long).expect_err("bad");
        assert!(err.to_string().len() < 400, "{err}");
    }

    #[test]
    fn local_times_are_strict() {
        for bad in [
            "2026-02-02",
            "2026-02-02T10",
            "2026-02-02T10:00Z",
            "2026-02-02T10:00-05:00",
            "2026-02-30T10:00",
            "2026-02-02T24:00",
            "2026-02-02T10:00:00.5",
            "02/02/2026 10:00",
        ] {
            let err = parse_local_time(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_local_time", "{bad}");
        }
        let now = ts("2026-03-01T00:00:00Z");
        let past = new_once("2026-02-02T10:00", "America/Guayaquil").validate(now);
        let err = past.expect_err("past");
        assert_eq!(err.code(), "invalid_local_time");
        assert!(err.to_string().contains("already past"), "{err}");
    }

    #[test]
    fn relative_params_resolve_in_the_trigger_zone() {
        let p = TriggerParams::from_json(&params("yesterday", "today")).expect("valid");
        let range = p.resolve(date(2026, 3, 1)).expect("range");
        assert_eq!(
            (range.fecha_inicio, range.fecha_fin),
            (date(2026, 2, 28), date(2026, 3, 1))
        );
        let p = TriggerParams::from_json(&params("today-7d", "today+1d")).expect("valid");
        let range = p.resolve(date(2026, 1, 3)).expect("range");
        assert_eq!(
            (range.fecha_inicio, range.fecha_fin),
            (date(2025, 12, 27), date(2026, 1, 4))
        );
        let p = TriggerParams::from_json(&params("yesterday-2d", "2026-06-01")).expect("valid");
        assert_eq!(
            p.fecha_inicio.resolve(date(2026, 5, 10)),
            Ok(date(2026, 5, 7))
        );
        assert_eq!(p.view().fecha_inicio, "yesterday-2d");
        let p = TriggerParams::from_json(&params("today-007d", "today-0d")).expect("valid");
        assert_eq!(p.to_json(), params("today-7d", "today"));
        // "today" is the local date at the occurrence: 02:00Z on Feb 2 is still Feb 1 in
        // Guayaquil.
        let z = zone("America/Guayaquil");
        assert_eq!(z.date_at(ts("2026-02-02T02:00:00Z")), date(2026, 2, 1));
    }

    #[test]
    fn params_are_validated_like_the_cli() {
        let now = ts("2026-01-01T00:00:00Z");
        let bad = [
            params("today", "today"),
            params("today", "yesterday"),
            params("2026-01-31", "2026-01-01"),
            params("2026-13-01", "2026-01-02"),
            params("tomorrow", "today"),
            params("today-d", "today"),
            params("today-1w", "today"),
            params("TODAY", "today"),
            params(" today", "today"),
            params("today-999999d", "today"),
            params("1900-01-01", "2026-01-01"),
            serde_json::json!({"fecha_inicio": "yesterday"}),
            serde_json::json!({"fecha_inicio": "yesterday", "fecha_fin": 5}),
            serde_json::json!({"fecha_inicio": "yesterday", "fecha_fin": "today", "x": 1}),
            serde_json::json!(["yesterday", "today"]),
        ];
        for p in bad {
            let mut t = new_cron("0 10 * * *", "UTC", "x", "y");
            t.params = Some(p.clone());
            assert_eq!(code(t.validate(now)), "invalid_params", "{p}");
        }
        // Mixed absolute/relative: checked at the first firing.
        let ok = new_cron("0 10 * * *", "UTC", "2025-12-01", "today").validate(now);
        assert!(ok.is_ok(), "{ok:?}");
        let empty = new_cron("0 10 * * *", "UTC", "2026-03-01", "today").validate(now);
        assert_eq!(code(empty), "invalid_params");
        let long = "9".repeat(200);
        let mut t = new_cron("0 10 * * *", "UTC", &long, "today");
        let err = t.validate(now).expect_err("bad");
        assert!(err.to_string().chars().count() < 250, "{err}");
        t.params = None;
        assert_eq!(code(t.validate(now)), "invalid_params");
    }

    #[test]
    fn other_fields_are_validated_with_codes() {
        let now = ts("2026-01-01T00:00:00Z");
        let mut t = new_once("2026-02-02T10:00", "America/Guayaquil");
        t.pipeline = Some("qb_widgets_backfill".to_owned());
        assert_eq!(code(t.validate(now)), "unknown_pipeline");
        t.pipeline = None;
        assert_eq!(code(t.validate(now)), "unknown_pipeline");
        let mut t = new_once("2026-02-02T10:00", "Nowhere/City");
        assert_eq!(code(t.clone().validate(now)), "invalid_time_zone");
        t.time_zone = None;
        t.kind = Some("weekly".to_owned());
        assert_eq!(code(t.clone().validate(now)), "invalid_kind");
        t.kind = None;
        assert!(t.validate(now).is_ok(), "kind inferred from local_time");
        let mut t = new_once("2026-02-02T10:00", "UTC");
        t.cron = Some("0 10 * * *".to_owned());
        assert_eq!(code(t.validate(now)), "invalid_kind");
        let mut t = new_cron("0 10 * * *", "UTC", "yesterday", "today");
        t.cron = None;
        assert_eq!(code(t.clone().validate(now)), "invalid_cron");
        t.cron = Some("0 10 * * *".to_owned());
        t.realm_id = Some(String::new());
        assert_eq!(code(t.clone().validate(now)), "invalid_realm_id");
        t.realm_id = Some("9130357766900000".to_owned());
        let (def, _) = t.validate(now).expect("valid");
        assert_eq!(def.realm_id.as_deref(), Some("9130357766900000"));
    }

    #[test]
    fn unknown_json_fields_are_rejected() {
        let body = r#"{"pipeline": "qb_customers_backfill", "kind": "once", "timezone": "UTC"}"#;
        assert!(serde_json::from_str::<NewTrigger>(body).is_err());
        let patch: TriggerPatch = serde_json::from_str(r#"{"realm_id": null}"#).expect("patch");
        assert_eq!(patch.realm_id, Some(None));
        let patch: TriggerPatch = serde_json::from_str(r#"{"enabled": false}"#).expect("patch");
        assert_eq!(patch.realm_id, None);
    }

    fn once_def(local_time: &str) -> TriggerDef {
        new_once(local_time, "America/Guayaquil")
            .validate(ts("2026-01-01T00:00:00Z"))
            .expect("valid")
            .0
    }

    #[test]
    fn once_fires_within_grace_and_is_missed_beyond() {
        let def = once_def("2026-02-02T10:00");
        let due = ts("2026-02-02T15:00:00Z");
        let plan = plan_fire(&def, due, ts("2026-02-02T15:14:59Z"), DEFAULT_GRACE);
        let Decision::Fire { occurrence, range } = plan.decision else {
            panic!("fires: {plan:?}");
        };
        assert_eq!(occurrence, due);
        assert_eq!(range.fecha_inicio, date(2026, 1, 1));
        assert_eq!(plan.after.state, TriggerState::Fired);
        assert!(!plan.after.enabled);
        assert_eq!(plan.after.next_fire_utc, None);
        assert_eq!(plan.missed, 0);
        let plan = plan_fire(&def, due, ts("2026-02-02T15:15:01Z"), DEFAULT_GRACE);
        let Decision::Miss { reason, .. } = &plan.decision else {
            panic!("missed: {plan:?}");
        };
        assert_eq!(
            reason,
            "due at 2026-02-02T15:00:00Z, reached 15m 1s late (grace 15m)"
        );
        assert_eq!(plan.after.state, TriggerState::Missed);
        assert!(!plan.after.enabled);
        assert_eq!(plan.missed, 1);
    }

    #[test]
    fn late_cron_fires_at_most_once_and_counts_the_rest() {
        let (def, arming) = new_cron("*/5 * * * *", "UTC", "yesterday", "today")
            .validate(ts("2026-01-01T00:00:00Z"))
            .expect("valid");
        let due = arming.next_fire_utc.expect("next");
        assert_eq!(due, ts("2026-01-01T00:05:00Z"));
        // Down until 00:31: 00:05..00:30 passed; 00:20, 00:25, 00:30 are within 15 minutes.
        let now = ts("2026-01-01T00:31:00Z");
        let plan = plan_fire(&def, due, now, DEFAULT_GRACE);
        let Decision::Fire { occurrence, range } = plan.decision else {
            panic!("fires: {plan:?}");
        };
        assert_eq!(occurrence, ts("2026-01-01T00:30:00Z"));
        assert_eq!(range.fecha_fin, date(2026, 1, 1));
        assert_eq!(plan.missed, 5);
        assert_eq!(plan.after.next_fire_utc, Some(ts("2026-01-01T00:35:00Z")));
        assert_eq!(plan.after.state, TriggerState::Scheduled);
        // Down for a day: nothing within the grace, everything missed, next after now.
        let (def, _) = new_cron("0 10 * * *", "Europe/Madrid", "yesterday", "today")
            .validate(ts("2026-01-01T00:00:00Z"))
            .expect("valid");
        let due = ts("2026-01-01T09:00:00Z");
        let plan = plan_fire(&def, due, ts("2026-01-03T12:00:00Z"), DEFAULT_GRACE);
        assert!(matches!(plan.decision, Decision::Miss { .. }), "{plan:?}");
        assert_eq!(plan.missed, 3);
        assert_eq!(plan.after.next_fire_utc, Some(ts("2026-01-04T09:00:00Z")));
        assert!(plan.after.enabled);
    }

    #[test]
    fn a_long_outage_is_counted_up_to_a_limit() {
        let (def, _) = new_cron("* * * * *", "UTC", "yesterday", "today")
            .validate(ts("2026-01-01T00:00:00Z"))
            .expect("valid");
        let plan = plan_fire(
            &def,
            ts("2026-01-01T00:01:00Z"),
            ts("2027-01-01T00:00:30Z"),
            DEFAULT_GRACE,
        );
        assert!(matches!(plan.decision, Decision::Fire { .. }), "{plan:?}");
        // 10 000 counted before the grace, then 15 within it: the last fires, 14 are skipped.
        assert_eq!(plan.missed, MAX_COUNTED_MISSES + 14);
        assert_eq!(plan.after.next_fire_utc, Some(ts("2027-01-01T00:01:00Z")));
    }

    #[test]
    fn cron_params_resolve_at_the_occurrence_in_its_zone() {
        let (def, _) = new_cron("59 23 * * *", "America/Guayaquil", "today-2d", "today")
            .validate(ts("2026-01-01T00:00:00Z"))
            .expect("valid");
        // 23:59 local on Jan 10 is 04:59Z on Jan 11; reached a minute later, still Jan 10.
        let due = ts("2026-01-11T04:59:00Z");
        let plan = plan_fire(&def, due, ts("2026-01-11T05:00:01Z"), DEFAULT_GRACE);
        let Decision::Fire { range, .. } = plan.decision else {
            panic!("fires: {plan:?}");
        };
        assert_eq!(
            (range.fecha_inicio, range.fecha_fin),
            (date(2026, 1, 8), date(2026, 1, 10))
        );
    }

    #[test]
    fn a_fired_one_time_trigger_is_only_rearmed_by_a_new_future_local_time() {
        let def = once_def("2026-02-02T10:00");
        let fired = Arming {
            enabled: false,
            state: TriggerState::Fired,
            next_fire_utc: None,
        };
        let now = ts("2026-02-02T16:00:00Z");
        let enable = TriggerPatch {
            enabled: Some(true),
            ..TriggerPatch::default()
        };
        let err = apply_patch(&def, fired, &enable, now).expect_err("finished");
        assert_eq!(err.code(), "trigger_finished");
        // Other edits keep it fired, including a zone change that would put it in the future.
        let edits = [
            TriggerPatch {
                params: Some(params("2026-01-05", "2026-01-06")),
                ..TriggerPatch::default()
            },
            TriggerPatch {
                time_zone: Some("Pacific/Honolulu".to_owned()),
                ..TriggerPatch::default()
            },
            TriggerPatch {
                enabled: Some(false),
                ..TriggerPatch::default()
            },
        ];
        for patch in edits {
            let (_, after) = apply_patch(&def, fired, &patch, now).expect("edit");
            assert_eq!(after, fired, "{patch:?}");
        }
        let same = TriggerPatch {
            local_time: Some("2026-02-02T10:00".to_owned()),
            ..TriggerPatch::default()
        };
        let err = apply_patch(&def, fired, &same, now).expect_err("past");
        assert_eq!(err.code(), "invalid_local_time");
        let rearm = TriggerPatch {
            local_time: Some("2026-02-03T10:00".to_owned()),
            ..TriggerPatch::default()
        };
        let (new, after) = apply_patch(&def, fired, &rearm, now).expect("re-armed");
        assert_eq!(new.schedule.local_time(), Some("2026-02-03T10:00"));
        assert_eq!(after.state, TriggerState::Scheduled);
        assert_eq!(after.next_fire_utc, Some(ts("2026-02-03T15:00:00Z")));
    }

    #[test]
    fn patches_disable_enable_and_reschedule() {
        let now = ts("2026-01-01T12:00:00Z");
        let (def, armed) = new_cron("0 10 * * *", "UTC", "yesterday", "today")
            .validate(now)
            .expect("valid");
        assert_eq!(armed.next_fire_utc, Some(ts("2026-01-02T10:00:00Z")));
        let off = TriggerPatch {
            enabled: Some(false),
            ..TriggerPatch::default()
        };
        let (def, disabled) = apply_patch(&def, armed, &off, now).expect("disable");
        assert_eq!(disabled.state, TriggerState::Disabled);
        assert_eq!(disabled.next_fire_utc, None);
        // Re-enabled three days later: the next occurrence after now, no catch-up.
        let later = ts("2026-01-04T12:00:00Z");
        let on = TriggerPatch {
            enabled: Some(true),
            ..TriggerPatch::default()
        };
        let (def, enabled) = apply_patch(&def, disabled, &on, later).expect("enable");
        assert_eq!(enabled.next_fire_utc, Some(ts("2026-01-05T10:00:00Z")));
        let moved = TriggerPatch {
            cron: Some("30 9 * * *".to_owned()),
            time_zone: Some("America/Guayaquil".to_owned()),
            ..TriggerPatch::default()
        };
        let (def, moved) = apply_patch(&def, enabled, &moved, later).expect("moved");
        assert_eq!(moved.next_fire_utc, Some(ts("2026-01-04T14:30:00Z")));
        assert_eq!(def.zone.name, "America/Guayaquil");
        let wrong = TriggerPatch {
            local_time: Some("2026-02-03T10:00".to_owned()),
            ..TriggerPatch::default()
        };
        let err = apply_patch(&def, moved, &wrong, later).expect_err("kind");
        assert_eq!(err.code(), "invalid_kind");
    }

    #[test]
    fn echoes_are_short() {
        let long = format!("Europe/{}", "x".repeat(300));
        let msg = Zone::parse(&long).expect_err("bad").to_string();
        assert!(msg.chars().count() < 200, "{msg}");
        let msg = parse_local_time(&"1".repeat(300))
            .expect_err("bad")
            .to_string();
        assert!(msg.chars().count() < 250, "{msg}");
    }
}
