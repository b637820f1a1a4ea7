//! The Triggers page (`/triggers`): every trigger with its next fire (local and UTC), a form to
//! create a one-time or cron trigger with a time-zone picker, and enable, disable and delete.
//! Validation and firing rules live in `orchestrator::triggers`, as for the API.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::{
    Choice, Fields, company_ids, field, icon, realm_field, shown, shown_time, target_choices,
};
use crate::orchestrator::triggers::{DEFAULT_TIME_ZONE, NewTrigger, TriggerPatch};
use crate::server::AppState;
use crate::server::api::resolve_realm;
use crate::server::web::{CsrfForm, ItemAction, Layout, Operator, PageError, layout, render};
use crate::store::runs::triggers::{self, Trigger, TriggerStoreError};

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

fn trigger_row(t: &Trigger) -> TriggerRow {
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
) -> Result<Response, PageError> {
    let list = triggers::list(&state.pool).await?;
    let layout = layout(state, op, "triggers", flash).await?;
    let companies = company_ids(state).await?;
    let form = if form.time_zone.is_empty() {
        TriggerForm {
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            kind: "once".to_owned(),
            ..form
        }
    } else {
        form
    };
    Ok(render(&TriggersPage {
        layout,
        triggers: list.iter().map(trigger_row).collect(),
        error,
        pipelines: target_choices(&form.pipeline),
        form,
        zones: zone_names(),
        companies,
    }))
}

/// `GET /triggers`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    triggers_page(&state, &op, None, None, TriggerForm::default()).await
}

/// The trigger form as sent (echoed back when refused); `kind` is `once` unless `cron`.
fn sent_form(form: &Fields) -> TriggerForm {
    let kind = if field(form, "kind") == "cron" {
        "cron"
    } else {
        "once"
    };
    TriggerForm {
        pipeline: field(form, "pipeline").to_owned(),
        kind: kind.to_owned(),
        local_time: field(form, "local_time").to_owned(),
        cron: field(form, "cron").to_owned(),
        time_zone: field(form, "time_zone").to_owned(),
        fecha_inicio: field(form, "fecha_inicio").to_owned(),
        fecha_fin: field(form, "fecha_fin").to_owned(),
    }
}

/// The trigger `sent` asks for, for the company `realm`.
fn new_trigger(sent: &TriggerForm, realm: String) -> NewTrigger {
    let once = sent.kind == "once";
    NewTrigger {
        pipeline: Some(sent.pipeline.clone()),
        kind: Some(sent.kind.clone()),
        local_time: once.then(|| sent.local_time.clone()),
        cron: (!once).then(|| sent.cron.clone()),
        time_zone: Some(sent.time_zone.clone()).filter(|z| !z.is_empty()),
        params: Some(serde_json::json!({
            "fecha_inicio": sent.fecha_inicio,
            "fecha_fin": sent.fecha_fin,
        })),
        realm_id: Some(realm),
        enabled: Some(true),
    }
}

/// `GET /triggers/when?…` with the form's fields: when the trigger the form describes would fire
/// next, in its zone and in UTC, or why creating it would be refused (the same validation as
/// `POST /triggers`), as `{"ok": bool, "text": …}` in the operator's language. The form shows it
/// as it is typed (`app.js`); nothing is written.
pub(crate) async fn when(op: Operator, Query(form): Query<Fields>) -> Response {
    let mut asked = new_trigger(&sent_form(&form), String::new());
    asked.realm_id = None;
    let (ok, text) = match asked.validate(jiff::Timestamp::now()) {
        Ok((def, arming)) => match arming.next_fire_utc {
            Some(at) => {
                let local = def.local_text(at);
                let utc = shown_time(Some(at));
                let args: [(&str, &dyn std::fmt::Display); 3] =
                    [("local", &local), ("zone", &def.zone.name), ("utc", &utc)];
                (true, op.lang.fill("triggers.fires_at", &args))
            }
            None => (false, String::new()),
        },
        Err(e) => (false, op.lang.refusal("invalid_trigger", &e.to_string())),
    };
    axum::Json(serde_json::json!({ "ok": ok, "text": text })).into_response()
}

/// `POST /triggers`: a one-time or cron trigger from the form.
pub(crate) async fn create(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let sent = sent_form(&form);
    let realm = match resolve_realm(&state, realm_field(&form)).await {
        Ok(r) => r,
        Err(e) => {
            let error = op.lang.refusal(e.code, &e.message);
            return triggers_page(&state, &op, None, Some(error), sent).await;
        }
    };
    match triggers::create(
        &state.pool,
        &new_trigger(&sent, realm),
        jiff::Timestamp::now(),
    )
    .await
    {
        Ok(t) => {
            let v = t.view();
            let local = v.next_fire_local.unwrap_or_else(|| "—".to_owned());
            let utc = shown(v.next_fire_utc.as_deref());
            let flash = op
                .lang
                .fill("triggers.created", &[("local", &local), ("utc", &utc)]);
            triggers_page(&state, &op, Some(flash), None, TriggerForm::default()).await
        }
        Err(TriggerStoreError::Invalid(e)) => {
            let error = op.lang.refusal("invalid_trigger", &e.to_string());
            triggers_page(&state, &op, None, Some(error), sent).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /triggers/{id}/enable|disable|delete`.
pub(crate) async fn action(
    State(state): State<AppState>,
    op: Operator,
    ItemAction { id, action }: ItemAction,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let result = match action.as_str() {
        "enable" | "disable" => {
            let patch = TriggerPatch {
                enabled: Some(action == "enable"),
                ..TriggerPatch::default()
            };
            let now = jiff::Timestamp::now();
            triggers::update(&state.pool, id, &patch, now)
                .await
                .map(drop)
        }
        "delete" => triggers::delete(&state.pool, id).await,
        _ => return Err(PageError::not_found()),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/triggers").into_response()),
        Err(TriggerStoreError::NotFound(_)) => Err(PageError::not_found()),
        Err(TriggerStoreError::Invalid(e)) => {
            let error = Some(op.lang.refusal("invalid_trigger", &e.to_string()));
            triggers_page(&state, &op, None, error, TriggerForm::default()).await
        }
        Err(e) => Err(e.into()),
    }
}
