//! The storage side of a verification (`qb_<plural>_verify`): the live rows of `raw` created in
//! each month (one grouped query for every month of a run), marking deleted the live rows of a
//! month that QuickBooks no longer returns (fenced by the month's claim, and never a row written
//! after the month's paging started), the per-month results in `ops.verify_months`, and what the
//! verify page shows.
//!
//! A row's month is the UTC month of its payload's `MetaData.CreateTime`, read with
//! `ops.qbo_time` (migration 0010), which gives `NULL` rather than an error for a malformed time.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use crate::domain::pipeline::{Pipeline, Window};
use crate::store::raw::{RawTable, mark_deleted};
use crate::store::runs::{Execution, to_i64};
use crate::store::{PgDate, PgTimestamp, StoreError};

/// How a month of a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonthStatus {
    /// QuickBooks' count and the live raw rows agreed at once.
    Agreed,
    /// They differed; the month was repaired and now agrees.
    Drifted,
    /// The month could not be verified (a QuickBooks or database error, or the counts still
    /// differ after the repair).
    Failed,
}

impl MonthStatus {
    /// The stored name (`agreed`, `drifted`, `failed`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agreed => "agreed",
            Self::Drifted => "drifted",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for MonthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The expression of a raw row's creation time (`t` is the raw table).
const CREATED: &str = "ops.qbo_time(t.payload -> 'MetaData' ->> 'CreateTime')";

/// The UTC days live rows of `table` for `realm_id` were created on, as a range `verify` reads
/// (`[first day, the day after the last)`); `None` without rows. Reads every row's creation
/// time (about 3 µs a row).
///
/// # Errors
/// Database errors.
pub async fn created_days(
    pool: &PgPool,
    table: RawTable,
    realm_id: &str,
) -> Result<Option<(jiff::civil::Date, jiff::civil::Date)>, sqlx::Error> {
    let span: Option<(PgDate, PgDate)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT min(c.created AT TIME ZONE 'UTC')::date, max(c.created AT TIME ZONE 'UTC')::date + 1 \
         FROM (SELECT {CREATED} AS created FROM {table} AS t \
               WHERE t.realm_id = $1 AND t.deleted_at_utc IS NULL OFFSET 0) AS c \
         HAVING count(c.created) > 0",
        table = table.qualified_name()
    )))
    .bind(realm_id)
    .fetch_optional(pool)
    .await?;
    Ok(span.map(|(first, after)| (first.0, after.0)))
}

/// A month's live rows in a raw table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthRows {
    /// How many.
    pub live: u64,
    /// The newest `MetaData.LastUpdatedTime` among them: QuickBooks holding a row of the month
    /// changed after it means the copy missed a change.
    pub newest_change: Option<Timestamp>,
}

/// The last-update time of a row as QuickBooks sent it.
const LAST_UPDATED: &str = "ops.qbo_time(t.payload -> 'MetaData' ->> 'LastUpdatedTime')";

/// Live rows of `table` for `realm_id` created in each of `windows` (at most one window per
/// calendar month, as a verification's are), with the newest change among them, in one grouped
/// query over their whole span. Every window has an entry (no row: 0 and no change). The
/// creation and update times are read once per row (`OFFSET 0` keeps the planner from
/// evaluating them in each condition): a few µs a row, so a company's million invoices take
/// seconds.
///
/// # Errors
/// Database errors.
pub async fn live_counts(
    pool: &PgPool,
    table: RawTable,
    realm_id: &str,
    windows: &[Window],
) -> Result<HashMap<Timestamp, MonthRows>, sqlx::Error> {
    let mut out: HashMap<Timestamp, MonthRows> = windows
        .iter()
        .map(|w| (w.start, MonthRows::default()))
        .collect();
    let (Some(first), Some(last)) = (
        windows.iter().map(|w| w.start).min(),
        windows.iter().map(|w| w.end).max(),
    ) else {
        return Ok(out);
    };
    let rows: Vec<(String, i64, Option<PgTimestamp>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT to_char(c.created AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(*), \
               max(c.updated) \
             FROM (SELECT {CREATED} AS created, {LAST_UPDATED} AS updated FROM {table} AS t \
                   WHERE t.realm_id = $1 AND t.deleted_at_utc IS NULL OFFSET 0) AS c \
             WHERE c.created >= $2 AND c.created < $3 \
             GROUP BY 1",
            table = table.qualified_name()
        )))
        .bind(realm_id)
        .bind(PgTimestamp(first))
        .bind(PgTimestamp(last))
        .fetch_all(pool)
        .await?;
    let by_month: HashMap<String, MonthRows> = rows
        .into_iter()
        .map(|(month, n, newest)| {
            let rows = MonthRows {
                live: u64::try_from(n).unwrap_or(0),
                newest_change: newest.map(|t| t.0),
            };
            (month, rows)
        })
        .collect();
    for window in windows {
        let month = window.day.strftime("%Y-%m").to_string();
        if let Some(rows) = by_month.get(&month) {
            out.insert(window.start, *rows);
        }
    }
    Ok(out)
}

/// Live rows of `table` for `realm_id` created in `window`, with the newest change among them.
///
/// # Errors
/// Database errors.
pub async fn live_rows(
    pool: &PgPool,
    table: RawTable,
    realm_id: &str,
    window: &Window,
) -> Result<MonthRows, sqlx::Error> {
    let counts = live_counts(pool, table, realm_id, std::slice::from_ref(window)).await?;
    Ok(counts.get(&window.start).copied().unwrap_or_default())
}

/// The database's clock now: what `ingested_at_utc` of a row written from now on is at least.
///
/// # Errors
/// Database errors.
pub async fn database_now(pool: &PgPool) -> Result<Timestamp, sqlx::Error> {
    let now: PgTimestamp = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    Ok(now.0)
}

/// Why marking a month's missing rows failed.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// A query failed.
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    /// Marking failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Marks deleted, at `deleted_at`, the live rows of `table` created in `window` whose id is not
/// in `returned` (every id QuickBooks returned for the month) and that were written before
/// `paged_from` (so a row a concurrent run loaded meanwhile is never marked), in one transaction
/// that holds only while this execution still holds the month's claim. Returns the rows marked,
/// or `None` when the claim was lost (nothing is marked then).
///
/// # Errors
/// Database errors (nothing is marked).
#[allow(clippy::too_many_arguments)]
pub async fn mark_missing(
    pool: &PgPool,
    exec: &Execution,
    pipeline: Pipeline,
    realm_id: &str,
    window: &Window,
    returned: &HashSet<String>,
    paged_from: Timestamp,
    deleted_at: Timestamp,
) -> Result<Option<u64>, MarkError> {
    let table = pipeline.table();
    let returned: Vec<&str> = returned.iter().map(String::as_str).collect();
    let mut tx = pool.begin().await?;
    // Locks the rows to mark, so that a concurrent write of one of them (which would move its
    // `ingested_at_utc`) waits for this transaction or is seen by it.
    let missing: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT t.id FROM {table} AS t \
         WHERE t.realm_id = $1 AND t.deleted_at_utc IS NULL AND t.ingested_at_utc < $4 \
           AND {CREATED} >= $2 AND {CREATED} < $3 \
           AND NOT EXISTS (SELECT 1 FROM unnest($5::text[]) AS r(id) WHERE r.id = t.id) \
         ORDER BY t.id FOR UPDATE OF t",
        table = table.qualified_name()
    )))
    .bind(realm_id)
    .bind(PgTimestamp(window.start))
    .bind(PgTimestamp(window.end))
    .bind(PgTimestamp(paged_from))
    .bind(&returned)
    .fetch_all(&mut *tx)
    .await?;
    let deleted: Vec<(String, Timestamp)> =
        missing.into_iter().map(|id| (id, deleted_at)).collect();
    let marked = mark_deleted(
        &mut tx,
        table,
        realm_id,
        &deleted,
        crate::store::raw::DeletionSource::Verify,
    )
    .await?;
    // Locked after the raw rows, in the order a page write locks them.
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM ops.windows WHERE pipeline = $1 AND realm_id = $2 \
           AND window_start = $3 AND execution_id = $4 AND status = 'running' FOR UPDATE",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(PgTimestamp(window.start))
    .bind(exec.execution_id)
    .fetch_optional(&mut *tx)
    .await?;
    if held.is_none() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(marked))
}

/// How many of `ids` are marked deleted in `table` (rows QuickBooks returns but `raw` holds as
/// deleted: a repair that re-sends an unchanged payload does not un-delete them).
///
/// # Errors
/// Database errors.
pub async fn deleted_among(
    pool: &PgPool,
    table: RawTable,
    realm_id: &str,
    ids: &HashSet<String>,
) -> Result<u64, sqlx::Error> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} AS t \
         WHERE t.realm_id = $1 AND t.id = ANY($2::text[]) AND t.deleted_at_utc IS NOT NULL",
        table = table.qualified_name()
    )))
    .bind(realm_id)
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One month's result, as stored in `ops.verify_months`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRecord {
    /// The month (clipped to the run's range).
    pub window: Window,
    /// QuickBooks' `COUNT(*)` before any repair.
    pub qbo_count: Option<u64>,
    /// Live raw rows before any repair.
    pub raw_count: Option<u64>,
    /// QuickBooks' `COUNT(*)` after the repair.
    pub qbo_count_after: Option<u64>,
    /// Live raw rows after the repair.
    pub raw_count_after: Option<u64>,
    /// How it ended.
    pub status: MonthStatus,
    /// Rows inserted by the repair.
    pub loaded: u64,
    /// Live rows marked deleted by the repair.
    pub marked_deleted: u64,
    /// QuickBooks requests it cost.
    pub requests: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Stores a month's result for `run_id` (a month verified again by a later execution of the
/// same run replaces it).
///
/// # Errors
/// Database errors.
pub async fn record_month(
    pool: &PgPool,
    run_id: Uuid,
    realm_id: &str,
    entity: &str,
    month: &MonthRecord,
) -> Result<(), sqlx::Error> {
    let opt = |v: Option<u64>| v.map(to_i64);
    sqlx::query(
        "INSERT INTO ops.verify_months (run_id, realm_id, entity, month_start, month_end, \
           qbo_count, raw_count, qbo_count_after, raw_count_after, status, loaded, \
           marked_deleted, requests, error, verified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now()) \
         ON CONFLICT (run_id, month_start) DO UPDATE SET month_end = EXCLUDED.month_end, \
           qbo_count = EXCLUDED.qbo_count, raw_count = EXCLUDED.raw_count, \
           qbo_count_after = EXCLUDED.qbo_count_after, \
           raw_count_after = EXCLUDED.raw_count_after, status = EXCLUDED.status, \
           loaded = EXCLUDED.loaded, marked_deleted = EXCLUDED.marked_deleted, \
           requests = EXCLUDED.requests, error = EXCLUDED.error, verified_at = now()",
    )
    .bind(run_id)
    .bind(realm_id)
    .bind(entity)
    .bind(PgTimestamp(month.window.start))
    .bind(PgTimestamp(month.window.end))
    .bind(opt(month.qbo_count))
    .bind(opt(month.raw_count))
    .bind(opt(month.qbo_count_after))
    .bind(opt(month.raw_count_after))
    .bind(month.status.as_str())
    .bind(to_i64(month.loaded))
    .bind(to_i64(month.marked_deleted))
    .bind(to_i64(month.requests))
    .bind(month.error.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest verification of one entity for one company, as the verify page lists it.
#[derive(Debug, Clone)]
pub struct EntityVerification {
    /// The entity's catalog plural.
    pub entity: &'static str,
    /// The company.
    pub realm_id: String,
    /// When a month of it was last verified (any run).
    pub last_verified_at: Option<Timestamp>,
    /// Its latest verify run, if any.
    pub latest: Option<LatestVerify>,
}

/// The latest verify run of an entity and what its months found.
#[derive(Debug, Clone)]
pub struct LatestVerify {
    /// The run.
    pub run_id: Uuid,
    /// Its status (`queued`, `running`, `succeeded`, …).
    pub status: String,
    /// Its range.
    pub fecha_inicio: String,
    /// First day not verified.
    pub fecha_fin: String,
    /// When it was queued.
    pub created_at: Option<Timestamp>,
    /// Months in the run.
    pub months: i64,
    /// Months that agreed.
    pub agreed: i64,
    /// Months that differed and were repaired.
    pub drifted: i64,
    /// Months that could not be verified.
    pub failed: i64,
    /// Rows loaded by its repairs.
    pub loaded: i64,
    /// Rows marked deleted by its repairs.
    pub marked_deleted: i64,
}

/// Per company (each of `realms`) and entity of the catalog, in catalog order: the latest verify
/// run and what its months found, and when the entity was last verified. Two queries.
///
/// # Errors
/// Database errors.
pub async fn latest_by_entity(
    pool: &PgPool,
    realms: &[String],
) -> Result<Vec<EntityVerification>, sqlx::Error> {
    let names: Vec<&str> = Pipeline::every(crate::domain::pipeline::Mode::Verify)
        .map(Pipeline::name)
        .collect();
    let latest = sqlx::query(
        "WITH latest AS ( \
           SELECT DISTINCT ON (r.pipeline, r.realm_id) r.id, r.pipeline, r.realm_id, r.status, \
                  r.fecha_inicio, r.fecha_fin, r.created_at, r.windows_total \
           FROM ops.runs r WHERE r.pipeline = ANY($1::text[]) \
           ORDER BY r.pipeline, r.realm_id, r.created_at DESC, r.id DESC) \
         SELECT l.id, l.pipeline, l.realm_id, l.status, l.fecha_inicio, l.fecha_fin, \
                l.created_at, l.windows_total::int8 AS months, \
                count(m.run_id) FILTER (WHERE m.status = 'agreed') AS agreed, \
                count(m.run_id) FILTER (WHERE m.status = 'drifted') AS drifted, \
                count(m.run_id) FILTER (WHERE m.status = 'failed') AS failed, \
                coalesce(sum(m.loaded), 0)::int8 AS loaded, \
                coalesce(sum(m.marked_deleted), 0)::int8 AS marked_deleted \
         FROM latest l LEFT JOIN ops.verify_months m ON m.run_id = l.id \
         GROUP BY l.id, l.pipeline, l.realm_id, l.status, l.fecha_inicio, l.fecha_fin, \
                  l.created_at, l.windows_total",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let mut runs: HashMap<(String, String), LatestVerify> = HashMap::new();
    for row in latest {
        let pipeline: String = row.try_get("pipeline")?;
        let realm_id: String = row.try_get("realm_id")?;
        let inicio: PgDate = row.try_get("fecha_inicio")?;
        let fin: PgDate = row.try_get("fecha_fin")?;
        let created: Option<PgTimestamp> = row.try_get("created_at")?;
        runs.insert(
            (pipeline, realm_id),
            LatestVerify {
                run_id: row.try_get("id")?,
                status: row.try_get("status")?,
                fecha_inicio: inicio.0.to_string(),
                fecha_fin: fin.0.to_string(),
                created_at: created.map(|t| t.0),
                months: row.try_get("months")?,
                agreed: row.try_get("agreed")?,
                drifted: row.try_get("drifted")?,
                failed: row.try_get("failed")?,
                loaded: row.try_get("loaded")?,
                marked_deleted: row.try_get("marked_deleted")?,
            },
        );
    }
    let last: Vec<(String, String, PgTimestamp)> = sqlx::query_as(
        "SELECT realm_id, entity, max(verified_at) FROM ops.verify_months GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let last: HashMap<(String, String), Timestamp> = last
        .into_iter()
        .map(|(realm, entity, at)| ((realm, entity), at.0))
        .collect();
    let mut out = Vec::new();
    for realm_id in realms {
        for pipeline in Pipeline::every(crate::domain::pipeline::Mode::Verify) {
            let entity = pipeline.spec().plural;
            out.push(EntityVerification {
                entity,
                realm_id: realm_id.clone(),
                last_verified_at: last.get(&(realm_id.clone(), entity.to_owned())).copied(),
                latest: runs
                    .get(&(pipeline.name().to_owned(), realm_id.clone()))
                    .cloned(),
            });
        }
    }
    Ok(out)
}
