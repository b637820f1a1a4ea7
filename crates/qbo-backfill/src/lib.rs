//! qbo-backfill: loads QuickBooks Online history into PostgreSQL's `raw` schema in daily UTC
//! windows, idempotently and resumably.
//!
//! - `domain`: the rules about the project's own values (secret names and values), shared by
//!   every layer.
//! - `service`: the use cases the front ends share (retry, the company from the environment, the
//!   shutdown signal).
//! - `settings`: environment variables and resolved configuration.
//! - `store`: the pool, migrations, raw upserts, secrets and OAuth tokens.
//! - `pipeline`: window planning, the runner, the verifier (raw against QuickBooks, by month),
//!   run bookkeeping and operator output.
//! - `orchestrator`: the run queue, workers, triggers and the scheduler.
//! - `server`: the JSON API, health and metrics on port 6789.
//! - `cli` and `demo`: the command line.

pub mod cli;
pub mod demo;
pub mod domain;
pub mod orchestrator;
pub mod pipeline;
pub mod server;
pub mod service;
pub mod settings;
pub mod store;
