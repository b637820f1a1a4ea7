//! Trigger storage: all SQL for `ops.triggers` and `ops.trigger_occurrences` — create, list,
//! get, update, delete, the JSON view the API returns, and the statements of the firing step
//! (lock the due ones, record an occurrence once, save the state after it). The rules
//! (validation, DST, lateness, re-arming) are in [`crate::domain::trigger`]; the firing use case
//! that composes them in one transaction is [`crate::service::triggers::fire_due`].

use jiff::Timestamp;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::trigger::{
    Arming, Decision, FirePlan, NewTrigger, TriggerDef, TriggerError, TriggerKind, TriggerPatch,
    TriggerState, Zone, apply_patch,
};
use crate::store::PgTimestamp;

/// The columns of `ops.triggers` read into a [`TriggerRow`].
macro_rules! columns {
    () => {
        "id, pipeline, realm_id, kind, local_time, cron, time_zone, params, enabled, state, \
         next_fire_utc, last_fired_utc, last_run_id, missed_count, last_missed_utc, last_error, \
         created_at, updated_at"
    };
}

/// A failure of a trigger operation.
#[derive(Debug, thiserror::Error)]
pub enum TriggerStoreError {
    /// The trigger as asked for is not valid.
    #[error(transparent)]
    Invalid(#[from] TriggerError),
    /// No trigger has this id.
    #[error("no trigger with id {0}")]
    NotFound(Uuid),
    /// The database failed.
    #[error("Database error: {}", crate::store::describe_sqlx(.0))]
    Database(#[from] sqlx::Error),
}

impl TriggerStoreError {
    /// The stable snake_case code for API error bodies.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.code(),
            Self::NotFound(_) => "trigger_not_found",
            Self::Database(_) => "internal_error",
        }
    }
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// Its id.
    pub id: Uuid,
    /// Pipeline name.
    pub pipeline: String,
    /// Company, or `None` for the only company.
    pub realm_id: Option<String>,
    /// One-time or cron.
    pub kind: TriggerKind,
    /// One-time: the local time as given.
    pub local_time: Option<String>,
    /// Cron: the expression.
    pub cron: Option<String>,
    /// IANA zone.
    pub time_zone: String,
    /// `{"fecha_inicio", "fecha_fin"}`.
    pub params: serde_json::Value,
    /// Whether the scheduler considers it.
    pub enabled: bool,
    /// Where it stands.
    pub state: TriggerState,
    /// When it fires next.
    pub next_fire_utc: Option<Timestamp>,
    /// When it last started a run.
    pub last_fired_utc: Option<Timestamp>,
    /// The run it last started.
    pub last_run_id: Option<Uuid>,
    /// Occurrences missed so far.
    pub missed_count: i64,
    /// When the scheduler last recorded a missed occurrence.
    pub last_missed_utc: Option<Timestamp>,
    /// The last problem met when firing (params that did not resolve, …).
    pub last_error: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed (by an edit or the scheduler).
    pub updated_at: Timestamp,
}

/// A trigger as the JSON API shows it (times RFC 3339 UTC, `…Z`). `local_time` or `cron` is
/// present, depending on the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerView {
    /// Its id.
    pub id: Uuid,
    /// Pipeline name.
    pub pipeline: String,
    /// Company, `null` for the only company.
    pub realm_id: Option<String>,
    /// `once` or `cron`.
    pub kind: TriggerKind,
    /// Whether the scheduler considers it.
    pub enabled: bool,
    /// One-time: the local time as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    /// Cron: the expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA zone.
    pub time_zone: String,
    /// `{"fecha_inicio", "fecha_fin"}`.
    pub params: serde_json::Value,
    /// When it fires next, UTC.
    pub next_fire_utc: Option<String>,
    /// The same instant in the trigger's zone, with offset (`2026-02-02T10:00:00-05:00`).
    pub next_fire_local: Option<String>,
    /// When it last started a run.
    pub last_fired_utc: Option<String>,
    /// The run it last started.
    pub last_run_id: Option<Uuid>,
    /// `scheduled`, `fired`, `missed` or `disabled`.
    pub state: TriggerState,
    /// Occurrences missed so far.
    pub missed_count: i64,
    /// When the scheduler last recorded a missed occurrence.
    pub last_missed_utc: Option<String>,
    /// The last problem met when firing.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl Trigger {
    /// The validated definition (fails only if the row was edited behind our back).
    ///
    /// # Errors
    /// The first invalid stored field.
    pub fn definition(&self) -> Result<TriggerDef, TriggerError> {
        TriggerDef::parse(
            &self.pipeline,
            self.realm_id.as_deref(),
            self.kind,
            self.local_time.as_deref(),
            self.cron.as_deref(),
            &self.time_zone,
            &self.params,
        )
    }

    /// Enabled flag, state and next firing.
    #[must_use]
    pub const fn arming(&self) -> Arming {
        Arming {
            enabled: self.enabled,
            state: self.state,
            next_fire_utc: self.next_fire_utc,
        }
    }

    /// The JSON view.
    #[must_use]
    pub fn view(&self) -> TriggerView {
        let utc = |t: Option<Timestamp>| t.map(|t| t.to_string());
        let zone = Zone::parse(&self.time_zone).ok();
        TriggerView {
            id: self.id,
            pipeline: self.pipeline.clone(),
            realm_id: self.realm_id.clone(),
            kind: self.kind,
            enabled: self.enabled,
            local_time: self.local_time.clone(),
            cron: self.cron.clone(),
            time_zone: self.time_zone.clone(),
            params: self.params.clone(),
            next_fire_utc: utc(self.next_fire_utc),
            next_fire_local: zone.zip(self.next_fire_utc).map(|(z, t)| z.local_text(t)),
            last_fired_utc: utc(self.last_fired_utc),
            last_run_id: self.last_run_id,
            state: self.state,
            missed_count: self.missed_count,
            last_missed_utc: utc(self.last_missed_utc),
            last_error: self.last_error.clone(),
            created_at: self.created_at.to_string(),
            updated_at: self.updated_at.to_string(),
        }
    }
}

/// `ops.triggers` as read.
#[derive(sqlx::FromRow)]
struct TriggerRow {
    id: Uuid,
    pipeline: String,
    realm_id: Option<String>,
    kind: String,
    local_time: Option<String>,
    cron: Option<String>,
    time_zone: String,
    params: Json<serde_json::Value>,
    enabled: bool,
    state: String,
    next_fire_utc: Option<PgTimestamp>,
    last_fired_utc: Option<PgTimestamp>,
    last_run_id: Option<Uuid>,
    missed_count: i64,
    last_missed_utc: Option<PgTimestamp>,
    last_error: Option<String>,
    created_at: PgTimestamp,
    updated_at: PgTimestamp,
}

impl TryFrom<TriggerRow> for Trigger {
    type Error = sqlx::Error;

    fn try_from(r: TriggerRow) -> Result<Self, Self::Error> {
        let decode = |what: String| sqlx::Error::Decode(what.into());
        Ok(Self {
            id: r.id,
            pipeline: r.pipeline,
            realm_id: r.realm_id,
            kind: r
                .kind
                .parse()
                .map_err(|e: TriggerError| decode(e.to_string()))?,
            local_time: r.local_time,
            cron: r.cron,
            time_zone: r.time_zone,
            params: r.params.0,
            enabled: r.enabled,
            state: r.state.parse().map_err(decode)?,
            next_fire_utc: r.next_fire_utc.map(|t| t.0),
            last_fired_utc: r.last_fired_utc.map(|t| t.0),
            last_run_id: r.last_run_id,
            missed_count: r.missed_count,
            last_missed_utc: r.last_missed_utc.map(|t| t.0),
            last_error: r.last_error,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

/// Validates `new` at `now` and stores it.
///
/// # Errors
/// [`TriggerStoreError::Invalid`] (nothing stored) or a database error.
pub async fn create(
    pool: &PgPool,
    new: &NewTrigger,
    now: Timestamp,
) -> Result<Trigger, TriggerStoreError> {
    let (def, arming) = new.validate(now)?;
    let insert = sqlx::query_as(concat!(
        "INSERT INTO ops.triggers (id, pipeline, realm_id, local_time, cron, time_zone, params, \
           enabled, state, next_fire_utc, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
        columns!()
    ))
    .bind(Uuid::now_v7());
    let row: TriggerRow = bind_definition(insert, &def, &arming)
        .bind(def.schedule.kind().as_str())
        .fetch_one(pool)
        .await?;
    Ok(row.try_into()?)
}

/// A trigger's stored definition and arming as `$2` … `$10` of `query`: pipeline, company,
/// local time, cron, time zone, parameters, enabled, state, next firing.
fn bind_definition<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, TriggerRow, sqlx::postgres::PgArguments>,
    def: &'q TriggerDef,
    arming: &Arming,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, TriggerRow, sqlx::postgres::PgArguments> {
    query
        .bind(def.pipeline.name())
        .bind(def.realm_id.as_deref())
        .bind(def.schedule.local_time())
        .bind(def.schedule.cron())
        .bind(&def.zone.name)
        .bind(Json(def.params.to_json()))
        .bind(arming.enabled)
        .bind(arming.state.as_str())
        .bind(arming.next_fire_utc.map(PgTimestamp))
}

/// Every trigger, oldest first.
///
/// # Errors
/// Database errors.
pub async fn list(pool: &PgPool) -> Result<Vec<Trigger>, TriggerStoreError> {
    let rows: Vec<TriggerRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM ops.triggers ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(Trigger::try_from)
        .collect::<Result<_, _>>()?)
}

/// One trigger.
///
/// # Errors
/// [`TriggerStoreError::NotFound`] or a database error.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Trigger, TriggerStoreError> {
    let row: Option<TriggerRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM ops.triggers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.ok_or(TriggerStoreError::NotFound(id))?.try_into()?)
}

/// Applies `patch` at `now` (rules in [`apply_patch`]): re-validates everything and recomputes
/// the next firing, under the trigger's row lock so an edit and a firing never interleave.
///
/// # Errors
/// [`TriggerStoreError::Invalid`] (nothing changed), [`TriggerStoreError::NotFound`], or a
/// database error.
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    patch: &TriggerPatch,
    now: Timestamp,
) -> Result<Trigger, TriggerStoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<TriggerRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM ops.triggers WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let current = Trigger::try_from(row.ok_or(TriggerStoreError::NotFound(id))?)?;
    let (def, arming) = apply_patch(&current.definition()?, current.arming(), patch, now)?;
    let update = sqlx::query_as(concat!(
        "UPDATE ops.triggers SET pipeline = $2, realm_id = $3, local_time = $4, cron = $5, \
           time_zone = $6, params = $7, enabled = $8, state = $9, next_fire_utc = $10, \
           updated_at = now() \
         WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id);
    let row: TriggerRow = bind_definition(update, &def, &arming)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.try_into()?)
}

/// Deletes a trigger (its occurrence history goes with it; runs it started stay).
///
/// # Errors
/// [`TriggerStoreError::NotFound`] or a database error.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<(), TriggerStoreError> {
    let done = sqlx::query("DELETE FROM ops.triggers WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(TriggerStoreError::NotFound(id));
    }
    Ok(())
}

/// One occurrence the scheduler handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    /// The scheduled instant, UTC.
    pub scheduled_utc: String,
    /// `fired` or `missed`.
    pub outcome: String,
    /// The run it started.
    pub run_id: Option<Uuid>,
    /// Occurrences missed in the same step.
    pub missed: i32,
    /// When the scheduler handled it.
    pub handled_at: String,
    /// Why it was missed.
    pub detail: Option<String>,
}

/// The latest `limit` occurrences of a trigger, newest first.
///
/// # Errors
/// Database errors.
pub async fn occurrences(
    pool: &PgPool,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Occurrence>, TriggerStoreError> {
    let rows: Vec<OccurrenceRow> = sqlx::query_as(
        "SELECT scheduled_utc, outcome, run_id, missed, handled_at, detail \
         FROM ops.trigger_occurrences WHERE trigger_id = $1 \
         ORDER BY scheduled_utc DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit.clamp(1, 1000))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Occurrence {
            scheduled_utc: r.scheduled_utc.0.to_string(),
            outcome: r.outcome,
            run_id: r.run_id,
            missed: r.missed,
            handled_at: r.handled_at.0.to_string(),
            detail: r.detail,
        })
        .collect())
}

/// `ops.trigger_occurrences` as read.
#[derive(sqlx::FromRow)]
struct OccurrenceRow {
    scheduled_utc: PgTimestamp,
    outcome: String,
    run_id: Option<Uuid>,
    missed: i32,
    handled_at: PgTimestamp,
    detail: Option<String>,
}

/// Locks up to `limit` enabled triggers due at `now` (`FOR UPDATE SKIP LOCKED`, oldest due
/// first) inside the caller's transaction, so concurrent schedulers share the work.
///
/// # Errors
/// Database errors, or a stored row that does not read back.
pub async fn lock_due(
    conn: &mut PgConnection,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<Trigger>, TriggerStoreError> {
    let rows: Vec<TriggerRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM ops.triggers WHERE enabled AND next_fire_utc <= $1 \
         ORDER BY next_fire_utc, id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(PgTimestamp(now))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| Trigger::try_from(row).map_err(TriggerStoreError::from))
        .collect()
}

/// Inserts an occurrence's row (`fired` or `missed`); `false` if it was already there (handled
/// before): `ops.trigger_occurrences` is the occurrence's idempotency key.
///
/// # Errors
/// Database errors.
pub async fn record_occurrence(
    conn: &mut PgConnection,
    trigger_id: Uuid,
    occurrence: Timestamp,
    plan: &FirePlan,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let (outcome, detail) = match &plan.decision {
        Decision::Fire { .. } => ("fired", None),
        Decision::Miss { reason, .. } => ("missed", Some(reason.as_str())),
    };
    let done = sqlx::query(
        "INSERT INTO ops.trigger_occurrences \
           (trigger_id, scheduled_utc, outcome, missed, handled_at, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(trigger_id)
    .bind(PgTimestamp(occurrence))
    .bind(outcome)
    .bind(i32::try_from(plan.missed).unwrap_or(i32::MAX))
    .bind(PgTimestamp(now))
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Links an occurrence to the run it started.
///
/// # Errors
/// Database errors.
pub async fn link_occurrence_run(
    conn: &mut PgConnection,
    trigger_id: Uuid,
    occurrence: Timestamp,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ops.trigger_occurrences SET run_id = $3 \
         WHERE trigger_id = $1 AND scheduled_utc = $2",
    )
    .bind(trigger_id)
    .bind(PgTimestamp(occurrence))
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes the trigger's state after a firing step.
///
/// # Errors
/// Database errors.
pub async fn save_after_fire(
    conn: &mut PgConnection,
    id: Uuid,
    plan: &FirePlan,
    run_id: Option<Uuid>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ops.triggers SET enabled = $2, state = $3, next_fire_utc = $4, \
           last_fired_utc = CASE WHEN $5::uuid IS NULL THEN last_fired_utc ELSE $6 END, \
           last_run_id = coalesce($5, last_run_id), \
           missed_count = missed_count + $7, \
           last_missed_utc = CASE WHEN $7 > 0 THEN $6 ELSE last_missed_utc END, \
           last_error = CASE WHEN $5::uuid IS NULL THEN coalesce($8, last_error) ELSE $8 END, \
           updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(plan.after.enabled)
    .bind(plan.after.state.as_str())
    .bind(plan.after.next_fire_utc.map(PgTimestamp))
    .bind(run_id)
    .bind(PgTimestamp(now))
    .bind(i64::from(plan.missed))
    .bind(plan.error.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Disables a trigger with the reason, clearing its next firing.
///
/// # Errors
/// Database errors.
pub async fn disable(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ops.triggers SET enabled = false, state = 'disabled', next_fire_utc = NULL, \
           last_error = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
