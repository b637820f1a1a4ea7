//! The storage layer against a real PostgreSQL: database creation and migrations, raw upsert
//! semantics and counts, the encrypted secret store and key file, and the token store's locking.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use qbo::{TokenSet, TokenStore as _};
use qbo_backfill::store::{
    self, KeySettings, PageWrite, PgTokenStore, RawTable, SecretKey, SecretStore, StoreError,
    UpsertCounts, upsert_page,
};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{Connection as _, PgPool};

use crate::support::{customer, customer_json, page, row, test_db, ts};

const REALM: &str = "9130357766900000";

fn counts(inserted: u64, updated: u64, unchanged: u64) -> UpsertCounts {
    UpsertCounts {
        inserted,
        updated,
        unchanged,
    }
}

fn jan(day: u32) -> jiff::Timestamp {
    ts(&format!("2026-01-{day:02}T00:00:00Z"))
}

/// Upserts `page` for window `[jan(day), jan(day+1))` in its own committed transaction.
async fn upsert(pool: &PgPool, day: u32, page: &qbo::Page) -> UpsertCounts {
    let mut tx = pool.begin().await.expect("begin");
    let write = PageWrite {
        realm_id: REALM,
        table: RawTable::CUSTOMERS,
        window_start: jan(day),
        window_end: jan(day + 1),
        page,
        run_id: None,
    };
    let got = upsert_page(&mut tx, &write).await.expect("upsert");
    tx.commit().await.expect("commit");
    got
}

async fn count_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM raw.qb_customers")
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn stored_payload(pool: &PgPool, id: &str) -> serde_json::Value {
    sqlx::query_scalar::<_, sqlx::types::Json<serde_json::Value>>(
        "SELECT payload FROM raw.qb_customers WHERE realm_id = $1 AND id = $2",
    )
    .bind(REALM)
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("stored row")
    .0
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("valid json")
}

// ---------------------------------------------------------------- connect & migrations

#[tokio::test]
async fn connect_creates_a_missing_database_and_migrates_it_once() {
    let db = test_db().await;
    let name = format!("qbo_connect_{}", uuid::Uuid::new_v4().simple());
    let mut url = url::Url::parse(&db.url).expect("url");
    url.set_path(&name);

    // Several processes starting at once on a database that does not exist yet.
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { store::connect(&url).await })
        })
        .collect();
    let mut pools = Vec::new();
    for attempt in attempts {
        pools.push(
            attempt
                .await
                .expect("task")
                .expect("connect creates and migrates"),
        );
    }
    let pool = &pools[0];
    assert_eq!(
        count_rows(pool).await,
        0,
        "runbook query works on the new database"
    );
    let rows = sqlx::query(
        "SELECT extract_window_start_utc::date AS day, COUNT(*) FROM raw.qb_customers \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("runbook per-day query");
    assert!(rows.is_empty());
    // New sessions of the database count days in UTC whatever the server's TimeZone.
    let mut fresh =
        sqlx::PgConnection::connect_with(&store::connect_options(url.as_str()).expect("url"))
            .await
            .expect("fresh session");
    let tz: String = sqlx::query_scalar("SHOW TimeZone")
        .fetch_one(&mut fresh)
        .await
        .expect("tz");
    assert_eq!(tz, "UTC");
    fresh.close().await.expect("close");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .expect("migrations table");
    assert_eq!(
        applied as usize,
        store::MIGRATOR.iter().count(),
        "each migration applied once"
    );
    for p in pools {
        p.close().await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&db.pool)
    .await
    .expect("drop");
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_in_one_line_without_the_password() {
    let err = store::connect("postgres://app:hunter2@127.0.0.1:1/qbo")
        .await
        .expect_err("closed");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        msg,
        "Cannot reach PostgreSQL at 127.0.0.1:1: connection refused. Start a server or set \
         DATABASE_URL."
    );
    assert!(!format!("{err:?}").contains("hunter2"));

    let err = store::connect("mysql://app:hunter2@h/x")
        .await
        .expect_err("bad scheme");
    assert!(matches!(err, StoreError::InvalidUrl { .. }));
    assert!(!err.to_string().contains("hunter2") && !err.to_string().contains('\n'));
}

#[tokio::test]
async fn resolve_server_url_keeps_a_url_whose_server_answers() {
    let db = test_db().await;
    assert_eq!(
        store::resolve_server_url(&db.url).await.expect("answers"),
        db.url
    );
    // A remote host that does not answer is reported, not replaced by a local cluster.
    let err = store::resolve_server_url("postgres://u:pw@nonexistent.invalid:5432/x")
        .await
        .expect_err("unreachable remote");
    assert!(matches!(err, StoreError::NoServer(_)), "{err:?}");
    assert!(
        err.to_string().contains("nonexistent.invalid:5432"),
        "{err}"
    );
}

/// Starts (or reuses) the throwaway cluster, which keeps running afterwards; run on demand.
#[tokio::test]
#[ignore = "starts a throwaway PostgreSQL cluster that keeps running; run with --ignored"]
async fn resolve_server_url_starts_a_throwaway_cluster_when_nothing_answers() {
    let url = store::resolve_server_url("postgres://postgres@localhost:1/qbo_backfill")
        .await
        .expect("a local cluster");
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    let again = store::resolve_server_url("postgres://postgres@localhost:1/qbo_backfill")
        .await
        .expect("reused");
    assert_eq!(url, again, "the running cluster is reused");
    let db = qbo_backfill::store::TestDb::on_server(&url)
        .await
        .expect("test db on the cluster");
    assert_eq!(count_rows(&db.pool).await, 0);
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn test_db_cleanup_drops_the_database() {
    let db = test_db().await;
    let observer = test_db().await;
    let name = db.name().to_owned();
    db.cleanup().await.expect("cleanup");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&observer.pool)
            .await
            .expect("query");
    assert!(!exists, "{name} still exists");
}

// ---------------------------------------------------------------- raw upserts

#[tokio::test]
async fn first_load_inserts_every_row_with_its_provenance() {
    let db = test_db().await;
    let rows: Vec<_> = (1..=3)
        .map(|i| customer(&i.to_string(), 0, &format!("C{i}")))
        .collect();
    let p = page(2, rows.clone());
    assert_eq!(upsert(&db.pool, 10, &p).await, counts(3, 0, 0));
    assert_eq!(count_rows(&db.pool).await, 3);

    for r in &rows {
        assert_eq!(stored_payload(&db.pool, &r.id).await, json(r.raw.get()));
    }
    type Provenance = (
        i64,
        Option<i32>,
        Option<i32>,
        sqlx::types::Json<serde_json::Value>,
        bool,
    );
    let (token, number, size, request, window_ok): Provenance = sqlx::query_as(
        "SELECT sync_token, page_number, page_size, request_payload, \
                extract_window_start_utc = '2026-01-10T00:00:00Z' \
                AND extract_window_end_utc = '2026-01-11T00:00:00Z' \
                AND ingested_at_utc <= now() \
         FROM raw.qb_customers WHERE realm_id = $1 AND id = '2'",
    )
    .bind(REALM)
    .fetch_one(&db.pool)
    .await
    .expect("row");
    assert_eq!(
        (token, number, size, window_ok),
        (0, Some(2), Some(1000), true)
    );
    assert_eq!(
        request.0,
        serde_json::json!({
            "query": p.query, "start_position": 1001, "page_size": 1000,
            "minor_version": 75, "intuit_tid": "tid-2"
        })
    );
    let per_day: Vec<(String, i64)> = sqlx::query_as(
        "SELECT extract_window_start_utc::date::text AS day, COUNT(*) FROM raw.qb_customers \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("runbook per-day query");
    assert_eq!(per_day, [("2026-01-10".to_owned(), 3)]);
}

#[tokio::test]
async fn identical_rows_are_unchanged_and_not_touched_at_all() {
    let db = test_db().await;
    let p = page(
        1,
        (1..=50)
            .map(|i| customer(&i.to_string(), 3, "Same"))
            .collect(),
    );
    assert_eq!(upsert(&db.pool, 1, &p).await, counts(50, 0, 0));
    let before: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, xmin::text, ctid::text FROM raw.qb_customers ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("versions");

    // The re-run, from another window: inside one transaction, as the pipeline does.
    const TUPLE_STATS: &str = "SELECT pg_stat_get_xact_tuples_inserted('raw.qb_customers'::regclass) \
             + pg_stat_get_xact_tuples_updated('raw.qb_customers'::regclass) \
             + pg_stat_get_xact_tuples_hot_updated('raw.qb_customers'::regclass)";
    let mut conn = db.pool.acquire().await.expect("conn");
    let mut tx = conn.begin().await.expect("begin");
    let stats_before: i64 = sqlx::query_scalar(TUPLE_STATS)
        .fetch_one(&mut *tx)
        .await
        .expect("stats");
    let write = PageWrite {
        realm_id: REALM,
        table: RawTable::CUSTOMERS,
        window_start: jan(2),
        window_end: jan(3),
        page: &p,
        run_id: None,
    };
    assert_eq!(
        upsert_page(&mut tx, &write).await.expect("upsert"),
        counts(0, 0, 50)
    );
    // No transaction id was needed: nothing was written, locked or WAL-logged.
    let xid: Option<String> = sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text")
        .fetch_one(&mut *tx)
        .await
        .expect("xid");
    assert_eq!(
        xid, None,
        "an unchanged upsert must not write or lock anything"
    );
    let stats_after: i64 = sqlx::query_scalar(TUPLE_STATS)
        .fetch_one(&mut *tx)
        .await
        .expect("stats");
    assert_eq!(stats_after, stats_before, "no tuple inserted or updated");
    tx.commit().await.expect("commit");

    let after: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, xmin::text, ctid::text FROM raw.qb_customers ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("versions");
    assert_eq!(before, after, "no row got a new version");
    let locked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM raw.qb_customers WHERE xmax::text <> '0'")
            .fetch_one(&db.pool)
            .await
            .expect("xmax");
    assert_eq!(locked, 0, "no row was locked");
    let windows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT extract_window_start_utc::date::text FROM raw.qb_customers",
    )
    .fetch_all(&db.pool)
    .await
    .expect("windows");
    assert_eq!(
        windows,
        ["2026-01-01"],
        "unchanged rows keep their first window"
    );
}

#[tokio::test]
async fn a_changed_payload_with_a_newer_sync_token_replaces_the_row() {
    let db = test_db().await;
    upsert(
        &db.pool,
        1,
        &page(1, vec![customer("7", 1, "Old"), customer("8", 1, "Keep")]),
    )
    .await;
    let newer = customer("7", 2, "New");
    let got = upsert(
        &db.pool,
        5,
        &page(3, vec![newer.clone(), customer("8", 1, "Keep")]),
    )
    .await;
    assert_eq!(got, counts(0, 1, 1));
    assert_eq!(stored_payload(&db.pool, "7").await, json(newer.raw.get()));
    let (token, day, number): (i64, String, i32) = sqlx::query_as(
        "SELECT sync_token, extract_window_start_utc::date::text, page_number \
         FROM raw.qb_customers WHERE id = '7'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("row");
    assert_eq!((token, day.as_str(), number), (2, "2026-01-05", 3));
    assert_eq!(count_rows(&db.pool).await, 2);

    // Same SyncToken but a different payload is not older: it is an update too.
    let same_token = customer("7", 2, "New again");
    assert_eq!(
        upsert(&db.pool, 6, &page(1, vec![same_token.clone()])).await,
        counts(0, 1, 0)
    );
    assert_eq!(
        stored_payload(&db.pool, "7").await,
        json(same_token.raw.get())
    );
}

#[tokio::test]
async fn an_older_sync_token_never_overwrites_a_newer_one() {
    let db = test_db().await;
    let newest = customer("9", 5, "Newest");
    upsert(&db.pool, 1, &page(1, vec![newest.clone()])).await;
    let got = upsert(&db.pool, 2, &page(1, vec![customer("9", 4, "Stale")])).await;
    assert_eq!(got, counts(0, 0, 1));
    assert_eq!(stored_payload(&db.pool, "9").await, json(newest.raw.get()));
}

#[tokio::test]
async fn duplicate_ids_within_a_page_count_once_and_keep_the_later_version() {
    let db = test_db().await;
    let later = customer("1", 2, "Later");
    let p = page(
        1,
        vec![
            customer("1", 1, "Earlier"),
            customer("2", 0, "Two"),
            later.clone(),
        ],
    );
    let got = upsert(&db.pool, 1, &p).await;
    assert_eq!(got, counts(2, 0, 1));
    assert_eq!(got.total(), 3);
    assert_eq!(stored_payload(&db.pool, "1").await, json(later.raw.get()));
    // The same page again: everything unchanged.
    assert_eq!(upsert(&db.pool, 1, &p).await, counts(0, 0, 3));

    // A repeat with an older SyncToken later in the page does not win.
    let p = page(1, vec![customer("3", 7, "Seven"), customer("3", 6, "Six")]);
    assert_eq!(upsert(&db.pool, 1, &p).await, counts(1, 0, 1));
    assert_eq!(
        stored_payload(&db.pool, "3").await,
        json(customer_json("3", 7, "Seven").as_str())
    );
}

#[tokio::test]
async fn the_same_entity_reformatted_is_unchanged() {
    let db = test_db().await;
    let text = customer_json("4", 1, "Fmt");
    upsert(&db.pool, 1, &page(1, vec![row(&text)])).await;
    let pretty = serde_json::to_string_pretty(&json(&text)).expect("pretty");
    assert_ne!(pretty, text);
    assert_eq!(
        upsert(&db.pool, 1, &page(1, vec![row(&pretty)])).await,
        counts(0, 0, 1)
    );
}

#[tokio::test]
async fn realms_and_tables_are_separate() {
    let db = test_db().await;
    let p = page(1, vec![customer("1", 0, "A")]);
    for (realm, table) in [
        (REALM, RawTable::CUSTOMERS),
        ("other-realm", RawTable::CUSTOMERS),
        (REALM, RawTable::ITEMS),
        (REALM, RawTable::INVOICES),
    ] {
        let mut conn = db.pool.acquire().await.expect("conn");
        let write = PageWrite {
            realm_id: realm,
            table,
            window_start: jan(1),
            window_end: jan(2),
            page: &p,
            run_id: None,
        };
        assert_eq!(
            upsert_page(&mut conn, &write).await.expect("upsert"),
            counts(1, 0, 0)
        );
    }
    assert_eq!(count_rows(&db.pool).await, 2);
    let empty = page(1, Vec::new());
    assert_eq!(upsert(&db.pool, 1, &empty).await, UpsertCounts::default());
}

#[tokio::test]
async fn concurrent_writers_of_the_same_ids_count_each_row_once() {
    let db = test_db().await;
    let p = page(
        1,
        (1..=200)
            .map(|i| customer(&i.to_string(), 0, "Race"))
            .collect(),
    );
    let write = PageWrite {
        realm_id: REALM,
        table: RawTable::CUSTOMERS,
        window_start: jan(1),
        window_end: jan(2),
        page: &p,
        run_id: None,
    };
    let mut first = db.pool.begin().await.expect("begin");
    assert_eq!(
        upsert_page(&mut first, &write).await.expect("first"),
        counts(200, 0, 0)
    );

    // The second writer probes before the first commits, so it tries to insert everything and
    // waits on the first's uncommitted rows.
    let pool = db.pool.clone();
    let p2 = p.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.expect("begin");
        let write = PageWrite {
            realm_id: REALM,
            table: RawTable::CUSTOMERS,
            window_start: jan(1),
            window_end: jan(2),
            page: &p2,
            run_id: None,
        };
        let got = upsert_page(&mut tx, &write).await.expect("second");
        tx.commit().await.expect("commit");
        got
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second writer must wait for the first"
    );
    first.commit().await.expect("commit");
    assert_eq!(second.await.expect("task"), counts(0, 0, 200));
    assert_eq!(count_rows(&db.pool).await, 200);
}

// ---------------------------------------------------------------- secrets

fn temp_path(label: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!(
            "qbo-backfill-test-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .join(label)
}

#[tokio::test]
async fn secrets_round_trip_encrypted_at_rest() {
    let db = test_db().await;
    let key = SecretKey::generate().expect("key");
    let store = SecretStore::new(db.pool.clone(), key.clone());
    let value = SecretString::from("client-secret-value-a1b2");
    assert!(store.get("QBO_CLIENT_SECRET").await.expect("get").is_none());
    store.set("QBO_CLIENT_SECRET", &value).await.expect("set");
    let back = store
        .get("QBO_CLIENT_SECRET")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(back.expose_secret(), value.expose_secret());

    let blob: Vec<u8> =
        sqlx::query_scalar("SELECT ciphertext FROM ops.secrets WHERE name = 'QBO_CLIENT_SECRET'")
            .fetch_one(&db.pool)
            .await
            .expect("row");
    assert_eq!(blob[0], key.id(), "key id first");
    assert_eq!(blob.len(), 1 + 24 + value.expose_secret().len() + 16);
    let plain = value.expose_secret().as_bytes();
    assert!(
        !blob.windows(plain.len()).any(|w| w == plain),
        "plaintext in the table"
    );

    store
        .set(
            "QBO_CLIENT_SECRET",
            &SecretString::from("second-value-zz99"),
        )
        .await
        .expect("set");
    let list = store.list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].redacted.as_str()),
        ("QBO_CLIENT_SECRET", "…zz99")
    );
    assert!(list[0].readable && list[0].updated_at.is_some());
    assert!(store.delete("QBO_CLIENT_SECRET").await.expect("delete"));
    assert!(store.get("QBO_CLIENT_SECRET").await.expect("get").is_none());
}

#[tokio::test]
async fn a_wrong_key_or_a_moved_ciphertext_gives_a_clear_error() {
    let db = test_db().await;
    let store = SecretStore::new(db.pool.clone(), SecretKey::generate().expect("key"));
    store
        .set("A", &SecretString::from("value-of-a-0000"))
        .await
        .expect("set");

    let other = SecretStore::new(db.pool.clone(), SecretKey::generate().expect("key"));
    let err = other.get("A").await.expect_err("wrong key");
    assert!(matches!(err, StoreError::Undecryptable { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("Secret `A` cannot be decrypted with this key"),
        "{msg}"
    );
    assert!(!msg.contains("value-of-a") && !msg.contains('\n'));
    let listed = other.list().await.expect("list");
    assert!(!listed[0].readable && !listed[0].redacted.contains("0000"));

    // The same key but the ciphertext copied to another name: refused.
    sqlx::query("INSERT INTO ops.secrets (name, ciphertext) SELECT 'B', ciphertext FROM ops.secrets WHERE name = 'A'")
        .execute(&db.pool)
        .await
        .expect("copy");
    let err = store.get("B").await.expect_err("moved");
    assert!(
        err.to_string()
            .starts_with("Secret `B` cannot be decrypted"),
        "{err}"
    );
}

#[test]
fn the_key_file_is_created_once_with_owner_only_permissions() {
    let path = temp_path("secret.key");
    let settings = KeySettings {
        key_base64: None,
        key_file: Some(path.clone()),
    };

    // Several processes starting at once on a machine without a key file.
    let keys: Vec<SecretKey> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| SecretKey::load_or_create(&settings)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("key"))
            .collect()
    });
    let first = keys[0].to_base64();
    for k in &keys {
        assert_eq!(
            k.to_base64().expose_secret(),
            first.expose_secret(),
            "one key for all"
        );
    }
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir = path.parent().expect("dir");
    let leftovers: Vec<_> = std::fs::read_dir(dir).expect("dir").collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");

    let again = SecretKey::load_or_create(&settings).expect("reload");
    let sealed = keys[0].seal("secrets:x", b"v").expect("seal");
    assert_eq!(again.open("secrets:x", &sealed).expect("open"), b"v");
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn a_lost_key_file_is_refused_and_no_new_one_is_left_behind() {
    let db = test_db().await;
    let path = temp_path("secret.key");
    let settings = KeySettings {
        key_base64: None,
        key_file: Some(path.clone()),
    };
    // An empty database: the key file is created.
    let key = SecretKey::load_or_create_for(&db.pool, &settings)
        .await
        .expect("created");
    assert!(path.exists());
    SecretStore::new(db.pool.clone(), key.clone())
        .set(
            "QBO_CLIENT_SECRET",
            &SecretString::from("client-secret-value-c3d4"),
        )
        .await
        .expect("set");
    // The same file again: the same key.
    let again = SecretKey::load_or_create_for(&db.pool, &settings)
        .await
        .expect("read");
    assert_eq!(again.id(), key.id());

    // The file is lost while the database holds what it sealed.
    std::fs::remove_file(&path).expect("remove");
    let err = SecretKey::load_or_create_for(&db.pool, &settings)
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("is missing") && !text.contains('\n'),
        "{text}"
    );
    assert!(!path.exists(), "a new key file was left behind");
    let dir = path.parent().expect("dir");
    assert_eq!(std::fs::read_dir(dir).expect("dir").count(), 0);

    // Restored from the backup: it works again.
    std::fs::write(&path, format!("{}\n", key.to_base64().expose_secret())).expect("restore");
    let restored = SecretKey::load_or_create_for(&db.pool, &settings)
        .await
        .expect("restored");
    assert_eq!(restored.id(), key.id());
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn the_environment_key_wins_and_is_validated() {
    let key = SecretKey::generate().expect("key");
    let settings = KeySettings {
        key_base64: Some(key.to_base64()),
        key_file: Some(temp_path("never-created.key")),
    };
    let loaded = SecretKey::load_or_create(&settings).expect("env key");
    assert_eq!(loaded.id(), key.id());
    assert!(!settings.key_file.as_ref().expect("path").exists());

    let bad = KeySettings {
        key_base64: Some(SecretString::from("c2hvcnQ=")),
        key_file: None,
    };
    let err = SecretKey::load_or_create(&bad).expect_err("short key");
    assert!(matches!(err, StoreError::InvalidKey(_)));
    assert!(
        err.to_string().contains("decodes to 5 bytes, not 32"),
        "{err}"
    );
}

#[test]
fn a_damaged_key_file_is_reported() {
    let path = temp_path("secret.key");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    std::fs::write(&path, "not a key\n").expect("write");
    let settings = KeySettings {
        key_base64: None,
        key_file: Some(path.clone()),
    };
    let err = SecretKey::load_or_create(&settings).expect_err("damaged");
    assert!(matches!(err, StoreError::KeyFile { .. }));
    assert!(
        err.to_string().contains("does not hold a valid key"),
        "{err}"
    );
    std::fs::remove_dir_all(path.parent().expect("dir")).expect("cleanup");
}

// ---------------------------------------------------------------- tokens

fn tokens(refresh: &str, access: &str) -> TokenSet {
    TokenSet {
        refresh_token: SecretString::from(refresh),
        access_token: Some(SecretString::from(access)),
        access_token_expires_at: Some(ts("2026-03-01T10:00:00.123456Z")),
        refresh_token_expires_at: Some(ts("2026-06-01T00:00:00Z")),
    }
}

#[tokio::test]
async fn without_a_stored_token_lock_says_how_to_store_one() {
    let db = test_db().await;
    let store = PgTokenStore::new(db.pool.clone(), SecretKey::generate().expect("key"), REALM);
    let Err(err) = store.lock().await else {
        panic!("no token stored, lock must fail")
    };
    let msg = err.to_string();
    assert!(
        msg.contains("No QuickBooks refresh token is stored"),
        "{msg}"
    );
    assert!(
        msg.contains("qbo-backfill secrets set QBO_REFRESH_TOKEN"),
        "{msg}"
    );
    assert!(store.status().await.expect("status").is_none());
}

#[tokio::test]
async fn seed_lock_commit_round_trip() {
    let db = test_db().await;
    let key = SecretKey::generate().expect("key");
    let store = PgTokenStore::new(db.pool.clone(), key.clone(), REALM);
    assert!(
        store
            .seed_if_empty(&SecretString::from("RT-seed-0001"))
            .await
            .expect("seed")
    );
    assert!(
        !store
            .seed_if_empty(&SecretString::from("RT-other"))
            .await
            .expect("seed again")
    );

    let lease = store.lock().await.expect("lock");
    assert_eq!(lease.tokens().refresh_token.expose_secret(), "RT-seed-0001");
    assert!(lease.tokens().access_token.is_none());
    lease
        .commit(tokens("RT-rotated-0002", "AT-fresh-0002"))
        .await
        .expect("commit");

    let lease = store.lock().await.expect("lock");
    let got = lease.tokens().clone();
    drop(lease);
    assert_eq!(got.refresh_token.expose_secret(), "RT-rotated-0002");
    assert_eq!(
        got.access_token.as_ref().map(|t| t.expose_secret()),
        Some("AT-fresh-0002")
    );
    assert_eq!(
        got.access_token_expires_at,
        Some(ts("2026-03-01T10:00:00.123456Z"))
    );
    assert_eq!(
        got.refresh_token_expires_at,
        Some(ts("2026-06-01T00:00:00Z"))
    );

    let status = store.status().await.expect("status").expect("stored");
    assert_eq!((status.refresh_count, status.has_access_token), (1, true));
    assert_eq!(status.refresh_token_redacted, "…0002");
    let debug = format!("{store:?} {got:?} {status:?}");
    assert!(
        !debug.contains("RT-rotated") && !debug.contains("AT-fresh"),
        "{debug}"
    );

    let (rt, at): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT refresh_token_enc, access_token_enc FROM ops.oauth_tokens WHERE realm_id = $1",
    )
    .bind(REALM)
    .fetch_one(&db.pool)
    .await
    .expect("row");
    for (blob, plain) in [(rt, "RT-rotated-0002"), (at, "AT-fresh-0002")] {
        assert!(!blob.windows(plain.len()).any(|w| w == plain.as_bytes()));
    }

    // Another company's store (or key) cannot read this row's tokens.
    let wrong = PgTokenStore::new(db.pool.clone(), SecretKey::generate().expect("key"), REALM);
    let Err(err) = wrong.lock().await else {
        panic!("wrong key must fail")
    };
    assert!(
        err.to_string()
            .contains("cannot be decrypted with this key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_dropped_lease_rolls_back_and_releases_the_lock_at_once() {
    let db = test_db().await;
    let store = PgTokenStore::new(db.pool.clone(), SecretKey::generate().expect("key"), REALM)
        .with_lock_timeout(Duration::from_secs(5));
    store
        .seed_if_empty(&SecretString::from("RT-1"))
        .await
        .expect("seed");
    let lease = store.lock().await.expect("lock");
    drop(lease);
    let lease = tokio::time::timeout(Duration::from_secs(2), store.lock())
        .await
        .expect("released promptly")
        .expect("lock");
    assert_eq!(lease.tokens().refresh_token.expose_secret(), "RT-1");
}

#[tokio::test]
async fn two_lockers_are_serialized_and_the_second_sees_the_first_ones_tokens() {
    let db = test_db().await;
    let key = SecretKey::generate().expect("key");
    let a = PgTokenStore::new(db.pool.clone(), key.clone(), REALM);
    // A second store on its own pool: another process.
    let options = store::connect_options(&db.url).expect("options");
    let other_pool = sqlx::PgPool::connect_with(options)
        .await
        .expect("second pool");
    let b = PgTokenStore::new(other_pool.clone(), key, REALM);
    a.seed_if_empty(&SecretString::from("RT-0"))
        .await
        .expect("seed");

    let lease = a.lock().await.expect("first lock");
    let second = tokio::spawn(async move {
        let lease = b.lock().await.expect("second lock");
        lease.tokens().clone()
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !second.is_finished(),
        "the second locker must wait while the first holds the lock"
    );
    lease.commit(tokens("RT-1", "AT-1")).await.expect("commit");
    let seen = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("second proceeds after commit")
        .expect("task");
    assert_eq!(seen.refresh_token.expose_secret(), "RT-1");
    assert_eq!(
        seen.access_token.as_ref().map(|t| t.expose_secret()),
        Some("AT-1")
    );
    other_pool.close().await;
}

#[tokio::test]
async fn lock_gives_up_after_its_timeout() {
    let db = test_db().await;
    let key = SecretKey::generate().expect("key");
    let a = PgTokenStore::new(db.pool.clone(), key.clone(), REALM);
    let b = PgTokenStore::new(db.pool.clone(), key, REALM)
        .with_lock_timeout(Duration::from_millis(200));
    a.seed_if_empty(&SecretString::from("RT-0"))
        .await
        .expect("seed");
    let _held = a.lock().await.expect("lock");
    let Err(err) = b.lock().await else {
        panic!("must time out")
    };
    assert!(err.to_string().contains("Timed out"), "{err}");
}

#[tokio::test]
async fn replacing_the_refresh_token_clears_the_access_token() {
    let db = test_db().await;
    let store = PgTokenStore::new(db.pool.clone(), SecretKey::generate().expect("key"), REALM);
    store
        .replace_refresh_token(&SecretString::from("RT-a"))
        .await
        .expect("insert");
    store
        .lock()
        .await
        .expect("lock")
        .commit(tokens("RT-b", "AT-b"))
        .await
        .expect("commit");
    store
        .replace_refresh_token(&SecretString::from("RT-new"))
        .await
        .expect("replace");
    let lease = store.lock().await.expect("lock");
    assert_eq!(lease.tokens().refresh_token.expose_secret(), "RT-new");
    assert!(lease.tokens().access_token.is_none());
    assert!(lease.tokens().access_token_expires_at.is_none());
}

/// A session and an API token record their use at most once a minute: a read within the minute
/// writes nothing (no commit to wait for), a read after it renews the session's expiry and the
/// token's `last_used_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_api_tokens_record_their_use_once_a_minute() {
    use qbo_backfill::domain::access::Scope;
    use qbo_backfill::store::auth::{api_tokens, web};
    let db = test_db().await;
    let pool = &db.pool;
    assert!(web::create_user(pool, "ops", "hash").await.expect("user"));
    let session = web::open_session(pool, "ops").await.expect("session");
    let (token_id, token) = api_tokens::create(pool, "ci", Scope::Read, None)
        .await
        .expect("token");
    let stamps = || async {
        // Seconds since the epoch, to the microsecond.
        sqlx::query_as::<_, (f64, f64, Option<f64>)>(
            "SELECT extract(epoch FROM s.last_seen)::float8, \
                    extract(epoch FROM s.expires_at)::float8, \
                    extract(epoch FROM t.last_used_at)::float8 \
             FROM ops.sessions s, ops.api_tokens t WHERE t.id = $1",
        )
        .bind(token_id)
        .fetch_one(pool)
        .await
        .expect("stamps")
    };
    let read = || async {
        assert!(
            web::session(pool, &session.id)
                .await
                .expect("read")
                .is_some()
        );
        assert_eq!(
            api_tokens::verify(pool, &token).await.expect("verify"),
            Some((Scope::Read, "ci".to_owned()))
        );
    };
    // The first use of a token is recorded.
    read().await;
    let first = stamps().await;
    assert!(first.2.is_some(), "a token's first use is recorded");
    // Within the minute: nothing is written.
    read().await;
    assert_eq!(stamps().await, first, "a read within the minute wrote");
    // Over a minute later: both are renewed.
    sqlx::query(
        "UPDATE ops.sessions SET last_seen = last_seen - interval '2 minutes', \
           expires_at = expires_at - interval '2 minutes'",
    )
    .execute(pool)
    .await
    .expect("age session");
    sqlx::query("UPDATE ops.api_tokens SET last_used_at = last_used_at - interval '2 minutes'")
        .execute(pool)
        .await
        .expect("age token");
    let aged = stamps().await;
    read().await;
    let renewed = stamps().await;
    assert!(
        renewed.0 > aged.0 && renewed.1 > aged.1,
        "the session was not renewed"
    );
    assert!(renewed.2 > aged.2, "the token's use was not recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_logs_lines_carry_when_they_happened_not_when_the_batch_was_written() {
    use qbo_backfill::orchestrator::worker::StoredLog;
    use qbo_backfill::pipeline::events::{RunEvent, RunEvents as _};
    let db = test_db().await;
    let range =
        qbo_backfill::pipeline::DateRange::parse("2026-01-10", "2026-01-11").expect("range");
    let windows = range.windows().expect("windows");
    let exec = crate::support::start_run(
        &db.pool,
        "9130357766900001",
        range,
        &windows,
        &qbo_backfill::store::runs::workers::WorkerIdentity::current(),
    )
    .await;
    // Two lines 120 ms apart, written in one batch (every 200 ms).
    let (log, writer) = StoredLog::start(db.pool.clone(), exec.run_id);
    log.emit(&RunEvent::Warning { message: "first" });
    tokio::time::sleep(Duration::from_millis(120)).await;
    log.emit(&RunEvent::Warning { message: "second" });
    log.close(writer).await;
    let lines = qbo_backfill::store::runs::logs::read(&db.pool, exec.run_id, 0, 10)
        .await
        .expect("lines");
    assert_eq!(lines.len(), 2);
    let apart = lines[1].at.0.duration_since(lines[0].at.0);
    assert!(
        apart >= jiff::SignedDuration::from_millis(100),
        "the lines are {apart:?} apart"
    );
}
