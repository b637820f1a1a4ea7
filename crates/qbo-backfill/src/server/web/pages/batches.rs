//! Batches in the UI: the Load history form's action (`POST /batches`: every entity's backfill
//! or sync of a company as one batch), a batch's page (`/batches/{id}`: every run together, its
//! progress, refreshed while runs are active) and Retry failed runs (`POST
//! /batches/{id}/retry`), by the same rules as the API.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Fields, IdPath, field, icon, realm_field};
use crate::domain::batch::Batch;
use crate::domain::run::RunOrigin;
use crate::server::AppState;
use crate::server::api::resolve_realm;
use crate::server::batches_api::{batch_dates, enqueue_batch};
use crate::server::web::{CsrfForm, Layout, Operator, PageError, layout, render};
use crate::service::batch as batch_service;
use crate::store::runs::batches::{self, BatchView};
use crate::store::runs::views::RunView;

struct BatchRunRow {
    id: uuid::Uuid,
    short_id: String,
    status: String,
    icon: &'static str,
    pipeline: String,
    is_retry: bool,
    windows_done: i64,
    windows_total: i32,
    windows_failed: i64,
    rows: i64,
}

impl From<&RunView> for BatchRunRow {
    fn from(r: &RunView) -> Self {
        Self {
            id: r.id,
            // Ids are time-ordered (v7): runs enqueued together share their first digits.
            short_id: r.id.to_string().chars().skip(24).collect(),
            status: r.status.to_string(),
            icon: icon(r.status.as_str()),
            pipeline: r.pipeline.clone(),
            is_retry: r.retry_of.is_some(),
            windows_done: r.windows_succeeded,
            windows_total: r.windows_total,
            windows_failed: r.windows_failed,
            rows: r.rows,
        }
    }
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    layout: Layout,
    batch: BatchView,
    rows: Vec<BatchRunRow>,
    /// `running` while a run is queued or running, else `failed` if one did not succeed (and
    /// was not retried successfully), else `succeeded`.
    status: &'static str,
    icon: &'static str,
    summary: String,
    percent: i64,
    active: bool,
    can_retry: bool,
}

/// The batch's overall status: active while a run is queued or running; failed while a run
/// that was not retried did not succeed.
fn overall(batch: &BatchView) -> &'static str {
    let active = batch.runs.iter().any(|r| !r.status.is_final());
    if active {
        return "running";
    }
    let unresolved = batch
        .runs
        .iter()
        .any(|r| r.retried_by.is_none() && r.status.as_str() != "succeeded");
    if unresolved { "failed" } else { "succeeded" }
}

/// `GET /batches/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
    IdPath(id): IdPath,
) -> Result<Response, PageError> {
    let batch = batches::get(&state.pool, id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let status = overall(&batch);
    let summary = batch
        .status_counts
        .iter()
        .map(|(k, v)| format!("{}={v}", op.lang.status(k)))
        .collect::<Vec<_>>()
        .join(" · ");
    let percent = (batch.windows_succeeded * 100)
        .checked_div(batch.windows_total)
        .unwrap_or(0);
    Ok(render(&BatchPage {
        layout: layout(&state, &op, "pipelines", None).await?,
        rows: batch.runs.iter().map(BatchRunRow::from).collect(),
        status,
        icon: icon(status),
        summary,
        percent,
        active: status == "running",
        can_retry: status == "failed",
        batch,
    }))
}

/// `POST /batches`: Load history; a refusal is shown on the Pipelines page, nothing written.
pub(crate) async fn start(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let name = field(&form, "batch");
    let given = |f: &str| Some(field(&form, f)).filter(|v| !v.is_empty());
    let started = async {
        let batch: Batch = name
            .parse()
            .map_err(|e: crate::pipeline::UnknownPipeline| {
                crate::server::error::ApiError::invalid("unknown_pipeline", e.to_string())
            })?;
        let dates = batch_dates(batch, given("fecha_inicio"), given("fecha_fin"))?;
        let realm_id = resolve_realm(&state, realm_field(&form)).await?;
        let by = (RunOrigin::Ui, Some(op.session.username.as_str()));
        enqueue_batch(&state, batch, &realm_id, dates, by).await
    };
    match started.await {
        Ok(id) => Ok(Redirect::to(&format!("/batches/{id}")).into_response()),
        Err(e) => {
            let message = op.lang.refusal(e.code, &e.message);
            let refused = super::pipelines::Posted {
                pipeline: name,
                fecha_inicio: field(&form, "fecha_inicio"),
                fecha_fin: field(&form, "fecha_fin"),
                outcome: super::pipelines::Outcome::Refused(message),
            };
            super::pipelines::pipelines_page(&state, &op, Some(refused)).await
        }
    }
}

/// `POST /batches/{id}/retry`: Retry failed runs, then the batch's page.
pub(crate) async fn retry(
    State(state): State<AppState>,
    op: Operator,
    IdPath(id): IdPath,
    CsrfForm(_form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    if batches::get(&state.pool, id).await?.is_none() {
        return Err(PageError::not_found());
    }
    batch_service::retry_failed(&state.pool, id, Some(&op.session.username)).await?;
    state.wake_workers.notify_waiters();
    Ok(Redirect::to(&format!("/batches/{id}")).into_response())
}
