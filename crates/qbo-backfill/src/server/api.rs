//! The JSON API under `/api/v1` (the contract's "Server" section): runs (start, list, read,
//! logs, retry, cancel), verifications (`POST /api/v1/verify`), triggers and secrets. Input is validated exactly as the CLI validates it;
//! every error is an [`ApiError`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Caller, RunId, path_param};
use crate::domain::batch::Batch;
use crate::domain::reconcile::TRIAL_BALANCE_PIPELINE;
use crate::domain::run::RunOrigin;
use crate::domain::secret::SecretName;
use crate::pipeline::{DateRange, Mode, Pipeline, SinceError, Window, echo};
use crate::service::reconcile::{ReconcileError, months_of, reconcile_trial_balances};
use crate::service::retry::{RetryRefusal, plan_retry, queue_retry};
use crate::store::auth::companies::{self, NoDefault};
use crate::store::runs::logs;
use crate::store::runs::queue::{self, CancelOutcome, NewRun};
use crate::store::runs::views::{self, RunFilter};
use crate::store::runs::{self, RunStatus};

/// Validates a pipeline name and its dates exactly as the CLI does. Both dates absent (or
/// empty) is valid for an incremental pipeline only: its range then comes from its cursor
/// ([`range_for`]).
pub(crate) fn validate_run(
    pipeline: &str,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
) -> Result<(Pipeline, Option<DateRange>), ApiError> {
    let pipeline: Pipeline = pipeline
        .parse()
        .map_err(|e: crate::pipeline::UnknownPipeline| {
            ApiError::invalid("unknown_pipeline", e.to_string())
        })?;
    let given = |d: Option<&str>| d.map(str::trim).filter(|d| !d.is_empty()).is_some();
    let (fecha_inicio, fecha_fin) = match (fecha_inicio, fecha_fin) {
        (i, f) if !given(i) && !given(f) => {
            if pipeline.mode() == Mode::Incremental {
                return Ok((pipeline, None));
            }
            return Err(ApiError::invalid(
                "invalid_request",
                SinceError::DatesRequired(pipeline).to_string(),
            ));
        }
        (Some(i), Some(f)) => (i, f),
        _ => {
            return Err(ApiError::invalid(
                "invalid_request",
                SinceError::OneDate.to_string(),
            ));
        }
    };
    let range = DateRange::new(
        crate::pipeline::parse_date("fecha_inicio", fecha_inicio)
            .map_err(|e| ApiError::invalid("invalid_date", e.to_string()))?,
        crate::pipeline::parse_date("fecha_fin", fecha_fin)
            .map_err(|e| ApiError::invalid("invalid_date", e.to_string()))?,
    )
    .map_err(|e| ApiError::invalid("invalid_range", e.to_string()))?;
    range
        .windows()
        .map_err(|e| ApiError::invalid("invalid_range", e.to_string()))?;
    Ok((pipeline, Some(range)))
}

/// The range and windows of a validated run: the dates given, or for an incremental sync
/// without dates, from its cursor (`422 no_cursor` when it has never synced).
pub(crate) async fn range_for(
    state: &AppState,
    realm_id: &str,
    pipeline: Pipeline,
    dates: Option<DateRange>,
) -> Result<(DateRange, Vec<Window>), ApiError> {
    let range = crate::pipeline::range_or_since_cursor(
        &state.pool,
        realm_id,
        pipeline,
        dates,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        SinceError::Database(e) => ApiError::from(e),
        SinceError::NoCursor { .. } => ApiError::invalid("no_cursor", e.to_string()),
        other => ApiError::invalid("invalid_range", other.to_string()),
    })?;
    let windows = pipeline
        .windows(&range)
        .map_err(|e| ApiError::invalid("invalid_range", e.to_string()))?;
    Ok((range, windows))
}

/// The company a request names, or the only one connected.
pub(crate) async fn resolve_realm(
    state: &AppState,
    realm_id: Option<&str>,
) -> Result<String, ApiError> {
    match realm_id.map(str::trim).filter(|r| !r.is_empty()) {
        Some(realm) => {
            let known = companies::list(&state.pool)
                .await?
                .into_iter()
                .any(|c| c.realm_id == realm);
            if known {
                Ok(realm.to_owned())
            } else {
                Err(ApiError::invalid(
                    "unknown_company",
                    format!("no connected company with realm_id `{}`", echo(realm)),
                ))
            }
        }
        None => match companies::default_realm(&state.pool).await? {
            Ok(realm) => Ok(realm),
            Err(NoDefault::None) => {
                match crate::service::company::company_from_environment(&state.pool, &state.key)
                    .await
                {
                    Ok(Some(realm)) => Ok(realm),
                    _ => Err(ApiError::conflict(
                        "no_company",
                        "no QuickBooks company is connected yet: use Connect QuickBooks, or store QBO_CLIENT_ID, QBO_CLIENT_SECRET, QBO_REALM_ID and QBO_REFRESH_TOKEN (environment or secrets)",
                    )),
                }
            }
            Err(NoDefault::Several) => Err(ApiError::invalid(
                "realm_id_required",
                "several companies are connected: name one with realm_id",
            )),
        },
    }
}

/// Enqueues a run for workers and answers `202` with it.
pub(crate) async fn enqueue(state: &AppState, run: NewRun<'_>) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id = queue::enqueue_run(&mut tx, &run).await?;
    tx.commit().await?;
    queued(state, id).await
}

/// Wakes the workers for run `id`, just queued, and answers `202` with it.
async fn queued(state: &AppState, id: Uuid) -> Result<Response, ApiError> {
    state.wake_workers.notify_waiters();
    let view = views::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("the run just created"))?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
/// The body of `POST /api/v1/runs`.
pub(crate) struct CreateRunBody {
    pub(crate) pipeline: String,
    #[serde(default)]
    pub(crate) fecha_inicio: Option<String>,
    #[serde(default)]
    pub(crate) fecha_fin: Option<String>,
    #[serde(default)]
    pub(crate) realm_id: Option<String>,
}

/// `POST /api/v1/runs`.
pub(crate) async fn create_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRunBody>,
) -> Result<Response, ApiError> {
    if let Ok(batch) = body.pipeline.parse::<Batch>() {
        return super::batches_api::create_batch(
            &state,
            &caller,
            batch,
            body.fecha_inicio.as_deref(),
            body.fecha_fin.as_deref(),
            body.realm_id.as_deref(),
        )
        .await;
    }
    let (pipeline, dates) = validate_run(
        &body.pipeline,
        body.fecha_inicio.as_deref(),
        body.fecha_fin.as_deref(),
    )?;
    let realm_id = resolve_realm(&state, body.realm_id.as_deref()).await?;
    let (range, windows) = range_for(&state, &realm_id, pipeline, dates).await?;
    enqueue(
        &state,
        NewRun {
            pipeline,
            realm_id: &realm_id,
            range,
            windows: &windows,
            trigger: RunOrigin::Api,
            trigger_id: None,
            started_by: caller.name(),
            retry_of: None,
            requeue_on_loss: true,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
/// The body of `POST /api/v1/verify`.
pub(crate) struct VerifyBody {
    entity: String,
    #[serde(default)]
    fecha_inicio: Option<String>,
    #[serde(default)]
    fecha_fin: Option<String>,
    #[serde(default)]
    realm_id: Option<String>,
}

/// The verify runs a request asks for, validated as the CLI validates `verify`: an entity as
/// pipelines name it (or `all`) and both dates. `422` (`unknown_entity`, `invalid_date`,
/// `invalid_range`, `invalid_request`) otherwise.
pub(crate) fn validate_verify(
    entity: &str,
    fecha_inicio: Option<&str>,
    fecha_fin: Option<&str>,
) -> Result<(Vec<Pipeline>, DateRange), ApiError> {
    let pipelines = crate::pipeline::verify::pipelines_for(entity.trim())
        .map_err(|e| ApiError::invalid("unknown_entity", e.to_string()))?;
    let first = pipelines
        .first()
        .copied()
        .ok_or_else(|| ApiError::invalid("unknown_entity", "no entity to verify"))?;
    let (_, dates) = validate_run(first.name(), fecha_inicio, fecha_fin)?;
    let range = dates.ok_or_else(|| {
        ApiError::invalid(
            "invalid_request",
            SinceError::DatesRequired(first).to_string(),
        )
    })?;
    Ok((pipelines, range))
}

/// Enqueues one verify run per pipeline over `range`, in one transaction (all or none), started
/// by `started_by` from `trigger`.
pub(crate) async fn enqueue_verify(
    state: &AppState,
    pipelines: &[Pipeline],
    realm_id: &str,
    range: DateRange,
    (trigger, started_by): (RunOrigin, Option<&str>),
) -> Result<Vec<Uuid>, ApiError> {
    let mut planned = Vec::with_capacity(pipelines.len());
    for pipeline in pipelines {
        let windows = pipeline
            .windows(&range)
            .map_err(|e| ApiError::invalid("invalid_range", e.to_string()))?;
        planned.push((*pipeline, windows));
    }
    let mut tx = state.pool.begin().await?;
    let mut ids = Vec::with_capacity(planned.len());
    for (pipeline, windows) in &planned {
        let run = NewRun {
            pipeline: *pipeline,
            realm_id,
            range,
            windows,
            trigger,
            trigger_id: None,
            started_by,
            retry_of: None,
            requeue_on_loss: true,
        };
        ids.push(queue::enqueue_run(&mut tx, &run).await?);
    }
    tx.commit().await?;
    state.wake_workers.notify_waiters();
    Ok(ids)
}

/// `POST /api/v1/verify` with `{"entity", "fecha_inicio", "fecha_fin", "realm_id": optional}`:
/// `202` with the run (the shape of `POST /api/v1/runs`) of `qb_<entity>_verify`; for
/// `"entity": "all"`, one run per entity, answered as `{"runs": [run, …]}` in catalog order;
/// for `"entity": "reports"`, `200` with the Trial Balance reconciliation `verify reports`
/// prints (it reads the database only).
pub(crate) async fn create_verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    if body.entity.trim() == "reports" {
        return reconcile_reports(&state, &body).await;
    }
    let (pipelines, range) = validate_verify(
        &body.entity,
        body.fecha_inicio.as_deref(),
        body.fecha_fin.as_deref(),
    )?;
    let realm_id = resolve_realm(&state, body.realm_id.as_deref()).await?;
    let ids = enqueue_verify(
        &state,
        &pipelines,
        &realm_id,
        range,
        (RunOrigin::Api, caller.name()),
    )
    .await?;
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        views.push(
            views::get(&state.pool, id)
                .await?
                .ok_or_else(|| ApiError::not_found("the run just created"))?,
        );
    }
    if body.entity.trim() == "all" {
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "runs": views })),
        )
            .into_response());
    }
    let view = views
        .pop()
        .ok_or_else(|| ApiError::not_found("the run just created"))?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `POST /api/v1/verify` for `reports`: `{"realm_id", "fecha_inicio", "fecha_fin",
/// "any_stored", "totals": {months, agreed, differed, missing, differences}, "months": [{month,
/// basis, outcome: "missing" | "compared", as_of, fetched_at, accounts, agreed, differences:
/// [{account, changed}]}]}`, validated as the CLI validates `verify reports`.
async fn reconcile_reports(state: &AppState, body: &VerifyBody) -> Result<Response, ApiError> {
    let (_, dates) = validate_run(
        TRIAL_BALANCE_PIPELINE,
        body.fecha_inicio.as_deref(),
        body.fecha_fin.as_deref(),
    )?;
    let range = dates.ok_or_else(|| {
        ApiError::invalid(
            "invalid_request",
            "`reports` needs fecha_inicio and fecha_fin",
        )
    })?;
    months_of(&range).map_err(|e| ApiError::invalid("invalid_range", e.to_string()))?;
    let realm_id = resolve_realm(state, body.realm_id.as_deref()).await?;
    let reconciliation = reconcile_trial_balances(&state.pool, &realm_id, &range)
        .await
        .map_err(|e| match e {
            ReconcileError::Range(e) => ApiError::invalid("invalid_range", e.to_string()),
            ReconcileError::Store(e) => ApiError::from(e),
        })?;
    Ok(Json(serde_json::json!({
        "realm_id": realm_id,
        "fecha_inicio": range.fecha_inicio.to_string(),
        "fecha_fin": range.fecha_fin.to_string(),
        "any_stored": reconciliation.any_stored,
        "totals": reconciliation.totals(),
        "months": reconciliation.months,
    }))
    .into_response())
}

fn query_i64(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_query",
                    format!(
                        "`{name}` must be a whole number from {} to {} (got `{}`)",
                        range.start(),
                        range.end(),
                        echo(v)
                    ),
                )
            }),
    }
}

/// The query parameter `name` parsed as a `T`, if given; `expected` says what it must be.
fn query_parsed<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::invalid(
                    "invalid_query",
                    format!("`{name}` must be {expected} (got `{}`)", echo(v)),
                )
            })
        })
        .transpose()
}

/// `GET /api/v1/runs?limit=N&status=S&pipeline=P&before=ID`.
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = query_i64(&query, "limit", 50, 1..=1000)?;
    let status = query_parsed::<RunStatus>(
        &query,
        "status",
        "one of queued, running, succeeded, failed, interrupted, cancelled",
    )?;
    let before = query_parsed::<Uuid>(&query, "before", "a run id")?;
    let pipeline = query_parsed::<Pipeline>(&query, "pipeline", "a pipeline's name")?;
    let filter = RunFilter {
        status,
        pipeline,
        before,
    };
    let runs = views::list(&state.pool, &filter, limit).await?;
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

/// `GET /api/v1/runs/{id}`.
pub(crate) async fn get_run(
    State(state): State<AppState>,
    RunId(id): RunId,
) -> Result<Response, ApiError> {
    let view = views::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    Ok(Json(view).into_response())
}

/// `GET /api/v1/runs/{id}/logs?after=N`.
pub(crate) async fn run_logs(
    State(state): State<AppState>,
    RunId(id): RunId,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let after = query_i64(&query, "after", 0, 0..=i64::MAX)?;
    let limit = query_i64(&query, "limit", 1000, 1..=5000)?;
    if runs::load_run(&state.pool, id).await?.is_none() {
        return Err(ApiError::not_found(format!("no run `{id}`")));
    }
    let lines = logs::read(&state.pool, id, after, limit).await?;
    let next = lines.last().map_or(after, |l| l.n);
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| serde_json::json!({"n": l.n, "at": l.at.0.to_string(), "level": l.level, "text": l.text}))
        .collect();
    Ok(Json(serde_json::json!({ "lines": lines, "next": next })).into_response())
}

/// `POST /api/v1/runs/{id}/retry`: a new run (its `retry_of` names this one) of only the windows
/// that did not succeed.
pub(crate) async fn retry_run(
    State(state): State<AppState>,
    caller: Caller,
    RunId(id): RunId,
) -> Result<Response, ApiError> {
    let refused = |refusal: RetryRefusal| match refusal {
        RetryRefusal::NotFound(_) => ApiError::not_found(refusal.to_string()),
        RetryRefusal::Active { .. } | RetryRefusal::Retrying { .. } => {
            ApiError::conflict("run_active", refusal.to_string())
        }
        RetryRefusal::NothingToRetry(_) => {
            ApiError::conflict("nothing_to_retry", refusal.to_string())
        }
        RetryRefusal::UnknownPipeline(e) => ApiError::invalid("unknown_pipeline", e.to_string()),
        RetryRefusal::Database(e) => ApiError::from(e),
    };
    let plan = plan_retry(&state.pool, id).await.map_err(refused)?;
    let retry = queue_retry(&state.pool, &plan, caller.name())
        .await
        .map_err(refused)?;
    queued(&state, retry).await
}

/// `POST /api/v1/runs/{id}/cancel`.
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    RunId(id): RunId,
) -> Result<Response, ApiError> {
    match queue::cancel_run(&state.pool, id).await? {
        CancelOutcome::NotFound => return Err(ApiError::not_found(format!("no run `{id}`"))),
        CancelOutcome::AlreadyOver(status) => {
            return Err(ApiError::conflict(
                "run_finished",
                format!("run {id} is already {status}"),
            ));
        }
        CancelOutcome::Cancelled | CancelOutcome::Requested => {}
    }
    let view = views::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `GET /api/v1/secrets`: names and when they changed, never values; a refresh token also
/// says when it ends (`expires_at`, as Intuit answered) and whether that is within 30 days.
pub(crate) async fn list_secrets(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let secrets: Vec<serde_json::Value> = crate::service::secrets::list(&state.pool, &state.key)
        .await?
        .into_iter()
        .map(|s| {
            let updated_at = s.updated_at.map(|t| t.to_string());
            match &s.realm_id {
                None => serde_json::json!({"name": s.name, "updated_at": updated_at}),
                Some(realm_id) => serde_json::json!({
                    "name": s.name,
                    "realm_id": realm_id,
                    "updated_at": updated_at,
                    "expires_at": s.expires_at.map(|t| t.to_string()),
                    "expiring": s.ending_soon(now),
                }),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "secrets": secrets })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
/// The body of `PUT /api/v1/secrets/{NAME}`.
pub(crate) struct SecretBody {
    value: String,
    #[serde(default)]
    realm_id: Option<String>,
}

/// The secret name of `/api/v1/secrets/{NAME}`, validated before the body is read
/// (`422 invalid_secret_name`).
pub(crate) struct NamedSecret(SecretName);

impl FromRequestParts<AppState> for NamedSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        SecretName::parse(&path_param(parts, state).await?)
            .map(Self)
            .map_err(|refusal| ApiError::invalid("invalid_secret_name", refusal.to_string()))
    }
}

/// `PUT /api/v1/secrets/{NAME}` with `{"value": "…"}` → `204`.
pub(crate) async fn put_secret(
    State(state): State<AppState>,
    NamedSecret(name): NamedSecret,
    ApiJson(body): ApiJson<SecretBody>,
) -> Result<Response, ApiError> {
    let value = name
        .value(&body.value)
        .map_err(|refusal| ApiError::invalid("invalid_secret_value", refusal.to_string()))?;
    let value = SecretString::from(value.to_owned());
    super::secrets::store_secret(&state, name.as_str(), &value, body.realm_id.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
