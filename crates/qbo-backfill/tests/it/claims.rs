//! Window claims between runs against a real PostgreSQL: a claim that had to wait for another
//! run's claim sees that run as the holder, and runs whose process died are never left
//! `running` (nor are their windows).

use std::time::Duration;

use qbo_backfill::pipeline::{DateRange, Pipeline, Window};
use qbo_backfill::store::runs::workers::WorkerIdentity;
use qbo_backfill::store::runs::{self, Claim, Execution, Reaped};
use sqlx::{Connection as _, PgPool};
use uuid::Uuid;

use crate::support::{dead_worker, start_run, test_db};

const REALM: &str = "9130357766900001";

fn one_day() -> (DateRange, Vec<Window>) {
    let range = DateRange::parse("2026-01-10", "2026-01-11").expect("range");
    let windows = range.windows().expect("windows");
    (range, windows)
}

async fn new_run(pool: &PgPool, range: DateRange, windows: &[Window]) -> Execution {
    start_run(pool, REALM, range, windows, &WorkerIdentity::current()).await
}

/// Waits until some session is blocked on a row lock.
async fn wait_for_a_blocked_session(pool: &PgPool) {
    for _ in 0..200 {
        let blocked: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(pool)
            .await
            .expect("pg_locks");
        if blocked > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the second claim never waited for the first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_waited_for_another_claim_sees_the_live_holder() {
    let db = test_db().await;
    let (range, windows) = one_day();
    let window = windows[0];
    let a = new_run(&db.pool, range, &windows).await;
    let b = new_run(&db.pool, range, &windows).await;

    // Run A is claiming the window (row locked, not yet committed) when B tries to claim it.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "SELECT 1 FROM ops.windows WHERE pipeline = $1 AND realm_id = $2 \
         AND window_start = $3::timestamptz FOR UPDATE",
    )
    .bind(Pipeline::CUSTOMERS.name())
    .bind(REALM)
    .bind(window.start.to_string())
    .execute(&mut *tx)
    .await
    .expect("lock");
    sqlx::query(
        "UPDATE ops.windows SET status = 'running', run_id = $4, execution_id = $5, \
         lease_until = now() + interval '60 seconds' \
         WHERE pipeline = $1 AND realm_id = $2 AND window_start = $3::timestamptz",
    )
    .bind(Pipeline::CUSTOMERS.name())
    .bind(REALM)
    .bind(window.start.to_string())
    .bind(a.run_id)
    .bind(a.execution_id)
    .execute(&mut *tx)
    .await
    .expect("claim as A");

    let pool = db.pool.clone();
    let claim_b = tokio::spawn(async move {
        runs::claim_window(&pool, &b, Pipeline::CUSTOMERS, REALM, &window, runs::LEASE).await
    });
    wait_for_a_blocked_session(&db.pool).await;
    tx.commit().await.expect("commit A's claim");

    let claim = claim_b.await.expect("task").expect("claim");
    assert_eq!(
        claim,
        Claim::Busy { holder: a.run_id },
        "B took the window while live run A was loading it"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
        .bind(a.run_id)
        .fetch_one(&db.pool)
        .await
        .expect("status");
    assert_eq!(status, "running", "live run A was marked {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_run_and_its_windows_are_reaped_not_left_running() {
    let db = test_db().await;
    let (range, windows) = one_day();
    // Its worker is gone: same boot and pid namespace, a pid above Linux's pid_max.
    let dead_exec = start_run(&db.pool, REALM, range, &windows, &dead_worker()).await;
    let dead = dead_exec.run_id;
    assert_eq!(
        runs::claim_window(
            &db.pool,
            &dead_exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[0],
            runs::LEASE
        )
        .await
        .expect("claim"),
        Claim::Claimed
    );
    let alive = new_run(&db.pool, range, &windows).await.run_id;

    let reaped = runs::reap_lost_runs(&db.pool).await.expect("reap");
    assert_eq!(
        reaped,
        vec![Reaped {
            run_id: dead,
            status: runs::RunStatus::Interrupted
        }]
    );

    let run_status = |id: Uuid| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM ops.runs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("status")
        }
    };
    assert_eq!(run_status(dead).await, "interrupted");
    assert_eq!(
        run_status(alive).await,
        "running",
        "a live run is left alone"
    );
    let running: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM ops.windows WHERE status = 'running') \
              + (SELECT count(*) FROM ops.run_windows WHERE run_id = $1 AND status = 'running')",
    )
    .bind(dead)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(running, 0, "the dead run's windows are still running");
    assert_eq!(
        runs::unfinished_windows(&db.pool, dead)
            .await
            .expect("unfinished"),
        windows,
        "the dead run's window is still retryable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_expired_goes_back_to_the_queue_and_its_old_worker_can_report_nothing() {
    let db = test_db().await;
    let (range, windows) = one_day();
    // A worker on another machine or container: this process cannot judge its pid.
    let mut remote = WorkerIdentity::current();
    remote.liveness_key = None;
    qbo_backfill::store::runs::workers::register(&db.pool, &remote, "worker")
        .await
        .expect("register");
    let mut tx = db.pool.begin().await.expect("begin");
    let id = qbo_backfill::store::runs::queue::enqueue_run(
        &mut tx,
        &qbo_backfill::store::runs::queue::NewRun {
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
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    let mut conn = db.pool.acquire().await.expect("conn");
    let old = qbo_backfill::store::runs::queue::claim_next(&mut conn, &remote, runs::LEASE)
        .await
        .expect("claim")
        .expect("a queued run");
    assert_eq!(old.execution.run_id, id);
    assert_eq!(
        runs::claim_window(
            &db.pool,
            &old.execution,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[0],
            runs::LEASE
        )
        .await
        .expect("claim window"),
        Claim::Claimed
    );
    // Still alive: nothing to reap.
    assert!(
        runs::reap_lost_runs(&db.pool)
            .await
            .expect("reap")
            .is_empty()
    );
    // Its heartbeats stop: the lease runs out.
    sqlx::query("UPDATE ops.runs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("expire");
    assert_eq!(
        runs::reap_lost_runs(&db.pool).await.expect("reap"),
        vec![Reaped {
            run_id: id,
            status: runs::RunStatus::Queued
        }]
    );
    let new = qbo_backfill::store::runs::queue::claim_next(
        &mut conn,
        &WorkerIdentity::current(),
        runs::LEASE,
    )
    .await
    .expect("claim")
    .expect("the run is queued again");
    assert_eq!(new.execution.run_id, id);
    assert_eq!(
        new.windows, windows,
        "the window it held is to be loaded again"
    );
    // The old worker wakes up: every write it tries finds nothing to update.
    assert_eq!(
        runs::heartbeat(&db.pool, &old.execution, runs::LEASE)
            .await
            .expect("hb"),
        None
    );
    let mut tx = db.pool.begin().await.expect("begin");
    assert!(
        !runs::record_page(
            &mut tx,
            &old.execution,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[0],
            1,
            Default::default()
        )
        .await
        .expect("page")
    );
    tx.rollback().await.expect("rollback");
    assert_eq!(
        runs::claim_window(
            &db.pool,
            &old.execution,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[0],
            runs::LEASE
        )
        .await
        .expect("claim window"),
        Claim::Lost
    );
    let finished = runs::finish_run(
        &db.pool,
        &old.execution,
        &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
    )
    .await
    .expect("finish");
    assert_eq!(finished, None, "a taken-over worker reported the run");
    let status: String = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("status");
    assert_eq!(status, "running", "the new execution holds it");
    // The new execution cannot report success while a window is not loaded.
    let stored = runs::finish_run(
        &db.pool,
        &new.execution,
        &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
    )
    .await
    .expect("finish");
    assert_eq!(stored, Some(runs::RunStatus::Failed));
    assert_sums_follow_the_windows(&db.pool).await;
}

/// Ends every window of `exec` as succeeded except `skip` (left as a taken-over day would be).
async fn load_all_but(pool: &PgPool, exec: &Execution, windows: &[Window], skip: Option<usize>) {
    for (i, window) in windows.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        assert_eq!(
            runs::claim_window(pool, exec, Pipeline::CUSTOMERS, REALM, window, runs::LEASE)
                .await
                .expect("claim"),
            Claim::Claimed
        );
        assert!(
            runs::end_window(
                pool,
                exec,
                Pipeline::CUSTOMERS,
                REALM,
                window,
                &runs::WindowEnd::Succeeded,
                Duration::ZERO,
            )
            .await
            .expect("end")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_moves_only_with_a_run_whose_every_window_succeeded() {
    let db = test_db().await;
    let range = DateRange::parse("2026-01-10", "2026-01-13").expect("range");
    let windows = range.windows().expect("windows");
    let cursor_of = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT synced_through::text FROM ops.sync_cursors WHERE realm_id = $1",
        )
        .bind(REALM)
        .fetch_optional(&db.pool)
        .await
        .expect("cursor")
    };
    let to = |through: &str| runs::CursorMove {
        realm_id: REALM.to_owned(),
        entity: qbo::Entity::Customer,
        range_start: range.start().expect("start"),
        through: through.parse().expect("through"),
    };
    let finish = |exec: Execution, cursor: runs::CursorMove| {
        let pool = db.pool.clone();
        async move {
            runs::finish_run_moving_cursor(
                &pool,
                &exec,
                &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
                Some(&cursor),
            )
            .await
            .expect("finish")
        }
    };

    // A run one of whose days another run took over (left pending) is stored failed, and the
    // cursor stays where it was (nowhere).
    let partial = new_run(&db.pool, range, &windows).await;
    load_all_but(&db.pool, &partial, &windows, Some(1)).await;
    let stored = finish(partial, to("2026-01-13T00:00:00Z")).await;
    assert_eq!(stored, Some(runs::RunStatus::Failed));
    assert_eq!(cursor_of().await, None, "a failed run moved the cursor");

    // Every window loaded: the run succeeds and the cursor moves with it.
    let whole = new_run(&db.pool, range, &windows).await;
    load_all_but(&db.pool, &whole, &windows, None).await;
    let stored = finish(whole, to("2026-01-13T00:00:00Z")).await;
    assert_eq!(stored, Some(runs::RunStatus::Succeeded));
    assert_eq!(cursor_of().await.as_deref(), Some("2026-01-13 00:00:00+00"));

    // Never backwards.
    let older = new_run(&db.pool, range, &windows).await;
    load_all_but(&db.pool, &older, &windows, None).await;
    finish(older, to("2026-01-12T00:00:00Z")).await;
    assert_eq!(cursor_of().await.as_deref(), Some("2026-01-13 00:00:00+00"));

    // A range that starts after the cursor would leave a gap: the cursor stays.
    let later = DateRange::parse("2026-01-20", "2026-01-21").expect("range");
    let later_windows = later.windows().expect("windows");
    let gap = new_run(&db.pool, later, &later_windows).await;
    load_all_but(&db.pool, &gap, &later_windows, None).await;
    let mut cursor = to("2026-01-21T00:00:00Z");
    cursor.range_start = later.start().expect("start");
    assert_eq!(finish(gap, cursor).await, Some(runs::RunStatus::Succeeded));
    assert_eq!(cursor_of().await.as_deref(), Some("2026-01-13 00:00:00+00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_run_of_each_pipeline_comes_in_one_query() {
    use qbo_backfill::store::runs::views;
    let db = test_db().await;
    let (range, windows) = one_day();
    let first = new_run(&db.pool, range, &windows).await.run_id;
    let newest = new_run(&db.pool, range, &windows).await.run_id;
    let latest = views::latest_per_pipeline(
        &db.pool,
        &[Pipeline::CUSTOMERS.name(), Pipeline::ITEMS.name()],
    )
    .await
    .expect("latest");
    assert_eq!(latest.len(), 1, "items has no run");
    assert_eq!(latest[0].id, newest);
    assert_ne!(latest[0].id, first);
    assert_eq!(latest[0].pipeline, Pipeline::CUSTOMERS.name());
}

/// A ten-year span: 3,653 daily windows.
fn ten_years() -> (DateRange, Vec<Window>) {
    let range = DateRange::parse("2016-01-01", "2026-01-01").expect("range");
    let windows = range.windows().expect("windows");
    assert_eq!(windows.len(), 3653);
    (range, windows)
}

/// Counts, from now on, every statement that writes `ops.runs`, `ops.windows` or
/// `ops.run_windows`, and every row it writes (statement- and row-level triggers into
/// `public.writes`): a claim or heartbeat that went back to a statement per window, or to
/// touching every held window, shows there whatever the machine's speed.
async fn count_writes(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE public.writes (tbl text NOT NULL, level text NOT NULL);
         CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.writes VALUES (TG_TABLE_NAME, TG_LEVEL); RETURN NULL; END $$;
         CREATE TRIGGER s AFTER INSERT OR UPDATE OR DELETE ON ops.runs
           FOR EACH STATEMENT EXECUTE FUNCTION public.count_write();
         CREATE TRIGGER r AFTER INSERT OR UPDATE OR DELETE ON ops.runs
           FOR EACH ROW EXECUTE FUNCTION public.count_write();
         CREATE TRIGGER s AFTER INSERT OR UPDATE OR DELETE ON ops.windows
           FOR EACH STATEMENT EXECUTE FUNCTION public.count_write();
         CREATE TRIGGER r AFTER INSERT OR UPDATE OR DELETE ON ops.windows
           FOR EACH ROW EXECUTE FUNCTION public.count_write();
         CREATE TRIGGER s AFTER INSERT OR UPDATE OR DELETE ON ops.run_windows
           FOR EACH STATEMENT EXECUTE FUNCTION public.count_write();
         CREATE TRIGGER r AFTER INSERT OR UPDATE OR DELETE ON ops.run_windows
           FOR EACH ROW EXECUTE FUNCTION public.count_write();",
    )
    .execute(pool)
    .await
    .expect("count writes");
}

/// Statements and rows written to `table` since the last call (which clears the counts).
async fn writes_to(pool: &PgPool, table: &str) -> (i64, i64) {
    let (statements, rows): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE level = 'STATEMENT'), count(*) FILTER (WHERE level = 'ROW') \
         FROM public.writes WHERE tbl = $1",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("writes");
    sqlx::query("DELETE FROM public.writes WHERE tbl = $1")
        .bind(table)
        .execute(pool)
        .await
        .expect("clear");
    (statements, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_year_claim_is_set_based_fenced_and_taken_over_once_its_run_lease_runs_out() {
    let db = test_db().await;
    let (range, windows) = ten_years();
    let a = new_run(&db.pool, range, &windows).await;
    let b = new_run(&db.pool, range, &windows).await;
    count_writes(&db.pool).await;

    let claim = runs::claim_windows(
        &db.pool,
        &a,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await
    .expect("claim A");
    assert_eq!(claim.claimed.len(), 3653);
    assert!(claim.busy.is_empty() && !claim.lost);
    // One statement per table, each writing every window once.
    assert_eq!(writes_to(&db.pool, "windows").await, (1, 3653));
    assert_eq!(writes_to(&db.pool, "run_windows").await, (1, 3653));
    assert_eq!(writes_to(&db.pool, "runs").await, (0, 0));

    // A lives: B finds every window busy, held by A, and writes nothing.
    let claim = runs::claim_windows(
        &db.pool,
        &b,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await
    .expect("claim B");
    assert!(claim.claimed.is_empty());
    assert_eq!(claim.busy.len(), 3653);
    assert!(claim.busy.iter().all(|(_, holder)| *holder == a.run_id));
    assert_eq!(writes_to(&db.pool, "windows").await, (0, 0));

    // A's worker stops beating: once its run's lease has run out, B takes all of them over, in
    // a fixed number of statements, and A's own record of them goes back to pending.
    sqlx::query("UPDATE ops.runs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(a.run_id)
        .execute(&db.pool)
        .await
        .expect("expire A");
    writes_to(&db.pool, "runs").await;
    let claim = runs::claim_windows(
        &db.pool,
        &b,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await
    .expect("take over");
    assert_eq!(
        claim.claimed.len(),
        3653,
        "a dead run's windows stayed held"
    );
    assert_eq!(writes_to(&db.pool, "windows").await, (1, 3653));
    assert_eq!(writes_to(&db.pool, "run_windows").await, (2, 2 * 3653));
    let a_running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ops.run_windows WHERE run_id = $1 AND status = 'running'",
    )
    .bind(a.run_id)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(a_running, 0, "the old holder's record stayed running");

    // A wakes up: every write it tries on the windows is refused.
    let mut tx = db.pool.begin().await.expect("begin");
    for window in [windows[0], windows[3652]] {
        assert!(
            !runs::record_page(
                &mut tx,
                &a,
                Pipeline::CUSTOMERS,
                REALM,
                &window,
                1,
                Default::default()
            )
            .await
            .expect("page")
        );
    }
    tx.rollback().await.expect("rollback");
    let ended = runs::end_windows_succeeded(
        &db.pool,
        &a,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        Duration::ZERO,
    )
    .await
    .expect("end");
    assert!(ended.is_empty(), "a taken-over execution ended windows");
    let ended = runs::end_windows_succeeded(
        &db.pool,
        &b,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        Duration::ZERO,
    )
    .await
    .expect("end");
    assert_eq!(ended, windows);
    assert_sums_follow_the_windows(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_keeps_every_held_window_by_writing_one_row() {
    let db = test_db().await;
    let (range, windows) = ten_years();
    // A claimed with a one-second lease.
    let a = start_run(&db.pool, REALM, range, &windows, &WorkerIdentity::current()).await;
    sqlx::query("UPDATE ops.runs SET lease_until = now() + interval '1 second' WHERE id = $1")
        .bind(a.run_id)
        .execute(&db.pool)
        .await
        .expect("short lease");
    let b = new_run(&db.pool, range, &windows).await;
    let claim = runs::claim_windows(
        &db.pool,
        &a,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await
    .expect("claim A");
    assert_eq!(claim.claimed.len(), 3653);
    count_writes(&db.pool).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let beat = runs::heartbeat(&db.pool, &a, runs::LEASE)
        .await
        .expect("beat");
    assert_eq!(beat, Some(false));
    assert_eq!(writes_to(&db.pool, "runs").await, (1, 1));
    assert_eq!(
        writes_to(&db.pool, "windows").await,
        (0, 0),
        "the heartbeat wrote windows"
    );
    assert_eq!(writes_to(&db.pool, "run_windows").await, (0, 0));

    // Past the first lease, the beat kept all 3,653 windows.
    let claim = runs::claim_windows(
        &db.pool,
        &b,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await
    .expect("claim B");
    assert!(claim.claimed.is_empty(), "B took windows A still holds");
    assert_eq!(claim.busy.len(), 3653);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_counts_are_live_while_it_runs_and_stored_with_it_when_it_ends() {
    use qbo_backfill::store::raw::UpsertCounts;
    use qbo_backfill::store::runs::views::{self, RunFilter};
    let db = test_db().await;
    let range = DateRange::parse("2026-01-10", "2026-01-13").expect("range");
    let windows = range.windows().expect("windows");
    let exec = new_run(&db.pool, range, &windows).await;
    let page = |window: Window, rows: u64| {
        let pool = db.pool.clone();
        async move {
            runs::claim_window(
                &pool,
                &exec,
                Pipeline::CUSTOMERS,
                REALM,
                &window,
                runs::LEASE,
            )
            .await
            .expect("claim");
            let mut tx = pool.begin().await.expect("begin");
            let counts = UpsertCounts {
                inserted: rows,
                ..UpsertCounts::default()
            };
            assert!(
                runs::record_page(
                    &mut tx,
                    &exec,
                    Pipeline::CUSTOMERS,
                    REALM,
                    &window,
                    rows,
                    counts
                )
                .await
                .expect("page")
            );
            tx.commit().await.expect("commit");
        }
    };
    let end = |window: Window, end: runs::WindowEnd<'static>| {
        let pool = db.pool.clone();
        async move {
            runs::end_window(
                &pool,
                &exec,
                Pipeline::CUSTOMERS,
                REALM,
                &window,
                &end,
                Duration::ZERO,
            )
            .await
            .expect("end")
        }
    };
    page(windows[0], 7).await;
    assert!(end(windows[0], runs::WindowEnd::Succeeded).await);
    page(windows[1], 5).await;
    let live = views::get(&db.pool, exec.run_id)
        .await
        .expect("view")
        .expect("run");
    assert_eq!(
        (live.rows, live.counts.inserted, live.windows_succeeded),
        (12, 12, 1)
    );
    assert_eq!(
        live.windows_outstanding, 2,
        "running: two windows not loaded yet"
    );
    assert_eq!(
        stored_sums(&db.pool, exec.run_id).await,
        (12, 0, 1),
        "the run's row follows its windows while it runs"
    );
    let failed = runs::WindowEnd::Failed {
        error: "boom",
        intuit_tid: None,
    };
    assert!(end(windows[1], failed).await);
    runs::finish_run(
        &db.pool,
        &exec,
        &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
    )
    .await
    .expect("finish");
    assert_eq!(
        stored_sums(&db.pool, exec.run_id).await,
        (12, 1, 1),
        "sums stored at the end"
    );
    let listed = views::list(&db.pool, &RunFilter::default(), 10)
        .await
        .expect("list");
    let ended = listed.iter().find(|r| r.id == exec.run_id).expect("listed");
    assert_eq!(ended.status, runs::RunStatus::Failed);
    assert_eq!(
        (
            ended.rows,
            ended.counts.total,
            ended.windows_failed,
            ended.windows_succeeded
        ),
        (12, 12, 1, 1)
    );
    assert_eq!(ended.windows_outstanding, 2, "one failed, one never loaded");
    // Another run loads the failed day: what a retry would load shrinks, live.
    let other = new_run(&db.pool, range, &windows[1..2]).await;
    runs::claim_window(
        &db.pool,
        &other,
        Pipeline::CUSTOMERS,
        REALM,
        &windows[1],
        runs::LEASE,
    )
    .await
    .expect("claim");
    assert!(
        runs::end_window(
            &db.pool,
            &other,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[1],
            &runs::WindowEnd::Succeeded,
            Duration::ZERO
        )
        .await
        .expect("end")
    );
    let ended = views::get(&db.pool, exec.run_id)
        .await
        .expect("view")
        .expect("run");
    assert_eq!(ended.windows_outstanding, 1);
    assert_eq!(ended.windows.map(|w| w.len()), Some(3));
}

/// Every run's stored window sums (`w_*`) equal the sums of its windows, however they changed
/// (claims, take-overs, pages, ends).
async fn assert_sums_follow_the_windows(pool: &PgPool) {
    let differ: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT r.id, r.w_rows, coalesce(a.rows, 0) FROM ops.runs r LEFT JOIN ( \
           SELECT run_id, count(*) FILTER (WHERE status = 'failed') AS failed, \
             count(*) FILTER (WHERE status = 'succeeded') AS succeeded, sum(rows_total) AS rows, \
             sum(inserted) AS inserted, sum(updated) AS updated, sum(unchanged) AS unchanged \
           FROM ops.run_windows GROUP BY run_id) a ON a.run_id = r.id \
         WHERE (r.w_failed, r.w_succeeded, r.w_rows, r.w_inserted, r.w_updated, r.w_unchanged) \
           IS DISTINCT FROM (coalesce(a.failed, 0), coalesce(a.succeeded, 0), \
             coalesce(a.rows, 0), coalesce(a.inserted, 0), coalesce(a.updated, 0), \
             coalesce(a.unchanged, 0))",
    )
    .fetch_all(pool)
    .await
    .expect("sums");
    assert!(
        differ.is_empty(),
        "stored sums differ from the windows: {differ:?}"
    );
}

/// A run's stored window sums (`w_rows`, `w_failed`, `w_succeeded`).
async fn stored_sums(pool: &PgPool, run_id: Uuid) -> (i64, i64, i64) {
    sqlx::query_as("SELECT w_rows, w_failed, w_succeeded FROM ops.runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(pool)
        .await
        .expect("sums")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_page_of_runs_starts_after_the_last_one_shown_even_at_the_same_instant() {
    use qbo_backfill::store::runs::views::{self, RunFilter};
    let db = test_db().await;
    let (range, windows) = one_day();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_run(&db.pool, range, &windows).await.run_id);
    }
    // Three of them enqueued in one transaction: one `created_at`.
    sqlx::query("UPDATE ops.runs SET created_at = (SELECT created_at FROM ops.runs WHERE id = $1) WHERE id = ANY($2)")
        .bind(ids[1])
        .bind(&ids[1..4])
        .execute(&db.pool)
        .await
        .expect("same instant");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let filter = RunFilter {
            before,
            ..RunFilter::default()
        };
        let page = views::list(&db.pool, &filter, 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every run once, newest first");
}

/// `(status, count)` of the company's customer windows in `ops.windows`, by status.
async fn window_statuses(pool: &PgPool, realm_id: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT status, count(*) FROM ops.windows WHERE pipeline = $1 AND realm_id = $2 \
         GROUP BY status ORDER BY status",
    )
    .bind(Pipeline::CUSTOMERS.name())
    .bind(realm_id)
    .fetch_all(pool)
    .await
    .expect("windows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_gives_back_the_windows_it_still_holds_and_only_those() {
    let db = test_db().await;
    let (range, windows) = ten_years();
    let other_realm = "9130357766900002";
    let mine = new_run(&db.pool, range, &windows).await;
    let theirs = start_run(
        &db.pool,
        other_realm,
        range,
        &windows,
        &WorkerIdentity::current(),
    )
    .await;
    for (exec, realm_id) in [(&mine, REALM), (&theirs, other_realm)] {
        let claim = runs::claim_windows(
            &db.pool,
            exec,
            Pipeline::CUSTOMERS,
            realm_id,
            &windows,
            runs::LEASE,
        )
        .await
        .expect("claim");
        assert_eq!(claim.claimed.len(), 3653);
    }

    // The run stops with every window unfinished: all of them go back to pending, with why.
    runs::finish_run(
        &db.pool,
        &mine,
        &runs::RunEnd::bare(runs::RunStatus::Interrupted, Some("stopped")),
    )
    .await
    .expect("finish");
    assert_eq!(
        window_statuses(&db.pool, REALM).await,
        vec![("pending".to_owned(), 3653)]
    );
    let why: Option<String> =
        sqlx::query_scalar("SELECT DISTINCT last_error FROM ops.windows WHERE realm_id = $1")
            .bind(REALM)
            .fetch_one(&db.pool)
            .await
            .expect("last_error");
    assert_eq!(
        why.as_deref(),
        Some("the run stopped before this window finished")
    );
    // The other company's run still holds its own.
    assert_eq!(
        window_statuses(&db.pool, other_realm).await,
        vec![("running".to_owned(), 3653)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_runs_loaded_windows_never_deadlock() {
    // Windows loaded in part once (a span that failed: its days load again in smaller pieces)
    // carry counters, so each claim, which zeroes them, moves its run's own counters too.
    let db = test_db().await;
    let range = DateRange::parse("2026-01-01", "2026-03-02").expect("range");
    let windows = range.windows().expect("windows");
    let exec = new_run(&db.pool, range, &windows).await;
    sqlx::query("UPDATE ops.run_windows SET rows_total = 5, inserted = 5 WHERE run_id = $1")
        .bind(exec.run_id)
        .execute(&db.pool)
        .await
        .expect("counters");
    let mut claims = tokio::task::JoinSet::new();
    for window in windows.clone() {
        let pool = db.pool.clone();
        claims.spawn(async move {
            runs::claim_window(
                &pool,
                &exec,
                Pipeline::CUSTOMERS,
                REALM,
                &window,
                runs::LEASE,
            )
            .await
        });
    }
    while let Some(claim) = claims.join_next().await {
        let claim = claim.expect("task").expect("no claim fails (no deadlock)");
        assert!(matches!(claim, Claim::Claimed), "{claim:?}");
    }
    let (running, rows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ops.run_windows WHERE run_id = $1 AND status = 'running'), \
                (SELECT w_rows FROM ops.runs WHERE id = $1)",
    )
    .bind(exec.run_id)
    .fetch_one(&db.pool)
    .await
    .expect("state");
    assert_eq!((running, rows), (windows.len() as i64, 0));
}

/// A batch of two queued customers runs recorded as run by `run_by` (`None`: the queue's).
async fn queued_batch(pool: &PgPool, run_by: Option<Uuid>) -> Vec<Uuid> {
    use qbo_backfill::domain::batch::Batch;
    use qbo_backfill::domain::run::RunOrigin;
    use qbo_backfill::store::runs::batches::{self, NewBatch};
    let (range, windows) = one_day();
    let mut tx = pool.begin().await.expect("begin");
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(crate::support::enqueue_customers(&mut tx, REALM, range, &windows).await);
    }
    if run_by.is_none() {
        sqlx::query("UPDATE ops.runs SET requeue_on_loss = true WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .expect("queue's runs");
    }
    let batch = NewBatch {
        batch: Batch::AllBackfill,
        realm_id: REALM,
        range: Some(range),
        trigger: RunOrigin::Cli,
        trigger_id: None,
        started_by: None,
        run_by,
    };
    batches::insert(&mut tx, &batch, &ids).await.expect("batch");
    tx.commit().await.expect("commit");
    ids
}

async fn statuses(pool: &PgPool, ids: &[Uuid]) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(pool)
        .await
        .expect("statuses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_queued_for_a_command_line_that_is_gone_are_cancelled_not_left_queued() {
    let db = test_db().await;
    // A command line killed between two of its batch's runs (none running): its worker is dead.
    let dead = dead_worker();
    runs::workers::register(&db.pool, &dead, "cli")
        .await
        .expect("register");
    let orphaned = queued_batch(&db.pool, Some(dead.id)).await;
    // One on another host (its process cannot be looked at) that stopped beating a while ago.
    let mut far = WorkerIdentity::current();
    far.liveness_key = None;
    runs::workers::register(&db.pool, &far, "cli")
        .await
        .expect("register");
    sqlx::query(
        "UPDATE ops.workers SET heartbeat_at = now() - interval '61 seconds' WHERE id = $1",
    )
    .bind(far.id)
    .execute(&db.pool)
    .await
    .expect("silence");
    let silent = queued_batch(&db.pool, Some(far.id)).await;
    // This live process's batch, one on another host still beating, and a batch the queue runs.
    let me = WorkerIdentity::current();
    runs::workers::register(&db.pool, &me, "cli")
        .await
        .expect("register");
    let mine = queued_batch(&db.pool, Some(me.id)).await;
    let mut near = WorkerIdentity::current();
    near.liveness_key = None;
    runs::workers::register(&db.pool, &near, "cli")
        .await
        .expect("register");
    let beating = queued_batch(&db.pool, Some(near.id)).await;
    let queues = queued_batch(&db.pool, None).await;

    let mut reaped = runs::reap_lost_runs(&db.pool).await.expect("reap");
    reaped.sort_by_key(|r| r.run_id);
    let mut expected: Vec<Reaped> = orphaned
        .iter()
        .chain(&silent)
        .map(|&run_id| Reaped {
            run_id,
            status: runs::RunStatus::Cancelled,
        })
        .collect();
    expected.sort_by_key(|r| r.run_id);
    assert_eq!(reaped, expected);
    assert_eq!(statuses(&db.pool, &orphaned).await, ["cancelled"; 2]);
    assert_eq!(statuses(&db.pool, &silent).await, ["cancelled"; 2]);
    for live in [&mine, &beating, &queues] {
        assert_eq!(statuses(&db.pool, live).await, ["queued"; 2]);
    }
    // A command line that ended (stopped) with runs still queued leaves none behind either.
    runs::workers::stopped(&db.pool, me.id)
        .await
        .expect("stopped");
    assert_eq!(runs::reap_lost_runs(&db.pool).await.expect("reap").len(), 2);
    assert_eq!(statuses(&db.pool, &mine).await, ["cancelled"; 2]);
    assert_eq!(statuses(&db.pool, &queues).await, ["queued"; 2]);
}
