//! The pages, one module per resource: [`login`], [`dashboard`] (the home page: each company's
//! copy at a glance), [`pipelines`] (with Run once, and [`preview`]: its planned cost), [`runs`] (a
//! run's status, windows grid, retry, cancel, its log streaming live), [`verify`] (each entity's
//! last verification, and a form to verify one or all over a range), [`triggers`] (create with a
//! time-zone picker, enable, disable, delete) and [`secrets`] (replace only; values never sent
//! to the browser). Input is validated as the CLI and the API validate it; errors are shown
//! inline in an operator's words. This module holds what several pages share.

pub mod alerts;
pub mod batches;
pub mod dashboard;
pub mod login;
pub mod pipelines;
pub mod preview;
pub mod runs;
pub mod secrets;
pub mod triggers;
pub mod verify;

use std::collections::HashMap;

use axum::response::{IntoResponse, Redirect, Response};

use super::PageError;
use crate::pipeline::Pipeline;
use crate::server::AppState;
use crate::store::runs::queue::{self, NewRun};

/// A posted form or a query string, by field name.
pub(crate) type Fields = HashMap<String, String>;

/// An `<option>` of a select.
pub(crate) struct Choice {
    value: String,
    /// What the option shows (the value, or its word in the page's language).
    label: String,
    selected: bool,
}

impl Choice {
    /// The same option labelled by `label` (the value's word in the page's language).
    fn labelled(self, label: impl FnOnce(&str) -> String) -> Self {
        Self {
            label: label(&self.value),
            ..self
        }
    }
}

/// The options of a select, `selected` marked, each showing its value.
fn choices<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.to_owned(),
            label: v.to_owned(),
            selected: v == selected,
        })
        .collect()
}

/// Every pipeline as an option, `selected` marked.
fn pipeline_choices(selected: &str) -> Vec<Choice> {
    choices(Pipeline::all().map(Pipeline::name), selected)
}

/// What a trigger can run, as options: the batches (`all_backfill`, `all_incremental`), then
/// every pipeline; `selected` marked.
fn target_choices(selected: &str) -> Vec<Choice> {
    let batches = crate::domain::batch::Batch::ALL.map(crate::domain::batch::Batch::name);
    choices(
        batches
            .into_iter()
            .chain(Pipeline::all().map(Pipeline::name)),
        selected,
    )
}

/// A form field, trimmed (empty when absent).
fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.get(name).map_or("", |v| v.trim())
}

/// The company a form names (`realm_id`), if it names one.
fn realm_field(form: &Fields) -> Option<&str> {
    form.get("realm_id").map(String::as_str)
}

/// The icon that goes with a status (never colour alone).
fn icon(status: &str) -> &'static str {
    match status {
        "succeeded" | "fired" => "✓",
        "failed" => "✕",
        "running" => "▶",
        "queued" => "…",
        "interrupted" | "missed" => "⏸",
        "cancelled" | "disabled" => "⊘",
        "scheduled" => "◷",
        _ => "○",
    }
}

/// A UTC time as shown: `2026-01-31 15:00:00Z` (no fraction).
fn shown(t: Option<&str>) -> String {
    shown_time(t.and_then(|t| t.parse::<jiff::Timestamp>().ok()))
}

/// A UTC time as shown, or `—`.
fn shown_time(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// The connected companies' realm ids.
async fn company_ids(state: &AppState) -> Result<Vec<String>, PageError> {
    Ok(crate::store::auth::companies::list(&state.pool)
        .await?
        .into_iter()
        .map(|c| c.realm_id)
        .collect())
}

/// Enqueues a run, wakes the workers and shows the run's page.
async fn enqueue_and_show(state: &AppState, new: &NewRun<'_>) -> Result<Response, PageError> {
    let mut tx = state.pool.begin().await?;
    let id = queue::enqueue_run(&mut tx, new).await?;
    tx.commit().await?;
    state.wake_workers.notify_waiters();
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

/// The id in the path's `{id}` (a run's, a batch's): the 404 page when it is not an id.
pub(crate) struct IdPath(pub(crate) uuid::Uuid);

impl axum::extract::FromRequestParts<AppState> for IdPath {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, PageError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| PageError::not_found())?;
        id.parse::<uuid::Uuid>()
            .map(Self)
            .map_err(|_| PageError::not_found())
    }
}
