//! Preview cost on the Pipelines page: `POST /runs/preview` (a card's Run once form) and `POST
//! /batches/preview` (the Load history form) show what the form would start would cost
//! ([`crate::service::preview`], as `POST /api/v1/runs/preview` answers it) on its card or at
//! the top, with the form filled in again for Run once; nothing is started or written. Refused
//! input is shown as Run once shows it, and costs no request.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;

use super::pipelines::{Outcome, Posted, pipelines_page};
use super::{Fields, field, realm_field};
use crate::server::AppState;
use crate::server::preview_api::{estimate, validate_target};
use crate::server::web::{CsrfForm, Lang, Operator, PageError};
use crate::service::preview::{Basis, Preview};

/// A planned cost as a page shows it, in the page's language.
#[derive(Debug, Clone)]
pub(crate) struct PreviewPanel {
    pub(super) requests: String,
    pub(super) rows: String,
    /// How firm the figures are, in words.
    pub(super) basis: &'static str,
    /// `3 min 20 s`.
    pub(super) duration: String,
    /// The limits that set it, in words.
    pub(super) limits: String,
    pub(super) preview_requests: String,
    /// `This month (2026-12)`.
    pub(super) month: String,
    /// Spent, after the run, percent, allowance, in words.
    pub(super) month_text: String,
    /// The run would take the month to 80 % of its allowance (or past it).
    pub(super) warning: Option<String>,
    /// The run would take the month past its allowance.
    pub(super) over: bool,
    /// Each run of a batch.
    pub(super) runs: Vec<PreviewRow>,
}

/// One run of a batch's planned cost.
#[derive(Debug, Clone)]
pub(super) struct PreviewRow {
    pub(super) pipeline: &'static str,
    pub(super) requests: String,
    pub(super) rows: String,
}

/// `42 s`, `3 min 20 s`, `2 h 05 min`.
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

impl PreviewPanel {
    /// `p` in `lang`.
    pub(crate) fn new(lang: Lang, p: &Preview) -> Self {
        let num = |n: u64| lang.num(i64::try_from(n).unwrap_or(i64::MAX));
        let limit = |n: Option<u32>| n.map_or_else(|| "—".to_owned(), |n| n.to_string());
        let [per_second, per_minute, _] = p.limits;
        let month = &p.month;
        let warning = if month.exceeds() {
            Some(lang.fill(
                "preview.warn_over",
                &[
                    ("after", &num(month.after())),
                    ("allowance", &num(month.allowance.monthly)),
                ],
            ))
        } else if month.reaches_warning() {
            Some(lang.fill("preview.warn_80", &[("percent", &month.percent_after())]))
        } else {
            None
        };
        Self {
            requests: num(p.requests),
            rows: num(p.rows),
            basis: lang.t(match p.basis {
                Basis::Counted => "preview.basis_counted",
                Basis::Spread => "preview.basis_spread",
                Basis::AtLeast => "preview.basis_at_least",
            }),
            duration: duration_text(p.least_duration),
            limits: lang.fill(
                "preview.limits",
                &[
                    ("per_second", &limit(per_second)),
                    ("per_minute", &limit(per_minute)),
                ],
            ),
            preview_requests: lang.fill("preview.cost_text", &[("n", &num(p.preview_requests))]),
            month: lang.fill("preview.month", &[("month", &month.month)]),
            month_text: lang.fill(
                "preview.month_text",
                &[
                    ("spent", &num(month.spent)),
                    ("after", &num(month.after())),
                    ("percent", &month.percent_after()),
                    ("allowance", &num(month.allowance.monthly)),
                ],
            ),
            warning,
            over: month.exceeds(),
            runs: p
                .runs
                .iter()
                .map(|r| PreviewRow {
                    pipeline: r.pipeline.name(),
                    requests: num(r.requests),
                    rows: r.rows.map_or_else(|| "—".to_owned(), num),
                })
                .collect(),
        }
    }
}

/// Shows the planned cost of the form `name` names (a pipeline or a batch) on the Pipelines
/// page, or why it was refused.
async fn show(
    state: &AppState,
    op: &Operator,
    form: &Fields,
    name: &str,
) -> Result<Response, PageError> {
    let (inicio, fin) = (field(form, "fecha_inicio"), field(form, "fecha_fin"));
    let estimated = async {
        let (target, dates) = validate_target(name, Some(inicio), Some(fin))?;
        estimate(state, target, dates, realm_field(form)).await
    };
    let outcome = match estimated.await {
        Ok(p) => Outcome::Preview(Box::new(PreviewPanel::new(op.lang, &p))),
        Err(e) => Outcome::Refused(op.lang.refusal(e.code, &e.message)),
    };
    let posted = Posted {
        pipeline: name,
        fecha_inicio: inicio,
        fecha_fin: fin,
        outcome,
    };
    pipelines_page(state, op, Some(posted)).await
}

/// `POST /runs/preview`: Preview cost on a pipeline's card.
pub(crate) async fn run_preview(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    show(&state, &op, &form, field(&form, "pipeline")).await
}

/// `POST /batches/preview`: Preview cost of the Load history form.
pub(crate) async fn batch_preview(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    show(&state, &op, &form, field(&form, "batch")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_seconds_minutes_or_hours() {
        assert_eq!(duration_text(Duration::from_secs(0)), "0 s");
        assert_eq!(duration_text(Duration::from_secs(99)), "1 min 39 s");
        assert_eq!(duration_text(Duration::from_secs(7500)), "2 h 05 min");
    }
}
