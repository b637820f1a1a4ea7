//! Benchmark of the request budget shared through PostgreSQL ([`PgBudget`]).
//!
//! 1. Cost: microseconds per acquire + release on a fresh database, limits off and limits on
//!    (high enough never to wait), sequentially, with 10 tasks on one budget, and with 3 budgets
//!    of 10 tasks each on pools of their own (3 processes).
//! 2. Utilisation: N clients (each a `QboClient` with its own `PgBudget` and pool, 10 tasks
//!    each, as N processes) query an in-process `qbo-sim` that enforces the limits, for a few
//!    seconds: requests per second against the budget, throttled responses, the most in flight
//!    the simulator saw. Once with Intuit's limits (500/min, 10/s, 10 in flight, 20-120 ms
//!    answers) and once with the in-flight limit alone (100-300 ms answers).
//!
//! ```text
//! cargo run --release -p qbo-backfill --example budget_bench -- [--requests 3000] [--clients 3] [--seconds 15]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use qbo::{
    ClientSettings, Counted, Credentials, Environment, MemoryTokenStore, QboClient,
    RateLimitSettings, TokenSet,
};
use qbo_backfill::store::connect_options;
use qbo_backfill::store::infra::budget::PgBudget;
use qbo_backfill::store::infra::testdb::TestDb;
use qbo_sim::{FaultConfig, Rotation, SimConfig, SimLimits, SimState};
use secrecy::SecretString;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const REALM: &str = "9130350000000001";

fn arg(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .with_context(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

/// A pool of its own on `url`, connected as the binary connects (no TLS on loopback).
async fn pool(url: &str, size: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .connect_with(connect_options(url)?)
        .await?)
}

/// `tasks` tasks on each of `budgets` run acquire + release `per_task` times; µs per request.
async fn cost(budgets: &[PgBudget], tasks: usize, per_task: usize) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for budget in budgets {
        for _ in 0..tasks {
            let budget = budget.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    budget
                        .acquire_slot(Counted::FromCompletion)
                        .await?
                        .complete()
                        .await?;
                }
                Ok::<_, qbo_backfill::store::StoreError>(())
            }));
        }
    }
    for h in handles {
        h.await??;
    }
    let n = budgets.len() * tasks * per_task;
    Ok(t0.elapsed().as_secs_f64() * 1e6 / n as f64)
}

async fn clear(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE ops.budget_slots, ops.budget_companies")
        .execute(pool)
        .await?;
    Ok(())
}

async fn cost_section(db: &TestDb, requests: usize) -> anyhow::Result<()> {
    let off = RateLimitSettings::unlimited();
    let high = RateLimitSettings {
        requests_per_minute: Some(1_000_000),
        requests_per_second: Some(1_000_000),
        max_in_flight: Some(1_000),
    };
    println!("== cost of one acquire + release (µs per request, wall time / requests) ==");
    {
        let p = pool(&db.url, 1).await?;
        let mut times = [0.0_f64; 3];
        for (i, sql) in [
            "SELECT 1",
            "SELECT slot_id FROM ops.budget_acquire('probe', NULL, NULL, NULL, 60500000, 1100000, 130000000)",
            "SELECT count(*) FROM ops.budget_slots WHERE realm_id = 'none'",
        ]
        .into_iter()
        .enumerate()
        {
            for _ in 0..50 {
                sqlx::query(sql).execute(&p).await?;
            }
            let t0 = Instant::now();
            for _ in 0..500 {
                sqlx::query(sql).execute(&p).await?;
            }
            times[i] = t0.elapsed().as_secs_f64() * 1e6 / 500.0;
        }
        println!(
            "round trips: SELECT 1 {:.1} µs, ops.budget_acquire alone {:.1} µs, a count {:.1} µs",
            times[0], times[1], times[2]
        );
        clear(&db.pool).await?;
    }
    for (label, limits) in [("limits off", &off), ("limits on, never binding", &high)] {
        let one = PgBudget::new(pool(&db.url, 12).await?, REALM, limits);
        let three = [
            one.clone(),
            PgBudget::new(pool(&db.url, 12).await?, REALM, limits),
            PgBudget::new(pool(&db.url, 12).await?, REALM, limits),
        ];
        // Warm up the connections and plans.
        cost(std::slice::from_ref(&one), 1, 200).await?;
        clear(&db.pool).await?;
        let seq = cost(std::slice::from_ref(&one), 1, requests).await?;
        clear(&db.pool).await?;
        let ten = cost(std::slice::from_ref(&one), 10, requests / 10).await?;
        clear(&db.pool).await?;
        let thirty = cost(&three, 10, requests / 30).await?;
        clear(&db.pool).await?;
        println!(
            "{label:<26} sequential {seq:>7.1} µs | 1 budget x 10 tasks {ten:>7.1} µs | \
             3 budgets x 10 tasks {thirty:>7.1} µs"
        );
    }
    Ok(())
}

/// A client of `sim` with its own budget on its own pool.
async fn client(
    sim: &qbo_sim::RunningSim,
    db: &TestDb,
    limits: &RateLimitSettings,
    tokens: &MemoryTokenStore,
) -> anyhow::Result<QboClient> {
    let mut settings = ClientSettings::for_environment(Environment::Sandbox);
    settings.api_base_url = sim.api_base_url().parse()?;
    settings.token_url = sim.token_url().parse()?;
    settings.limits = limits.clone();
    settings.retry.throttle_wait = Duration::from_millis(1100);
    let config = SimConfig::default();
    let credentials = Credentials {
        client_id: config.client_id,
        client_secret: SecretString::from(config.client_secret),
        realm_id: config.realm_id,
    };
    let budget = PgBudget::for_client(pool(&db.url, 4).await?, REALM, &settings);
    Ok(QboClient::with_budget(
        settings,
        credentials,
        Arc::new(tokens.clone()),
        Arc::new(budget),
    )?)
}

struct Scenario {
    label: &'static str,
    sim_limits: SimLimits,
    client_limits: RateLimitSettings,
    latency: Duration,
    jitter: Duration,
}

async fn utilisation(
    db: &TestDb,
    scenario: &Scenario,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    clear(&db.pool).await?;
    let config = SimConfig {
        customers: 100,
        items: 0,
        invoices: 0,
        rotation: Rotation::AfterAge(Duration::from_secs(86_400)),
        limits: scenario.sim_limits,
        faults: FaultConfig {
            latency: scenario.latency,
            latency_jitter: scenario.jitter,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let refresh = config.refresh_token.clone();
    let sim = qbo_sim::serve(SimState::new(config), ([127, 0, 0, 1], 0).into()).await?;
    let tokens = MemoryTokenStore::new(TokenSet::from_refresh_token(SecretString::from(refresh)));
    let mut all = Vec::new();
    for _ in 0..clients {
        let c = client(&sim, db, &scenario.client_limits, &tokens).await?;
        c.ensure_access_token().await?;
        all.push(c);
    }
    sim.state().reset_stats();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for c in &all {
        for _ in 0..10 {
            let c = c.clone();
            handles.push(tokio::spawn(async move {
                let mut failed = 0_u64;
                while Instant::now() < deadline {
                    if c.query("SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 10")
                        .await
                        .is_err()
                    {
                        failed += 1;
                    }
                }
                failed
            }));
        }
    }
    let mut failed = 0;
    for h in handles {
        failed += h.await?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let stats = sim.state().stats();
    // Slot occupancy by the database clock.
    let (held_s, span_s): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(extract(epoch FROM ends_at - started_at)), 0)::float8, \
                coalesce(extract(epoch FROM max(ends_at) - min(started_at)), 0)::float8 \
         FROM ops.budget_slots",
    )
    .fetch_one(&db.pool)
    .await?;
    let rate = stats.query_requests as f64 / elapsed;
    let budget_rate = match scenario.client_limits.requests_per_second {
        Some(n) => format!("{:.1}% of {n}/s", rate / f64::from(n) * 100.0),
        None => "no per-second limit".to_owned(),
    };
    let in_flight = scenario
        .client_limits
        .max_in_flight
        .map_or(f64::NAN, f64::from);
    println!(
        "{:<28} {clients} clients x 10 tasks, {elapsed:.1} s: {} requests, {rate:.2}/s ({budget_rate}), \
         average in flight {:.2} ({:.0}% of {in_flight}), max in flight seen {}, throttled {}, failed {failed}",
        scenario.label,
        stats.query_requests,
        held_s / span_s.max(f64::MIN_POSITIVE),
        held_s / span_s.max(f64::MIN_POSITIVE) / in_flight * 100.0,
        stats.max_in_flight_seen,
        stats.throttled,
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let requests = usize::try_from(arg("--requests", 3000)?)?.max(30);
    let clients = usize::try_from(arg("--clients", 3)?)?.max(1);
    let seconds = arg("--seconds", 15)?.max(2);
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    cost_section(&db, requests).await?;

    println!("== utilisation of one company's budget by {clients} clients (processes) ==");
    let scenarios = [
        Scenario {
            label: "Intuit limits (500/min, 10/s, 10 in flight)",
            sim_limits: SimLimits {
                requests_per_minute: Some(500),
                requests_per_second: Some(10),
                max_in_flight: Some(10),
            },
            client_limits: RateLimitSettings::default(),
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(100),
        },
        Scenario {
            label: "in flight only (10)",
            sim_limits: SimLimits {
                requests_per_minute: None,
                requests_per_second: None,
                max_in_flight: Some(10),
            },
            client_limits: RateLimitSettings {
                requests_per_minute: None,
                requests_per_second: None,
                max_in_flight: Some(10),
            },
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(200),
        },
    ];
    for scenario in &scenarios {
        utilisation(&db, scenario, clients, seconds).await?;
    }
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
