//! The command line: `run` (and its `--plan`), `verify`, `retry`, `serve`, `worker`, `api-tokens`, `secrets`,
//! `runs`, `migrate` and `demo`, with the contract's exit statuses (0 success, 1 failed windows or a fatal
//! error, 2 bad input with one line saying what is wrong and nothing written, 130 interrupted).
//!
//! - `args`: the clap structures; `parse`: argv's text into domain types, at the edge.
//! - `setup`: the database, the secret key and the company a command works with.
//! - `commands`: one module per use case.
//! - here: dispatch, [`CliError`] and how a failure is reported.

mod args;
mod commands;
mod parse;
mod setup;

use tracing::{error, info};

pub use args::{ApiTokensAction, Cli, Command, QueueTuning, SecretsAction};
use commands::{api_tokens, listings, plan, retry, run, secrets, serve, verify};
pub use parse::VerifyTarget;

use crate::settings::ConfigError;

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
        fail(e)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::BadInput(e.0)
    }
}

/// Bad input (exit 2) saying `e`.
fn bad(e: impl std::fmt::Display) -> CliError {
    CliError::BadInput(e.to_string())
}

/// A failure (exit 1) saying `e`.
fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Other(anyhow::anyhow!("{e}"))
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
            plan: true,
            tuning,
        } => plan::plan(pipeline, fecha_inicio, fecha_fin, &tuning).await,
        Command::Run {
            pipeline,
            fecha_inicio,
            fecha_fin,
            plan: false,
            tuning,
        } => run::run_target(pipeline, fecha_inicio, fecha_fin, &tuning).await,
        Command::Verify {
            entity,
            fecha_inicio,
            fecha_fin,
            tuning,
        } => verify::verify(&entity, fecha_inicio, fecha_fin, &tuning).await,
        Command::Pipelines => {
            listings::list_pipelines();
            Ok(0)
        }
        Command::Retry { run_id, tuning } => retry::retry(run_id, &tuning).await,
        Command::Serve {
            bind,
            workers,
            trigger_grace_s,
            queue,
            tuning,
        } => serve::serve(bind, workers, trigger_grace_s, &queue, tuning).await,
        Command::Worker {
            workers,
            queue,
            tuning,
        } => serve::worker(workers, &queue, tuning).await,
        Command::ApiTokens { action } => api_tokens::api_tokens(action).await,
        Command::Secrets { action } => secrets::secrets(action).await,
        Command::Runs { limit } => listings::list_runs(limit).await,
        Command::Migrate => {
            setup::connect().await?;
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
            let size = crate::demo::DemoSize {
                customers,
                items,
                invoices,
            };
            demo(size, serve.then_some(bind.as_str())).await
        }
    }
}

/// `demo`, listening on `bind` afterwards when given (`--serve`).
async fn demo(size: crate::demo::DemoSize, bind: Option<&str>) -> Result<u8, CliError> {
    let bind = bind
        .map(|text| parse::bind(text, "127.0.0.1:6789"))
        .transpose()
        .map_err(CliError::BadInput)?;
    crate::demo::run(size, bind).await.map_err(CliError::Other)
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
