//! Alerts as values: the events an operator can be told about ([`AlertKind`]), a channel as
//! asked for and checked ([`NewChannel`], [`ChannelSpec`]), one alert's words and fields
//! ([`Alert`]), the JSON a webhook receives ([`webhook_body`]) and its signature
//! ([`sign`]), and when a failed delivery is tried again ([`retry_delay`]). No database, no
//! network: the store keeps these, the service sends them.

use std::fmt;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use jiff::Timestamp;
use uuid::Uuid;

/// The header a webhook's signature travels in.
pub const SIGNATURE_HEADER: &str = "X-Qbo-Backfill-Signature";

/// The longest channel name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The longest webhook URL or e-mail address, in characters.
pub const MAX_TARGET_CHARS: usize = 2000;

/// How many times a delivery is attempted before it is recorded `failed`.
pub const MAX_ATTEMPTS: i32 = 8;

/// The wait after the first failed attempt; it doubles after each one, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// A run ended `failed`.
    RunFailed,
    /// Intuit refused the company's credentials (`invalid_grant` or `invalid_client`).
    AuthFailed,
    /// A trigger's occurrence was missed (the scheduler was down past the grace, …).
    TriggerMissed,
    /// A verification found months that differed from QuickBooks, or could not check some.
    VerifyDrift,
    /// The company's refresh token ends soon.
    TokenExpiring,
    /// The company has spent 80% of its monthly request allowance.
    Allowance80,
    /// A test sent from the API or the Alerts page (no channel subscribes to it).
    Test,
}

impl AlertKind {
    /// The events a channel can receive, in the order they are listed.
    pub const SUBSCRIBABLE: [Self; 6] = [
        Self::RunFailed,
        Self::AuthFailed,
        Self::TriggerMissed,
        Self::VerifyDrift,
        Self::TokenExpiring,
        Self::Allowance80,
    ];

    /// The event's name (`run_failed`, …), as stored, sent and typed.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run_failed",
            Self::AuthFailed => "auth_failed",
            Self::TriggerMissed => "trigger_missed",
            Self::VerifyDrift => "verify_drift",
            Self::TokenExpiring => "token_expiring",
            Self::Allowance80 => "allowance_80",
            Self::Test => "test",
        }
    }

    /// The event named `name`, if a channel can receive it.
    #[must_use]
    pub fn subscribable(name: &str) -> Option<Self> {
        Self::SUBSCRIBABLE
            .into_iter()
            .find(|k| k.as_str() == name.trim())
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a channel is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A JSON POST, signed.
    Webhook,
    /// An e-mail over SMTP.
    Email,
}

impl ChannelKind {
    /// `webhook` or `email`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }

    /// The kind named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "webhook" => Some(Self::Webhook),
            "email" => Some(Self::Email),
            _ => None,
        }
    }
}

/// A channel as asked for (API body or form), before it is checked.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// What the operator calls it.
    pub name: Option<String>,
    /// `webhook` or `email`.
    pub kind: Option<String>,
    /// A webhook's URL.
    pub url: Option<String>,
    /// An e-mail channel's address.
    pub to: Option<String>,
    /// The events it receives.
    pub events: Option<Vec<String>>,
}

/// A channel that passed every check: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Its name, trimmed.
    pub name: String,
    /// How it is reached.
    pub kind: ChannelKind,
    /// The URL (webhook) or the address (e-mail).
    pub target: String,
    /// The events it receives, without repeats, in [`AlertKind::SUBSCRIBABLE`] order.
    pub events: Vec<AlertKind>,
}

/// Why a channel is refused (nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefusal {
    /// No name, too long a name, or control characters in it.
    #[error("the name must be 1 to {MAX_NAME_CHARS} characters without control characters")]
    Name,
    /// Not `webhook` nor `email`.
    #[error("`{0}` is not a channel kind: use webhook or email")]
    Kind(String),
    /// A webhook without a usable URL.
    #[error("{0}")]
    Url(String),
    /// An e-mail channel without a usable address (the whole sentence).
    #[error("{0}")]
    Email(String),
    /// No event, or one that does not exist.
    #[error("{0}")]
    Events(String),
}

impl ChannelRefusal {
    /// The API's error code for it.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Name => "invalid_name",
            Self::Kind(_) => "invalid_kind",
            Self::Url(_) => "invalid_url",
            Self::Email(_) => "invalid_email",
            Self::Events(_) => "invalid_events",
        }
    }
}

/// At most 60 characters of `text` for a message, control characters escaped as the rest of
/// the code escapes them (`\u{0}`): a refused value is shown as it was, not cleaned into one
/// that looks valid.
fn echo(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(60) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

impl NewChannel {
    /// Checks every field: a name, a known kind, an `http(s)` URL without credentials for a
    /// webhook or one e-mail address for e-mail (not both), and at least one known event.
    ///
    /// # Errors
    /// The first [`ChannelRefusal`] found.
    pub fn check(&self) -> Result<ChannelSpec, ChannelRefusal> {
        let name = self.name.as_deref().unwrap_or("").trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(ChannelRefusal::Name);
        }
        let kind_text = self.kind.as_deref().unwrap_or("");
        let kind =
            ChannelKind::parse(kind_text).ok_or_else(|| ChannelRefusal::Kind(echo(kind_text)))?;
        let target = match kind {
            ChannelKind::Webhook => {
                if self.to.is_some() {
                    return Err(ChannelRefusal::Url(
                        "a webhook takes `url`, not `to`".to_owned(),
                    ));
                }
                check_url(self.url.as_deref().unwrap_or(""))?
            }
            ChannelKind::Email => {
                if self.url.is_some() {
                    return Err(ChannelRefusal::Email(
                        "an e-mail channel takes `to`, not `url`".to_owned(),
                    ));
                }
                check_email(self.to.as_deref().unwrap_or(""))?
            }
        };
        let events = check_events(self.events.as_deref().unwrap_or(&[]))?;
        Ok(ChannelSpec {
            name: name.to_owned(),
            kind,
            target,
            events,
        })
    }
}

/// An `http` or `https` URL with a host, no user or password, at most [`MAX_TARGET_CHARS`].
/// A refusal never repeats the URL: a webhook's URL is its key, and one carrying a password
/// would show it.
///
/// # Errors
/// [`ChannelRefusal::Url`] saying what is wrong.
pub fn check_url(text: &str) -> Result<String, ChannelRefusal> {
    let text = text.trim();
    let bad = |why: &str| ChannelRefusal::Url(format!("the `url` {why}"));
    if text.is_empty() {
        return Err(ChannelRefusal::Url("a webhook needs a `url`".to_owned()));
    }
    if text.chars().count() > MAX_TARGET_CHARS {
        return Err(bad(&format!(
            "is longer than {MAX_TARGET_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    let url = url::Url::parse(text)
        .map_err(|_| bad("is not a URL such as https://chat.example.com/hooks/…"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry a user or password: put credentials elsewhere",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(url.to_string())
}

/// One plain address `local@domain.tld` (no name, no list), at most 254 characters.
///
/// # Errors
/// [`ChannelRefusal::Email`].
pub fn check_email(text: &str) -> Result<String, ChannelRefusal> {
    let text = text.trim();
    let bad = || {
        ChannelRefusal::Email(format!(
            "`{}` is not an e-mail address such as ops@example.com",
            echo(text)
        ))
    };
    let (local, domain) = text.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok && text.len() <= 254 {
        Ok(text.to_owned())
    } else {
        Err(bad())
    }
}

/// The events named, known and at least one, without repeats.
///
/// # Errors
/// [`ChannelRefusal::Events`] naming the first unknown one, or saying none was given.
pub fn check_events(names: &[String]) -> Result<Vec<AlertKind>, ChannelRefusal> {
    let known = || AlertKind::SUBSCRIBABLE.map(AlertKind::as_str).join(", ");
    if names.is_empty() {
        return Err(ChannelRefusal::Events(format!(
            "name at least one event: {}",
            known()
        )));
    }
    let mut events = Vec::new();
    for name in names {
        let kind = AlertKind::subscribable(name).ok_or_else(|| {
            ChannelRefusal::Events(format!("`{}` is not an event: use {}", echo(name), known()))
        })?;
        events.push(kind);
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// One alert: what happened, to which company and run, when, and the words a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The event.
    pub kind: AlertKind,
    /// The company, when it concerns one.
    pub realm_id: Option<String>,
    /// The run, when it concerns one.
    pub run_id: Option<Uuid>,
    /// The pipeline, when it concerns one.
    pub pipeline: Option<String>,
    /// When it happened.
    pub at: Timestamp,
    /// What a person reads (chat tools show it as is; the e-mail's body). Never a secret.
    pub text: String,
}

/// `text` on one line, at most 300 characters, with anything that looks like a token masked
/// (`…a1b2`) and any other control character (a NUL, which PostgreSQL cannot store) replaced
/// by U+FFFD: a run's error may quote what a server answered.
#[must_use]
pub fn scrub(text: &str) -> String {
    let line = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(|c: char| c.is_control(), "\u{fffd}");
    let mut out: String = qbo::redact::redact(&line).chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

impl Alert {
    fn new(kind: AlertKind, at: Timestamp, text: String) -> Self {
        Self {
            kind,
            realm_id: None,
            run_id: None,
            pipeline: None,
            at,
            text: format!("[qbo-backfill] {text}"),
        }
    }

    fn of_run(mut self, realm_id: &str, run_id: Uuid, pipeline: &str) -> Self {
        self.realm_id = Some(realm_id.to_owned());
        self.run_id = Some(run_id);
        self.pipeline = Some(pipeline.to_owned());
        self
    }

    /// A run ended `failed`; `why` is its error (scrubbed here).
    #[must_use]
    pub fn run_failed(
        realm_id: &str,
        run_id: Uuid,
        pipeline: &str,
        why: &str,
        at: Timestamp,
    ) -> Self {
        let text = format!(
            "Run failed: {pipeline} for company {realm_id}: {}. Run {run_id}; `qbo-backfill retry {run_id}` re-runs only what failed.",
            scrub(why)
        );
        Self::new(AlertKind::RunFailed, at, text).of_run(realm_id, run_id, pipeline)
    }

    /// Intuit refused the company's credentials (`code`: `invalid_grant` or `invalid_client`).
    #[must_use]
    pub fn auth_failed(
        realm_id: &str,
        run_id: Uuid,
        pipeline: &str,
        code: &str,
        at: Timestamp,
    ) -> Self {
        let text = format!(
            "QuickBooks refused the credentials of company {realm_id} ({}) during run {run_id} of {pipeline}. Runs of this company stop until it is reconnected: Connect QuickBooks in the web UI, then retry the run.",
            scrub(code)
        );
        Self::new(AlertKind::AuthFailed, at, text).of_run(realm_id, run_id, pipeline)
    }

    /// A trigger's occurrence (`occurrence_utc`) was missed.
    #[must_use]
    pub fn trigger_missed(
        realm_id: &str,
        trigger_id: Uuid,
        pipeline: &str,
        occurrence_utc: Timestamp,
        reason: &str,
        at: Timestamp,
    ) -> Self {
        let text = format!(
            "Trigger missed: {pipeline} for company {realm_id} was due at {occurrence_utc} and did not start ({}). Trigger {trigger_id}.",
            scrub(reason)
        );
        let mut alert = Self::new(AlertKind::TriggerMissed, at, text);
        alert.realm_id = Some(realm_id.to_owned());
        alert.pipeline = Some(pipeline.to_owned());
        alert
    }

    /// A verification found `drifted` months (repaired) and `failed` ones (not checked).
    #[must_use]
    pub fn verify_drift(
        realm_id: &str,
        run_id: Uuid,
        pipeline: &str,
        drifted: u64,
        failed: u64,
        at: Timestamp,
    ) -> Self {
        let text = format!(
            "Verify found differences: {pipeline} for company {realm_id}: {drifted} month(s) drifted (repaired), {failed} month(s) could not be verified. Run {run_id}."
        );
        Self::new(AlertKind::VerifyDrift, at, text).of_run(realm_id, run_id, pipeline)
    }

    /// The company's refresh token ends at `ends_at`.
    #[must_use]
    pub fn token_expiring(realm_id: &str, ends_at: Timestamp, at: Timestamp) -> Self {
        let days = (ends_at.as_second() - at.as_second()).max(0) / 86_400;
        let text = format!(
            "The refresh token of company {realm_id} ends at {ends_at} (in {days} days). Reconnect with Connect QuickBooks before then."
        );
        let mut alert = Self::new(AlertKind::TokenExpiring, at, text);
        alert.realm_id = Some(realm_id.to_owned());
        alert
    }

    /// The company has spent `used` of its monthly allowance of `allowance` requests.
    #[must_use]
    pub fn allowance_80(realm_id: &str, used: u64, allowance: u64, at: Timestamp) -> Self {
        let percent = used.saturating_mul(100) / allowance.max(1);
        let text = format!(
            "Company {realm_id} has spent {used} of its {allowance} QuickBooks requests this month ({percent}%). Past the allowance Intuit blocks the app until the month ends."
        );
        let mut alert = Self::new(AlertKind::Allowance80, at, text);
        alert.realm_id = Some(realm_id.to_owned());
        alert
    }

    /// A test of the channel `channel`.
    #[must_use]
    pub fn test(channel: &str, at: Timestamp) -> Self {
        let text = format!(
            "Test alert for channel `{}`: alerts reach you here.",
            scrub(channel)
        );
        Self::new(AlertKind::Test, at, text)
    }

    /// The e-mail subject: the event and what it concerns.
    #[must_use]
    pub fn subject(&self) -> String {
        let mut subject = format!("[qbo-backfill] {}", self.kind);
        if let Some(pipeline) = &self.pipeline {
            subject.push_str(&format!(" {pipeline}"));
        }
        if let Some(realm) = &self.realm_id {
            subject.push_str(&format!(" (company {realm})"));
        }
        subject
    }
}

/// The JSON body a webhook receives for delivery `delivery_id` of `alert`: `text` (shown as is
/// by chat tools) and the fields `event`, `realm_id`, `run_id`, `pipeline`, `at`,
/// `delivery_id` (the same on every attempt: a receiver drops repeats by it). The same alert
/// always gives the same bytes.
#[must_use]
pub fn webhook_body(delivery_id: Uuid, alert: &Alert) -> String {
    serde_json::json!({
        "text": alert.text,
        "event": alert.kind.as_str(),
        "realm_id": alert.realm_id,
        "run_id": alert.run_id,
        "pipeline": alert.pipeline,
        "at": alert.at.to_string(),
        "delivery_id": delivery_id,
    })
    .to_string()
}

/// The signature header's value for `body` under `secret`: `sha256=` and the lower-case hex of
/// HMAC-SHA256 of the exact body bytes.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        unreachable_hmac()
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A webhook URL as shown to a person: its scheme, host and port, then `/…` when it has a
/// path, a query or a fragment. A chat webhook's key is its path or its query (Slack's
/// `/services/T…/B…/key`, `?token=`, `;key`), in any shape, so none of them is shown.
#[must_use]
pub fn shown_url(text: &str) -> String {
    let Ok(url) = url::Url::parse(text) else {
        return "(not a URL)".to_owned();
    };
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    out.push_str(if bare { "/" } else { "/…" });
    out
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC accepts keys of every length")
}

/// How long to wait after attempt number `attempts` (1 for the first) failed, or `None` when it
/// was the last ([`MAX_ATTEMPTS`]): [`FIRST_DELAY`], doubling, at most [`MAX_DELAY`].
#[must_use]
pub fn retry_delay(attempts: i32, first: Duration) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(20);
    Some(
        first
            .saturating_mul(1 << doublings)
            .min(MAX_DELAY.max(first)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: &str, url: Option<&str>, to: Option<&str>, events: &[&str]) -> NewChannel {
        NewChannel {
            name: Some("ops".to_owned()),
            kind: Some(kind.to_owned()),
            url: url.map(str::to_owned),
            to: to.map(str::to_owned),
            events: Some(events.iter().map(|e| (*e).to_owned()).collect()),
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            sign(b"Jefe", b"what do ya want for nothing!"),
            sign(b"Jefe", b"what do ya want for nothing?")
        );
    }

    #[test]
    fn channels_are_checked_field_by_field() {
        let ok = new(
            "webhook",
            Some("https://chat.example.com/hook"),
            None,
            &["auth_failed", "run_failed", "run_failed"],
        );
        let spec = ok.check().expect("valid");
        assert_eq!(
            spec.events,
            vec![AlertKind::RunFailed, AlertKind::AuthFailed]
        );
        let mail = new("email", None, Some("ops@example.com"), &["verify_drift"]);
        assert!(mail.check().is_ok());
        let refused = |c: NewChannel| c.check().expect_err("refused").code();
        let mut long = ok.clone();
        long.name = Some("n".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(refused(long), "invalid_name");
        let mut blank = ok;
        blank.name = Some("  ".to_owned());
        assert_eq!(refused(blank), "invalid_name");
    }

    #[test]
    fn hostile_channels_are_refused_with_a_code() {
        let hook = Some("https://x.example/");
        let cases: [(NewChannel, &str); 11] = [
            (new("sms", None, None, &["run_failed"]), "invalid_kind"),
            (
                new("webhook", Some("ftp://x.example/"), None, &["run_failed"]),
                "invalid_url",
            ),
            (
                new(
                    "webhook",
                    Some("javascript:alert(1)"),
                    None,
                    &["run_failed"],
                ),
                "invalid_url",
            ),
            (
                new(
                    "webhook",
                    Some("https://u:p@x.example/"),
                    None,
                    &["run_failed"],
                ),
                "invalid_url",
            ),
            (new("webhook", None, None, &["run_failed"]), "invalid_url"),
            (
                new("email", None, Some("not an address"), &["run_failed"]),
                "invalid_email",
            ),
            (
                new("email", None, Some("a@b"), &["run_failed"]),
                "invalid_email",
            ),
            (
                new("email", None, Some("a@b.com, c@d.com"), &["run_failed"]),
                "invalid_email",
            ),
            (new("webhook", hook, None, &[]), "invalid_events"),
            (new("webhook", hook, None, &["test"]), "invalid_events"),
            (
                new("webhook", hook, None, &["everything"]),
                "invalid_events",
            ),
        ];
        for (channel, code) in cases {
            let shown = format!("{channel:?}");
            let refusal = channel.check().expect_err(&shown);
            assert_eq!(refusal.code(), code, "{shown}");
            assert!(!refusal.to_string().contains('\n'));
        }
    }

    #[test]
    fn alert_text_never_carries_a_token() {
        let at = Timestamp::UNIX_EPOCH;
        let alert = Alert::run_failed(
            "123",
            Uuid::nil(),
            "qb_customers_backfill",
            "Token expired: AB0160139xyzzyQWERTY12345678abcd",
            at,
        );
        assert!(!alert.text.contains("AB0160139xyzzy"), "{}", alert.text);
        assert!(alert.text.contains("…abcd"), "{}", alert.text);
        let body = webhook_body(Uuid::nil(), &alert);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["event"], "run_failed");
        assert_eq!(json["realm_id"], "123");
        assert_eq!(json["pipeline"], "qb_customers_backfill");
        assert_eq!(json["at"], "1970-01-01T00:00:00Z");
        assert_eq!(body, webhook_body(Uuid::nil(), &alert), "stable bytes");
    }

    #[test]
    fn webhook_urls_are_shown_without_their_path_or_query() {
        for (url, shown) in [
            (
                "https://hooks.example.com/services/T0001/B0001/aBcDeFgH12345678wxyz",
                "https://hooks.example.com/…",
            ),
            (
                "https://hooks.example.com/services/T0000/B0000/SECRETCANARYslackpathkey",
                "https://hooks.example.com/…",
            ),
            ("http://h/hook;SECRETCANARYsemi", "http://h/…"),
            (
                "http://127.0.0.1:9000/hook?token=s3cret",
                "http://127.0.0.1:9000/…",
            ),
            ("https://h.example/?SECRETCANARYq", "https://h.example/…"),
            ("https://h.example/#SECRETCANARYf", "https://h.example/…"),
            ("https://h.example", "https://h.example/"),
            ("http://[::1]:8080/k", "http://[::1]:8080/…"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
            assert!(!shown_url(url).contains("SECRETCANARY"));
        }
    }

    #[test]
    fn a_refused_url_is_never_repeated() {
        let refusal = |url: &str| {
            new("webhook", Some(url), None, &["run_failed"])
                .check()
                .expect_err(url)
        };
        let r = refusal("https://user:SECRETCANARYpw@hooks.example.com/x");
        assert_eq!(r.code(), "invalid_url");
        let text = r.to_string();
        assert!(text.contains("must not carry a user or password"), "{text}");
        assert!(
            !text.contains("SECRETCANARY") && !text.contains("user:"),
            "{text}"
        );
        assert!(!text.contains("hooks.example.com"), "{text}");
        for url in [
            "http://example.com/a\u{0}b",
            "ftp://u:SECRETCANARY@x.example/",
            "https://x.example/SECRETCANARY\u{7}",
            "not a url SECRETCANARY",
            "mailto:SECRETCANARY@x.example",
        ] {
            let text = refusal(url).to_string();
            assert!(
                !text.contains("SECRETCANARY") && !text.contains("example.com/ab"),
                "{url}: {text}"
            );
        }
        assert!(
            refusal("http://example.com/a\u{0}b")
                .to_string()
                .contains("control characters")
        );
    }

    #[test]
    fn refused_values_are_echoed_with_control_characters_escaped() {
        let mail = new("email", None, Some("a\u{0}@b.co"), &["run_failed"])
            .check()
            .expect_err("NUL");
        assert_eq!(mail.code(), "invalid_email");
        assert_eq!(
            mail.to_string(),
            "`a\\u{0}@b.co` is not an e-mail address such as ops@example.com"
        );
        let kind = new("web\u{1b}hook", None, None, &["run_failed"])
            .check()
            .expect_err("ESC");
        assert!(kind.to_string().contains("web\\u{1b}hook"), "{kind}");
        let event = new(
            "webhook",
            Some("https://x.example/"),
            None,
            &["run_\u{0}failed"],
        )
        .check()
        .expect_err("NUL");
        assert!(event.to_string().contains("run_\\u{0}failed"), "{event}");
    }

    #[test]
    fn alert_text_carries_no_nul() {
        let alert = Alert::run_failed(
            "123",
            Uuid::nil(),
            "qb_customers_backfill",
            "the server said a\u{0}b",
            Timestamp::UNIX_EPOCH,
        );
        assert!(!alert.text.contains('\u{0}'), "{}", alert.text);
        assert!(alert.text.contains("a\u{fffd}b"), "{}", alert.text);
    }

    #[test]
    fn retries_back_off_and_stop() {
        let first = Duration::from_secs(1);
        assert_eq!(retry_delay(1, first), Some(Duration::from_secs(1)));
        assert_eq!(retry_delay(2, first), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(3, first), Some(Duration::from_secs(4)));
        assert_eq!(retry_delay(7, first), Some(MAX_DELAY));
        assert_eq!(retry_delay(MAX_ATTEMPTS, first), None);
    }
}
