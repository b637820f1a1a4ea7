//! `serve` (web UI, JSON API, scheduler and workers) and `worker` (workers only): the
//! long-running processes.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tracing::{info, warn};

use crate::cli::QueueTuning;
use crate::cli::setup::Session;
use crate::cli::{CliError, bad, fail};
use crate::orchestrator::worker::{WorkerSettings, run_workers};
use crate::service::shutdown::shutdown_signal;
use crate::settings::{self, ClientTuning, QboSettings, env};
use crate::store::auth::secrets::KeySettings;
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

/// The file, in the data directory (beside the default key file), that holds a generated first
/// password when `serve` has no terminal to show it on.
pub(crate) const FIRST_PASSWORD_FILE: &str = "first-operator-password";

/// Creates the first operator if needed; a generated password is handed over once.
async fn announce_admin(pool: &PgPool) -> Result<(), CliError> {
    let user =
        settings::env_var(env::QBO_BACKFILL_ADMIN_USER).unwrap_or_else(|| "admin".to_owned());
    let password = settings::env_var(env::QBO_BACKFILL_ADMIN_PASSWORD);
    let generated = crate::service::login::ensure_admin(pool, &user, password.as_deref())
        .await
        .map_err(fail)?;
    if let Some(generated) = generated {
        hand_over_password(&user, &generated);
    }
    Ok(())
}

/// Shows a generated password on the terminal only, never through the log: with no terminal on
/// stdout (a container, a service manager) it goes into [`FIRST_PASSWORD_FILE`] (mode 0600) in the
/// data directory, and the log line says where.
fn hand_over_password(user: &str, password: &str) {
    let choose = env::QBO_BACKFILL_ADMIN_PASSWORD;
    if std::io::stdout().is_terminal() {
        println!(
            "Created the first operator `{user}` with the password: {password} (shown once; set {choose} to choose another)"
        );
        return;
    }
    match write_password_file(password) {
        Ok(path) => info!(
            "Created the first operator `{user}`; its generated password is in {} (mode 0600; read it, log in, then delete the file; set {choose} to choose another)",
            path.display()
        ),
        Err(e) => warn!(
            "Created the first operator `{user}`, but its generated password could not be written to the data directory ({e}); set {choose} and restart to choose one"
        ),
    }
}

/// Writes `password` to a new [`FIRST_PASSWORD_FILE`] readable by this user only, in the
/// directory of the key file (created if missing); returns its path.
fn write_password_file(password: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let key_file = KeySettings::from_env()
        .key_file_path()
        .map_err(std::io::Error::other)?;
    let dir = key_file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(FIRST_PASSWORD_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(file, "{password}")?;
    file.sync_all()?;
    Ok(path)
}
