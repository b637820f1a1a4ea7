//! Every real body in `shared/fixtures/qbo/` through the response, fault and token parsers, plus
//! the bodies the spec describes but no fixture holds (HTML 503, empty 5xx, truncated JSON, 403
//! 3100, `invalid_client`, …).

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::value::RawValue;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/qbo/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn meta(status: u16) -> ResponseMeta {
    ResponseMeta {
        status,
        intuit_tid: Some("1-test-tid".to_owned()),
        retry_after: None,
    }
}

fn raw_of(json: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("raw value")
}

/// The fixtures each test below covers; the directory must hold exactly these (plus PROVENANCE).
const COVERED: &[&str] = &[
    "batch_response.json",
    "cdc_response.json",
    "customer.json",
    "customer_read_response.json",
    "delete_response_invoice.json",
    "fault_auth_401_token_expired.json",
    "fault_invalid_query.json",
    "fault_throttle.json",
    "fault_throttle.xml",
    "fault_validation.json",
    "fault_validation_duplicate_taxrate.json",
    "invoice.json",
    "invoice_create_response.json",
    "item.json",
    "item_service.json",
    "query_response_count.json",
    "query_response_customer.json",
    "query_response_empty.json",
    "token_invalid_grant.json",
    "token_invalid_grant_token_invalid.json",
    "token_response.json",
];

#[test]
fn every_fixture_file_is_covered() {
    assert_every_fixture_covered(FIXTURES, COVERED);
}

/// Fails when a file in `dir` (but its `PROVENANCE.md`) is not in `covered`, or the reverse.
pub(crate) fn assert_every_fixture_covered(dir: &str, covered: &[&str]) {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "PROVENANCE.md")
        .collect();
    let covered: BTreeSet<String> = covered.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        on_disk, covered,
        "a fixture was added or removed in {dir}: cover it in its fixture_tests.rs"
    );
}

#[test]
fn customer_page_keeps_rows_byte_for_byte() {
    let body = fixture("query_response_customer.json");
    let page = interpret_query_response(&meta(200), &body, Some("Customer")).expect("page");
    assert_eq!(page.entity_key.as_deref(), Some("Customer"));
    assert_eq!(page.start_position, Some(1));
    assert_eq!(page.max_results, Some(2));
    assert_eq!(page.total_count, None);
    assert_eq!(page.intuit_tid.as_deref(), Some("1-test-tid"));
    let ids: Vec<_> = page
        .rows
        .iter()
        .map(|r| (r.id.as_str(), r.sync_token.as_str()))
        .collect();
    assert_eq!(ids, [("5", "1"), ("6", "0")]);
    let text = std::str::from_utf8(&body).expect("utf8");
    for row in &page.rows {
        assert!(
            text.contains(row.raw.get()),
            "row {} is not the exact text sent",
            row.id
        );
        assert!(row.raw.get().starts_with('{') && row.raw.get().ends_with('}'));
    }
    // Without an expected key the array is found by itself.
    let page = interpret_query_response(&meta(200), &body, None).expect("page");
    assert_eq!(page.rows.len(), 2);
    // Asking for another entity is a (non-retryable) error, not silently mixed rows.
    let err = interpret_query_response(&meta(200), &body, Some("Invoice")).expect_err("mismatch");
    assert!(
        matches!(
            err,
            QboError::Decode {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_page_has_no_rows_and_no_key() {
    let page = interpret_query_response(
        &meta(200),
        &fixture("query_response_empty.json"),
        Some("Customer"),
    )
    .expect("page");
    assert!(page.rows.is_empty());
    assert_eq!(page.entity_key, None);
    assert_eq!(page.start_position, None);
    assert_eq!(page.max_results, None);
}

#[test]
fn count_response_reads_total_count() {
    let page = interpret_query_response(&meta(200), &fixture("query_response_count.json"), None)
        .expect("page");
    assert_eq!(page.total_count, Some(41));
    assert!(page.rows.is_empty());
    assert_eq!(page.entity_key, None);
}

#[test]
fn single_entity_fixtures_give_id_and_sync_token() {
    for (name, id, sync) in [
        ("customer.json", "5", "1"),
        ("invoice.json", "266", "0"),
        ("item.json", "5", "2"),
        ("item_service.json", "3", "1"),
    ] {
        let body = String::from_utf8(fixture(name)).expect("utf8");
        let raw = RawValue::from_string(body.trim_end().to_owned()).expect("raw");
        let row = row_from_raw(raw).expect("row");
        assert_eq!(
            (row.id.as_str(), row.sync_token.as_str()),
            (id, sync),
            "{name}"
        );
        assert_eq!(row.raw.get(), body.trim_end(), "{name}: raw text changed");
    }
    // Wire number formats survive: amounts stay `100.00`.
    let row = row_from_raw(
        RawValue::from_string(
            String::from_utf8(fixture("invoice.json"))
                .expect("utf8")
                .trim_end()
                .to_owned(),
        )
        .expect("raw"),
    )
    .expect("row");
    assert!(row.raw.get().contains("\"TotalAmt\":100.00"));
}

#[test]
fn read_create_and_delete_responses_are_not_query_responses() {
    for name in [
        "customer_read_response.json",
        "invoice_create_response.json",
        "delete_response_invoice.json",
    ] {
        let err = interpret_query_response(&meta(200), &fixture(name), None).expect_err(name);
        assert!(
            matches!(
                err,
                QboError::Decode {
                    retryable: false,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
    }
    // The entities inside still parse as rows; a deleted invoice has no SyncToken.
    let read: serde_json::Value =
        serde_json::from_slice(&fixture("customer_read_response.json")).expect("json");
    let row = row_from_raw(raw_of(&read["Customer"])).expect("row");
    assert_eq!((row.id.as_str(), row.sync_token.as_str()), ("5", "1"));
    let created: serde_json::Value =
        serde_json::from_slice(&fixture("invoice_create_response.json")).expect("json");
    assert_eq!(
        row_from_raw(raw_of(&created["Invoice"])).expect("row").id,
        "266"
    );
    let deleted: serde_json::Value =
        serde_json::from_slice(&fixture("delete_response_invoice.json")).expect("json");
    let row = row_from_raw(raw_of(&deleted["Invoice"])).expect("row");
    assert_eq!((row.id.as_str(), row.sync_token.as_str()), ("266", ""));
}

#[test]
fn batch_items_parse_as_query_responses_and_faults() {
    let body = fixture("batch_response.json");
    let err = interpret_query_response(&meta(200), &body, None)
        .expect_err("batch is not a query response");
    assert!(matches!(
        err,
        QboError::Decode {
            retryable: false,
            ..
        }
    ));
    let batch: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let items = batch["BatchItemResponse"].as_array().expect("items");
    let mut codes = Vec::new();
    let mut query_ids = Vec::new();
    for item in items {
        if let Some(fault) = item.get("Fault") {
            let body = serde_json::json!({ "Fault": fault }).to_string();
            let err =
                interpret_query_response(&meta(200), body.as_bytes(), None).expect_err("fault");
            let QboError::Rejected { fault, .. } = err else {
                panic!("{err:?}")
            };
            assert_eq!(fault.fault_type.as_deref(), Some("ValidationFault"));
            codes.push(fault.first_code().map(str::to_owned));
            assert_eq!(fault.errors[0].element, None, "empty element is dropped");
        }
        if let Some(qr) = item.get("QueryResponse") {
            let body = serde_json::json!({ "QueryResponse": qr }).to_string();
            let page = interpret_query_response(&meta(200), body.as_bytes(), Some("SalesReceipt"))
                .expect("page");
            query_ids.extend(
                page.rows
                    .iter()
                    .map(|r| (r.id.clone(), r.sync_token.clone())),
            );
            assert_eq!(page.max_results, Some(2));
        }
    }
    assert_eq!(codes, [Some("610".to_owned()), Some("5010".to_owned())]);
    assert_eq!(
        query_ids,
        [
            ("17".to_owned(), "5".to_owned()),
            ("11".to_owned(), "1".to_owned())
        ]
    );
}

#[test]
fn cdc_response_is_not_a_query_response_but_its_inner_page_is() {
    let body = fixture("cdc_response.json");
    let err = interpret_query_response(&meta(200), &body, None).expect_err("cdc");
    assert!(matches!(
        err,
        QboError::Decode {
            retryable: false,
            ..
        }
    ));
    let cdc: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let inner = &cdc["CDCResponse"][0]["QueryResponse"][0];
    let body = serde_json::json!({ "QueryResponse": inner }).to_string();
    let page =
        interpret_query_response(&meta(200), body.as_bytes(), Some("Estimate")).expect("page");
    let ids: Vec<_> = page.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["48", "46", "41", "100"]);
    assert_eq!(page.max_results, Some(4));
}

#[test]
fn invalid_query_fault_is_rejected_with_a_readable_message() {
    let body = fixture("fault_invalid_query.json");
    for status in [400, 200] {
        let err =
            interpret_query_response(&meta(status), &body, Some("Customer")).expect_err("fault");
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.intuit_tid(), Some("1-test-tid"));
        let QboError::Rejected { fault, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(fault.first_code(), Some("4001"));
        assert_eq!(
            err.to_string(),
            format!(
                "QuickBooks rejected the query (4001 Invalid query): QueryValidationError: invalid context \
                 declaration: Custmoer; HTTP {status}; intuit_tid=1-test-tid"
            )
        );
    }
}

#[test]
fn validation_faults_are_rejected() {
    let err = interpret_query_response(&meta(400), &fixture("fault_validation.json"), None)
        .expect_err("fault");
    let QboError::Rejected {
        fault, status: 400, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(fault.first_code(), Some("6240"));
    assert_eq!(
        fault.errors[0].message.as_deref(),
        Some("Duplicate Name Exists Error")
    );
    assert!(!err.is_retryable());

    let err = interpret_query_response(
        &meta(400),
        &fixture("fault_validation_duplicate_taxrate.json"),
        None,
    )
    .expect_err("fault");
    let QboError::Rejected { fault, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.first_code(), Some("6240"));
    assert_eq!(fault.errors[0].element, None);
    assert!(
        fault.errors[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("Another tax rate"))
    );
}

#[test]
fn lower_case_401_envelope_is_unauthorized_and_redacted() {
    let body = fixture("fault_auth_401_token_expired.json");
    let err = interpret_query_response(&meta(401), &body, None).expect_err("401");
    let QboError::Unauthorized {
        fault: Some(fault),
        status: 401,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(fault.first_code(), Some("3200"));
    assert!(fault.is_type("AUTHENTICATION"));
    assert_eq!(
        fault.errors[0].detail.as_deref(),
        Some("Token expired: …5Yjd")
    );
    let token = "AB01601390262kxzxOlnHYdhtEVRXISU7piPqQrCmmbDN35Yjd";
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(&token[..10]), "token leaked: {shown}");
        assert!(shown.contains("…5Yjd"));
    }
    assert!(!err.is_retryable());
    assert!(!err.is_terminal_auth());
}

#[test]
fn throttle_faults_json_and_xml_are_retryable() {
    for (name, fault_type) in [
        ("fault_throttle.json", "SERVICE"),
        ("fault_throttle.xml", "SERVICE"),
    ] {
        let mut m = meta(429);
        m.retry_after = Some(Duration::from_secs(7));
        let err = interpret_query_response(&m, &fixture(name), None).expect_err(name);
        let QboError::Throttled {
            fault: Some(fault),
            retry_after,
            status: 429,
            ..
        } = &err
        else {
            panic!("{name}: {err:?}")
        };
        assert_eq!(fault.fault_type.as_deref(), Some(fault_type), "{name}");
        assert_eq!(fault.first_code(), Some("3001"), "{name}");
        assert_eq!(
            fault.errors[0].message.as_deref(),
            Some("message=ThrottleExceeded; errorCode=003001; statusCode=429"),
            "{name}"
        );
        assert_eq!(
            fault.errors[0].detail.as_deref(),
            Some("The request limit was reached.  Try again later")
        );
        assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        assert!(err.is_retryable());
    }
    // The XML throttle also counts when it comes with 200 or the pre-2016 403.
    for status in [200, 403] {
        let err = interpret_query_response(&meta(status), &fixture("fault_throttle.xml"), None)
            .expect_err("xml");
        assert!(
            matches!(err, QboError::Throttled { .. }),
            "{status}: {err:?}"
        );
    }
}

#[test]
fn token_response_fixture_gives_a_grant() {
    let grant =
        interpret_token_response(&meta(200), &fixture("token_response.json")).expect("grant");
    assert_eq!(grant.access_token.expose_secret(), "sample_access_token");
    assert_eq!(
        grant
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .as_deref(),
        Some("sample_refresh_token")
    );
    assert_eq!(grant.expires_in, Some(3600));
    assert_eq!(grant.refresh_token_expires_in, Some(8_726_400));
}

#[test]
fn every_invalid_grant_body_is_terminal() {
    let bodies = [
        (fixture("token_invalid_grant.json"), None),
        (fixture("token_invalid_grant_token_invalid.json"), Some("Token invalid")),
        (
            br#"{"error":"invalid_grant","error_description":"Incorrect or invalid refresh token"}"#.to_vec(),
            Some("Incorrect or invalid refresh token"),
        ),
    ];
    for (body, want) in &bodies {
        for status in [400, 401, 200] {
            let Err(err) = interpret_token_response(&meta(status), body) else {
                panic!("{status}: an invalid_grant body was taken as success")
            };
            let QboError::InvalidGrant { description, .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(description.as_deref(), *want);
            assert!(err.is_invalid_grant() && err.is_terminal_auth() && !err.is_retryable());
            assert!(err.to_string().contains("reconnect"), "{err}");
        }
    }
}

#[test]
fn invalid_client_and_token_endpoint_failures() {
    let err = interpret_token_response(&meta(401), br#"{"error":"invalid_client"}"#)
        .err()
        .expect("err");
    assert!(matches!(err, QboError::InvalidClient { status: 401, .. }) && err.is_terminal_auth());
    let err = interpret_token_response(&meta(401), b"")
        .err()
        .expect("err");
    assert!(matches!(err, QboError::InvalidClient { .. }));
    let html = b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>Avi</body></html>";
    let err = interpret_token_response(&meta(503), html)
        .err()
        .expect("err");
    assert!(err.is_retryable() && !err.is_terminal_auth(), "{err:?}");
    assert!(
        err.to_string()
            .contains("503 Service Temporarily Unavailable")
    );
    // A truncated success body is retryable and never echoed (it may hold tokens).
    let err =
        interpret_token_response(&meta(200), br#"{"access_token":"secret-access-123","refre"#)
            .err()
            .expect("err");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("secret-access"));
    for (status, body) in [
        (400, &br#"{"error":"unsupported_grant_type"}"#[..]),
        (200, br#"{"token_type":"bearer"}"#),
    ] {
        let err = interpret_token_response(&meta(status), body)
            .err()
            .expect("err");
        assert!(matches!(
            err,
            QboError::TokenEndpoint {
                retryable: false,
                ..
            }
        ));
    }
}

#[test]
fn html_empty_and_xml_5xx_bodies_are_retryable_server_errors() {
    let html = b"<html>\n<head><title>503 Service Temporarily Unavailable</title></head>\n<body><center><h1>503 \
                 Service Temporarily Unavailable</h1></center><hr><center>Avi Vantage/</center></body></html>";
    let err = interpret_query_response(&meta(503), html, None).expect_err("503");
    assert!(matches!(err, QboError::Server { status: 503, .. }) && err.is_retryable());
    assert_eq!(
        err.to_string(),
        "QuickBooks had a server error (HTTP 503): 503 Service Temporarily Unavailable; intuit_tid=1-test-tid"
    );
    let err = interpret_query_response(&meta(502), b"", None).expect_err("502");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("empty body"));
    let xml = br#"<?xml version="1.0"?><IntuitResponse><Fault type="SERVICE"><Error code="6002"><Message>message=GatewayTimeout; errorCode=006002; statusCode=504</Message></Error></Fault></IntuitResponse>"#;
    let err = interpret_query_response(&meta(504), xml, None).expect_err("504");
    assert_eq!(err.fault().and_then(Fault::first_code), Some("6002"));
    assert!(err.is_retryable());
    let system = br#"{"Fault":{"Error":[{"Message":"An application error has occurred while processing your request","Detail":"System Failure Error","code":"10000"}],"type":"SystemFault"}}"#;
    for status in [500, 200] {
        let err = interpret_query_response(&meta(status), system, None).expect_err("system");
        assert!(
            matches!(err, QboError::Server { .. }) && err.is_retryable(),
            "{status}: {err:?}"
        );
    }
}

#[test]
fn truncated_or_non_json_success_bodies_are_retryable() {
    let body = fixture("query_response_customer.json");
    for cut in [1, 20, body.len() / 2, body.len() - 3] {
        let err = interpret_query_response(&meta(200), &body[..cut], Some("Customer"))
            .expect_err("truncated");
        assert!(
            matches!(
                err,
                QboError::Decode {
                    retryable: true,
                    status: 200,
                    ..
                }
            ),
            "cut {cut}: {err:?}"
        );
    }
    let err = interpret_query_response(&meta(200), b"<html><title>Gateway</title></html>", None)
        .expect_err("html");
    assert!(err.is_retryable());
    let err = interpret_query_response(&meta(200), b"", None).expect_err("empty");
    assert!(err.is_retryable());
}

#[test]
fn forbidden_3100_carries_the_environment_hint() {
    let body = br#"{"fault":{"error":[{"message":"message=AuthorizationFailed; errorCode=003100; statusCode=403","detail":"Authorization Failure","code":"3100","element":null}],"type":"AUTHENTICATION"}}"#;
    let err = interpret_query_response(&meta(403), body, None).expect_err("403");
    let QboError::Forbidden { hint, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*hint, Some(crate::ENVIRONMENT_HINT));
    assert!(
        err.to_string()
            .contains("Check that the environment (sandbox/production) matches your credentials")
    );
    assert!(!err.is_retryable());
    let xml = br#"<IntuitResponse><Fault type="AuthorizationFault"><Error code="120"><Message>Authorization Failure</Message></Error></Fault></IntuitResponse>"#;
    let err = interpret_query_response(&meta(403), xml, None).expect_err("403 xml");
    assert!(matches!(err, QboError::Forbidden { hint: None, .. }));
}

#[test]
fn unexpected_statuses_are_not_retryable() {
    let err = interpret_query_response(&meta(404), b"Not Found", None).expect_err("404");
    assert!(matches!(err, QboError::UnexpectedStatus { status: 404, .. }) && !err.is_retryable());
    assert!(err.to_string().contains("realm id"));
    let err = interpret_query_response(&meta(401), b"", None).expect_err("401");
    assert!(err.is_unauthorized());
}

#[test]
fn xml_parser_handles_entities_and_multiple_errors() {
    let xml = r#"<IntuitResponse xmlns="http://schema.intuit.com/finance/v3"><Fault type='ValidationFault'>
        <Error code="2010" element="Line"><Message>A &amp; B &lt;x&gt;</Message><Detail/></Error>
        <Error code="4001"><Message>Invalid query</Message><Detail>it&#39;s bad</Detail></Error></Fault></IntuitResponse>"#;
    let fault = parse_xml_fault(xml).expect("fault");
    assert_eq!(fault.fault_type.as_deref(), Some("ValidationFault"));
    assert_eq!(fault.errors.len(), 2);
    assert_eq!(fault.errors[0].message.as_deref(), Some("A & B <x>"));
    assert_eq!(fault.errors[0].element.as_deref(), Some("Line"));
    assert_eq!(fault.errors[0].detail, None);
    assert_eq!(fault.errors[1].detail.as_deref(), Some("it's bad"));
    assert!(parse_xml_fault("<html><title>x</title></html>").is_none());
}

#[test]
fn headers_give_tid_in_any_spelling_and_retry_after() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("Intuit_Tid", "1-5f7330b9-abc".parse().expect("value"));
    h.insert("Retry-After", "3".parse().expect("value"));
    let m = ResponseMeta::from_parts(429, &h);
    assert_eq!(m.intuit_tid.as_deref(), Some("1-5f7330b9-abc"));
    assert_eq!(m.retry_after, Some(Duration::from_secs(3)));
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("intuit-tid", "tid-2".parse().expect("value"));
    assert_eq!(
        ResponseMeta::from_parts(200, &h).intuit_tid.as_deref(),
        Some("tid-2")
    );

    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
    assert_eq!(
        parse_retry_after("0.05", now),
        Some(Duration::from_millis(50))
    );
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("100000", now),
        Some(Duration::from_secs(600))
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
}

#[test]
fn numbers_as_strings_and_numeric_ids_are_tolerated() {
    let body = br#"{"QueryResponse":{"Item":[{"Id":7,"SyncToken":"0"},{"Id":"8"}],"startPosition":"1","maxResults":2}}"#;
    let page = interpret_query_response(&meta(200), body, Some("Item")).expect("page");
    let ids: Vec<_> = page
        .rows
        .iter()
        .map(|r| (r.id.as_str(), r.sync_token.as_str()))
        .collect();
    assert_eq!(ids, [("7", "0"), ("8", "")]);
    assert_eq!(page.start_position, Some(1));
    let body = br#"{"QueryResponse":{"Item":[{"Name":"no id"}]}}"#;
    let err = interpret_query_response(&meta(200), body, Some("Item")).expect_err("no id");
    assert!(matches!(
        err,
        QboError::Decode {
            retryable: false,
            ..
        }
    ));
}
