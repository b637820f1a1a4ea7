//! OAuth2 state: the refresh-token chain with rotation, revocation and reconnect, the issued
//! access tokens with their expiry, and the authorization codes of the consent flow.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::Rotation;
use crate::rng::SharedRng;

/// Intuit's rolling refresh-token lifetime (101 days), reported as `x_refresh_token_expires_in`.
const REFRESH_TOKEN_LIFETIME_SECS: u64 = 8_726_400;
/// The (constant, non-secret) JWE header every generated access token starts with.
const ACCESS_TOKEN_HEADER: &str = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0";
/// Keep at most this many access tokens before pruning expired ones.
const MAX_ACCESS_TOKENS: usize = 10_000;
/// Keep at most this many authorization codes before pruning expired ones.
const MAX_AUTH_CODES: usize = 10_000;

/// A successful token response, in Intuit's key order (no `id_token`: no OpenID scope).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) x_refresh_token_expires_in: u64,
}

/// Why a refresh was refused; each maps to one of Intuit's recorded 400 bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantError {
    /// Never issued: `{"error":"invalid_grant"}`.
    Unknown,
    /// Replaced by rotation or reconnect: `{"error_description":"Token invalid",…}`.
    Replaced,
    /// Revoked: `{"error":"invalid_grant","error_description":"Incorrect or invalid refresh token"}`.
    Revoked,
}

impl GrantError {
    /// The exact response body.
    pub(crate) fn body(self) -> &'static str {
        match self {
            GrantError::Unknown => r#"{"error":"invalid_grant"}"#,
            GrantError::Replaced => {
                r#"{"error_description":"Token invalid","error":"invalid_grant"}"#
            }
            GrantError::Revoked => {
                r#"{"error":"invalid_grant","error_description":"Incorrect or invalid refresh token"}"#
            }
        }
    }
}

/// An authorization code handed out by the consent redirect.
#[derive(Debug, Clone)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    expires: Instant,
    /// The grant the code was exchanged for, once it has been.
    exchanged_for: Option<u64>,
}

/// Why an authorization-code exchange was refused. Every case answers Intuit's bare
/// `{"error":"invalid_grant"}` (RFC 6749 §5.2 puts them all under `invalid_grant`); the variants
/// only tell tests and logs apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeError {
    /// Never issued, or expired and pruned.
    Unknown,
    /// Issued, but older than its lifetime.
    Expired,
    /// Already exchanged once (the grant it produced is revoked, if still current).
    Reused,
    /// Issued to another client.
    WrongClient,
    /// `redirect_uri` differs from the authorization request's.
    WrongRedirectUri,
}

/// Result of checking a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Valid,
    Expired,
    Unknown,
}

/// Token bookkeeping (behind a mutex in the state).
#[derive(Debug)]
pub(crate) struct Tokens {
    latest: String,
    latest_issued: Instant,
    latest_valid: bool,
    replaced: HashSet<String>,
    revoked: HashSet<String>,
    access: HashMap<String, Instant>,
    /// Grant generation: a new one starts with every consent (code exchange or reconnect);
    /// refresh rotations stay within it.
    grant: u64,
    codes: HashMap<String, AuthCode>,
}

impl Tokens {
    pub(crate) fn new(initial_refresh_token: String) -> Self {
        Self {
            latest: initial_refresh_token,
            latest_issued: Instant::now(),
            latest_valid: true,
            replaced: HashSet::new(),
            revoked: HashSet::new(),
            access: HashMap::new(),
            grant: 0,
            codes: HashMap::new(),
        }
    }

    /// The most recently issued refresh token (valid unless revoked).
    pub(crate) fn latest(&self) -> &str {
        &self.latest
    }

    /// Exchanges a refresh token, rotating it per `rotation`.
    pub(crate) fn refresh(
        &mut self,
        presented: &str,
        rotation: Rotation,
        ttl: Duration,
        rng: &SharedRng,
    ) -> Result<TokenResponse, GrantError> {
        if presented != self.latest || !self.latest_valid {
            return Err(if self.revoked.contains(presented) {
                GrantError::Revoked
            } else if self.replaced.contains(presented) {
                GrantError::Replaced
            } else {
                GrantError::Unknown
            });
        }
        let rotate = match rotation {
            Rotation::EveryRefresh => true,
            Rotation::AfterAge(age) => self.latest_issued.elapsed() >= age,
        };
        if rotate {
            self.issue_refresh_token(rng);
        }
        Ok(self.token_response(ttl, rng))
    }

    /// Issues an access token for the current grant and answers with it and the current
    /// refresh token.
    fn token_response(&mut self, ttl: Duration, rng: &SharedRng) -> TokenResponse {
        let access_token = new_access_token(rng);
        let now = Instant::now();
        if self.access.len() >= MAX_ACCESS_TOKENS {
            self.access.retain(|_, exp| *exp > now);
        }
        self.access.insert(access_token.clone(), now + ttl);
        TokenResponse {
            access_token,
            refresh_token: self.latest.clone(),
            token_type: "bearer",
            expires_in: ttl.as_secs(),
            x_refresh_token_expires_in: REFRESH_TOKEN_LIFETIME_SECS
                .saturating_sub(self.latest_issued.elapsed().as_secs()),
        }
    }

    fn issue_refresh_token(&mut self, rng: &SharedRng) {
        let old = std::mem::replace(&mut self.latest, new_refresh_token(rng));
        if self.latest_valid {
            self.replaced.insert(old);
        }
        self.latest_issued = Instant::now();
        self.latest_valid = true;
    }

    /// The user re-consented: a brand-new valid refresh token (a new grant).
    pub(crate) fn reconnect(&mut self, rng: &SharedRng) -> String {
        self.issue_refresh_token(rng);
        self.grant += 1;
        self.latest.clone()
    }

    /// The consent redirect: a new single-use code for `client_id` and `redirect_uri`, valid
    /// for `ttl`.
    pub(crate) fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        ttl: Duration,
        rng: &SharedRng,
    ) -> String {
        let now = Instant::now();
        if self.codes.len() >= MAX_AUTH_CODES {
            self.codes.retain(|_, c| c.expires > now);
        }
        let code = new_refresh_token(rng);
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                expires: now + ttl,
                exchanged_for: None,
            },
        );
        code
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`): a new grant whose
    /// refresh token replaces the current one (which answers `invalid_grant` from then on, as
    /// after any reconnect), plus an access token.
    ///
    /// A code works once. Presenting it again is refused and, as RFC 6749 §4.1.2 asks and
    /// Intuit does ("a second call with the same oauth code … would invalidate the token for
    /// that auth code", intuit/oauth-jsclient#173), revokes the grant it was exchanged for if
    /// that grant is still the current one. A wrong client or `redirect_uri` is refused
    /// without using the code up.
    pub(crate) fn exchange_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        ttl: Duration,
        rng: &SharedRng,
    ) -> Result<TokenResponse, CodeError> {
        let Some(entry) = self.codes.get(code) else {
            return Err(CodeError::Unknown);
        };
        if let Some(grant) = entry.exchanged_for {
            if grant == self.grant {
                self.revoke();
                self.access.clear();
            }
            return Err(CodeError::Reused);
        }
        if entry.expires <= Instant::now() {
            return Err(CodeError::Expired);
        }
        if entry.client_id != client_id {
            return Err(CodeError::WrongClient);
        }
        if entry.redirect_uri != redirect_uri {
            return Err(CodeError::WrongRedirectUri);
        }
        self.reconnect(rng);
        let grant = self.grant;
        if let Some(entry) = self.codes.get_mut(code) {
            entry.exchanged_for = Some(grant);
        }
        Ok(self.token_response(ttl, rng))
    }

    /// The current refresh token answers `invalid_grant` from now on.
    pub(crate) fn revoke(&mut self) {
        if self.latest_valid {
            self.revoked.insert(self.latest.clone());
            self.latest_valid = false;
        }
    }

    /// Revokes the grant `token` belongs to (the current refresh token or an access token issued
    /// for it), as Intuit's revocation endpoint does: the refresh token answers `invalid_grant`
    /// and every access token is unknown from then on. Returns whether anything was revoked
    /// (unknown tokens are ignored, per RFC 7009).
    pub(crate) fn revoke_token(&mut self, token: &str) -> bool {
        let current = self.latest_valid && token == self.latest;
        if !current && !self.access.contains_key(token) {
            return false;
        }
        self.revoke();
        self.access.clear();
        true
    }

    /// Every access token issued so far is expired.
    pub(crate) fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for exp in self.access.values_mut() {
            *exp = (*exp).min(now);
        }
    }

    pub(crate) fn check_access(&self, token: &str) -> Access {
        match self.access.get(token) {
            Some(exp) if *exp > Instant::now() => Access::Valid,
            Some(_) => Access::Expired,
            None => Access::Unknown,
        }
    }
}

fn random_bytes(rng: &SharedRng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// An opaque JWE-looking access token (~280 characters).
fn new_access_token(rng: &SharedRng) -> String {
    format!(
        "{ACCESS_TOKEN_HEADER}..{}.{}",
        URL_SAFE_NO_PAD.encode(random_bytes(rng, 180)),
        URL_SAFE_NO_PAD.encode(random_bytes(rng, 16))
    )
}

/// A refresh token shaped like Intuit's: `AB11` + 10 digits + 36 alphanumerics.
fn new_refresh_token(rng: &SharedRng) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let secs = jiff::Timestamp::now()
        .as_second()
        .rem_euclid(10_000_000_000);
    let mut s = format!("AB11{secs:010}");
    for _ in 0..36 {
        s.push(char::from(ALNUM[rng.below(ALNUM.len() as u64) as usize]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_replaces_and_old_token_fails() {
        let rng = SharedRng::new(1);
        let mut t = Tokens::new("rt0".to_owned());
        let ttl = Duration::from_secs(60);
        let r1 = t.refresh("rt0", Rotation::EveryRefresh, ttl, &rng).unwrap();
        assert_ne!(r1.refresh_token, "rt0");
        assert_eq!(r1.refresh_token.len(), 50);
        assert_eq!(
            t.refresh("rt0", Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Replaced
        );
        assert_eq!(
            t.refresh("nope", Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Unknown
        );
        assert_eq!(t.check_access(&r1.access_token), Access::Valid);
        t.expire_access_tokens();
        assert_eq!(t.check_access(&r1.access_token), Access::Expired);
        t.revoke();
        assert_eq!(
            t.refresh(&r1.refresh_token, Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Revoked
        );
        let fresh = t.reconnect(&rng);
        assert!(t.refresh(&fresh, Rotation::EveryRefresh, ttl, &rng).is_ok());
    }

    #[test]
    fn revoking_a_token_revokes_the_grant() {
        let rng = SharedRng::new(3);
        let ttl = Duration::from_secs(60);
        let mut t = Tokens::new("rt0".to_owned());
        let r = t.refresh("rt0", Rotation::EveryRefresh, ttl, &rng).unwrap();
        assert!(
            !t.revoke_token("rt0"),
            "a replaced token is not the grant's"
        );
        assert!(!t.revoke_token("unknown"));
        assert!(t.revoke_token(&r.access_token));
        assert_eq!(t.check_access(&r.access_token), Access::Unknown);
        assert_eq!(
            t.refresh(&r.refresh_token, Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Revoked
        );
        let fresh = t.reconnect(&rng);
        let r = t
            .refresh(&fresh, Rotation::EveryRefresh, ttl, &rng)
            .unwrap();
        assert!(t.revoke_token(&r.refresh_token));
        assert_eq!(t.check_access(&r.access_token), Access::Unknown);
    }

    #[test]
    fn codes_are_single_use_and_bound() {
        let rng = SharedRng::new(4);
        let ttl = Duration::from_secs(60);
        let mut t = Tokens::new("rt0".to_owned());
        let code = t.issue_code("cid", "https://app/cb", ttl, &rng);
        assert_eq!(
            t.exchange_code(&code, "other", "https://app/cb", ttl, &rng)
                .unwrap_err(),
            CodeError::WrongClient
        );
        assert_eq!(
            t.exchange_code(&code, "cid", "https://app/cb2", ttl, &rng)
                .unwrap_err(),
            CodeError::WrongRedirectUri
        );
        let r = t
            .exchange_code(&code, "cid", "https://app/cb", ttl, &rng)
            .unwrap();
        assert_ne!(r.refresh_token, "rt0");
        assert_eq!(r.x_refresh_token_expires_in, REFRESH_TOKEN_LIFETIME_SECS);
        assert_eq!(
            t.refresh("rt0", Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Replaced
        );
        assert_eq!(t.check_access(&r.access_token), Access::Valid);
        // A replay revokes what the code produced.
        assert_eq!(
            t.exchange_code(&code, "cid", "https://app/cb", ttl, &rng)
                .unwrap_err(),
            CodeError::Reused
        );
        assert_eq!(t.check_access(&r.access_token), Access::Unknown);
        assert_eq!(
            t.refresh(&r.refresh_token, Rotation::EveryRefresh, ttl, &rng)
                .unwrap_err(),
            GrantError::Revoked
        );
        // A replay of an older code leaves a newer grant alone.
        let c2 = t.issue_code("cid", "https://app/cb", ttl, &rng);
        let r2 = t
            .exchange_code(&c2, "cid", "https://app/cb", ttl, &rng)
            .unwrap();
        let c3 = t.issue_code("cid", "https://app/cb", ttl, &rng);
        let r3 = t
            .exchange_code(&c3, "cid", "https://app/cb", ttl, &rng)
            .unwrap();
        assert!(
            t.exchange_code(&c2, "cid", "https://app/cb", ttl, &rng)
                .is_err()
        );
        assert_eq!(t.check_access(&r2.access_token), Access::Valid);
        assert!(
            t.refresh(&r3.refresh_token, Rotation::EveryRefresh, ttl, &rng)
                .is_ok()
        );
        // Expired and unknown codes.
        let c4 = t.issue_code("cid", "https://app/cb", Duration::ZERO, &rng);
        assert_eq!(
            t.exchange_code(&c4, "cid", "https://app/cb", ttl, &rng)
                .unwrap_err(),
            CodeError::Expired
        );
        assert_eq!(
            t.exchange_code("nope", "cid", "https://app/cb", ttl, &rng)
                .unwrap_err(),
            CodeError::Unknown
        );
    }

    #[test]
    fn after_age_keeps_token_until_old() {
        let rng = SharedRng::new(2);
        let mut t = Tokens::new("rt0".to_owned());
        let rot = Rotation::AfterAge(Duration::from_secs(3600));
        let r = t
            .refresh("rt0", rot, Duration::from_secs(60), &rng)
            .unwrap();
        assert_eq!(r.refresh_token, "rt0");
        let r = t
            .refresh(
                "rt0",
                Rotation::AfterAge(Duration::ZERO),
                Duration::from_secs(60),
                &rng,
            )
            .unwrap();
        assert_ne!(r.refresh_token, "rt0");
    }
}
