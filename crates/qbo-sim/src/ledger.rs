//! The simulator's books: every live transaction posted as balanced lines (debits = credits) to
//! the chart of accounts the Account entity serves ([`CHART`], cycled by id), and the open
//! invoices and bills the aging reports age. Reports (`reports`) are computed from here.
//!
//! The rules are QuickBooks' as far as a transaction's JSON shows them, so that a Trial Balance
//! computed from the rendered entities alone (`qbo-backfill`'s `raw.qb_journal_lines` view)
//! equals the one this simulator answers.
//!
//! # Accounts
//! A line posts to the account the rendered transaction names (`AccountRef`,
//! `DepositToAccountRef`, `APAccountRef`, a bill payment's `BankAccountRef` / `CCAccountRef`,
//! …). A sales line posts to its item's `IncomeAccountRef`, which the rendered Item names:
//! Sales of Product Income (chart slot 12) for an `Inventory` item, Landscaping Services (13)
//! otherwise, each the lowest id of its slot. Accounts a transaction implies without naming
//! them are QuickBooks' defaults, the lowest id of their chart slot: Accounts Receivable
//! (slot 2) for invoices, payments and credit memos (which render no `ARAccountRef`), and
//! Accounts Payable (6) for bill payments (no `APAccountRef`). A transaction whose accounts do
//! not exist (a company without accounts) posts nothing.
//!
//! # Posting rules (accrual basis)
//! | Transaction | Debit | Credit |
//! |---|---|---|
//! | Invoice | A/R, `TotalAmt` | income per sales line |
//! | Payment | its deposit account (Undeposited Funds) | A/R |
//! | SalesReceipt | its deposit account | income per sales line |
//! | RefundReceipt | income per sales line | its bank account |
//! | CreditMemo | income per sales line | A/R |
//! | Bill | expense per line | its A/P account |
//! | BillPayment | A/P | its bank or card account |
//! | VendorCredit | its A/P account | expense per line |
//! | Purchase | expense per line | its bank or card account |
//! | Deposit | its bank account | each line's (income) account |
//! | Transfer | `ToAccountRef` | `FromAccountRef` |
//! | JournalEntry | its Debit lines | its Credit line |
//!
//! Estimate, PurchaseOrder and TimeActivity post nothing.
//!
//! # Cash basis (a simple, documented rule)
//! Income and expense count when money moves. Invoice, CreditMemo, Bill and VendorCredit post
//! nothing; a Payment credits the income accounts of the invoice it pays (its lines' amounts,
//! in proportion to the part of the invoice paid: here all of it) instead of A/R, and a
//! BillPayment debits the expense accounts of the bill it pays instead of A/P. A payment that
//! pays no invoice (a customer's credit) credits A/R, one that pays no bill debits A/P, as
//! under accrual. Everything else posts as under accrual.
//!
//! # Edits and deletions
//! The ledger is rebuilt from the rows on each report: a deleted transaction posts nothing; an
//! edited one posts its current amounts (`SimState::mutate` changes a note and the sync token,
//! not an amount; `SimState::change_amount` changes the first line of a Purchase, Deposit or
//! Transfer, and its postings with it).
//!
//! # What is not modelled
//! Invoices' and bills' `Balance` come from the profile (`paid`), independently of the
//! Payment and BillPayment rows (which pay a randomly chosen document). So the aging reports,
//! which age `Balance` as QuickBooks does, need not equal the A/R and A/P balances of the
//! ledger. Sales tax, inventory quantities and cost of goods sold on sales are not posted.

use crate::data::{Kind, Row, invoice_profile, item_profile, read, txn_day};
use crate::lists::{CHART, account_for, account_type, item_income_account, ref_name};
use crate::render::Ctx;
use crate::txns::{Txn, txn_of_row, txn_profile};

/// Chart slot of Accounts Receivable.
const AR: &[usize] = &[2];
/// Chart slot of Accounts Payable.
const AP: &[usize] = &[6];
/// Chart slot of Retained Earnings.
pub(crate) const RETAINED_EARNINGS: &[usize] = &[11];

/// Accrual or cash basis (`accounting_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    Accrual,
    Cash,
}

impl Basis {
    /// `Accrual` / `Cash`, as the report header writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Basis::Accrual => "Accrual",
            Basis::Cash => "Cash",
        }
    }
}

/// One posted line: `cents` is positive for a debit, negative for a credit.
#[derive(Debug, Clone)]
pub(crate) struct Posting {
    /// Transaction day (days since 1970-01-01, Pacific `TxnDate`).
    pub(crate) day: i64,
    pub(crate) account: u64,
    pub(crate) cents: i64,
    pub(crate) kind: Kind,
    pub(crate) txn: u64,
    pub(crate) doc: Option<u64>,
    /// The customer, vendor or employee the line is for.
    pub(crate) name: Option<(Kind, u64)>,
    pub(crate) memo: &'static str,
    /// The other account of a two-account transaction (the GL's `Split`), else `None`.
    pub(crate) split: Option<u64>,
}

/// An open invoice or bill, as the aging reports see it.
#[derive(Debug, Clone)]
pub(crate) struct OpenDoc {
    pub(crate) day: i64,
    pub(crate) due_day: i64,
    /// Customer (invoices) or vendor (bills).
    pub(crate) party: u64,
    pub(crate) balance_cents: i64,
}

/// The classification group of an account: `(AccountType, Classification)`.
pub(crate) fn account_class(id: u64) -> (&'static str, &'static str) {
    let (t, _, c) = account_type(id);
    (t, c)
}

/// Whether an account is a profit-and-loss account (Revenue or Expense).
pub(crate) fn is_pl(id: u64) -> bool {
    matches!(account_class(id).1, "Revenue" | "Expense")
}

/// An account's name (as references show it).
pub(crate) fn account_name(ctx: &Ctx, id: u64) -> String {
    ref_name(ctx.seed, Kind::Account, id)
}

/// The account of a chart role (lowest id of the slot), if the company has accounts.
pub(crate) fn role_account(ctx: &Ctx, slots: &[usize]) -> Option<u64> {
    account_for(ctx, slots, 0)
}

/// The retained-earnings account, when the chart reaches its slot.
pub(crate) fn retained_earnings_account(ctx: &Ctx) -> Option<u64> {
    let id = RETAINED_EARNINGS[0] as u64 + 1;
    (ctx.count(Kind::Account) as u64 >= id && id <= CHART.len() as u64).then_some(id)
}

/// The transactions that post, in the order their postings are built.
const POSTING_KINDS: [Kind; 12] = [
    Kind::Invoice,
    Kind::Payment,
    Kind::SalesReceipt,
    Kind::RefundReceipt,
    Kind::CreditMemo,
    Kind::Bill,
    Kind::BillPayment,
    Kind::VendorCredit,
    Kind::Purchase,
    Kind::Deposit,
    Kind::Transfer,
    Kind::JournalEntry,
];

/// `(account, cents)` lines of one transaction, before dating.
type Lines = Vec<(Option<u64>, i64)>;

/// Every posting of the live transactions on `basis`, sorted by day (then entity and id).
pub(crate) fn postings(ds: &crate::data::Dataset, basis: Basis) -> Vec<Posting> {
    let ctx = Ctx::new(ds);
    let mut out = Vec::new();
    for kind in POSTING_KINDS {
        let rows: Vec<Row> = read(ds.table(kind)).clone();
        for (i, row) in rows.iter().enumerate().filter(|(_, r)| !r.deleted) {
            post_txn(&ctx, kind, i as u64 + 1, row, basis, &mut out);
        }
    }
    out.sort_by_key(|p| (p.day, p.kind, p.txn));
    out
}

/// Appends the postings of one transaction (none when an account is missing).
fn post_txn(ctx: &Ctx, kind: Kind, id: u64, row: &Row, basis: Basis, out: &mut Vec<Posting>) {
    let (lines, doc, name, memo) = if kind == Kind::Invoice {
        let p = invoice_profile(
            ctx.seed,
            id,
            ctx.count(Kind::Customer),
            ctx.count(Kind::Item),
        );
        let lines = match basis {
            Basis::Cash => Vec::new(),
            Basis::Accrual => invoice_lines(ctx, id, true),
        };
        let name = p.customer_id.map(|c| (Kind::Customer, c));
        (lines, Some(p.doc_number), name, "")
    } else {
        let t = txn_of_row(ctx, kind, id, row);
        let name = t
            .customer
            .map(|c| (Kind::Customer, c))
            .or(t.vendor.map(|v| (Kind::Vendor, v)));
        let memo = t.lines.first().map_or("", |l| l.desc);
        (txn_lines(ctx, kind, &t, basis), t.doc_number, name, memo)
    };
    if lines.is_empty() || lines.iter().any(|(a, _)| a.is_none()) {
        return;
    }
    debug_assert_eq!(
        lines.iter().map(|(_, c)| c).sum::<i64>(),
        0,
        "{kind:?} {id}"
    );
    let accounts: Vec<u64> = lines.iter().filter_map(|(a, _)| *a).collect();
    let day = txn_day(row.created);
    for &(account, cents) in &lines {
        let Some(account) = account else { continue };
        let others: Vec<u64> = accounts.iter().copied().filter(|&a| a != account).collect();
        let split = match others.as_slice() {
            [first, rest @ ..] if rest.iter().all(|a| a == first) => Some(*first),
            _ => None,
        };
        out.push(Posting {
            day,
            account,
            cents,
            kind,
            txn: id,
            doc,
            name,
            memo,
            split,
        });
    }
}

/// The income account of a sales line: its item's `IncomeAccountRef`.
fn income_account(ctx: &Ctx, item: Option<u64>) -> Option<u64> {
    let item_type = match item {
        Some(i) if ctx.count(Kind::Item) > 0 => item_profile(ctx.seed, i).item_type,
        _ => "Service",
    };
    item_income_account(ctx, item_type)
}

/// An invoice: A/R debit and income credits (`with_ar`), or only the income credits (what a
/// cash-basis payment of it credits).
fn invoice_lines(ctx: &Ctx, id: u64, with_ar: bool) -> Lines {
    let p = invoice_profile(
        ctx.seed,
        id,
        ctx.count(Kind::Customer),
        ctx.count(Kind::Item),
    );
    let has_items = ctx.count(Kind::Item) > 0;
    let mut lines: Lines = p
        .lines
        .iter()
        .map(|l| {
            let item = has_items.then_some(l.item_id);
            (
                income_account(ctx, item),
                -(i64::from(l.qty) * l.unit_cents),
            )
        })
        .collect();
    if with_ar {
        lines.push((role_account(ctx, AR), p.total_cents));
    }
    lines
}

/// Lines of a sales form: each item line's income account with `sign` × its amount.
fn sales_lines(ctx: &Ctx, t: &Txn, sign: i64) -> Lines {
    t.lines
        .iter()
        .map(|l| (income_account(ctx, l.item), sign * l.amount_cents))
        .collect()
}

/// Lines of an account-based form: each line's own account with `sign` × its amount.
fn account_lines(t: &Txn, sign: i64) -> Lines {
    t.lines
        .iter()
        .map(|l| (l.account, sign * l.amount_cents))
        .collect()
}

/// The balanced lines of a transaction other than an invoice (see the module table).
fn txn_lines(ctx: &Ctx, kind: Kind, t: &Txn, basis: Basis) -> Lines {
    let total = t.total_cents;
    let cash = basis == Basis::Cash;
    let mut lines = match kind {
        Kind::Payment if cash => match t.linked {
            Some(inv) => invoice_lines(ctx, inv, false),
            // A customer's credit, not income yet.
            None => vec![(role_account(ctx, AR), -total)],
        },
        Kind::Payment => vec![(role_account(ctx, AR), -total)],
        Kind::SalesReceipt => sales_lines(ctx, t, -1),
        Kind::RefundReceipt => sales_lines(ctx, t, 1),
        Kind::CreditMemo | Kind::Bill | Kind::VendorCredit if cash => return Vec::new(),
        Kind::CreditMemo => sales_lines(ctx, t, 1),
        Kind::Bill | Kind::Purchase => account_lines(t, 1),
        Kind::VendorCredit => account_lines(t, -1),
        Kind::BillPayment => match t.linked {
            Some(bill) if cash => account_lines(&txn_profile(ctx, Kind::Bill, bill), 1),
            _ => vec![(role_account(ctx, AP), total)],
        },
        Kind::Deposit => account_lines(t, -1),
        Kind::Transfer => vec![(t.to_account, total)],
        Kind::JournalEntry => {
            return t
                .lines
                .iter()
                .map(|l| (l.account, if l.credit { -1 } else { 1 } * l.amount_cents))
                .collect();
        }
        _ => return Vec::new(),
    };
    // The main account takes the other side of the total.
    let main = match kind {
        Kind::Payment | Kind::SalesReceipt | Kind::Deposit | Kind::VendorCredit => total,
        Kind::CreditMemo => return with(lines, role_account(ctx, AR), -total),
        _ => -total,
    };
    lines.push((t.account, main));
    lines
}

fn with(mut lines: Lines, account: Option<u64>, cents: i64) -> Lines {
    lines.push((account, cents));
    lines
}

/// Open (unpaid) live invoices: `Balance` > 0, due 30 days after `TxnDate` as rendered.
pub(crate) fn open_invoices(ds: &crate::data::Dataset) -> Vec<OpenDoc> {
    let ctx = Ctx::new(ds);
    let rows: Vec<Row> = read(ds.table(Kind::Invoice)).clone();
    rows.iter()
        .enumerate()
        .filter(|(_, r)| !r.deleted)
        .filter_map(|(i, r)| {
            let p = invoice_profile(
                ctx.seed,
                i as u64 + 1,
                ctx.count(Kind::Customer),
                ctx.count(Kind::Item),
            );
            let day = txn_day(r.created);
            (!p.paid && p.total_cents != 0).then_some(OpenDoc {
                day,
                due_day: day + 30,
                party: p.customer_id?,
                balance_cents: p.total_cents,
            })
        })
        .collect()
}

/// Open (unpaid) live bills: `Balance` > 0, due `DueDate`.
pub(crate) fn open_bills(ds: &crate::data::Dataset) -> Vec<OpenDoc> {
    let ctx = Ctx::new(ds);
    let rows: Vec<Row> = read(ds.table(Kind::Bill)).clone();
    rows.iter()
        .enumerate()
        .filter(|(_, r)| !r.deleted)
        .filter_map(|(i, r)| {
            let t = txn_profile(&ctx, Kind::Bill, i as u64 + 1);
            let balance = t.balance_cents(Kind::Bill).unwrap_or(0);
            let day = txn_day(r.created);
            (balance != 0).then_some(OpenDoc {
                day,
                due_day: day + t.due_days,
                party: t.vendor?,
                balance_cents: balance,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use crate::data::Dataset;

    fn dataset() -> Dataset {
        Dataset::generate(&SimConfig {
            customers: 50,
            items: 20,
            invoices: 200,
            other_rows: 60,
            ..SimConfig::default()
        })
    }

    #[test]
    fn every_transaction_balances_on_both_bases() {
        let ds = dataset();
        for basis in [Basis::Accrual, Basis::Cash] {
            let p = postings(&ds, basis);
            assert!(!p.is_empty());
            let mut by_txn = std::collections::BTreeMap::<(Kind, u64), i64>::new();
            for x in &p {
                *by_txn.entry((x.kind, x.txn)).or_default() += x.cents;
            }
            assert!(by_txn.values().all(|&s| s == 0), "{basis:?}");
        }
    }

    #[test]
    fn cash_basis_has_no_receivables_or_payables() {
        let ds = dataset();
        let p = postings(&ds, Basis::Cash);
        assert!(p.iter().all(|x| !matches!(x.account, 3 | 7)));
        let a = postings(&ds, Basis::Accrual);
        assert!(a.iter().any(|x| x.account == 3) && a.iter().any(|x| x.account == 7));
    }

    #[test]
    fn an_amount_change_moves_the_postings_of_that_transaction_only() {
        use crate::data::ChangeError;
        let ds = dataset();
        let before = postings(&ds, Basis::Cash);
        ds.change_amount("Purchase", "3", 500, 2_000_000_000)
            .unwrap();
        let after = postings(&ds, Basis::Cash);
        let moved = |p: &[Posting], mine: bool| -> i64 {
            p.iter()
                .filter(|x| (x.kind == Kind::Purchase && x.txn == 3) == mine)
                .map(|x| x.cents.abs())
                .sum()
        };
        // 5.00 more debited to the expense, 5.00 more credited to the bank or card.
        assert_eq!(moved(&after, true) - moved(&before, true), 1000);
        assert_eq!(moved(&after, false), moved(&before, false));
        assert_eq!(after.iter().map(|x| x.cents).sum::<i64>(), 0);
        assert_eq!(
            ds.change_amount("Invoice", "1", 5, 0),
            Err(ChangeError::AmountNotChangeable)
        );
    }

    #[test]
    fn deleting_an_invoice_removes_its_postings() {
        let ds = dataset();
        let before = postings(&ds, Basis::Accrual);
        ds.delete("Invoice", "5", 2_000_000_000).unwrap();
        let after = postings(&ds, Basis::Accrual);
        let of_5 = |p: &[Posting]| {
            p.iter()
                .filter(|x| x.kind == Kind::Invoice && x.txn == 5)
                .count()
        };
        assert!(of_5(&before) > 0);
        assert_eq!(of_5(&after), 0);
        assert_eq!(before.len() - after.len(), of_5(&before));
    }
}
