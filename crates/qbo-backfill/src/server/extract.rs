//! What the JSON API's handlers need before their own work, as axum extractors whose rejection
//! is the API's error envelope ([`ApiError`]): a live API token ([`ApiToken`], applied to every
//! API route), a JSON body ([`ApiJson`]), and ids from the path ([`RunId`], [`TriggerId`]).

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, MAX_BODY_BYTES};
use crate::domain::access::{Scope, required_scope};
use crate::pipeline::echo;

/// The longest message text echoed from a parser.
const MAX_MESSAGE: usize = 200;

fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// `413 body_too_large`: the body is over [`MAX_BODY_BYTES`].
#[must_use]
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        ),
    )
}

/// Parses a JSON body into `T`: malformed JSON is `400 invalid_json`, wrong fields or types are
/// `422 invalid_request`.
///
/// # Errors
/// As above.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {}", one_line(&e.to_string())),
            ),
            Category::Data => ApiError::invalid(
                "invalid_request",
                format!(
                    "the body does not have the expected fields: {}",
                    one_line(&without_values(&e.to_string()))
                ),
            ),
        }
    })
}

/// `message` (serde's) without the value it quotes: `invalid type: string "…", expected a
/// sequence` says `invalid type: string, expected a sequence`, so that a secret put in the wrong
/// field never comes back in the answer.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((quoted, expected)) = rest.rsplit_once(", expected ")
        {
            let kind = if prefix == "unknown variant " {
                ""
            } else {
                quoted.split([' ', ',']).next().unwrap_or_default()
            };
            return format!("{prefix}{kind}, expected {expected}")
                .replace(" , expected", ", expected");
        }
    }
    message.to_owned()
}

/// A JSON body parsed into `T` by [`parse_json`] (whatever its content type); a body over the
/// limit is `413 body_too_large`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
                status => ApiError::new(status, "invalid_body", one_line(&rejection.body_text())),
            })?;
        parse_json(&body).map(Self)
    }
}

/// The credentials of an `Authorization: Bearer …` value; the scheme's name is
/// case-insensitive (RFC 9110), so `Bearer`, `bearer` and `BEARER` all name it.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(credentials.trim())
}

/// A request that carries a live API token (`Authorization: Bearer TOKEN`) whose scope allows
/// the call ([`required_scope`]): `401 unauthorized` without one (unknown, revoked or expired),
/// `403 forbidden` outside its scope. The one place scopes are checked: applied to every API
/// route as a layer, which leaves the token's name to the handler ([`Caller`]).
#[derive(Debug, Clone, Copy)]
pub struct ApiToken(pub Scope);

/// Who makes an API request: the name of its token, as runs record who started them
/// (`started_by`). Set by [`ApiToken`]; `None` on a route outside it.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<String>);

impl Caller {
    /// The name, as [`crate::store::runs::queue::NewRun::started_by`] takes it.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

impl FromRequestParts<AppState> for ApiToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials)
            .ok_or_else(ApiError::unauthorized)?;
        let (scope, name) = match crate::store::auth::api_tokens::verify(&state.pool, token).await {
            Ok(Some(live)) => live,
            Ok(None) => return Err(ApiError::token_refused()),
            Err(e) => return Err(ApiError::internal(&e)),
        };
        let needed = required_scope(parts.method.as_str(), parts.uri.path());
        if !scope.allows(needed) {
            let message = format!(
                "this API token's scope is `{scope}`; {} {} needs `{needed}`",
                parts.method,
                echo(parts.uri.path())
            );
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message));
        }
        parts.extensions.insert(Caller(Some(name)));
        Ok(Self(scope))
    }
}

/// The one parameter of a path (`{id}`, `{name}`), as text.
pub(crate) async fn path_param(parts: &mut Parts, state: &AppState) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(id)| id)
        .map_err(|rejection| {
            ApiError::new(
                rejection.status(),
                "invalid_path",
                one_line(&rejection.body_text()),
            )
        })
}

/// The path's `{id}` as a uuid, or `unknown(text)` when it is not one.
async fn path_uuid(
    parts: &mut Parts,
    state: &AppState,
    unknown: impl FnOnce(&str) -> ApiError,
) -> Result<Uuid, ApiError> {
    let text = path_param(parts, state).await?;
    text.parse::<Uuid>().map_err(|_| unknown(&echo(&text)))
}

/// The run named by the path's `{id}`; `404 not_found` when it is not a run id.
#[derive(Debug, Clone, Copy)]
pub struct RunId(pub Uuid);

impl FromRequestParts<AppState> for RunId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unknown = |id: &str| ApiError::not_found(format!("no run `{id}`"));
        path_uuid(parts, state, unknown).await.map(Self)
    }
}

/// The trigger named by the path's `{id}`; `404 trigger_not_found` when it is not a trigger id.
#[derive(Debug, Clone, Copy)]
pub struct TriggerId(pub Uuid);

impl FromRequestParts<AppState> for TriggerId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unknown = |id: &str| {
            let message = format!("no trigger `{id}`");
            ApiError::new(StatusCode::NOT_FOUND, "trigger_not_found", message)
        };
        path_uuid(parts, state, unknown).await.map(Self)
    }
}

/// The batch named by the path's `{id}`; `404 not_found` when it is not a batch id.
#[derive(Debug, Clone, Copy)]
pub struct BatchId(pub Uuid);

impl FromRequestParts<AppState> for BatchId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unknown = |id: &str| ApiError::not_found(format!("no batch `{id}`"));
        path_uuid(parts, state, unknown).await.map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_credentials;

    #[test]
    fn a_misplaced_value_is_never_quoted_back() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            events: Vec<String>,
            kind: Kind,
            count: Option<u32>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Webhook,
        }
        for body in [
            r#"{"events": "https://u:Pw5ecretZZ@hooks.example.com/x", "kind": "webhook"}"#,
            r#"{"events": [], "kind": "Pw5ecretZZ"}"#,
            r#"{"events": [], "kind": "webhook", "count": "Pw5ecretZZ"}"#,
            r#"{"events": [], "kind": "webhook", "count": 4294967296}"#,
        ] {
            let err = super::parse_json::<Body>(body.as_bytes()).expect_err(body);
            assert_eq!(err.code, "invalid_request", "{body}");
            assert!(!err.message.contains("Pw5ecretZZ"), "{}", err.message);
            assert!(!err.message.contains("4294967296"), "{}", err.message);
            assert!(err.message.contains("expected"), "{}", err.message);
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer qbt_x",
            "bearer qbt_x",
            "BEARER qbt_x",
            "BeArEr  qbt_x ",
        ] {
            assert_eq!(bearer_credentials(value), Some("qbt_x"), "{value}");
        }
        for value in ["Basic qbt_x", "Bearerqbt_x", "qbt_x", ""] {
            assert_eq!(bearer_credentials(value), None, "{value}");
        }
    }
}
