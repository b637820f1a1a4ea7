//! Integration tests of qbo-backfill, one binary.

mod harness;
mod runbook;
mod store;
mod support;
