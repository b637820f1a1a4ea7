//! Throttling and injected faults, each observed over real HTTP.

use std::time::{Duration, Instant};

use qbo_sim::{FaultConfig, SimLimits};
use serde_json::Value;

use crate::common::*;

const Q: &str = "SELECT * FROM Customer MAXRESULTS 20";

#[tokio::test]
async fn per_second_limit_answers_the_xml_429() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_limits(SimLimits {
        requests_per_second: Some(3),
        ..SimLimits::none()
    });
    let mut throttled = None;
    for _ in 0..6 {
        let r = query(&sim, &c, &at, Q).await;
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("no 429 within 6 fast requests at 3/s");
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert!(!r.headers().contains_key("retry-after"));
    let body = r.text().await.unwrap();
    let fixture = fixture_text("fault_throttle.xml");
    let strip_time = |s: &str| {
        let start = s.find("time=\"").unwrap() + 6;
        let end = start + s[start..].find('"').unwrap();
        format!("{}{}", &s[..start], &s[end..])
            .trim_end()
            .to_owned()
    };
    assert_eq!(strip_time(&body), strip_time(&fixture));
    assert!(sim.state().stats().throttled >= 1);
    // After a second the window has room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(query(&sim, &c, &at, Q).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn per_minute_limit_and_runtime_disable() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let r = c
        .put(format!("{}/__admin/limits", sim.api_base_url()))
        .json(&serde_json::json!({"requests_per_minute": 3, "requests_per_second": null, "max_in_flight": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let statuses = futures_statuses(&sim, &c, &at, 4).await;
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    sim.state().set_limits(SimLimits::none());
    assert_eq!(query(&sim, &c, &at, Q).await.status(), 200);
    sim.shutdown().await;
}

async fn futures_statuses(
    sim: &qbo_sim::RunningSim,
    c: &reqwest::Client,
    at: &str,
    n: usize,
) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(query(sim, c, at, Q).await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn in_flight_limit_with_latency() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_limits(SimLimits {
        max_in_flight: Some(2),
        ..SimLimits::none()
    });
    sim.state().set_faults(FaultConfig {
        latency: Duration::from_millis(800),
        ..FaultConfig::default()
    });
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (c, at, url) = (c.clone(), at.clone(), query_url(&sim));
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .query(&[("query", Q)])
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 429, 429, 429]);
    assert!(sim.state().stats().max_in_flight_seen >= 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_is_added() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_faults(FaultConfig {
        latency: Duration::from_millis(250),
        latency_jitter: Duration::from_millis(50),
        ..FaultConfig::default()
    });
    let t = Instant::now();
    assert_eq!(query(&sim, &c, &at, Q).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(250));
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_json_and_html() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });
    for _ in 0..10 {
        let r = query(&sim, &c, &at, Q).await;
        assert!([500, 502, 503].contains(&r.status().as_u16()));
        let v: Value = r.json().await.unwrap();
        assert!(
            ["SystemFault", "SERVICE"].contains(&v["Fault"]["type"].as_str().unwrap()),
            "{v}"
        );
    }
    // Set over the admin API this time.
    let r = c
        .put(format!("{}/__admin/faults", sim.api_base_url()))
        .json(&serde_json::json!({"error_rate": 1.0, "html_error_share": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = query(&sim, &c, &at, Q).await;
    assert!([500, 502, 503].contains(&r.status().as_u16()));
    assert_eq!(r.headers()["content-type"], "text/html");
    assert!(r.text().await.unwrap().contains("Avi Vantage"));
    let got: Value = c
        .get(format!("{}/__admin/faults", sim.api_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["html_error_share"], 1.0);
    assert_eq!(got["latency_ms"], 0);
    assert!(sim.state().stats().faults_injected >= 11);
    sim.shutdown().await;
}

#[tokio::test]
async fn truncated_bodies_are_200_with_broken_json() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let full = query(&sim, &c, &at, Q).await.text().await.unwrap();
    sim.state().set_faults(FaultConfig {
        truncate_rate: 1.0,
        ..FaultConfig::default()
    });
    let r = query(&sim, &c, &at, Q).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.len() < full.len());
    assert!(full.starts_with(&body[..body.len().min(40)]));
    assert!(serde_json::from_str::<Value>(&body).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_give_no_response() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    for _ in 0..3 {
        let err = c
            .get(query_url(&sim))
            .query(&[("query", Q)])
            .bearer_auth(&at)
            .send()
            .await
            .expect_err("a dropped connection must not produce a response");
        assert!(!err.is_status(), "{err:?}");
    }
    sim.state().set_faults(FaultConfig::default());
    assert_eq!(query(&sim, &c, &at, Q).await.status(), 200);
    let stats = sim.state().stats();
    assert_eq!(stats.faults_injected, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_and_query_log() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    query_ok(&sim, &c, &at, "SELECT * FROM Customer").await;
    query_ok(&sim, &c, &at, "SELECT COUNT(*) FROM Invoice").await;
    let _ = query(&sim, &c, &at, "SELECT * FROM Custmoer").await;
    let stats: Value = c
        .get(format!("{}/__admin/stats", sim.api_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests_total"], 4);
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["query_requests"], 3);
    assert_eq!(stats["queries_by_entity"]["Customer"], 1);
    assert_eq!(stats["queries_by_entity"]["Custmoer"], 1);
    let log: Vec<String> = c
        .get(format!("{}/__admin/queries", sim.api_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    let r = c
        .post(format!("{}/__admin/reset", sim.api_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.state().stats(), qbo_sim::SimStats::default());
    assert!(sim.state().queries().is_empty());
    sim.shutdown().await;
}
