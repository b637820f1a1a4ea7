//! Reading what QBO sends back, without any I/O: query responses (rows kept as the exact JSON
//! text sent), `COUNT(*)` answers, every fault envelope (JSON `Fault`, lower-case JSON `fault`,
//! XML `<Fault>`, HTML or empty bodies), OAuth token responses and their errors, and the headers
//! that matter (`intuit_tid`, `Retry-After`). Each response turns into a value or a classified
//! [`QboError`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{ENVIRONMENT_HINT, Fault, FaultError, QboError};
use crate::page::Row;
use crate::redact::redact;

/// The answer to one query: the rows (if the response had an entity array) and the envelope's
/// counters.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// The rows, in the order sent; each keeps its exact JSON text.
    pub rows: Vec<Row>,
    /// The key of the entity array (`"Customer"`), `None` when the response had none
    /// (`{"QueryResponse":{}}`, a count).
    pub entity_key: Option<String>,
    /// `startPosition` as sent by QBO.
    pub start_position: Option<u32>,
    /// `maxResults` as sent by QBO: the number of rows returned (not the number requested, and
    /// not always equal to `rows.len()` on the real service).
    pub max_results: Option<u32>,
    /// `totalCount`, sent only for `COUNT(*)` queries.
    pub total_count: Option<u64>,
    /// The `intuit_tid` response header.
    pub intuit_tid: Option<String>,
}

/// The parts of a response's head that error handling needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResponseMeta {
    pub(crate) status: u16,
    pub(crate) intuit_tid: Option<String>,
    pub(crate) retry_after: Option<Duration>,
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

impl ResponseMeta {
    /// Reads status, `intuit_tid` (any case, `_` or `-`) and `Retry-After`.
    pub(crate) fn from_parts(status: u16, headers: &reqwest::header::HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let intuit_tid = header("intuit_tid")
            .or_else(|| header("intuit-tid"))
            .filter(|t| !t.is_empty())
            .map(|t| {
                // Not a secret (Intuit support asks for it), so kept verbatim, but only in a
                // safe alphabet and bounded length, since it comes from the server.
                t.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                    .take(128)
                    .collect()
            });
        let retry_after =
            header("retry-after").and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        Self {
            status,
            intuit_tid,
            retry_after,
        }
    }
}

/// Parses `Retry-After`: delay seconds (integer, or fractional as some servers send) or an
/// HTTP date. Capped at ten minutes.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let at = jiff::fmt::rfc2822::DateTimeParser::new()
            .relaxed_weekday(true)
            .parse_timestamp(value)
            .ok()?;
        let span = at.duration_since(now);
        if span.is_negative() {
            Duration::ZERO
        } else {
            Duration::try_from(span).ok()?
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

// ---------------------------------------------------------------------------------------------
// Success bodies
// ---------------------------------------------------------------------------------------------

/// A number QBO might send as a JSON number or a numeric string.
struct NumLike(Option<u64>);

impl<'de> Deserialize<'de> for NumLike {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NumLike;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumLike, E> {
                Ok(NumLike(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumLike, E> {
                Ok(NumLike(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumLike, E> {
                let ok = v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(NumLike(ok.then_some(v as u64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumLike, E> {
                Ok(NumLike(v.trim().parse().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NumLike, E> {
                Ok(NumLike(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<NumLike, E> {
                Ok(NumLike(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<NumLike, D2::Error> {
                NumLike::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// A value inside `QueryResponse`: an entity array (kept raw) or anything else (skipped).
enum ArrayOrOther {
    Array(Vec<Box<RawValue>>),
    Other,
}

impl<'de> Deserialize<'de> for ArrayOrOther {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ArrayOrOther;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArrayOrOther, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1000));
                while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                    rows.push(raw);
                }
                Ok(ArrayOrOther::Array(rows))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ArrayOrOther, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ArrayOrOther::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<ArrayOrOther, E> {
                Ok(ArrayOrOther::Other)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<ArrayOrOther, D2::Error> {
                ArrayOrOther::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// The contents of `QueryResponse`.
#[derive(Default)]
struct QueryResponseBody {
    arrays: Vec<(String, Vec<Box<RawValue>>)>,
    start_position: Option<u64>,
    max_results: Option<u64>,
    total_count: Option<u64>,
}

impl<'de> Deserialize<'de> for QueryResponseBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QueryResponseBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a QueryResponse object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<QueryResponseBody, A::Error> {
                let mut body = QueryResponseBody::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "startPosition" => body.start_position = map.next_value::<NumLike>()?.0,
                        "maxResults" => body.max_results = map.next_value::<NumLike>()?.0,
                        "totalCount" => body.total_count = map.next_value::<NumLike>()?.0,
                        _ => {
                            if let ArrayOrOther::Array(rows) = map.next_value::<ArrayOrOther>()? {
                                body.arrays.push((key.into_owned(), rows));
                            }
                        }
                    }
                }
                Ok(body)
            }
            // `"QueryResponse": null` reads as an empty response.
            fn visit_unit<E: de::Error>(self) -> Result<QueryResponseBody, E> {
                Ok(QueryResponseBody::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The JSON fault in either envelope (`Fault.Error[].Message` or `fault.error[].message`).
#[derive(Deserialize)]
struct RawFault {
    #[serde(rename = "Error", alias = "error", default)]
    errors: Option<Vec<RawFaultError>>,
    #[serde(rename = "type", alias = "Type", default)]
    fault_type: Option<String>,
}

#[derive(Deserialize)]
struct RawFaultError {
    #[serde(rename = "Message", alias = "message", default)]
    message: Option<String>,
    #[serde(rename = "Detail", alias = "detail", default)]
    detail: Option<String>,
    #[serde(rename = "code", alias = "Code", default)]
    code: Option<NumOrStr>,
    #[serde(rename = "element", alias = "Element", default)]
    element: Option<String>,
}

/// A code QBO sends as a string (tolerating a number).
struct NumOrStr(String);

impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrStr, E> {
                Ok(NumOrStr(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawFault {
    fn into_fault(self) -> Fault {
        let clean = |s: Option<String>| s.map(|s| redact(s.trim())).filter(|s| !s.is_empty());
        Fault {
            fault_type: clean(self.fault_type),
            errors: self
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| FaultError {
                    code: e
                        .code
                        .map(|c| c.0.trim().to_owned())
                        .filter(|c| !c.is_empty()),
                    message: clean(e.message),
                    detail: clean(e.detail),
                    element: clean(e.element),
                })
                .collect(),
        }
    }
}

/// The top level of an API response: `QueryResponse` and/or a fault; everything else skipped.
#[derive(Default)]
struct Envelope {
    query_response: Option<QueryResponseBody>,
    fault: Option<RawFault>,
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a QBO response object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut env = Envelope::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "QueryResponse" => env.query_response = Some(map.next_value()?),
                        "Fault" | "fault" => {
                            if let Some(f) = map.next_value::<Option<RawFault>>()? {
                                env.fault = Some(f);
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

/// `Id` and `SyncToken` of one row, borrowed from its raw text where possible.
#[derive(Deserialize)]
struct IdTok<'a> {
    #[serde(rename = "Id", borrow, default)]
    id: Option<Scalar<'a>>,
    #[serde(rename = "SyncToken", borrow, default)]
    sync_token: Option<Scalar<'a>>,
    #[serde(rename = "MetaData", borrow, default)]
    meta: Option<MetaTimes<'a>>,
}

/// `MetaData.CreateTime` and `MetaData.LastUpdatedTime` of one row, as sent.
#[derive(Deserialize)]
struct MetaTimes<'a> {
    #[serde(rename = "CreateTime", borrow, default)]
    created: Option<Cow<'a, str>>,
    #[serde(rename = "LastUpdatedTime", borrow, default)]
    updated: Option<Cow<'a, str>>,
}

/// A QBO timestamp (`2015-10-07T11:42:38-07:00`); `None` when it does not parse.
fn parse_time(text: Option<&str>) -> Option<jiff::Timestamp> {
    text.and_then(|t| t.parse::<jiff::Timestamp>().ok())
}

/// A string (borrowed when unescaped) or a number, as text.
struct Scalar<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Builds a [`Row`] from one entity's raw JSON.
pub(crate) fn row_from_raw(raw: Box<RawValue>) -> Result<Row, String> {
    let tok: IdTok<'_> =
        serde_json::from_str(raw.get()).map_err(|e| format!("an entity is not an object: {e}"))?;
    let id = tok
        .id
        .map(|s| s.0.into_owned())
        .ok_or_else(|| "an entity has no Id".to_owned())?;
    let sync_token = tok.sync_token.map(|s| s.0.into_owned()).unwrap_or_default();
    let (created, updated) = tok.meta.map_or((None, None), |m| {
        (
            parse_time(m.created.as_deref()),
            parse_time(m.updated.as_deref()),
        )
    });
    Ok(Row {
        id,
        sync_token,
        raw,
        created,
        updated,
    })
}

fn decode_error(meta: &ResponseMeta, err: &serde_json::Error) -> QboError {
    use serde_json::error::Category;
    let retryable = matches!(
        err.classify(),
        Category::Eof | Category::Syntax | Category::Io
    );
    QboError::Decode {
        status: meta.status,
        message: redact(&err.to_string()),
        retryable,
        intuit_tid: meta.intuit_tid.clone(),
    }
}

fn shape_error(meta: &ResponseMeta, message: String) -> QboError {
    QboError::Decode {
        status: meta.status,
        message,
        retryable: false,
        intuit_tid: meta.intuit_tid.clone(),
    }
}

/// Turns any API response to a query into a [`QueryPage`] or a classified error.
///
/// `expected_key` is the entity array the caller asked for; when given, an array under another
/// name is an error. A 2xx body that is not JSON, or is cut short, is a retryable
/// [`QboError::Decode`]; a 2xx body with a `Fault` is classified like an error response.
/// One change reported by QuickBooks' change-data-capture endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcChange {
    /// The entity's `Id`.
    pub id: String,
    /// `status: "Deleted"`: the entity was deleted (only transactions are ever deleted).
    pub deleted: bool,
    /// `MetaData.LastUpdatedTime` (for a deletion: when it was deleted), when sent.
    pub updated: Option<jiff::Timestamp>,
}

/// The top level of a `/cdc` answer: `CDCResponse` and/or a fault.
#[derive(Deserialize)]
struct CdcEnvelope {
    #[serde(rename = "CDCResponse", default)]
    cdc: Option<Vec<CdcQueryResponses>>,
    #[serde(rename = "Fault", alias = "fault", default)]
    fault: Option<RawFault>,
}

#[derive(Deserialize)]
struct CdcQueryResponses {
    #[serde(rename = "QueryResponse", default)]
    query_responses: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Interprets an answer of `GET …/cdc?entities=<entity>&changedSince=…`: the changes of
/// `entity` (deleted or not), or the error it carries (statuses, XML and HTML bodies and faults
/// are classified exactly like a query's).
pub(crate) fn interpret_cdc_response(
    meta: &ResponseMeta,
    body: &[u8],
    entity: &str,
) -> Result<Vec<CdcChange>, QboError> {
    reject_non_json(meta, body)?;
    let env: CdcEnvelope = serde_json::from_slice(body).map_err(|e| decode_error(meta, &e))?;
    let responses = envelope_payload(meta, env.cdc, env.fault, "CDCResponse")?;
    let mut out = Vec::new();
    let objects = responses
        .iter()
        .flat_map(|r| &r.query_responses)
        .filter_map(|qr| {
            // The entity's array by its name, or in another casing (`entities=estimate` has
            // been answered with `Estimate`): a missed key would read as "no changes".
            qr.get(entity).or_else(|| {
                qr.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(entity))
                    .map(|(_, value)| value)
            })
        })
        .filter_map(serde_json::Value::as_array)
        .flatten();
    for object in objects {
        let id = match object.get("Id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(shape_error(meta, format!("a CDC {entity} has no Id"))),
        };
        let deleted = object
            .get("status")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("Deleted"));
        let updated = parse_time(
            object
                .pointer("/MetaData/LastUpdatedTime")
                .and_then(serde_json::Value::as_str),
        );
        out.push(CdcChange {
            id,
            deleted,
            updated,
        });
    }
    Ok(out)
}

/// The payload member (`name`) of a JSON envelope, or the error its `Fault` stands for; an
/// envelope with neither is a shape error.
fn envelope_payload<T>(
    meta: &ResponseMeta,
    payload: Option<T>,
    fault: Option<RawFault>,
    name: &str,
) -> Result<T, QboError> {
    if let Some(fault) = fault {
        let parsed = ErrorBody {
            fault: Some(fault.into_fault()),
            ..ErrorBody::default()
        };
        return Err(classify_error(meta, &parsed));
    }
    payload.ok_or_else(|| shape_error(meta, format!("the response has neither {name} nor Fault")))
}

/// Errors every API answer shares: a non-2xx status, an XML fault or an HTML page.
fn reject_non_json(meta: &ResponseMeta, body: &[u8]) -> Result<(), QboError> {
    if !(200..300).contains(&meta.status) {
        return Err(classify_error(meta, &parse_error_body(body)));
    }
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'<') {
        // An XML fault (throttles have come as XML on 200/429) or an HTML page from a proxy.
        let parsed = parse_error_body(body);
        if parsed.fault.is_some() {
            return Err(classify_error(meta, &parsed));
        }
        return Err(QboError::Decode {
            status: meta.status,
            message: format!(
                "expected JSON, got {}",
                parsed.summary.unwrap_or_else(|| "markup".to_owned())
            ),
            retryable: true,
            intuit_tid: meta.intuit_tid.clone(),
        });
    }
    Ok(())
}

pub(crate) fn interpret_query_response(
    meta: &ResponseMeta,
    body: &[u8],
    expected_key: Option<&str>,
) -> Result<QueryPage, QboError> {
    reject_non_json(meta, body)?;
    let env: Envelope = serde_json::from_slice(body).map_err(|e| decode_error(meta, &e))?;
    let qr = envelope_payload(meta, env.query_response, env.fault, "QueryResponse")?;
    let chosen = match expected_key {
        Some(want) => {
            let found = qr.arrays.iter().position(|(k, _)| k == want).or_else(|| {
                qr.arrays
                    .iter()
                    .position(|(k, _)| k.eq_ignore_ascii_case(want))
            });
            match (found, qr.arrays.first()) {
                (Some(i), _) => qr.arrays.into_iter().nth(i),
                (None, Some((other, _))) => {
                    return Err(shape_error(
                        meta,
                        format!("asked for {want} rows but the response holds `{other}`"),
                    ));
                }
                (None, None) => None,
            }
        }
        None => qr.arrays.into_iter().next(),
    };
    let to_u32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    let mut page = QueryPage {
        rows: Vec::new(),
        entity_key: None,
        start_position: to_u32(qr.start_position),
        max_results: to_u32(qr.max_results),
        total_count: qr.total_count,
        intuit_tid: meta.intuit_tid.clone(),
    };
    if let Some((key, raws)) = chosen {
        page.rows.reserve_exact(raws.len());
        for raw in raws {
            page.rows
                .push(row_from_raw(raw).map_err(|m| shape_error(meta, m))?);
        }
        page.entity_key = Some(key);
    }
    Ok(page)
}

// ---------------------------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------------------------

/// What could be read from an error body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub(crate) fault: Option<Fault>,
    /// OAuth `error` (`invalid_grant`, …).
    pub(crate) oauth_error: Option<String>,
    /// OAuth `error_description`.
    pub(crate) oauth_description: Option<String>,
    /// A one-line summary of a body that was not a fault (HTML title, "empty body", snippet).
    pub(crate) summary: Option<String>,
}

#[derive(Deserialize)]
struct LooseErrorJson {
    #[serde(rename = "Fault", alias = "fault", default)]
    fault: Option<RawFault>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<serde_json::Value>,
}

fn value_text(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Collapses whitespace and cuts `text` to `max` characters, redacted.
fn one_line(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(max).collect();
    if collapsed.chars().count() > max {
        out.push('…');
    }
    redact(&out)
}

/// Reads any error body: JSON fault (either envelope), OAuth error JSON, XML fault, HTML page,
/// empty body, or other text.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return ErrorBody {
            summary: Some("empty body".to_owned()),
            ..ErrorBody::default()
        };
    }
    if trimmed.starts_with('{') {
        if let Ok(json) = serde_json::from_str::<LooseErrorJson>(trimmed) {
            let body = ErrorBody {
                fault: json.fault.map(RawFault::into_fault),
                oauth_error: value_text(json.error).map(|s| redact(s.trim())),
                oauth_description: value_text(json.error_description).map(|s| redact(s.trim())),
                summary: None,
            };
            if body.fault.is_some() || body.oauth_error.is_some() {
                return body;
            }
        }
        return ErrorBody {
            summary: Some(format!("unrecognised JSON: {}", one_line(trimmed, 160))),
            ..ErrorBody::default()
        };
    }
    if let Some(fault) = parse_xml_fault(trimmed) {
        return ErrorBody {
            fault: Some(fault),
            ..ErrorBody::default()
        };
    }
    if let Some(title) = html_title(trimmed) {
        return ErrorBody {
            summary: Some(title),
            ..ErrorBody::default()
        };
    }
    ErrorBody {
        summary: Some(one_line(trimmed, 160)),
        ..ErrorBody::default()
    }
}

fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        if let Some(c) = decoded {
            out.push(c);
            rest = &rest[end + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The value of `name="…"` (or `'…'`) inside an opening tag's text.
fn xml_attr(tag: &str, name: &str) -> Option<String> {
    let mut search = tag;
    while let Some(i) = search.find(name) {
        let before_ok = search[..i].chars().last().is_some_and(char::is_whitespace);
        let after = search[i + name.len()..].trim_start();
        if before_ok && let Some(after_eq) = after.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let quote = after_eq.chars().next()?;
            if quote == '"' || quote == '\'' {
                let value = &after_eq[1..];
                let end = value.find(quote)?;
                return Some(xml_unescape(&value[..end]));
            }
        }
        search = &search[i + name.len()..];
    }
    None
}

/// Position of the opening tag `<name` (followed by whitespace, `>` or `/`).
fn find_open_tag(hay: &str, name: &str) -> Option<usize> {
    let pat = format!("<{name}");
    let mut offset = 0;
    while let Some(i) = hay[offset..].find(&pat) {
        let at = offset + i;
        let next = hay[at + pat.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            return Some(at);
        }
        offset = at + pat.len();
    }
    None
}

/// The text of the first `<name>…</name>` element in `hay`.
fn xml_element_text(hay: &str, name: &str) -> Option<String> {
    let start = find_open_tag(hay, name)?;
    let open_end = start + hay[start..].find('>')?;
    if hay[..open_end].ends_with('/') {
        return Some(String::new());
    }
    let content = &hay[open_end + 1..];
    let end = content.find(&format!("</{name}>")).unwrap_or(content.len());
    Some(xml_unescape(content[..end].trim()))
}

/// Parses `<IntuitResponse><Fault type="…"><Error code="…"><Message>…</Message><Detail>…</Detail>`
/// with a few string searches.
pub(crate) fn parse_xml_fault(xml: &str) -> Option<Fault> {
    let start = find_open_tag(xml, "Fault")?;
    let rest = &xml[start..];
    let tag_end = rest.find('>')?;
    let fault_type = xml_attr(&rest[..tag_end], "type");
    let mut errors = Vec::new();
    let mut cursor = &rest[tag_end + 1..];
    while let Some(i) = find_open_tag(cursor, "Error") {
        let after = &cursor[i..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let open = &after[..open_end];
        let close = after.find("</Error>").unwrap_or(after.len());
        let inner = if close > open_end {
            &after[open_end + 1..close]
        } else {
            ""
        };
        let clean = |s: Option<String>| s.map(|s| redact(&s)).filter(|s| !s.is_empty());
        errors.push(FaultError {
            code: xml_attr(open, "code").filter(|c| !c.is_empty()),
            message: clean(xml_element_text(inner, "Message")),
            detail: clean(xml_element_text(inner, "Detail")),
            element: clean(xml_attr(open, "element")),
        });
        cursor = &after[close.max(open_end)..];
    }
    Some(Fault {
        fault_type: fault_type.map(|t| redact(&t)),
        errors,
    })
}

/// The `<title>` of an HTML page (or its first `<h1>`), one line.
pub(crate) fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    for tag in ["title", "h1"] {
        if let Some(start) = find_open_tag(&lower, tag) {
            let open_end = start + lower[start..].find('>')?;
            let end = lower[open_end..]
                .find(&format!("</{tag}"))
                .map_or(html.len(), |e| open_end + e);
            let title = one_line(&xml_unescape(&html[open_end + 1..end]), 160);
            if !title.is_empty() {
                return Some(title);
            }
        }
    }
    None
}

/// Classifies a response that is an error (any status, or a 2xx carrying a fault).
pub(crate) fn classify_error(meta: &ResponseMeta, body: &ErrorBody) -> QboError {
    let status = meta.status;
    let intuit_tid = meta.intuit_tid.clone();
    let fault = body.fault.clone();
    let detail = error_detail(body);
    let f = fault.as_ref();
    if is_throttle(status, f) {
        return QboError::Throttled {
            status,
            fault,
            detail,
            retry_after: meta.retry_after,
            intuit_tid,
        };
    }
    if is_unauthorized(status, f) {
        return QboError::Unauthorized {
            status,
            fault,
            detail,
            intuit_tid,
        };
    }
    if status == 403 || f.is_some_and(|f| f.is_type("AuthorizationFault")) {
        let hint = (f.is_some_and(|f| f.has_code("3100"))).then_some(ENVIRONMENT_HINT);
        return QboError::Forbidden {
            status,
            fault,
            detail,
            hint,
            intuit_tid,
        };
    }
    if status >= 500 || f.is_some_and(|f| is_server_fault_on_success(status, f)) {
        return QboError::Server {
            status,
            fault,
            detail,
            retry_after: meta.retry_after,
            intuit_tid,
        };
    }
    if status == 408 {
        return QboError::Timeout {
            message: format!(
                "HTTP 408{}",
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
        };
    }
    match fault {
        Some(fault) => QboError::Rejected {
            status,
            fault,
            intuit_tid,
        },
        None => QboError::UnexpectedStatus {
            status,
            detail: with_status_hint(status, detail),
            intuit_tid,
        },
    }
}

/// The one-line summary of a body that was not a fault, else the OAuth error and its
/// description.
fn error_detail(body: &ErrorBody) -> Option<String> {
    body.summary.clone().or_else(|| {
        body.oauth_error
            .as_ref()
            .map(|e| match &body.oauth_description {
                Some(d) => format!("{e}: {d}"),
                None => e.clone(),
            })
    })
}

/// HTTP 429, or Intuit's throttle fault (code 3001, `ThrottleExceeded`) on any status.
fn is_throttle(status: u16, f: Option<&Fault>) -> bool {
    status == 429 || f.is_some_and(|f| f.has_code("3001") || f.mentions("ThrottleExceeded"))
}

/// HTTP 401, or an authentication fault on anything but a 403.
fn is_unauthorized(status: u16, f: Option<&Fault>) -> bool {
    let auth_fault =
        f.is_some_and(|f| f.is_type("AuthenticationFault") || f.is_type("AUTHENTICATION"));
    status == 401 || (auth_fault && status != 403)
}

/// A server-side fault on a 2xx: it may pass if resent (any other fault is the request's).
fn is_server_fault_on_success(status: u16, f: &Fault) -> bool {
    (200..300).contains(&status) && (f.is_type("SystemFault") || f.is_type("SERVICE"))
}

/// `detail` with a hint for the statuses that have one (404: the base URL or realm).
fn with_status_hint(status: u16, detail: Option<String>) -> Option<String> {
    let hint = match status {
        404 => Some("check the API base URL and the realm id"),
        _ => None,
    };
    match (detail, hint) {
        (Some(d), Some(h)) => Some(format!("{d} ({h})")),
        (d, None) => d,
        (None, Some(h)) => Some(h.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

/// A successful token response. Deliberately not `Debug`.
pub(crate) struct TokenGrant {
    pub(crate) access_token: SecretString,
    pub(crate) refresh_token: Option<SecretString>,
    pub(crate) expires_in: Option<u64>,
    pub(crate) refresh_token_expires_in: Option<u64>,
}

/// The token endpoint's JSON, success or error. Deliberately not `Debug`.
#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<NumLike>,
    #[serde(default)]
    x_refresh_token_expires_in: Option<NumLike>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<serde_json::Value>,
}

fn oauth_error(meta: &ResponseMeta, error: &str, description: Option<String>) -> QboError {
    let status = meta.status;
    let intuit_tid = meta.intuit_tid.clone();
    match error {
        "invalid_grant" => QboError::InvalidGrant {
            status,
            description,
            intuit_tid,
        },
        "invalid_client" => QboError::InvalidClient {
            status,
            description,
            intuit_tid,
        },
        other => QboError::TokenEndpoint {
            status: Some(status),
            message: match description {
                Some(d) => format!("{other}: {d}"),
                None => other.to_owned(),
            },
            retryable: status >= 500
                || status == 429
                || matches!(other, "temporarily_unavailable" | "server_error"),
            intuit_tid,
        },
    }
}

/// Turns a token endpoint response into new tokens or a classified error. An `error` field wins
/// even on HTTP 200 (a bare `{"error":"invalid_grant"}` is never a success).
pub(crate) fn interpret_token_response(
    meta: &ResponseMeta,
    body: &[u8],
) -> Result<TokenGrant, QboError> {
    let status = meta.status;
    let parsed = serde_json::from_slice::<RawToken>(body.trim_ascii());
    if let Ok(raw) = &parsed
        && let Some(err) = value_text(raw.error.clone())
    {
        let desc = value_text(raw.error_description.clone()).map(|d| redact(d.trim()));
        return Err(oauth_error(meta, &redact(err.trim()), desc));
    }
    if (200..300).contains(&status) {
        return match parsed {
            Ok(RawToken {
                access_token: Some(at),
                refresh_token,
                expires_in,
                x_refresh_token_expires_in,
                ..
            }) if !at.is_empty() => Ok(TokenGrant {
                access_token: SecretString::from(at),
                refresh_token: refresh_token
                    .filter(|t| !t.is_empty())
                    .map(SecretString::from),
                expires_in: expires_in.and_then(|n| n.0),
                refresh_token_expires_in: x_refresh_token_expires_in.and_then(|n| n.0),
            }),
            Ok(_) => Err(QboError::TokenEndpoint {
                status: Some(status),
                message: "the token response has no access_token".to_owned(),
                retryable: false,
                intuit_tid: meta.intuit_tid.clone(),
            }),
            // Never echo the body: it may hold tokens.
            Err(e) => Err(QboError::TokenEndpoint {
                status: Some(status),
                message: format!(
                    "unreadable token response ({} bytes, {})",
                    body.len(),
                    describe_json_error(&e)
                ),
                retryable: true,
                intuit_tid: meta.intuit_tid.clone(),
            }),
        };
    }
    if status == 401 {
        return Err(QboError::InvalidClient {
            status,
            description: Some("the token endpoint answered 401 without an OAuth error".to_owned()),
            intuit_tid: meta.intuit_tid.clone(),
        });
    }
    let summary = match parse_error_body(body) {
        ErrorBody { fault: Some(f), .. } => f.to_string(),
        ErrorBody {
            summary: Some(s), ..
        } if !s.starts_with("unrecognised JSON") => s,
        _ => format!("{} bytes", body.len()),
    };
    Err(QboError::TokenEndpoint {
        status: Some(status),
        message: summary,
        retryable: status >= 500 || status == 429 || status == 408,
        intuit_tid: meta.intuit_tid.clone(),
    })
}

fn describe_json_error(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "cut short",
        Category::Syntax => "not JSON",
        Category::Data => "unexpected shape",
        Category::Io => "read error",
    }
}

#[cfg(test)]
pub(crate) mod fixture_tests;
