//! The command line: `run`, `retry`, `secrets`, `runs`, `migrate` and `demo`, with the
//! contract's exit statuses (0 success, 1 failed windows or a fatal error, 2 bad input with one
//! line saying what is wrong and nothing written, 130 interrupted).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Read as _};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use tracing::{error, info};
use uuid::Uuid;

use crate::pipeline::runner::{Cancel, RunPlan, Runner};
use crate::pipeline::runs::{self, RunStatus};
use crate::pipeline::{DateRange, Pipeline};
use crate::settings::{self, ClientTuning, ConfigError, QboSettings, env};
use crate::store::secrets::{KeySettings, SecretKey, SecretStore};
use crate::store::tokens::PgTokenStore;

/// Loads QuickBooks Online history into PostgreSQL in daily UTC windows, idempotently.
#[derive(Debug, Parser)]
#[command(name = "qbo-backfill", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one pipeline over `[fecha_inicio, fecha_fin)` (UTC days).
    Run {
        /// `qb_customers_backfill`, `qb_items_backfill` or `qb_invoices_backfill`.
        pipeline: String,
        /// First day to load (YYYY-MM-DD, UTC).
        #[arg(long = "fecha-inicio", value_name = "YYYY-MM-DD")]
        fecha_inicio: String,
        /// First day NOT loaded (YYYY-MM-DD, UTC): the range is half-open.
        #[arg(long = "fecha-fin", value_name = "YYYY-MM-DD")]
        fecha_fin: String,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Re-run only the failed or unfinished windows of a run.
    Retry {
        /// The run id printed in the summary (`run_id=…`).
        run_id: String,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Manage stored secrets (encrypted at rest).
    Secrets {
        /// What to do with them.
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// List recent runs.
    Runs {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Load January 2026 from a bundled QuickBooks simulator into `DATABASE_URL`, show
    /// idempotency, and print the runbook's checks.
    Demo {
        /// Customers in the simulated company.
        #[arg(long, default_value_t = 2_000)]
        customers: usize,
        /// Items in the simulated company.
        #[arg(long, default_value_t = 300)]
        items: usize,
        /// Invoices in the simulated company.
        #[arg(long, default_value_t = 5_000)]
        invoices: usize,
    },
}

/// `secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Store a secret; the value is read from stdin (or a hidden prompt), never from argv.
    Set {
        /// `QBO_REFRESH_TOKEN`, `QBO_CLIENT_SECRET`, `QBO_CLIENT_ID`, `QBO_REALM_ID`, …
        name: String,
    },
    /// List stored secrets, redacted.
    List,
}

/// A failure with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: exit 2, nothing written.
    #[error("{0}")]
    BadInput(String),
    /// Anything else: exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit status.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_) => 2,
            Self::Other(_) => 1,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::BadInput(e.0)
    }
}

fn bad(e: impl std::fmt::Display) -> CliError {
    CliError::BadInput(e.to_string())
}

/// Runs a parsed command line; returns the exit status.
///
/// # Errors
/// A [`CliError`] carrying its exit status.
pub async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Run {
            pipeline,
            fecha_inicio,
            fecha_fin,
            tuning,
        } => {
            // Validate everything first: bad input writes nothing, not even the database.
            let pipeline: Pipeline = pipeline.parse().map_err(bad)?;
            let range = DateRange::parse(&fecha_inicio, &fecha_fin).map_err(bad)?;
            let windows = range.windows().map_err(bad)?;
            // Invalid configuration is bad input too: reject it before touching the database.
            QboSettings::client_settings(&tuning)?;
            let env_only = QboSettings::resolve(&tuning, &());
            let pool = connect().await?;
            let key = secret_key()?;
            let settings = match env_only {
                Ok(s) => s,
                Err(_) => QboSettings::resolve(&tuning, &stored_lookup(&pool, &key).await?)?,
            };
            let runner = runner_for(&pool, &key, &settings, &tuning).await?;
            let outcome = runner
                .execute(RunPlan {
                    pipeline,
                    range,
                    windows,
                    retry_of: None,
                    trigger: "cli",
                })
                .await
                .map_err(anyhow::Error::from)?;
            Ok(outcome.exit_code())
        }
        Command::Retry { run_id, tuning } => {
            let run_id: Uuid = run_id.parse().map_err(|_| {
                bad(format!(
                    "`{}` is not a run id (a UUID, as printed in `run_id=…`)",
                    crate::pipeline::echo(&run_id)
                ))
            })?;
            let pool = connect().await?;
            let key = secret_key()?;
            let Some(run) = runs::load_run(&pool, run_id)
                .await
                .map_err(anyhow::Error::from)?
            else {
                return Err(bad(format!("no run `{run_id}` in this database")));
            };
            if runs::run_is_alive(&run) {
                return Err(bad(format!(
                    "run {run_id} is still running (host {}, pid {}); wait for it or stop it first",
                    run.host.as_deref().unwrap_or("?"),
                    run.pid.unwrap_or(0)
                )));
            }
            if run.status == RunStatus::Running {
                runs::mark_interrupted(&pool, run_id, "its process stopped without finishing")
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            let pipeline: Pipeline = run.pipeline.parse().map_err(bad)?;
            let windows = runs::unfinished_windows(&pool, run_id)
                .await
                .map_err(anyhow::Error::from)?;
            if windows.is_empty() {
                info!("Run {run_id} has no failed or unfinished windows; nothing to retry");
                return Ok(0);
            }
            let settings = QboSettings::resolve(&tuning, &stored_lookup(&pool, &key).await?)?;
            if settings.realm_id != run.realm_id {
                return Err(bad(format!(
                    "run {run_id} loaded realm {} but {} is {}",
                    run.realm_id,
                    env::QBO_REALM_ID,
                    settings.realm_id
                )));
            }
            let runner = runner_for(&pool, &key, &settings, &tuning).await?;
            let outcome = runner
                .execute(RunPlan {
                    pipeline,
                    range: run.range,
                    windows,
                    retry_of: Some(run_id),
                    trigger: "retry",
                })
                .await
                .map_err(anyhow::Error::from)?;
            Ok(outcome.exit_code())
        }
        Command::Secrets {
            action: SecretsAction::Set { name },
        } => secrets_set(&name).await,
        Command::Secrets {
            action: SecretsAction::List,
        } => {
            let pool = connect().await?;
            let store = SecretStore::new(pool.clone(), secret_key()?);
            for info in store.list().await.map_err(anyhow::Error::from)? {
                let updated = info
                    .updated_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string());
                let readable = if info.readable {
                    ""
                } else {
                    " (cannot be decrypted with this key)"
                };
                info!(
                    "{} {} updated_at={updated}{readable}",
                    info.name, info.redacted
                );
            }
            Ok(0)
        }
        Command::Runs { limit } => {
            let pool = connect().await?;
            list_runs(&pool, limit).await?;
            Ok(0)
        }
        Command::Migrate => {
            connect().await?;
            info!("Database is ready: migrations applied");
            Ok(0)
        }
        Command::Demo {
            customers,
            items,
            invoices,
        } => crate::demo::run(crate::demo::DemoSize {
            customers,
            items,
            invoices,
        })
        .await
        .map_err(CliError::Other),
    }
}

/// Connects to `DATABASE_URL` (creating and migrating the database).
async fn connect() -> Result<PgPool, CliError> {
    let url = settings::database_url();
    crate::store::connect(&url)
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))
}

fn secret_key() -> Result<SecretKey, CliError> {
    SecretKey::load_or_create(&KeySettings::from_env())
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))
}

/// Reads the stored values settings may fall back to.
async fn stored_lookup(
    pool: &PgPool,
    key: &SecretKey,
) -> Result<impl Fn(&str) -> Option<SecretString>, CliError> {
    let store = SecretStore::new(pool.clone(), key.clone());
    let mut values = HashMap::new();
    for name in [
        env::QBO_CLIENT_ID,
        env::QBO_CLIENT_SECRET,
        env::QBO_REALM_ID,
    ] {
        if let Some(v) = store.get(name).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            values.insert(name.to_owned(), v);
        }
    }
    Ok(move |name: &str| values.get(name).cloned())
}

/// Builds the runner for one company: its token store (seeded from `QBO_REFRESH_TOKEN` when
/// empty), its client, and Ctrl-C handling.
async fn runner_for(
    pool: &PgPool,
    key: &SecretKey,
    settings: &QboSettings,
    tuning: &ClientTuning,
) -> Result<Runner, CliError> {
    let tokens = PgTokenStore::new(pool.clone(), key.clone(), settings.realm_id.clone());
    if let Some(seed) = &settings.seed_refresh_token {
        tokens
            .seed_if_empty(seed)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let client = qbo::QboClient::new(
        settings.client.clone(),
        settings.credentials(),
        Arc::new(tokens),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let interrupt = Cancel::new();
    {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            // Ctrl-C, or SIGTERM from a service manager or `docker stop`: stop gracefully.
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                () = terminated => {}
            }
            tracing::warn!(
                "Interrupted: finishing the pages in flight, then stopping (Ctrl-C again to abort)"
            );
            interrupt.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
    }
    Ok(Runner {
        pool: pool.clone(),
        client,
        concurrency: tuning.window_concurrency(),
        interrupt,
    })
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The longest secret value accepted on stdin.
const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Reads a secret value from stdin: a hidden prompt on a terminal, otherwise all of stdin (one
/// line, surrounding whitespace trimmed). A value that is too long, not UTF-8, spans lines or
/// holds control characters is bad input (exit 2), never stored cut or mangled.
fn read_secret_value(name: &str) -> Result<SecretString, CliError> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("Value for {name} (input hidden): ");
        let echo_off = std::process::Command::new("stty")
            .arg("-echo")
            .status()
            .is_ok();
        let read = stdin.read_line(&mut value);
        if echo_off {
            let _ = std::process::Command::new("stty").arg("echo").status();
        }
        eprintln!();
        read.map_err(|e| anyhow::anyhow!("cannot read the value: {e}"))?;
    } else {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read the value from stdin: {e}"))?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(bad(format!(
                "the value for {name} on stdin is longer than {MAX_SECRET_BYTES} bytes"
            )));
        }
        value = String::from_utf8(bytes)
            .map_err(|_| bad(format!("the value for {name} on stdin is not UTF-8 text")))?;
    }
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(bad(format!("no value given for {name} on stdin")));
    }
    if trimmed.contains(['\n', '\r']) {
        return Err(bad(format!("the value for {name} must be a single line")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(bad(format!(
            "the value for {name} contains control characters"
        )));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

async fn secrets_set(name: &str) -> Result<u8, CliError> {
    if !valid_secret_name(name) {
        return Err(bad(format!(
            "`{}` is not a secret name: use upper-case letters, digits and `_` (e.g. QBO_REFRESH_TOKEN)",
            crate::pipeline::echo(name)
        )));
    }
    let value = read_secret_value(name)?;
    let pool = connect().await?;
    let key = secret_key()?;
    let store = SecretStore::new(pool.clone(), key.clone());
    if name == env::QBO_REFRESH_TOKEN {
        let realm_id = match settings::env_var(env::QBO_REALM_ID) {
            Some(r) => r,
            None => store
                .get(env::QBO_REALM_ID)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .map(|s| s.expose_secret().to_owned())
                .ok_or_else(|| {
                    bad("QBO_REALM_ID is not set: the refresh token belongs to a company; export QBO_REALM_ID or store it first")
                })?,
        };
        let tokens = PgTokenStore::new(pool.clone(), key, realm_id.clone());
        tokens
            .replace_refresh_token(&value)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(
            "Stored a new refresh token for realm {realm_id} ({}); the next run uses it",
            crate::store::secrets::redact(value.expose_secret())
        );
    } else {
        store
            .set(name, &value)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(
            "Stored {name} ({})",
            crate::store::secrets::redact(value.expose_secret())
        );
    }
    Ok(0)
}

async fn list_runs(pool: &PgPool, limit: i64) -> Result<(), CliError> {
    use sqlx::Row as _;
    // A run whose process died is shown as interrupted, never as running.
    runs::reap_dead_runs(pool)
        .await
        .map_err(anyhow::Error::from)?;
    let rows = sqlx::query(
        "SELECT id, pipeline, realm_id, fecha_inicio::text AS fi, fecha_fin::text AS ff, status, \
                windows_total, windows_failed, rows_total, inserted, updated, unchanged, \
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created \
         FROM ops.runs ORDER BY created_at DESC LIMIT $1",
    )
    .bind(limit.clamp(1, 10_000))
    .fetch_all(pool)
    .await
    .map_err(anyhow::Error::from)?;
    for row in rows {
        let get = |c: &str| row.try_get::<String, _>(c).unwrap_or_default();
        let num = |c: &str| row.try_get::<i64, _>(c).unwrap_or_default();
        let id: Uuid = row.try_get("id").unwrap_or_default();
        let windows: i32 = row.try_get("windows_total").unwrap_or_default();
        let failed: i32 = row.try_get("windows_failed").unwrap_or_default();
        info!(
            "{id} {} {} {}..{} status={} windows={windows} failed_windows={failed} rows={} inserted={} updated={} unchanged={} created_at={}",
            get("pipeline"),
            get("realm_id"),
            get("fi"),
            get("ff"),
            get("status"),
            num("rows_total"),
            num("inserted"),
            num("updated"),
            num("unchanged"),
            get("created"),
        );
    }
    Ok(())
}

/// A command-line parsing error (unknown flag, missing argument, …) as the contract's one line:
/// clap's message and tip without the usage block, e.g. `error: the following required
/// arguments were not provided: --fecha-fin <YYYY-MM-DD>`.
#[must_use]
pub fn one_line_usage_error(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let line = parts.join(" ");
    if line.is_empty() {
        "error: invalid command line (see --help)".to_owned()
    } else {
        line
    }
}

/// Prints a failure the way the contract wants: one line.
pub fn report_error(e: &CliError) {
    match e {
        CliError::BadInput(msg) => eprintln!("error: {msg}"),
        CliError::Other(err) => error!("error: {err:#}"),
    }
}
