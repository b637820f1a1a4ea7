//! [`ApiError`]: every failure of the JSON API as a status, a stable snake_case code and a message
//! for a person — never SQL, a stack trace or a secret.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `text` (worded for the command line) with the API's field names: `fecha_inicio`, not
/// `--fecha-inicio`.
pub(crate) fn api_words(text: &str) -> String {
    text.replace("--fecha", "fecha").replace("fecha-", "fecha_")
}

/// A failed API call.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with any status. The message names fields as the API's bodies do
    /// (`fecha_inicio`), whichever layer worded it ([`api_words`]).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: api_words(&message.into()),
        }
    }

    /// 422: the request is well-formed but its values are not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 409: the resource is not in a state that allows this.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an API token is required: send `Authorization: Bearer TOKEN` (create one with `qbo-backfill api-tokens create NAME`)",
        )
    }

    /// 401 `unauthorized` for a token sent that is not a live one.
    pub fn token_refused() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API token is not accepted: it is unknown, revoked or expired (`qbo-backfill api-tokens list` shows yours; create one with `qbo-backfill api-tokens create NAME`)",
        )
    }

    /// 500, with the cause logged on the server only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!("API request failed: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; the server log says why",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: how to authenticate.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"qbo-backfill\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_names_the_apis_fields_not_the_clis_flags() {
        // Trigger parameters and a batch without a cursor are worded by layers the CLI shares.
        let params = ApiError::invalid(
            "invalid_params",
            "--fecha-fin (2026-12-07) must be after --fecha-inicio (2026-12-08)",
        );
        assert_eq!(
            params.message,
            "fecha_fin (2026-12-07) must be after fecha_inicio (2026-12-08)"
        );
        let cursor = ApiError::conflict(
            "no_cursor",
            "run it once with --fecha-inicio and --fecha-fin",
        );
        assert_eq!(
            cursor.message,
            "run it once with fecha_inicio and fecha_fin"
        );
    }
}
