//! Requests per company and calendar month (UTC): the budget slots still in `ops.budget_slots`
//! plus those pruned from it into `ops.request_months` (migration `0017_request_months.sql`),
//! and the one warning per month.

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
        "WITH cur AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date AS month) \
         SELECT realm_id, to_char((SELECT month FROM cur), 'YYYY-MM'), \
                sum(n)::int8, bool_or(warned) \
         FROM (SELECT realm_id, requests AS n, warned_at IS NOT NULL AS warned \
               FROM ops.request_months WHERE month = (SELECT month FROM cur) \
               UNION ALL \
               SELECT realm_id, count(*), false FROM ops.budget_slots \
               WHERE started_at >= (SELECT month FROM cur)::timestamp AT TIME ZONE 'UTC' \
               GROUP BY realm_id) counted \
         GROUP BY realm_id ORDER BY realm_id",
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
        "INSERT INTO ops.request_months AS m (realm_id, month, warned_at) \
         VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, now()) \
         ON CONFLICT (realm_id, month) DO UPDATE SET warned_at = now() \
         WHERE m.warned_at IS NULL",
    )
    .bind(realm_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
