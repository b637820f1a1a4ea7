//! JSON rendering of entities, straight into a `String` (no serde on the hot path), shaped and
//! ordered like the recorded QBO bodies in `shared/fixtures/qbo`. Customer, Item and Invoice
//! are here; the other list entities are in `lists`, the other transactions in `txns`.

use crate::data::{
    ADDRESSES, CustomerProfile, Dataset, InvoiceProfile, Kind, Row, customer_profile,
    invoice_profile, item_profile, txn_day,
};
use crate::json::{push_balance, push_money, push_price, push_str, push_u64, push_u64_str};
use crate::rng::hash3;
use crate::time::{push_date, push_pacific_secs};
use crate::{lists, txns};

/// What rendering needs besides the row: the seed and how many rows each entity has (so
/// references point at ids that exist).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) seed: u64,
    pub(crate) counts: [usize; Kind::COUNT],
}

impl Ctx {
    /// The context of a dataset.
    pub(crate) fn new(ds: &Dataset) -> Self {
        Self {
            seed: ds.seed,
            counts: ds.counts(),
        }
    }

    /// Rows of `kind` (ids `1..=count`).
    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.counts[kind as usize]
    }

    /// An id of `kind` chosen by the hash bits `h`, or `None` when it has no rows.
    pub(crate) fn pick(&self, kind: Kind, h: u64) -> Option<u64> {
        let n = self.count(kind) as u64;
        (n > 0).then(|| 1 + h % n)
    }

    /// A stable hash of `(seed, salt, n)`.
    pub(crate) fn hash(&self, salt: u64, n: u64) -> u64 {
        hash3(self.seed, salt, n)
    }
}

/// Suffix QBO gives names of inactive ("deleted") list entities.
pub(crate) const DELETED: &str = " (deleted)";

/// `"CurrencyRef":{…}` of the home currency.
pub(crate) const USD: &str =
    "\"CurrencyRef\":{\"value\":\"USD\",\"name\":\"United States Dollar\"}";

/// Appends the entity object `{…}`.
pub(crate) fn render(out: &mut String, ctx: &Ctx, kind: Kind, id: u64, row: &Row) {
    match kind {
        Kind::Customer => customer(out, ctx, id, row),
        Kind::Item => item(out, ctx, id, row),
        Kind::Invoice => invoice(out, ctx, id, row),
        k if k.is_list() => lists::render(out, ctx, k, id, row),
        k => txns::render(out, ctx, k, id, row),
    }
}

/// Appends a deleted entity as change data capture reports it:
/// `{"domain":"QBO","status":"Deleted","Id":"266","MetaData":{"LastUpdatedTime":"…"}}`.
pub(crate) fn render_deleted(out: &mut String, id: u64, row: &Row) {
    out.push_str("{\"domain\":\"QBO\",\"status\":\"Deleted\",\"Id\":");
    push_u64_str(out, id);
    out.push_str(",\"MetaData\":{\"LastUpdatedTime\":\"");
    push_pacific_secs(out, row.updated);
    out.push_str("\"}}");
}

/// Appends a reference `{"value":"42","name":"…"}`.
pub(crate) fn push_ref(out: &mut String, id: u64, name: &str) {
    out.push_str("{\"value\":");
    push_u64_str(out, id);
    out.push_str(",\"name\":");
    push_str(out, name);
    out.push('}');
}

/// Appends `,"Key":{"value":"42","name":"…"}`.
pub(crate) fn push_ref_field(out: &mut String, key: &str, id: u64, name: &str) {
    out.push(',');
    push_ref_member(out, key, id, name);
}

/// Appends `"Key":{"value":"42","name":"…"}` (the first member of an object, or one a comma
/// follows).
pub(crate) fn push_ref_member(out: &mut String, key: &str, id: u64, name: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_ref(out, id, name);
}

/// `common`, then `DocNumber` (when the entity has one), `TxnDate`, `CurrencyRef` and, once
/// edited, `PrivateNote`: the head of a transaction (`custom_field`: the sales forms'
/// `CustomField` after `common`).
pub(crate) fn txn_head(
    out: &mut String,
    id: u64,
    row: &Row,
    doc_number: Option<u64>,
    day: i64,
    custom_field: bool,
) {
    common(out, id, row);
    if custom_field {
        out.push_str(
            ",\"CustomField\":[{\"DefinitionId\":\"1\",\"Name\":\"Crew #\",\"Type\":\"StringType\"}]",
        );
    }
    if let Some(doc) = doc_number {
        out.push_str(",\"DocNumber\":\"");
        push_u64(out, doc);
        out.push('"');
    }
    out.push_str(",\"TxnDate\":\"");
    push_date(out, day);
    out.push_str("\",");
    out.push_str(USD);
    if row.sync > 0 {
        out.push_str(",\"PrivateNote\":\"Revision ");
        push_u64(out, u64::from(row.sync));
        out.push('"');
    }
}

/// Opens a transaction line: `{"Id":…,` (`"LineNum":…,`) `"Description":…,"Amount":…,
/// "DetailType":"<detail>","<detail>":{`.
pub(crate) fn open_line(
    out: &mut String,
    id: u64,
    line_num: Option<u64>,
    desc: &str,
    amount_cents: i64,
    detail: &str,
) {
    out.push_str("{\"Id\":");
    push_u64_str(out, id);
    if let Some(num) = line_num {
        out.push_str(",\"LineNum\":");
        push_u64(out, num);
    }
    out.push_str(",\"Description\":");
    push_str(out, desc);
    out.push_str(",\"Amount\":");
    push_money(out, amount_cents);
    out.push_str(",\"DetailType\":\"");
    out.push_str(detail);
    out.push_str("\",\"");
    out.push_str(detail);
    out.push_str("\":{");
}

/// Closes an item line opened with [`open_line`]: (`"ItemRef":{…},`) `"UnitPrice":…,"Qty":…,
/// "TaxCodeRef":{"value":"NON"}}}`.
pub(crate) fn close_item_line(
    out: &mut String,
    item: Option<(u64, &str)>,
    unit_cents: i64,
    qty: u32,
) {
    if let Some((id, name)) = item {
        push_ref_member(out, "ItemRef", id, name);
        out.push(',');
    }
    out.push_str("\"UnitPrice\":");
    push_price(out, unit_cents);
    out.push_str(",\"Qty\":");
    push_u64(out, u64::from(qty));
    out.push_str(",\"TaxCodeRef\":{\"value\":\"NON\"}}}");
}

/// The `DisplayName` a row shows.
pub(crate) fn customer_display(p: &CustomerProfile, active: bool) -> String {
    if active {
        p.display.clone()
    } else {
        format!("{}{DELETED}", p.display)
    }
}

/// The `Name` an item row shows.
pub(crate) fn item_name(seed: u64, id: u64, active: bool) -> String {
    let name = item_profile(seed, id).name;
    if active {
        name
    } else {
        format!("{name}{DELETED}")
    }
}

/// Appends `"domain":…,"sparse":false,"Id":…,"SyncToken":…,"MetaData":{…}` (no braces).
pub(crate) fn common(out: &mut String, id: u64, row: &Row) {
    out.push_str("\"domain\":\"QBO\",\"sparse\":false,\"Id\":");
    push_u64_str(out, id);
    out.push_str(",\"SyncToken\":");
    push_u64_str(out, u64::from(row.sync));
    out.push_str(",\"MetaData\":{\"CreateTime\":\"");
    push_pacific_secs(out, row.created);
    out.push_str("\",\"LastUpdatedTime\":\"");
    push_pacific_secs(out, row.updated);
    out.push_str("\"}");
}

/// Appends a postal address object (`BillAddr`, `ShipAddr`, `PrimaryAddr`).
pub(crate) fn address(out: &mut String, addr_id: u64, street_no: u32, idx: usize) {
    let (street, city, state, zip, lat, long) = ADDRESSES[idx % ADDRESSES.len()];
    out.push_str("{\"Id\":");
    push_u64_str(out, addr_id);
    out.push_str(",\"Line1\":\"");
    push_u64(out, u64::from(street_no));
    out.push(' ');
    // Street names contain no characters that need escaping.
    out.push_str(street);
    out.push_str("\",\"City\":\"");
    out.push_str(city);
    out.push_str("\",\"CountrySubDivisionCode\":\"");
    out.push_str(state);
    out.push_str("\",\"PostalCode\":\"");
    out.push_str(zip);
    out.push_str("\",\"Lat\":\"");
    out.push_str(lat);
    out.push_str("\",\"Long\":\"");
    out.push_str(long);
    out.push_str("\"}");
}

/// Appends `,"BillAddr":{…}` and, when the customer has one, `,"ShipAddr":{…}` of customer
/// `cid`, as invoices show them.
pub(crate) fn customer_addresses(out: &mut String, seed: u64, cid: u64) {
    push_addresses(out, cid, &customer_profile(seed, cid));
}

/// [`customer_addresses`] of a profile at hand.
fn push_addresses(out: &mut String, cid: u64, c: &CustomerProfile) {
    out.push_str(",\"BillAddr\":");
    address(out, cid * 2, c.street_no, c.bill);
    if let Some(ship) = c.ship {
        out.push_str(",\"ShipAddr\":");
        if ship == c.bill {
            address(out, cid * 2, c.street_no, ship);
        } else {
            address(out, cid * 2 + 1, c.street_no / 2 + 1, ship);
        }
    }
}

fn customer(out: &mut String, ctx: &Ctx, id: u64, row: &Row) {
    let p = customer_profile(ctx.seed, id);
    let display = customer_display(&p, row.active);
    out.push_str("{\"Taxable\":");
    out.push_str(if p.taxable { "true" } else { "false" });
    push_addresses(out, id, &p);
    out.push_str(",\"Job\":false,\"BillWithParent\":false,\"Balance\":");
    push_balance(out, p.balance_cents);
    out.push_str(",\"BalanceWithJobs\":");
    push_balance(out, p.balance_cents);
    out.push_str(
        ",\"CurrencyRef\":{\"value\":\"USD\",\"name\":\"United States Dollar\"},\
         \"PreferredDeliveryMethod\":\"",
    );
    out.push_str(p.delivery);
    out.push_str("\",");
    common(out, id, row);
    out.push_str(",\"GivenName\":");
    push_str(out, p.given);
    out.push_str(",\"FamilyName\":");
    push_str(out, p.family);
    out.push_str(",\"FullyQualifiedName\":");
    push_str(out, &display);
    if p.is_company {
        out.push_str(",\"CompanyName\":");
        push_str(out, &p.display);
    }
    out.push_str(",\"DisplayName\":");
    push_str(out, &display);
    out.push_str(",\"PrintOnCheckName\":");
    push_str(out, &p.display);
    out.push_str(",\"Active\":");
    out.push_str(if row.active { "true" } else { "false" });
    let (a, b, c) = p.phone;
    out.push_str(",\"PrimaryPhone\":{\"FreeFormNumber\":\"(");
    push_u64(out, u64::from(a));
    out.push_str(") ");
    push_u64(out, u64::from(b));
    out.push('-');
    for d in [1000, 100, 10, 1] {
        out.push(char::from(b'0' + (c / d % 10) as u8));
    }
    out.push_str("\"},\"PrimaryEmailAddr\":{\"Address\":");
    push_str(out, &p.email);
    out.push('}');
    if p.taxable {
        out.push_str(",\"DefaultTaxCodeRef\":{\"value\":\"2\"}");
    }
    if row.sync > 0 {
        out.push_str(",\"Notes\":\"Revision ");
        push_u64(out, u64::from(row.sync));
        out.push('"');
    }
    out.push('}');
}

fn item(out: &mut String, ctx: &Ctx, id: u64, row: &Row) {
    let p = item_profile(ctx.seed, id);
    let name = if row.active {
        p.name.clone()
    } else {
        format!("{}{DELETED}", p.name)
    };
    let inventory = p.item_type == "Inventory";
    out.push_str("{\"Name\":");
    push_str(out, &name);
    out.push_str(",\"Description\":\"");
    out.push_str(p.noun);
    if row.sync > 0 {
        out.push_str(" (revision ");
        push_u64(out, u64::from(row.sync));
        out.push(')');
    }
    out.push_str("\",\"Active\":");
    out.push_str(if row.active { "true" } else { "false" });
    out.push_str(",\"FullyQualifiedName\":");
    push_str(out, &name);
    out.push_str(",\"Taxable\":");
    out.push_str(if p.taxable { "true" } else { "false" });
    out.push_str(",\"UnitPrice\":");
    push_price(out, p.price_cents);
    out.push_str(",\"Type\":\"");
    out.push_str(p.item_type);
    out.push('"');
    let income = lists::item_income_account(ctx, p.item_type);
    lists::push_account_ref(out, ctx, "IncomeAccountRef", income);
    if inventory {
        out.push_str(",\"PurchaseDesc\":\"");
        out.push_str(p.noun);
        out.push('"');
    }
    out.push_str(",\"PurchaseCost\":");
    push_price(
        out,
        if p.item_type == "Service" {
            0
        } else {
            p.cost_cents
        },
    );
    if p.item_type != "Service" {
        lists::push_account_ref(
            out,
            ctx,
            "ExpenseAccountRef",
            lists::item_expense_account(ctx),
        );
    }
    if inventory {
        lists::push_account_ref(out, ctx, "AssetAccountRef", lists::item_asset_account(ctx));
        out.push_str(",\"TrackQtyOnHand\":true,\"QtyOnHand\":");
        push_u64(out, u64::from(p.qty_on_hand));
        out.push_str(",\"InvStartDate\":\"");
        push_date(out, txn_day(row.created));
        out.push('"');
    } else {
        out.push_str(",\"TrackQtyOnHand\":false");
    }
    out.push(',');
    common(out, id, row);
    out.push('}');
}

fn invoice(out: &mut String, ctx: &Ctx, id: u64, row: &Row) {
    let (customers, items) = (ctx.count(Kind::Customer), ctx.count(Kind::Item));
    let p = invoice_profile(ctx.seed, id, customers, items);
    let day = txn_day(row.created);
    out.push_str(
        "{\"AllowIPNPayment\":false,\"AllowOnlinePayment\":false,\
         \"AllowOnlineCreditCardPayment\":false,\"AllowOnlineACHPayment\":false,",
    );
    txn_head(out, id, row, Some(p.doc_number), day, true);
    out.push_str(",\"LinkedTxn\":[]");
    push_invoice_lines(out, ctx, &p);
    out.push_str(",\"TxnTaxDetail\":{\"TotalTax\":0}");
    if let Some(cid) = p.customer_id {
        let c = customer_profile(ctx.seed, cid);
        push_ref_field(out, "CustomerRef", cid, &c.display);
        push_addresses(out, cid, &c);
    }
    out.push_str(",\"DueDate\":\"");
    push_date(out, day + 30);
    out.push_str("\",\"TotalAmt\":");
    push_money(out, p.total_cents);
    out.push_str(",\"ApplyTaxAfterDiscount\":false,\"PrintStatus\":\"NeedToPrint\",\"EmailStatus\":\"NotSet\",\"Balance\":");
    push_balance(out, if p.paid { 0 } else { p.total_cents });
    out.push('}');
}

/// `,"Line":[…]`: the item lines, then the subtotal line.
fn push_invoice_lines(out: &mut String, ctx: &Ctx, p: &InvoiceProfile) {
    out.push_str(",\"Line\":[");
    for (n, line) in p.lines.iter().enumerate() {
        let item_name = if ctx.count(Kind::Item) == 0 {
            "Services".to_owned()
        } else {
            item_profile(ctx.seed, line.item_id).name
        };
        let amount = i64::from(line.qty) * line.unit_cents;
        let num = n as u64 + 1;
        open_line(
            out,
            num,
            Some(num),
            &item_name,
            amount,
            "SalesItemLineDetail",
        );
        close_item_line(
            out,
            Some((line.item_id, &item_name)),
            line.unit_cents,
            line.qty,
        );
        out.push(',');
    }
    out.push_str("{\"Amount\":");
    push_money(out, p.total_cents);
    out.push_str(",\"DetailType\":\"SubTotalLineDetail\",\"SubTotalLineDetail\":{}}]");
}
