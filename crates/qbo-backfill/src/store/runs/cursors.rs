//! Incremental-sync cursors (`ops.sync_cursors`): per company and entity, the instant up to which
//! the last successful incremental sync loaded every change.

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::PgTimestamp;

/// Where the last successful sync of `entity` for `realm_id` ended, if there was one.
///
/// # Errors
/// A database error.
pub async fn get(
    pool: &PgPool,
    realm_id: &str,
    entity: qbo::Entity,
) -> Result<Option<jiff::Timestamp>, sqlx::Error> {
    let at: Option<PgTimestamp> = sqlx::query_scalar(
        "SELECT synced_through FROM ops.sync_cursors WHERE realm_id = $1 AND entity = $2",
    )
    .bind(realm_id)
    .bind(entity.qbo_name())
    .fetch_optional(pool)
    .await?;
    Ok(at.map(|t| t.0))
}

/// Moves the cursor of `entity` for `realm_id` to `through` (never backwards: a slower, older
/// run finishing late does not undo a newer one).
///
/// # Errors
/// A database error.
pub async fn advance(
    pool: &PgPool,
    realm_id: &str,
    entity: qbo::Entity,
    through: jiff::Timestamp,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ops.sync_cursors (realm_id, entity, synced_through, run_id) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (realm_id, entity) DO UPDATE \
         SET synced_through = EXCLUDED.synced_through, run_id = EXCLUDED.run_id, \
             updated_at = now() \
         WHERE ops.sync_cursors.synced_through < EXCLUDED.synced_through",
    )
    .bind(realm_id)
    .bind(entity.qbo_name())
    .bind(PgTimestamp(through))
    .bind(run_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Where the loaded history of `pipeline` (a backfill) for `realm_id` ends: the end of its
/// latest window loaded, if it has one.
///
/// # Errors
/// Database errors.
pub async fn history_ends(
    pool: &PgPool,
    realm_id: &str,
    pipeline: crate::domain::pipeline::Pipeline,
) -> Result<Option<jiff::Timestamp>, sqlx::Error> {
    let at: Option<PgTimestamp> = sqlx::query_scalar(
        "SELECT max(window_end) FROM ops.windows \
         WHERE pipeline = $1 AND realm_id = $2 AND status = 'succeeded'",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .fetch_one(pool)
    .await?;
    Ok(at.map(|t| t.0))
}
