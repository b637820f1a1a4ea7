//! Alerts, the use cases: channels created (a webhook's signing secret generated, sealed and
//! shown once), listed, deleted and tested; events raised (one `pending` delivery per
//! subscribed channel, never failing the caller); and the delivery of what is due, by a signed
//! JSON POST or an e-mail over SMTP, with retries and backoff recorded in PostgreSQL. The loop
//! that calls [`deliver_due`] lives in `orchestrator::alerts`.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::alert::{
    self, Alert, ChannelKind, ChannelRefusal, NewChannel, SIGNATURE_HEADER, retry_delay,
    webhook_body,
};
use crate::pipeline::runner::RunOutcome;
use crate::pipeline::{Mode, Pipeline};
use crate::settings::{self, SMTP_PASSWORD_SECRET, SmtpSettings, SmtpTls};
use crate::store::StoreError;
use crate::store::alerts::{
    self as store, AlertStoreError, ChannelRow, DeliveryRow, Due, StoredTarget,
};
use crate::store::auth::secrets::{SecretKey, SecretStore};
use crate::store::runs::RunStatus;

/// How long one webhook POST may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one SMTP command may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claimed delivery is left to its sender before another process may try it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// Why an alert call failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The channel asked for is not acceptable (nothing stored).
    #[error("{0}")]
    Refused(#[from] ChannelRefusal),
    /// Another channel has the name.
    #[error("a channel named `{0}` exists already")]
    NameTaken(String),
    /// No such channel.
    #[error("no alert channel `{0}`")]
    NotFound(Uuid),
    /// The database or the secret store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<AlertStoreError> for AlertError {
    fn from(e: AlertStoreError) -> Self {
        match e {
            AlertStoreError::NameTaken(name) => Self::NameTaken(name),
            AlertStoreError::Store(e) => Self::Store(e),
        }
    }
}

impl From<sqlx::Error> for AlertError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// A channel just created, with its webhook secret (shown this once, never again).
#[derive(Debug)]
pub struct CreatedChannel {
    /// The channel.
    pub channel: ChannelRow,
    /// A webhook's signing secret.
    pub secret: Option<String>,
}

/// The associated data sealing channel `id`'s secret to its row.
fn secret_aad(id: Uuid) -> String {
    format!("alert_channels:{id}:secret")
}

/// The associated data sealing channel `id`'s webhook URL to its row.
fn target_aad(id: Uuid) -> String {
    format!("alert_channels:{id}:target")
}

/// How a channel's target is stored: a webhook's URL sealed with `key`, only its scheme and
/// host in plain text; an e-mail address as is.
fn stored_target(
    key: &SecretKey,
    id: Uuid,
    kind: ChannelKind,
    target: &str,
) -> Result<StoredTarget, StoreError> {
    Ok(match kind {
        ChannelKind::Webhook => StoredTarget {
            shown: alert::shown_url(target),
            sealed: Some(key.seal(&target_aad(id), target.as_bytes())?),
        },
        ChannelKind::Email => StoredTarget {
            shown: target.to_owned(),
            sealed: None,
        },
    })
}

/// Seals every webhook URL still stored in plain text (channels created before URLs were
/// sealed); returns how many. `serve` calls it when its delivery loop starts.
///
/// # Errors
/// Database errors.
pub async fn seal_plain_targets(pool: &PgPool, key: &SecretKey) -> Result<u64, StoreError> {
    let mut sealed = 0;
    for (id, plain) in store::plain_webhook_targets(pool).await? {
        let target = stored_target(key, id, ChannelKind::Webhook, &plain)?;
        if store::seal_target(pool, id, &plain, target).await? {
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// A fresh signing secret: 32 random bytes as hex.
fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks `new` and stores it; a webhook gets a signing secret, sealed with `key`.
///
/// # Errors
/// [`AlertError::Refused`] or [`AlertError::NameTaken`] with nothing stored; database errors.
pub async fn create_channel(
    pool: &PgPool,
    key: &SecretKey,
    new: &NewChannel,
) -> Result<CreatedChannel, AlertError> {
    let spec = new.check()?;
    let id = Uuid::now_v7();
    let secret = match spec.kind {
        ChannelKind::Webhook => Some(new_secret()?),
        ChannelKind::Email => None,
    };
    let sealed = match &secret {
        Some(s) => Some(key.seal(&secret_aad(id), s.as_bytes())?),
        None => None,
    };
    let target = stored_target(key, id, spec.kind, &spec.target)?;
    let channel = store::insert_channel(pool, id, &spec, target, sealed).await?;
    Ok(CreatedChannel { channel, secret })
}

/// The channel `id`.
///
/// # Errors
/// [`AlertError::NotFound`]; database errors.
pub async fn channel(pool: &PgPool, id: Uuid) -> Result<ChannelRow, AlertError> {
    store::get_channel(pool, id)
        .await?
        .ok_or(AlertError::NotFound(id))
}

/// Deletes channel `id` with its deliveries.
///
/// # Errors
/// [`AlertError::NotFound`]; database errors.
pub async fn delete_channel(pool: &PgPool, id: Uuid) -> Result<(), AlertError> {
    if store::delete_channel(pool, id).await? {
        Ok(())
    } else {
        Err(AlertError::NotFound(id))
    }
}

/// What a channel's target is shown as: an e-mail address as is, a webhook URL as its scheme,
/// host and port only (chat webhooks carry their key in the path or the query).
#[must_use]
pub fn shown_target(channel: &ChannelRow) -> String {
    if channel.kind == ChannelKind::Email.as_str() {
        return channel.target.clone();
    }
    alert::shown_url(&channel.target)
}

/// Raises `alert`: one `pending` delivery per channel that receives its event. Never fails
/// the caller (a run, the scheduler): a failure is logged and the alert is lost.
pub async fn raise(pool: &PgPool, alert: &Alert) {
    match store::raise(pool, alert).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!("Alert raised | event={} channels={n}", alert.kind)
        }
        Err(e) => {
            tracing::warn!(event = %alert.kind, "Could not record the {} alert: {e}", alert.kind)
        }
    }
}

/// Raises what the end of a run calls for: `run_failed` when it failed, `auth_failed` when
/// Intuit refused the company's credentials (`refused`: `invalid_grant` or `invalid_client`),
/// and `verify_drift` when a verification found drifted or failed months. Never fails.
pub async fn after_run(
    pool: &PgPool,
    realm_id: &str,
    pipeline: &str,
    outcome: &RunOutcome,
    refused: Option<&str>,
) {
    let now = jiff::Timestamp::now();
    let run_id = outcome.run_id;
    if let Some(code) = refused {
        raise(
            pool,
            &Alert::auth_failed(realm_id, run_id, pipeline, code, now),
        )
        .await;
    }
    if outcome.status == Some(RunStatus::Failed) {
        let why = outcome.fatal.clone().unwrap_or_else(|| {
            format!(
                "{} of {} windows failed",
                outcome.totals.failed_windows, outcome.totals.windows
            )
        });
        raise(
            pool,
            &Alert::run_failed(realm_id, run_id, pipeline, &why, now),
        )
        .await;
    }
    let verify = pipeline
        .parse::<Pipeline>()
        .is_ok_and(|p| p.mode() == Mode::Verify);
    if verify
        && matches!(
            outcome.status,
            Some(RunStatus::Succeeded | RunStatus::Failed)
        )
    {
        match store::verify_counts(pool, run_id).await {
            Ok((0, 0)) => {}
            Ok((drifted, failed)) => {
                let alert = Alert::verify_drift(realm_id, run_id, pipeline, drifted, failed, now);
                raise(pool, &alert).await;
            }
            Err(e) => tracing::warn!("Could not read the verified months of run {run_id}: {e}"),
        }
    }
}

/// What sends alerts: an HTTP client for webhooks, the SMTP settings (read when an e-mail is
/// sent) and the secret store for webhook secrets and the SMTP password.
pub struct Sender {
    pool: PgPool,
    key: SecretKey,
    http: reqwest::Client,
    /// The wait after a first failed attempt (doubling after each).
    pub first_delay: Duration,
}

impl Sender {
    /// A sender over `pool`, opening secrets with `key`.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(pool: PgPool, key: SecretKey, first_delay: Duration) -> Result<Self, String> {
        let http = qbo::tls::http_client_builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qbo-backfill/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pool,
            key,
            http,
            first_delay,
        })
    }

    /// The database.
    #[must_use]
    pub const fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Sends one claimed delivery; the error is what the operator reads (never a secret).
    async fn send(&self, due: &Due) -> Result<(), String> {
        match ChannelKind::parse(&due.channel.kind) {
            Some(ChannelKind::Webhook) => self.send_webhook(due).await,
            Some(ChannelKind::Email) => self.send_email(due).await,
            None => Err(format!("unknown channel kind `{}`", due.channel.kind)),
        }
    }

    async fn send_webhook(&self, due: &Due) -> Result<(), String> {
        let channel = &due.channel;
        let sealed = channel
            .secret_enc
            .as_deref()
            .ok_or("the channel has no signing secret")?;
        let secret = self
            .key
            .open(&secret_aad(channel.id), sealed)
            .map_err(|e| e.to_string())?;
        let url = self.webhook_url(channel).await?;
        let body = webhook_body(due.id, &due.alert);
        let signature = alert::sign(&secret, body.as_bytes());
        let answer = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| alert::scrub(&describe_http(&e)))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered HTTP {}", status.as_u16()))
        }
    }

    /// A webhook channel's URL: opened from `target_enc`; a row from before URLs were sealed
    /// holds it in `target`, and is sealed now (a failure to seal is logged, not an error).
    async fn webhook_url(&self, channel: &ChannelRow) -> Result<String, String> {
        if let Some(sealed) = channel.target_enc.as_deref() {
            let url = self
                .key
                .open(&target_aad(channel.id), sealed)
                .map_err(|e| e.to_string())?;
            return String::from_utf8(url).map_err(|_| "the stored URL is not UTF-8".to_owned());
        }
        let plain = channel.target.clone();
        let sealed = match stored_target(&self.key, channel.id, ChannelKind::Webhook, &plain) {
            Ok(target) => store::seal_target(&self.pool, channel.id, &plain, target).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sealed {
            tracing::warn!(
                channel = %channel.name,
                "Could not seal the URL of alert channel {}: {e}",
                channel.name
            );
        }
        Ok(plain)
    }

    async fn send_email(&self, due: &Due) -> Result<(), String> {
        let smtp = settings::smtp_settings()
            .map_err(|e| e.to_string())?
            .ok_or("e-mail is not configured: set QBO_SMTP_HOST (and QBO_SMTP_FROM, QBO_SMTP_PORT, QBO_SMTP_TLS)")?;
        let message = email_message(&smtp, &due.channel.target, &due.alert)?;
        let password = match settings::env_var(SMTP_PASSWORD_SECRET) {
            Some(p) => Some(secrecy::SecretString::from(p)),
            None => SecretStore::new(self.pool.clone(), self.key.clone())
                .get(SMTP_PASSWORD_SECRET)
                .await
                .map_err(|e| e.to_string())?,
        };
        let transport = smtp_transport(&smtp, password.as_ref().map(|p| p.expose_secret()))?;
        transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| alert::scrub(&format!("the SMTP server {}:{}: {e}", smtp.host, smtp.port)))
    }
}

/// A reqwest error in words, without its URL (a chat webhook's URL is its key).
fn describe_http(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", WEBHOOK_TIMEOUT.as_secs());
    }
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&err.to_string());
        source = err.source();
    }
    let url = e.url().map(ToString::to_string).unwrap_or_default();
    let text = if url.is_empty() {
        text
    } else {
        text.replace(&url, "the webhook")
    };
    format!("the webhook could not be reached: {text}")
}

/// The e-mail of `alert` to `to`.
fn email_message(smtp: &SmtpSettings, to: &str, alert: &Alert) -> Result<Message, String> {
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|_| format!("QBO_SMTP_FROM=`{}` is not an e-mail address", smtp.from))?;
    let to: Mailbox = to
        .parse()
        .map_err(|_| format!("`{to}` is not an e-mail address"))?;
    let mut body = alert.text.clone();
    body.push_str("\n\n");
    body.push_str(&format!("event: {}\n", alert.kind));
    for (name, value) in [
        ("realm_id", alert.realm_id.clone()),
        ("run_id", alert.run_id.map(|r| r.to_string())),
        ("pipeline", alert.pipeline.clone()),
    ] {
        if let Some(value) = value {
            body.push_str(&format!("{name}: {value}\n"));
        }
    }
    body.push_str(&format!("at: {}\n", alert.at));
    Message::builder()
        .from(from)
        .to(to)
        .subject(alert.subject())
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("the e-mail could not be built: {e}"))
}

/// The SMTP transport `smtp` describes, logging in when a user is set.
fn smtp_transport(
    smtp: &SmtpSettings,
    password: Option<&str>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    type Smtp = AsyncSmtpTransport<Tokio1Executor>;
    let tls_error = |e: lettre::transport::smtp::Error| format!("TLS for {}: {e}", smtp.host);
    let builder = match smtp.tls {
        SmtpTls::None => Smtp::builder_dangerous(smtp.host.as_str()),
        SmtpTls::StartTls => Smtp::starttls_relay(&smtp.host).map_err(tls_error)?,
        SmtpTls::Tls => Smtp::relay(&smtp.host).map_err(tls_error)?,
    };
    let mut builder = builder.port(smtp.port).timeout(Some(SMTP_TIMEOUT));
    if let Some(user) = &smtp.user {
        let password = password.ok_or_else(|| {
            format!("QBO_SMTP_USER is set but the secret {SMTP_PASSWORD_SECRET} is not: `qbo-backfill secrets set {SMTP_PASSWORD_SECRET}`")
        })?;
        builder = builder.credentials(Credentials::new(user.clone(), password.to_owned()));
    }
    Ok(builder.build())
}

/// Sends `due` and records how it went: delivered, tried again after a backoff, or failed
/// after its last attempt (`retry`: false for a test, which is tried once).
async fn attempt(sender: &Sender, due: &Due, retry: bool) -> Result<bool, StoreError> {
    match sender.send(due).await {
        Ok(()) => {
            store::record_delivered(&sender.pool, due.id, due.attempts).await?;
            Ok(true)
        }
        Err(error) => {
            let next = if retry {
                retry_delay(due.attempts, sender.first_delay)
            } else {
                None
            };
            tracing::warn!(
                delivery = %due.id,
                channel = %due.channel.name,
                attempts = due.attempts,
                "Alert delivery failed | event={} channel={} attempt={} error={error}",
                due.alert.kind,
                due.channel.name,
                due.attempts,
            );
            store::record_failure(&sender.pool, due.id, due.attempts, &error, next).await?;
            Ok(false)
        }
    }
}

/// Claims up to `limit` due deliveries and sends them at once; returns how many were claimed.
///
/// # Errors
/// Database errors (a failed send is recorded, not an error).
pub async fn deliver_due(sender: &Arc<Sender>, limit: i64) -> Result<usize, StoreError> {
    let due = store::claim(&sender.pool, limit, CLAIM_LEASE, None).await?;
    let claimed = due.len();
    let mut sends = tokio::task::JoinSet::new();
    for d in due {
        let sender = Arc::clone(sender);
        sends.spawn(async move { attempt(&sender, &d, true).await });
    }
    while let Some(done) = sends.join_next().await {
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("Could not record an alert delivery: {e}"),
            Err(e) => tracing::warn!("An alert delivery stopped: {e}"),
        }
    }
    Ok(claimed)
}

/// Sends a test alert to channel `id` now, once, and answers how it went.
///
/// # Errors
/// [`AlertError::NotFound`]; database errors.
pub async fn test_channel(sender: &Sender, id: Uuid) -> Result<DeliveryRow, AlertError> {
    let channel = channel(&sender.pool, id).await?;
    let alert = Alert::test(&channel.name, jiff::Timestamp::now());
    let delivery = store::insert_delivery(&sender.pool, id, &alert).await?;
    for due in store::claim(&sender.pool, 1, CLAIM_LEASE, Some(delivery)).await? {
        attempt(sender, &due, false).await?;
    }
    store::get_delivery(&sender.pool, delivery)
        .await?
        .ok_or(AlertError::NotFound(id))
}
