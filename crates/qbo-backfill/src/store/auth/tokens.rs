//! [`PgTokenStore`]: one company's OAuth tokens in `ops.oauth_tokens`, sealed with the
//! [`SecretKey`], implementing [`qbo::TokenStore`].
//!
//! [`qbo::TokenStore::lock`] opens a transaction on a dedicated pooled connection and locks the
//! company's row (`SELECT … FOR UPDATE`): a second caller, in this or any other process, blocks
//! until the first commits (then reads the fresh tokens and can reuse the access token) or drops
//! its lease (rolled back when the connection goes back to the pool, at once). The rotated
//! refresh token is written in that same transaction.

use std::fmt;
use std::time::Duration;

use qbo::{BoxFuture, TokenLease, TokenSet, TokenStore, TokenStoreError};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{PgPool, Postgres, Transaction};

use crate::store::auth::secrets::redact;
use crate::store::{PgTimestamp, SecretKey, StoreError};

/// How long `lock()` waits for another process's refresh before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// What is known about a company's stored tokens, without the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// [`redact`] of the refresh token (or a note that it cannot be decrypted).
    pub refresh_token_redacted: String,
    /// Whether the refresh token decrypts with the key in use.
    pub refresh_token_readable: bool,
    /// Whether an access token is cached.
    pub has_access_token: bool,
    /// When the cached access token expires.
    pub access_token_expires_at: Option<jiff::Timestamp>,
    /// When the refresh token expires, if Intuit said.
    pub refresh_token_expires_at: Option<jiff::Timestamp>,
    /// When the row was last written.
    pub updated_at: Option<jiff::Timestamp>,
    /// How many refreshes were committed.
    pub refresh_count: i64,
}

/// The tokens of one company (realm) in PostgreSQL.
#[derive(Clone)]
pub struct PgTokenStore {
    pool: PgPool,
    key: SecretKey,
    realm_id: String,
    lock_timeout: Duration,
}

/// Companies whose refresh token ends within `within_days` days and was not warned of yet: each
/// is marked warned for that end (once across processes) and returned with the end.
///
/// # Errors
/// Database failures.
pub async fn claim_expiry_warnings(
    pool: &PgPool,
    within_days: i64,
) -> Result<Vec<(String, jiff::Timestamp)>, StoreError> {
    let rows: Vec<(String, PgTimestamp)> = sqlx::query_as(
        "UPDATE ops.oauth_tokens SET expiry_warned_for = refresh_token_expires_at \
         WHERE refresh_token_expires_at < now() + make_interval(days => $1::int) \
           AND expiry_warned_for IS DISTINCT FROM refresh_token_expires_at \
         RETURNING realm_id, refresh_token_expires_at",
    )
    .bind(within_days)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(r, t)| (r, t.0)).collect())
}

/// The companies (realm ids) that have stored tokens, in order.
///
/// # Errors
/// Database failures.
pub async fn realms(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT realm_id FROM ops.oauth_tokens ORDER BY realm_id")
            .fetch_all(pool)
            .await?,
    )
}

impl fmt::Debug for PgTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTokenStore")
            .field("realm_id", &self.realm_id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

type TokenRow = (
    Vec<u8>,
    Option<Vec<u8>>,
    Option<PgTimestamp>,
    Option<PgTimestamp>,
);

impl PgTokenStore {
    /// A store for `realm_id`'s tokens over `pool`, sealed with `key`.
    #[must_use]
    pub fn new(pool: PgPool, key: SecretKey, realm_id: impl Into<String>) -> Self {
        Self {
            pool,
            key,
            realm_id: realm_id.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Changes how long [`TokenStore::lock`] waits for another holder (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    #[must_use]
    pub const fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The company this store serves.
    #[must_use]
    pub fn realm_id(&self) -> &str {
        &self.realm_id
    }

    /// Stores `refresh_token` if the company has no tokens yet (e.g. from `QBO_REFRESH_TOKEN` at
    /// start-up); returns whether it was stored. An existing row (which may hold a newer,
    /// rotated token) is left alone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn seed_if_empty(&self, refresh_token: &SecretString) -> Result<bool, StoreError> {
        let blob = self.key.seal_str(&self.aad("refresh"), refresh_token)?;
        let done = sqlx::query(
            "INSERT INTO ops.oauth_tokens (realm_id, refresh_token_enc, updated_at) \
             VALUES ($1, $2, now()) ON CONFLICT (realm_id) DO NOTHING",
        )
        .bind(&self.realm_id)
        .bind(blob)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the refresh token (an operator reconnected the app) and forgets the cached
    /// access token. Waits for a refresh in progress to finish first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn replace_refresh_token(
        &self,
        refresh_token: &SecretString,
    ) -> Result<(), StoreError> {
        let blob = self.key.seal_str(&self.aad("refresh"), refresh_token)?;
        sqlx::query(
            "INSERT INTO ops.oauth_tokens (realm_id, refresh_token_enc, updated_at) \
             VALUES ($1, $2, now()) \
             ON CONFLICT (realm_id) DO UPDATE SET \
                 refresh_token_enc = EXCLUDED.refresh_token_enc, \
                 access_token_enc = NULL, \
                 access_token_expires_at = NULL, \
                 refresh_token_expires_at = NULL, \
                 updated_at = EXCLUDED.updated_at",
        )
        .bind(&self.realm_id)
        .bind(blob)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The company's token status, or `None` if no token is stored.
    ///
    /// # Errors
    /// Database errors.
    pub async fn status(&self) -> Result<Option<TokenStatus>, StoreError> {
        type StatusRow = (
            Vec<u8>,
            bool,
            Option<PgTimestamp>,
            Option<PgTimestamp>,
            Option<PgTimestamp>,
            i64,
        );
        let row: Option<StatusRow> = sqlx::query_as(
            "SELECT refresh_token_enc, access_token_enc IS NOT NULL, access_token_expires_at, \
                    refresh_token_expires_at, updated_at, refresh_count \
             FROM ops.oauth_tokens WHERE realm_id = $1",
        )
        .bind(&self.realm_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(refresh, has_access, access_exp, refresh_exp, updated_at, count)| {
                let (refresh_token_redacted, refresh_token_readable) =
                    match self.key.open_str(&self.aad("refresh"), &refresh) {
                        Ok(token) => (redact(token.expose_secret()), true),
                        Err(_) => ("(cannot be decrypted with this key)".to_owned(), false),
                    };
                TokenStatus {
                    refresh_token_redacted,
                    refresh_token_readable,
                    has_access_token: has_access,
                    access_token_expires_at: access_exp.map(|t| t.0),
                    refresh_token_expires_at: refresh_exp.map(|t| t.0),
                    updated_at: updated_at.map(|t| t.0),
                    refresh_count: count,
                }
            },
        ))
    }

    /// Associated data binding a token to its row and column.
    fn aad(&self, column: &str) -> String {
        token_aad(&self.realm_id, column)
    }

    async fn open_lease(&self) -> Result<PgTokenLease, TokenStoreError> {
        let realm = &self.realm_id;
        let db_err = |e: sqlx::Error| {
            let msg = if crate::store::sqlstate(&e).as_deref() == Some("55P03") {
                format!(
                    "Timed out after {}s waiting for another process's token refresh for company \
                     {realm}.",
                    self.lock_timeout.as_secs()
                )
            } else {
                format!(
                    "Cannot read the OAuth tokens of company {realm}: {}",
                    StoreError::from(e)
                )
            };
            TokenStoreError::new(msg)
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let timeout_ms = self.lock_timeout.as_millis().max(1);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = {timeout_ms}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The rotated refresh token must be on disk when the commit returns, whatever the
        // server's or the role's setting: losing it means a manual reconnect.
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT refresh_token_enc, access_token_enc, access_token_expires_at, \
                    refresh_token_expires_at \
             FROM ops.oauth_tokens WHERE realm_id = $1 FOR UPDATE",
        )
        .bind(realm)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some((refresh_enc, access_enc, access_exp, refresh_exp)) = row else {
            return Err(TokenStoreError::new(format!(
                "No QuickBooks refresh token is stored for company {realm}. Store one with \
                 `qbo-backfill secrets set QBO_REFRESH_TOKEN` (or the secrets page, or set \
                 QBO_REFRESH_TOKEN for the first start) and run again."
            )));
        };
        let open = |column: &str, blob: &[u8]| {
            self.key.open_str(&self.aad(column), blob).map_err(|e| {
                let msg = e.to_string();
                TokenStoreError::with_source(msg, e)
            })
        };
        let tokens = TokenSet {
            refresh_token: open("refresh", &refresh_enc)?,
            access_token: access_enc
                .as_deref()
                .map(|b| open("access", b))
                .transpose()?,
            access_token_expires_at: access_exp.map(|t| t.0),
            refresh_token_expires_at: refresh_exp.map(|t| t.0),
        };
        Ok(PgTokenLease {
            tx,
            tokens,
            key: self.key.clone(),
            realm_id: realm.clone(),
        })
    }
}

fn token_aad(realm_id: &str, column: &str) -> String {
    format!("oauth_tokens:{realm_id}:{column}")
}

impl TokenStore for PgTokenStore {
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn TokenLease>, TokenStoreError>> {
        Box::pin(async move { Ok(Box::new(self.open_lease().await?) as Box<dyn TokenLease>) })
    }
}

/// An open transaction holding the company's token row locked. Dropped without commit, it rolls
/// back as soon as its connection returns to the pool.
struct PgTokenLease {
    tx: Transaction<'static, Postgres>,
    tokens: TokenSet,
    key: SecretKey,
    realm_id: String,
}

impl TokenLease for PgTokenLease {
    fn tokens(&self) -> &TokenSet {
        &self.tokens
    }

    fn commit(
        self: Box<Self>,
        tokens: TokenSet,
    ) -> BoxFuture<'static, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let Self {
                mut tx,
                key,
                realm_id,
                ..
            } = *self;
            let fail = |what: &str, e: StoreError| {
                TokenStoreError::new(format!(
                    "Cannot store the rotated OAuth tokens of company {realm_id} ({what}): {e}"
                ))
            };
            let refresh = key
                .seal_str(&token_aad(&realm_id, "refresh"), &tokens.refresh_token)
                .map_err(|e| fail("encrypt", e))?;
            let access = tokens
                .access_token
                .as_ref()
                .map(|t| key.seal_str(&token_aad(&realm_id, "access"), t))
                .transpose()
                .map_err(|e| fail("encrypt", e))?;
            let updated = sqlx::query(
                "UPDATE ops.oauth_tokens SET refresh_token_enc = $2, access_token_enc = $3, \
                     access_token_expires_at = $4, refresh_token_expires_at = $5, \
                     updated_at = now(), refresh_count = refresh_count + 1 \
                 WHERE realm_id = $1",
            )
            .bind(&realm_id)
            .bind(refresh)
            .bind(access)
            .bind(tokens.access_token_expires_at.map(PgTimestamp))
            .bind(tokens.refresh_token_expires_at.map(PgTimestamp))
            .execute(&mut *tx)
            .await
            .map_err(|e| fail("update", e.into()))?;
            if updated.rows_affected() != 1 {
                return Err(TokenStoreError::new(format!(
                    "Cannot store the rotated OAuth tokens of company {realm_id}: its row vanished."
                )));
            }
            tx.commit().await.map_err(|e| fail("commit", e.into()))
        })
    }
}
