//! Batches in the JSON API: `POST /api/v1/runs` with `all_backfill` or `all_incremental`
//! enqueues one run per entity as one batch and answers `202 {"batch": …}` with its runs;
//! `GET /api/v1/batches/{id}` follows it; `POST /api/v1/batches/{id}/retry` retries every run
//! of it that has something left to load.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::api::{resolve_realm, validate_run};
use super::error::ApiError;
use super::extract::{BatchId, Caller};
use crate::domain::batch::Batch;
use crate::domain::pipeline::DateRange;
use crate::domain::run::RunOrigin;
use crate::service::batch::{self as batch_service, BatchError};
use crate::store::runs::batches::{self, NewBatch};

/// The dates of a batch request, validated as a pipeline's: both or (for `all_incremental`)
/// neither.
pub(crate) fn batch_dates(
    batch: Batch,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
) -> Result<Option<DateRange>, ApiError> {
    let first = batch
        .pipelines()
        .first()
        .copied()
        .ok_or_else(|| ApiError::invalid("unknown_pipeline", "the batch has no pipeline"))?;
    validate_run(first.name(), fecha_inicio, fecha_fin)
        .map(|(_, dates)| dates)
        .map_err(|e| match e.code {
            "invalid_request" if fecha_inicio.is_none() && fecha_fin.is_none() => {
                ApiError::invalid(
                    "invalid_request",
                    BatchError::DatesRequired(batch).to_string(),
                )
            }
            _ => e,
        })
}

/// The refusal of a batch that cannot start (nothing written).
pub(crate) fn refused(e: BatchError) -> ApiError {
    match e {
        BatchError::Database(e) => ApiError::from(e),
        BatchError::NoCursor { .. } => ApiError::invalid("no_cursor", e.to_string()),
        BatchError::DatesRequired(_) => ApiError::invalid("invalid_request", e.to_string()),
        BatchError::Range(_) => ApiError::invalid("invalid_range", e.to_string()),
    }
}

/// Plans and enqueues `batch` for the company named (or the only one), and answers `202` with
/// the batch and its runs.
pub(crate) async fn create_batch(
    state: &AppState,
    caller: &Caller,
    batch: Batch,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
    realm_id: Option<&str>,
) -> Result<Response, ApiError> {
    let dates = batch_dates(batch, fecha_inicio, fecha_fin)?;
    let realm_id = resolve_realm(state, realm_id).await?;
    let id = enqueue_batch(
        state,
        batch,
        &realm_id,
        dates,
        (RunOrigin::Api, caller.name()),
    )
    .await?;
    answer(state, id, StatusCode::ACCEPTED).await
}

/// Plans and enqueues `batch` (all runs or none), started by `started_by` from `trigger`, and
/// wakes the workers; the batch id.
pub(crate) async fn enqueue_batch(
    state: &AppState,
    batch: Batch,
    realm_id: &str,
    dates: Option<DateRange>,
    (trigger, started_by): (RunOrigin, Option<&str>),
) -> Result<Uuid, ApiError> {
    let planned = batch_service::plan(&state.pool, batch, realm_id, dates, jiff::Timestamp::now())
        .await
        .map_err(refused)?;
    let new = NewBatch {
        batch,
        realm_id,
        range: dates,
        trigger,
        trigger_id: None,
        started_by,
        run_by: None,
    };
    let (id, _) = batch_service::enqueue(&state.pool, &new, &planned).await?;
    state.wake_workers.notify_waiters();
    Ok(id)
}

/// `{"batch": …}` of batch `id` with `status`.
async fn answer(state: &AppState, id: Uuid, status: StatusCode) -> Result<Response, ApiError> {
    let view = batches::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no batch `{id}`")))?;
    Ok((status, Json(serde_json::json!({ "batch": view }))).into_response())
}

/// `GET /api/v1/batches/{id}`.
pub(crate) async fn get_batch(
    State(state): State<AppState>,
    BatchId(id): BatchId,
) -> Result<Response, ApiError> {
    answer(&state, id, StatusCode::OK).await
}

/// `POST /api/v1/batches/{id}/retry`: `202` with the batch once its failed runs are queued
/// again; `409 nothing_to_retry` when none has anything left to load.
pub(crate) async fn retry_batch(
    State(state): State<AppState>,
    caller: Caller,
    BatchId(id): BatchId,
) -> Result<Response, ApiError> {
    if batches::get(&state.pool, id).await?.is_none() {
        return Err(ApiError::not_found(format!("no batch `{id}`")));
    }
    let retried = batch_service::retry_failed(&state.pool, id, caller.name()).await?;
    if retried.is_empty() {
        return Err(ApiError::conflict(
            "nothing_to_retry",
            format!("batch {id} has no run with failed or unfinished windows left to retry"),
        ));
    }
    state.wake_workers.notify_waiters();
    answer(&state, id, StatusCode::ACCEPTED).await
}
