//! [`SimState`]: the shared simulator state (data, tokens, limits, faults, statistics) and its
//! public control surface used by tests and the admin API.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::Tokens;
use crate::data::{ChangeError, Dataset, Kind};
use crate::engine::{Engine, render_entity};
use crate::limits::Limiter;
use crate::rng::SharedRng;
use crate::webhooks::{Outbox, WebhookConfig, WebhookStats};
use crate::{FaultConfig, Rotation, SimConfig, SimError, SimLimits};

/// How many received query texts [`SimState::queries`] keeps.
const QUERY_LOG_LEN: usize = 10_000;

/// Request counters. Admin requests are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests to the QBO API and the token endpoint (throttled and faulted ones included).
    pub requests_total: u64,
    /// Query requests that reached the query handler.
    pub query_requests: u64,
    /// Single-entity reads that reached the read handler.
    pub read_requests: u64,
    /// Batch requests that reached the batch handler (their query items also count in
    /// `query_requests`).
    pub batch_requests: u64,
    /// Report requests (`GET …/reports/{Name}`) that reached the report handler. Absent from
    /// the admin JSON while zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub report_requests: u64,
    /// Token endpoint requests.
    pub token_requests: u64,
    /// 429 responses sent.
    pub throttled: u64,
    /// Injected faults (5xx, dropped connections, truncated bodies).
    pub faults_injected: u64,
    /// Highest number of QBO API requests in flight at once.
    pub max_in_flight_seen: u64,
    /// Query requests per entity name as written in the query (`?` when unparsable).
    pub queries_by_entity: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests_total: AtomicU64,
    pub(crate) query_requests: AtomicU64,
    pub(crate) read_requests: AtomicU64,
    pub(crate) batch_requests: AtomicU64,
    pub(crate) report_requests: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) realm_id: String,
    pub(crate) access_token_ttl: Duration,
    pub(crate) rotation: Rotation,
    pub(crate) auth_code_ttl: Duration,
    pub(crate) redirect_uris: Vec<String>,
    /// Whether the consent screen answers `access_denied` (the user clicked "Cancel").
    pub(crate) authorize_deny: AtomicBool,
    pub(crate) data: Dataset,
    pub(crate) engine: Engine,
    pub(crate) tokens: Mutex<Tokens>,
    pub(crate) faults: RwLock<FaultConfig>,
    /// Reports over a longer range (days) answer cut short; 0 = no limit.
    pub(crate) report_max_days: AtomicU32,
    pub(crate) limiter: Limiter,
    pub(crate) counters: Counters,
    pub(crate) by_entity: Mutex<BTreeMap<String, u64>>,
    pub(crate) queries: Mutex<VecDeque<String>>,
    pub(crate) rng: SharedRng,
    /// Changes waiting to be sent as webhooks, and where to.
    pub(crate) outbox: Outbox,
}

/// The simulator: cheap to clone (an `Arc` inside), shared by the server and tests.
#[derive(Debug, Clone)]
pub struct SimState {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    /// Generates the data and sets up tokens, limits and faults from `config`.
    pub fn new(config: SimConfig) -> Self {
        let data = Dataset::generate(&config);
        let token_seed = config.seed ^ jiff::Timestamp::now().as_nanosecond() as u64;
        Self {
            inner: Arc::new(Inner {
                tokens: Mutex::new(Tokens::new(config.refresh_token.clone())),
                client_id: config.client_id,
                client_secret: config.client_secret,
                realm_id: config.realm_id,
                access_token_ttl: config.access_token_ttl,
                rotation: config.rotation,
                auth_code_ttl: config.auth_code_ttl,
                redirect_uris: config.redirect_uris,
                authorize_deny: AtomicBool::new(false),
                data,
                engine: Engine::default(),
                faults: RwLock::new(config.faults),
                report_max_days: AtomicU32::new(0),
                limiter: Limiter::new(config.limits, config.batch_requests_per_minute),
                counters: Counters::default(),
                by_entity: Mutex::new(BTreeMap::new()),
                queries: Mutex::new(VecDeque::new()),
                rng: SharedRng::new(token_seed),
                outbox: Outbox::default(),
            }),
        }
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, f: FaultConfig) {
        *self
            .inner
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = f;
    }

    /// Reports (`GET …/reports/{Name}`) over a range longer than `max_days` days answer HTTP 200
    /// cut short, ending in QuickBooks' "Unable to display more data. Please reduce the date
    /// range." row (`None` or 0: any range is served, the default). Aging reports, which have
    /// one date, are never cut.
    pub fn set_report_max_days(&self, max_days: Option<u32>) {
        self.inner
            .report_max_days
            .store(max_days.unwrap_or(0), Ordering::Relaxed);
    }

    /// The report range limit in force; see
    /// [`set_report_max_days`](Self::set_report_max_days).
    pub fn report_max_days(&self) -> Option<u32> {
        Some(self.inner.report_max_days.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    /// The injected faults in force.
    pub fn faults(&self) -> FaultConfig {
        *self
            .inner
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the throttling limits.
    pub fn set_limits(&self, l: SimLimits) {
        self.inner.limiter.set(l);
    }

    /// The throttling limits in force.
    pub fn limits(&self) -> SimLimits {
        self.inner.limiter.get()
    }

    /// Replaces the batch-requests-per-minute limit (`None` = off); see
    /// [`SimConfig::batch_requests_per_minute`].
    pub fn set_batch_requests_per_minute(&self, limit: Option<u32>) {
        self.inner.limiter.set_batch_limit(limit);
    }

    /// The batch-requests-per-minute limit in force.
    pub fn batch_requests_per_minute(&self) -> Option<u32> {
        self.inner.limiter.batch_limit()
    }

    /// The company (realm) id this simulator serves; the consent redirect reports it as
    /// `realmId`.
    pub fn realm_id(&self) -> &str {
        &self.inner.realm_id
    }

    /// Makes the consent screen (`GET /connect/oauth2`) deny (`true`: redirects with
    /// `error=access_denied`, as when the user cancels) or approve at once (`false`, the default).
    pub fn set_authorize_deny(&self, deny: bool) {
        self.inner.authorize_deny.store(deny, Ordering::Relaxed);
    }

    /// Whether the consent screen denies; see [`set_authorize_deny`](Self::set_authorize_deny).
    pub fn authorize_deny(&self) -> bool {
        self.inner.authorize_deny.load(Ordering::Relaxed)
    }

    /// Every access token issued so far is expired (answers the 401 envelope).
    pub fn expire_access_tokens(&self) {
        lock(&self.inner.tokens).expire_access_tokens();
    }

    /// The current refresh token answers `invalid_grant` from now on.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.inner.tokens).revoke();
    }

    /// Simulates the user re-consenting: issues and returns a brand-new valid refresh token
    /// (the previous one, if still valid, is replaced).
    pub fn reconnect(&self) -> String {
        lock(&self.inner.tokens).reconnect(&self.inner.rng)
    }

    /// The most recently issued refresh token (no longer valid after
    /// [`revoke_refresh_tokens`](Self::revoke_refresh_tokens)).
    pub fn current_refresh_token(&self) -> String {
        lock(&self.inner.tokens).latest().to_owned()
    }

    fn map_change(entity: &str, id: &str, r: Result<(), ChangeError>) -> Result<(), SimError> {
        r.map_err(|e| match e {
            ChangeError::UnknownEntity => SimError::UnknownEntity(entity.to_owned()),
            ChangeError::NotFound => SimError::NotFound {
                entity: entity.to_owned(),
                id: id.to_owned(),
            },
            ChangeError::NotList => SimError::NotListEntity(entity.to_owned()),
            ChangeError::ListDelete => SimError::ListEntityNotDeletable(entity.to_owned()),
            ChangeError::AmountNotChangeable => SimError::AmountNotChangeable(entity.to_owned()),
        })
    }

    /// Edits an entity of [`DATA_ENTITIES`](crate::DATA_ENTITIES): bumps `SyncToken`, sets
    /// `MetaData.LastUpdatedTime` to now and, where the entity has a free-text field, changes it
    /// (`Notes` / `Description` / `PrivateNote`); `CreateTime` is unchanged. Deleted rows answer
    /// [`SimError::NotFound`].
    pub fn mutate(&self, entity: &str, id: &str) -> Result<(), SimError> {
        let now = jiff::Timestamp::now().as_second();
        Self::map_change(entity, id, self.inner.data.mutate(entity, id, now))?;
        self.notify(entity, id, "Update");
        Ok(())
    }

    /// Edits the amount of a Purchase, Deposit or Transfer: adds `delta_cents` to its first
    /// line (a transfer's `Amount`), its total follows, and bumps `SyncToken` and
    /// `MetaData.LastUpdatedTime` (now) as [`mutate`](Self::mutate) does. Its postings, and so
    /// every report, change with it. Other entities answer [`SimError::AmountNotChangeable`].
    pub fn change_amount(&self, entity: &str, id: &str, delta_cents: i64) -> Result<(), SimError> {
        let now = jiff::Timestamp::now().as_second();
        let r = self.inner.data.change_amount(entity, id, delta_cents, now);
        Self::map_change(entity, id, r)?;
        self.notify(entity, id, "Update");
        Ok(())
    }

    /// Makes a list entity (see [`LIST_ENTITIES`](crate::LIST_ENTITIES)) inactive, bumping
    /// `SyncToken` and `LastUpdatedTime`; its name gets QBO's ` (deleted)` suffix.
    pub fn deactivate(&self, entity: &str, id: &str) -> Result<(), SimError> {
        let now = jiff::Timestamp::now().as_second();
        Self::map_change(entity, id, self.inner.data.deactivate(entity, id, now))?;
        // Intuit lists Delete among a list entity's webhook operations: it is the deactivation.
        self.notify(entity, id, "Delete");
        Ok(())
    }

    /// Deletes a transaction (an entity of [`DATA_ENTITIES`](crate::DATA_ENTITIES) not in
    /// [`LIST_ENTITIES`](crate::LIST_ENTITIES)), now: it disappears from queries, `COUNT(*)`,
    /// batch and single reads (which answer 610 "Object Not Found"), and change data capture
    /// reports it as `{"domain":"QBO","status":"Deleted","Id":…,"MetaData":{"LastUpdatedTime":
    /// now}}`. List entities answer [`SimError::ListEntityNotDeletable`] (QuickBooks makes them
    /// inactive instead, see [`deactivate`](Self::deactivate)); an id already deleted answers
    /// [`SimError::NotFound`].
    pub fn delete(&self, entity: &str, id: &str) -> Result<(), SimError> {
        let now = jiff::Timestamp::now().as_second();
        Self::map_change(entity, id, self.inner.data.delete(entity, id, now))?;
        self.notify(entity, id, "Delete");
        Ok(())
    }

    fn notify(&self, entity: &str, id: &str, operation: &'static str) {
        if let Some(kind) = Kind::from_any_case(entity) {
            self.inner.outbox.record(kind.name(), id, operation);
        }
    }

    /// Sends webhooks for every change from now on as `config` says (no URL: none are sent).
    /// Deliveries go out from the task [`serve`](crate::serve) starts.
    pub fn set_webhooks(&self, config: WebhookConfig) {
        self.inner.outbox.set_config(config);
    }

    /// The webhook configuration in force.
    pub fn webhooks(&self) -> WebhookConfig {
        self.inner.outbox.config()
    }

    /// What the webhook sender did so far.
    pub fn webhook_stats(&self) -> WebhookStats {
        self.inner.outbox.stats()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            requests_total: get(&c.requests_total),
            query_requests: get(&c.query_requests),
            read_requests: get(&c.read_requests),
            batch_requests: get(&c.batch_requests),
            report_requests: get(&c.report_requests),
            token_requests: get(&c.token_requests),
            throttled: get(&c.throttled),
            faults_injected: get(&c.faults_injected),
            max_in_flight_seen: u64::from(self.inner.limiter.max_in_flight_seen()),
            queries_by_entity: lock(&self.inner.by_entity).clone(),
        }
    }

    /// Query texts received, oldest first (the last 10 000).
    pub fn queries(&self) -> Vec<String> {
        lock(&self.inner.queries).iter().cloned().collect()
    }

    /// Zeroes the counters and clears the query log.
    pub fn reset_stats(&self) {
        let c = &self.inner.counters;
        for a in [
            &c.requests_total,
            &c.query_requests,
            &c.read_requests,
            &c.batch_requests,
            &c.token_requests,
            &c.throttled,
            &c.faults_injected,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.inner.limiter.reset_max_in_flight_seen();
        lock(&self.inner.by_entity).clear();
        lock(&self.inner.queries).clear();
    }

    /// Ids (ascending) of `entity` rows whose `MetaData.CreateTime` is in `[start, end)`,
    /// inactive rows included, deleted ones not: what queries on that window return. Unknown
    /// entities have none.
    pub fn ids_created_between(
        &self,
        entity: &str,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Vec<String> {
        Kind::from_any_case(entity).map_or_else(Vec::new, |k| {
            self.inner
                .data
                .ids_created_between(k, start.as_millisecond(), end.as_millisecond())
        })
    }

    /// Ids (ascending) of `entity` rows whose `MetaData.LastUpdatedTime` is in `[from, to)`,
    /// inactive rows included, deleted ones not. Unknown entities have none.
    pub fn ids_updated_between(
        &self,
        entity: &str,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Vec<String> {
        Kind::from_any_case(entity).map_or_else(Vec::new, |k| {
            self.inner
                .data
                .ids_updated_between(k, from.as_millisecond(), to.as_millisecond())
        })
    }

    /// Ids (ascending) of the deleted `entity` rows (see [`delete`](Self::delete)). Unknown
    /// entities have none.
    pub fn deleted_ids(&self, entity: &str) -> Vec<String> {
        Kind::from_any_case(entity).map_or_else(Vec::new, |k| self.inner.data.deleted_ids(k))
    }

    /// The entity as the API renders it now, or `None` if it does not exist or is deleted.
    pub fn entity_json(&self, entity: &str, id: &str) -> Option<serde_json::Value> {
        let kind = Kind::from_any_case(entity)?;
        let id: u64 = id.trim().parse().ok()?;
        let body = render_entity(&self.inner.data, kind, id)?;
        serde_json::from_str(&body).ok()
    }

    pub(crate) fn record_query(&self, text: &str, entity: &str) {
        Counters::bump(&self.inner.counters.query_requests);
        *lock(&self.inner.by_entity)
            .entry(entity.to_owned())
            .or_default() += 1;
        let mut q = lock(&self.inner.queries);
        if q.len() >= QUERY_LOG_LEN {
            q.pop_front();
        }
        q.push_back(text.to_owned());
    }

    pub(crate) fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        lock(&self.inner.tokens)
    }
}
