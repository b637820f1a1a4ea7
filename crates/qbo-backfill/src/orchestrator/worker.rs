//! Workers: the [`Executor`] that executes a claimed run (a load, a verification or a report)
//! on an [`Engine`] for its company (one QuickBooks client per company per process, so every
//! run of a company in this process shares one token cache and rate limiter), the stored run log ([`StoredLog`]), and the worker loop
//! ([`run_workers`]) that claims queued runs until shutdown, reaping runs whose worker died.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tracing::{info, warn};

use crate::domain::alert::Alert;
use crate::domain::run::RunOrigin;
use crate::pipeline::events::{self, Level, RunEvent, RunEvents, TokenFailure};
use tokio_util::sync::CancellationToken;

use crate::pipeline::runner::{Engine, RunContext, RunError, RunOutcome, WriteGate};
use crate::pipeline::{DateRange, Mode, Pipeline, Window};
use crate::service::alerts;
use crate::service::company as company_service;
use crate::settings::ClientTuning;
use crate::store::auth::secrets::SecretKey;
use crate::store::runs::queue::{self, ClaimedRun, NewRun, RetryEnqueued};
use crate::store::runs::workers::{self, WorkerIdentity};
use crate::store::runs::{self, Reaped, RunStatus, RunTotals};
use crate::store::{PgTimestamp, StoreError, auth::companies, runs::logs};

/// Why a claimed run could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A database failure.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A bookkeeping failure during the run.
    #[error("{0}")]
    Run(#[from] RunError),
    /// The run's company cannot be used.
    #[error("{0}")]
    Company(String),
}

impl From<sqlx::Error> for ExecError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// Executes claimed runs in this process.
pub struct Executor {
    /// The database.
    pub pool: PgPool,
    /// The secret store's key.
    pub key: SecretKey,
    /// Pacing and retries of the QuickBooks clients.
    pub tuning: ClientTuning,
    /// How long claims last without a heartbeat.
    pub lease: Duration,
    /// The page writes of all runs in this process ([`ClientTuning::page_writes`] at once).
    writes: WriteGate,
    clients: Mutex<HashMap<String, (Vec<u8>, qbo::QboClient)>>,
}

impl Executor {
    /// An executor with no client built yet.
    #[must_use]
    pub fn new(pool: PgPool, key: SecretKey, tuning: ClientTuning, lease: Duration) -> Self {
        Self {
            pool,
            key,
            writes: WriteGate::new(tuning.page_writes),
            tuning,
            lease,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The QuickBooks client of company `realm_id`: built once per process and kept while the
    /// company's record is unchanged (new app keys or hosts build a new one), so every run of a
    /// company in this process shares one token cache and limiter. Its requests also take slots
    /// of the company's request budget in PostgreSQL, shared with every other process.
    ///
    /// # Errors
    /// No such company, or its settings are unusable.
    pub async fn client_for(&self, realm_id: &str) -> Result<qbo::QboClient, ExecError> {
        let company = companies::get(&self.pool, &self.key, realm_id)
            .await?
            .ok_or_else(|| ExecError::Company(company_service::not_connected(realm_id)))?;
        let fingerprint = company_fingerprint(&company);
        if let Some((known, client)) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(realm_id)
            && *known == fingerprint
        {
            return Ok(client.clone());
        }
        let client = company_service::company_client(&self.pool, &self.key, &company, &self.tuning)
            .map_err(ExecError::Company)?;
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(realm_id.to_owned(), (fingerprint, client.clone()));
        Ok(client)
    }

    /// Executes a claimed run to its end, its events going to `sink` and to the run's stored log.
    ///
    /// # Errors
    /// Bookkeeping failures; a run whose company is unusable is recorded failed.
    pub async fn execute(
        &self,
        claimed: ClaimedRun,
        interrupt: CancellationToken,
        sink: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, ExecError> {
        let (log, writer) = StoredLog::start(self.pool.clone(), claimed.execution.run_id);
        let events: Arc<dyn RunEvents> = Arc::new(Tee(vec![sink, log.clone()]));
        let result = self.execute_logged(claimed, interrupt, events).await;
        log.close(writer).await;
        result
    }

    async fn execute_logged(
        &self,
        claimed: ClaimedRun,
        interrupt: CancellationToken,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, ExecError> {
        let exec = claimed.execution;
        let prepared = match claimed.pipeline.parse::<Pipeline>() {
            Ok(pipeline) => self
                .client_for(&claimed.realm_id)
                .await
                .map(|client| (pipeline, client)),
            Err(e) => Err(ExecError::Company(e.to_string())),
        };
        let (pipeline, client) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                let message = e.to_string();
                events.emit(&RunEvent::Warning { message: &message });
                runs::finish_run(
                    &self.pool,
                    &exec,
                    &runs::RunEnd::bare(RunStatus::Failed, Some(&message)),
                )
                .await?;
                let alert = Alert::run_failed(
                    &claimed.realm_id,
                    exec.run_id,
                    &claimed.pipeline,
                    &message,
                    jiff::Timestamp::now(),
                );
                alerts::raise(&self.pool, &alert).await;
                return Err(e);
            }
        };
        // The runner (or verifier) takes the first access token itself, with its heartbeat
        // already running (the token lock can be held longer than a lease) and only once: a
        // refused refresh token is never sent a second time.
        // A token refused in the middle of the run raises the company's reconnect banner too.
        let watch = Arc::new(AuthWatch::default());
        let events: Arc<dyn RunEvents> = Arc::new(Tee(vec![events, watch.clone()]));
        let realm_id = claimed.realm_id.clone();
        let pipeline_name = claimed.pipeline.clone();
        let ctx = RunContext {
            execution: exec,
            pipeline,
            realm_id: claimed.realm_id,
            range: claimed.range,
            windows: claimed.windows,
        };
        let outcome = self.dispatch(client, ctx, interrupt, events).await?;
        let refused = *watch.0.lock().unwrap_or_else(PoisonError::into_inner);
        let code = refused.map(|kind| match kind {
            TokenFailure::InvalidGrant => "invalid_grant",
            _ => "invalid_client",
        });
        if let Some(code) = code {
            companies::set_auth_error(&self.pool, &realm_id, Some(code)).await?;
        } else if outcome.token_ok {
            // The credentials work: the reconnect banner of an earlier refusal goes away.
            companies::set_auth_error(&self.pool, &realm_id, None).await?;
        }
        alerts::after_run(&self.pool, &realm_id, &pipeline_name, &outcome, code).await;
        Ok(outcome)
    }

    /// Executes `ctx` with what its pipeline's mode runs on: the verifier, the report runner or
    /// the runner of loads and syncs.
    async fn dispatch(
        &self,
        client: qbo::QboClient,
        ctx: RunContext,
        interrupt: CancellationToken,
        events: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, ExecError> {
        let engine = Engine {
            pool: self.pool.clone(),
            client,
            concurrency: self.tuning.window_concurrency(),
            interrupt,
            lease: self.lease,
            writes: self.writes.clone(),
        };
        Ok(match ctx.pipeline.mode() {
            Mode::Verify => engine.verify(ctx, events).await?,
            Mode::Report => engine.read_reports(ctx, events).await?,
            Mode::Backfill | Mode::Incremental => {
                engine.load(ctx, events, self.tuning.span_max_pages).await?
            }
        })
    }
}

/// Remembers whether Intuit refused the company's tokens during a run.
#[derive(Default)]
struct AuthWatch(Mutex<Option<TokenFailure>>);

impl RunEvents for AuthWatch {
    fn emit(&self, event: &RunEvent<'_>) {
        if let RunEvent::TokenFailed { kind, .. } = event
            && *kind != TokenFailure::Other
        {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(*kind);
        }
    }
}

/// A digest of what a client is built from (never kept in clear: it includes the secret).
fn company_fingerprint(company: &companies::Company) -> Vec<u8> {
    use secrecy::ExposeSecret as _;
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [
        company.client_id.as_str(),
        company.client_secret.expose_secret(),
        company.api_base_url.as_ref().map_or("", url::Url::as_str),
        company.token_url.as_ref().map_or("", url::Url::as_str),
        &format!("{:?}{:?}", company.environment, company.minor_version),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().to_vec()
}

/// Sends every event to several sinks.
pub struct Tee(pub Vec<Arc<dyn RunEvents>>);

impl RunEvents for Tee {
    fn emit(&self, event: &RunEvent<'_>) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

/// Prints events through `tracing` (a worker's output), nothing else.
pub struct LogEvents;

impl RunEvents for LogEvents {
    fn emit(&self, event: &RunEvent<'_>) {
        events::log_lines(event);
    }
}

/// Stores a run's lines in `ops.run_logs`, batched (a background task writes them every 200 ms
/// and once more when the run ends), so the API and UI can follow the run live.
pub struct StoredLog {
    pool: PgPool,
    run_id: uuid::Uuid,
    /// Lines not written yet, each with when it happened.
    pending: Mutex<Vec<(Level, String, jiff::Timestamp)>>,
    closed: CancellationToken,
}

impl StoredLog {
    /// Starts the log of `run_id` and its writer task.
    #[must_use]
    pub fn start(pool: PgPool, run_id: uuid::Uuid) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let log = Arc::new(Self {
            pool,
            run_id,
            pending: Mutex::new(Vec::new()),
            closed: CancellationToken::new(),
        });
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        () = log.closed.cancelled() => {}
                    }
                    log.flush().await;
                    if log.closed.is_cancelled() {
                        log.flush().await;
                        return;
                    }
                }
            })
        };
        (log, writer)
    }

    async fn flush(&self) {
        let batch =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return;
        }
        let levels: Vec<&str> = batch.iter().map(|(l, _, _)| l.as_str()).collect();
        let texts: Vec<String> = batch.iter().map(|(_, t, _)| t.clone()).collect();
        let ats: Vec<PgTimestamp> = batch.iter().map(|(_, _, at)| PgTimestamp(*at)).collect();
        if let Err(e) = logs::append(&self.pool, self.run_id, &levels, &texts, &ats).await {
            warn!(
                "Cannot store {} log lines of run {}: {e}",
                texts.len(),
                self.run_id
            );
        }
    }

    /// Writes what is pending and stops the writer.
    pub async fn close(&self, writer: tokio::task::JoinHandle<()>) {
        self.closed.cancel();
        let _ = writer.await;
    }
}

impl RunEvents for StoredLog {
    fn emit(&self, event: &RunEvent<'_>) {
        let lines = events::lines(event);
        if !lines.is_empty() {
            let at = jiff::Timestamp::now();
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(lines.into_iter().map(|(level, text)| (level, text, at)));
        }
    }
}

/// How workers behave.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Workers in this process (runs executed at once).
    pub workers: usize,
    /// How often an idle worker looks for a queued run.
    pub poll: Duration,
}

/// Runs `settings.workers` workers until `shutdown` is raised: each claims the oldest queued run
/// (`SKIP LOCKED`), executes it, and looks again; every few seconds runs whose worker died are
/// given back to the queue. On shutdown no new run is claimed, runs in flight stop gracefully
/// (pages in flight commit or roll back whole) and go back to the queue.
pub async fn run_workers(
    executor: Arc<Executor>,
    identity: WorkerIdentity,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) {
    run_workers_woken(
        executor,
        identity,
        settings,
        shutdown,
        Arc::new(tokio::sync::Notify::new()),
    )
    .await;
}

/// [`run_workers`], with idle workers also woken by `wake` (the API notifies it on each new run).
pub async fn run_workers_woken(
    executor: Arc<Executor>,
    identity: WorkerIdentity,
    settings: WorkerSettings,
    shutdown: CancellationToken,
    wake: Arc<tokio::sync::Notify>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(reaper_loop(
        executor.clone(),
        identity.clone(),
        shutdown.clone(),
    ));
    for n in 0..settings.workers {
        let executor = executor.clone();
        let identity = identity.clone();
        let shutdown = shutdown.clone();
        let wake = wake.clone();
        tasks.spawn(async move {
            worker_loop(n, &executor, &identity, settings.poll, &shutdown, &wake).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let _ = workers::stopped(&executor.pool, identity.id).await;
}

/// Tells the operator what the reaper did with a run whose worker was gone.
fn tell_reaped(reaped: &Reaped) {
    let id = reaped.run_id;
    match reaped.status {
        RunStatus::Queued => info!("Run {id} lost its worker; back in the queue"),
        RunStatus::Cancelled => warn!(
            "Run {id} cancelled: its worker stopped before it finished (it had been asked to cancel, or was queued for a command line that stopped)"
        ),
        _ => warn!(
            "Run {id} stopped without finishing; marked interrupted (finish it with: qbo-backfill retry {id})"
        ),
    }
}

async fn reaper_loop(
    executor: Arc<Executor>,
    identity: WorkerIdentity,
    shutdown: CancellationToken,
) {
    loop {
        let _ = workers::heartbeat(&executor.pool, identity.id).await;
        match runs::reap_lost_runs(&executor.pool).await {
            Ok(reaped) => reaped.iter().for_each(tell_reaped),
            Err(e) => warn!("Cannot reap lost runs: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn worker_loop(
    n: usize,
    executor: &Executor,
    identity: &WorkerIdentity,
    poll: Duration,
    shutdown: &CancellationToken,
    wake: &tokio::sync::Notify,
) {
    while !shutdown.is_cancelled() {
        let claimed = match executor.pool.acquire().await {
            Ok(mut conn) => queue::claim_next(&mut conn, identity, executor.lease).await,
            Err(e) => Err(e),
        };
        match claimed {
            Ok(Some(run)) => {
                let run_id = run.execution.run_id;
                info!(
                    "Worker {n} claimed run {run_id} ({} {}..{})",
                    run.pipeline, run.range.fecha_inicio, run.range.fecha_fin
                );
                if let Err(e) = executor
                    .execute(run, shutdown.clone(), Arc::new(LogEvents))
                    .await
                {
                    warn!("Run {run_id} could not be executed: {e}");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => warn!("Cannot claim a queued run: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = wake.notified() => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// A run executed by this very process (the CLI's `run`, `retry` and `demo`).
#[derive(Debug, Clone)]
pub struct LocalRun<'a> {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The company.
    pub realm_id: &'a str,
    /// The range as asked.
    pub range: DateRange,
    /// The windows to load.
    pub windows: Vec<Window>,
    /// What started it (the CLI, a retry, the demo).
    pub trigger: RunOrigin,
    /// Who: the command line's system user, if known.
    pub started_by: Option<String>,
    /// The run it retries.
    pub retry_of: Option<uuid::Uuid>,
}

impl Executor {
    /// Enqueues `run` and claims it in the same transaction (so no worker can take it), then
    /// executes it here as a worker of its own. If this process dies, the run becomes
    /// `interrupted` and `qbo-backfill retry` finishes it. Runs whose worker died are reaped
    /// first, so nothing dead stays `running`.
    ///
    /// # Errors
    /// Bookkeeping failures.
    pub async fn run_here(
        &self,
        run: LocalRun<'_>,
        interrupt: CancellationToken,
        sink: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, ExecError> {
        let identity = self.start_local_worker().await?;
        let mut tx = self.pool.begin().await?;
        let enqueued = queue::enqueue_retry(
            &mut tx,
            &NewRun {
                pipeline: run.pipeline,
                realm_id: run.realm_id,
                range: run.range,
                windows: &run.windows,
                trigger: run.trigger,
                trigger_id: None,
                started_by: run.started_by.as_deref(),
                retry_of: run.retry_of,
                requeue_on_loss: false,
            },
        )
        .await?;
        let run_id = match enqueued {
            RetryEnqueued::Queued(run_id) => run_id,
            RetryEnqueued::AlreadyRetrying(retry) => {
                let _ = workers::stopped(&self.pool, identity.id).await;
                return Err(ExecError::Company(format!(
                    "run {} is being retried already by run {retry}; follow that run",
                    run.retry_of.unwrap_or_default()
                )));
            }
        };
        let outcome = self
            .claim_and_execute(tx, run_id, &identity, interrupt, sink)
            .await;
        let _ = workers::stopped(&self.pool, identity.id).await;
        outcome
    }

    /// Executes the queued runs `run_ids` (a batch this process enqueued as `identity`, from
    /// [`Self::start_local_worker`]) here, one after another, each claimed as
    /// [`Self::run_here`] claims its run; stops at an interrupt, cancelling the runs not
    /// started. Returns the outcome of each run started. Were this process to die, the next
    /// reaper cancels the runs still queued for it ([`runs::reap_lost_runs`]).
    ///
    /// # Errors
    /// Bookkeeping failures.
    pub async fn run_queued_here(
        &self,
        identity: &WorkerIdentity,
        run_ids: &[uuid::Uuid],
        interrupt: CancellationToken,
        sink: Arc<dyn RunEvents>,
    ) -> Result<Vec<RunOutcome>, ExecError> {
        let mut outcomes = Vec::with_capacity(run_ids.len());
        for &run_id in run_ids {
            if interrupt.is_cancelled() {
                queue::cancel_run(&self.pool, run_id).await?;
                continue;
            }
            let mut tx = self.pool.begin().await?;
            let outcome = match queue::claim_run(&mut tx, run_id, identity, self.lease).await? {
                Some(claimed) => {
                    tx.commit().await?;
                    self.execute(claimed, interrupt.clone(), sink.clone())
                        .await?
                }
                None => {
                    drop(tx);
                    self.follow(run_id, identity, &interrupt).await?
                }
            };
            outcomes.push(outcome);
        }
        let _ = workers::stopped(&self.pool, identity.id).await;
        Ok(outcomes)
    }

    /// Waits for run `run_id`, taken by another worker (a `serve` or `worker` sharing the
    /// queue), to end, telling the operator once; its outcome as stored (`None` status when
    /// interrupted first). This process's worker (`identity`) keeps beating meanwhile, so the
    /// runs still queued for it are not taken for a dead command line's.
    async fn follow(
        &self,
        run_id: uuid::Uuid,
        identity: &WorkerIdentity,
        interrupt: &CancellationToken,
    ) -> Result<RunOutcome, ExecError> {
        let started = std::time::Instant::now();
        tracing::info!("Run {run_id} was taken by another worker; waiting for it to end");
        let status = loop {
            let _ = workers::heartbeat(&self.pool, identity.id).await;
            let record = runs::load_run(&self.pool, run_id).await?;
            match record.map(|r| r.status) {
                Some(status) if status.is_final() => break Some(status),
                None => break Some(RunStatus::Cancelled),
                Some(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = interrupt.cancelled() => break Some(RunStatus::Interrupted),
            }
        };
        let view = crate::store::runs::views::get(&self.pool, run_id).await?;
        Ok(RunOutcome {
            run_id,
            status,
            totals: RunTotals {
                rows: view.map_or(0, |v| u64::try_from(v.rows).unwrap_or(0)),
                ..RunTotals::default()
            },
            failed_days: Vec::new(),
            duration: started.elapsed(),
            fatal: None,
            token_ok: true,
        })
    }

    /// Registers this process as a worker of its own and reaps runs whose worker died, so
    /// nothing dead stays `running`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn start_local_worker(&self) -> Result<WorkerIdentity, ExecError> {
        let identity = WorkerIdentity::current();
        workers::register(&self.pool, &identity, "cli").await?;
        runs::reap_lost_runs(&self.pool)
            .await?
            .iter()
            .for_each(tell_reaped);
        Ok(identity)
    }

    /// Claims queued run `run_id` in `tx` (so no worker can take it), commits, and executes it
    /// here.
    async fn claim_and_execute(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        run_id: uuid::Uuid,
        identity: &WorkerIdentity,
        interrupt: CancellationToken,
        sink: Arc<dyn RunEvents>,
    ) -> Result<RunOutcome, ExecError> {
        let claimed = queue::claim_run(&mut tx, run_id, identity, self.lease)
            .await?
            .ok_or_else(|| ExecError::Company(format!("run {run_id} could not be claimed")))?;
        tx.commit().await?;
        self.execute(claimed, interrupt, sink).await
    }
}
