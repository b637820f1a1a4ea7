//! [`QboClient`]: one HTTP client per company with its token manager, rate limiter, optional
//! [`SharedBudget`] and counters; sends queries with retries (backoff with full jitter for 5xx,
//! timeouts, dropped connections and truncated bodies, never sooner than a 5xx's `Retry-After`;
//! `Retry-After` or `throttle_wait` for 429s) and one forced token refresh after a 401.
//!
//! Each attempt waits for the in-process rate limiter first, then (when the client has one) for a
//! slot of the shared budget, so a process asks the shared budget only for requests its own
//! limiter already admits. The slot is released once the body is read, on every path; a 429
//! pauses both.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::{TokenConfig, TokenManager};
use crate::budget::{BudgetError, BudgetSlot, SharedBudget};
use crate::query::Query;
use crate::rate_limit::RateLimiter;
use crate::redact::{redact, redact_with};
use crate::response::{
    CdcChange, QueryPage, ResponseMeta, interpret_cdc_response, interpret_query_response,
};
use crate::token_store::TokenStore;
use crate::transport::{Stats, backoff, read_capped, transport_error};
use crate::{ClientSettings, Credentials, Entity, QboError, TimeField, TimeWindow, WindowPager};

/// A snapshot of a client's counters (shared by all clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// API requests sent (each attempt counts; token calls do not).
    pub requests: u64,
    /// Requests re-sent after a retryable failure (5xx, 429, timeout, dropped connection,
    /// truncated body).
    pub retries: u64,
    /// 429 / `ThrottleExceeded` answers received.
    pub throttled: u64,
    /// Total time spent waiting after throttling.
    pub throttle_wait: Duration,
    /// Successful token refreshes.
    pub refreshes: u64,
    /// Requests re-sent once after a 401 and a forced refresh.
    pub unauthorized_retries: u64,
}

/// A failure of the shared budget as a retryable error of the attempt: nothing was sent, and
/// nothing is sent until a slot is granted.
fn budget_error(e: BudgetError) -> QboError {
    let message = crate::transport::error_chain(&e);
    QboError::Connection {
        message: redact(&format!(
            "no request slot from the shared request budget, so nothing was sent ({message})"
        )),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so a space is `%20`, `+` is
/// `%2B`, `&` is `%26`, `'` is `%27`): every server decodes this the same way.
pub(crate) fn encode_query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED_COMPLEMENT).to_string()
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const UNRESERVED_COMPLEMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

struct Inner {
    settings: ClientSettings,
    realm_id: String,
    http: reqwest::Client,
    query_url: Url,
    auth: TokenManager,
    limiter: RateLimiter,
    /// The company's budget shared with other processes, if any.
    budget: Option<Arc<dyn SharedBudget>>,
    stats: Arc<Stats>,
    /// Page sizes smaller than the settings' that paging an entity fell back to after failed
    /// pages: later windows of that entity start there.
    page_sizes: std::sync::Mutex<std::collections::HashMap<Entity, u32>>,
}

/// Turns a whole answer (status, headers, body) into its value or its error.
type Interpret<'a, T> = dyn Fn(&ResponseMeta, &[u8]) -> Result<T, QboError> + Sync + 'a;

/// A QuickBooks Online client for one company. Cheap to clone: clones share the HTTP
/// connection pool, token cache, rate limiter, shared budget and counters.
#[derive(Clone)]
pub struct QboClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for QboClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QboClient")
            .field("realm_id", &self.inner.realm_id)
            .field("environment", &self.inner.settings.environment)
            .field("api_base_url", &self.inner.settings.api_base_url.as_str())
            .field("shared_budget", &self.inner.budget.is_some())
            .finish_non_exhaustive()
    }
}

impl QboClient {
    /// Builds a client. Fails only on unusable settings (page size, limits of 0, a base URL
    /// that cannot take a path, an invalid user agent) or an empty realm id / client id.
    pub fn new(
        settings: ClientSettings,
        credentials: Credentials,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<Self, QboError> {
        Self::build(settings, credentials, tokens, None)
    }

    /// Builds a client whose requests also take a slot of `budget`, the company's request
    /// budget shared with other processes (see [`SharedBudget`]). Fails as [`QboClient::new`].
    pub fn with_budget(
        settings: ClientSettings,
        credentials: Credentials,
        tokens: Arc<dyn TokenStore>,
        budget: Arc<dyn SharedBudget>,
    ) -> Result<Self, QboError> {
        Self::build(settings, credentials, tokens, Some(budget))
    }

    fn build(
        settings: ClientSettings,
        credentials: Credentials,
        tokens: Arc<dyn TokenStore>,
        budget: Option<Arc<dyn SharedBudget>>,
    ) -> Result<Self, QboError> {
        settings.validate().map_err(QboError::Config)?;
        let realm_id = credentials.realm_id.trim().to_owned();
        if realm_id.is_empty() {
            return Err(QboError::Config("the realm id is empty".to_owned()));
        }
        if credentials.client_id.trim().is_empty() {
            return Err(QboError::Config("the client id is empty".to_owned()));
        }
        let mut query_url = settings.api_base_url.clone();
        query_url.set_query(None);
        query_url.set_fragment(None);
        query_url
            .path_segments_mut()
            .map_err(|()| QboError::Config("api_base_url cannot be a base URL".to_owned()))?
            .pop_if_empty()
            .extend(["v3", "company", realm_id.as_str(), "query"]);

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = crate::tls::http_client_builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.as_str())
            .default_headers(headers)
            // Intuit's endpoints never redirect; following one could send the bearer token or
            // the client credentials to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                QboError::Config(format!(
                    "cannot build the HTTP client: {}",
                    transport_error(e)
                ))
            })?;

        let stats = Arc::new(Stats::default());
        let auth = TokenManager::new(
            http.clone(),
            TokenConfig {
                token_url: settings.token_url.clone(),
                client_id: credentials.client_id.trim().to_owned(),
                client_secret: credentials.client_secret,
                refresh_margin: settings.refresh_margin,
                retry: settings.retry.clone(),
            },
            tokens,
            Arc::clone(&stats),
        );
        let limiter = RateLimiter::new(&settings.limits);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                realm_id,
                http,
                query_url,
                auth,
                limiter,
                budget,
                stats,
                page_sizes: std::sync::Mutex::default(),
            }),
        })
    }

    /// The company id this client queries.
    #[must_use]
    pub fn realm_id(&self) -> &str {
        &self.inner.realm_id
    }

    /// The settings the client was built with.
    #[must_use]
    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    /// Makes sure a usable access token is at hand, refreshing now if needed. Lets callers fail
    /// fast on `invalid_grant` before starting work.
    pub async fn ensure_access_token(&self) -> Result<(), QboError> {
        self.inner.auth.access_token(None).await.map(drop)
    }

    /// Sends one query (with retries and 401 handling) and returns its page.
    pub async fn query(&self, query: &str) -> Result<QueryPage, QboError> {
        self.run_query(query, None).await
    }

    /// Sends a `SELECT COUNT(*) …` query and returns `totalCount` (0 for an empty
    /// `QueryResponse`).
    pub async fn count(&self, query: &str) -> Result<u64, QboError> {
        let page = self.run_query(query, None).await?;
        match page.total_count {
            Some(n) => Ok(n),
            None if page.entity_key.is_none() => Ok(0),
            None => Err(QboError::Decode {
                status: 200,
                message: "a COUNT(*) query answered with rows instead of totalCount".to_owned(),
                retryable: false,
                intuit_tid: page.intuit_tid,
            }),
        }
    }

    /// Pages through every `entity` row created in `window` (see [`WindowPager`]).
    #[must_use]
    pub fn window_pager(&self, entity: Entity, window: TimeWindow) -> WindowPager {
        WindowPager::new(self.clone(), entity, TimeField::Created, window)
    }

    /// Pages through every `entity` row whose `field` lies in `window` (see [`WindowPager`]).
    #[must_use]
    pub fn pager(&self, entity: Entity, field: TimeField, window: TimeWindow) -> WindowPager {
        WindowPager::new(self.clone(), entity, field, window)
    }

    /// How many `entity` rows have their `field` in `window` (`SELECT COUNT(*)`, inactive list
    /// rows included).
    pub async fn count_within(
        &self,
        entity: Entity,
        field: TimeField,
        window: TimeWindow,
    ) -> Result<u64, QboError> {
        let query = Query::count(entity).within(field, window).to_string();
        self.count(&query).await
    }

    /// How many `entity` rows have their `field` in `window` and changed after `after`
    /// (`MetaData.LastUpdatedTime > after`, whole seconds): for a window whose newest stored
    /// change is `after`, anything but 0 is a change the copy has not seen.
    pub async fn count_changed_after(
        &self,
        entity: Entity,
        field: TimeField,
        window: TimeWindow,
        after: jiff::Timestamp,
    ) -> Result<u64, QboError> {
        let query = Query::count(entity)
            .within(field, window)
            .filter(
                crate::query::LAST_UPDATED_TIME,
                crate::query::Operator::Gt,
                after,
            )
            .to_string();
        self.count(&query).await
    }

    /// The counters so far (shared by every clone).
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        ClientStats {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            throttle_wait: Duration::from_nanos(s.throttle_wait_ns.load(Ordering::Relaxed)),
            refreshes: s.refreshes.load(Ordering::Relaxed),
            unauthorized_retries: s.unauthorized_retries.load(Ordering::Relaxed),
        }
    }

    /// The full URL for `query`.
    fn url_for(&self, query: &str) -> Url {
        let mut url = self.inner.query_url.clone();
        url.set_query(Some(&format!(
            "query={}&minorversion={}",
            encode_query_value(query),
            self.inner.settings.minor_version
        )));
        url
    }

    /// Sends `query` until it succeeds, fails for good, or retries run out.
    pub(crate) async fn run_query(
        &self,
        query: &str,
        expected_key: Option<&str>,
    ) -> Result<QueryPage, QboError> {
        let retries = self.inner.settings.retry.max_retries;
        self.run_page_query(query, expected_key, retries).await
    }

    /// Like [`Self::run_query`], except that a failure a smaller page might avoid
    /// ([`QboError::may_be_too_big`]) is given up after `size_retries` retries.
    pub(crate) async fn run_page_query(
        &self,
        query: &str,
        expected_key: Option<&str>,
        size_retries: u32,
    ) -> Result<QueryPage, QboError> {
        let url = self.url_for(query);
        let interpret =
            |meta: &ResponseMeta, body: &[u8]| interpret_query_response(meta, body, expected_key);
        self.run_get_with(&url, &interpret, size_retries).await
    }

    /// The page size paging `entity` starts with: the settings', or the smaller one an earlier
    /// window of `entity` fell back to ([`Self::remember_page_size`]).
    pub(crate) fn page_size_for(&self, entity: Entity) -> u32 {
        let learned = self
            .inner
            .page_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&entity)
            .copied();
        learned.unwrap_or(self.inner.settings.page_size)
    }

    /// Remembers that pages of `entity` had to shrink to `size` rows.
    pub(crate) fn remember_page_size(&self, entity: Entity, size: u32) {
        let mut sizes = self
            .inner
            .page_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = sizes.entry(entity).or_insert(size);
        *known = (*known).min(size);
    }

    /// Changes to `entity` since `since` reported by the change-data-capture endpoint
    /// (`GET …/cdc?entities=<entity>&changedSince=<since>`), deletions included. QuickBooks looks
    /// back 30 days at most and answers at most 1,000 objects.
    ///
    /// # Errors
    /// Like a query: after retries, on a terminal answer, or when the body is not a CDC answer.
    pub async fn cdc(
        &self,
        entity: Entity,
        since: jiff::Timestamp,
    ) -> Result<Vec<CdcChange>, QboError> {
        let inner = &*self.inner;
        // `…/v3/company/{realm}/query` → `…/cdc` (a base URL, checked when the client was built).
        let mut url = inner.query_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop().push("cdc");
        }
        url.query_pairs_mut()
            .append_pair("entities", entity.qbo_name())
            .append_pair("changedSince", &crate::format_datetime(since))
            .append_pair("minorversion", &inner.settings.minor_version.to_string());
        self.run_get(&url, &|meta: &ResponseMeta, body: &[u8]| {
            interpret_cdc_response(meta, body, entity.qbo_name())
        })
        .await
    }

    /// Sends a GET to `url` until it succeeds, fails for good, or retries run out; `interpret`
    /// turns a whole answer into its value or its error.
    async fn run_get<T>(&self, url: &Url, interpret: &Interpret<'_, T>) -> Result<T, QboError> {
        let retries = self.inner.settings.retry.max_retries;
        self.run_get_with(url, interpret, retries).await
    }

    /// [`Self::run_get`], giving up a failure a smaller request might avoid after
    /// `size_retries` retries (the settings' `max_retries` at the most).
    async fn run_get_with<T>(
        &self,
        url: &Url,
        interpret: &Interpret<'_, T>,
        size_retries: u32,
    ) -> Result<T, QboError> {
        let inner = &*self.inner;
        let retry = &inner.settings.retry;
        let mut retries = 0_u32;
        let mut refreshed_after_401 = false;
        let mut rejected: Option<SecretString> = None;
        loop {
            let (token, err) = match self.send_once(url, rejected.take(), interpret).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            if err.is_unauthorized() && !refreshed_after_401 {
                refreshed_after_401 = true;
                inner
                    .stats
                    .unauthorized_retries
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(realm_id = %inner.realm_id, "access token refused, refreshing once and retrying: {err}");
                rejected = token;
                continue;
            }
            if !err.is_unauthorized() {
                // Only a 401 right after a forced refresh is final; a token that expired while
                // this request waited out a throttle or an outage earns a fresh refresh.
                refreshed_after_401 = false;
            }
            let limit = if err.may_be_too_big() {
                size_retries.min(retry.max_retries)
            } else {
                retry.max_retries
            };
            if !err.is_retryable() || retries >= limit {
                return Err(err);
            }
            let wait = if let QboError::Throttled { retry_after, .. } = &err {
                let wait = retry_after.unwrap_or(retry.throttle_wait);
                inner.limiter.pause_for(wait);
                if let Some(budget) = &inner.budget {
                    budget.pause_for(wait).await;
                }
                let ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                inner
                    .stats
                    .throttle_wait_ns
                    .fetch_add(ns, Ordering::Relaxed);
                wait
            } else if let QboError::Server {
                retry_after: Some(asked),
                ..
            } = &err
            {
                // An outage that says when to come back (a 503's `Retry-After`): not sooner.
                backoff(retry, retries).max(*asked)
            } else {
                backoff(retry, retries)
            };
            retries += 1;
            inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                realm_id = %inner.realm_id,
                attempt = retries,
                max_retries = retry.max_retries,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                status = err.status(),
                intuit_tid = err.intuit_tid(),
                "QuickBooks request failed, retrying: {err}"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: wait for the rate limiter and the shared budget, then take the access token
    /// (refreshing it if `rejected` was refused or it is about to expire: a throttled wait can
    /// outlast a short-lived token), send, read the whole body, release the shared slot and the
    /// in-flight permit (whatever happened), then interpret. On failure the token sent is
    /// returned beside the error, so a 401 can name the token to replace.
    async fn send_once<T>(
        &self,
        url: &Url,
        rejected: Option<SecretString>,
        interpret: &Interpret<'_, T>,
    ) -> Result<T, (Option<SecretString>, QboError)> {
        let inner = &*self.inner;
        let permit = inner.limiter.acquire().await;
        let slot: Option<Box<dyn BudgetSlot>> = match &inner.budget {
            Some(budget) => Some(
                budget
                    .acquire(permit.counted())
                    .await
                    .map_err(|e| (None, budget_error(e)))?,
            ),
            None => None,
        };
        let token = match inner.auth.access_token(rejected.as_ref()).await {
            Ok(token) => token,
            Err(e) => {
                if let Some(slot) = slot {
                    slot.release().await;
                }
                return Err((None, e));
            }
        };
        inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        let fetched = async {
            let response = inner
                .http
                .get(url.clone())
                .bearer_auth(token.expose_secret())
                .send()
                .await
                .map_err(transport_error)?;
            let meta = ResponseMeta::from_parts(response.status().as_u16(), response.headers());
            let body = read_capped(response, inner.settings.max_response_bytes).await?;
            Ok::<_, QboError>((meta, body))
        }
        .await;
        if let Some(slot) = slot {
            slot.release().await;
        }
        drop(permit);
        let result = fetched.and_then(|(meta, body)| interpret(&meta, &body));
        let result = match result {
            Err(QboError::Throttled { .. }) => {
                inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
                result
            }
            Err(QboError::Unauthorized {
                status,
                fault,
                detail,
                intuit_tid,
            }) => {
                // The 401 detail echoes the token; mask it even if it does not look like one.
                let secret = [token.expose_secret()];
                let scrub = |s: String| redact_with(&s, &secret);
                let fault = fault.map(|mut f| {
                    for e in &mut f.errors {
                        e.message = e.message.take().map(scrub);
                        e.detail = e.detail.take().map(scrub);
                    }
                    f
                });
                Err(QboError::Unauthorized {
                    status,
                    fault,
                    detail: detail.map(scrub),
                    intuit_tid,
                })
            }
            other => other,
        };
        result.map_err(|e| (Some(token), e))
    }
}

impl QboClient {
    /// Fetches one report (`GET …/v3/company/{realm}/reports/{Name}?…`) through the same path
    /// as queries: rate limiter, shared budget slot, token refresh, retries and error
    /// classification. The realm is this client's.
    ///
    /// # Errors
    /// [`crate::report::ReportFetchError::Qbo`] as for a query (or a body that is not a
    /// report); [`crate::report::ReportFetchError::RangeTooLarge`] when QuickBooks answered
    /// with a report cut short by "Unable to display more data. Please reduce the date
    /// range.": the caller must ask again for smaller windows.
    pub async fn fetch_report(
        &self,
        request: &crate::report::ReportRequest,
    ) -> Result<crate::report::FetchedReport, crate::report::ReportFetchError> {
        let inner = &*self.inner;
        // `…/v3/company/{realm}/query` → `…/reports/{Name}` (a base URL, checked at build).
        let mut url = inner.query_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop().push("reports").push(request.name.as_str());
        }
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in request.query_pairs(inner.settings.minor_version) {
                query.append_pair(key, &value);
            }
        }
        let fetched = self
            .run_get(&url, &crate::report::interpret_report_response)
            .await?;
        if crate::report::is_range_too_large(&fetched.report) {
            tracing::warn!(
                realm_id = %inner.realm_id,
                report = %request.name,
                start = %request.start_date,
                end = %request.end_date,
                intuit_tid = fetched.intuit_tid.as_deref(),
                "QuickBooks truncated the report; the range must be read in smaller windows"
            );
            return Err(crate::report::ReportFetchError::RangeTooLarge {
                request: request.clone(),
                fetched: Box::new(fetched),
            });
        }
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::RetrySettings;

    #[test]
    fn query_values_are_fully_percent_encoded() {
        assert_eq!(
            encode_query_value(r"SELECT * FROM Customer WHERE DisplayName = 'A\'s & B+C'"),
            "SELECT%20%2A%20FROM%20Customer%20WHERE%20DisplayName%20%3D%20%27A%5C%27s%20%26%20B%2BC%27"
        );
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }

    #[test]
    fn backoff_is_bounded_by_the_doubling_ceiling() {
        let retry = RetrySettings {
            max_retries: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            throttle_wait: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100 * (1_u64 << attempt.min(20)))
                .min(Duration::from_millis(1000));
            for _ in 0..50 {
                assert!(backoff(&retry, attempt) <= ceiling);
            }
        }
        // Full jitter: across many draws the waits are not all the same.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(&retry, 3)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn query_url_keeps_a_base_path_and_encodes_the_realm() {
        let mut settings = ClientSettings::for_environment(crate::Environment::Sandbox);
        settings.api_base_url = Url::parse("http://127.0.0.1:8080/prefix/").expect("url");
        let creds = Credentials {
            client_id: "id".into(),
            client_secret: SecretString::from("secret"),
            realm_id: "12 34".into(),
        };
        let store = Arc::new(crate::MemoryTokenStore::new(
            crate::TokenSet::from_refresh_token(SecretString::from("rt")),
        ));
        let client = QboClient::new(settings, creds, store).expect("client");
        assert_eq!(
            client.url_for("SELECT * FROM Item").as_str(),
            "http://127.0.0.1:8080/prefix/v3/company/12%2034/query?query=SELECT%20%2A%20FROM%20Item&minorversion=75"
        );
        assert_eq!(client.realm_id(), "12 34");
    }

    /// A [`SharedBudget`] that records what the client does with it.
    #[derive(Default)]
    struct RecordingBudget {
        fail: bool,
        acquired: AtomicU64,
        released: Arc<AtomicU64>,
        held: Arc<AtomicU64>,
        max_held: Arc<AtomicU64>,
        pauses: std::sync::Mutex<Vec<Duration>>,
    }

    struct RecordingSlot {
        released: Arc<AtomicU64>,
        held: Arc<AtomicU64>,
    }

    impl BudgetSlot for RecordingSlot {
        fn release(self: Box<Self>) -> crate::BoxFuture<'static, ()> {
            self.held.fetch_sub(1, Ordering::SeqCst);
            self.released.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    impl SharedBudget for RecordingBudget {
        fn acquire(
            &self,
            _counted: crate::Counted,
        ) -> crate::BoxFuture<'_, Result<Box<dyn BudgetSlot>, BudgetError>> {
            Box::pin(async move {
                if self.fail {
                    return Err(BudgetError::with_source(
                        "the budget store failed",
                        std::io::Error::other("connection refused"),
                    ));
                }
                self.acquired.fetch_add(1, Ordering::SeqCst);
                let now = self.held.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_held.fetch_max(now, Ordering::SeqCst);
                Ok(Box::new(RecordingSlot {
                    released: Arc::clone(&self.released),
                    held: Arc::clone(&self.held),
                }) as Box<dyn BudgetSlot>)
            })
        }

        fn pause_for(&self, wait: Duration) -> crate::BoxFuture<'_, ()> {
            self.pauses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(wait);
            Box::pin(async {})
        }
    }

    async fn sim_with(limits: qbo_sim::SimLimits) -> qbo_sim::RunningSim {
        let config = qbo_sim::SimConfig {
            customers: 50,
            items: 5,
            invoices: 5,
            limits,
            ..qbo_sim::SimConfig::default()
        };
        qbo_sim::serve(
            qbo_sim::SimState::new(config),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("simulator")
    }

    fn budget_client(
        sim: &qbo_sim::RunningSim,
        budget: Arc<RecordingBudget>,
        max_retries: u32,
    ) -> QboClient {
        let mut settings = ClientSettings::for_environment(crate::Environment::Sandbox);
        settings.api_base_url = Url::parse(&sim.api_base_url()).expect("url");
        settings.token_url = Url::parse(&sim.token_url()).expect("url");
        settings.retry.max_retries = max_retries;
        settings.retry.initial_backoff = Duration::from_millis(1);
        settings.retry.max_backoff = Duration::from_millis(5);
        settings.retry.throttle_wait = Duration::from_millis(20);
        settings.limits = crate::RateLimitSettings::unlimited();
        let config = qbo_sim::SimConfig::default();
        let creds = Credentials {
            client_id: config.client_id,
            client_secret: SecretString::from(config.client_secret),
            realm_id: config.realm_id,
        };
        let store = Arc::new(crate::MemoryTokenStore::new(
            crate::TokenSet::from_refresh_token(SecretString::from(
                sim.state().current_refresh_token(),
            )),
        ));
        QboClient::with_budget(settings, creds, store, budget).expect("client")
    }

    const QUERY: &str = "SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 5";

    #[tokio::test]
    async fn every_request_takes_a_shared_slot_and_releases_it() {
        let sim = sim_with(qbo_sim::SimLimits::none()).await;
        let budget = Arc::new(RecordingBudget::default());
        let client = budget_client(&sim, Arc::clone(&budget), 0);
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let c = client.clone();
            tasks.push(tokio::spawn(async move { c.query(QUERY).await }));
        }
        for t in tasks {
            t.await.expect("task").expect("query");
        }
        let sent = sim.state().stats().query_requests;
        assert_eq!(sent, 12);
        assert_eq!(budget.acquired.load(Ordering::SeqCst), sent);
        assert_eq!(budget.released.load(Ordering::SeqCst), sent);
        assert_eq!(budget.held.load(Ordering::SeqCst), 0);
        assert!(format!("{client:?}").contains("shared_budget: true"));
    }

    #[tokio::test]
    async fn a_429_pauses_the_shared_budget_and_failed_attempts_release_their_slot() {
        let sim = sim_with(qbo_sim::SimLimits {
            requests_per_minute: Some(2),
            ..qbo_sim::SimLimits::none()
        })
        .await;
        let budget = Arc::new(RecordingBudget::default());
        let client = budget_client(&sim, Arc::clone(&budget), 2);
        client.query(QUERY).await.expect("first");
        client.query(QUERY).await.expect("second");
        let err = client.query(QUERY).await.expect_err("throttled");
        assert!(matches!(err, QboError::Throttled { .. }), "{err}");
        // Three attempts of the third query were throttled; the two retries each paused first.
        let pauses = budget
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(pauses, vec![Duration::from_millis(20); 2]);
        assert_eq!(sim.state().stats().throttled, 3);
        assert_eq!(budget.acquired.load(Ordering::SeqCst), 5);
        assert_eq!(budget.released.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_failing_budget_sends_nothing_and_is_retryable() {
        let sim = sim_with(qbo_sim::SimLimits::none()).await;
        let budget = Arc::new(RecordingBudget {
            fail: true,
            ..RecordingBudget::default()
        });
        let client = budget_client(&sim, budget, 1);
        let err = client.query(QUERY).await.expect_err("no slot");
        assert!(err.is_retryable(), "{err}");
        let text = err.to_string();
        assert!(text.contains("shared request budget"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert_eq!(sim.state().stats().query_requests, 0);
        assert_eq!(client.stats().requests, 0);
        assert_eq!(client.stats().retries, 1);
    }
}
