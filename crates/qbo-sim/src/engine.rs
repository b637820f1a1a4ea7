//! Query execution: resolves properties, compiles conditions, narrows by binary search on
//! CreateTime / Id, filters on compact rows, sorts, pages and renders the QBO envelope.
//!
//! Matching row lists are cached per (entity, WHERE, ORDER BY) and data generation, so paging
//! through a window costs one scan plus rendering.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::company::Singleton;
use crate::data::{
    CustomerProfile, Dataset, EMPTY_ENTITIES, InvoiceProfile, ItemProfile, Kind, Row,
    customer_profile, invoice_profile, item_profile, read, txn_day,
};
use crate::json::push_u64;
use crate::lists::{
    ListProfile, account_type, email, list_profile, payment_method_type, vendor_balance_cents,
};
use crate::query::{Condition, Op, Query, QueryError, Value};
use crate::render::{Ctx, customer_display, item_name, render, render_deleted};
use crate::time::{envelope_time, parse_date_literal, parse_instant_literal};
use crate::txns::{Txn, has_doc_number, txn_profile};

/// Default `MAXRESULTS`.
const DEFAULT_MAX_RESULTS: u64 = 100;
const CACHE_ENTRIES: usize = 32;
const CACHE_MAX_IDS: usize = 16_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    SyncToken,
    Active,
    CreateTime,
    LastUpdatedTime,
    DisplayName,
    GivenName,
    FamilyName,
    CompanyName,
    FullyQualifiedName,
    PrintOnCheckName,
    PrimaryEmailAddr,
    Balance,
    Name,
    Type,
    Description,
    UnitPrice,
    DocNumber,
    TxnDate,
    DueDate,
    CustomerRef,
    TotalAmt,
    AccountType,
    AccountSubType,
    Classification,
    VendorRef,
    EmployeeRef,
}

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    /// Integers (ids, sync tokens, references).
    Int,
    Bool,
    /// Unix milliseconds.
    Instant,
    /// Micro-units (amount × 1 000 000).
    Money,
    /// Days since epoch.
    Date,
    /// Case-insensitive text.
    Text,
}

impl Field {
    fn ty(self) -> FieldType {
        use Field::*;
        match self {
            Id | SyncToken | CustomerRef | VendorRef | EmployeeRef => FieldType::Int,
            Active => FieldType::Bool,
            CreateTime | LastUpdatedTime => FieldType::Instant,
            Balance | UnitPrice | TotalAmt => FieldType::Money,
            TxnDate | DueDate => FieldType::Date,
            _ => FieldType::Text,
        }
    }
}

/// Property name → field, case-insensitively (`Metadata.` and `MetaData.` alike).
fn resolve(kind: Kind, prop: &str) -> Option<Field> {
    use Field::*;
    let p = prop.to_ascii_lowercase();
    let common = match p.as_str() {
        "id" => Some(Id),
        "synctoken" => Some(SyncToken),
        "metadata.createtime" => Some(CreateTime),
        "metadata.lastupdatedtime" => Some(LastUpdatedTime),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    if kind.is_list() && p == "active" {
        return Some(Active);
    }
    match kind {
        Kind::Customer | Kind::Item | Kind::Invoice => match (kind, p.as_str()) {
            (Kind::Customer, "displayname") => Some(DisplayName),
            (Kind::Customer, "givenname") => Some(GivenName),
            (Kind::Customer, "familyname") => Some(FamilyName),
            (Kind::Customer, "companyname") => Some(CompanyName),
            (Kind::Customer | Kind::Item, "fullyqualifiedname") => Some(FullyQualifiedName),
            (Kind::Customer, "printoncheckname") => Some(PrintOnCheckName),
            (Kind::Customer, "primaryemailaddr") => Some(PrimaryEmailAddr),
            (Kind::Customer | Kind::Invoice, "balance") => Some(Balance),
            (Kind::Item, "name") => Some(Name),
            (Kind::Item, "type") => Some(Type),
            (Kind::Item, "description") => Some(Description),
            (Kind::Item, "unitprice") => Some(UnitPrice),
            (Kind::Invoice, "docnumber") => Some(DocNumber),
            (Kind::Invoice, "txndate") => Some(TxnDate),
            (Kind::Invoice, "duedate") => Some(DueDate),
            (Kind::Invoice, "customerref") => Some(CustomerRef),
            (Kind::Invoice, "totalamt") => Some(TotalAmt),
            _ => None,
        },
        k if k.is_list() => resolve_list(k, &p),
        k => resolve_txn(k, &p),
    }
}

/// The queryable properties of the other list entities (lower-cased name).
fn resolve_list(kind: Kind, p: &str) -> Option<Field> {
    use Field::*;
    let person = matches!(kind, Kind::Vendor | Kind::Employee);
    match (kind, p) {
        (_, "displayname") if person => Some(DisplayName),
        (_, "givenname") if person => Some(GivenName),
        (_, "familyname") if person => Some(FamilyName),
        (_, "printoncheckname") if person => Some(PrintOnCheckName),
        (_, "primaryemailaddr") if person => Some(PrimaryEmailAddr),
        (Kind::Vendor, "companyname") => Some(CompanyName),
        (Kind::Vendor, "balance") => Some(Balance),
        (_, "name") if !person => Some(Name),
        (Kind::Account | Kind::Class | Kind::Department, "fullyqualifiedname") => {
            Some(FullyQualifiedName)
        }
        (Kind::Account, "accounttype") => Some(AccountType),
        (Kind::Account, "accountsubtype") => Some(AccountSubType),
        (Kind::Account, "classification") => Some(Classification),
        (Kind::PaymentMethod | Kind::Term, "type") => Some(Type),
        _ => None,
    }
}

/// The queryable properties of the other transactions (lower-cased name).
fn resolve_txn(kind: Kind, p: &str) -> Option<Field> {
    use Field::*;
    use Kind as K;
    let balance = matches!(
        kind,
        K::Bill | K::VendorCredit | K::CreditMemo | K::SalesReceipt | K::RefundReceipt
    );
    let customer = matches!(
        kind,
        K::CreditMemo
            | K::Estimate
            | K::SalesReceipt
            | K::RefundReceipt
            | K::Payment
            | K::TimeActivity
    );
    let vendor = matches!(
        kind,
        K::Bill | K::BillPayment | K::PurchaseOrder | K::VendorCredit | K::TimeActivity
    );
    match p {
        "txndate" => Some(TxnDate),
        "docnumber" if has_doc_number(kind) => Some(DocNumber),
        "totalamt" if !matches!(kind, K::Transfer | K::TimeActivity) => Some(TotalAmt),
        "amount" if kind == K::Transfer => Some(TotalAmt),
        "balance" if balance => Some(Balance),
        "duedate" if kind == K::Bill => Some(DueDate),
        "customerref" if customer => Some(CustomerRef),
        "vendorref" if vendor => Some(VendorRef),
        "employeeref" if kind == K::TimeActivity => Some(EmployeeRef),
        _ => None,
    }
}

/// A field value of one row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum FVal {
    Missing,
    Int(i64),
    Text(String),
}

/// A row plus lazily computed profiles.
struct View<'a> {
    ctx: &'a Ctx,
    kind: Kind,
    id: u64,
    row: Row,
    customer: Option<CustomerProfile>,
    item: Option<ItemProfile>,
    invoice: Option<InvoiceProfile>,
    list: Option<ListProfile>,
    txn: Option<Txn>,
}

impl<'a> View<'a> {
    fn new(ctx: &'a Ctx, kind: Kind, id: u64, row: Row) -> Self {
        Self {
            ctx,
            kind,
            id,
            row,
            customer: None,
            item: None,
            invoice: None,
            list: None,
            txn: None,
        }
    }

    fn list(&mut self) -> &ListProfile {
        let (seed, kind, id) = (self.ctx.seed, self.kind, self.id);
        self.list
            .get_or_insert_with(|| list_profile(seed, kind, id))
    }

    fn txn(&mut self) -> &Txn {
        let (ctx, kind, id) = (self.ctx, self.kind, self.id);
        self.txn.get_or_insert_with(|| txn_profile(ctx, kind, id))
    }

    /// Values of the entities beyond Customer, Item and Invoice.
    fn other_value(&mut self, field: Field) -> FVal {
        use Field::*;
        let text = |s: &str| FVal::Text(s.to_lowercase());
        let int = |v: Option<u64>| v.map_or(FVal::Missing, |n| FVal::Int(n as i64));
        let (kind, id, row) = (self.kind, self.id, self.row);
        if kind.is_list() {
            let p = self.list();
            return match field {
                Name | DisplayName | FullyQualifiedName => text(&p.shown(row.active)),
                PrintOnCheckName => text(&p.name),
                GivenName if !p.given.is_empty() => text(p.given),
                FamilyName if !p.family.is_empty() => text(p.family),
                CompanyName if p.is_company() => text(&p.name),
                PrimaryEmailAddr => text(&email(kind, p, id)),
                Balance => FVal::Int(vendor_balance_cents(p) * 10_000),
                AccountType => text(account_type(id).0),
                AccountSubType => text(account_type(id).1),
                Classification => text(account_type(id).2),
                Type if kind == Kind::Term => text("STANDARD"),
                Type => text(payment_method_type(p)),
                _ => FVal::Missing,
            };
        }
        let t = self.txn();
        match field {
            TxnDate => FVal::Int(txn_day(row.created)),
            DueDate => FVal::Int(txn_day(row.created) + t.due_days),
            DocNumber => t
                .doc_number
                .map_or(FVal::Missing, |d| FVal::Text(d.to_string())),
            TotalAmt => FVal::Int(t.total_cents * 10_000),
            Balance => t
                .balance_cents(kind)
                .map_or(FVal::Missing, |b| FVal::Int(b * 10_000)),
            CustomerRef => int(t.customer),
            VendorRef => int(t.vendor),
            EmployeeRef => int(t.employee),
            _ => FVal::Missing,
        }
    }

    fn customer(&mut self) -> &CustomerProfile {
        let (seed, id) = (self.ctx.seed, self.id);
        self.customer
            .get_or_insert_with(|| customer_profile(seed, id))
    }

    fn item(&mut self) -> &ItemProfile {
        let (seed, id) = (self.ctx.seed, self.id);
        self.item.get_or_insert_with(|| item_profile(seed, id))
    }

    fn invoice(&mut self) -> &InvoiceProfile {
        let (ctx, id) = (*self.ctx, self.id);
        self.invoice.get_or_insert_with(|| {
            invoice_profile(
                ctx.seed,
                id,
                ctx.count(Kind::Customer),
                ctx.count(Kind::Item),
            )
        })
    }

    fn value(&mut self, field: Field) -> FVal {
        use Field::*;
        let core = matches!(self.kind, Kind::Customer | Kind::Item | Kind::Invoice);
        if !core
            && !matches!(
                field,
                Id | SyncToken | Active | CreateTime | LastUpdatedTime
            )
        {
            return self.other_value(field);
        }
        let active = self.row.active;
        let text = |s: &str| FVal::Text(s.to_lowercase());
        match field {
            Id => FVal::Int(self.id as i64),
            SyncToken => FVal::Int(i64::from(self.row.sync)),
            Active => FVal::Int(i64::from(active)),
            CreateTime => FVal::Int(self.row.created * 1000),
            LastUpdatedTime => FVal::Int(self.row.updated * 1000),
            DisplayName | FullyQualifiedName if self.kind == Kind::Customer => {
                text(&customer_display(self.customer(), active))
            }
            FullyQualifiedName | Name => {
                let (seed, id) = (self.ctx.seed, self.id);
                text(&item_name(seed, id, active))
            }
            PrintOnCheckName => text(&self.customer().display),
            GivenName => text(self.customer().given),
            FamilyName => text(self.customer().family),
            CompanyName => {
                let c = self.customer();
                if c.is_company {
                    text(&c.display)
                } else {
                    FVal::Missing
                }
            }
            PrimaryEmailAddr => text(&self.customer().email),
            Balance if self.kind == Kind::Customer => {
                FVal::Int(self.customer().balance_cents * 10_000)
            }
            Balance => {
                let inv = self.invoice();
                FVal::Int(if inv.paid {
                    0
                } else {
                    inv.total_cents * 10_000
                })
            }
            Type => text(self.item().item_type),
            Description => text(self.item().noun),
            UnitPrice => FVal::Int(self.item().price_cents * 10_000),
            DocNumber => FVal::Text(self.invoice().doc_number.to_string()),
            TxnDate => FVal::Int(txn_day(self.row.created)),
            DueDate => FVal::Int(txn_day(self.row.created) + 30),
            CustomerRef => match self.invoice().customer_id {
                Some(c) => FVal::Int(c as i64),
                None => FVal::Missing,
            },
            TotalAmt => FVal::Int(self.invoice().total_cents * 10_000),
            DisplayName | AccountType | AccountSubType | Classification | VendorRef
            | EmployeeRef => FVal::Missing,
        }
    }
}

/// A compiled literal.
#[derive(Debug, Clone)]
enum Lit {
    Val(FVal),
    /// `LIKE` pattern split on `%` (lower-cased).
    Like(Vec<String>),
    /// A literal that can never match (e.g. `Id = 'abc'`).
    Never,
}

#[derive(Debug, Clone)]
struct Pred {
    field: Field,
    op: Op,
    lits: Vec<Lit>,
}

fn parse_money(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    v = v.checked_mul(1_000_000)?;
    let mut scale = 100_000;
    for b in frac.bytes().take(6) {
        v += i64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(if neg { -v } else { v })
}

fn compile_lit(field: Field, prop: &str, op: Op, v: &Value) -> Result<Lit, QueryError> {
    let Some(text) = v.as_text() else {
        return Ok(Lit::Never);
    };
    let ty = field.ty();
    if op == Op::Like {
        if !matches!(ty, FieldType::Text | FieldType::Int) {
            return Err(QueryError::validation(format_args!(
                "Operator LIKE is not supported for property {prop}"
            )));
        }
        return Ok(Lit::Like(
            text.to_lowercase().split('%').map(str::to_owned).collect(),
        ));
    }
    let invalid =
        || QueryError::validation(format_args!("Invalid value '{text}' for property {prop}"));
    Ok(match ty {
        FieldType::Int => text
            .trim()
            .parse::<i64>()
            .map_or(Lit::Never, |n| Lit::Val(FVal::Int(n))),
        FieldType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Lit::Val(FVal::Int(1)),
            "false" => Lit::Val(FVal::Int(0)),
            _ => Lit::Never,
        },
        FieldType::Instant => Lit::Val(FVal::Int(parse_instant_literal(text).ok_or_else(invalid)?)),
        FieldType::Date => Lit::Val(FVal::Int(parse_date_literal(text).ok_or_else(invalid)?)),
        FieldType::Money => Lit::Val(FVal::Int(parse_money(text).ok_or_else(invalid)?)),
        FieldType::Text => Lit::Val(FVal::Text(text.to_lowercase())),
    })
}

fn like(value: &str, parts: &[String]) -> bool {
    match parts {
        [] => value.is_empty(),
        [only] => value == only,
        [first, middle @ .., last] => {
            let Some(mut rest) = value.strip_prefix(first.as_str()) else {
                return false;
            };
            for m in middle {
                match rest.find(m.as_str()) {
                    Some(at) => rest = &rest[at + m.len()..],
                    None => return false,
                }
            }
            rest.len() >= last.len() && rest.ends_with(last.as_str())
        }
    }
}

impl Pred {
    fn matches(&self, view: &mut View<'_>) -> bool {
        self.matches_value(&view.value(self.field))
    }

    fn matches_value(&self, v: &FVal) -> bool {
        if *v == FVal::Missing {
            return false;
        }
        self.lits.iter().any(|lit| match lit {
            Lit::Never => false,
            Lit::Like(parts) => match v {
                FVal::Text(t) => like(t, parts),
                FVal::Int(n) => like(&n.to_string(), parts),
                FVal::Missing => false,
            },
            Lit::Val(l) => match self.op {
                Op::Eq | Op::In | Op::Like => v == l,
                Op::Lt => v < l,
                Op::Gt => v > l,
                Op::Le => v <= l,
                Op::Ge => v >= l,
            },
        })
    }

    /// The single integer literal, for range narrowing.
    fn int(&self) -> Option<i64> {
        match self.lits.as_slice() {
            [Lit::Val(FVal::Int(n))] => Some(*n),
            _ => None,
        }
    }
}

/// The validation error for a property the entity does not have.
fn property_not_found(property: &str, entity: &str) -> QueryError {
    QueryError::validation(format_args!(
        "Property {property} not found for Entity {entity}"
    ))
}

impl Pred {
    /// Condition `c` on `field`, its literals checked against the field.
    fn compile(field: Field, c: &Condition) -> Result<Self, QueryError> {
        let lits = match &c.value {
            Value::List(items) => items
                .iter()
                .map(|v| compile_lit(field, &c.property, c.op, v))
                .collect::<Result<_, _>>()?,
            v => vec![compile_lit(field, &c.property, c.op, v)?],
        };
        Ok(Self {
            field,
            op: c.op,
            lits,
        })
    }
}

fn compile(kind: Kind, q: &Query) -> Result<Vec<Pred>, QueryError> {
    let mut preds = Vec::with_capacity(q.conditions.len() + 1);
    for c in &q.conditions {
        let field = resolve(kind, &c.property)
            .ok_or_else(|| property_not_found(&c.property, kind.name()))?;
        preds.push(Pred::compile(field, c)?);
    }
    if kind.is_list() && !preds.iter().any(|p| p.field == Field::Active) {
        preds.push(Pred {
            field: Field::Active,
            op: Op::Eq,
            lits: vec![Lit::Val(FVal::Int(1))],
        });
    }
    Ok(preds)
}

/// Candidate row indices: a CreateTime/Id range, or explicit ids for `Id =` / `Id IN`.
fn candidates(rows: &[Row], preds: &[Pred]) -> Vec<u32> {
    let (mut lo, mut hi) = (0usize, rows.len());
    let mut explicit: Option<Vec<u64>> = None;
    for p in preds {
        match p.field {
            Field::CreateTime => {
                let Some(v) = p.int() else { continue };
                let below = |strict: bool| {
                    rows.partition_point(|r| {
                        if strict {
                            r.created * 1000 < v
                        } else {
                            r.created * 1000 <= v
                        }
                    })
                };
                match p.op {
                    Op::Ge => lo = lo.max(below(true)),
                    Op::Gt => lo = lo.max(below(false)),
                    Op::Lt => hi = hi.min(below(true)),
                    Op::Le => hi = hi.min(below(false)),
                    Op::Eq => {
                        lo = lo.max(below(true));
                        hi = hi.min(below(false));
                    }
                    Op::In | Op::Like => {}
                }
            }
            Field::Id => match p.op {
                Op::Eq | Op::In => {
                    let mut ids: Vec<u64> = p
                        .lits
                        .iter()
                        .filter_map(|l| match l {
                            Lit::Val(FVal::Int(n)) if *n > 0 => Some(*n as u64),
                            _ => None,
                        })
                        .collect();
                    if let Some(prev) = &explicit {
                        ids.retain(|i| prev.contains(i));
                    }
                    explicit = Some(ids);
                }
                _ => {
                    let Some(v) = p.int() else { continue };
                    // Row index = id - 1.
                    let at = |id: i64| id.clamp(0, rows.len() as i64) as usize;
                    match p.op {
                        Op::Ge => lo = lo.max(at(v - 1)),
                        Op::Gt => lo = lo.max(at(v)),
                        Op::Lt => hi = hi.min(at(v - 1)),
                        Op::Le => hi = hi.min(at(v)),
                        _ => {}
                    }
                }
            },
            _ => {}
        }
    }
    match explicit {
        Some(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            ids.into_iter()
                .filter_map(|id| usize::try_from(id - 1).ok())
                .filter(|&i| i >= lo && i < hi)
                .map(|i| i as u32)
                .collect()
        }
        None if lo < hi => (lo as u32..hi as u32).collect(),
        None => Vec::new(),
    }
}

#[derive(Debug)]
struct CacheEntry {
    key: String,
    generation: u64,
    ids: Arc<Vec<u32>>,
}

/// Executes queries against a [`Dataset`], with a small cache of matching row lists.
#[derive(Debug, Default)]
pub(crate) struct Engine {
    cache: Mutex<VecDeque<CacheEntry>>,
}

impl Engine {
    /// Runs a parsed query and returns the full response body,
    /// `{"QueryResponse":{…},"time":"…"}`.
    pub(crate) fn run(&self, ds: &Dataset, q: &Query) -> Result<String, QueryError> {
        let mut out = String::from("{");
        self.push_query_response(&mut out, ds, q)?;
        out.push_str(",\"time\":\"");
        out.push_str(&envelope_time());
        out.push_str("\"}");
        Ok(out)
    }

    /// Runs a parsed query and appends its `"QueryResponse":{…}` member to `out` (the body of
    /// [`run`](Self::run) without the braces and `time`; a batch item's answer uses it as is).
    /// On error `out` may hold a partial member.
    pub(crate) fn push_query_response(
        &self,
        out: &mut String,
        ds: &Dataset,
        q: &Query,
    ) -> Result<(), QueryError> {
        // The docs call entity names case-sensitive, but node-quickbooks sends
        // `select * from customer` and works against production, so match them case-insensitively.
        if let Some(s) = Singleton::from_any_case(&q.entity) {
            return run_singleton(out, ds, s, q);
        }
        let Some(kind) = Kind::from_any_case(&q.entity) else {
            return push_rowless(out, q);
        };
        let preds = compile(kind, q)?;
        let order = resolve_order(kind, q)?;
        let ctx = Ctx::new(ds);
        let ids = self.matching(ds, &ctx, kind, q, &preds, &order);
        if q.count {
            push_count(out, ids.len() as u64);
        } else {
            push_page(out, ds, &ctx, kind, q, &ids);
        }
        Ok(())
    }

    fn matching(
        &self,
        ds: &Dataset,
        ctx: &Ctx,
        kind: Kind,
        q: &Query,
        preds: &[Pred],
        order: &[(Field, bool)],
    ) -> Arc<Vec<u32>> {
        let key = format!("{kind:?}|{:?}|{:?}", q.conditions, q.order_by);
        let generation = ds.generation();
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pos) = cache
                .iter()
                .position(|e| e.key == key && e.generation == generation)
            {
                let ids = Arc::clone(&cache[pos].ids);
                if let Some(e) = cache.remove(pos) {
                    cache.push_front(e);
                }
                return ids;
            }
        }
        let ids = Arc::new(compute(ds, ctx, kind, preds, order));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|e| e.generation == generation);
        cache.push_front(CacheEntry {
            key,
            generation,
            ids: Arc::clone(&ids),
        });
        let mut total = 0;
        let mut keep = 0;
        for e in cache.iter() {
            if keep >= CACHE_ENTRIES || total + e.ids.len() > CACHE_MAX_IDS && keep > 0 {
                break;
            }
            total += e.ids.len();
            keep += 1;
        }
        cache.truncate(keep);
        ids
    }
}

fn compute(
    ds: &Dataset,
    ctx: &Ctx,
    kind: Kind,
    preds: &[Pred],
    order: &[(Field, bool)],
) -> Vec<u32> {
    let rows = read(ds.table(kind));
    let mut ids: Vec<u32> = candidates(&rows, preds)
        .into_iter()
        .filter(|&i| {
            let row = rows[i as usize];
            if row.deleted {
                return false;
            }
            let mut view = View::new(ctx, kind, u64::from(i) + 1, row);
            preds.iter().all(|p| p.matches(&mut view))
        })
        .collect();
    let by_id_only = order.iter().all(|&(f, desc)| f == Field::Id && !desc)
        || order
            .first()
            .is_some_and(|&(f, desc)| f == Field::Id && !desc);
    let by_id_desc = order
        .first()
        .is_some_and(|&(f, desc)| f == Field::Id && desc);
    if by_id_desc {
        ids.reverse();
    } else if let [(field, desc)] = order
        && field.ty() != FieldType::Text
    {
        // One numeric key: sort plain pairs (no per-row allocation).
        let (field, desc) = (*field, *desc);
        let mut keyed: Vec<(i64, u32)> = ids
            .iter()
            .map(|&i| {
                let mut view = View::new(ctx, kind, u64::from(i) + 1, rows[i as usize]);
                let key = match view.value(field) {
                    FVal::Int(n) => n,
                    _ => i64::MIN,
                };
                (key, i)
            })
            .collect();
        drop(rows);
        keyed.sort_unstable_by(|a, b| {
            let o = if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
            o.then(a.1.cmp(&b.1))
        });
        ids = keyed.into_iter().map(|(_, i)| i).collect();
    } else if !by_id_only {
        let mut keyed: Vec<(Vec<FVal>, u32)> = ids
            .iter()
            .map(|&i| {
                let mut view = View::new(ctx, kind, u64::from(i) + 1, rows[i as usize]);
                (order.iter().map(|&(f, _)| view.value(f)).collect(), i)
            })
            .collect();
        drop(rows);
        keyed.sort_by(|a, b| {
            for (n, &(_, desc)) in order.iter().enumerate() {
                let o = a.0[n].cmp(&b.0[n]);
                let o = if desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.1.cmp(&b.1)
        });
        ids = keyed.into_iter().map(|(_, i)| i).collect();
    }
    ids
}

/// Most objects one CDC response carries (Intuit: "a maximum of 1,000 objects").
pub(crate) const CDC_MAX_OBJECTS: usize = 1000;

/// The CDC body: `{"CDCResponse":[{"QueryResponse":[…]}],"time":…}` with one element per
/// requested entity, in request order: `{"Customer":[…],"startPosition":1,"maxResults":n}` for
/// the rows whose `MetaData.LastUpdatedTime` is at or after `since_ms`, oldest change first
/// (ties by Id), or `{}` when there are none. Inactive list rows are ordinary rows
/// (`Active:false`); deleted rows are `{"domain":"QBO","status":"Deleted","Id":…,"MetaData":
/// {"LastUpdatedTime":…}}` (their deletion time).
///
/// The cap: at most [`CDC_MAX_OBJECTS`] objects in the whole response, filled in request order:
/// the first entity takes what it has up to the cap, the next what is left, and an entity whose
/// turn comes after the cap is spent answers `{}`. A response carrying 1000 objects may
/// therefore be cut; ask again per entity, or with a later `changedSince` (an entity's objects
/// are its oldest changes). `None` entries are entities the simulator holds no rows of.
pub(crate) fn cdc_body(ds: &Dataset, entities: &[Option<Kind>], since_ms: i64) -> String {
    let ctx = Ctx::new(ds);
    let mut budget = CDC_MAX_OBJECTS;
    let mut out = String::from("{\"CDCResponse\":[{\"QueryResponse\":[");
    for (n, kind) in entities.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let Some(kind) = *kind else {
            out.push_str("{}");
            continue;
        };
        let rows = read(ds.table(kind));
        let mut changed: Vec<(i64, u32)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.updated * 1000 >= since_ms)
            .map(|(i, r)| (r.updated, i as u32))
            .collect();
        changed.sort_unstable();
        let take = changed.len().min(budget);
        if take == 0 {
            out.push_str("{}");
            continue;
        }
        budget -= take;
        out.reserve(take * 1400);
        out.push_str("{\"");
        out.push_str(kind.name());
        out.push_str("\":[");
        for (j, &(_, i)) in changed[..take].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let row = &rows[i as usize];
            if row.deleted {
                render_deleted(&mut out, u64::from(i) + 1, row);
            } else {
                render(&mut out, &ctx, kind, u64::from(i) + 1, row);
            }
        }
        drop(rows);
        out.push_str("],\"startPosition\":1,\"maxResults\":");
        push_u64(&mut out, take as u64);
        out.push('}');
    }
    out.push_str("]}],\"time\":\"");
    out.push_str(&envelope_time());
    out.push_str("\"}");
    out
}

/// A singleton's queryable properties: `Id`, `SyncToken`, `MetaData.*` and, for CompanyInfo,
/// `CompanyName`.
fn singleton_value(s: Singleton, row: &Row, prop: &str) -> Option<(Field, FVal)> {
    Some(match prop.to_ascii_lowercase().as_str() {
        "id" => (Field::Id, FVal::Int(1)),
        "synctoken" => (Field::SyncToken, FVal::Int(i64::from(row.sync))),
        "metadata.createtime" => (Field::CreateTime, FVal::Int(row.created * 1000)),
        "metadata.lastupdatedtime" => (Field::LastUpdatedTime, FVal::Int(row.updated * 1000)),
        "companyname" if s == Singleton::CompanyInfo => (
            Field::CompanyName,
            FVal::Text(crate::company::COMPANY_NAME.to_lowercase()),
        ),
        _ => return None,
    })
}

/// A query on CompanyInfo / Preferences: the one row, if it passes the WHERE clause.
fn run_singleton(
    out: &mut String,
    ds: &Dataset,
    s: Singleton,
    q: &Query,
) -> Result<(), QueryError> {
    let row = s.row(ds);
    let not_found = |prop: &str| property_not_found(prop, s.name());
    let mut hit = true;
    for c in &q.conditions {
        let (field, value) =
            singleton_value(s, &row, &c.property).ok_or_else(|| not_found(&c.property))?;
        hit &= Pred::compile(field, c)?.matches_value(&value);
    }
    if let Some(o) = q
        .order_by
        .iter()
        .find(|o| singleton_value(s, &row, &o.property).is_none())
    {
        return Err(not_found(&o.property));
    }
    if q.count {
        push_count(out, u64::from(hit));
        return Ok(());
    }
    let start = q.start_position.unwrap_or(1).max(1);
    if !hit || start > 1 || q.max_results == Some(0) {
        push_empty(out);
        return Ok(());
    }
    out.reserve(4096);
    out.push_str("\"QueryResponse\":{\"");
    out.push_str(s.name());
    out.push_str("\":[");
    s.render(out, ds);
    out.push_str("],\"startPosition\":1,\"maxResults\":1}");
    Ok(())
}

/// `"QueryResponse":{"totalCount":n}`.
/// The answer for an entity without rows: known ones answer empty, others are invalid.
fn push_rowless(out: &mut String, q: &Query) -> Result<(), QueryError> {
    if !EMPTY_ENTITIES
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&q.entity))
    {
        return Err(QueryError::validation(format_args!(
            "invalid context declaration: {}",
            q.entity
        )));
    }
    if q.count {
        push_count(out, 0);
    } else {
        push_empty(out);
    }
    Ok(())
}

/// `ORDER BY` as fields and directions; an unknown property is a validation error.
fn resolve_order(kind: Kind, q: &Query) -> Result<Vec<(Field, bool)>, QueryError> {
    q.order_by
        .iter()
        .map(|o| {
            resolve(kind, &o.property)
                .map(|f| (f, o.descending))
                .ok_or_else(|| property_not_found(&o.property, kind.name()))
        })
        .collect()
}

/// The `STARTPOSITION` / `MAXRESULTS` page of the matching `ids`, rendered:
/// `"QueryResponse":{"<Entity>":[…],"startPosition":…,"maxResults":…}` (`{}` when empty).
fn push_page(out: &mut String, ds: &Dataset, ctx: &Ctx, kind: Kind, q: &Query, ids: &[u32]) {
    let start = q.start_position.unwrap_or(1).max(1);
    let max = q.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    let skip = usize::try_from(start - 1)
        .unwrap_or(usize::MAX)
        .min(ids.len());
    let take = usize::try_from(max)
        .unwrap_or(usize::MAX)
        .min(ids.len() - skip);
    if take == 0 {
        push_empty(out);
        return;
    }
    let page: Vec<(u64, Row)> = {
        let rows = read(ds.table(kind));
        ids[skip..skip + take]
            .iter()
            .filter_map(|&i| rows.get(i as usize).map(|r| (u64::from(i) + 1, *r)))
            .collect()
    };
    out.reserve(page.len() * 1400 + 128);
    out.push_str("\"QueryResponse\":{\"");
    out.push_str(kind.name());
    out.push_str("\":[");
    for (n, (id, row)) in page.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        render(out, ctx, kind, *id, row);
    }
    out.push_str("],\"startPosition\":");
    push_u64(out, start);
    out.push_str(",\"maxResults\":");
    push_u64(out, page.len() as u64);
    out.push('}');
}

fn push_count(out: &mut String, n: u64) {
    out.push_str("\"QueryResponse\":{\"totalCount\":");
    push_u64(out, n);
    out.push('}');
}

/// `"QueryResponse":{}`: nothing matched, or a page past the end.
fn push_empty(out: &mut String) {
    out.push_str("\"QueryResponse\":{}");
}

/// Renders one entity object, or `None` when the id does not exist or is deleted.
pub(crate) fn render_entity(ds: &Dataset, kind: Kind, id: u64) -> Option<String> {
    let row = ds.live_row(kind, id)?;
    let ctx = Ctx::new(ds);
    let mut out = String::with_capacity(1600);
    render(&mut out, &ctx, kind, id, &row);
    Some(out)
}

/// The single-read body of a singleton: `{"CompanyInfo":{…},"time":"…"}`.
pub(crate) fn singleton_body(ds: &Dataset, s: Singleton) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"");
    out.push_str(s.name());
    out.push_str("\":");
    s.render(&mut out, ds);
    out.push_str(",\"time\":\"");
    out.push_str(&envelope_time());
    out.push_str("\"}");
    out
}

/// The single-read body `{"Customer":{…},"time":"…"}`.
pub(crate) fn read_body(ds: &Dataset, kind: Kind, id: u64) -> Option<String> {
    let entity = render_entity(ds, kind, id)?;
    Some(format!(
        "{{\"{}\":{entity},\"time\":\"{}\"}}",
        kind.name(),
        envelope_time()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use crate::query::parse_query;

    fn ds() -> Dataset {
        Dataset::generate(&SimConfig {
            customers: 300,
            items: 40,
            invoices: 300,
            ..SimConfig::default()
        })
    }

    fn run(ds: &Dataset, q: &str) -> Result<serde_json::Value, QueryError> {
        let body = Engine::default().run(ds, &parse_query(q)?)?;
        Ok(serde_json::from_str(&body).unwrap())
    }

    fn ids(v: &serde_json::Value, entity: &str) -> Vec<u64> {
        v["QueryResponse"][entity]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["Id"].as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn like_patterns() {
        let p = |s: &str| s.split('%').map(str::to_owned).collect::<Vec<_>>();
        assert!(like("amy's bird", &p("amy%")));
        assert!(like("amy's bird", &p("%bird")));
        assert!(like("amy's bird", &p("%'s%")));
        assert!(!like("amy's bird", &p("bird%")));
        assert!(like("aa", &p("a%a")));
        assert!(!like("a", &p("a%a")));
        assert!(like("x", &p("%")));
    }

    #[test]
    fn money_literals() {
        assert_eq!(parse_money("100.5"), Some(100_500_000));
        assert_eq!(parse_money("-0.01"), Some(-10_000));
        assert_eq!(parse_money("abc"), None);
        assert_eq!(parse_money("."), None);
    }

    #[test]
    fn filters_match_brute_force() {
        let ds = ds();
        let all = ids(
            &run(
                &ds,
                "SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 1000",
            )
            .unwrap(),
            "Customer",
        );
        assert_eq!(all, (1..=300).collect::<Vec<_>>());
        let active = ids(
            &run(&ds, "SELECT * FROM Customer MAXRESULTS 1000").unwrap(),
            "Customer",
        );
        let inactive = ids(
            &run(
                &ds,
                "SELECT * FROM Customer WHERE Active = false MAXRESULTS 1000",
            )
            .unwrap(),
            "Customer",
        );
        assert!(!inactive.is_empty());
        assert_eq!(active.len() + inactive.len(), 300);
        let window = run(
            &ds,
            "SELECT * FROM Invoice WHERE MetaData.CreateTime >= '2026-01-10T00:00:00Z' \
             AND MetaData.CreateTime < '2026-01-11T00:00:00Z' MAXRESULTS 1000",
        )
        .unwrap();
        let got = ids(&window, "Invoice");
        let from = parse_instant_literal("2026-01-10T00:00:00Z").unwrap();
        let want: Vec<u64> = ds
            .ids_created_between(Kind::Invoice, from, from + 86_400_000)
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn order_by_desc_and_paging() {
        let ds = ds();
        let v = run(
            &ds,
            "SELECT * FROM Invoice ORDERBY TotalAmt DESC MAXRESULTS 5",
        )
        .unwrap();
        let totals: Vec<f64> = v["QueryResponse"]["Invoice"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["TotalAmt"].as_f64().unwrap())
            .collect();
        assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
        let v = run(
            &ds,
            "SELECT * FROM Invoice ORDER BY Id DESC STARTPOSITION 2 MAXRESULTS 2",
        )
        .unwrap();
        assert_eq!(ids(&v, "Invoice"), vec![299, 298]);
        assert_eq!(v["QueryResponse"]["startPosition"], 2);
        assert_eq!(v["QueryResponse"]["maxResults"], 2);
        let v = run(&ds, "SELECT * FROM Invoice STARTPOSITION 301").unwrap();
        assert_eq!(v["QueryResponse"], serde_json::json!({}));
    }

    #[test]
    fn validation_errors() {
        let ds = ds();
        let e = run(&ds, "SELECT * FROM Custmoer").unwrap_err();
        assert_eq!(
            e.detail(),
            "QueryValidationError: invalid context declaration: Custmoer"
        );
        let e = run(&ds, "SELECT * FROM Customer WHERE Foo = '1'").unwrap_err();
        assert_eq!(e.code(), "4001");
        let e = run(&ds, "SELECT * FROM Invoice WHERE Active = true").unwrap_err();
        assert_eq!(e.code(), "4001");
        let e = run(&ds, "SELECT * FROM Invoice WHERE TxnDate > 'soon'").unwrap_err();
        assert_eq!(e.code(), "4001");
        let v = run(&ds, "SELECT * FROM Budget").unwrap();
        assert_eq!(v["QueryResponse"], serde_json::json!({}));
    }

    #[test]
    fn text_filters_and_escapes() {
        let ds = ds();
        let name = customer_profile(ds.seed, 7).display;
        let q = format!(
            "SELECT * FROM Customer WHERE DisplayName = {} AND Active IN (true, false)",
            crate::query::escape_literal(&name)
        );
        assert_eq!(ids(&run(&ds, &q).unwrap(), "Customer"), vec![7]);
        let v = run(
            &ds,
            "SELECT COUNT(*) FROM Customer WHERE DisplayName LIKE '%''%'",
        );
        assert!(v.is_err());
        let v = run(&ds, "SELECT COUNT(*) FROM Customer WHERE DisplayName LIKE '%\\'s %' AND Active IN (true,false)")
            .unwrap();
        assert!(v["QueryResponse"]["totalCount"].as_u64().unwrap() > 0);
    }
}
