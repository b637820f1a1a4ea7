//! QuickBooks Online simulator.
//!
//! A faithful stand-in for the QBO Accounting API used by tests and benchmarks: OAuth2 consent
//! (authorization code) and refresh with rotation, the query language and its paging quirks, Intuit's envelopes and fault bodies,
//! per-company throttling with the XML 429, and injectable faults. Use it in-process
//! ([`SimState`], [`app`], [`serve`]) or as the `qbo-sim` binary.
//!
//! Module map: `config` (settings), `data` (generated rows; Customer, Item and Invoice
//! profiles), `lists` / `txns` (the other 23 entities with data), `company` (CompanyInfo and
//! Preferences), `render` / `json` / `time` (output), `query` (parser), `engine` (execution),
//! `ledger` (the books: balanced postings of every transaction), `reports` / `report_rows` (the
//! financial reports), `batch` (the batch endpoint), `auth` (tokens and codes), `authorize` (consent endpoint),
//! `oidc` (discovery document), `limits` (throttling), `faults` (error bodies), `state` (control
//! surface), `webhooks` (signed change notifications), `http` (server).

mod auth;
mod authorize;
mod batch;
mod company;
mod config;
mod data;
mod engine;
mod faults;
mod form;
mod http;
mod json;
mod ledger;
mod limits;
mod lists;
mod oidc;
pub mod query;
mod render;
mod report_rows;
mod reports;
mod rng;
mod state;
mod time;
mod txns;
pub mod webhooks;

pub use config::{FaultConfig, Rotation, SimConfig, SimLimits};
pub use data::{DATA_ENTITIES, LIST_ENTITIES};
pub use http::{RunningSim, app, serve};
pub use state::{SimState, SimStats};
pub use webhooks::{WebhookConfig, WebhookFormat, WebhookStats};

/// Errors of the simulator's control surface.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The entity name is not one the simulator holds data of (see [`DATA_ENTITIES`]).
    #[error("unknown entity: {0}")]
    UnknownEntity(String),
    /// No row with that id.
    #[error("{entity} with Id {id} not found")]
    NotFound {
        /// Entity name as given.
        entity: String,
        /// Id as given.
        id: String,
    },
    /// Only list entities (see [`LIST_ENTITIES`]) can be deactivated.
    #[error("{0} is not a list entity and cannot be deactivated")]
    NotListEntity(String),
    /// List entities cannot be deleted: QuickBooks Online makes them inactive instead (see
    /// [`SimState::deactivate`]).
    #[error(
        "{0} is a list entity: QuickBooks Online does not delete list entities, it makes them \
         inactive (use deactivate)"
    )]
    ListEntityNotDeletable(String),
    /// Only the amounts of Purchase, Deposit and Transfer can be changed.
    #[error("the amounts of {0} cannot be changed (Purchase, Deposit and Transfer can)")]
    AmountNotChangeable(String),
    /// Binding or serving failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
