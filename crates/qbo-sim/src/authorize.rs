//! The consent step of OAuth2's authorization-code flow: `GET /connect/oauth2` (Intuit:
//! `https://appcenter.intuit.com/connect/oauth2`), approved at once as if the user had picked the
//! company and clicked "Connect".
//!
//! Intuit's flow: the app sends the browser to
//! `…/connect/oauth2?client_id=…&response_type=code&scope=com.intuit.quickbooks.accounting&redirect_uri=…&state=…`;
//! after consent Intuit redirects to `redirect_uri?code=…&state=…&realmId=…`, and the app exchanges
//! the code at the token endpoint (`grant_type=authorization_code`, see `http::token`).
//!
//! As on Intuit, an unknown `client_id` or a missing / unregistered `redirect_uri` shows an error
//! page instead of redirecting (the redirect target cannot be trusted then); with both valid,
//! every other outcome goes back to the app (RFC 6749 §4.1.2.1): `error=access_denied` when the
//! user cancels (admin toggle), `unsupported_response_type`, `invalid_scope`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::SimState;
use crate::form::{form_get, parse_form};

/// Path of the authorization endpoint (as on `appcenter.intuit.com`).
pub(crate) const AUTHORIZE_PATH: &str = "/connect/oauth2";
/// The same endpoint under an `/appcenter` prefix, for apps that keep Intuit's host as a path.
pub(crate) const AUTHORIZE_ALT_PATH: &str = "/appcenter/connect/oauth2";
/// The scope the simulated API needs.
const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";

/// Intuit's developer detail for a bad `redirect_uri` (recorded on the error page, e.g.
/// intuit/quickbooks-online-mcp-server#51 and vm0-ai/vm0#25780).
const BAD_REDIRECT_URI: &str = "The redirect_uri query parameter value is invalid. Make sure it \
     is listed in the Redirect URIs section on your app's keys tab and matches it exactly.";
/// The detail for an unknown `client_id` (Intuit's wording is unrecorded).
const BAD_CLIENT_ID: &str = "The client_id query parameter value is invalid. Make sure it is \
     the Client ID on your app's keys tab.";

/// Percent-encodes `s` for a URL query component: everything but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

/// Whether `uri` can be redirected to: absolute `http` / `https` with a host, no fragment
/// (RFC 6749 §3.1.2), no whitespace or control characters.
fn valid_redirect_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    !authority.is_empty()
        && !authority.starts_with(':')
        && !uri.contains('#')
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `redirect_uri` plus `params`, appended to any query it already has.
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut location = redirect_uri.to_owned();
    if !location.contains('?') {
        location.push('?');
    } else if !location.ends_with(['?', '&']) {
        location.push('&');
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    location.push_str(&query.join("&"));
    let Ok(value) = HeaderValue::from_str(&location) else {
        return error_page(BAD_REDIRECT_URI);
    };
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(header::LOCATION, value);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The 400 page shown instead of a redirect, shaped like Intuit's "connection problem" page.
fn error_page(detail: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Intuit Accounts</title></head>\n<body>\n<h1>Uh oh, there\u{2019}s a connection \
         problem.</h1>\n<p>Sorry, but the app didn\u{2019}t connect. Please try again later, or \
         contact customer support for help.</p>\n<details open><summary>View error details (for \
         Developers)</summary>\n<p id=\"error-detail\">{detail}</p></details>\n</body></html>\n"
    );
    let mut r = (StatusCode::BAD_REQUEST, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    r
}

/// `GET /connect/oauth2?client_id=…&response_type=code&scope=…&redirect_uri=…&state=…`.
pub(crate) async fn authorize(State(st): State<SimState>, RawQuery(raw): RawQuery) -> Response {
    let params = raw.map(|r| parse_form(r.as_bytes())).unwrap_or_default();
    let inner = &st.inner;
    let client_id = form_get(&params, "client_id").unwrap_or("");
    if client_id.is_empty() || client_id != inner.client_id {
        return error_page(BAD_CLIENT_ID);
    }
    let redirect_uri = form_get(&params, "redirect_uri").unwrap_or("");
    let registered =
        inner.redirect_uris.is_empty() || inner.redirect_uris.iter().any(|u| u == redirect_uri);
    if !valid_redirect_uri(redirect_uri) || !registered {
        return error_page(BAD_REDIRECT_URI);
    }
    let state = form_get(&params, "state");
    let refuse = |error: &'static str| {
        let mut p = vec![("error", error)];
        p.extend(state.map(|s| ("state", s)));
        redirect_to(redirect_uri, &p)
    };
    if form_get(&params, "response_type") != Some("code") {
        return refuse("unsupported_response_type");
    }
    let scope = form_get(&params, "scope").unwrap_or("");
    if !scope.split_whitespace().any(|s| s == ACCOUNTING_SCOPE) {
        return refuse("invalid_scope");
    }
    if st.authorize_deny() {
        return refuse("access_denied");
    }
    let code = st
        .tokens()
        .issue_code(client_id, redirect_uri, inner.auth_code_ttl, &inner.rng);
    let mut p = vec![("code", code.as_str())];
    p.extend(state.map(|s| ("state", s)));
    p.push(("realmId", inner.realm_id.as_str()));
    redirect_to(redirect_uri, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_redirect_uris() {
        assert_eq!(percent_encode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
        for ok in [
            "http://localhost:3000/cb",
            "https://app.example.com/qbo/callback?tenant=1",
            "HTTP://127.0.0.1",
        ] {
            assert!(valid_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "ftp://x/cb",
            "http:///cb",
            "https://app/cb#frag",
            "https://app/c b",
            "/relative",
            "http://:80/cb",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }
}
