//! Time: Pacific (America/Los_Angeles) rendering of instants as QBO emits them, and parsing of
//! the datetime/date literals accepted in queries.
//!
//! Rendering is hand-rolled (offset lookup via jiff, digits by hand) because pages of 1000 rows
//! need two timestamps per row.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// The company time zone: QBO reports instants in Pacific time.
pub(crate) fn pacific() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| {
        TimeZone::get("America/Los_Angeles")
            .unwrap_or_else(|_| TimeZone::fixed(Offset::constant(-8)))
    })
}

/// Pacific UTC offset, in seconds, at a Unix second.
pub(crate) fn pacific_offset_secs(unix_secs: i64) -> i64 {
    match Timestamp::from_second(unix_secs) {
        Ok(ts) => i64::from(pacific().to_offset(ts).seconds()),
        Err(_) => -8 * 3600,
    }
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's `civil_from_days`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01. Howard Hinnant's `days_from_civil`.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn push2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends `YYYY-MM-DD`.
pub(crate) fn push_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push('-');
    push2(out, m);
    out.push('-');
    push2(out, d);
}

/// The Pacific calendar day (days since epoch) of a Unix second.
pub(crate) fn pacific_day(unix_secs: i64) -> i64 {
    (unix_secs + pacific_offset_secs(unix_secs)).div_euclid(86_400)
}

fn push_pacific(out: &mut String, unix_secs: i64, millis: Option<u32>) {
    let off = pacific_offset_secs(unix_secs);
    let local = unix_secs + off;
    push_date(out, local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400) as u32;
    out.push('T');
    push2(out, sod / 3600);
    out.push(':');
    push2(out, sod / 60 % 60);
    out.push(':');
    push2(out, sod % 60);
    if let Some(ms) = millis {
        out.push('.');
        out.push(char::from(b'0' + (ms / 100 % 10) as u8));
        push2(out, ms % 100);
    }
    out.push(if off < 0 { '-' } else { '+' });
    let a = off.unsigned_abs() as u32;
    push2(out, a / 3600);
    out.push(':');
    push2(out, a / 60 % 60);
}

/// Appends an instant as QBO renders `MetaData` times: `2015-10-01T16:54:59-07:00`.
pub(crate) fn push_pacific_secs(out: &mut String, unix_secs: i64) {
    push_pacific(out, unix_secs, None);
}

/// Appends an instant with milliseconds, as in the envelope's `time`: `…T06:04:49.352-07:00`.
pub(crate) fn push_pacific_millis(out: &mut String, unix_ms: i64) {
    push_pacific(
        out,
        unix_ms.div_euclid(1000),
        Some(unix_ms.rem_euclid(1000) as u32),
    );
}

/// Now, as Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The envelope `time` value for now.
pub(crate) fn envelope_time() -> String {
    let mut s = String::with_capacity(32);
    push_pacific_millis(&mut s, now_ms());
    s
}

fn digits(b: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let part = b.get(range)?;
    let mut n = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// Parses `YYYY-MM-DD` at the start of `b`; returns days since epoch.
fn parse_date_prefix(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = i64::from(digits(b, 0..4)?);
    let m = digits(b, 5..7)?;
    let d = digits(b, 8..10)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Local (offset-less) Pacific wall time → Unix ms.
fn pacific_local_to_ms(days: i64, sod_ms: i64) -> Option<i64> {
    let (y, m, d) = civil_from_days(days);
    let sod = sod_ms / 1000;
    let dt = jiff::civil::DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(sod / 3600).ok()?,
        i8::try_from(sod / 60 % 60).ok()?,
        i8::try_from(sod % 60).ok()?,
        0,
    )
    .ok()?;
    let ts = pacific().to_ambiguous_timestamp(dt).compatible().ok()?;
    Some(ts.as_millisecond() + sod_ms % 1000)
}

/// Parses a query datetime literal into Unix milliseconds.
///
/// Accepted: `2011-08-10T10:20:30-0700`, `…-07:00`, `…-07`, `…Z`, `…+00:00`, optional fraction,
/// and date-only `2020-08-18`. Offset-less values are read as Pacific wall time (the company's
/// zone; Intuit does not document this, see the facts file).
pub(crate) fn parse_instant_literal(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let days = parse_date_prefix(b)?;
    if b.len() == 10 {
        return pacific_local_to_ms(days, 0);
    }
    if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
        return None;
    }
    let hh = digits(b, 11..13)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let mm = digits(b, 14..16)?;
    let (ss, mut i) = if b.get(16) == Some(&b':') {
        (digits(b, 17..19)?, 19)
    } else {
        (0, 16)
    };
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut ms = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let sod_ms = i64::from(hh * 3600 + mm * 60 + ss.min(59)) * 1000 + i64::from(ms);
    let rest = &b[i..];
    let offset_secs: i64 = match rest {
        [] => return pacific_local_to_ms(days, sod_ms),
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail.len() {
                2 => (digits(tail, 0..2)?, 0),
                4 => (digits(tail, 0..2)?, digits(tail, 2..4)?),
                5 if tail[2] == b':' => (digits(tail, 0..2)?, digits(tail, 3..5)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let v = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    Some((days * 86_400 - offset_secs) * 1000 + sod_ms)
}

/// Parses the date part of a date or datetime literal (for `TxnDate`, `DueDate`).
pub(crate) fn parse_date_literal(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let days = parse_date_prefix(b)?;
    if b.len() == 10 || parse_instant_literal(s).is_some() {
        Some(days)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1000, 0, 1, 59, 365, 10_000, 20_454, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn renders_pacific_with_dst() {
        let mut s = String::new();
        push_pacific_secs(&mut s, ms("2015-10-01T23:54:59Z") / 1000);
        assert_eq!(s, "2015-10-01T16:54:59-07:00");
        s.clear();
        push_pacific_secs(&mut s, ms("2026-01-15T08:00:00Z") / 1000);
        assert_eq!(s, "2026-01-15T00:00:00-08:00");
        s.clear();
        push_pacific_millis(&mut s, ms("2020-09-29T13:04:49.352Z"));
        assert_eq!(s, "2020-09-29T06:04:49.352-07:00");
    }

    #[test]
    fn parses_literals_with_every_offset_form() {
        let want = ms("2011-08-10T17:20:30Z");
        for lit in [
            "2011-08-10T10:20:30-0700",
            "2011-08-10T10:20:30-07:00",
            "2011-08-10T10:20:30-07",
            "2011-08-10T17:20:30Z",
            "2011-08-10T17:20:30+00:00",
            "2011-08-10T17:20:30.000Z",
            "2011-08-10T10:20:30",
        ] {
            assert_eq!(parse_instant_literal(lit), Some(want), "{lit}");
        }
        assert_eq!(
            parse_instant_literal("2020-08-18"),
            Some(ms("2020-08-18T07:00:00Z"))
        );
        assert_eq!(
            parse_instant_literal("2026-01-01T00:00:00.5Z"),
            Some(ms("2026-01-01T00:00:00.500Z"))
        );
        for bad in [
            "",
            "2020-13-01",
            "2020-02-30",
            "yesterday",
            "2020-01-01T25:00:00Z",
            "2020-01-01T00:00:00+7",
        ] {
            assert_eq!(parse_instant_literal(bad), None, "{bad}");
        }
        assert_eq!(
            parse_date_literal("2020-08-18"),
            Some(days_from_civil(2020, 8, 18))
        );
    }
}
