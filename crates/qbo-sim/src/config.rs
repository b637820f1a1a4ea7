//! Start-up and run-time configuration: [`SimConfig`], [`SimLimits`], [`FaultConfig`], [`Rotation`].
//!
//! `SimLimits` and `FaultConfig` are also the JSON bodies of the admin API
//! (`PUT /__admin/limits`, `PUT /__admin/faults`); durations travel as integer milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the simulator needs at start-up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the deterministic data generator (same seed → same data, byte for byte).
    pub seed: u64,
    /// Number of `Customer` rows.
    pub customers: usize,
    /// Number of `Item` rows.
    pub items: usize,
    /// Number of `Invoice` rows.
    pub invoices: usize,
    /// Number of rows of each other entity with data (Account, Bill, BillPayment, Class,
    /// CreditMemo, Department, Deposit, Employee, Estimate, JournalEntry, Payment,
    /// PaymentMethod, Purchase, PurchaseOrder, RefundReceipt, SalesReceipt, TaxCode, TaxRate,
    /// Term, TimeActivity, Transfer, Vendor, VendorCredit), spread over the same CreateTime
    /// range.
    pub other_rows: usize,
    /// First day (UTC) of the `MetaData.CreateTime` spread, inclusive.
    pub from: jiff::civil::Date,
    /// Last day (UTC) of the `MetaData.CreateTime` spread, exclusive.
    pub to: jiff::civil::Date,
    /// OAuth2 client id expected on the token endpoint.
    pub client_id: String,
    /// OAuth2 client secret expected on the token endpoint.
    pub client_secret: String,
    /// The refresh token that is valid at start-up.
    pub refresh_token: String,
    /// The one company (realm) this simulator serves.
    pub realm_id: String,
    /// Lifetime of issued access tokens (Intuit: 3600 s).
    pub access_token_ttl: Duration,
    /// When the token endpoint replaces the refresh token.
    pub rotation: Rotation,
    /// Lifetime of the authorization codes the consent redirect hands out (`GET
    /// /connect/oauth2`); 5 minutes by default.
    pub auth_code_ttl: Duration,
    /// The app's registered redirect URIs: the authorization endpoint accepts only these, exactly
    /// as written, like Intuit's "Redirect URIs" list on the app's Keys tab. Empty: any `http` or
    /// `https` URI is accepted.
    pub redirect_uris: Vec<String>,
    /// Batch requests (`POST …/batch`) admitted per rolling minute, on top of
    /// [`SimLimits`] (where each batch item counts as one request). Intuit: 40 per realm and
    /// app. `None` disables it.
    pub batch_requests_per_minute: Option<u32>,
    /// Throttling limits.
    pub limits: SimLimits,
    /// Injected faults.
    pub faults: FaultConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            customers: 1000,
            items: 200,
            invoices: 2000,
            other_rows: 40,
            from: jiff::civil::date(2026, 1, 1),
            to: jiff::civil::date(2026, 2, 1),
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            refresh_token: "sim-refresh-token-0".to_owned(),
            realm_id: "9130350000000001".to_owned(),
            access_token_ttl: Duration::from_secs(3600),
            rotation: Rotation::default(),
            auth_code_ttl: Duration::from_secs(300),
            redirect_uris: Vec::new(),
            batch_requests_per_minute: Some(40),
            limits: SimLimits::default(),
            faults: FaultConfig::default(),
        }
    }
}

/// Refresh-token rotation policy.
///
/// Whenever a new refresh token is issued, the one it replaces answers `invalid_grant` from then
/// on (no grace period, as Intuit documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    /// Every successful refresh issues a new refresh token.
    #[default]
    EveryRefresh,
    /// A refresh returns the same refresh token until it is this old, then a new one
    /// (Intuit rotates roughly every 24 h).
    AfterAge(Duration),
}

/// Per-company throttling limits; `None` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimLimits {
    /// Requests admitted per rolling 60 s window (Intuit: 500).
    pub requests_per_minute: Option<u32>,
    /// Requests admitted per rolling 1 s window. Intuit documents 10 per second per realm and
    /// app; off by default here, because a sequential client on loopback answers in about a
    /// millisecond and would trip it where, over the internet, it never would.
    pub requests_per_second: Option<u32>,
    /// Requests being served at once (Intuit's 2016 wording: 10 concurrent).
    pub max_in_flight: Option<u32>,
}

impl Default for SimLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: Some(500),
            requests_per_second: None,
            max_in_flight: Some(10),
        }
    }
}

impl SimLimits {
    /// All limits disabled.
    pub fn none() -> Self {
        Self {
            requests_per_minute: None,
            requests_per_second: None,
            max_in_flight: None,
        }
    }
}

/// Injected faults on the QBO API paths (`/v3/...`). All zero by default.
///
/// Rates are probabilities in `[0, 1]`, drawn independently per request.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Probability of answering 500, 502 or 503 instead of serving the request.
    pub error_rate: f64,
    /// Share of those errors that carry the load balancer's HTML page instead of a JSON fault.
    pub html_error_share: f64,
    /// Fixed latency added to every QBO API request (JSON: `latency_ms`).
    #[serde(rename = "latency_ms", with = "duration_ms")]
    pub latency: Duration,
    /// Uniform random extra latency in `[0, latency_jitter]` (JSON: `latency_jitter_ms`).
    #[serde(rename = "latency_jitter_ms", with = "duration_ms")]
    pub latency_jitter: Duration,
    /// Probability that a 200 response has its body cut partway (mid-JSON).
    pub truncate_rate: f64,
    /// Probability that the connection is closed without any response.
    pub drop_rate: f64,
    /// Probability that a token refresh is carried out (the refresh token rotated) and its
    /// answer then lost: the connection closes without a response (needs `serve`).
    pub token_drop_rate: f64,
}

mod duration_ms {
    //! Serde for `Duration` as integer milliseconds.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
