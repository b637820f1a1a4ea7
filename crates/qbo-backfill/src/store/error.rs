//! [`StoreError`]: every way the storage layer can fail, each with a one-line, operator-facing
//! message that names what is wrong and never contains a password or a secret value.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;

use super::{describe_io, describe_sqlx, sqlstate, target};

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be parsed.
    #[error(
        "DATABASE_URL is not a valid PostgreSQL URL: {reason} \
         (expected postgres://user[:password]@host[:port]/database)."
    )]
    InvalidUrl {
        /// What is wrong with it (never the URL itself).
        reason: String,
    },

    /// No PostgreSQL server answered.
    #[error("Cannot reach PostgreSQL at {target}: {reason}. Start a server or set DATABASE_URL.")]
    Unreachable {
        /// `host:port` tried.
        target: String,
        /// Why, e.g. `connection refused`.
        reason: String,
    },

    /// The server answered but refused the login.
    #[error(
        "PostgreSQL at {target} refused the login of user `{user}`: {reason}. \
         Check the user and password in DATABASE_URL."
    )]
    LoginRefused {
        /// `host:port` tried.
        target: String,
        /// The user name of the URL.
        user: String,
        /// The server's message.
        reason: String,
    },

    /// The database did not exist and could not be created.
    #[error(
        "Database `{database}` does not exist on {target} and cannot be created: {reason}. \
         Create it, or give the DATABASE_URL user the CREATEDB privilege."
    )]
    CreateDatabase {
        /// The database name.
        database: String,
        /// `host:port`.
        target: String,
        /// The server's message.
        reason: String,
    },

    /// Applying the embedded migrations failed.
    #[error("Migrating database `{database}` failed: {reason}")]
    Migrate {
        /// The database name.
        database: String,
        /// What failed.
        reason: String,
    },

    /// No server answered and no throwaway local cluster could be started.
    #[error("{0}")]
    NoServer(String),

    /// Any other database failure.
    #[error("Database error: {}", describe_sqlx(.0))]
    Database(#[from] sqlx::Error),

    /// The secret key given in the environment is unusable.
    #[error(
        "QBO_BACKFILL_SECRET_KEY is not valid: {0}. It must be 32 random bytes in base64 \
         (e.g. `openssl rand -base64 32`)."
    )]
    InvalidKey(String),

    /// The key file could not be read, created or parsed.
    #[error("Secret key file `{}`: {reason}", path.display())]
    KeyFile {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A stored secret does not decrypt with the key in use.
    #[error(
        "Secret `{name}` cannot be decrypted with this key ({reason}). The secret key \
         (QBO_BACKFILL_SECRET_KEY or the key file) differs from the one that stored it: restore \
         that key, or store the secret again."
    )]
    Undecryptable {
        /// The secret's name (for tokens, `oauth_tokens:<realm>`).
        name: String,
        /// Why: wrong key id, failed authentication, truncated value.
        reason: String,
    },

    /// The system's random source failed (no key or nonce could be drawn).
    #[error("The system random number generator failed: {0}")]
    Random(String),

    /// The database holds secrets sealed with another key than the one in use.
    #[error(
        "The secret key in use (QBO_BACKFILL_SECRET_KEY or the key file) is not the one that \
         sealed the {sealed} secrets and tokens stored in this database. Restore the original key \
         (from your backup) and start again; nothing was changed. If the original key is lost: \
         `qbo-backfill secrets reset --yes`, then store the secrets again and reconnect \
         QuickBooks."
    )]
    WrongKey {
        /// How many stored values were sealed with another key.
        sealed: i64,
    },

    /// The key file is missing while the database holds values sealed by a key.
    #[error(
        "The secret key file {} is missing, but this database holds {sealed} secrets and tokens \
         sealed by a key. Restore the key file (from your backup) or set QBO_BACKFILL_SECRET_KEY \
         and start again; nothing was changed and no new key file was created. If the original \
         key is lost: `qbo-backfill secrets reset --yes`, then store the secrets again and \
         reconnect QuickBooks.",
        path.display()
    )]
    KeyFileLost {
        /// Where the key file was expected.
        path: std::path::PathBuf,
        /// How many stored values were sealed.
        sealed: i64,
    },

    /// A secret name is empty or too long.
    #[error("{0}")]
    InvalidSecretName(String),
}

impl StoreError {
    /// Classifies a failure to connect to the server of `options`.
    pub(crate) fn from_connect(options: &PgConnectOptions, e: sqlx::Error) -> Self {
        let target = target(options);
        match &e {
            sqlx::Error::Io(io) => Self::Unreachable {
                target,
                reason: describe_io(io),
            },
            sqlx::Error::PoolTimedOut => Self::Unreachable {
                target,
                reason: "timed out connecting".to_owned(),
            },
            sqlx::Error::Tls(tls) => Self::Unreachable {
                target,
                reason: format!("TLS failed ({})", super::one_line(&tls.to_string())),
            },
            _ if matches!(sqlstate(&e).as_deref(), Some("28P01" | "28000")) => Self::LoginRefused {
                target,
                user: options.get_username().to_owned(),
                reason: describe_sqlx(&e),
            },
            _ => Self::Database(e),
        }
    }
}
