//! Reports against a real PostgreSQL: every real fixture body of `crates/qbo/tests/fixtures/
//! reports` stored in `raw.qb_reports` and flattened into `raw.qb_report_rows`, whose rows add
//! up (in SQL) to the report's own summaries; an identical re-read writes nothing, a changed one
//! replaces the rows; the truncated (synthetic) body is refused by the store and by the loader;
//! and the loader reads a range QuickBooks refuses as too large in halves down to a day, with a
//! fake fetch (the simulator has no report endpoint yet), so that "income by account by month"
//! is a plain `SELECT`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use jiff::civil::Date;
use qbo::report::{
    FetchedReport, Report, ReportFetchError, ReportName, ReportRequest, RowKind, SummarizeBy,
    parse_report,
};
use qbo_backfill::pipeline::report_load::{
    ReportLineage, ReportLoadError, StoredPiece, load_report_range, load_report_range_with,
};
use qbo_backfill::store::raw::reports::{
    ReportKey, ReportOutcome, ReportPiece, ReportStoreError, ReportWrite, upsert_report,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{test_db, ts};

const REALM: &str = "9130350000000001";
const TRUNCATED: &str = "synthetic_general_ledger_truncated.json";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qbo/tests/fixtures/reports")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).expect("fixture")
}

/// Every real fixture (not the synthetic ones).
fn real_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with("synthetic_"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "{names:?}");
    names
}

fn date(s: &str) -> Date {
    s.parse().expect("date")
}

fn fetched(body: &str) -> FetchedReport {
    FetchedReport {
        report: parse_report(body.as_bytes()).expect("report"),
        raw: body.as_bytes().to_vec().into(),
        intuit_tid: Some("1-test".to_owned()),
    }
}

/// The request a fixture answers, from its header.
fn request_of(report: &Report) -> ReportRequest {
    let h = &report.header;
    let name: ReportName = h
        .report_name
        .as_deref()
        .expect("name")
        .parse()
        .expect("known");
    let end = h.end_date().unwrap_or(date("2016-03-31"));
    let start = h.start_date().unwrap_or(end);
    let mut r = ReportRequest::new(name, start, end).expect("range");
    if let Some(by) = h.summarize_columns_by.as_deref() {
        r = r.summarize_by(by.parse::<SummarizeBy>().expect("summary"));
    }
    r
}

/// Stores `body` as the answer to `request`, committed.
async fn store(
    pool: &PgPool,
    request: &ReportRequest,
    body: &str,
    run_id: Option<Uuid>,
) -> Result<ReportWrite, ReportStoreError> {
    let f = fetched(body);
    let mut tx = pool.begin().await.expect("begin");
    let got = upsert_report(
        &mut tx,
        &ReportPiece {
            realm_id: REALM,
            request,
            fetched: &f,
            run_id,
            window_start: ts("2026-01-01T00:00:00Z"),
            window_end: ts("2026-01-02T00:00:00Z"),
        },
    )
    .await;
    tx.commit().await.expect("commit");
    got
}

/// The key condition on `raw.qb_report_rows` (alias `r`) for `key` as `$1`–`$6`.
const KEY: &str = "r.realm_id = $1 AND r.report = $2 AND r.basis = $3 AND r.period_start = $4::date \
     AND r.period_end = $5::date AND r.summarize_column_by = $6";

fn bind_key<'q>(
    sql: &'q str,
    key: &'q ReportKey,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&key.realm_id)
        .bind(key.report.as_str())
        .bind(key.basis)
        .bind(key.period_start.to_string())
        .bind(key.period_end.to_string())
        .bind(key.summarize_column_by)
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// `(line, column, value as text)` of every stored summary or total cell of `key`.
async fn stored_summaries(pool: &PgPool, key: &ReportKey) -> BTreeSet<(i32, i32, String)> {
    let sql = format!(
        "SELECT r.line, r.column_index, r.value::text FROM raw.qb_report_rows r \
         WHERE {KEY} AND r.row_type IN ('section_summary', 'total') AND r.value IS NOT NULL"
    );
    bind_key(&sql, key)
        .fetch_all(pool)
        .await
        .expect("summaries")
        .iter()
        .map(|row| {
            use sqlx::Row as _;
            (row.get(0), row.get(1), row.get(2))
        })
        .collect()
}

/// `(line, column)` of every section summary and grand total whose value differs from the sum
/// of the data rows below it (same column, section path starting with the summary's), computed
/// in SQL from `raw.qb_report_rows` alone.
async fn sql_disagreements(pool: &PgPool, key: &ReportKey) -> BTreeSet<(i32, i32)> {
    let sql = format!(
        "SELECT r.line, r.column_index FROM raw.qb_report_rows r \
         LEFT JOIN raw.qb_report_rows d \
           ON (d.realm_id, d.report, d.basis, d.period_start, d.period_end, \
               d.summarize_column_by, d.column_index) \
            = (r.realm_id, r.report, r.basis, r.period_start, r.period_end, \
               r.summarize_column_by, r.column_index) \
          AND d.row_type = 'data' \
          AND d.section_path_parts[1:cardinality(r.section_path_parts)] = r.section_path_parts \
         WHERE {KEY} AND r.value IS NOT NULL \
           AND (r.row_type = 'section_summary' \
                OR (r.row_type = 'total' AND r.report_group = 'GrandTotal')) \
         GROUP BY r.line, r.column_index, r.value \
         HAVING r.value <> coalesce(sum(d.value), 0)"
    );
    bind_key(&sql, key)
        .fetch_all(pool)
        .await
        .expect("disagreements")
        .iter()
        .map(|row| {
            use sqlx::Row as _;
            (row.get(0), row.get(1))
        })
        .collect()
}

#[tokio::test]
async fn every_real_fixture_is_stored_and_its_rows_add_up_to_its_summaries() {
    let db = test_db().await;
    for name in real_fixtures() {
        let body = fixture(&name);
        let report = parse_report(body.as_bytes()).expect("parse");
        let request = request_of(&report);
        let write = store(&db.pool, &request, &body, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(write.outcome, ReportOutcome::Inserted, "{name}");
        let cells = report.cells().expect("cells");
        assert_eq!(write.rows_written, cells.len() as u64, "{name}");
        let stored: i64 = bind_key(
            &format!("SELECT count(*) FROM raw.qb_report_rows r WHERE {KEY}"),
            &write.key,
        )
        .fetch_one(&db.pool)
        .await
        .map(|row| sqlx::Row::get(&row, 0))
        .expect("count");
        assert_eq!(stored, cells.len() as i64, "{name}");

        // The stored summaries are the report's own, exactly (same digits).
        let expected: BTreeSet<(i32, i32, String)> = report
            .totals()
            .expect("totals")
            .iter()
            .flat_map(|t| {
                t.values.iter().map(move |(col, v)| {
                    (
                        i32::try_from(t.line).expect("line"),
                        i32::try_from(*col).expect("col"),
                        v.as_str().to_owned(),
                    )
                })
            })
            .collect();
        assert_eq!(
            stored_summaries(&db.pool, &write.key).await,
            expected,
            "{name}"
        );

        // In SQL, the data rows add up to every section summary and grand total; where not,
        // the report's own check says so too (Intuit's shortened samples).
        let sql = sql_disagreements(&db.pool, &write.key).await;
        let own: BTreeSet<(i32, i32)> = report
            .total_mismatches()
            .expect("check")
            .iter()
            .map(|m| {
                (
                    i32::try_from(m.line).expect("line"),
                    i32::try_from(m.column).expect("col"),
                )
            })
            .collect();
        assert_eq!(sql, own, "{name}");
        let has_summaries = report
            .totals()
            .expect("totals")
            .iter()
            .any(|t| t.kind == RowKind::SectionSummary && !t.values.is_empty());
        if !name.contains("no_data") && !name.contains("aged") && !name.contains("trial") {
            assert!(has_summaries, "{name}: a report with section summaries");
        }
    }
    assert_eq!(count(&db.pool, "raw.qb_reports").await, 9);
    // The header fields and lineage are there.
    let (basis, time, no_data, mismatches): (String, Option<String>, Option<bool>, i32) =
        sqlx::query_as(
            "SELECT basis, (report_time AT TIME ZONE 'UTC')::text, no_report_data, total_mismatches \
             FROM raw.qb_reports WHERE report = 'TrialBalance'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("trial balance");
    assert_eq!(basis, "Accrual");
    assert_eq!(time.as_deref(), Some("2016-03-14 17:11:07"));
    assert_eq!((no_data, mismatches), (Some(false), 2));
    let aged: (String, String, String) = sqlx::query_as(
        "SELECT basis, period_start::text, period_end::text FROM raw.qb_reports \
         WHERE report = 'AgedReceivables'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("aged");
    assert_eq!(
        aged,
        (String::new(), "2015-12-31".into(), "2015-12-31".into())
    );
}

#[tokio::test]
async fn the_store_refuses_a_truncated_report() {
    let db = test_db().await;
    let body = fixture(TRUNCATED);
    let request = ReportRequest::new(
        ReportName::GeneralLedger,
        date("2020-09-01"),
        date("2020-09-29"),
    )
    .expect("range");
    let err = store(&db.pool, &request, &body, None)
        .await
        .expect_err("refused");
    assert!(matches!(err, ReportStoreError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("smaller windows"), "{err}");
    assert_eq!(count(&db.pool, "raw.qb_reports").await, 0);
    assert_eq!(count(&db.pool, "raw.qb_report_rows").await, 0);
}

/// `xmin` of the report row and of every cell row, in order: any write changes one.
async fn xmins(pool: &PgPool) -> (String, Vec<String>, String) {
    let report: (String, String) =
        sqlx::query_as("SELECT xmin::text, fetched_at_utc::text FROM raw.qb_reports")
            .fetch_one(pool)
            .await
            .expect("report");
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT xmin::text FROM raw.qb_report_rows ORDER BY line, column_index")
            .fetch_all(pool)
            .await
            .expect("rows");
    (report.0, rows, report.1)
}

#[tokio::test]
async fn an_identical_reread_writes_nothing_and_a_changed_one_replaces_the_rows() {
    let db = test_db().await;
    let body = fixture("profit_and_loss_monily.json");
    let request = request_of(&parse_report(body.as_bytes()).expect("parse"));
    let first_run = Uuid::new_v4();
    let first = store(&db.pool, &request, &body, Some(first_run))
        .await
        .expect("first");
    assert_eq!(first.outcome, ReportOutcome::Inserted);
    let rows = count(&db.pool, "raw.qb_report_rows").await;
    assert_eq!(rows, first.rows_written as i64);
    let before = xmins(&db.pool).await;

    // The same report read again: QuickBooks stamps a new Header.Time, nothing else changed.
    let again = body.replace("2022-11-01T04:10:21-07:00", "2022-11-02T09:00:00-07:00");
    assert_ne!(again, body);
    let second = store(&db.pool, &request, &again, Some(Uuid::new_v4()))
        .await
        .expect("second");
    assert_eq!(second.outcome, ReportOutcome::Unchanged);
    assert_eq!(second.rows_written, 0);
    assert_eq!(xmins(&db.pool).await, before);
    let run: Option<Uuid> = sqlx::query_scalar("SELECT run_id FROM raw.qb_reports")
        .fetch_one(&db.pool)
        .await
        .expect("run");
    assert_eq!(run, Some(first_run));

    // A changed amount: the report row is updated and every cell replaced.
    // (The first occurrence is the Sales row's; Total Income and Gross Profit are left as
    // they were, so they no longer add up.)
    let (sales_at, amount_at) = (
        body.find("\"Sales\"").expect("sales"),
        body.find("674842.00"),
    );
    assert!(amount_at.is_some_and(|a| a > sales_at && a < body.find("Total Income").expect("ti")));
    let changed = body.replacen("\"674842.00\"", "\"674843.00\"", 1);
    let third = store(&db.pool, &request, &changed, None)
        .await
        .expect("third");
    assert_eq!(third.outcome, ReportOutcome::Updated);
    assert_eq!(third.rows_written as i64, rows);
    assert_eq!(count(&db.pool, "raw.qb_report_rows").await, rows);
    let after = xmins(&db.pool).await;
    assert_ne!(after.0, before.0);
    assert!(
        after.1.iter().all(|x| !before.1.contains(x)),
        "all rows rewritten"
    );
    let (sales, payload): (String, String) = sqlx::query_as(
        "SELECT r.value::text, \
                (SELECT q.payload #>> '{Rows,Row,0,Rows,Row,0,ColData,1,value}' \
                 FROM raw.qb_reports q) \
         FROM raw.qb_report_rows r WHERE r.account_or_entity_id = '6' AND r.row_type = 'data'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("sales");
    assert_eq!(sales, "674843.00");
    assert_eq!(payload, "674843.00");
    let mismatches: i32 = sqlx::query_scalar("SELECT total_mismatches FROM raw.qb_reports")
        .fetch_one(&db.pool)
        .await
        .expect("mismatches");
    assert!(mismatches > 0, "Total Income no longer adds up");
    // The table keeps one report, and the same key.
    assert_eq!(count(&db.pool, "raw.qb_reports").await, 1);
    assert_eq!(third.key, first.key);
}

// ------------------------------------------------------------------------- loading in pieces

/// A fake QuickBooks: answers `body(piece)` for ranges of at most `max_days` days, and the real
/// truncated body (as the client reports it: `RangeTooLarge`, or when `silently`, as a plain
/// answer the loader must recognise itself) for longer ones. Records every request.
fn fake(
    calls: &mut Vec<ReportRequest>,
    max_days: i32,
    silently: bool,
    body: impl Fn(&ReportRequest) -> String,
) -> impl FnMut(ReportRequest) -> std::future::Ready<Result<FetchedReport, ReportFetchError>> {
    move |r: ReportRequest| {
        calls.push(r.clone());
        let days = r.start_date.until(r.end_date).expect("span").get_days() + 1;
        let answer = if days > max_days {
            let cut = fetched(&fixture(TRUNCATED));
            if silently {
                Ok(cut)
            } else {
                Err(ReportFetchError::RangeTooLarge {
                    request: r,
                    fetched: Box::new(cut),
                })
            }
        } else {
            Ok(fetched(&body(&r)))
        };
        std::future::ready(answer)
    }
}

/// The General Ledger fixture, its period set to the piece's.
fn gl_body(r: &ReportRequest) -> String {
    fixture("general_ledger_minimul.json")
        .replace(
            "\"StartPeriod\":\"2020-09-01\"",
            &format!("\"StartPeriod\":\"{}\"", r.start_date),
        )
        .replace(
            "\"EndPeriod\":\"2020-09-29\"",
            &format!("\"EndPeriod\":\"{}\"", r.end_date),
        )
}

fn periods(pieces: &[StoredPiece]) -> Vec<(Date, Date)> {
    pieces
        .iter()
        .map(|p| (p.write.key.period_start, p.write.key.period_end))
        .collect()
}

#[tokio::test]
async fn a_range_too_large_is_read_in_halves_and_each_piece_stored() {
    let db = test_db().await;
    let request = ReportRequest::new(
        ReportName::GeneralLedger,
        date("2020-09-01"),
        date("2020-09-29"),
    )
    .expect("range");
    let run = Uuid::new_v4();
    let lineage = ReportLineage {
        run_id: Some(run),
        window: None,
    };
    for silently in [false, true] {
        let mut calls = Vec::new();
        let pieces = load_report_range_with(
            fake(&mut calls, 8, silently, gl_body),
            &db.pool,
            REALM,
            &request,
            lineage,
        )
        .await
        .expect("loaded");
        // 29 days → 15 + 14 → 8 + 7 + 7 + 7: the first half first, in date order.
        assert_eq!(
            periods(&pieces),
            [
                (date("2020-09-01"), date("2020-09-08")),
                (date("2020-09-09"), date("2020-09-15")),
                (date("2020-09-16"), date("2020-09-22")),
                (date("2020-09-23"), date("2020-09-29")),
            ]
        );
        assert_eq!(calls.len(), 7, "1 + 2 + 4 requests");
        let want = if silently {
            ReportOutcome::Unchanged
        } else {
            ReportOutcome::Inserted
        };
        assert!(pieces.iter().all(|p| p.write.outcome == want), "{pieces:?}");
        assert!(
            pieces
                .iter()
                .all(|p| p.intuit_tid.as_deref() == Some("1-test"))
        );
    }
    // Four pieces, each with its own period and the whole run window; nothing truncated.
    let stored: Vec<(String, String, String, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT period_start::text, period_end::text, \
                (extract_window_start_utc AT TIME ZONE 'UTC')::text, \
                (extract_window_end_utc AT TIME ZONE 'UTC')::text, run_id \
         FROM raw.qb_reports ORDER BY period_start",
    )
    .fetch_all(&db.pool)
    .await
    .expect("pieces");
    assert_eq!(stored.len(), 4);
    assert!(
        stored.iter().all(|s| s.2 == "2020-09-01 00:00:00"
            && s.3 == "2020-09-30 00:00:00"
            && s.4 == Some(run))
    );
    let notice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_report_rows WHERE text ILIKE '%unable to display more data%'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("notice");
    assert_eq!(notice, 0);
}

#[tokio::test]
async fn a_day_still_too_large_or_an_aging_report_too_large_is_an_error() {
    let db = test_db().await;
    let request = ReportRequest::new(
        ReportName::GeneralLedger,
        date("2020-09-01"),
        date("2020-09-04"),
    )
    .expect("range");
    for silently in [false, true] {
        let mut calls = Vec::new();
        let err = load_report_range_with(
            fake(&mut calls, 0, silently, gl_body),
            &db.pool,
            REALM,
            &request,
            ReportLineage::default(),
        )
        .await
        .expect_err("too large");
        assert!(
            matches!(err, ReportLoadError::DayTooLarge { report: ReportName::GeneralLedger, day }
                if day == date("2020-09-01")),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("GeneralLedger") && message.contains("2020-09-01"),
            "{message}"
        );
        // 4 days → 2 + 2 → 1: three requests before giving up.
        assert_eq!(calls.len(), 3);
    }
    let aged = ReportRequest::new(
        ReportName::AgedReceivables,
        date("2015-12-01"),
        date("2015-12-31"),
    )
    .expect("range");
    let mut calls = Vec::new();
    let err = load_report_range_with(
        fake(&mut calls, 0, false, |_| {
            fixture("aged_receivables_intuit_docs.json")
        }),
        &db.pool,
        REALM,
        &aged,
        ReportLineage::default(),
    )
    .await
    .expect_err("too large");
    assert!(
        matches!(err, ReportLoadError::AsOfTooLarge { day, .. } if day == date("2015-12-31")),
        "{err}"
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(count(&db.pool, "raw.qb_reports").await, 0);
    assert_eq!(count(&db.pool, "raw.qb_report_rows").await, 0);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_pieces_already_stored() {
    let db = test_db().await;
    let request = ReportRequest::new(
        ReportName::GeneralLedger,
        date("2020-09-01"),
        date("2020-09-10"),
    )
    .expect("range");
    let mut calls = 0;
    let err = load_report_range_with(
        |r: ReportRequest| {
            calls += 1;
            let answer = match calls {
                1 => Err(ReportFetchError::RangeTooLarge {
                    request: r.clone(),
                    fetched: Box::new(fetched(&fixture(TRUNCATED))),
                }),
                2 => Ok(fetched(&gl_body(&r))),
                _ => Err(ReportFetchError::Qbo(qbo::QboError::Decode {
                    status: 503,
                    message: "service unavailable".to_owned(),
                    retryable: true,
                    intuit_tid: None,
                })),
            };
            std::future::ready(answer)
        },
        &db.pool,
        REALM,
        &request,
        ReportLineage::default(),
    )
    .await
    .expect_err("fails");
    assert!(
        matches!(&err, ReportLoadError::Fetch { start, end, .. }
            if *start == date("2020-09-06") && *end == date("2020-09-10")),
        "{err}"
    );
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT period_start::text, period_end::text FROM raw.qb_reports")
            .fetch_all(&db.pool)
            .await
            .expect("kept");
    assert_eq!(kept, [("2020-09-01".into(), "2020-09-05".into())]);
}

/// A monthly Profit and Loss for the piece `r`, written for this test (not a QuickBooks body):
/// one column per month the piece touches (clipped to the piece), and two income accounts
/// earning 10.00 (Design, id 7) and 2.50 (Sales, id 6) a day.
fn monthly_pl(r: &ReportRequest) -> String {
    let mut columns = vec![serde_json::json!({
        "ColTitle": "", "ColType": "Account",
        "MetaData": [{"Name": "ColKey", "Value": "account"}]
    })];
    let mut days = Vec::new();
    let mut start = r.start_date;
    while start <= r.end_date {
        let month_end = start.last_of_month().min(r.end_date);
        columns.push(serde_json::json!({
            "ColTitle": start.strftime("%b %Y").to_string(), "ColType": "Money",
            "MetaData": [{"Name": "StartDate", "Value": start.to_string()},
                         {"Name": "EndDate", "Value": month_end.to_string()},
                         {"Name": "ColKey", "Value": start.strftime("%b %Y").to_string()}]
        }));
        days.push(i64::from(start.until(month_end).expect("span").get_days()) + 1);
        start = month_end.tomorrow().expect("next");
    }
    let money = |per_day: i64| -> Vec<serde_json::Value> {
        days.iter()
            .map(|d| serde_json::json!({"value": format!("{}.{:02}", per_day * d / 100, per_day * d % 100)}))
            .collect()
    };
    let line = |label: serde_json::Value, per_day: i64| {
        let mut cells = vec![label];
        cells.extend(money(per_day));
        cells
    };
    serde_json::json!({
        "Header": {"Time": "2026-01-05T10:00:00-08:00", "ReportName": "ProfitAndLoss",
                   "ReportBasis": "Accrual", "StartPeriod": r.start_date.to_string(),
                   "EndPeriod": r.end_date.to_string(), "SummarizeColumnsBy": "Month",
                   "Currency": "USD"},
        "Columns": {"Column": columns},
        "Rows": {"Row": [
            {"type": "Section", "group": "Income",
             "Header": {"ColData": [{"value": "Income"}]},
             "Rows": {"Row": [
                 {"type": "Data", "ColData": line(serde_json::json!({"value": "Design income", "id": "7"}), 1000)},
                 {"type": "Data", "ColData": line(serde_json::json!({"value": "Sales", "id": "6"}), 250)}
             ]},
             "Summary": {"ColData": line(serde_json::json!({"value": "Total Income"}), 1250)}},
            {"type": "Section", "group": "NetIncome",
             "Summary": {"ColData": line(serde_json::json!({"value": "Net Income"}), 1250)}}
        ]}
    })
    .to_string()
}

#[tokio::test]
async fn income_by_account_by_month_is_a_plain_select_across_pieces() {
    let db = test_db().await;
    let request = ReportRequest::new(
        ReportName::ProfitAndLoss,
        date("2024-01-01"),
        date("2024-03-31"),
    )
    .expect("range")
    .summarize_by(SummarizeBy::Month);
    let mut calls = Vec::new();
    let pieces = load_report_range_with(
        fake(&mut calls, 40, false, monthly_pl),
        &db.pool,
        REALM,
        &request,
        ReportLineage::default(),
    )
    .await
    .expect("loaded");
    // 91 days → 46 + 45 → four pieces of 23 or 22 days, straddling month ends.
    assert_eq!(pieces.len(), 4);
    assert!(
        pieces
            .iter()
            .all(|p| p.write.key.summarize_column_by == "Month")
    );

    // The question, without JSON: income by account by month.
    let got: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT account_or_entity_id, name, to_char(date_trunc('month', column_period_start), \
                'YYYY-MM'), sum(value)::text \
         FROM raw.qb_report_rows \
         WHERE realm_id = $1 AND report = 'ProfitAndLoss' AND row_type = 'data' \
           AND section_path_parts[1] = 'Income' \
         GROUP BY 1, 2, 3 ORDER BY 3, 1",
    )
    .bind(REALM)
    .fetch_all(&db.pool)
    .await
    .expect("income by account by month");
    let row = |id: &str, name: &str, month: &str, sum: &str| {
        (
            id.to_owned(),
            name.to_owned(),
            month.to_owned(),
            sum.to_owned(),
        )
    };
    assert_eq!(
        got,
        [
            row("6", "Sales", "2024-01", "77.50"),
            row("7", "Design income", "2024-01", "310.00"),
            row("6", "Sales", "2024-02", "72.50"),
            row("7", "Design income", "2024-02", "290.00"),
            row("6", "Sales", "2024-03", "77.50"),
            row("7", "Design income", "2024-03", "310.00"),
        ]
    );
    // Loading the range again writes nothing.
    let again = load_report_range_with(
        fake(&mut Vec::new(), 40, false, monthly_pl),
        &db.pool,
        REALM,
        &request,
        ReportLineage::default(),
    )
    .await
    .expect("again");
    assert!(
        again
            .iter()
            .all(|p| p.write.outcome == ReportOutcome::Unchanged)
    );
}

/// A client of `sim` with fast retries and a token store seeded with the simulator's refresh
/// token.
fn sim_client(sim: &qbo_sim::RunningSim) -> qbo::QboClient {
    let defaults = qbo_sim::SimConfig::default();
    let mut settings = qbo::ClientSettings::for_environment(qbo::Environment::Sandbox);
    settings.api_base_url = sim.api_base_url().parse().expect("base url");
    settings.token_url = sim.token_url().parse().expect("token url");
    settings.retry.initial_backoff = std::time::Duration::from_millis(5);
    settings.retry.max_backoff = std::time::Duration::from_millis(40);
    let store = qbo::MemoryTokenStore::new(qbo::TokenSet::from_refresh_token(
        secrecy::SecretString::from(sim.state().current_refresh_token()),
    ));
    qbo::QboClient::new(
        settings,
        qbo::Credentials {
            client_id: defaults.client_id,
            client_secret: secrecy::SecretString::from(defaults.client_secret),
            realm_id: defaults.realm_id,
        },
        std::sync::Arc::new(store),
    )
    .expect("client")
}

#[tokio::test]
async fn reports_of_the_simulator_load_in_halves_when_refused_add_up_and_reload_as_nothing() {
    let db = test_db().await;
    let config = qbo_sim::SimConfig {
        customers: 40,
        items: 20,
        invoices: 240,
        from: date("2026-01-01"),
        to: date("2026-04-01"),
        limits: qbo_sim::SimLimits::none(),
        ..qbo_sim::SimConfig::default()
    };
    let sim = qbo_sim::serve(qbo_sim::SimState::new(config), ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    // QuickBooks cuts answers over a month short with "Unable to display more data".
    sim.state().set_report_max_days(Some(31));
    let client = sim_client(&sim);
    let lineage = || ReportLineage {
        run_id: None,
        window: None,
    };
    for name in [
        ReportName::ProfitAndLoss,
        ReportName::GeneralLedger,
        ReportName::CashFlow,
    ] {
        let mut request =
            ReportRequest::new(name, date("2026-01-01"), date("2026-03-31")).expect("range");
        request.accounting_method = Some(qbo::report::Basis::Accrual);
        let pieces = load_report_range(&client, &db.pool, &request, lineage())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            pieces.len() > 2,
            "{name}: 90 days are read in pieces of 31 or fewer"
        );
        let days: i64 = periods(&pieces)
            .iter()
            .map(|(s, e)| (*e - *s).get_days() as i64 + 1)
            .sum();
        assert_eq!(days, 90, "{name}: the pieces cover the range once");
        for piece in &pieces {
            assert_eq!(piece.write.outcome, ReportOutcome::Inserted, "{name}");
        }
        let (mismatches, truncated): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(total_mismatches), 0)::bigint, \
                    count(*) FILTER (WHERE payload::text LIKE '%Unable to display more data%') \
             FROM raw.qb_reports WHERE report = $1",
        )
        .bind(name.as_str())
        .fetch_one(&db.pool)
        .await
        .expect("reports");
        assert_eq!(
            (mismatches, truncated),
            (0, 0),
            "{name}: every piece adds up, none cut"
        );
        let again = load_report_range(&client, &db.pool, &request, lineage())
            .await
            .expect("reload");
        assert!(
            again
                .iter()
                .all(|p| p.write.outcome == ReportOutcome::Unchanged && p.write.rows_written == 0),
            "{name}: an unchanged re-read writes nothing"
        );
    }
    let cells: i64 = sqlx::query_scalar("SELECT count(*) FROM raw.qb_report_rows")
        .fetch_one(&db.pool)
        .await
        .expect("cells");
    assert!(cells > 0, "cells are stored");
}

#[tokio::test]
async fn a_range_quickbooks_fails_with_5xx_is_read_in_halves_and_a_single_day_that_fails_is_an_error()
 {
    let db = test_db().await;
    let request = ReportRequest::new(
        ReportName::GeneralLedger,
        date("2020-09-01"),
        date("2020-09-29"),
    )
    .expect("range");
    let server_error = || {
        ReportFetchError::Qbo(qbo::QboError::Server {
            status: 504,
            fault: None,
            detail: Some("gateway timeout".to_owned()),
            retry_after: None,
            intuit_tid: Some("1-504".to_owned()),
        })
    };
    // Ranges longer than 8 days time out on QuickBooks' side.
    let mut calls = Vec::new();
    let pieces = load_report_range_with(
        |r: ReportRequest| {
            calls.push(r.clone());
            let days = r.start_date.until(r.end_date).expect("span").get_days() + 1;
            std::future::ready(if days > 8 {
                Err(server_error())
            } else {
                Ok(fetched(&gl_body(&r)))
            })
        },
        &db.pool,
        REALM,
        &request,
        ReportLineage::default(),
    )
    .await
    .expect("loaded in pieces");
    assert_eq!(pieces.len(), 4, "{pieces:?}");
    assert_eq!(
        periods(&pieces)[0],
        (date("2020-09-01"), date("2020-09-08"))
    );
    assert_eq!(calls.len(), 7);
    // A single day that keeps failing is the fetch error, naming the report and the day.
    let err = load_report_range_with(
        |_r: ReportRequest| std::future::ready(Err(server_error())),
        &db.pool,
        REALM,
        &ReportRequest::new(
            ReportName::GeneralLedger,
            date("2020-10-01"),
            date("2020-10-02"),
        )
        .expect("range"),
        ReportLineage::default(),
    )
    .await
    .expect_err("fails");
    assert!(
        matches!(err, ReportLoadError::Fetch { start, end, .. } if start == end),
        "{err}"
    );
    // An as-of report has no range to split: one request, then the error.
    let mut asked = 0;
    let err = load_report_range_with(
        |_r: ReportRequest| {
            asked += 1;
            std::future::ready(Err(ReportFetchError::Qbo(qbo::QboError::Timeout {
                message: "x".to_owned(),
            })))
        },
        &db.pool,
        REALM,
        &ReportRequest::new(
            ReportName::AgedPayables,
            date("2020-10-01"),
            date("2020-10-31"),
        )
        .expect("range"),
        ReportLineage::default(),
    )
    .await
    .expect_err("an as-of report cannot be split");
    assert!(matches!(err, ReportLoadError::Fetch { .. }), "{err}");
    assert_eq!(asked, 1);
}
