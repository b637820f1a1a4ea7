//! The runs: the list (`/runs`, filtered by status and pipeline, paged), a run's page (status,
//! windows grid, retry, cancel) with its live part and its log for the script, and the Retry and
//! Cancel forms. Retrying follows the one retry rule ([`plan_retry`]).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{Choice, Fields, IdPath, choices, icon, pipeline_choices, shown};
use crate::pipeline::Pipeline;
use crate::server::AppState;
use crate::server::web::{CsrfForm, Lang, Layout, Operator, PageError, layout, render};
use crate::service::retry::{RetryRefusal, plan_retry, queue_retry, retry_offered};
use crate::store::auth::companies;
use crate::store::runs::queue;
use crate::store::runs::views::{self, RunFilter, RunView, WindowView};
use crate::store::runs::{RunStatus, WindowStatus, logs};

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
    started_by: Option<String>,
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
            started_by: r.started_by,
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

/// The link to the next (older) page of a list whose last run is `last`.
fn older_link(last: Uuid, status: Option<RunStatus>, pipeline: Option<&str>) -> String {
    let mut q = format!("/runs?before={last}");
    if let Some(s) = status {
        q.push_str(&format!("&status={s}"));
    }
    if let Some(p) = pipeline {
        q.push_str(&format!("&pipeline={p}"));
    }
    q
}

/// `GET /runs?status=&pipeline=&before=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    op: Operator,
    Query(query): Query<Fields>,
) -> Result<Response, PageError> {
    let status = query
        .get("status")
        .and_then(|s| s.parse::<RunStatus>().ok());
    let pipeline = query
        .get("pipeline")
        .and_then(|p| p.parse::<Pipeline>().ok());
    let filter = RunFilter {
        status,
        pipeline,
        before: query.get("before").and_then(|b| b.parse().ok()),
    };
    let runs = views::list(&state.pool, &filter, RUNS_PER_PAGE).await?;
    let older = (runs.len() as i64 == RUNS_PER_PAGE)
        .then(|| runs.last().map(|r| r.id))
        .flatten()
        .map(|last| older_link(last, status, pipeline.map(Pipeline::name)));
    Ok(render(&RunsPage {
        layout: layout(&state, &op, "runs", None).await?,
        runs: runs.into_iter().map(RunRow::from).collect(),
        statuses: choices(
            RunStatus::ALL.iter().map(|s| s.as_str()),
            status.map_or("", RunStatus::as_str),
        )
        .into_iter()
        .map(|c| c.labelled(|v| op.lang.status(v)))
        .collect(),
        pipelines: pipeline_choices(pipeline.map_or("", Pipeline::name)),
        older,
    }))
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
    started_by: Option<String>,
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
    /// A run that ended without succeeding offers no Retry button: every window it left failed
    /// or pending has been loaded since by another run (the page says so).
    no_retry: bool,
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
    /// How many windows of the run are not listed ([`MAX_WINDOWS_SHOWN`]) and where they are:
    /// the catalog's words (markup), with a number and the run's id.
    hidden_note: Option<String>,
    csrf: String,
    /// Why QuickBooks refused the company's token, if it did: the reconnect banner, inside the
    /// part the page refreshes so it appears without a reload.
    auth_error: Option<String>,
    lang: Lang,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    run: RunDetail,
    live: String,
}

/// The most windows a run's page lists: ten years of days, with room to spare. A longer run's
/// page (a century is 36,525 windows, 15 MB of HTML refreshed every few seconds) lists first
/// the windows that are not succeeded, then succeeded ones, in day order, and says how many
/// more the API (`GET /api/v1/runs/{id}`) has.
const MAX_WINDOWS_SHOWN: usize = 4000;

/// The windows of `windows` a run's page lists, in day order, and how many it leaves out.
fn shown_windows(windows: Vec<WindowView>) -> (Vec<WindowView>, usize) {
    let hidden = windows.len().saturating_sub(MAX_WINDOWS_SHOWN);
    if hidden == 0 {
        return (windows, 0);
    }
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&i| windows[i].status == WindowStatus::Succeeded);
    let mut keep = vec![false; windows.len()];
    for &i in order.iter().take(MAX_WINDOWS_SHOWN) {
        keep[i] = true;
    }
    let kept = windows
        .into_iter()
        .zip(keep)
        .filter_map(|(w, keep)| keep.then_some(w))
        .collect();
    (kept, hidden)
}

fn window_rows(windows: Vec<WindowView>, lang: Lang) -> Vec<WindowRow> {
    windows
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
                .map_or_else(String::new, |d| format!("{} s", lang.decimal(d))),
            intuit_tid: tid_not_in(w.error.as_deref(), w.intuit_tid),
            error: w.error.unwrap_or_default(),
        })
        .collect()
}

/// QuickBooks' `intuit_tid` of a window's error, unless the error text already names it (a
/// failed window's stored error usually ends with `intuit_tid=…`): shown once, not twice.
fn tid_not_in(error: Option<&str>, tid: Option<String>) -> Option<String> {
    tid.filter(|tid| !error.is_some_and(|e| e.contains(tid.as_str())))
}

/// The live part of a run's page for `op`; `can_retry` from [`retry_offered`].
fn live(view: RunView, can_retry: bool, auth_error: Option<String>, op: &Operator) -> RunLive {
    let (windows, hidden) = shown_windows(view.windows.clone().unwrap_or_default());
    let windows = window_rows(windows, op.lang);
    // A final run is offered a retry whenever a window of it is still outstanding.
    let no_retry = view.status.is_final() && view.status != RunStatus::Succeeded && !can_retry;
    let run = RunDetail {
        no_retry,
        id: view.id,
        short_id: view.id.to_string().chars().take(8).collect(),
        icon: icon(view.status.as_str()),
        is_final: view.status.is_final(),
        can_retry,
        can_cancel: !view.status.is_final(),
        status: view.status.to_string(),
        pipeline: view.pipeline,
        realm_id: view.realm_id,
        fecha_inicio: view.fecha_inicio,
        fecha_fin: view.fecha_fin,
        trigger: view.trigger,
        trigger_id: view.trigger_id,
        started_by: view.started_by,
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
    let hidden_note = (hidden > 0).then(|| {
        let count = op.lang.num(hidden);
        op.lang
            .fill("run.windows_hidden", &[("count", &count), ("id", &run.id)])
    });
    RunLive {
        run,
        windows,
        hidden_note,
        csrf: op.session.csrf_token.clone(),
        auth_error,
        lang: op.lang,
    }
}

/// The live part of run `id`'s page for `op` (the 404 page when there is no such run).
async fn load_live(state: &AppState, id: Uuid, op: &Operator) -> Result<RunLive, PageError> {
    let view = views::get(&state.pool, id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let can_retry =
        retry_offered(&state.pool, view.id, view.status, view.windows_outstanding).await?;
    let auth_error = companies::list(&state.pool)
        .await?
        .into_iter()
        .find(|c| c.realm_id == view.realm_id)
        .and_then(|c| c.last_auth_error);
    Ok(live(view, can_retry, auth_error, op))
}

/// `GET /runs/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
    IdPath(id): IdPath,
    Query(query): Query<Fields>,
) -> Result<Response, PageError> {
    let live = load_live(&state, id, &op).await?;
    let flash = match query.get("flash").map(String::as_str) {
        Some("cancel") => Some(op.lang.t("run.cancel_requested").to_owned()),
        _ => None,
    };
    let run = live.run.clone();
    let live = live.render()?;
    let mut layout = layout(&state, &op, "runs", flash).await?;
    // The run's own company's banner is in the live part, which keeps it current.
    layout.banners.retain(|b| b.realm_id != run.realm_id);
    Ok(render(&RunPage { layout, run, live }))
}

/// `GET /runs/{id}/live`: the status part of the run's page, for the script to swap in.
pub(crate) async fn live_part(
    State(state): State<AppState>,
    op: Operator,
    IdPath(id): IdPath,
) -> Result<Response, PageError> {
    let live = load_live(&state, id, &op).await?;
    let (id, is_final) = (live.run.id, live.run.is_final);
    let html = live.render()?;
    Ok(Html(format!(
        "<div id=\"live\" data-run-id=\"{id}\" data-final=\"{is_final}\">{html}</div>"
    ))
    .into_response())
}

/// `GET /runs/{id}/log?after=N`: the run's log lines as JSON, for the script.
pub(crate) async fn log(
    State(state): State<AppState>,
    _op: Operator,
    IdPath(id): IdPath,
    Query(query): Query<Fields>,
) -> Result<Response, PageError> {
    let after = query
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let lines = logs::read(&state.pool, id, after, 1000).await?;
    let next = lines.last().map_or(after, |l| l.n);
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| serde_json::json!({"n": l.n, "level": l.level, "text": l.text}))
        .collect();
    Ok(axum::Json(serde_json::json!({"lines": lines, "next": next})).into_response())
}

/// `POST /runs/{id}/retry`: a new run of the windows that did not succeed, by the one retry rule
/// (a run left `running` by a dead worker is marked interrupted first); a run that cannot be
/// retried is shown again as it is.
pub(crate) async fn retry(
    State(state): State<AppState>,
    op: Operator,
    IdPath(id): IdPath,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    // The one retry rule; a run that cannot be retried is shown again as it is.
    let plan = match plan_retry(&state.pool, id).await {
        Ok(plan) => plan,
        Err(RetryRefusal::NotFound(_) | RetryRefusal::UnknownPipeline(_)) => {
            return Err(PageError::not_found());
        }
        Err(RetryRefusal::Active { .. } | RetryRefusal::NothingToRetry(_)) => {
            return Ok(Redirect::to(&format!("/runs/{id}")).into_response());
        }
        Err(RetryRefusal::Retrying { retry, .. }) => {
            return Ok(Redirect::to(&format!("/runs/{retry}")).into_response());
        }
        Err(RetryRefusal::Database(e)) => return Err(PageError::failure(&e)),
    };
    let retry = match queue_retry(&state.pool, &plan, Some(&op.session.username)).await {
        // Retried meanwhile (a second click, another operator): that retry's page.
        Ok(retry) | Err(RetryRefusal::Retrying { retry, .. }) => retry,
        Err(e) => return Err(PageError::failure(&e)),
    };
    state.wake_workers.notify_waiters();
    Ok(Redirect::to(&format!("/runs/{retry}")).into_response())
}

/// `POST /runs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    match queue::cancel_run(&state.pool, id).await? {
        queue::CancelOutcome::NotFound => Err(PageError::not_found()),
        _ => Ok(Redirect::to(&format!("/runs/{id}?flash=cancel")).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_WINDOWS_SHOWN, WindowStatus, WindowView, shown_windows, tid_not_in};

    fn window(day: usize, status: WindowStatus) -> WindowView {
        WindowView {
            start_utc: format!("{day:06}"),
            end_utc: String::new(),
            status,
            pages: 0,
            rows: 0,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            duration_s: None,
            error: None,
            intuit_tid: None,
        }
    }

    #[test]
    fn a_long_runs_page_lists_the_windows_not_succeeded_first_and_counts_the_rest() {
        let short: Vec<_> = (0..MAX_WINDOWS_SHOWN)
            .map(|d| window(d, WindowStatus::Succeeded))
            .collect();
        assert_eq!(shown_windows(short).1, 0, "ten years are listed whole");
        let failed = [7, 2500, 9000, 36_000];
        let century: Vec<_> = (0..36_525)
            .map(|d| {
                let status = if failed.contains(&d) {
                    WindowStatus::Failed
                } else if d >= 36_500 {
                    WindowStatus::Pending
                } else {
                    WindowStatus::Succeeded
                };
                window(d, status)
            })
            .collect();
        let (kept, hidden) = shown_windows(century);
        assert_eq!(
            (kept.len(), hidden),
            (MAX_WINDOWS_SHOWN, 36_525 - MAX_WINDOWS_SHOWN)
        );
        let days: Vec<&str> = kept.iter().map(|w| w.start_utc.as_str()).collect();
        assert!(days.windows(2).all(|p| p[0] < p[1]), "in day order");
        let not_succeeded = kept
            .iter()
            .filter(|w| w.status != WindowStatus::Succeeded)
            .count();
        assert_eq!(
            not_succeeded,
            4 + 25,
            "every failed and pending window is listed"
        );
    }

    #[test]
    fn an_intuit_tid_the_error_already_names_is_not_shown_again() {
        let tid = || Some("1-abc".to_owned());
        let named = "HTTP 500; intuit_tid=1-abc";
        assert_eq!(tid_not_in(Some(named), tid()), None);
        assert_eq!(tid_not_in(Some("HTTP 500"), tid()), tid());
        assert_eq!(tid_not_in(None, tid()), tid());
        assert_eq!(tid_not_in(Some(named), None), None);
    }
}
