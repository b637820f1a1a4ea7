//! "Connect QuickBooks": Intuit's OAuth2 authorization-code flow, which turns the runbook's
//! recovery after `invalid_grant` into one click. `/connect/start` sends the browser to Intuit's
//! consent page with a one-time `state` bound to the session; Intuit sends it back to
//! `/connect/callback`, which hands over (same-site, so the `SameSite=Strict` session cookie
//! comes along) to `/connect/finish`: the state is spent, the code exchanged, the company and its
//! tokens stored encrypted, and its reconnect banner cleared.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret as _, SecretString};

use super::{Lang, Layout, Operator, PageError, layout, render};
use crate::server::AppState;
use crate::settings::{ClientTuning, QboSettings, env, env_var};
use crate::store::auth::companies::{self, Company};
use crate::store::auth::secrets::SecretStore;
use crate::store::auth::tokens::PgTokenStore;
use crate::store::{StoreError, auth::web};

/// Where the consent page is and where Intuit sends the browser back.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Intuit's consent page (`QBO_AUTHORIZE_URL`; a simulator's in tests and the demo).
    pub authorize_url: url::Url,
    /// Our callback as registered with the app (`QBO_REDIRECT_URI`).
    pub redirect_uri: String,
}

impl ConnectConfig {
    /// The UI's one address: the origin of the redirect URI (`http://localhost:6789`). Cookies
    /// are kept per host, so Connect QuickBooks works only when the UI is opened there.
    #[must_use]
    pub fn canonical_origin(&self) -> Option<String> {
        let url = url::Url::parse(&self.redirect_uri).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        })
    }

    /// The canonical origin, when the request's `Host` is another address of this server
    /// (`127.0.0.1:6789` where the redirect URI says `localhost:6789`).
    #[must_use]
    pub fn elsewhere(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        let canonical = self.canonical_origin()?;
        let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
        let authority = canonical.split_once("://").map_or("", |(_, a)| a);
        (!host.eq_ignore_ascii_case(authority)).then_some(canonical)
    }

    /// From the environment, defaulting the callback to `http://localhost:PORT/connect/callback`.
    ///
    /// # Errors
    /// An unparsable `QBO_AUTHORIZE_URL`.
    pub fn from_env(bind: std::net::SocketAddr) -> Result<Self, String> {
        let authorize = env_var(env::QBO_AUTHORIZE_URL)
            .unwrap_or_else(|| qbo::authorization::INTUIT_AUTHORIZE_URL.to_owned());
        let authorize_url = url::Url::parse(&authorize).map_err(|e| {
            format!(
                "{}=`{authorize}` is not a valid URL: {e}",
                env::QBO_AUTHORIZE_URL
            )
        })?;
        let host = if bind.ip().is_unspecified() || bind.ip().is_loopback() {
            "localhost".to_owned()
        } else {
            bind.ip().to_string()
        };
        let redirect_uri = env_var(env::QBO_REDIRECT_URI)
            .unwrap_or_else(|| format!("http://{host}:{}/connect/callback", bind.port()));
        Ok(Self {
            authorize_url,
            redirect_uri,
        })
    }
}

/// The app's keys and hosts used to connect a company.
struct AppKeys {
    client_id: String,
    client_secret: SecretString,
    settings: qbo::ClientSettings,
}

/// The app's keys: from the environment or the secret store, else those of the only company.
async fn app_keys(state: &AppState) -> Result<Option<AppKeys>, StoreError> {
    let store = SecretStore::new(state.pool.clone(), state.key.clone());
    let client_id = match env_var(env::QBO_CLIENT_ID) {
        Some(v) => Some(v),
        None => store
            .get(env::QBO_CLIENT_ID)
            .await?
            .map(|s| s.expose_secret().to_owned()),
    };
    let client_secret = match env_var(env::QBO_CLIENT_SECRET) {
        Some(v) => Some(SecretString::from(v)),
        None => store.get(env::QBO_CLIENT_SECRET).await?,
    };
    if let (Some(client_id), Some(client_secret)) = (client_id, client_secret)
        && let Ok(settings) = QboSettings::client_settings(&ClientTuning::default())
    {
        return Ok(Some(AppKeys {
            client_id,
            client_secret,
            settings,
        }));
    }
    let Ok(realm) = companies::default_realm(&state.pool).await? else {
        return Ok(None);
    };
    Ok(companies::get(&state.pool, &state.key, &realm)
        .await?
        .map(|c| AppKeys {
            settings: c.client_settings(),
            client_id: c.client_id,
            client_secret: c.client_secret,
        }))
}

struct CompanyRow {
    realm_id: String,
    environment: String,
    tokens: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage {
    layout: Layout,
    companies: Vec<CompanyRow>,
    ready: bool,
    redirect_uri: String,
    /// The UI's canonical origin, when this page was opened at another address.
    elsewhere: Option<String>,
}

async fn connect_page(
    state: &AppState,
    layout: Layout,
    elsewhere: Option<String>,
) -> Result<ConnectPage, StoreError> {
    let lang = layout.lang;
    let mut rows = Vec::new();
    for c in companies::list(&state.pool).await? {
        let tokens = PgTokenStore::new(state.pool.clone(), state.key.clone(), c.realm_id.clone())
            .status()
            .await?
            .map_or_else(
                || lang.t("connect.no_tokens").to_owned(),
                |s| {
                    let at = s
                        .updated_at
                        .map_or_else(String::new, |t| t.strftime("%Y-%m-%d %H:%MZ").to_string());
                    lang.fill("connect.token_stored", &[("at", &at)])
                },
            );
        rows.push(CompanyRow {
            realm_id: c.realm_id,
            environment: c.environment,
            tokens,
            error: c.last_auth_error,
        });
    }
    let ready = app_keys(state).await?.is_some();
    Ok(ConnectPage {
        layout,
        companies: rows,
        ready,
        redirect_uri: state.web.connect.redirect_uri.clone(),
        elsewhere,
    })
}

fn flash_text(query: &HashMap<String, String>, lang: Lang) -> Option<String> {
    let key = match query.get("flash").map(String::as_str) {
        Some("connected") => {
            let realm = query
                .get("realm")
                .map(|r| crate::pipeline::echo(r))
                .unwrap_or_default();
            return Some(lang.fill("connect.flash_connected", &[("realm", &realm)]));
        }
        Some("denied") => "connect.flash_denied",
        Some("expired") => "connect.flash_expired",
        Some("refused") => "connect.flash_refused",
        _ => return None,
    };
    Some(lang.t(key).to_owned())
}

/// `GET /connect`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let layout = layout(&state, &op, "connect", flash_text(&query, op.lang)).await?;
    let elsewhere = state.web.connect.elsewhere(&headers);
    Ok(render(&connect_page(&state, layout, elsewhere).await?))
}

/// The app's keys, or back to the Connect page, which says they are missing.
async fn keys_or_back(state: &AppState) -> Result<AppKeys, PageError> {
    app_keys(state)
        .await?
        .ok_or_else(|| PageError::redirect("/connect"))
}

/// `GET /connect/start`: to Intuit's consent page.
pub(crate) async fn start(
    State(state): State<AppState>,
    op: Operator,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    // Intuit returns to the redirect URI's address, where this session's cookie is not sent:
    // the flow starts there (after a login at that address), never here.
    if let Some(canonical) = state.web.connect.elsewhere(&headers) {
        return Ok(Redirect::to(&format!("{canonical}/connect")).into_response());
    }
    let keys = keys_or_back(&state).await?;
    let oauth_state = web::new_oauth_state(&state.pool, &op.session_id).await?;
    let url = qbo::authorization::authorize_url(
        &state.web.connect.authorize_url,
        &keys.client_id,
        &state.web.connect.redirect_uri,
        &oauth_state,
    );
    Ok(Redirect::to(url.as_str()).into_response())
}

/// `GET /connect/callback`: Intuit's redirect arrives cross-site, without the `SameSite=Strict`
/// session cookie; this page moves on to `/connect/finish` from our own origin, which carries it.
pub(crate) async fn callback(
    headers: axum::http::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = Lang::of_request(&headers);
    let mut target = url::Url::parse("http://localhost/connect/finish").ok();
    if let Some(url) = target.as_mut() {
        let mut pairs = url.query_pairs_mut();
        for key in ["code", "state", "realmId", "error"] {
            if let Some(v) = query.get(key) {
                pairs.append_pair(key, v);
            }
        }
    }
    let next = target.map_or_else(
        || "/connect/finish".to_owned(),
        |u| format!("/connect/finish?{}", u.query().unwrap_or_default()),
    );
    let next = askama::filters::escape(&next, askama::filters::Html)
        .map(|e| e.to_string())
        .unwrap_or_default();
    let (code, connecting, cont) = (
        lang.code(),
        lang.t("connect.connecting"),
        lang.t("connect.continue"),
    );
    Html(format!(
        "<!doctype html><html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={next}\"><title>{connecting}</title></head>\
         <body><p>{connecting} <a href=\"{next}\">{cont}</a></p></body></html>"
    ))
    .into_response()
}

fn valid_realm(realm: &str) -> bool {
    !realm.is_empty() && realm.len() <= 64 && realm.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `GET /connect/finish`: spend the state, exchange the code, store the company and its tokens.
pub(crate) async fn finish(
    State(state): State<AppState>,
    op: Operator,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let back = |flash: &str| Ok(Redirect::to(&format!("/connect?flash={flash}")).into_response());
    let given_state = query.get("state").map_or("", String::as_str);
    if !web::take_oauth_state(&state.pool, &op.session_id, given_state).await? {
        return back("expired");
    }
    if query.contains_key("error") {
        return back("denied");
    }
    let (Some(code), Some(realm)) = (query.get("code"), query.get("realmId")) else {
        return back("refused");
    };
    if !valid_realm(realm) || code.len() > 2000 {
        return back("refused");
    }
    let keys = keys_or_back(&state).await?;
    let tokens = match qbo::authorization::exchange_code(
        &keys.settings,
        &keys.client_id,
        &keys.client_secret,
        code,
        &state.web.connect.redirect_uri,
    )
    .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!("Connect QuickBooks: the code exchange failed: {e}");
            return back("refused");
        }
    };
    store_connection(&state, realm, keys, &tokens.refresh_token).await?;
    tracing::info!("Connected QuickBooks company {realm}");
    Ok(Redirect::to(&format!("/connect?flash=connected&realm={realm}")).into_response())
}

async fn store_connection(
    state: &AppState,
    realm: &str,
    keys: AppKeys,
    refresh_token: &SecretString,
) -> Result<(), StoreError> {
    let company = Company {
        realm_id: realm.to_owned(),
        environment: keys.settings.environment,
        client_id: keys.client_id,
        client_secret: keys.client_secret,
        api_base_url: Some(keys.settings.api_base_url.clone()),
        token_url: Some(keys.settings.token_url.clone()),
        minor_version: Some(keys.settings.minor_version),
    };
    companies::upsert(&state.pool, &state.key, &company).await?;
    PgTokenStore::new(state.pool.clone(), state.key.clone(), realm.to_owned())
        .replace_refresh_token(refresh_token)
        .await?;
    companies::set_auth_error(&state.pool, realm, None).await
}
