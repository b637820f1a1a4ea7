//! QuickBooks webhooks as values: the `intuit-signature` check (base64 of HMAC-SHA256 of the
//! exact body under the app's verifier token, compared in constant time), both payload formats
//! Intuit sends (the legacy `eventNotifications[].dataChangeEvent.entities[]` and the CloudEvents
//! batch `[{"specversion":"1.0","type":"qbo.<entity>.<operation>.v1",…}]`) parsed into one
//! [`Event`] shape, and the coalescing rule: when the pending changes of one company and entity
//! are due as one incremental sync, and which range that sync loads. No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use jiff::Timestamp;
use serde_json::Value;
use sha2::Sha256;

use super::catalog;
use super::pipeline::{DateRange, RangeError, range_since};

/// The header Intuit signs each delivery with.
pub const SIGNATURE_HEADER: &str = "intuit-signature";

/// The largest webhook body accepted (Intuit sets no limit; 2 MB is the common server default
/// its documentation mentions, and a delivery of thousands of events stays far below this).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long the changes of one company and entity must be quiet before they become a sync,
/// unless configured otherwise (`QBO_WEBHOOK_QUIET_SECS`).
pub const DEFAULT_QUIET: Duration = Duration::from_secs(3);

/// A stream of changes that never goes quiet still becomes a sync once its oldest pending event
/// waited this many quiet periods.
pub const MAX_HOLD_QUIET_PERIODS: u32 = 10;

/// How far back a webhook sync reaches at most, whatever the event's time says (a delivery
/// retried for days, a clock gone wrong): older changes are the daily sync's and `verify`'s.
pub const MAX_LOOKBACK: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// The base64 HMAC-SHA256 of `body` under `token`: what Intuit puts in `intuit-signature`.
#[must_use]
pub fn sign(body: &[u8], token: &str) -> String {
    let mut mac = new_mac(token);
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn new_mac(token: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Whether `signature` (the header as sent) is the signature of `body` under `token`, compared
/// in constant time. A header that is not base64, or empty, is not.
#[must_use]
pub fn verify(body: &[u8], token: &str, signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = new_mac(token);
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Which of Intuit's payload formats a delivery used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities":[…]}}]}`.
    Legacy,
    /// `[{"specversion":"1.0","id","type":"qbo.<entity>.<operation>.v1",…}]`.
    CloudEvents,
}

impl Format {
    /// The stored name: `legacy` or `cloudevents`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::CloudEvents => "cloudevents",
        }
    }
}

/// One change QuickBooks reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's id: the CloudEvents `id`; for the legacy format, which has none, one built
    /// from what identifies the change (company, entity, id, operation, `lastUpdated`), so a
    /// redelivery has the same id.
    pub id: String,
    /// The company (`realmId`, `intuitaccountid`).
    pub realm_id: String,
    /// The entity as QuickBooks names it (`Invoice`); for CloudEvents, the catalog's spelling
    /// when the entity is one we load, else as sent.
    pub entity: String,
    /// The entity's `Id`.
    pub entity_id: String,
    /// `Create`, `Update`, `Delete`, `Merge`, `Void`, `Emailed` (or what was sent).
    pub operation: String,
    /// When QuickBooks says the change happened, if it said so readably.
    pub time: Option<Timestamp>,
}

impl Event {
    /// The entity, if it is one we load.
    #[must_use]
    pub fn known_entity(&self) -> Option<qbo::Entity> {
        entity_named(&self.entity)
    }

    /// Whether the change is a deletion (QuickBooks' change data capture reports it; list
    /// entities are never deleted, they become inactive and arrive as updates).
    #[must_use]
    pub fn is_delete(&self) -> bool {
        self.operation.eq_ignore_ascii_case("delete")
    }
}

/// The entity of the catalog named `name`, in any case (`invoice`, `Invoice`, `salesreceipt`).
#[must_use]
pub fn entity_named(name: &str) -> Option<qbo::Entity> {
    catalog::ENTITIES
        .iter()
        .find(|spec| spec.entity.qbo_name().eq_ignore_ascii_case(name))
        .map(|spec| spec.entity)
}

/// What a delivery held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Its format.
    pub format: Format,
    /// The events that could be read, in the order sent.
    pub events: Vec<Event>,
    /// Why the others could not (one line each, without their content).
    pub skipped: Vec<String>,
}

/// Why a delivery could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but neither format.
    #[error(
        "the body is neither Intuit's legacy format (eventNotifications) nor a CloudEvents batch"
    )]
    UnknownShape,
    /// A recognised format with no event that could be read.
    #[error("no event could be read ({0})")]
    NoEvents(String),
}

/// Reads a delivery in either format.
///
/// # Errors
/// [`PayloadError`] when the body is not JSON, has neither shape, or has no readable event
/// (events that cannot be read next to readable ones are listed in [`Parsed::skipped`]).
pub fn parse(body: &[u8]) -> Result<Parsed, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let mut parsed = match &value {
        Value::Object(map) if map.contains_key("eventNotifications") => legacy(&value),
        Value::Array(items) => cloud_events(items),
        _ => return Err(PayloadError::UnknownShape),
    };
    if parsed.events.is_empty() && !parsed.skipped.is_empty() {
        return Err(PayloadError::NoEvents(parsed.skipped.join("; ")));
    }
    parsed.skipped.truncate(20);
    Ok(parsed)
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An instant as Intuit writes them: RFC 3339 (`2025-09-08T20:52:31.657Z`) or with an offset
/// without a colon (`2015-10-05T14:42:19-0700`).
#[must_use]
pub fn parse_time(text: &str) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", text)
        .or_else(|_| jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", text))
        .ok()?
        .to_timestamp()
        .ok()
}

fn legacy(value: &Value) -> Parsed {
    let mut parsed = Parsed {
        format: Format::Legacy,
        events: Vec::new(),
        skipped: Vec::new(),
    };
    let notifications = value
        .get("eventNotifications")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if notifications.is_empty() {
        parsed.skipped.push("eventNotifications is empty".into());
    }
    for (n, notification) in notifications.iter().enumerate() {
        let Some(realm_id) = text(notification, "realmId") else {
            parsed
                .skipped
                .push(format!("eventNotifications[{n}] has no realmId"));
            continue;
        };
        let entities = notification
            .pointer("/dataChangeEvent/entities")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (e, entity) in entities.iter().enumerate() {
            match legacy_event(&realm_id, entity) {
                Some(event) => parsed.events.push(event),
                None => parsed.skipped.push(format!(
                    "eventNotifications[{n}].dataChangeEvent.entities[{e}] lacks name, id or operation"
                )),
            }
        }
    }
    parsed
}

fn legacy_event(realm_id: &str, entity: &Value) -> Option<Event> {
    let name = text(entity, "name")?;
    let entity_id = text(entity, "id")?;
    let operation = text(entity, "operation")?;
    let last_updated = text(entity, "lastUpdated").unwrap_or_default();
    let time = parse_time(&last_updated);
    let id = format!("legacy:{realm_id}:{name}:{entity_id}:{operation}:{last_updated}");
    Some(Event {
        id,
        realm_id: realm_id.to_owned(),
        entity: name,
        entity_id,
        operation,
        time,
    })
}

fn cloud_events(items: &[Value]) -> Parsed {
    let mut parsed = Parsed {
        format: Format::CloudEvents,
        events: Vec::new(),
        skipped: Vec::new(),
    };
    if items.is_empty() {
        parsed.skipped.push("the batch is empty".into());
    }
    for (i, item) in items.iter().enumerate() {
        match cloud_event(item) {
            Ok(event) => parsed.events.push(event),
            Err(why) => parsed.skipped.push(format!("event [{i}] {why}")),
        }
    }
    parsed
}

fn cloud_event(item: &Value) -> Result<Event, &'static str> {
    if text(item, "specversion").as_deref() != Some("1.0") {
        return Err("is not a CloudEvent 1.0");
    }
    let id = text(item, "id").ok_or("has no id")?;
    let kind = text(item, "type").ok_or("has no type")?;
    let realm_id = text(item, "intuitaccountid").ok_or("has no intuitaccountid")?;
    let entity_id = text(item, "intuitentityid").ok_or("has no intuitentityid")?;
    let (entity, operation) =
        split_type(&kind).ok_or("has a type not of the form qbo.<entity>.<operation>.v<N>")?;
    let time = text(item, "time").and_then(|t| parse_time(&t));
    Ok(Event {
        id,
        realm_id,
        entity,
        entity_id,
        operation,
        time,
    })
}

/// `qbo.invoice.updated.v1` → (`Invoice`, `Update`): the entity in the catalog's spelling when
/// we load it, the operation as the legacy format names it.
fn split_type(kind: &str) -> Option<(String, String)> {
    let mut parts = kind.split('.');
    let (Some("qbo"), Some(entity), Some(operation), Some(version), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if entity.is_empty() || operation.is_empty() || !version.starts_with('v') {
        return None;
    }
    let entity =
        entity_named(entity).map_or_else(|| entity.to_owned(), |e| e.qbo_name().to_owned());
    let operation = match operation.to_ascii_lowercase().as_str() {
        "created" | "create" => "Create".to_owned(),
        "updated" | "update" => "Update".to_owned(),
        "deleted" | "delete" => "Delete".to_owned(),
        "merged" | "merge" => "Merge".to_owned(),
        "voided" | "void" => "Void".to_owned(),
        "emailed" => "Emailed".to_owned(),
        other => other.to_owned(),
    };
    Some((entity, operation))
}

/// Why an event is recorded but leads to no sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The company is not one we load.
    UnknownCompany,
    /// The entity is not one we load.
    UnknownEntity,
}

impl Ignored {
    /// The stored reason.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCompany => "unknown_company",
            Self::UnknownEntity => "unknown_entity",
        }
    }
}

/// The pending (not yet synced) events of one company and entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGroup {
    /// The company.
    pub realm_id: String,
    /// The entity.
    pub entity: qbo::Entity,
    /// The earliest change: QuickBooks' time, or when received if it gave none (or a later one).
    pub earliest: Timestamp,
    /// When the first of them arrived.
    pub first_received: Timestamp,
    /// When the last of them arrived.
    pub last_received: Timestamp,
    /// How many.
    pub events: i64,
}

impl PendingGroup {
    /// Whether the group becomes a sync at `now`: no event for `quiet`, or its oldest event
    /// waited [`MAX_HOLD_QUIET_PERIODS`] quiet periods.
    #[must_use]
    pub fn is_due(&self, now: Timestamp, quiet: Duration) -> bool {
        let quiet = jiff::SignedDuration::try_from(quiet).unwrap_or(jiff::SignedDuration::ZERO);
        let hold = quiet
            .checked_mul(i32::try_from(MAX_HOLD_QUIET_PERIODS).unwrap_or(i32::MAX))
            .unwrap_or(quiet);
        now.duration_since(self.last_received) >= quiet
            || now.duration_since(self.first_received) >= hold
    }

    /// The range the sync loads: from the UTC day of the earliest change (less the cursor's
    /// overlap) to the end of today, as a sync from a cursor at that instant would
    /// ([`range_since`]); at most [`MAX_LOOKBACK`] back.
    ///
    /// # Errors
    /// Dates out of what can be represented.
    pub fn range(&self, now: Timestamp) -> Result<DateRange, RangeError> {
        let oldest = now.checked_sub(MAX_LOOKBACK).unwrap_or(now);
        range_since(self.earliest.clamp(oldest, now), now)
    }
}

/// Counts events per (company, entity name): what a delivery touched, for its log line.
#[must_use]
pub fn tally(events: &[Event]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry((e.realm_id.clone(), e.entity.clone()))
            .or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
    }

    #[test]
    fn a_signature_verifies_only_under_its_token_and_over_its_exact_body() {
        let body = br#"{"eventNotifications":[]}"#;
        let sig = sign(body, "verifier-token");
        assert!(verify(body, "verifier-token", &sig));
        assert!(!verify(body, "another-token", &sig));
        assert!(!verify(
            br#"{"eventNotifications":[] }"#,
            "verifier-token",
            &sig
        ));
        assert!(!verify(body, "verifier-token", ""));
        assert!(!verify(body, "verifier-token", "not base64 !!"));
        let mut tampered = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .expect("base64");
        tampered[0] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert!(!verify(body, "verifier-token", &tampered));
    }

    #[test]
    fn the_signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(b"what do ya want for nothing?", "Jefe");
        let hex: String = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .expect("base64")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn intuits_legacy_sample_reads_as_two_creates() {
        let parsed = parse(&fixture("legacy-managing-notifications.json")).expect("parsed");
        assert_eq!(parsed.format, Format::Legacy);
        assert!(parsed.skipped.is_empty());
        let got: Vec<(&str, &str, &str, &str)> = parsed
            .events
            .iter()
            .map(|e| {
                (
                    e.realm_id.as_str(),
                    e.entity.as_str(),
                    e.entity_id.as_str(),
                    e.operation.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("1185883450", "Customer", "1", "Create"),
                ("1185883450", "Vendor", "1", "Create")
            ]
        );
        let t: Timestamp = "2015-10-05T21:42:19Z".parse().expect("ts");
        assert!(parsed.events.iter().all(|e| e.time == Some(t)));
        assert_ne!(parsed.events[0].id, parsed.events[1].id);
        assert_eq!(parsed.events[0].known_entity(), Some(qbo::Entity::Customer));
        assert_eq!(parsed.events[1].known_entity(), Some(qbo::Entity::Vendor));
    }

    #[test]
    fn the_legacy_sample_of_the_migration_notice_reads_with_milliseconds() {
        let parsed = parse(&fixture("legacy-migration-notice.json")).expect("parsed");
        assert_eq!(parsed.events.len(), 1);
        let e = &parsed.events[0];
        assert_eq!(
            (e.realm_id.as_str(), e.entity.as_str(), e.entity_id.as_str()),
            ("310687", "Account", "1234")
        );
        assert_eq!(
            e.time,
            Some("2025-09-08T20:52:31.657Z".parse().expect("ts"))
        );
    }

    #[test]
    fn intuits_cloud_events_samples_read_with_their_ids() {
        let parsed = parse(&fixture("cloudevents-migration-notice.json")).expect("parsed");
        assert_eq!(parsed.format, Format::CloudEvents);
        let e = &parsed.events[0];
        assert_eq!(e.id, "88cd52aa-33b6-4351-9aa4-47572edbd068");
        assert_eq!(
            (
                e.realm_id.as_str(),
                e.entity.as_str(),
                e.entity_id.as_str(),
                e.operation.as_str()
            ),
            ("310687", "Account", "1234", "Create")
        );
        assert_eq!(
            e.time,
            Some("2025-09-10T21:31:25.179851517Z".parse().expect("ts"))
        );

        let merged = parse(&fixture("cloudevents-customer-merged.json")).expect("parsed");
        let e = &merged.events[0];
        assert_eq!(
            (
                e.entity.as_str(),
                e.entity_id.as_str(),
                e.operation.as_str()
            ),
            ("Customer", "123", "Merge")
        );
        assert!(!e.is_delete());
    }

    #[test]
    fn a_cloud_events_batch_may_mix_companies_and_skip_what_it_cannot_read() {
        let body = serde_json::json!([
            {"specversion": "1.0", "id": "a", "type": "qbo.invoice.deleted.v1",
             "intuitaccountid": "1", "intuitentityid": "5", "time": "2026-01-02T03:04:05Z"},
            {"specversion": "1.0", "id": "b", "type": "qbo.salesreceipt.updated.v1",
             "intuitaccountid": "2", "intuitentityid": "6"},
            {"specversion": "1.0", "id": "c", "type": "qbo.budget.created.v1",
             "intuitaccountid": "2", "intuitentityid": "7"},
            {"specversion": "1.0", "type": "qbo.invoice.created.v1"},
            {"specversion": "1.0", "id": "d", "type": "invoice",
             "intuitaccountid": "2", "intuitentityid": "8"}
        ]);
        let parsed = parse(body.to_string().as_bytes()).expect("parsed");
        assert_eq!(parsed.events.len(), 3);
        assert_eq!(parsed.skipped.len(), 2, "{:?}", parsed.skipped);
        assert!(parsed.events[0].is_delete());
        assert_eq!(parsed.events[0].known_entity(), Some(qbo::Entity::Invoice));
        assert_eq!(parsed.events[1].entity, "SalesReceipt");
        assert_eq!(parsed.events[1].realm_id, "2");
        assert_eq!(parsed.events[1].time, None);
        assert_eq!(parsed.events[2].known_entity(), None);
        assert_eq!(tally(&parsed.events).len(), 3);
    }

    #[test]
    fn malformed_bodies_say_why() {
        assert!(matches!(parse(b"not json"), Err(PayloadError::NotJson(_))));
        assert_eq!(parse(b"{\"a\":1}"), Err(PayloadError::UnknownShape));
        assert!(matches!(parse(b"[]"), Err(PayloadError::NoEvents(_))));
        assert!(matches!(
            parse(br#"[{"specversion":"1.0"}]"#),
            Err(PayloadError::NoEvents(_))
        ));
        assert!(matches!(
            parse(br#"{"eventNotifications":[{"dataChangeEvent":{}}]}"#),
            Err(PayloadError::NoEvents(_))
        ));
    }

    #[test]
    fn a_legacy_redelivery_has_the_same_id_and_another_change_another() {
        let one = br#"{"eventNotifications":[{"realmId":"9","dataChangeEvent":{"entities":[
            {"name":"Invoice","id":"3","operation":"Update","lastUpdated":"2026-01-02T03:04:05.000Z"}]}}]}"#;
        let two = br#"{"eventNotifications":[{"realmId":"9","dataChangeEvent":{"entities":[
            {"name":"Invoice","id":"3","operation":"Update","lastUpdated":"2026-01-02T03:04:06.000Z"}]}}]}"#;
        let a = parse(one).expect("one");
        let b = parse(one).expect("again");
        let c = parse(two).expect("two");
        assert_eq!(a.events[0].id, b.events[0].id);
        assert_ne!(a.events[0].id, c.events[0].id);
    }

    fn group(earliest: &str, first: &str, last: &str) -> PendingGroup {
        PendingGroup {
            realm_id: "1".into(),
            entity: qbo::Entity::Invoice,
            earliest: earliest.parse().expect("ts"),
            first_received: first.parse().expect("ts"),
            last_received: last.parse().expect("ts"),
            events: 3,
        }
    }

    #[test]
    fn a_group_is_due_once_quiet_or_once_held_too_long() {
        let g = group(
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:20Z",
        );
        let quiet = Duration::from_secs(3);
        let at = |s: &str| -> Timestamp { s.parse().expect("ts") };
        assert!(!g.is_due(at("2026-03-01T10:00:22Z"), quiet));
        assert!(g.is_due(at("2026-03-01T10:00:23Z"), quiet));
        let busy = group(
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:29Z",
        );
        assert!(!busy.is_due(at("2026-03-01T10:00:29.500Z"), quiet));
        assert!(busy.is_due(at("2026-03-01T10:00:30Z"), quiet));
    }

    #[test]
    fn the_range_starts_at_the_earliest_changes_day_and_ends_tomorrow() {
        let now: Timestamp = "2026-03-05T10:00:00Z".parse().expect("ts");
        let g = group(
            "2026-03-05T00:05:00Z",
            "2026-03-05T09:59:00Z",
            "2026-03-05T09:59:00Z",
        );
        let r = g.range(now).expect("range");
        assert_eq!(
            (r.fecha_inicio.to_string(), r.fecha_fin.to_string()),
            ("2026-03-04".into(), "2026-03-06".into()),
            "ten minutes of overlap reach into the day before"
        );
        let start_with_earliest = |earliest: &str| {
            let g = group(earliest, "2026-03-05T09:59:00Z", "2026-03-05T09:59:00Z");
            g.range(now).expect("range").fecha_inicio.to_string()
        };
        assert_eq!(start_with_earliest("2025-01-01T00:00:00Z"), "2026-02-26");
        assert_eq!(start_with_earliest("2027-01-01T00:00:00Z"), "2026-03-05");
    }

    #[test]
    fn times_parse_in_both_of_intuits_spellings() {
        let want: Timestamp = "2015-10-05T21:42:19Z".parse().expect("ts");
        assert_eq!(parse_time("2015-10-05T14:42:19-0700"), Some(want));
        assert_eq!(parse_time("2015-10-05T14:42:19-07:00"), Some(want));
        assert_eq!(parse_time("2015-10-05T21:42:19Z"), Some(want));
        assert_eq!(parse_time("yesterday"), None);
    }
}
