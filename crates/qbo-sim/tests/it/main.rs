//! Integration tests of qbo-sim over real HTTP (reqwest against `serve` on port 0).

// Helpers shared by the tests panic on failure exactly like the `#[test]` functions calling
// them (which clippy.toml already allows to unwrap).
#![allow(clippy::unwrap_used)]

mod batch;
mod common;
mod connectors;
mod entities;
mod envelopes;
mod faults;
mod oauth_code;
mod parser;
mod peer_clients;
mod queries;
mod reports;
mod tokens;
mod webhooks;
