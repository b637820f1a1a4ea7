//! Firing due triggers, the scheduler's use case: in one transaction per batch, every enabled
//! trigger whose `next_fire_utc` has come either starts a run or records a miss (the rules are
//! [`crate::domain::trigger::plan_fire`]), and its state moves on. The statements are
//! [`crate::store::runs::triggers`]; the run is queued with [`crate::store::runs::queue`].

use std::time::Duration;

use jiff::Timestamp;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::batch::RunTarget;
use crate::domain::pipeline::DateRange;
use crate::domain::run::RunOrigin;
use crate::domain::trigger::{Decision, TriggerDef, TriggerError, plan_fire};
use crate::store::runs::batches::{self, NewBatch};
use crate::store::runs::queue::{NewRun, enqueue_run};
use crate::store::runs::triggers::{self, Trigger, TriggerStoreError};

/// Due triggers locked and handled per transaction by [`fire_due`].
const FIRE_BATCH: i64 = 100;

/// What [`fire_due`] did with one due trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The trigger.
    pub trigger_id: Uuid,
    /// Its pipeline name.
    pub pipeline: String,
    /// The company the run was (or would have been) queued for.
    pub realm_id: String,
    /// The scheduled instant handled.
    pub occurrence_utc: Timestamp,
    /// The same instant in the trigger's zone, with offset.
    pub occurrence_local: String,
    /// The run started; `None` when the occurrence was missed.
    pub run_id: Option<Uuid>,
    /// The range of the run started.
    pub range: Option<DateRange>,
    /// Occurrences counted as missed in this step.
    pub missed: u32,
    /// Why nothing was started, when nothing was.
    pub reason: Option<String>,
    /// When the trigger fires next (`None`: it is done or disabled).
    pub next_fire_utc: Option<Timestamp>,
}

/// The scheduler's firing step at `now`: every enabled trigger with `next_fire_utc <= now`
/// either starts a run (queued for the trigger's company, or `default_realm` when it has none)
/// or records a miss (when more than `grace` late, see [`plan_fire`]); its state, next firing
/// and `last_*` fields are updated in the same transaction. Due triggers are locked with
/// `FOR UPDATE SKIP LOCKED`, a batch per transaction, so concurrent schedulers share the work
/// and an occurrence is handled once (`ops.trigger_occurrences` is its idempotency key).
///
/// # Errors
/// Database errors (the failing batch is rolled back and retried on the next call).
pub async fn fire_due(
    pool: &PgPool,
    now: Timestamp,
    grace: Duration,
    default_realm: &str,
) -> Result<Vec<Fired>, TriggerStoreError> {
    let mut fired = Vec::new();
    loop {
        let mut tx = pool.begin().await?;
        let due = triggers::lock_due(&mut tx, now, FIRE_BATCH).await?;
        let batch = due.len();
        for trigger in &due {
            fired.push(fire_one(&mut tx, trigger, now, grace, default_realm).await?);
        }
        tx.commit().await?;
        if i64::try_from(batch).unwrap_or(i64::MAX) < FIRE_BATCH {
            return Ok(fired);
        }
    }
}

/// Handles one due, locked trigger inside the caller's transaction.
async fn fire_one(
    conn: &mut PgConnection,
    trigger: &Trigger,
    now: Timestamp,
    grace: Duration,
    default_realm: &str,
) -> Result<Fired, TriggerStoreError> {
    let def = match trigger.definition() {
        Ok(def) => def,
        Err(e) => return disable_broken(conn, trigger, &e, default_realm).await,
    };
    let due = trigger.next_fire_utc.unwrap_or(now);
    let plan = plan_fire(&def, due, now, grace);
    let realm_id = def.realm_id.as_deref().unwrap_or(default_realm).to_owned();
    let (occurrence, range, mut reason) = match &plan.decision {
        Decision::Fire { occurrence, range } => (*occurrence, Some(*range), None),
        Decision::Miss { occurrence, reason } => (*occurrence, None, Some(reason.clone())),
    };
    let first_time = triggers::record_occurrence(conn, trigger.id, occurrence, &plan, now).await?;
    let mut run_id = None;
    if let (true, Some(range)) = (first_time, range) {
        let id = start_run(conn, trigger.id, &def, &realm_id, range).await?;
        triggers::link_occurrence_run(conn, trigger.id, occurrence, id).await?;
        run_id = Some(id);
    } else if !first_time {
        reason = Some(format!("occurrence {occurrence} was already handled"));
    }
    triggers::save_after_fire(conn, trigger.id, &plan, run_id, now).await?;
    Ok(Fired {
        trigger_id: trigger.id,
        pipeline: trigger.pipeline.clone(),
        realm_id,
        occurrence_utc: occurrence,
        occurrence_local: def.local_text(occurrence),
        run_id,
        range: range.filter(|_| run_id.is_some()),
        missed: plan.missed,
        reason,
        next_fire_utc: plan.after.next_fire_utc,
    })
}

/// Queues the run of one occurrence (retried on loss: nobody is watching a triggered run); for
/// a batch trigger (`all_backfill`, `all_incremental`), one run per entity and the batch, all in
/// the caller's transaction. Returns the (first) run.
async fn start_run(
    conn: &mut PgConnection,
    trigger_id: Uuid,
    def: &TriggerDef,
    realm_id: &str,
    range: DateRange,
) -> Result<Uuid, TriggerStoreError> {
    let mut ids = Vec::new();
    for pipeline in def.pipeline.pipelines() {
        let windows = pipeline
            .windows(&range)
            .map_err(|e| TriggerError::InvalidParams(format!("params ({range:?}): {e}")))?;
        let new = NewRun {
            pipeline,
            realm_id,
            range,
            windows: &windows,
            trigger: RunOrigin::Trigger,
            trigger_id: Some(trigger_id),
            started_by: None,
            retry_of: None,
            requeue_on_loss: true,
        };
        ids.push(enqueue_run(&mut *conn, &new).await?);
    }
    if let RunTarget::Batch(batch) = def.pipeline {
        let new = NewBatch {
            batch,
            realm_id,
            range: Some(range),
            trigger: RunOrigin::Trigger,
            trigger_id: Some(trigger_id),
            started_by: None,
            run_by: None,
        };
        batches::insert(&mut *conn, &new, &ids).await?;
    }
    ids.first().copied().ok_or_else(|| {
        TriggerError::UnknownPipeline(format!("{} runs nothing", def.pipeline)).into()
    })
}

/// A due trigger whose stored definition no longer parses: disabled with the reason, no run.
async fn disable_broken(
    conn: &mut PgConnection,
    trigger: &Trigger,
    error: &TriggerError,
    default_realm: &str,
) -> Result<Fired, TriggerStoreError> {
    let reason = format!("stored trigger is invalid, disabled: {error}");
    triggers::disable(conn, trigger.id, &reason).await?;
    let occurrence = trigger.next_fire_utc.unwrap_or(Timestamp::UNIX_EPOCH);
    Ok(Fired {
        trigger_id: trigger.id,
        pipeline: trigger.pipeline.clone(),
        realm_id: trigger
            .realm_id
            .clone()
            .unwrap_or_else(|| default_realm.to_owned()),
        occurrence_utc: occurrence,
        occurrence_local: occurrence.to_string(),
        run_id: None,
        range: None,
        missed: 0,
        reason: Some(reason),
        next_fire_utc: None,
    })
}
