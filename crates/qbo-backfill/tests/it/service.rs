//! The use cases every front end shares, tested once here against a real PostgreSQL; each front
//! end's own test then checks that it applies the same rule (`server.rs` for the API, `hostile.rs`
//! and `runbook.rs` for the CLI, `browser.rs` for the pages).

use qbo_backfill::pipeline::{DateRange, Pipeline};
use qbo_backfill::service::retry::{RetryRefusal, plan_retry};
use qbo_backfill::store::runs::workers::WorkerIdentity;
use qbo_backfill::store::runs::{self, Claim};
use uuid::Uuid;

use crate::support::{dead_worker, start_run, test_db};

const REALM: &str = "9130357766900001";

async fn status(pool: &sqlx::PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_retry_rule_live_runs_refused_dead_ones_interrupted_then_retried() {
    let db = test_db().await;
    let range = DateRange::parse("2026-01-10", "2026-01-13").expect("range");
    let windows = range.windows().expect("windows");

    // No such run.
    let missing = Uuid::new_v4();
    assert!(matches!(
        plan_retry(&db.pool, missing).await,
        Err(RetryRefusal::NotFound(id)) if id == missing
    ));

    // A live running run is refused, and left alone.
    let live = start_run(&db.pool, REALM, range, &windows, &WorkerIdentity::current()).await;
    let refused = plan_retry(&db.pool, live.run_id)
        .await
        .expect_err("a live run");
    assert!(matches!(refused, RetryRefusal::Active { .. }), "{refused}");
    assert!(refused.to_string().contains("wait for it or cancel it"));
    assert_eq!(status(&db.pool, live.run_id).await, "running");

    // A run recorded running whose worker died is marked interrupted, then retried: the windows
    // it did not load.
    let dead = start_run(&db.pool, REALM, range, &windows, &dead_worker()).await;
    assert_eq!(
        runs::claim_window(
            &db.pool,
            &dead,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[0],
            runs::LEASE
        )
        .await
        .expect("claim"),
        Claim::Claimed
    );
    let plan = plan_retry(&db.pool, dead.run_id).await.expect("retryable");
    assert_eq!(status(&db.pool, dead.run_id).await, "interrupted");
    assert_eq!(plan.pipeline, Pipeline::CUSTOMERS);
    assert_eq!(plan.windows, windows);
    assert_eq!(plan.run.id, dead.run_id);

    // Every window loaded: nothing to retry.
    let done = start_run(&db.pool, REALM, range, &windows, &WorkerIdentity::current()).await;
    for window in &windows {
        let _ = runs::claim_window(
            &db.pool,
            &done,
            Pipeline::CUSTOMERS,
            REALM,
            window,
            runs::LEASE,
        )
        .await
        .expect("claim");
        runs::end_window(
            &db.pool,
            &done,
            Pipeline::CUSTOMERS,
            REALM,
            window,
            &runs::WindowEnd::Succeeded,
            std::time::Duration::ZERO,
        )
        .await
        .expect("end");
    }
    runs::finish_run(
        &db.pool,
        &done,
        &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
    )
    .await
    .expect("finish");
    assert!(matches!(
        plan_retry(&db.pool, done.run_id).await,
        Err(RetryRefusal::NothingToRetry(_))
    ));
}

/// One request of `REALM` through the shared budget: a slot granted, then released.
async fn one_request(pool: &sqlx::PgPool) {
    let slot: i64 = sqlx::query_scalar(
        "INSERT INTO ops.budget_slots (realm_id, started_at, expires_at) \
         VALUES ($1, now(), now() + interval '1 minute') RETURNING id",
    )
    .bind(REALM)
    .fetch_one(pool)
    .await
    .expect("slot");
    sqlx::query("SELECT ops.budget_release($1)")
        .bind(slot)
        .execute(pool)
        .await
        .expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_per_month_and_warned_of_once_at_eighty_percent() {
    use qbo_backfill::domain::health::Allowance;
    use qbo_backfill::service::allowance::{newly_crossed, warning_line};
    let db = test_db().await;
    // Budget slots count, one request each, in their month: those still held and those the
    // budget pruned alike.
    for _ in 0..3 {
        one_request(&db.pool).await;
    }
    // Two of them pruned (as the budget does five minutes after they end): still counted.
    sqlx::query("DELETE FROM ops.budget_slots WHERE id IN (SELECT id FROM ops.budget_slots ORDER BY id LIMIT 2)")
        .execute(&db.pool)
        .await
        .expect("prune");
    let allowance = Allowance::parse("4").expect("allowance");
    assert!(
        newly_crossed(&db.pool, allowance)
            .await
            .expect("check")
            .is_empty(),
        "3 of 4 is 75 %"
    );
    one_request(&db.pool).await;
    let crossed = newly_crossed(&db.pool, allowance).await.expect("check");
    assert_eq!(crossed.len(), 1, "4 of 4 warns");
    assert_eq!(crossed[0].requests, 4);
    let line = warning_line(&crossed[0], allowance);
    assert!(
        line.starts_with(&format!("Request allowance | realm_id={REALM} month=")),
        "{line}"
    );
    assert!(
        line.contains("requests=4 allowance=4 percent=100"),
        "{line}"
    );
    // Once a month: the next check (this process or another) says nothing.
    assert!(
        newly_crossed(&db.pool, allowance)
            .await
            .expect("check")
            .is_empty()
    );
}
