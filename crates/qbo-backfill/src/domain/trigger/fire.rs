//! What the scheduler does with a due trigger: fire it, or record it missed, and when it fires
//! next (the lateness rules of the module above).

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::*;

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
    let window_start = now.checked_sub(grace).unwrap_or(Timestamp::MIN).max(due);
    let Walk {
        mut missed,
        latest,
        next: occurrence,
    } = walk_occurrences(cron, &def.zone.tz, due, window_start, now);
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

/// The cron occurrences from `due` up to `now`: how many were missed, the latest one within the
/// grace (it fires), and the first one after `now` (when the trigger fires next).
struct Walk {
    missed: u32,
    latest: Option<Timestamp>,
    next: Option<Timestamp>,
}

/// Walks a cron's occurrences from `due`: those before `window_start` (older than the grace) are
/// missed, counted up to a limit; of those within the grace the latest fires and earlier ones
/// are skipped (counted missed too).
fn walk_occurrences(
    cron: &CronSchedule,
    tz: &TimeZone,
    due: Timestamp,
    window_start: Timestamp,
    now: Timestamp,
) -> Walk {
    let mut missed = 0u32;
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
    Walk {
        missed,
        latest,
        next: occurrence,
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
