//! Configuration: every environment variable is named once here, and [`Settings::resolve`]
//! turns flags, environment and the secret store into one plain struct that is passed down.

use std::time::Duration;

use secrecy::SecretString;

/// The environment variables this program reads, each named once.
pub mod env {
    /// PostgreSQL URL.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Connections of each process's PostgreSQL pool.
    pub const QBO_BACKFILL_DB_POOL: &str = "QBO_BACKFILL_DB_POOL";
    /// Intuit app client id.
    pub const QBO_CLIENT_ID: &str = "QBO_CLIENT_ID";
    /// Intuit app client secret.
    pub const QBO_CLIENT_SECRET: &str = "QBO_CLIENT_SECRET";
    /// Seeds the secret store's refresh token when it holds none.
    pub const QBO_REFRESH_TOKEN: &str = "QBO_REFRESH_TOKEN";
    /// Company (realm) id.
    pub const QBO_REALM_ID: &str = "QBO_REALM_ID";
    /// `sandbox` or `production`.
    pub const QBO_ENVIRONMENT: &str = "QBO_ENVIRONMENT";
    /// Overrides the API base URL.
    pub const QBO_API_BASE_URL: &str = "QBO_API_BASE_URL";
    /// Overrides the OAuth token endpoint.
    pub const QBO_TOKEN_URL: &str = "QBO_TOKEN_URL";
    /// QBO minor version (default 75).
    pub const QBO_MINOR_VERSION: &str = "QBO_MINOR_VERSION";
    /// Intuit's consent page for "Connect QuickBooks" (default Intuit's).
    pub const QBO_AUTHORIZE_URL: &str = "QBO_AUTHORIZE_URL";
    /// The callback registered with the Intuit app (default `http://localhost:PORT/connect/callback`).
    pub const QBO_REDIRECT_URI: &str = "QBO_REDIRECT_URI";
    /// The first operator's user name (default `admin`).
    pub const QBO_BACKFILL_ADMIN_USER: &str = "QBO_BACKFILL_ADMIN_USER";
    /// The first operator's password; generated and printed once when unset at the first start.
    pub const QBO_BACKFILL_ADMIN_PASSWORD: &str = "QBO_BACKFILL_ADMIN_PASSWORD";
    /// Mark session cookies `Secure` (`true` when served over TLS, e.g. behind a proxy).
    pub const QBO_BACKFILL_SECURE_COOKIES: &str = "QBO_BACKFILL_SECURE_COOKIES";
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated addresses or networks).
    pub const QBO_BACKFILL_TRUSTED_PROXIES: &str = "QBO_BACKFILL_TRUSTED_PROXIES";
    /// The Intuit app's webhook verifier token (a secret: the store's value wins over this).
    pub const QBO_WEBHOOK_VERIFIER_TOKEN: &str = "QBO_WEBHOOK_VERIFIER_TOKEN";
    /// Seconds the changes of one company and entity must be quiet before they become a sync
    /// (default 3; fractions allowed).
    pub const QBO_WEBHOOK_QUIET_SECS: &str = "QBO_WEBHOOK_QUIET_SECS";
    /// The SMTP server alert e-mails go through (unset: e-mail channels cannot deliver).
    pub const QBO_SMTP_HOST: &str = "QBO_SMTP_HOST";
    /// Its port (default 25, 587 with `starttls`, 465 with `tls`).
    pub const QBO_SMTP_PORT: &str = "QBO_SMTP_PORT";
    /// The sender of alert e-mails (default `qbo-backfill@` the SMTP host).
    pub const QBO_SMTP_FROM: &str = "QBO_SMTP_FROM";
    /// The SMTP user, when the server wants a login (its password: the secret `QBO_SMTP_PASSWORD`).
    pub const QBO_SMTP_USER: &str = "QBO_SMTP_USER";
    /// `none`, `starttls` (the default) or `tls`.
    pub const QBO_SMTP_TLS: &str = "QBO_SMTP_TLS";
}

/// The default database when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/qbo_backfill";

/// Reads an environment variable, treating an empty value as unset.
#[must_use]
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The database URL from the environment, or the default.
#[must_use]
pub fn database_url() -> String {
    env_var(env::DATABASE_URL).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// Connections of this process's PostgreSQL pool (`QBO_BACKFILL_DB_POOL`, default
/// [`crate::store::DEFAULT_MAX_CONNECTIONS`]): every `worker` and `serve` holds up to this many,
/// and together they must stay under the server's `max_connections`.
///
/// # Errors
/// A value that is not a number from 1 to 1000.
pub fn db_pool_size() -> Result<u32, ConfigError> {
    match env_var(env::QBO_BACKFILL_DB_POOL) {
        None => Ok(crate::store::DEFAULT_MAX_CONNECTIONS),
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "{}: {text:?} is not a number of connections from 1 to 1000",
                    env::QBO_BACKFILL_DB_POOL
                ))
            }),
    }
}

/// The proxies whose `X-Forwarded-For` the login rate limit believes
/// (`QBO_BACKFILL_TRUSTED_PROXIES`; none when unset).
///
/// # Errors
/// An entry that is not an address or network.
pub fn trusted_proxies() -> Result<crate::domain::access::TrustedProxies, ConfigError> {
    let text = env_var(env::QBO_BACKFILL_TRUSTED_PROXIES).unwrap_or_default();
    crate::domain::access::TrustedProxies::parse(&text)
        .map_err(|e| ConfigError(format!("{}: {e}", env::QBO_BACKFILL_TRUSTED_PROXIES)))
}

/// The webhook quiet period (`QBO_WEBHOOK_QUIET_SECS`, default
/// [`crate::domain::webhook::DEFAULT_QUIET`]).
///
/// # Errors
/// A value that is not a number of seconds from 0 to 3600.
pub fn webhook_quiet() -> Result<Duration, ConfigError> {
    let Some(text) = env_var(env::QBO_WEBHOOK_QUIET_SECS) else {
        return Ok(crate::domain::webhook::DEFAULT_QUIET);
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.0..=3600.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ConfigError(format!(
                "{}: `{text}` is not a number of seconds from 0 to 3600 (e.g. 3)",
                env::QBO_WEBHOOK_QUIET_SECS
            ))
        })
}

/// How the QuickBooks client paces and retries requests (flags with environment fallbacks).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientTuning {
    /// Requests per minute per company (Intuit allows 500), up to 100000. 0 = no limit.
    #[arg(long, env = "QBO_REQUESTS_PER_MINUTE", default_value_t = 500, value_parser = u32_in(0, 100_000))]
    pub requests_per_minute: u32,
    /// Requests per second per company (Intuit allows 10), up to 10000. 0 = no limit.
    #[arg(long, env = "QBO_REQUESTS_PER_SECOND", default_value_t = 10, value_parser = u32_in(0, 10_000))]
    pub requests_per_second: u32,
    /// Requests in flight per company (Intuit allows 10), up to 1000. 0 = no limit.
    #[arg(long, env = "QBO_MAX_IN_FLIGHT", default_value_t = 10, value_parser = u32_in(0, 1000))]
    pub max_in_flight: u32,
    /// Windows loaded at the same time, 1 to 1000 (default: the in-flight limit, or 10).
    #[arg(long, env = "QBO_WINDOW_CONCURRENCY", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub concurrency: Option<usize>,
    /// Retries of a failing request (5xx, timeouts, dropped connections) before its window
    /// fails, up to 100.
    #[arg(long, env = "QBO_MAX_RETRIES", default_value_t = 6, value_parser = u32_in(0, 100))]
    pub max_retries: u32,
    /// First backoff delay in milliseconds, up to 30000 (the longest backoff; doubles with
    /// jitter on each retry).
    #[arg(long, env = "QBO_INITIAL_BACKOFF_MS", default_value_t = 500, value_parser = u64_in(0, 30_000))]
    pub initial_backoff_ms: u64,
    /// Wait after a 429 without `Retry-After`, in milliseconds (Intuit says 60 s), up to an
    /// hour.
    #[arg(long, env = "QBO_THROTTLE_WAIT_MS", default_value_t = 60_000, value_parser = u64_in(0, 3_600_000))]
    pub throttle_wait_ms: u64,
    /// Per-request timeout in seconds, 1 to 3600 (Intuit's server side limit is 120 s).
    #[arg(long, env = "QBO_REQUEST_TIMEOUT_S", default_value_t = 120, value_parser = u64_in(1, 3600))]
    pub request_timeout_s: u64,
    /// Rows asked per query page, 1 to 1000 (Intuit's maximum). A page that keeps failing is
    /// asked for in halves, down to 100 rows.
    #[arg(long, env = "QBO_PAGE_SIZE", default_value_t = 1000, value_parser = u32_in(1, 1000))]
    pub page_size: u32,
    /// Consecutive days are fetched together while their `COUNT(*)` fits in this many pages
    /// (a denser span is split in two). 0 asks for every day on its own, as a calendar scan
    /// would (one request per day at least).
    #[arg(long, env = "QBO_SPAN_MAX_PAGES", default_value_t = 50, value_parser = u64_in(0, 1_000_000))]
    pub span_max_pages: u64,
    /// Pages this process writes to PostgreSQL at once, over all its runs, 1 to 1000. More
    /// writers than the database has cores to run them only queue there, and they make every
    /// other statement (the API's, the claims') wait behind them.
    #[arg(
        long,
        env = "QBO_BACKFILL_PAGE_WRITES",
        default_value_t = DEFAULT_PAGE_WRITES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub page_writes: usize,
}

/// Default of [`ClientTuning::page_writes`].
pub const DEFAULT_PAGE_WRITES: usize = 2;

/// A flag's parser for a whole number from `min` to `max`: anything else is refused as bad input
/// (exit 2) before anything runs.
fn u32_in(min: u32, max: u32) -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::<u32>::new().range(u64::from(min)..=u64::from(max))
}

/// [`u32_in`] for 64-bit settings.
fn u64_in(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::<u64>::new().range(min..=max)
}

impl Default for ClientTuning {
    fn default() -> Self {
        Self {
            requests_per_minute: 500,
            requests_per_second: 10,
            max_in_flight: 10,
            concurrency: None,
            max_retries: 6,
            initial_backoff_ms: 500,
            throttle_wait_ms: 60_000,
            request_timeout_s: 120,
            page_size: 1000,
            span_max_pages: 50,
            page_writes: DEFAULT_PAGE_WRITES,
        }
    }
}

fn nonzero(v: u32) -> Option<u32> {
    (v > 0).then_some(v)
}

impl ClientTuning {
    /// Windows to load at once.
    #[must_use]
    pub fn window_concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or(if self.max_in_flight == 0 {
                10
            } else {
                self.max_in_flight as usize
            })
            .max(1)
    }

    /// Applies this tuning to client settings.
    pub fn apply(&self, settings: &mut qbo::ClientSettings) {
        settings.limits.requests_per_minute = nonzero(self.requests_per_minute);
        settings.limits.requests_per_second = nonzero(self.requests_per_second);
        settings.limits.max_in_flight = nonzero(self.max_in_flight);
        settings.retry.max_retries = self.max_retries;
        settings.retry.initial_backoff = Duration::from_millis(self.initial_backoff_ms);
        settings.retry.throttle_wait = Duration::from_millis(self.throttle_wait_ms);
        settings.request_timeout = Duration::from_secs(self.request_timeout_s.max(1));
        settings.page_size = self.page_size;
    }
}

/// Everything needed to talk to one QuickBooks company.
#[derive(Debug, Clone)]
pub struct QboSettings {
    /// Client settings (hosts, minor version, limits, retries).
    pub client: qbo::ClientSettings,
    /// Intuit app client id.
    pub client_id: String,
    /// Intuit app client secret.
    pub client_secret: SecretString,
    /// Company id.
    pub realm_id: String,
    /// Refresh token from the environment, used only to seed an empty store.
    pub seed_refresh_token: Option<SecretString>,
}

/// A configuration problem the operator must fix (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A source of named values besides the environment (the secret store).
pub trait SecretLookup {
    /// The stored value of `name`, if any.
    fn lookup(&self, name: &str) -> Option<SecretString>;
}

impl SecretLookup for () {
    fn lookup(&self, _name: &str) -> Option<SecretString> {
        None
    }
}

impl<F: Fn(&str) -> Option<SecretString>> SecretLookup for F {
    fn lookup(&self, name: &str) -> Option<SecretString> {
        self(name)
    }
}

impl QboSettings {
    /// The client settings from the environment alone (hosts, minor version) with `tuning`
    /// applied. Pure: callers use it to reject bad configuration before touching anything.
    ///
    /// # Errors
    /// An invalid `QBO_ENVIRONMENT`, URL or minor version.
    pub fn client_settings(tuning: &ClientTuning) -> Result<qbo::ClientSettings, ConfigError> {
        let environment = match env_var(env::QBO_ENVIRONMENT) {
            None => qbo::Environment::Sandbox,
            Some(v) => v.parse().map_err(|_| {
                ConfigError(format!(
                    "{}=`{v}` is not valid: use `sandbox` or `production`",
                    env::QBO_ENVIRONMENT
                ))
            })?,
        };
        let mut client = qbo::ClientSettings::for_environment(environment);
        if let Some(v) = env_var(env::QBO_API_BASE_URL) {
            client.api_base_url = parse_url(env::QBO_API_BASE_URL, &v)?;
        }
        if let Some(v) = env_var(env::QBO_TOKEN_URL) {
            client.token_url = parse_url(env::QBO_TOKEN_URL, &v)?;
        }
        if let Some(v) = env_var(env::QBO_MINOR_VERSION) {
            client.minor_version = v.parse().map_err(|_| {
                ConfigError(format!(
                    "{}=`{v}` is not valid: use a whole number such as 75",
                    env::QBO_MINOR_VERSION
                ))
            })?;
        }
        tuning.apply(&mut client);
        Ok(client)
    }

    /// Resolves QuickBooks settings from the environment, falling back to `stored` values
    /// (the secret store) for credentials and the realm id.
    ///
    /// # Errors
    /// Invalid or missing configuration.
    pub fn resolve(tuning: &ClientTuning, stored: &dyn SecretLookup) -> Result<Self, ConfigError> {
        use secrecy::ExposeSecret;
        let client = Self::client_settings(tuning)?;
        let from_env_or_store = |name: &str| -> Option<String> {
            env_var(name).or_else(|| stored.lookup(name).map(|s| s.expose_secret().to_owned()))
        };
        let missing = |name: &str| {
            ConfigError(format!(
                "{name} is not set: export it or store it with `qbo-backfill secrets set {name}`"
            ))
        };
        let client_id =
            from_env_or_store(env::QBO_CLIENT_ID).ok_or_else(|| missing(env::QBO_CLIENT_ID))?;
        let client_secret = env_var(env::QBO_CLIENT_SECRET)
            .map(SecretString::from)
            .or_else(|| stored.lookup(env::QBO_CLIENT_SECRET))
            .ok_or_else(|| missing(env::QBO_CLIENT_SECRET))?;
        let realm_id =
            from_env_or_store(env::QBO_REALM_ID).ok_or_else(|| missing(env::QBO_REALM_ID))?;
        if !realm_id.chars().all(|c| c.is_ascii_alphanumeric()) || realm_id.len() > 64 {
            return Err(ConfigError(format!(
                "{}=`{realm_id}` is not valid: a realm id is the company's number",
                env::QBO_REALM_ID
            )));
        }
        Ok(Self {
            client,
            client_id,
            client_secret,
            realm_id,
            seed_refresh_token: env_var(env::QBO_REFRESH_TOKEN).map(SecretString::from),
        })
    }

    /// The client credentials.
    #[must_use]
    pub fn credentials(&self) -> qbo::Credentials {
        qbo::Credentials::of(&self.client_id, &self.client_secret, &self.realm_id)
    }
}

/// `value` with anything between `://` and the authority's last `@` (a user name and password)
/// masked, so an error message can echo a URL without its credentials.
fn without_userinfo(value: &str) -> String {
    let Some(scheme_end) = value.find("://").map(|i| i + 3) else {
        return value.to_owned();
    };
    let rest = &value[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}…{}", &value[..scheme_end], &rest[at..]),
        None => value.to_owned(),
    }
}

/// Parses an `http(s)://` URL setting. A URL carrying a user name or password is refused (the
/// QuickBooks endpoints take none, and it would end up in logs); error messages never echo
/// credentials.
fn parse_url(name: &str, value: &str) -> Result<url::Url, ConfigError> {
    let shown = without_userinfo(value);
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError(format!("{name}=`{shown}` is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!(
            "{name}=`{shown}` must be an http:// or https:// URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError(format!(
            "{name}=`{shown}` must not contain a user name or password"
        )));
    }
    Ok(url)
}

/// How alert e-mails reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or a private network).
    None,
    /// Plain connection upgraded with `STARTTLS`, required (the default).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The SMTP server of alert e-mails (`QBO_SMTP_*`); the password is the secret
/// `QBO_SMTP_PASSWORD` in the secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// The login, if the server wants one.
    pub user: Option<String>,
    /// Transport security.
    pub tls: SmtpTls,
}

/// The SMTP password: the environment variable, else the secret of that name in the secret store.
pub const SMTP_PASSWORD_SECRET: &str = "QBO_SMTP_PASSWORD";

/// The SMTP settings from the environment: `None` when `QBO_SMTP_HOST` is unset.
///
/// # Errors
/// A bad `QBO_SMTP_TLS` or `QBO_SMTP_PORT` (one line naming it).
pub fn smtp_settings() -> Result<Option<SmtpSettings>, ConfigError> {
    let Some(host) = env_var(env::QBO_SMTP_HOST) else {
        return Ok(None);
    };
    let tls = match env_var(env::QBO_SMTP_TLS).as_deref().map(str::trim) {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("none") => SmtpTls::None,
        Some("tls") => SmtpTls::Tls,
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(ConfigError(format!(
                "{}=`{shown}` is not none, starttls or tls",
                env::QBO_SMTP_TLS
            )));
        }
    };
    let port = match env_var(env::QBO_SMTP_PORT) {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ConfigError(format!(
                    "{} must be a port number (1-65535)",
                    env::QBO_SMTP_PORT
                ))
            })?,
        None => match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        },
    };
    let host = host.trim().to_owned();
    Ok(Some(SmtpSettings {
        from: env_var(env::QBO_SMTP_FROM)
            .map_or_else(|| format!("qbo-backfill@{host}"), |f| f.trim().to_owned()),
        user: env_var(env::QBO_SMTP_USER).map(|u| u.trim().to_owned()),
        host,
        port,
        tls,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tuning_flag_refuses_values_outside_its_range() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            tuning: ClientTuning,
        }
        let accepts = |flag: &str, value: &str| {
            <Flags as clap::Parser>::try_parse_from(["qbo-backfill", flag, value]).is_ok()
        };
        for (flag, lowest, highest, refused) in [
            ("--requests-per-minute", "0", "100000", vec!["100001"]),
            ("--requests-per-second", "0", "10000", vec!["10001"]),
            ("--max-in-flight", "0", "1000", vec!["1001"]),
            ("--concurrency", "1", "1000", vec!["0", "1001"]),
            ("--max-retries", "0", "100", vec!["101"]),
            ("--initial-backoff-ms", "0", "30000", vec!["999999999"]),
            (
                "--throttle-wait-ms",
                "0",
                "3600000",
                vec!["18446744073709551615"],
            ),
            ("--request-timeout-s", "1", "3600", vec!["0", "3601"]),
            ("--page-size", "1", "1000", vec!["0", "1001", "5000"]),
            ("--span-max-pages", "0", "1000000", vec!["1000001"]),
        ] {
            assert!(accepts(flag, lowest), "{flag} {lowest} refused");
            assert!(accepts(flag, highest), "{flag} {highest} refused");
            for bad in refused.into_iter().chain(["-1", "two", ""]) {
                assert!(!accepts(flag, bad), "{flag} `{bad}` accepted");
            }
        }
        // The defaults are valid client settings.
        let flags = <Flags as clap::Parser>::try_parse_from(["qbo-backfill"]).expect("defaults");
        let mut client = qbo::ClientSettings::for_environment(qbo::Environment::Sandbox);
        flags.tuning.apply(&mut client);
        assert_eq!(client.page_size, 1000);
    }

    #[test]
    fn page_writes_are_1_to_1000() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            tuning: ClientTuning,
        }
        let parse = |value: &str| {
            <Flags as clap::Parser>::try_parse_from(["qbo-backfill", "--page-writes", value])
                .map(|f| f.tuning.page_writes)
        };
        assert_eq!(parse("1").ok(), Some(1));
        assert_eq!(parse("1000").ok(), Some(1000));
        for bad in ["0", "1001", "18446744073709551615", "-1", "two"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        let default = <Flags as clap::Parser>::try_parse_from(["qbo-backfill"]);
        assert_eq!(
            default.map(|f| f.tuning.page_writes).ok(),
            Some(DEFAULT_PAGE_WRITES)
        );
    }

    #[test]
    fn url_errors_never_echo_credentials() {
        for value in [
            "http://user:Pw5ecretZZ@127.0.0.1:8080",
            "https://:Pw5ecretZZ@example.com/v3",
            "ftp://user:Pw5ecretZZ@127.0.0.1:8080",
            "http://user:Pw5ecretZZ@[::1:8080/x",
        ] {
            let err = parse_url("QBO_API_BASE_URL", value).unwrap_err().0;
            assert!(!err.contains("Pw5ecretZZ"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(parse_url("QBO_API_BASE_URL", "http://127.0.0.1:8080/").is_ok());
        assert_eq!(
            without_userinfo("http://a:b@h/p@q"),
            "http://…@h/p@q".to_owned()
        );
    }
}
