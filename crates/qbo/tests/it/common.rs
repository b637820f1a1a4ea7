//! Shared helpers: start a simulator, build a client for it with fast retries, poll a condition.

use std::sync::Arc;
use std::time::Duration;

use qbo::{
    ClientSettings, Credentials, Environment, MemoryTokenStore, QboClient, RateLimitSettings,
    TokenSet,
};
use qbo_sim::{RunningSim, SimConfig, SimState};
use secrecy::SecretString;
use url::Url;

/// Starts a simulator with `config` on a free local port.
pub(crate) async fn start_sim(config: SimConfig) -> RunningSim {
    qbo_sim::serve(SimState::new(config), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts")
}

/// A small data set (fast to generate) over January 2026.
pub(crate) fn small_config() -> SimConfig {
    SimConfig {
        customers: 200,
        items: 50,
        invoices: 300,
        ..SimConfig::default()
    }
}

/// Settings for `base`/`token` with fast retries (tests must not sleep for real backoffs).
pub(crate) fn fast_settings(base: &str, token: &str) -> ClientSettings {
    let mut s = ClientSettings::for_environment(Environment::Sandbox);
    s.api_base_url = Url::parse(base).expect("base url");
    s.token_url = Url::parse(token).expect("token url");
    s.retry.initial_backoff = Duration::from_millis(5);
    s.retry.max_backoff = Duration::from_millis(40);
    s.retry.throttle_wait = Duration::from_millis(50);
    s.request_timeout = Duration::from_secs(20);
    s.connect_timeout = Duration::from_secs(5);
    s.limits = RateLimitSettings::default();
    s
}

/// Settings pointing at `sim`.
pub(crate) fn sim_settings(sim: &RunningSim) -> ClientSettings {
    fast_settings(&sim.api_base_url(), &sim.token_url())
}

/// Credentials the default simulator config accepts.
pub(crate) fn sim_credentials() -> Credentials {
    let d = SimConfig::default();
    Credentials {
        client_id: d.client_id,
        client_secret: SecretString::from(d.client_secret),
        realm_id: d.realm_id,
    }
}

/// A store seeded with `refresh_token`.
pub(crate) fn store_with(refresh_token: &str) -> MemoryTokenStore {
    MemoryTokenStore::new(TokenSet::from_refresh_token(SecretString::from(
        refresh_token.to_owned(),
    )))
}

/// A client for `sim` with its own store seeded with the simulator's current refresh token.
pub(crate) fn sim_client(sim: &RunningSim) -> (QboClient, MemoryTokenStore) {
    sim_client_with(sim, sim_settings(sim))
}

/// Like [`sim_client`] with explicit settings.
pub(crate) fn sim_client_with(
    sim: &RunningSim,
    settings: ClientSettings,
) -> (QboClient, MemoryTokenStore) {
    let store = store_with(&sim.state().current_refresh_token());
    let client =
        QboClient::new(settings, sim_credentials(), Arc::new(store.clone())).expect("client");
    (client, store)
}

/// Waits (up to 10 s) until `cond` holds.
pub(crate) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Parses an RFC 3339 timestamp.
pub(crate) fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp")
}
