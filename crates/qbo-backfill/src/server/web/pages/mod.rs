//! The pages, one module per resource: [`login`], [`pipelines`] (with Run once), [`runs`] (a
//! run's status, windows grid, retry, cancel, its log streaming live), [`verify`] (each entity's
//! last verification, and a form to verify one or all over a range), [`triggers`] (create with a
//! time-zone picker, enable, disable, delete) and [`secrets`] (replace only; values never sent
//! to the browser). Input is validated as the CLI and the API validate it; errors are shown
//! inline in an operator's words. This module holds what several pages share.

pub mod alerts;
pub mod batches;
pub mod login;
pub mod pipelines;
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
    selected: bool,
}

/// The options of a select, `selected` marked.
fn choices<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.to_owned(),
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
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
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
