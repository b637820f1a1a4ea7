//! Planned costs in the JSON API: `POST /api/v1/runs/preview` takes the body of `POST
//! /api/v1/runs` (a pipeline, or `all_backfill` / `all_incremental`) and answers `200
//! {"preview": …}` with what the run or batch would cost ([`crate::service::preview`]), creating
//! nothing; `POST /api/v1/batches/preview` is the same for batches only. Both need the `run`
//! scope: the preview's counts spend the company's requests. Input is validated as for creating
//! the run; refused input costs no request. The pages' Preview cost buttons use [`estimate`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::api::{CreateRunBody, resolve_realm, validate_run};
use super::batches_api::{batch_dates, refused};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::batch::{Batch, RunTarget};
use crate::domain::pipeline::DateRange;
use crate::pipeline::SinceError;
use crate::service::company::CompanyError;
use crate::service::preview::{Preview, PreviewAsk, PreviewError, RunEstimate, preview};

/// A pipeline or batch name and its dates, validated as creating the run validates them.
pub(crate) fn validate_target(
    name: &str,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
) -> Result<(RunTarget, Option<DateRange>), ApiError> {
    fn given(d: Option<&str>) -> Option<&str> {
        d.map(str::trim).filter(|d| !d.is_empty())
    }
    if let Ok(batch) = name.trim().parse::<Batch>() {
        let dates = batch_dates(batch, given(fecha_inicio), given(fecha_fin))?;
        return Ok((RunTarget::Batch(batch), dates));
    }
    let (pipeline, dates) = validate_run(name, fecha_inicio, fecha_fin)?;
    Ok((RunTarget::Pipeline(pipeline), dates))
}

/// The refusal or failure of a preview as the API says it.
fn api_error(e: PreviewError) -> ApiError {
    match e {
        PreviewError::Since(SinceError::Database(e)) => ApiError::from(e),
        PreviewError::Since(SinceError::NoCursor { .. }) => {
            ApiError::invalid("no_cursor", e.to_string())
        }
        PreviewError::Since(_) => ApiError::invalid("invalid_range", e.to_string()),
        PreviewError::Batch(e) => refused(e),
        PreviewError::Range(_) => ApiError::invalid("invalid_range", e.to_string()),
        PreviewError::Company(CompanyError::Store(e)) => ApiError::internal(&e),
        PreviewError::Company(CompanyError::Unusable(message)) => {
            ApiError::conflict("company_unusable", message)
        }
        PreviewError::QuickBooks(ref q) if q.is_terminal_auth() => {
            ApiError::conflict("quickbooks_refused", e.to_string())
        }
        PreviewError::QuickBooks(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "quickbooks_unavailable",
            e.to_string(),
        ),
        PreviewError::Database(e) => ApiError::from(e),
    }
}

/// The planned cost of `target` for the company named (or the only one): the one preview of
/// the API and the pages.
pub(crate) async fn estimate(
    state: &AppState,
    target: RunTarget,
    dates: Option<DateRange>,
    realm_id: Option<&str>,
) -> Result<Preview, ApiError> {
    let realm_id = resolve_realm(state, realm_id).await?;
    let allowance = crate::service::allowance::configured().unwrap_or_default();
    let ask = PreviewAsk {
        target,
        realm_id: &realm_id,
        dates,
    };
    preview(&state.pool, &state.key, ask, &state.tuning, allowance)
        .await
        .map_err(api_error)
}

fn run_json(run: &RunEstimate) -> Value {
    let mut v = json!({
        "pipeline": run.pipeline.name(),
        "fecha_inicio": run.range.fecha_inicio.to_string(),
        "fecha_fin": run.range.fecha_fin.to_string(),
        "windows": run.windows,
        "requests": run.requests,
        "rows": run.rows,
        "estimate": run.basis.as_str(),
    });
    if let Some(load) = &run.load {
        v["counts"] = json!(load.counts);
        v["pages"] = json!(load.pages);
        v["cdc"] = json!(load.cdc);
        v["spans"] = json!(load.spans);
        v["days_alone"] = json!(load.days_alone);
    }
    v
}

/// `{"preview": …}`.
fn preview_json(p: &Preview) -> Value {
    let [per_second, per_minute, in_flight] = p.limits;
    let month = &p.month;
    json!({"preview": {
        "target": p.target.name(),
        "realm_id": p.realm_id,
        "requests": p.requests,
        "rows": p.rows,
        "estimate": p.basis.as_str(),
        "duration_at_least_s": p.least_duration.as_secs(),
        "preview_requests": p.preview_requests,
        "limits": {
            "requests_per_second": per_second,
            "requests_per_minute": per_minute,
            "max_in_flight": in_flight,
        },
        "span_max_pages": p.span_max_pages,
        "page_size": p.page_size,
        "month": {
            "month": month.month,
            "requests": month.spent,
            "after_run": month.after(),
            "allowance": month.allowance.monthly,
            "percent_after": month.percent_after(),
            "reaches_80_percent": month.reaches_warning(),
            "exceeds_allowance": month.exceeds(),
        },
        "runs": p.runs.iter().map(run_json).collect::<Vec<_>>(),
    }})
}

/// `POST /api/v1/runs/preview`.
pub(crate) async fn preview_run(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRunBody>,
) -> Result<Response, ApiError> {
    let (target, dates) = validate_target(
        &body.pipeline,
        body.fecha_inicio.as_deref(),
        body.fecha_fin.as_deref(),
    )?;
    let p = estimate(&state, target, dates, body.realm_id.as_deref()).await?;
    Ok(Json(preview_json(&p)).into_response())
}

/// `POST /api/v1/batches/preview`: as [`preview_run`], for `all_backfill` and
/// `all_incremental` only (`422 unknown_pipeline` otherwise).
pub(crate) async fn preview_batch(
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateRunBody>,
) -> Result<Response, ApiError> {
    if body.pipeline.trim().parse::<Batch>().is_err() {
        return Err(ApiError::invalid(
            "unknown_pipeline",
            format!(
                "`{}` is not a batch: use all_backfill or all_incremental (a pipeline's preview is POST /api/v1/runs/preview)",
                crate::pipeline::echo(&body.pipeline)
            ),
        ));
    }
    preview_run(state, ApiJson(body)).await
}
