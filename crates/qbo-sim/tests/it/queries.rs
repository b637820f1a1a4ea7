//! Query behaviour: inactive rows, paging, windows, realm, determinism and admin mutations.

use qbo_sim::SimState;
use qbo_sim::query::escape_literal;
use serde_json::Value;

use crate::common::*;

fn count(v: &Value) -> u64 {
    v["QueryResponse"]["totalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn inactive_rows_hidden_unless_active_is_constrained() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    for entity in ["Customer", "Item"] {
        let default =
            count(&query_ok(&sim, &c, &at, &format!("SELECT COUNT(*) FROM {entity}")).await);
        let all = count(
            &query_ok(
                &sim,
                &c,
                &at,
                &format!("SELECT COUNT(*) FROM {entity} WHERE Active IN (true, false)"),
            )
            .await,
        );
        let inactive = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} WHERE Active = false MAXRESULTS 1000"),
        )
        .await;
        let rows = inactive["QueryResponse"][entity].as_array().unwrap();
        assert!(!rows.is_empty(), "{entity}");
        assert!(rows.iter().all(|r| r["Active"] == false));
        assert_eq!(default + rows.len() as u64, all, "{entity}");
        let shown = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} MAXRESULTS 1000"),
        )
        .await;
        assert!(
            shown["QueryResponse"][entity]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["Active"] == true)
        );
    }
    // Transactions have no Active flag: everything shows.
    let invoices = count(&query_ok(&sim, &c, &at, "SELECT COUNT(*) FROM Invoice").await);
    assert_eq!(invoices, 500);
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_a_window_is_exact_and_past_the_end_is_empty() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let (start, end) = ("2026-01-07T00:00:00Z", "2026-01-12T00:00:00Z");
    let want =
        sim.state()
            .ids_created_between("Customer", start.parse().unwrap(), end.parse().unwrap());
    assert!(want.len() > 14, "window too small: {}", want.len());
    let mut got = Vec::new();
    let mut pos = 1;
    loop {
        let q = format!(
            "SELECT * FROM Customer WHERE MetaData.CreateTime >= '{start}' AND MetaData.CreateTime < '{end}' \
             AND Active IN (true, false) STARTPOSITION {pos} MAXRESULTS 7"
        );
        let v = query_ok(&sim, &c, &at, &q).await;
        let page = ids(&v, "Customer");
        if page.is_empty() {
            assert_eq!(v["QueryResponse"], serde_json::json!({}));
            break;
        }
        assert_eq!(v["QueryResponse"]["startPosition"], pos);
        assert_eq!(v["QueryResponse"]["maxResults"], page.len());
        pos += page.len();
        got.extend(page);
    }
    assert_eq!(got, want);
    // A count over the same window agrees.
    let v = query_ok(
        &sim,
        &c,
        &at,
        &format!(
            "SELECT COUNT(*) FROM Customer WHERE MetaData.CreateTime >= '{start}' AND MetaData.CreateTime < '{end}' AND Active IN (true, false)"
        ),
    )
    .await;
    assert_eq!(count(&v), want.len() as u64);
    // Default MAXRESULTS is 100.
    let v = query_ok(&sim, &c, &at, "SELECT * FROM Invoice").await;
    assert_eq!(v["QueryResponse"]["maxResults"], 100);
    sim.shutdown().await;
}

#[tokio::test]
async fn order_by_last_updated_time_is_sorted() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let v = query_ok(
        &sim,
        &c,
        &at,
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2025-01-01T00:00:00Z' AND Active IN (true, false) \
         ORDER BY Metadata.LastUpdatedTime ASC MAXRESULTS 1000",
    )
    .await;
    let times: Vec<jiff::Timestamp> = v["QueryResponse"]["Customer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["MetaData"]["LastUpdatedTime"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(times.len(), 300);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    sim.shutdown().await;
}

#[tokio::test]
async fn special_names_round_trip_through_url_encoded_queries() {
    // The default 1000 customers include these names.
    let sim = start(qbo_sim::SimConfig {
        customers: 1000,
        ..small_config()
    })
    .await;
    let c = client();
    let at = access_token(&sim, &c).await;
    for name in ["Amy's Bird Sanctuary", "Müller & Söhne", "Café \"El Sol\""] {
        let q = format!(
            "SELECT * FROM Customer WHERE DisplayName = {} AND Active IN (true, false)",
            escape_literal(name)
        );
        let v = query_ok(&sim, &c, &at, &q).await;
        let rows = v["QueryResponse"]["Customer"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{name}");
        assert!(rows[0]["DisplayName"].as_str().unwrap().starts_with(name));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_realm_is_an_authorization_fault() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let r = c
        .get(format!("{}/v3/company/123/query", sim.api_base_url()))
        .query(&[("query", "SELECT * FROM Customer")])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Fault"]["type"], "AuthorizationFault");
    assert_eq!(v["Fault"]["Error"][0]["code"], "3100");
    sim.shutdown().await;
}

#[tokio::test]
async fn low_minor_versions_are_answered() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let r = c
        .get(query_url(&sim))
        .query(&[
            ("query", "SELECT COUNT(*) FROM Item"),
            ("minorversion", "4"),
        ])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn lower_case_entity_names_answer_with_the_canonical_key() {
    // node-quickbooks sends `select * from customer` and works against production.
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let v = query_ok(
        &sim,
        &c,
        &at,
        "select * from customer startposition 1 maxresults 3",
    )
    .await;
    assert_eq!(ids(&v, "Customer").len(), 3);
    sim.shutdown().await;
}

fn without_time(body: &str) -> String {
    let at = body.rfind(",\"time\":").unwrap();
    body[..at].to_owned()
}

#[tokio::test]
async fn same_seed_same_bytes() {
    let a = start(small_config()).await;
    let b = start(small_config()).await;
    let other = start(qbo_sim::SimConfig {
        seed: 7,
        ..small_config()
    })
    .await;
    let c = client();
    let (ta, tb, to) = (
        access_token(&a, &c).await,
        access_token(&b, &c).await,
        access_token(&other, &c).await,
    );
    for q in [
        "SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 1000",
        "SELECT * FROM Item WHERE Active IN (true, false) MAXRESULTS 1000",
        "SELECT * FROM Invoice MAXRESULTS 1000",
    ] {
        let x = query(&a, &c, &ta, q).await.text().await.unwrap();
        let y = query(&b, &c, &tb, q).await.text().await.unwrap();
        let z = query(&other, &c, &to, q).await.text().await.unwrap();
        assert_eq!(without_time(&x), without_time(&y), "{q}");
        assert_ne!(without_time(&x), without_time(&z), "{q}");
    }
    a.shutdown().await;
    b.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn mutate_bumps_sync_token_and_last_updated_but_not_create_time() {
    let sim = start(small_config()).await;
    let c = client();
    let state: &SimState = sim.state();
    for (entity, id, field) in [
        ("Customer", "10", "Notes"),
        ("Item", "3", "Description"),
        ("Invoice", "42", "PrivateNote"),
    ] {
        let before = state.entity_json(entity, id).unwrap();
        let r = c
            .post(format!(
                "{}/__admin/entities/{entity}/{id}/mutate",
                sim.api_base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{entity}");
        let after: Value = r.json().await.unwrap();
        assert_eq!(Some(&after), state.entity_json(entity, id).as_ref());
        let sync = |v: &Value| v["SyncToken"].as_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(sync(&after), sync(&before) + 1, "{entity}");
        assert_eq!(
            after["MetaData"]["CreateTime"],
            before["MetaData"]["CreateTime"]
        );
        let updated: jiff::Timestamp = after["MetaData"]["LastUpdatedTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (jiff::Timestamp::now() - updated).get_seconds().abs() < 5,
            "{updated}"
        );
        assert_ne!(after[field], before[field], "{entity}.{field}");
    }
    assert!(state.mutate("Customer", "999999").is_err());
    assert!(state.mutate("Budget", "1").is_err());
    let r = c
        .post(format!(
            "{}/__admin/entities/Customer/0/mutate",
            sim.api_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn deactivate_hides_row_from_default_queries() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let active_ids = |v: &Value| ids(v, "Customer");
    let q = "SELECT * FROM Customer WHERE Id IN ('1', '2', '3', '4', '5', '6', '7', '8')";
    let before = active_ids(&query_ok(&sim, &c, &at, q).await);
    let victim = before[0].clone();
    let r = c
        .post(format!(
            "{}/__admin/entities/Customer/{victim}/deactivate",
            sim.api_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = active_ids(&query_ok(&sim, &c, &at, q).await);
    assert!(!after.contains(&victim));
    assert_eq!(after.len() + 1, before.len());
    let e = sim.state().entity_json("Customer", &victim).unwrap();
    assert_eq!(e["Active"], false);
    assert!(e["DisplayName"].as_str().unwrap().ends_with(" (deleted)"));
    assert!(sim.state().deactivate("Invoice", "1").is_err());
    sim.shutdown().await;
}
