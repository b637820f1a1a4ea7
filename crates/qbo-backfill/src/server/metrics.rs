//! `GET /metrics`: Prometheus text, read from PostgreSQL at scrape time so every figure covers
//! the whole deployment (every worker process), not just this one.

use std::fmt::Write as _;

use sqlx::PgPool;

/// Renders the metrics.
///
/// # Errors
/// Database errors.
pub(crate) async fn render(pool: &PgPool) -> Result<String, sqlx::Error> {
    let mut out = String::with_capacity(4096);
    let runs: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM ops.runs GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?;
    family(&mut out, "qbo_backfill_runs", "gauge", "Runs by status.");
    for status in crate::store::runs::RunStatus::ALL {
        let n = runs
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "qbo_backfill_runs{{status=\"{status}\"}} {n}");
    }
    let windows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT pipeline, status, count(*) FROM ops.windows GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    family(
        &mut out,
        "qbo_backfill_windows",
        "gauge",
        "Daily windows by pipeline and status (latest truth per window).",
    );
    for (pipeline, status, n) in windows {
        let _ = writeln!(
            out,
            "qbo_backfill_windows{{pipeline=\"{pipeline}\",status=\"{status}\"}} {n}"
        );
    }
    let rows: (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(inserted), 0)::bigint, coalesce(sum(updated), 0)::bigint, \
                coalesce(sum(unchanged), 0)::bigint FROM ops.run_windows",
    )
    .fetch_one(pool)
    .await?;
    family(
        &mut out,
        "qbo_backfill_rows_total",
        "counter",
        "Rows written to raw by outcome.",
    );
    for (outcome, n) in [
        ("inserted", rows.0),
        ("updated", rows.1),
        ("unchanged", rows.2),
    ] {
        let _ = writeln!(out, "qbo_backfill_rows_total{{outcome=\"{outcome}\"}} {n}");
    }
    let requests: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT realm_id, coalesce(sum(requests), 0)::bigint, coalesce(sum(retries), 0)::bigint, \
                coalesce(sum(throttled), 0)::bigint, coalesce(sum(refreshes), 0)::bigint \
         FROM ops.runs GROUP BY realm_id ORDER BY realm_id",
    )
    .fetch_all(pool)
    .await?;
    family(
        &mut out,
        "qbo_backfill_qbo_requests_total",
        "counter",
        "QuickBooks requests by company and outcome (counted when a run's execution ends).",
    );
    for (realm, total, retries, throttled, _) in &requests {
        let ok = total - retries;
        let _ = writeln!(
            out,
            "qbo_backfill_qbo_requests_total{{realm_id=\"{realm}\",outcome=\"answered\"}} {ok}"
        );
        let _ = writeln!(
            out,
            "qbo_backfill_qbo_requests_total{{realm_id=\"{realm}\",outcome=\"retried\"}} {retries}"
        );
        let _ = writeln!(
            out,
            "qbo_backfill_qbo_requests_total{{realm_id=\"{realm}\",outcome=\"throttled\"}} {throttled}"
        );
    }
    family(
        &mut out,
        "qbo_backfill_throttled_waits_total",
        "counter",
        "429 answers waited out, by company.",
    );
    for (realm, _, _, throttled, _) in &requests {
        let _ = writeln!(
            out,
            "qbo_backfill_throttled_waits_total{{realm_id=\"{realm}\"}} {throttled}"
        );
    }
    let refreshes: Vec<(String, i64)> =
        sqlx::query_as("SELECT realm_id, refresh_count FROM ops.oauth_tokens ORDER BY realm_id")
            .fetch_all(pool)
            .await?;
    family(
        &mut out,
        "qbo_backfill_token_refreshes_total",
        "counter",
        "OAuth token refreshes committed, by company.",
    );
    for (realm, n) in refreshes {
        let _ = writeln!(
            out,
            "qbo_backfill_token_refreshes_total{{realm_id=\"{realm}\"}} {n}"
        );
    }
    let depth = crate::store::queue::depth(pool).await?;
    family(
        &mut out,
        "qbo_backfill_queue_depth",
        "gauge",
        "Runs waiting for a worker.",
    );
    let _ = writeln!(out, "qbo_backfill_queue_depth {depth}");
    let live = crate::store::workers::live_count(pool, 60.0).await?;
    family(
        &mut out,
        "qbo_backfill_workers",
        "gauge",
        "Worker processes with a heartbeat in the last minute.",
    );
    let _ = writeln!(out, "qbo_backfill_workers {live}");
    Ok(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
