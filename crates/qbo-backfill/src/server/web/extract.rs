//! What every page handler needs before its own work, as axum extractors: the logged-in
//! [`Operator`] (or a redirect to the login page), a [`CsrfForm`] that carries the session's CSRF
//! token (or the 403 page), and [`PageError`], the response a page sends instead of itself.

use std::collections::HashMap;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::{Lang, SESSION_COOKIE, constant_time_eq, failure, forbidden, not_found};
use crate::server::AppState;
use crate::store::StoreError;
use crate::store::auth::web::{self, Session};

/// A page request that ends in another response: the login redirect (or another), the 403 page
/// for a forged form, a 404, or the failure page (its cause logged on the server only).
#[derive(Debug)]
pub struct PageError(Box<Response>);

impl PageError {
    /// Any response (boxed: a page's `Result` stays small).
    #[must_use]
    pub fn from_response(response: Response) -> Self {
        Self(Box::new(response))
    }

    /// `303` to the login page.
    #[must_use]
    pub fn login() -> Self {
        Self::from_response(Redirect::to("/login").into_response())
    }

    /// `303` to the login page, which comes back to `then` (a page of this site) after it.
    #[must_use]
    pub fn login_then(then: Option<&axum::http::uri::PathAndQuery>) -> Self {
        let then = then.map_or("/", |p| super::i18n::local_path(p.as_str()));
        if then == "/" {
            return Self::login();
        }
        let next: String = url::form_urlencoded::byte_serialize(then.as_bytes()).collect();
        Self::redirect(&format!("/login?next={next}"))
    }

    /// `303` to `to` (a page of this site).
    #[must_use]
    pub fn redirect(to: &str) -> Self {
        Self::from_response(Redirect::to(to).into_response())
    }

    /// The 403 page of [`forbidden`].
    #[must_use]
    pub fn forbidden() -> Self {
        Self::from_response(forbidden())
    }

    /// The 404 page.
    #[must_use]
    pub fn not_found() -> Self {
        Self::from_response(not_found())
    }

    /// The failure page; `cause` goes to the server log.
    #[must_use]
    pub fn failure(cause: &dyn std::fmt::Display) -> Self {
        Self::from_response(failure(cause))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self::failure(&e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        Self::failure(&e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        Self::failure(&e)
    }
}

impl From<crate::store::runs::triggers::TriggerStoreError> for PageError {
    fn from(e: crate::store::runs::triggers::TriggerStoreError) -> Self {
        Self::failure(&e)
    }
}

/// The logged-in operator of a request. As an extractor it redirects to the login page when the
/// request has no live session; it is looked up once per request (a [`CsrfForm`] reuses it).
#[derive(Debug, Clone)]
pub struct Operator {
    /// The session id (from the cookie).
    pub session_id: String,
    /// The session.
    pub session: Session,
    /// The language of the request (its `lang` cookie, else its `Accept-Language`).
    pub lang: Lang,
    /// The path and query of a `GET` (where the language switcher comes back to).
    pub here: Option<String>,
}

/// The operator of a request with these headers.
///
/// # Errors
/// [`PageError::login`] without a live session; the failure page when the database fails.
pub async fn operator(state: &AppState, headers: &HeaderMap) -> Result<Operator, PageError> {
    let id = state
        .web
        .cookie(headers, SESSION_COOKIE)
        .ok_or_else(PageError::login)?;
    match web::session(&state.pool, &id).await? {
        Some(session) => Ok(Operator {
            session_id: id,
            session,
            lang: Lang::of_request(headers),
            here: None,
        }),
        None => Err(PageError::login()),
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        if let Some(op) = parts.extensions.get::<Self>() {
            return Ok(op.clone());
        }
        let get = parts.method == axum::http::Method::GET;
        let mut op = match operator(state, &parts.headers).await {
            Ok(op) => op,
            // A page asked for without a session comes back after the login.
            Err(_) if get => return Err(PageError::login_then(parts.uri.path_and_query())),
            Err(e) => return Err(e),
        };
        if get {
            op.here = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
        }
        parts.extensions.insert(op.clone());
        Ok(op)
    }
}

/// A form that names the CSRF token it carries.
pub trait CsrfField {
    /// The form's `csrf` field, if sent.
    fn csrf(&self) -> Option<&str>;
}

impl CsrfField for HashMap<String, String> {
    fn csrf(&self) -> Option<&str> {
        self.get("csrf").map(String::as_str)
    }
}

/// A form posted by the logged-in operator with the session's CSRF token. Rejected with the
/// login redirect without a session, with axum's form rejection when the body is not a form, and
/// with the 403 page when the token is missing or not the session's.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + CsrfField + Send,
{
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let op = Operator::from_request_parts(&mut parts, state).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| PageError::from_response(rejection.into_response()))?;
        if form
            .csrf()
            .is_some_and(|token| constant_time_eq(token, &op.session.csrf_token))
        {
            Ok(Self(form))
        } else {
            Err(PageError::forbidden())
        }
    }
}

/// A `POST /{things}/{id}/{action}` path: the item's id and the action's name; the 404 page
/// when the id is not a uuid.
#[derive(Debug, Clone)]
pub struct ItemAction {
    /// The item.
    pub id: uuid::Uuid,
    /// What to do to it (`delete`, `test`, `enable`…); the handler refuses the unknown ones.
    pub action: String,
}

impl FromRequestParts<AppState> for ItemAction {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let axum::extract::Path((id, action)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| PageError::not_found())?;
        let id = id.parse().map_err(|_| PageError::not_found())?;
        Ok(Self { id, action })
    }
}
