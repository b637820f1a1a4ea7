//! `serve` (web UI, JSON API, scheduler and workers) and `worker` (workers only): the
//! long-running processes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tracing::info;

use crate::cli::QueueTuning;
use crate::cli::setup::Session;
use crate::cli::{CliError, bad, fail};
use crate::orchestrator::worker::{WorkerSettings, run_workers};
use crate::service::shutdown::shutdown_signal;
use crate::settings::{self, ClientTuning, QboSettings, env};
use crate::store::runs::workers::{WorkerIdentity, register};

/// Serves on `bind` with `workers` workers until Ctrl-C or SIGTERM.
pub(crate) async fn serve(
    bind: SocketAddr,
    workers: usize,
    trigger_grace_s: u64,
    queue: &QueueTuning,
    tuning: ClientTuning,
) -> Result<u8, CliError> {
    QboSettings::client_settings(&tuning)?;
    let trusted_proxies = settings::trusted_proxies()?;
    let connect = crate::server::web::connect::ConnectConfig::from_env(bind).map_err(bad)?;
    let Session { pool, key } = Session::for_service(&tuning).await?;
    announce_admin(&pool).await?;
    let web = crate::server::web::WebConfig {
        secure_cookies: settings::env_var(env::QBO_BACKFILL_SECURE_COOKIES)
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        connect,
        trusted_proxies,
    };
    crate::server::serve(crate::server::ServeConfig {
        pool,
        key,
        bind,
        workers,
        tuning,
        lease: queue.lease(),
        poll: queue.poll(),
        trigger_grace: Duration::from_secs(trigger_grace_s),
        web,
    })
    .await
    .map_err(CliError::Other)?;
    Ok(0)
}

/// Executes queued runs with `workers` workers until Ctrl-C or SIGTERM.
pub(crate) async fn worker(
    workers: usize,
    queue: &QueueTuning,
    tuning: ClientTuning,
) -> Result<u8, CliError> {
    QboSettings::client_settings(&tuning)?;
    let session = Session::for_service(&tuning).await?;
    let executor = Arc::new(crate::orchestrator::worker::Executor::new(
        session.pool.clone(),
        session.key,
        tuning,
        queue.lease(),
    ));
    let identity = WorkerIdentity::current();
    register(&session.pool, &identity, "worker")
        .await
        .map_err(anyhow::Error::from)?;
    info!(
        "Worker {} started: {workers} workers (host {}, pid {})",
        identity.id, identity.host, identity.pid
    );
    let settings = WorkerSettings {
        workers: workers.max(1),
        poll: queue.poll(),
    };
    run_workers(executor, identity, settings, shutdown_signal()).await;
    info!("Worker stopped");
    Ok(0)
}

/// Creates the first operator if needed; a generated password is printed once.
async fn announce_admin(pool: &PgPool) -> Result<(), CliError> {
    let user =
        settings::env_var(env::QBO_BACKFILL_ADMIN_USER).unwrap_or_else(|| "admin".to_owned());
    let password = settings::env_var(env::QBO_BACKFILL_ADMIN_PASSWORD);
    let generated = crate::service::login::ensure_admin(pool, &user, password.as_deref())
        .await
        .map_err(fail)?;
    if let Some(generated) = generated {
        info!(
            "Created the first operator `{user}` with the password: {generated} (shown once; set {} to choose another)",
            env::QBO_BACKFILL_ADMIN_PASSWORD
        );
    }
    Ok(())
}
