//! What a trigger's run loads: `fecha_inicio`/`fecha_fin` as dates, days relative to the
//! firing, or the first day of the firing's month (or of a month before it, for a monthly
//! trigger that re-reads the last closed months of a report), resolved in the trigger's zone
//! at the occurrence.

use std::fmt;

use jiff::Span;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::*;

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
    /// `month_start` (the first day of the firing's month), `month_start-Nm` (of the month N
    /// months before).
    MonthStart {
        /// Months before the firing's month (0 to [`MAX_MONTHS_BACK`]).
        months_back: u16,
    },
}

/// How many months back `month_start-Nm` may reach (ten years).
pub(crate) const MAX_MONTHS_BACK: u16 = 120;

impl DateSpec {
    /// Parses the value of parameter `field`.
    ///
    /// # Errors
    /// [`TriggerError::InvalidParams`].
    pub fn parse(field: &'static str, text: &str) -> Result<Self, TriggerError> {
        if let Some(spec) = parse_relative(text).or_else(|| parse_month_start(text)) {
            return Ok(spec);
        }
        if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            let date = crate::domain::pipeline::parse_date(field, text)
                .map_err(|e| TriggerError::InvalidParams(format!("params.{e}")))?;
            return Ok(Self::Date(date));
        }
        Err(TriggerError::InvalidParams(format!(
            "params.{field}: `{}` is not a date (YYYY-MM-DD), a relative day (today, \
             yesterday, today-Nd, today+Nd, yesterday-Nd) or a month's first day (month_start, \
             month_start-Nm)",
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
                    .map_err(|_| self.unrepresentable(today))
            }
            Self::MonthStart { months_back } => today
                .first_of_month()
                .checked_sub(Span::new().months(i64::from(months_back)))
                .map_err(|_| self.unrepresentable(today)),
        }
    }

    fn unrepresentable(self, today: Date) -> TriggerError {
        TriggerError::InvalidParams(format!(
            "params: `{self}` from {today} is outside the representable dates"
        ))
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
            Self::MonthStart { months_back: 0 } => f.write_str("month_start"),
            Self::MonthStart { months_back } => write!(f, "month_start-{months_back}m"),
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

/// `month_start`, `month_start-Nm`, or `None`.
fn parse_month_start(text: &str) -> Option<DateSpec> {
    let rest = text.strip_prefix("month_start")?;
    let months_back = if rest.is_empty() {
        0
    } else {
        let digits = rest.strip_prefix('-')?.strip_suffix('m')?;
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
            .parse::<u16>()
            .ok()
            .filter(|n| *n <= MAX_MONTHS_BACK)?
    };
    Some(DateSpec::MonthStart { months_back })
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
    /// (non-empty, at most [`crate::domain::pipeline::MAX_WINDOWS`] days, windows representable).
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
