//! `api-tokens create NAME`, `list` and `revoke ID|NAME`: the bearer tokens of the JSON API and
//! `/metrics`.

use tracing::info;

use crate::cli::setup::connect;
use crate::cli::{ApiTokensAction, CliError, bad, fail};
use crate::store::auth::api_tokens;

/// Runs an `api-tokens` subcommand; returns the exit status.
pub(crate) async fn api_tokens(action: ApiTokensAction) -> Result<u8, CliError> {
    let pool = connect().await?;
    match action {
        ApiTokensAction::Create { name } => {
            let (id, token) = api_tokens::create(&pool, &name).await.map_err(fail)?;
            info!("Created API token `{name}` (id {id}). It is shown once; keep it safe:");
            println!("{token}");
        }
        ApiTokensAction::List => {
            for t in api_tokens::list(&pool).await.map_err(fail)? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let used = t
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |ts| ts.0.to_string());
                info!(
                    "{} {} {} {state} created_at={} last_used_at={used}",
                    t.id, t.name, t.hint, t.created_at.0
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
