//! `secrets set NAME`, `secrets list` and `secrets reset --yes`: stored secrets, encrypted at
//! rest. A value is read from stdin (or a hidden prompt), never from argv.

use std::io::{IsTerminal as _, Read as _};

use secrecy::{ExposeSecret as _, SecretString};
use tracing::info;

use crate::cli::setup::{self, Session};
use crate::cli::{CliError, SecretsAction, bad, fail};
use crate::domain::secret::{MAX_SECRET_VALUE_BYTES, SecretName, SecretRefusal};
use crate::settings::{self, env};
use crate::store::auth::companies;
use crate::store::auth::secrets::{SecretStore, redact};
use crate::store::auth::tokens::PgTokenStore;

/// Runs a `secrets` subcommand; returns the exit status.
pub(crate) async fn secrets(action: SecretsAction) -> Result<u8, CliError> {
    match action {
        SecretsAction::Set { stray, .. } if !stray.is_empty() => {
            return Err(bad(
                "`secrets set` takes only the secret's name; the value is read from stdin (or a hidden prompt), never from the command line, so what followed the name was not stored and is not shown here",
            ));
        }
        SecretsAction::Set { name, .. } => set(&name).await?,
        SecretsAction::List => list().await?,
        SecretsAction::Reset { yes } => reset(yes).await?,
    }
    Ok(0)
}

/// `secrets list`: every stored secret, redacted, and whether this key can decrypt it.
async fn list() -> Result<(), CliError> {
    let pool = setup::connect().await?;
    let key = setup::secret_key(&pool).await?;
    let now = jiff::Timestamp::now();
    for s in crate::service::secrets::list(&pool, &key)
        .await
        .map_err(anyhow::Error::from)?
    {
        let updated = s
            .updated_at
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        let company = s
            .realm_id
            .as_deref()
            .map_or_else(String::new, |r| format!(" realm_id={r}"));
        let ends = match (s.expires_at, s.days_left(now)) {
            (Some(at), Some(days)) if s.ending_soon(now) => format!(
                " expires_at={at} (in {days} days: reconnect the company before then with Connect QuickBooks, /connect on the web UI)"
            ),
            (Some(at), _) => format!(" expires_at={at}"),
            _ => String::new(),
        };
        let readable = if s.readable {
            ""
        } else {
            " (cannot be decrypted with this key)"
        };
        info!(
            "{}{company} {} updated_at={updated}{ends}{readable}",
            s.name, s.redacted
        );
    }
    Ok(())
}

/// `secrets reset`: forgets every stored secret, OAuth token and company; refused without
/// `--yes`.
async fn reset(yes: bool) -> Result<(), CliError> {
    if !yes {
        return Err(bad(
            "`secrets reset` deletes every stored secret, OAuth token and company; pass --yes to confirm",
        ));
    }
    let pool = setup::connect().await?;
    let forgotten = crate::store::auth::secrets::forget_all(&pool)
        .await
        .map_err(fail)?;
    info!(
        "Forgot {forgotten} stored secrets, tokens and companies. Store the secrets again (`qbo-backfill secrets set NAME`, or start with QBO_CLIENT_ID, QBO_CLIENT_SECRET, QBO_REALM_ID and QBO_REFRESH_TOKEN set) and reconnect QuickBooks."
    );
    Ok(())
}

/// `secrets set NAME`: a refresh token goes to its company's OAuth tokens (clearing the
/// company's auth error); any other secret to the secret store.
async fn set(name: &SecretName) -> Result<(), CliError> {
    let value = read_secret_value(name)?;
    let session = Session::open().await?;
    let store = SecretStore::new(session.pool.clone(), session.key.clone());
    if name.as_str() != env::QBO_REFRESH_TOKEN {
        store.set(name.as_str(), &value).await.map_err(fail)?;
        info!("Stored {name} ({})", redact(value.expose_secret()));
        return Ok(());
    }
    let realm_id = match settings::env_var(env::QBO_REALM_ID) {
        Some(r) => r,
        None => store
            .get(env::QBO_REALM_ID)
            .await
            .map_err(fail)?
            .map(|s| s.expose_secret().to_owned())
            .ok_or_else(|| {
                bad("QBO_REALM_ID is not set: the refresh token belongs to a company; export QBO_REALM_ID or store it first")
            })?,
    };
    PgTokenStore::new(session.pool.clone(), session.key, realm_id.clone())
        .replace_refresh_token(&value)
        .await
        .map_err(fail)?;
    companies::set_auth_error(&session.pool, &realm_id, None)
        .await
        .map_err(fail)?;
    info!(
        "Stored a new refresh token for realm {realm_id} ({}); the next run uses it",
        redact(value.expose_secret())
    );
    Ok(())
}

/// The most bytes read from stdin for a secret value: the value rule's limit, plus room for
/// surrounding whitespace (trimmed away before the rule applies).
const MAX_SECRET_STDIN_BYTES: u64 = MAX_SECRET_VALUE_BYTES as u64 + 1024;

/// Reads a secret value from stdin: a hidden prompt on a terminal, otherwise all of stdin. The
/// value rule ([`SecretName::value`]) then applies, as in the API and the web pages: a value
/// that is too long, not UTF-8, spans lines or holds control characters is bad input (exit 2),
/// never stored cut or mangled.
fn read_secret_value(name: &SecretName) -> Result<SecretString, CliError> {
    let value = if std::io::stdin().is_terminal() {
        prompt_hidden(name)?
    } else {
        read_piped(name)?
    };
    let value = name.value(&value).map_err(bad)?;
    Ok(SecretString::from(value.to_owned()))
}

/// One line typed at a prompt, echo off while it is typed.
fn prompt_hidden(name: &SecretName) -> Result<String, CliError> {
    let mut value = String::new();
    eprint!("Value for {name} (input hidden): ");
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .status()
        .is_ok();
    let read = std::io::stdin().read_line(&mut value);
    if echo_off {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
    eprintln!();
    read.map_err(|e| anyhow::anyhow!("cannot read the value: {e}"))?;
    Ok(value)
}

/// All of stdin, refused when longer than [`MAX_SECRET_STDIN_BYTES`] or not UTF-8.
fn read_piped(name: &SecretName) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_SECRET_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read the value from stdin: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_STDIN_BYTES {
        return Err(bad(SecretRefusal::TooLong(name.clone())));
    }
    String::from_utf8(bytes)
        .map_err(|_| bad(format!("the value for {name} on stdin is not UTF-8 text")))
}
