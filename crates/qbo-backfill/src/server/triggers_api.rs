//! The trigger routes of the JSON API (being written).

use axum::http::StatusCode;

use super::error::ApiError;

fn pending() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "triggers are not served yet",
    )
}

/// `POST /api/v1/triggers`.
pub(crate) async fn create() -> ApiError {
    pending()
}
/// `GET /api/v1/triggers`.
pub(crate) async fn list() -> ApiError {
    pending()
}
/// `GET /api/v1/triggers/{id}`.
pub(crate) async fn get_one() -> ApiError {
    pending()
}
/// `PATCH /api/v1/triggers/{id}`.
pub(crate) async fn patch() -> ApiError {
    pending()
}
/// `DELETE /api/v1/triggers/{id}`.
pub(crate) async fn delete() -> ApiError {
    pending()
}
