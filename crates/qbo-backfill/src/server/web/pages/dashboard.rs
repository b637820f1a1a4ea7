//! The dashboard (`/`): the health of each company's copy at a glance. Per entity, the rows in
//! `raw` (live and marked deleted), the last successful backfill and sync, how far behind the
//! sync cursor is, the next trigger and the last verification; what failed or is stale stands
//! out. Per company, this month's requests against the monthly allowance. Filterable by name.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::shown_time;
use crate::server::AppState;
use crate::server::web::{Layout, Operator, PageError, layout, render};
use crate::service::dashboard::{CompanyHealth, EntityHealth, dashboard};
use crate::store::raw::health::PipelineRuns;

struct EntityRow {
    label: &'static str,
    table: &'static str,
    backfill_pipeline: &'static str,
    live: String,
    deleted: String,
    last_backfill: Cell,
    last_sync: Cell,
    freshness: String,
    stale: bool,
    next_trigger: String,
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
    requests: String,
    allowance: String,
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

/// `12,345`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cell(runs: &PipelineRuns) -> Cell {
    Cell {
        when: shown_time(runs.last_succeeded),
        failed_run: runs
            .latest_id
            .filter(|_| runs.latest_status.as_deref() == Some("failed")),
    }
}

fn row(e: &EntityHealth) -> EntityRow {
    EntityRow {
        label: e.spec.label,
        table: e.spec.table,
        backfill_pipeline: e.spec.backfill,
        live: grouped(u64::try_from(e.rows.live).unwrap_or(0)),
        deleted: grouped(u64::try_from(e.rows.deleted).unwrap_or(0)),
        last_backfill: cell(&e.backfill),
        last_sync: cell(&e.sync),
        freshness: e.freshness.text(),
        stale: e.freshness.is_stale(),
        next_trigger: e
            .next_trigger
            .as_ref()
            .map_or_else(|| "—".to_owned(), |(local, _)| local.clone()),
        verify: e.verify.as_ref().map(|v| VerifyCell {
            run_id: v.run_id,
            status: v.status.clone(),
            summary: format!(
                "{} agreed · {} drifted · {} failed",
                v.agreed, v.drifted, v.failed
            ),
            bad: v.failed > 0 || v.status == "failed",
        }),
        attention: e.needs_attention(),
    }
}

fn section(c: &CompanyHealth) -> CompanySection {
    let rows: Vec<EntityRow> = c.entities.iter().map(row).collect();
    CompanySection {
        realm_id: c.realm_id.clone(),
        requests: grouped(c.requests_this_month),
        allowance: grouped(c.allowance.monthly),
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
        companies: companies.iter().map(section).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(500_000), "500,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
