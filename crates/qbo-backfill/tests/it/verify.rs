//! `qbo-backfill verify` end to end against `qbo-sim` and real PostgreSQL: deletions QuickBooks
//! made (TimeActivity, which change data capture does not report) are marked and nothing else
//! is touched, rows missing from `raw` are loaded back, a month that agrees costs one request,
//! `all` covers every entity, a month QuickBooks cannot answer fails the run (exit 1) and its
//! retry verifies only that month, bad input writes nothing, the API enqueues runs a worker
//! completes, and a row written after a month's paging started is never marked.

use std::collections::HashSet;

use qbo_backfill::pipeline::{DateRange, Mode, Pipeline};
use qbo_backfill::store::raw::verify as verify_store;
use qbo_backfill::store::runs::{Claim, claim_window};
use qbo_sim::{FaultConfig, SimConfig};
use serde_json::json;

use super::harness::{World, field, sim_config, stderr, stdout};
use super::server::Api;
use super::support;

const FROM: &str = "2025-11-01";
const TO: &str = "2026-02-01";
const TABLE: &str = "raw.qb_time_activities";

/// A company whose entities were created over three months (November to January).
fn three_months() -> SimConfig {
    SimConfig {
        customers: 20,
        items: 10,
        invoices: 30,
        other_rows: 120,
        from: jiff::civil::date(2025, 11, 1),
        to: jiff::civil::date(2026, 2, 1),
        ..SimConfig::default()
    }
}

/// Every row of `table` as `(id, payload hash, ingested at, deleted at)`, by id.
type Snapshot = Vec<(String, Vec<u8>, String, Option<String>)>;

async fn snapshot(world: &World, table: &str) -> Snapshot {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, payload_hash, ingested_at_utc::text, deleted_at_utc::text FROM {table} \
         ORDER BY id"
    )))
    .fetch_all(world.pool())
    .await
    .expect("snapshot")
}

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .expect("count")
}

async fn verify(world: &World, entity: &str, from: &str, to: &str) -> (Option<i32>, String) {
    let out = world
        .run(&["verify", entity, "--fecha-inicio", from, "--fecha-fin", to])
        .await;
    let text = stdout(&out);
    assert!(
        !text.contains("sim-client-secret") && !stderr(&out).contains("sim-client-secret"),
        "a secret was printed"
    );
    (out.status.code(), format!("{text}\n{}", stderr(&out)))
}

/// How many calendar months of `[from, to)` hold a live row of `table` (by creation time): an
/// agreeing month with rows costs two counts (its rows, its rows changed after the newest
/// change stored), one without rows one.
async fn months_with_rows(world: &World, table: &str, from: &str, to: &str) -> u64 {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT to_char(c AT TIME ZONE 'UTC', 'YYYY-MM')) FROM (SELECT \
         ops.qbo_time(payload -> 'MetaData' ->> 'CreateTime') AS c FROM {table} \
         WHERE deleted_at_utc IS NULL) AS t WHERE c >= $1::timestamptz AND c < $2::timestamptz"
    )))
    .bind(format!("{from}T00:00:00Z"))
    .bind(format!("{to}T00:00:00Z"))
    .fetch_one(world.pool())
    .await
    .expect("months with rows");
    u64::try_from(n).expect("a count")
}

/// The value of `key=` on the `Verify | …` line.
fn verify_field(text: &str, key: &str) -> u64 {
    field(text, "Verify |", key).unwrap_or_else(|| panic!("no {key}= on a Verify line: {text}"))
}

fn run_id_of(text: &str) -> String {
    text.lines()
        .rev()
        .filter(|l| l.starts_with("Verify |"))
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("run_id=")))
        .expect("a run_id= on a Verify line")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_marks_exactly_the_rows_quickbooks_deleted_then_costs_two_counts_a_month() {
    let world = World::new(three_months()).await;
    let out = world.load("qb_time_activities_backfill", FROM, TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let before = snapshot(&world, TABLE).await;
    assert!(before.len() >= 60, "{} time activities", before.len());

    // Two deletions, in November and in January.
    let november = world.expected_ids("TimeActivity", "2025-11-01", "2025-12-01");
    let january = world.expected_ids("TimeActivity", "2026-01-01", "2026-02-01");
    let deleted = [november[3].clone(), january[5].clone()];
    for id in &deleted {
        world
            .sim
            .state()
            .delete("TimeActivity", id)
            .expect("delete");
    }

    world.sim.state().reset_stats();
    let (code, text) = verify(&world, "time_activities", FROM, TO).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(verify_field(&text, "months"), 3, "{text}");
    assert_eq!(verify_field(&text, "drifted"), 2, "{text}");
    assert_eq!(verify_field(&text, "agreed"), 1, "{text}");
    assert_eq!(verify_field(&text, "marked_deleted"), 2, "{text}");
    assert_eq!(verify_field(&text, "loaded"), 0, "{text}");
    assert_eq!(verify_field(&text, "failed"), 0, "{text}");
    let requests = verify_field(&text, "requests");
    assert_eq!(
        requests,
        world.sim.state().stats().query_requests,
        "the line counts what QuickBooks received: {text}"
    );
    assert_eq!(field(&text, "Verify done |", "entities"), Some(1), "{text}");
    assert_eq!(
        field(&text, "Verify done |", "marked_deleted"),
        Some(2),
        "{text}"
    );

    // Exactly those two are marked; every other row is byte-identical.
    let after = snapshot(&world, TABLE).await;
    assert_eq!(after.len(), before.len(), "deleted rows are kept, marked");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.0, new.0);
        if deleted.contains(&old.0) {
            assert_eq!(
                (&old.1, &old.2),
                (&new.1, &new.2),
                "{}: payload kept",
                old.0
            );
            assert!(new.3.is_some(), "{} is marked deleted", old.0);
        } else {
            assert_eq!(old, new, "time activity {} was touched", old.0);
        }
    }

    // The run's windows are the three calendar months, and each month's result is kept.
    let months: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT to_char(month_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), \
                to_char(month_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'), status, \
                coalesce(qbo_count, -1), coalesce(raw_count, -1), marked_deleted \
         FROM ops.verify_months ORDER BY month_start",
    )
    .fetch_all(world.pool())
    .await
    .expect("months");
    let statuses: Vec<(&str, &str, &str, i64)> = months
        .iter()
        .map(|m| (m.0.as_str(), m.1.as_str(), m.2.as_str(), m.5))
        .collect();
    assert_eq!(
        statuses,
        [
            ("2025-11-01", "2025-12-01", "drifted", 1),
            ("2025-12-01", "2026-01-01", "agreed", 0),
            ("2026-01-01", "2026-02-01", "drifted", 1),
        ]
    );
    assert_eq!(months[0].3 + 1, months[0].4, "QuickBooks counts one fewer");
    let windows: Vec<(String, String)> = sqlx::query_as(
        "SELECT w.window_start::text, w.window_end::text FROM ops.run_windows w \
         JOIN ops.runs r ON r.id = w.run_id WHERE r.pipeline = 'qb_time_activities_verify' \
         ORDER BY 1",
    )
    .fetch_all(world.pool())
    .await
    .expect("windows");
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(
        windows[1].0.starts_with("2025-12-01") && windows[1].1.starts_with("2026-01-01"),
        "{windows:?}"
    );

    // Verified again: every month agrees, on counts alone (two for a month with rows, one for a
    // month without), nothing written.
    world.sim.state().reset_stats();
    let (code, text) = verify(&world, "time_activities", FROM, TO).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(verify_field(&text, "drifted"), 0, "{text}");
    assert_eq!(verify_field(&text, "marked_deleted"), 0, "{text}");
    assert_eq!(verify_field(&text, "agreed"), 3, "{text}");
    let with_rows = months_with_rows(&world, TABLE, FROM, TO).await;
    assert!(with_rows > 0);
    assert_eq!(verify_field(&text, "requests"), 3 + with_rows, "{text}");
    let stats = world.sim.state().stats();
    assert_eq!(
        stats.query_requests,
        3 + with_rows,
        "{:?}",
        world.sim.state().queries()
    );
    assert!(
        world
            .sim
            .state()
            .queries()
            .iter()
            .all(|q| q.to_uppercase().contains("COUNT(*)")),
        "{:?}",
        world.sim.state().queries()
    );
    assert_eq!(snapshot(&world, TABLE).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_missing_from_raw_are_loaded_back() {
    let world = World::new(three_months()).await;
    let out = world.load("qb_time_activities_backfill", FROM, TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let expected = world.expected_ids("TimeActivity", FROM, TO);
    let gone = [&expected[0], &expected[40], &expected[expected.len() - 1]];
    let removed = sqlx::query("DELETE FROM raw.qb_time_activities WHERE id = ANY($1::text[])")
        .bind(gone.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .execute(world.pool())
        .await
        .expect("delete")
        .rows_affected();
    assert_eq!(removed, 3);

    let (code, text) = verify(&world, "time_activities", FROM, TO).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(verify_field(&text, "loaded"), 3, "{text}");
    assert_eq!(verify_field(&text, "marked_deleted"), 0, "{text}");
    assert!(verify_field(&text, "drifted") >= 1, "{text}");
    assert_eq!(world.loaded_ids(TABLE).await, expected);
    world.assert_payloads_match(TABLE, "TimeActivity").await;
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM raw.qb_time_activities WHERE deleted_at_utc IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_all_loads_what_raw_lacks_then_each_agreeing_month_costs_two_counts() {
    let world = World::new(sim_config(30)).await;
    // Nothing loaded yet: every entity's January differs, and the repair loads it.
    let (code, text) = verify(&world, "all", "2026-01-01", "2026-02-01").await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("Verify | entity=").count(), 26, "{text}");
    assert_eq!(
        field(&text, "Verify done |", "entities"),
        Some(26),
        "{text}"
    );
    assert_eq!(field(&text, "Verify done |", "months"), Some(26), "{text}");
    assert_eq!(field(&text, "Verify done |", "drifted"), Some(26), "{text}");
    assert_eq!(field(&text, "Verify done |", "failed"), Some(0), "{text}");
    let mut total = 0;
    for spec in qbo_backfill::pipeline::catalog::ENTITIES {
        let expected = world.expected_ids(spec.entity.qbo_name(), "2026-01-01", "2026-02-01");
        assert_eq!(
            world.loaded_ids(spec.table).await,
            expected,
            "{}",
            spec.plural
        );
        total += expected.len() as u64;
    }
    assert_eq!(
        field(&text, "Verify done |", "loaded"),
        Some(total),
        "{text}"
    );

    world.sim.state().reset_stats();
    let (code, text) = verify(&world, "all", "2026-01-01", "2026-02-01").await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(field(&text, "Verify done |", "agreed"), Some(26), "{text}");
    let mut with_rows = 0;
    for spec in qbo_backfill::pipeline::catalog::ENTITIES {
        with_rows += months_with_rows(&world, spec.table, "2026-01-01", "2026-02-01").await;
    }
    assert_eq!(
        field(&text, "Verify done |", "requests"),
        Some(26 + with_rows),
        "{text}"
    );
    assert_eq!(world.sim.state().stats().query_requests, 26 + with_rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_quickbooks_cannot_answer_fails_with_exit_1_and_its_retry_verifies_it() {
    let world = World::new(three_months()).await;
    let out = world.load("qb_time_activities_backfill", FROM, TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    world.sim.state().set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });
    let (code, text) = verify(&world, "time_activities", "2025-12-10", "2026-01-01").await;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(verify_field(&text, "failed"), 1, "{text}");
    assert!(text.contains("Verify failed: 1 of 1 months"), "{text}");
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.verify_months WHERE status = 'failed'"
        )
        .await,
        1
    );
    // The month is clipped to the range.
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.run_windows WHERE window_start = '2025-12-10T00:00:00Z' \
             AND window_end = '2026-01-01T00:00:00Z' AND status = 'failed'"
        )
        .await,
        1
    );

    world.sim.state().set_faults(FaultConfig::default());
    let run_id = run_id_of(&text);
    let out = world.run(&["retry", &run_id]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(verify_field(&text, "months"), 1, "{text}");
    assert_eq!(verify_field(&text, "agreed"), 1, "{text}");
    let retried: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT w.window_start::text, w.window_end::text, w.status FROM ops.run_windows w \
         JOIN ops.runs r ON r.id = w.run_id WHERE r.retry_of = $1::uuid",
    )
    .bind(&run_id)
    .fetch_all(world.pool())
    .await
    .expect("retried windows");
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert!(retried[0].0.starts_with("2025-12-10"), "{retried:?}");
    assert!(
        retried[0].1.starts_with("2026-01-01"),
        "the whole month: {retried:?}"
    );
    assert_eq!(retried[0].2, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_one_line_and_writes_nothing() {
    let world = World::new(sim_config(10)).await;
    for args in [
        vec![
            "verify",
            "invoice",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-02-01",
        ],
        vec![
            "verify",
            "qb_invoices_verify",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-02-01",
        ],
        vec![
            "verify",
            "invoices",
            "--fecha-inicio",
            "2026-02-30",
            "--fecha-fin",
            "2026-03-01",
        ],
        vec![
            "verify",
            "all",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-01",
        ],
        vec![
            "verify",
            "invoices",
            "--fecha-inicio",
            "2026-02-01",
            "--fecha-fin",
            "2026-01-01",
        ],
        vec!["verify", "invoices", "--fecha-inicio", "2026-01-01"],
        vec![
            "verify",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-02-01",
        ],
    ] {
        let out = world.run(&args).await;
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {err}{}",
            stdout(&out)
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error"), "{args:?}: {err}");
    }
    let out = world
        .run(&[
            "verify",
            "invoice",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-02-01",
        ])
        .await;
    assert!(
        stderr(&out).contains("unknown entity `invoice`") && stderr(&out).contains("invoices"),
        "{}",
        stderr(&out)
    );
    for table in [
        "ops.runs",
        "ops.windows",
        "ops.verify_months",
        "ops.companies",
    ] {
        assert_eq!(
            count(&world, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} was written"
        );
    }
    assert_eq!(world.sim.state().stats().requests_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_enqueues_verify_runs_that_a_worker_completes() {
    let world = World::new(three_months()).await;
    let out = world.load("qb_time_activities_backfill", FROM, TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let gone = world.expected_ids("TimeActivity", "2025-12-01", "2026-01-01")[2].clone();
    world
        .sim
        .state()
        .delete("TimeActivity", &gone)
        .expect("delete");
    let api = Api::start(&world, "1").await;
    let runs_before = count(&world, "SELECT count(*) FROM ops.runs").await;

    // Bad input: 422 with the error envelope, nothing written.
    for (body, code) in [
        (
            json!({"entity": "invoice", "fecha_inicio": FROM, "fecha_fin": TO}),
            "unknown_entity",
        ),
        (
            json!({"entity": "invoices", "fecha_inicio": "2025-11-31", "fecha_fin": TO}),
            "invalid_date",
        ),
        (
            json!({"entity": "invoices", "fecha_inicio": TO, "fecha_fin": FROM}),
            "invalid_range",
        ),
        (json!({"entity": "invoices"}), "invalid_request"),
        (
            json!({"entity": "invoices", "fecha_inicio": FROM, "fecha_fin": TO, "x": 1}),
            "invalid_request",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/verify", body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.runs").await,
        runs_before
    );

    let (status, run) = api
        .post(
            "/api/v1/verify",
            json!({"entity": "time_activities", "fecha_inicio": FROM, "fecha_fin": TO}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["pipeline"], "qb_time_activities_verify", "{run}");
    assert_eq!(run["trigger"], "api", "{run}");
    let windows = run["windows"].as_array().expect("windows");
    let bounds: Vec<(&str, &str)> = windows
        .iter()
        .map(|w| {
            (
                w["start_utc"].as_str().unwrap_or_default(),
                w["end_utc"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        bounds,
        [
            ("2025-11-01T00:00:00Z", "2025-12-01T00:00:00Z"),
            ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ]
    );
    let id = run["id"].as_str().expect("id").to_owned();
    let done = api.wait_final(&id, 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let marked: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM raw.qb_time_activities WHERE deleted_at_utc IS NOT NULL",
    )
    .fetch_all(world.pool())
    .await
    .expect("marked");
    assert_eq!(marked, [gone]);
    let (_, logs) = api.get(&format!("/api/v1/runs/{id}/logs")).await;
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Verify | entity=time_activities months=3 agreed=2 drifted=1 loaded=0 marked_deleted=1 "
        )),
        "{lines:?}"
    );

    // `all`: one run per entity, each answered in the runs' shape; a range without data costs
    // one request per entity.
    let (status, answer) = api
        .post(
            "/api/v1/verify",
            json!({"entity": "all", "fecha_inicio": "2020-01-01", "fecha_fin": "2020-02-01"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let runs = answer["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 26, "{answer}");
    let names: HashSet<&str> = runs.iter().filter_map(|r| r["pipeline"].as_str()).collect();
    assert_eq!(names.len(), 26);
    assert!(names.iter().all(|n| n.ends_with("_verify")), "{names:?}");
    for run in runs {
        let id = run["id"].as_str().expect("id");
        let done = api.wait_final(id, 120).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
}

/// A verify run of TimeActivity over January 2026, enqueued and claimed by a worker, with its
/// month claimed.
async fn claimed_month(
    pool: &sqlx::PgPool,
) -> (
    qbo_backfill::store::runs::Execution,
    Pipeline,
    qbo_backfill::pipeline::Window,
) {
    use qbo_backfill::store::runs::queue::{NewRun, claim_run, enqueue_run};
    let pipeline = Pipeline::of(qbo::Entity::TimeActivity, Mode::Verify).expect("pipeline");
    let range = DateRange::parse("2026-01-01", "2026-02-01").expect("range");
    let windows = pipeline.windows(&range).expect("months");
    assert_eq!(windows.len(), 1);
    let worker = qbo_backfill::store::runs::workers::WorkerIdentity::current();
    qbo_backfill::store::runs::workers::register(pool, &worker, "test")
        .await
        .expect("register");
    let mut tx = pool.begin().await.expect("begin");
    let id = enqueue_run(
        &mut tx,
        &NewRun {
            pipeline,
            realm_id: "realm",
            range,
            windows: &windows,
            trigger: qbo_backfill::domain::run::RunOrigin::Cli,
            trigger_id: None,
            started_by: None,
            retry_of: None,
            requeue_on_loss: false,
        },
    )
    .await
    .expect("enqueue");
    let claimed = claim_run(&mut tx, id, &worker, qbo_backfill::store::runs::LEASE)
        .await
        .expect("claim")
        .expect("queued");
    tx.commit().await.expect("commit");
    assert_eq!(claimed.windows, windows, "pending windows are the months");
    let exec = claimed.execution;
    let claim = claim_window(
        pool,
        &exec,
        pipeline,
        "realm",
        &windows[0],
        qbo_backfill::store::runs::LEASE,
    )
    .await
    .expect("claim window");
    assert_eq!(claim, Claim::Claimed);
    (exec, pipeline, windows[0])
}

fn time_activity(id: &str, created: &str) -> qbo::Row {
    support::row(
        &json!({"Id": id, "SyncToken": "0", "Hours": 2,
                "MetaData": {"CreateTime": created, "LastUpdatedTime": created}})
        .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_after_the_paging_started_is_never_marked() {
    let db = support::test_db().await;
    let pool = &db.pool;
    let (exec, pipeline, month) = claimed_month(pool).await;
    let before_writes = verify_store::database_now(pool).await.expect("now");
    let mut page = support::page(
        1,
        vec![
            time_activity("1", "2026-01-03T10:00:00-08:00"),
            time_activity("2", "2026-01-31T23:30:00-05:00"),
            time_activity("3", "2026-02-01T01:00:00Z"),
            time_activity("4", "not a time"),
            time_activity("5", "2026-01-15T00:00:00Z"),
            time_activity("6", "2026-01-32T00:00:00Z"),
            time_activity("7", "2025-02-29T00:00:00-05:00"),
        ],
    );
    page.entity = qbo::Entity::TimeActivity;
    let mut conn = pool.acquire().await.expect("conn");
    qbo_backfill::store::upsert_page(
        &mut conn,
        &qbo_backfill::store::PageWrite {
            realm_id: "realm",
            table: pipeline.table(),
            window_start: month.start,
            window_end: month.end,
            page: &page,
            run_id: None,
        },
    )
    .await
    .expect("upsert");
    drop(conn);
    // Rows 1 and 5 were created in January (UTC): row 2 is 2026-02-01T04:30Z, row 3 is in
    // February; rows 4, 6 and 7 have no valid time (and fail nothing).
    let counts = verify_store::live_counts(pool, pipeline.table(), "realm", &[month])
        .await
        .expect("counts");
    assert_eq!(
        counts.get(&month.start).map(|m| m.live),
        Some(2),
        "{counts:?}"
    );

    // Paging started before the rows were written: none of them may be marked.
    let marked = verify_store::mark_missing(
        pool,
        &exec,
        pipeline,
        "realm",
        &month,
        &HashSet::new(),
        before_writes,
        jiff::Timestamp::now(),
    )
    .await
    .expect("mark");
    assert_eq!(marked, Some(0));

    // Another execution (a lost claim) marks nothing.
    let stranger = qbo_backfill::store::runs::Execution {
        execution_id: uuid::Uuid::now_v7(),
        ..exec
    };
    let after_writes = verify_store::database_now(pool).await.expect("now");
    let marked = verify_store::mark_missing(
        pool,
        &stranger,
        pipeline,
        "realm",
        &month,
        &HashSet::new(),
        after_writes,
        jiff::Timestamp::now(),
    )
    .await
    .expect("mark");
    assert_eq!(marked, None);
    assert_eq!(
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM raw.qb_time_activities WHERE deleted_at_utc IS NOT NULL"
        )
        .fetch_one(pool)
        .await
        .expect("count"),
        0
    );

    // Paging started after: the January row QuickBooks did not return is marked, and only it.
    let marked = verify_store::mark_missing(
        pool,
        &exec,
        pipeline,
        "realm",
        &month,
        &HashSet::from(["5".to_owned()]),
        after_writes,
        jiff::Timestamp::now(),
    )
    .await
    .expect("mark");
    assert_eq!(marked, Some(1));
    let deleted: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM raw.qb_time_activities WHERE deleted_at_utc IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("deleted");
    assert_eq!(deleted, ["1"]);
    let counts = verify_store::live_counts(pool, pipeline.table(), "realm", &[month])
        .await
        .expect("counts");
    assert_eq!(
        counts.get(&month.start).map(|m| m.live),
        Some(1),
        "a marked row is not live"
    );
}

/// Verify runs of `pipeline` that are over.
async fn finished_verify_runs(world: &World, pipeline: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM ops.runs WHERE pipeline = $1 \
         AND status NOT IN ('queued', 'running')",
    )
    .bind(pipeline)
    .fetch_one(world.pool())
    .await
    .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_page_lists_every_entity_verifies_from_its_form_and_reads_on_a_phone() {
    use super::browser::{ADMIN_PASSWORD, Browser, Ui};
    let mut world = World::new(three_months()).await;
    let out = world.load("qb_time_activities_backfill", FROM, TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let gone = world.expected_ids("TimeActivity", "2026-01-01", "2026-02-01")[1].clone();
    world
        .sim
        .state()
        .delete("TimeActivity", &gone)
        .expect("delete");
    let ui = Ui::start(&mut world).await;
    let browser = Browser::start().await;
    ui.login(&browser).await;

    browser.goto(&format!("{}/verify", ui.base)).await;
    assert_eq!(
        browser.count("a[href='/verify'][aria-current=page]").await,
        1
    );
    assert_eq!(browser.count("tbody tr").await, 26);
    assert!(
        browser
            .text("#v-time_activities")
            .await
            .contains("never verified")
    );

    // Refused input is shown next to the form and writes nothing.
    let form = "#verify-form form";
    browser
        .set_value(&format!("{form} select[name=entity]"), "time_activities")
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), TO)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), FROM)
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser.wait_for(&format!("{form} .error"), 1, 20).await;
    assert!(
        browser
            .text(&format!("{form} .error"))
            .await
            .contains("must be after"),
        "{}",
        browser.text(&format!("{form} .error")).await
    );
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.runs WHERE pipeline LIKE '%\\_verify'"
        )
        .await,
        0
    );

    // One entity: its run's page, then the verify page shows what the repair did.
    browser
        .set_value(&format!("{form} select[name=entity]"), "time_activities")
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), FROM)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), TO)
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser.wait_for("#live", 1, 20).await;
    assert!(
        browser.url().await.contains("/runs/"),
        "{}",
        browser.url().await
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while finished_verify_runs(&world, "qb_time_activities_verify").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verify run never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    browser.goto(&format!("{}/verify", ui.base)).await;
    let row = browser.text("#v-time_activities").await;
    assert!(row.contains("succeeded"), "{row}");
    assert!(row.contains("2025-11-01 → 2026-02-01"), "{row}");
    assert_eq!(
        browser
            .text("#v-time_activities td[data-label='Marked deleted']")
            .await
            .trim(),
        "1"
    );
    assert_eq!(
        browser
            .text("#v-time_activities td[data-label='Drifted']")
            .await
            .trim(),
        "! 1"
    );
    browser.screenshot("11-verify").await;

    // On a phone's width the page reads without scrolling sideways.
    browser.resize(390, 844).await;
    browser
        .goto(&format!("{}/verify#v-time_activities", ui.base))
        .await;
    let width = browser
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "return document.documentElement.scrollWidth <= window.innerWidth + 1;", "args": []})),
        )
        .await;
    assert_eq!(width, true, "the verify page scrolls sideways on a phone");
    browser.screenshot("12-verify-phone").await;

    // Without a session the form is refused.
    let http = qbo::tls::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .post(format!("{}/verify", ui.base))
        .form(&[("csrf", "x"), ("entity", "all")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    for page in browser.pages_seen() {
        assert!(!page.contains(ADMIN_PASSWORD));
        for secret in world.secrets() {
            assert!(!page.contains(&secret), "a secret was sent to the browser");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_cron_trigger_schedules_a_verify_run_of_calendar_months() {
    use qbo_backfill::orchestrator::triggers::{DEFAULT_GRACE, NewTrigger};
    use qbo_backfill::store::runs::triggers;
    let db = support::test_db().await;
    let pool = &db.pool;
    let now = support::ts("2026-03-04T12:00:00Z");
    let trigger = triggers::create(
        pool,
        &NewTrigger {
            pipeline: Some("qb_invoices_verify".to_owned()),
            kind: Some("cron".to_owned()),
            cron: Some("0 6 * * 1".to_owned()),
            time_zone: Some("America/Guayaquil".to_owned()),
            params: Some(json!({"fecha_inicio": "today-35d", "fecha_fin": "today"})),
            ..NewTrigger::default()
        },
        now,
    )
    .await
    .expect("a verify pipeline can be scheduled");
    let due = trigger.next_fire_utc.expect("next fire");
    assert_eq!(
        due,
        support::ts("2026-03-09T11:00:00Z"),
        "Monday 06:00 in Guayaquil"
    );
    let fired = qbo_backfill::service::triggers::fire_due(pool, due, DEFAULT_GRACE, "realm")
        .await
        .expect("fire");
    assert_eq!(fired.iter().filter(|f| f.run_id.is_some()).count(), 1);
    let windows: Vec<(String, String)> = sqlx::query_as(
        "SELECT to_char(w.window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), \
                to_char(w.window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD') \
         FROM ops.run_windows w JOIN ops.runs r ON r.id = w.run_id \
         WHERE r.pipeline = 'qb_invoices_verify' AND r.trigger = 'trigger' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("windows");
    let windows: Vec<(&str, &str)> = windows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        windows,
        [("2026-02-02", "2026-03-01"), ("2026-03-01", "2026-03-09")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_the_copy_has_not_seen_is_found_though_the_counts_agree() {
    let world = World::new(sim_config(30)).await;
    let out = world
        .load("qb_invoices_backfill", "2026-01-01", "2026-02-01")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (code, text) = verify(&world, "invoices", "2026-01-01", "2026-02-01").await;
    assert_eq!(
        (code, verify_field(&text, "agreed")),
        (Some(0), 1),
        "{text}"
    );
    // An invoice is edited in QuickBooks and no sync has run: the count is the same.
    let id: String = sqlx::query_scalar("SELECT min(id) FROM raw.qb_invoices")
        .fetch_one(world.pool())
        .await
        .expect("an invoice");
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT sync_token FROM raw.qb_invoices WHERE id = $1")
            .bind(&id)
            .fetch_one(world.pool())
            .await
            .expect("sync token")
    };
    let before = stored().await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    world.sim.state().mutate("Invoice", &id).expect("edit");
    let (code, text) = verify(&world, "invoices", "2026-01-01", "2026-02-01").await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        (
            verify_field(&text, "agreed"),
            verify_field(&text, "drifted")
        ),
        (0, 1),
        "the month holds a change the copy had not seen: {text}"
    );
    assert!(stored().await > before, "the repair stored the edit");
    let (code, text) = verify(&world, "invoices", "2026-01-01", "2026-02-01").await;
    assert_eq!(
        (code, verify_field(&text, "agreed")),
        (Some(0), 1),
        "{text}"
    );
}
