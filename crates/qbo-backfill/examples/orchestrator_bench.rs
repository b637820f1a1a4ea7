//! The orchestrator's own overhead, measured against a fresh database on the local server: what a
//! run costs the queue before any QuickBooks request (enqueue, claim by a worker with
//! `SKIP LOCKED`, a heartbeat, a window claim and end, the run's end), and an API round trip.
//!
//! `cargo run --release -p qbo-backfill --example orchestrator_bench [runs]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use qbo_backfill::pipeline::{DateRange, Pipeline};
use qbo_backfill::store::TestDb;
use qbo_backfill::store::runs::queue::{self, NewRun};
use qbo_backfill::store::runs::workers::{self, WorkerIdentity};
use qbo_backfill::store::runs::{self, RunStatus, WindowEnd};

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
                pipeline: Pipeline::CUSTOMERS,
                realm_id: REALM,
                range,
                windows: &windows,
                trigger: qbo_backfill::domain::run::RunOrigin::Api,
                trigger_id: None,
                started_by: None,
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
        runs::claim_window(pool, &exec, Pipeline::CUSTOMERS, REALM, &w, runs::LEASE).await?;
        runs::end_window(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &w,
            &WindowEnd::Succeeded,
            Duration::ZERO,
        )
        .await?;
        window += t.elapsed();
        let t = Instant::now();
        let stored =
            runs::finish_run(pool, &exec, &runs::RunEnd::bare(RunStatus::Succeeded, None)).await?;
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
    ui_reads(pool).await?;
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The reads behind the Runs page and a run's page with 1,000 more runs of 30 windows each
/// (30,000 windows) in the database.
async fn ui_reads(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use qbo_backfill::store::runs::views::{self, RunFilter};
    sqlx::query(
        "WITH r AS (INSERT INTO ops.runs (id, pipeline, realm_id, fecha_inicio, fecha_fin, status, \
           trigger, windows_total, created_at) \
         SELECT gen_random_uuid(), 'qb_invoices_backfill', $1, date '2024-01-01', \
           date '2024-01-31', 'succeeded', 'api', 30, now() - make_interval(secs => g) \
         FROM generate_series(1, 1000) g RETURNING id) \
         INSERT INTO ops.run_windows (run_id, window_start, window_end, status, pages, rows_total, \
           inserted) \
         SELECT r.id, d, d + interval '1 day', 'succeeded', 1, 50, 50 FROM r, \
           generate_series(timestamptz '2024-01-01', timestamptz '2024-01-30', interval '1 day') d",
    )
    .bind(REALM)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE ops.runs; ").execute(pool).await?;
    sqlx::query("ANALYZE ops.run_windows").execute(pool).await?;
    let windows: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.run_windows")
        .fetch_one(pool)
        .await?;
    let reps = 50;
    let t = Instant::now();
    let mut last = None;
    for _ in 0..reps {
        let page = views::list(pool, &RunFilter::default(), 50).await?;
        last = page.last().map(|r| r.id);
    }
    let first_page = t.elapsed();
    let t = Instant::now();
    for _ in 0..reps {
        let filter = RunFilter {
            before: last,
            ..RunFilter::default()
        };
        views::list(pool, &filter, 50).await?;
    }
    let next_page = t.elapsed();
    let id = last.expect("a run");
    let t = Instant::now();
    for _ in 0..reps {
        views::get(pool, id).await?.expect("run");
    }
    let one = t.elapsed();
    println!("UI and API reads with {windows} run windows in the database:");
    println!(
        "  runs list, first page of 50                {}",
        per_op(first_page, reps)
    );
    println!(
        "  runs list, next page (keyset)              {}",
        per_op(next_page, reps)
    );
    println!(
        "  one run with its 30 windows                {}",
        per_op(one, reps)
    );
    Ok(())
}
