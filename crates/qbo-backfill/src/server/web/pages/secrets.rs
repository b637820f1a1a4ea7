//! The Secrets page (`/secrets`): names and when they changed (never values), and a form that
//! replaces one (`POST /secrets`); the value is validated as the API validates it and never
//! echoed back.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use secrecy::SecretString;

use super::{Fields, company_ids, field, realm_field, shown};
use crate::domain::secret::SecretName;
use crate::server::AppState;
use crate::server::secrets::{list_secrets, store_secret};
use crate::server::web::{CsrfForm, Layout, Operator, PageError, layout, render};

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
) -> Result<Response, PageError> {
    let secrets = list_secrets(state)
        .await?
        .into_iter()
        .map(|s| SecretRow {
            name: s.name,
            realm_id: s.realm_id.unwrap_or_default(),
            updated_at: shown(s.updated_at.as_deref()),
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
            let message = format!("{refusal}.");
            return secrets_page(&state, &op, None, Some(message), String::new()).await;
        }
    };
    let value = match name.value(form.get("value").map_or("", String::as_str)) {
        Ok(value) => SecretString::from(value.to_owned()),
        Err(refusal) => {
            let error = Some(refusal.to_string());
            return secrets_page(&state, &op, None, error, name.to_string()).await;
        }
    };
    let name = name.to_string();
    match store_secret(&state, &name, &value, realm_field(&form)).await {
        Ok(()) => {
            let flash = format!("{name} replaced.");
            secrets_page(&state, &op, Some(flash), None, String::new()).await
        }
        Err(e) if e.status.is_client_error() => {
            secrets_page(&state, &op, None, Some(e.message), name).await
        }
        Err(e) => Err(PageError::failure(&e.message)),
    }
}
