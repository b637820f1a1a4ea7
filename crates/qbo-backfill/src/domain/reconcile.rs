//! Reconciling QuickBooks' Trial Balance with the one computed from the transactions in `raw`
//! (`verify reports`): what one month and basis came to, and the lines the operator reads.
//!
//! Amounts are exact decimals as PostgreSQL writes them, signed: a debit balance is positive, a
//! credit balance negative (the report's Debit column minus its Credit column).

use jiff::civil::Date;

/// The bases a Trial Balance is reconciled on when none is stored yet.
pub const BASES: [&str; 2] = ["Accrual", "Cash"];

/// The pipeline that loads the Trial Balance, named to the operator when a month lacks one.
pub const TRIAL_BALANCE_PIPELINE: &str = "qb_trial_balance_backfill";

/// One account of a month's comparison.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountComparison {
    /// The account's id (`None` for a line without one, e.g. Retained Earnings of a company
    /// without that account).
    pub account_id: Option<String>,
    /// Its name, as the report shows it (else as `raw.qb_accounts` does).
    pub name: String,
    /// QuickBooks' balance (`0` when the report has no line for it).
    pub quickbooks: String,
    /// The balance computed from `raw` (`0` when it computes none).
    pub ours: String,
    /// `ours - quickbooks`.
    pub difference: String,
    /// Whether both are equal.
    pub agreed: bool,
}

/// A transaction posting to an account that changed in `raw` after the report was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangedTxn {
    /// `Purchase`, `Invoice`, …
    pub txn_type: String,
    /// Its QuickBooks `Id`.
    pub txn_id: String,
    /// Its `TxnDate`.
    pub txn_date: String,
    /// What it posts to the account now (signed).
    pub posted: String,
    /// `MetaData.LastUpdatedTime`, RFC 3339 UTC, when present.
    pub last_updated: Option<String>,
    /// When this version was loaded into `raw` (RFC 3339 UTC).
    pub loaded_at: String,
}

/// An account that differs, with the transactions that may explain it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// The comparison.
    pub account: AccountComparison,
    /// The transactions of the account changed since the report was read.
    pub changed: Vec<ChangedTxn>,
}

/// What one month and basis came to (in JSON: `"outcome": "missing"` or `"compared"` and its
/// fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MonthOutcome {
    /// No Trial Balance of this month and basis is stored.
    Missing,
    /// Compared, account by account.
    Compared {
        /// The day the stored report is as of (its `end_date`): the month's last day, or an
        /// earlier day of the month when only that was read.
        as_of: Date,
        /// When the stored report was read (RFC 3339 UTC).
        fetched_at: String,
        /// Accounts on either side.
        accounts: u64,
        /// Accounts whose balances are equal.
        agreed: u64,
        /// The others.
        differences: Vec<Difference>,
    },
}

/// One calendar month on one basis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MonthReconciliation {
    /// First day of the month.
    pub month: Date,
    /// `Accrual` or `Cash`.
    pub basis: String,
    /// The result.
    #[serde(flatten)]
    pub outcome: MonthOutcome,
}

/// `2026-03` of a day of March 2026.
#[must_use]
pub fn month_label(month: Date) -> String {
    format!("{:04}-{:02}", month.year(), month.month())
}

/// `account_id=18 account="Rent or Lease"` (the id is `-` when there is none).
fn account_fields(a: &AccountComparison) -> String {
    format!(
        "account_id={} account={:?}",
        a.account_id.as_deref().unwrap_or("-"),
        a.name
    )
}

impl MonthReconciliation {
    /// Whether this month and basis agreed on every account.
    #[must_use]
    pub fn agreed(&self) -> bool {
        matches!(&self.outcome, MonthOutcome::Compared { differences, .. } if differences.is_empty())
    }

    /// The lines the operator reads: `Reconcile | month=… accounts=… agreed=… differences=…
    /// basis=… as_of=…`, then per difference a `Reconcile difference | …` line and its `Reconcile
    /// changed | …` lines; or one `Reconcile missing | …` line naming the pipeline to run.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let month = month_label(self.month);
        let basis = &self.basis;
        let (as_of, fetched_at, accounts, agreed, differences) = match &self.outcome {
            MonthOutcome::Missing => return vec![self.missing_line()],
            MonthOutcome::Compared {
                as_of,
                fetched_at,
                accounts,
                agreed,
                differences,
            } => (as_of, fetched_at, accounts, agreed, differences),
        };
        let mut out = vec![format!(
            "Reconcile | month={month} accounts={accounts} agreed={agreed} differences={} basis={basis} as_of={as_of}",
            differences.len()
        )];
        for d in differences {
            let a = &d.account;
            let head = format!("month={month} basis={basis} {}", account_fields(a));
            out.push(format!(
                "Reconcile difference | {head} quickbooks={} ours={} difference={} report_fetched_at={fetched_at}",
                a.quickbooks, a.ours, a.difference
            ));
            if d.changed.is_empty() {
                out.push(format!(
                    "Reconcile changed | {head} none: no transaction of this account changed in raw since the report was read"
                ));
            }
            for t in &d.changed {
                out.push(format!(
                    "Reconcile changed | {head} txn={} txn_id={} txn_date={} posted={} last_updated={} loaded_at={}",
                    t.txn_type,
                    t.txn_id,
                    t.txn_date,
                    t.posted,
                    t.last_updated.as_deref().unwrap_or("-"),
                    t.loaded_at
                ));
            }
        }
        out
    }

    /// `Reconcile missing | …`: what to run to load the month's Trial Balance.
    fn missing_line(&self) -> String {
        let next = self
            .month
            .checked_add(jiff::Span::new().months(1))
            .unwrap_or(self.month);
        format!(
            "Reconcile missing | month={} basis={} no TrialBalance stored for this month: run `qbo-backfill run {TRIAL_BALANCE_PIPELINE} --fecha-inicio {} --fecha-fin {next}`, then verify again",
            month_label(self.month),
            self.basis,
            self.month
        )
    }
}

/// Totals over every month and basis reconciled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileTotals {
    /// Month × basis pairs looked at.
    pub months: u64,
    /// Of which agreed on every account.
    pub agreed: u64,
    /// Of which differed on some account.
    pub differed: u64,
    /// Of which had no stored Trial Balance.
    pub missing: u64,
    /// Accounts that differ, over all months.
    pub differences: u64,
}

impl ReconcileTotals {
    /// The totals of `months`.
    #[must_use]
    pub fn of(months: &[MonthReconciliation]) -> Self {
        let mut t = Self::default();
        for m in months {
            t.months += 1;
            match &m.outcome {
                MonthOutcome::Missing => t.missing += 1,
                MonthOutcome::Compared { differences, .. } if differences.is_empty() => {
                    t.agreed += 1;
                }
                MonthOutcome::Compared { differences, .. } => {
                    t.differed += 1;
                    t.differences += differences.len() as u64;
                }
            }
        }
        t
    }

    /// `Reconcile done | months=… agreed=… differed=… missing=… differences=…`.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "Reconcile done | months={} agreed={} differed={} missing={} differences={}",
            self.months, self.agreed, self.differed, self.missing, self.differences
        )
    }

    /// 0 when every month agreed, 1 when one differed or had no Trial Balance.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        u8::from(self.differed + self.missing > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(agreed: bool) -> AccountComparison {
        AccountComparison {
            account_id: Some("18".into()),
            name: "Rent or Lease".into(),
            quickbooks: "1234.00".into(),
            ours: if agreed { "1234.00" } else { "1334.00" }.into(),
            difference: if agreed { "0.00" } else { "100.00" }.into(),
            agreed,
        }
    }

    #[test]
    fn an_agreeing_month_is_one_line_in_the_pinned_shape() {
        let m = MonthReconciliation {
            month: jiff::civil::date(2026, 3, 1),
            basis: "Accrual".into(),
            outcome: MonthOutcome::Compared {
                as_of: jiff::civil::date(2026, 3, 31),
                fetched_at: "2026-04-02T10:00:00Z".into(),
                accounts: 42,
                agreed: 42,
                differences: vec![],
            },
        };
        assert!(m.agreed());
        assert_eq!(
            m.lines(),
            [
                "Reconcile | month=2026-03 accounts=42 agreed=42 differences=0 basis=Accrual as_of=2026-03-31"
            ]
        );
        let t = ReconcileTotals::of(&[m]);
        assert_eq!((t.agreed, t.exit_code()), (1, 0));
    }

    #[test]
    fn a_difference_names_the_account_both_amounts_and_the_changed_transactions() {
        let changed = ChangedTxn {
            txn_type: "Purchase".into(),
            txn_id: "7".into(),
            txn_date: "2026-03-05".into(),
            posted: "1100.00".into(),
            last_updated: Some("2026-04-03T08:00:00Z".into()),
            loaded_at: "2026-04-03T09:00:00Z".into(),
        };
        let m = MonthReconciliation {
            month: jiff::civil::date(2026, 3, 1),
            basis: "Cash".into(),
            outcome: MonthOutcome::Compared {
                as_of: jiff::civil::date(2026, 3, 31),
                fetched_at: "2026-04-02T10:00:00Z".into(),
                accounts: 3,
                agreed: 2,
                differences: vec![Difference {
                    account: comparison(false),
                    changed: vec![changed],
                }],
            },
        };
        let lines = m.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with("Reconcile | month=2026-03 accounts=3 agreed=2 differences=1")
        );
        assert!(lines[1].contains("account_id=18 account=\"Rent or Lease\" quickbooks=1234.00 ours=1334.00 difference=100.00"), "{}", lines[1]);
        assert!(
            lines[2].contains("txn=Purchase txn_id=7 txn_date=2026-03-05"),
            "{}",
            lines[2]
        );
        let t = ReconcileTotals::of(&[m]);
        assert_eq!((t.differed, t.differences, t.exit_code()), (1, 1, 1));
    }

    #[test]
    fn a_missing_month_names_the_pipeline_and_its_range_and_is_not_agreed() {
        let m = MonthReconciliation {
            month: jiff::civil::date(2026, 12, 1),
            basis: "Accrual".into(),
            outcome: MonthOutcome::Missing,
        };
        assert!(!m.agreed());
        let line = &m.lines()[0];
        assert!(
            line.starts_with("Reconcile missing | month=2026-12 basis=Accrual"),
            "{line}"
        );
        assert!(
            line.contains(
                "qb_trial_balance_backfill --fecha-inicio 2026-12-01 --fecha-fin 2027-01-01"
            ),
            "{line}"
        );
        assert_eq!(ReconcileTotals::of(&[m]).exit_code(), 1);
    }
}
