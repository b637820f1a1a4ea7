//! Many companies on one PostgreSQL (issue 18): what the queue costs as it grows.
//!
//! One command per figure, each against a fresh database on the local server:
//!
//! ```text
//! cargo build --release -p qbo-sim -p qbo-backfill --examples --bins
//! target/release/examples/scale_bench claim      # a ten-year span's claim, heartbeats vs windows held
//! target/release/examples/scale_bench runs       # the Runs page and GET /api/v1/runs, 1,000,000 windows
//! target/release/examples/scale_bench companies  # 50 companies, 4 `worker` processes, budgets
//! ```
//!
//! Knobs: `--reps N` (claim), `--windows N` (runs), `--companies N --workers N --customers N
//! --days N --per-minute N --latency-ms N` (companies).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use qbo_backfill::pipeline::{DateRange, Pipeline, Window};
use qbo_backfill::store::TestDb;
use qbo_backfill::store::runs::queue::{self, NewRun};
use qbo_backfill::store::runs::workers::{self, WorkerIdentity};
use qbo_backfill::store::runs::{self, Execution, RequestTotals, RunStatus, RunTotals};
use sqlx::PgPool;

const REALM: &str = "9130350000000001";

fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| anyhow::anyhow!("{name} {v}: {e}"))
        }
        None => Ok(default),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorted copy's quantile `q` (0..=1), in milliseconds.
fn quantile(samples: &[Duration], q: f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().map(ms).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    println!("scale_bench {what}: load average before {}", load_average());
    match what.as_str() {
        "claim" => claim_bench().await?,
        other => anyhow::bail!("usage: scale_bench claim|runs|companies (not {other:?})"),
    }
    println!("load average after {}", load_average());
    Ok(())
}

/// A run of `range`'s windows, enqueued and claimed by `worker` as the CLI does.
async fn start_run(
    pool: &PgPool,
    range: DateRange,
    windows: &[Window],
    worker: &WorkerIdentity,
) -> anyhow::Result<Execution> {
    let mut tx = pool.begin().await?;
    let id = queue::enqueue_run(
        &mut tx,
        &NewRun {
            pipeline: Pipeline::CUSTOMERS,
            realm_id: REALM,
            range,
            windows,
            trigger: qbo_backfill::domain::run::RunOrigin::Cli,
            trigger_id: None,
            retry_of: None,
            requeue_on_loss: false,
        },
    )
    .await?;
    let claimed = queue::claim_run(&mut tx, id, worker, runs::LEASE)
        .await?
        .context("queued")?;
    tx.commit().await?;
    Ok(claimed.execution)
}

async fn finish(pool: &PgPool, exec: &Execution) -> anyhow::Result<()> {
    runs::finish_run(
        pool,
        exec,
        RunStatus::Interrupted,
        &RunTotals::default(),
        &RequestTotals::default(),
        None,
    )
    .await?;
    Ok(())
}

/// A ten-year span (3,653 windows) claimed at once: free windows, and windows a dead run held
/// (taken over); then one heartbeat with 10 and with 3,653 windows held.
async fn claim_bench() -> anyhow::Result<()> {
    let reps: usize = arg("--reps", 10)?;
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = &db.pool;
    let worker = WorkerIdentity::current();
    workers::register(pool, &worker, "bench").await?;
    let range = DateRange::parse("2016-01-01", "2026-01-01")?;
    let windows = range.windows()?;
    println!(
        "claim of a ten-year span ({} windows), {reps} times each, fresh database:",
        windows.len()
    );

    // Free windows: each run claims every window, then gives them back at its end.
    let mut free = Vec::new();
    for _ in 0..reps {
        let exec = start_run(pool, range, &windows, &worker).await?;
        let t = Instant::now();
        let claim = runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows,
            runs::LEASE,
        )
        .await?;
        free.push(t.elapsed());
        assert_eq!(claim.claimed.len(), windows.len());
        finish(pool, &exec).await?;
    }
    // Taken over: the holder's lease ran out (its worker stopped heartbeating).
    let mut taken = Vec::new();
    let mut holder = start_run(pool, range, &windows, &worker).await?;
    runs::claim_windows(
        pool,
        &holder,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await?;
    for _ in 0..reps {
        sqlx::query("UPDATE ops.runs SET lease_until = now() - interval '1 second' WHERE id = $1")
            .bind(holder.run_id)
            .execute(pool)
            .await?;
        let exec = start_run(pool, range, &windows, &worker).await?;
        let t = Instant::now();
        let claim = runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows,
            runs::LEASE,
        )
        .await?;
        taken.push(t.elapsed());
        assert_eq!(claim.claimed.len(), windows.len(), "a dead run's windows");
        holder = exec;
    }
    finish(pool, &holder).await?;
    println!(
        "  free windows          median {:8.1} ms  min {:8.1} ms  max {:8.1} ms",
        quantile(&free, 0.5),
        quantile(&free, 0.0),
        quantile(&free, 1.0)
    );
    println!(
        "  taken over (dead run) median {:8.1} ms  min {:8.1} ms  max {:8.1} ms",
        quantile(&taken, 0.5),
        quantile(&taken, 0.0),
        quantile(&taken, 1.0)
    );

    println!("heartbeat (run lease and its windows' claims), 50 beats each:");
    for held in [10, 365, windows.len()] {
        let exec = start_run(pool, range, &windows, &worker).await?;
        runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[..held],
            runs::LEASE,
        )
        .await?;
        let mut beats = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let beat = runs::heartbeat(pool, &exec, runs::LEASE).await?;
            beats.push(t.elapsed());
            assert_eq!(beat, Some(false));
        }
        finish(pool, &exec).await?;
        println!(
            "  {held:5} windows held    median {:8.2} ms  p90 {:8.2} ms",
            quantile(&beats, 0.5),
            quantile(&beats, 0.9)
        );
    }
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
