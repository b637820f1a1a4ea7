//! `verify reports`: every calendar month of a range and every stored basis, QuickBooks' Trial
//! Balance as of the month's last day against the one computed from the transactions in `raw`
//! (`raw.qb_trial_balance`), account by account. Reads the database only: no request to
//! QuickBooks, nothing written.

use jiff::civil::Date;
use sqlx::PgPool;

use crate::domain::pipeline::{DateRange, RangeError};
use crate::domain::reconcile::{
    BASES, Difference, MonthOutcome, MonthReconciliation, ReconcileTotals,
};
use crate::store::StoreError;
use crate::store::raw::reconcile::{
    changed_since_report, compare_trial_balance, stored_trial_balance, trial_balance_bases,
};

/// Why a reconciliation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The range's months cannot be computed.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `verify reports` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// Each month and basis, months in order, bases in order within a month.
    pub months: Vec<MonthReconciliation>,
    /// Whether the company has any Trial Balance stored (of any period).
    pub any_stored: bool,
}

impl Reconciliation {
    /// The totals.
    #[must_use]
    pub fn totals(&self) -> ReconcileTotals {
        ReconcileTotals::of(&self.months)
    }
}

/// The first days of the calendar months `range` touches, in order.
///
/// # Errors
/// Dates at the edge of what can be represented.
pub fn months_of(range: &DateRange) -> Result<Vec<Date>, RangeError> {
    Ok(range
        .months()?
        .iter()
        .map(|w| w.day.first_of_month())
        .collect())
}

/// Reconciles every calendar month of `range` on every basis stored for `realm_id` (both when
/// none is).
///
/// # Errors
/// [`ReconcileError`].
pub async fn reconcile_trial_balances(
    pool: &PgPool,
    realm_id: &str,
    range: &DateRange,
) -> Result<Reconciliation, ReconcileError> {
    let months = months_of(range)?;
    let stored = trial_balance_bases(pool, realm_id).await?;
    let any_stored = !stored.is_empty();
    let bases: Vec<String> = if any_stored {
        stored
    } else {
        BASES.iter().map(|b| (*b).to_owned()).collect()
    };
    let mut out = Vec::with_capacity(months.len() * bases.len());
    for month in months {
        for basis in &bases {
            let outcome = reconcile_month(pool, realm_id, basis, month).await?;
            out.push(MonthReconciliation {
                month,
                basis: basis.clone(),
                outcome,
            });
        }
    }
    Ok(Reconciliation {
        months: out,
        any_stored,
    })
}

/// One month on one basis, as of the last day of it a stored Trial Balance is as of.
async fn reconcile_month(
    pool: &PgPool,
    realm_id: &str,
    basis: &str,
    month: Date,
) -> Result<MonthOutcome, ReconcileError> {
    let Some(report) = stored_trial_balance(pool, realm_id, basis, month).await? else {
        return Ok(MonthOutcome::Missing);
    };
    let accounts = compare_trial_balance(pool, realm_id, basis, &report).await?;
    let mut differences = Vec::new();
    for account in accounts.iter().filter(|a| !a.agreed) {
        let changed = changed_since_report(
            pool,
            realm_id,
            basis,
            &report,
            account.account_id.as_deref(),
        )
        .await?;
        differences.push(Difference {
            account: account.clone(),
            changed,
        });
    }
    Ok(MonthOutcome::Compared {
        as_of: report.period_end,
        fetched_at: report.fetched_at,
        accounts: accounts.len() as u64,
        agreed: accounts.iter().filter(|a| a.agreed).count() as u64,
        differences,
    })
}
