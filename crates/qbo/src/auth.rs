//! Access tokens: the in-memory cache, the single-flight refresh within the process, the
//! cross-process exclusive section of the [`TokenStore`], and the OAuth2 refresh call itself.
//!
//! Order of a refresh: take the process-wide refresh mutex → re-check the cache → `store.lock()`
//! → adopt the stored access token if another process already refreshed → otherwise spend the
//! stored refresh token → `lease.commit(new)` → only then cache and use the new access token.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::response::{ResponseMeta, TokenGrant, interpret_token_response};
use crate::token_store::{TokenLease, TokenSet, TokenStore};
use crate::transport::{Stats, backoff, transport_error};
use crate::{QboError, RetrySettings};

/// Access token lifetime assumed when the token endpoint omits `expires_in`.
const DEFAULT_ACCESS_TTL: u64 = 3600;

/// A usable access token and when to stop using it.
struct CachedToken {
    token: SecretString,
    refresh_at: Timestamp,
}

/// What the token manager needs to talk to the token endpoint.
pub(crate) struct TokenConfig {
    pub(crate) token_url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) refresh_margin: Duration,
    pub(crate) retry: RetrySettings,
}

/// Hands out access tokens, refreshing them at most once at a time per process.
pub(crate) struct TokenManager {
    shared: Arc<Shared>,
}

/// The token manager's state; the slow path runs in its own task on an `Arc` of it.
struct Shared {
    http: reqwest::Client,
    config: TokenConfig,
    store: Arc<dyn TokenStore>,
    stats: Arc<Stats>,
    cache: StdMutex<Option<CachedToken>>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// A rotated token set that could not be stored yet.
    pending: StdMutex<Option<TokenSet>>,
}

/// How many times a rotated token set that could not be stored is written again before the
/// refresh reports the failure (it stays in memory and is written at the next refresh).
const STORE_RETRIES: u32 = 8;

/// An `invalid_grant` that followed a lost token answer: say why the stored token died.
fn explain_lost_rotation(e: QboError) -> QboError {
    match e {
        QboError::InvalidGrant {
            status,
            description,
            intuit_tid,
        } => QboError::InvalidGrant {
            status,
            description: Some(format!(
                "{}an earlier token answer was lost on the way after Intuit had rotated the refresh token, so the stored one is no longer valid",
                description.map(|d| format!("{d}; ")).unwrap_or_default()
            )),
            intuit_tid,
        },
        other => other,
    }
}

fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

fn plus_secs(t: Timestamp, secs: u64) -> Timestamp {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    t.saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.saturating_sub(d).unwrap_or(Timestamp::MIN)
}

impl TokenManager {
    pub(crate) fn new(
        http: reqwest::Client,
        config: TokenConfig,
        store: Arc<dyn TokenStore>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                http,
                config,
                store,
                stats,
                cache: StdMutex::new(None),
                refresh_lock: tokio::sync::Mutex::new(()),
                pending: StdMutex::new(None),
            }),
        }
    }

    /// A usable access token. `rejected` is a token the API just refused (401): it is marked
    /// stale and never returned again, which forces a refresh unless someone already did one.
    ///
    /// The refresh runs in its own task, so a caller that is cancelled (its future dropped)
    /// mid-refresh cannot lose a rotated refresh token between the token endpoint and the store.
    pub(crate) async fn access_token(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, QboError> {
        if let Some(token) = self.shared.cached(rejected) {
            return Ok(token);
        }
        let shared = Arc::clone(&self.shared);
        let rejected = rejected.cloned();
        tokio::spawn(async move { shared.obtain(rejected.as_ref()).await })
            .await
            .unwrap_or_else(|e| {
                Err(QboError::TokenEndpoint {
                    status: None,
                    message: format!("the token refresh task failed: {e}"),
                    retryable: false,
                    intuit_tid: None,
                })
            })
    }
}

impl Shared {
    /// The cached token if it is still good and is not `rejected`; a rejected token is dropped
    /// from the cache.
    fn cached(&self, rejected: Option<&SecretString>) -> Option<SecretString> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.as_ref()?;
        if rejected.is_some_and(|r| same_secret(r, &entry.token)) {
            *cache = None;
            return None;
        }
        (Timestamp::now() < entry.refresh_at).then(|| entry.token.clone())
    }

    fn remember(&self, token: SecretString, refresh_at: Timestamp) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(CachedToken { token, refresh_at });
    }

    /// The slow path: single flight, cross-process lease, adopt or refresh, commit, cache.
    ///
    /// The cross-process lease is held for one attempt at the token endpoint only: between
    /// retries it is released (another process may refresh meanwhile, and is then adopted), so no
    /// lock is held for minutes. A rotated token set that cannot be stored is kept in memory and
    /// written again until it sticks; it is used meanwhile, and never replaced by the stale one.
    async fn obtain(&self, rejected: Option<&SecretString>) -> Result<SecretString, QboError> {
        let _single_flight = self.refresh_lock.lock().await;
        // Another task may have refreshed while we waited.
        if let Some(token) = self.cached(rejected) {
            return Ok(token);
        }
        if let Some(pending) = self.pending() {
            self.store_pending(pending).await?;
            if let Some(token) = self.cached(rejected) {
                return Ok(token);
            }
        }
        let mut attempt = 0;
        let mut lost_response = false;
        loop {
            let lease = self.store.lock().await.map_err(QboError::TokenStore)?;
            let stored = lease.tokens().clone();
            if let Some((token, refresh_at)) = self.adoptable(&stored, rejected) {
                // Another process refreshed: reuse its access token, leave the store untouched.
                drop(lease);
                tracing::debug!("using the access token another process stored");
                self.remember(token.clone(), refresh_at);
                return Ok(token);
            }
            let sent_at = Timestamp::now();
            match self.refresh_once(&stored.refresh_token).await {
                Ok(grant) => return self.adopt_grant(lease, &stored, grant, sent_at).await,
                Err(e) if e.is_retryable() && attempt < self.config.retry.max_retries => {
                    // Release the lock while waiting.
                    drop(lease);
                    // A lost or cut answer may have rotated the refresh token on Intuit's side.
                    lost_response |= matches!(
                        e,
                        QboError::Timeout { .. }
                            | QboError::Connection { .. }
                            | QboError::TokenEndpoint {
                                status: None | Some(200),
                                ..
                            }
                    );
                    let wait = backoff(&self.config.retry, attempt);
                    attempt += 1;
                    tracing::warn!(
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "token refresh failed, retrying: {e}"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    if e.is_terminal_auth() {
                        tracing::error!("token refresh refused: {e}");
                    }
                    return Err(if lost_response {
                        explain_lost_rotation(e)
                    } else {
                        e
                    });
                }
            }
        }
    }

    /// The stored access token when another process refreshed it and it is still good.
    fn adoptable(
        &self,
        stored: &TokenSet,
        rejected: Option<&SecretString>,
    ) -> Option<(SecretString, Timestamp)> {
        let (token, expires_at) = (
            stored.access_token.as_ref()?,
            stored.access_token_expires_at?,
        );
        let refresh_at = minus(expires_at, self.config.refresh_margin);
        let is_rejected = rejected.is_some_and(|r| same_secret(r, token));
        (!is_rejected && Timestamp::now() < refresh_at).then(|| (token.clone(), refresh_at))
    }

    /// Stores a fresh grant (the rotated refresh token first), then caches its access token.
    async fn adopt_grant(
        &self,
        lease: Box<dyn TokenLease>,
        stored: &TokenSet,
        grant: TokenGrant,
        sent_at: Timestamp,
    ) -> Result<SecretString, QboError> {
        let lifetime = grant.expires_in.unwrap_or(DEFAULT_ACCESS_TTL);
        let expires_at = plus_secs(sent_at, lifetime);
        // Never let the margin swallow a short-lived token entirely.
        let margin = self
            .config
            .refresh_margin
            .min(Duration::from_secs(lifetime) / 2);
        let refresh_at = minus(expires_at, margin);
        let rotated = grant.refresh_token.is_some();
        let new_tokens = TokenSet {
            refresh_token: grant
                .refresh_token
                .unwrap_or_else(|| stored.refresh_token.clone()),
            access_token: Some(grant.access_token.clone()),
            access_token_expires_at: Some(expires_at),
            refresh_token_expires_at: grant
                .refresh_token_expires_in
                .map(|s| plus_secs(sent_at, s))
                .or(stored.refresh_token_expires_at),
        };
        self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        // Persist the rotated refresh token before the new access token is used.
        if let Err(e) = lease.commit(new_tokens.clone()).await {
            tracing::error!(
                "the refreshed QuickBooks tokens could not be stored; keeping them and writing them again: {e}"
            );
            *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(new_tokens.clone());
            self.store_pending(new_tokens).await?;
        }
        tracing::info!(
            rotated,
            expires_in = lifetime,
            "refreshed the QuickBooks access token"
        );
        self.remember(grant.access_token.clone(), refresh_at);
        Ok(grant.access_token)
    }

    fn pending(&self) -> Option<TokenSet> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Writes a rotated token set that could not be stored, retrying with backoff; clears it
    /// once written. While it cannot be written the process keeps using it (the stored refresh
    /// token is spent), and the error says what is at stake.
    async fn store_pending(&self, tokens: TokenSet) -> Result<(), QboError> {
        let mut attempt = 0;
        loop {
            let written = match self.store.lock().await {
                Ok(lease) => lease.commit(tokens.clone()).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    self.remember_set(&tokens);
                    tracing::info!("stored the rotated QuickBooks tokens after a failed write");
                    return Ok(());
                }
                Err(e) if attempt < STORE_RETRIES => {
                    let wait = backoff(&self.config.retry, attempt).max(Duration::from_millis(200));
                    attempt += 1;
                    tracing::warn!(
                        attempt,
                        "cannot store the rotated QuickBooks tokens yet: {e}"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    // Kept in `pending`, never used unstored: every next call writes them first.
                    return Err(QboError::TokenStore(e));
                }
            }
        }
    }

    fn remember_set(&self, tokens: &TokenSet) {
        if let (Some(token), Some(expires_at)) =
            (&tokens.access_token, tokens.access_token_expires_at)
        {
            self.remember(token.clone(), minus(expires_at, self.config.refresh_margin));
        }
    }

    async fn refresh_once(&self, refresh_token: &SecretString) -> Result<TokenGrant, QboError> {
        let response = self
            .http
            .post(self.config.token_url.clone())
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            )
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| unreachable_endpoint(transport_error(e)))?;
        let meta = ResponseMeta::from_parts(response.status().as_u16(), response.headers());
        let body =
            crate::transport::read_capped(response, crate::transport::MAX_TOKEN_RESPONSE_BYTES)
                .await
                .map_err(unreachable_endpoint)?;
        // An error body may echo what was sent (the refresh token, the client credentials):
        // mask them whatever their shape, not only when they look like tokens.
        interpret_token_response(&meta, &body).map_err(|e| {
            e.scrub_token_error(&[
                refresh_token.expose_secret(),
                self.config.client_secret.expose_secret(),
            ])
        })
    }
}

/// A timeout or a lost connection on the way to the token endpoint as a retryable error of the
/// endpoint; any other error as it is.
fn unreachable_endpoint(e: QboError) -> QboError {
    match e {
        QboError::Timeout { message } | QboError::Connection { message } => {
            QboError::TokenEndpoint {
                status: None,
                message,
                retryable: true,
                intuit_tid: None,
            }
        }
        other => other,
    }
}
