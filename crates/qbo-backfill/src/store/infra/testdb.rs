//! [`TestDb`]: a fresh, migrated, uniquely named database for one test (or one demo), dropped
//! when it goes out of scope.
//!
//! The server is the one `DATABASE_URL` names (default [`DEFAULT_SERVER_URL`]); only its host,
//! port and credentials are used. If no server answers there, [`resolve_server_url`] starts a
//! throwaway local cluster. Tests run in parallel (one process each under nextest) without
//! sharing anything but the server.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgPool};

use crate::store::{
    StoreError, connect_options, create_database, maintenance_connection, migrate, quote_ident,
    resolve_server_url,
};

/// The server used when `DATABASE_URL` is not set.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@localhost:5432/postgres";

/// Connections in a [`TestDb`] pool.
const POOL_SIZE: u32 = 8;

/// A throwaway database, migrated, with a pool. Dropping it drops the database (`WITH (FORCE)`);
/// [`TestDb::cleanup`] does the same awaitably.
pub struct TestDb {
    /// A pool on the database.
    pub pool: PgPool,
    /// The database's URL (same server and credentials as `DATABASE_URL`).
    pub url: String,
    name: String,
    server: PgConnectOptions,
    dropped: bool,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .field("url", &crate::store::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// Creates `qbo_test_<uuid>` on the server of `DATABASE_URL` (or [`DEFAULT_SERVER_URL`])
    /// and applies the migrations.
    ///
    /// # Errors
    /// A [`StoreError`] saying why no database could be made (no server, no CREATEDB, …).
    pub async fn new() -> Result<Self, StoreError> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned());
        Self::on_server(&url).await
    }

    /// Like [`TestDb::new`] on the server of `server_url`.
    ///
    /// # Errors
    /// As [`TestDb::new`].
    pub async fn on_server(server_url: &str) -> Result<Self, StoreError> {
        let server_url = resolve_server_url(server_url).await?;
        let server = connect_options(&server_url)?;
        let name = format!("qbo_test_{}", uuid::Uuid::new_v4().simple());
        create_database(&server, &name).await?;
        let options = server.clone().database(&name);
        let setup = async {
            let pool = crate::store::pool_options()
                .max_connections(POOL_SIZE)
                .connect_with(options)
                .await
                .map_err(|e| StoreError::from_connect(&server, e))?;
            migrate(&pool, &name).await?;
            Ok::<_, StoreError>((pool, with_database(&server_url, &name)?))
        };
        match setup.await {
            Ok((pool, url)) => Ok(Self {
                pool,
                url,
                name,
                server,
                dropped: false,
            }),
            Err(e) => {
                let _ = drop_database(&server, &name).await;
                Err(e)
            }
        }
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the pool and drops the database.
    ///
    /// # Errors
    /// If the server refuses the drop.
    pub async fn cleanup(mut self) -> Result<(), StoreError> {
        self.dropped = true;
        self.pool.close().await;
        drop_database(&self.server, &self.name).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let server = self.server.clone();
        let name = self.name.clone();
        // A runtime of its own on a thread of its own: Drop cannot await, and the caller's
        // runtime may be single-threaded or shutting down. Joined, so the process does not exit
        // before the database is gone.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(drop_database(&server, &name)),
                Err(e) => Err(StoreError::NoServer(format!(
                    "no runtime to drop `{name}`: {e}"
                ))),
            }
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("Dropping a test database failed: {e}"),
            Err(_) => tracing::warn!("Dropping a test database panicked."),
        }
    }
}

async fn drop_database(server: &PgConnectOptions, name: &str) -> Result<(), StoreError> {
    let mut conn = maintenance_connection(server).await?;
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    let result = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    result.map(|_| ()).map_err(StoreError::from)
}

/// `url` with its database (path) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, StoreError> {
    let mut parsed = url::Url::parse(url).map_err(|e| StoreError::InvalidUrl {
        reason: e.to_string(),
    })?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}
