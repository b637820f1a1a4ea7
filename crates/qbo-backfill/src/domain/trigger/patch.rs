//! Editing a trigger: a partial change (`PATCH`) applied to a stored definition, re-armed.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use super::*;

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
