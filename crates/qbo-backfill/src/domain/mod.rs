//! The bottom layer: rules about the project's own values that every front end and the store
//! share, with no dependency on the rest of the crate (no database, no HTTP, no terminal). Parse
//! once at the edge into these types, then pass the type.

pub mod access;
pub mod alert;
pub mod batch;
pub mod catalog;
pub mod cost;
pub mod health;
pub mod pipeline;
pub mod reconcile;
pub mod run;
pub mod secret;
pub mod trigger;
pub mod webhook;
