//! `pipelines` and `runs`: what can run, and what ran.

use tracing::info;

use crate::cli::CliError;
use crate::cli::setup::connect;
use crate::pipeline::{Mode, Pipeline};
use crate::store::runs::{self, views};

/// `pipelines`: every pipeline with its entity (or report), raw table and what it windows by,
/// on stdout.
pub(crate) fn list_pipelines() {
    let mut out = String::from("pipeline\tentity\ttable\twindows by\n");
    for p in Pipeline::all() {
        let by = match p.mode() {
            Mode::Backfill => "MetaData.CreateTime",
            Mode::Incremental => "MetaData.LastUpdatedTime (+ deletions)",
            Mode::Verify => "MetaData.CreateTime, by month (reconciles raw)",
            Mode::Report => "report period, by month (QuickBooks' report)",
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{by}\n",
            p.name(),
            p.subject(),
            p.target_table()
        ));
    }
    print!("{out}");
}

/// `runs --limit N`: the newest runs, one line each; returns the exit status.
pub(crate) async fn list_runs(limit: i64) -> Result<u8, CliError> {
    let pool = connect().await?;
    // A run whose worker died is shown as given up, never as running.
    runs::reap_lost_runs(&pool)
        .await
        .map_err(anyhow::Error::from)?;
    let filter = views::RunFilter::default();
    let runs = views::list(&pool, &filter, limit.clamp(1, 10_000))
        .await
        .map_err(anyhow::Error::from)?;
    for run in runs {
        info!(
            "{} {} {} {}..{} status={} windows={} failed_windows={} rows={} inserted={} updated={} unchanged={} trigger={} created_at={}",
            run.id,
            run.pipeline,
            run.realm_id,
            run.fecha_inicio,
            run.fecha_fin,
            run.status,
            run.windows_total,
            run.windows_failed,
            run.rows,
            run.counts.inserted,
            run.counts.updated,
            run.counts.unchanged,
            run.trigger,
            run.created_at.as_deref().unwrap_or("-"),
        );
    }
    Ok(0)
}
