//! The trigger routes of the JSON API: create (one-time at a local time in a zone, or cron),
//! list, read, edit (`{"enabled": false}` and the rest) and delete. Validation and firing rules
//! live in `orchestrator::triggers`; the SQL in `store::runs::triggers`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::resolve_realm;
use super::error::ApiError;
use super::extract::{ApiJson, TriggerId};
use crate::orchestrator::triggers::{NewTrigger, TriggerPatch};
use crate::store::runs::triggers::{self, TriggerStoreError};

impl From<TriggerStoreError> for ApiError {
    fn from(e: TriggerStoreError) -> Self {
        match e {
            TriggerStoreError::Invalid(invalid) => {
                ApiError::invalid(invalid.code(), invalid.to_string())
            }
            TriggerStoreError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "trigger_not_found",
                format!("no trigger `{id}`"),
            ),
            TriggerStoreError::Database(db) => ApiError::internal(&db),
        }
    }
}

/// `POST /api/v1/triggers` → `201` with the trigger.
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(mut new): ApiJson<NewTrigger>,
) -> Result<Response, ApiError> {
    // A trigger always names its company: the one asked for, or the only one connected now.
    new.realm_id = Some(resolve_realm(&state, new.realm_id.as_deref()).await?);
    let trigger = triggers::create(&state.pool, &new, jiff::Timestamp::now()).await?;
    Ok((StatusCode::CREATED, Json(trigger.view())).into_response())
}

/// `GET /api/v1/triggers`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let views: Vec<_> = triggers::list(&state.pool)
        .await?
        .iter()
        .map(triggers::Trigger::view)
        .collect();
    Ok(Json(serde_json::json!({ "triggers": views })).into_response())
}

/// `GET /api/v1/triggers/{id}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    TriggerId(id): TriggerId,
) -> Result<Response, ApiError> {
    let trigger = triggers::get(&state.pool, id).await?;
    Ok(Json(trigger.view()).into_response())
}

/// `PATCH /api/v1/triggers/{id}` with any of `enabled`, `local_time`, `cron`, `time_zone`,
/// `params`, `pipeline`, `realm_id`.
pub(crate) async fn patch(
    State(state): State<AppState>,
    TriggerId(id): TriggerId,
    ApiJson(mut patch): ApiJson<TriggerPatch>,
) -> Result<Response, ApiError> {
    if let Some(realm) = &patch.realm_id {
        patch.realm_id = Some(Some(resolve_realm(&state, realm.as_deref()).await?));
    }
    let trigger = triggers::update(&state.pool, id, &patch, jiff::Timestamp::now()).await?;
    Ok(Json(trigger.view()).into_response())
}

/// `DELETE /api/v1/triggers/{id}` → `204`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    TriggerId(id): TriggerId,
) -> Result<Response, ApiError> {
    triggers::delete(&state.pool, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
