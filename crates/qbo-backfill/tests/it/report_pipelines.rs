//! The report pipelines (`qb_<report>_backfill`) end to end against `qbo-sim` and real
//! PostgreSQL: every report loads a simulated year, one window per calendar month, in both
//! bases where the report takes one; the flattened cells add up to each report's own totals; a
//! second run writes nothing; a month QuickBooks refuses as too large is read in pieces; months
//! QuickBooks fails are recorded failed and only they are read by the retry; and
//! the API and a monthly trigger's `month_start` parameters run them like any pipeline.

use qbo_backfill::domain::catalog::REPORTS;
use qbo_sim::SimConfig;
use serde_json::json;

use super::harness::{World, field, stdout};
use super::server::Api;

const FROM: &str = "2025-01-01";
const TO: &str = "2026-01-01";

/// A company with a year of transactions.
fn a_year() -> SimConfig {
    SimConfig {
        customers: 30,
        items: 12,
        invoices: 120,
        other_rows: 240,
        from: jiff::civil::date(2025, 1, 1),
        to: jiff::civil::date(2026, 1, 1),
        ..SimConfig::default()
    }
}

async fn scalar(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `(report, basis, period_start, content_hash, fetched_at)` of every stored answer.
async fn stored(world: &World) -> Vec<(String, String, String, Vec<u8>, String)> {
    sqlx::query_as(
        "SELECT report, basis, period_start::text, content_hash, fetched_at_utc::text \
         FROM raw.qb_reports ORDER BY 1, 2, 3",
    )
    .fetch_all(world.pool())
    .await
    .expect("stored reports")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_loads_a_year_by_month_in_both_bases_adds_up_and_reloads_as_nothing() {
    let world = World::new(a_year()).await;
    for spec in REPORTS {
        let out = world.load(spec.backfill, FROM, TO).await;
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{}: {text}", spec.backfill);
        let months = text
            .lines()
            .filter(|l| l.starts_with(&format!("Report completed | report={} ", spec.label)))
            .count();
        assert_eq!(months, 12, "{text}");
        assert!(text.contains("Processing"), "{text}");
        let answers = (spec.bases.len().max(1) * 12) as u64;
        assert!(
            text.contains(&format!(
                "==== QB {} BACKFILL SUMMARY ====",
                spec.label.to_uppercase()
            )),
            "{text}"
        );
        let stored_answers = scalar(
            &world,
            &format!(
                "SELECT count(*) FROM raw.qb_reports WHERE report = '{}'",
                spec.label
            ),
        )
        .await;
        assert_eq!(stored_answers as u64, answers, "{}", spec.label);
    }
    // Every month of every report: its own period, lineage to a run window of a month, and
    // the flattened cells add up to the report's own totals.
    assert_eq!(
        scalar(
            &world,
            "SELECT count(*) FROM raw.qb_reports WHERE total_mismatches <> 0"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &world,
            "SELECT count(*) FROM raw.qb_reports r JOIN ops.runs u ON u.id = r.run_id \
             WHERE u.pipeline LIKE 'qb\\_%\\_backfill' AND u.status = 'succeeded' \
               AND r.extract_window_end_utc - r.extract_window_start_utc \
                   BETWEEN interval '28 days' AND interval '31 days'"
        )
        .await,
        scalar(&world, "SELECT count(*) FROM raw.qb_reports").await
    );
    assert!(scalar(&world, "SELECT count(*) FROM raw.qb_report_rows").await > 1000);
    // Income by account by month is a plain SELECT.
    let income_months = scalar(
        &world,
        "SELECT count(DISTINCT r.period_start) FROM raw.qb_report_rows c \
         JOIN raw.qb_reports r USING (realm_id, report, basis, period_start, period_end, summarize_column_by) \
         WHERE c.report = 'ProfitAndLoss' AND c.basis = 'Accrual' AND c.row_type = 'data' \
           AND c.section_path LIKE 'Income%' AND c.value <> 0",
    )
    .await;
    assert!(income_months >= 10, "{income_months} months with income");

    // The second run reads everything again and writes nothing.
    let before = stored(&world).await;
    let cells = scalar(&world, "SELECT count(*) FROM raw.qb_report_rows").await;
    for spec in REPORTS {
        let out = world.load(spec.backfill, FROM, TO).await;
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        for line in text.lines().filter(|l| l.starts_with("Report completed |")) {
            assert!(line.contains(" rows=0 inserted=0 updated=0 "), "{line}");
        }
    }
    assert_eq!(stored(&world).await, before);
    assert_eq!(
        scalar(&world, "SELECT count(*) FROM raw.qb_report_rows").await,
        cells
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_refused_as_too_large_is_read_in_pieces_that_cover_it_once() {
    let world = World::new(a_year()).await;
    world.sim.state().set_report_max_days(Some(10));
    let out = world
        .load("qb_general_ledger_backfill", "2025-03-01", "2025-05-01")
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in text.lines().filter(|l| l.starts_with("Report completed |")) {
        let pieces = field(line, "Report completed |", "pieces").unwrap_or(0);
        assert!(
            pieces >= 8,
            "two bases of a month in pieces of at most 10 days: {line}"
        );
    }
    // The pieces of each basis tile March and April exactly: no gap, no overlap.
    let gaps = scalar(
        &world,
        "SELECT count(*) FROM (SELECT basis, period_start, \
                lag(period_end) OVER (PARTITION BY basis ORDER BY period_start) AS prev_end \
           FROM raw.qb_reports WHERE report = 'GeneralLedger') p \
         WHERE prev_end IS NOT NULL AND period_start <> prev_end + 1",
    )
    .await;
    assert_eq!(gaps, 0);
    assert_eq!(
        scalar(
            &world,
            "SELECT count(*) FROM raw.qb_reports WHERE report = 'GeneralLedger' \
             AND period_end - period_start + 1 > 10"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &world,
            "SELECT sum(period_end - period_start + 1) FROM raw.qb_reports \
             WHERE report = 'GeneralLedger'"
        )
        .await,
        2 * (31 + 30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_a_monthly_trigger_run_report_pipelines_like_any_other() {
    let world = World::new(a_year()).await;
    let api = Api::start(&world, "1").await;
    let (status, run) = api
        .post(
            "/api/v1/runs",
            json!({"pipeline": "qb_trial_balance_backfill", "fecha_inicio": "2025-10-15", "fecha_fin": TO}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let windows = run["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 3, "{run}");
    assert_eq!(windows[0]["start_utc"], "2025-10-15T00:00:00Z");
    assert_eq!(windows[1]["start_utc"], "2025-11-01T00:00:00Z");
    let id = run["id"].as_str().expect("id").to_owned();
    let done = api.wait_final(&id, 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        scalar(
            &world,
            "SELECT count(*) FROM raw.qb_reports WHERE report = 'TrialBalance'"
        )
        .await,
        6
    );
    let (_, logs) = api.get(&format!("/api/v1/runs/{id}/logs")).await;
    let text = logs.to_string();
    assert!(
        text.contains("Report completed | report=TrialBalance month=2025-11 pieces=2 "),
        "{text}"
    );

    // A monthly trigger re-reads the last closed months: month_start-2m .. month_start.
    let (status, trigger) = api
        .post(
            "/api/v1/triggers",
            json!({"pipeline": "qb_profit_and_loss_backfill", "kind": "cron", "cron": "0 6 2 * *",
                   "time_zone": "America/Guayaquil",
                   "params": {"fecha_inicio": "month_start-2m", "fecha_fin": "month_start"}}),
        )
        .await;
    assert_eq!(status, 201, "{trigger}");
    assert_eq!(
        trigger["params"]["fecha_inicio"], "month_start-2m",
        "{trigger}"
    );
    let (status, bad) = api
        .post(
            "/api/v1/triggers",
            json!({"pipeline": "qb_profit_and_loss_backfill", "kind": "cron", "cron": "0 6 2 * *",
                   "time_zone": "UTC",
                   "params": {"fecha_inicio": "month_start-999m", "fecha_fin": "month_start"}}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_params")),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_quickbooks_fails_are_recorded_failed_and_their_retry_reads_only_them() {
    let mut config = a_year();
    config.faults = qbo_sim::FaultConfig {
        error_rate: 1.0,
        ..qbo_sim::FaultConfig::default()
    };
    config.limits = qbo_sim::SimLimits::none();
    let mut world = World::new(config).await;
    world.extra_env.push(("QBO_MAX_RETRIES".into(), "0".into()));
    let out = world
        .load("qb_cash_flow_backfill", "2025-03-01", "2025-05-01")
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("Window failed | window=").count(), 2, "{text}");
    assert_eq!(
        scalar(&world, "SELECT count(*) FROM raw.qb_reports").await,
        0,
        "a month that failed stores nothing"
    );
    world
        .sim
        .state()
        .set_faults(qbo_sim::FaultConfig::default());
    let run_id = super::harness::run_id(&text);
    let out = world.run(&["retry", &run_id]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.matches("Report completed | report=CashFlow").count(),
        2,
        "{text}"
    );
    assert_eq!(
        scalar(
            &world,
            "SELECT count(*) FROM raw.qb_reports WHERE report = 'CashFlow'"
        )
        .await,
        4
    );
}
