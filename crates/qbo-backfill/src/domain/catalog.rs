//! The one declarative list of what we load: every QuickBooks entity with its pipelines
//! (`qb_<plural>_backfill`, `qb_<plural>_incremental`, `qb_<plural>_verify`), its raw table
//! (`raw.qb_<plural>`), the view of every version it held (`raw.qb_<plural>_history`, over the
//! table of superseded versions `raw.qb_<plural>_versions` and the raw table) and the
//! label its log lines use; and every QuickBooks report with its pipeline
//! (`qb_<report>_backfill`) and the bases it is read in. Adding an entity is one line here; the raw table is created on
//! start-up, and the CLI, the API, the UI and the runbooks list it from this list.

/// One entity we load and the names derived from it.
#[derive(Debug, PartialEq, Eq)]
pub struct EntitySpec {
    /// The QBO entity.
    pub entity: qbo::Entity,
    /// Plural, snake case (`journal_entries`).
    pub plural: &'static str,
    /// Plural label in log lines (`JournalEntries`).
    pub label: &'static str,
    /// The raw table (`raw.qb_journal_entries`).
    pub table: &'static str,
    /// The table name without its schema (`qb_journal_entries`).
    pub table_name: &'static str,
    /// The view of every version the raw table held (`raw.qb_journal_entries_history`).
    pub history: &'static str,
    /// The history view's name without its schema (`qb_journal_entries_history`).
    pub history_name: &'static str,
    /// The table of the versions the raw table no longer holds
    /// (`raw.qb_journal_entries_versions`).
    pub versions: &'static str,
    /// The versions table's name without its schema (`qb_journal_entries_versions`).
    pub versions_name: &'static str,
    /// The backfill pipeline (`qb_journal_entries_backfill`).
    pub backfill: &'static str,
    /// The incremental pipeline (`qb_journal_entries_incremental`).
    pub incremental: &'static str,
    /// The reconciliation pipeline (`qb_journal_entries_verify`): `raw` against QuickBooks,
    /// month by month.
    pub verify: &'static str,
}

macro_rules! entities {
    ($($entity:ident => $plural:ident, $label:literal;)*) => {
        /// Every entity we load, in the order pages list them (the original three first).
        pub static ENTITIES: &[EntitySpec] = &[$(EntitySpec {
            entity: qbo::Entity::$entity,
            plural: stringify!($plural),
            label: $label,
            table: concat!("raw.qb_", stringify!($plural)),
            table_name: concat!("qb_", stringify!($plural)),
            history: concat!("raw.qb_", stringify!($plural), "_history"),
            history_name: concat!("qb_", stringify!($plural), "_history"),
            versions: concat!("raw.qb_", stringify!($plural), "_versions"),
            versions_name: concat!("qb_", stringify!($plural), "_versions"),
            backfill: concat!("qb_", stringify!($plural), "_backfill"),
            incremental: concat!("qb_", stringify!($plural), "_incremental"),
            verify: concat!("qb_", stringify!($plural), "_verify"),
        }),*];
    };
}

entities! {
    Customer => customers, "Customers";
    Item => items, "Items";
    Invoice => invoices, "Invoices";
    Account => accounts, "Accounts";
    Bill => bills, "Bills";
    BillPayment => bill_payments, "BillPayments";
    Class => classes, "Classes";
    CreditMemo => credit_memos, "CreditMemos";
    Department => departments, "Departments";
    Deposit => deposits, "Deposits";
    Employee => employees, "Employees";
    Estimate => estimates, "Estimates";
    JournalEntry => journal_entries, "JournalEntries";
    Payment => payments, "Payments";
    PaymentMethod => payment_methods, "PaymentMethods";
    Purchase => purchases, "Purchases";
    PurchaseOrder => purchase_orders, "PurchaseOrders";
    RefundReceipt => refund_receipts, "RefundReceipts";
    SalesReceipt => sales_receipts, "SalesReceipts";
    TaxCode => tax_codes, "TaxCodes";
    TaxRate => tax_rates, "TaxRates";
    Term => terms, "Terms";
    TimeActivity => time_activities, "TimeActivities";
    Transfer => transfers, "Transfers";
    Vendor => vendors, "Vendors";
    VendorCredit => vendor_credits, "VendorCredits";
}

/// One QuickBooks report we load, with its pipeline (`qb_<report>_backfill`, one calendar month
/// per window) and the bases it is read in.
#[derive(Debug, PartialEq, Eq)]
pub struct ReportSpec {
    /// The report (`reports/{Name}`).
    pub report: qbo::ReportName,
    /// The pipeline (`qb_profit_and_loss_backfill`).
    pub backfill: &'static str,
    /// Its label in log lines and the UI (`ProfitAndLoss`, the report's own name).
    pub label: &'static str,
    /// The accounting methods each month is read in: both where the report takes one, none
    /// (one answer with QuickBooks' default) for the aging reports, which age open balances.
    pub bases: &'static [qbo::Basis],
}

/// Both bases.
const BOTH: &[qbo::Basis] = &[qbo::Basis::Accrual, qbo::Basis::Cash];

macro_rules! reports {
    ($($report:ident => $snake:ident, $bases:expr;)*) => {
        /// Every report we load, in the order pages list them.
        pub static REPORTS: &[ReportSpec] = &[$(ReportSpec {
            report: qbo::ReportName::$report,
            backfill: concat!("qb_", stringify!($snake), "_backfill"),
            label: stringify!($report),
            bases: $bases,
        }),*];
    };
}

reports! {
    ProfitAndLoss => profit_and_loss, BOTH;
    BalanceSheet => balance_sheet, BOTH;
    TrialBalance => trial_balance, BOTH;
    GeneralLedger => general_ledger, BOTH;
    CashFlow => cash_flow, BOTH;
    AgedReceivables => aged_receivables, &[];
    AgedPayables => aged_payables, &[];
}

/// The entity whose plural is `plural` (`time_activities`), as the `verify` command names it.
#[must_use]
pub fn by_plural(plural: &str) -> Option<&'static EntitySpec> {
    ENTITIES.iter().find(|s| s.plural == plural)
}

/// The position of `entity` in [`ENTITIES`], if we load it.
#[must_use]
pub fn position(entity: qbo::Entity) -> Option<usize> {
    ENTITIES.iter().position(|s| s.entity == entity)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names = HashSet::new();
        for spec in ENTITIES {
            assert!(names.insert(spec.backfill));
            assert!(names.insert(spec.incremental));
            assert!(names.insert(spec.verify));
            assert_eq!(by_plural(spec.plural), Some(spec));
            assert!(names.insert(spec.table));
            assert!(names.insert(spec.history));
            assert_eq!(spec.history, format!("{}_history", spec.table));
            assert_eq!(spec.versions, format!("{}_versions", spec.table));
            assert!(
                spec.plural
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                spec.plural
            );
            assert_eq!(position(spec.entity).map(|i| &ENTITIES[i]), Some(spec));
        }
        assert_eq!(ENTITIES.len(), 26);
    }

    #[test]
    fn every_report_has_one_pipeline_named_as_the_issue_pins_it() {
        let names: Vec<&str> = REPORTS.iter().map(|r| r.backfill).collect();
        assert_eq!(
            names,
            [
                "qb_profit_and_loss_backfill",
                "qb_balance_sheet_backfill",
                "qb_trial_balance_backfill",
                "qb_general_ledger_backfill",
                "qb_cash_flow_backfill",
                "qb_aged_receivables_backfill",
                "qb_aged_payables_backfill",
            ]
        );
        for spec in REPORTS {
            assert_eq!(spec.label, spec.report.as_str());
            assert_eq!(spec.bases.is_empty(), spec.report.is_as_of());
            assert!(ENTITIES.iter().all(|e| e.backfill != spec.backfill));
        }
        assert_eq!(REPORTS.len(), qbo::ReportName::ALL.len());
    }

    #[test]
    fn the_original_three_keep_their_names_and_places() {
        assert_eq!(ENTITIES[0].backfill, "qb_customers_backfill");
        assert_eq!(ENTITIES[1].table, "raw.qb_items");
        assert_eq!(ENTITIES[2].incremental, "qb_invoices_incremental");
        assert_eq!(ENTITIES[22].verify, "qb_time_activities_verify");
        assert_eq!(by_plural("invoice"), None);
    }
}
