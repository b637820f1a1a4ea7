//! The first half of OAuth2 for "Connect QuickBooks": the URL of Intuit's consent page, and the
//! exchange of the authorization code it returns for the company's first tokens (HTTP Basic
//! client credentials, form body, as the refresh grant). Codes are single-use, so the exchange is
//! never retried blindly; a transport failure is reported and the operator connects again.

use jiff::Timestamp;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::response::{ResponseMeta, interpret_token_response};
use crate::token_store::TokenSet;
use crate::transport::transport_error;
use crate::{ClientSettings, QboError};

/// Intuit's consent page.
pub const INTUIT_AUTHORIZE_URL: &str = "https://appcenter.intuit.com/connect/oauth2";

/// The scope that lets the app read the company's accounting data.
pub const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";

/// The consent page URL for `client_id`, coming back to `redirect_uri` with `state`.
#[must_use]
pub fn authorize_url(authorize: &Url, client_id: &str, redirect_uri: &str, state: &str) -> Url {
    let mut url = authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", ACCOUNTING_SCOPE)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state);
    url
}

/// Exchanges an authorization `code` for tokens at the settings' token endpoint.
///
/// # Errors
/// `invalid_grant` (a used, expired or foreign code, or another `redirect_uri`),
/// `invalid_client`, transport failures; messages never carry the code or the secret.
pub async fn exchange_code(
    settings: &ClientSettings,
    client_id: &str,
    client_secret: &SecretString,
    code: &str,
    redirect_uri: &str,
) -> Result<TokenSet, QboError> {
    let http = crate::tls::http_client_builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.connect_timeout)
        .user_agent(settings.user_agent.as_str())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(transport_error)?;
    let sent_at = Timestamp::now();
    let response = http
        .post(settings.token_url.clone())
        .basic_auth(client_id, Some(client_secret.expose_secret()))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .map_err(transport_error)?;
    let meta = ResponseMeta::from_parts(response.status().as_u16(), response.headers());
    let body =
        crate::transport::read_capped(response, crate::transport::MAX_TOKEN_RESPONSE_BYTES).await?;
    let grant = interpret_token_response(&meta, &body)
        .map_err(|e| e.scrub_token_error(&[code, client_secret.expose_secret()]))?;
    let refresh_token = grant.refresh_token.ok_or_else(|| QboError::TokenEndpoint {
        status: Some(meta.status),
        message: "the token endpoint answered the code without a refresh token".to_owned(),
        retryable: false,
        intuit_tid: meta.intuit_tid.clone(),
    })?;
    let after = |secs: Option<u64>| {
        secs.and_then(|s| i64::try_from(s).ok())
            .and_then(|s| sent_at.checked_add(jiff::SignedDuration::from_secs(s)).ok())
    };
    Ok(TokenSet {
        refresh_token,
        access_token: Some(grant.access_token),
        access_token_expires_at: after(grant.expires_in),
        refresh_token_expires_at: after(grant.refresh_token_expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_url_carries_every_parameter_encoded() {
        let base = Url::parse(INTUIT_AUTHORIZE_URL).expect("url");
        let url = authorize_url(
            &base,
            "ABc123",
            "http://localhost:6789/connect/callback",
            "s t&x",
        );
        assert_eq!(
            url.as_str(),
            "https://appcenter.intuit.com/connect/oauth2?client_id=ABc123&response_type=code&scope=com.intuit.quickbooks.accounting&redirect_uri=http%3A%2F%2Flocalhost%3A6789%2Fconnect%2Fcallback&state=s+t%26x"
        );
    }
}
