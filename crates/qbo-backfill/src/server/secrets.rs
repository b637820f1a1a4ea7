//! Listing and storing secrets for the API and the UI. Listing gives names and when they changed,
//! never values: the secret store's entries, then each company's refresh token. Storing: the refresh token goes to its company's token row
//! (and clears the company's reconnect banner), the app keys also update the company record, and
//! everything else goes to the encrypted secret store.

use secrecy::{ExposeSecret as _, SecretString};

use super::AppState;
use super::api::resolve_realm;
use super::error::ApiError;
use crate::settings::env;
use crate::store::StoreError;
use crate::store::auth::companies;
use crate::store::auth::secrets::{SecretStore, redact};
use crate::store::auth::tokens::PgTokenStore;

/// Stores `value` under `name` (for the refresh token and the app keys, for the company
/// `realm_id`, or the only one).
///
/// # Errors
/// No company to attach a company secret to; database failures.
pub(crate) async fn store_secret(
    state: &AppState,
    name: &str,
    value: &SecretString,
    realm_id: Option<&str>,
) -> Result<(), ApiError> {
    if name == env::QBO_REFRESH_TOKEN {
        let realm = resolve_realm(state, realm_id).await?;
        PgTokenStore::new(state.pool.clone(), state.key.clone(), realm.clone())
            .replace_refresh_token(value)
            .await?;
        companies::set_auth_error(&state.pool, &realm, None).await?;
        tracing::info!(
            "Stored a new refresh token for realm {realm} ({}) through the API",
            redact(value.expose_secret())
        );
        return Ok(());
    }
    SecretStore::new(state.pool.clone(), state.key.clone())
        .set(name, value)
        .await?;
    if name == env::QBO_CLIENT_SECRET || name == env::QBO_CLIENT_ID {
        let realm = match realm_id {
            Some(r) => Some(resolve_realm(state, Some(r)).await?),
            None => companies::default_realm(&state.pool).await?.ok(),
        };
        if let Some(realm) = realm
            && let Some(mut company) = companies::get(&state.pool, &state.key, &realm).await?
        {
            if name == env::QBO_CLIENT_SECRET {
                company.client_secret = value.clone();
            } else {
                company.client_id = value.expose_secret().to_owned();
            }
            companies::upsert(&state.pool, &state.key, &company).await?;
        }
    }
    tracing::info!(
        "Stored {name} ({}) through the API",
        redact(value.expose_secret())
    );
    Ok(())
}

/// A stored secret as listed: never its value.
pub(crate) struct ListedSecret {
    /// Its name (`QBO_REFRESH_TOKEN` for a company's token).
    pub name: String,
    /// The company, for a refresh token.
    pub realm_id: Option<String>,
    /// When it last changed.
    pub updated_at: Option<String>,
}

/// Every stored secret: the secret store's, then each company's refresh token.
///
/// # Errors
/// Database failures.
pub(crate) async fn list_secrets(state: &AppState) -> Result<Vec<ListedSecret>, StoreError> {
    let mut listed: Vec<ListedSecret> = SecretStore::new(state.pool.clone(), state.key.clone())
        .list()
        .await?
        .into_iter()
        .map(|s| ListedSecret {
            name: s.name,
            realm_id: None,
            updated_at: s.updated_at.map(|t| t.to_string()),
        })
        .collect();
    for company in companies::list(&state.pool).await? {
        let tokens = PgTokenStore::new(
            state.pool.clone(),
            state.key.clone(),
            company.realm_id.clone(),
        );
        if let Some(status) = tokens.status().await? {
            listed.push(ListedSecret {
                name: env::QBO_REFRESH_TOKEN.to_owned(),
                realm_id: Some(company.realm_id),
                updated_at: status.updated_at.map(|t| t.to_string()),
            });
        }
    }
    Ok(listed)
}
