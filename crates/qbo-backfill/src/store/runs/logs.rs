//! A run's stored log (`ops.run_logs`): the contract's lines, warnings and errors of every
//! execution, in order, readable while the run goes on (`after` a line number).

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::PgTimestamp;

/// One stored line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogLine {
    /// Its number: increasing, usable as `after`.
    pub n: i64,
    /// When it was written.
    pub at: PgTimestamp,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// The text.
    pub text: String,
}

/// Appends lines to a run's log, each with when it happened (`ats`, one per line; the log is
/// written in batches, later than its lines happen).
///
/// # Errors
/// Database errors.
pub async fn append(
    pool: &PgPool,
    run_id: Uuid,
    levels: &[&str],
    texts: &[String],
    ats: &[PgTimestamp],
) -> Result<(), sqlx::Error> {
    if texts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO ops.run_logs (run_id, level, text, at) \
         SELECT $1, l, t, a FROM unnest($2::text[], $3::text[], $4::timestamptz[]) \
           WITH ORDINALITY AS x(l, t, a, i) \
         ORDER BY i",
    )
    .bind(run_id)
    .bind(levels)
    .bind(texts)
    .bind(ats)
    .execute(pool)
    .await?;
    Ok(())
}

/// Up to `limit` lines of a run's log after line `after`, in order.
///
/// # Errors
/// Database errors.
pub async fn read(
    pool: &PgPool,
    run_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<LogLine>, sqlx::Error> {
    sqlx::query_as::<_, LogLine>(
        "SELECT id AS n, at, level, text FROM ops.run_logs \
         WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(run_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
