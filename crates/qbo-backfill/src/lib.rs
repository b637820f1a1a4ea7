//! qbo-backfill: loads QuickBooks Online history into PostgreSQL's `raw` schema in daily UTC
//! windows, idempotently and resumably.
//!
//! - `settings`: environment variables and resolved configuration.
//! - `store`: the pool, migrations, raw upserts, secrets and OAuth tokens.
//! - `pipeline`: window planning, the runner, run bookkeeping and operator output.
//! - `cli` and `demo`: the command line.

pub mod cli;
pub mod demo;
pub mod pipeline;
pub mod settings;
pub mod store;
