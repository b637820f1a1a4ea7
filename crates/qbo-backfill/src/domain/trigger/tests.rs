//! The trigger rules, unit by unit.

use super::fire::*;
use super::params::*;
use super::patch::*;
use super::schedule::*;

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::*;
use jiff::civil::date;

fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn zone(name: &str) -> Zone {
    Zone::parse(name).expect("zone")
}

fn local(text: &str) -> DateTime {
    parse_local_time(text).expect("local time")
}

fn cron(text: &str) -> CronSchedule {
    CronSchedule::parse(text).expect("cron")
}

/// The cron's occurrences in `(from, to]`.
fn occurrences(c: &CronSchedule, z: &Zone, from: &str, to: &str) -> Vec<String> {
    let (mut at, to) = (ts(from), ts(to));
    let mut out = Vec::new();
    while let Some(next) = c.next_after(&z.tz, at).filter(|n| *n <= to) {
        out.push(next.to_string());
        at = next;
    }
    out
}

fn params(inicio: &str, fin: &str) -> serde_json::Value {
    serde_json::json!({"fecha_inicio": inicio, "fecha_fin": fin})
}

fn new_once(local_time: &str, tz: &str) -> NewTrigger {
    NewTrigger {
        pipeline: Some("qb_customers_backfill".to_owned()),
        kind: Some("once".to_owned()),
        local_time: Some(local_time.to_owned()),
        time_zone: Some(tz.to_owned()),
        params: Some(params("2026-01-01", "2026-01-31")),
        ..NewTrigger::default()
    }
}

fn new_cron(expr: &str, tz: &str, inicio: &str, fin: &str) -> NewTrigger {
    NewTrigger {
        pipeline: Some("qb_invoices_backfill".to_owned()),
        kind: Some("cron".to_owned()),
        cron: Some(expr.to_owned()),
        time_zone: Some(tz.to_owned()),
        params: Some(params(inicio, fin)),
        ..NewTrigger::default()
    }
}

fn code(r: Result<(TriggerDef, Arming), TriggerError>) -> &'static str {
    r.expect_err("invalid").code()
}

#[test]
fn guayaquil_ten_am_is_fifteen_utc() {
    let z = zone("America/Guayaquil");
    let at = resolve_local(&z.tz, local("2026-02-02T10:00")).expect("resolves");
    assert_eq!(at, ts("2026-02-02T15:00:00Z"));
    assert_eq!(z.local_text(at), "2026-02-02T10:00:00-05:00");
    let (def, arming) = new_once("2026-02-02T10:00", "America/Guayaquil")
        .validate(ts("2026-01-15T00:00:00Z"))
        .expect("valid");
    assert_eq!(arming.next_fire_utc, Some(ts("2026-02-02T15:00:00Z")));
    assert_eq!(arming.state, TriggerState::Scheduled);
    assert_eq!(def.schedule.local_time(), Some("2026-02-02T10:00"));
    // Seconds are accepted, and so is a space for the `T`; the zone defaults to Guayaquil.
    let mut t = new_once("2026-02-02 10:00:30", "x");
    t.time_zone = None;
    let (def, arming) = t.validate(ts("2026-01-15T00:00:00Z")).expect("valid");
    assert_eq!(def.zone.name, DEFAULT_TIME_ZONE);
    assert_eq!(arming.next_fire_utc, Some(ts("2026-02-02T15:00:30Z")));
}

#[test]
fn zone_names_are_canonical_and_checked() {
    assert_eq!(zone("america/new_york").name, "America/New_York");
    assert_eq!(zone("UTC").name, "UTC");
    assert_eq!(zone(" America/Guayaquil ").name, "America/Guayaquil");
    for bad in [
        "",
        "Mars/Olympus_Mons",
        "-05:00",
        "EST+5",
        "../../etc/passwd",
    ] {
        let err = Zone::parse(bad).err();
        assert_eq!(err.map(|e| e.code()), Some("invalid_time_zone"), "{bad}");
    }
}

#[test]
fn one_time_dst_gap_fires_when_the_gap_ends() {
    // New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
    let ny = zone("America/New_York");
    let at = resolve_local(&ny.tz, local("2026-03-08T02:30")).expect("resolves");
    assert_eq!(at, ts("2026-03-08T07:00:00Z"));
    assert_eq!(ny.local_text(at), "2026-03-08T03:00:00-04:00");
    // Madrid springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z).
    let madrid = zone("Europe/Madrid");
    let at = resolve_local(&madrid.tz, local("2026-03-29T02:30")).expect("resolves");
    assert_eq!(at, ts("2026-03-29T01:00:00Z"));
}

#[test]
fn one_time_dst_fold_takes_the_earlier_instant() {
    // New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
    let ny = zone("America/New_York");
    let at = resolve_local(&ny.tz, local("2026-11-01T01:30")).expect("resolves");
    assert_eq!(at, ts("2026-11-01T05:30:00Z"));
    assert_eq!(ny.local_text(at), "2026-11-01T01:30:00-04:00");
    let madrid = zone("Europe/Madrid");
    let at = resolve_local(&madrid.tz, local("2026-10-25T02:30")).expect("resolves");
    assert_eq!(at, ts("2026-10-25T00:30:00Z"));
}

#[test]
fn cron_in_a_dst_gap_fires_exactly_once_at_the_end_of_the_gap() {
    let ny = zone("America/New_York");
    let got = occurrences(
        &cron("30 2 * * *"),
        &ny,
        "2026-03-06T12:00:00Z",
        "2026-03-10T12:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
            "2026-03-10T06:30:00Z",
        ]
    );
    let madrid = zone("Europe/Madrid");
    let got = occurrences(
        &cron("30 2 * * *"),
        &madrid,
        "2026-03-28T12:00:00Z",
        "2026-03-30T12:00:00Z",
    );
    assert_eq!(got, ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);
    // Several times in one gap collapse into one firing; the regular 03:00 is the same one.
    let got = occurrences(
        &cron("*/20 2,3 * * *"),
        &ny,
        "2026-03-08T06:00:00Z",
        "2026-03-08T08:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:20:00Z",
            "2026-03-08T07:40:00Z"
        ]
    );
}

#[test]
fn cron_in_a_dst_fold_fires_exactly_once_at_the_first_pass() {
    let ny = zone("America/New_York");
    let got = occurrences(
        &cron("30 1 * * *"),
        &ny,
        "2026-10-31T00:00:00Z",
        "2026-11-02T12:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // first 01:30 (EDT); not again at 06:30Z (EST)
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
    // Asked from inside the second pass of the fold, it does not fire the repeated time.
    let next = cron("30 1 * * *").next_after(&ny.tz, ts("2026-11-01T06:10:00Z"));
    assert_eq!(next, Some(ts("2026-11-02T06:30:00Z")));
    let madrid = zone("Europe/Madrid");
    let got = occurrences(
        &cron("30 2 * * *"),
        &madrid,
        "2026-10-24T12:00:00Z",
        "2026-10-26T12:00:00Z",
    );
    assert_eq!(got, ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    // An hourly cron does not run again during the repeated hour.
    let got = occurrences(
        &cron("0 * * * *"),
        &ny,
        "2026-11-01T04:30:00Z",
        "2026-11-01T07:30:00Z",
    );
    assert_eq!(got, ["2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"]);
}

#[test]
fn cron_is_five_fields_and_must_fire() {
    for bad in [
        "",
        "0 10 * *",
        "0 0 10 * * *",
        "61 * * * *",
        "every day",
        "0 10 * * * 2026",
    ] {
        let err = CronSchedule::parse(bad).expect_err(bad);
        assert_eq!(err.code(), "invalid_cron", "{bad}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    assert_eq!(cron("  0   10 * * MON-FRI ").as_str(), "0 10 * * MON-FRI");
    assert!(CronSchedule::parse("@daily").is_ok());
    let now = ts("2026-01-01T00:00:00Z");
    let never = new_cron("0 0 30 2 *", "UTC", "yesterday", "today").validate(now);
    assert_eq!(code(never), "invalid_cron");
    // A valid expression padded past the limit (a list of 0,0,0,…) is refused all the same.
    let padded = format!("{} 10 * * *", vec!["0"; 150].join(","));
    let err = CronSchedule::parse(&padded).expect_err("too long");
    assert_eq!(err.code(), "invalid_cron", "{err}");
    let long = "x".repeat(500);
    let err = CronSchedule::parse(&long).expect_err("bad");
    assert!(err.to_string().len() < 400, "{err}");
}

#[test]
fn local_times_are_strict() {
    for bad in [
        "2026-02-02",
        "2026-02-02T10",
        "2026-02-02T10:00Z",
        "2026-02-02T10:00-05:00",
        "2026-02-30T10:00",
        "2026-02-02T24:00",
        "2026-02-02T10:00:00.5",
        "02/02/2026 10:00",
    ] {
        let err = parse_local_time(bad).expect_err(bad);
        assert_eq!(err.code(), "invalid_local_time", "{bad}");
    }
    let now = ts("2026-03-01T00:00:00Z");
    let past = new_once("2026-02-02T10:00", "America/Guayaquil").validate(now);
    let err = past.expect_err("past");
    assert_eq!(err.code(), "invalid_local_time");
    assert!(err.to_string().contains("already past"), "{err}");
}

#[test]
fn relative_params_resolve_in_the_trigger_zone() {
    let p = TriggerParams::from_json(&params("yesterday", "today")).expect("valid");
    let range = p.resolve(date(2026, 3, 1)).expect("range");
    assert_eq!(
        (range.fecha_inicio, range.fecha_fin),
        (date(2026, 2, 28), date(2026, 3, 1))
    );
    let p = TriggerParams::from_json(&params("today-7d", "today+1d")).expect("valid");
    let range = p.resolve(date(2026, 1, 3)).expect("range");
    assert_eq!(
        (range.fecha_inicio, range.fecha_fin),
        (date(2025, 12, 27), date(2026, 1, 4))
    );
    let p = TriggerParams::from_json(&params("yesterday-2d", "2026-06-01")).expect("valid");
    assert_eq!(
        p.fecha_inicio.resolve(date(2026, 5, 10)),
        Ok(date(2026, 5, 7))
    );
    assert_eq!(p.view().fecha_inicio, "yesterday-2d");
    let p = TriggerParams::from_json(&params("today-007d", "today-0d")).expect("valid");
    assert_eq!(p.to_json(), params("today-7d", "today"));
    // "today" is the local date at the occurrence: 02:00Z on Feb 2 is still Feb 1 in
    // Guayaquil.
    let z = zone("America/Guayaquil");
    assert_eq!(z.date_at(ts("2026-02-02T02:00:00Z")), date(2026, 2, 1));
}

#[test]
fn month_start_params_reread_the_last_closed_months() {
    let p = TriggerParams::from_json(&params("month_start-3m", "month_start")).expect("valid");
    let range = p.resolve(date(2026, 4, 2)).expect("range");
    assert_eq!(
        (range.fecha_inicio, range.fecha_fin),
        (date(2026, 1, 1), date(2026, 4, 1))
    );
    // Across a year, and on the last day of a month.
    let range = p.resolve(date(2026, 2, 28)).expect("range");
    assert_eq!(
        (range.fecha_inicio, range.fecha_fin),
        (date(2025, 11, 1), date(2026, 2, 1))
    );
    assert_eq!(p.to_json(), params("month_start-3m", "month_start"));
    let p = TriggerParams::from_json(&params("month_start-01m", "today")).expect("valid");
    assert_eq!(p.view().fecha_inicio, "month_start-1m");
    for bad in [
        "month_start-m",
        "month_start-3",
        "month_start+1m",
        "month_start-121m",
        "month_startx",
    ] {
        let err = TriggerParams::from_json(&params(bad, "today")).expect_err(bad);
        assert_eq!(err.code(), "invalid_params", "{bad}");
        assert!(err.to_string().contains("month_start-Nm"), "{err}");
    }
}

#[test]
fn params_are_validated_like_the_cli() {
    let now = ts("2026-01-01T00:00:00Z");
    let bad = [
        params("today", "today"),
        params("today", "yesterday"),
        params("2026-01-31", "2026-01-01"),
        params("2026-13-01", "2026-01-02"),
        params("tomorrow", "today"),
        params("today-d", "today"),
        params("today-1w", "today"),
        params("TODAY", "today"),
        params(" today", "today"),
        params("today-999999d", "today"),
        params("1900-01-01", "2026-01-01"),
        serde_json::json!({"fecha_inicio": "yesterday"}),
        serde_json::json!({"fecha_inicio": "yesterday", "fecha_fin": 5}),
        serde_json::json!({"fecha_inicio": "yesterday", "fecha_fin": "today", "x": 1}),
        serde_json::json!(["yesterday", "today"]),
    ];
    for p in bad {
        let mut t = new_cron("0 10 * * *", "UTC", "x", "y");
        t.params = Some(p.clone());
        assert_eq!(code(t.validate(now)), "invalid_params", "{p}");
    }
    // Mixed absolute/relative: checked at the first firing.
    let ok = new_cron("0 10 * * *", "UTC", "2025-12-01", "today").validate(now);
    assert!(ok.is_ok(), "{ok:?}");
    let empty = new_cron("0 10 * * *", "UTC", "2026-03-01", "today").validate(now);
    assert_eq!(code(empty), "invalid_params");
    let long = "9".repeat(200);
    let mut t = new_cron("0 10 * * *", "UTC", &long, "today");
    let err = t.validate(now).expect_err("bad");
    assert!(err.to_string().chars().count() < 250, "{err}");
    t.params = None;
    assert_eq!(code(t.validate(now)), "invalid_params");
}

#[test]
fn other_fields_are_validated_with_codes() {
    let now = ts("2026-01-01T00:00:00Z");
    let mut t = new_once("2026-02-02T10:00", "America/Guayaquil");
    t.pipeline = Some("qb_widgets_backfill".to_owned());
    assert_eq!(code(t.validate(now)), "unknown_pipeline");
    t.pipeline = None;
    assert_eq!(code(t.validate(now)), "unknown_pipeline");
    let mut t = new_once("2026-02-02T10:00", "Nowhere/City");
    assert_eq!(code(t.clone().validate(now)), "invalid_time_zone");
    t.time_zone = None;
    t.kind = Some("weekly".to_owned());
    assert_eq!(code(t.clone().validate(now)), "invalid_kind");
    t.kind = None;
    assert!(t.validate(now).is_ok(), "kind inferred from local_time");
    let mut t = new_once("2026-02-02T10:00", "UTC");
    t.cron = Some("0 10 * * *".to_owned());
    assert_eq!(code(t.validate(now)), "invalid_kind");
    let mut t = new_cron("0 10 * * *", "UTC", "yesterday", "today");
    t.cron = None;
    assert_eq!(code(t.clone().validate(now)), "invalid_cron");
    t.cron = Some("0 10 * * *".to_owned());
    t.realm_id = Some(String::new());
    assert_eq!(code(t.clone().validate(now)), "invalid_realm_id");
    t.realm_id = Some("9130357766900000".to_owned());
    let (def, _) = t.validate(now).expect("valid");
    assert_eq!(def.realm_id.as_deref(), Some("9130357766900000"));
}

#[test]
fn unknown_json_fields_are_rejected() {
    let body = r#"{"pipeline": "qb_customers_backfill", "kind": "once", "timezone": "UTC"}"#;
    assert!(serde_json::from_str::<NewTrigger>(body).is_err());
    let patch: TriggerPatch = serde_json::from_str(r#"{"realm_id": null}"#).expect("patch");
    assert_eq!(patch.realm_id, Some(None));
    let patch: TriggerPatch = serde_json::from_str(r#"{"enabled": false}"#).expect("patch");
    assert_eq!(patch.realm_id, None);
}

fn once_def(local_time: &str) -> TriggerDef {
    new_once(local_time, "America/Guayaquil")
        .validate(ts("2026-01-01T00:00:00Z"))
        .expect("valid")
        .0
}

#[test]
fn once_fires_within_grace_and_is_missed_beyond() {
    let def = once_def("2026-02-02T10:00");
    let due = ts("2026-02-02T15:00:00Z");
    let plan = plan_fire(&def, due, ts("2026-02-02T15:14:59Z"), DEFAULT_GRACE);
    let Decision::Fire { occurrence, range } = plan.decision else {
        panic!("fires: {plan:?}");
    };
    assert_eq!(occurrence, due);
    assert_eq!(range.fecha_inicio, date(2026, 1, 1));
    assert_eq!(plan.after.state, TriggerState::Fired);
    assert!(!plan.after.enabled);
    assert_eq!(plan.after.next_fire_utc, None);
    assert_eq!(plan.missed, 0);
    let plan = plan_fire(&def, due, ts("2026-02-02T15:15:01Z"), DEFAULT_GRACE);
    let Decision::Miss { reason, .. } = &plan.decision else {
        panic!("missed: {plan:?}");
    };
    assert_eq!(
        reason,
        "due at 2026-02-02T15:00:00Z, reached 15m 1s late (grace 15m)"
    );
    assert_eq!(plan.after.state, TriggerState::Missed);
    assert!(!plan.after.enabled);
    assert_eq!(plan.missed, 1);
}

#[test]
fn late_cron_fires_at_most_once_and_counts_the_rest() {
    let (def, arming) = new_cron("*/5 * * * *", "UTC", "yesterday", "today")
        .validate(ts("2026-01-01T00:00:00Z"))
        .expect("valid");
    let due = arming.next_fire_utc.expect("next");
    assert_eq!(due, ts("2026-01-01T00:05:00Z"));
    // Down until 00:31: 00:05..00:30 passed; 00:20, 00:25, 00:30 are within 15 minutes.
    let now = ts("2026-01-01T00:31:00Z");
    let plan = plan_fire(&def, due, now, DEFAULT_GRACE);
    let Decision::Fire { occurrence, range } = plan.decision else {
        panic!("fires: {plan:?}");
    };
    assert_eq!(occurrence, ts("2026-01-01T00:30:00Z"));
    assert_eq!(range.fecha_fin, date(2026, 1, 1));
    assert_eq!(plan.missed, 5);
    assert_eq!(plan.after.next_fire_utc, Some(ts("2026-01-01T00:35:00Z")));
    assert_eq!(plan.after.state, TriggerState::Scheduled);
    // Down for a day: nothing within the grace, everything missed, next after now.
    let (def, _) = new_cron("0 10 * * *", "Europe/Madrid", "yesterday", "today")
        .validate(ts("2026-01-01T00:00:00Z"))
        .expect("valid");
    let due = ts("2026-01-01T09:00:00Z");
    let plan = plan_fire(&def, due, ts("2026-01-03T12:00:00Z"), DEFAULT_GRACE);
    assert!(matches!(plan.decision, Decision::Miss { .. }), "{plan:?}");
    assert_eq!(plan.missed, 3);
    assert_eq!(plan.after.next_fire_utc, Some(ts("2026-01-04T09:00:00Z")));
    assert!(plan.after.enabled);
}

#[test]
fn a_long_outage_is_counted_up_to_a_limit() {
    let (def, _) = new_cron("* * * * *", "UTC", "yesterday", "today")
        .validate(ts("2026-01-01T00:00:00Z"))
        .expect("valid");
    let plan = plan_fire(
        &def,
        ts("2026-01-01T00:01:00Z"),
        ts("2027-01-01T00:00:30Z"),
        DEFAULT_GRACE,
    );
    assert!(matches!(plan.decision, Decision::Fire { .. }), "{plan:?}");
    // 10 000 counted before the grace, then 15 within it: the last fires, 14 are skipped.
    assert_eq!(plan.missed, MAX_COUNTED_MISSES + 14);
    assert_eq!(plan.after.next_fire_utc, Some(ts("2027-01-01T00:01:00Z")));
}

#[test]
fn cron_params_resolve_at_the_occurrence_in_its_zone() {
    let (def, _) = new_cron("59 23 * * *", "America/Guayaquil", "today-2d", "today")
        .validate(ts("2026-01-01T00:00:00Z"))
        .expect("valid");
    // 23:59 local on Jan 10 is 04:59Z on Jan 11; reached a minute later, still Jan 10.
    let due = ts("2026-01-11T04:59:00Z");
    let plan = plan_fire(&def, due, ts("2026-01-11T05:00:01Z"), DEFAULT_GRACE);
    let Decision::Fire { range, .. } = plan.decision else {
        panic!("fires: {plan:?}");
    };
    assert_eq!(
        (range.fecha_inicio, range.fecha_fin),
        (date(2026, 1, 8), date(2026, 1, 10))
    );
}

#[test]
fn a_fired_one_time_trigger_is_only_rearmed_by_a_new_future_local_time() {
    let def = once_def("2026-02-02T10:00");
    let fired = Arming {
        enabled: false,
        state: TriggerState::Fired,
        next_fire_utc: None,
    };
    let now = ts("2026-02-02T16:00:00Z");
    let enable = TriggerPatch {
        enabled: Some(true),
        ..TriggerPatch::default()
    };
    let err = apply_patch(&def, fired, &enable, now).expect_err("finished");
    assert_eq!(err.code(), "trigger_finished");
    // Other edits keep it fired, including a zone change that would put it in the future.
    let edits = [
        TriggerPatch {
            params: Some(params("2026-01-05", "2026-01-06")),
            ..TriggerPatch::default()
        },
        TriggerPatch {
            time_zone: Some("Pacific/Honolulu".to_owned()),
            ..TriggerPatch::default()
        },
        TriggerPatch {
            enabled: Some(false),
            ..TriggerPatch::default()
        },
    ];
    for patch in edits {
        let (_, after) = apply_patch(&def, fired, &patch, now).expect("edit");
        assert_eq!(after, fired, "{patch:?}");
    }
    let same = TriggerPatch {
        local_time: Some("2026-02-02T10:00".to_owned()),
        ..TriggerPatch::default()
    };
    let err = apply_patch(&def, fired, &same, now).expect_err("past");
    assert_eq!(err.code(), "invalid_local_time");
    let rearm = TriggerPatch {
        local_time: Some("2026-02-03T10:00".to_owned()),
        ..TriggerPatch::default()
    };
    let (new, after) = apply_patch(&def, fired, &rearm, now).expect("re-armed");
    assert_eq!(new.schedule.local_time(), Some("2026-02-03T10:00"));
    assert_eq!(after.state, TriggerState::Scheduled);
    assert_eq!(after.next_fire_utc, Some(ts("2026-02-03T15:00:00Z")));
}

#[test]
fn patches_disable_enable_and_reschedule() {
    let now = ts("2026-01-01T12:00:00Z");
    let (def, armed) = new_cron("0 10 * * *", "UTC", "yesterday", "today")
        .validate(now)
        .expect("valid");
    assert_eq!(armed.next_fire_utc, Some(ts("2026-01-02T10:00:00Z")));
    let off = TriggerPatch {
        enabled: Some(false),
        ..TriggerPatch::default()
    };
    let (def, disabled) = apply_patch(&def, armed, &off, now).expect("disable");
    assert_eq!(disabled.state, TriggerState::Disabled);
    assert_eq!(disabled.next_fire_utc, None);
    // Re-enabled three days later: the next occurrence after now, no catch-up.
    let later = ts("2026-01-04T12:00:00Z");
    let on = TriggerPatch {
        enabled: Some(true),
        ..TriggerPatch::default()
    };
    let (def, enabled) = apply_patch(&def, disabled, &on, later).expect("enable");
    assert_eq!(enabled.next_fire_utc, Some(ts("2026-01-05T10:00:00Z")));
    let moved = TriggerPatch {
        cron: Some("30 9 * * *".to_owned()),
        time_zone: Some("America/Guayaquil".to_owned()),
        ..TriggerPatch::default()
    };
    let (def, moved) = apply_patch(&def, enabled, &moved, later).expect("moved");
    assert_eq!(moved.next_fire_utc, Some(ts("2026-01-04T14:30:00Z")));
    assert_eq!(def.zone.name, "America/Guayaquil");
    let wrong = TriggerPatch {
        local_time: Some("2026-02-03T10:00".to_owned()),
        ..TriggerPatch::default()
    };
    let err = apply_patch(&def, moved, &wrong, later).expect_err("kind");
    assert_eq!(err.code(), "invalid_kind");
}

#[test]
fn echoes_are_short() {
    let long = format!("Europe/{}", "x".repeat(300));
    let msg = Zone::parse(&long).expect_err("bad").to_string();
    assert!(msg.chars().count() < 200, "{msg}");
    let msg = parse_local_time(&"1".repeat(300))
        .expect_err("bad")
        .to_string();
    assert!(msg.chars().count() < 250, "{msg}");
}
