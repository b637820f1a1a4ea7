//! Shared helpers: start a simulator, get an access token, run queries, read fixtures.

use std::path::PathBuf;

use qbo_sim::{RunningSim, SimConfig, SimLimits, SimState, serve};
use serde_json::Value;

/// A small, unthrottled configuration.
pub(crate) fn small_config() -> SimConfig {
    SimConfig {
        customers: 300,
        items: 40,
        invoices: 500,
        limits: SimLimits::none(),
        ..SimConfig::default()
    }
}

pub(crate) async fn start(config: SimConfig) -> RunningSim {
    serve(SimState::new(config), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub(crate) fn client() -> reqwest::Client {
    qbo_sim::webhooks::http_client_builder().build().unwrap()
}

/// Refreshes with the current refresh token; returns the token response JSON.
pub(crate) async fn refresh(sim: &RunningSim, c: &reqwest::Client, rt: &str) -> reqwest::Response {
    c.post(sim.token_url())
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .header("Accept", "application/json")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn access_token(sim: &RunningSim, c: &reqwest::Client) -> String {
    let rt = sim.state().current_refresh_token();
    let v: Value = refresh(sim, c, &rt).await.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

pub(crate) fn query_url(sim: &RunningSim) -> String {
    format!("{}/v3/company/9130350000000001/query", sim.api_base_url())
}

pub(crate) async fn query(
    sim: &RunningSim,
    c: &reqwest::Client,
    at: &str,
    q: &str,
) -> reqwest::Response {
    c.get(query_url(sim))
        .query(&[("query", q), ("minorversion", "75")])
        .bearer_auth(at)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// Runs a query that must succeed; returns the JSON body.
pub(crate) async fn query_ok(sim: &RunningSim, c: &reqwest::Client, at: &str, q: &str) -> Value {
    let r = query(sim, c, at, q).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Ids of the entity array of a QueryResponse (empty when absent).
pub(crate) fn ids(v: &Value, entity: &str) -> Vec<String> {
    v["QueryResponse"][entity]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["Id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/qbo")
        .join(name)
}

pub(crate) fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

pub(crate) fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

/// Checks a QBO `time` value: Pacific offset and milliseconds, e.g. `2020-09-29T06:04:49.352-07:00`.
pub(crate) fn assert_pacific_millis(t: &str) {
    assert_eq!(t.len(), 29, "{t}");
    assert_eq!(&t[19..20], ".", "{t}");
    assert!(t.ends_with("-08:00") || t.ends_with("-07:00"), "{t}");
    assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
}
