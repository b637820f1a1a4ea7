//! The alert channel routes of the JSON API (scope `admin`): create (a webhook's signing secret
//! in the `201` answer, once), list, read (with its recent deliveries), delete, and test (send
//! a test alert now and answer how it went). The rules live in `domain::alert` and
//! `service::alerts`.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, path_param};
use crate::domain::alert::{FIRST_DELAY, NewChannel};
use crate::domain::pipeline::echo;
use crate::service::alerts::{self, AlertError, Sender, shown_target};
use crate::store::alerts::{ChannelRow, DeliveryRow};

/// Deliveries shown with one channel.
const RECENT: i64 = 20;

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Refused(refusal) => ApiError::invalid(refusal.code(), refusal.to_string()),
            AlertError::NameTaken(_) => ApiError::conflict("alert_channel_exists", e.to_string()),
            AlertError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "alert_channel_not_found",
                e.to_string(),
            ),
            AlertError::Store(store) => ApiError::internal(&store),
        }
    }
}

/// The channel named by the path's `{id}`; `404 alert_channel_not_found` when it is not an id.
#[derive(Debug, Clone, Copy)]
pub struct ChannelId(pub Uuid);

impl FromRequestParts<AppState> for ChannelId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let text = path_param(parts, state).await?;
        text.parse::<Uuid>().map(Self).map_err(|_| {
            let message = format!("no alert channel `{}`", echo(&text));
            ApiError::new(StatusCode::NOT_FOUND, "alert_channel_not_found", message)
        })
    }
}

/// A channel as the API shows it: the webhook URL as its scheme, host and port only, never
/// the secret.
#[must_use]
pub fn channel_view(c: &ChannelRow) -> Value {
    let target_field = if c.kind == "email" { "to" } else { "url" };
    json!({
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        target_field: shown_target(c),
        "events": c.events,
        "created_at": c.created_at.0.to_string(),
    })
}

/// A delivery as the API shows it.
#[must_use]
pub fn delivery_view(d: &DeliveryRow) -> Value {
    json!({
        "id": d.id,
        "channel_id": d.channel_id,
        "channel": d.channel_name,
        "event": d.event,
        "realm_id": d.realm_id,
        "run_id": d.run_id,
        "state": d.state,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "occurred_at": d.occurred_at.0.to_string(),
        "delivered_at": d.delivered_at.map(|t| t.0.to_string()),
        "next_attempt_at": (d.state == "pending").then(|| d.next_attempt_at.0.to_string()),
    })
}

/// `POST /api/v1/alert-channels` → `201` with the channel (and a webhook's `secret`, once).
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewChannel>,
) -> Result<Response, ApiError> {
    let created = alerts::create_channel(&state.pool, &state.key, &new).await?;
    let mut view = channel_view(&created.channel);
    if let (Some(secret), Some(object)) = (created.secret, view.as_object_mut()) {
        object.insert("secret".to_owned(), Value::String(secret));
    }
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /api/v1/alert-channels`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let channels = crate::store::alerts::list_channels(&state.pool).await?;
    let views: Vec<Value> = channels.iter().map(channel_view).collect();
    Ok(Json(json!({ "alert_channels": views })).into_response())
}

/// `GET /api/v1/alert-channels/{id}`: the channel and its recent deliveries.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    ChannelId(id): ChannelId,
) -> Result<Response, ApiError> {
    let channel = alerts::channel(&state.pool, id).await?;
    let deliveries = crate::store::alerts::recent(&state.pool, Some(id), RECENT).await?;
    let mut view = channel_view(&channel);
    if let Some(object) = view.as_object_mut() {
        let recent: Vec<Value> = deliveries.iter().map(delivery_view).collect();
        object.insert("deliveries".to_owned(), Value::Array(recent));
    }
    Ok(Json(view).into_response())
}

/// `DELETE /api/v1/alert-channels/{id}` → `204`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ChannelId(id): ChannelId,
) -> Result<Response, ApiError> {
    alerts::delete_channel(&state.pool, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/alert-channels/{id}/test`: sends a test alert now, once → `200` with the
/// delivery (`state` `delivered`, or `failed` with `last_error`).
pub(crate) async fn test(
    State(state): State<AppState>,
    ChannelId(id): ChannelId,
) -> Result<Response, ApiError> {
    let sender = Sender::new(state.pool.clone(), state.key.clone(), FIRST_DELAY)
        .map_err(|e| ApiError::internal(&e))?;
    let delivery = alerts::test_channel(&sender, id).await?;
    Ok(Json(json!({ "delivery": delivery_view(&delivery) })).into_response())
}
