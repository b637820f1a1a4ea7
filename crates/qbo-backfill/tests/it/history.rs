//! History against a real PostgreSQL: one version per written row in `raw.qb_<plural>_history`
//! (a first load writes each row once, a replacement moves the replaced version into
//! `_versions`, also under a concurrent writer), by the upsert's own transaction (page and span
//! paths), nothing for an unchanged re-run, the
//! README's "as of" query, how a deletion was found (`deleted_by`), and a database created before
//! history existed brought up to date.

use qbo_backfill::pipeline::catalog::ENTITIES;
use qbo_backfill::store::raw::{DeletionSource, mark_deleted, upsert_spread_page};
use qbo_backfill::store::{self, PageWrite, RawTable, UpsertCounts, upsert_page};
use serde_json::value::RawValue;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{customer, page, test_db, ts};

/// The realm of the README's "as of" query.
const REALM: &str = "9130350000000001";

/// The README's query: invoice 123 as it was on 2026-03-31 (checked to be there verbatim).
const AS_OF_README: &str = "SELECT payload FROM raw.qb_invoices_history WHERE realm_id = \
    '9130350000000001' AND id = '123' AND last_updated_time < '2026-04-01T00:00:00Z' ORDER BY \
    last_updated_time DESC, sync_token DESC LIMIT 1;";

fn counts(inserted: u64, updated: u64, unchanged: u64) -> UpsertCounts {
    UpsertCounts {
        inserted,
        updated,
        unchanged,
    }
}

/// A customer as the client parses it: `updated` is its `MetaData.LastUpdatedTime`.
fn parsed_customer(id: &str, sync_token: u64, name: &str) -> qbo::Row {
    let mut row = customer(id, sync_token, name);
    row.updated = Some(ts("2026-01-02T16:00:00Z"));
    row
}

/// An invoice of January 2026 (a month since closed), at `SyncToken` `sync_token`, for `amount`,
/// last updated at `updated`.
fn invoice(id: &str, sync_token: u64, amount: u32, updated: &str) -> qbo::Row {
    let json = serde_json::json!({
        "Id": id, "SyncToken": sync_token.to_string(), "domain": "QBO", "sparse": false,
        "DocNumber": format!("INV-{id}"), "TxnDate": "2026-01-15",
        "CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
        "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail"}],
        "TotalAmt": amount, "Balance": amount,
        "MetaData": {"CreateTime": "2026-01-15T10:00:00Z", "LastUpdatedTime": updated},
    })
    .to_string();
    qbo::Row {
        id: id.to_owned(),
        sync_token: sync_token.to_string(),
        raw: RawValue::from_string(json).expect("valid json"),
        created: Some(ts("2026-01-15T10:00:00Z")),
        updated: Some(ts(updated)),
    }
}

/// A page of an invoice query holding `rows`.
fn invoice_page(rows: Vec<qbo::Row>) -> qbo::Page {
    qbo::Page {
        entity: qbo::Entity::Invoice,
        query: "SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 1000".to_owned(),
        ..page(1, rows)
    }
}

/// Upserts `page` into `table` for the window of 2026-01-`day`, by `run_id`, committed.
async fn upsert(
    pool: &PgPool,
    table: RawTable,
    day: u32,
    page: &qbo::Page,
    run_id: Uuid,
) -> UpsertCounts {
    let mut tx = pool.begin().await.expect("begin");
    let got = write_uncommitted(&mut tx, table, day, page, run_id).await;
    tx.commit().await.expect("commit");
    got
}

/// [`upsert`] in the caller's transaction, left uncommitted.
async fn write_uncommitted(
    conn: &mut sqlx::PgConnection,
    table: RawTable,
    day: u32,
    page: &qbo::Page,
    run_id: Uuid,
) -> UpsertCounts {
    let write = PageWrite {
        realm_id: REALM,
        table,
        window_start: ts(&format!("2026-01-{day:02}T00:00:00Z")),
        window_end: ts(&format!("2026-01-{:02}T00:00:00Z", day + 1)),
        page,
        run_id: Some(run_id),
    };
    upsert_page(conn, &write).await.expect("upsert")
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// The versions of customer or invoice `id` in `history`: (SyncToken, run).
async fn versions(pool: &PgPool, history: &str, id: &str) -> Vec<(Option<i64>, Option<Uuid>)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sync_token, run_id FROM {history} WHERE realm_id = $1 AND id = $2 \
         ORDER BY sync_token"
    )))
    .bind(REALM)
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("versions")
}

/// `TotalAmt` of invoice 123 as it was before `before` (the README's query with another bound).
async fn amount_as_of(pool: &PgPool, before: &str) -> Option<i64> {
    let sql = AS_OF_README.replace("'2026-04-01T00:00:00Z'", &format!("'{before}'"));
    let payload: Option<sqlx::types::Json<serde_json::Value>> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_optional(pool)
            .await
            .expect("as of");
    payload.and_then(|p| p.0["TotalAmt"].as_i64())
}

#[tokio::test]
async fn a_load_writes_one_version_per_row_and_an_unchanged_rerun_none() {
    let db = test_db().await;
    let first_run = Uuid::new_v4();
    let p = page(
        1,
        (1..=50)
            .map(|i| parsed_customer(&i.to_string(), 0, &format!("Customer {i}")))
            .collect(),
    );
    assert_eq!(
        upsert(&db.pool, RawTable::CUSTOMERS, 1, &p, first_run).await,
        counts(50, 0, 0)
    );
    assert_eq!(count(&db.pool, "raw.qb_customers").await, 50);
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 50);
    // Written once: the current versions are the raw rows themselves.
    assert_eq!(count(&db.pool, "raw.qb_customers_versions").await, 0);
    // Each version is the raw row as written, with its LastUpdatedTime and run.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_customers r \
         FULL JOIN raw.qb_customers_history h USING (realm_id, id) \
         WHERE h.payload IS DISTINCT FROM r.payload \
            OR h.payload_hash IS DISTINCT FROM r.payload_hash \
            OR h.sync_token IS DISTINCT FROM r.sync_token \
            OR h.seen_at_utc IS DISTINCT FROM r.ingested_at_utc \
            OR h.last_updated_time IS DISTINCT FROM '2026-01-02T16:00:00Z'::timestamptz \
            OR h.run_id IS DISTINCT FROM $1",
    )
    .bind(first_run)
    .fetch_one(&db.pool)
    .await
    .expect("compare");
    assert_eq!(mismatched, 0);

    // The same page again, by another run, from another window: nothing is written anywhere.
    assert_eq!(
        upsert(&db.pool, RawTable::CUSTOMERS, 2, &p, Uuid::new_v4()).await,
        counts(0, 0, 50)
    );
    assert_eq!(count(&db.pool, "raw.qb_customers").await, 50);
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 50);
    assert_eq!(
        versions(&db.pool, "raw.qb_customers_history", "7").await,
        [(Some(0), Some(first_run))]
    );
    // Other tables' histories are their own.
    assert_eq!(count(&db.pool, "raw.qb_invoices_history").await, 0);
}

#[tokio::test]
async fn an_edit_adds_a_version_and_raw_keeps_only_the_newest() {
    let db = test_db().await;
    let (load, edit, stale) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let rows = |edited: Option<(u64, &str)>| {
        (1..=10)
            .map(|i| match edited {
                Some((token, name)) if i == 4 => parsed_customer("4", token, name),
                _ => parsed_customer(&i.to_string(), 0, &format!("Customer {i}")),
            })
            .collect::<Vec<_>>()
    };
    let t = RawTable::CUSTOMERS;
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(None)), load).await,
        counts(10, 0, 0)
    );
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(Some((1, "Renamed")))), edit).await,
        counts(0, 1, 9)
    );
    assert_eq!(count(&db.pool, "raw.qb_customers").await, 10);
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 11);
    assert_eq!(
        versions(&db.pool, "raw.qb_customers_history", "4").await,
        [(Some(0), Some(load)), (Some(1), Some(edit))]
    );
    // The replaced version moved to `_versions` as it was: its run and when it was first seen.
    assert_eq!(
        versions(&db.pool, "raw.qb_customers_versions", "4").await,
        [(Some(0), Some(load))]
    );
    let first_seen: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_customers_versions v JOIN raw.qb_customers r \
         ON r.realm_id = v.realm_id AND r.id = '1' WHERE v.seen_at_utc = r.ingested_at_utc",
    )
    .fetch_one(&db.pool)
    .await
    .expect("seen at");
    assert_eq!(
        first_seen, 1,
        "loaded with customer 1, which was not rewritten"
    );
    let name: String = sqlx::query_scalar(
        "SELECT payload->>'DisplayName' FROM raw.qb_customers WHERE realm_id = $1 AND id = '4'",
    )
    .bind(REALM)
    .fetch_one(&db.pool)
    .await
    .expect("raw row");
    assert_eq!(name, "Renamed");

    // An older SyncToken arriving late changes nothing, in raw or in history.
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(Some((0, "Stale")))), stale).await,
        counts(0, 0, 10)
    );
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_on_another_archives_the_version_that_one_wrote() {
    let db = test_db().await;
    let (load, first, second) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let t = RawTable::CUSTOMERS;
    let one = |token: u64, name: &str| page(1, vec![parsed_customer("4", token, name)]);
    assert_eq!(
        upsert(&db.pool, t, 1, &one(0, "Loaded"), load).await,
        counts(1, 0, 0)
    );
    // The first writer replaces version 0 and holds the row, uncommitted.
    let mut tx1 = db.pool.begin().await.expect("begin");
    let got = write_uncommitted(&mut tx1, t, 1, &one(1, "First"), first).await;
    assert_eq!(got, counts(0, 1, 0));
    // The second probes (version 0 is what it sees), then waits for the row.
    let pool = db.pool.clone();
    let second_page = one(2, "Second");
    let waiting = tokio::spawn(async move {
        let mut tx2 = pool.begin().await.expect("begin");
        let got = write_uncommitted(&mut tx2, t, 1, &second_page, second).await;
        tx2.commit().await.expect("commit");
        got
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the second writer did not wait for the row"
    );
    tx1.commit().await.expect("commit");
    assert_eq!(waiting.await.expect("task"), counts(0, 1, 0));
    // Version 1 lived for a moment, and history has it.
    assert_eq!(
        versions(&db.pool, "raw.qb_customers_history", "4").await,
        [
            (Some(0), Some(load)),
            (Some(1), Some(first)),
            (Some(2), Some(second))
        ]
    );
}

#[tokio::test]
async fn a_restated_closed_month_shows_two_versions_and_as_of_finds_each() {
    let db = test_db().await;
    assert!(
        include_str!("../../../../README.md").contains(AS_OF_README),
        "the README shows the query this test runs"
    );
    let t = RawTable::INVOICES;
    let (backfill, sync, later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    // January is loaded as a span: invoice 123 on the 15th, 124 on the 16th.
    let january = invoice_page(vec![
        invoice("123", 0, 100, "2026-01-15T10:00:00Z"),
        invoice("124", 0, 50, "2026-01-16T10:00:00Z"),
    ]);
    let windows = [
        (ts("2026-01-15T00:00:00Z"), ts("2026-01-16T00:00:00Z")),
        (ts("2026-01-16T00:00:00Z"), ts("2026-01-17T00:00:00Z")),
    ];
    let mut conn = db.pool.acquire().await.expect("conn");
    let got = upsert_spread_page(
        &mut conn,
        REALM,
        t,
        &january,
        &[0, 1],
        &windows,
        Some(backfill),
    )
    .await
    .expect("span");
    assert_eq!(got, [counts(1, 0, 0), counts(1, 0, 0)]);

    // In April the closed month is restated: invoice 123 is now 120 (an incremental sync).
    assert_eq!(
        upsert(
            &db.pool,
            t,
            10,
            &invoice_page(vec![invoice("123", 1, 120, "2026-04-10T09:30:00Z")]),
            sync
        )
        .await,
        counts(0, 1, 0)
    );
    assert_eq!(count(&db.pool, "raw.qb_invoices").await, 2);
    assert_eq!(
        versions(&db.pool, "raw.qb_invoices_history", "123").await,
        [(Some(0), Some(backfill)), (Some(1), Some(sync))]
    );
    assert_eq!(
        versions(&db.pool, "raw.qb_invoices_history", "124").await,
        [(Some(0), Some(backfill))]
    );

    // As it was on 2026-03-31 (the README's query as written), on the day of the edit, and
    // before it existed.
    let readme: sqlx::types::Json<serde_json::Value> = sqlx::query_scalar(AS_OF_README)
        .fetch_one(&db.pool)
        .await
        .expect("the README's query returns a version");
    assert_eq!(readme.0["TotalAmt"], 100);
    assert_eq!(
        amount_as_of(&db.pool, "2026-04-10T00:00:00Z").await,
        Some(100)
    );
    assert_eq!(
        amount_as_of(&db.pool, "2026-04-11T00:00:00Z").await,
        Some(120)
    );
    assert_eq!(amount_as_of(&db.pool, "2026-01-15T00:00:00Z").await, None);

    // An edit in the last second of a day belongs to that day: `< next day` sees it, where
    // `<= 23:59:59` would not.
    assert_eq!(
        upsert(
            &db.pool,
            t,
            30,
            &invoice_page(vec![invoice("123", 2, 130, "2026-04-30T23:59:59.500Z")]),
            later
        )
        .await,
        counts(0, 1, 0)
    );
    assert_eq!(
        amount_as_of(&db.pool, "2026-05-01T00:00:00Z").await,
        Some(130)
    );
    let old_form: sqlx::types::Json<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM raw.qb_invoices_history WHERE realm_id = $1 AND id = '123' \
         AND last_updated_time <= '2026-04-30T23:59:59Z' ORDER BY last_updated_time DESC LIMIT 1",
    )
    .bind(REALM)
    .fetch_one(&db.pool)
    .await
    .expect("old form");
    assert_eq!(old_form.0["TotalAmt"], 120, "the `<=` form misses the edit");
    assert_eq!(count(&db.pool, "raw.qb_invoices_history").await, 4);
}

/// `(deleted_at_utc is set, deleted_by)` of customer `id`.
async fn deletion(pool: &PgPool, id: &str) -> (bool, Option<String>) {
    sqlx::query_as(
        "SELECT deleted_at_utc IS NOT NULL, deleted_by FROM raw.qb_customers \
         WHERE realm_id = $1 AND id = $2",
    )
    .bind(REALM)
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("raw row")
}

#[tokio::test]
async fn a_deletion_records_how_it_was_found_until_the_row_is_seen_again() {
    let db = test_db().await;
    let t = RawTable::CUSTOMERS;
    let rows = |token: u64| {
        (1..=3)
            .map(|i| parsed_customer(&i.to_string(), token, "Deleted later"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(0)), Uuid::new_v4()).await,
        counts(3, 0, 0)
    );
    let when = ts("2026-02-01T12:00:00Z");
    let mut conn = db.pool.acquire().await.expect("conn");
    let by_cdc = [("1".to_owned(), when), ("404".to_owned(), when)];
    let marked = mark_deleted(&mut conn, t, REALM, &by_cdc, DeletionSource::Cdc)
        .await
        .expect("mark");
    assert_eq!(marked, 1, "404 is not in raw");
    let by_verify = [("1".to_owned(), when), ("2".to_owned(), when)];
    let marked = mark_deleted(&mut conn, t, REALM, &by_verify, DeletionSource::Verify)
        .await
        .expect("mark");
    assert_eq!(marked, 1, "1 keeps its first mark");
    assert_eq!(
        deletion(&db.pool, "1").await,
        (true, Some("cdc".to_owned()))
    );
    assert_eq!(
        deletion(&db.pool, "2").await,
        (true, Some("verify".to_owned()))
    );
    assert_eq!(deletion(&db.pool, "3").await, (false, None));
    assert_eq!(DeletionSource::Verify.as_str(), "verify");
    assert_eq!(DeletionSource::Cdc.to_string(), "cdc");

    // Seen again (a new version): no longer deleted, whatever found the deletion.
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(1)), Uuid::new_v4()).await,
        counts(0, 3, 0)
    );
    for id in ["1", "2", "3"] {
        assert_eq!(deletion(&db.pool, id).await, (false, None), "customer {id}");
    }
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 6);

    // A mark that turns out wrong (the row is still in QuickBooks, unchanged) is cleared when the
    // row is seen again, as an update; the version is not stored twice.
    let marked = mark_deleted(&mut conn, t, REALM, &by_verify, DeletionSource::Verify)
        .await
        .expect("mark");
    assert_eq!(marked, 2);
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(1)), Uuid::new_v4()).await,
        counts(0, 2, 1)
    );
    for id in ["1", "2", "3"] {
        assert_eq!(deletion(&db.pool, id).await, (false, None), "customer {id}");
    }
    assert_eq!(count(&db.pool, "raw.qb_customers_history").await, 6);
    // Older than what is stored: never written, mark or not.
    mark_deleted(&mut conn, t, REALM, &by_verify, DeletionSource::Verify)
        .await
        .expect("mark");
    assert_eq!(
        upsert(&db.pool, t, 1, &page(1, rows(0)), Uuid::new_v4()).await,
        counts(0, 0, 3)
    );
    assert_eq!(
        deletion(&db.pool, "1").await,
        (true, Some("verify".to_owned()))
    );

    // Only the two sources are accepted.
    let refused = sqlx::query("UPDATE raw.qb_customers SET deleted_by = 'guess' WHERE id = '3'")
        .execute(&db.pool)
        .await;
    assert!(
        refused.is_err(),
        "the CHECK constraint refuses other values"
    );
}

#[tokio::test]
async fn an_older_database_gets_history_and_deleted_by() {
    let db = test_db().await;
    let pool = &db.pool;
    // Undo what history added, as on a database created before it: migrations 0009 (the three
    // original tables) and 0022 (history as a view) and what start-up added to the others; and
    // the later migration 0012, whose views read what 0009 added (they are applied again below,
    // as a migration would be).
    let mut undo = String::from(
        "DROP VIEW raw.qb_trial_balance_accrual, raw.qb_trial_balance_cash, raw.qb_journal_lines, \
           raw.qb_sales_lines, raw.qb_expense_lines, raw.qb_posting_transactions, \
           raw.qb_default_accounts; \
         DROP FUNCTION raw.qb_trial_balance(text, date), raw.qb_json_array(jsonb), \
           raw.qb_money(jsonb); \
         DROP FUNCTION ops.timestamptz_or_null(text);",
    );
    for spec in ENTITIES {
        undo.push_str(&format!(
            "DROP VIEW {}; DROP TABLE {}; ALTER TABLE {} DROP COLUMN deleted_by, \
             DROP COLUMN last_updated_time, DROP COLUMN run_id;",
            spec.history, spec.versions, spec.table
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(undo))
        .execute(pool)
        .await
        .expect("undo");
    // Rows stored then, one deleted (by change data capture, the only way then), one with a
    // LastUpdatedTime PostgreSQL cannot read, one without a hash.
    for table in ["raw.qb_customers", "raw.qb_vendors"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (realm_id, id, payload, payload_hash, sync_token, \
                    ingested_at_utc, extract_window_start_utc, extract_window_end_utc, \
                    deleted_at_utc) VALUES \
             ($1, '1', '{{\"Id\":\"1\",\"MetaData\":{{\"LastUpdatedTime\":\"2026-01-02T08:00:00-08:00\"}}}}', \
              '\\x01', 3, '2026-01-03T00:00:00Z', '2026-01-02', '2026-01-03', NULL), \
             ($1, '2', '{{\"Id\":\"2\",\"MetaData\":{{\"LastUpdatedTime\":\"2026-13-45T99:00:00\"}}}}', \
              '\\x02', 0, '2026-01-03T00:00:00Z', '2026-01-02', '2026-01-03', \
              '2026-02-01T00:00:00Z'), \
             ($1, '3', '{{\"Id\":\"3\"}}', NULL, 0, '2026-01-03T00:00:00Z', '2026-01-02', \
              '2026-01-03', NULL)"
        )))
        .bind(REALM)
        .execute(pool)
        .await
        .expect("old rows");
    }

    // The migration on the three original tables, then start-up for every table.
    sqlx::raw_sql(include_str!("../../migrations/0009_history.sql"))
        .execute(pool)
        .await
        .expect("migration 0009");
    sqlx::raw_sql(include_str!("../../migrations/0012_trial_balance.sql"))
        .execute(pool)
        .await
        .expect("migration 0012");
    sqlx::raw_sql(include_str!("../../migrations/0022_history_view.sql"))
        .execute(pool)
        .await
        .expect("migration 0022");
    store::migrate(pool, "history test")
        .await
        .expect("start-up");

    let histories: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE relkind = 'v' AND relname LIKE '%\\_history'), \
                count(*) FILTER (WHERE relkind = 'r' AND relname LIKE '%\\_versions') \
         FROM pg_class WHERE relnamespace = 'raw'::regnamespace",
    )
    .fetch_one(pool)
    .await
    .expect("tables");
    let n = ENTITIES.len() as i64;
    assert_eq!(
        histories,
        (n, n),
        "a history view and a versions table per entity"
    );
    for (table, history) in [
        ("raw.qb_customers", "raw.qb_customers_history"),
        ("raw.qb_vendors", "raw.qb_vendors_history"),
    ] {
        let seeded: Vec<(String, Option<bool>, Option<Uuid>, bool)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, last_updated_time = '2026-01-02T16:00:00Z', run_id, \
                        seen_at_utc = '2026-01-03T00:00:00Z' \
                 FROM {history} ORDER BY id"
            )))
            .fetch_all(pool)
            .await
            .expect("seeded");
        assert_eq!(
            seeded,
            [
                ("1".to_owned(), Some(true), None, true),
                ("2".to_owned(), None, None, true),
            ],
            "{history}: the stored versions, LastUpdatedTime when readable"
        );
        let deleted_by: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT deleted_by FROM {table} ORDER BY id"
        )))
        .fetch_all(pool)
        .await
        .expect("deleted_by");
        assert_eq!(deleted_by, [None, Some("cdc".to_owned()), None], "{table}");
    }
    let checks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'c' \
         AND pg_get_constraintdef(oid) LIKE '%deleted_by%' \
         AND connamespace = 'raw'::regnamespace",
    )
    .fetch_one(pool)
    .await
    .expect("constraints");
    assert_eq!(checks, ENTITIES.len() as i64, "one CHECK per raw table");

    // Start-up again changes nothing; the tables take new versions.
    store::migrate(pool, "history test").await.expect("again");
    assert_eq!(count(pool, "raw.qb_vendors_history").await, 2);
    let vendor = qbo::Page {
        entity: qbo::Entity::Vendor,
        ..page(1, vec![parsed_customer("1", 4, "Now a vendor")])
    };
    let t = RawTable::for_entity(qbo::Entity::Vendor).expect("vendors");
    assert_eq!(
        upsert(pool, t, 5, &vendor, Uuid::new_v4()).await,
        counts(0, 1, 0)
    );
    assert_eq!(count(pool, "raw.qb_vendors_history").await, 3);
}

/// Every version in `raw.qb_customers_history`, in a stable order: (id, SyncToken, run, seen).
async fn all_versions(pool: &PgPool) -> Vec<(String, Option<i64>, Option<Uuid>, String)> {
    sqlx::query_as(
        "SELECT id, sync_token, run_id, seen_at_utc::text FROM raw.qb_customers_history \
         ORDER BY id, sync_token",
    )
    .fetch_all(pool)
    .await
    .expect("versions")
}

#[tokio::test]
async fn history_tables_become_views_keeping_every_version_and_when_it_was_seen() {
    let db = test_db().await;
    let pool = &db.pool;
    let (load, edit, later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let t = RawTable::CUSTOMERS;
    let three = |second: (u64, &str)| {
        page(
            1,
            vec![
                parsed_customer("1", 0, "One"),
                parsed_customer("2", second.0, second.1),
                parsed_customer("3", 0, "Three"),
            ],
        )
    };
    assert_eq!(
        upsert(pool, t, 1, &three((0, "Two")), load).await,
        counts(3, 0, 0)
    );
    assert_eq!(
        upsert(pool, t, 1, &three((1, "Two, renamed")), edit).await,
        counts(0, 1, 2)
    );
    let before = all_versions(pool).await;
    assert_eq!(before.len(), 4);

    // Back to the shape before migration 0022: history a table holding every version, the
    // current ones included, and raw tables without the current version's columns.
    let mut undo = String::new();
    for spec in ENTITIES {
        undo.push_str(&format!(
            "DROP VIEW {history}; ALTER TABLE {versions} RENAME TO {history_name}; \
             INSERT INTO {history} SELECT realm_id, id, payload_hash, sync_token, payload, \
                 last_updated_time, ingested_at_utc, run_id FROM {table}; \
             ALTER TABLE {table} DROP COLUMN last_updated_time, DROP COLUMN run_id;",
            history = spec.history,
            versions = spec.versions,
            history_name = spec.history_name,
            table = spec.table,
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(undo))
        .execute(pool)
        .await
        .expect("undo");
    assert_eq!(count(pool, "raw.qb_customers_history").await, 4);

    sqlx::raw_sql(include_str!("../../migrations/0022_history_view.sql"))
        .execute(pool)
        .await
        .expect("migration 0022");
    store::migrate(pool, "history test")
        .await
        .expect("start-up");
    assert_eq!(all_versions(pool).await, before, "every version, as it was");
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT relkind::text FROM pg_class \
         WHERE relnamespace = 'raw'::regnamespace AND relname LIKE '%\\_history'",
    )
    .fetch_all(pool)
    .await
    .expect("kinds");
    assert_eq!(kinds, ["v"], "every history is a view");

    // The converted table takes new versions like a new one.
    let edited = three((1, "Two, renamed"));
    let edited = qbo::Page {
        rows: vec![
            parsed_customer("1", 1, "One, renamed"),
            edited.rows[1].clone(),
        ],
        ..edited
    };
    assert_eq!(upsert(pool, t, 2, &edited, later).await, counts(0, 1, 1));
    assert_eq!(
        versions(pool, "raw.qb_customers_history", "1").await,
        [(Some(0), Some(load)), (Some(1), Some(later))]
    );
    assert_eq!(count(pool, "raw.qb_customers_history").await, 5);
}
