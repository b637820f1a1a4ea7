//! Payloads PostgreSQL's `jsonb` cannot hold as sent: a customer whose text holds `\u0000` or
//! an unpaired surrogate escape is still stored (those escapes become U+FFFD), so its window
//! does not fail on every retry; re-loading it is `unchanged`.

use qbo_backfill::store::{PageWrite, RawTable, UpsertCounts, upsert_page};

use serde_json::value::RawValue;

use crate::support::{page, test_db, ts};

/// A row from JSON text that `serde_json::Value` may refuse (a lone surrogate).
fn row(id: &str, json: &str) -> qbo::Row {
    qbo::Row {
        id: id.to_owned(),
        sync_token: "0".to_owned(),
        raw: RawValue::from_string(json.to_owned()).expect("raw JSON"),
        created: None,
        updated: None,
    }
}

const REALM: &str = "9130357766900002";

async fn upsert(pool: &sqlx::PgPool, page: &qbo::Page) -> UpsertCounts {
    let mut tx = pool.begin().await.expect("begin");
    let counts = upsert_page(
        &mut tx,
        &PageWrite {
            realm_id: REALM,
            table: RawTable::CUSTOMERS,
            window_start: ts("2026-01-10T00:00:00Z"),
            window_end: ts("2026-01-11T00:00:00Z"),
            page,
            run_id: None,
        },
    )
    .await
    .expect("a NUL or a lone surrogate in a payload fails the page");
    tx.commit().await.expect("commit");
    counts
}

#[tokio::test]
async fn nul_and_lone_surrogate_escapes_are_stored_as_replacement_characters() {
    let db = test_db().await;
    let rows = vec![
        row(
            "1",
            r#"{"Id":"1","SyncToken":"0","DisplayName":"A\u0000B","Balance":100.00}"#,
        ),
        row(
            "2",
            r#"{"Id":"2","SyncToken":"0","DisplayName":"C\ud800D","Notes":"\\u0000 as text"}"#,
        ),
        row(
            "3",
            r#"{"Id":"3","SyncToken":"0","DisplayName":"fine \ud83d\ude00 é"}"#,
        ),
    ];
    let first = upsert(&db.pool, &page(1, rows.clone())).await;
    assert_eq!(first.inserted, 3);
    let again = upsert(&db.pool, &page(1, rows)).await;
    assert_eq!(again.unchanged, 3, "{again:?}");

    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, payload::text FROM raw.qb_customers WHERE realm_id = $1 ORDER BY id",
    )
    .bind(REALM)
    .fetch_all(&db.pool)
    .await
    .expect("payloads");
    assert_eq!(
        stored,
        [
            ("1".to_owned(), r#"{"Id": "1", "Balance": 100.00, "SyncToken": "0", "DisplayName": "A�B"}"#.to_owned()),
            ("2".to_owned(), r#"{"Id": "2", "Notes": "\\u0000 as text", "SyncToken": "0", "DisplayName": "C�D"}"#.to_owned()),
            ("3".to_owned(), r#"{"Id": "3", "SyncToken": "0", "DisplayName": "fine 😀 é"}"#.to_owned()),
        ]
    );
}
