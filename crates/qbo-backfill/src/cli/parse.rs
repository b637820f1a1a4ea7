//! Parsing at the edge: argv's text into domain types (pipelines, dates, run ids, addresses,
//! secret names). A refusal is the command's own one-line message, printed as `error: …` with
//! exit status 2 before anything is written, not clap's `invalid value … for …`.

use std::ffi::OsStr;
use std::net::SocketAddr;

use clap::builder::{StringValueParser, TypedValueParser};
use clap::error::ErrorKind;
use jiff::civil::Date;
use uuid::Uuid;

use crate::domain::access::Scope;
use crate::domain::batch::RunTarget;
use crate::domain::secret::SecretName;
use crate::pipeline::{Pipeline, echo, parse_date};

/// A clap value parser made of a parse function whose refusal is the whole message.
#[derive(Debug)]
pub(super) struct OneLine<T>(pub(super) fn(&str) -> Result<T, String>);

impl<T> Clone for OneLine<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OneLine<T> {}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for OneLine<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        // Text that is not UTF-8 is refused as clap refuses it for any text argument.
        let text = StringValueParser::new().parse_ref(cmd, arg, value)?;
        (self.0)(&text).map_err(|message| clap::Error::raw(ErrorKind::ValueValidation, message))
    }
}

/// The entity of `verify`: the verify pipelines it names (one, or every one for `all`), and
/// whether the Trial Balance is reconciled too (`reports`, and `all`).
#[derive(Debug, Clone)]
pub struct VerifyTarget {
    /// The entities' verify pipelines.
    pub pipelines: Vec<Pipeline>,
    /// Reconcile the stored Trial Balance with the one computed from `raw`.
    pub reports: bool,
}

/// `run`'s pipeline or batch (`all_backfill`, `all_incremental`).
///
/// # Errors
/// `unknown pipeline …`.
pub(super) fn run_target(text: &str) -> Result<RunTarget, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// `verify`'s entity (`customers`, …, `all`, or `reports`).
///
/// # Errors
/// `unknown entity …`.
pub(super) fn verify_target(text: &str) -> Result<VerifyTarget, String> {
    if text == "reports" {
        return Ok(VerifyTarget {
            pipelines: Vec::new(),
            reports: true,
        });
    }
    crate::pipeline::verify::pipelines_for(text)
        .map(|pipelines| VerifyTarget {
            pipelines,
            reports: text == "all",
        })
        .map_err(|e| format!("{e}; `reports` reconciles the Trial Balance"))
}

/// `--fecha-inicio`.
///
/// # Errors
/// `--fecha-inicio: … is not a valid date …`.
pub(super) fn fecha_inicio(text: &str) -> Result<Date, String> {
    parse_date("--fecha-inicio", text).map_err(|e| e.to_string())
}

/// `--fecha-fin`.
///
/// # Errors
/// `--fecha-fin: … is not a valid date …`.
pub(super) fn fecha_fin(text: &str) -> Result<Date, String> {
    parse_date("--fecha-fin", text).map_err(|e| e.to_string())
}

/// A run id as printed in `run_id=…`.
///
/// # Errors
/// `… is not a run id …`.
pub(super) fn run_id(text: &str) -> Result<Uuid, String> {
    text.parse().map_err(|_| {
        format!(
            "`{}` is not a run id (a UUID, as printed in `run_id=…`)",
            echo(text)
        )
    })
}

/// `serve --bind`.
///
/// # Errors
/// `--bind … is not an address …`.
pub(super) fn serve_bind(text: &str) -> Result<SocketAddr, String> {
    bind(text, "127.0.0.1:6789 or 0.0.0.0:6789")
}

/// An address to listen on; `example` shows what one looks like.
///
/// # Errors
/// `--bind … is not an address such as {example}`.
pub(super) fn bind(text: &str, example: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "--bind `{}` is not an address such as {example}",
            echo(text)
        )
    })
}

/// A secret's name by the one rule.
///
/// # Errors
/// `… is not a secret name …`.
pub(super) fn secret_name(text: &str) -> Result<SecretName, String> {
    SecretName::parse(text).map_err(|e| e.to_string())
}

/// An API token's name, trimmed.
///
/// # Errors
/// When empty, longer than 100 characters, or holding control characters.
pub(super) fn token_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(
            "a token name must be 1 to 100 characters without control characters".to_owned(),
        );
    }
    Ok(name.to_owned())
}

pub(super) fn scope(text: &str) -> Result<Scope, String> {
    text.parse().map_err(|e| format!("--scope: {e}"))
}

pub(super) fn lifetime(text: &str) -> Result<std::time::Duration, String> {
    crate::domain::access::parse_lifetime(text).map_err(|e| format!("--expires-in: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_commands_messages() {
        assert!(run_target("qb_nope_backfill").is_err_and(|e| e.starts_with("unknown pipeline")));
        assert!(run_id("abc").is_err_and(|e| e.starts_with("`abc` is not a run id")));
        assert!(fecha_fin("2026-02-30").is_err_and(|e| e.starts_with("--fecha-fin: ")));
        assert_eq!(
            serve_bind("nope").err().as_deref(),
            Some("--bind `nope` is not an address such as 127.0.0.1:6789 or 0.0.0.0:6789")
        );
        assert_eq!(token_name("  ops  ").ok().as_deref(), Some("ops"));
        assert!(token_name(" ").is_err());
    }
}
