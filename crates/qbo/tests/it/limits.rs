//! The client-side rate limit keeps the simulator (which enforces the same budget) from ever
//! throttling, and without it the same load is throttled (so the first test can fail).

use std::time::{Duration, Instant};

use qbo::{QboClient, RateLimitSettings};
use qbo_sim::{FaultConfig, SimLimits};

use crate::common::{sim_client_with, sim_settings, small_config, start_sim};

const QUERY: &str = "SELECT * FROM Item MAXRESULTS 3";

async fn fire(client: &QboClient, n: usize) -> Vec<Result<usize, qbo::QboError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.query(QUERY).await.map(|p| p.rows.len()) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_limiter_keeps_the_simulator_from_throttling() {
    let limits = SimLimits {
        requests_per_minute: Some(60),
        requests_per_second: Some(20),
        max_in_flight: Some(5),
    };
    let sim = start_sim(small_config()).await;
    sim.state().set_limits(limits);
    sim.state().set_faults(FaultConfig {
        latency: Duration::from_millis(20),
        latency_jitter: Duration::from_millis(30),
        ..FaultConfig::default()
    });
    let mut settings = sim_settings(&sim);
    settings.limits = RateLimitSettings {
        requests_per_minute: Some(60),
        requests_per_second: Some(20),
        max_in_flight: Some(5),
    };
    settings.retry.max_retries = 0; // any 429 would fail a query
    let (client, _store) = sim_client_with(&sim, settings);
    client.ensure_access_token().await.expect("token");
    sim.state().reset_stats();

    let started = Instant::now();
    let results = fire(&client, 60).await;
    assert!(results.iter().all(|r| matches!(r, Ok(3))), "{results:?}");
    let sim_stats = sim.state().stats();
    assert_eq!(sim_stats.throttled, 0);
    assert_eq!(sim_stats.query_requests, 60);
    assert!(sim_stats.max_in_flight_seen <= 5, "{sim_stats:?}");
    let s = client.stats();
    assert_eq!((s.throttled, s.retries, s.requests), (0, 0, 60));
    // 60 requests at 20 per second-window (counted until 1 s + guard after completion) need
    // at least two full windows.
    assert!(
        started.elapsed() >= (Duration::from_secs(1) + qbo::SECOND_GUARD) * 2,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn without_the_limiter_the_same_load_is_throttled() {
    let sim = start_sim(small_config()).await;
    sim.state().set_limits(SimLimits {
        requests_per_minute: Some(60),
        requests_per_second: Some(20),
        max_in_flight: Some(5),
    });
    sim.state().set_faults(FaultConfig {
        latency: Duration::from_millis(20),
        ..FaultConfig::default()
    });
    let mut settings = sim_settings(&sim);
    settings.limits = RateLimitSettings::unlimited();
    settings.retry.max_retries = 0;
    let (client, _store) = sim_client_with(&sim, settings);
    client.ensure_access_token().await.expect("token");
    let results = fire(&client, 30).await;
    let throttled = results
        .iter()
        .filter(|r| matches!(r, Err(qbo::QboError::Throttled { .. })))
        .count();
    assert!(
        throttled > 0,
        "the simulator should throttle an unlimited burst"
    );
    assert_eq!(client.stats().throttled, sim.state().stats().throttled);
}
