//! What third-party clients need beyond queries: the OpenID discovery document (intuit-oauth
//! fetches it in `AuthClient.__init__`), the revocation endpoint, CompanyInfo / Preferences, and
//! requests shaped exactly as python-quickbooks and node-quickbooks send them. The real clients
//! are driven by the scripts in `peer-clients/`.

use serde_json::Value;

use qbo_sim::SimConfig;

use crate::common::*;

const REALM: &str = "9130350000000001";

fn url(sim: &qbo_sim::RunningSim, path: &str) -> String {
    format!("{}{path}", sim.api_base_url())
}

async fn get_json(c: &reqwest::Client, at: &str, url: &str) -> (u16, Value) {
    let r = c
        .get(url)
        .query(&[("minorversion", "75")])
        .bearer_auth(at)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn discovery_document_points_at_the_simulator() {
    let sim = start(small_config()).await;
    let c = client();
    for name in [
        "openid_configuration",
        "openid_sandbox_configuration",
        "openid-configuration",
        "openid-sandbox-configuration",
    ] {
        for slash in ["", "/"] {
            let r = c
                .get(url(&sim, &format!("/.well-known/{name}{slash}")))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name}{slash}");
            let doc: Value = r.json().await.unwrap();
            assert_eq!(doc["token_endpoint"], sim.token_url());
            assert_eq!(
                doc["revocation_endpoint"],
                url(&sim, "/v2/oauth2/tokens/revoke")
            );
            assert_eq!(doc["issuer"], "https://oauth.platform.intuit.com/op/v1");
            for k in ["authorization_endpoint", "userinfo_endpoint", "jwks_uri"] {
                assert!(
                    doc[k].as_str().unwrap().starts_with(&sim.api_base_url()),
                    "{k}"
                );
            }
        }
    }
    let jwks: Value = c
        .get(url(&sim, "/op/v1/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, serde_json::json!({ "keys": [] }));
}

#[tokio::test]
async fn revoke_endpoint_takes_json_or_form_and_revokes_the_grant() {
    let sim = start(small_config()).await;
    let c = client();
    let revoke_url = url(&sim, "/v2/oauth2/tokens/revoke");

    // intuit-oauth: JSON body, revoking the refresh token.
    let tok: Value = refresh(&sim, &c, &sim.state().current_refresh_token())
        .await
        .json()
        .await
        .unwrap();
    let (rt, at) = (
        tok["refresh_token"].as_str().unwrap().to_owned(),
        tok["access_token"].as_str().unwrap().to_owned(),
    );
    let r = c
        .post(&revoke_url)
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .json(&serde_json::json!({ "token": rt }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());
    let r = refresh(&sim, &c, &rt).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "Incorrect or invalid refresh token"
    );
    let r = query(&sim, &c, &at, "SELECT * FROM Customer").await;
    assert_eq!(r.status(), 401, "access tokens of a revoked grant fail");

    // node-quickbooks: form body, revoking with the access token.
    let rt = sim.state().reconnect();
    let tok: Value = refresh(&sim, &c, &rt).await.json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap().to_owned();
    let r = c
        .post(&revoke_url)
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rt = tok["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&sim, &c, rt).await.status(), 400);

    // Unknown tokens are fine; bad client credentials and a missing token are not.
    let r = c
        .post(&revoke_url)
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .json(&serde_json::json!({ "token": "never-issued" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(&revoke_url)
        .basic_auth("sim-client-id", Some("wrong"))
        .json(&serde_json::json!({ "token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = c
        .post(&revoke_url)
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        sim.state().stats().token_requests,
        9,
        "4 refreshes, 5 revocations"
    );
}

#[tokio::test]
async fn company_info_and_preferences_reads() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let base = url(&sim, &format!("/v3/company/{REALM}"));

    for id in [REALM, "1"] {
        let (status, v) = get_json(&c, &at, &format!("{base}/companyinfo/{id}")).await;
        assert_eq!(status, 200, "{v}");
        let ci = &v["CompanyInfo"];
        assert_eq!(ci["Id"], "1");
        assert_eq!(ci["CompanyName"], "Sandbox Company_US_1");
        assert_eq!(ci["Country"], "US");
        assert_eq!(ci["CompanyStartDate"], "2024-11-27");
        assert!(ci["NameValue"].as_array().unwrap().len() > 3);
        assert_pacific_millis(v["time"].as_str().unwrap());
    }
    let (status, v) = get_json(&c, &at, &format!("{base}/companyinfo/2")).await;
    assert_eq!(
        (status, &v["Fault"]["Error"][0]["code"]),
        (400, &"610".into())
    );

    let (status, v) = get_json(&c, &at, &format!("{base}/preferences")).await;
    assert_eq!(status, 200, "{v}");
    let p = &v["Preferences"];
    assert_eq!(p["Id"], "1");
    assert_eq!(p["CurrencyPrefs"]["HomeCurrency"]["value"], "USD");
    assert_eq!(
        p["SalesFormsPrefs"]["CustomField"][1]["CustomField"][0]["StringValue"], "Crew #",
        "the invoices' custom field"
    );

    // A known entity without rows reads as "Object Not Found", like a missing id.
    let (status, v) = get_json(&c, &at, &format!("{base}/budget/1")).await;
    assert_eq!(
        (status, &v["Fault"]["Error"][0]["code"]),
        (400, &"610".into())
    );

    // Bearer checks apply as everywhere under /v3.
    let (status, v) = get_json(&c, "x".repeat(40).as_str(), &format!("{base}/preferences")).await;
    assert_eq!(status, 401, "{v}");
    let other = url(&sim, "/v3/company/123/companyinfo/123");
    assert_eq!(get_json(&c, &at, &other).await.0, 403);
}

#[tokio::test]
async fn singletons_answer_queries() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;

    let v = query_ok(&sim, &c, &at, "select * from CompanyInfo").await;
    let rows = v["QueryResponse"]["CompanyInfo"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["CompanyName"], "Sandbox Company_US_1");
    assert_eq!(v["QueryResponse"]["startPosition"], 1);
    assert_eq!(v["QueryResponse"]["maxResults"], 1);

    // hotglue's incremental form; the singleton was last updated before the data starts.
    let q = "SELECT * FROM Preferences WHERE MetaData.LastUpdatedTime >  '2025-12-01T00:00:00Z'   STARTPOSITION 0 MAXRESULTS 100";
    let v = query_ok(&sim, &c, &at, q).await;
    assert_eq!(v["QueryResponse"]["Preferences"][0]["Id"], "1");
    let q = "SELECT * FROM Preferences WHERE MetaData.LastUpdatedTime > '2026-01-01T00:00:00Z'";
    assert_eq!(
        query_ok(&sim, &c, &at, q).await["QueryResponse"],
        serde_json::json!({})
    );
    let q = "SELECT COUNT(*) FROM CompanyInfo WHERE CompanyName = 'Sandbox Company_US_1'";
    assert_eq!(
        query_ok(&sim, &c, &at, q).await["QueryResponse"]["totalCount"],
        1
    );
    let q = "SELECT * FROM companyinfo STARTPOSITION 2";
    assert_eq!(
        query_ok(&sim, &c, &at, q).await["QueryResponse"],
        serde_json::json!({})
    );
    let r = query(&sim, &c, &at, "SELECT * FROM CompanyInfo WHERE Foo = '1'").await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Fault"]["Error"][0]["code"], "4001");
    assert_eq!(
        v["Fault"]["Error"][0]["Detail"],
        "QueryValidationError: Property Foo not found for Entity CompanyInfo"
    );
}

#[tokio::test]
async fn node_quickbooks_query_urls() {
    // node-quickbooks builds `/query?query=select * from customer where …` with its own
    // escaping (%27 for ', %5C for \, %3D for =), lower-case keywords, and adds
    // `minorversion` and `format=json`.
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let name = sim.state().entity_json("Customer", "1").unwrap()["DisplayName"]
        .as_str()
        .unwrap()
        .to_owned();
    let criteria = format!(
        " where DisplayName = '{}' startposition 1 maxresults 1000",
        name.replace('\'', "\\'")
    );
    let mut encoded = String::new();
    for ch in criteria.chars() {
        match ch {
            '%' => encoded.push_str("%25"),
            '\'' => encoded.push_str("%27"),
            '=' => encoded.push_str("%3D"),
            '&' => encoded.push_str("%26"),
            '\\' => encoded.push_str("%5C"),
            '+' => encoded.push_str("%2B"),
            ' ' => encoded.push_str("%20"),
            c if c.is_ascii() => encoded.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    encoded.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    let u = format!(
        "{}/v3/company/{REALM}/query?query=select%20*%20from%20customer{encoded}&minorversion=75&format=json",
        sim.api_base_url()
    );
    let (status, v) = get_json(&c, &at, &u).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v, "Customer"), ["1"]);

    // `{count: true}` keeps the paging clause.
    let u = format!(
        "{}/v3/company/{REALM}/query?query=select%20count(*)%20from%20customer%20startposition%201%20maxresults%201000&format=json",
        sim.api_base_url()
    );
    let (status, v) = get_json(&c, &at, &u).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["QueryResponse"]["totalCount"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn python_quickbooks_post_queries() {
    // python-quickbooks POSTs every query as `application/text`, with `minorversion` in the URL;
    // `filter(Active=True)` writes Python's `True`, and `count()` leaves a trailing space.
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let post = |q: &'static str| {
        c.post(query_url(&sim))
            .query(&[("minorversion", "75")])
            .bearer_auth(&at)
            .header("Content-Type", "application/text")
            .header("Accept", "application/json")
            .body(q)
            .send()
    };
    let v: Value = post("SELECT * FROM Customer WHERE Active = True MAXRESULTS 1000")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active = v["QueryResponse"]["Customer"].as_array().unwrap().len();
    let v: Value = post("SELECT COUNT(*) FROM Customer ")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["QueryResponse"]["totalCount"], active);
    let v: Value = post("SELECT *, Sku FROM Item MAXRESULTS 100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!v["QueryResponse"]["Item"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn change_data_capture() {
    // python-quickbooks `change_data_capture` / node-quickbooks `changeDataCapture`.
    let sim = start(SimConfig {
        customers: 900,
        invoices: 400,
        ..small_config()
    })
    .await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let cdc_url = url(&sim, &format!("/v3/company/{REALM}/cdc"));
    let cdc = |entities: &'static str, since: &'static str| {
        c.get(&cdc_url)
            .query(&[
                ("entities", entities),
                ("changedSince", since),
                ("minorversion", "75"),
            ])
            .bearer_auth(&at)
            .header("Accept", "application/json")
            .send()
    };

    let since = "2026-01-25T00:00:00-08:00";
    let r = cdc("customer,Budget,Invoice", since).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let want = fixture("cdc_response.json");
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        want.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert_pacific_millis(v["time"].as_str().unwrap());
    let sections = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    assert_eq!(sections.len(), 3);
    assert_eq!(sections[1], serde_json::json!({}), "no budgets");
    for (section, entity, extra) in [
        (&sections[0], "Customer", " AND Active IN (true, false)"),
        (&sections[2], "Invoice", ""),
    ] {
        let rows = section[entity].as_array().unwrap();
        assert_eq!(section["startPosition"], 1);
        assert_eq!(section["maxResults"], rows.len());
        let q = format!(
            "SELECT * FROM {entity} WHERE MetaData.LastUpdatedTime >= '{since}'{extra} \
             ORDERBY MetaData.LastUpdatedTime MAXRESULTS 1000"
        );
        let want = query_ok(&sim, &c, &at, &q).await;
        assert_eq!(rows, want["QueryResponse"][entity].as_array().unwrap());
    }
    assert!(
        sections[0]["Customer"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["Active"] == false),
        "deactivations are changes"
    );

    // At most 1000 objects per response, filled in request order.
    let v: Value = cdc("Customer,Invoice", "2020-01-01T00:00:00Z")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sections = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    assert_eq!(sections[0]["maxResults"], 900);
    assert_eq!(sections[1]["maxResults"], 100);

    for (entities, since) in [("Customer", "yesterday"), ("Custmoer", since), ("", since)] {
        let r = cdc(entities, since).await.unwrap();
        assert_eq!(r.status(), 400, "{entities} {since}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Fault"]["type"], "ValidationFault");
        assert_eq!(v["Fault"]["Error"][0]["code"], "2010");
    }
}
