//! The Verify page (`/verify`): each entity's last verification per company, and a form to
//! verify one entity or all over a range (`POST /verify`), validated as the CLI's `verify`.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{Choice, Fields, choices, company_ids, field, icon, realm_field, shown_time};
use crate::domain::run::RunOrigin;
use crate::server::AppState;
use crate::server::api::{enqueue_verify, resolve_realm, validate_verify};
use crate::server::error::ApiError;
use crate::server::web::{CsrfForm, Layout, Operator, PageError, layout, render};
use crate::store::raw::verify::{EntityVerification, latest_by_entity};

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

fn verify_row(v: EntityVerification) -> VerifyRow {
    VerifyRow {
        entity: v.entity,
        realm_id: v.realm_id,
        last_verified: shown_time(v.last_verified_at),
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
    }
}

async fn verify_page(
    state: &AppState,
    op: &Operator,
    flash: Option<String>,
    error: Option<String>,
    form: VerifyForm<'_>,
) -> Result<Response, PageError> {
    let companies: Vec<String> = company_ids(state).await?;
    let rows = latest_by_entity(&state.pool, &companies)
        .await?
        .into_iter()
        .map(verify_row)
        .collect();
    let names = std::iter::once("all").chain(crate::pipeline::verify::entity_names());
    let entity = if form.entity.is_empty() {
        "all"
    } else {
        form.entity
    };
    Ok(render(&VerifyPage {
        layout: layout(state, op, "verify", flash).await?,
        rows,
        entities: choices(names, entity)
            .into_iter()
            .map(|c| {
                c.labelled(|v| match v {
                    "all" => op.lang.t("verify.all").to_owned(),
                    other => other.to_owned(),
                })
            })
            .collect(),
        show_company: companies.len() > 1,
        companies,
        form_inicio: form.fecha_inicio.to_owned(),
        form_fin: form.fecha_fin.to_owned(),
        error,
    }))
}

/// `GET /verify`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    verify_page(&state, &op, None, None, VerifyForm::default()).await
}

/// `POST /verify`: verify one entity (then its run's page) or all (then this page, saying how
/// many runs were queued). Refused input is shown next to the form and writes nothing.
pub(crate) async fn start(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let sent = VerifyForm {
        entity: field(&form, "entity"),
        fecha_inicio: field(&form, "fecha_inicio"),
        fecha_fin: field(&form, "fecha_fin"),
    };
    let planned = async {
        let (pipelines, range) =
            validate_verify(sent.entity, Some(sent.fecha_inicio), Some(sent.fecha_fin))?;
        let realm_id = resolve_realm(&state, realm_field(&form)).await?;
        Ok::<_, ApiError>((pipelines, range, realm_id))
    };
    let (pipelines, range, realm_id) = match planned.await {
        Ok(planned) => planned,
        Err(e) => {
            let error = op.lang.refusal(e.code, &e.message);
            return verify_page(&state, &op, None, Some(error), sent).await;
        }
    };
    let by = (RunOrigin::Ui, Some(op.session.username.as_str()));
    let ids = match enqueue_verify(&state, &pipelines, &realm_id, range, by).await {
        Ok(ids) => ids,
        Err(e) if e.status.is_client_error() => {
            let error = op.lang.refusal(e.code, &e.message);
            return verify_page(&state, &op, None, Some(error), sent).await;
        }
        Err(e) => return Err(PageError::failure(&e.message)),
    };
    match ids.as_slice() {
        [one] => Ok(Redirect::to(&format!("/runs/{one}")).into_response()),
        many => {
            let flash = op.lang.fill(
                "verify.queued",
                &[
                    ("n", &many.len()),
                    ("inicio", &range.fecha_inicio),
                    ("fin", &range.fecha_fin),
                ],
            );
            verify_page(&state, &op, Some(flash), None, VerifyForm::default()).await
        }
    }
}
