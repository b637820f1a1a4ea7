//! Client configuration: which Intuit environment to talk to (or which overridden base and
//! token URLs), timeouts, the token refresh margin, page size, retry policy, per-company rate
//! limits, and the app's credentials.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Intuit's token endpoint; the same for sandbox and production.
pub const TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";
/// The production API host.
pub const PRODUCTION_API_BASE: &str = "https://quickbooks.api.intuit.com";
/// The sandbox API host.
pub const SANDBOX_API_BASE: &str = "https://sandbox-quickbooks.api.intuit.com";
/// The minor version every request pins (Intuit ignores anything lower since 2025-08).
pub const DEFAULT_MINOR_VERSION: u32 = 75;
/// The largest `MAXRESULTS` QBO accepts.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which Intuit environment a company lives in. Sandbox credentials do not work in production
/// and vice versa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `sandbox-quickbooks.api.intuit.com`.
    Sandbox,
    /// `quickbooks.api.intuit.com`.
    Production,
}

impl Environment {
    /// The lower-case name, as accepted by [`FromStr`].
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }

    /// Intuit's API base URL for this environment.
    #[must_use]
    pub const fn api_base(self) -> &'static str {
        match self {
            Self::Sandbox => SANDBOX_API_BASE,
            Self::Production => PRODUCTION_API_BASE,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is neither `sandbox` nor `production`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a QuickBooks environment (expected `sandbox` or `production`)")]
pub struct UnknownEnvironment(pub String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sandbox" => Ok(Self::Sandbox),
            "production" => Ok(Self::Production),
            _ => Err(UnknownEnvironment(s.to_owned())),
        }
    }
}

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// Retries after the first attempt (5xx, timeouts, dropped connections, truncated bodies,
    /// 429s). Default 6.
    pub max_retries: u32,
    /// The first backoff ceiling; it doubles per retry (full jitter). Default 500 ms.
    pub initial_backoff: Duration,
    /// The largest backoff ceiling. Default 30 s.
    pub max_backoff: Duration,
    /// How long to wait after a 429 that carries no `Retry-After`. Default 60 s (Intuit's advice).
    pub throttle_wait: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            throttle_wait: Duration::from_secs(60),
        }
    }
}

/// The client-side rate limit for one company, shared by every clone of a client.
/// `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests started in any rolling minute. Default 500 (Intuit's per-realm limit).
    pub requests_per_minute: Option<u32>,
    /// Requests started in any rolling second. Default 10 (Intuit's per-realm-and-app limit).
    pub requests_per_second: Option<u32>,
    /// Requests in flight at once. Default 10.
    pub max_in_flight: Option<u32>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: Some(500),
            requests_per_second: Some(10),
            max_in_flight: Some(10),
        }
    }
}

impl RateLimitSettings {
    /// No client-side limits at all.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            requests_per_minute: None,
            requests_per_second: None,
            max_in_flight: None,
        }
    }
}

/// Everything a [`crate::QboClient`] needs besides credentials and the token store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The environment the credentials belong to.
    pub environment: Environment,
    /// The API base URL (scheme, host and optional path prefix); `http://` works for local
    /// simulators.
    pub api_base_url: Url,
    /// The OAuth2 token endpoint.
    pub token_url: Url,
    /// The `minorversion` sent with every request. Default 75.
    pub minor_version: u32,
    /// Whole-request timeout (Intuit times requests out at 120 s). Default 120 s.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// Refresh the access token this long before it expires. Default 300 s.
    pub refresh_margin: Duration,
    /// `MAXRESULTS` for paged queries, 1..=1000. Default 1000.
    pub page_size: u32,
    /// Retry policy.
    pub retry: RetrySettings,
    /// Client-side rate limits.
    pub limits: RateLimitSettings,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The largest API response body read, after gzip decompression (default 64 MiB; a page of
    /// 1000 large invoices is a few MiB). A longer body fails the request instead of filling
    /// memory.
    pub max_response_bytes: usize,
}

impl ClientSettings {
    /// Defaults for `env`: Intuit's hosts and token URL, minor version 75, pages of 1000,
    /// Intuit's published limits.
    #[must_use]
    pub fn for_environment(env: Environment) -> Self {
        Self {
            environment: env,
            api_base_url: Url::parse(env.api_base()).expect("built-in API base URL is valid"),
            token_url: Url::parse(TOKEN_URL).expect("built-in token URL is valid"),
            minor_version: DEFAULT_MINOR_VERSION,
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            refresh_margin: Duration::from_secs(300),
            page_size: MAX_PAGE_SIZE,
            retry: RetrySettings::default(),
            limits: RateLimitSettings::default(),
            user_agent: concat!("qbo-backfill/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }

    /// Checks the settings for values QBO or this client cannot work with.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}, not {}",
                self.page_size
            ));
        }
        if self.api_base_url.cannot_be_a_base() {
            return Err(format!(
                "api_base_url `{}` cannot be used as a base URL",
                self.api_base_url
            ));
        }
        for (name, value) in [
            ("requests_per_minute", self.limits.requests_per_minute),
            ("requests_per_second", self.limits.requests_per_second),
            ("max_in_flight", self.limits.max_in_flight),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "{name} must be at least 1 (use None for unlimited)"
                ));
            }
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err("retry.initial_backoff must not exceed retry.max_backoff".to_owned());
        }
        Ok(())
    }
}

/// The app's OAuth2 client credentials and the company (realm) they act on.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (never printed).
    pub client_secret: SecretString,
    /// The company id (`realmId`).
    pub realm_id: String,
}

impl Credentials {
    /// Credentials made of copies of these.
    #[must_use]
    pub fn of(client_id: &str, client_secret: &SecretString, realm_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            realm_id: realm_id.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn environments_parse_and_pick_intuit_hosts() {
        assert_eq!("sandbox".parse::<Environment>(), Ok(Environment::Sandbox));
        assert_eq!(
            "Production".parse::<Environment>(),
            Ok(Environment::Production)
        );
        assert!("prod".parse::<Environment>().is_err());
        let s = ClientSettings::for_environment(Environment::Sandbox);
        assert_eq!(
            s.api_base_url.as_str(),
            "https://sandbox-quickbooks.api.intuit.com/"
        );
        let p = ClientSettings::for_environment(Environment::Production);
        assert_eq!(
            p.api_base_url.as_str(),
            "https://quickbooks.api.intuit.com/"
        );
        assert_eq!(p.token_url.as_str(), TOKEN_URL);
        assert_eq!(p.minor_version, 75);
        assert_eq!(p.page_size, 1000);
        assert_eq!(p.request_timeout, Duration::from_secs(120));
        assert_eq!(p.connect_timeout, Duration::from_secs(10));
        assert_eq!(p.refresh_margin, Duration::from_secs(300));
        assert_eq!(p.retry.max_retries, 6);
        assert_eq!(p.limits.requests_per_minute, Some(500));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn validation_rejects_bad_values() {
        let mut s = ClientSettings::for_environment(Environment::Sandbox);
        s.page_size = 1001;
        assert!(s.validate().is_err());
        s.page_size = 100;
        s.limits.max_in_flight = Some(0);
        assert!(s.validate().is_err());
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials {
            client_id: "app".into(),
            client_secret: SecretString::from("very-secret-value"),
            realm_id: "123".into(),
        };
        assert!(!format!("{c:?}").contains("very-secret-value"));
    }
}
