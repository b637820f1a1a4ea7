//! `POST /v3/company/{realm}/batch`: several operations in one request, as Intuit serves it.
//!
//! Request `{"BatchItemRequest":[{"bId":"1","Query":"SELECT …"}, {"bId":"2","operation":"create",
//! "Customer":{…}}, …]}`; answer HTTP 200 `{"BatchItemResponse":[{"QueryResponse":{…},"bId":"1"},
//! {"Fault":{…},"bId":"2"}],"time":"…"}` even when items fail, each item's payload before its
//! `bId` as recorded (`fixtures/qbo/batch_response.json`). A query item's `QueryResponse` is
//! rendered by the same engine as `/query`, byte for byte; a failing query answers the `Fault`
//! `/query` would send (without `time`). Writes are not simulated: create / update / delete items
//! answer a per-item "Unsupported Operation" fault.
//!
//! More than [`MAX_BATCH_ITEMS`] items answer a 400 `ValidationFault` 1040 "Batch size exceeds
//! allowed limit" (the code and message of Intuit's error-code list; the detail wording is
//! unrecorded). Throttling (see `limits`) weighs a batch by its item count, and happens in the
//! gate before this handler runs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::SimState;
use crate::faults::{
    FaultError, VALIDATION_FAULT, forbidden_realm, json, push_fault, validation_fault,
};
use crate::json::push_str;
use crate::query::parse_query;
use crate::state::Counters;
use crate::time::envelope_time;

/// Most items one batch request may carry (Intuit's limits page: "recommended maximum … is 30";
/// 31 fail, intuit/QuickBooks-V3-DotNET-SDK#358).
pub(crate) const MAX_BATCH_ITEMS: usize = 30;

/// Number of `BatchItemRequest` entries in a batch body; 0 when it is not one.
pub(crate) fn item_count(body: &[u8]) -> usize {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("BatchItemRequest")?.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The 400 `ValidationFault` 2010 Intuit answers for a body it cannot bind.
fn unsupported_property(detail: &str) -> Response {
    validation_fault(FaultError::invalid_property(&format!(
        "Property Name:{detail} specified is unsupported or invalid"
    )))
}

/// `POST /v3/company/{realm}/batch`.
pub(crate) async fn batch(
    State(st): State<SimState>,
    Path(realm): Path<String>,
    body: Bytes,
) -> Response {
    if realm != st.inner.realm_id {
        return forbidden_realm();
    }
    Counters::bump(&st.inner.counters.batch_requests);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return unsupported_property(&e.to_string()),
    };
    let items = match request.get("BatchItemRequest") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return unsupported_property("BatchItemRequest"),
    };
    if items.len() > MAX_BATCH_ITEMS {
        let detail = format!(
            "Batch size exceeds allowed limit. Max allowed batch size is {MAX_BATCH_ITEMS}, \
             supplied: {}",
            items.len()
        );
        return validation_fault(FaultError::element(
            "Batch size exceeds allowed limit",
            &detail,
            "1040",
        ));
    }
    let mut out = String::with_capacity(256 + items.len() * 1024);
    out.push_str("{\"BatchItemResponse\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('{');
        answer_item(&st, &mut out, item);
        if let Some(bid) = item.get("bId") {
            out.push_str(",\"bId\":");
            match bid.as_str() {
                Some(s) => push_str(&mut out, s),
                None => out.push_str(&bid.to_string()),
            }
        }
        out.push('}');
    }
    out.push_str("],\"time\":");
    push_str(&mut out, &envelope_time());
    out.push('}');
    json(StatusCode::OK, out)
}

/// Appends one item's payload member: `"QueryResponse":{…}` or `"Fault":{…}`.
fn answer_item(st: &SimState, out: &mut String, item: &Value) {
    let invalid = |out: &mut String, property: &str| {
        let detail = format!("Property Name:{property} specified is unsupported or invalid");
        push_fault(out, VALIDATION_FAULT, FaultError::invalid_property(&detail));
    };
    let Some(obj) = item.as_object() else {
        return invalid(out, "BatchItemRequest");
    };
    if let Some(query) = obj.get("Query") {
        let Some(text) = query.as_str() else {
            return invalid(out, "Query");
        };
        let mark = out.len();
        let result = parse_query(text).and_then(|q| {
            st.record_query(text, &q.entity);
            st.inner.engine.push_query_response(out, &st.inner.data, &q)
        });
        if let Err(e) = result {
            out.truncate(mark);
            if matches!(e, crate::query::QueryError::Parse(_)) {
                st.record_query(text, "?");
            }
            push_fault(out, VALIDATION_FAULT, FaultError::query(&e));
        }
        return;
    }
    let operation = obj.get("operation").and_then(Value::as_str).unwrap_or("");
    let detail = format!(
        "Operation {operation} is not supported: the simulator serves reads and queries only."
    );
    push_fault(
        out,
        VALIDATION_FAULT,
        FaultError::unsupported_operation(&detail),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_items() {
        assert_eq!(
            item_count(br#"{"BatchItemRequest":[{"bId":"1"},{"bId":"2"}]}"#),
            2
        );
        assert_eq!(item_count(b"not json"), 0);
        assert_eq!(item_count(br#"{"BatchItemRequest":{}}"#), 0);
    }
}
