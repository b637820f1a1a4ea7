//! Intuit's OpenID discovery document, pointing at this simulator.
//!
//! Intuit's OAuth clients look their endpoints up instead of hard-coding them: intuit-oauth
//! (Python `AuthClient`) fetches the document in its constructor, and treats any `environment`
//! other than sandbox/production as the document's URL, so
//! `AuthClient(…, environment="http://127.0.0.1:PORT/.well-known/openid_configuration")` is all
//! it takes to aim it at the simulator. The field set and order are Intuit's; `issuer` keeps
//! Intuit's value (it is an identifier, compared against `id_token`s, which the simulator never
//! issues).

use crate::json::push_str;

/// Path of the revocation endpoint (Intuit: `https://developer.api.intuit.com/v2/oauth2/tokens/revoke`).
pub(crate) const REVOKE_PATH: &str = "/v2/oauth2/tokens/revoke";
/// Path of the (empty) key set.
pub(crate) const JWKS_PATH: &str = "/op/v1/jwks";
/// Path of the user-info endpoint (not served).
const USERINFO_PATH: &str = "/v1/openid_connect/userinfo";

/// The discovery document with every endpoint under `base` (`http://host:port`).
pub(crate) fn discovery_document(base: &str, token_path: &str, authorize_path: &str) -> String {
    let url = |path: &str| format!("{base}{path}");
    let mut out = String::with_capacity(1024);
    out.push_str(
        "{\"issuer\":\"https://oauth.platform.intuit.com/op/v1\",\"authorization_endpoint\":",
    );
    push_str(&mut out, &url(authorize_path));
    out.push_str(",\"token_endpoint\":");
    push_str(&mut out, &url(token_path));
    out.push_str(",\"userinfo_endpoint\":");
    push_str(&mut out, &url(USERINFO_PATH));
    out.push_str(",\"revocation_endpoint\":");
    push_str(&mut out, &url(REVOKE_PATH));
    out.push_str(",\"jwks_uri\":");
    push_str(&mut out, &url(JWKS_PATH));
    out.push_str(
        ",\"response_types_supported\":[\"code\"],\"subject_types_supported\":[\"public\"],\
         \"id_token_signing_alg_values_supported\":[\"RS256\"],\
         \"scopes_supported\":[\"openid\",\"email\",\"profile\",\"address\",\"phone\"],\
         \"token_endpoint_auth_methods_supported\":[\"client_secret_post\",\"client_secret_basic\"],\
         \"claims_supported\":[\"aud\",\"exp\",\"iat\",\"iss\",\"realmid\",\"sub\"]}",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_points_at_base() {
        let doc = discovery_document(
            "http://127.0.0.1:9",
            "/oauth2/v1/tokens/bearer",
            "/connect/oauth2",
        );
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            v["token_endpoint"],
            "http://127.0.0.1:9/oauth2/v1/tokens/bearer"
        );
        assert_eq!(
            v["revocation_endpoint"],
            "http://127.0.0.1:9/v2/oauth2/tokens/revoke"
        );
        assert_eq!(v["issuer"], "https://oauth.platform.intuit.com/op/v1");
        assert_eq!(
            v["authorization_endpoint"],
            "http://127.0.0.1:9/connect/oauth2"
        );
    }
}
