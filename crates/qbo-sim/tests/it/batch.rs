//! `POST /v3/company/{realm}/batch`: per-item answers identical to `/query`, the 30-item
//! limit, and throttling that weighs a batch by its items.

use qbo_sim::{RunningSim, SimConfig, SimLimits};
use serde_json::{Value, json};

use crate::common::*;

fn batch_url(sim: &RunningSim) -> String {
    format!("{}/v3/company/9130350000000001/batch", sim.api_base_url())
}

async fn post_batch(
    sim: &RunningSim,
    c: &reqwest::Client,
    at: &str,
    body: &Value,
) -> (u16, String) {
    let r = c
        .post(batch_url(sim))
        .query(&[("minorversion", "75")])
        .bearer_auth(at)
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

fn queries(qs: &[&str]) -> Value {
    let items: Vec<Value> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| json!({ "bId": format!("bid{}", i + 1), "Query": q }))
        .collect();
    json!({ "BatchItemRequest": items })
}

/// A `/query` body without its braces and `time`: `"QueryResponse":{…}` or `"Fault":{…}`.
fn member_of(body: &str) -> &str {
    let end = body.rfind(",\"time\":").unwrap();
    &body[1..end]
}

#[tokio::test]
async fn items_answer_exactly_as_query_does() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let qs = [
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '2020-01-01T00:00:00Z' AND Active IN (true, false) ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 100",
        "SELECT COUNT(*) FROM Item WHERE Active IN (true, false)",
        "SELECT * FROM Invoice STARTPOSITION 100000 MAXRESULTS 10",
        "SELECT * FROM Budget WHERE Active IN (true, false)",
        "select * from CompanyInfo",
        "SELECT * FROM Customer WHERE",
        "SELECT * FROM Custmoer",
        "SELECT * FROM Item MAXRESULTS 1001",
    ];
    let (status, text) = post_batch(&sim, &c, &at, &queries(&qs)).await;
    assert_eq!(status, 200, "{text}");
    for (i, q) in qs.iter().enumerate() {
        let r = query(&sim, &c, &at, q).await;
        let single = r.text().await.unwrap();
        // Byte for byte: the item is the /query member followed by its bId.
        let item = format!("{{{},\"bId\":\"bid{}\"}}", member_of(&single), i + 1);
        if single.starts_with("{\"QueryResponse\"") {
            assert!(text.contains(&item), "{q}: {item}\nnot in\n{text}");
        } else {
            // Faults: same content (no `time` inside items).
            let v: Value = serde_json::from_str(&text).unwrap();
            let mut want: Value = serde_json::from_str(&single).unwrap();
            want.as_object_mut().unwrap().remove("time");
            want["bId"] = json!(format!("bid{}", i + 1));
            assert_eq!(v["BatchItemResponse"][i], want, "{q}");
        }
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    let want = fixture("batch_response.json");
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        want.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert_pacific_millis(v["time"].as_str().unwrap());
    let items = v["BatchItemResponse"].as_array().unwrap();
    assert_eq!(items.len(), qs.len());
    assert_eq!(ids(&items[0], "Customer").len(), 100);
    assert_eq!(items[1]["QueryResponse"]["totalCount"], 40);
    assert_eq!(items[2]["QueryResponse"], json!({}));
    assert_eq!(items[3]["QueryResponse"], json!({}));
    assert_eq!(items[4]["QueryResponse"]["CompanyInfo"][0]["Id"], "1");
    for (i, code) in [(5, "4000"), (6, "4001"), (7, "4001")] {
        assert_eq!(items[i]["Fault"]["type"], "ValidationFault");
        assert_eq!(items[i]["Fault"]["Error"][0]["code"], code);
    }
    // The recorded item shape: payload first, then bId.
    assert!(text.contains("},\"bId\":\"bid1\"}"));
    let stats = sim.state().stats();
    assert_eq!(stats.batch_requests, 1);
    // Each endpoint logs every query but the MAXRESULTS one, refused while parsing.
    assert_eq!(stats.query_requests, 2 * (qs.len() as u64 - 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn writes_malformed_items_and_bad_requests() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let body = json!({ "BatchItemRequest": [
        { "bId": "w1", "operation": "create", "Customer": { "DisplayName": "New" } },
        { "bId": "q1", "Query": 42 },
        { "bId": 7, "Query": "SELECT COUNT(*) FROM Customer" },
        "nonsense",
    ]});
    let (status, text) = post_batch(&sim, &c, &at, &body).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let items = v["BatchItemResponse"].as_array().unwrap();
    assert_eq!(items[0]["bId"], "w1");
    assert_eq!(
        items[0]["Fault"]["Error"][0]["Message"],
        "Unsupported Operation"
    );
    assert_eq!(items[1]["Fault"]["Error"][0]["code"], "2010");
    assert_eq!(items[2]["bId"], 7);
    assert!(items[2]["QueryResponse"]["totalCount"].as_u64().unwrap() > 0);
    assert_eq!(items[3]["Fault"]["Error"][0]["code"], "2010");
    assert!(items[3].get("bId").is_none());

    // An empty batch is an empty answer.
    let (status, text) = post_batch(&sim, &c, &at, &json!({ "BatchItemRequest": [] })).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["BatchItemResponse"],
        json!([])
    );

    // 30 items at most.
    let thirty = vec!["SELECT COUNT(*) FROM Item"; 30];
    let (status, text) = post_batch(&sim, &c, &at, &queries(&thirty)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["BatchItemResponse"].as_array().unwrap().len(), 30);
    let (status, text) = post_batch(
        &sim,
        &c,
        &at,
        &queries(&[thirty.as_slice(), &["SELECT * FROM Item"]].concat()),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["Fault"]["type"], "ValidationFault");
    assert_eq!(v["Fault"]["Error"][0]["code"], "1040");
    assert_eq!(
        v["Fault"]["Error"][0]["Message"],
        "Batch size exceeds allowed limit"
    );

    // A body that is not JSON.
    let r = c
        .post(batch_url(&sim))
        .bearer_auth(&at)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Fault"]["Error"][0]["code"], "2010");

    // Auth and realm checks as everywhere under /v3.
    let (status, _) =
        post_batch(&sim, &c, &"x".repeat(40), &queries(&["SELECT * FROM Item"])).await;
    assert_eq!(status, 401);
    let r = c
        .post(format!("{}/v3/company/42/batch", sim.api_base_url()))
        .bearer_auth(&at)
        .json(&queries(&["SELECT * FROM Item"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    sim.shutdown().await;
}

#[tokio::test]
async fn items_count_against_the_rate_limits() {
    let sim = start(SimConfig {
        batch_requests_per_minute: Some(3),
        ..small_config()
    })
    .await;
    let c = client();
    let at = access_token(&sim, &c).await;
    sim.state().set_limits(SimLimits {
        requests_per_minute: Some(10),
        ..SimLimits::none()
    });
    let q = "SELECT COUNT(*) FROM Item";
    let xml_429 = |status: u16, text: &str| {
        assert_eq!(status, 429, "{text}");
        assert!(text.contains("<Error code=\"3001\">"), "{text}");
    };
    assert_eq!(post_batch(&sim, &c, &at, &queries(&[q; 8])).await.0, 200);
    // Three more items do not fit in 10: the whole batch is throttled, and not counted.
    let (status, text) = post_batch(&sim, &c, &at, &queries(&[q; 3])).await;
    xml_429(status, &text);
    assert_eq!(query(&sim, &c, &at, q).await.status(), 200);
    let (status, text) = post_batch(&sim, &c, &at, &queries(&[q; 2])).await;
    xml_429(status, &text);
    assert_eq!(post_batch(&sim, &c, &at, &queries(&[q])).await.0, 200);
    assert_eq!(query(&sim, &c, &at, q).await.status(), 429, "10 of 10 used");

    // Batch requests per minute, on their own (limit 3: two admitted so far).
    sim.state().set_limits(SimLimits::none());
    assert_eq!(post_batch(&sim, &c, &at, &queries(&[q])).await.0, 200);
    let (status, text) = post_batch(&sim, &c, &at, &queries(&[q])).await;
    xml_429(status, &text);
    assert_eq!(
        query(&sim, &c, &at, q).await.status(),
        200,
        "plain queries pass"
    );
    // The admin API shows and changes the batch limit.
    let limits_url = format!("{}/__admin/limits", sim.api_base_url());
    let v: Value = c
        .get(&limits_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["batch_requests_per_minute"], 3);
    let v: Value = c
        .put(&limits_url)
        .json(&json!({ "requests_per_minute": null, "max_in_flight": null, "batch_requests_per_minute": null }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["batch_requests_per_minute"], Value::Null);
    assert_eq!(post_batch(&sim, &c, &at, &queries(&[q])).await.0, 200);
    let stats = sim.state().stats();
    assert_eq!(stats.throttled, 4);
    assert_eq!(stats.batch_requests, 4);
    sim.shutdown().await;
}
