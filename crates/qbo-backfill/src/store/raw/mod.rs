//! Raw upserts: one QBO page into `raw.qb_<entity>`, with exact inserted / updated / unchanged
//! counts.
//!
//! # Write path (chosen by measurement, see `examples/write_path_bench.rs`)
//!
//! Each row carries the SHA-256 of its raw JSON text (`payload_hash`). A page is written in two
//! statements on the caller's connection (inside the caller's transaction), three when it
//! replaces stored rows:
//!
//! 1. **Probe**: the page's ids, hashes and SyncTokens are sent as arrays (no payloads) and a
//!    plain `SELECT` returns which rows are new or differ, and which of those the table holds.
//!    Identical rows stop here: they are not touched at all (no dead tuple, no row lock, no
//!    WAL), and an unchanged re-run never ships a payload to the server.
//! 2. **Archive** (only if some differing rows are stored): the versions they hold are copied
//!    into `raw.qb_<entity>_versions`, reading them `FOR UPDATE`, so the version archived is the
//!    one the write then replaces, whatever another writer committed meanwhile.
//! 3. **Write**: only the remaining rows go, as `unnest` array binds, into one
//!    `INSERT … ON CONFLICT DO UPDATE … WHERE` whose `WHERE` re-checks hash, SyncToken order and
//!    jsonb equality (so a concurrent writer, or a payload that differs only in formatting,
//!    still counts as unchanged). `RETURNING (xmax = 0)` tells inserts from updates.
//!
//! History (`raw.qb_<entity>_history`, a view since migration 0022) is `_versions` plus the raw
//! rows, so a first load writes each row once, a replacement writes the version it replaces once
//! more, and an unchanged row, which the probe stops, never adds a version. A version archived
//! and then not replaced (the write's `WHERE` kept the stored row) is still shown once: the view
//! hides a raw row whose version `_versions` holds.
//!
//! Duplicate ids within one page are folded before writing: the later occurrence wins unless its
//! SyncToken is older; the folded-away occurrences count as unchanged, so
//! `inserted + updated + unchanged == page.rows.len()` and `inserted` equals the table's growth.

pub mod health;
pub mod reconcile;
pub mod reports;
pub mod verify;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::AddAssign;
use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{PgTimestamp, StoreError};
use crate::domain::catalog::ENTITIES;
use crate::domain::pipeline::Pipeline;

/// One of the raw tables (`raw.qb_<plural>`), one per entity of
/// [`crate::domain::catalog::ENTITIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawTable(u8);

/// How a deletion was found, stored in the raw table's `deleted_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionSource {
    /// QuickBooks' change data capture reported it, during an incremental sync.
    Cdc,
    /// A comparison of the raw table with QuickBooks found it missing there.
    Verify,
    /// A QuickBooks webhook's `Delete` event named it.
    Webhook,
}

impl DeletionSource {
    /// The stored value: `cdc`, `verify` or `webhook`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cdc => "cdc",
            Self::Verify => "verify",
            Self::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for DeletionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statements of one raw table, built once from the catalog.
struct TableSql {
    probe: String,
    archive: String,
    write: String,
    write_spread: String,
    mark_deleted: String,
}

static TABLE_SQL: LazyLock<Vec<TableSql>> = LazyLock::new(|| {
    ENTITIES
        .iter()
        .map(|spec| TableSql {
            probe: probe_sql(spec.table),
            archive: archive_sql(spec.table, spec.versions),
            write: write_sql(spec.table),
            write_spread: write_spread_sql(spec.table),
            mark_deleted: mark_deleted_sql(spec.table),
        })
        .collect()
});

impl RawTable {
    /// `raw.qb_customers`.
    pub const CUSTOMERS: Self = Self(0);
    /// `raw.qb_items`.
    pub const ITEMS: Self = Self(1);
    /// `raw.qb_invoices`.
    pub const INVOICES: Self = Self(2);

    /// The table of the catalog's `index`-th entity.
    ///
    /// # Panics
    /// If `index` is not a catalog position (a programming error).
    #[must_use]
    pub fn at(index: usize) -> Self {
        assert!(index < ENTITIES.len(), "no catalog entity at {index}");
        Self(u8::try_from(index).unwrap_or(u8::MAX))
    }

    /// Every raw table, in catalog order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..ENTITIES.len()).map(Self::at)
    }

    /// The table that stores `entity`, if there is one.
    #[must_use]
    pub fn for_entity(entity: qbo::Entity) -> Option<Self> {
        crate::domain::catalog::position(entity).map(Self::at)
    }

    fn spec(self) -> &'static crate::domain::catalog::EntitySpec {
        &ENTITIES[usize::from(self.0)]
    }

    fn sql(self) -> &'static TableSql {
        &TABLE_SQL[usize::from(self.0)]
    }

    /// The entity this table stores.
    #[must_use]
    pub fn entity(self) -> qbo::Entity {
        self.spec().entity
    }

    /// The schema-qualified table name, e.g. `raw.qb_customers`.
    #[must_use]
    pub fn qualified_name(self) -> &'static str {
        self.spec().table
    }

    /// The schema-qualified name of the table's history view, e.g. `raw.qb_customers_history`.
    #[must_use]
    pub fn qualified_history_name(self) -> &'static str {
        self.spec().history
    }

    fn probe_sql(self) -> &'static str {
        &self.sql().probe
    }

    fn archive_sql(self) -> &'static str {
        &self.sql().archive
    }

    fn write_sql(self) -> &'static str {
        &self.sql().write
    }

    fn write_spread_sql(self) -> &'static str {
        &self.sql().write_spread
    }

    fn mark_deleted_sql(self) -> &'static str {
        &self.sql().mark_deleted
    }
}

/// Probe: which of the given rows are new, or differ (or are marked deleted) and are not older
/// than what is stored.
/// Returns their 1-based ordinals and whether the table holds them. `LATERAL … LIMIT 1` keeps it
/// a per-row primary-key lookup whatever the planner thinks of the array's size.
fn probe_sql(table: &str) -> String {
    format!(
        "SELECT i.ord, cur.present IS NOT NULL \
         FROM unnest($2::text[], $3::bytea[], $4::int8[]) WITH ORDINALITY \
              AS i(id, payload_hash, sync_token, ord) \
         LEFT JOIN LATERAL ( \
             SELECT true AS present, t.payload_hash, t.sync_token, \
                    t.deleted_at_utc IS NOT NULL AS deleted FROM {table} \
             AS t WHERE t.realm_id = $1 AND t.id = i.id LIMIT 1 \
         ) AS cur ON true \
         WHERE cur.present IS NULL \
            OR ((cur.deleted OR cur.payload_hash IS DISTINCT FROM i.payload_hash) \
                AND (i.sync_token IS NULL OR cur.sync_token IS NULL \
                     OR i.sync_token >= cur.sync_token))"
    )
}

/// The rows of the write statement: `$2`–`$5` and `$11` (each row's `LastUpdatedTime`).
const WRITE_ROWS: &str = "unnest($2::text[], $3::text[], $4::bytea[], $5::int8[], \
     $11::timestamptz[]) AS s(id, payload, payload_hash, sync_token, updated)";
/// [`WRITE_ROWS`] with each row's window bounds (`$6`, `$7`).
const SPREAD_ROWS: &str = "unnest($2::text[], $3::text[], $4::bytea[], $5::int8[], \
     $11::timestamptz[], $6::timestamptz[], $7::timestamptz[]) \
     AS s(id, payload, payload_hash, sync_token, updated, ws, we)";
/// The window bounds of the write statement, one pair for the page.
const WRITE_WINDOW: &str = "$6, $7, $8, $9, $10::jsonb";
/// [`WRITE_WINDOW`] with each row's own bounds.
const SPREAD_WINDOW: &str = "s.ws, s.we, $8, $9, $10::jsonb";
/// What the write statement returns: whether each written row was inserted.
const WRITE_RESULT: &str = "SELECT w.inserted FROM w";
/// [`WRITE_RESULT`] with the row's id.
const SPREAD_RESULT: &str = "SELECT w.id, w.inserted FROM w";

/// Archive: copies the versions of `$2` (ids of realm `$1`) the table holds into `versions`,
/// locking the rows (a version already there is kept, with when it was first seen).
fn archive_sql(table: &str, versions: &str) -> String {
    format!(
        "INSERT INTO {versions} (realm_id, id, payload_hash, sync_token, payload, \
                last_updated_time, seen_at_utc, run_id) \
         SELECT t.realm_id, t.id, t.payload_hash, t.sync_token, t.payload, \
                t.last_updated_time, t.ingested_at_utc, t.run_id \
         FROM {table} AS t \
         WHERE t.realm_id = $1 AND t.id = ANY($2::text[]) AND t.payload_hash IS NOT NULL \
         FOR UPDATE OF t \
         ON CONFLICT (realm_id, id, payload_hash) DO NOTHING"
    )
}

/// Write: insert new rows, update rows whose payload differs, or that are marked deleted, and
/// whose SyncToken is not older (a row seen again is not deleted any more, even unchanged),
/// recording each written version's `LastUpdatedTime` and run (`$12`). Returns one row per
/// written row: `true` if inserted, `false` if updated.
fn write_sql(table: &str) -> String {
    format!(
        "WITH s AS (SELECT * FROM {WRITE_ROWS}), \
         w AS ( \
         INSERT INTO {table} \
         AS t (realm_id, id, payload, payload_hash, sync_token, ingested_at_utc, \
                extract_window_start_utc, extract_window_end_utc, page_number, page_size, \
                request_payload, last_updated_time, run_id) \
         SELECT $1, s.id, s.payload::jsonb, s.payload_hash, s.sync_token, now(), \
                {WRITE_WINDOW}, s.updated, $12::uuid \
         FROM s \
         ON CONFLICT (realm_id, id) DO UPDATE SET \
             payload = EXCLUDED.payload, \
             payload_hash = EXCLUDED.payload_hash, \
             sync_token = EXCLUDED.sync_token, \
             ingested_at_utc = EXCLUDED.ingested_at_utc, \
             last_updated_time = EXCLUDED.last_updated_time, \
             run_id = EXCLUDED.run_id, \
             extract_window_start_utc = EXCLUDED.extract_window_start_utc, \
             extract_window_end_utc = EXCLUDED.extract_window_end_utc, \
             page_number = EXCLUDED.page_number, \
             page_size = EXCLUDED.page_size, \
             request_payload = EXCLUDED.request_payload, \
             deleted_at_utc = NULL, \
             deleted_by = NULL \
         WHERE (EXCLUDED.sync_token IS NULL OR t.sync_token IS NULL \
                OR EXCLUDED.sync_token >= t.sync_token) \
           AND (t.deleted_at_utc IS NOT NULL \
                OR (t.payload_hash IS DISTINCT FROM EXCLUDED.payload_hash \
                    AND t.payload IS DISTINCT FROM EXCLUDED.payload)) \
         RETURNING t.id, (xmax = 0) AS inserted \
         ) \
         {WRITE_RESULT}"
    )
}

/// [`write_sql`] for a page whose rows belong to different windows: each row carries its own
/// window bounds. Returns the id of every written row and whether it was inserted.
fn write_spread_sql(table: &str) -> String {
    write_sql(table)
        .replace(WRITE_ROWS, SPREAD_ROWS)
        .replace(WRITE_WINDOW, SPREAD_WINDOW)
        .replace(WRITE_RESULT, SPREAD_RESULT)
}

/// Marks rows deleted (keeping their last payload), found by `$4` (`deleted_by`); rows already
/// marked keep their first mark. Returns the ids marked now.
fn mark_deleted_sql(table: &str) -> String {
    format!(
        "UPDATE {table} AS t SET deleted_at_utc = d.deleted_at, deleted_by = $4::text \
         FROM unnest($2::text[], $3::timestamptz[]) AS d(id, deleted_at) \
         WHERE t.realm_id = $1 AND t.id = d.id AND t.deleted_at_utc IS NULL \
         RETURNING t.id"
    )
}

/// What [`ensure_tables`] has to do, by catalog entity: raw tables missing; raw tables without
/// `deleted_by` (created before that column existed) or without the current version's
/// `last_updated_time` and `run_id` (created before migration 0022); `_versions` tables and
/// `_history` views missing.
#[derive(Debug, Default)]
struct Missing {
    raw: Vec<&'static str>,
    deleted_by: Vec<&'static str>,
    version_columns: Vec<&'static str>,
    versions: Vec<&'static str>,
    history: Vec<&'static crate::domain::catalog::EntitySpec>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.raw.is_empty()
            && self.deleted_by.is_empty()
            && self.version_columns.is_empty()
            && self.versions.is_empty()
            && self.history.is_empty()
    }
}

/// Compares the tables and views of schema `raw` (and whether each has `deleted_by` and
/// `run_id`) with the catalog.
async fn missing(conn: &mut PgConnection) -> Result<Missing, StoreError> {
    let existing: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'deleted_by' AND NOT a.attisdropped), \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'run_id' AND NOT a.attisdropped) \
         FROM pg_class c \
         WHERE c.relnamespace = 'raw'::regnamespace AND c.relkind IN ('r', 'p', 'v')",
    )
    .fetch_all(&mut *conn)
    .await?;
    let find = |name: &str| {
        existing
            .iter()
            .find(|(e, ..)| e == name)
            .map(|&(_, d, r)| (d, r))
    };
    let mut missing = Missing::default();
    for spec in ENTITIES {
        match find(spec.table_name) {
            None => missing.raw.push(spec.table_name),
            Some((deleted_by, run_id)) => {
                if !deleted_by {
                    missing.deleted_by.push(spec.table_name);
                }
                if !run_id {
                    missing.version_columns.push(spec.table_name);
                }
            }
        }
        if find(spec.versions_name).is_none() {
            missing.versions.push(spec.versions_name);
        }
        if find(spec.history_name).is_none() {
            missing.history.push(spec);
        }
    }
    Ok(missing)
}

/// Runs one DDL statement built from catalog names.
async fn execute_ddl(conn: &mut PgConnection, ddl: String) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(ddl))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The history view of `spec` (as migration 0022 creates it): its `_versions`, and each raw
/// row whose version `_versions` does not hold.
fn history_view_ddl(spec: &crate::domain::catalog::EntitySpec) -> String {
    let (table, versions, history) = (spec.table, spec.versions, spec.history);
    format!(
        "CREATE OR REPLACE VIEW {history} AS \
         SELECT realm_id, id, payload_hash, sync_token, payload, last_updated_time, \
                seen_at_utc, run_id \
         FROM {versions} \
         UNION ALL \
         SELECT c.realm_id, c.id, c.payload_hash, c.sync_token, c.payload, \
                c.last_updated_time, c.ingested_at_utc, c.run_id \
         FROM {table} c \
         WHERE c.payload_hash IS NOT NULL AND NOT EXISTS ( \
             SELECT 1 FROM {versions} v \
             WHERE v.realm_id = c.realm_id AND v.id = c.id \
               AND v.payload_hash = c.payload_hash)"
    )
}

/// Creates what the catalog needs and the migrations do not: the raw table of every catalog
/// entity, shaped like `raw.qb_customers`; its `_versions` table, shaped like
/// `raw.qb_customers_versions`, and its `_history` view; and the columns later migrations added
/// to the first three raw tables on raw tables created before them (`deleted_by`: their
/// deletions were all found by change data capture; `last_updated_time` and `run_id`: NULL, as
/// for rows written before them). Each is checked on its own. Serialised by an advisory lock, so
/// processes starting together do not race.
///
/// # Errors
/// [`StoreError::Database`].
pub async fn ensure_tables(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    if missing(&mut *pool.acquire().await?).await?.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('qbo-backfill raw tables'))")
        .execute(&mut *tx)
        .await?;
    // Again under the lock: another process may have done it meanwhile.
    let missing = missing(&mut tx).await?;
    // Names come from the catalog (checked to be `qb_` + lower-case letters and `_`).
    for name in missing.raw {
        execute_ddl(
            &mut tx,
            format!("CREATE TABLE IF NOT EXISTS raw.{name} (LIKE raw.qb_customers INCLUDING ALL)"),
        )
        .await?;
    }
    for name in missing.deleted_by {
        execute_ddl(
            &mut tx,
            format!(
                "ALTER TABLE raw.{name} ADD COLUMN IF NOT EXISTS deleted_by text \
                 CHECK (deleted_by IN ('cdc', 'verify', 'webhook'))"
            ),
        )
        .await?;
        execute_ddl(
            &mut tx,
            format!(
                "UPDATE raw.{name} SET deleted_by = 'cdc' \
                 WHERE deleted_at_utc IS NOT NULL AND deleted_by IS NULL"
            ),
        )
        .await?;
    }
    for name in missing.version_columns {
        // A table migration 0022 did not convert had no history: its rows' versions are read
        // from it alone, so their LastUpdatedTime is filled in.
        execute_ddl(
            &mut tx,
            format!(
                "ALTER TABLE raw.{name} ADD COLUMN IF NOT EXISTS last_updated_time timestamptz, \
                 ADD COLUMN IF NOT EXISTS run_id uuid"
            ),
        )
        .await?;
        execute_ddl(
            &mut tx,
            format!(
                "UPDATE raw.{name} \
                 SET last_updated_time = \
                     ops.timestamptz_or_null(payload #>> '{{MetaData,LastUpdatedTime}}') \
                 WHERE payload_hash IS NOT NULL"
            ),
        )
        .await?;
    }
    for name in missing.versions {
        execute_ddl(
            &mut tx,
            format!(
                "CREATE TABLE IF NOT EXISTS raw.{name} \
                 (LIKE raw.qb_customers_versions INCLUDING ALL)"
            ),
        )
        .await?;
    }
    for spec in missing.history {
        execute_ddl(&mut tx, history_view_ddl(spec)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks `deleted` (id, deletion time) rows of `table` deleted for `realm_id`, keeping their
/// payload, and records how the deletion was found (`deleted_by`). Returns how many rows were
/// marked now (rows unknown to `raw` or already marked, whatever by, are not counted; they keep
/// their first mark).
///
/// # Errors
/// [`StoreError::Database`].
pub async fn mark_deleted(
    conn: &mut PgConnection,
    table: RawTable,
    realm_id: &str,
    deleted: &[(String, jiff::Timestamp)],
    source: DeletionSource,
) -> Result<u64, StoreError> {
    if deleted.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = deleted.iter().map(|(id, _)| id.as_str()).collect();
    let times: Vec<PgTimestamp> = deleted.iter().map(|(_, t)| PgTimestamp(*t)).collect();
    let marked: Vec<String> = sqlx::query_scalar(table.mark_deleted_sql())
        .bind(realm_id)
        .bind(&ids)
        .bind(&times)
        .bind(source.as_str())
        .fetch_all(&mut *conn)
        .await?;
    Ok(marked.len() as u64)
}

impl Pipeline {
    /// The raw table it writes.
    #[must_use]
    pub fn table(self) -> RawTable {
        RawTable::at(self.position())
    }
}

impl std::fmt::Display for RawTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.qualified_name())
    }
}

/// One page to upsert, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct PageWrite<'a> {
    /// The company.
    pub realm_id: &'a str,
    /// The table to write.
    pub table: RawTable,
    /// Start of the extract window that brought the page (`extract_window_start_utc`).
    pub window_start: jiff::Timestamp,
    /// End of the extract window (`extract_window_end_utc`).
    pub window_end: jiff::Timestamp,
    /// The page: rows, page number and size, and the request (`request_payload`).
    pub page: &'a qbo::Page,
    /// The run writing it, recorded with each version it writes (the raw row's `run_id`).
    pub run_id: Option<uuid::Uuid>,
}

/// What an upsert did, row by row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Rows whose `(realm_id, id)` was new.
    pub inserted: u64,
    /// Rows that replaced a stored version (payload differed, SyncToken not older).
    pub updated: u64,
    /// Rows left as stored: identical, older SyncToken, or repeated within the page.
    pub unchanged: u64,
}

impl UpsertCounts {
    /// `inserted + updated + unchanged`: the number of rows received.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.inserted + self.updated + self.unchanged
    }
}

impl AddAssign for UpsertCounts {
    fn add_assign(&mut self, rhs: Self) {
        self.inserted += rhs.inserted;
        self.updated += rhs.updated;
        self.unchanged += rhs.unchanged;
    }
}

impl UpsertCounts {
    /// `self - rhs`, each count at least 0.
    #[must_use]
    pub const fn saturating_sub(self, rhs: Self) -> Self {
        Self {
            inserted: self.inserted.saturating_sub(rhs.inserted),
            updated: self.updated.saturating_sub(rhs.updated),
            unchanged: self.unchanged.saturating_sub(rhs.unchanged),
        }
    }
}

impl std::ops::Add for UpsertCounts {
    type Output = Self;

    fn add(mut self, rhs: Self) -> Self {
        self += rhs;
        self
    }
}

/// A row ready to write: its id, raw JSON text (made storable by [`jsonb_safe`]), hash, parsed
/// SyncToken and `MetaData.LastUpdatedTime`.
struct Prepared<'a> {
    /// Position of the row (the occurrence kept) in the page.
    source: usize,
    id: &'a str,
    payload: Cow<'a, str>,
    hash: [u8; 32],
    sync_token: Option<i64>,
    updated: Option<jiff::Timestamp>,
}

/// Folds duplicate ids (the later occurrence wins unless its SyncToken is older) and hashes.
fn prepare(rows: &[qbo::Row]) -> Vec<Prepared<'_>> {
    let mut out: Vec<Prepared<'_>> = Vec::with_capacity(rows.len());
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (source, row) in rows.iter().enumerate() {
        let payload = jsonb_safe(row.raw.get());
        let candidate = Prepared {
            source,
            id: row.id.as_str(),
            hash: Sha256::digest(payload.as_bytes()).into(),
            payload,
            sync_token: parse_sync_token(&row.sync_token),
            updated: row.updated,
        };
        match seen.get(candidate.id) {
            Some(&at) => {
                let keeps_older = matches!(
                    (candidate.sync_token, out[at].sync_token),
                    (Some(new), Some(old)) if new < old
                );
                if !keeps_older {
                    out[at] = candidate;
                }
            }
            None => {
                seen.insert(candidate.id, out.len());
                out.push(candidate);
            }
        }
    }
    out
}

/// The four hex digits at `at`, as a UTF-16 code unit.
fn hex4(text: &str, at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Makes QBO's JSON text storable as `jsonb`. PostgreSQL refuses `\u0000` and unpaired UTF-16
/// surrogate escapes (`\ud800`), which would make the whole page, and so its window, fail on
/// every retry; each such escape is replaced by `\ufffd` (the replacement character). All
/// other text is kept byte for byte (borrowed when nothing changes). `text` must be valid
/// JSON, where a backslash always starts an escape inside a string.
fn jsonb_safe(text: &str) -> Cow<'_, str> {
    if !text.contains("\\u") {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(unit) = hex4(text, i + 2) else {
            i += 2;
            continue;
        };
        let paired_low = || {
            text.get(i + 6..i + 8) == Some("\\u")
                && hex4(text, i + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low))
        };
        match unit {
            0xD800..=0xDBFF if paired_low() => i += 12,
            0 | 0xD800..=0xDFFF => {
                out.push_str(&text[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            _ => i += 6,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// QBO sends `SyncToken` as a decimal string; anything else is treated as unknown (`NULL`),
/// which never blocks an update.
fn parse_sync_token(raw: &str) -> Option<i64> {
    raw.trim().parse().ok()
}

/// The `request_payload` column: what was asked for this page.
fn request_payload(page: &qbo::Page) -> String {
    serde_json::json!({
        "query": page.query,
        "start_position": page.start_position,
        "page_size": page.page_size,
        "minor_version": page.minor_version,
        "intuit_tid": page.intuit_tid,
    })
    .to_string()
}

/// The rows of `prepared` that are new or differ from what the table holds (the probe reads ids,
/// hashes and SyncTokens only), in page order. Before returning, the versions those rows will
/// replace are archived into the table's `_versions` (see the module header).
async fn changed_rows<'p, 'r>(
    conn: &mut PgConnection,
    table: RawTable,
    realm_id: &str,
    prepared: &'p [Prepared<'r>],
) -> Result<Vec<&'p Prepared<'r>>, StoreError> {
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = prepared.iter().map(|p| p.id).collect();
    let hashes: Vec<&[u8]> = prepared.iter().map(|p| p.hash.as_slice()).collect();
    let tokens: Vec<Option<i64>> = prepared.iter().map(|p| p.sync_token).collect();
    let probed: Vec<(i64, bool)> = sqlx::query_as(table.probe_sql())
        .bind(realm_id)
        .bind(&ids)
        .bind(&hashes)
        .bind(&tokens)
        .fetch_all(&mut *conn)
        .await?;
    let mut chosen = Vec::with_capacity(probed.len());
    let mut stored = Vec::new();
    for (ord, present) in probed {
        if let Some(p) = usize::try_from(ord - 1).ok().and_then(|i| prepared.get(i)) {
            chosen.push(p);
            if present {
                stored.push(p.id);
            }
        }
    }
    if !stored.is_empty() {
        sqlx::query(table.archive_sql())
            .bind(realm_id)
            .bind(&stored)
            .execute(&mut *conn)
            .await?;
    }
    Ok(chosen)
}

/// The column arrays a write statement binds for the rows it writes.
struct WriteColumns<'a> {
    ids: Vec<&'a str>,
    payloads: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    tokens: Vec<Option<i64>>,
    updated: Vec<Option<PgTimestamp>>,
}

impl<'a> WriteColumns<'a> {
    fn of(chosen: &[&'a Prepared<'_>]) -> Self {
        Self {
            ids: chosen.iter().map(|p| p.id).collect(),
            payloads: chosen.iter().map(|p| p.payload.as_ref()).collect(),
            hashes: chosen.iter().map(|p| p.hash.as_slice()).collect(),
            tokens: chosen.iter().map(|p| p.sync_token).collect(),
            updated: chosen.iter().map(|p| p.updated.map(PgTimestamp)).collect(),
        }
    }
}

/// Upserts one page into its raw table on `conn`, within whatever transaction the caller holds
/// (this function never commits), and returns exact counts. Every row inserted or updated is
/// also a new version in the table's history (by `write.run_id`); the version it replaced stays
/// there, in `_versions`.
///
/// # Errors
/// [`StoreError::Database`] if a statement fails (the caller's transaction is then aborted and
/// must be rolled back).
pub async fn upsert_page(
    conn: &mut PgConnection,
    write: &PageWrite<'_>,
) -> Result<UpsertCounts, StoreError> {
    let page = write.page;
    let received = page.rows.len() as u64;
    if page.rows.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let prepared = prepare(&page.rows);
    let chosen = changed_rows(conn, write.table, write.realm_id, &prepared).await?;
    let mut counts = UpsertCounts::default();
    if !chosen.is_empty() {
        let cols = WriteColumns::of(&chosen);
        let written: Vec<bool> = sqlx::query_scalar(write.table.write_sql())
            .bind(write.realm_id)
            .bind(&cols.ids)
            .bind(&cols.payloads)
            .bind(&cols.hashes)
            .bind(&cols.tokens)
            .bind(PgTimestamp(write.window_start))
            .bind(PgTimestamp(write.window_end))
            .bind(i32::try_from(page.number).unwrap_or(i32::MAX))
            .bind(i32::try_from(page.page_size).unwrap_or(i32::MAX))
            .bind(request_payload(page))
            .bind(&cols.updated)
            .bind(write.run_id)
            .fetch_all(&mut *conn)
            .await?;
        counts.inserted = written.iter().filter(|&&inserted| inserted).count() as u64;
        counts.updated = written.len() as u64 - counts.inserted;
    }
    counts.unchanged = received - counts.inserted - counts.updated;
    Ok(counts)
}

/// Upserts one page whose rows belong to several windows (a span of days fetched in one query):
/// `row_window[i]` is the index in `windows` of the window of `page.rows[i]`, whose bounds go to
/// `extract_window_*_utc`. Two statements whatever the number of windows; returns exact counts
/// per window, like [`upsert_page`] for each, and writes new versions to history like it (by
/// `run_id`).
///
/// # Errors
/// [`StoreError::Database`]; the caller's transaction is then aborted.
///
/// # Panics
/// If `row_window` does not give a valid window for every row (a programming error).
pub async fn upsert_spread_page(
    conn: &mut PgConnection,
    realm_id: &str,
    table: RawTable,
    page: &qbo::Page,
    row_window: &[usize],
    windows: &[(jiff::Timestamp, jiff::Timestamp)],
    run_id: Option<uuid::Uuid>,
) -> Result<Vec<UpsertCounts>, StoreError> {
    assert_eq!(row_window.len(), page.rows.len(), "one window per row");
    let mut counts = vec![UpsertCounts::default(); windows.len()];
    let mut received = vec![0_u64; windows.len()];
    for &w in row_window {
        received[w] += 1;
    }
    let prepared = prepare(&page.rows);
    let chosen = changed_rows(conn, table, realm_id, &prepared).await?;
    if !chosen.is_empty() {
        let window_of: HashMap<&str, usize> = chosen
            .iter()
            .map(|p| (p.id, row_window[p.source]))
            .collect();
        let cols = WriteColumns::of(&chosen);
        let bound = |pick: fn(&(jiff::Timestamp, jiff::Timestamp)) -> jiff::Timestamp| {
            chosen
                .iter()
                .map(|p| PgTimestamp(pick(&windows[row_window[p.source]])))
                .collect::<Vec<_>>()
        };
        let written: Vec<(String, bool)> = sqlx::query_as(table.write_spread_sql())
            .bind(realm_id)
            .bind(&cols.ids)
            .bind(&cols.payloads)
            .bind(&cols.hashes)
            .bind(&cols.tokens)
            .bind(bound(|w| w.0))
            .bind(bound(|w| w.1))
            .bind(i32::try_from(page.number).unwrap_or(i32::MAX))
            .bind(i32::try_from(page.page_size).unwrap_or(i32::MAX))
            .bind(request_payload(page))
            .bind(&cols.updated)
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await?;
        for (id, inserted) in written {
            if let Some(&w) = window_of.get(id.as_str()) {
                if inserted {
                    counts[w].inserted += 1;
                } else {
                    counts[w].updated += 1;
                }
            }
        }
    }
    for (c, r) in counts.iter_mut().zip(received) {
        c.unchanged = r.saturating_sub(c.inserted + c.updated);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn row(id: &str, sync_token: &str, json: &str) -> qbo::Row {
        qbo::Row {
            id: id.to_owned(),
            sync_token: sync_token.to_owned(),
            raw: RawValue::from_string(json.to_owned()).expect("valid json"),
            created: None,
            updated: None,
        }
    }

    #[test]
    fn duplicates_keep_the_later_row_unless_older() {
        let rows = [
            row("1", "3", r#"{"v":"a"}"#),
            row("2", "0", r#"{"v":"b"}"#),
            row("1", "4", r#"{"v":"c"}"#),
            row("2", "x", r#"{"v":"d"}"#),
            row("1", "2", r#"{"v":"e"}"#),
        ];
        let prepared = prepare(&rows);
        let got: Vec<(&str, &str)> = prepared
            .iter()
            .map(|p| (p.id, p.payload.as_ref()))
            .collect();
        assert_eq!(got, [("1", r#"{"v":"c"}"#), ("2", r#"{"v":"d"}"#)]);
    }

    #[test]
    fn only_what_jsonb_refuses_is_replaced() {
        for (raw, stored) in [
            (r#"{"a":"plain é"}"#, r#"{"a":"plain é"}"#),
            (r#"{"a":"x\u0000y"}"#, r#"{"a":"x\ufffdy"}"#),
            (
                r#"{"a":"\ud800","b":"\udc00z"}"#,
                r#"{"a":"\ufffd","b":"\ufffdz"}"#,
            ),
            (
                r#"{"a":"\ud83d\ude00 \u00e9"}"#,
                r#"{"a":"\ud83d\ude00 \u00e9"}"#,
            ),
            (r#"{"a":"\\u0000 is text"}"#, r#"{"a":"\\u0000 is text"}"#),
            (r#"{"a":"\"\u0000\\"}"#, r#"{"a":"\"\ufffd\\"}"#),
            (r#"{"a":"\ud800\u0041"}"#, r#"{"a":"\ufffd\u0041"}"#),
        ] {
            assert_eq!(jsonb_safe(raw), stored, "{raw}");
        }
        assert!(matches!(jsonb_safe(r#"{"a":"\u00e9"}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn entity_tables_round_trip() {
        for t in RawTable::all() {
            assert_eq!(RawTable::for_entity(t.entity()), Some(t));
            assert!(t.probe_sql().contains(t.qualified_name()));
            assert!(t.write_sql().contains(t.qualified_name()));
            assert!(t.mark_deleted_sql().contains(t.qualified_name()));
            let write = t.write_sql();
            let versions = format!("INSERT INTO {}_versions (", t.qualified_name());
            assert!(
                t.archive_sql().contains(&versions)
                    && t.archive_sql().contains("FOR UPDATE OF t")
                    && t.archive_sql().contains(t.qualified_name())
            );
            assert!(write.contains("s.updated, $12::uuid") && write.contains("run_id ="));
            for fragment in [WRITE_ROWS, WRITE_WINDOW, WRITE_RESULT] {
                assert_eq!(write.matches(fragment).count(), 1, "{fragment}");
            }
            // Every replacement took effect, and the version's columns are still written.
            let spread = t.write_spread_sql();
            for fragment in [WRITE_ROWS, WRITE_WINDOW, WRITE_RESULT] {
                assert!(!spread.contains(fragment), "{fragment}");
            }
            assert!(
                spread.contains("s.ws, s.we") && spread.ends_with("SELECT w.id, w.inserted FROM w")
            );
            assert!(
                spread.contains("AS s(id, payload, payload_hash, sync_token, updated, ws, we)")
            );
            assert!(spread.contains("s.updated, $12::uuid"));
            assert_eq!(
                t.qualified_history_name(),
                format!("{}_history", t.qualified_name())
            );
        }
        assert_eq!(
            RawTable::for_entity(qbo::Entity::Vendor).map(RawTable::qualified_name),
            Some("raw.qb_vendors")
        );
    }

    #[test]
    fn counts_add_up() {
        let mut a = UpsertCounts {
            inserted: 1,
            updated: 2,
            unchanged: 3,
        };
        a += UpsertCounts {
            inserted: 10,
            updated: 20,
            unchanged: 30,
        };
        assert_eq!(
            a,
            UpsertCounts {
                inserted: 11,
                updated: 22,
                unchanged: 33
            }
        );
        assert_eq!(a.total(), 66);
    }
}
