//! The HTTP face: QBO API routes, the authorization and token endpoints, the `/__admin/` API, the
//! gate that applies throttling / latency / faults / bearer checks, and [`serve`] with a listener
//! whose connections can be dropped on purpose.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state, map_response_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Access;
use crate::authorize::{AUTHORIZE_ALT_PATH, AUTHORIZE_PATH, authorize};
use crate::batch::{MAX_BATCH_ITEMS, batch, item_count};
use crate::company::Singleton;
use crate::data::{CDC_UNSUPPORTED, EMPTY_ENTITIES, Kind};
use crate::engine::{cdc_body, read_body, singleton_body};
use crate::faults::{
    FaultError, VALIDATION_FAULT, fault, forbidden_realm, json, server_error, throttled,
    unauthorized, validation_fault,
};
use crate::form::{form_get, parse_form};
use crate::json::push_str;
use crate::oidc::{JWKS_PATH, REVOKE_PATH, discovery_document};
use crate::query::parse_query;
use crate::reports::{RequestError, parse_request, report_body};
use crate::state::Counters;
use crate::time::{envelope_time, parse_instant_literal};
use crate::{FaultConfig, SimError, SimLimits, SimState};

/// Path of the token endpoint.
const TOKEN_PATH: &str = "/oauth2/v1/tokens/bearer";

/// Where the discovery document is served (each also with a trailing slash): Intuit's production
/// and sandbox names (intuit-oauth and node-quickbooks use these) and the standard OIDC one.
const DISCOVERY_PATHS: [&str; 4] = [
    "/.well-known/openid_configuration",
    "/.well-known/openid_sandbox_configuration",
    "/.well-known/openid-configuration",
    "/.well-known/openid-sandbox-configuration",
];

/// Builds the router: QBO API, token endpoint and admin API, all on `state`.
///
/// Dropped-connection faults need the connection handle that [`serve`] installs; on a router
/// served some other way they are answered as an empty 502 instead.
pub fn app(state: SimState) -> Router {
    let qbo = Router::new()
        .route("/v3/company/{realm}/query", get(query).post(query))
        .route("/v3/company/{realm}/batch", post(batch))
        .route("/v3/company/{realm}/preferences", get(read_preferences))
        .route("/v3/company/{realm}/cdc", get(cdc))
        .route("/v3/company/{realm}/reports/{name}", get(report))
        .route("/v3/company/{realm}/{entity}/{id}", get(read_entity))
        .route_layer(from_fn_with_state(state.clone(), gate));
    let admin = Router::new()
        .route("/entities/{entity}/{id}/mutate", post(admin_mutate))
        .route(
            "/entities/{entity}/{id}/change-amount",
            post(admin_change_amount),
        )
        .route("/entities/{entity}/{id}/deactivate", post(admin_deactivate))
        .route("/entities/{entity}/{id}/delete", post(admin_delete))
        .route("/stats", get(admin_stats))
        .route("/webhooks", get(admin_get_webhooks).put(admin_put_webhooks))
        .route("/queries", get(admin_queries))
        .route("/reset", post(admin_reset))
        .route("/faults", get(admin_get_faults).put(admin_put_faults))
        .route("/reports", get(admin_get_reports).put(admin_put_reports))
        .route("/limits", get(admin_get_limits).put(admin_put_limits))
        .route("/tokens/expire", post(admin_expire))
        .route("/tokens/revoke", post(admin_revoke))
        .route("/tokens/reconnect", post(admin_reconnect))
        .route(
            "/authorize",
            get(admin_get_authorize).put(admin_put_authorize),
        );
    let mut router = Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(AUTHORIZE_ALT_PATH, get(authorize))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(JWKS_PATH, get(jwks));
    for path in DISCOVERY_PATHS {
        router = router
            .route(path, get(discovery))
            .route(&format!("{path}/"), get(discovery));
    }
    router
        .merge(qbo)
        .nest("/__admin", admin)
        .fallback(not_found)
        .layer(map_response_with_state(state.clone(), add_tid))
        .with_state(state)
}

/// Adds `intuit_tid` (`1-5f7330b9-…`) to every response.
async fn add_tid(State(st): State<SimState>, mut resp: Response) -> Response {
    let tid = format!(
        "1-{:08x}-{:012x}{:012x}",
        jiff::Timestamp::now().as_second() as u32,
        st.inner.rng.next_u64() >> 16,
        st.inner.rng.next_u64() >> 16
    );
    if let Ok(v) = HeaderValue::from_str(&tid) {
        resp.headers_mut()
            .insert(HeaderName::from_static("intuit_tid"), v);
    }
    resp
}

async fn sleep_latency(st: &SimState, f: &FaultConfig) {
    let jitter = f.latency_jitter.as_secs_f64() * st.inner.rng.next_f64();
    let total = f.latency + Duration::from_secs_f64(jitter);
    if !total.is_zero() {
        tokio::time::sleep(total).await;
    }
}

/// Largest batch request body read (Intuit's own limit is unrecorded; queries are small).
const MAX_BATCH_BODY: usize = 4 << 20;

/// The 413 Intuit's front end sends for an oversized batch (ruckus/quickbooks-ruby#361).
fn too_large(path: &str) -> Response {
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
         <title>413 Request Entity Too Large</title>\n</head><body>\n\
         <h1>Request Entity Too Large</h1>\nThe requested resource<br />{path}<br />\n\
         does not allow request data with POST requests, or the amount of data provided in\n\
         the request exceeds the capacity limit.\n</body></html>\n"
    );
    let mut r = (StatusCode::PAYLOAD_TOO_LARGE, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=iso-8859-1"),
    );
    r
}

/// Throttling, latency, injected faults and the bearer check, in that order, for `/v3/...`.
///
/// A batch request is read first: it weighs as many requests as it has items (at least one, at
/// most [`MAX_BATCH_ITEMS`]) in the per-minute window, and counts as a batch.
async fn gate(State(st): State<SimState>, req: Request, next: Next) -> Response {
    let inner = &st.inner;
    Counters::bump(&inner.counters.requests_total);
    let (req, batch_weight) =
        if req.method() == Method::POST && req.uri().path().ends_with("/batch") {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BATCH_BODY).await else {
                return too_large(parts.uri.path());
            };
            let weight = item_count(&bytes).clamp(1, MAX_BATCH_ITEMS) as u32;
            (Request::from_parts(parts, Body::from(bytes)), Some(weight))
        } else {
            (req, None)
        };
    let (_in_flight, throttle) = match batch_weight {
        Some(w) => inner.limiter.admit_weighted(w, true),
        None => inner.limiter.admit(),
    };
    if throttle {
        Counters::bump(&inner.counters.throttled);
        return throttled();
    }
    let f = st.faults();
    sleep_latency(&st, &f).await;
    let r = inner.rng.next_f64();
    if r < f.drop_rate {
        Counters::bump(&inner.counters.faults_injected);
        return match req.extensions().get::<ConnectInfo<ConnKill>>() {
            Some(ConnectInfo(kill)) => {
                kill.0.store(true, Ordering::Release);
                StatusCode::OK.into_response()
            }
            None => StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    if r < f.drop_rate + f.error_rate {
        Counters::bump(&inner.counters.faults_injected);
        return server_error(&inner.rng, f.html_error_share);
    }
    if let Some(resp) = check_bearer(&st, req.headers()) {
        return resp;
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::OK
        && f.truncate_rate > 0.0
        && inner.rng.next_f64() < f.truncate_rate
    {
        Counters::bump(&inner.counters.faults_injected);
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        // Cut somewhere in the middle 10–90 % so the JSON is never complete.
        let cut = (bytes.len() as f64 * (0.1 + 0.8 * inner.rng.next_f64())) as usize;
        return Response::from_parts(
            parts,
            Body::from(bytes.slice(..cut.min(bytes.len().saturating_sub(1)))),
        );
    }
    resp
}

/// `None` when the bearer token is valid, else the 401 response.
fn check_bearer(st: &SimState, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Some(unauthorized("Token invalid")),
    };
    if token.len() < 20 || token.len() > 10_000 {
        return Some(unauthorized(
            "Malformed bearer token: too short or too long",
        ));
    }
    // A short prefix only: never echo a whole token.
    let prefix: String = token.chars().take(6).collect();
    match st.tokens().check_access(token) {
        Access::Valid => None,
        Access::Expired => Some(unauthorized(&format!("Token expired: {prefix}"))),
        Access::Unknown => Some(unauthorized(&format!("Token invalid: {prefix}"))),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// `GET ?query=…` or `POST` with the statement as an `application/text` body (or a form).
async fn query(
    State(st): State<SimState>,
    Path(realm): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    let params = raw.map(|r| parse_form(r.as_bytes())).unwrap_or_default();
    let text = if method == Method::POST && is_form(&headers) {
        form_get(&parse_form(&body), "query").map(str::to_owned)
    } else if method == Method::POST && !body.is_empty() {
        Some(String::from_utf8_lossy(&body).into_owned())
    } else {
        None
    }
    .or_else(|| form_get(&params, "query").map(str::to_owned))
    .unwrap_or_default();
    let result = parse_query(&text).and_then(|q| {
        st.record_query(&text, &q.entity);
        st.inner.engine.run(&st.inner.data, &q)
    });
    match result {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => {
            if matches!(e, crate::query::QueryError::Parse(_)) {
                st.record_query(&text, "?");
            }
            validation_fault(FaultError::query(&e))
        }
    }
}

/// `GET /v3/company/{realm}/{entity}/{id}`.
async fn read_entity(
    State(st): State<SimState>,
    Path((realm, entity, id)): Path<(String, String, String)>,
) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    Counters::bump(&st.inner.counters.read_requests);
    if let Some(s) = Singleton::from_any_case(&entity) {
        // Intuit documents `companyinfo/{realmId}`; the entity's own Id is "1".
        return if id == realm || id == "1" {
            json(StatusCode::OK, singleton_body(&st.inner.data, s))
        } else {
            object_not_found()
        };
    }
    if EMPTY_ENTITIES
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&entity))
    {
        // A known entity the simulator holds no rows of.
        return object_not_found();
    }
    let Some(kind) = Kind::from_any_case(&entity) else {
        return unknown_resource(&format!("/v3/company/{realm}/{entity}/{id}"));
    };
    match id
        .parse::<u64>()
        .ok()
        .and_then(|n| read_body(&st.inner.data, kind, n))
    {
        Some(body) => json(StatusCode::OK, body),
        None => object_not_found(),
    }
}

/// The 400 `ValidationFault` 500 of a path that names no resource (an unknown entity or
/// report).
fn unknown_resource(path: &str) -> Response {
    let detail = format!(
        "Operation Could not find resource for relative : {path} of full path: {path} is not supported."
    );
    validation_fault(FaultError::unsupported_operation(&detail))
}

/// `GET /v3/company/{realm}/reports/{Name}?start_date=…&end_date=…&accounting_method=…&
/// summarize_column_by=…` (aging: `report_date=…`): a report computed from the books (see
/// `reports`). An unknown name answers what any unknown resource path answers (Intuit's exact
/// answer is unrecorded); a bad parameter the 400 `ValidationFault` 2010.
async fn report(
    State(st): State<SimState>,
    Path((realm, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    Counters::bump(&st.inner.counters.report_requests);
    let params = raw.map(|r| parse_form(r.as_bytes())).unwrap_or_default();
    let today = crate::time::pacific_day(jiff::Timestamp::now().as_second());
    match parse_request(&name, &params, today) {
        Ok(req) => json(
            StatusCode::OK,
            report_body(&st.inner.data, &req, st.report_max_days()),
        ),
        Err(RequestError::UnknownReport) => {
            unknown_resource(&format!("/v3/company/{realm}/reports/{name}"))
        }
        Err(RequestError::Invalid(detail)) => {
            validation_fault(FaultError::invalid_property(&detail))
        }
    }
}

/// The 400 `ValidationFault` 610 a read of a missing id answers.
fn object_not_found() -> Response {
    validation_fault(FaultError::element(
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. \
         Check the fields with accounts, customers, items, vendors or employees.",
        "610",
    ))
}

/// `GET /v3/company/{realm}/preferences` (no id: one per company).
async fn read_preferences(State(st): State<SimState>, Path(realm): Path<String>) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    Counters::bump(&st.inner.counters.read_requests);
    json(
        StatusCode::OK,
        singleton_body(&st.inner.data, Singleton::Preferences),
    )
}

/// `GET /v3/company/{realm}/cdc?entities=Customer,Invoice&changedSince=…`: change data capture
/// (see [`cdc_body`]). Like Intuit in recorded traffic, a `changedSince` older than the documented
/// 30-day window is served, not refused. Entities Intuit documents CDC does not serve
/// (JournalCode, TaxAgency, TimeActivity, TaxCode, TaxRate) are refused like unknown ones: 400
/// `ValidationFault` 2010 (Intuit's exact answer is unrecorded).
async fn cdc(
    State(st): State<SimState>,
    Path(realm): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    let params = raw.map(|r| parse_form(r.as_bytes())).unwrap_or_default();
    let entities = form_get(&params, "entities").unwrap_or("");
    let since = form_get(&params, "changedSince").unwrap_or("");
    st.record_query(
        &format!("CDC entities={entities} changedSince={since}"),
        "CDC",
    );
    let invalid = |detail: &str| validation_fault(FaultError::invalid_property(detail));
    let Some(since_ms) = parse_instant_literal(since.trim()) else {
        return invalid(&format!("Property Name:changedSince, Value:{since}"));
    };
    let mut kinds = Vec::new();
    for name in entities.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(unsupported) = CDC_UNSUPPORTED
            .iter()
            .find(|e| e.eq_ignore_ascii_case(name))
        {
            return invalid(&format!(
                "Property Name:entities, Value:{name} (change data capture does not support \
                 {unsupported})"
            ));
        }
        if let Some(k) = Kind::from_any_case(name) {
            kinds.push(Some(k));
        } else if EMPTY_ENTITIES.iter().any(|e| e.eq_ignore_ascii_case(name))
            || Singleton::from_any_case(name).is_some()
        {
            kinds.push(None);
        } else {
            return invalid(&format!("Property Name:entities, Value:{name}"));
        }
    }
    if kinds.is_empty() {
        return invalid("Property Name:entities, Value:");
    }
    json(StatusCode::OK, cdc_body(&st.inner.data, &kinds, since_ms))
}

/// `GET /.well-known/openid_configuration` (and the sandbox / hyphenated names): Intuit's
/// discovery document with every endpoint on this server, as addressed by the `Host` header.
async fn discovery(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1");
    json(
        StatusCode::OK,
        discovery_document(&format!("http://{host}"), TOKEN_PATH, AUTHORIZE_PATH),
    )
}

/// `GET /op/v1/jwks`: no keys (the simulator issues no `id_token`).
async fn jwks() -> Response {
    json(StatusCode::OK, r#"{"keys":[]}"#.to_owned())
}

fn oauth_error(status: StatusCode, body: &'static str) -> Response {
    json(status, body.to_owned())
}

/// `None` when the client credentials (HTTP Basic, else `client_id` / `client_secret` form
/// fields) are right, else the 401 `invalid_client`.
fn check_client(st: &SimState, headers: &HeaderMap, form: &[(String, String)]) -> Option<Response> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            form_get(form, "client_id").unwrap_or("").to_owned(),
            form_get(form, "client_secret").unwrap_or("").to_owned(),
        ),
    };
    (id != st.inner.client_id || secret != st.inner.client_secret)
        .then(|| oauth_error(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#))
}

/// `POST /v2/oauth2/tokens/revoke` with `{"token":…}` (intuit-oauth) or `token=…`
/// (node-quickbooks): revokes the grant; 200 with an empty body, unknown tokens included.
async fn revoke(State(st): State<SimState>, headers: HeaderMap, body: Bytes) -> Response {
    Counters::bump(&st.inner.counters.requests_total);
    Counters::bump(&st.inner.counters.token_requests);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    let form = if is_json {
        Vec::new()
    } else {
        parse_form(&body)
    };
    if let Some(resp) = check_client(&st, &headers, &form) {
        return resp;
    }
    let token = if is_json {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("token")?.as_str().map(str::to_owned))
    } else {
        form_get(&form, "token").map(str::to_owned)
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
    };
    st.tokens().revoke_token(&token);
    StatusCode::OK.into_response()
}

/// `POST /oauth2/v1/tokens/bearer`: `grant_type=refresh_token&refresh_token=…` or
/// `grant_type=authorization_code&code=…&redirect_uri=…`, client credentials by HTTP Basic or
/// form fields. Both answer the same token response.
async fn token(State(st): State<SimState>, req: axum::extract::Request) -> Response {
    let kill = req
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|ConnectInfo(k)| k.0.clone());
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return oauth_error(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
    };
    Counters::bump(&st.inner.counters.requests_total);
    Counters::bump(&st.inner.counters.token_requests);
    let f = st.faults();
    sleep_latency(&st, &f).await;
    let form = parse_form(&body);
    if let Some(resp) = check_client(&st, &headers, &form) {
        return resp;
    }
    let inner = &st.inner;
    let param = |name: &str| form_get(&form, name).filter(|v| !v.is_empty());
    let outcome = match form_get(&form, "grant_type") {
        Some("refresh_token") => {
            let Some(rt) = param("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
            };
            st.tokens()
                .refresh(rt, inner.rotation, inner.access_token_ttl, &inner.rng)
                .map_err(|e| e.body())
        }
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (param("code"), param("redirect_uri")) else {
                return oauth_error(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
            };
            st.tokens()
                .exchange_code(
                    code,
                    &inner.client_id,
                    redirect_uri,
                    inner.access_token_ttl,
                    &inner.rng,
                )
                .map_err(|e| {
                    tracing::debug!(reason = ?e, "authorization code refused");
                    r#"{"error":"invalid_grant"}"#
                })
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                r#"{"error":"unsupported_grant_type"}"#,
            );
        }
    };
    if outcome.is_ok() && f.token_drop_rate > 0.0 && inner.rng.next_f64() < f.token_drop_rate {
        // The refresh happened (the token rotated); its answer never arrives.
        Counters::bump(&inner.counters.faults_injected);
        if let Some(kill) = kill {
            kill.store(true, Ordering::Release);
            return StatusCode::OK.into_response();
        }
        return StatusCode::BAD_GATEWAY.into_response();
    }
    match outcome {
        Ok(resp) => match serde_json::to_string(&resp) {
            Ok(body) => json(StatusCode::OK, body),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err(body) => oauth_error(StatusCode::BAD_REQUEST, body),
    }
}

async fn not_found() -> Response {
    fault(
        StatusCode::NOT_FOUND,
        VALIDATION_FAULT,
        FaultError::unsupported_operation("Resource not found"),
    )
}

fn admin_json(status: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => json(status, body),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn admin_error(e: &SimError) -> Response {
    let status = match e {
        SimError::UnknownEntity(_) | SimError::NotFound { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    admin_json(status, &serde_json::json!({ "error": e.to_string() }))
}

fn admin_changed(st: &SimState, entity: &str, id: &str, r: Result<(), SimError>) -> Response {
    match r {
        Ok(()) => admin_json(StatusCode::OK, &st.entity_json(entity, id)),
        Err(e) => admin_error(&e),
    }
}

async fn admin_mutate(
    State(st): State<SimState>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let r = st.mutate(&entity, &id);
    admin_changed(&st, &entity, &id, r)
}

/// Body of `POST /__admin/entities/{entity}/{id}/change-amount`.
#[derive(Debug, serde::Deserialize)]
struct AmountChange {
    /// Cents added to the first line's amount (negative: taken off).
    delta_cents: i64,
}

/// `POST /__admin/entities/{entity}/{id}/change-amount` with `{"delta_cents": N}`: edits the
/// amount of a Purchase, Deposit or Transfer (see [`SimState::change_amount`]); answers the
/// entity as now rendered.
async fn admin_change_amount(
    State(st): State<SimState>,
    Path((entity, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<AmountChange>(&body) {
        Ok(c) => {
            let r = st.change_amount(&entity, &id, c.delta_cents);
            admin_changed(&st, &entity, &id, r)
        }
        Err(e) => bad_request(e),
    }
}

async fn admin_deactivate(
    State(st): State<SimState>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let r = st.deactivate(&entity, &id);
    admin_changed(&st, &entity, &id, r)
}

/// `POST /__admin/entities/{entity}/{id}/delete`: answers Intuit's delete response,
/// `{"Invoice":{"domain":"QBO","status":"Deleted","Id":"266"},"time":"…"}`.
async fn admin_delete(
    State(st): State<SimState>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    match st.delete(&entity, &id) {
        Ok(()) => {
            let name = Kind::from_any_case(&entity).map_or("", Kind::name);
            let mut body = String::from("{\"");
            body.push_str(name);
            body.push_str("\":{\"domain\":\"QBO\",\"status\":\"Deleted\",\"Id\":");
            let id = id
                .trim()
                .parse::<u64>()
                .map_or_else(|_| id.clone(), |n| n.to_string());
            push_str(&mut body, &id);
            body.push_str("},\"time\":\"");
            body.push_str(&envelope_time());
            body.push_str("\"}");
            json(StatusCode::OK, body)
        }
        Err(e) => admin_error(&e),
    }
}

/// `GET /__admin/webhooks`: the configuration (without the token) and the sender's counters.
async fn admin_get_webhooks(State(st): State<SimState>) -> Response {
    admin_json(
        StatusCode::OK,
        &serde_json::json!({"config": st.webhooks(), "stats": st.webhook_stats()}),
    )
}

/// `PUT /__admin/webhooks` with a [`WebhookConfig`](crate::WebhookConfig): where and how
/// changes are sent from now on (a missing `verifier_token` keeps the current one).
async fn admin_put_webhooks(State(st): State<SimState>, body: Bytes) -> Response {
    let mut config: crate::WebhookConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    if config.verifier_token.is_empty() {
        config.verifier_token = st.webhooks().verifier_token;
    }
    st.set_webhooks(config);
    admin_json(StatusCode::OK, &st.webhooks())
}

async fn admin_stats(State(st): State<SimState>) -> Response {
    admin_json(StatusCode::OK, &st.stats())
}

async fn admin_queries(State(st): State<SimState>) -> Response {
    admin_json(StatusCode::OK, &st.queries())
}

async fn admin_reset(State(st): State<SimState>) -> StatusCode {
    st.reset_stats();
    StatusCode::NO_CONTENT
}

async fn admin_get_faults(State(st): State<SimState>) -> Response {
    admin_json(StatusCode::OK, &st.faults())
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    admin_json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": msg.to_string() }),
    )
}

async fn admin_put_faults(State(st): State<SimState>, body: Bytes) -> Response {
    let f: FaultConfig = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let rates = [
        f.error_rate,
        f.html_error_share,
        f.truncate_rate,
        f.drop_rate,
        f.token_drop_rate,
    ];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return bad_request("rates must be within [0, 1]");
    }
    st.set_faults(f);
    admin_json(StatusCode::OK, &f)
}

/// Body of `GET/PUT /__admin/reports`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReportSettings {
    /// Reports over a longer range answer cut short (`null`: no limit); see
    /// [`SimState::set_report_max_days`].
    max_days: Option<u32>,
}

async fn admin_get_reports(State(st): State<SimState>) -> Response {
    admin_json(
        StatusCode::OK,
        &ReportSettings {
            max_days: st.report_max_days(),
        },
    )
}

async fn admin_put_reports(State(st): State<SimState>, body: Bytes) -> Response {
    match serde_json::from_slice::<ReportSettings>(&body) {
        Ok(r) => {
            st.set_report_max_days(r.max_days);
            admin_get_reports(State(st)).await
        }
        Err(e) => bad_request(e),
    }
}

/// `SimLimits` plus `batch_requests_per_minute`, as `/__admin/limits` shows them.
fn limits_json(st: &SimState) -> serde_json::Value {
    let mut v = serde_json::to_value(st.limits()).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "batch_requests_per_minute".to_owned(),
            st.batch_requests_per_minute().into(),
        );
    }
    v
}

async fn admin_get_limits(State(st): State<SimState>) -> Response {
    admin_json(StatusCode::OK, &limits_json(&st))
}

/// Replaces the limits; `batch_requests_per_minute` only changes when present (`null` = off).
async fn admin_put_limits(State(st): State<SimState>, body: Bytes) -> Response {
    let batch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => match v.get("batch_requests_per_minute") {
            None => None,
            Some(serde_json::Value::Null) => Some(None),
            Some(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Some(Some(n)),
                None => return bad_request("batch_requests_per_minute: expected a u32 or null"),
            },
        },
        Err(e) => return bad_request(e),
    };
    match serde_json::from_slice::<SimLimits>(&body) {
        Ok(l) => {
            st.set_limits(l);
            if let Some(b) = batch {
                st.set_batch_requests_per_minute(b);
            }
            admin_json(StatusCode::OK, &limits_json(&st))
        }
        Err(e) => bad_request(e),
    }
}

async fn admin_expire(State(st): State<SimState>) -> StatusCode {
    st.expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn admin_revoke(State(st): State<SimState>) -> StatusCode {
    st.revoke_refresh_tokens();
    StatusCode::NO_CONTENT
}

async fn admin_reconnect(State(st): State<SimState>) -> Response {
    admin_json(
        StatusCode::OK,
        &serde_json::json!({ "refresh_token": st.reconnect() }),
    )
}

/// Body of `GET/PUT /__admin/authorize`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AuthorizeSettings {
    /// Whether the consent screen answers `error=access_denied`.
    deny: bool,
}

async fn admin_get_authorize(State(st): State<SimState>) -> Response {
    admin_json(
        StatusCode::OK,
        &AuthorizeSettings {
            deny: st.authorize_deny(),
        },
    )
}

async fn admin_put_authorize(State(st): State<SimState>, body: Bytes) -> Response {
    match serde_json::from_slice::<AuthorizeSettings>(&body) {
        Ok(a) => {
            st.set_authorize_deny(a.deny);
            admin_json(StatusCode::OK, &a)
        }
        Err(e) => bad_request(e),
    }
}

/// Handle that lets a request close its own connection without a response.
#[derive(Debug, Clone)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

/// A TCP listener whose streams fail all writes once their [`ConnKill`] is set.
struct KillListener(TcpListener);

struct KillStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Listener for KillListener {
    type Io = KillStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        // Best effort: small responses should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        (
            KillStream {
                inner: stream,
                kill: Arc::new(AtomicBool::new(false)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillListener>) -> Self {
        ConnKill(Arc::clone(&stream.io().kill))
    }
}

fn dropped() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for KillStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Acquire) {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Acquire) {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Acquire) {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A running simulator server (see [`serve`]).
#[derive(Debug)]
pub struct RunningSim {
    state: SimState,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    webhooks: JoinHandle<()>,
}

/// Binds `addr` (port 0 = any free port) and serves [`app`] on it in a background task.
pub async fn serve(state: SimState, addr: SocketAddr) -> Result<RunningSim, SimError> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let make = app(state.clone()).into_make_service_with_connect_info::<ConnKill>();
    let task = tokio::spawn(async move {
        let served = axum::serve(KillListener(listener), make)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "qbo-sim server stopped with an error");
        }
    });
    let webhooks = tokio::spawn(crate::webhooks::run_sender(state.clone()));
    Ok(RunningSim {
        state,
        local_addr,
        shutdown: Some(tx),
        task: Some(task),
        webhooks,
    })
}

impl RunningSim {
    /// `http://127.0.0.1:PORT` (the bound address; `127.0.0.1` when bound to all interfaces).
    pub fn api_base_url(&self) -> String {
        let ip = self.local_addr.ip();
        if ip.is_unspecified() {
            format!("http://127.0.0.1:{}", self.local_addr.port())
        } else {
            format!("http://{}", self.local_addr)
        }
    }

    /// `api_base_url() + "/oauth2/v1/tokens/bearer"`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.api_base_url())
    }

    /// `api_base_url() + "/connect/oauth2"`: the authorization (consent) endpoint, standing in for
    /// `https://appcenter.intuit.com/connect/oauth2`.
    pub fn authorize_url(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.api_base_url())
    }

    /// The state being served.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.webhooks.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form(b"grant_type=refresh_token&refresh_token=a%2Bb+c&x&bad=%zz%4");
        assert_eq!(form_get(&f, "grant_type"), Some("refresh_token"));
        assert_eq!(form_get(&f, "refresh_token"), Some("a+b c"));
        assert_eq!(form_get(&f, "x"), Some(""));
        assert_eq!(form_get(&f, "bad"), Some("%zz%4"));
        assert_eq!(
            crate::form::percent_decode(b"Caf%C3%A9%20%5C%27"),
            "Café \\'"
        );
        assert_eq!(crate::form::percent_decode(b"%FF"), "\u{FFFD}");
    }
}
