//! Logging in and out: the login form (its CSRF token double-submitted through a cookie, since
//! there is no session yet), the rate limit on failed logins (per client address, see
//! [`client_of`]), and a fresh session cookie.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Fields, field};
use crate::server::AppState;
use crate::server::web::extract::operator;
use crate::server::web::i18n::{Lang, LangLink, local_path};
use crate::server::web::{
    CsrfForm, LOGIN_CSRF_COOKIE, Operator, PageError, SESSION_COOKIE, add_cookie, constant_time_eq,
    render,
};
use crate::service::login::{self, LoginOutcome};
use crate::store::auth::web;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    /// Where a successful login goes (a page of this site).
    next: String,
    username: String,
    error: Option<String>,
    lang: Lang,
    languages: Vec<LangLink>,
}

fn login_page(
    state: &AppState,
    lang: Lang,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let Ok(csrf) = web::random_token() else {
        return PageError::failure(&"no randomness for the login form").into_response();
    };
    let mut response = render(&LoginPage {
        csrf: csrf.clone(),
        next: local_path(next).to_owned(),
        username: username.to_owned(),
        error,
        lang,
        languages: lang.links("/login"),
    });
    add_cookie(
        &mut response,
        &state.web,
        LOGIN_CSRF_COOKIE,
        &csrf,
        Some(3600),
    );
    response
}

/// `GET /login?next=/path`: the form, or the page `next` names (the dashboard by default) when
/// already logged in.
pub(crate) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Fields>,
) -> Response {
    let next = local_path(query.get("next").map_or("/", String::as_str));
    if operator(&state, &headers).await.is_ok() {
        return Redirect::to(next).into_response();
    }
    login_page(&state, Lang::of_request(&headers), next, "", None)
}

/// The client a request comes from: the connection's peer, or, when the peer is one of the
/// trusted proxies (`QBO_BACKFILL_TRUSTED_PROXIES`), the right-most untrusted hop of its
/// `X-Forwarded-For`. A router served without connect info (never `serve`) counts as one client.
fn client_of(state: &AppState, parts: &Extensions, headers: &HeaderMap) -> IpAddr {
    let peer = parts
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        });
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    state.web.trusted_proxies.client(peer, &forwarded)
}

/// `POST /login`: CSRF (double submit), rate limit per client, argon2 check, then a fresh
/// session.
pub(crate) async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Result<Response, PageError> {
    let expected = state
        .web
        .cookie(&headers, LOGIN_CSRF_COOKIE)
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(field(&form, "csrf"), &expected) {
        return Err(PageError::forbidden());
    }
    let username: String = field(&form, "username").chars().take(200).collect();
    let password = form.get("password").map_or("", String::as_str);
    let client = client_of(&state, &extensions, &headers);
    let lang = Lang::of_request(&headers);
    let next = local_path(field(&form, "next"));
    let refused = |key| login_page(&state, lang, next, &username, Some(lang.t(key).to_owned()));
    let session = match login::login(&state.pool, &username, password, client).await? {
        LoginOutcome::Throttled => return Ok(refused("login.throttled")),
        LoginOutcome::Refused => return Ok(refused("login.refused")),
        LoginOutcome::Session(session) => session,
    };
    let mut response = Redirect::to(next).into_response();
    let idle = Some(web::SESSION_IDLE.as_secs());
    add_cookie(&mut response, &state.web, SESSION_COOKIE, &session.id, idle);
    add_cookie(&mut response, &state.web, LOGIN_CSRF_COOKIE, "", Some(0));
    Ok(response)
}

/// `POST /logout`: ends the session and clears its cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    web::logout(&state.pool, &op.session_id).await?;
    let mut response = Redirect::to("/login").into_response();
    add_cookie(&mut response, &state.web, SESSION_COOKIE, "", Some(0));
    Ok(response)
}
