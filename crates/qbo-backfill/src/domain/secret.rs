//! What a secret's name and value may be: one rule for the CLI, the JSON API, the web pages and
//! the store.

use std::fmt;

/// The longest secret name, in characters.
pub const MAX_SECRET_NAME_CHARS: usize = 64;

/// The longest secret value, in bytes (after surrounding whitespace is trimmed). Intuit's
/// secrets and tokens are well under 1 KiB; the JSON API's body limit (64 KiB) leaves room for
/// this with any escaping.
pub const MAX_SECRET_VALUE_BYTES: usize = 16 * 1024;

/// A valid secret name: 1 to [`MAX_SECRET_NAME_CHARS`] upper-case ASCII letters, digits and `_`
/// (`QBO_REFRESH_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

/// Why a secret's name or value is refused (bad input: nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefusal {
    /// The name breaks the rule.
    #[error(
        "`{0}` is not a secret name: use 1 to 64 upper-case letters, digits and `_` (e.g. QBO_REFRESH_TOKEN)"
    )]
    Name(String),
    /// No value (or only whitespace).
    #[error("no value given for {0}")]
    Empty(SecretName),
    /// The value spans lines.
    #[error("the value for {0} must be a single line")]
    MultiLine(SecretName),
    /// The value holds control characters.
    #[error("the value for {0} contains control characters")]
    ControlCharacters(SecretName),
    /// The value is too long.
    #[error("the value for {0} is longer than {MAX_SECRET_VALUE_BYTES} bytes")]
    TooLong(SecretName),
}

impl SecretName {
    /// Parses a name by the one rule.
    ///
    /// # Errors
    /// [`SecretRefusal::Name`], echoing at most 40 characters of what was given.
    pub fn parse(name: &str) -> Result<Self, SecretRefusal> {
        let valid = !name.is_empty()
            && name.len() <= MAX_SECRET_NAME_CHARS
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(SecretRefusal::Name(echo(name)))
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value to store for this name, from what was given: surrounding whitespace trimmed,
    /// then one line, no control characters, at most [`MAX_SECRET_VALUE_BYTES`] bytes.
    ///
    /// # Errors
    /// The [`SecretRefusal`] naming what is wrong (never the value itself).
    pub fn value<'a>(&self, given: &'a str) -> Result<&'a str, SecretRefusal> {
        let trimmed = given.trim();
        if trimmed.is_empty() {
            Err(SecretRefusal::Empty(self.clone()))
        } else if trimmed.contains(['\n', '\r']) {
            Err(SecretRefusal::MultiLine(self.clone()))
        } else if trimmed.chars().any(char::is_control) {
            Err(SecretRefusal::ControlCharacters(self.clone()))
        } else if trimmed.len() > MAX_SECRET_VALUE_BYTES {
            Err(SecretRefusal::TooLong(self.clone()))
        } else {
            Ok(trimmed)
        }
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// At most 40 characters of a refused value, control characters escaped.
fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(40)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        for ok in ["QBO_REFRESH_TOKEN", "A", "X1_2", &"A".repeat(64)] {
            assert_eq!(
                SecretName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "",
            "lower",
            "QBO-TOKEN",
            "QBO TOKEN",
            "É",
            &"A".repeat(65),
            "A\n",
        ] {
            assert!(SecretName::parse(bad).is_err(), "{bad:?}");
        }
        let long = SecretName::parse(&"a".repeat(10_000)).expect_err("long");
        assert!(long.to_string().len() < 200, "{long}");
    }

    #[test]
    fn values_follow_one_rule() {
        let name = SecretName::parse("QBO_CLIENT_SECRET").expect("name");
        assert_eq!(name.value("  s3cret \n"), Ok("s3cret"));
        assert_eq!(
            name.value(&"v".repeat(MAX_SECRET_VALUE_BYTES))
                .map(str::len),
            Ok(MAX_SECRET_VALUE_BYTES)
        );
        for (given, refusal) in [
            ("   ", SecretRefusal::Empty(name.clone())),
            ("a\nb", SecretRefusal::MultiLine(name.clone())),
            ("a\u{7}b", SecretRefusal::ControlCharacters(name.clone())),
        ] {
            assert_eq!(name.value(given), Err(refusal));
        }
        let too_long = "v".repeat(MAX_SECRET_VALUE_BYTES + 1);
        let refused = name.value(&too_long).expect_err("too long");
        assert_eq!(refused, SecretRefusal::TooLong(name.clone()));
        assert!(
            !refused.to_string().contains("vvv"),
            "the value is never echoed"
        );
    }
}
