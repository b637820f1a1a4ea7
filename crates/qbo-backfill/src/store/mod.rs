//! PostgreSQL storage, SQL only, grouped by concern: the connection pool and embedded migrations
//! ([`connect`]); runs and their queue, claims, lifecycle, logs, cursors and triggers
//! ([`runs`]); the raw tables, their history and verification state ([`raw`]); tokens, secrets,
//! companies, API tokens and web sessions ([`auth`]); alert channels and deliveries ([`alerts`]);
//! and what those stand on: the shared request budget, `/metrics` figures, time types and the
//! throwaway local cluster ([`infra`]).
//! It depends on nothing of the crate but [`crate::domain`].
//!
//! Every failure is a [`StoreError`] whose message says in one line what is wrong and never
//! contains the password of a database URL (see [`redact_url`]).

pub mod alerts;
pub mod auth;
pub mod infra;
pub mod raw;
pub mod runs;
pub mod webhooks;

mod error;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub use auth::secrets::{KeySettings, SecretInfo, SecretKey, SecretStore, redact};
pub use auth::tokens::{PgTokenStore, TokenStatus};
pub use error::StoreError;
pub use infra::local_cluster::resolve_server_url;
pub use infra::pgtime::{PgDate, PgTimestamp};
#[cfg(any(test, feature = "test-support"))]
pub use infra::testdb::TestDb;
pub use raw::{DeletionSource, PageWrite, RawTable, UpsertCounts, upsert_page};

/// The schema migrations of `crates/qbo-backfill/migrations`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Pool size used by [`connect`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;

/// How long to wait for a connection (to the server, or from the pool) before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `database_url`, creating the database if it does not exist yet, applies the
/// embedded migrations, and returns a pool of [`DEFAULT_MAX_CONNECTIONS`] connections.
///
/// # Errors
/// A [`StoreError`] saying in one line what is wrong (unreachable server, bad URL, failed login,
/// failed migration, …), with the URL's password redacted.
pub async fn connect(database_url: &str) -> Result<PgPool, StoreError> {
    connect_with_max_connections(database_url, DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect`] with a chosen pool size.
///
/// # Errors
/// As [`connect`].
pub async fn connect_with_max_connections(
    database_url: &str,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    let options = connect_options(database_url)?;
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let options = options.database(&database);
    // One direct connection first: it fails fast with the real reason (a pool would retry
    // until its timeout) and tells whether the database exists.
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) if is_missing_database(&e) => create_database(&options, &database).await?,
        Ok(Err(e)) => return Err(StoreError::from_connect(&options, e)),
        Err(_) => {
            return Err(StoreError::Unreachable {
                target: target(&options),
                reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            });
        }
    }
    let pool = pool_options()
        .max_connections(max_connections.max(1))
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|e| StoreError::from_connect(&options, e))?;
    migrate(&pool, &database).await?;
    Ok(pool)
}

/// The options every pool of the store starts from: each connection turns PostgreSQL's JIT
/// off. The store's statements are key lookups and page-sized batches; JIT never pays them back,
/// yet the runs list's planned cost passes `jit_above_cost`, and compiling it took 20–80 ms of
/// a read that runs in 0.4 ms (50 running one-year runs, 2026-12-07).
pub(crate) fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new().after_connect(|conn, _meta| {
        Box::pin(async move {
            sqlx::Executor::execute(&mut *conn, "SET jit = off").await?;
            Ok(())
        })
    })
}

/// Applies the embedded migrations to `pool` (idempotent; the migrator serialises concurrent
/// callers with an advisory lock), then creates the raw table of every catalog entity.
///
/// # Errors
/// [`StoreError::Migrate`] if a migration fails or the database holds a different history.
pub async fn migrate(pool: &PgPool, database: &str) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate {
        database: database.to_owned(),
        reason: one_line(&e.to_string()),
    })?;
    raw::ensure_tables(pool).await
}

/// `url` with its password replaced by `***`, for messages and logs. A URL that cannot be parsed
/// is not echoed at all.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                return "<database URL>".to_owned();
            }
            // Query parameters may carry a password too (`?password=...`).
            if parsed
                .query_pairs()
                .any(|(k, _)| k.eq_ignore_ascii_case("password"))
            {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.eq_ignore_ascii_case("password") {
                            "***".into()
                        } else {
                            v
                        };
                        (k.into_owned(), v.into_owned())
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable database URL>".to_owned(),
    }
}

/// Quotes `name` as a PostgreSQL identifier (`"name"`, inner quotes doubled).
#[must_use]
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Connect options for `database_url`, as [`connect`] uses them. Fails without echoing the URL.
///
/// TLS follows `sslmode` in the URL (or `PGSSLMODE`) exactly: `disable`, `allow`, `prefer`,
/// `require`, `verify-ca`, `verify-full` (with `sslrootcert=/path/ca.pem` for a private CA).
/// When neither says, the default depends on where the server is:
/// - on a loopback host (`localhost`, `127.0.0.1`, `::1`) or a Unix socket, TLS is off: it buys
///   nothing there, and sqlx 0.9.0 does not set `TCP_NODELAY` (transact-rs/sqlx#4335), so a
///   message split into several TLS records waits ~40 ms on Nagle + delayed ACK;
/// - anywhere else, `verify-full`: encrypted, the certificate checked against trusted roots and
///   the host name. libpq's `prefer` would accept any certificate and fall back to plaintext, so a
///   man in the middle would see the data and the password. A private network without TLS (a
///   compose file) says `sslmode=disable` explicitly.
///
/// # Errors
/// [`StoreError::InvalidUrl`].
pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, StoreError> {
    let scheme_ok =
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    if !scheme_ok {
        return Err(StoreError::InvalidUrl {
            reason: "it must start with postgres:// or postgresql://".to_owned(),
        });
    }
    let options = PgConnectOptions::from_str(database_url).map_err(|e| StoreError::InvalidUrl {
        reason: one_line(&e.to_string()),
    })?;
    let asks_for_tls_mode = url::Url::parse(database_url).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("sslmode") || k == "ssl-mode")
    }) || std::env::var_os("PGSSLMODE").is_some();
    if asks_for_tls_mode {
        return Ok(options);
    }
    let host = options.get_host();
    let local =
        matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") || host.starts_with('/');
    Ok(options.ssl_mode(if local {
        sqlx::postgres::PgSslMode::Disable
    } else {
        sqlx::postgres::PgSslMode::VerifyFull
    }))
}

/// `host:port` (or the socket directory) of `options`, for messages.
pub(crate) fn target(options: &PgConnectOptions) -> String {
    let host = options.get_host();
    if host.starts_with('/') {
        format!("{host} (port {})", options.get_port())
    } else {
        format!("{host}:{}", options.get_port())
    }
}

/// Whether `e` is PostgreSQL's "database does not exist" (SQLSTATE 3D000).
fn is_missing_database(e: &sqlx::Error) -> bool {
    sqlstate(e).as_deref() == Some("3D000")
}

/// The SQLSTATE of a database error, if `e` is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Creates `database` on the server of `options` through a maintenance database. Succeeds when
/// another process created it at the same moment.
pub(crate) async fn create_database(
    options: &PgConnectOptions,
    database: &str,
) -> Result<(), StoreError> {
    let mut conn = maintenance_connection(options).await?;
    let sql = format!("CREATE DATABASE {}", quote_ident(database));
    let result = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await;
    // Best effort: the connection is finished either way.
    let _ = conn.close().await;
    match result {
        Ok(_) => {
            tracing::info!(database, server = %target(options), "Created database.");
            Ok(())
        }
        // 42P04 duplicate_database; 23505 when two CREATE DATABASE race on pg_database's index.
        Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(e) => Err(StoreError::CreateDatabase {
            database: database.to_owned(),
            target: target(options),
            reason: describe_sqlx(&e),
        }),
    }
}

/// A connection to the `postgres` maintenance database (or `template1` if that is missing) on
/// the server of `options`.
pub(crate) async fn maintenance_connection(
    options: &PgConnectOptions,
) -> Result<PgConnection, StoreError> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let opts = options.clone().database(db);
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if is_missing_database(&e) => last = Some(e),
            Ok(Err(e)) => return Err(StoreError::from_connect(options, e)),
            Err(_) => {
                return Err(StoreError::Unreachable {
                    target: target(options),
                    reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                });
            }
        }
    }
    Err(match last {
        Some(e) => StoreError::from_connect(options, e),
        None => StoreError::Unreachable {
            target: target(options),
            reason: "no maintenance database".to_owned(),
        },
    })
}

/// A short, one-line description of a sqlx error (the server's message for database errors).
pub(crate) fn describe_sqlx(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => one_line(db.message()),
        sqlx::Error::Io(io) => describe_io(io),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other => one_line(&other.to_string()),
    }
}

/// A short description of a socket-level error ("connection refused", …).
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        ErrorKind::NotFound => "no server socket found".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        _ => {
            let text = e.to_string();
            // "Connection refused (os error 111)" -> "connection refused"
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            one_line(&text.to_lowercase())
        }
    }
}

/// `text` on one line, trimmed.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_verified_by_default_off_loopback_and_sslmode_is_honoured() {
        use sqlx::postgres::PgSslMode;
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // the environment decides then, as it should
        }
        let mode = |url: &str| connect_options(url).expect("url").get_ssl_mode();
        assert!(matches!(
            mode("postgres://u@db.example.com/x"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://u@10.0.0.5:5432/x"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://u@localhost/x"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@127.0.0.1/x"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@db.example.com/x?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@db.example.com/x?sslmode=disable"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@localhost/x?sslmode=verify-full"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://u@db/x?sslmode=verify-ca"),
            PgSslMode::VerifyCa
        ));
    }

    #[test]
    fn redact_url_hides_passwords() {
        assert_eq!(
            redact_url("postgres://u:s3cret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        let q = redact_url("postgres://db/x?user=u&password=s3cret");
        assert!(!q.contains("s3cret"), "{q}");
        assert!(!redact_url("postgres://u:s3cret@[::1/x").contains("s3cret"));
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("qbo_backfill"), "\"qbo_backfill\"");
    }

    #[test]
    fn bad_urls_are_reported_without_echo() {
        let err = connect_options("mysql://u:s3cret@h/x").expect_err("not postgres");
        assert!(!err.to_string().contains("s3cret"));
        assert!(err.to_string().contains("postgres://"));
    }
}
