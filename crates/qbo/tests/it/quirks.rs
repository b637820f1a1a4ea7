//! Quirks scripted with the stub server: a JSON 429 with `Retry-After`, faults carried by HTTP
//! 200, a token endpoint that fails then recovers, and a token response without a new refresh
//! token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use qbo::QboError;
use secrecy::ExposeSecret;

use crate::stub::{Stub, StubResponse};

const THROTTLE_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/qbo/fault_throttle.json"
));
const THROTTLE_XML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/qbo/fault_throttle.xml"
));
const INVALID_QUERY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/qbo/fault_invalid_query.json"
));

/// Answers the first `n` API calls with `first`, then one customer.
fn first_n_then_ok(
    n: u32,
    first: StubResponse,
) -> impl Fn(&crate::stub::StubRequest) -> StubResponse {
    let calls = Arc::new(AtomicU32::new(0));
    move |req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else if calls.fetch_add(1, Ordering::SeqCst) < n {
            first.clone()
        } else {
            StubResponse::customers(&[1], 1)
        }
    }
}

#[tokio::test]
async fn json_429_honours_retry_after() {
    let stub = Stub::start(first_n_then_ok(
        1,
        StubResponse::json(429, THROTTLE_JSON).header("Retry-After", "1"),
    ))
    .await;
    let (client, _store) = stub.client(1000);
    client.ensure_access_token().await.expect("token");
    let started = Instant::now();
    let page = client.query("SELECT * FROM Customer").await.expect("query");
    assert_eq!(page.rows.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    let s = client.stats();
    assert_eq!((s.throttled, s.retries), (1, 1));
    assert_eq!(s.throttle_wait, Duration::from_secs(1));
}

#[tokio::test]
async fn a_503_that_says_when_to_come_back_is_not_retried_sooner() {
    let stub = Stub::start(first_n_then_ok(
        1,
        StubResponse::html(
            503,
            "<html><title>503 Service Temporarily Unavailable</title></html>",
        )
        .header("Retry-After", "1"),
    ))
    .await;
    let (client, _store) = stub.client(1000);
    client.ensure_access_token().await.expect("token");
    let started = Instant::now();
    let page = client.query("SELECT * FROM Customer").await.expect("query");
    assert_eq!(page.rows.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 503's Retry-After: 1 was not honoured (fast backoff retried after {:?})",
        started.elapsed()
    );
    let s = client.stats();
    assert_eq!(
        (s.throttled, s.retries),
        (0, 1),
        "an outage is not a throttle"
    );
}

#[tokio::test]
async fn xml_throttle_on_http_200_is_still_a_throttle() {
    let stub = Stub::start(first_n_then_ok(2, StubResponse::json(200, THROTTLE_XML))).await;
    let (client, _store) = stub.client(1000);
    let page = client.query("SELECT * FROM Customer").await.expect("query");
    assert_eq!(page.rows.len(), 1);
    let s = client.stats();
    assert_eq!((s.throttled, s.retries), (2, 2));
    assert_eq!(
        s.throttle_wait,
        Duration::from_millis(100),
        "throttle_wait (50 ms) per 429 without Retry-After"
    );
}

#[tokio::test]
async fn a_validation_fault_on_http_200_is_rejected_without_retry() {
    let stub = Stub::start(first_n_then_ok(5, StubResponse::json(200, INVALID_QUERY))).await;
    let (client, _store) = stub.client(1000);
    let err = client
        .query("SELECT * FROM Customer")
        .await
        .expect_err("fault");
    assert!(
        matches!(err, QboError::Rejected { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.intuit_tid(), Some("1-stub-tid"));
    assert_eq!(stub.api_requests().len(), 1);
}

#[tokio::test]
async fn token_endpoint_5xx_is_retried_and_a_missing_refresh_token_keeps_the_old_one() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let stub = Stub::start(move |req| {
        if !req.is_token() {
            return StubResponse::customers(&[1], 1);
        }
        match c.fetch_add(1, Ordering::SeqCst) {
            0 => StubResponse::json(503, "<html><head><title>503 Service Temporarily Unavailable</title></head></html>"),
            1 => StubResponse::json(500, ""),
            _ => StubResponse::json(200, r#"{"access_token":"stub-access-token-without-rotation","token_type":"bearer","expires_in":3600}"#),
        }
    })
    .await;
    let (client, store) = stub.client(1000);
    client
        .ensure_access_token()
        .await
        .expect("refresh after two 5xx");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stored = store.current().await;
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "stub-refresh-token-1",
        "kept when none came back"
    );
    assert_eq!(
        stored
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .as_deref(),
        Some("stub-access-token-without-rotation")
    );
    // The refresh request was a form post with the stored refresh token.
    let token_call = stub
        .requests()
        .into_iter()
        .find(|r| r.is_token())
        .expect("token call");
    assert!(token_call.body.contains("grant_type=refresh_token"));
    assert!(
        token_call
            .body
            .contains("refresh_token=stub-refresh-token-1")
    );
    client.query("SELECT * FROM Customer").await.expect("query");
    assert_eq!(client.stats().refreshes, 1);
}

#[tokio::test]
async fn a_body_over_the_cap_fails_the_request_without_retrying() {
    let ids: Vec<u32> = (1..=200).collect();
    let stub = Stub::start(move |req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::customers(&ids, 1)
        }
    })
    .await;
    let (client, _store) = stub.client_with(|s| s.max_response_bytes = 4 * 1024);
    let err = client
        .query("SELECT * FROM Customer")
        .await
        .expect_err("the body is over the cap");
    assert!(matches!(err, QboError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(stub.api_requests().len(), 1, "not retried");
    // Under the cap the same answer reads.
    let (client, _store) = stub.client_with(|s| s.max_response_bytes = 1024 * 1024);
    assert_eq!(
        client
            .query("SELECT * FROM Customer")
            .await
            .expect("reads")
            .rows
            .len(),
        200
    );
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_the_token_never_goes_elsewhere() {
    // Another server that would receive whatever a followed redirect sends.
    let elsewhere = Stub::start(|_| StubResponse::json(200, "{}")).await;
    let target = format!(
        "{}/v3/company/4620816365/query?query=x",
        elsewhere.token_url()
    );
    let stub = Stub::start(move |req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::json(302, "").header("Location", &target)
        }
    })
    .await;
    let (client, _store) = stub.client(1000);
    let err = client
        .query("SELECT * FROM Customer")
        .await
        .expect_err("a redirect is refused");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert!(!err.is_retryable());
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}

const CDC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/qbo/cdc_response.json"
));

/// The Estimate changes since 2015-10-01 a stub answering every CDC request with `body` gives,
/// with the stub and the client that asked.
async fn estimate_changes(body: String) -> (Vec<qbo::CdcChange>, Stub, qbo::QboClient) {
    let stub = Stub::start(move |req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::json(200, body.clone())
        }
    })
    .await;
    let (client, _store) = stub.client(1000);
    let since: jiff::Timestamp = "2015-10-01T00:00:00Z".parse().expect("time");
    let changes = client.cdc(qbo::Entity::Estimate, since).await.expect("cdc");
    (changes, stub, client)
}

#[tokio::test]
async fn cdc_reads_changes_and_deletions_of_one_entity() {
    // Intuit's recorded answer, plus one deleted Estimate in the shape deletions take.
    let deleted = r#"{"domain":"QBO","status":"Deleted","Id":"77","MetaData":{"LastUpdatedTime":"2015-10-09T08:00:00-07:00"}},"#;
    let body = CDC.replacen("\"Estimate\":[", &format!("\"Estimate\":[{deleted}"), 1);
    let (changes, stub, client) = estimate_changes(body).await;
    let since: jiff::Timestamp = "2015-10-01T00:00:00Z".parse().expect("time");
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["77", "48", "46", "41", "100"]);
    assert!(changes[0].deleted && changes[1..].iter().all(|c| !c.deleted));
    assert_eq!(
        changes[0].updated,
        Some("2015-10-09T15:00:00Z".parse().expect("time"))
    );
    // Other entities in the answer are not this entity's changes.
    assert!(
        client
            .cdc(qbo::Entity::Invoice, since)
            .await
            .expect("cdc")
            .is_empty()
    );
    let request = &stub.api_requests()[0];
    assert!(request.path.ends_with("/cdc"), "{request:?}");
}

#[tokio::test]
async fn a_body_cut_off_mid_way_is_retried_and_its_error_names_the_intuit_tid() {
    let stub = Stub::start(|req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::cut_short(r#"{"QueryResponse":{"Customer":[{"Id":"1""#, 1000)
        }
    })
    .await;
    let (client, _store) = stub.client_with(|s| s.retry.max_retries = 1);
    let err = client
        .query("SELECT * FROM Customer")
        .await
        .expect_err("cut off");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("intuit_tid=1-stub-tid"), "{err}");
    assert_eq!(stub.api_requests().len(), 2, "retried once");
}

#[tokio::test]
async fn a_cdc_answer_keyed_in_another_casing_still_carries_the_changes() {
    let body = CDC.replacen("\"Estimate\":[", "\"estimate\":[", 1);
    assert_ne!(body, CDC, "the fixture names Estimate");
    let (changes, _stub, _client) = estimate_changes(body).await;
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["48", "46", "41", "100"]);
}

#[tokio::test]
async fn a_cdc_fault_is_an_error_not_an_empty_answer() {
    let stub = Stub::start(|req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::json(400, INVALID_QUERY)
        }
    })
    .await;
    let (client, _store) = stub.client(1000);
    let since: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
    let err = client
        .cdc(qbo::Entity::Customer, since)
        .await
        .expect_err("a fault");
    assert!(!err.is_retryable(), "{err}");
}
