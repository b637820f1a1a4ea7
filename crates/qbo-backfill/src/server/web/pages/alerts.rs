//! The Alerts page (`/alerts`): the channels (a webhook's URL as its scheme and host, or an e-mail
//! address, and the events each receives), a form to create one (a webhook's signing secret is
//! shown once, on the page that answers the form), Test and Delete buttons, and the recent
//! deliveries with their state. Checked as the API checks them (`domain::alert`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::{Fields, field, icon, shown};
use crate::domain::alert::{AlertKind, ChannelKind, FIRST_DELAY, NewChannel};
use crate::server::AppState;
use crate::server::web::{CsrfForm, ItemAction, Layout, Operator, PageError, layout, render};
use crate::service::alerts::{self, AlertError, Sender, shown_target};
use crate::store::alerts::{ChannelRow, DeliveryRow};

/// Deliveries listed on the page.
const RECENT: i64 = 50;

struct ChannelLine {
    id: Uuid,
    name: String,
    kind: String,
    target: String,
    events: String,
}

struct DeliveryLine {
    event: String,
    channel: String,
    state: String,
    state_icon: &'static str,
    attempts: i32,
    last_error: String,
    occurred_at: String,
    delivered_at: String,
}

/// An event's checkbox.
struct EventBox {
    name: &'static str,
    checked: bool,
}

/// The create form as sent (echoed back when refused, without a webhook's URL).
#[derive(Default)]
struct ChannelForm {
    name: String,
    kind: String,
    target: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    channels: Vec<ChannelLine>,
    deliveries: Vec<DeliveryLine>,
    events: Vec<EventBox>,
    form: ChannelForm,
    error: Option<String>,
    notice: Option<String>,
    /// A webhook's signing secret, on the page that answers its creation only.
    secret: Option<String>,
}

fn channel_line(c: &ChannelRow) -> ChannelLine {
    ChannelLine {
        id: c.id,
        name: c.name.clone(),
        kind: c.kind.clone(),
        target: shown_target(c),
        events: c.events.join(", "),
    }
}

fn delivery_line(d: &DeliveryRow) -> DeliveryLine {
    let state_icon = match d.state.as_str() {
        "delivered" => icon("succeeded"),
        "failed" => icon("failed"),
        _ => icon("queued"),
    };
    DeliveryLine {
        event: d.event.clone(),
        channel: d.channel_name.clone(),
        state: d.state.clone(),
        state_icon,
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        occurred_at: shown(Some(&d.occurred_at.0.to_string())),
        delivered_at: shown(d.delivered_at.map(|t| t.0.to_string()).as_deref()),
    }
}

/// What the page shows besides its frame.
#[derive(Default)]
struct Shown {
    flash: Option<String>,
    /// A failure of a Test, shown at the top.
    notice: Option<String>,
    error: Option<String>,
    secret: Option<String>,
    form: ChannelForm,
    checked: Vec<String>,
}

async fn alerts_page(state: &AppState, op: &Operator, shown: Shown) -> Result<Response, PageError> {
    let channels = crate::store::alerts::list_channels(&state.pool).await?;
    let deliveries = crate::store::alerts::recent(&state.pool, None, RECENT).await?;
    let events = AlertKind::SUBSCRIBABLE
        .iter()
        .map(|k| EventBox {
            name: k.as_str(),
            checked: shown.checked.iter().any(|c| c == k.as_str()),
        })
        .collect();
    let form = if shown.form.kind.is_empty() {
        ChannelForm {
            kind: "webhook".to_owned(),
            ..shown.form
        }
    } else {
        shown.form
    };
    Ok(render(&AlertsPage {
        layout: layout(state, op, "alerts", shown.flash).await?,
        channels: channels.iter().map(channel_line).collect(),
        deliveries: deliveries.iter().map(delivery_line).collect(),
        events,
        form,
        error: shown.error,
        notice: shown.notice,
        secret: shown.secret,
    }))
}

/// `GET /alerts`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    alerts_page(&state, &op, Shown::default()).await
}

/// The channel the form asks for: `target` is the URL of a webhook or the address of an
/// e-mail; events are the checked boxes `event_<name>`.
fn new_channel(form: &Fields) -> (NewChannel, ChannelForm, Vec<String>) {
    let sent = ChannelForm {
        name: field(form, "name").to_owned(),
        kind: field(form, "kind").to_owned(),
        target: field(form, "target").to_owned(),
    };
    let checked: Vec<String> = AlertKind::SUBSCRIBABLE
        .iter()
        .map(|k| k.as_str())
        .filter(|name| form.contains_key(&format!("event_{name}")))
        .map(str::to_owned)
        .collect();
    let email = sent.kind == "email";
    let new = NewChannel {
        name: Some(sent.name.clone()),
        kind: Some(sent.kind.clone()),
        url: (!email).then(|| sent.target.clone()),
        to: email.then(|| sent.target.clone()),
        events: Some(checked.clone()),
    };
    (new, sent, checked)
}

/// `POST /alerts`: create a channel from the form.
pub(crate) async fn create(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let (new, sent, checked) = new_channel(&form);
    match alerts::create_channel(&state.pool, &state.key, &new).await {
        Ok(created) => {
            let flash = Some(
                op.lang
                    .fill("alerts.created", &[("name", &created.channel.name)]),
            );
            let shown = Shown {
                flash,
                secret: created.secret,
                ..Shown::default()
            };
            alerts_page(&state, &op, shown).await
        }
        Err(AlertError::Store(e)) => Err(e.into()),
        Err(e) => {
            // A webhook's URL is its key (and a refused one may carry a password): the form
            // keeps the name, the kind and the events, never the URL. An address comes back.
            let form = if sent.kind == ChannelKind::Email.as_str() {
                sent
            } else {
                ChannelForm {
                    target: String::new(),
                    ..sent
                }
            };
            let shown = Shown {
                error: Some(format!("{e}.")),
                form,
                checked,
                ..Shown::default()
            };
            alerts_page(&state, &op, shown).await
        }
    }
}

/// `POST /alerts/{id}/test|delete`.
pub(crate) async fn action(
    State(state): State<AppState>,
    op: Operator,
    ItemAction { id, action }: ItemAction,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    // Ok((true, text)): a confirmation; Ok((false, text)): a failure to show in red.
    let said = match action.as_str() {
        "delete" => {
            let channel = alerts::channel(&state.pool, id).await;
            alerts::delete_channel(&state.pool, id).await.map(|()| {
                let name = channel.map(|c| c.name).unwrap_or_default();
                (true, op.lang.fill("alerts.deleted", &[("name", &name)]))
            })
        }
        "test" => {
            let sender = Sender::new(state.pool.clone(), state.key.clone(), FIRST_DELAY)
                .map_err(|e| PageError::failure(&e))?;
            alerts::test_channel(&sender, id).await.map(|d| {
                if d.state == "delivered" {
                    (
                        true,
                        op.lang.fill("alerts.test_ok", &[("name", &d.channel_name)]),
                    )
                } else {
                    let why = d.last_error.unwrap_or_default();
                    (
                        false,
                        op.lang.fill(
                            "alerts.test_failed",
                            &[("name", &d.channel_name), ("why", &why)],
                        ),
                    )
                }
            })
        }
        _ => return Err(PageError::not_found()),
    };
    let shown = match said {
        Ok((true, text)) => Shown {
            flash: Some(text),
            ..Shown::default()
        },
        Ok((false, text)) => Shown {
            notice: Some(text),
            ..Shown::default()
        },
        Err(AlertError::NotFound(_)) => return Err(PageError::not_found()),
        Err(AlertError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(PageError::failure(&e)),
    };
    alerts_page(&state, &op, shown).await
}
