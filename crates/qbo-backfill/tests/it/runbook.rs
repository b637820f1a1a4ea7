//! The operators' runbook, end to end with the real binary: run, the daily counts query,
//! idempotent re-run, updates, retrying one day, bad input, `invalid_grant` then recovery,
//! faults injected in the simulator, a kill in the middle then retry, Ctrl-C.

use std::collections::BTreeMap;
use std::time::Duration;

use qbo_sim::FaultConfig;
use sqlx::Row as _;

use crate::harness::{
    World, assert_no_secrets, expected_ids_by_day, field, run_id, sim_config, stderr, stdout,
};

const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-01-31";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loads_every_customer_with_contract_log_lines_then_rerun_changes_nothing() {
    let world = World::new(sim_config(1500)).await;
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_no_secrets(&world, &out);

    // The contract's lines.
    assert!(
        text.contains("Processing Customers window 2026-01-10 → 2026-01-11"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Window completed | pages=")
                && l.contains(" rows=")
                && l.contains(" duration_s=")
                && l.contains("window=2026-01-10"))
    );
    assert!(text.contains("==== QB CUSTOMERS BACKFILL SUMMARY ====\nwindow_start_utc=2026-01-01T00:00:00Z\nwindow_end_utc=2026-01-31T00:00:00Z\ntotal_rows="));
    assert!(text.contains("\nduration_seconds="));
    // An empty day is a line with no rows, as the runbook shows it (its pages are 0 when the
    // day was answered by a query shared with other days).
    assert!(
        text.lines().any(
            |l| l.starts_with("Window completed | pages=") && l.contains(" rows=0 duration_s=")
        ),
        "{text}"
    );

    // Exactly the simulator's customers of [Jan 1, Jan 31), inactive ones included.
    let expected = world.expected_ids("Customer", JAN_FROM, JAN_TO);
    assert!(expected.len() > 1000, "the data set spans pages");
    assert_eq!(world.loaded_ids("raw.qb_customers").await, expected);
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
    let total = expected.len() as u64;
    assert_eq!(field(&text, "Export completed", "inserted"), Some(total));
    assert_eq!(field(&text, "Export completed", "total"), Some(total));
    assert!(text.contains(&format!("total_rows={total}\n")));

    // The runbook's daily counts query, as written.
    let rows = sqlx::query(
        "SELECT extract_window_start_utc::date AS day, COUNT(*) FROM raw.qb_customers GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(world.pool())
    .await
    .unwrap();
    let by_day: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<jiff_date::Date, _>(0).0, r.get::<i64, _>(1)))
        .collect();
    assert_eq!(
        by_day,
        expected_ids_by_day(&world, "Customer", JAN_FROM, JAN_TO)
    );

    // Same range again: nothing inserted or rewritten, same row count.
    let again = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{text}");
    assert_eq!(field(&text, "Export completed", "inserted"), Some(0));
    assert_eq!(field(&text, "Export completed", "updated"), Some(0));
    assert_eq!(field(&text, "Export completed", "unchanged"), Some(total));
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await.len() as u64,
        total
    );

    // Change K customers in QuickBooks: the re-run reports exactly K updated.
    let changed: Vec<String> = expected.iter().step_by(97).take(7).cloned().collect();
    for id in &changed {
        world.sim.state().mutate("Customer", id).unwrap();
    }
    let third = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&third);
    assert_eq!(third.status.code(), Some(0), "{text}");
    assert_eq!(field(&text, "Export completed", "inserted"), Some(0));
    assert_eq!(
        field(&text, "Export completed", "updated"),
        Some(changed.len() as u64)
    );
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
}

/// A tiny newtype so the daily-count query's `date` column decodes as text.
mod jiff_date {
    pub(super) struct Date(pub(super) String);
    impl sqlx::Type<sqlx::Postgres> for Date {
        fn type_info() -> sqlx::postgres::PgTypeInfo {
            sqlx::postgres::PgTypeInfo::with_name("date")
        }
    }
    impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Date {
        fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            // Binary `date`: days since 2000-01-01.
            let days = <i32 as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
            let day = jiff::civil::date(2000, 1, 1)
                .checked_add(jiff::Span::new().days(i64::from(days)))?;
            Ok(Self(day.to_string()))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_and_invoices_load_including_inactive_items() {
    let world = World::new(sim_config(50)).await;
    for (pipeline, table, entity) in [
        ("qb_items_backfill", "raw.qb_items", "Item"),
        ("qb_invoices_backfill", "raw.qb_invoices", "Invoice"),
    ] {
        let out = world.load(pipeline, JAN_FROM, "2026-02-01").await;
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert_eq!(
            world.loaded_ids(table).await,
            world.expected_ids(entity, JAN_FROM, "2026-02-01")
        );
        world.assert_payloads_match(table, entity).await;
    }
    let inactive: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM raw.qb_items WHERE payload->>'Active' = 'false'")
            .fetch_one(world.pool())
            .await
            .unwrap();
    assert!(inactive > 0, "inactive items are loaded too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_one_day_loads_one_window() {
    let world = World::new(sim_config(600)).await;
    let out = world
        .load("qb_customers_backfill", "2026-01-10", "2026-01-11")
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("Processing Customers window").count(), 1);
    assert!(text.contains("window_end_utc=2026-01-11T00:00:00Z"));
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", "2026-01-10", "2026-01-11")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let world = World::new(sim_config(10)).await;
    let cases: &[&[&str]] = &[
        &[
            "run",
            "qb_nope_backfill",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-31",
        ],
        &[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-32",
            "--fecha-fin",
            "2026-02-01",
        ],
        &[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-31",
            "--fecha-fin",
            "2026-01-01",
        ],
        &[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-01",
        ],
        &[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "01/01/2026",
            "--fecha-fin",
            "2026-01-02",
        ],
        &[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01'; DROP TABLE x; --",
            "--fecha-fin",
            "2026-01-02",
        ],
    ];
    // A database that does not exist yet: bad input must not even create it.
    let fresh = format!("qbo_test_never_{}", uuid::Uuid::new_v4().simple());
    let url = world
        .db
        .url
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{fresh}"))
        .unwrap();
    for args in cases {
        let out = world
            .command(args)
            .env("DATABASE_URL", &url)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {err}"
        );
        assert!(err.starts_with("error: "), "{err}");
        assert!(stdout(&out).is_empty());
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&fresh)
            .fetch_one(world.pool())
            .await
            .unwrap();
    assert!(!exists, "bad input created the database");

    // Invalid configuration is bad input as well, rejected before the database is touched.
    let out = world
        .command(&[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-02",
        ])
        .env("DATABASE_URL", &url)
        .env("QBO_ENVIRONMENT", "staging")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end().lines().count(),
        1,
        "{}",
        stderr(&out)
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&fresh)
            .fetch_one(world.pool())
            .await
            .unwrap();
    assert!(!exists, "invalid configuration created the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_stops_the_run_then_secrets_set_and_retry_recover() {
    let world = World::new(sim_config(400)).await;
    world.sim.state().revoke_refresh_tokens();
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "Token refresh failed: invalid_grant"),
        "{text}"
    );
    assert!(
        text.contains("secrets set QBO_REFRESH_TOKEN"),
        "says what to do: {text}"
    );
    assert_no_secrets(&world, &out);
    assert!(
        world.loaded_ids("raw.qb_customers").await.is_empty(),
        "nothing half-written"
    );
    let failed_run = run_id(&text);

    // The operator reconnects the app and stores the new refresh token (read from stdin).
    let new_token = world.sim.state().reconnect();
    let mut cmd = world.command(&["secrets", "set", "QBO_REFRESH_TOKEN"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{new_token}\n").as_bytes())
            .await
            .unwrap();
    }
    let set = child.wait_with_output().await.unwrap();
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    assert!(!stdout(&set).contains(&new_token) && !stderr(&set).contains(&new_token));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT refresh_token_enc FROM ops.oauth_tokens")
        .fetch_one(world.pool())
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&new_token),
        "encrypted at rest"
    );

    let retry = world.run(&["retry", &failed_run]).await;
    let text = stdout(&retry);
    assert_eq!(retry.status.code(), Some(0), "{text}");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    // The rotated token was stored: the simulator's current token is what the store holds,
    // so a further run works without any operator action.
    let again = world
        .load("qb_customers_backfill", "2026-01-05", "2026-01-06")
        .await;
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_still_end_with_an_exact_table() {
    let mut config = sim_config(2500);
    config.faults = FaultConfig {
        error_rate: 0.15,
        html_error_share: 0.5,
        truncate_rate: 0.05,
        drop_rate: 0.05,
        ..FaultConfig::default()
    };
    config.limits.requests_per_second = Some(4);
    config.access_token_ttl = Duration::from_secs(2);
    let mut world = World::new(config).await;
    world
        .extra_env
        .push(("QBO_MAX_RETRIES".into(), "12".into()));
    // Days asked for one by one: many requests, so that faults and throttles do happen.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    // Our client paces itself at the real limits, which this simulator halves: it will be
    // throttled (XML 429) and must wait and retry.
    world
        .extra_env
        .push(("QBO_REQUESTS_PER_SECOND".into(), "8".into()));
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_no_secrets(&world, &out);
    let stats = world.sim.state().stats();
    assert!(
        stats.faults_injected > 0 && stats.throttled > 0,
        "{stats:?}"
    );
    assert!(
        stats.token_requests > 1,
        "the 2 s access token expired mid-run: {stats:?}"
    );
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_windows_are_listed_and_retry_runs_only_them() {
    // Only injected 5xx may fail a window here (no retries), never a throttle.
    let mut world = World::failing(300, 0.5).await;
    // Days asked for one by one, so that single days fail on their own.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = field(&text, "failed_windows", "failed_windows").unwrap_or(0);
    let failed_line = text
        .lines()
        .find(|l| l.starts_with("failed_days="))
        .expect("failed days");
    assert!(failed > 0 && failed < 30, "{text}");
    let failed_days: Vec<&str> = failed_line["failed_days=".len()..].split(',').collect();
    assert_eq!(failed_days.len() as u64, failed);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Window failed | window=")),
        "{text}"
    );

    world.sim.state().set_faults(FaultConfig::default());
    let retry = world.run(&["retry", &run_id(&text)]).await;
    let retry_text = stdout(&retry);
    assert_eq!(retry.status.code(), Some(0), "{retry_text}");
    assert_eq!(
        retry_text.matches("Processing Customers window").count() as u64,
        failed,
        "only the failed windows ran again"
    );
    for day in failed_days {
        assert!(
            retry_text.contains(&format!("Processing Customers window {day} ")),
            "{day}"
        );
    }
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_then_retry_ends_identical_to_a_clean_load() {
    let mut config = sim_config(6000);
    config.faults = FaultConfig {
        latency: Duration::from_millis(40),
        ..FaultConfig::default()
    };
    let world = World::new(config).await;
    let mut child = world
        .command(&[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
            "--concurrency",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some pages are in, well before the end.
    world.wait_for_pages(4).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let loaded_before = world.loaded_ids("raw.qb_customers").await.len();
    let expected = world.expected_ids("Customer", JAN_FROM, JAN_TO);
    assert!(
        loaded_before > 0 && loaded_before < expected.len(),
        "killed mid-run: {loaded_before}"
    );

    let (run, status): (uuid::Uuid, String) = sqlx::query_as("SELECT id, status FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .unwrap();
    assert_eq!(status, "running", "a killed run cannot mark itself");
    let retry = world.run(&["retry", &run.to_string()]).await;
    assert_eq!(retry.status.code(), Some(0), "{}", stdout(&retry));
    assert_eq!(world.loaded_ids("raw.qb_customers").await, expected);
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
    let killed_status: String = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
        .bind(run)
        .fetch_one(world.pool())
        .await
        .unwrap();
    assert_eq!(killed_status, "interrupted");
    let unfinished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ops.windows WHERE status <> 'succeeded'")
            .fetch_one(world.pool())
            .await
            .unwrap();
    assert_eq!(unfinished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_gracefully_marks_interrupted_and_retry_finishes() {
    interrupt_then_retry("-INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gracefully_like_ctrl_c() {
    interrupt_then_retry("-TERM").await;
}

async fn interrupt_then_retry(signal: &str) {
    let mut config = sim_config(6000);
    config.faults = FaultConfig {
        latency: Duration::from_millis(40),
        ..FaultConfig::default()
    };
    let world = World::new(config).await;
    let child = world
        .command(&[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
            "--concurrency",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    world.wait_for_pages(3).await;
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("status=interrupted"), "{text}");
    // Every page that was written is whole: window progress matches the rows present.
    let (pages_rows, loaded): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(rows_total), 0)::bigint FROM ops.run_windows), \
                (SELECT COUNT(*) FROM raw.qb_customers)",
    )
    .fetch_one(world.pool())
    .await
    .unwrap();
    assert_eq!(pages_rows, loaded, "pages commit whole with their progress");
    let retry = world.run(&["retry", &run_id(&text)]).await;
    assert_eq!(retry.status.code(), Some(0), "{}", stdout(&retry));
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_spans_broken_by_faults_ends_with_every_window_settled_and_totals_that_add_up() {
    let mut world = World::failing(2000, 0.3).await;
    world.extra_env.push(("QBO_PAGE_SIZE".into(), "50".into()));
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "4".into()));
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    let id = run_id(&text);
    let (status, total_rows, inserted, updated, unchanged): (String, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT status, rows_total, inserted, updated, unchanged FROM ops.runs WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(world.pool())
        .await
        .expect("run");
    let windows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT status, rows_total, inserted, updated, unchanged FROM ops.run_windows \
          WHERE run_id = $1::uuid ORDER BY window_start",
    )
    .bind(&id)
    .fetch_all(world.pool())
    .await
    .expect("windows");
    println!("{status} total_rows={total_rows} windows={windows:?}\n{text}");
    // Concurrent claims of one run's windows never deadlock on the run's row.
    assert!(!text.contains("cannot claim"), "{text}");
    assert!(
        windows
            .iter()
            .all(|w| w.0 == "succeeded" || w.0 == "failed"),
        "a final run leaves no window pending or running: {windows:?}"
    );
    let sum = |f: fn(&(String, i64, i64, i64, i64)) -> i64| windows.iter().map(f).sum::<i64>();
    assert_eq!(total_rows, sum(|w| w.1), "total rows = the windows' rows");
    assert_eq!(
        (inserted, updated, unchanged),
        (sum(|w| w.2), sum(|w| w.3), sum(|w| w.4)),
        "counts = the windows' counts"
    );
    assert_eq!(
        field(&text, "total_rows=", "total_rows"),
        Some(total_rows as u64)
    );
}
