//! The figures `/metrics` shows, read from PostgreSQL at scrape time so they cover every worker
//! process of the deployment, not just the one answering.

use sqlx::PgPool;

/// QuickBooks request counters of one company.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CompanyRequests {
    /// Company.
    pub realm_id: String,
    /// Requests sent.
    pub requests: i64,
    /// Requests re-sent.
    pub retries: i64,
    /// Throttled answers.
    pub throttled: i64,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Windows by pipeline and status.
    pub windows: Vec<(String, String, i64)>,
    /// Rows inserted, updated, unchanged.
    pub rows: (i64, i64, i64),
    /// Requests by company (counted when an execution ends).
    pub requests: Vec<CompanyRequests>,
    /// Token refreshes by company.
    pub refreshes: Vec<(String, i64)>,
    /// Runs queued.
    pub queue_depth: i64,
    /// Workers with a heartbeat in the last minute.
    pub live_workers: i64,
    /// Per company: requests counted in the rolling minute, and in flight, of the shared budget.
    pub budget: Vec<(String, i64, i64)>,
    /// Per company: requests this calendar month (UTC).
    pub month_requests: Vec<(String, i64)>,
    /// The monthly request allowance per company (filled in by the caller from its setting).
    pub monthly_allowance: i64,
    /// QuickBooks webhooks: events, rejected deliveries, syncs, lag.
    pub webhooks: crate::store::webhooks::WebhookFigures,
}

/// Reads the snapshot.
///
/// # Errors
/// Database errors.
pub async fn snapshot(pool: &PgPool) -> Result<Snapshot, sqlx::Error> {
    Ok(Snapshot {
        runs: sqlx::query_as("SELECT status, count(*) FROM ops.runs GROUP BY status")
            .fetch_all(pool)
            .await?,
        windows: sqlx::query_as(
            "SELECT pipeline, status, count(*) FROM ops.windows GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await?,
        // The runs' kept window sums (migration 0020): one row a run, not one a window.
        rows: sqlx::query_as(
            "SELECT coalesce(sum(w_inserted), 0)::bigint, coalesce(sum(w_updated), 0)::bigint, \
                    coalesce(sum(w_unchanged), 0)::bigint FROM ops.runs",
        )
        .fetch_one(pool)
        .await?,
        requests: sqlx::query_as(
            "SELECT realm_id, coalesce(sum(requests), 0)::bigint AS requests, \
                    coalesce(sum(retries), 0)::bigint AS retries, \
                    coalesce(sum(throttled), 0)::bigint AS throttled \
             FROM ops.runs GROUP BY realm_id ORDER BY realm_id",
        )
        .fetch_all(pool)
        .await?,
        refreshes: sqlx::query_as(
            "SELECT realm_id, refresh_count FROM ops.oauth_tokens ORDER BY realm_id",
        )
        .fetch_all(pool)
        .await?,
        month_requests: crate::store::infra::allowance::this_month(pool)
            .await?
            .into_iter()
            .map(|m| (m.realm_id, m.requests))
            .collect(),
        monthly_allowance: 0,
        queue_depth: crate::store::runs::queue::depth(pool).await?,
        live_workers: crate::store::runs::workers::live_count(pool, 60.0).await?,
        budget: sqlx::query_as(
            "SELECT realm_id, \
                    count(*) FILTER (WHERE ends_at > now() - interval '60.5 seconds'), \
                    count(*) FILTER (WHERE completed_at IS NULL AND expires_at > now()) \
             FROM ops.budget_slots GROUP BY realm_id ORDER BY realm_id",
        )
        .fetch_all(pool)
        .await?,
        webhooks: crate::store::webhooks::figures(pool).await?,
    })
}
