//! The error taxonomy: [`QboError`] and the QBO [`Fault`] it may carry. Every variant knows its
//! HTTP status and `intuit_tid` (when there was a response), whether retrying can help, and
//! prints a short operator-facing sentence. Server-supplied text is redacted before it is
//! stored here (see [`crate::redact`]), so neither `Display` nor `Debug` can leak a token.

use std::fmt;
use std::time::Duration;

use crate::{Entity, TimeWindow};

/// One entry of a QBO fault (`Fault.Error[]`, `fault.error[]` or an XML `<Error>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultError {
    /// The error code, e.g. `"4001"` (QBO sends it as a string).
    pub code: Option<String>,
    /// `Message`, e.g. `"Invalid query"` (redacted).
    pub message: Option<String>,
    /// `Detail` (redacted).
    pub detail: Option<String>,
    /// `element`, the offending property, when QBO names one.
    pub element: Option<String>,
}

/// A QBO fault body, in any of its envelopes (JSON `Fault`, lower-case JSON `fault`, XML).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// The fault `type`: `ValidationFault`, `SystemFault`, `AuthenticationFault`,
    /// `AuthorizationFault`, `SERVICE`, `AUTHENTICATION`, …
    pub fault_type: Option<String>,
    /// The errors listed, in order.
    pub errors: Vec<FaultError>,
}

impl Fault {
    /// Whether any error has this code. Also matches the zero-padded `errorCode=00NNNN` form
    /// QBO puts inside messages.
    #[must_use]
    pub fn has_code(&self, code: &str) -> bool {
        let padded = format!("errorCode={code:0>6}");
        self.errors.iter().any(|e| {
            e.code.as_deref().map(str::trim) == Some(code)
                || e.message.as_deref().is_some_and(|m| m.contains(&padded))
        })
    }

    /// Whether any message or detail contains `needle` (case-insensitive).
    #[must_use]
    pub fn mentions(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.errors.iter().any(|e| {
            [&e.message, &e.detail]
                .into_iter()
                .flatten()
                .any(|t| t.to_ascii_lowercase().contains(&needle))
        })
    }

    /// Whether the fault `type` equals `ty`, ignoring case.
    #[must_use]
    pub fn is_type(&self, ty: &str) -> bool {
        self.fault_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ty))
    }

    /// The first error's code, if any.
    #[must_use]
    pub fn first_code(&self) -> Option<&str> {
        self.errors.iter().find_map(|e| e.code.as_deref())
    }
}

impl fmt::Display for Fault {
    /// `(4001 Invalid query): QueryValidationError: …` for each error, joined by `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return match &self.fault_type {
                Some(t) => write!(f, "({t}, no details)"),
                None => f.write_str("(no details)"),
            };
        }
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let head = match (e.code.as_deref(), e.message.as_deref()) {
                (Some(c), Some(m)) => format!("{c} {m}"),
                (Some(c), None) => c.to_owned(),
                (None, Some(m)) => m.to_owned(),
                (None, None) => self
                    .fault_type
                    .clone()
                    .unwrap_or_else(|| "fault".to_owned()),
            };
            write!(f, "({head})")?;
            if let Some(d) = e.detail.as_deref().filter(|d| !d.trim().is_empty()) {
                write!(f, ": {}", d.trim())?;
            }
            if let Some(el) = e.element.as_deref().filter(|el| !el.is_empty()) {
                write!(f, " [element {el}]")?;
            }
        }
        Ok(())
    }
}

/// The hint shown with a 403 `AuthorizationFailed` (code 3100).
pub const ENVIRONMENT_HINT: &str =
    "Check that the environment (sandbox/production) matches your credentials";

/// Everything that can go wrong talking to QuickBooks Online.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QboError {
    /// QBO refused the request itself (a `ValidationFault`: bad query, unknown property, …).
    /// Not retryable.
    #[error("QuickBooks rejected the query {fault}; HTTP {status}{}", tid_suffix(.intuit_tid))]
    Rejected {
        /// HTTP status (400, or 200 when the fault came in a success response).
        status: u16,
        /// The fault QBO sent.
        fault: Fault,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// QBO did not accept the access token (HTTP 401 or an authentication fault), even after
    /// one forced refresh. Not retryable.
    #[error("QuickBooks did not accept the access token (HTTP {status}){}{}", fault_suffix(.fault, .detail), tid_suffix(.intuit_tid))]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// The fault, if the body had one.
        fault: Option<Fault>,
        /// A summary of a body that was not a fault.
        detail: Option<String>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// QBO refused access (HTTP 403, `AuthorizationFailed`). Not retryable.
    #[error("QuickBooks refused access (HTTP {status}){}{}{}", fault_suffix(.fault, .detail), hint_suffix(.hint), tid_suffix(.intuit_tid))]
    Forbidden {
        /// HTTP status.
        status: u16,
        /// The fault, if the body had one.
        fault: Option<Fault>,
        /// A summary of a body that was not a fault.
        detail: Option<String>,
        /// What the operator should check (set for code 3100).
        hint: Option<&'static str>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// QBO throttled the request (HTTP 429 / `ThrottleExceeded`) and retries ran out. Retryable
    /// later.
    #[error("QuickBooks throttled the request (HTTP {status}){}{}", fault_suffix(.fault, .detail), tid_suffix(.intuit_tid))]
    Throttled {
        /// HTTP status (429; 403 in pre-2016 behaviour).
        status: u16,
        /// The fault, if the body had one (often XML).
        fault: Option<Fault>,
        /// A summary of a body that was not a fault.
        detail: Option<String>,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// QBO or its load balancer failed (5xx, possibly an HTML or empty body, or a `SystemFault`).
    /// Retryable.
    #[error("QuickBooks had a server error (HTTP {status}){}{}", fault_suffix(.fault, .detail), tid_suffix(.intuit_tid))]
    Server {
        /// HTTP status.
        status: u16,
        /// The fault, if the body had one.
        fault: Option<Fault>,
        /// A summary of a body that was not a fault (an HTML `<title>`, "empty body", …).
        detail: Option<String>,
        /// The server's `Retry-After` (a 503 may say when to come back), if it sent one.
        retry_after: Option<Duration>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// An HTTP status this client does not expect (404, 405, …) without a usable fault.
    /// Not retryable.
    #[error("QuickBooks answered with unexpected HTTP {status}{}{}", detail_suffix(.detail), tid_suffix(.intuit_tid))]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
        /// A summary of the body, with a hint where one helps.
        detail: Option<String>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// The response body could not be understood: truncated or malformed JSON (retryable), or
    /// well-formed JSON of an unexpected shape (not retryable).
    #[error("QuickBooks sent {} response (HTTP {status}): {message}{}", if *.retryable { "a truncated or malformed" } else { "an unexpected" }, tid_suffix(.intuit_tid))]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
        /// Whether the same request may succeed when sent again.
        retryable: bool,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// No complete answer arrived within the timeout. Retryable.
    #[error("QuickBooks did not answer in time ({message})")]
    Timeout {
        /// What timed out.
        message: String,
    },

    /// The connection failed or dropped before a complete answer. Retryable.
    #[error("Could not talk to QuickBooks: {message}")]
    Connection {
        /// The underlying failure (no URLs, no secrets).
        message: String,
    },

    /// The refresh token is no longer valid (`invalid_grant`): the company must be reconnected.
    /// Terminal.
    #[error("QuickBooks refused the refresh token (invalid_grant{}); reconnect the company (re-authorize the app) to get a new one{}", detail_suffix(.description), tid_suffix(.intuit_tid))]
    InvalidGrant {
        /// HTTP status (400, sometimes 401).
        status: u16,
        /// `error_description`, if sent.
        description: Option<String>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// The app's client id or secret was refused (`invalid_client`). Terminal.
    #[error("QuickBooks refused the app's client credentials (invalid_client{}); check client_id, client_secret and the environment{}", detail_suffix(.description), tid_suffix(.intuit_tid))]
    InvalidClient {
        /// HTTP status (401 or 400).
        status: u16,
        /// `error_description`, if sent.
        description: Option<String>,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// The token endpoint failed in some other way (5xx, timeout, unreadable answer, other
    /// OAuth error).
    #[error("The QuickBooks token endpoint failed{}: {message}{}", status_suffix(.status), tid_suffix(.intuit_tid))]
    TokenEndpoint {
        /// HTTP status, if a response arrived.
        status: Option<u16>,
        /// What went wrong (never token values).
        message: String,
        /// Whether retrying may help.
        retryable: bool,
        /// `intuit_tid` response header.
        intuit_tid: Option<String>,
    },

    /// The token store failed (reading the refresh token, or persisting a rotated one).
    #[error("The token store failed: {0}")]
    TokenStore(#[source] CallerError),

    /// A window's rows kept changing while it was paged: after the allowed re-pages the
    /// `COUNT(*)` still disagreed with the distinct Ids seen.
    #[error(
        "The {entity} window {window} kept changing while it was paged: COUNT(*) said {count} rows but paging saw {seen} distinct Ids (after {passes} passes)"
    )]
    WindowUnstable {
        /// The entity paged.
        entity: Entity,
        /// The window.
        window: TimeWindow,
        /// The last `COUNT(*)`.
        count: u64,
        /// Distinct Ids seen in the last pass.
        seen: u64,
        /// How many times the window was paged.
        passes: u32,
    },

    /// The client settings or credentials are unusable.
    #[error("Invalid QuickBooks client settings: {0}")]
    Config(String),
}

fn tid_suffix(tid: &Option<String>) -> String {
    tid.as_deref()
        .map(|t| format!("; intuit_tid={t}"))
        .unwrap_or_default()
}

fn fault_suffix(fault: &Option<Fault>, detail: &Option<String>) -> String {
    match (fault, detail) {
        (Some(f), _) => format!(" {f}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!(". {h}")).unwrap_or_default()
}

fn status_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl QboError {
    /// Masks every occurrence of each of `secrets` (values the caller knows to be secret,
    /// whatever their shape) in the server-supplied text of a token endpoint error.
    #[must_use]
    pub(crate) fn scrub_token_error(self, secrets: &[&str]) -> Self {
        let scrub = |text: String| crate::redact::redact_with(&text, secrets);
        match self {
            Self::InvalidGrant {
                status,
                description,
                intuit_tid,
            } => Self::InvalidGrant {
                status,
                description: description.map(scrub),
                intuit_tid,
            },
            Self::InvalidClient {
                status,
                description,
                intuit_tid,
            } => Self::InvalidClient {
                status,
                description: description.map(scrub),
                intuit_tid,
            },
            Self::TokenEndpoint {
                status,
                message,
                retryable,
                intuit_tid,
            } => Self::TokenEndpoint {
                status,
                message: scrub(message),
                retryable,
                intuit_tid,
            },
            other => other,
        }
    }

    /// The HTTP status of the response behind this error, if there was one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.response().and_then(|(status, _)| status)
    }

    /// Intuit's transaction id for the failed response (quote it to Intuit support).
    #[must_use]
    pub fn intuit_tid(&self) -> Option<&str> {
        self.response().and_then(|(_, tid)| tid.as_deref())
    }

    /// The status (a token endpoint error may lack one) and `intuit_tid` of the response behind
    /// this error; `None` when there was no response.
    fn response(&self) -> Option<(Option<u16>, &Option<String>)> {
        match self {
            Self::Rejected {
                status, intuit_tid, ..
            }
            | Self::Unauthorized {
                status, intuit_tid, ..
            }
            | Self::Forbidden {
                status, intuit_tid, ..
            }
            | Self::Throttled {
                status, intuit_tid, ..
            }
            | Self::Server {
                status, intuit_tid, ..
            }
            | Self::UnexpectedStatus {
                status, intuit_tid, ..
            }
            | Self::Decode {
                status, intuit_tid, ..
            }
            | Self::InvalidGrant {
                status, intuit_tid, ..
            }
            | Self::InvalidClient {
                status, intuit_tid, ..
            } => Some((Some(*status), intuit_tid)),
            Self::TokenEndpoint {
                status, intuit_tid, ..
            } => Some((*status, intuit_tid)),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::TokenStore(_)
            | Self::WindowUnstable { .. }
            | Self::Config(_) => None,
        }
    }

    /// Whether sending the same request again may succeed: 5xx, 429, timeouts, dropped
    /// connections and truncated bodies. Validation faults and auth failures are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::Server { .. }
            | Self::Timeout { .. }
            | Self::Connection { .. } => true,
            Self::Decode { retryable, .. } | Self::TokenEndpoint { retryable, .. } => *retryable,
            Self::Rejected { .. }
            | Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::UnexpectedStatus { .. }
            | Self::InvalidGrant { .. }
            | Self::InvalidClient { .. }
            | Self::TokenStore(_)
            | Self::WindowUnstable { .. }
            | Self::Config(_) => false,
        }
    }

    /// Whether a smaller request might succeed where this one failed: a server or gateway
    /// failure (5xx), a timeout, a dropped connection or a truncated body. Intuit has timed out
    /// pages of 1,000 rows that it served in pages of 100, so a pager asks in smaller pages
    /// after such a failure.
    #[must_use]
    pub fn may_be_too_big(&self) -> bool {
        match self {
            Self::Server { .. } | Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Decode { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the refresh token was refused (`invalid_grant`): the company must reconnect.
    #[must_use]
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::InvalidGrant { .. })
    }

    /// Whether no retry or refresh can fix this without an operator: `invalid_grant` or
    /// `invalid_client`.
    #[must_use]
    pub fn is_terminal_auth(&self) -> bool {
        matches!(self, Self::InvalidGrant { .. } | Self::InvalidClient { .. })
    }

    /// Whether this is QBO refusing the access token (the trigger for a forced refresh).
    #[must_use]
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    /// The fault QBO sent, if this error carries one.
    #[must_use]
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Self::Rejected { fault, .. } => Some(fault),
            Self::Unauthorized { fault, .. }
            | Self::Forbidden { fault, .. }
            | Self::Throttled { fault, .. }
            | Self::Server { fault, .. } => fault.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_query() -> Fault {
        Fault {
            fault_type: Some("ValidationFault".into()),
            errors: vec![FaultError {
                code: Some("4001".into()),
                message: Some("Invalid query".into()),
                detail: Some("QueryValidationError: invalid context declaration: Custmoer".into()),
                element: None,
            }],
        }
    }

    #[test]
    fn rejected_message_reads_like_a_sentence() {
        let e = QboError::Rejected {
            status: 400,
            fault: invalid_query(),
            intuit_tid: Some("1-abc".into()),
        };
        assert_eq!(
            e.to_string(),
            "QuickBooks rejected the query (4001 Invalid query): QueryValidationError: invalid context \
             declaration: Custmoer; HTTP 400; intuit_tid=1-abc"
        );
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.intuit_tid(), Some("1-abc"));
        assert!(!e.is_retryable());
        assert!(!e.is_terminal_auth());
    }

    #[test]
    fn retryability_and_terminal_auth() {
        let server = QboError::Server {
            status: 503,
            fault: None,
            detail: Some("empty body".into()),
            retry_after: None,
            intuit_tid: None,
        };
        assert!(server.is_retryable());
        assert!(
            QboError::Timeout {
                message: "x".into()
            }
            .is_retryable()
        );
        assert!(
            QboError::Connection {
                message: "x".into()
            }
            .is_retryable()
        );
        let grant = QboError::InvalidGrant {
            status: 400,
            description: None,
            intuit_tid: None,
        };
        assert!(grant.is_invalid_grant() && grant.is_terminal_auth() && !grant.is_retryable());
        let client = QboError::InvalidClient {
            status: 401,
            description: None,
            intuit_tid: None,
        };
        assert!(!client.is_invalid_grant() && client.is_terminal_auth());
        let forbidden = QboError::Forbidden {
            status: 403,
            fault: None,
            detail: None,
            hint: Some(ENVIRONMENT_HINT),
            intuit_tid: None,
        };
        assert!(forbidden.to_string().contains(ENVIRONMENT_HINT));
        assert!(!forbidden.is_retryable());
    }

    #[test]
    fn has_code_matches_padded_message_form() {
        let f = Fault {
            fault_type: Some("AUTHENTICATION".into()),
            errors: vec![FaultError {
                code: None,
                message: Some(
                    "message=AuthorizationFailed; errorCode=003100; statusCode=403".into(),
                ),
                detail: None,
                element: None,
            }],
        };
        assert!(f.has_code("3100"));
        assert!(!f.has_code("3200"));
        assert!(f.is_type("authentication"));
    }
}

/// A failure of something the caller implements for the client (the shared budget, the token
/// store): an operator-facing message and the cause behind it, if any.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallerError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CallerError {
    /// An error with an operator-facing message and no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with an operator-facing message and the cause behind it.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
