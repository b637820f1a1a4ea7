//! Response shapes compared with the recorded fixtures.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::*;

pub(crate) fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of the fixture entity appears in some rendered entity with the same JSON type,
/// recursively for nested objects; every rendered key with a fixture counterpart has its type.
pub(crate) fn assert_like_fixture(fixture: &Value, ours: &[Value], path: &str) {
    let f = fixture.as_object().unwrap();
    for (k, fv) in f {
        let with_key: Vec<&Value> = ours.iter().filter_map(|o| o.get(k)).collect();
        assert!(!with_key.is_empty(), "{path}.{k} never rendered");
        for v in &with_key {
            assert_eq!(kind(v), kind(fv), "{path}.{k}: {v} vs fixture {fv}");
        }
        if fv.is_object() && !fv.as_object().unwrap().is_empty() {
            let nested: Vec<Value> = with_key.into_iter().cloned().collect();
            assert_like_fixture(fv, &nested, &format!("{path}.{k}"));
        }
    }
}

pub(crate) fn assert_meta_times(e: &Value) {
    for k in ["CreateTime", "LastUpdatedTime"] {
        let t = e["MetaData"][k].as_str().unwrap();
        assert_eq!(t.len(), 25, "{t}");
        assert!(t.ends_with("-08:00") || t.ends_with("-07:00"), "{t}");
    }
}

#[tokio::test]
async fn page_empty_and_count_envelopes_match_fixtures() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;

    let want = fixture("query_response_customer.json");
    let r = query(&sim, &c, &at, "SELECT * FROM Customer WHERE Id IN ('5', '6', '7', '8', '9', '10') AND Active IN ( true, false ) MAXRESULTS 2 STARTPOSITION 1").await;
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    let tid = r.headers()["intuit_tid"].to_str().unwrap().to_owned();
    assert!(tid.starts_with("1-") && tid.len() > 20, "{tid}");
    let page: Value = r.json().await.unwrap();
    assert_eq!(keys(&page), keys(&want));
    assert_eq!(keys(&page["QueryResponse"]), keys(&want["QueryResponse"]));
    assert_eq!(page["QueryResponse"]["startPosition"], 1);
    assert_eq!(page["QueryResponse"]["maxResults"], 2);
    assert_eq!(ids(&page, "Customer"), ["5", "6"]);
    assert_pacific_millis(page["time"].as_str().unwrap());

    let want = fixture("query_response_empty.json");
    let empty = query_ok(&sim, &c, &at, "SELECT * FROM Customer WHERE Id IN ('5', '6', '7', '8', '9', '10') AND Active IN ( true, false ) MAXRESULTS 2 STARTPOSITION 7").await;
    assert_eq!(keys(&empty), keys(&want));
    assert_eq!(empty["QueryResponse"], want["QueryResponse"]);

    let want = fixture("query_response_count.json");
    let count = query_ok(&sim, &c, &at, "SELECT COUNT(*) FROM Customer").await;
    assert_eq!(keys(&count), keys(&want));
    assert_eq!(keys(&count["QueryResponse"]), keys(&want["QueryResponse"]));
    assert!(count["QueryResponse"]["totalCount"].as_u64().unwrap() > 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn entities_have_fixture_fields_and_types() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    for (entity, fixtures, n) in [
        ("Customer", vec!["customer.json"], 200),
        ("Item", vec!["item.json", "item_service.json"], 40),
        ("Invoice", vec!["invoice.json"], 200),
    ] {
        let active = if entity == "Invoice" {
            ""
        } else {
            " WHERE Active IN (true, false)"
        };
        let page = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity}{active} MAXRESULTS 200"),
        )
        .await;
        let rows = page["QueryResponse"][entity].as_array().unwrap().clone();
        assert_eq!(rows.len(), n);
        for f in fixtures {
            assert_like_fixture(&fixture(f), &rows, entity);
        }
        for r in &rows {
            assert_meta_times(r);
            assert!(r["Id"].as_str().unwrap().parse::<u64>().is_ok());
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn amounts_keep_two_decimals_on_the_wire() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let r = query(&sim, &c, &at, "SELECT * FROM Invoice MAXRESULTS 50").await;
    let body = r.text().await.unwrap();
    let mut seen = 0;
    for part in body.split("\"TotalAmt\":").skip(1) {
        let num: String = part
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let (_, frac) = num.split_once('.').unwrap();
        assert_eq!(frac.len(), 2, "{num}");
        seen += 1;
    }
    assert_eq!(seen, 50);
    sim.shutdown().await;
}

#[tokio::test]
async fn single_read_matches_fixture_shape() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let want = fixture("customer_read_response.json");
    let r = c
        .get(format!(
            "{}/v3/company/9130350000000001/customer/5?minorversion=75",
            sim.api_base_url()
        ))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(keys(&v), keys(&want));
    assert_eq!(v["Customer"]["Id"], "5");
    assert_eq!(
        Some(&v["Customer"]),
        sim.state().entity_json("Customer", "5").as_ref()
    );
    assert_pacific_millis(v["time"].as_str().unwrap());

    let r = c
        .get(format!(
            "{}/v3/company/9130350000000001/invoice/999999",
            sim.api_base_url()
        ))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Fault"]["Error"][0]["code"], "610");
    assert_eq!(v["Fault"]["type"], "ValidationFault");
    sim.shutdown().await;
}

#[tokio::test]
async fn token_and_401_bodies_match_fixtures() {
    let sim = start(small_config()).await;
    let c = client();
    let r = refresh(&sim, &c, "sim-refresh-token-0").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mut want = keys(&fixture("token_response.json"));
    want.remove("id_token");
    assert_eq!(keys(&v), want);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3600);

    sim.state().expire_access_tokens();
    let at = v["access_token"].as_str().unwrap();
    let r = query(&sim, &c, at, "SELECT * FROM Customer").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"Intuit\", error=\"invalid_token\""
    );
    let mut got: Value = r.json().await.unwrap();
    let mut want = fixture("fault_auth_401_token_expired.json");
    let detail = got["fault"]["error"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.starts_with("Token expired: ") && detail.len() < 30,
        "{detail}"
    );
    assert!(!detail.contains(at), "the full token must never be echoed");
    assert!(got["time"].is_u64());
    for v in [&mut got, &mut want] {
        v["fault"]["error"][0]["detail"] = Value::Null;
        v["time"] = Value::Null;
    }
    assert_eq!(got, want);
    sim.shutdown().await;
}
