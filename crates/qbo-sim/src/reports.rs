//! `GET /v3/company/{realm}/reports/{Name}`: the seven financial reports computed from the
//! simulator's own books (`ledger`), in Intuit's shape (`report_rows`).
//!
//! * **ProfitAndLoss** `[start, end]`: Income, COGS, GrossProfit, Expenses,
//!   NetOperatingIncome, (OtherIncome, OtherExpenses, NetOtherIncome when present), NetIncome;
//!   `summarize_column_by=Month` adds a column per month before `Total`.
//! * **BalanceSheet** as of `end` (per month end with `Month`): ASSETS and LIABILITIES AND
//!   EQUITY, Equity holding Retained Earnings (profit and loss before the fiscal year, which
//!   is the calendar year) and Net Income (the fiscal year to date).
//! * **TrialBalance** as of `end`: a Debit / Credit row per account with a balance (profit
//!   and loss accounts for the fiscal year to date, earlier years rolled into Retained
//!   Earnings) and the `GrandTotal`.
//! * **GeneralLedger** `[start, end]`: a section per account: Beginning Balance, one row per
//!   posting (date, type, number, name, memo, split, amount, running balance), `Total for …`.
//! * **CashFlow** `[start, end]`: Net Income adjusted by the change of every non-cash balance
//!   sheet account (operating, investing, financing); cash is the Bank accounts.
//! * **AgedReceivables** / **AgedPayables** at `report_date`: the open balance of invoices /
//!   bills per customer / vendor in Current, 1 - 30, 31 - 60, 61 - 90, 91 and over (days past
//!   due), Total, and the `GrandTotal`.
//!
//! Amounts of asset and expense accounts are debit-positive; liability, equity and income
//! accounts credit-positive, as QuickBooks prints them.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::{Dataset, Kind, customer_profile};
use crate::ledger::{
    Basis, OpenDoc, Posting, account_class, account_name, is_pl, open_bills, open_invoices,
    postings, retained_earnings_account,
};
use crate::lists::ref_name;
use crate::render::Ctx;
use crate::report_rows::{
    Cell, HeaderInfo, Node, Period, body, date, header, period_columns, periods, plain_columns,
    sum_rows,
};
use crate::time::{civil_from_days, days_from_civil, parse_date_literal};

/// The reports the simulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    ProfitAndLoss,
    BalanceSheet,
    TrialBalance,
    GeneralLedger,
    CashFlow,
    AgedReceivables,
    AgedPayables,
}

impl ReportKind {
    const ALL: [ReportKind; 7] = [
        ReportKind::ProfitAndLoss,
        ReportKind::BalanceSheet,
        ReportKind::TrialBalance,
        ReportKind::GeneralLedger,
        ReportKind::CashFlow,
        ReportKind::AgedReceivables,
        ReportKind::AgedPayables,
    ];

    /// The path name (`ProfitAndLoss`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReportKind::ProfitAndLoss => "ProfitAndLoss",
            ReportKind::BalanceSheet => "BalanceSheet",
            ReportKind::TrialBalance => "TrialBalance",
            ReportKind::GeneralLedger => "GeneralLedger",
            ReportKind::CashFlow => "CashFlow",
            ReportKind::AgedReceivables => "AgedReceivables",
            ReportKind::AgedPayables => "AgedPayables",
        }
    }

    fn is_aging(self) -> bool {
        matches!(self, ReportKind::AgedReceivables | ReportKind::AgedPayables)
    }
}

/// A parsed report request.
#[derive(Debug, Clone)]
pub(crate) struct ReportRequest {
    pub(crate) kind: ReportKind,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) basis: Basis,
    pub(crate) by_month: bool,
}

/// Why a report request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// No such report (the path is not a resource).
    UnknownReport,
    /// A parameter's value is not accepted: `Property Name:…, Value:…`.
    Invalid(String),
}

/// Parses `name` and the query parameters; missing dates default to the calendar year to
/// date of `today` (aging: `report_date` = `today`).
pub(crate) fn parse_request(
    name: &str,
    params: &[(String, String)],
    today: i64,
) -> Result<ReportRequest, RequestError> {
    let kind = ReportKind::ALL
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(name))
        .ok_or(RequestError::UnknownReport)?;
    let get = |k: &str| crate::form::form_get(params, k).filter(|v| !v.is_empty());
    let invalid = |k: &str, v: &str| RequestError::Invalid(format!("Property Name:{k}, Value:{v}"));
    let day = |k: &str, default: i64| match get(k) {
        None => Ok(default),
        Some(v) if v.trim().len() == 10 => parse_date_literal(v).ok_or_else(|| invalid(k, v)),
        Some(v) => Err(invalid(k, v)),
    };
    let (start, end) = if kind.is_aging() {
        let d = day("report_date", today)?;
        (d, d)
    } else {
        let end = day("end_date", today)?;
        let (y, _, _) = civil_from_days(end);
        (day("start_date", days_from_civil(y, 1, 1))?, end)
    };
    if start > end {
        return Err(invalid("start_date", &date(start)));
    }
    let basis = match get("accounting_method") {
        None => Basis::Accrual,
        Some(v) if v.eq_ignore_ascii_case("accrual") => Basis::Accrual,
        Some(v) if v.eq_ignore_ascii_case("cash") => Basis::Cash,
        Some(v) => return Err(invalid("accounting_method", v)),
    };
    let by_month = match get("summarize_column_by") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("total") => false,
        Some(v) if v.eq_ignore_ascii_case("month") => true,
        Some(v) => return Err(invalid("summarize_column_by", v)),
    };
    Ok(ReportRequest {
        kind,
        start,
        end,
        basis,
        by_month,
    })
}

/// The report body; `max_days`: a longer range is answered cut short with the notice.
pub(crate) fn report_body(ds: &Dataset, req: &ReportRequest, max_days: Option<u32>) -> String {
    let truncate =
        !req.kind.is_aging() && max_days.is_some_and(|n| req.end - req.start + 1 > i64::from(n));
    let ctx = Ctx::new(ds);
    let (columns, rows, width, info) = match req.kind {
        ReportKind::AgedReceivables | ReportKind::AgedPayables => aging(ds, &ctx, req),
        kind => {
            let books = Books::new(postings(ds, req.basis));
            match kind {
                ReportKind::ProfitAndLoss => profit_and_loss(&ctx, &books, req),
                ReportKind::BalanceSheet => balance_sheet(&ctx, &books, req),
                ReportKind::TrialBalance => trial_balance(&ctx, &books, req),
                ReportKind::GeneralLedger => general_ledger(&ctx, &books, req),
                _ => cash_flow(&ctx, &books, req),
            }
        }
    };
    body(
        header(req.kind.name(), &info),
        columns,
        &rows,
        width,
        truncate,
    )
}

/// What a builder returns: `Columns`, rows, number of value columns, header facts.
type Built = (serde_json::Value, Vec<Node>, usize, HeaderInfo);

/// Jan 1 of the year of `day` (the fiscal year is the calendar year).
fn fiscal_start(day: i64) -> i64 {
    days_from_civil(civil_from_days(day).0, 1, 1)
}

/// Postings indexed per account, with running sums for balances at any day.
struct Books {
    postings: Vec<Posting>,
    /// Per account: `(day, balance through that day)`, ascending.
    running: BTreeMap<u64, Vec<(i64, i64)>>,
}

impl Books {
    fn new(postings: Vec<Posting>) -> Self {
        let mut running: BTreeMap<u64, Vec<(i64, i64)>> = BTreeMap::new();
        for p in &postings {
            let v = running.entry(p.account).or_default();
            let prev = v.last().map_or(0, |&(_, b)| b);
            match v.last_mut() {
                Some(last) if last.0 == p.day => last.1 += p.cents,
                _ => v.push((p.day, prev + p.cents)),
            }
        }
        Self { postings, running }
    }

    /// Accounts with postings, ascending.
    fn accounts(&self) -> impl Iterator<Item = u64> + '_ {
        self.running.keys().copied()
    }

    /// Debit balance of `account` through `day` (inclusive).
    fn balance(&self, account: u64, day: i64) -> i64 {
        let Some(v) = self.running.get(&account) else {
            return 0;
        };
        let i = v.partition_point(|&(d, _)| d <= day);
        if i == 0 { 0 } else { v[i - 1].1 }
    }

    /// Net debits of `account` in `[from, to]`.
    fn activity(&self, account: u64, from: i64, to: i64) -> i64 {
        self.balance(account, to) - self.balance(account, from - 1)
    }

    /// Net debits of all profit-and-loss accounts in `[from, to]` (minus net income).
    fn pl_activity(&self, from: i64, to: i64) -> i64 {
        self.accounts()
            .filter(|&a| is_pl(a))
            .map(|a| self.activity(a, from, to))
            .sum()
    }

    /// What a balance sheet or trial balance shows for `account` through `day`: its balance
    /// (profit and loss accounts: for the fiscal year to date).
    fn closing(&self, account: u64, day: i64) -> i64 {
        if is_pl(account) {
            self.activity(account, fiscal_start(day), day)
        } else {
            self.balance(account, day)
        }
    }
}

/// +1 for debit-normal accounts (assets, expenses), −1 for the others.
fn natural_sign(account: u64) -> i64 {
    match account_class(account).1 {
        "Asset" | "Expense" => 1,
        _ => -1,
    }
}

/// Data rows for the `accounts` whose values (per period, natural sign) are not all zero.
fn account_rows(
    ctx: &Ctx,
    accounts: &[u64],
    periods: &[Period],
    value: impl Fn(u64, &Period) -> i64,
) -> Vec<Node> {
    accounts
        .iter()
        .filter_map(|&a| {
            let vals: Vec<i64> = periods.iter().map(|p| value(a, p)).collect();
            vals.iter().any(|&v| v != 0).then(|| {
                Node::data(
                    account_name(ctx, a),
                    Some(a),
                    vals.into_iter().map(Cell::Money).collect(),
                )
            })
        })
        .collect()
}

/// Accounts of the books whose `AccountType` is one of `types`.
fn of_types(books: &Books, types: &[&str]) -> Vec<u64> {
    books
        .accounts()
        .filter(|&a| types.contains(&account_class(a).0))
        .collect()
}

fn diff(a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn add(a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `ProfitAndLoss`.
fn profit_and_loss(ctx: &Ctx, books: &Books, req: &ReportRequest) -> Built {
    let ps = periods(req.start, req.end, req.by_month, true);
    let w = ps.len();
    let section = |group: &'static str, label: &str, types: &[&str]| {
        let accounts = of_types(books, types);
        let rows = account_rows(ctx, &accounts, &ps, |a, p| {
            natural_sign(a) * books.activity(a, p.start, p.end)
        });
        Node::section(
            Some(group),
            Cell::text(label),
            rows,
            format!("Total {label}"),
            w,
        )
    };
    let income = section("Income", "Income", &["Income"]);
    let cogs = section("COGS", "Cost of Goods Sold", &["Cost of Goods Sold"]);
    let expenses = section("Expenses", "Expenses", &["Expense"]);
    let other_income = section("OtherIncome", "Other Income", &["Other Income"]);
    let other_expenses = section("OtherExpenses", "Other Expenses", &["Other Expense"]);
    let gross = diff(&income.sums(w), &cogs.sums(w));
    let operating = diff(&gross, &expenses.sums(w));
    let other = diff(&other_income.sums(w), &other_expenses.sums(w));
    let net = add(&operating, &other);
    let mut rows = vec![income];
    if has_rows(&cogs) {
        rows.push(cogs);
    }
    rows.push(Node::total("GrossProfit", "Gross Profit", &gross));
    rows.push(expenses);
    rows.push(Node::total(
        "NetOperatingIncome",
        "Net Operating Income",
        &operating,
    ));
    if has_rows(&other_income) || has_rows(&other_expenses) {
        rows.push(other_income);
        rows.push(other_expenses);
        rows.push(Node::total("NetOtherIncome", "Net Other Income", &other));
    }
    rows.push(Node::total("NetIncome", "Net Income", &net));
    let info = period_info(req, books, true);
    (period_columns("Account", &ps, true), rows, w, info)
}

fn has_rows(n: &Node) -> bool {
    matches!(n, Node::Section { children, .. } if !children.is_empty())
}

/// Header facts of a period report.
fn period_info(req: &ReportRequest, books: &Books, summarize: bool) -> HeaderInfo {
    HeaderInfo {
        basis: Some(req.basis.name()),
        start: req.start,
        end: req.end,
        summarize: summarize.then_some(if req.by_month { "Month" } else { "Total" }),
        report_date: None,
        no_data: books.postings.is_empty(),
    }
}

/// A balance-sheet section of the accounts of `types` (natural sign, balance at each
/// period's end); `None` when none has a balance.
fn bs_section(
    ctx: &Ctx,
    books: &Books,
    ps: &[Period],
    (group, label, types): (&'static str, &str, &[&str]),
) -> Option<Node> {
    let accounts: Vec<u64> = of_types(books, types)
        .into_iter()
        .filter(|&a| Some(a) != retained_earnings_account(ctx))
        .collect();
    let rows = account_rows(ctx, &accounts, ps, |a, p| {
        natural_sign(a) * books.balance(a, p.end)
    });
    (!rows.is_empty()).then(|| {
        Node::section(
            Some(group),
            Cell::text(label),
            rows,
            format!("Total {label}"),
            ps.len(),
        )
    })
}

/// A section of the given sub-sections (those present), always shown.
fn group_section(
    group: &'static str,
    label: &str,
    total: &str,
    parts: Vec<Option<Node>>,
    w: usize,
) -> Node {
    Node::section(
        Some(group),
        Cell::text(label),
        parts.into_iter().flatten().collect(),
        total,
        w,
    )
}

/// `BalanceSheet`.
fn balance_sheet(ctx: &Ctx, books: &Books, req: &ReportRequest) -> Built {
    let ps = periods(req.start, req.end, req.by_month, false);
    let w = ps.len();
    let s = |g, l, t: &'static [&'static str]| bs_section(ctx, books, &ps, (g, l, t));
    let current_assets = group_section(
        "CurrentAssets",
        "Current Assets",
        "Total Current Assets",
        vec![
            s("BankAccounts", "Bank Accounts", &["Bank"]),
            s("AR", "Accounts Receivable", &["Accounts Receivable"]),
            s(
                "OtherCurrentAssets",
                "Other Current Assets",
                &["Other Current Asset"],
            ),
        ],
        w,
    );
    let assets = vec![
        Some(current_assets),
        s("FixedAssets", "Fixed Assets", &["Fixed Asset"]),
        s("OtherAssets", "Other Assets", &["Other Asset"]),
    ];
    let current_liabilities = group_section(
        "CurrentLiabilities",
        "Current Liabilities",
        "Total Current Liabilities",
        vec![
            s("AP", "Accounts Payable", &["Accounts Payable"]),
            s("CreditCards", "Credit Cards", &["Credit Card"]),
            s(
                "OtherCurrentLiabilities",
                "Other Current Liabilities",
                &["Other Current Liability"],
            ),
        ],
        w,
    );
    let liabilities = group_section(
        "Liabilities",
        "Liabilities",
        "Total Liabilities",
        vec![
            Some(current_liabilities),
            s(
                "LongTermLiabilities",
                "Long-Term Liabilities",
                &["Long Term Liability"],
            ),
        ],
        w,
    );
    let equity = equity_section(ctx, books, &ps);
    let rows = vec![
        group_section("TotalAssets", "ASSETS", "TOTAL ASSETS", assets, w),
        group_section(
            "TotalLiabilitiesAndEquity",
            "LIABILITIES AND EQUITY",
            "TOTAL LIABILITIES AND EQUITY",
            vec![Some(liabilities), Some(equity)],
            w,
        ),
    ];
    let info = period_info(req, books, true);
    (period_columns("Account", &ps, true), rows, w, info)
}

/// Equity: the equity accounts, Retained Earnings (profit and loss before the fiscal year
/// plus the account's own postings) and Net Income (the fiscal year to date).
fn equity_section(ctx: &Ctx, books: &Books, ps: &[Period]) -> Node {
    let mut rows =
        bs_section(ctx, books, ps, ("Equity", "Equity", &["Equity"])).map_or_else(Vec::new, |n| {
            match n {
                Node::Section { children, .. } => children,
                other => vec![other],
            }
        });
    let re = retained_earnings_account(ctx);
    let retained: Vec<i64> = ps
        .iter()
        .map(|p| {
            let own = re.map_or(0, |a| -books.balance(a, p.end));
            own - books.pl_activity(i64::MIN / 4, fiscal_start(p.end) - 1)
        })
        .collect();
    let net: Vec<i64> = ps
        .iter()
        .map(|p| -books.pl_activity(fiscal_start(p.end), p.end))
        .collect();
    let label = re.map_or_else(|| "Retained Earnings".to_owned(), |a| account_name(ctx, a));
    rows.push(Node::data(
        label,
        re,
        retained.into_iter().map(Cell::Money).collect(),
    ));
    let mut ni = Node::data(
        "Net Income",
        None,
        net.into_iter().map(Cell::Money).collect(),
    );
    if let Node::Data { group, .. } = &mut ni {
        *group = Some("NetIncome");
    }
    rows.push(ni);
    Node::section(
        Some("Equity"),
        Cell::text("Equity"),
        rows,
        "Total Equity",
        ps.len(),
    )
}

/// `TrialBalance` as of `end`.
fn trial_balance(ctx: &Ctx, books: &Books, req: &ReportRequest) -> Built {
    let re = retained_earnings_account(ctx);
    let prior = books.pl_activity(i64::MIN / 4, fiscal_start(req.end) - 1);
    let mut balances: Vec<(u64, i64)> = books
        .accounts()
        .map(|a| (a, books.closing(a, req.end)))
        .collect();
    if let Some(a) = re {
        match balances.iter_mut().find(|(x, _)| *x == a) {
            Some((_, b)) => *b += prior,
            None => balances.push((a, prior)),
        }
    }
    balances.sort_unstable();
    let side = |b: i64| {
        if b >= 0 {
            vec![Cell::Money(b), Cell::Blank]
        } else {
            vec![Cell::Blank, Cell::Money(-b)]
        }
    };
    let mut rows: Vec<Node> = balances
        .iter()
        .filter(|(_, b)| *b != 0)
        .map(|&(a, b)| Node::data(account_name(ctx, a), Some(a), side(b)))
        .collect();
    if re.is_none() && prior != 0 {
        rows.push(Node::data("Retained Earnings", None, side(prior)));
    }
    let sums = sum_rows(&rows, 2);
    rows.push(Node::total("GrandTotal", "TOTAL", &sums));
    let columns = plain_columns(&[("", "Account"), ("Debit", "Money"), ("Credit", "Money")]);
    (columns, rows, 2, period_info(req, books, false))
}

/// The GL's name of a transaction type.
fn txn_type(kind: Kind) -> &'static str {
    match kind {
        Kind::SalesReceipt => "Sales Receipt",
        Kind::RefundReceipt => "Refund",
        Kind::CreditMemo => "Credit Memo",
        Kind::BillPayment => "Bill Payment",
        Kind::VendorCredit => "Vendor Credit",
        Kind::Purchase => "Expense",
        Kind::JournalEntry => "Journal Entry",
        k => k.name(),
    }
}

/// The name cell of a posting's customer or vendor.
fn party_cell(ctx: &Ctx, name: Option<(Kind, u64)>) -> Cell {
    match name {
        Some((Kind::Customer, id)) => Cell::Text(customer_profile(ctx.seed, id).display, Some(id)),
        Some((kind, id)) => Cell::Text(ref_name(ctx.seed, kind, id), Some(id)),
        None => Cell::Blank,
    }
}

/// `GeneralLedger`.
fn general_ledger(ctx: &Ctx, books: &Books, req: &ReportRequest) -> Built {
    let mut by_account: BTreeMap<u64, Vec<&Posting>> = BTreeMap::new();
    for p in books
        .postings
        .iter()
        .filter(|p| (req.start..=req.end).contains(&p.day))
    {
        by_account.entry(p.account).or_default().push(p);
    }
    let mut rows = Vec::new();
    for a in books.accounts() {
        let sign = natural_sign(a);
        let opening = sign * books.closing(a, req.start - 1);
        let opening = if is_pl(a) && fiscal_start(req.start) == req.start {
            0
        } else {
            opening
        };
        let lines = by_account.remove(&a).unwrap_or_default();
        if opening == 0 && lines.is_empty() {
            continue;
        }
        let mut children = vec![Node::data("Beginning Balance", None, {
            let mut v = vec![Cell::Blank; 6];
            v.push(Cell::Money(opening));
            v
        })];
        let (mut running, mut total) = (opening, 0);
        for p in lines {
            running += sign * p.cents;
            total += sign * p.cents;
            children.push(gl_row(ctx, p, sign, running));
        }
        let name = account_name(ctx, a);
        let mut summary = vec![Cell::text(format!("Total for {name}"))];
        summary.extend(vec![Cell::Blank; 5]);
        summary.extend([Cell::Money(total), Cell::Blank]);
        rows.push(Node::Section {
            group: None,
            header: Cell::Text(name, Some(a)),
            children,
            summary,
        });
    }
    let columns = plain_columns(&[
        ("Date", "tx_date"),
        ("Transaction Type", "txn_type"),
        ("Num", "doc_num"),
        ("Name", "name"),
        ("Memo/Description", "memo"),
        ("Split", "split_acc"),
        ("Amount", "subt_nat_amount"),
        ("Balance", "rbal_nat_amount"),
    ]);
    (columns, rows, 7, period_info(req, books, false))
}

/// One transaction row of the general ledger.
fn gl_row(ctx: &Ctx, p: &Posting, sign: i64, running: i64) -> Node {
    let split = match p.split {
        Some(s) => Cell::Text(account_name(ctx, s), Some(s)),
        None => Cell::text("-Split-"),
    };
    let cells = vec![
        Cell::Text(txn_type(p.kind).to_owned(), Some(p.txn)),
        p.doc.map_or(Cell::Blank, |d| Cell::text(d.to_string())),
        party_cell(ctx, p.name),
        Cell::text(p.memo),
        split,
        Cell::Money(sign * p.cents),
        Cell::Money(running),
    ];
    Node::data(date(p.day), None, cells)
}

/// `CashFlow`: cash is the Bank accounts.
fn cash_flow(ctx: &Ctx, books: &Books, req: &ReportRequest) -> Built {
    let ps = periods(req.start, req.end, req.by_month, true);
    let w = ps.len();
    // A non-cash balance sheet account adds the decrease of its debit balance.
    let change = |types: &[&str]| {
        let accounts = of_types(books, types);
        account_rows(ctx, &accounts, &ps, |a, p| {
            -books.activity(a, p.start, p.end)
        })
    };
    let net: Vec<i64> = ps
        .iter()
        .map(|p| -books.pl_activity(p.start, p.end))
        .collect();
    let adjustments = Node::section(
        Some("OperatingAdjustments"),
        Cell::text("Adjustments to reconcile Net Income to Net Cash provided by operations:"),
        change(&[
            "Accounts Receivable",
            "Other Current Asset",
            "Accounts Payable",
            "Credit Card",
            "Other Current Liability",
        ]),
        "Total Adjustments to reconcile Net Income to Net Cash provided by operations:",
        w,
    );
    let mut ni = Node::data(
        "Net Income",
        None,
        net.iter().map(|&c| Cell::Money(c)).collect(),
    );
    if let Node::Data { group, .. } = &mut ni {
        *group = Some("NetIncome");
    }
    let operating = Node::section(
        Some("OperatingActivities"),
        Cell::text("OPERATING ACTIVITIES"),
        vec![ni, adjustments],
        "Net cash provided by operating activities",
        w,
    );
    let investing = Node::section(
        Some("InvestingActivities"),
        Cell::text("INVESTING ACTIVITIES"),
        change(&["Fixed Asset", "Other Asset"]),
        "Net cash provided by investing activities",
        w,
    );
    let financing = Node::section(
        Some("FinancingActivities"),
        Cell::text("FINANCING ACTIVITIES"),
        change(&["Long Term Liability", "Equity"]),
        "Net cash provided by financing activities",
        w,
    );
    let increase = add(
        &add(&operating.sums(w), &investing.sums(w)),
        &financing.sums(w),
    );
    let banks = of_types(books, &["Bank"]);
    let cash_at = |day: i64| banks.iter().map(|&a| books.balance(a, day)).sum::<i64>();
    let beginning: Vec<i64> = ps.iter().map(|p| cash_at(p.start - 1)).collect();
    let ending = add(&beginning, &increase);
    let rows = vec![
        operating,
        investing,
        financing,
        Node::total("CashIncrease", "Net cash increase for period", &increase),
        Node::total("BeginningCash", "Cash at beginning of period", &beginning),
        Node::total("EndingCash", "Cash at end of period", &ending),
    ];
    let info = period_info(req, books, true);
    (period_columns("Account", &ps, true), rows, w, info)
}

/// The aging bucket of a document `late` days past due: 0 Current, 1 1-30, … 4 91+.
fn bucket(late: i64) -> usize {
    match late {
        ..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    }
}

/// `AgedReceivables` / `AgedPayables` at `report_date` (= `req.end`).
fn aging(ds: &Dataset, ctx: &Ctx, req: &ReportRequest) -> Built {
    let receivables = req.kind == ReportKind::AgedReceivables;
    let docs: Vec<OpenDoc> = if receivables {
        open_invoices(ds)
    } else {
        open_bills(ds)
    };
    let mut per: BTreeMap<u64, [i64; 6]> = BTreeMap::new();
    for d in docs.iter().filter(|d| d.day <= req.end) {
        let v = per.entry(d.party).or_default();
        v[bucket(req.end - d.due_day)] += d.balance_cents;
        v[5] += d.balance_cents;
    }
    let party_kind = if receivables {
        Kind::Customer
    } else {
        Kind::Vendor
    };
    let named: BTreeSet<(String, u64)> = per
        .keys()
        .map(|&id| match party_cell(ctx, Some((party_kind, id))) {
            Cell::Text(name, _) => (name, id),
            _ => (String::new(), id),
        })
        .collect();
    let mut rows: Vec<Node> = named
        .into_iter()
        .map(|(name, id)| {
            let v = per.get(&id).copied().unwrap_or_default();
            Node::data(
                name,
                Some(id),
                v.iter().map(|&c| Cell::money_or_blank(c)).collect(),
            )
        })
        .collect();
    let sums = sum_rows(&rows, 6);
    let no_data = rows.is_empty();
    rows.push(Node::total("GrandTotal", "TOTAL", &sums));
    let first = if receivables { "Customer" } else { "Vendor" };
    let columns = plain_columns(&[
        ("", first),
        ("Current", "Money"),
        ("1 - 30", "Money"),
        ("31 - 60", "Money"),
        ("61 - 90", "Money"),
        ("91 and over", "Money"),
        ("Total", "Money"),
    ]);
    let info = HeaderInfo {
        basis: None,
        start: req.end,
        end: req.end,
        summarize: None,
        report_date: Some(req.end),
        no_data,
    };
    (columns, rows, 6, info)
}
