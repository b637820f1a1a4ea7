//! [`Amount`]: an exact decimal as QuickBooks writes it in a report cell (`"-403236.99"`),
//! checked on the way in and kept as its text so PostgreSQL `numeric` takes it unchanged. Sums
//! and comparisons are exact (a 128-bit integer scaled by a power of ten); no floating point.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The most significant digits an [`Amount`] may have (so every value fits an `i128`).
pub const MAX_DIGITS: usize = 38;

/// The text was not a plain decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a decimal amount ({why})")]
pub struct AmountError {
    /// The offending text (cut to 64 characters).
    pub text: String,
    /// What was wrong with it.
    pub why: &'static str,
}

/// An exact decimal: an optional `-`, digits, and optionally `.` and more digits (`"0.44"`,
/// `"-46.00"`, `"5000"`, `".5"`). No exponent, no thousands separators, no `+`, at most
/// [`MAX_DIGITS`] digits. Equality and ordering are numeric (`"1.50" == "1.5"`); the text is
/// kept as given.
#[derive(Debug, Clone)]
pub struct Amount {
    text: String,
    mantissa: i128,
    scale: u32,
}

impl Amount {
    /// Zero, with no decimals.
    #[must_use]
    pub fn zero() -> Self {
        Self {
            text: "0".to_owned(),
            mantissa: 0,
            scale: 0,
        }
    }

    /// The text as QuickBooks sent it (a valid PostgreSQL `numeric` literal).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Digits after the decimal point.
    #[must_use]
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Whether the value is zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The exact sum, or `None` if it would not fit [`MAX_DIGITS`]-ish `i128` bounds.
    #[must_use]
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let a = rescale(self.mantissa, self.scale, scale)?;
        let b = rescale(other.mantissa, other.scale, scale)?;
        let mantissa = a.checked_add(b)?;
        Some(Self {
            text: render(mantissa, scale),
            mantissa,
            scale,
        })
    }
}

/// `m × 10^(to − from)`, `None` on overflow (`to ≥ from`).
fn rescale(m: i128, from: u32, to: u32) -> Option<i128> {
    10_i128
        .checked_pow(to - from)
        .and_then(|f| m.checked_mul(f))
}

fn render(mantissa: i128, scale: u32) -> String {
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let sign = if mantissa < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |why| AmountError {
            text: s.chars().take(64).collect(),
            why,
        };
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(fail("no digits"));
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(fail("only digits, one `.` and a leading `-` are allowed"));
        }
        let significant = int.trim_start_matches('0').len() + frac.len();
        if significant > MAX_DIGITS {
            return Err(fail("too many digits"));
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(|| fail("too many digits"))?;
        }
        if negative {
            mantissa = -mantissa;
        }
        let scale = u32::try_from(frac.len()).map_err(|_| fail("too many digits"))?;
        Ok(Self {
            text: s.to_owned(),
            mantissa,
            scale,
        })
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Amount {}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Amount {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, sa, b, sb) = (self.mantissa, self.scale, other.mantissa, other.scale);
        if sa >= sb {
            // If `b` scaled up overflows, it is larger in size than any `a`: its sign decides.
            rescale(b, sb, sa).map_or_else(|| 0.cmp(&b), |b| a.cmp(&b))
        } else {
            rescale(a, sa, sb).map_or_else(|| a.cmp(&0), |a| a.cmp(&b))
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Amount {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_forms_quickbooks_sends() {
        for s in [
            "0.44",
            "-46.00",
            "5000",
            "674842.00",
            "-403236.99",
            ".5",
            "0",
        ] {
            assert_eq!(a(s).as_str(), s);
        }
        assert_eq!(a("-46.00").scale(), 2);
    }

    #[test]
    fn rejects_what_numeric_would_not_take_or_what_is_ambiguous() {
        for s in [
            "", "-", ".", "1,234.56", "1e5", "+1", "12.3.4", " 1", "abc", "1-",
        ] {
            assert!(s.parse::<Amount>().is_err(), "{s:?} should be rejected");
        }
        let long = "9".repeat(39);
        assert!(long.parse::<Amount>().is_err());
        assert!("9".repeat(38).parse::<Amount>().is_ok());
    }

    #[test]
    fn sums_and_compares_exactly() {
        let sum = a("0.1")
            .checked_add(&a("0.20"))
            .and_then(|s| s.checked_add(&a("-46")));
        let sum = sum.expect("fits");
        assert_eq!(sum.as_str(), "-45.70");
        assert_eq!(sum, a("-45.7"));
        assert!(a("-1.5") < a("1"));
        assert_eq!(a("1.50"), a("1.5"));
        assert!(Amount::zero().is_zero());
        assert_eq!(
            a("-0.05")
                .checked_add(&Amount::zero())
                .expect("fits")
                .as_str(),
            "-0.05"
        );
    }
}
