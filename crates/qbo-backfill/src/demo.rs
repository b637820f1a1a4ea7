//! `qbo-backfill demo`: starts the QuickBooks simulator in-process with a realistic company,
//! loads the three pipelines for 2026-01-01..2026-01-31 into `DATABASE_URL` (or a throwaway
//! local cluster when no server answers), re-runs one to show idempotency, and prints the
//! runbook's verification queries with their results.

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::Row as _;
use tracing::info;

use crate::domain::run::RunOrigin;
use crate::orchestrator::worker::{Executor, LocalRun};
use crate::pipeline::events::TerminalEvents;
use crate::pipeline::{DateRange, Pipeline};
use crate::settings::{self, ClientTuning};
use crate::store::auth::companies::{self, Company};
use crate::store::auth::secrets::{KeySettings, SecretKey};
use crate::store::auth::tokens::PgTokenStore;
use crate::store::runs::{self, RunStatus};
use tokio_util::sync::CancellationToken;

/// How big the simulated company is.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    /// Customers.
    pub customers: usize,
    /// Items.
    pub items: usize,
    /// Invoices.
    pub invoices: usize,
}

/// The first day the simulated company created anything.
const FROM: jiff::civil::Date = jiff::civil::date(2026, 1, 1);
/// The first day it created nothing.
const TO: jiff::civil::Date = jiff::civil::date(2026, 2, 1);

/// Runs the demo; returns the exit status.
///
/// # Errors
/// When PostgreSQL cannot be reached or the simulator cannot start.
pub async fn run(size: DemoSize, serve: Option<std::net::SocketAddr>) -> anyhow::Result<u8> {
    let url = crate::store::infra::local_cluster::resolve_server_url(&settings::database_url())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = crate::store::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = SecretKey::load_or_create_for(&pool, &KeySettings::from_env())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (sim, realm_id) = start_simulator(size, &pool, &key).await?;
    let all_ok = load_january(&pool, &key, &realm_id).await?;
    print_runbook_checks(&pool, &url).await?;
    if let Some(bind) = serve {
        serve_demo(pool, key, &sim, bind).await?;
    }
    sim.shutdown().await;
    Ok(if all_ok { 0 } else { 1 })
}

/// Starts the simulator with a company of `size` and connects it as an operator would after
/// "Connect to QuickBooks" (its app keys and hosts, and the refresh token it issued); returns
/// it with its realm id.
async fn start_simulator(
    size: DemoSize,
    pool: &sqlx::PgPool,
    key: &SecretKey,
) -> anyhow::Result<(qbo_sim::RunningSim, String)> {
    let config = qbo_sim::SimConfig {
        customers: size.customers,
        items: size.items,
        invoices: size.invoices,
        from: FROM,
        to: TO,
        ..qbo_sim::SimConfig::default()
    };
    let realm_id = config.realm_id.clone();
    let client_id = config.client_id.clone();
    let client_secret = SecretString::from(config.client_secret.clone());
    let sim = qbo_sim::serve(qbo_sim::SimState::new(config), ([127, 0, 0, 1], 0).into())
        .await
        .context("cannot start the QuickBooks simulator")?;
    info!(
        "QuickBooks simulator at {} (realm {realm_id}): {} customers, {} items, {} invoices created 2026-01-01..2026-02-01",
        sim.api_base_url(),
        size.customers,
        size.items,
        size.invoices
    );
    PgTokenStore::new(pool.clone(), key.clone(), realm_id.clone())
        .replace_refresh_token(&SecretString::from(sim.state().current_refresh_token()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let company = Company {
        realm_id: realm_id.clone(),
        environment: qbo::Environment::Sandbox,
        client_id,
        client_secret,
        api_base_url: Some(sim.api_base_url().parse().context("simulator URL")?),
        token_url: Some(sim.token_url().parse().context("simulator token URL")?),
        minor_version: None,
    };
    companies::upsert(pool, key, &company)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((sim, realm_id))
}

/// Loads customers, items and invoices over 2026-01-01..2026-01-31, then customers again to
/// show idempotency; true when every run succeeded.
async fn load_january(
    pool: &sqlx::PgPool,
    key: &SecretKey,
    realm_id: &str,
) -> anyhow::Result<bool> {
    let executor = Executor::new(
        pool.clone(),
        key.clone(),
        ClientTuning::default(),
        runs::LEASE,
    );
    let range = DateRange::new(FROM, jiff::civil::date(2026, 1, 31))?;
    let load = async |pipeline: Pipeline| -> anyhow::Result<bool> {
        let run = LocalRun {
            pipeline,
            realm_id,
            range,
            windows: range.windows()?,
            trigger: RunOrigin::Demo,
            started_by: None,
            retry_of: None,
        };
        let outcome = executor
            .run_here(
                run,
                CancellationToken::new(),
                Arc::new(TerminalEvents::new()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(outcome.status == Some(RunStatus::Succeeded))
    };
    let mut all_ok = true;
    for pipeline in [Pipeline::CUSTOMERS, Pipeline::ITEMS, Pipeline::INVOICES] {
        all_ok &= load(pipeline).await?;
    }
    info!("Re-running qb_customers_backfill over the same range: nothing new, nothing rewritten");
    all_ok &= load(Pipeline::CUSTOMERS).await?;
    Ok(all_ok)
}

/// The runbook's verification queries with their results.
async fn print_runbook_checks(pool: &sqlx::PgPool, url: &str) -> anyhow::Result<()> {
    info!(
        "Runbook checks (psql \"{}\"):",
        crate::store::redact_url(url)
    );
    for table in ["raw.qb_customers", "raw.qb_items", "raw.qb_invoices"] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(pool)
                .await?;
        info!("SELECT COUNT(*) FROM {table};  -> {count}");
    }
    info!(
        "SELECT extract_window_start_utc::date AS day, COUNT(*) FROM raw.qb_customers GROUP BY 1 ORDER BY 1;"
    );
    let rows = sqlx::query(
        "SELECT extract_window_start_utc::date::text AS day, COUNT(*) AS n FROM raw.qb_customers GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        let day: String = row.try_get("day")?;
        let n: i64 = row.try_get("n")?;
        info!("  {day} | {n}");
    }
    Ok(())
}

/// Serves the UI and API over the demo's data, the simulator standing in for Intuit (its
/// consent page included, so Connect QuickBooks works), until Ctrl-C.
async fn serve_demo(
    pool: sqlx::PgPool,
    key: SecretKey,
    sim: &qbo_sim::RunningSim,
    bind: std::net::SocketAddr,
) -> anyhow::Result<()> {
    // A fresh password each start, so a newcomer always has one (the demo database is theirs).
    let password: String = crate::store::auth::web::random_token()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .chars()
        .take(16)
        .collect();
    crate::service::login::set_password(&pool, "admin", &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = if bind.ip().is_unspecified() || bind.ip().is_loopback() {
        "127.0.0.1".to_owned()
    } else {
        bind.ip().to_string()
    };
    let base = format!("http://{host}:{}", bind.port());
    let web = crate::server::web::WebConfig {
        secure_cookies: false,
        connect: crate::server::web::connect::ConnectConfig {
            authorize_url: sim
                .authorize_url()
                .parse()
                .context("simulator consent URL")?,
            redirect_uri: format!("{base}/connect/callback"),
        },
        trusted_proxies: crate::domain::access::TrustedProxies::default(),
    };
    info!("Open {base}/ and log in as admin (the simulator is the company; Ctrl-C stops)");
    // On the terminal only, never into the log.
    println!("Demo password for admin (this demo database only): {password}");
    crate::server::serve(crate::server::ServeConfig {
        pool,
        key,
        bind,
        workers: 2,
        tuning: ClientTuning::default(),
        lease: runs::LEASE,
        poll: std::time::Duration::from_millis(200),
        trigger_grace: std::time::Duration::from_secs(900),
        web,
    })
    .await
}
