//! What the web UI keeps in `ops`: operators with argon2 password hashes, sessions (only a
//! SHA-256 of the session id is stored, with the session's CSRF token), failed logins for rate
//! limiting (shared by every server process), and the one-time `state` of each "Connect
//! QuickBooks" round trip.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

use crate::store::StoreError;

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Failed logins allowed per user name and per client within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: i64 = 5;

/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A random, URL-safe token of 256 bits.
///
/// # Errors
/// No randomness.
pub fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// The argon2id PHC string of `password`.
///
/// # Errors
/// Hashing failed.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Random(format!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Whether any operator exists.
///
/// # Errors
/// Database errors.
pub async fn has_users(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ops.users)")
            .fetch_one(pool)
            .await?,
    )
}

/// Creates or replaces an operator's password. Existing sessions of that user end.
///
/// # Errors
/// Database errors.
pub async fn set_user(pool: &PgPool, username: &str, password: &str) -> Result<(), StoreError> {
    let hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO ops.users (username, password_hash) VALUES ($1, $2) \
         ON CONFLICT (username) DO UPDATE SET password_hash = $2, updated_at = now()",
    )
    .bind(username)
    .bind(hash)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM ops.sessions WHERE username = $1")
        .bind(username)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates the first operator when there is none: with `password`, or a generated one that is
/// returned (to be shown once). `None` when operators already exist.
///
/// # Errors
/// Database errors.
pub async fn ensure_first_user(
    pool: &PgPool,
    username: &str,
    password: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if has_users(pool).await? {
        return Ok(None);
    }
    let password = match password {
        Some(p) => p.to_owned(),
        None => random_token()?.chars().take(20).collect(),
    };
    let hash = hash_password(&password)?;
    let inserted = sqlx::query(
        "INSERT INTO ops.users (username, password_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(username)
    .bind(hash)
    .execute(pool)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(password))
}

/// Makes sure the first operator exists: with `password` when given (set again whenever it no
/// longer matches, so the environment can reset a lost password), otherwise, when no operator
/// exists at all, with a generated password that is returned to be shown once.
///
/// # Errors
/// Database errors.
pub async fn ensure_admin(
    pool: &PgPool,
    username: &str,
    password: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if let Some(password) = password {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM ops.users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await?;
        if !hash.is_some_and(|h| verify_password(password, &h)) {
            set_user(pool, username, password).await?;
        }
        return Ok(None);
    }
    ensure_first_user(pool, username, None).await
}

/// Whether `username` or `client` failed too often lately.
///
/// # Errors
/// Database errors.
pub async fn login_blocked(
    pool: &PgPool,
    username: &str,
    client: &str,
) -> Result<bool, StoreError> {
    let (by_user, by_client): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE username = $1), count(*) FILTER (WHERE client = $2) \
         FROM ops.login_failures WHERE at > now() - make_interval(secs => $3)",
    )
    .bind(username)
    .bind(client)
    .bind(FAILURE_WINDOW.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(by_user >= MAX_FAILURES || by_client >= MAX_FAILURES * 4)
}

/// A session just opened.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id for the cookie (never stored).
    pub id: String,
}

/// Checks a login. On success opens a session; on failure records it.
///
/// # Errors
/// Database errors.
pub async fn login(
    pool: &PgPool,
    username: &str,
    password: &str,
    client: &str,
) -> Result<Option<NewSession>, StoreError> {
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM ops.users WHERE username = $1")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    // An unknown user costs the same as a wrong password.
    let ok = match &hash {
        Some(h) => verify_password(password, h),
        None => {
            let _ = verify_password(password, DUMMY_HASH);
            false
        }
    };
    if !ok {
        sqlx::query("INSERT INTO ops.login_failures (username, client) VALUES ($1, $2)")
            .bind(username.chars().take(200).collect::<String>())
            .bind(client)
            .execute(pool)
            .await?;
        return Ok(None);
    }
    let id = random_token()?;
    sqlx::query(
        "INSERT INTO ops.sessions (id_hash, username, csrf_token, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(sha256(&id))
    .bind(username)
    .bind(random_token()?)
    .bind(SESSION_IDLE.as_secs_f64())
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM ops.sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(Some(NewSession { id }))
}

/// A hash of nothing anyone knows, verified for unknown users so timing tells nothing.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0XqkTz4h9H8hG8Gk2Jm1e2b3c4d5e6f7g8h9i0j1k2l";

/// A live session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    /// The operator.
    pub username: String,
    /// The token every form of this session must carry.
    pub csrf_token: String,
}

/// The live session with this id (and renews it), if any.
///
/// # Errors
/// Database errors.
pub async fn session(pool: &PgPool, id: &str) -> Result<Option<Session>, StoreError> {
    if id.len() > 100 {
        return Ok(None);
    }
    Ok(sqlx::query_as::<_, Session>(
        "UPDATE ops.sessions SET last_seen = now(), expires_at = now() + make_interval(secs => $2) \
         WHERE id_hash = $1 AND expires_at > now() RETURNING username, csrf_token",
    )
    .bind(sha256(id))
    .bind(SESSION_IDLE.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Ends a session.
///
/// # Errors
/// Database errors.
pub async fn logout(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ops.sessions WHERE id_hash = $1")
        .bind(sha256(id))
        .execute(pool)
        .await?;
    Ok(())
}

/// Creates the `state` of a Connect round trip, bound to the session, valid 10 minutes.
///
/// # Errors
/// Database errors.
pub async fn new_oauth_state(pool: &PgPool, session_id: &str) -> Result<String, StoreError> {
    let state = random_token()?;
    sqlx::query(
        "INSERT INTO ops.oauth_states (state_hash, session_hash, expires_at) \
         VALUES ($1, $2, now() + interval '10 minutes')",
    )
    .bind(sha256(&state))
    .bind(sha256(session_id))
    .execute(pool)
    .await?;
    Ok(state)
}

/// Spends a Connect `state`: true only once, within its time, for the session that made it.
///
/// # Errors
/// Database errors.
pub async fn take_oauth_state(
    pool: &PgPool,
    session_id: &str,
    state: &str,
) -> Result<bool, StoreError> {
    if state.len() > 100 {
        return Ok(false);
    }
    let found: Option<bool> = sqlx::query_scalar(
        "DELETE FROM ops.oauth_states WHERE state_hash = $1 \
         RETURNING session_hash = $2 AND expires_at > now()",
    )
    .bind(sha256(state))
    .bind(sha256(session_id))
    .fetch_optional(pool)
    .await?;
    Ok(found == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", DUMMY_HASH));
        assert!(!verify_password("x", "not a hash"));
    }
}
