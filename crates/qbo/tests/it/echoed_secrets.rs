//! A token endpoint that echoes what it was sent (the client secret, the refresh token) in its
//! error bodies: the error the client returns masks those values whatever their shape, not
//! only when they look like tokens.

use crate::stub::{Stub, StubResponse};

/// The stub client's secret and refresh token (see `Stub::client`).
const CLIENT_SECRET: &str = "stub-secret";
const REFRESH_TOKEN: &str = "stub-refresh-token-1";

#[tokio::test]
async fn token_endpoint_errors_never_carry_the_secrets_that_were_sent() {
    for response in [
        StubResponse::json(
            400,
            format!(
                r#"{{"error":"invalid_grant","error_description":"refresh token {REFRESH_TOKEN} of client stub-client:{CLIENT_SECRET} is invalid"}}"#
            ),
        ),
        StubResponse::json(
            401,
            format!(
                r#"{{"error":"invalid_client","error_description":"secret {CLIENT_SECRET} does not match"}}"#
            ),
        ),
        StubResponse::json(
            500,
            format!(
                r#"{{"Fault":{{"Error":[{{"Message":"upstream failed","Detail":"client_secret={CLIENT_SECRET} refresh_token={REFRESH_TOKEN}","code":"10000"}}],"type":"SystemFault"}}}}"#
            ),
        ),
    ] {
        let stub = Stub::start(move |_| response.clone()).await;
        let (client, _store) = stub.client(1000);
        let err = client
            .ensure_access_token()
            .await
            .expect_err("the token endpoint refuses");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(CLIENT_SECRET),
            "client secret leaked: {text}"
        );
        assert!(
            !text.contains(REFRESH_TOKEN),
            "refresh token leaked: {text}"
        );
    }
}
