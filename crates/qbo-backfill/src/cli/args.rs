//! The command line's shape: the clap structures `Cli`, `Command` and their parts. Values that
//! have a domain type are parsed into it here, at the edge ([`super::parse`]), with the same
//! one-line messages the commands gave before.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use jiff::civil::Date;
use uuid::Uuid;

use super::parse::{self, OneLine, VerifyTarget};
use crate::domain::access::Scope;
use crate::domain::batch::RunTarget;
use crate::domain::secret::SecretName;
use crate::settings::ClientTuning;

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
        /// `all_backfill` / `all_incremental`: every entity's, as one batch.
        #[arg(value_parser = OneLine(parse::run_target))]
        pipeline: RunTarget,
        /// First day to load (YYYY-MM-DD, UTC).
        #[arg(long = "fecha-inicio", value_name = "YYYY-MM-DD", value_parser = OneLine(parse::fecha_inicio))]
        fecha_inicio: Option<Date>,
        /// First day NOT loaded (YYYY-MM-DD, UTC): the range is half-open.
        #[arg(long = "fecha-fin", value_name = "YYYY-MM-DD", value_parser = OneLine(parse::fecha_fin))]
        fecha_fin: Option<Date>,
        /// Print the planned cost instead of running: about how many requests it would send
        /// (from QuickBooks' counts of the spans the run would plan; the preview's own counts
        /// are a few requests), the rows, the least time Intuit's limits allow, and this
        /// month's requests against the allowance. Nothing is written; no run is created.
        #[arg(long, visible_alias = "dry-run")]
        plan: bool,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Check `raw` against QuickBooks month by month over `[fecha_inicio, fecha_fin)`: each
    /// calendar month's `COUNT(*)` (by `MetaData.CreateTime`) against the live raw rows created
    /// in it; a month that differs is repaired (missing rows loaded, rows QuickBooks no longer
    /// has marked deleted) and counted again. `reports` compares, per month and account, the
    /// Trial Balance QuickBooks answered (stored by `qb_trial_balance_backfill`) with the one
    /// computed from the transactions in `raw`; `all` does both.
    Verify {
        /// An entity as pipelines name it (`customers`, `journal_entries`, …), `reports` or
        /// `all`.
        #[arg(value_parser = OneLine(parse::verify_target))]
        entity: VerifyTarget,
        /// First day to verify (YYYY-MM-DD, UTC).
        #[arg(long = "fecha-inicio", value_name = "YYYY-MM-DD", value_parser = OneLine(parse::fecha_inicio))]
        fecha_inicio: Date,
        /// First day NOT verified (YYYY-MM-DD, UTC): the range is half-open.
        #[arg(long = "fecha-fin", value_name = "YYYY-MM-DD", value_parser = OneLine(parse::fecha_fin))]
        fecha_fin: Date,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// List every pipeline: its entity, raw table and what it windows by.
    Pipelines,
    /// Re-run only the failed or unfinished windows of a run.
    Retry {
        /// The run id printed in the summary (`run_id=…`).
        #[arg(value_parser = OneLine(parse::run_id))]
        run_id: Uuid,
        /// Request pacing and retries.
        #[command(flatten)]
        tuning: ClientTuning,
    },
    /// Serve the web UI and JSON API on port 6789, run the scheduler, and execute queued runs
    /// with `--workers N` workers.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "QBO_BACKFILL_BIND", default_value = "127.0.0.1:6789", value_parser = OneLine(parse::serve_bind))]
        bind: SocketAddr,
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
        // Kept as text: it is parsed only with `--serve`, so a stray `QBO_BACKFILL_BIND` does
        // not stop a plain `demo`.
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
        #[arg(value_parser = OneLine(parse::token_name))]
        name: String,
        /// What it may do: `read` (GETs and /metrics), `run` (also runs, retries, cancels,
        /// verifications, triggers) or `admin` (everything: secrets, companies, tokens, …).
        #[arg(long, value_name = "read|run|admin", default_value = "admin",
              value_parser = OneLine(parse::scope))]
        scope: Scope,
        /// How long it works, in days or hours (`90d`, `12h`); without it, until revoked.
        #[arg(long, value_name = "DURATION", value_parser = OneLine(parse::lifetime))]
        expires_in: Option<std::time::Duration>,
    },
    /// List tokens (names, last characters, scope and expiry only).
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
        #[arg(value_parser = OneLine(parse::secret_name))]
        name: SecretName,
        /// A value typed here by mistake: refused without being printed (argv is visible to
        /// every process and kept in shell history).
        #[arg(hide = true, num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
        stray: Vec<String>,
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
