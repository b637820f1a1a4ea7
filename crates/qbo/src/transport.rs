//! HTTP plumbing shared by the query client and the token manager: the counters, the backoff
//! with full jitter, transport errors without URLs or secrets, and reading a capped body that
//! refuses redirects. Both `client` and `auth` build on this module; neither depends on the other's
//! internals.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use url::Url;

use crate::redact::redact;
use crate::{QboError, RetrySettings};

/// Shared counters (atomics, so every clone and task updates them lock-free).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) throttle_wait_ns: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) unauthorized_retries: AtomicU64,
}

/// The backoff before retry number `attempt + 1`: uniformly random in
/// `[0, min(max_backoff, initial_backoff * 2^attempt)]` ("full jitter").
pub(crate) fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let factor = 1_u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let ceiling = retry
        .initial_backoff
        .saturating_mul(factor)
        .min(retry.max_backoff);
    ceiling.mul_f64(fastrand::f64())
}

/// `e` and its sources in one line, each cause added once (`a: b: c`), not redacted.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// The error chain of a transport failure, without URLs and redacted.
pub(crate) fn transport_error(e: reqwest::Error) -> QboError {
    let timeout = e.is_timeout();
    let builder = e.is_builder();
    let message = redact(&error_chain(&e.without_url()));
    if timeout {
        QboError::Timeout { message }
    } else if builder {
        QboError::Config(message)
    } else {
        QboError::Connection { message }
    }
}

/// `err` (a failure while the body was read) naming the response's `intuit_tid`, which Intuit's
/// support asks for, when the error has no field of its own for it.
fn with_tid(err: QboError, intuit_tid: Option<&str>) -> QboError {
    let Some(tid) = intuit_tid else {
        return err;
    };
    match err {
        QboError::Connection { message } => QboError::Connection {
            message: format!("{message}; intuit_tid={tid}"),
        },
        QboError::Timeout { message } => QboError::Timeout {
            message: format!("{message}; intuit_tid={tid}"),
        },
        other => other,
    }
}

/// The largest token endpoint response read.
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Reads a response body of at most `max` bytes (decompressed), refusing redirects. A longer
/// body fails the request (not retryable) instead of filling memory.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, QboError> {
    let status = response.status();
    let intuit_tid =
        crate::response::ResponseMeta::from_parts(status.as_u16(), response.headers()).intuit_tid;
    if status.is_redirection() {
        let host = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| Url::parse(l).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "another address".to_owned());
        return Err(QboError::Decode {
            status: status.as_u16(),
            message: format!(
                "the server answered with a redirect to {host}; redirects are not followed, so credentials never go to another host (check the configured URL)"
            ),
            retryable: false,
            intuit_tid,
        });
    }
    let too_long = |len: u64| QboError::Decode {
        status: status.as_u16(),
        message: format!(
            "the response body is larger than the {} MiB allowed ({len} bytes or more); refused",
            max.div_ceil(1024 * 1024)
        ),
        retryable: false,
        intuit_tid: intuit_tid.clone(),
    };
    let max_u64 = u64::try_from(max).unwrap_or(u64::MAX);
    if let Some(len) = response.content_length()
        && len > max_u64
    {
        return Err(too_long(len));
    }
    let mut body = bytes::BytesMut::new();
    let cut = |e: reqwest::Error| with_tid(transport_error(e), intuit_tid.as_deref());
    while let Some(chunk) = response.chunk().await.map_err(cut)? {
        if body.len() + chunk.len() > max {
            return Err(too_long((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
