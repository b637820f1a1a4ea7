//! The company the environment and the secret store describe (app keys, realm, refresh token):
//! read, saved so workers can load it, and its refresh token seeded once.

use std::collections::HashMap;

use secrecy::SecretString;
use sqlx::PgPool;

use crate::settings::{ClientTuning, QboSettings, env};
use crate::store::StoreError;
use crate::store::auth::companies::{self, Company};
use crate::store::auth::secrets::{SecretKey, SecretStore};
use crate::store::auth::tokens::PgTokenStore;

/// Reads the stored values settings may fall back to (the app keys and realm stored with
/// `secrets set`).
///
/// # Errors
/// Database or decryption failures.
pub async fn stored_lookup(
    pool: &PgPool,
    key: &SecretKey,
) -> Result<impl Fn(&str) -> Option<SecretString> + use<>, StoreError> {
    let store = SecretStore::new(pool.clone(), key.clone());
    let mut values = HashMap::new();
    for name in [
        env::QBO_CLIENT_ID,
        env::QBO_CLIENT_SECRET,
        env::QBO_REALM_ID,
    ] {
        if let Some(v) = store.get(name).await? {
            values.insert(name.to_owned(), v);
        }
    }
    Ok(move |name: &str| values.get(name).cloned())
}

/// Saves the company the settings describe (so workers can load it) and seeds its refresh token
/// from `QBO_REFRESH_TOKEN` when the store holds none.
///
/// # Errors
/// Database or encryption failures.
pub async fn save_company(
    pool: &PgPool,
    key: &SecretKey,
    settings: &QboSettings,
) -> Result<(), StoreError> {
    let company = Company {
        realm_id: settings.realm_id.clone(),
        environment: settings.client.environment,
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        api_base_url: Some(settings.client.api_base_url.clone()),
        token_url: Some(settings.client.token_url.clone()),
        minor_version: Some(settings.client.minor_version),
    };
    companies::upsert(pool, key, &company).await?;
    if let Some(seed) = &settings.seed_refresh_token {
        PgTokenStore::new(pool.clone(), key.clone(), settings.realm_id.clone())
            .seed_if_empty(seed)
            .await?;
    }
    Ok(())
}

/// Saves the company that the environment and the secret store describe, if they describe one;
/// returns its realm id. Lets a server started before the secrets were stored pick the company
/// up without a restart.
///
/// # Errors
/// Database or encryption failures.
pub async fn company_from_environment(
    pool: &PgPool,
    key: &SecretKey,
) -> Result<Option<String>, StoreError> {
    let tuning = ClientTuning::default();
    match QboSettings::resolve(&tuning, &stored_lookup(pool, key).await?) {
        Ok(settings) => {
            save_company(pool, key, &settings).await?;
            Ok(Some(settings.realm_id))
        }
        Err(_) => Ok(None),
    }
}
