//! Integration tests of qbo-backfill, one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod batches;
mod browser;
mod browser_languages;
mod budget;
mod claims;
mod deploy;
mod frontdoor;
mod harness;
mod history;
mod hostile;
mod layers;
mod page_writes;
mod payloads;
mod preview;
mod proof;
mod reconcile;
mod report_pipelines;
mod reports;
mod runbook;
mod runbooks;
mod server;
mod service;
mod store;
mod support;
mod sync;
mod trial_balance;
mod triggers;
mod verify;
mod webhooks;
