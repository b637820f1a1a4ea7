//! OAuth against the simulator: rotation persisted before use, 401 → one refresh and one retry,
//! every `invalid_grant` variant terminal, `invalid_client`, single-flight refresh, adopting a
//! token another process stored, and a failed commit keeping the new token unused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use qbo::{BoxFuture, QboClient, QboError, TokenLease, TokenSet, TokenStore, TokenStoreError};
use qbo_sim::SimConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::common::{
    sim_client, sim_credentials, sim_settings, small_config, start_sim, store_with,
};

const QUERY: &str = "SELECT * FROM Item MAXRESULTS 5";

#[tokio::test]
async fn rotated_refresh_token_is_persisted_and_the_old_one_is_dead() {
    let sim = start_sim(small_config()).await;
    let initial = sim.state().current_refresh_token();
    let (client, store) = sim_client(&sim);
    client.ensure_access_token().await.expect("refresh");
    let stored = store.current().await;
    let rotated = stored.refresh_token.expose_secret().to_owned();
    assert_ne!(rotated, initial, "the simulator rotates on every refresh");
    assert_eq!(
        rotated,
        sim.state().current_refresh_token(),
        "the store holds the live refresh token"
    );
    assert!(stored.access_token.is_some() && stored.access_token_expires_at.is_some());
    assert!(stored.refresh_token_expires_at.is_some());
    assert_eq!(client.stats().refreshes, 1);

    // Queries use the cached token: no further refresh.
    for _ in 0..3 {
        let page = client.query(QUERY).await.expect("query");
        assert_eq!(page.rows.len(), 5);
    }
    assert_eq!(sim.state().stats().token_requests, 1);
    assert_eq!(client.stats().refreshes, 1);

    // Another client still holding the initial token gets the terminal invalid_grant.
    let stale = QboClient::new(
        sim_settings(&sim),
        sim_credentials(),
        Arc::new(store_with(&initial)),
    )
    .expect("client");
    let err = stale
        .ensure_access_token()
        .await
        .expect_err("old token must be dead");
    assert!(err.is_invalid_grant() && err.is_terminal_auth(), "{err:?}");
    assert!(
        !err.to_string().contains(&initial),
        "token in message: {err}"
    );
}

#[tokio::test]
async fn expired_access_token_costs_one_refresh_and_one_retry() {
    let sim = start_sim(small_config()).await;
    let (client, store) = sim_client(&sim);
    client.query(QUERY).await.expect("first query");
    let before = store
        .current()
        .await
        .refresh_token
        .expose_secret()
        .to_owned();
    sim.state().expire_access_tokens();
    sim.state().reset_stats();

    let page = client.query(QUERY).await.expect("query after expiry");
    assert_eq!(page.rows.len(), 5);
    let s = client.stats();
    assert_eq!(s.unauthorized_retries, 1);
    assert_eq!(s.refreshes, 2);
    let sim_stats = sim.state().stats();
    assert_eq!(sim_stats.token_requests, 1);
    assert_eq!(
        sim_stats.query_requests, 1,
        "the 401 is answered before the query handler"
    );
    assert_eq!(
        sim_stats.requests_total, 3,
        "401, token call, retried query"
    );
    let after = store
        .current()
        .await
        .refresh_token
        .expose_secret()
        .to_owned();
    assert_ne!(
        before, after,
        "the forced refresh rotated and persisted the refresh token"
    );
    assert_eq!(after, sim.state().current_refresh_token());
}

#[tokio::test]
async fn a_second_401_is_an_error_and_leaks_no_token() {
    // Every access token the simulator issues is born expired.
    let sim = start_sim(SimConfig {
        access_token_ttl: Duration::ZERO,
        ..small_config()
    })
    .await;
    let (client, store) = sim_client(&sim);
    let err = client.query(QUERY).await.expect_err("401 twice");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert!(err.intuit_tid().is_some());
    assert!(!err.is_retryable() && !err.is_terminal_auth());
    assert_eq!(
        sim.state().stats().token_requests,
        2,
        "one refresh, then one forced refresh"
    );
    assert_eq!(client.stats().unauthorized_retries, 1);
    let access = store
        .current()
        .await
        .access_token
        .expect("stored access token");
    let token = access.expose_secret();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            !shown.contains(&token[..20]),
            "access token leaked: {shown}"
        );
    }
    assert!(err.to_string().contains("3200"), "{err}");
}

#[tokio::test]
async fn every_invalid_grant_variant_is_terminal_and_not_retried() {
    let sim = start_sim(small_config()).await;
    let initial = sim.state().current_refresh_token();

    // Never issued: {"error":"invalid_grant"}.
    let c = QboClient::new(
        sim_settings(&sim),
        sim_credentials(),
        Arc::new(store_with("AB11never-issued-token-000000000000000")),
    )
    .expect("client");
    let err = c.ensure_access_token().await.expect_err("unknown token");
    assert!(err.is_invalid_grant(), "{err:?}");
    assert!(
        matches!(
            &err,
            QboError::InvalidGrant {
                description: None,
                status: 400,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        sim.state().stats().token_requests,
        1,
        "invalid_grant is never retried"
    );

    // Replaced by rotation: "Token invalid".
    let (a, _store_a) = crate::common::sim_client(&sim);
    a.ensure_access_token().await.expect("rotate");
    let b = QboClient::new(
        sim_settings(&sim),
        sim_credentials(),
        Arc::new(store_with(&initial)),
    )
    .expect("client");
    let err = b.query(QUERY).await.expect_err("replaced token");
    assert!(
        matches!(&err, QboError::InvalidGrant { description: Some(d), .. } if d == "Token invalid"),
        "{err:?}"
    );
    assert_eq!(sim.state().stats().token_requests, 3);
    assert_eq!(
        sim.state().stats().query_requests,
        0,
        "no API call without a token"
    );

    // Revoked: "Incorrect or invalid refresh token", reached through a 401-forced refresh.
    a.query(QUERY).await.expect("query with the cached token");
    sim.state().revoke_refresh_tokens();
    sim.state().expire_access_tokens();
    let err = a.query(QUERY).await.expect_err("revoked");
    assert!(
        matches!(&err, QboError::InvalidGrant { description: Some(d), .. } if d == "Incorrect or invalid refresh token"),
        "{err:?}"
    );
    assert!(err.is_terminal_auth() && !err.is_retryable());
    assert_eq!(sim.state().stats().token_requests, 4);
    assert!(err.to_string().contains("reconnect"), "{err}");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let sim = start_sim(small_config()).await;
    let mut creds = sim_credentials();
    creds.client_secret = SecretString::from("wrong-secret".to_owned());
    let store = store_with(&sim.state().current_refresh_token());
    let client = QboClient::new(sim_settings(&sim), creds, Arc::new(store)).expect("client");
    let err = client
        .ensure_access_token()
        .await
        .expect_err("invalid_client");
    assert!(
        matches!(err, QboError::InvalidClient { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.is_terminal_auth() && !err.is_invalid_grant());
    assert_eq!(sim.state().stats().token_requests, 1);
    assert!(!format!("{err} {err:?} {client:?}").contains("wrong-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_refresh() {
    let sim = start_sim(small_config()).await;
    // Throttling is not under test here: let all 20 run at once on both sides.
    sim.state().set_limits(qbo_sim::SimLimits::none());
    let mut settings = sim_settings(&sim);
    settings.limits = qbo::RateLimitSettings::unlimited();
    let store = CountingStore {
        inner: store_with(&sim.state().current_refresh_token()),
        locks: Arc::new(AtomicUsize::new(0)),
    };
    let locks = Arc::clone(&store.locks);
    let client = QboClient::new(settings, sim_credentials(), Arc::new(store)).expect("client");
    let run_all = |client: QboClient| async move {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.query(QUERY).await.map(|p| p.rows.len()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("query"), 5);
        }
    };
    run_all(client.clone()).await;
    assert_eq!(
        sim.state().stats().token_requests,
        1,
        "20 cold callers, one refresh"
    );
    assert_eq!(
        locks.load(Ordering::SeqCst),
        1,
        "the others waited in-process, not on the store"
    );

    // All 20 hit a 401 with the same token: still one refresh.
    sim.state().expire_access_tokens();
    run_all(client.clone()).await;
    assert_eq!(
        sim.state().stats().token_requests,
        2,
        "20 callers refused, one refresh"
    );
    assert_eq!(client.stats().refreshes, 2);
}

#[tokio::test]
async fn a_token_stored_by_another_process_is_adopted() {
    let sim = start_sim(small_config()).await;
    let (a, store) = sim_client(&sim);
    a.ensure_access_token().await.expect("a refreshes");
    // A second "process": its own client and cache, the same store.
    let b = QboClient::new(
        sim_settings(&sim),
        sim_credentials(),
        Arc::new(store.clone()),
    )
    .expect("client");
    b.query(QUERY).await.expect("b queries");
    assert_eq!(
        sim.state().stats().token_requests,
        1,
        "b reused a's access token"
    );
    assert_eq!(b.stats().refreshes, 0);

    // When the stored access token is the one just refused, b refreshes instead of adopting it.
    sim.state().expire_access_tokens();
    b.query(QUERY).await.expect("b after expiry");
    assert_eq!(sim.state().stats().token_requests, 2);
    // And a, whose cached token is dead too, adopts b's new token after its 401.
    a.query(QUERY).await.expect("a after expiry");
    assert_eq!(
        sim.state().stats().token_requests,
        2,
        "a adopted b's refreshed token"
    );
    assert_eq!(a.stats().unauthorized_retries, 1);
}

/// A store that counts how often its exclusive section is opened.
struct CountingStore {
    inner: qbo::MemoryTokenStore,
    locks: Arc<AtomicUsize>,
}

impl TokenStore for CountingStore {
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn TokenLease>, TokenStoreError>> {
        self.locks.fetch_add(1, Ordering::SeqCst);
        self.inner.lock()
    }
}

/// A store whose first `fail_first` commits fail (all are counted).
#[derive(Clone)]
struct FailingCommitStore {
    inner: qbo::MemoryTokenStore,
    commits: Arc<AtomicUsize>,
    fail_first: usize,
}

struct FailingLease {
    inner: Box<dyn TokenLease>,
    commits: Arc<AtomicUsize>,
    fail_first: usize,
}

impl TokenStore for FailingCommitStore {
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn TokenLease>, TokenStoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock().await?;
            Ok(Box::new(FailingLease {
                inner,
                commits: Arc::clone(&self.commits),
                fail_first: self.fail_first,
            }) as Box<dyn TokenLease>)
        })
    }
}

impl TokenLease for FailingLease {
    fn tokens(&self) -> &TokenSet {
        self.inner.tokens()
    }

    fn commit(
        self: Box<Self>,
        tokens: TokenSet,
    ) -> BoxFuture<'static, Result<(), TokenStoreError>> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_first {
            return Box::pin(async { Err(TokenStoreError::new("disk full")) });
        }
        self.inner.commit(tokens)
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_persisted_is_never_used() {
    let sim = start_sim(small_config()).await;
    let store = FailingCommitStore {
        inner: store_with(&sim.state().current_refresh_token()),
        commits: Arc::new(AtomicUsize::new(0)),
        fail_first: usize::MAX,
    };
    let commits = Arc::clone(&store.commits);
    let client =
        QboClient::new(sim_settings(&sim), sim_credentials(), Arc::new(store)).expect("client");
    let err = client.query(QUERY).await.expect_err("commit fails");
    assert!(matches!(err, QboError::TokenStore(_)), "{err:?}");
    assert!(err.to_string().contains("disk full"));
    assert!(
        commits.load(Ordering::SeqCst) > 1,
        "the rotated tokens were written again, not dropped"
    );
    assert_eq!(
        sim.state().stats().query_requests,
        0,
        "the unpersisted access token was not used"
    );
    assert_eq!(
        sim.state().stats().requests_total,
        1,
        "only the token call was made"
    );
}

#[tokio::test]
async fn rotated_tokens_whose_first_writes_fail_are_kept_and_written_again() {
    let sim = start_sim(small_config()).await;
    let inner = store_with(&sim.state().current_refresh_token());
    let store = FailingCommitStore {
        inner: inner.clone(),
        commits: Arc::new(AtomicUsize::new(0)),
        fail_first: 3,
    };
    let commits = Arc::clone(&store.commits);
    let client =
        QboClient::new(sim_settings(&sim), sim_credentials(), Arc::new(store)).expect("client");
    client
        .query(QUERY)
        .await
        .expect("the query succeeds once the write sticks");
    assert_eq!(commits.load(Ordering::SeqCst), 4);
    assert_eq!(
        inner.current().await.refresh_token.expose_secret(),
        sim.state().current_refresh_token(),
        "the stored refresh token is the rotated one"
    );
    assert_eq!(
        sim.state().stats().token_requests,
        1,
        "one refresh, never repeated"
    );
}

#[tokio::test]
async fn a_lost_token_answer_after_rotation_ends_in_invalid_grant_that_says_so() {
    let sim = start_sim(small_config()).await;
    // Intuit rotates the refresh token, then its answer is lost on the way (a dropped
    // connection): the retry with the stored token is refused.
    sim.state().set_faults(qbo_sim::FaultConfig {
        token_drop_rate: 1.0,
        ..qbo_sim::FaultConfig::default()
    });
    let store = store_with(&sim.state().current_refresh_token());
    let client =
        QboClient::new(sim_settings(&sim), sim_credentials(), Arc::new(store)).expect("client");
    let err = client
        .query(QUERY)
        .await
        .expect_err("the rotated token is lost");
    assert!(err.is_invalid_grant(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("answer was lost"), "{text}");
    assert!(
        !text.contains(&sim.state().current_refresh_token()),
        "{text}"
    );
    assert_eq!(
        sim.state().stats().token_requests,
        2,
        "one lost answer, one refused retry"
    );
    assert_eq!(sim.state().stats().query_requests, 0);
}
