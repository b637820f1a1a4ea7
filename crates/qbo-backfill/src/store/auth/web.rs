//! What the web UI keeps in `ops`: operators with their argon2 password hashes (computed and
//! checked by the login use case, never here), sessions (only a SHA-256 of the session id is
//! stored, with the session's CSRF token), failed logins for rate limiting (shared by every
//! server process, pruned after their window), and the one-time `state` of each "Connect
//! QuickBooks" round trip.

use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

use crate::store::StoreError;

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// How long a session lasts at most from its login, however active: then the operator logs in
/// again.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The window failed logins are counted in; older failures are pruned.
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

/// The stored password hash (an argon2 PHC string) of `username`, if that operator exists.
///
/// # Errors
/// Database errors.
pub async fn password_hash(pool: &PgPool, username: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM ops.users WHERE username = $1")
            .bind(username)
            .fetch_optional(pool)
            .await?,
    )
}

/// Creates or replaces an operator's password hash. Existing sessions of that user end.
///
/// # Errors
/// Database errors.
pub async fn set_user(pool: &PgPool, username: &str, hash: &str) -> Result<(), StoreError> {
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

/// Creates `username` with `hash` unless that operator exists; whether it was created.
///
/// # Errors
/// Database errors.
pub async fn create_user(pool: &PgPool, username: &str, hash: &str) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO ops.users (username, password_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(username)
    .bind(hash)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Failed logins within [`FAILURE_WINDOW`] from `client`: for `username`, and in all.
///
/// # Errors
/// Database errors.
pub async fn recent_failures(
    pool: &PgPool,
    username: &str,
    client: &str,
) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE username = $1), count(*) FROM ops.login_failures \
         WHERE client = $2 AND at > now() - make_interval(secs => $3)",
    )
    .bind(username)
    .bind(client)
    .bind(FAILURE_WINDOW.as_secs_f64())
    .fetch_one(pool)
    .await?)
}

/// Records a failed login of `username` from `client`, and prunes failures older than
/// [`FAILURE_WINDOW`].
///
/// # Errors
/// Database errors.
pub async fn record_failure(pool: &PgPool, username: &str, client: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO ops.login_failures (username, client) VALUES ($1, $2)")
        .bind(username.chars().take(200).collect::<String>())
        .bind(client)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM ops.login_failures WHERE at <= now() - make_interval(secs => $1)")
        .bind(FAILURE_WINDOW.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}

/// A session just opened.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id for the cookie (never stored).
    pub id: String,
}

/// Opens a session for `username` (whose password was just checked); ends expired sessions.
///
/// # Errors
/// Database errors, or no randomness.
pub async fn open_session(pool: &PgPool, username: &str) -> Result<NewSession, StoreError> {
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
    Ok(NewSession { id })
}

/// A live session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    /// The operator.
    pub username: String,
    /// The token every form of this session must carry.
    pub csrf_token: String,
}

/// The live session with this id, if any; renews it when it was last renewed over a minute ago.
/// A page or API read is then a read-only transaction: no commit waits for the WAL while runs
/// load (each read used to write the session row; under a 25,000 rows/s load that put commit
/// waits into the tail of every read).
///
/// # Errors
/// Database errors.
pub async fn session(pool: &PgPool, id: &str) -> Result<Option<Session>, StoreError> {
    if id.len() > 100 {
        return Ok(None);
    }
    Ok(sqlx::query_as::<_, Session>(
        "WITH live AS (SELECT id_hash, username, csrf_token, last_seen FROM ops.sessions \
           WHERE id_hash = $1 AND expires_at > now() \
             AND created_at + make_interval(secs => $3) > now()), \
         renewed AS (UPDATE ops.sessions s SET last_seen = now(), \
           expires_at = least(now() + make_interval(secs => $2), \
                              s.created_at + make_interval(secs => $3)) \
           FROM live WHERE s.id_hash = live.id_hash \
             AND (live.last_seen IS NULL OR live.last_seen < now() - interval '1 minute')) \
         SELECT username, csrf_token FROM live",
    )
    .bind(sha256(id))
    .bind(SESSION_IDLE.as_secs_f64())
    .bind(SESSION_ABSOLUTE.as_secs_f64())
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
