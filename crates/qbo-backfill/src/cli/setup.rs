//! What a command works with: the database (created and migrated), the secret key, the company
//! (from the environment or stored), and runs executed in this process.

use std::sync::Arc;

use sqlx::PgPool;
use tracing::info;

use super::{CliError, bad, fail};
use crate::domain::run::RunOrigin;
use crate::orchestrator::worker::{Executor, LocalRun};
use crate::pipeline::events::TerminalEvents;
use crate::pipeline::{DateRange, Pipeline, Window};
use crate::service::company::{save_company, stored_lookup};
use crate::service::shutdown::shutdown_signal;
use crate::settings::{self, ClientTuning, QboSettings};
use crate::store::StoreError;
use crate::store::auth::secrets::{KeySettings, SecretKey};
use crate::store::runs;

/// Connects to `DATABASE_URL` (creating and migrating the database) with a pool of
/// `QBO_BACKFILL_DB_POOL` connections.
pub(super) async fn connect() -> Result<PgPool, CliError> {
    let size = settings::db_pool_size().map_err(bad)?;
    crate::store::connect_with_max_connections(&settings::database_url(), size)
        .await
        .map_err(fail)
}

/// The secret key; a missing key file is created only when the database holds nothing sealed.
pub(super) async fn secret_key(pool: &PgPool) -> Result<SecretKey, CliError> {
    SecretKey::load_or_create_for(pool, &KeySettings::from_env())
        .await
        .map_err(|e| match e {
            // `QBO_BACKFILL_SECRET_KEY` is not a key: bad configuration, refused as bad input.
            StoreError::InvalidKey(_) => bad(e),
            _ => fail(e),
        })
}

/// Who runs this command line, as runs record it (`started_by`): the system user from `USER` or
/// `LOGNAME`, when it is a plain name (at most 64 characters, no control characters).
pub(super) fn system_user() -> Option<String> {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|user| user.trim().to_owned())
        .find(|user| {
            !user.is_empty() && user.chars().count() <= 64 && !user.chars().any(char::is_control)
        })
}

/// A run the command line asks for in this process (`run`, `verify`): no retry.
pub(super) fn asked_run(
    pipeline: Pipeline,
    realm_id: &str,
    range: DateRange,
    windows: Vec<Window>,
) -> LocalRun<'_> {
    LocalRun {
        pipeline,
        realm_id,
        range,
        windows,
        trigger: RunOrigin::Cli,
        started_by: system_user(),
        retry_of: None,
    }
}

/// The database and the secret key that sealed what it holds.
pub(super) struct Session {
    /// The database.
    pub(super) pool: PgPool,
    /// The key, checked against the database.
    pub(super) key: SecretKey,
}

impl Session {
    /// Connects and loads the key, refused when it did not seal what the database holds.
    pub(super) async fn open() -> Result<Self, CliError> {
        let pool = connect().await?;
        let key = secret_key(&pool).await?;
        crate::store::auth::secrets::check_key(&pool, &key)
            .await
            .map_err(fail)?;
        Ok(Self { pool, key })
    }

    /// Connects for a run in this process and settles its company: the environment's when it
    /// describes one, otherwise the stored one; saved either way. Invalid client settings are
    /// bad input, refused before the database is touched.
    pub(super) async fn for_local_run(
        tuning: &ClientTuning,
    ) -> Result<(Self, QboSettings), CliError> {
        QboSettings::client_settings(tuning)?;
        let env_only = QboSettings::resolve(tuning, &());
        let session = Self::open().await?;
        let settings = match env_only {
            Ok(s) => s,
            Err(_) => QboSettings::resolve(tuning, &session.stored().await?)?,
        };
        session.save_company(&settings).await?;
        Ok((session, settings))
    }

    /// Connects for `serve` and `worker`, and saves the company of the environment when it
    /// describes one (the first company of a deployment is seeded this way); without one,
    /// companies come from Connect QuickBooks.
    pub(super) async fn for_service(tuning: &ClientTuning) -> Result<Self, CliError> {
        let session = Self::open().await?;
        match QboSettings::resolve(tuning, &session.stored().await?) {
            Ok(settings) => session.save_company(&settings).await?,
            Err(e) => {
                info!(
                    "No company from the environment ({e}); using the companies already connected"
                );
            }
        }
        Ok(session)
    }

    /// The stored secrets, as a lookup for [`QboSettings::resolve`].
    pub(super) async fn stored(
        &self,
    ) -> Result<impl Fn(&str) -> Option<secrecy::SecretString> + use<>, CliError> {
        Ok(stored_lookup(&self.pool, &self.key).await?)
    }

    /// Saves (or updates) the company `settings` describe.
    pub(super) async fn save_company(&self, settings: &QboSettings) -> Result<(), CliError> {
        Ok(save_company(&self.pool, &self.key, settings).await?)
    }

    /// An executor of runs in this process; its runs of one company share one QuickBooks client
    /// (one token cache and limiter).
    pub(super) fn executor(&self, tuning: &ClientTuning) -> Executor {
        Executor::new(
            self.pool.clone(),
            self.key.clone(),
            tuning.clone(),
            runs::LEASE,
        )
    }

    /// Executes `run` in this process with the terminal's output until done or Ctrl-C; returns
    /// the exit status.
    pub(super) async fn run_in_terminal(
        &self,
        tuning: &ClientTuning,
        run: LocalRun<'_>,
    ) -> Result<u8, CliError> {
        let outcome = self
            .executor(tuning)
            .run_here(run, shutdown_signal(), Arc::new(TerminalEvents::new()))
            .await
            .map_err(fail)?;
        Ok(outcome.exit_code())
    }
}
