//! What the dashboard reads of each company's copy: rows per raw table (live and marked
//! deleted), the last successful backfill and sync of each entity and the newest run's status,
//! and where each sync cursor stands. Three queries, whatever the number of entities.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::{PgPool, Row as _};

use crate::domain::catalog::ENTITIES;
use crate::store::PgTimestamp;

/// Rows of one raw table for one company.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableRows {
    /// Rows not marked deleted.
    pub live: i64,
    /// Rows marked deleted (by a sync's change data capture or a verification).
    pub deleted: i64,
}

/// The runs of one pipeline for one company, as far as the dashboard needs them.
#[derive(Debug, Clone, Default)]
pub struct PipelineRuns {
    /// When its newest successful run finished.
    pub last_succeeded: Option<Timestamp>,
    /// The status of its newest run.
    pub latest_status: Option<String>,
    /// Its newest run.
    pub latest_id: Option<uuid::Uuid>,
}

/// Rows per (company, raw table name): one scan of each raw table.
///
/// # Errors
/// Database errors.
pub async fn table_rows(
    pool: &PgPool,
) -> Result<HashMap<(String, String), TableRows>, sqlx::Error> {
    // Table names come from the catalog, never from input.
    let sql = ENTITIES
        .iter()
        .map(|e| {
            format!(
                "SELECT '{}'::text AS t, realm_id, \
                        count(*) FILTER (WHERE deleted_at_utc IS NULL) AS live, \
                        count(*) FILTER (WHERE deleted_at_utc IS NOT NULL) AS deleted \
                 FROM {} GROUP BY realm_id",
                e.table, e.table
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut out = HashMap::new();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
    {
        out.insert(
            (row.try_get("realm_id")?, row.try_get("t")?),
            TableRows {
                live: row.try_get("live")?,
                deleted: row.try_get("deleted")?,
            },
        );
    }
    Ok(out)
}

/// Per (company, pipeline) among `pipelines`: the newest success and the newest run.
///
/// # Errors
/// Database errors.
pub async fn pipeline_runs(
    pool: &PgPool,
    pipelines: &[&str],
) -> Result<HashMap<(String, String), PipelineRuns>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (realm_id, pipeline) realm_id, pipeline, id, status, \
                max(finished_at) FILTER (WHERE status = 'succeeded') \
                  OVER (PARTITION BY realm_id, pipeline) AS last_succeeded \
         FROM ops.runs WHERE pipeline = ANY($1::text[]) \
         ORDER BY realm_id, pipeline, created_at DESC, id DESC",
    )
    .bind(pipelines)
    .fetch_all(pool)
    .await?;
    let mut out = HashMap::new();
    for row in rows {
        let last: Option<PgTimestamp> = row.try_get("last_succeeded")?;
        out.insert(
            (row.try_get("realm_id")?, row.try_get("pipeline")?),
            PipelineRuns {
                last_succeeded: last.map(|t| t.0),
                latest_status: Some(row.try_get("status")?),
                latest_id: Some(row.try_get("id")?),
            },
        );
    }
    Ok(out)
}

/// Every sync cursor: per (company, QuickBooks entity name), synced through when.
///
/// # Errors
/// Database errors.
pub async fn cursors(pool: &PgPool) -> Result<HashMap<(String, String), Timestamp>, sqlx::Error> {
    let rows: Vec<(String, String, PgTimestamp)> =
        sqlx::query_as("SELECT realm_id, entity, synced_through FROM ops.sync_cursors")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(realm, entity, at)| ((realm, entity), at.0))
        .collect())
}
