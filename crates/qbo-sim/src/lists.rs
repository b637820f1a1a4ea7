//! The list (name) entities beyond Customer and Item: Account, Class, Department, Employee,
//! PaymentMethod, TaxCode, TaxRate, Term and Vendor, shaped like the samples of Intuit's API
//! reference (and, for Vendor, the recorded `batch_response.json`).
//!
//! As everywhere, a row's fields are a pure function of `(seed, entity, id)`. Names come from
//! fixed tables (mostly the names of Intuit's sample company), cycled with a ` 2`, ` 3`, …
//! suffix past the table's end so they stay unique; inactive rows get QBO's ` (deleted)`
//! suffix. Accounts follow a fixed chart ([`CHART`], by id), so transactions can pick an
//! account of the right type ([`account_for`]).

use crate::data::{FAMILY, GIVEN, Kind, Row, ascii_fold, txn_day};
use crate::json::{push_balance, push_price, push_str, push_u64};
use crate::render::{Ctx, DELETED, USD, address, common, push_ref, push_ref_field};
use crate::rng::hash3;
use crate::time::push_date;

/// The chart of accounts, cycled by id (account `n` is `CHART[(n - 1) % 25]`):
/// (`Name`, `AccountType`, `AccountSubType`, `Classification`).
pub(crate) const CHART: [(&str, &str, &str, &str); 25] = [
    ("Checking", "Bank", "Checking", "Asset"),
    ("Savings", "Bank", "Savings", "Asset"),
    (
        "Accounts Receivable (A/R)",
        "Accounts Receivable",
        "AccountsReceivable",
        "Asset",
    ),
    (
        "Undeposited Funds",
        "Other Current Asset",
        "UndepositedFunds",
        "Asset",
    ),
    (
        "Inventory Asset",
        "Other Current Asset",
        "Inventory",
        "Asset",
    ),
    ("Truck", "Fixed Asset", "Vehicles", "Asset"),
    (
        "Accounts Payable (A/P)",
        "Accounts Payable",
        "AccountsPayable",
        "Liability",
    ),
    ("Mastercard", "Credit Card", "CreditCard", "Liability"),
    (
        "Loan Payable",
        "Other Current Liability",
        "OtherCurrentLiabilities",
        "Liability",
    ),
    (
        "Notes Payable",
        "Long Term Liability",
        "NotesPayable",
        "Liability",
    ),
    (
        "Opening Balance Equity",
        "Equity",
        "OpeningBalanceEquity",
        "Equity",
    ),
    ("Retained Earnings", "Equity", "RetainedEarnings", "Equity"),
    (
        "Sales of Product Income",
        "Income",
        "SalesOfProductIncome",
        "Revenue",
    ),
    (
        "Landscaping Services",
        "Income",
        "ServiceFeeIncome",
        "Revenue",
    ),
    (
        "Interest Earned",
        "Other Income",
        "InterestEarned",
        "Revenue",
    ),
    (
        "Cost of Goods Sold",
        "Cost of Goods Sold",
        "SuppliesMaterialsCogs",
        "Expense",
    ),
    (
        "Advertising",
        "Expense",
        "AdvertisingPromotional",
        "Expense",
    ),
    (
        "Rent or Lease",
        "Expense",
        "RentOrLeaseOfBuildings",
        "Expense",
    ),
    ("Utilities", "Expense", "Utilities", "Expense"),
    ("Equipment Rental", "Expense", "EquipmentRental", "Expense"),
    (
        "Office Expenses",
        "Expense",
        "OfficeGeneralAdministrativeExpenses",
        "Expense",
    ),
    ("Job Materials", "Expense", "SuppliesMaterials", "Expense"),
    ("Insurance", "Expense", "Insurance", "Expense"),
    ("Travel", "Expense", "Travel", "Expense"),
    (
        "Penalties & Settlements",
        "Other Expense",
        "PenaltiesSettlements",
        "Expense",
    ),
];

/// Chart slots of bank accounts.
pub(crate) const BANK: &[usize] = &[0, 1];
/// Chart slot of Undeposited Funds (where received payments go).
pub(crate) const UNDEPOSITED: &[usize] = &[3];
/// Chart slot of Accounts Payable.
pub(crate) const ACCOUNTS_PAYABLE: &[usize] = &[6];
/// Chart slot of the credit card.
pub(crate) const CREDIT_CARD: &[usize] = &[7];
/// Chart slots of income accounts.
pub(crate) const INCOME: &[usize] = &[12, 13, 14];
/// Chart slots of expense accounts (cost of goods sold included).
pub(crate) const EXPENSE: &[usize] = &[15, 16, 17, 18, 19, 20, 21, 22, 23, 24];
/// Chart slots a journal entry debits: expenses and non-bank assets.
pub(crate) const JOURNAL_DEBIT: &[usize] = &[4, 5, 17, 19, 20, 22, 24];

/// Vendors: (`DisplayName`, `GivenName`, `FamilyName`); persons have a given name, companies
/// an empty one.
const VENDORS: [(&str, &str, &str); 30] = [
    ("Books by Bessie", "", ""),
    ("Brosnahan Insurance Agency", "", ""),
    ("Cal Telephone", "", ""),
    ("Chin's Gas and Oil", "", ""),
    ("Cigna Health Care", "", ""),
    ("Computers by Jenni", "", ""),
    ("Diego's Road Warrior Bodyshop", "", ""),
    ("EDD", "", ""),
    ("Ellis Equipment Rental", "", ""),
    ("Fidelity", "", ""),
    ("Hall Properties", "", ""),
    ("Hicks Hardware", "", ""),
    ("Lee Advertising", "", ""),
    ("Mahoney Mugs", "", ""),
    ("Met Life Dental", "", ""),
    ("National Eye Care", "", ""),
    ("Norton Lumber and Building Materials", "", ""),
    ("PG&E", "", ""),
    ("Robertson & Associates", "", ""),
    ("Squeaky Kleen Car Wash", "", ""),
    ("Tania's Nursery", "", ""),
    ("Tim Philip Masonry", "", ""),
    ("United States Treasury", "", ""),
    ("Bob's Burger Joint", "", ""),
    ("Müller Gartenbau GmbH", "", ""),
    ("Café \"Verde\" Supplies", "", ""),
    ("Tony Rondonuwu", "Tony", "Rondonuwu"),
    ("Pam Seitz", "Pam", "Seitz"),
    ("Søren Ødegaard", "Søren", "Ødegaard"),
    ("Amélie Dubois", "Amélie", "Dubois"),
];

const CLASSES: [&str; 12] = [
    "Landscaping",
    "Maintenance",
    "Installation",
    "Design",
    "Consulting",
    "Retail",
    "Wholesale",
    "Residential",
    "Commercial",
    "Municipal",
    "Seasonal",
    "Overhead",
];

const DEPARTMENTS: [&str; 12] = [
    "Garden Center",
    "Nursery",
    "Headquarters",
    "North Shop",
    "South Shop",
    "East Yard",
    "West Yard",
    "Online Store",
    "Warehouse",
    "Field Crew",
    "Bayshore",
    "Middlefield",
];

/// (`Name`, `Type`).
const PAYMENT_METHODS: [(&str, &str); 12] = [
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("American Express", "CREDIT_CARD"),
    ("Discover", "CREDIT_CARD"),
    ("Diners Club", "CREDIT_CARD"),
    ("Direct Debit", "NON_CREDIT_CARD"),
    ("ACH Transfer", "NON_CREDIT_CARD"),
    ("Wire Transfer", "NON_CREDIT_CARD"),
    ("PayPal", "NON_CREDIT_CARD"),
    ("Venmo", "NON_CREDIT_CARD"),
];

/// (`Name`, `DueDays`, `DiscountDays`, `DiscountPercent`).
const TERMS: [(&str, u32, u32, u32); 10] = [
    ("Due on receipt", 0, 0, 0),
    ("Net 10", 10, 0, 0),
    ("Net 15", 15, 0, 0),
    ("Net 30", 30, 0, 0),
    ("Net 45", 45, 0, 0),
    ("Net 60", 60, 0, 0),
    ("Net 90", 90, 0, 0),
    ("1% 10 Net 30", 30, 10, 1),
    ("2% 10 Net 30", 30, 10, 2),
    ("2% 15 Net 45", 45, 15, 2),
];

/// (`Name`, `RateValue` in hundredths of a percent).
const TAX_RATES: [(&str, i64); 14] = [
    ("California", 800),
    ("Tucson City", 210),
    ("AZ State tax", 560),
    ("Seattle City", 360),
    ("WA State", 650),
    ("Austin City", 200),
    ("TX State", 625),
    ("Atlanta City", 190),
    ("GA State", 400),
    ("San Francisco", 125),
    ("Alameda County", 175),
    ("Fulton County", 300),
    ("Pima County", 50),
    ("King County", 40),
];

const TAX_CODES: [&str; 12] = [
    "California",
    "Arizona",
    "Washington",
    "Texas",
    "Georgia",
    "Tucson",
    "Seattle",
    "Austin",
    "Atlanta",
    "San Francisco",
    "Out of State",
    "Resale",
];

const PERSONS: u64 = (GIVEN.len() * FAMILY.len()) as u64;

/// Everything about a list row that does not change.
#[derive(Debug, Clone)]
pub(crate) struct ListProfile {
    /// `Name` (`DisplayName` for Vendor and Employee) while active.
    pub(crate) name: String,
    /// Index into the entity's table (for Employee, the person).
    pub(crate) slot: usize,
    /// `GivenName` / `FamilyName` of persons (employees, person vendors); empty otherwise.
    pub(crate) given: &'static str,
    pub(crate) family: &'static str,
    /// Hash bits for everything else.
    pub(crate) h: u64,
}

impl ListProfile {
    /// The name a row shows: with ` (deleted)` when inactive.
    pub(crate) fn shown(&self, active: bool) -> String {
        if active {
            self.name.clone()
        } else {
            format!("{}{DELETED}", self.name)
        }
    }

    /// Whether a vendor is a company (it then has `CompanyName`).
    pub(crate) fn is_company(&self) -> bool {
        self.given.is_empty()
    }
}

fn table_len(kind: Kind) -> u64 {
    (match kind {
        Kind::Account => CHART.len(),
        Kind::Class => CLASSES.len(),
        Kind::Department => DEPARTMENTS.len(),
        Kind::PaymentMethod => PAYMENT_METHODS.len(),
        Kind::TaxCode => TAX_CODES.len(),
        Kind::TaxRate => TAX_RATES.len(),
        Kind::Term => TERMS.len(),
        Kind::Vendor => VENDORS.len(),
        _ => return PERSONS,
    }) as u64
}

/// `(seed, entity, id)` → profile of a list row; names are unique within the entity.
pub(crate) fn list_profile(seed: u64, kind: Kind, id: u64) -> ListProfile {
    let index = id.saturating_sub(1);
    let n = table_len(kind);
    let round = index / n;
    let slot = match kind {
        // The chart is the same for every seed, so account roles are found by id.
        Kind::Account => index % n,
        // A fixed permutation (11 is coprime with 900) spreads given and family names.
        Kind::Employee => ((index + seed % n) % n) * 11 % n,
        _ => (index + seed % n) % n,
    } as usize;
    let (mut name, given, family) = match kind {
        Kind::Account => (CHART[slot].0.to_owned(), "", ""),
        Kind::Class => (CLASSES[slot].to_owned(), "", ""),
        Kind::Department => (DEPARTMENTS[slot].to_owned(), "", ""),
        Kind::PaymentMethod => (PAYMENT_METHODS[slot].0.to_owned(), "", ""),
        Kind::TaxCode => (TAX_CODES[slot].to_owned(), "", ""),
        Kind::TaxRate => (TAX_RATES[slot].0.to_owned(), "", ""),
        Kind::Term => (TERMS[slot].0.to_owned(), "", ""),
        Kind::Vendor => {
            let (d, g, f) = VENDORS[slot];
            (d.to_owned(), g, f)
        }
        _ => {
            let (g, f) = (GIVEN[slot % GIVEN.len()], FAMILY[slot / GIVEN.len()]);
            (format!("{g} {f}"), g, f)
        }
    };
    if round > 0 {
        name.push(' ');
        name.push_str(&(round + 1).to_string());
    }
    ListProfile {
        name,
        slot,
        given,
        family,
        h: hash3(seed, kind.profile_salt(), id),
    }
}

/// The name a reference to a list row carries (its name while active).
pub(crate) fn ref_name(seed: u64, kind: Kind, id: u64) -> String {
    list_profile(seed, kind, id).name
}

/// An account whose chart slot is one of `slots`, chosen by `h`; any account when none of
/// those slots exists (a chart shorter than 25 rows); `None` without accounts.
pub(crate) fn account_for(ctx: &Ctx, slots: &[usize], h: u64) -> Option<u64> {
    let n = ctx.count(Kind::Account) as u64;
    if n == 0 {
        return None;
    }
    let t = CHART.len() as u64;
    let k = slots.len().max(1) as u64;
    for j in 0..k {
        let Some(&slot) = slots.get(((h % k + j) % k) as usize) else {
            break;
        };
        let slot = slot as u64;
        if slot < n {
            let per = (n - 1 - slot) / t + 1;
            return Some(((h >> 20) % per) * t + slot + 1);
        }
    }
    Some(1 + h % n)
}

/// Chart slot of Sales of Product Income: the `IncomeAccountRef` of inventory items.
const PRODUCT_INCOME: &[usize] = &[12];
/// Chart slot of Landscaping Services: the `IncomeAccountRef` of other items.
const SERVICE_INCOME: &[usize] = &[13];
/// Chart slot of Cost of Goods Sold: the `ExpenseAccountRef` of items that are not services.
const COGS: &[usize] = &[15];
/// Chart slot of Inventory Asset: the `AssetAccountRef` of inventory items.
const INVENTORY_ASSET: &[usize] = &[4];

/// The `IncomeAccountRef` of an item of type `item_type` (the lowest id of its slot), which
/// the ledger credits for the item's sales lines.
pub(crate) fn item_income_account(ctx: &Ctx, item_type: &str) -> Option<u64> {
    let slot = if item_type == "Inventory" {
        PRODUCT_INCOME
    } else {
        SERVICE_INCOME
    };
    account_for(ctx, slot, 0)
}

/// The `ExpenseAccountRef` of an item that is not a service: Cost of Goods Sold.
pub(crate) fn item_expense_account(ctx: &Ctx) -> Option<u64> {
    account_for(ctx, COGS, 0)
}

/// The `AssetAccountRef` of an inventory item: Inventory Asset.
pub(crate) fn item_asset_account(ctx: &Ctx) -> Option<u64> {
    account_for(ctx, INVENTORY_ASSET, 0)
}

/// `,"Key":{"value":…,"name":…}` of an account (nothing without one: a company without
/// accounts).
pub(crate) fn push_account_ref(out: &mut String, ctx: &Ctx, key: &str, account: Option<u64>) {
    if let Some(a) = account {
        push_ref_field(out, key, a, &ref_name(ctx.seed, Kind::Account, a));
    }
}

/// `AccountType`, `AccountSubType` and `Classification` of an account id.
pub(crate) fn account_type(id: u64) -> (&'static str, &'static str, &'static str) {
    let (_, t, s, c) = CHART[(id.saturating_sub(1) % CHART.len() as u64) as usize];
    (t, s, c)
}

/// `DueDays` of a term id.
pub(crate) fn term_due_days(seed: u64, id: u64) -> i64 {
    i64::from(TERMS[list_profile(seed, Kind::Term, id).slot].1)
}

/// `Type` of a payment method (`CREDIT_CARD` / `NON_CREDIT_CARD`).
pub(crate) fn payment_method_type(p: &ListProfile) -> &'static str {
    PAYMENT_METHODS[p.slot].1
}

/// A vendor's open balance, in cents.
pub(crate) fn vendor_balance_cents(p: &ListProfile) -> i64 {
    if (p.h >> 50).is_multiple_of(3) {
        0
    } else {
        ((p.h >> 8) % 800_000) as i64
    }
}

/// The e-mail address of a vendor or employee.
pub(crate) fn email(kind: Kind, p: &ListProfile, id: u64) -> String {
    let mut out = String::new();
    if kind == Kind::Employee || !p.is_company() {
        out.extend(p.given.chars().filter_map(ascii_fold));
        out.push('.');
        out.extend(p.family.chars().filter_map(ascii_fold));
    } else {
        out.extend(
            p.name
                .split(' ')
                .next()
                .unwrap_or_default()
                .chars()
                .filter_map(ascii_fold)
                .take(16),
        );
        out.push_str(".billing");
    }
    out.make_ascii_lowercase();
    out.push_str(&id.to_string());
    out.push_str("@example.com");
    out
}

/// Appends the entity object `{…}` of a list row.
pub(crate) fn render(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, row: &Row) {
    let p = list_profile(ctx.seed, kind, id);
    match kind {
        Kind::Account => account(out, id, row, &p),
        Kind::Vendor => vendor(out, ctx, id, row, &p),
        Kind::Employee => employee(out, ctx, id, row, &p),
        Kind::Class | Kind::Department => {
            let name = p.shown(row.active);
            out.push_str("{\"Name\":");
            push_str(out, &name);
            out.push_str(if kind == Kind::Class {
                ",\"SubClass\":false"
            } else {
                ",\"SubDepartment\":false"
            });
            out.push_str(",\"FullyQualifiedName\":");
            push_str(out, &name);
            push_active(out, row);
            out.push(',');
            common(out, id, row);
            out.push('}');
        }
        Kind::PaymentMethod => {
            out.push_str("{\"Name\":");
            push_str(out, &p.shown(row.active));
            push_active(out, row);
            out.push_str(",\"Type\":\"");
            out.push_str(payment_method_type(&p));
            out.push_str("\",");
            common(out, id, row);
            out.push('}');
        }
        Kind::Term => {
            let (_, due, discount_days, discount_pct) = TERMS[p.slot];
            out.push_str("{\"Name\":");
            push_str(out, &p.shown(row.active));
            push_active(out, row);
            out.push_str(",\"Type\":\"STANDARD\",\"DiscountPercent\":");
            push_u64(out, u64::from(discount_pct));
            out.push_str(",\"DueDays\":");
            push_u64(out, u64::from(due));
            out.push_str(",\"DiscountDays\":");
            push_u64(out, u64::from(discount_days));
            out.push(',');
            common(out, id, row);
            out.push('}');
        }
        Kind::TaxRate => tax_rate(out, id, row, &p),
        _ => tax_code(out, ctx, id, row, &p),
    }
}

fn push_active(out: &mut String, row: &Row) {
    out.push_str(",\"Active\":");
    out.push_str(if row.active { "true" } else { "false" });
}

/// `(ddd) ddd-dddd` from hash bits.
fn push_phone(out: &mut String, h: u64) {
    out.push_str(",\"PrimaryPhone\":{\"FreeFormNumber\":\"(");
    push_u64(out, 201 + (h >> 32) % 700);
    out.push_str(") ");
    push_u64(out, 200 + (h >> 40) % 800);
    out.push('-');
    let c = (h >> 48) % 10_000;
    for d in [1000, 100, 10, 1] {
        out.push(char::from(b'0' + (c / d % 10) as u8));
    }
    out.push_str("\"}");
}

/// A revision note, shown once a row has been edited (`SyncToken` > 0).
fn push_revision(out: &mut String, key: &str, base: &str, row: &Row) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    if row.sync > 0 && base.is_empty() {
        push_str(out, &format!("Revision {}", row.sync));
    } else if row.sync > 0 {
        push_str(out, &format!("{base} (revision {})", row.sync));
    } else {
        push_str(out, base);
    }
}

fn account(out: &mut String, id: u64, row: &Row, p: &ListProfile) {
    let (_, account_type, sub_type, classification) = CHART[p.slot];
    let name = p.shown(row.active);
    out.push_str("{\"Name\":");
    push_str(out, &name);
    out.push_str(",\"SubAccount\":false,\"FullyQualifiedName\":");
    push_str(out, &name);
    push_active(out, row);
    out.push_str(",\"Classification\":\"");
    out.push_str(classification);
    out.push_str("\",\"AccountType\":\"");
    out.push_str(account_type);
    out.push_str("\",\"AccountSubType\":\"");
    out.push_str(sub_type);
    out.push('"');
    if row.sync > 0 {
        push_revision(out, "Description", "", row);
    }
    // Profit-and-loss accounts show no running balance in QBO.
    let balance = if matches!(classification, "Revenue" | "Expense") {
        0
    } else {
        ((p.h >> 12) % 5_000_000) as i64
    };
    out.push_str(",\"CurrentBalance\":");
    push_balance(out, balance);
    out.push_str(",\"CurrentBalanceWithSubAccounts\":");
    push_balance(out, balance);
    out.push(',');
    out.push_str(USD);
    out.push(',');
    common(out, id, row);
    out.push('}');
}

/// Address ids are unique per company: customers use `2 id` and `2 id + 1`, vendors and
/// employees come after them.
fn address_id(ctx: &Ctx, kind: Kind, id: u64) -> u64 {
    let base = 2 * ctx.count(Kind::Customer) as u64 + 2;
    match kind {
        Kind::Vendor => base + id,
        _ => base + ctx.count(Kind::Vendor) as u64 + id,
    }
}

/// The `BillAddr` / `PrimaryAddr` object of a vendor or employee.
fn push_address(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, h: u64) {
    address(
        out,
        address_id(ctx, kind, id),
        1 + ((h >> 28) % 9_000) as u32,
        ((h >> 16) % 12) as usize,
    );
}

/// `,"GivenName":…,"FamilyName":…` of a person.
fn push_person_name(out: &mut String, p: &ListProfile) {
    out.push_str(",\"GivenName\":");
    push_str(out, p.given);
    out.push_str(",\"FamilyName\":");
    push_str(out, p.family);
}

/// `,"DisplayName":…,"PrintOnCheckName":…,"Active":…,"PrimaryPhone":{…},"PrimaryEmailAddr":{…}`
/// of a vendor or employee.
fn push_contact(out: &mut String, kind: Kind, id: u64, row: &Row, p: &ListProfile) {
    out.push_str(",\"DisplayName\":");
    push_str(out, &p.shown(row.active));
    out.push_str(",\"PrintOnCheckName\":");
    push_str(out, &p.name);
    push_active(out, row);
    push_phone(out, p.h);
    out.push_str(",\"PrimaryEmailAddr\":{\"Address\":");
    push_str(out, &email(kind, p, id));
    out.push('}');
}

fn vendor(out: &mut String, ctx: &Ctx, id: u64, row: &Row, p: &ListProfile) {
    let h = p.h;
    out.push_str("{\"BillAddr\":");
    push_address(out, ctx, Kind::Vendor, id, h);
    out.push_str(",\"Balance\":");
    push_balance(out, vendor_balance_cents(p));
    out.push_str(",\"Vendor1099\":");
    out.push_str(if h.is_multiple_of(4) { "true" } else { "false" });
    out.push(',');
    out.push_str(USD);
    out.push(',');
    common(out, id, row);
    if p.is_company() {
        out.push_str(",\"CompanyName\":");
        push_str(out, &p.name);
    } else {
        push_person_name(out, p);
    }
    push_contact(out, Kind::Vendor, id, row, p);
    if let Some(term) = ctx
        .pick(Kind::Term, h >> 6)
        .filter(|_| !(h >> 3).is_multiple_of(3))
    {
        push_ref_field(out, "TermRef", term, &ref_name(ctx.seed, Kind::Term, term));
    }
    out.push_str(",\"AcctNum\":\"");
    push_u64(out, 1000 + (h >> 24) % 9000);
    out.push_str("\"}");
}

fn employee(out: &mut String, ctx: &Ctx, id: u64, row: &Row, p: &ListProfile) {
    let h = p.h;
    let billable = (h >> 5).is_multiple_of(2);
    out.push_str("{\"SSN\":\"XXX-XX-XXXX\",\"PrimaryAddr\":");
    push_address(out, ctx, Kind::Employee, id, h);
    out.push_str(",\"BillableTime\":");
    out.push_str(if billable { "true" } else { "false" });
    if billable {
        out.push_str(",\"BillRate\":");
        push_u64(out, 40 + (h >> 10) % 80);
    }
    out.push(',');
    common(out, id, row);
    push_person_name(out, p);
    push_contact(out, Kind::Employee, id, row, p);
    out.push_str(",\"EmployeeNumber\":\"E-");
    push_u64(out, id);
    out.push_str("\",\"HiredDate\":\"");
    push_date(out, txn_day(row.created) - 30 - ((h >> 36) % 3000) as i64);
    out.push_str("\"}");
}

fn tax_rate(out: &mut String, id: u64, row: &Row, p: &ListProfile) {
    let rate = TAX_RATES[p.slot].1;
    out.push_str("{\"Name\":");
    push_str(out, &p.shown(row.active));
    push_revision(out, "Description", "Sales Tax", row);
    push_active(out, row);
    out.push_str(",\"RateValue\":");
    push_price(out, rate);
    out.push_str(
        ",\"SpecialTaxType\":\"NONE\",\"DisplayType\":\"ReadOnly\",\
         \"EffectiveTaxRate\":[{\"RateValue\":",
    );
    push_price(out, rate);
    out.push_str(",\"EffectiveDate\":\"1970-01-01T00:00:00-08:00\"}],");
    common(out, id, row);
    out.push('}');
}

fn tax_code(out: &mut String, ctx: &Ctx, id: u64, row: &Row, p: &ListProfile) {
    let h = p.h;
    // A state rate and, for some codes, a local one (a tax group).
    let first = ctx.pick(Kind::TaxRate, h >> 4);
    let second = ctx
        .pick(Kind::TaxRate, h >> 24)
        .filter(|s| (h >> 2).is_multiple_of(2) && Some(*s) != first);
    out.push_str("{\"Name\":");
    push_str(out, &p.shown(row.active));
    push_revision(out, "Description", &p.name, row);
    push_active(out, row);
    out.push_str(",\"Hidden\":false,\"Taxable\":true,\"TaxGroup\":");
    out.push_str(if second.is_some() { "true" } else { "false" });
    out.push_str(",\"SalesTaxRateList\":{\"TaxRateDetail\":[");
    for (n, rate) in first.into_iter().chain(second).enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"TaxRateRef\":");
        push_ref(out, rate, &ref_name(ctx.seed, Kind::TaxRate, rate));
        out.push_str(",\"TaxTypeApplicable\":\"TaxOnAmount\",\"TaxOrder\":");
        push_u64(out, n as u64);
        out.push('}');
    }
    out.push_str("]},\"PurchaseTaxRateList\":{\"TaxRateDetail\":[]},");
    common(out, id, row);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_unique_per_entity() {
        for kind in Kind::ALL
            .into_iter()
            .filter(|k| k.is_list() && !matches!(k, Kind::Customer | Kind::Item))
        {
            let names: Vec<String> = (1..=2000)
                .map(|id| list_profile(7, kind, id).name)
                .collect();
            assert_eq!(
                names.iter().collect::<HashSet<_>>().len(),
                names.len(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn accounts_for_roles_have_the_role() {
        let mut ctx = Ctx {
            seed: 1,
            counts: [0; Kind::COUNT],
        };
        assert_eq!(account_for(&ctx, BANK, 5), None);
        for n in [1usize, 3, 25, 40, 1000] {
            ctx.counts[Kind::Account as usize] = n;
            for h in 0..500u64 {
                let h = hash3(9, 1, h);
                let id = account_for(&ctx, ACCOUNTS_PAYABLE, h).unwrap();
                assert!((1..=n as u64).contains(&id), "{n} {id}");
                if n > 6 {
                    assert_eq!(account_type(id).0, "Accounts Payable");
                }
                let id = account_for(&ctx, EXPENSE, h).unwrap();
                if n >= 25 {
                    assert_eq!(account_type(id).2, "Expense", "{id}");
                }
            }
        }
    }

    #[test]
    fn emails_are_ascii() {
        for id in 1..200 {
            for kind in [Kind::Vendor, Kind::Employee] {
                let e = email(kind, &list_profile(3, kind, id), id);
                assert!(e.is_ascii() && e.ends_with("@example.com"), "{e}");
            }
        }
    }
}
