//! `api-tokens create NAME [--scope read|run|admin] [--expires-in 90d]`, `list` and `revoke ID|NAME`: the bearer tokens of the JSON API and
//! `/metrics`.

use tracing::info;

use crate::cli::setup::connect;
use crate::cli::{ApiTokensAction, CliError, bad, fail};
use crate::store::auth::api_tokens;

/// Runs an `api-tokens` subcommand; returns the exit status.
pub(crate) async fn api_tokens(action: ApiTokensAction) -> Result<u8, CliError> {
    let pool = connect().await?;
    match action {
        ApiTokensAction::Create {
            name,
            scope,
            expires_in,
        } => {
            let (id, token) = api_tokens::create(&pool, &name, scope, expires_in)
                .await
                .map_err(fail)?;
            let until = expires_in.map_or_else(
                || "until revoked".to_owned(),
                |l| format!("for {} hours", l.as_secs() / 3600),
            );
            info!(
                "Created API token `{name}` (id {id}, scope {scope}, valid {until}). It is shown once; keep it safe:"
            );
            println!("{token}");
        }
        ApiTokensAction::List => {
            for t in api_tokens::list(&pool).await.map_err(fail)? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expired {
                    "expired"
                } else {
                    "active"
                };
                let expires = t
                    .expires_at
                    .map_or_else(|| "never".to_owned(), |ts| ts.0.to_string());
                let used = t
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |ts| ts.0.to_string());
                info!(
                    "{} {} {} {state} scope={} expires_at={expires} created_at={} last_used_at={used}",
                    t.id, t.name, t.hint, t.scope, t.created_at.0
                );
            }
        }
        ApiTokensAction::Revoke { id_or_name } => {
            let n = api_tokens::revoke(&pool, &id_or_name).await.map_err(fail)?;
            if n == 0 {
                return Err(bad(format!(
                    "no active API token `{}`",
                    crate::pipeline::echo(&id_or_name)
                )));
            }
            info!("Revoked {n} API token(s)");
        }
    }
    Ok(0)
}
