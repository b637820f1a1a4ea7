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
use crate::store::infra::budget::PgBudget;

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

/// The QuickBooks client of a stored `company` with `tuning` applied: its tokens in the secret
/// store, its requests also taking slots of the company's request budget in PostgreSQL (shared
/// with every other process, and counted in the month's requests). The one way every part of
/// the program (workers, estimates) builds a company's client.
///
/// # Errors
/// Unusable settings, said in one line naming the company.
pub fn company_client(
    pool: &PgPool,
    key: &SecretKey,
    company: &Company,
    tuning: &ClientTuning,
) -> Result<qbo::QboClient, String> {
    let realm_id = company.realm_id.as_str();
    let mut settings = company.client_settings();
    tuning.apply(&mut settings);
    let tokens = PgTokenStore::new(pool.clone(), key.clone(), realm_id);
    let budget = PgBudget::for_client(pool.clone(), realm_id, &settings);
    qbo::QboClient::with_budget(
        settings,
        company.credentials(),
        std::sync::Arc::new(tokens),
        std::sync::Arc::new(budget),
    )
    .map_err(|e| format!("company {realm_id}: {e}"))
}

/// The client of the connected company `realm_id` ([`company_client`]).
///
/// # Errors
/// No such company (one line saying how to connect it), unusable settings, or the database.
pub async fn client_for(
    pool: &PgPool,
    key: &SecretKey,
    realm_id: &str,
    tuning: &ClientTuning,
) -> Result<qbo::QboClient, CompanyError> {
    let company = companies::get(pool, key, realm_id)
        .await?
        .ok_or_else(|| CompanyError::Unusable(not_connected(realm_id)))?;
    company_client(pool, key, &company, tuning).map_err(CompanyError::Unusable)
}

/// The message for a company that is not connected.
#[must_use]
pub fn not_connected(realm_id: &str) -> String {
    format!(
        "company {realm_id} is not connected (set QBO_REALM_ID and the app keys, or use Connect QuickBooks)"
    )
}

/// Why a company's client cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum CompanyError {
    /// Not connected, or its settings are unusable.
    #[error("{0}")]
    Unusable(String),
    /// The database or the secret store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
