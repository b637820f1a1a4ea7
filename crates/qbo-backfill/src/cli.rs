//! The command line: `run`, `verify`, `retry`, `serve`, `worker`, `api-tokens`, `secrets`,
//! `runs`, `migrate` and `demo`, with the contract's exit statuses (0 success, 1 failed windows or a fatal
//! error, 2 bad input with one line saying what is wrong and nothing written, 130 interrupted).

use std::io::{IsTerminal as _, Read as _};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use tracing::{error, info};
use uuid::Uuid;

use crate::domain::run::RunOrigin;
use crate::domain::secret::{MAX_SECRET_VALUE_BYTES, SecretName, SecretRefusal};
use crate::orchestrator::worker::{Executor, LocalRun, Tee};
use crate::pipeline::events::{RunEvent, RunEvents, TerminalEvents};
use crate::pipeline::verify::VerifyTotals;
use crate::pipeline::{DateRange, Mode, Pipeline, SinceError, range_or_since_cursor};
use crate::service::company::{save_company, stored_lookup};
use crate::service::retry::{RetryPlan, RetryRefusal, plan_retry};
use crate::service::shutdown::shutdown_signal;
use crate::settings::{self, ClientTuning, ConfigError, QboSettings, env};
use crate::store::auth::companies;
use crate::store::auth::secrets::{KeySettings, SecretKey, SecretStore};
use crate::store::auth::tokens::PgTokenStore;
use crate::store::runs;

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
    /// Load one pipeline over `[fecha_inicio, fecha_fin)` (UTC days). An incremental pipeline
    /// without dates loads what changed since its last successful sync.
    Run {
        /// `qb_<entity>_backfill` (by creation time) or `qb_<entity>_incremental` (by last
        /// update, with deletions), e.g. `qb_customers_backfill`; `pipelines` lists them.
        pipeline: String,
        /// First day to load (YYYY-MM-DD, UTC).
        #[arg(long = "fecha-inicio", value_name = "YYYY-MM-DD")]
        fecha_inicio: Option<String>,
        /// First day NOT loaded (YYYY-MM-DD, UTC): the range is half-open.
        #[arg(long = "fecha-fin", value_name = "YYYY-MM-DD")]
        fecha_fin: Option<String>,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Check `raw` against QuickBooks month by month over `[fecha_inicio, fecha_fin)`: each
    /// calendar month's `COUNT(*)` (by `MetaData.CreateTime`) against the live raw rows created
    /// in it; a month that differs is repaired (missing rows loaded, rows QuickBooks no longer
    /// has marked deleted) and counted again.
    Verify {
        /// An entity as pipelines name it (`customers`, `journal_entries`, …) or `all`.
        entity: String,
        /// First day to verify (YYYY-MM-DD, UTC).
        #[arg(long = "fecha-inicio", value_name = "YYYY-MM-DD")]
        fecha_inicio: String,
        /// First day NOT verified (YYYY-MM-DD, UTC): the range is half-open.
        #[arg(long = "fecha-fin", value_name = "YYYY-MM-DD")]
        fecha_fin: String,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// List every pipeline: its entity, raw table and what it windows by.
    Pipelines,
    /// Re-run only the failed or unfinished windows of a run.
    Retry {
        /// The run id printed in the summary (`run_id=…`).
        run_id: String,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Serve the web UI and JSON API on port 6789, run the scheduler, and execute queued runs
    /// with `--workers N` workers.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "QBO_BACKFILL_BIND", default_value = "127.0.0.1:6789")]
        bind: String,
        /// Workers in this process (0 = API and scheduler only).
        #[arg(long, env = "QBO_BACKFILL_WORKERS", default_value_t = 1)]
        workers: usize,
        /// How late a one-time trigger may still fire after the server was down, in seconds.
        #[arg(long, env = "QBO_BACKFILL_TRIGGER_GRACE_S", default_value_t = 900)]
        trigger_grace_s: u64,
        /// Claims and leases.
        #[command(flatten)]
        queue: QueueTuning,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Execute queued runs (no API, no scheduler): scale out by starting more of these on any
    /// machine that reaches the database.
    Worker {
        /// Workers in this process.
        #[arg(long, env = "QBO_BACKFILL_WORKERS", default_value_t = 1)]
        workers: usize,
        /// Claims and leases.
        #[command(flatten)]
        queue: QueueTuning,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Manage API tokens (`Authorization: Bearer TOKEN` on the JSON API and `/metrics`).
    #[command(name = "api-tokens")]
    ApiTokens {
        /// What to do with them.
        #[command(subcommand)]
        action: ApiTokensAction,
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
        /// Then keep serving the web UI and API with the simulator as the company (log in with
        /// the printed password; Ctrl-C stops).
        #[arg(long)]
        serve: bool,
        /// Where `--serve` listens.
        #[arg(long, env = "QBO_BACKFILL_BIND", default_value = "127.0.0.1:6789")]
        bind: String,
    },
}

/// How workers claim runs.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueTuning {
    /// How long a worker's claim on a run lasts without a heartbeat, in seconds: a worker that
    /// dies has its runs taken over this long after its last heartbeat.
    #[arg(long, env = "QBO_BACKFILL_LEASE_S", default_value_t = 30)]
    pub lease_s: u64,
    /// How often an idle worker looks for queued runs, in milliseconds.
    #[arg(long, env = "QBO_BACKFILL_POLL_MS", default_value_t = 500)]
    pub poll_ms: u64,
}

impl QueueTuning {
    /// The lease.
    #[must_use]
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_s.clamp(3, 3600))
    }

    /// The poll interval.
    #[must_use]
    pub fn poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.poll_ms.clamp(10, 60_000))
    }
}

/// `api-tokens` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiTokensAction {
    /// Create a token; it is printed once, on the last line of stdout, and stored only hashed.
    Create {
        /// A name saying who or what uses it.
        name: String,
    },
    /// List tokens (names and last characters only).
    List,
    /// Revoke a token by id or name.
    Revoke {
        /// The token's id or name.
        id_or_name: String,
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
    /// Forget every stored secret, OAuth token and company (their app keys): the way out when the
    /// secret key that sealed them is lost. Store them again and reconnect QuickBooks afterwards.
    Reset {
        /// Confirms the deletion.
        #[arg(long)]
        yes: bool,
    },
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

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Other(anyhow::anyhow!("{e}"))
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
            run(
                &pipeline,
                fecha_inicio.as_deref(),
                fecha_fin.as_deref(),
                &tuning,
            )
            .await
        }
        Command::Verify {
            entity,
            fecha_inicio,
            fecha_fin,
            tuning,
        } => verify(&entity, &fecha_inicio, &fecha_fin, &tuning).await,
        Command::Pipelines => {
            list_pipelines();
            Ok(0)
        }
        Command::Retry { run_id, tuning } => retry(&run_id, &tuning).await,
        Command::Serve {
            bind,
            workers,
            trigger_grace_s,
            queue,
            tuning,
        } => serve(&bind, workers, trigger_grace_s, &queue, tuning).await,
        Command::Worker {
            workers,
            queue,
            tuning,
        } => worker(workers, &queue, tuning).await,
        Command::ApiTokens { action } => api_tokens(action).await,
        Command::Secrets { action } => secrets_command(action).await,
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
            serve,
            bind,
        } => {
            let bind = if serve {
                Some(bind.parse::<std::net::SocketAddr>().map_err(|_| {
                    bad(format!(
                        "--bind `{}` is not an address such as 127.0.0.1:6789",
                        crate::pipeline::echo(&bind)
                    ))
                })?)
            } else {
                None
            };
            crate::demo::run(
                crate::demo::DemoSize {
                    customers,
                    items,
                    invoices,
                },
                bind,
            )
            .await
            .map_err(CliError::Other)
        }
    }
}

/// `secrets set`, `list` and `reset`.
async fn secrets_command(action: SecretsAction) -> Result<u8, CliError> {
    match action {
        SecretsAction::Set { name } => secrets_set(&name).await,
        SecretsAction::List => {
            let pool = connect().await?;
            let store = SecretStore::new(pool.clone(), secret_key(&pool).await?);
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
        SecretsAction::Reset { yes } => {
            if !yes {
                return Err(bad(
                    "`secrets reset` deletes every stored secret, OAuth token and company; pass --yes to confirm",
                ));
            }
            let pool = connect().await?;
            let forgotten = crate::store::auth::secrets::forget_all(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            info!(
                "Forgot {forgotten} stored secrets, tokens and companies. Store the secrets again (`qbo-backfill secrets set NAME`, or start with QBO_CLIENT_ID, QBO_CLIENT_SECRET, QBO_REALM_ID and QBO_REFRESH_TOKEN set) and reconnect QuickBooks."
            );
            Ok(0)
        }
    }
}

/// Connects to `DATABASE_URL` (creating and migrating the database).
async fn connect() -> Result<PgPool, CliError> {
    let url = settings::database_url();
    crate::store::connect(&url)
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))
}

/// The secret key; a missing key file is created only when the database holds nothing sealed.
async fn secret_key(pool: &PgPool) -> Result<SecretKey, CliError> {
    SecretKey::load_or_create_for(pool, &KeySettings::from_env())
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))
}

/// The secret key, refused when it did not seal what the database holds.
async fn checked_key(pool: &PgPool) -> Result<SecretKey, CliError> {
    let key = secret_key(pool).await?;
    crate::store::auth::secrets::check_key(pool, &key)
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
    Ok(key)
}

/// `pipelines`: every pipeline with its entity and raw table.
fn list_pipelines() {
    let mut out = String::from("pipeline\tentity\ttable\twindows by\n");
    for p in Pipeline::all() {
        let by = match p.mode() {
            Mode::Backfill => "MetaData.CreateTime",
            Mode::Incremental => "MetaData.LastUpdatedTime (+ deletions)",
            Mode::Verify => "MetaData.CreateTime, by month (reconciles raw)",
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{by}\n",
            p.name(),
            p.entity(),
            p.table().qualified_name()
        ));
    }
    print!("{out}");
}

async fn run(
    pipeline: &str,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    // Validate everything first: bad input writes nothing, not even the database.
    let pipeline: Pipeline = pipeline.parse().map_err(bad)?;
    let dates = match (fecha_inicio, fecha_fin) {
        (Some(inicio), Some(fin)) => Some(DateRange::parse(inicio, fin).map_err(bad)?),
        (None, None) if pipeline.mode() == Mode::Incremental => None,
        (None, None) => return Err(bad(SinceError::DatesRequired(pipeline))),
        _ => return Err(bad(SinceError::OneDate)),
    };
    // Invalid configuration is bad input too: reject it before touching the database.
    QboSettings::client_settings(tuning)?;
    let env_only = QboSettings::resolve(tuning, &());
    let pool = connect().await?;
    let key = checked_key(&pool).await?;
    let settings = match env_only {
        Ok(s) => s,
        Err(_) => QboSettings::resolve(tuning, &stored_lookup(&pool, &key).await?)?,
    };
    save_company(&pool, &key, &settings).await?;
    let range = range_or_since_cursor(
        &pool,
        &settings.realm_id,
        pipeline,
        dates,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        SinceError::Database(e) => CliError::from(anyhow::anyhow!("{e}")),
        other => bad(other),
    })?;
    let windows = pipeline.windows(&range).map_err(bad)?;
    run_locally(
        &pool,
        &key,
        tuning,
        LocalRun {
            pipeline,
            realm_id: &settings.realm_id,
            range,
            windows,
            trigger: RunOrigin::Cli,
            retry_of: None,
        },
    )
    .await
}

/// Remembers what each verification reported, for the summary line.
#[derive(Default)]
struct VerifyTally(std::sync::Mutex<VerifyTotals>);

impl RunEvents for VerifyTally {
    fn emit(&self, event: &RunEvent<'_>) {
        if let RunEvent::Verified { totals, .. } = event {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) += *totals;
        }
    }
}

/// `verify ENTITY|all`: one verify run per entity, one after the other in this process, each
/// with its `Verify | …` line, then `Verify done | …`. Exit 0 when every month agreed or was
/// repaired, 1 when one could not be verified, 2 for bad input (nothing written), 130 when
/// interrupted.
async fn verify(
    entity: &str,
    fecha_inicio: &str,
    fecha_fin: &str,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    // Validate everything first: bad input writes nothing, not even the database.
    let pipelines = crate::pipeline::verify::pipelines_for(entity).map_err(bad)?;
    let range = DateRange::parse(fecha_inicio, fecha_fin).map_err(bad)?;
    let mut planned = Vec::with_capacity(pipelines.len());
    for pipeline in pipelines {
        planned.push((pipeline, pipeline.windows(&range).map_err(bad)?));
    }
    QboSettings::client_settings(tuning)?;
    let env_only = QboSettings::resolve(tuning, &());
    let pool = connect().await?;
    let key = checked_key(&pool).await?;
    let settings = match env_only {
        Ok(s) => s,
        Err(_) => QboSettings::resolve(tuning, &stored_lookup(&pool, &key).await?)?,
    };
    save_company(&pool, &key, &settings).await?;
    let executor = Executor::new(pool.clone(), key.clone(), tuning.clone(), runs::LEASE);
    let interrupt = shutdown_signal();
    let tally = Arc::new(VerifyTally::default());
    let sink: Arc<dyn RunEvents> =
        Arc::new(Tee(vec![Arc::new(TerminalEvents::new()), tally.clone()]));
    let (mut entities, mut code) = (0_u64, 0_u8);
    for (pipeline, windows) in planned {
        if interrupt.is_cancelled() {
            code = 130;
            break;
        }
        let outcome = executor
            .run_here(
                LocalRun {
                    pipeline,
                    realm_id: &settings.realm_id,
                    range,
                    windows,
                    trigger: RunOrigin::Cli,
                    retry_of: None,
                },
                interrupt.clone(),
                sink.clone(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        entities += 1;
        match outcome.exit_code() {
            0 => {}
            130 => {
                code = 130;
                break;
            }
            other => code = other,
        }
        // A refused token fails every entity the same way: stop at the first.
        if outcome.fatal.is_some() {
            break;
        }
    }
    let t = *tally
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    info!(
        "Verify done | entities={entities} months={} agreed={} drifted={} failed={} loaded={} marked_deleted={} requests={}",
        t.months, t.agreed, t.drifted, t.failed, t.loaded, t.marked_deleted, t.requests
    );
    Ok(code)
}

async fn serve(
    bind: &str,
    workers: usize,
    trigger_grace_s: u64,
    queue: &QueueTuning,
    tuning: ClientTuning,
) -> Result<u8, CliError> {
    let bind: std::net::SocketAddr = bind.parse().map_err(|_| {
        bad(format!(
            "--bind `{}` is not an address such as 127.0.0.1:6789 or 0.0.0.0:6789",
            crate::pipeline::echo(bind)
        ))
    })?;
    QboSettings::client_settings(&tuning)?;
    let connect = crate::server::web::connect::ConnectConfig::from_env(bind).map_err(bad)?;
    let (pool, key) = start_service(&tuning).await?;
    announce_admin(&pool).await?;
    let web = crate::server::web::WebConfig {
        secure_cookies: settings::env_var(env::QBO_BACKFILL_SECURE_COOKIES)
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        connect,
    };
    crate::server::serve(crate::server::ServeConfig {
        pool,
        key,
        bind,
        workers,
        tuning,
        lease: queue.lease(),
        poll: queue.poll(),
        trigger_grace: std::time::Duration::from_secs(trigger_grace_s),
        web,
    })
    .await
    .map_err(CliError::Other)?;
    Ok(0)
}

async fn worker(workers: usize, queue: &QueueTuning, tuning: ClientTuning) -> Result<u8, CliError> {
    QboSettings::client_settings(&tuning)?;
    let (pool, key) = start_service(&tuning).await?;
    let executor = Arc::new(Executor::new(pool.clone(), key, tuning, queue.lease()));
    let identity = crate::store::runs::workers::WorkerIdentity::current();
    crate::store::runs::workers::register(&pool, &identity, "worker")
        .await
        .map_err(anyhow::Error::from)?;
    info!(
        "Worker {} started: {workers} workers (host {}, pid {})",
        identity.id, identity.host, identity.pid
    );
    let shutdown = shutdown_signal();
    crate::orchestrator::worker::run_workers(
        executor,
        identity,
        crate::orchestrator::worker::WorkerSettings {
            workers: workers.max(1),
            poll: queue.poll(),
        },
        shutdown,
    )
    .await;
    info!("Worker stopped");
    Ok(0)
}

/// Creates the first operator if needed; a generated password is printed once.
async fn announce_admin(pool: &PgPool) -> Result<(), CliError> {
    let user =
        settings::env_var(env::QBO_BACKFILL_ADMIN_USER).unwrap_or_else(|| "admin".to_owned());
    let password = settings::env_var(env::QBO_BACKFILL_ADMIN_PASSWORD);
    let generated = crate::store::auth::web::ensure_admin(pool, &user, password.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(generated) = generated {
        info!(
            "Created the first operator `{user}` with the password: {generated} (shown once; set {} to choose another)",
            env::QBO_BACKFILL_ADMIN_PASSWORD
        );
    }
    Ok(())
}

/// Connects, and saves the company of the environment when it describes one (the first company
/// of a deployment is seeded this way); without one, companies come from Connect QuickBooks.
async fn start_service(tuning: &ClientTuning) -> Result<(PgPool, SecretKey), CliError> {
    let pool = connect().await?;
    let key = checked_key(&pool).await?;
    match QboSettings::resolve(tuning, &stored_lookup(&pool, &key).await?) {
        Ok(settings) => save_company(&pool, &key, &settings).await?,
        Err(e) => {
            info!("No company from the environment ({e}); using the companies already connected")
        }
    }
    Ok((pool, key))
}

/// Runs `run` in this process with the terminal's output; returns the exit status.
async fn run_locally(
    pool: &PgPool,
    key: &SecretKey,
    tuning: &ClientTuning,
    run: LocalRun<'_>,
) -> Result<u8, CliError> {
    let executor = Executor::new(pool.clone(), key.clone(), tuning.clone(), runs::LEASE);
    let outcome = executor
        .run_here(run, shutdown_signal(), Arc::new(TerminalEvents::new()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(outcome.exit_code())
}

async fn retry(run_id: &str, tuning: &ClientTuning) -> Result<u8, CliError> {
    let run_id: Uuid = run_id.parse().map_err(|_| {
        bad(format!(
            "`{}` is not a run id (a UUID, as printed in `run_id=…`)",
            crate::pipeline::echo(run_id)
        ))
    })?;
    let pool = connect().await?;
    let key = checked_key(&pool).await?;
    let RetryPlan {
        run,
        pipeline,
        windows,
    } = match plan_retry(&pool, run_id).await {
        Ok(plan) => plan,
        Err(RetryRefusal::NothingToRetry(_)) => {
            info!("Run {run_id} has no failed or unfinished windows; nothing to retry");
            return Ok(0);
        }
        Err(RetryRefusal::Database(e)) => return Err(anyhow::Error::from(e).into()),
        Err(refusal) => return Err(bad(refusal)),
    };
    // New credentials in the environment (a reconnect) apply to the run's company.
    if let Ok(settings) = QboSettings::resolve(tuning, &stored_lookup(&pool, &key).await?) {
        if settings.realm_id != run.realm_id {
            return Err(bad(format!(
                "run {run_id} loaded realm {} but {} is {}",
                run.realm_id,
                env::QBO_REALM_ID,
                settings.realm_id
            )));
        }
        save_company(&pool, &key, &settings).await?;
    }
    run_locally(
        &pool,
        &key,
        tuning,
        LocalRun {
            pipeline,
            realm_id: &run.realm_id,
            range: run.range(),
            windows,
            trigger: RunOrigin::Retry,
            retry_of: Some(run_id),
        },
    )
    .await
}

async fn api_tokens(action: ApiTokensAction) -> Result<u8, CliError> {
    use crate::store::auth::api_tokens;
    match action {
        ApiTokensAction::Create { name } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err(bad(
                    "a token name must be 1 to 100 characters without control characters",
                ));
            }
            let pool = connect().await?;
            let (id, token) = api_tokens::create(&pool, name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            info!("Created API token `{name}` (id {id}). It is shown once; keep it safe:");
            println!("{token}");
        }
        ApiTokensAction::List => {
            let pool = connect().await?;
            for t in api_tokens::list(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let used = t
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |ts| ts.0.to_string());
                info!(
                    "{} {} {} {state} created_at={} last_used_at={used}",
                    t.id, t.name, t.hint, t.created_at.0
                );
            }
        }
        ApiTokensAction::Revoke { id_or_name } => {
            let pool = connect().await?;
            let n = api_tokens::revoke(&pool, &id_or_name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if n == 0 {
                return Err(bad(format!(
                    "no active API token `{}`",
                    crate::pipeline::echo(&id_or_name)
                )));
            }
            info!("Revoked {n} API token(s)");
        }
    }
    Ok(0)
}

/// The most bytes read from stdin for a secret value: the value rule's limit, plus room for
/// surrounding whitespace (trimmed away before the rule applies).
const MAX_SECRET_STDIN_BYTES: u64 = MAX_SECRET_VALUE_BYTES as u64 + 1024;

/// Reads a secret value from stdin: a hidden prompt on a terminal, otherwise all of stdin. The
/// value rule ([`SecretName::value`]) then applies, as in the API and the web pages: a value
/// that is too long, not UTF-8, spans lines or holds control characters is bad input (exit 2),
/// never stored cut or mangled.
fn read_secret_value(name: &SecretName) -> Result<SecretString, CliError> {
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
            .take(MAX_SECRET_STDIN_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read the value from stdin: {e}"))?;
        if bytes.len() as u64 > MAX_SECRET_STDIN_BYTES {
            return Err(bad(SecretRefusal::TooLong(name.clone())));
        }
        value = String::from_utf8(bytes)
            .map_err(|_| bad(format!("the value for {name} on stdin is not UTF-8 text")))?;
    }
    let value = name.value(&value).map_err(bad)?;
    Ok(SecretString::from(value.to_owned()))
}

async fn secrets_set(name: &str) -> Result<u8, CliError> {
    let name = SecretName::parse(name).map_err(bad)?;
    let value = read_secret_value(&name)?;
    let name = name.as_str();
    let pool = connect().await?;
    let key = checked_key(&pool).await?;
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
        companies::set_auth_error(&pool, &realm_id, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(
            "Stored a new refresh token for realm {realm_id} ({}); the next run uses it",
            crate::store::auth::secrets::redact(value.expose_secret())
        );
    } else {
        store
            .set(name, &value)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(
            "Stored {name} ({})",
            crate::store::auth::secrets::redact(value.expose_secret())
        );
    }
    Ok(0)
}

async fn list_runs(pool: &PgPool, limit: i64) -> Result<(), CliError> {
    // A run whose worker died is shown as given up, never as running.
    runs::reap_lost_runs(pool)
        .await
        .map_err(anyhow::Error::from)?;
    let filter = crate::store::runs::views::RunFilter::default();
    let runs = crate::store::runs::views::list(pool, &filter, limit.clamp(1, 10_000))
        .await
        .map_err(anyhow::Error::from)?;
    for run in runs {
        info!(
            "{} {} {} {}..{} status={} windows={} failed_windows={} rows={} inserted={} updated={} unchanged={} trigger={} created_at={}",
            run.id,
            run.pipeline,
            run.realm_id,
            run.fecha_inicio,
            run.fecha_fin,
            run.status,
            run.windows_total,
            run.windows_failed,
            run.rows,
            run.counts.inserted,
            run.counts.updated,
            run.counts.unchanged,
            run.trigger,
            run.created_at.as_deref().unwrap_or("-"),
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
