//! Scrubbing of server-supplied text before it reaches an error message or a log line: known
//! secrets are replaced, and anything that looks like a token keeps at most its last 4 chars.
//!
//! QBO echoes token material back (a 401 says `Token expired: AB0160139…`), so every message or
//! detail taken from a response body goes through [`redact`] before it is stored in an error.

/// Runs of these characters are candidate tokens (base64, base64url, JWT dots).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// A run this long that mixes letters and digits is treated as a token.
const MIN_TOKEN_LEN: usize = 20;

/// How many trailing characters of a token stay visible.
const KEEP: usize = 4;

/// The redacted form of a token: `…` and its last four characters (none for short values).
fn mask(token: &str) -> String {
    if token.chars().count() < 4 * KEEP {
        return "…".to_owned();
    }
    let tail: Vec<char> = token.chars().rev().take(KEEP).collect();
    let mut out = String::with_capacity(KEEP + 3);
    out.push('…');
    out.extend(tail.into_iter().rev());
    out
}

fn looks_like_token(run: &str) -> bool {
    run.len() >= MIN_TOKEN_LEN
        && run.chars().any(|c| c.is_ascii_digit())
        && run.chars().any(|c| c.is_ascii_alphabetic())
        && !is_transaction_id(run)
}

/// Whether `run` is an `intuit_tid` (`1-` then 8 and 24 hex digits, as Intuit's support asks
/// for it), alone or as the value of `key=`: kept whole, since it is no secret and the one
/// thing that lets Intuit find the request.
fn is_transaction_id(run: &str) -> bool {
    let value = run.rsplit_once('=').map_or(run, |(_, value)| value);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    value
        .strip_prefix("1-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(time, id)| hex(time, 8) && hex(id, 24))
}

/// Replaces every token-looking substring of `text` by `…` plus its last 4 characters.
#[must_use]
pub fn redact(text: &str) -> String {
    redact_with(text, &[])
}

/// Like [`redact`], and additionally masks every occurrence of each of `secrets` (values the
/// client knows to be secret, whatever their shape).
#[must_use]
pub fn redact_with(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 && text.contains(secret) {
            text = text.replace(secret, &mask(secret));
        }
    }
    redact_runs(&text)
}

fn redact_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_token_char(c) {
            if run_start.is_none() {
                run_start = Some(i);
            }
        } else {
            if let Some(start) = run_start.take() {
                push_run(&mut out, &text[start..i]);
            }
            out.push(c);
        }
    }
    if let Some(start) = run_start {
        push_run(&mut out, &text[start..]);
    }
    out
}

fn push_run(out: &mut String, run: &str) {
    if looks_like_token(run) {
        out.push_str(&mask(run));
    } else {
        out.push_str(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_401_detail_keeps_only_last_four() {
        let detail = "Token expired: AB01601390262kxzxOlnHYdhtEVRXISU7piPqQrCmmbDN35Yjd";
        assert_eq!(redact(detail), "Token expired: …5Yjd");
    }

    #[test]
    fn ordinary_fault_text_is_unchanged() {
        for s in [
            "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "QueryValidationError: invalid context declaration: Custmoer",
            "The request limit was reached.  Try again later",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "2020-09-29T06:52:56.527-07:00",
            "Incorrect or invalid refresh token",
        ] {
            assert_eq!(redact(s), s);
        }
    }

    #[test]
    fn intuit_transaction_ids_are_kept_whole() {
        for s in [
            "intuit_tid=1-5f7330b9-2dfd1c3e0c1f7a8b3a9fdd89",
            "HTTP 500; intuit_tid=1-5f7330b9-2dfd1c3e0c1f7a8b3a9fdd89)",
            "1-5f7330b9-2dfd1c3e0c1f7a8b3a9fdd89",
        ] {
            assert_eq!(redact(s), s);
        }
        // The shape only: a token is still masked, even after `intuit_tid=`.
        assert_eq!(
            redact("intuit_tid=AB01601390262kxzxOlnHYdhtEVRXISU7piPqQrCmmbDN35Yjd"),
            "…5Yjd"
        );
    }

    #[test]
    fn jwt_like_tokens_are_masked() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcDEF123";
        let out = redact(&format!("bad token {jwt} here"));
        assert_eq!(out, "bad token …F123 here");
    }

    #[test]
    fn known_short_secrets_are_masked_too() {
        let out = redact_with("Token expired: at-12345", &["at-12345"]);
        assert_eq!(out, "Token expired: …");
        let out = redact_with(
            "a=s3cr b=access-token-0001x",
            &["s3cr", "access-token-0001x"],
        );
        assert_eq!(out, "a=… b=…001x");
    }
}
