//! Operators' passwords and logging in: argon2id hashes computed and checked on the blocking
//! pool behind a small limit ([`HASHING_PERMITS`]), so a flood of logins cannot stall the API,
//! the scheduler or heartbeats; an unknown user name costs one full verification against
//! [`DUMMY_HASH`] like a known one; failed logins are counted per client address (never per user
//! name alone, so nobody can lock anybody else out).

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::domain::access::rate_key;
use crate::store::StoreError;
use crate::store::auth::web::{self, NewSession};

/// Failed logins allowed from one client for one user name within the failure window.
pub const MAX_FAILURES_PER_NAME: i64 = 5;

/// Failed logins allowed from one client in all within the failure window (guessing names).
pub const MAX_FAILURES_PER_CLIENT: i64 = 20;

/// Password hashes computed or checked at the same time in this process.
pub const HASHING_PERMITS: usize = 2;

static HASHING: Semaphore = Semaphore::const_new(HASHING_PERMITS);

/// An argon2id hash (the default parameters, as every stored hash) of a password nobody knows,
/// verified for unknown user names so that they cost what a known one costs.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXktc2FsdC1mb3ItdW5rbm93bg$2i3xQ4wYVUbVq3k1k1JYb3oV0GJiW5o2pNq8ZCiwGkA";

/// The argon2id PHC string of `password` (blocking: use [`hash`] from async code).
///
/// # Errors
/// Hashing failed (no randomness for the salt).
pub fn hash_now(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Random(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `phc` (blocking: use [`verify`] from async code).
#[must_use]
pub fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Runs `work` on the blocking pool once one of the [`HASHING_PERMITS`] is free.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| StoreError::Random(format!("password hashing unavailable: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Random(format!("password hashing failed: {e}")))
}

/// [`hash_now`] off the async threads.
///
/// # Errors
/// Hashing failed.
pub async fn hash(password: &str) -> Result<String, StoreError> {
    let password = password.to_owned();
    off_the_runtime(move || hash_now(&password)).await?
}

/// Whether `password` matches `phc`, off the async threads; with no hash (an unknown user) the
/// same work is done against [`DUMMY_HASH`] and the answer is no.
///
/// # Errors
/// The blocking pool is gone.
pub async fn verify(password: &str, phc: Option<String>) -> Result<bool, StoreError> {
    let password = password.to_owned();
    off_the_runtime(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let _ = verify_now(&password, DUMMY_HASH);
            false
        }
    })
    .await
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// This client failed too often lately; nothing was checked.
    Throttled,
    /// Wrong user name or password (recorded against the client).
    Refused,
    /// Logged in.
    Session(NewSession),
}

/// Checks a login from `client`: refused unhashed when this client failed too often lately,
/// otherwise the password is checked (an unknown name costs the same), a failure is recorded
/// against the client and a success opens a session.
///
/// # Errors
/// Database errors.
pub async fn login(
    pool: &PgPool,
    username: &str,
    password: &str,
    client: IpAddr,
) -> Result<LoginOutcome, StoreError> {
    let client = rate_key(client);
    // PostgreSQL's text holds no NUL and no operator's name has one: such a name is kept with
    // U+FFFD in place of each NUL, so that it is refused and counted like any other.
    let username = &username.replace('\0', "\u{FFFD}");
    let (for_name, in_all) = web::recent_failures(pool, username, &client).await?;
    if for_name >= MAX_FAILURES_PER_NAME || in_all >= MAX_FAILURES_PER_CLIENT {
        return Ok(LoginOutcome::Throttled);
    }
    let stored = web::password_hash(pool, username).await?;
    if !verify(password, stored).await? {
        web::record_failure(pool, username, &client).await?;
        return Ok(LoginOutcome::Refused);
    }
    Ok(LoginOutcome::Session(
        web::open_session(pool, username).await?,
    ))
}

/// Sets `username`'s password (creating the operator if needed); their sessions end.
///
/// # Errors
/// Database errors, or hashing failed.
pub async fn set_password(pool: &PgPool, username: &str, password: &str) -> Result<(), StoreError> {
    web::set_user(pool, username, &hash(password).await?).await
}

/// Makes sure the first operator exists: with `password` when given (set again whenever it no
/// longer matches, so the environment can reset a lost password), otherwise, when no operator
/// exists at all, with a generated password that is returned to be shown once.
///
/// # Errors
/// Database errors, or hashing failed.
pub async fn ensure_admin(
    pool: &PgPool,
    username: &str,
    password: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if let Some(password) = password {
        let stored = web::password_hash(pool, username).await?;
        if stored.is_none() || !verify(password, stored).await? {
            set_password(pool, username, password).await?;
        }
        return Ok(None);
    }
    if web::has_users(pool).await? {
        return Ok(None);
    }
    let generated: String = web::random_token()?.chars().take(20).collect();
    let created = web::create_user(pool, username, &hash(&generated).await?).await?;
    Ok(created.then_some(generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_now("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_now("correct horse", &hash));
        assert!(!verify_now("correct hors", &hash));
        assert!(!verify_now("correct horse", DUMMY_HASH));
        assert!(!verify_now("x", "not a hash"));
    }

    #[test]
    fn the_dummy_hash_parses_with_the_parameters_of_real_hashes() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real_text = hash_now("anything").expect("hash");
        let real = PasswordHash::new(&real_text).expect("a real hash parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params.to_string(), real.params.to_string());
        assert_eq!(
            dummy.hash.map(|h| h.len()),
            real.hash.map(|h| h.len()),
            "the dummy's output length differs"
        );
        assert!(Argon2::default().verify_password(b"x", &dummy).is_err());
    }

    /// The median of `tries` timings of `f`.
    fn seconds(f: impl Fn()) -> f64 {
        let start = std::time::Instant::now();
        f();
        start.elapsed().as_secs_f64()
    }

    fn median(mut times: Vec<f64>) -> f64 {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    #[test]
    fn an_unknown_user_costs_what_a_wrong_password_costs() {
        let real = hash_now("the real one").expect("hash");
        // Taken in turns, so that a load on the machine weighs on both alike.
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            known.push(seconds(|| assert!(!verify_now("guess", &real))));
            unknown.push(seconds(|| assert!(!verify_now("guess", DUMMY_HASH))));
        }
        let (known, unknown) = (median(known), median(unknown));
        let ratio = unknown / known;
        assert!(
            (0.5..=2.0).contains(&ratio),
            "known {known:.4}s, unknown {unknown:.4}s (ratio {ratio:.2})"
        );
    }
}
