//! Webhooks as Intuit sends them: every change the simulator makes (admin mutate, change-amount,
//! deactivate, delete) is collected for a short window (1 s by default) and sent as one signed
//! delivery (`intuit-signature`: base64 of HMAC-SHA256 of the body under the verifier token) in
//! the legacy format or as a CloudEvents batch, retried with backoff on anything but 2xx. It can
//! be told to send every delivery twice ([`WebhookConfig::duplicate`]) or to send the later half
//! of a batch first ([`WebhookConfig::reorder`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::SimState;

/// Which of Intuit's payload formats deliveries use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities":[…]}}]}`.
    Legacy,
    /// `[{"specversion":"1.0","id","type":"qbo.<entity>.<operation>.v1",…}]`.
    #[default]
    CloudEvents,
}

impl std::str::FromStr for WebhookFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" => Ok(Self::Legacy),
            "cloudevents" => Ok(Self::CloudEvents),
            other => Err(format!(
                "unknown webhook format `{other}` (legacy or cloudevents)"
            )),
        }
    }
}

/// Where and how the simulator sends webhooks (`PUT /__admin/webhooks`); no URL: none are sent.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// The endpoint (`http://127.0.0.1:6789/webhooks/intuit`).
    pub url: Option<String>,
    /// The app's verifier token the deliveries are signed with (never shown by `GET`).
    #[serde(skip_serializing)]
    pub verifier_token: String,
    /// The payload format.
    pub format: WebhookFormat,
    /// Send every delivery twice.
    pub duplicate: bool,
    /// Split every batch in two and send the later half first.
    pub reorder: bool,
    /// How long changes are collected before they are sent (JSON: `batch_ms`; 0 = 1000).
    pub batch_ms: u64,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("format", &self.format)
            .field("duplicate", &self.duplicate)
            .field("reorder", &self.reorder)
            .field("batch_ms", &self.batch_ms)
            .finish_non_exhaustive()
    }
}

/// What the sender did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// Changes recorded while a URL was set.
    pub changes: u64,
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// POSTs sent (retries included).
    pub attempts: u64,
    /// Deliveries given up after every retry failed.
    pub abandoned: u64,
}

/// One change to notify.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) seq: u64,
    pub(crate) entity: &'static str,
    pub(crate) id: String,
    pub(crate) operation: &'static str,
    pub(crate) at: jiff::Timestamp,
}

/// The outbox: changes waiting for the next delivery, the configuration, the counters.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    config: RwLock<WebhookConfig>,
    pending: Mutex<Vec<Change>>,
    wake: Notify,
    seq: AtomicU64,
    changes: AtomicU64,
    delivered: AtomicU64,
    attempts: AtomicU64,
    abandoned: AtomicU64,
}

/// Retries after a failed POST, with these waits (Intuit waits minutes; a simulator, less).
const RETRY_WAITS_MS: [u64; 5] = [200, 400, 800, 1600, 3200];

impl Outbox {
    pub(crate) fn config(&self) -> WebhookConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_config(&self, config: WebhookConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// Records a change (when a URL is set) and wakes the sender.
    pub(crate) fn record(&self, entity: &'static str, id: &str, operation: &'static str) {
        if self.config().url.is_none() {
            return;
        }
        let change = Change {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            entity,
            id: id.trim().to_owned(),
            operation,
            at: jiff::Timestamp::now(),
        };
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> WebhookStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebhookStats {
            changes: get(&self.changes),
            delivered: get(&self.delivered),
            attempts: get(&self.attempts),
            abandoned: get(&self.abandoned),
        }
    }
}

/// The base64 HMAC-SHA256 of `body` under `token`.
pub fn sign(body: &[u8], token: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The body of one delivery of `changes` for company `realm_id`.
pub(crate) fn body(format: WebhookFormat, realm_id: &str, changes: &[Change]) -> String {
    let value = match format {
        WebhookFormat::Legacy => {
            let entities: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| {
                    serde_json::json!({"name": c.entity, "id": c.id, "operation": c.operation,
                                       "lastUpdated": rfc3339(c.at)})
                })
                .collect();
            serde_json::json!({"eventNotifications": [
                {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}]})
        }
        WebhookFormat::CloudEvents => serde_json::Value::Array(
            changes
                .iter()
                .map(|c| {
                    let past = match c.operation {
                        "Create" => "created",
                        "Delete" => "deleted",
                        "Merge" => "merged",
                        "Void" => "voided",
                        _ => "updated",
                    };
                    serde_json::json!({
                        "specversion": "1.0",
                        "id": format!("qbo-sim-{realm_id}-{}-{}-{}", c.seq, c.entity, c.id),
                        "source": "intuit.qbo-sim",
                        "type": format!("qbo.{}.{past}.v1", c.entity.to_ascii_lowercase()),
                        "datacontenttype": "application/json",
                        "time": rfc3339(c.at),
                        "intuitentityid": c.id,
                        "intuitaccountid": realm_id,
                        "data": {}
                    })
                })
                .collect(),
        ),
    };
    value.to_string()
}

/// Sends the outbox's changes until the task is aborted: waits for a change, collects for the
/// batch window, then sends the batch (split and reversed when reordering, twice when
/// duplicating), each delivery retried with backoff until answered 2xx.
pub(crate) async fn run_sender(state: SimState) {
    let client = match http_client_builder().build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!("qbo-sim: cannot build the webhook client: {error}");
            return;
        }
    };
    let outbox = &state.inner.outbox;
    loop {
        outbox.wake.notified().await;
        let config = outbox.config();
        let window = if config.batch_ms == 0 {
            1000
        } else {
            config.batch_ms
        };
        tokio::time::sleep(Duration::from_millis(window)).await;
        let changes = std::mem::take(
            &mut *outbox
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let config = outbox.config();
        let Some(url) = config.url.as_deref() else {
            continue;
        };
        if changes.is_empty() {
            continue;
        }
        let mut batches: Vec<&[Change]> = if config.reorder && changes.len() > 1 {
            let (first, later) = changes.split_at(changes.len() / 2);
            vec![later, first]
        } else {
            vec![&changes[..]]
        };
        if config.duplicate {
            batches = batches.into_iter().flat_map(|b| [b, b]).collect();
        }
        for batch in batches {
            let body = body(config.format, state.realm_id(), batch);
            deliver(&client, outbox, url, &config.verifier_token, body).await;
        }
    }
}

async fn deliver(client: &reqwest::Client, outbox: &Outbox, url: &str, token: &str, body: String) {
    let signature = sign(body.as_bytes(), token);
    for attempt in 0..=RETRY_WAITS_MS.len() {
        outbox.attempts.fetch_add(1, Ordering::Relaxed);
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("intuit-signature", &signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                outbox.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => tracing::warn!(status = r.status().as_u16(), attempt, "webhook refused"),
            Err(e) => tracing::warn!(error = %e, attempt, "webhook not delivered"),
        }
        if let Some(wait) = RETRY_WAITS_MS.get(attempt) {
            tokio::time::sleep(Duration::from_millis(*wait)).await;
        }
    }
    outbox.abandoned.fetch_add(1, Ordering::Relaxed);
}

/// A `reqwest` client builder whose TLS uses rustls with the `ring` provider, installed once per
/// process (the workspace builds `reqwest` without a bundled provider).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: u64, op: &'static str) -> Change {
        Change {
            seq,
            entity: "Invoice",
            id: "42".into(),
            operation: op,
            at: "2026-03-01T10:00:00.250Z".parse().expect("ts"),
        }
    }

    #[test]
    fn both_formats_carry_the_change() {
        let changes = [change(1, "Update"), change(2, "Delete")];
        let legacy: serde_json::Value =
            serde_json::from_str(&body(WebhookFormat::Legacy, "9", &changes)).expect("json");
        let entities = &legacy["eventNotifications"][0]["dataChangeEvent"]["entities"];
        assert_eq!(legacy["eventNotifications"][0]["realmId"], "9");
        assert_eq!(entities[1]["operation"], "Delete");
        assert_eq!(entities[0]["lastUpdated"], "2026-03-01T10:00:00.250Z");
        let ce: serde_json::Value =
            serde_json::from_str(&body(WebhookFormat::CloudEvents, "9", &changes)).expect("json");
        assert_eq!(ce[0]["type"], "qbo.invoice.updated.v1");
        assert_eq!(ce[1]["type"], "qbo.invoice.deleted.v1");
        assert_eq!(ce[1]["intuitaccountid"], "9");
        assert_ne!(ce[0]["id"], ce[1]["id"]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_in_base64() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"what do ya want for nothing?", "Jefe"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }
}
