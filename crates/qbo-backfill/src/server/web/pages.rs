//! The pages: login, pipelines (with Run once), runs, a run (status, windows grid, retry,
//! cancel, its log streaming live), verify (each entity's last verification, and a form to
//! verify one or all over a range), triggers (create with a time-zone picker, enable, disable,
//! delete) and secrets (replace only; values never sent to the browser). Input is validated as
//! the CLI and the API validate it; errors are shown inline in an operator's words.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use uuid::Uuid;

use super::{
    LOGIN_CSRF_COOKIE, Layout, Operator, SESSION_COOKIE, constant_time_eq, cookie, csrf_ok,
    failure, layout, not_found, operator, render, set_cookie,
};
use crate::domain::run::RunOrigin;
use crate::domain::secret::SecretName;
use crate::orchestrator::triggers::{NewTrigger, TriggerPatch};
use crate::pipeline::{Mode, Pipeline};
use crate::server::AppState;
use crate::server::api::{range_for, validate_run};
use crate::service::retry::{RetryPlan, RetryRefusal, plan_retry};
use crate::store::auth::secrets::SecretStore;
use crate::store::auth::tokens::PgTokenStore;
use crate::store::runs::RunStatus;
use crate::store::runs::queue::{self, NewRun};
use crate::store::runs::views::{self, RunFilter, RunView};
use crate::store::{auth::companies, auth::web, runs::logs, runs::triggers};

type Fields = HashMap<String, String>;

/// An `<option>` of a select.
struct Choice {
    value: String,
    selected: bool,
}

fn choices<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.to_owned(),
            selected: v == selected,
        })
        .collect()
}

fn pipeline_choices(selected: &str) -> Vec<Choice> {
    choices(Pipeline::all().map(Pipeline::name), selected)
}

fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.get(name).map_or("", |v| v.trim())
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

// ----- login -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    username: String,
    error: Option<String>,
}

fn login_page(state: &AppState, username: &str, error: Option<String>) -> Response {
    let Ok(csrf) = web::random_token() else {
        return failure(&"no randomness for the login form");
    };
    let mut response = render(&LoginPage {
        csrf: csrf.clone(),
        username: username.to_owned(),
        error,
    });
    if let Ok(v) = set_cookie(&state.web, LOGIN_CSRF_COOKIE, &csrf, Some(3600)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /login`.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if operator(&state, &headers).await.is_ok() {
        return Redirect::to("/").into_response();
    }
    login_page(&state, "", None)
}

fn client_of(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map_or_else(
            || "direct".to_owned(),
            |v| v.trim().chars().take(64).collect(),
        )
}

/// `POST /login`: CSRF (double submit), rate limit, argon2 check, then a fresh session.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(field(&form, "csrf"), &expected) {
        return super::forbidden();
    }
    let username: String = field(&form, "username").chars().take(200).collect();
    let password = form.get("password").map_or("", String::as_str);
    let client = client_of(&headers);
    match web::login_blocked(&state.pool, &username, &client).await {
        Ok(true) => {
            return login_page(
                &state,
                &username,
                Some("Too many failed attempts. Wait 15 minutes and try again.".to_owned()),
            );
        }
        Ok(false) => {}
        Err(e) => return failure(&e),
    }
    match web::login(&state.pool, &username, password, &client).await {
        Ok(Some(session)) => {
            let mut response = Redirect::to("/").into_response();
            let cookie_value = set_cookie(
                &state.web,
                SESSION_COOKIE,
                &session.id,
                Some(web::SESSION_IDLE.as_secs()),
            );
            if let Ok(v) = cookie_value.parse() {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            if let Ok(v) = set_cookie(&state.web, LOGIN_CSRF_COOKIE, "", Some(0)).parse() {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Ok(None) => login_page(
            &state,
            &username,
            Some("Wrong user name or password.".to_owned()),
        ),
        Err(e) => failure(&e),
    }
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    if let Err(e) = web::logout(&state.pool, &op.session_id).await {
        return failure(&e);
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(&state.web, SESSION_COOKIE, "", Some(0)).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

// ----- pipelines -----------------------------------------------------------------------------

struct LastRun {
    id: Uuid,
    status: String,
    icon: &'static str,
    fecha_inicio: String,
    fecha_fin: String,
    created_at: String,
}

struct NextFire {
    local: String,
    utc: String,
}

struct PipelineCard {
    /// A heading before the first card of each kind (backfills, incremental syncs).
    heading: Option<&'static str>,
    /// Dates may be left empty (the sync continues from its cursor).
    incremental: bool,
    name: &'static str,
    entity: String,
    table: String,
    last_run: Option<LastRun>,
    next_trigger: Option<NextFire>,
    form_inicio: String,
    form_fin: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    layout: Layout,
    pipelines: Vec<PipelineCard>,
    companies: Vec<String>,
    /// A refusal that belongs to no card (an unknown pipeline).
    page_error: Option<String>,
}

/// Shown when the Run once form of `pipeline` was refused.
struct RunOnceError<'a> {
    pipeline: &'a str,
    fecha_inicio: &'a str,
    fecha_fin: &'a str,
    message: String,
}

async fn pipelines_page(
    state: &AppState,
    op: &Operator,
    flash: Option<String>,
    error: Option<RunOnceError<'_>>,
) -> Response {
    let built = async {
        let layout = layout(state, op, "pipelines", flash).await?;
        let all_triggers = triggers::list(&state.pool)
            .await
            .map_err(|e| crate::store::StoreError::Random(e.to_string()))?;
        let mut cards = Vec::new();
        // Verifications have their own page (`/verify`).
        let listed: Vec<Pipeline> = Pipeline::all()
            .filter(|p| p.mode() != Mode::Verify)
            .collect();
        let names: Vec<&str> = listed.iter().map(|p| p.name()).collect();
        let mut latest: std::collections::HashMap<String, views::RunView> =
            views::latest_per_pipeline(&state.pool, &names)
                .await?
                .into_iter()
                .map(|r| (r.pipeline.clone(), r))
                .collect();
        for p in listed {
            let last = latest.remove(p.name());
            let next = all_triggers
                .iter()
                .map(triggers::Trigger::view)
                .filter(|t| t.pipeline == p.name() && t.enabled)
                .filter_map(|t| Some((t.next_fire_utc?, t.next_fire_local?)))
                .min();
            let err = error.as_ref().filter(|e| e.pipeline == p.name());
            let first_of_mode = cards
                .last()
                .is_none_or(|c: &PipelineCard| c.incremental != (p.mode() == Mode::Incremental));
            cards.push(PipelineCard {
                heading: first_of_mode.then_some(match p.mode() {
                    Mode::Backfill => "Backfills (by creation day)",
                    Mode::Incremental => "Incremental syncs (changes and deletions)",
                    Mode::Verify => "Verifications (raw against QuickBooks, by month)",
                }),
                incremental: p.mode() == Mode::Incremental,
                name: p.name(),
                entity: format!("{:?}", p.entity()),
                table: p.table().qualified_name().to_owned(),
                last_run: last.map(|r| LastRun {
                    id: r.id,
                    icon: icon(r.status.as_str()),
                    status: r.status.to_string(),
                    fecha_inicio: r.fecha_inicio,
                    fecha_fin: r.fecha_fin,
                    created_at: shown(r.created_at.as_deref()),
                }),
                next_trigger: next.map(|(utc, local)| NextFire {
                    local,
                    utc: shown(Some(&utc)),
                }),
                form_inicio: err.map_or_else(String::new, |e| e.fecha_inicio.to_owned()),
                form_fin: err.map_or_else(String::new, |e| e.fecha_fin.to_owned()),
                error: err.map(|e| e.message.clone()),
            });
        }
        let companies = companies::list(&state.pool)
            .await?
            .into_iter()
            .map(|c| c.realm_id)
            .collect();
        let page_error = error
            .as_ref()
            .filter(|e| e.pipeline.parse::<Pipeline>().is_err())
            .map(|e| e.message.clone());
        Ok::<_, crate::store::StoreError>(PipelinesPage {
            layout,
            pipelines: cards,
            companies,
            page_error,
        })
    };
    match built.await {
        Ok(page) => render(&page),
        Err(e) => failure(&e),
    }
}

/// `GET /`.
pub(crate) async fn pipelines(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match operator(&state, &headers).await {
        Ok(op) => pipelines_page(&state, &op, None, None).await,
        Err(r) => r,
    }
}

/// `POST /runs`: Run once.
pub(crate) async fn run_once(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let (pipeline, inicio, fin) = (
        field(&form, "pipeline"),
        field(&form, "fecha_inicio"),
        field(&form, "fecha_fin"),
    );
    let refused = |message: String| RunOnceError {
        pipeline,
        fecha_inicio: inicio,
        fecha_fin: fin,
        message,
    };
    let (pipeline_v, dates) = match validate_run(pipeline, Some(inicio), Some(fin)) {
        Ok(v) => v,
        Err(e) => return pipelines_page(&state, &op, None, Some(refused(e.message))).await,
    };
    let realm = form.get("realm_id").map(String::as_str);
    let realm_id = match crate::server::api::resolve_realm(&state, realm).await {
        Ok(r) => r,
        Err(e) => return pipelines_page(&state, &op, None, Some(refused(e.message))).await,
    };
    let (range, windows) = match range_for(&state, &realm_id, pipeline_v, dates).await {
        Ok(v) => v,
        Err(e) => return pipelines_page(&state, &op, None, Some(refused(e.message))).await,
    };
    let new = NewRun {
        pipeline: pipeline_v,
        realm_id: &realm_id,
        range,
        windows: &windows,
        trigger: RunOrigin::Ui,
        trigger_id: None,
        retry_of: None,
        requeue_on_loss: true,
    };
    enqueue_and_show(&state, &new).await
}

async fn enqueue_and_show(state: &AppState, new: &NewRun<'_>) -> Response {
    let id = async {
        let mut tx = state.pool.begin().await?;
        let id = queue::enqueue_run(&mut tx, new).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(id)
    }
    .await;
    match id {
        Ok(id) => {
            state.wake_workers.notify_waiters();
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(e) => failure(&e),
    }
}

// ----- runs ----------------------------------------------------------------------------------

struct RunRow {
    id: Uuid,
    status: String,
    icon: &'static str,
    pipeline: String,
    fecha_inicio: String,
    fecha_fin: String,
    windows_done: i64,
    windows_total: i32,
    windows_failed: i64,
    rows: i64,
    inserted: i64,
    updated: i64,
    unchanged: i64,
    trigger: String,
    created_at: String,
}

impl From<RunView> for RunRow {
    fn from(r: RunView) -> Self {
        Self {
            id: r.id,
            icon: icon(r.status.as_str()),
            status: r.status.to_string(),
            pipeline: r.pipeline,
            fecha_inicio: r.fecha_inicio,
            fecha_fin: r.fecha_fin,
            windows_done: r.windows_succeeded,
            windows_total: r.windows_total,
            windows_failed: r.windows_failed,
            rows: r.rows,
            inserted: r.counts.inserted,
            updated: r.counts.updated,
            unchanged: r.counts.unchanged,
            trigger: r.trigger,
            created_at: shown(r.created_at.as_deref()),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    layout: Layout,
    runs: Vec<RunRow>,
    statuses: Vec<Choice>,
    pipelines: Vec<Choice>,
    older: Option<String>,
}

/// Runs shown per page.
const RUNS_PER_PAGE: i64 = 50;

/// `GET /runs?status=&pipeline=&before=`.
pub(crate) async fn runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let status = query
        .get("status")
        .and_then(|s| s.parse::<RunStatus>().ok());
    let pipeline = query
        .get("pipeline")
        .and_then(|p| p.parse::<Pipeline>().ok())
        .map(|p| p.name().to_owned());
    let filter = RunFilter {
        status,
        pipeline: pipeline.clone(),
        before: query.get("before").and_then(|b| b.parse().ok()),
    };
    let page = async {
        let runs = views::list(&state.pool, &filter, RUNS_PER_PAGE).await?;
        let older = (runs.len() as i64 == RUNS_PER_PAGE)
            .then(|| runs.last().map(|r| r.id))
            .flatten()
            .map(|last| {
                let mut q = format!("/runs?before={last}");
                if let Some(s) = status {
                    q.push_str(&format!("&status={s}"));
                }
                if let Some(p) = &pipeline {
                    q.push_str(&format!("&pipeline={p}"));
                }
                q
            });
        Ok::<_, crate::store::StoreError>(RunsPage {
            layout: layout(&state, &op, "runs", None).await?,
            runs: runs.into_iter().map(RunRow::from).collect(),
            statuses: choices(
                RunStatus::ALL.iter().map(|s| s.as_str()),
                status.map_or("", RunStatus::as_str),
            ),
            pipelines: pipeline_choices(pipeline.as_deref().unwrap_or("")),
            older,
        })
    };
    match page.await {
        Ok(page) => render(&page),
        Err(e) => failure(&e),
    }
}

#[derive(Clone)]
struct RunDetail {
    id: Uuid,
    short_id: String,
    pipeline: String,
    status: String,
    icon: &'static str,
    is_final: bool,
    realm_id: String,
    fecha_inicio: String,
    fecha_fin: String,
    trigger: String,
    trigger_id: Option<Uuid>,
    retry_of: Option<Uuid>,
    created_at: String,
    started_at: String,
    finished_at: String,
    windows_total: i32,
    windows_done: i64,
    windows_failed: i64,
    rows: i64,
    inserted: i64,
    updated: i64,
    unchanged: i64,
    error: Option<String>,
    retried_by: Option<Uuid>,
    can_retry: bool,
    can_cancel: bool,
}

struct WindowRow {
    day: String,
    status: String,
    icon: &'static str,
    pages: i32,
    rows: i64,
    inserted: i64,
    updated: i64,
    unchanged: i64,
    duration: String,
    error: String,
    intuit_tid: Option<String>,
}

#[derive(Template)]
#[template(path = "run_live.html")]
struct RunLive {
    run: RunDetail,
    windows: Vec<WindowRow>,
    csrf: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    run: RunDetail,
    live: String,
}

fn detail(view: RunView) -> (RunDetail, Vec<WindowRow>) {
    let windows: Vec<WindowRow> = view
        .windows
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|w| WindowRow {
            day: w.start_utc.get(..10).unwrap_or_default().to_owned(),
            icon: icon(w.status.as_str()),
            status: w.status.to_string(),
            pages: w.pages,
            rows: w.rows,
            inserted: w.inserted,
            updated: w.updated,
            unchanged: w.unchanged,
            duration: w
                .duration_s
                .map_or_else(String::new, |d| format!("{d:.2} s")),
            error: w.error.unwrap_or_default(),
            intuit_tid: w.intuit_tid,
        })
        .collect();
    let unfinished = view.windows_outstanding > 0;
    let run = RunDetail {
        id: view.id,
        short_id: view.id.to_string().chars().take(8).collect(),
        icon: icon(view.status.as_str()),
        is_final: view.status.is_final(),
        can_retry: view.status.is_final() && unfinished,
        can_cancel: !view.status.is_final(),
        status: view.status.to_string(),
        pipeline: view.pipeline,
        realm_id: view.realm_id,
        fecha_inicio: view.fecha_inicio,
        fecha_fin: view.fecha_fin,
        trigger: view.trigger,
        trigger_id: view.trigger_id,
        retry_of: view.retry_of,
        created_at: shown(view.created_at.as_deref()),
        started_at: shown(view.started_at.as_deref()),
        finished_at: shown(view.finished_at.as_deref()),
        windows_total: view.windows_total,
        windows_done: view.windows_succeeded,
        windows_failed: view.windows_failed,
        rows: view.rows,
        inserted: view.counts.inserted,
        updated: view.counts.updated,
        unchanged: view.counts.unchanged,
        error: view.error,
        retried_by: view.retried_by,
    };
    (run, windows)
}

async fn load_run(state: &AppState, id: &str) -> Result<Option<RunView>, Response> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(None);
    };
    views::get(&state.pool, id).await.map_err(|e| failure(&e))
}

/// `GET /runs/{id}`.
pub(crate) async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let view = match load_run(&state, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let flash = match query.get("flash").map(String::as_str) {
        Some("cancel") => Some("Cancel requested: the run stops within a few seconds.".to_owned()),
        _ => None,
    };
    let (run, windows) = detail(view);
    let run2 = run.clone();
    let live = RunLive {
        run,
        windows,
        csrf: op.session.csrf_token.clone(),
    };
    let live_html = match live.render() {
        Ok(html) => html,
        Err(e) => return failure(&e),
    };
    match layout(&state, &op, "runs", flash).await {
        Ok(layout) => render(&RunPage {
            layout,
            run: run2,
            live: live_html,
        }),
        Err(e) => failure(&e),
    }
}

/// `GET /runs/{id}/live`: the status part of the run's page, for the script to swap in.
pub(crate) async fn run_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let view = match load_run(&state, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let (run, windows) = detail(view);
    let is_final = run.is_final;
    let id = run.id;
    let live = RunLive {
        run,
        windows,
        csrf: op.session.csrf_token,
    };
    match live.render() {
        Ok(html) => axum::response::Html(format!(
            "<div id=\"live\" data-run-id=\"{id}\" data-final=\"{is_final}\">{html}</div>"
        ))
        .into_response(),
        Err(e) => failure(&e),
    }
}

/// `GET /runs/{id}/log?after=N`: the run's log lines as JSON, for the script.
pub(crate) async fn run_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<Fields>,
) -> Response {
    if let Err(r) = operator(&state, &headers).await {
        return r;
    }
    let Ok(id) = id.parse::<Uuid>() else {
        return not_found();
    };
    let after = query
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    match logs::read(&state.pool, id, after, 1000).await {
        Ok(lines) => {
            let next = lines.last().map_or(after, |l| l.n);
            let lines: Vec<serde_json::Value> = lines
                .into_iter()
                .map(|l| serde_json::json!({"n": l.n, "level": l.level, "text": l.text}))
                .collect();
            axum::Json(serde_json::json!({"lines": lines, "next": next})).into_response()
        }
        Err(e) => failure(&e),
    }
}

/// `POST /runs/{id}/retry`: a new run of the windows that did not succeed.
pub(crate) async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let Ok(id) = id.parse::<Uuid>() else {
        return not_found();
    };
    // The one retry rule; a run that cannot be retried is shown again as it is.
    let RetryPlan {
        run,
        pipeline,
        windows,
    } = match plan_retry(&state.pool, id).await {
        Ok(plan) => plan,
        Err(RetryRefusal::NotFound(_) | RetryRefusal::UnknownPipeline(_)) => return not_found(),
        Err(RetryRefusal::Active { .. } | RetryRefusal::NothingToRetry(_)) => {
            return Redirect::to(&format!("/runs/{id}")).into_response();
        }
        Err(RetryRefusal::Database(e)) => return failure(&e),
    };
    let new = NewRun {
        pipeline,
        realm_id: &run.realm_id,
        range: run.range(),
        windows: &windows,
        trigger: RunOrigin::Retry,
        trigger_id: None,
        retry_of: Some(id),
        requeue_on_loss: true,
    };
    enqueue_and_show(&state, &new).await
}

/// `POST /runs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let Ok(id) = id.parse::<Uuid>() else {
        return not_found();
    };
    match queue::cancel_run(&state.pool, id).await {
        Ok(queue::CancelOutcome::NotFound) => not_found(),
        Ok(_) => Redirect::to(&format!("/runs/{id}?flash=cancel")).into_response(),
        Err(e) => failure(&e),
    }
}

// ----- verify --------------------------------------------------------------------------------

struct VerifyRunCell {
    id: Uuid,
    status: String,
    icon: &'static str,
    fecha_inicio: String,
    fecha_fin: String,
    months: i64,
    agreed: i64,
    drifted: i64,
    failed: i64,
    loaded: i64,
    marked_deleted: i64,
}

struct VerifyRow {
    entity: &'static str,
    realm_id: String,
    last_verified: String,
    run: Option<VerifyRunCell>,
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    layout: Layout,
    rows: Vec<VerifyRow>,
    entities: Vec<Choice>,
    companies: Vec<String>,
    show_company: bool,
    form_inicio: String,
    form_fin: String,
    error: Option<String>,
}

/// What the verify form was sent with (echoed back when refused).
#[derive(Default)]
struct VerifyForm<'a> {
    entity: &'a str,
    fecha_inicio: &'a str,
    fecha_fin: &'a str,
}

async fn verify_page(
    state: &AppState,
    op: &Operator,
    flash: Option<String>,
    error: Option<String>,
    form: VerifyForm<'_>,
) -> Response {
    let page = async {
        let companies: Vec<String> = companies::list(&state.pool)
            .await?
            .into_iter()
            .map(|c| c.realm_id)
            .collect();
        let rows = crate::store::raw::verify::latest_by_entity(&state.pool, &companies)
            .await?
            .into_iter()
            .map(|v| VerifyRow {
                entity: v.entity,
                realm_id: v.realm_id,
                last_verified: shown(v.last_verified_at.map(|t| t.to_string()).as_deref()),
                run: v.latest.map(|l| VerifyRunCell {
                    id: l.run_id,
                    icon: icon(&l.status),
                    status: l.status,
                    fecha_inicio: l.fecha_inicio,
                    fecha_fin: l.fecha_fin,
                    months: l.months,
                    agreed: l.agreed,
                    drifted: l.drifted,
                    failed: l.failed,
                    loaded: l.loaded,
                    marked_deleted: l.marked_deleted,
                }),
            })
            .collect();
        let names = std::iter::once("all").chain(crate::pipeline::verify::entity_names());
        Ok::<_, crate::store::StoreError>(VerifyPage {
            layout: layout(state, op, "verify", flash).await?,
            rows,
            entities: choices(
                names,
                if form.entity.is_empty() {
                    "all"
                } else {
                    form.entity
                },
            ),
            show_company: companies.len() > 1,
            companies,
            form_inicio: form.fecha_inicio.to_owned(),
            form_fin: form.fecha_fin.to_owned(),
            error,
        })
    };
    match page.await {
        Ok(page) => render(&page),
        Err(e) => failure(&e),
    }
}

/// `GET /verify`.
pub(crate) async fn verify(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match operator(&state, &headers).await {
        Ok(op) => verify_page(&state, &op, None, None, VerifyForm::default()).await,
        Err(r) => r,
    }
}

/// `POST /verify`: verify one entity (then its run's page) or all (then this page, saying how
/// many runs were queued). Refused input is shown next to the form and writes nothing.
pub(crate) async fn start_verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let sent = VerifyForm {
        entity: field(&form, "entity"),
        fecha_inicio: field(&form, "fecha_inicio"),
        fecha_fin: field(&form, "fecha_fin"),
    };
    let (pipelines, range) = match crate::server::api::validate_verify(
        sent.entity,
        Some(sent.fecha_inicio),
        Some(sent.fecha_fin),
    ) {
        Ok(v) => v,
        Err(e) => return verify_page(&state, &op, None, Some(e.message), sent).await,
    };
    let realm = form.get("realm_id").map(String::as_str);
    let realm_id = match crate::server::api::resolve_realm(&state, realm).await {
        Ok(r) => r,
        Err(e) => return verify_page(&state, &op, None, Some(e.message), sent).await,
    };
    let ids = match crate::server::api::enqueue_verify(
        &state,
        &pipelines,
        &realm_id,
        range,
        RunOrigin::Ui,
    )
    .await
    {
        Ok(ids) => ids,
        Err(e) if e.status.is_client_error() => {
            return verify_page(&state, &op, None, Some(e.message), sent).await;
        }
        Err(e) => return failure(&e.message),
    };
    match ids.as_slice() {
        [one] => Redirect::to(&format!("/runs/{one}")).into_response(),
        many => {
            let flash = format!(
                "{} verify runs queued ({} → {}); each entity's row shows its run.",
                many.len(),
                range.fecha_inicio,
                range.fecha_fin
            );
            verify_page(&state, &op, Some(flash), None, VerifyForm::default()).await
        }
    }
}

// ----- triggers ------------------------------------------------------------------------------

struct TriggerRow {
    id: Uuid,
    pipeline: String,
    kind: String,
    when: String,
    time_zone: String,
    fecha_inicio: String,
    fecha_fin: String,
    next_local: Option<String>,
    next_utc: String,
    state: String,
    state_icon: &'static str,
    enabled: bool,
    can_enable: bool,
    missed_count: i64,
    last_error: Option<String>,
    last_run_id: Option<Uuid>,
    last_fired: String,
}

#[derive(Default)]
struct TriggerForm {
    pipeline: String,
    kind: String,
    local_time: String,
    cron: String,
    time_zone: String,
    fecha_inicio: String,
    fecha_fin: String,
}

#[derive(Template)]
#[template(path = "triggers.html")]
struct TriggersPage {
    layout: Layout,
    triggers: Vec<TriggerRow>,
    error: Option<String>,
    form: TriggerForm,
    pipelines: Vec<Choice>,
    zones: Vec<String>,
    companies: Vec<String>,
}

fn trigger_row(t: &triggers::Trigger) -> TriggerRow {
    let v = t.view();
    let param = |k: &str| {
        v.params
            .get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let state = v.state.to_string();
    TriggerRow {
        id: v.id,
        pipeline: v.pipeline.clone(),
        kind: v.kind.to_string(),
        when: v
            .local_time
            .clone()
            .or_else(|| v.cron.clone())
            .unwrap_or_default(),
        time_zone: v.time_zone.clone(),
        fecha_inicio: param("fecha_inicio"),
        fecha_fin: param("fecha_fin"),
        next_local: v.next_fire_local.clone(),
        next_utc: shown(v.next_fire_utc.as_deref()),
        state_icon: icon(&state),
        can_enable: !v.enabled && state == "disabled",
        state,
        enabled: v.enabled,
        missed_count: v.missed_count,
        last_error: v.last_error.clone(),
        last_run_id: v.last_run_id,
        last_fired: shown(v.last_fired_utc.as_deref()),
    }
}

fn zone_names() -> Vec<String> {
    let mut zones: Vec<String> = jiff::tz::db()
        .available()
        .map(|z| z.as_str().to_owned())
        .filter(|z| z.contains('/') || z == "UTC")
        .collect();
    zones.sort();
    zones
}

async fn triggers_page(
    state: &AppState,
    op: &Operator,
    flash: Option<String>,
    error: Option<String>,
    form: TriggerForm,
) -> Response {
    let list = match triggers::list(&state.pool).await {
        Ok(list) => list,
        Err(e) => return failure(&e),
    };
    let layout = match layout(state, op, "triggers", flash).await {
        Ok(l) => l,
        Err(e) => return failure(&e),
    };
    let companies = match companies::list(&state.pool).await {
        Ok(list) => list.into_iter().map(|c| c.realm_id).collect(),
        Err(e) => return failure(&e),
    };
    let form = if form.time_zone.is_empty() {
        TriggerForm {
            time_zone: crate::orchestrator::triggers::DEFAULT_TIME_ZONE.to_owned(),
            kind: "once".to_owned(),
            ..form
        }
    } else {
        form
    };
    render(&TriggersPage {
        layout,
        triggers: list.iter().map(trigger_row).collect(),
        error,
        pipelines: pipeline_choices(&form.pipeline),
        form,
        zones: zone_names(),
        companies,
    })
}

/// `GET /triggers`.
pub(crate) async fn triggers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match operator(&state, &headers).await {
        Ok(op) => triggers_page(&state, &op, None, None, TriggerForm::default()).await,
        Err(r) => r,
    }
}

/// `POST /triggers`: a one-time or cron trigger from the form.
pub(crate) async fn create_trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let kind = if field(&form, "kind") == "cron" {
        "cron"
    } else {
        "once"
    };
    let echo_form = TriggerForm {
        pipeline: field(&form, "pipeline").to_owned(),
        kind: kind.to_owned(),
        local_time: field(&form, "local_time").to_owned(),
        cron: field(&form, "cron").to_owned(),
        time_zone: field(&form, "time_zone").to_owned(),
        fecha_inicio: field(&form, "fecha_inicio").to_owned(),
        fecha_fin: field(&form, "fecha_fin").to_owned(),
    };
    let realm = form.get("realm_id").map(String::as_str);
    let realm = match crate::server::api::resolve_realm(&state, realm).await {
        Ok(r) => r,
        Err(e) => return triggers_page(&state, &op, None, Some(e.message), echo_form).await,
    };
    let new = NewTrigger {
        pipeline: Some(echo_form.pipeline.clone()),
        kind: Some(kind.to_owned()),
        local_time: (kind == "once").then(|| echo_form.local_time.clone()),
        cron: (kind == "cron").then(|| echo_form.cron.clone()),
        time_zone: Some(echo_form.time_zone.clone()).filter(|z| !z.is_empty()),
        params: Some(serde_json::json!({
            "fecha_inicio": echo_form.fecha_inicio,
            "fecha_fin": echo_form.fecha_fin,
        })),
        realm_id: Some(realm),
        enabled: Some(true),
    };
    match triggers::create(&state.pool, &new, jiff::Timestamp::now()).await {
        Ok(t) => {
            let v = t.view();
            let flash = format!(
                "Trigger created: next fire {} ({}).",
                v.next_fire_local.unwrap_or_else(|| "—".to_owned()),
                shown(v.next_fire_utc.as_deref())
            );
            triggers_page(&state, &op, Some(flash), None, TriggerForm::default()).await
        }
        Err(triggers::TriggerStoreError::Invalid(e)) => {
            triggers_page(&state, &op, None, Some(e.to_string()), echo_form).await
        }
        Err(e) => failure(&e),
    }
}

/// `POST /triggers/{id}/enable|disable|delete`.
pub(crate) async fn trigger_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let Ok(id) = id.parse::<Uuid>() else {
        return not_found();
    };
    let now = jiff::Timestamp::now();
    let result = match action.as_str() {
        "enable" | "disable" => {
            let patch = TriggerPatch {
                enabled: Some(action == "enable"),
                ..TriggerPatch::default()
            };
            triggers::update(&state.pool, id, &patch, now)
                .await
                .map(drop)
        }
        "delete" => triggers::delete(&state.pool, id).await,
        _ => return not_found(),
    };
    match result {
        Ok(()) => Redirect::to("/triggers").into_response(),
        Err(triggers::TriggerStoreError::NotFound(_)) => not_found(),
        Err(triggers::TriggerStoreError::Invalid(e)) => {
            triggers_page(
                &state,
                &op,
                None,
                Some(e.to_string()),
                TriggerForm::default(),
            )
            .await
        }
        Err(e) => failure(&e),
    }
}

// ----- secrets -------------------------------------------------------------------------------

struct SecretRow {
    name: String,
    realm_id: String,
    updated_at: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    layout: Layout,
    secrets: Vec<SecretRow>,
    error: Option<String>,
    form_name: String,
    companies: Vec<String>,
}

async fn secrets_page(
    state: &AppState,
    op: &Operator,
    flash: Option<String>,
    error: Option<String>,
    form_name: String,
) -> Response {
    let page = async {
        let mut rows: Vec<SecretRow> = SecretStore::new(state.pool.clone(), state.key.clone())
            .list()
            .await?
            .into_iter()
            .map(|s| SecretRow {
                name: s.name,
                realm_id: String::new(),
                updated_at: shown(s.updated_at.map(|t| t.to_string()).as_deref()),
            })
            .collect();
        let companies = companies::list(&state.pool).await?;
        for c in &companies {
            let tokens =
                PgTokenStore::new(state.pool.clone(), state.key.clone(), c.realm_id.clone());
            if let Some(status) = tokens.status().await? {
                rows.push(SecretRow {
                    name: "QBO_REFRESH_TOKEN".to_owned(),
                    realm_id: c.realm_id.clone(),
                    updated_at: shown(status.updated_at.map(|t| t.to_string()).as_deref()),
                });
            }
        }
        Ok::<_, crate::store::StoreError>(SecretsPage {
            layout: layout(state, op, "secrets", flash).await?,
            secrets: rows,
            error,
            form_name,
            companies: companies.into_iter().map(|c| c.realm_id).collect(),
        })
    };
    match page.await {
        Ok(page) => render(&page),
        Err(e) => failure(&e),
    }
}

/// `GET /secrets`.
pub(crate) async fn secrets(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match operator(&state, &headers).await {
        Ok(op) => secrets_page(&state, &op, None, None, String::new()).await,
        Err(r) => r,
    }
}

/// `POST /secrets`: replace a value (never echoed back).
pub(crate) async fn replace_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let op = match operator(&state, &headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if !csrf_ok(&op, &form) {
        return super::forbidden();
    }
    let name = match SecretName::parse(field(&form, "name")) {
        Ok(name) => name,
        Err(refusal) => {
            let message = format!("{refusal}.");
            return secrets_page(&state, &op, None, Some(message), String::new()).await;
        }
    };
    let value = match name.value(form.get("value").map_or("", String::as_str)) {
        Ok(value) => SecretString::from(value.to_owned()),
        Err(refusal) => {
            return secrets_page(
                &state,
                &op,
                None,
                Some(refusal.to_string()),
                name.to_string(),
            )
            .await;
        }
    };
    let name = name.to_string();
    let realm = form.get("realm_id").map(String::as_str);
    match crate::server::secrets::store_secret(&state, &name, &value, realm).await {
        Ok(()) => {
            let flash = format!("{name} replaced.");
            secrets_page(&state, &op, Some(flash), None, String::new()).await
        }
        Err(e) if e.status.is_client_error() => {
            secrets_page(&state, &op, None, Some(e.message), name).await
        }
        Err(e) => failure(&e.message),
    }
}
