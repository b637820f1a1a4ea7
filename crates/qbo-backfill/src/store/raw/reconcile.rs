//! The Trial Balance QuickBooks answered (`raw.qb_reports` / `raw.qb_report_rows`) against the
//! one computed from `raw` (`raw.qb_trial_balance`, migration 0012), account by account.
//!
//! A month's Trial Balance is the stored `TrialBalance` answer of that basis, with one Total
//! column, whose period lies in the month and ends the latest: normally the whole month, as of
//! its last day (when it was read in pieces, the piece that ends on the last day; when only
//! part of the month was read, e.g. the current month, as of the last day read). Ours is
//! computed as of the same day. Lines are matched on the account id, or on the name for a line without
//! one (Retained Earnings of a company without that account).

use jiff::civil::Date;
use sqlx::PgPool;

use crate::domain::reconcile::{AccountComparison, ChangedTxn};
use crate::store::StoreError;

/// The stored Trial Balance of a month and basis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrialBalance {
    /// Its `period_start` (the month's first day, or later for a piece).
    pub period_start: Date,
    /// Its `period_end`: the day it is as of.
    pub period_end: Date,
    /// When it was read (RFC 3339 UTC).
    pub fetched_at: String,
}

/// RFC 3339 UTC text of a `timestamptz` expression, in SQL.
macro_rules! utc_text {
    ($e:literal) => {
        concat!(
            "to_char(",
            $e,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        )
    };
}

/// The bases of the Trial Balances stored for `realm_id` (`Accrual`, `Cash`), sorted.
///
/// # Errors
/// [`StoreError::Database`].
pub async fn trial_balance_bases(pool: &PgPool, realm_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT basis FROM raw.qb_reports \
         WHERE realm_id = $1 AND report = 'TrialBalance' AND basis <> '' ORDER BY 1",
    )
    .bind(realm_id)
    .fetch_all(pool)
    .await?)
}

/// The stored Trial Balance of `basis` for the month starting `month`: of those whose period
/// lies in the month, the one as of the latest day (the month's last, once the month is
/// read whole).
///
/// # Errors
/// [`StoreError::Database`].
pub async fn stored_trial_balance(
    pool: &PgPool,
    realm_id: &str,
    basis: &str,
    month: Date,
) -> Result<Option<StoredTrialBalance>, StoreError> {
    let row: Option<(String, String, String)> = sqlx::query_as(concat!(
        "SELECT period_start::text, period_end::text, ",
        utc_text!("fetched_at_utc"),
        " FROM raw.qb_reports \
         WHERE realm_id = $1 AND report = 'TrialBalance' AND basis = $2 \
           AND period_start >= $3::date AND period_end <= $4::date \
           AND summarize_column_by = '' \
         ORDER BY period_end DESC, period_start, fetched_at_utc DESC LIMIT 1"
    ))
    .bind(realm_id)
    .bind(basis)
    .bind(month.to_string())
    .bind(month.last_of_month().to_string())
    .fetch_optional(pool)
    .await?;
    let Some((start, end, fetched_at)) = row else {
        return Ok(None);
    };
    let date = |s: &str| {
        s.parse::<Date>()
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
    };
    Ok(Some(StoredTrialBalance {
        period_start: date(&start)?,
        period_end: date(&end)?,
        fetched_at,
    }))
}

/// Every account of `report` or of `raw.qb_trial_balance` as of its `period_end`, with both
/// balances, ordered by account id.
///
/// # Errors
/// [`StoreError::Database`].
pub async fn compare_trial_balance(
    pool: &PgPool,
    realm_id: &str,
    basis: &str,
    report: &StoredTrialBalance,
) -> Result<Vec<AccountComparison>, StoreError> {
    let rows: Vec<(Option<String>, String, String, String, String, bool)> = sqlx::query_as(
        "WITH qb AS ( \
             SELECT coalesce(r.account_or_entity_id, 'name:' || r.name) AS k, \
                    r.account_or_entity_id AS account_id, min(r.name) AS name, \
                    sum(CASE r.column_title WHEN 'Debit' THEN r.value \
                                            WHEN 'Credit' THEN -r.value ELSE 0 END) AS amount \
             FROM raw.qb_report_rows r \
             WHERE r.realm_id = $1 AND r.report = 'TrialBalance' AND r.basis = $2 \
               AND r.period_start = $3::date AND r.period_end = $4::date \
               AND r.summarize_column_by = '' AND r.row_type = 'data' AND r.value IS NOT NULL \
             GROUP BY 1, 2), \
         ours AS ( \
             SELECT coalesce(t.account_id, 'name:' || t.account_name) AS k, t.account_id, \
                    t.account_name AS name, t.balance AS amount \
             FROM raw.qb_trial_balance($2, $4::date) t WHERE t.realm_id = $1) \
         SELECT coalesce(qb.account_id, ours.account_id), coalesce(qb.name, ours.name, ''), \
                round(coalesce(qb.amount, 0), 2)::text, round(coalesce(ours.amount, 0), 2)::text, \
                round(coalesce(ours.amount, 0) - coalesce(qb.amount, 0), 2)::text, \
                coalesce(qb.amount, 0) = coalesce(ours.amount, 0) \
         FROM qb FULL JOIN ours ON qb.k = ours.k \
         ORDER BY length(coalesce(qb.account_id, ours.account_id, '')), \
                  coalesce(qb.account_id, ours.account_id), 2",
    )
    .bind(realm_id)
    .bind(basis)
    .bind(report.period_start.to_string())
    .bind(report.period_end.to_string())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(account_id, name, quickbooks, ours, difference, agreed)| AccountComparison {
                account_id,
                name,
                quickbooks,
                ours,
                difference,
                agreed,
            },
        )
        .collect())
}

/// The transactions posting to `account_id` (on `basis`, up to the report's day) whose
/// `MetaData.LastUpdatedTime` or load into `raw` is later than the report's `fetched_at_utc`,
/// with what each posts to the account now. For Retained Earnings (the account, or the line
/// without an id), the transactions posting to profit-and-loss accounts before the fiscal year
/// count too (what they post there), since earlier years' profit and loss rolls into it.
///
/// # Errors
/// [`StoreError::Database`].
pub async fn changed_since_report(
    pool: &PgPool,
    realm_id: &str,
    basis: &str,
    report: &StoredTrialBalance,
    account_id: Option<&str>,
) -> Result<Vec<ChangedTxn>, StoreError> {
    let rows: Vec<(String, String, String, String, Option<String>, String)> =
        sqlx::query_as(concat!(
            "WITH rep AS ( \
                 SELECT r.fetched_at_utc, \
                        $5 IS NULL OR $5 = d.retained_earnings_account_id AS retained \
                 FROM raw.qb_reports r \
                 LEFT JOIN raw.qb_default_accounts d ON d.realm_id = r.realm_id \
                 WHERE r.realm_id = $1 AND r.report = 'TrialBalance' AND r.basis = $2 \
                   AND r.period_start = $3::date AND r.period_end = $4::date \
                   AND r.summarize_column_by = ''), \
             j AS ( \
                 SELECT j.*, j.txn_date < date_trunc('year', $4::date)::date \
                         AND a.payload ->> 'Classification' IN ('Revenue', 'Expense') AS pl_before \
                 FROM raw.qb_journal_lines j \
                 LEFT JOIN raw.qb_accounts a ON a.realm_id = j.realm_id AND a.id = j.account_id \
                 WHERE j.realm_id = $1 AND j.basis = $2) \
             SELECT j.txn_type, j.txn_id, j.txn_date::text, round(sum(j.amount), 2)::text, ",
            utc_text!("j.last_updated_time"),
            ", ",
            utc_text!("j.ingested_at_utc"),
            " FROM j, rep \
             WHERE j.txn_date <= $4::date \
               AND (j.account_id IS NOT DISTINCT FROM $5 OR (rep.retained AND j.pl_before)) \
               AND (j.last_updated_time > rep.fetched_at_utc \
                    OR j.ingested_at_utc > rep.fetched_at_utc) \
             GROUP BY j.txn_type, j.txn_id, j.txn_date, j.last_updated_time, j.ingested_at_utc \
             ORDER BY j.txn_date, j.txn_type, j.txn_id"
        ))
        .bind(realm_id)
        .bind(basis)
        .bind(report.period_start.to_string())
        .bind(report.period_end.to_string())
        .bind(account_id)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(txn_type, txn_id, txn_date, posted, last_updated, loaded_at)| ChangedTxn {
                txn_type,
                txn_id,
                txn_date,
                posted,
                last_updated,
                loaded_at,
            },
        )
        .collect())
}
