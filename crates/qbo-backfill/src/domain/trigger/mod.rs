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

mod fire;
mod params;
mod patch;
mod schedule;
#[cfg(test)]
mod tests;

pub use fire::{Decision, FirePlan, plan_fire};
pub use params::{DateSpec, ParamsView, TriggerParams};
pub use patch::{TriggerPatch, apply_patch};
pub use schedule::{CronSchedule, Schedule, Zone, parse_local_time, resolve_local};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::batch::RunTarget;
use crate::domain::pipeline::{DateRange, echo};

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

/// A validated trigger definition: what to run, for which company, when, and with which params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDef {
    /// The pipeline, or a batch of every entity's (`all_backfill`, `all_incremental`).
    pub pipeline: RunTarget,
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

fn parse_pipeline(name: &str) -> Result<RunTarget, TriggerError> {
    name.parse::<RunTarget>()
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
