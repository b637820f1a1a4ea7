//! `run PIPELINE [--fecha-inicio D1 --fecha-fin D2]`: one load in this process.

use jiff::civil::Date;

use crate::cli::setup::{Session, asked_run};
use crate::cli::{CliError, bad, fail};
use crate::pipeline::{DateRange, Mode, Pipeline, SinceError, range_or_since_cursor};
use crate::settings::ClientTuning;

/// Loads `pipeline` over the dates given, or, for an incremental pipeline without dates, from
/// its cursor; returns the exit status. Bad input writes nothing, not even the database.
pub(crate) async fn run(
    pipeline: Pipeline,
    fecha_inicio: Option<Date>,
    fecha_fin: Option<Date>,
    tuning: &ClientTuning,
) -> Result<u8, CliError> {
    let dates = match (fecha_inicio, fecha_fin) {
        (Some(inicio), Some(fin)) => Some(DateRange::new(inicio, fin).map_err(bad)?),
        (None, None) if pipeline.mode() == Mode::Incremental => None,
        (None, None) => return Err(bad(SinceError::DatesRequired(pipeline))),
        _ => return Err(bad(SinceError::OneDate)),
    };
    let (session, settings) = Session::for_local_run(tuning).await?;
    let range = range_or_since_cursor(
        &session.pool,
        &settings.realm_id,
        pipeline,
        dates,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        SinceError::Database(e) => fail(e),
        other => bad(other),
    })?;
    let windows = pipeline.windows(&range).map_err(bad)?;
    let run = asked_run(pipeline, &settings.realm_id, range, windows);
    session.run_in_terminal(tuning, run).await
}
