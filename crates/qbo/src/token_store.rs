//! Where OAuth tokens live between refreshes: the [`TokenStore`] trait the caller implements,
//! and [`MemoryTokenStore`], an in-process implementation for tests and one-shot tools.
//!
//! Intuit rotates the refresh token: once a new one is issued the old one answers
//! `invalid_grant`. A rotated token that is not persisted is therefore lost for good. The client
//! opens an exclusive section with [`TokenStore::lock`], refreshes with the token it reads there,
//! and hands the rotated tokens to [`TokenLease::commit`] **before** it uses the new access token.
//! A store shared by several processes (PostgreSQL) makes `lock` exclusive across all of them,
//! so one company's refresh token is never spent twice.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;
use secrecy::SecretString;

/// A boxed, sendable future, so the store traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The tokens of one company as the store holds them.
#[derive(Clone)]
pub struct TokenSet {
    /// The refresh token to spend on the next refresh.
    pub refresh_token: SecretString,
    /// The last access token issued, if any; other processes may reuse it until it expires.
    pub access_token: Option<SecretString>,
    /// When `access_token` expires.
    pub access_token_expires_at: Option<Timestamp>,
    /// When `refresh_token` expires (Intuit's `x_refresh_token_expires_in`), if known.
    pub refresh_token_expires_at: Option<Timestamp>,
}

impl TokenSet {
    /// A set holding only a refresh token, as seeded from configuration.
    #[must_use]
    pub fn from_refresh_token(refresh_token: SecretString) -> Self {
        Self {
            refresh_token,
            access_token: None,
            access_token_expires_at: None,
            refresh_token_expires_at: None,
        }
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("refresh_token", &"[REDACTED]")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .finish()
    }
}

/// A failure of the token store itself (database down, no token stored, …).
pub type TokenStoreError = crate::error::CallerError;

/// Persistent storage of one company's tokens, implemented by the caller.
pub trait TokenStore: Send + Sync {
    /// Opens the exclusive section in which a refresh may happen. While the returned lease is
    /// alive no other caller of this store (in this or any other process sharing it) can open
    /// one for the same company. Dropping the lease without committing releases it unchanged.
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn TokenLease>, TokenStoreError>>;
}

/// An open exclusive section over one company's tokens.
pub trait TokenLease: Send {
    /// The tokens as stored when the lease was taken.
    fn tokens(&self) -> &TokenSet;

    /// Durably stores `tokens` (the rotated refresh token and the new access token) and ends the
    /// lease. Returns only once the write is durable.
    fn commit(self: Box<Self>, tokens: TokenSet)
    -> BoxFuture<'static, Result<(), TokenStoreError>>;
}

/// An in-process [`TokenStore`]: exclusive within one process only.
#[derive(Clone)]
pub struct MemoryTokenStore {
    inner: std::sync::Arc<tokio::sync::Mutex<TokenSet>>,
}

impl MemoryTokenStore {
    /// A store that starts with `tokens`.
    #[must_use]
    pub fn new(tokens: TokenSet) -> Self {
        Self {
            inner: std::sync::Arc::new(tokio::sync::Mutex::new(tokens)),
        }
    }

    /// The tokens currently stored.
    pub async fn current(&self) -> TokenSet {
        self.inner.lock().await.clone()
    }
}

struct MemoryLease {
    guard: tokio::sync::OwnedMutexGuard<TokenSet>,
}

impl TokenStore for MemoryTokenStore {
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn TokenLease>, TokenStoreError>> {
        Box::pin(async move {
            let guard = self.inner.clone().lock_owned().await;
            Ok(Box::new(MemoryLease { guard }) as Box<dyn TokenLease>)
        })
    }
}

impl TokenLease for MemoryLease {
    fn tokens(&self) -> &TokenSet {
        &self.guard
    }

    fn commit(
        mut self: Box<Self>,
        tokens: TokenSet,
    ) -> BoxFuture<'static, Result<(), TokenStoreError>> {
        *self.guard = tokens;
        Box::pin(async { Ok(()) })
    }
}
