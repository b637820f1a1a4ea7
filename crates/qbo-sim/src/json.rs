//! Hand-written JSON output helpers: string escaping and number formats QBO uses
//! (`"Amount":100.00` with two decimals, prices in shortest form like `22.5`).

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (quotes included). Non-ASCII stays raw UTF-8.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends an unsigned integer.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Appends an unsigned integer as a JSON string: `"42"` (QBO ids and sync tokens are strings).
pub(crate) fn push_u64_str(out: &mut String, n: u64) {
    out.push('"');
    push_u64(out, n);
    out.push('"');
}

/// Appends an amount in cents with exactly two decimals: `100.00`, `-3.50`.
pub(crate) fn push_money(out: &mut String, cents: i64) {
    if cents < 0 {
        out.push('-');
    }
    let c = cents.unsigned_abs();
    push_u64(out, c / 100);
    out.push('.');
    out.push(char::from(b'0' + (c / 10 % 10) as u8));
    out.push(char::from(b'0' + (c % 10) as u8));
}

/// Appends an amount as QBO does for balances: `0` when zero, else two decimals.
pub(crate) fn push_balance(out: &mut String, cents: i64) {
    if cents == 0 {
        out.push('0');
    } else {
        push_money(out, cents);
    }
}

/// Appends an amount in cents in shortest form: `275`, `22.5`, `12.75`.
pub(crate) fn push_price(out: &mut String, cents: i64) {
    if cents < 0 {
        out.push('-');
    }
    let c = cents.unsigned_abs();
    push_u64(out, c / 100);
    let frac = c % 100;
    if frac != 0 {
        out.push('.');
        out.push(char::from(b'0' + (frac / 10) as u8));
        if !frac.is_multiple_of(10) {
            out.push(char::from(b'0' + (frac % 10) as u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn escapes_like_serde_json() {
        for input in [
            "plain",
            "Café \"El Sol\"",
            "a\\b",
            "tab\tnl\n\u{1}",
            "Müller & Söhne",
            "",
        ] {
            let got = s(|o| push_str(o, input));
            assert_eq!(serde_json::from_str::<String>(&got).unwrap(), input);
            assert_eq!(got, serde_json::to_string(input).unwrap());
        }
    }

    #[test]
    fn number_formats() {
        assert_eq!(s(|o| push_u64(o, 0)), "0");
        assert_eq!(s(|o| push_u64(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(s(|o| push_money(o, 10_000)), "100.00");
        assert_eq!(s(|o| push_money(o, 5)), "0.05");
        assert_eq!(s(|o| push_money(o, -350)), "-3.50");
        assert_eq!(s(|o| push_balance(o, 0)), "0");
        assert_eq!(s(|o| push_price(o, 27_500)), "275");
        assert_eq!(s(|o| push_price(o, 2_250)), "22.5");
        assert_eq!(s(|o| push_price(o, 1_275)), "12.75");
        assert_eq!(s(|o| push_price(o, 5)), "0.05");
    }
}
