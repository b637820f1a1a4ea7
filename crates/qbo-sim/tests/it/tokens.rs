//! The token endpoint: rotation, bad clients, revocation, reconnect and access-token expiry.

use std::time::Duration;

use qbo_sim::{Rotation, SimConfig};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn rotation_invalidates_the_replaced_refresh_token() {
    let sim = start(small_config()).await;
    let c = client();
    let r = refresh(&sim, &c, "sim-refresh-token-0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    let v: Value = r.json().await.unwrap();
    let rt1 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, "sim-refresh-token-0");
    assert_eq!(sim.state().current_refresh_token(), rt1);

    let r = refresh(&sim, &c, "sim-refresh-token-0").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        fixture_text("token_invalid_grant_token_invalid.json").trim_end()
    );

    let r = refresh(&sim, &c, "never-issued").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        fixture_text("token_invalid_grant.json").trim_end()
    );

    let r = refresh(&sim, &c, &rt1).await;
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn client_credentials_basic_or_form() {
    let sim = start(small_config()).await;
    let c = client();
    let r = c
        .post(sim.token_url())
        .basic_auth("sim-client-id", Some("wrong"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim-refresh-token-0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_client"}"#);
    let r = c
        .post(sim.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim-refresh-token-0"),
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
async fn revoke_then_reconnect() {
    let sim = start(small_config()).await;
    let c = client();
    let r = c
        .post(format!("{}/__admin/tokens/revoke", sim.api_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = refresh(&sim, &c, "sim-refresh-token-0").await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(v["error_description"], "Incorrect or invalid refresh token");

    let v: Value = c
        .post(format!("{}/__admin/tokens/reconnect", sim.api_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = v["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&sim, &c, fresh).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn rotation_after_age_keeps_the_token() {
    let sim = start(SimConfig {
        rotation: Rotation::AfterAge(Duration::from_secs(3600)),
        ..small_config()
    })
    .await;
    let c = client();
    for _ in 0..3 {
        let v: Value = refresh(&sim, &c, "sim-refresh-token-0")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["refresh_token"], "sim-refresh-token-0");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn access_tokens_expire_after_ttl_and_unknown_ones_fail() {
    let sim = start(SimConfig {
        access_token_ttl: Duration::from_millis(1000),
        ..small_config()
    })
    .await;
    let c = client();
    let at = access_token(&sim, &c).await;
    assert_eq!(
        query(&sim, &c, &at, "SELECT COUNT(*) FROM Item")
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = query(&sim, &c, &at, "SELECT COUNT(*) FROM Item").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["fault"]["type"], "AUTHENTICATION");
    assert_eq!(v["fault"]["error"][0]["code"], "3200");

    let r = query(
        &sim,
        &c,
        "not-a-token-we-ever-issued-at-all",
        "SELECT COUNT(*) FROM Item",
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = c
        .get(query_url(&sim))
        .query(&[("query", "SELECT COUNT(*) FROM Item")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The admin endpoint expires tokens as well.
    let at = access_token(&sim, &c).await;
    let r = c
        .post(format!("{}/__admin/tokens/expire", sim.api_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        query(&sim, &c, &at, "SELECT COUNT(*) FROM Item")
            .await
            .status(),
        401
    );
    sim.shutdown().await;
}
