//! The authorization-code flow ("Connect to QuickBooks"): the consent redirect, the code
//! exchange at the token endpoint, and everything that must fail.

use std::collections::HashMap;
use std::time::Duration;

use qbo_sim::{RunningSim, SimConfig};
use reqwest::{StatusCode, Url, redirect};
use serde_json::Value;

use crate::common::*;

const REDIRECT_URI: &str = "https://app.example.com/qbo/callback?tenant=7";
const SCOPE: &str = "com.intuit.quickbooks.accounting";

/// A client that shows redirects instead of following them, as a test of the app's side needs.
fn no_redirects() -> reqwest::Client {
    qbo_sim::webhooks::http_client_builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn authorize(
    sim: &RunningSim,
    c: &reqwest::Client,
    params: &[(&str, &str)],
) -> reqwest::Response {
    c.get(sim.authorize_url())
        .query(params)
        .send()
        .await
        .unwrap()
}

fn consent_params<'a>(redirect_uri: &'a str, state: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("client_id", "sim-client-id"),
        ("response_type", "code"),
        ("scope", SCOPE),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ]
}

/// The redirect's target and its query parameters.
fn location(r: &reqwest::Response) -> (Url, HashMap<String, String>) {
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().unwrap();
    let url = Url::parse(loc).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (url, params)
}

/// Runs the consent step and returns the code.
async fn consent(sim: &RunningSim, c: &reqwest::Client, redirect_uri: &str) -> String {
    let r = authorize(sim, c, &consent_params(redirect_uri, "s")).await;
    location(&r).1["code"].clone()
}

async fn exchange(
    sim: &RunningSim,
    c: &reqwest::Client,
    code: &str,
    redirect_uri: &str,
) -> reqwest::Response {
    c.post(sim.token_url())
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .header("Accept", "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .unwrap()
}

async fn assert_invalid_grant(r: reqwest::Response) {
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        fixture_text("token_invalid_grant.json").trim_end()
    );
}

#[tokio::test]
async fn connect_flow_end_to_end() {
    let sim = start(small_config()).await;
    let c = no_redirects();
    let state = "csrf 1/2&x=ü+%";

    // Consent: 302 back to the app with code, state (verbatim) and realmId, keeping the
    // redirect URI's own query.
    let r = authorize(&sim, &c, &consent_params(REDIRECT_URI, state)).await;
    let (url, params) = location(&r);
    assert_eq!(
        &url.as_str()[..url.as_str().find('?').unwrap()],
        "https://app.example.com/qbo/callback"
    );
    assert!(url.as_str().contains("?tenant=7&code="), "{url}");
    assert_eq!(params["tenant"], "7");
    assert_eq!(params["state"], state);
    assert_eq!(params["realmId"], sim.state().realm_id());
    assert_eq!(params["realmId"], "9130350000000001");
    let code = params["code"].clone();
    assert!(code.len() >= 40, "{code}");

    // Exchange: the same answer as a refresh.
    let r = exchange(&sim, &c, &code, REDIRECT_URI).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    let tok: Value = r.json().await.unwrap();
    let keys: Vec<&String> = tok.as_object().unwrap().keys().collect();
    let mut want = fixture("token_response.json");
    want.as_object_mut().unwrap().remove("id_token");
    assert_eq!(keys, want.as_object().unwrap().keys().collect::<Vec<_>>());
    assert_eq!(tok["token_type"], "bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert_eq!(tok["x_refresh_token_expires_in"], 8_726_400);
    let at = tok["access_token"].as_str().unwrap();
    let rt = tok["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(sim.state().current_refresh_token(), rt);

    // The access token reads the company.
    let v = query_ok(&sim, &c, at, "SELECT COUNT(*) FROM Customer").await;
    assert!(v["QueryResponse"]["totalCount"].as_u64().unwrap() > 0);

    // Reconnecting replaced the refresh token the simulator started with.
    let r = refresh(&sim, &c, "sim-refresh-token-0").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The new one refreshes (and rotates) as usual.
    let r = refresh(&sim, &c, &rt).await;
    assert_eq!(r.status(), 200);
    let rt2 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A code works once; replaying it also revokes the grant it produced.
    assert_invalid_grant(exchange(&sim, &c, &code, REDIRECT_URI).await).await;
    let r = refresh(&sim, &c, &rt2).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "Incorrect or invalid refresh token"
    );
    assert_eq!(
        query(&sim, &c, at, "SELECT COUNT(*) FROM Customer")
            .await
            .status(),
        401
    );

    // The redirect URI must be the authorization request's; a mismatch does not use the code up.
    let code = consent(&sim, &c, REDIRECT_URI).await;
    for wrong in [
        "https://app.example.com/qbo/callback",
        "https://app.example.com/qbo/callback?tenant=8",
        "http://app.example.com/qbo/callback?tenant=7",
    ] {
        assert_invalid_grant(exchange(&sim, &c, &code, wrong).await).await;
    }
    let r = exchange(&sim, &c, &code, REDIRECT_URI).await;
    assert_eq!(r.status(), 200);

    // Unknown codes, bad clients, missing parameters, unknown grant types.
    assert_invalid_grant(exchange(&sim, &c, "AB11never-issued", REDIRECT_URI).await).await;
    let code = consent(&sim, &c, REDIRECT_URI).await;
    let r = c
        .post(sim.token_url())
        .basic_auth("sim-client-id", Some("wrong-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_client"}"#);
    for form in [
        vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ],
        vec![
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT_URI),
        ],
    ] {
        let r = c
            .post(sim.token_url())
            .basic_auth("sim-client-id", Some("sim-client-secret"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_request"}"#);
    }
    let r = c
        .post(sim.token_url())
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"unsupported_grant_type"}"#
    );
    // Client credentials in the form work for the exchange too.
    let r = c
        .post(sim.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn consent_screen_errors() {
    let sim = start(small_config()).await;
    let c = no_redirects();
    let html_400 = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "text/html;charset=utf-8");
        assert!(r.headers().get("location").is_none());
        r.text().await.unwrap()
    };

    // No redirect when the client or the redirect URI cannot be trusted.
    let mut p = consent_params(REDIRECT_URI, "s");
    p[0].1 = "someone-else";
    let page = html_400(authorize(&sim, &c, &p).await).await;
    assert!(page.contains("client_id"), "{page}");
    let p: Vec<_> = consent_params(REDIRECT_URI, "s")
        .into_iter()
        .filter(|(k, _)| *k != "redirect_uri")
        .collect();
    let page = html_400(authorize(&sim, &c, &p).await).await;
    assert!(
        page.contains("The redirect_uri query parameter value is invalid"),
        "{page}"
    );
    for bad in ["ftp://app.example.com/cb", "/callback", "https://app/cb#x"] {
        html_400(authorize(&sim, &c, &consent_params(bad, "s")).await).await;
    }

    // Other errors go back to the app, with the state.
    let mut p = consent_params(REDIRECT_URI, "st");
    p[1].1 = "token";
    let (_, q) = location(&authorize(&sim, &c, &p).await);
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "st");
    assert!(!q.contains_key("code"));
    let mut p = consent_params(REDIRECT_URI, "st");
    p[2].1 = "openid email";
    let (_, q) = location(&authorize(&sim, &c, &p).await);
    assert_eq!(q["error"], "invalid_scope");
    let mut p = consent_params(REDIRECT_URI, "st");
    p[2].1 = "openid com.intuit.quickbooks.accounting email";
    let (_, q) = location(&authorize(&sim, &c, &p).await);
    assert!(
        q.contains_key("code"),
        "several scopes, accounting among them"
    );

    // The user cancels (admin toggle).
    let admin = format!("{}/__admin/authorize", sim.api_base_url());
    let r = c
        .put(&admin)
        .json(&serde_json::json!({ "deny": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = c.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(v, serde_json::json!({ "deny": true }));
    let (url, q) = location(&authorize(&sim, &c, &consent_params(REDIRECT_URI, "a b")).await);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "a b");
    assert_eq!(q["tenant"], "7");
    assert!(
        url.as_str().ends_with("&error=access_denied&state=a%20b"),
        "{url}"
    );
    sim.state().set_authorize_deny(false);
    assert!(!sim.state().authorize_deny());

    // Without a state, none comes back; the /appcenter alias answers the same.
    let p: Vec<_> = consent_params("http://localhost:3000/cb", "")
        .into_iter()
        .filter(|(k, _)| *k != "state")
        .collect();
    let r = c
        .get(format!("{}/appcenter/connect/oauth2", sim.api_base_url()))
        .query(&p)
        .send()
        .await
        .unwrap();
    let (url, q) = location(&r);
    assert!(url.as_str().starts_with("http://localhost:3000/cb?code="));
    assert!(!q.contains_key("state"));

    // The discovery document names this endpoint.
    let doc: Value = c
        .get(format!(
            "{}/.well-known/openid_configuration",
            sim.api_base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["authorization_endpoint"], sim.authorize_url());
    sim.shutdown().await;
}

#[tokio::test]
async fn registered_redirect_uris_and_code_expiry() {
    let sim = start(SimConfig {
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        auth_code_ttl: Duration::from_millis(300),
        ..small_config()
    })
    .await;
    let c = no_redirects();
    let r = authorize(
        &sim,
        &c,
        &consent_params("https://app.example.com/qbo/callback", "s"),
    )
    .await;
    assert_eq!(r.status(), 400, "not registered exactly");
    let code = consent(&sim, &c, REDIRECT_URI).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_invalid_grant(exchange(&sim, &c, &code, REDIRECT_URI).await).await;
    let code = consent(&sim, &c, REDIRECT_URI).await;
    assert_eq!(exchange(&sim, &c, &code, REDIRECT_URI).await.status(), 200);
    sim.shutdown().await;
}
