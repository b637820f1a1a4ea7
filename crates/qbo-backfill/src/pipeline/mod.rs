//! The pipelines: their names and entities, planning UTC windows over a
//! `[fecha_inicio, fecha_fin)` range (daily for loads, calendar months for reconciliation),
//! running them (`runner` loads, `verify` reconciles), what happens as typed events (`events`)
//! and the operator-facing output (`report`).

pub mod events;
pub mod report;
pub mod report_load;
pub mod report_run;
pub mod runner;
pub mod verify;

use jiff::Timestamp;

pub use crate::domain::catalog;
pub(crate) use crate::domain::pipeline::echo;
pub use crate::domain::pipeline::{
    CURSOR_OVERLAP, DateRange, MAX_WINDOWS, Mode, Pipeline, RangeError, UnknownPipeline, Window,
    parse_date, range_since,
};

/// Why a run without dates has no range.
#[derive(Debug, thiserror::Error)]
pub enum SinceError {
    /// A backfill was given no dates.
    #[error(
        "{0} needs --fecha-inicio and --fecha-fin; only incremental pipelines (qb_<entity>_incremental) run without dates, from where their last sync ended"
    )]
    DatesRequired(Pipeline),
    /// Only one of the two dates was given.
    #[error(
        "give both --fecha-inicio and --fecha-fin, or neither (an incremental sync then continues from its cursor)"
    )]
    OneDate,
    /// No incremental sync of this entity has succeeded for this company yet.
    #[error(
        "{pipeline} has no cursor for company {realm_id} yet: run it once with --fecha-inicio and --fecha-fin (e.g. from the first day of your backfill to tomorrow); later runs without dates continue from where it ended"
    )]
    NoCursor {
        /// The pipeline.
        pipeline: Pipeline,
        /// The company.
        realm_id: String,
    },
    /// The cursor could not be read.
    #[error("cannot read the sync cursor from PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    /// The range from the cursor is not valid (a cursor decades old).
    #[error(transparent)]
    Range(#[from] RangeError),
}

/// The range of a run given `dates` (`fecha_inicio`, `fecha_fin`) or none: a backfill needs
/// both; an incremental sync without dates continues from its cursor ([`range_since`]).
///
/// # Errors
/// [`SinceError`]; the dates themselves are validated by the caller.
pub async fn range_or_since_cursor(
    pool: &sqlx::PgPool,
    realm_id: &str,
    pipeline: Pipeline,
    dates: Option<DateRange>,
    now: Timestamp,
) -> Result<DateRange, SinceError> {
    if let Some(range) = dates {
        return Ok(range);
    }
    if pipeline.mode() != Mode::Incremental {
        return Err(SinceError::DatesRequired(pipeline));
    }
    let cursor = crate::store::runs::cursors::get(pool, realm_id, pipeline.entity())
        .await?
        .ok_or_else(|| SinceError::NoCursor {
            pipeline,
            realm_id: realm_id.to_owned(),
        })?;
    Ok(range_since(cursor, now)?)
}
