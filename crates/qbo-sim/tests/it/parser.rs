//! The query grammar over a table of valid and invalid statements, including every query quoted
//! in the facts file, checked both with the parser and over HTTP.

use qbo_sim::query::{Op, Value as Lit, parse_query};
use serde_json::Value;

use crate::common::*;

/// Statements that must parse and run (200). Placeholders from the facts file are filled in.
const VALID: &[&str] = &[
    // Fixtures / recorded traffic.
    "SELECT * FROM Customer WHERE Id IN ('5', '6', '7', '8', '9', '10') AND Active IN ( true, false ) MAXRESULTS 2 STARTPOSITION 1",
    "SELECT * FROM Customer WHERE Id IN ('5', '6', '7', '8', '9', '10') AND Active IN ( true, false ) MAXRESULTS 2 STARTPOSITION 7",
    "SELECT COUNT(*) FROM Customer",
    "SELECT * FROM Vendor",
    "SELECT * FROM Vendor WHERE Active IN (true, false)",
    "SELECT * FROM Customer WHERE DisplayName = 'Amy\\'s Bird Sanctuary'",
    "SELECT * FROM Customer MAXRESULTS 1000 STARTPOSITION 1",
    "SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 1000",
    // Datetime literal forms.
    "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2011-08-10T10:20:30-0700'",
    "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2013-01-01T14:50:22-08:00'",
    "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2016-06-02T00:00:00Z'",
    "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2020-08-18'",
    "SELECT * FROM Invoice WHERE MetaData.CreateTime >= '2026-01-05T00:00:00+00:00' AND MetaData.CreateTime < '2026-01-06T00:00:00+00:00'",
    // singer-io.
    "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '2026-01-01T00:00:00Z' AND Active IN (true, false) ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 1000",
    "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2026-01-01T00:00:00Z' ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 1000",
    // hotglue (double spaces, STARTPOSITION 0, lower-case keywords).
    "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >  '2026-01-01T00:00:00+00:00'   STARTPOSITION 0 MAXRESULTS 100",
    "SELECT * FROM Customer where Active = false and MetaData.LastUpdatedTime >  '2026-01-01T00:00:00+00:00'   STARTPOSITION 101 MAXRESULTS 100",
    // Airbyte.
    "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2026-01-01T00:00:00+00:00' AND Metadata.LastUpdatedTime <= '2026-01-31T00:00:00+00:00' AND Active IN (true, false) ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 200",
    // python-quickbooks.
    "SELECT * FROM Invoice WHERE TxnDate > '2026-01-10' ORDERBY TxnDate DESC STARTPOSITION 1 MAXRESULTS 100",
    "SELECT *, Sku FROM Item",
    "SELECT * FROM Item MAXRESULTS 100",
    "SELECT COUNT(*) FROM Customer WHERE Active IN (true, false) AND MetaData.CreateTime >= '2026-01-01T00:00:00Z' AND MetaData.CreateTime < '2026-01-02T00:00:00Z'",
    // node-quickbooks: lower-case entity and keywords.
    "select * from customer where DisplayName = 'Amy\\'s Bird Sanctuary' startposition 1 maxresults 1000",
    "select count(*) from invoice",
    // Other operators and values.
    "select * from Customer where DisplayName like '%\\'s%' orderby DisplayName",
    "SELECT * FROM Item WHERE Type IN ('Service', 'Inventory') AND UnitPrice >= 10.50",
    "SELECT * FROM Invoice WHERE CustomerRef = '3' AND DocNumber = '1001'",
    "SELECT * FROM Customer WHERE Id = 5",
    "SELECT * FROM Customer WHERE SyncToken >= '1' ORDER BY Id DESC",
    "SELECT * FROM Customer WHERE Metadata.CreateTime <= '2026-01-15T12:00:00.000-08:00'",
];

/// Statements refused with 400: (statement, fault code, Message, start of Detail).
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "SELECT * FROM Custmoer",
        "4001",
        "Invalid query",
        "QueryValidationError: invalid context declaration: Custmoer",
    ),
    (
        "SELECT * FROM Customer MAXRESULTS 1001",
        "4001",
        "Invalid query",
        "QueryValidationError: value 1001 is too large. Max allowed value is 1000",
    ),
    (
        "SELECT * FROM Customer MAXRESULTS 1500",
        "4001",
        "Invalid query",
        "QueryValidationError: value 1500 is too large. Max allowed value is 1000",
    ),
    (
        "SELECT * FROM Customer WHERE Nope = '1'",
        "4001",
        "Invalid query",
        "QueryValidationError: Property Nope not found for Entity Customer",
    ),
    (
        "SELECT * FROM Invoice WHERE Active = true",
        "4001",
        "Invalid query",
        "QueryValidationError: Property Active not found",
    ),
    (
        "SELECT * FROM Customer ORDER BY Nope",
        "4001",
        "Invalid query",
        "QueryValidationError: Property Nope not found",
    ),
    (
        "SELECT * FROM Customer WHERE MetaData.CreateTime > 'yesterday'",
        "4001",
        "Invalid query",
        "QueryValidationError: ",
    ),
    (
        "",
        "4000",
        "Error parsing query",
        "QueryParserError: The query provided was empty",
    ),
    (
        "SELECT * FROM Vendor WHERE DisplayName = 'Cutlery 'R Us'",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered \" <IDENTIFIER> \"R \"\"",
    ),
    (
        "SELECT * FROM Customer WHERE Id = '1' OR Id = '2'",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered \" \"or\" \"OR \"\"",
    ),
    (
        "SELECT * FROM Customer WHERE DisplayName LIKE %foo%",
        "4000",
        "Error parsing query",
        "QueryParserError: Invalid content. Lexical error",
    ),
    (
        "SELECT * FROM Customer WHERE DisplayName = 'unterminated",
        "4000",
        "Error parsing query",
        "QueryParserError: Invalid content. Lexical error",
    ),
    (
        "SELECT * FROM Customer WHERE Id != '1'",
        "4000",
        "Error parsing query",
        "QueryParserError: Invalid content. Lexical error",
    ),
    (
        "SELECT * FROM Customer STARTPOSITION -1",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered",
    ),
    (
        "SELECT * FROM Customer MAXRESULTS 10 MAXRESULTS 10",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered",
    ),
    (
        "SELECT * FROM Customer ORDER Id",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered",
    ),
    (
        "SELECT FROM Customer",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered",
    ),
    (
        "SELECT * FROM Customer WHERE",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered \"<EOF>\"",
    ),
    (
        "SELECT * FROM Customer;",
        "4000",
        "Error parsing query",
        "QueryParserError: Invalid content. Lexical error",
    ),
    (
        "DELETE FROM Customer",
        "4000",
        "Error parsing query",
        "QueryParserError: Encountered",
    ),
];

#[test]
fn parser_accepts_valid_table() {
    for q in VALID {
        assert!(parse_query(q).is_ok(), "{q}: {:?}", parse_query(q));
    }
    let q = parse_query(VALID[5]).unwrap();
    assert_eq!(q.conditions[0].op, Op::Eq);
    assert_eq!(
        q.conditions[0].value,
        Lit::Str("Amy's Bird Sanctuary".to_owned())
    );
    let q = parse_query("SELECT * FROM Customer MAXRESULTS 1000 STARTPOSITION 3").unwrap();
    assert_eq!((q.start_position, q.max_results), (Some(3), Some(1000)));
}

#[tokio::test]
async fn valid_table_runs_over_http() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    for q in VALID {
        let v = query_ok(&sim, &c, &at, q).await;
        assert!(v["QueryResponse"].is_object(), "{q}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_table_answers_validation_faults() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let fixture = fixture("fault_invalid_query.json");
    for (q, code, message, detail) in INVALID {
        let r = query(&sim, &c, &at, q).await;
        assert_eq!(r.status(), 400, "{q}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json;charset=utf-8"
        );
        let v: Value = r.json().await.unwrap();
        let e = &v["Fault"]["Error"][0];
        assert_eq!(v["Fault"]["type"], "ValidationFault", "{q}");
        assert_eq!(e["code"], *code, "{q}: {v}");
        assert_eq!(e["Message"], *message, "{q}");
        assert!(
            e["Detail"].as_str().unwrap().starts_with(detail),
            "{q}: {}",
            e["Detail"]
        );
        let mut got_keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        let mut want_keys: Vec<&String> = fixture["Fault"]["Error"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        got_keys.sort();
        want_keys.sort();
        assert_eq!(got_keys, want_keys, "{q}");
        assert_pacific_millis(v["time"].as_str().unwrap());
    }
    // The recorded fault, byte for byte apart from `time`.
    let r = query(&sim, &c, &at, "SELECT * FROM Custmoer").await;
    let mut v: Value = r.json().await.unwrap();
    let mut want = fixture.clone();
    v["time"] = Value::Null;
    want["time"] = Value::Null;
    assert_eq!(v, want);
    sim.shutdown().await;
}

#[tokio::test]
async fn post_application_text_equals_get() {
    let sim = start(small_config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let q = "SELECT * FROM Customer WHERE DisplayName LIKE '%\\'%' AND Active IN (true, false) MAXRESULTS 5";
    let get = query_ok(&sim, &c, &at, q).await;
    let post: Value = c
        .post(format!("{}?minorversion=75", query_url(&sim)))
        .bearer_auth(&at)
        .header("Content-Type", "application/text")
        .body(q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["QueryResponse"], post["QueryResponse"]);
    assert_eq!(ids(&get, "Customer").len(), 5);
    assert_eq!(sim.state().queries(), vec![q.to_owned(), q.to_owned()]);
    sim.shutdown().await;
}
