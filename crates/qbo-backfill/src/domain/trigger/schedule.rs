//! When a trigger fires: IANA zones, local wall-clock times turned into UTC instants (the gap
//! and fold rules of the module above), and cron schedules.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::*;

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

/// The longest cron expression accepted: five fields of lists and ranges fit in far less, and a
/// trigger's expression is shown on every page that lists it.
pub(super) const MAX_CRON_CHARS: usize = 200;

impl CronSchedule {
    /// Parses `text` (5 fields; no seconds or years, at most [`MAX_CRON_CHARS`] characters).
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
        let parsed = if text.chars().count() > MAX_CRON_CHARS {
            Err(format!("it is longer than {MAX_CRON_CHARS} characters"))
        } else if text.starts_with('@') || fields == 5 {
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
