//! `POST /webhooks/intuit`: QuickBooks' change notifications. No login: the `intuit-signature`
//! header authenticates the body. Answered 200 once the delivery is stored (before any sync
//! runs), also for a signed body that cannot be read (stored as rejected: Intuit retries a
//! refused delivery and holds back the later ones); 401 with nothing stored for a missing or
//! wrong signature; 503 when the database fails (Intuit retries).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::domain::webhook::SIGNATURE_HEADER;
use crate::service::webhooks::{Receipt, receive};

/// The handler.
pub async fn intuit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    match receive(&state.pool, &state.key, &body, signature).await {
        Ok(Receipt::Stored {
            delivery,
            events,
            new,
        }) => {
            tracing::info!("Webhook received | delivery={delivery} events={events} new={new}");
            (StatusCode::OK, "ok\n").into_response()
        }
        Ok(Receipt::Rejected { delivery, error }) => {
            tracing::warn!("Webhook rejected | delivery={delivery} stored, not read: {error}");
            (StatusCode::OK, "stored as rejected\n").into_response()
        }
        Ok(Receipt::BadSignature) => {
            tracing::warn!(
                "Webhook refused | the {SIGNATURE_HEADER} header is missing or does not match the body"
            );
            (StatusCode::UNAUTHORIZED, "bad signature\n").into_response()
        }
        Ok(Receipt::NotConfigured) => {
            tracing::warn!(
                "Webhook refused | no verifier token: store it with `qbo-backfill secrets set QBO_WEBHOOK_VERIFIER_TOKEN`"
            );
            (StatusCode::UNAUTHORIZED, "webhooks are not configured\n").into_response()
        }
        Err(e) => {
            tracing::warn!("Webhook not stored (Intuit will retry): {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response()
        }
    }
}
