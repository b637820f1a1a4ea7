//! Requests per company and calendar month (UTC) in `ops.request_months`, counted as budget
//! slots are released (migration `0017_request_months.sql`), and the one warning per month.

use sqlx::PgPool;

/// One company's requests this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRequests {
    /// The company.
    pub realm_id: String,
    /// The month (`2026-12`).
    pub month: String,
    /// Requests counted so far.
    pub requests: i64,
    /// Whether the 80 % warning was given.
    pub warned: bool,
}

/// The current UTC month's requests of every company that sent one.
///
/// # Errors
/// Database errors.
pub async fn this_month(pool: &PgPool) -> Result<Vec<MonthRequests>, sqlx::Error> {
    let rows: Vec<(String, String, i64, bool)> = sqlx::query_as(
        "SELECT realm_id, to_char(month, 'YYYY-MM'), requests, warned_at IS NOT NULL \
         FROM ops.request_months \
         WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date ORDER BY realm_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(realm_id, month, requests, warned)| MonthRequests {
            realm_id,
            month,
            requests,
            warned,
        })
        .collect())
}

/// Records that the warning of `realm_id`'s current month was given; `false` when another
/// process gave it first.
///
/// # Errors
/// Database errors.
pub async fn mark_warned(pool: &PgPool, realm_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE ops.request_months SET warned_at = now() \
         WHERE realm_id = $1 AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date \
           AND warned_at IS NULL",
    )
    .bind(realm_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
