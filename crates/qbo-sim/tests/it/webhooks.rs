//! Webhooks from the simulator: its changes are collected into one signed delivery, retried on
//! non-2xx until accepted, in either format, duplicated and reordered on request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use qbo_sim::{WebhookConfig, WebhookFormat};
use serde_json::Value;

use crate::common::{client, small_config, start};

const TOKEN: &str = "verifier-token-for-tests";

/// What the receiver saw: every POST's signature and body; it refuses the first `fail` ones.
#[derive(Default)]
struct Seen {
    posts: Vec<(String, String)>,
    fail: usize,
}

type Shared = Arc<Mutex<Seen>>;

async fn receive(State(seen): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    let sig = headers
        .get("intuit-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.posts.push((sig, body));
    if seen.posts.len() <= seen.fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn receiver(fail: usize) -> (String, Shared) {
    let seen: Shared = Arc::new(Mutex::new(Seen {
        posts: Vec::new(),
        fail,
    }));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

async fn wait_for_posts(seen: &Shared, n: usize) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let posts = seen.lock().unwrap().posts.clone();
        if posts.len() >= n {
            return posts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} posts of {n}",
            posts.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hmac_b64(body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn changes_are_batched_signed_and_retried_until_accepted() {
    let sim = start(small_config()).await;
    let (url, seen) = receiver(2).await;
    sim.state().set_webhooks(WebhookConfig {
        url: Some(url),
        verifier_token: TOKEN.into(),
        format: WebhookFormat::CloudEvents,
        batch_ms: 300,
        ..WebhookConfig::default()
    });
    for id in ["1", "2", "3"] {
        sim.state().mutate("Invoice", id).unwrap();
    }
    sim.state().delete("Invoice", "4").unwrap();
    let posts = wait_for_posts(&seen, 3).await;
    // Refused twice, then accepted: the same delivery each time, signed over its exact body.
    assert!(posts.iter().all(|p| p == &posts[0]), "{posts:?}");
    let (sig, body) = &posts[0];
    assert_eq!(sig, &hmac_b64(body));
    let events: Value = serde_json::from_str(body).unwrap();
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "qbo.invoice.updated.v1",
            "qbo.invoice.updated.v1",
            "qbo.invoice.updated.v1",
            "qbo.invoice.deleted.v1"
        ]
    );
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["intuitaccountid"] == sim.state().realm_id())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = sim.state().webhook_stats();
    assert_eq!(
        (
            stats.changes,
            stats.delivered,
            stats.attempts,
            stats.abandoned
        ),
        (4, 1, 3, 0)
    );
    assert_eq!(
        seen.lock().unwrap().posts.len(),
        3,
        "nothing sent after it was accepted"
    );
    // Webhooks are not QuickBooks requests: the counters of the API do not move.
    assert_eq!(sim.state().stats().requests_total, 0);
}

#[tokio::test]
async fn the_admin_api_sets_legacy_deliveries_duplicated_and_reordered() {
    let sim = start(small_config()).await;
    let (url, seen) = receiver(0).await;
    let http = client();
    let admin = format!("{}/__admin/webhooks", sim.api_base_url());
    let put = http
        .put(&admin)
        .json(
            &serde_json::json!({"url": url, "verifier_token": TOKEN, "format": "legacy",
                                  "duplicate": true, "reorder": true, "batch_ms": 300}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let shown = http.get(&admin).send().await.unwrap().text().await.unwrap();
    assert!(!shown.contains(TOKEN), "the token is never shown: {shown}");
    assert!(shown.contains("\"legacy\""), "{shown}");
    for id in ["1", "2", "3", "4"] {
        sim.state().mutate("Customer", id).unwrap();
    }
    let posts = wait_for_posts(&seen, 4).await;
    let ids: Vec<Vec<String>> = posts
        .iter()
        .map(|(sig, body)| {
            assert_eq!(sig, &hmac_b64(body));
            let v: Value = serde_json::from_str(body).unwrap();
            let n = &v["eventNotifications"][0];
            assert_eq!(n["realmId"], sim.state().realm_id());
            n["dataChangeEvent"]["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    assert_eq!(
                        (&e["name"], &e["operation"]),
                        (&Value::from("Customer"), &Value::from("Update"))
                    );
                    e["id"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .collect();
    let later = vec!["3".to_owned(), "4".to_owned()];
    let first = vec!["1".to_owned(), "2".to_owned()];
    assert_eq!(ids, [later.clone(), later, first.clone(), first]);
}
