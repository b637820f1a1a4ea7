//! The transactions beyond Invoice: Bill, BillPayment, CreditMemo, Deposit, Estimate,
//! JournalEntry, Payment, Purchase, PurchaseOrder, RefundReceipt, SalesReceipt, TimeActivity,
//! Transfer and VendorCredit, shaped like the samples of Intuit's API reference (and, for
//! Estimate and SalesReceipt, the recorded `cdc_response.json` and `batch_response.json`).
//!
//! A transaction's fields are a pure function of `(seed, entity, id)` and the row counts:
//! references point at ids that exist (a Payment pays an Invoice for that invoice's customer
//! and amount, a BillPayment pays a Bill to that bill's vendor; accounts have the right type,
//! see `lists::account_for`). Amounts are cents, rendered with two decimals; a journal entry's
//! debits equal its credits. `TxnDate` is the Pacific day of `CreateTime`.

use crate::data::{Kind, Row, customer_profile, invoice_profile, item_profile, txn_day};
use crate::json::{push_balance, push_money, push_str, push_u64, push_u64_str};
use crate::lists::{
    ACCOUNTS_PAYABLE, BANK, CHART, CREDIT_CARD, EXPENSE, INCOME, JOURNAL_DEBIT, UNDEPOSITED,
    account_for, ref_name, term_due_days,
};
use crate::render::{
    Ctx, close_item_line, common, customer_addresses, open_line, push_ref_field, push_ref_member,
    txn_head,
};
use crate::time::push_date;

/// Descriptions of expense lines.
const EXPENSES: [&str; 15] = [
    "Lumber",
    "Fuel",
    "Office supplies",
    "Monthly rent",
    "Equipment rental",
    "Advertising",
    "Electricity",
    "Sprinkler parts",
    "Insurance premium",
    "Phone bill",
    "Truck repair",
    "Fertilizer",
    "Garden tools",
    "Uniforms",
    "Software subscription",
];

/// Descriptions of deposit lines.
const DEPOSITS: [&str; 5] = [
    "Cash sales",
    "Customer deposit",
    "Interest",
    "Refund from supplier",
    "Sale of old equipment",
];

/// Descriptions of journal entries.
const JOURNALS: [&str; 6] = [
    "Depreciation",
    "Accrued wages",
    "Prepaid insurance",
    "Inventory adjustment",
    "Year-end reclassification",
    "Loan interest",
];

/// Descriptions of time activities.
const WORK: [&str; 8] = [
    "Lawn mowing",
    "Hedge trimming",
    "Sprinkler repair",
    "Design consultation",
    "Tree removal",
    "Snow removal",
    "Garden installation",
    "Site visit",
];

/// One line of a transaction.
#[derive(Debug, Clone)]
pub(crate) struct TxnLine {
    /// `ItemRef` (sales and item-based expense lines).
    pub(crate) item: Option<u64>,
    /// `AccountRef` (account-based expense, deposit and journal lines).
    pub(crate) account: Option<u64>,
    pub(crate) qty: u32,
    pub(crate) unit_cents: i64,
    pub(crate) amount_cents: i64,
    /// A journal line's `PostingType` is Credit (else Debit).
    pub(crate) credit: bool,
    pub(crate) desc: &'static str,
    /// `CustomerRef` of a billable expense line, `Entity` of a deposit line.
    pub(crate) customer: Option<u64>,
}

impl TxnLine {
    fn amount(amount_cents: i64, desc: &'static str) -> Self {
        Self {
            item: None,
            account: None,
            qty: 1,
            unit_cents: amount_cents,
            amount_cents,
            credit: false,
            desc,
            customer: None,
        }
    }
}

/// Everything about a transaction that does not change. Fields an entity does not have are
/// `None` / empty.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub(crate) doc_number: Option<u64>,
    pub(crate) customer: Option<u64>,
    pub(crate) vendor: Option<u64>,
    pub(crate) employee: Option<u64>,
    /// The main account: `APAccountRef`, `DepositToAccountRef`, a purchase's or bill
    /// payment's bank / card, a transfer's `FromAccountRef`.
    pub(crate) account: Option<u64>,
    /// A transfer's `ToAccountRef`.
    pub(crate) to_account: Option<u64>,
    /// The Invoice a Payment pays, the Bill a BillPayment pays.
    pub(crate) linked: Option<u64>,
    pub(crate) term: Option<u64>,
    pub(crate) payment_method: Option<u64>,
    /// A time activity's service item.
    pub(crate) item: Option<u64>,
    pub(crate) lines: Vec<TxnLine>,
    pub(crate) total_cents: i64,
    /// Settled: Balance 0 (Bill, VendorCredit, CreditMemo), Closed (PurchaseOrder).
    pub(crate) paid: bool,
    /// `DueDate` / `ExpirationDate` minus `TxnDate`.
    pub(crate) due_days: i64,
    /// A time activity's `Hours`, `Minutes` and `HourlyRate` (whole dollars).
    pub(crate) hours: u32,
    pub(crate) minutes: u32,
    pub(crate) rate: u64,
    /// Hash bits for the rest (payment types, statuses).
    pub(crate) h: u64,
}

impl Txn {
    /// A transaction with hash bits `h` and nothing else yet.
    fn blank(h: u64) -> Self {
        Self {
            doc_number: None,
            customer: None,
            vendor: None,
            employee: None,
            account: None,
            to_account: None,
            linked: None,
            term: None,
            payment_method: None,
            item: None,
            lines: Vec::new(),
            total_cents: 0,
            paid: (h >> 16).is_multiple_of(2),
            due_days: 30,
            hours: 0,
            minutes: 0,
            rate: 0,
            h,
        }
    }

    /// `Balance`, for the entities that have one.
    pub(crate) fn balance_cents(&self, kind: Kind) -> Option<i64> {
        match kind {
            Kind::Bill | Kind::VendorCredit | Kind::CreditMemo => {
                Some(if self.paid { 0 } else { self.total_cents })
            }
            Kind::SalesReceipt | Kind::RefundReceipt => Some(0),
            _ => None,
        }
    }

    /// How a Purchase was paid: `Cash`, `Check` or `CreditCard`.
    fn payment_type(&self) -> &'static str {
        ["Cash", "Check", "CreditCard"][((self.h >> 40) % 3) as usize]
    }

    /// Whether a BillPayment was paid by check (else credit card).
    fn by_check(&self) -> bool {
        !(self.h >> 40).is_multiple_of(4)
    }
}

/// Sales forms: item lines, a customer, the invoice layout.
fn is_sales_form(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::CreditMemo | Kind::Estimate | Kind::SalesReceipt | Kind::RefundReceipt
    )
}

/// Whether the entity has `DocNumber`.
pub(crate) fn has_doc_number(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Payment | Kind::Deposit | Kind::Transfer | Kind::TimeActivity
    )
}

/// The chart slot of an account id.
fn account_type_slot(id: u64) -> usize {
    (id.saturating_sub(1) % CHART.len() as u64) as usize
}

fn line_hash(ctx: &Ctx, kind: Kind, id: u64, line: u64) -> u64 {
    ctx.hash(kind.profile_salt() + 1 + line, id)
}

/// 1–4 item lines priced at the items' prices (`cost`: their purchase cost).
fn item_lines(ctx: &Ctx, kind: Kind, id: u64, h: u64, cost: bool) -> Vec<TxnLine> {
    (0..1 + (h >> 12) % 4)
        .map(|l| {
            let lh = line_hash(ctx, kind, id, l);
            let item = ctx.pick(Kind::Item, lh);
            let unit_cents = match item {
                Some(i) if cost => item_profile(ctx.seed, i).cost_cents.max(25),
                Some(i) => item_profile(ctx.seed, i).price_cents,
                None => 10_000,
            };
            let qty = 1 + ((lh >> 32) % 10) as u32;
            TxnLine {
                item,
                qty,
                unit_cents,
                amount_cents: i64::from(qty) * unit_cents,
                ..TxnLine::amount(0, "Services")
            }
        })
        .collect()
}

/// 1–3 account-based expense lines, some billable to a customer.
fn expense_lines(ctx: &Ctx, kind: Kind, id: u64, h: u64) -> Vec<TxnLine> {
    (0..1 + (h >> 12) % 3)
        .map(|l| {
            let lh = line_hash(ctx, kind, id, l);
            TxnLine {
                account: account_for(ctx, EXPENSE, lh),
                customer: ctx
                    .pick(Kind::Customer, lh >> 24)
                    .filter(|_| (lh >> 8).is_multiple_of(4)),
                ..TxnLine::amount(
                    500 + ((lh >> 32) % 200_000) as i64,
                    EXPENSES[((lh >> 16) % EXPENSES.len() as u64) as usize],
                )
            }
        })
        .collect()
}

/// A random amount between 10.00 and 5,010.00.
fn amount(h: u64) -> i64 {
    1_000 + (h % 500_000) as i64
}

/// `(ctx, entity, id)` → the transaction's profile.
pub(crate) fn txn_profile(ctx: &Ctx, kind: Kind, id: u64) -> Txn {
    let mut t = Txn::blank(ctx.hash(kind.profile_salt(), id));
    match kind {
        k if is_sales_form(k) => sales_form_profile(ctx, kind, id, &mut t),
        Kind::Bill | Kind::VendorCredit | Kind::Purchase => expense_profile(ctx, kind, id, &mut t),
        Kind::PurchaseOrder => purchase_order_profile(ctx, id, &mut t),
        Kind::Payment => payment_profile(ctx, &mut t),
        Kind::BillPayment => bill_payment_profile(ctx, id, &mut t),
        Kind::Deposit => deposit_profile(ctx, id, &mut t),
        Kind::Transfer => transfer_profile(ctx, &mut t),
        Kind::JournalEntry => journal_entry_profile(ctx, id, &mut t),
        _ => time_activity_profile(ctx, &mut t),
    }
    t.total_cents = match kind {
        Kind::TimeActivity => 0,
        // Debits only: the credit line balances them.
        Kind::JournalEntry => t
            .lines
            .iter()
            .filter(|l| !l.credit)
            .map(|l| l.amount_cents)
            .sum(),
        _ => t.lines.iter().map(|l| l.amount_cents).sum(),
    };
    t
}

/// The transaction as it is now: its profile with an admin amount change applied to the first
/// line (and so the total).
pub(crate) fn txn_of_row(ctx: &Ctx, kind: Kind, id: u64, row: &Row) -> Txn {
    let mut t = txn_profile(ctx, kind, id);
    if row.amount_delta_cents != 0
        && let Some(first) = t.lines.first_mut()
    {
        first.amount_cents += row.amount_delta_cents;
        first.unit_cents = first.amount_cents;
        t.total_cents += row.amount_delta_cents;
    }
    t
}

/// CreditMemo, Estimate, SalesReceipt, RefundReceipt: a customer and item lines; the receipts
/// also a payment method and the account the money went to.
fn sales_form_profile(ctx: &Ctx, kind: Kind, id: u64, t: &mut Txn) {
    let h = t.h;
    t.doc_number = Some(1000 + id);
    t.customer = ctx.pick(Kind::Customer, h >> 8);
    t.lines = item_lines(ctx, kind, id, h, false);
    if matches!(kind, Kind::SalesReceipt | Kind::RefundReceipt) {
        t.payment_method = ctx.pick(Kind::PaymentMethod, h >> 20);
        let to = if kind == Kind::SalesReceipt {
            UNDEPOSITED
        } else {
            BANK
        };
        t.account = account_for(ctx, to, h >> 4);
    }
}

/// Bill, VendorCredit, Purchase: a vendor and account-based expense lines; a purchase is paid
/// from a bank or card account, the others go to accounts payable.
fn expense_profile(ctx: &Ctx, kind: Kind, id: u64, t: &mut Txn) {
    let h = t.h;
    t.vendor = ctx.pick(Kind::Vendor, h >> 8);
    t.lines = expense_lines(ctx, kind, id, h);
    if kind == Kind::Purchase {
        let from = if t.payment_type() == "CreditCard" {
            CREDIT_CARD
        } else {
            BANK
        };
        t.account = account_for(ctx, from, h >> 4);
        t.doc_number = (t.payment_type() == "Check").then_some(100 + id);
    } else {
        t.account = account_for(ctx, ACCOUNTS_PAYABLE, h >> 4);
        t.doc_number = Some(10_000 + (h >> 24) % 90_000);
    }
    if kind == Kind::Bill {
        t.term = ctx.pick(Kind::Term, h >> 28);
        t.due_days = t.term.map_or(30, |term| term_due_days(ctx.seed, term));
    }
}

fn purchase_order_profile(ctx: &Ctx, id: u64, t: &mut Txn) {
    let h = t.h;
    t.doc_number = Some(1000 + id);
    t.vendor = ctx.pick(Kind::Vendor, h >> 8);
    t.account = account_for(ctx, ACCOUNTS_PAYABLE, h >> 4);
    t.lines = item_lines(ctx, Kind::PurchaseOrder, id, h, true);
}

/// Pays an invoice in full, for that invoice's customer (or, without invoices, a random
/// amount of a random customer).
fn payment_profile(ctx: &Ctx, t: &mut Txn) {
    let h = t.h;
    t.account = account_for(ctx, UNDEPOSITED, h >> 4);
    t.payment_method = ctx.pick(Kind::PaymentMethod, h >> 20);
    t.linked = ctx.pick(Kind::Invoice, h >> 8);
    let total = match t.linked {
        Some(inv) => {
            let p = invoice_profile(
                ctx.seed,
                inv,
                ctx.count(Kind::Customer),
                ctx.count(Kind::Item),
            );
            t.customer = p.customer_id;
            p.total_cents
        }
        None => {
            t.customer = ctx.pick(Kind::Customer, h >> 28);
            amount(h >> 30)
        }
    };
    t.lines = vec![TxnLine::amount(total, "")];
}

/// Pays a bill in full, to that bill's vendor, by check or credit card.
fn bill_payment_profile(ctx: &Ctx, id: u64, t: &mut Txn) {
    let h = t.h;
    t.linked = ctx.pick(Kind::Bill, h >> 8);
    let total = match t.linked {
        Some(bill) => {
            let b = txn_profile(ctx, Kind::Bill, bill);
            t.vendor = b.vendor;
            b.lines.iter().map(|l| l.amount_cents).sum()
        }
        None => {
            t.vendor = ctx.pick(Kind::Vendor, h >> 28);
            amount(h >> 30)
        }
    };
    let from = if t.by_check() { BANK } else { CREDIT_CARD };
    t.account = account_for(ctx, from, h >> 4);
    t.doc_number = t.by_check().then_some(100 + id);
    t.lines = vec![TxnLine::amount(total, "")];
}

/// 1–3 income lines into a bank account, most of them from a customer.
fn deposit_profile(ctx: &Ctx, id: u64, t: &mut Txn) {
    let h = t.h;
    t.account = account_for(ctx, BANK, h >> 4);
    t.lines = (0..1 + (h >> 12) % 3)
        .map(|l| {
            let lh = line_hash(ctx, Kind::Deposit, id, l);
            TxnLine {
                account: account_for(ctx, INCOME, lh),
                customer: ctx
                    .pick(Kind::Customer, lh >> 24)
                    .filter(|_| !(lh >> 8).is_multiple_of(3)),
                ..TxnLine::amount(
                    amount(lh >> 30),
                    DEPOSITS[((lh >> 16) % DEPOSITS.len() as u64) as usize],
                )
            }
        })
        .collect();
}

/// From one bank account of the chart to the other (checking ↔ savings).
fn transfer_profile(ctx: &Ctx, t: &mut Txn) {
    let h = t.h;
    let n = ctx.count(Kind::Account) as u64;
    t.account = account_for(ctx, BANK, h >> 4);
    let other: &[usize] = match t.account.map(account_type_slot) {
        Some(0) => &BANK[1..],
        _ => &BANK[..1],
    };
    t.to_account = account_for(ctx, other, h >> 6).map(|to| match t.account {
        Some(from) if from == to && n > 1 => from % n + 1,
        _ => to,
    });
    t.lines = vec![TxnLine::amount(amount(h >> 30), "")];
}

/// 1–2 debit lines and one bank credit line that balances them.
fn journal_entry_profile(ctx: &Ctx, id: u64, t: &mut Txn) {
    let h = t.h;
    t.doc_number = Some(id);
    let desc = JOURNALS[((h >> 36) % JOURNALS.len() as u64) as usize];
    let mut lines: Vec<TxnLine> = (0..1 + (h >> 12) % 2)
        .map(|l| {
            let lh = line_hash(ctx, Kind::JournalEntry, id, l);
            TxnLine {
                account: account_for(ctx, JOURNAL_DEBIT, lh),
                ..TxnLine::amount(amount(lh >> 30), desc)
            }
        })
        .collect();
    let total = lines.iter().map(|l| l.amount_cents).sum();
    lines.push(TxnLine {
        account: account_for(ctx, BANK, h >> 4),
        credit: true,
        ..TxnLine::amount(total, desc)
    });
    t.lines = lines;
}

/// TimeActivity: mostly employees, some contractors (vendors); some billable to a customer.
fn time_activity_profile(ctx: &Ctx, t: &mut Txn) {
    let h = t.h;
    let by_vendor = ctx.count(Kind::Employee) == 0 || (h >> 4).is_multiple_of(5);
    if by_vendor {
        t.vendor = ctx.pick(Kind::Vendor, h >> 8);
    } else {
        t.employee = ctx.pick(Kind::Employee, h >> 8);
    }
    if !(h >> 20).is_multiple_of(3) {
        t.customer = ctx.pick(Kind::Customer, h >> 24);
        t.item = ctx.pick(Kind::Item, h >> 40);
    }
    t.hours = ((h >> 32) % 9) as u32;
    t.minutes = [0, 15, 30, 45][((h >> 36) % 4) as usize];
    if t.hours == 0 && t.minutes == 0 {
        t.minutes = 30;
    }
    t.rate = 25 + (h >> 44) % 126;
    t.lines = vec![TxnLine::amount(
        0,
        WORK[((h >> 50) % WORK.len() as u64) as usize],
    )];
}

/// Appends the entity object `{…}` of a transaction.
pub(crate) fn render(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, row: &Row) {
    let t = txn_of_row(ctx, kind, id, row);
    let day = txn_day(row.created);
    match kind {
        k if is_sales_form(k) => sales_form(out, ctx, k, id, row, &t, day),
        Kind::Bill | Kind::VendorCredit | Kind::Purchase => {
            expense(out, ctx, kind, id, row, &t, day)
        }
        Kind::PurchaseOrder => purchase_order(out, ctx, id, row, &t, day),
        Kind::Payment => payment(out, ctx, id, row, &t, day),
        Kind::BillPayment => bill_payment(out, ctx, id, row, &t, day),
        Kind::Deposit => deposit(out, ctx, id, row, &t, day),
        Kind::Transfer => transfer(out, ctx, id, row, &t, day),
        Kind::JournalEntry => journal_entry(out, ctx, id, row, &t, day),
        _ => time_activity(out, ctx, id, row, &t, day),
    }
}

fn customer_name(ctx: &Ctx, id: u64) -> String {
    customer_profile(ctx.seed, id).display
}

fn item_name(ctx: &Ctx, id: u64) -> String {
    item_profile(ctx.seed, id).name
}

/// `,"Key":{"value":…,"name":…}` of a list row.
fn list_ref(out: &mut String, ctx: &Ctx, key: &str, kind: Kind, id: Option<u64>) {
    if let Some(id) = id {
        push_ref_field(out, key, id, &ref_name(ctx.seed, kind, id));
    }
}

fn account_ref(out: &mut String, ctx: &Ctx, key: &str, id: Option<u64>) {
    list_ref(out, ctx, key, Kind::Account, id);
}

/// `"Key":{"value":…,"name":…}` of an account, without the leading comma.
fn push_account_member(out: &mut String, ctx: &Ctx, key: &str, id: u64) {
    push_ref_member(out, key, id, &ref_name(ctx.seed, Kind::Account, id));
}

fn customer_ref(out: &mut String, ctx: &Ctx, id: Option<u64>) {
    if let Some(c) = id {
        push_ref_field(out, "CustomerRef", c, &customer_name(ctx, c));
    }
}

/// Sales item lines and their subtotal line, as invoices have them.
fn push_item_lines(out: &mut String, ctx: &Ctx, t: &Txn, detail: &str) {
    out.push_str(",\"Line\":[");
    for (n, line) in t.lines.iter().enumerate() {
        let name = line.item.map(|i| item_name(ctx, i));
        let num = n as u64 + 1;
        let desc = name.as_deref().unwrap_or(line.desc);
        open_line(out, num, Some(num), desc, line.amount_cents, detail);
        if detail == "ItemBasedExpenseLineDetail" {
            out.push_str("\"BillableStatus\":\"NotBillable\",");
        }
        let item = line.item.zip(name.as_deref());
        close_item_line(out, item, line.unit_cents, line.qty);
        if n + 1 < t.lines.len() {
            out.push(',');
        }
    }
    if detail == "SalesItemLineDetail" {
        out.push_str(",{\"Amount\":");
        push_money(out, t.total_cents);
        out.push_str(",\"DetailType\":\"SubTotalLineDetail\",\"SubTotalLineDetail\":{}}");
    }
    out.push(']');
}

/// CreditMemo, Estimate, SalesReceipt, RefundReceipt.
fn sales_form(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push('{');
    txn_head(out, id, row, t.doc_number, day, true);
    if kind == Kind::Estimate {
        out.push_str(",\"TxnStatus\":\"");
        out.push_str(["Pending", "Accepted", "Closed", "Rejected"][((t.h >> 44) % 4) as usize]);
        out.push('"');
    }
    if matches!(kind, Kind::Estimate | Kind::CreditMemo) {
        out.push_str(",\"LinkedTxn\":[]");
    }
    push_item_lines(out, ctx, t, "SalesItemLineDetail");
    out.push_str(",\"TxnTaxDetail\":{\"TotalTax\":0}");
    customer_ref(out, ctx, t.customer);
    if let Some(c) = t.customer {
        if kind != Kind::RefundReceipt {
            out.push_str(
                ",\"CustomerMemo\":{\"value\":\"Thank you for your business and have a great day!\"}",
            );
        }
        customer_addresses(out, ctx.seed, c);
    }
    if kind == Kind::Estimate {
        out.push_str(",\"ExpirationDate\":\"");
        push_date(out, day + t.due_days);
        out.push('"');
    }
    out.push_str(",\"TotalAmt\":");
    push_money(out, t.total_cents);
    out.push_str(",\"ApplyTaxAfterDiscount\":false,\"PrintStatus\":\"");
    out.push_str(if kind == Kind::RefundReceipt {
        "NotSet"
    } else {
        "NeedToPrint"
    });
    out.push_str("\",\"EmailStatus\":\"NotSet\"");
    if let Some(c) = t.customer.filter(|_| kind != Kind::RefundReceipt) {
        out.push_str(",\"BillEmail\":{\"Address\":");
        push_str(out, &customer_profile(ctx.seed, c).email);
        out.push('}');
    }
    if let Some(balance) = t.balance_cents(kind) {
        out.push_str(",\"Balance\":");
        push_balance(out, balance);
    }
    if kind == Kind::CreditMemo {
        out.push_str(",\"RemainingCredit\":");
        push_balance(out, t.balance_cents(kind).unwrap_or(0));
    }
    if matches!(kind, Kind::SalesReceipt | Kind::RefundReceipt) {
        list_ref(
            out,
            ctx,
            "PaymentMethodRef",
            Kind::PaymentMethod,
            t.payment_method,
        );
        if kind == Kind::SalesReceipt {
            out.push_str(",\"PaymentRefNum\":\"");
            push_u64(out, 10_000 + (t.h >> 24) % 90_000);
            out.push('"');
        }
        account_ref(out, ctx, "DepositToAccountRef", t.account);
    }
    out.push('}');
}

/// Account-based expense lines.
fn push_expense_lines(out: &mut String, ctx: &Ctx, t: &Txn) {
    out.push_str(",\"Line\":[");
    for (n, line) in t.lines.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let detail = "AccountBasedExpenseLineDetail";
        open_line(
            out,
            n as u64 + 1,
            None,
            line.desc,
            line.amount_cents,
            detail,
        );
        if let Some(c) = line.customer {
            push_ref_member(out, "CustomerRef", c, &customer_name(ctx, c));
            out.push(',');
        }
        if let Some(a) = line.account {
            push_account_member(out, ctx, "AccountRef", a);
            out.push(',');
        }
        out.push_str("\"BillableStatus\":\"");
        out.push_str(if line.customer.is_some() {
            "Billable"
        } else {
            "NotBillable"
        });
        out.push_str("\",\"TaxCodeRef\":{\"value\":\"NON\"}}}");
    }
    out.push(']');
}

/// Bill, VendorCredit, Purchase.
fn expense(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push('{');
    if kind == Kind::Purchase {
        out.push_str("\"PaymentType\":\"");
        out.push_str(t.payment_type());
        out.push('"');
        account_ref(out, ctx, "AccountRef", t.account);
        if let Some(v) = t.vendor {
            out.push_str(",\"EntityRef\":{\"value\":");
            push_u64_str(out, v);
            out.push_str(",\"name\":");
            push_str(out, &ref_name(ctx.seed, Kind::Vendor, v));
            out.push_str(",\"type\":\"Vendor\"}");
        }
        if t.payment_type() == "CreditCard" {
            out.push_str(",\"Credit\":false");
        }
        out.push(',');
    }
    txn_head(out, id, row, t.doc_number, day, false);
    if kind == Kind::Bill {
        out.push_str(",\"LinkedTxn\":[]");
    }
    push_expense_lines(out, ctx, t);
    if kind != Kind::Purchase {
        list_ref(out, ctx, "VendorRef", Kind::Vendor, t.vendor);
        account_ref(out, ctx, "APAccountRef", t.account);
    }
    if kind == Kind::Bill {
        list_ref(out, ctx, "SalesTermRef", Kind::Term, t.term);
        out.push_str(",\"DueDate\":\"");
        push_date(out, day + t.due_days);
        out.push('"');
    }
    out.push_str(",\"TotalAmt\":");
    push_money(out, t.total_cents);
    if let Some(balance) = t.balance_cents(kind) {
        out.push_str(",\"Balance\":");
        push_balance(out, balance);
    }
    out.push('}');
}

fn purchase_order(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push('{');
    txn_head(out, id, row, t.doc_number, day, false);
    push_item_lines(out, ctx, t, "ItemBasedExpenseLineDetail");
    list_ref(out, ctx, "VendorRef", Kind::Vendor, t.vendor);
    account_ref(out, ctx, "APAccountRef", t.account);
    out.push_str(",\"TotalAmt\":");
    push_money(out, t.total_cents);
    out.push_str(",\"POStatus\":\"");
    out.push_str(if t.paid { "Closed" } else { "Open" });
    out.push_str("\",\"EmailStatus\":\"NotSet\"}");
}

/// `"Line":[{"Amount":…,"LinkedTxn":[{"TxnId":…,"TxnType":…}]}]` (empty without a target).
fn push_linked_line(out: &mut String, t: &Txn, txn_type: &str) {
    out.push_str(",\"Line\":[");
    if let Some(target) = t.linked {
        out.push_str("{\"Amount\":");
        push_money(out, t.total_cents);
        out.push_str(",\"LinkedTxn\":[{\"TxnId\":");
        push_u64_str(out, target);
        out.push_str(",\"TxnType\":\"");
        out.push_str(txn_type);
        out.push_str("\"}]}");
    }
    out.push(']');
}

fn payment(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"TotalAmt\":");
    push_money(out, t.total_cents);
    out.push_str(",\"UnappliedAmt\":");
    push_balance(out, if t.linked.is_some() { 0 } else { t.total_cents });
    out.push_str(",\"ProcessPayment\":false");
    customer_ref(out, ctx, t.customer);
    account_ref(out, ctx, "DepositToAccountRef", t.account);
    out.push(',');
    txn_head(out, id, row, t.doc_number, day, false);
    list_ref(
        out,
        ctx,
        "PaymentMethodRef",
        Kind::PaymentMethod,
        t.payment_method,
    );
    out.push_str(",\"PaymentRefNum\":\"");
    push_u64(out, 1000 + (t.h >> 24) % 9000);
    out.push('"');
    push_linked_line(out, t, "Invoice");
    out.push('}');
}

fn bill_payment(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"TotalAmt\":");
    push_money(out, t.total_cents);
    list_ref(out, ctx, "VendorRef", Kind::Vendor, t.vendor);
    if t.by_check() {
        out.push_str(",\"PayType\":\"Check\",\"CheckPayment\":{");
        if let Some(a) = t.account {
            push_account_member(out, ctx, "BankAccountRef", a);
            out.push(',');
        }
        out.push_str("\"PrintStatus\":\"NotSet\"}");
    } else {
        out.push_str(",\"PayType\":\"CreditCard\",\"CreditCardPayment\":{");
        if let Some(a) = t.account {
            push_account_member(out, ctx, "CCAccountRef", a);
        }
        out.push('}');
    }
    out.push(',');
    txn_head(out, id, row, t.doc_number, day, false);
    push_linked_line(out, t, "Bill");
    out.push('}');
}

fn deposit(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"TotalAmt\":");
    push_money(out, t.total_cents);
    account_ref(out, ctx, "DepositToAccountRef", t.account);
    out.push(',');
    txn_head(out, id, row, t.doc_number, day, false);
    out.push_str(",\"Line\":[");
    for (n, line) in t.lines.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let num = n as u64 + 1;
        let detail = "DepositLineDetail";
        open_line(out, num, Some(num), line.desc, line.amount_cents, detail);
        let mut first = true;
        if let Some(c) = line.customer {
            out.push_str("\"Entity\":{\"value\":");
            push_u64_str(out, c);
            out.push_str(",\"name\":");
            push_str(out, &customer_name(ctx, c));
            out.push_str(",\"type\":\"CUSTOMER\"}");
            first = false;
        }
        if let Some(a) = line.account {
            if !first {
                out.push(',');
            }
            push_account_member(out, ctx, "AccountRef", a);
        }
        out.push_str("}}");
    }
    out.push_str("]}");
}

fn transfer(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"Amount\":");
    push_money(out, t.total_cents);
    account_ref(out, ctx, "FromAccountRef", t.account);
    account_ref(out, ctx, "ToAccountRef", t.to_account);
    out.push(',');
    txn_head(out, id, row, t.doc_number, day, false);
    out.push('}');
}

fn journal_entry(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"Adjustment\":false,");
    txn_head(out, id, row, t.doc_number, day, false);
    out.push_str(",\"Line\":[");
    for (n, line) in t.lines.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let detail = "JournalEntryLineDetail";
        open_line(out, n as u64, None, line.desc, line.amount_cents, detail);
        out.push_str("\"PostingType\":\"");
        out.push_str(if line.credit { "Credit" } else { "Debit" });
        out.push('"');
        account_ref(out, ctx, "AccountRef", line.account);
        out.push_str("}}");
    }
    out.push_str("],\"TotalAmt\":");
    push_money(out, t.total_cents);
    out.push('}');
}

fn time_activity(out: &mut String, ctx: &Ctx, id: u64, row: &Row, t: &Txn, day: i64) {
    out.push_str("{\"TxnDate\":\"");
    push_date(out, day);
    out.push_str("\",\"NameOf\":\"");
    if t.employee.is_some() || t.vendor.is_none() {
        out.push_str("Employee\"");
        list_ref(out, ctx, "EmployeeRef", Kind::Employee, t.employee);
    } else {
        out.push_str("Vendor\"");
        list_ref(out, ctx, "VendorRef", Kind::Vendor, t.vendor);
    }
    customer_ref(out, ctx, t.customer);
    if let Some(item) = t.item {
        push_ref_field(out, "ItemRef", item, &item_name(ctx, item));
    }
    out.push_str(",\"BillableStatus\":\"");
    out.push_str(if t.customer.is_some() {
        "Billable"
    } else {
        "NotBillable"
    });
    out.push_str("\",\"Taxable\":false,\"HourlyRate\":");
    push_u64(out, t.rate);
    out.push_str(",\"Hours\":");
    push_u64(out, u64::from(t.hours));
    out.push_str(",\"Minutes\":");
    push_u64(out, u64::from(t.minutes));
    out.push_str(",\"Description\":");
    let desc = t.lines.first().map_or("", |l| l.desc);
    if row.sync > 0 {
        push_str(out, &format!("{desc} (revision {})", row.sync));
    } else {
        push_str(out, desc);
    }
    out.push(',');
    common(out, id, row);
    out.push('}');
}
