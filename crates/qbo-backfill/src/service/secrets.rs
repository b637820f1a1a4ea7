//! Listing the stored secrets, for the command line, the JSON API and the Secrets page alike:
//! the secret store's entries, then each company's refresh token with when Intuit said it ends.
//! Never a value: a redacted preview at most.

use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;

use crate::settings::env;
use crate::store::StoreError;
use crate::store::auth::secrets::{SecretKey, SecretStore};
use crate::store::auth::tokens::{self, PgTokenStore};

/// How long before a refresh token ends it is said to be ending soon (Intuit's refresh tokens
/// last 100 days from their issue; a company left alone that long must be reconnected).
pub const REFRESH_TOKEN_WARNING: SignedDuration = SignedDuration::from_hours(30 * 24);

/// A stored secret as listed: never its value.
#[derive(Debug, Clone)]
pub struct ListedSecret {
    /// Its name (`QBO_REFRESH_TOKEN` for a company's token).
    pub name: String,
    /// The company, for a refresh token.
    pub realm_id: Option<String>,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// A redacted preview of the value, or a note that it cannot be decrypted with this key.
    pub redacted: String,
    /// Whether the value decrypts with the key in use.
    pub readable: bool,
    /// When a refresh token stops working, as Intuit answered with its last refresh.
    pub expires_at: Option<Timestamp>,
}

impl ListedSecret {
    /// Whether the secret ends within [`REFRESH_TOKEN_WARNING`] of `now` (or has ended).
    #[must_use]
    pub fn ending_soon(&self, now: Timestamp) -> bool {
        self.expires_at
            .is_some_and(|end| end.duration_since(now) <= REFRESH_TOKEN_WARNING)
    }

    /// Whole days from `now` until the secret ends (negative once it has), if it ends.
    #[must_use]
    pub fn days_left(&self, now: Timestamp) -> Option<i64> {
        self.expires_at
            .map(|end| end.duration_since(now).as_secs().div_euclid(86_400))
    }
}

/// Every stored secret: the secret store's, then each company's refresh token.
///
/// # Errors
/// Database failures.
pub async fn list(pool: &PgPool, key: &SecretKey) -> Result<Vec<ListedSecret>, StoreError> {
    let mut listed: Vec<ListedSecret> = SecretStore::new(pool.clone(), key.clone())
        .list()
        .await?
        .into_iter()
        .map(|s| ListedSecret {
            name: s.name,
            realm_id: None,
            updated_at: s.updated_at,
            redacted: s.redacted,
            readable: s.readable,
            expires_at: None,
        })
        .collect();
    for realm_id in tokens::realms(pool).await? {
        let tokens = PgTokenStore::new(pool.clone(), key.clone(), realm_id.clone());
        if let Some(status) = tokens.status().await? {
            listed.push(ListedSecret {
                name: env::QBO_REFRESH_TOKEN.to_owned(),
                readable: status.refresh_token_readable,
                redacted: status.refresh_token_redacted,
                realm_id: Some(realm_id),
                updated_at: status.updated_at,
                expires_at: status.refresh_token_expires_at,
            });
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: Option<Timestamp>) -> ListedSecret {
        ListedSecret {
            name: env::QBO_REFRESH_TOKEN.to_owned(),
            realm_id: Some("1".to_owned()),
            updated_at: None,
            redacted: "AB…yz".to_owned(),
            readable: true,
            expires_at,
        }
    }

    #[test]
    fn a_token_is_ending_soon_from_thirty_days_before_its_end() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().expect("time");
        let at = |days: i64| Some(now + SignedDuration::from_hours(days * 24));
        assert!(!token(at(31)).ending_soon(now));
        assert!(token(at(30)).ending_soon(now));
        assert!(token(at(-1)).ending_soon(now));
        assert!(!token(None).ending_soon(now));
        assert_eq!(token(at(31)).days_left(now), Some(31));
        assert_eq!(token(at(-1)).days_left(now), Some(-1));
    }
}
