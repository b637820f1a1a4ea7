//! Intuit's error bodies (Fault envelope, the lower-case 401 envelope, the XML 429, the load
//! balancer's HTML pages) and the choice of which injected 5xx to send.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::json::push_str;
use crate::query::QueryError;
use crate::rng::SharedRng;
use crate::time::{envelope_time, now_ms};

/// `Content-Type` QBO sends with JSON.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// A response with a JSON body and QBO's content type.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    r
}

/// One error of a `Fault` envelope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultError<'a> {
    pub(crate) message: &'a str,
    pub(crate) detail: Option<&'a str>,
    pub(crate) code: &'a str,
    /// Some faults carry `"element":""`.
    pub(crate) element: bool,
}

impl<'a> FaultError<'a> {
    /// An error about an element of the request (`"element":""`), with a detail.
    pub(crate) fn element(message: &'a str, detail: &'a str, code: &'a str) -> Self {
        Self {
            message,
            detail: Some(detail),
            code,
            element: true,
        }
    }

    /// Code 2010, "Request has invalid or unsupported property".
    pub(crate) fn invalid_property(detail: &'a str) -> Self {
        Self::element(
            "Request has invalid or unsupported property",
            detail,
            "2010",
        )
    }

    /// Code 500, "Unsupported Operation".
    pub(crate) fn unsupported_operation(detail: &'a str) -> Self {
        Self::element("Unsupported Operation", detail, "500")
    }

    /// A query that does not parse or validate.
    pub(crate) fn query(e: &'a QueryError) -> Self {
        Self {
            message: e.message(),
            detail: Some(e.detail()),
            code: e.code(),
            element: false,
        }
    }
}

/// The `type` of the faults about what the request asks.
pub(crate) const VALIDATION_FAULT: &str = "ValidationFault";

/// Appends the member `"Fault":{"Error":[{"Message":…,"Detail":…,"code":…}],"type":…}` (a
/// batch item's answer uses it as is).
pub(crate) fn push_fault(out: &mut String, kind: &str, e: FaultError<'_>) {
    out.push_str("\"Fault\":{\"Error\":[{\"Message\":");
    push_str(out, e.message);
    if let Some(d) = e.detail {
        out.push_str(",\"Detail\":");
        push_str(out, d);
    }
    out.push_str(",\"code\":");
    push_str(out, e.code);
    if e.element {
        out.push_str(",\"element\":\"\"");
    }
    out.push_str("}],\"type\":");
    push_str(out, kind);
    out.push('}');
}

/// `{"Fault":{"Error":[{"Message":…,"Detail":…,"code":…}],"type":…},"time":…}`.
pub(crate) fn fault_body(kind: &str, e: FaultError<'_>) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    push_fault(&mut out, kind, e);
    out.push_str(",\"time\":");
    push_str(&mut out, &envelope_time());
    out.push('}');
    out
}

/// A `Fault` response.
pub(crate) fn fault(status: StatusCode, kind: &str, e: FaultError<'_>) -> Response {
    json(status, fault_body(kind, e))
}

/// A 400 `ValidationFault`.
pub(crate) fn validation_fault(e: FaultError<'_>) -> Response {
    fault(StatusCode::BAD_REQUEST, VALIDATION_FAULT, e)
}

/// The 401 for an expired, unknown or missing bearer token: the lower-case envelope with epoch
/// milliseconds, and `Www-Authenticate`.
pub(crate) fn unauthorized(detail: &str) -> Response {
    let mut out = String::with_capacity(512);
    out.push_str(
        "{\"warnings\":null,\"intuitObject\":null,\"fault\":{\"error\":[{\"message\":\
         \"message=AuthenticationFailed; errorCode=003200; statusCode=401\",\"detail\":",
    );
    push_str(&mut out, detail);
    out.push_str(
        ",\"code\":\"3200\",\"element\":null}],\"type\":\"AUTHENTICATION\"},\"report\":null,\
         \"queryResponse\":null,\"batchItemResponse\":[],\"attachableResponse\":[],\
         \"syncErrorResponse\":null,\"requestId\":null,\"time\":",
    );
    out.push_str(&now_ms().to_string());
    out.push_str(",\"status\":null,\"cdcresponse\":[]}");
    let mut r = json(StatusCode::UNAUTHORIZED, out);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"Intuit\", error=\"invalid_token\""),
    );
    r
}

/// The 403 for a realm the token is not authorised for.
pub(crate) fn forbidden_realm() -> Response {
    fault(
        StatusCode::FORBIDDEN,
        "AuthorizationFault",
        FaultError {
            message: "message=AuthorizationFailed; errorCode=003100; statusCode=403",
            detail: None,
            code: "3100",
            element: false,
        },
    )
}

/// The 429 exactly as recorded: XML even when JSON was asked for, no `Retry-After`.
pub(crate) fn throttled() -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <IntuitResponse time=\"{}\" xmlns=\"http://schema.intuit.com/finance/v3\">\n  \
         <Fault type=\"SERVICE\">\n    <Error code=\"3001\">\n      \
         <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n      \
         <Detail>The request limit was reached.  Try again later</Detail>\n    </Error>\n  \
         </Fault>\n</IntuitResponse>",
        envelope_time()
    );
    let mut r = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

/// The load balancer's HTML error page (Avi Vantage, as seen during a 2018 outage).
fn html_error(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        match status.as_u16() {
            502 => "Bad Gateway",
            503 => "Service Temporarily Unavailable",
            _ => "Internal Server Error",
        }
    );
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body bgcolor=\"white\">\r\n\
         <center><h1>{title}</h1></center>\r\n<hr><center>Avi Vantage/</center>\r\n</body>\r\n\
         </html>\r\n"
    );
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// An injected server error: 500, 502 or 503; HTML from the load balancer with probability
/// `html_share`, else a JSON `SystemFault` (500) or `SERVICE` fault.
pub(crate) fn server_error(rng: &SharedRng, html_share: f64) -> Response {
    let status = match rng.below(3) {
        0 => StatusCode::INTERNAL_SERVER_ERROR,
        1 => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if rng.next_f64() < html_share {
        // The load balancer answers 502/503 itself; a 500 HTML page comes from it as well.
        return html_error(status);
    }
    if status == StatusCode::INTERNAL_SERVER_ERROR && rng.below(2) == 0 {
        return fault(
            status,
            "SystemFault",
            FaultError {
                message: "An application error has occurred while processing your request",
                detail: Some(
                    "System Failure Error: An unexpected error occurred while accessing or saving \
                     your data. Please wait a few minutes and try again. If the problem persists, \
                     contact customer support.",
                ),
                code: "10000",
                element: true,
            },
        );
    }
    let message = match status.as_u16() {
        500 => "message=InternalServerError; errorCode=003100; statusCode=500",
        502 => "message=BadGateway; errorCode=003100; statusCode=502",
        _ => "message=ServiceUnavailable; errorCode=003100; statusCode=503",
    };
    fault(
        status,
        "SERVICE",
        FaultError {
            message,
            detail: None,
            code: "3100",
            element: false,
        },
    )
}
