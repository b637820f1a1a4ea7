//! `qbo-backfill serve`: the JSON API ([`api`]; planned costs in [`preview_api`]), `/healthz` and `/metrics` ([`metrics`]) on
//! port 6789, QuickBooks webhooks ([`webhooks`]), the scheduler that fires triggers, the
//! coalescer that turns webhook events into syncs, and `--workers N` workers, in one process
//! that stops gracefully on SIGTERM or Ctrl-C.

pub mod alerts_api;
pub mod api;
pub mod batches_api;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod preview_api;
pub mod secrets;
pub mod triggers_api;
pub mod web;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::info;

use crate::orchestrator::alerts::spawn_delivery_loop;
use crate::orchestrator::worker::{Executor, WorkerSettings, run_workers_woken};
use crate::settings::ClientTuning;
use crate::store::auth::secrets::SecretKey;
use crate::store::runs::workers::{self, WorkerIdentity};
use error::ApiError;

/// What the server shares with every request.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// The secret store's key.
    pub key: SecretKey,
    /// Wakes idle workers of this process when a run is queued.
    pub wake_workers: Arc<Notify>,
    /// How the web UI is reached.
    pub web: Arc<web::WebConfig>,
    /// Pacing of the QuickBooks clients (a cost preview plans with it, as the workers run).
    pub tuning: Arc<ClientTuning>,
}

/// How to serve.
pub struct ServeConfig {
    /// The database.
    pub pool: PgPool,
    /// The secret store's key.
    pub key: SecretKey,
    /// Where to listen.
    pub bind: SocketAddr,
    /// Workers in this process.
    pub workers: usize,
    /// Pacing of the QuickBooks clients.
    pub tuning: ClientTuning,
    /// Claim lease.
    pub lease: Duration,
    /// Idle workers' poll interval.
    pub poll: Duration,
    /// How late a one-time trigger may still fire.
    pub trigger_grace: Duration,
    /// How the web UI is reached.
    pub web: web::WebConfig,
}

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The router: `/healthz` and the pages open (the pages ask for a login), the API behind an API
/// token ([`extract::ApiToken`]).
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/runs", post(api::create_run).get(api::list_runs))
        .route("/api/v1/runs/preview", post(preview_api::preview_run))
        .route("/api/v1/batches/preview", post(preview_api::preview_batch))
        .route("/api/v1/runs/{id}", get(api::get_run))
        .route("/api/v1/runs/{id}/logs", get(api::run_logs))
        .route("/api/v1/runs/{id}/retry", post(api::retry_run))
        .route("/api/v1/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/v1/verify", post(api::create_verify))
        .route("/api/v1/batches/{id}", get(batches_api::get_batch))
        .route("/api/v1/batches/{id}/retry", post(batches_api::retry_batch))
        .route(
            "/api/v1/triggers",
            post(triggers_api::create).get(triggers_api::list),
        )
        .route(
            "/api/v1/triggers/{id}",
            get(triggers_api::get_one)
                .patch(triggers_api::patch)
                .delete(triggers_api::delete),
        )
        .route(
            "/api/v1/alert-channels",
            post(alerts_api::create).get(alerts_api::list),
        )
        .route(
            "/api/v1/alert-channels/{id}",
            get(alerts_api::get_one).delete(alerts_api::delete),
        )
        .route("/api/v1/alert-channels/{id}/test", post(alerts_api::test))
        .route("/api/v1/secrets", get(api::list_secrets))
        .route("/api/v1/secrets/{name}", put(api::put_secret))
        .route("/metrics", get(metrics_route))
        .layer(middleware::map_response(json_envelope))
        .layer(middleware::from_extractor_with_state::<extract::ApiToken, _>(state.clone()));
    let pages = web::routes().layer(middleware::from_fn(web::security_headers));
    let hooks = Router::new().route(
        "/webhooks/intuit",
        post(webhooks::intuit).layer(DefaultBodyLimit::max(
            crate::domain::webhook::MAX_BODY_BYTES,
        )),
    );
    Router::new()
        .route("/healthz", get(healthz))
        .merge(hooks)
        .merge(pages)
        .merge(api)
        .fallback(unknown_path)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What the router itself answers under the API gets the API's JSON error envelope: a body over
/// [`MAX_BODY_BYTES`] (the body limit's plain 413), and a method the route does not take (a bare
/// 405: `405 method_not_allowed`, its `Allow` header kept).
async fn json_envelope(response: Response) -> Response {
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => extract::body_too_large().into_response(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(axum::http::header::ALLOW).cloned();
            let takes = allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .map_or_else(String::new, |a| format!(": it takes {a}"));
            let mut refused = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this API route does not take that method{takes}"),
            )
            .into_response();
            if let Some(allow) = allow {
                refused
                    .headers_mut()
                    .insert(axum::http::header::ALLOW, allow);
            }
            refused
        }
        _ => response,
    }
}

/// What answers a path no route has: under `/api/`, the API's 404 behind its token like every
/// API route; elsewhere (a mistyped page, a browser's `/favicon.ico`) the site's "not found"
/// page in the request's language, not the API's demand for a token.
async fn unknown_path(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    use axum::extract::FromRequestParts as _;
    if request.uri().path().starts_with("/api/") {
        let (mut parts, _) = request.into_parts();
        if let Err(refused) = extract::ApiToken::from_request_parts(&mut parts, &state).await {
            return refused.into_response();
        }
        return ApiError::not_found("no such API route (see the contract's Server section)")
            .into_response();
    }
    let lang = web::Lang::of_request(request.headers());
    web::i18n::error_page(lang, web::i18n::ErrorPage::NotFound)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response(),
    }
}

async fn metrics_route(State(state): State<AppState>) -> Response {
    match crate::store::infra::metrics::snapshot(&state.pool).await {
        Ok(mut snapshot) => {
            let allowance = crate::service::allowance::configured().unwrap_or_default();
            snapshot.monthly_allowance = i64::try_from(allowance.monthly).unwrap_or(i64::MAX);
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics::render(&snapshot),
            )
                .into_response()
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Starts the trigger scheduler of `config` until `shutdown`.
async fn spawn_scheduler(
    background: &mut tokio::task::JoinSet<()>,
    config: &ServeConfig,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let pool = config.pool.clone();
    let shutdown = shutdown.clone();
    let grace = config.trigger_grace;
    // Triggers name their company; one created without one belongs to the only company.
    let default_realm = crate::store::auth::companies::default_realm(&pool)
        .await?
        .unwrap_or_default();
    background.spawn(async move {
        crate::orchestrator::scheduler::run_scheduler(
            pool,
            crate::orchestrator::scheduler::SystemClock,
            Duration::from_secs(1),
            grace,
            &default_realm,
            shutdown.cancelled(),
        )
        .await;
    });
    Ok(())
}

/// Starts the webhook coalescer with the quiet period of `QBO_WEBHOOK_QUIET_SECS`.
fn spawn_coalescer(
    background: &mut tokio::task::JoinSet<()>,
    pool: &PgPool,
    wake: &Arc<Notify>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let quiet = crate::settings::webhook_quiet().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (pool, wake, shutdown) = (pool.clone(), wake.clone(), shutdown.clone());
    background.spawn(async move {
        crate::orchestrator::coalescer::run_coalescer(pool, quiet, wake, shutdown).await;
    });
    Ok(())
}

/// Every half minute until `shutdown`: warns (a log line and an alert) once per company and
/// month when its requests reach 80 % of the monthly allowance, and once per refresh token
/// 30 days before it ends.
async fn watch_allowance(
    pool: sqlx::PgPool,
    allowance: crate::domain::health::Allowance,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use crate::domain::alert::Alert;
    use crate::service::alerts::raise;
    use crate::service::allowance::{newly_crossed, warning_line};
    loop {
        let now = jiff::Timestamp::now();
        match newly_crossed(&pool, allowance).await {
            Ok(crossed) => {
                for month in &crossed {
                    tracing::warn!("{}", warning_line(month, allowance));
                    let used = u64::try_from(month.requests).unwrap_or(0);
                    let alert = Alert::allowance_80(&month.realm_id, used, allowance.monthly, now);
                    raise(&pool, &alert).await;
                }
            }
            Err(e) => tracing::warn!("Cannot read this month's requests: {e}"),
        }
        match crate::store::auth::tokens::claim_expiry_warnings(&pool, 30).await {
            Ok(ending) => {
                for (realm_id, ends_at) in &ending {
                    tracing::warn!(
                        "Refresh token ending | realm_id={realm_id} ends_at={ends_at}: reconnect the company with Connect QuickBooks before then"
                    );
                    raise(&pool, &Alert::token_expiring(realm_id, *ends_at, now)).await;
                }
            }
            Err(e) => tracing::warn!("Cannot read the refresh tokens' ends: {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

/// Serves until SIGTERM or Ctrl-C: the API, the scheduler and the workers; then stops claiming,
/// lets pages in flight commit or roll back whole, gives unfinished runs back to the queue, and
/// returns.
///
/// # Errors
/// The address cannot be bound (one line saying why).
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let allowance = crate::service::allowance::configured().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another process listens there: stop it or pass --bind with another port)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot listen on {}: {e}{hint}", config.bind)
        })?;
    let shutdown = crate::service::shutdown::shutdown_signal();
    let wake = Arc::new(Notify::new());
    let state = AppState {
        pool: config.pool.clone(),
        key: config.key.clone(),
        wake_workers: wake.clone(),
        web: Arc::new(config.web.clone()),
        tuning: Arc::new(config.tuning.clone()),
    };
    let identity = WorkerIdentity::current();
    workers::register(&config.pool, &identity, "serve").await?;
    let mut background = tokio::task::JoinSet::new();
    spawn_scheduler(&mut background, &config, &shutdown).await?;
    spawn_coalescer(&mut background, &config.pool, &wake, &shutdown)?;
    background.spawn(watch_allowance(
        config.pool.clone(),
        allowance,
        shutdown.clone(),
    ));
    spawn_delivery_loop(&mut background, &config.pool, &config.key, &shutdown);
    if config.workers > 0 {
        let executor = Arc::new(Executor::new(
            config.pool.clone(),
            config.key.clone(),
            config.tuning.clone(),
            config.lease,
        ));
        let settings = WorkerSettings {
            workers: config.workers,
            poll: config.poll,
        };
        let shutdown = shutdown.clone();
        let identity = identity.clone();
        background.spawn(async move {
            run_workers_woken(executor, identity, settings, shutdown, wake).await;
        });
    }
    let local = listener.local_addr().unwrap_or(config.bind);
    info!(
        "Serving on http://{local} (API under /api/v1, health /healthz, metrics /metrics) with {} workers; worker id {}",
        config.workers, identity.id
    );
    if let Some(origin) = config.web.connect.canonical_origin() {
        info!(
            "Web UI: {origin}/ (open it at this address: Connect QuickBooks returns to {})",
            config.web.connect.redirect_uri
        );
    }
    let server_shutdown = shutdown.clone();
    // The peer's address reaches the handlers: the login rate limit is keyed on it.
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await?;
    while background.join_next().await.is_some() {}
    let _ = workers::stopped(&config.pool, identity.id).await;
    info!("Server stopped");
    Ok(())
}
