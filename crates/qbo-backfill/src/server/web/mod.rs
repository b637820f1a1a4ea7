//! The web UI on port 6789: server-rendered pages (askama templates compiled into the binary, a
//! small stylesheet and script served from it, no build step), behind a login. Sessions are
//! `HttpOnly` + `SameSite=Strict` cookies (`Secure` and `__Host-` behind TLS) whose id is stored
//! only hashed, ending after 12 idle hours or 7 days from the login;
//! every form carries the session's CSRF token; failed logins are rate-limited across processes.
//!
//! - [`pages`]: pipelines, runs, a run (live), verify, triggers, secrets.
//! - [`connect`]: Intuit's authorization-code flow ("Connect QuickBooks").
//! - [`extract`]: the logged-in [`Operator`], CSRF-checked forms, [`PageError`].
//! - [`i18n`]: English and Spanish ([`Lang`], the message catalog, the language switcher).

pub mod connect;
pub mod extract;
pub mod i18n;
pub mod pages;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::store::{StoreError, auth::companies};
pub use extract::{CsrfForm, ItemAction, Operator, PageError};
pub use i18n::Lang;
use i18n::{ErrorPage, LangLink, error_page};

/// The session cookie.
pub const SESSION_COOKIE: &str = "qbo_session";
/// The cookie that carries the login form's CSRF token before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "qbo_login_csrf";

/// How the UI is reached.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// "Connect QuickBooks" settings.
    pub connect: connect::ConnectConfig,
    /// Proxies whose `X-Forwarded-For` names the client (for the login rate limit).
    pub trusted_proxies: crate::domain::access::TrustedProxies,
}

impl WebConfig {
    /// The name a cookie is sent under: `__Host-` before it when cookies are `Secure`, so that
    /// the browser keeps it only from this host, over HTTPS, for every path.
    #[must_use]
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// The value of cookie `base` (under [`Self::cookie_name`]) in the request.
    #[must_use]
    pub fn cookie(&self, headers: &HeaderMap, base: &str) -> Option<String> {
        cookie(headers, &self.cookie_name(base))
    }
}

/// The page routes (merged with the API by [`super::app`]).
pub fn routes() -> Router<AppState> {
    use pages::{
        alerts, batches, dashboard, login, pipelines, preview, runs, secrets, triggers, verify,
    };
    Router::new()
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/", get(dashboard::page))
        .route("/pipelines", get(pipelines::page))
        .route("/runs", get(runs::list).post(pipelines::run_once))
        .route("/runs/preview", post(preview::run_preview))
        .route("/runs/{id}", get(runs::page))
        .route("/runs/{id}/live", get(runs::live_part))
        .route("/runs/{id}/log", get(runs::log))
        .route("/runs/{id}/retry", post(runs::retry))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/batches", post(batches::start))
        .route("/batches/preview", post(preview::batch_preview))
        .route("/batches/{id}", get(batches::page))
        .route("/batches/{id}/retry", post(batches::retry))
        .route("/verify", get(verify::page).post(verify::start))
        .route("/triggers", get(triggers::page).post(triggers::create))
        .route("/triggers/when", get(triggers::when))
        .route("/triggers/{id}/{action}", post(triggers::action))
        .route("/secrets", get(secrets::page).post(secrets::replace))
        .route("/alerts", get(alerts::page).post(alerts::create))
        .route("/alerts/{id}/{action}", post(alerts::action))
        .route("/connect", get(connect::page))
        .route("/connect/start", get(connect::start))
        .route("/connect/callback", get(connect::callback))
        .route("/connect/finish", get(connect::finish))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/lang/{code}", get(i18n::switch))
        .layer(middleware::from_fn(i18n::localize_errors))
}

async fn css() -> Response {
    static_asset(
        "text/css; charset=utf-8",
        include_str!("../../../assets/app.css"),
    )
}

async fn js() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/app.js"),
    )
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Security headers on every page.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Adds a `Set-Cookie` header made by [`set_cookie`] to `response`.
pub fn add_cookie(
    response: &mut Response,
    config: &WebConfig,
    name: &str,
    value: &str,
    max_age_s: Option<u64>,
) {
    if let Ok(v) = set_cookie(config, name, value, max_age_s).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` (with the name
/// prefixed `__Host-`) when configured.
pub fn set_cookie(config: &WebConfig, name: &str, value: &str, max_age_s: Option<u64>) -> String {
    let name = config.cookie_name(name);
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_s {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if config.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

/// Compares two strings without stopping at the first difference.
#[must_use]
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The page for a form that did not come from this site (or whose session changed), in English
/// ([`i18n::localize_errors`] words it in the request's language).
#[must_use]
pub fn forbidden() -> Response {
    error_page(Lang::En, ErrorPage::Forbidden)
}

/// A failure page; the cause goes to the server log only.
#[must_use]
pub fn failure(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!("Web request failed: {cause}");
    error_page(Lang::En, ErrorPage::Failure)
}

/// A 404 page.
#[must_use]
pub fn not_found() -> Response {
    error_page(Lang::En, ErrorPage::NotFound)
}

/// A company whose token was refused: shown as a banner on every page.
#[derive(Debug, Clone)]
pub struct Banner {
    /// The company.
    pub realm_id: String,
    /// `invalid_grant` or `invalid_client`.
    pub error: String,
}

/// What every page's frame shows.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The operator.
    pub username: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The nav item to mark.
    pub active: &'static str,
    /// Companies to reconnect.
    pub banners: Vec<Banner>,
    /// A one-line confirmation.
    pub flash: Option<String>,
    /// The language of the page.
    pub lang: Lang,
    /// The language switcher's links, back to this page.
    pub languages: Vec<LangLink>,
}

impl Layout {
    /// The catalog's text for `key` in the page's language.
    #[must_use]
    pub fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }

    /// An integer written the page language's way (`12,345` / `12.345`).
    #[must_use]
    pub fn num(&self, n: impl i18n::Count) -> String {
        self.lang.num(n)
    }
}

/// The page of a nav item (where the language switcher returns after a form was posted).
fn page_of(active: &str) -> &'static str {
    match active {
        "runs" => "/runs",
        "verify" => "/verify",
        "triggers" => "/triggers",
        "secrets" => "/secrets",
        "connect" => "/connect",
        _ => "/",
    }
}

/// The frame of a page for `op`.
///
/// # Errors
/// Database errors.
pub async fn layout(
    state: &AppState,
    op: &Operator,
    active: &'static str,
    flash: Option<String>,
) -> Result<Layout, StoreError> {
    let banners = companies::list(&state.pool)
        .await?
        .into_iter()
        .filter_map(|c| {
            c.last_auth_error.map(|error| Banner {
                realm_id: c.realm_id,
                error,
            })
        })
        .collect();
    Ok(Layout {
        username: op.session.username.clone(),
        csrf: op.session.csrf_token.clone(),
        active,
        banners,
        flash,
        lang: op.lang,
        languages: op.lang.links(op.here.as_deref().unwrap_or(page_of(active))),
    })
}

/// Renders a template, or the failure page.
pub fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => failure(&e),
    }
}
