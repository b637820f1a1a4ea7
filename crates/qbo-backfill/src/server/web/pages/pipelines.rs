//! The Pipelines page (`/`): a card per backfill and incremental sync with its newest run and
//! next trigger, and its Run once form (`POST /runs`, or `POST /runs/preview` for its planned
//! cost, [`super::preview`]), refused input or the planned cost shown on its card; once
//! QuickBooks webhooks arrive, what became of them and their lag.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::preview::PreviewPanel;
use super::{Fields, company_ids, enqueue_and_show, field, icon, realm_field, shown};
use crate::domain::run::RunOrigin;
use crate::pipeline::{Mode, Pipeline};
use crate::server::AppState;
use crate::server::api::{range_for, resolve_realm, validate_run};
use crate::server::error::ApiError;
use crate::server::web::{CsrfForm, Lang, Layout, Operator, PageError, layout, render};
use crate::store::runs::queue::NewRun;
use crate::store::runs::triggers::{self, Trigger};
use crate::store::runs::views::{self, RunView};
use crate::store::webhooks::WebhookFigures;

struct LastRun {
    id: Uuid,
    status: String,
    icon: &'static str,
    fecha_inicio: String,
    fecha_fin: String,
    created_at: String,
}

/// The webhook figures, shown once any delivery arrived.
struct WebhookPanel {
    received: i64,
    coalesced: i64,
    ignored: i64,
    redelivered: i64,
    rejected: i64,
    syncs: i64,
    /// `p50 2.5 s · p99 3.1 s`, or `none yet`.
    lag: String,
}

impl WebhookPanel {
    fn from_figures(w: &WebhookFigures) -> Option<Self> {
        let by = |status: &str| {
            w.events
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n)
        };
        let received: i64 = w.events.iter().map(|(_, n)| *n).sum();
        if received == 0 && w.rejected == 0 {
            return None;
        }
        Some(Self {
            received,
            coalesced: by("synced"),
            ignored: by("ignored"),
            redelivered: w.redelivered,
            rejected: w.rejected,
            syncs: w.syncs,
            lag: w.lag_seconds.map_or_else(
                || "none yet".to_owned(),
                |(p50, p99)| format!("p50 {p50:.1} s · p99 {p99:.1} s"),
            ),
        })
    }
}

struct NextFire {
    local: String,
    utc: String,
}

struct PipelineCard {
    /// A heading before the first card of each kind (backfills, incremental syncs, reports).
    heading: Option<&'static str>,
    /// The kind, which the heading names.
    mode: Mode,
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
    /// The planned cost its Preview cost button asked for.
    preview: Option<PreviewPanel>,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    layout: Layout,
    pipelines: Vec<PipelineCard>,
    companies: Vec<String>,
    /// A refusal that belongs to no card (an unknown pipeline).
    page_error: Option<String>,
    /// The Load history form as posted (batch, fecha_inicio, fecha_fin), to fill it again.
    batch_form: (String, String, String),
    /// The planned cost of a batch its Preview cost button asked for.
    batch_preview: Option<PreviewPanel>,
    /// QuickBooks webhooks, once any arrived.
    webhooks: Option<WebhookPanel>,
}

/// A Run once or Load history form as posted, shown again with what became of it.
pub(crate) struct Posted<'a> {
    /// The pipeline or batch.
    pub(crate) pipeline: &'a str,
    /// The dates as typed.
    pub(crate) fecha_inicio: &'a str,
    pub(crate) fecha_fin: &'a str,
    /// Refused (nothing written), or its planned cost.
    pub(crate) outcome: Outcome,
}

/// What became of a posted form.
pub(crate) enum Outcome {
    /// Refused with this message (in the page's language).
    Refused(String),
    /// Its planned cost.
    Preview(Box<PreviewPanel>),
}

impl Posted<'_> {
    fn refusal(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Refused(message) => Some(message.clone()),
            Outcome::Preview(_) => None,
        }
    }

    fn preview(&self) -> Option<PreviewPanel> {
        match &self.outcome {
            Outcome::Preview(panel) => Some(PreviewPanel::clone(panel)),
            Outcome::Refused(_) => None,
        }
    }
}

/// The heading over the first card of `mode`, in `lang`.
fn heading(mode: Mode, lang: Lang) -> &'static str {
    lang.t(match mode {
        Mode::Backfill => "pipelines.heading_backfill",
        Mode::Incremental => "pipelines.heading_incremental",
        Mode::Verify => "pipelines.heading_verify",
        Mode::Report => "pipelines.heading_report",
    })
}

/// The soonest next fire of `pipeline`'s enabled triggers.
fn next_fire(all_triggers: &[Trigger], pipeline: Pipeline) -> Option<NextFire> {
    all_triggers
        .iter()
        .map(Trigger::view)
        .filter(|t| t.pipeline == pipeline.name() && t.enabled)
        .filter_map(|t| Some((t.next_fire_utc?, t.next_fire_local?)))
        .min()
        .map(|(utc, local)| NextFire {
            local,
            utc: shown(Some(&utc)),
        })
}

/// The card of `p` in `lang`: its newest run, next trigger, and the refused form when it was
/// `err`'s.
fn card(
    lang: Lang,
    p: Pipeline,
    previous: Option<&PipelineCard>,
    last: Option<RunView>,
    next_trigger: Option<NextFire>,
    err: Option<&Posted<'_>>,
) -> PipelineCard {
    let incremental = p.mode() == Mode::Incremental;
    let first_of_mode = previous.is_none_or(|c| c.mode != p.mode());
    PipelineCard {
        heading: first_of_mode.then_some(heading(p.mode(), lang)),
        mode: p.mode(),
        incremental,
        name: p.name(),
        entity: p.subject(),
        table: p.target_table().to_owned(),
        last_run: last.map(|r| LastRun {
            id: r.id,
            icon: icon(r.status.as_str()),
            status: r.status.to_string(),
            fecha_inicio: r.fecha_inicio,
            fecha_fin: r.fecha_fin,
            created_at: shown(r.created_at.as_deref()),
        }),
        next_trigger,
        form_inicio: err.map_or_else(String::new, |e| e.fecha_inicio.to_owned()),
        form_fin: err.map_or_else(String::new, |e| e.fecha_fin.to_owned()),
        error: err.and_then(Posted::refusal),
        preview: err.and_then(Posted::preview),
    }
}

/// The cards of every pipeline but verifications (they have their own page, `/verify`).
async fn cards(
    state: &AppState,
    lang: Lang,
    error: Option<&Posted<'_>>,
) -> Result<Vec<PipelineCard>, PageError> {
    let all_triggers = triggers::list(&state.pool).await?;
    let listed: Vec<Pipeline> = Pipeline::all()
        .filter(|p| p.mode() != Mode::Verify)
        .collect();
    let names: Vec<&str> = listed.iter().map(|p| p.name()).collect();
    let mut latest: std::collections::HashMap<String, RunView> =
        views::latest_per_pipeline(&state.pool, &names)
            .await?
            .into_iter()
            .map(|r| (r.pipeline.clone(), r))
            .collect();
    let mut cards: Vec<PipelineCard> = Vec::with_capacity(listed.len());
    for p in listed {
        let err = error.filter(|e| e.pipeline == p.name());
        let next = next_fire(&all_triggers, p);
        cards.push(card(
            lang,
            p,
            cards.last(),
            latest.remove(p.name()),
            next,
            err,
        ));
    }
    Ok(cards)
}

/// The Pipelines page, with `posted` shown on its card (or, for a batch, at the top).
pub(crate) async fn pipelines_page(
    state: &AppState,
    op: &Operator,
    posted: Option<Posted<'_>>,
) -> Result<Response, PageError> {
    let layout = layout(state, op, "pipelines", None).await?;
    let pipelines = cards(state, op.lang, posted.as_ref()).await?;
    let companies = company_ids(state).await?;
    let not_a_card = posted
        .as_ref()
        .filter(|e| e.pipeline.parse::<Pipeline>().is_err());
    let page_error = not_a_card.and_then(Posted::refusal);
    let batch_preview = not_a_card.and_then(Posted::preview);
    let batch_form = not_a_card.map_or_else(Default::default, |p| {
        (
            p.pipeline.to_owned(),
            p.fecha_inicio.to_owned(),
            p.fecha_fin.to_owned(),
        )
    });
    let webhooks = WebhookPanel::from_figures(&crate::store::webhooks::figures(&state.pool).await?);
    Ok(render(&PipelinesPage {
        layout,
        pipelines,
        companies,
        page_error,
        batch_form,
        batch_preview,
        webhooks,
    }))
}

/// `GET /`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    pipelines_page(&state, &op, None).await
}

/// `POST /runs`: Run once; refused input is shown on the pipeline's card and writes nothing.
pub(crate) async fn run_once(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let (pipeline, inicio, fin) = (
        field(&form, "pipeline"),
        field(&form, "fecha_inicio"),
        field(&form, "fecha_fin"),
    );
    let planned = async {
        let (pipeline, dates) = validate_run(pipeline, Some(inicio), Some(fin))?;
        let realm_id = resolve_realm(&state, realm_field(&form)).await?;
        let (range, windows) = range_for(&state, &realm_id, pipeline, dates).await?;
        Ok::<_, ApiError>((pipeline, realm_id, range, windows))
    };
    let (pipeline_v, realm_id, range, windows) = match planned.await {
        Ok(planned) => planned,
        Err(e) => {
            let refused = Posted {
                pipeline,
                fecha_inicio: inicio,
                fecha_fin: fin,
                outcome: Outcome::Refused(op.lang.refusal(e.code, &e.message)),
            };
            return pipelines_page(&state, &op, Some(refused)).await;
        }
    };
    let new = NewRun {
        pipeline: pipeline_v,
        realm_id: &realm_id,
        range,
        windows: &windows,
        trigger: RunOrigin::Ui,
        trigger_id: None,
        started_by: Some(&op.session.username),
        retry_of: None,
        requeue_on_loss: true,
    };
    enqueue_and_show(&state, &new).await
}
