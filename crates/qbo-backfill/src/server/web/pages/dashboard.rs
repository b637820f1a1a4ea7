//! The dashboard (`/`): the health of each company's copy at a glance. Per entity, the rows in
//! `raw` (live and marked deleted), the last successful backfill and sync, how far behind the
//! sync cursor is, the next trigger and the last verification; what failed or is stale stands
//! out. Per company, this month's requests against the monthly allowance. Filterable by name.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{shown, shown_time};
use crate::domain::health::Freshness;
use crate::server::AppState;
use crate::server::web::Lang;
use crate::server::web::{Layout, Operator, PageError, layout, render};
use crate::service::dashboard::{CompanyHealth, EntityHealth, dashboard};
use crate::store::raw::health::PipelineRuns;

struct EntityRow {
    label: &'static str,
    table: &'static str,
    backfill_pipeline: &'static str,
    live: i64,
    deleted: i64,
    last_backfill: Cell,
    last_sync: Cell,
    freshness: String,
    stale: bool,
    next_trigger: String,
    /// The same instant in UTC (none without a trigger).
    next_trigger_utc: Option<String>,
    verify: Option<VerifyCell>,
    attention: bool,
}

/// A run column: when the newest success ended, and the newest run when it failed.
struct Cell {
    when: String,
    failed_run: Option<uuid::Uuid>,
}

struct VerifyCell {
    run_id: uuid::Uuid,
    status: String,
    summary: String,
    bad: bool,
}

struct CompanySection {
    realm_id: String,
    requests: i64,
    allowance: i64,
    percent: u64,
    warn: bool,
    rows: Vec<EntityRow>,
    attention: usize,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    companies: Vec<CompanySection>,
}

fn cell(runs: &PipelineRuns) -> Cell {
    Cell {
        when: shown_time(runs.last_succeeded),
        failed_run: runs
            .latest_id
            .filter(|_| runs.latest_status.as_deref() == Some("failed")),
    }
}

/// How far behind a sync is, in the page's language.
fn freshness_text(f: Freshness, lang: Lang) -> String {
    let behind = match f {
        Freshness::NeverSynced => return lang.t("dash.never_synced").to_owned(),
        Freshness::Fresh(d) | Freshness::Stale(d) => d,
    };
    let minutes = behind.as_secs() / 60;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => lang.fill("dash.behind_m", &[("m", &m)]),
        (0, h) => lang.fill("dash.behind_hm", &[("h", &h), ("m", &m)]),
        (d, h) => lang.fill("dash.behind_dh", &[("d", &d), ("h", &h)]),
    }
}

fn row(e: &EntityHealth, lang: Lang) -> EntityRow {
    EntityRow {
        label: e.spec.label,
        table: e.spec.table,
        backfill_pipeline: e.spec.backfill,
        live: e.rows.live,
        deleted: e.rows.deleted,
        last_backfill: cell(&e.backfill),
        last_sync: cell(&e.sync),
        freshness: freshness_text(e.freshness, lang),
        stale: e.freshness.is_stale(),
        next_trigger: e
            .next_trigger
            .as_ref()
            .map_or_else(|| "—".to_owned(), |(local, _)| local.clone()),
        next_trigger_utc: e
            .next_trigger
            .as_ref()
            .map(|(_, utc)| shown(Some(utc.as_str()))),
        verify: e.verify.as_ref().map(|v| VerifyCell {
            run_id: v.run_id,
            status: lang.status(&v.status),
            summary: lang.fill(
                "dash.verify_summary",
                &[("a", &v.agreed), ("d", &v.drifted), ("f", &v.failed)],
            ),
            bad: v.failed > 0 || v.status == "failed",
        }),
        attention: e.needs_attention(),
    }
}

fn section(c: &CompanyHealth, lang: Lang) -> CompanySection {
    let rows: Vec<EntityRow> = c.entities.iter().map(|e| row(e, lang)).collect();
    CompanySection {
        realm_id: c.realm_id.clone(),
        requests: i64::try_from(c.requests_this_month).unwrap_or(i64::MAX),
        allowance: i64::try_from(c.allowance.monthly).unwrap_or(i64::MAX),
        percent: c.allowance.percent(c.requests_this_month).min(100),
        warn: c.allowance.warns(c.requests_this_month),
        attention: rows.iter().filter(|r| r.attention).count(),
        rows,
    }
}

/// `GET /`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    let allowance = crate::service::allowance::configured().unwrap_or_default();
    let companies = dashboard(&state.pool, jiff::Timestamp::now(), allowance)
        .await
        .map_err(|e| PageError::failure(&e.to_string()))?;
    Ok(render(&DashboardPage {
        layout: layout(&state, &op, "dashboard", None).await?,
        companies: companies.iter().map(|c| section(c, op.lang)).collect(),
    }))
}
