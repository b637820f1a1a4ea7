//! API tokens (`ops.api_tokens`): created with a name, shown once, stored only as a SHA-256 hash
//! (the token is 256 random bits, so a fast hash is safe), with a scope and an optional expiry;
//! checked on every API call.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use std::time::Duration;

use crate::domain::access::Scope;
use crate::store::{PgTimestamp, StoreError};

/// What every token starts with (so leaked tokens are easy to search for).
pub const TOKEN_PREFIX: &str = "qbt_";

/// A token as listed (never the token itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenInfo {
    /// Token id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its last four characters.
    pub hint: String,
    /// When it was created.
    pub created_at: PgTimestamp,
    /// When it was last used.
    pub last_used_at: Option<PgTimestamp>,
    /// When it was revoked.
    pub revoked_at: Option<PgTimestamp>,
    /// `read`, `run` or `admin`.
    pub scope: String,
    /// When it stops working, if ever.
    pub expires_at: Option<PgTimestamp>,
    /// Whether it has stopped working.
    pub expired: bool,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token named `name` of `scope`, valid for `lifetime` (or until revoked); returns its
/// id and the token, which is never stored.
///
/// # Errors
/// Database errors, or no randomness.
pub async fn create(
    pool: &PgPool,
    name: &str,
    scope: Scope,
    lifetime: Option<Duration>,
) -> Result<(Uuid, String), StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hint: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ops.api_tokens (id, name, token_hash, hint, scope, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
    )
    .bind(id)
    .bind(name)
    .bind(hash(&token))
    .bind(format!("…{hint}"))
    .bind(scope.as_str())
    .bind(lifetime.map(|l| l.as_secs_f64()))
    .execute(pool)
    .await?;
    Ok((id, token))
}

/// The scope and name of the live token `token` (not revoked, not expired), if it is one;
/// records its use to the minute (`last_used_at` is written when it is over a minute old, so
/// most calls are read-only and wait for no commit).
///
/// # Errors
/// Database errors.
pub async fn verify(pool: &PgPool, token: &str) -> Result<Option<(Scope, String)>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let live: Option<(String, String)> = sqlx::query_as(
        "WITH live AS (SELECT id, scope, name, last_used_at FROM ops.api_tokens \
           WHERE token_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > now())), \
         used AS (UPDATE ops.api_tokens t SET last_used_at = now() FROM live \
           WHERE t.id = live.id \
             AND (live.last_used_at IS NULL OR live.last_used_at < now() - interval '1 minute')) \
         SELECT scope, name FROM live",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    // The column's CHECK allows only the three names; anything else is no token at all.
    Ok(live.and_then(|(scope, name)| Some((scope.parse().ok()?, name))))
}

/// Every token, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(pool: &PgPool) -> Result<Vec<ApiTokenInfo>, StoreError> {
    Ok(sqlx::query_as::<_, ApiTokenInfo>(
        "SELECT id, name, hint, created_at, last_used_at, revoked_at, scope, expires_at, \
                coalesce(expires_at <= now(), false) AS expired \
         FROM ops.api_tokens ORDER BY created_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes the tokens with this id or name; returns how many.
///
/// # Errors
/// Database errors.
pub async fn revoke(pool: &PgPool, id_or_name: &str) -> Result<u64, StoreError> {
    let id = id_or_name.parse::<Uuid>().ok();
    Ok(sqlx::query(
        "UPDATE ops.api_tokens SET revoked_at = now() \
         WHERE (id = $1 OR name = $2) AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(id_or_name)
    .execute(pool)
    .await?
    .rows_affected())
}
