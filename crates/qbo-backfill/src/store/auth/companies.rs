//! Connected QuickBooks companies (`ops.companies`): realm, environment, app keys (the client
//! secret encrypted like every secret), optional host overrides, and the last token failure (what
//! the UI's reconnect banner shows). A deployment holds any number; the environment variables seed
//! the first one so the CLI and the runbook work unchanged.

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;

use crate::store::StoreError;
use crate::store::auth::secrets::SecretKey;

/// One connected company.
#[derive(Clone)]
pub struct Company {
    /// Realm id.
    pub realm_id: String,
    /// Sandbox or production.
    pub environment: qbo::Environment,
    /// Intuit app client id.
    pub client_id: String,
    /// Intuit app client secret.
    pub client_secret: SecretString,
    /// API base URL override (a simulator, a proxy).
    pub api_base_url: Option<url::Url>,
    /// Token endpoint override.
    pub token_url: Option<url::Url>,
    /// Minor version override.
    pub minor_version: Option<u32>,
}

impl std::fmt::Debug for Company {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Company")
            .field("realm_id", &self.realm_id)
            .field("environment", &self.environment)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Company {
    /// Client settings for this company: Intuit's hosts for its environment, its overrides.
    #[must_use]
    pub fn client_settings(&self) -> qbo::ClientSettings {
        let mut settings = qbo::ClientSettings::for_environment(self.environment);
        if let Some(url) = &self.api_base_url {
            settings.api_base_url = url.clone();
        }
        if let Some(url) = &self.token_url {
            settings.token_url = url.clone();
        }
        if let Some(v) = self.minor_version {
            settings.minor_version = v;
        }
        settings
    }

    /// The client credentials.
    #[must_use]
    pub fn credentials(&self) -> qbo::Credentials {
        qbo::Credentials::of(&self.client_id, &self.client_secret, &self.realm_id)
    }
}

/// A company as listed (no secrets).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct CompanySummary {
    /// Realm id.
    pub realm_id: String,
    /// `sandbox` or `production`.
    pub environment: String,
    /// The last token failure (`invalid_grant`, …) not yet cleared by a successful refresh.
    pub last_auth_error: Option<String>,
}

fn aad(realm_id: &str) -> String {
    format!("ops.companies:{realm_id}:client_secret")
}

fn environment_name(env: qbo::Environment) -> &'static str {
    match env {
        qbo::Environment::Production => "production",
        qbo::Environment::Sandbox => "sandbox",
    }
}

/// Creates or updates a company.
///
/// # Errors
/// Database or encryption errors.
pub async fn upsert(pool: &PgPool, key: &SecretKey, company: &Company) -> Result<(), StoreError> {
    let sealed = key.seal(
        &aad(&company.realm_id),
        company.client_secret.expose_secret().as_bytes(),
    )?;
    sqlx::query(
        "INSERT INTO ops.companies (realm_id, environment, client_id, client_secret_enc, \
           api_base_url, token_url, minor_version) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (realm_id) DO UPDATE SET environment = $2, client_id = $3, \
           client_secret_enc = $4, api_base_url = $5, token_url = $6, minor_version = $7, \
           updated_at = now()",
    )
    .bind(&company.realm_id)
    .bind(environment_name(company.environment))
    .bind(&company.client_id)
    .bind(sealed)
    .bind(company.api_base_url.as_ref().map(url::Url::as_str))
    .bind(company.token_url.as_ref().map(url::Url::as_str))
    .bind(
        company
            .minor_version
            .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
    )
    .execute(pool)
    .await
    .map_err(StoreError::Database)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CompanyRow {
    realm_id: String,
    environment: String,
    client_id: String,
    client_secret_enc: Vec<u8>,
    api_base_url: Option<String>,
    token_url: Option<String>,
    minor_version: Option<i32>,
}

/// Loads a company with its client secret decrypted.
///
/// # Errors
/// Database errors, or a secret sealed with another key.
pub async fn get(
    pool: &PgPool,
    key: &SecretKey,
    realm_id: &str,
) -> Result<Option<Company>, StoreError> {
    let row = sqlx::query_as::<_, CompanyRow>(
        "SELECT realm_id, environment, client_id, client_secret_enc, api_base_url, token_url, \
                minor_version FROM ops.companies WHERE realm_id = $1",
    )
    .bind(realm_id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::Database)?;
    let Some(row) = row else { return Ok(None) };
    let secret = key.open(&aad(&row.realm_id), &row.client_secret_enc)?;
    let secret = String::from_utf8(secret).map_err(|_| StoreError::Undecryptable {
        name: aad(realm_id),
        reason: "not UTF-8".to_owned(),
    })?;
    let parse_url = |v: Option<String>| v.and_then(|u| url::Url::parse(&u).ok());
    Ok(Some(Company {
        environment: if row.environment == "production" {
            qbo::Environment::Production
        } else {
            qbo::Environment::Sandbox
        },
        realm_id: row.realm_id,
        client_id: row.client_id,
        client_secret: SecretString::from(secret),
        api_base_url: parse_url(row.api_base_url),
        token_url: parse_url(row.token_url),
        minor_version: row.minor_version.and_then(|v| u32::try_from(v).ok()),
    }))
}

/// Every company, by realm id.
///
/// # Errors
/// Database errors.
pub async fn list(pool: &PgPool) -> Result<Vec<CompanySummary>, StoreError> {
    sqlx::query_as::<_, CompanySummary>(
        "SELECT realm_id, environment, last_auth_error FROM ops.companies ORDER BY realm_id",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::Database)
}

/// Records (or, with `None`, clears) a company's last token failure.
///
/// # Errors
/// Database errors.
pub async fn set_auth_error(
    pool: &PgPool,
    realm_id: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ops.companies SET last_auth_error = $2, \
           last_auth_error_at = CASE WHEN $2 IS NULL THEN NULL ELSE now() END \
         WHERE realm_id = $1 AND last_auth_error IS DISTINCT FROM $2",
    )
    .bind(realm_id)
    .bind(error)
    .execute(pool)
    .await
    .map_err(StoreError::Database)?;
    Ok(())
}

/// Which company a run without a realm id means: the only one. `Err` carries what to tell the
/// caller when there is none, or several.
///
/// # Errors
/// Database errors (outer); no company or several (inner).
pub async fn default_realm(pool: &PgPool) -> Result<Result<String, NoDefault>, StoreError> {
    let realms: Vec<String> =
        sqlx::query_scalar("SELECT realm_id FROM ops.companies ORDER BY realm_id LIMIT 2")
            .fetch_all(pool)
            .await
            .map_err(StoreError::Database)?;
    Ok(match realms.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(NoDefault::None),
        _ => Err(NoDefault::Several),
    })
}

/// Why there is no default company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDefault {
    /// No company is connected.
    None,
    /// Several are: name one.
    Several,
}
