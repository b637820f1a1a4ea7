//! The use cases the command line, the JSON API and the web pages share, each written once:
//! retrying a run, a batch of every entity's runs, the planned cost of either before it starts, firing due triggers, logging in,
//! reconciling the reports, listing the secrets, alert channels and the delivery of alerts, the
//! company the environment describes, the process's shutdown signal. The front ends parse their
//! input, call these, and present the answer in their own way; the rules (what can be retried,
//! what a secret may be) live here or in [`crate::domain`], never in a front end.

pub mod alerts;
pub mod allowance;
pub mod batch;
pub mod company;
pub mod dashboard;
pub mod login;
pub mod preview;
pub mod reconcile;
pub mod retry;
pub mod secrets;
pub mod shutdown;
pub mod triggers;
pub mod webhooks;
