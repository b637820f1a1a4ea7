//! Storing secrets for the API and the UI: the refresh token goes to its company's token row (and
//! clears the company's reconnect banner), the app keys also update the company record, and
//! everything else goes to the encrypted secret store. Listing is [`crate::service::secrets`].

use secrecy::{ExposeSecret as _, SecretString};

use super::AppState;
use super::api::resolve_realm;
use super::error::ApiError;
use crate::settings::env;
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
