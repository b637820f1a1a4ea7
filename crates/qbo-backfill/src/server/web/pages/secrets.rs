//! The Secrets page (`/secrets`): names and when they changed (never values), and a form that
//! replaces one (`POST /secrets`); the value is validated as the API validates it and never
//! echoed back.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use secrecy::SecretString;

use super::{Fields, company_ids, field, realm_field, shown_time};
use crate::domain::secret::SecretName;
use crate::server::AppState;
use crate::server::secrets::store_secret;
use crate::server::web::{CsrfForm, Layout, Operator, PageError, layout, render};

struct SecretRow {
    name: String,
    realm_id: String,
    updated_at: String,
    /// When a refresh token ends and in how many days (`—` when Intuit did not say).
    expires: String,
    /// It ends within 30 days: reconnect the company.
    ending_soon: bool,
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
) -> Result<Response, PageError> {
    let now = jiff::Timestamp::now();
    let secrets = crate::service::secrets::list(&state.pool, &state.key)
        .await?
        .into_iter()
        .map(|s| SecretRow {
            expires: match (s.expires_at, s.days_left(now)) {
                (Some(at), Some(days)) => format!(
                    "{} ({})",
                    shown_time(Some(at)),
                    op.lang.fill("secrets.days", &[("n", &op.lang.num(days))])
                ),
                _ => "—".to_owned(),
            },
            ending_soon: s.ending_soon(now),
            updated_at: shown_time(s.updated_at),
            realm_id: s.realm_id.unwrap_or_default(),
            name: s.name,
        })
        .collect();
    let companies = company_ids(state).await?;
    Ok(render(&SecretsPage {
        layout: layout(state, op, "secrets", flash).await?,
        secrets,
        error,
        form_name,
        companies,
    }))
}

/// `GET /secrets`.
pub(crate) async fn page(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Response, PageError> {
    secrets_page(&state, &op, None, None, String::new()).await
}

/// `POST /secrets`: replace a value (never echoed back).
pub(crate) async fn replace(
    State(state): State<AppState>,
    op: Operator,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let name = match SecretName::parse(field(&form, "name")) {
        Ok(name) => name,
        Err(refusal) => {
            let message = op
                .lang
                .refusal("invalid_secret_name", &format!("{refusal}."));
            return secrets_page(&state, &op, None, Some(message), String::new()).await;
        }
    };
    let value = match name.value(form.get("value").map_or("", String::as_str)) {
        Ok(value) => SecretString::from(value.to_owned()),
        Err(refusal) => {
            let error = Some(
                op.lang
                    .refusal("invalid_secret_value", &refusal.to_string()),
            );
            return secrets_page(&state, &op, None, error, name.to_string()).await;
        }
    };
    let name = name.to_string();
    match store_secret(&state, &name, &value, realm_field(&form)).await {
        Ok(()) => {
            let flash = op.lang.fill("flash.secret_replaced", &[("name", &name)]);
            secrets_page(&state, &op, Some(flash), None, String::new()).await
        }
        Err(e) if e.status.is_client_error() => {
            let error = op.lang.refusal(e.code, &e.message);
            secrets_page(&state, &op, None, Some(error), name).await
        }
        Err(e) => Err(PageError::failure(&e.message)),
    }
}
