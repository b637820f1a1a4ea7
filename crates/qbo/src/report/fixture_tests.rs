//! Every body in `tests/fixtures/reports/` through the parser, the flattening and the totals
//! check. What each fixture must show is written per fixture: the Intuit documentation samples
//! were shortened by Intuit's editors, so two of them are *expected* not to add up (see
//! `PROVENANCE.md` beside the fixtures).

use std::collections::BTreeSet;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reports/");

fn body(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn report(name: &str) -> Report {
    parse_report(&body(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn amount(s: &str) -> Amount {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The fixtures this file covers; the directory must hold exactly these (plus PROVENANCE).
const COVERED: &[&str] = &[
    "aged_payables_intuit_docs.json",
    "aged_receivables_intuit_docs.json",
    "balance_sheet_intuit_docs.json",
    "balance_sheet_monily.json",
    "cash_flow_intuit_docs.json",
    "general_ledger_minimul.json",
    "profit_and_loss_monily.json",
    "profit_and_loss_no_data_minimul.json",
    "synthetic_general_ledger_truncated.json",
    "trial_balance_intuit_docs.json",
];

#[test]
fn every_fixture_file_is_covered() {
    crate::response::fixture_tests::assert_every_fixture_covered(FIXTURES, COVERED);
}

#[test]
fn every_fixture_parses_flattens_and_names_its_report() {
    for name in COVERED {
        let r = report(name);
        let cells = r.cells().unwrap_or_else(|e| panic!("{name}: {e}"));
        let reported = r.header.report_name.as_deref().expect("ReportName");
        assert!(reported.parse::<ReportName>().is_ok(), "{name}: {reported}");
        // Only the no-data P&L has no values at all.
        assert_eq!(
            cells.is_empty(),
            *name == "profit_and_loss_no_data_minimul.json",
            "{name}"
        );
        assert!(
            cells
                .iter()
                .all(|c| !c.text.is_empty() && c.column_index >= 1)
        );
        // Only the synthetic body carries the truncation notice.
        assert_eq!(
            is_range_too_large(&r),
            name.starts_with("synthetic_"),
            "{name}"
        );
        assert_eq!(
            body_signals_range_too_large(&body(name)),
            name.starts_with("synthetic_"),
            "{name}"
        );
    }
}

/// Every reported section summary and grand total equals its rows, except where the fixture
/// is known to be edited.
#[test]
fn totals_add_up_where_the_body_is_whole() {
    for name in COVERED {
        let mismatches = report(name)
            .total_mismatches()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        match *name {
            "cash_flow_intuit_docs.json" | "trial_balance_intuit_docs.json" => {}
            _ => assert!(mismatches.is_empty(), "{name}: {mismatches:?}"),
        }
    }
}

#[test]
fn profit_and_loss_sections_and_computed_totals() {
    let r = report("profit_and_loss_monily.json");
    assert_eq!(r.header.report_basis.as_deref(), Some("Accrual"));
    assert_eq!(r.header.no_report_data(), Some(false));
    assert_eq!(r.header.start_date(), "2022-01-01".parse().ok());
    let cells = r.cells().expect("cells");
    let sales = cells
        .iter()
        .find(|c| c.name.as_deref() == Some("Sales"))
        .expect("sales");
    assert_eq!(sales.section_label(), "Income");
    assert_eq!(sales.account_or_entity_id.as_deref(), Some("6"));
    assert_eq!(sales.group.as_deref(), Some("Income"));
    assert_eq!(sales.column_title, "Total");
    assert_eq!(sales.column_key.as_deref(), Some("total"));
    assert_eq!(sales.period_start, None);
    assert_eq!(sales.value, Some(amount("674842.00")));

    // The sum of the Expenses data cells is the section's own summary.
    let expenses = cells
        .iter()
        .filter(|c| c.row_kind == RowKind::Data && c.section_label() == "Expenses")
        .filter_map(|c| c.value.clone())
        .try_fold(Amount::zero(), |acc, v| acc.checked_add(&v))
        .expect("sum");
    let totals = r.totals().expect("totals");
    let total_expenses = totals
        .iter()
        .find(|t| t.group.as_deref() == Some("Expenses"))
        .expect("Total Expenses");
    assert_eq!(total_expenses.kind, RowKind::SectionSummary);
    assert_eq!(total_expenses.values, vec![(1, expenses.clone())]);
    assert_eq!(expenses, amount("1078078.99"));

    // Gross Profit, Net Operating Income, Net Income: Summary-only sections are totals.
    let kinds: Vec<_> = totals
        .iter()
        .map(|t| (t.group.as_deref().unwrap_or(""), t.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Income", RowKind::SectionSummary),
            ("GrossProfit", RowKind::Total),
            ("Expenses", RowKind::SectionSummary),
            ("NetOperatingIncome", RowKind::Total),
            ("NetIncome", RowKind::Total),
        ]
    );
    // Net income = income − expenses, the report's own arithmetic.
    let income = amount("674842.00");
    let net = totals
        .iter()
        .find(|t| t.group.as_deref() == Some("NetIncome"))
        .expect("net");
    let minus_expenses: Amount = format!("-{expenses}").parse().expect("negated");
    assert_eq!(
        net.values[0].1,
        income.checked_add(&minus_expenses).expect("fits")
    );
}

#[test]
fn a_no_data_profit_and_loss_keeps_its_sections_but_no_values() {
    let r = report("profit_and_loss_no_data_minimul.json");
    assert_eq!(r.header.no_report_data(), Some(true));
    assert_eq!(r.header.summarize_columns_by.as_deref(), Some("Customers"));
    assert_eq!(r.header.customer.as_deref(), Some("1"));
    let totals = r.totals().expect("totals");
    assert_eq!(totals.len(), 5);
    assert!(totals.iter().all(|t| t.values.is_empty()));
}

#[test]
fn balance_sheets_nest_sections_and_add_up() {
    for name in [
        "balance_sheet_intuit_docs.json",
        "balance_sheet_monily.json",
    ] {
        let r = report(name);
        let cells = r.cells().expect("cells");
        assert!(
            cells.iter().any(|c| c.section_path.len() >= 3),
            "{name}: nested sections"
        );
        let totals = r.totals().expect("totals");
        let value_of = |group: &str| {
            totals
                .iter()
                .find(|t| t.group.as_deref() == Some(group))
                .and_then(|t| t.values.first())
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name}: {group}"))
        };
        // Assets = liabilities + equity, as the report states it.
        assert_eq!(
            value_of("TotalAssets"),
            value_of("TotalLiabilitiesAndEquity"),
            "{name}"
        );
        assert!(r.total_mismatches().expect("check").is_empty(), "{name}");
    }
}

#[test]
fn trial_balance_rows_are_untyped_data_and_the_sample_is_shortened() {
    let r = report("trial_balance_intuit_docs.json");
    let cells = r.cells().expect("cells");
    let titles: BTreeSet<_> = cells.iter().map(|c| c.column_title.as_str()).collect();
    assert_eq!(titles, BTreeSet::from(["Credit", "Debit"]));
    let checking = cells
        .iter()
        .find(|c| c.account_or_entity_id.as_deref() == Some("35"))
        .expect("Checking");
    assert_eq!(checking.row_kind, RowKind::Data);
    assert_eq!(checking.name.as_deref(), Some("Checking"));
    assert_eq!(checking.value, Some(amount("4151.74")));
    let grand = cells
        .iter()
        .filter(|c| c.group.as_deref() == Some("GrandTotal"))
        .collect::<Vec<_>>();
    assert_eq!(grand.len(), 2);
    assert!(grand.iter().all(|c| c.row_kind == RowKind::Total));
    // Intuit's sample shows 3 accounts under a 36587.47 total: the check must notice.
    let m = r.total_mismatches().expect("check");
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].computed, amount("4152.18"));
    assert_eq!(m[1].computed, amount("46.00"));
    assert_eq!(m[0].reported, amount("36587.47"));
}

#[test]
fn aging_reports_total_by_bucket() {
    let r = report("aged_receivables_intuit_docs.json");
    assert_eq!(r.header.option("report_date"), Some("2015-12-31"));
    assert_eq!(r.header.report_basis, None);
    let cells = r.cells().expect("cells");
    let jane: Vec<_> = cells
        .iter()
        .filter(|c| c.account_or_entity_id.as_deref() == Some("4"))
        .map(|c| c.column_title.as_str())
        .collect();
    assert_eq!(jane, ["91 and over", "Total"]);

    let r = report("aged_payables_intuit_docs.json");
    let totals = r.totals().expect("totals");
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].label.as_deref(), Some("TOTAL"));
    assert_eq!(totals[0].kind, RowKind::Total);
    assert_eq!(totals[0].values.len(), 6);
    assert_eq!(totals[0].values[5], (6, amount("1241.67")));
    assert!(r.total_mismatches().expect("check").is_empty());
}

#[test]
fn cash_flow_sample_puts_a_nested_summary_on_its_parent() {
    let r = report("cash_flow_intuit_docs.json");
    let cells = r.cells().expect("cells");
    let ap = cells
        .iter()
        .find(|c| c.account_or_entity_id.as_deref() == Some("33"))
        .expect("A/P");
    assert_eq!(
        ap.section_label(),
        "OPERATING ACTIVITIES > Adjustments to reconcile Net Income to Net Cash provided by operations:"
    );
    assert_eq!(ap.group.as_deref(), Some("OperatingAdjustments"));
    let net_income = cells
        .iter()
        .find(|c| c.name.as_deref() == Some("Net Income"))
        .expect("net income");
    assert_eq!(net_income.group.as_deref(), Some("NetIncome"));
    assert_eq!(net_income.row_kind, RowKind::Data);
    let m = r.total_mismatches().expect("check");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].group.as_deref(), Some("OperatingActivities"));
    assert_eq!(
        (m[0].reported.as_str(), m[0].computed.is_zero()),
        ("300.00", true)
    );
}

#[test]
fn general_ledger_cells_keep_text_columns_and_account_ids() {
    let r = report("general_ledger_minimul.json");
    let cols = r.leaf_columns().expect("columns");
    let amount_cols: Vec<_> = cols
        .iter()
        .filter(|c| c.is_amount())
        .map(|c| c.index)
        .collect();
    assert_eq!(amount_cols, [6, 7], "Amount and Balance");
    let cells = r.cells().expect("cells");
    let invoice = cells
        .iter()
        .find(|c| c.column_title == "Transaction Type" && c.cell_id.as_deref() == Some("264"))
        .expect("invoice 264");
    assert_eq!(invoice.text, "Invoice");
    assert_eq!(invoice.value, None);
    assert_eq!(invoice.section_label(), "Accounts Receivable (A/R)");
    assert_eq!(invoice.section_id.as_deref(), Some("84"));
    assert_eq!(invoice.name.as_deref(), Some("2020-09-29"));
    // The empty `"id": ""` of an unnamed cell is no id.
    assert!(cells.iter().all(|c| c.cell_id.as_deref() != Some("")));
    let nested = cells
        .iter()
        .find(|c| c.section_path.len() == 2)
        .expect("sub-account");
    assert_eq!(nested.section_label(), "Truck > Original Cost");
}

#[test]
fn the_truncated_body_is_detected_and_would_be_split() {
    let r = report("synthetic_general_ledger_truncated.json");
    assert!(is_range_too_large(&r));
    let req = ReportRequest::new(
        ReportName::GeneralLedger,
        r.header.start_date().expect("start"),
        r.header.end_date().expect("end"),
    )
    .expect("range");
    let (a, b) = req.halves().expect("split");
    assert_eq!(a.end_date.tomorrow().expect("day"), b.start_date);
}
