//! The orchestrator's own overhead, measured against a fresh database on the local server: what a
//! run costs the queue before any QuickBooks request (enqueue, claim by a worker with
//! `SKIP LOCKED`, a heartbeat, a window claim and end, the run's end), and an API round trip.
//!
//! `cargo run --release -p qbo-backfill --example orchestrator_bench [runs]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use qbo_backfill::pipeline::{DateRange, Pipeline};
use qbo_backfill::store::TestDb;
use qbo_backfill::store::queue::{self, NewRun};
use qbo_backfill::store::runs::{self, RequestTotals, RunStatus, RunTotals, WindowEnd};
use qbo_backfill::store::workers::{self, WorkerIdentity};

const REALM: &str = "9130350000000001";

fn per_op(total: Duration, n: usize) -> String {
    format!("{:.0} µs", total.as_secs_f64() * 1e6 / n as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = &db.pool;
    let worker = WorkerIdentity::current();
    workers::register(pool, &worker, "bench").await?;
    let range = DateRange::parse("2026-01-01", "2026-01-02")?;
    let windows = range.windows()?;

    // Enqueue n one-window runs (as the API does: one transaction each).
    let started = Instant::now();
    for i in 0..n {
        let day =
            jiff::civil::date(2020, 1, 1).checked_add(jiff::Span::new().days(i64::try_from(i)?))?;
        let range = DateRange::new(day, day.tomorrow()?)?;
        let windows = range.windows()?;
        let mut tx = pool.begin().await?;
        queue::enqueue_run(
            &mut tx,
            &NewRun {
                pipeline: Pipeline::Customers,
                realm_id: REALM,
                range,
                windows: &windows,
                trigger: "api",
                trigger_id: None,
                retry_of: None,
                requeue_on_loss: true,
            },
        )
        .await?;
        tx.commit().await?;
    }
    let enqueue = started.elapsed();

    // Claim them all (oldest first, SKIP LOCKED), with a heartbeat, a window claim and end, and
    // the run's end each: the bookkeeping of a one-window run.
    let mut conn = pool.acquire().await?;
    let (mut claim, mut beat, mut window, mut finish) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut claimed = 0;
    loop {
        let t = Instant::now();
        let Some(run) = queue::claim_next(&mut conn, &worker, runs::LEASE).await? else {
            break;
        };
        claim += t.elapsed();
        let exec = run.execution;
        let t = Instant::now();
        runs::heartbeat(pool, &exec, runs::LEASE).await?;
        beat += t.elapsed();
        let t = Instant::now();
        let w = run.windows[0];
        runs::claim_window(pool, &exec, Pipeline::Customers, REALM, &w, runs::LEASE).await?;
        runs::end_window(
            pool,
            &exec,
            Pipeline::Customers,
            REALM,
            &w,
            &WindowEnd::Succeeded,
            Duration::ZERO,
        )
        .await?;
        window += t.elapsed();
        let t = Instant::now();
        let stored = runs::finish_run(
            pool,
            &exec,
            RunStatus::Succeeded,
            &RunTotals::default(),
            &RequestTotals::default(),
            None,
        )
        .await?;
        finish += t.elapsed();
        assert_eq!(stored, Some(RunStatus::Succeeded));
        claimed += 1;
    }
    assert_eq!(claimed, n);
    let _ = (range, windows);
    println!(
        "orchestrator overhead over {n} one-window runs (fresh database, PostgreSQL on localhost):"
    );
    println!(
        "  enqueue (API/trigger, own transaction)   {}",
        per_op(enqueue, n)
    );
    println!(
        "  claim by a worker (SKIP LOCKED)          {}",
        per_op(claim, n)
    );
    println!(
        "  heartbeat (run + window leases)          {}",
        per_op(beat, n)
    );
    println!(
        "  window claim + end                        {}",
        per_op(window, n)
    );
    println!(
        "  run end (fenced)                         {}",
        per_op(finish, n)
    );
    println!(
        "  total per run                            {}",
        per_op(enqueue + claim + beat + window + finish, n)
    );
    drop(conn);
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
