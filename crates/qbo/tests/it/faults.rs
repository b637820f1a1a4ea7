//! Injected faults against the simulator: 5xx (JSON and HTML), truncated bodies and dropped
//! connections are retried to success; persistent failures exhaust the retries with a typed,
//! retryable error; XML 429s are honoured; validation faults, wrong realms and timeouts are
//! classified.

use std::time::Duration;

use qbo::{QboClient, QboError};
use qbo_sim::{FaultConfig, SimConfig};

use crate::common::{
    sim_client, sim_client_with, sim_settings, small_config, start_sim, wait_until,
};

const QUERY: &str = "SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 50";

/// Turns `faults` on, starts one query, lets at least `n` faults hit it, turns faults off, and
/// returns the query's result and the client.
async fn query_through(
    faults: FaultConfig,
    n: u64,
) -> (Result<usize, QboError>, QboClient, qbo_sim::SimStats) {
    let sim = start_sim(small_config()).await;
    let mut settings = sim_settings(&sim);
    settings.retry.max_retries = 50;
    let (client, _store) = sim_client_with(&sim, settings);
    client.ensure_access_token().await.expect("token");
    sim.state().set_faults(faults);
    let c = client.clone();
    let task = tokio::spawn(async move { c.query(QUERY).await.map(|p| p.rows.len()) });
    let state = sim.state().clone();
    wait_until("injected faults", || state.stats().faults_injected >= n).await;
    sim.state().set_faults(FaultConfig::default());
    let result = task.await.expect("task");
    let stats = sim.state().stats();
    (result, client, stats)
}

#[tokio::test]
async fn json_5xx_is_retried_to_success() {
    let faults = FaultConfig {
        error_rate: 1.0,
        html_error_share: 0.0,
        ..FaultConfig::default()
    };
    let (result, client, sim_stats) = query_through(faults, 3).await;
    assert_eq!(result.expect("query succeeds after the 5xx stop"), 50);
    assert!(client.stats().retries >= 3, "{:?}", client.stats());
    assert_eq!(client.stats().requests, client.stats().retries + 1);
    assert!(sim_stats.faults_injected >= 3);
}

#[tokio::test]
async fn html_503_is_retried_to_success() {
    let faults = FaultConfig {
        error_rate: 1.0,
        html_error_share: 1.0,
        ..FaultConfig::default()
    };
    let (result, client, _) = query_through(faults, 3).await;
    assert_eq!(result.expect("query"), 50);
    assert!(client.stats().retries >= 3);
}

#[tokio::test]
async fn truncated_bodies_are_retried_to_success() {
    let faults = FaultConfig {
        truncate_rate: 1.0,
        ..FaultConfig::default()
    };
    let (result, client, _) = query_through(faults, 3).await;
    assert_eq!(result.expect("query"), 50);
    assert!(client.stats().retries >= 3);
}

#[tokio::test]
async fn dropped_connections_are_retried_to_success() {
    let faults = FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    };
    let (result, client, _) = query_through(faults, 3).await;
    assert_eq!(result.expect("query"), 50);
    assert!(client.stats().retries >= 3);
}

#[tokio::test]
async fn persistent_failures_exhaust_retries_with_a_retryable_error() {
    let sim = start_sim(SimConfig {
        faults: FaultConfig {
            error_rate: 1.0,
            html_error_share: 0.5,
            ..FaultConfig::default()
        },
        ..small_config()
    })
    .await;
    let mut settings = sim_settings(&sim);
    settings.retry.max_retries = 3;
    let (client, _store) = sim_client_with(&sim, settings);
    let err = client.query(QUERY).await.expect_err("always 5xx");
    assert!(matches!(err, QboError::Server { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(matches!(err.status(), Some(500 | 502 | 503)));
    assert!(err.intuit_tid().is_some(), "the simulator sends intuit_tid");
    assert_eq!(client.stats().requests, 4);
    assert_eq!(client.stats().retries, 3);
    assert_eq!(sim.state().stats().faults_injected, 4);
}

#[tokio::test]
async fn truncated_bodies_that_never_stop_end_in_a_decode_error() {
    let sim = start_sim(SimConfig {
        faults: FaultConfig {
            truncate_rate: 1.0,
            ..FaultConfig::default()
        },
        ..small_config()
    })
    .await;
    let mut settings = sim_settings(&sim);
    settings.retry.max_retries = 1;
    let (client, _store) = sim_client_with(&sim, settings);
    let err = client.query(QUERY).await.expect_err("always truncated");
    assert!(
        matches!(
            err,
            QboError::Decode {
                retryable: true,
                status: 200,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xml_429_waits_and_retries() {
    let sim = start_sim(SimConfig {
        faults: FaultConfig {
            latency: Duration::from_millis(60),
            ..FaultConfig::default()
        },
        ..small_config()
    })
    .await;
    // The simulator admits one request at a time; the client does not limit itself.
    sim.state().set_limits(qbo_sim::SimLimits {
        max_in_flight: Some(1),
        ..qbo_sim::SimLimits::none()
    });
    let mut settings = sim_settings(&sim);
    settings.limits = qbo::RateLimitSettings::unlimited();
    settings.retry.max_retries = 100;
    let (client, _store) = sim_client_with(&sim, settings);
    client.ensure_access_token().await.expect("token");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.query(QUERY).await.map(|p| p.rows.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("query"), 50);
    }
    let s = client.stats();
    let sim_throttled = sim.state().stats().throttled;
    assert!(
        s.throttled > 0,
        "the simulator should have throttled: {s:?}"
    );
    assert_eq!(s.throttled, sim_throttled, "every XML 429 was recognised");
    assert!(
        s.throttle_wait >= Duration::from_millis(50) * u32::try_from(s.throttled).expect("count")
    );
}

#[tokio::test]
async fn validation_faults_are_not_retried() {
    let sim = start_sim(small_config()).await;
    let (client, _store) = sim_client(&sim);
    let err = client
        .query("SELECT * FROM Custmoer")
        .await
        .expect_err("invalid entity");
    let QboError::Rejected {
        fault, status: 400, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(fault.first_code(), Some("4001"));
    assert!(
        err.to_string()
            .starts_with("QuickBooks rejected the query (4001 Invalid query): "),
        "{err}"
    );
    assert!(err.to_string().contains("intuit_tid="));
    assert!(!err.is_retryable());
    assert_eq!(client.stats().retries, 0);
    assert_eq!(sim.state().stats().query_requests, 1);
}

#[tokio::test]
async fn a_wrong_realm_is_forbidden_with_the_environment_hint() {
    let sim = start_sim(small_config()).await;
    let mut creds = crate::common::sim_credentials();
    creds.realm_id = "1234567890".to_owned();
    let store = crate::common::store_with(&sim.state().current_refresh_token());
    let client =
        QboClient::new(sim_settings(&sim), creds, std::sync::Arc::new(store)).expect("client");
    let err = client.query(QUERY).await.expect_err("403");
    assert!(
        matches!(
            err,
            QboError::Forbidden {
                status: 403,
                hint: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("Check that the environment (sandbox/production) matches your credentials")
    );
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let sim = start_sim(small_config()).await;
    let mut settings = sim_settings(&sim);
    settings.request_timeout = Duration::from_millis(150);
    settings.retry.max_retries = 1;
    let (client, _store) = sim_client_with(&sim, settings);
    client.ensure_access_token().await.expect("token");
    sim.state().set_faults(FaultConfig {
        latency: Duration::from_millis(400),
        ..FaultConfig::default()
    });
    let err = client.query(QUERY).await.expect_err("timeout");
    assert!(matches!(err, QboError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connection_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut settings =
        crate::common::fast_settings(&base, &format!("{base}/oauth2/v1/tokens/bearer"));
    settings.retry.max_retries = 2;
    let client = QboClient::new(
        settings,
        crate::common::sim_credentials(),
        std::sync::Arc::new(crate::common::store_with("rt")),
    )
    .expect("client");
    let err = client.ensure_access_token().await.expect_err("refused");
    assert!(
        matches!(
            err,
            QboError::TokenEndpoint {
                status: None,
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
}
