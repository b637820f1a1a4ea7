//! The company's data: compact rows per entity, generated deterministically from the seed.
//!
//! A row holds only what changes (times, sync token, active flag); everything else (names,
//! addresses, lines, amounts) is a pure function of `(seed, entity, id)` computed on demand by
//! the `*_profile` functions, so a million customers cost ~24 MB. Rows are sorted by CreateTime
//! and ids are assigned in that order (`id = index + 1`), so a CreateTime window is a binary
//! search and the default order (by Id) is the storage order.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SimConfig;
use crate::rng::hash3;
use crate::time::{days_from_civil, pacific_day};

/// Entities that hold data in the simulator. The discriminant is the table index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Customer,
    Item,
    Invoice,
    Account,
    Bill,
    BillPayment,
    Class,
    CreditMemo,
    Department,
    Deposit,
    Employee,
    Estimate,
    JournalEntry,
    Payment,
    PaymentMethod,
    Purchase,
    PurchaseOrder,
    RefundReceipt,
    SalesReceipt,
    TaxCode,
    TaxRate,
    Term,
    TimeActivity,
    Transfer,
    Vendor,
    VendorCredit,
}

impl Kind {
    /// Number of entities with data.
    pub(crate) const COUNT: usize = 26;

    pub(crate) const ALL: [Kind; Kind::COUNT] = [
        Kind::Customer,
        Kind::Item,
        Kind::Invoice,
        Kind::Account,
        Kind::Bill,
        Kind::BillPayment,
        Kind::Class,
        Kind::CreditMemo,
        Kind::Department,
        Kind::Deposit,
        Kind::Employee,
        Kind::Estimate,
        Kind::JournalEntry,
        Kind::Payment,
        Kind::PaymentMethod,
        Kind::Purchase,
        Kind::PurchaseOrder,
        Kind::RefundReceipt,
        Kind::SalesReceipt,
        Kind::TaxCode,
        Kind::TaxRate,
        Kind::Term,
        Kind::TimeActivity,
        Kind::Transfer,
        Kind::Vendor,
        Kind::VendorCredit,
    ];

    /// The QBO entity name (`Customer`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Customer => "Customer",
            Kind::Item => "Item",
            Kind::Invoice => "Invoice",
            Kind::Account => "Account",
            Kind::Bill => "Bill",
            Kind::BillPayment => "BillPayment",
            Kind::Class => "Class",
            Kind::CreditMemo => "CreditMemo",
            Kind::Department => "Department",
            Kind::Deposit => "Deposit",
            Kind::Employee => "Employee",
            Kind::Estimate => "Estimate",
            Kind::JournalEntry => "JournalEntry",
            Kind::Payment => "Payment",
            Kind::PaymentMethod => "PaymentMethod",
            Kind::Purchase => "Purchase",
            Kind::PurchaseOrder => "PurchaseOrder",
            Kind::RefundReceipt => "RefundReceipt",
            Kind::SalesReceipt => "SalesReceipt",
            Kind::TaxCode => "TaxCode",
            Kind::TaxRate => "TaxRate",
            Kind::Term => "Term",
            Kind::TimeActivity => "TimeActivity",
            Kind::Transfer => "Transfer",
            Kind::Vendor => "Vendor",
            Kind::VendorCredit => "VendorCredit",
        }
    }

    /// Case-insensitive entity name (queries from node-quickbooks and REST paths use
    /// `customer`).
    pub(crate) fn from_any_case(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// Transactions whose amount an admin change can edit: those whose lines are plain amounts
    /// that no other transaction copies (a Payment copies its invoice's total, a BillPayment
    /// its bill's).
    pub(crate) fn amount_changeable(self) -> bool {
        matches!(self, Kind::Purchase | Kind::Deposit | Kind::Transfer)
    }

    /// List (name) entities have `Active` and hide inactive rows by default; QuickBooks never
    /// deletes them, it makes them inactive.
    pub(crate) fn is_list(self) -> bool {
        matches!(
            self,
            Kind::Customer
                | Kind::Item
                | Kind::Account
                | Kind::Class
                | Kind::Department
                | Kind::Employee
                | Kind::PaymentMethod
                | Kind::TaxCode
                | Kind::TaxRate
                | Kind::Term
                | Kind::Vendor
        )
    }

    /// Salt of the row (time) generation. The first three are fixed forever: the data of
    /// Customer, Item and Invoice must not change with new entities.
    fn salt(self) -> u64 {
        match self {
            Kind::Customer => 0xC057,
            Kind::Item => 0x17E3,
            Kind::Invoice => 0x1A01,
            k => 0xA000 + k as u64,
        }
    }

    /// Salt of the profile hashes of the entities beyond Customer, Item and Invoice (64 salts
    /// per entity: the profile and its lines).
    pub(crate) fn profile_salt(self) -> u64 {
        0xB000 + (self as u64) * 0x40
    }
}

/// The 26 entities that hold generated data, alphabetically.
pub const DATA_ENTITIES: &[&str] = &[
    "Account",
    "Bill",
    "BillPayment",
    "Class",
    "CreditMemo",
    "Customer",
    "Department",
    "Deposit",
    "Employee",
    "Estimate",
    "Invoice",
    "Item",
    "JournalEntry",
    "Payment",
    "PaymentMethod",
    "Purchase",
    "PurchaseOrder",
    "RefundReceipt",
    "SalesReceipt",
    "TaxCode",
    "TaxRate",
    "Term",
    "TimeActivity",
    "Transfer",
    "Vendor",
    "VendorCredit",
];

/// The entities of [`DATA_ENTITIES`] that are list (name) entities: they have `Active`, a plain
/// `SELECT` hides their inactive rows (ask with `Active IN (true, false)`), and they are made
/// inactive rather than deleted. The others are transactions.
pub const LIST_ENTITIES: &[&str] = &[
    "Account",
    "Class",
    "Customer",
    "Department",
    "Employee",
    "Item",
    "PaymentMethod",
    "TaxCode",
    "TaxRate",
    "Term",
    "Vendor",
];

/// Entities change data capture refuses (Intuit's CDC page: "all API entities except
/// JournalCode, TaxAgency, TimeActivity, TaxCode, TaxRate").
pub(crate) const CDC_UNSUPPORTED: &[&str] = &[
    "JournalCode",
    "TaxAgency",
    "TimeActivity",
    "TaxCode",
    "TaxRate",
];

/// Other QBO entities the query endpoint knows (they answer with no rows). The per-company
/// singletons CompanyInfo and Preferences live in `company`.
pub(crate) const EMPTY_ENTITIES: &[&str] = &[
    "Attachable",
    "Budget",
    "CompanyCurrency",
    "CustomerType",
    "ExchangeRate",
    "JournalCode",
    "TaxAgency",
];

/// The mutable part of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// `MetaData.CreateTime`, Unix seconds.
    pub(crate) created: i64,
    /// `MetaData.LastUpdatedTime`, Unix seconds.
    pub(crate) updated: i64,
    /// `SyncToken`.
    pub(crate) sync: u32,
    /// `Active` (always true for transactions).
    pub(crate) active: bool,
    /// Deleted (transactions only): gone from queries and reads, reported by CDC with
    /// `status: "Deleted"`; `updated` is then the deletion time.
    pub(crate) deleted: bool,
    /// Cents added to the first line of a Purchase, Deposit or Transfer by an admin amount
    /// change (`SimState::change_amount`); 0 for generated rows.
    pub(crate) amount_delta_cents: i64,
}

/// Why an admin change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChangeError {
    UnknownEntity,
    NotFound,
    NotList,
    /// A delete of a list entity (QuickBooks makes those inactive instead).
    ListDelete,
    /// An amount change of an entity whose amounts cannot change (see
    /// [`Kind::amount_changeable`]).
    AmountNotChangeable,
}

/// All generated data.
#[derive(Debug)]
pub(crate) struct Dataset {
    pub(crate) seed: u64,
    /// Unix second of the first day of the CreateTime spread (`SimConfig::from`, 00:00 UTC).
    pub(crate) origin: i64,
    tables: [RwLock<Vec<Row>>; Kind::COUNT],
    /// Rows per entity (fixed: deleting only flags a row).
    counts: [usize; Kind::COUNT],
    /// Bumped by every change; query caches key on it.
    generation: AtomicU64,
}

impl Dataset {
    /// Generates the data for `cfg`.
    pub(crate) fn generate(cfg: &SimConfig) -> Self {
        let from = days_from_civil(
            i64::from(cfg.from.year()),
            cfg.from.month() as u32,
            cfg.from.day() as u32,
        ) * 86_400;
        let to = (days_from_civil(
            i64::from(cfg.to.year()),
            cfg.to.month() as u32,
            cfg.to.day() as u32,
        ) * 86_400)
            .max(from + 86_400);
        let weights = day_weights(cfg.seed, from, to);
        let counts = Kind::ALL.map(|kind| match kind {
            Kind::Customer => cfg.customers,
            Kind::Item => cfg.items,
            Kind::Invoice => cfg.invoices,
            _ => cfg.other_rows,
        });
        Self {
            seed: cfg.seed,
            origin: from,
            tables: Kind::ALL.map(|kind| {
                RwLock::new(generate_rows(
                    cfg.seed,
                    kind,
                    counts[kind as usize],
                    from,
                    to,
                    &weights,
                ))
            }),
            counts,
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn table(&self, kind: Kind) -> &RwLock<Vec<Row>> {
        &self.tables[kind as usize]
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Rows per entity, deleted ones included (ids run from 1 to the count), indexed by
    /// `Kind as usize`.
    pub(crate) fn counts(&self) -> [usize; Kind::COUNT] {
        self.counts
    }

    /// The row of `id`, deleted or not.
    pub(crate) fn row(&self, kind: Kind, id: u64) -> Option<Row> {
        let idx = usize::try_from(id.checked_sub(1)?).ok()?;
        read(self.table(kind)).get(idx).copied()
    }

    /// The row of `id` unless it does not exist or is deleted.
    pub(crate) fn live_row(&self, kind: Kind, id: u64) -> Option<Row> {
        self.row(kind, id).filter(|r| !r.deleted)
    }

    fn change(
        &self,
        entity: &str,
        id: &str,
        f: impl FnOnce(Kind, &mut Row) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let kind = Kind::from_any_case(entity).ok_or(ChangeError::UnknownEntity)?;
        let idx = id
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|i| i.checked_sub(1))
            .ok_or(ChangeError::NotFound)?;
        let mut rows = write(self.table(kind));
        let row = rows
            .get_mut(idx)
            .filter(|r| !r.deleted)
            .ok_or(ChangeError::NotFound)?;
        f(kind, row)?;
        drop(rows);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Bumps SyncToken and LastUpdatedTime (rendering then shows a changed visible field).
    pub(crate) fn mutate(&self, entity: &str, id: &str, now_secs: i64) -> Result<(), ChangeError> {
        self.change(entity, id, |_, row| {
            row.sync += 1;
            row.updated = now_secs.max(row.created);
            Ok(())
        })
    }

    /// Adds `delta_cents` to the first line's amount of a Purchase, Deposit or Transfer (its
    /// total follows), and bumps SyncToken and LastUpdatedTime, as an edit in QuickBooks would.
    pub(crate) fn change_amount(
        &self,
        entity: &str,
        id: &str,
        delta_cents: i64,
        now_secs: i64,
    ) -> Result<(), ChangeError> {
        self.change(entity, id, |kind, row| {
            if !kind.amount_changeable() {
                return Err(ChangeError::AmountNotChangeable);
            }
            row.amount_delta_cents += delta_cents;
            row.sync += 1;
            row.updated = now_secs.max(row.created);
            Ok(())
        })
    }

    /// Makes a list entity inactive (and bumps SyncToken and LastUpdatedTime).
    pub(crate) fn deactivate(
        &self,
        entity: &str,
        id: &str,
        now_secs: i64,
    ) -> Result<(), ChangeError> {
        self.change(entity, id, |kind, row| {
            if !kind.is_list() {
                return Err(ChangeError::NotList);
            }
            row.active = false;
            row.sync += 1;
            row.updated = now_secs.max(row.created);
            Ok(())
        })
    }

    /// Deletes a transaction: it leaves queries and reads, and CDC reports it as deleted at
    /// `now_secs` (its LastUpdatedTime from then on). List entities refuse.
    pub(crate) fn delete(&self, entity: &str, id: &str, now_secs: i64) -> Result<(), ChangeError> {
        self.change(entity, id, |kind, row| {
            if kind.is_list() {
                return Err(ChangeError::ListDelete);
            }
            row.deleted = true;
            row.updated = now_secs.max(row.created);
            Ok(())
        })
    }

    /// Ids whose CreateTime is in `[start_ms, end_ms)`, inactive included, deleted not.
    pub(crate) fn ids_created_between(
        &self,
        kind: Kind,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<String> {
        let rows = read(self.table(kind));
        let lo = rows.partition_point(|r| r.created * 1000 < start_ms);
        let hi = rows.partition_point(|r| r.created * 1000 < end_ms).max(lo);
        (lo..hi)
            .filter(|&i| !rows[i].deleted)
            .map(|i| (i + 1).to_string())
            .collect()
    }

    /// Ids (ascending) whose LastUpdatedTime is in `[start_ms, end_ms)`, inactive included,
    /// deleted not.
    pub(crate) fn ids_updated_between(
        &self,
        kind: Kind,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<String> {
        read(self.table(kind))
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.deleted && (start_ms..end_ms).contains(&(r.updated * 1000)))
            .map(|(i, _)| (i + 1).to_string())
            .collect()
    }

    /// Ids (ascending) of deleted rows.
    pub(crate) fn deleted_ids(&self, kind: Kind) -> Vec<String> {
        read(self.table(kind))
            .iter()
            .enumerate()
            .filter(|(_, r)| r.deleted)
            .map(|(i, _)| (i + 1).to_string())
            .collect()
    }
}

/// Read-locks, ignoring poisoning (rows are plain data; a panicking writer cannot leave them torn).
pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Relative activity per UTC day: ~12 % of days are empty, ~10 % are busy (5× a normal day).
fn day_weights(seed: u64, from: i64, to: i64) -> Vec<u64> {
    let days = ((to - from + 86_399) / 86_400).max(1) as u64;
    let mut w: Vec<u64> = (0..days)
        .map(|d| {
            let h = hash3(seed, 0xDA75, d);
            match h % 100 {
                0..12 => 0,
                12..22 => 10,
                _ => 1 + (h >> 8) % 3,
            }
        })
        .collect();
    if w.iter().all(|&x| x == 0) {
        w[0] = 1;
    }
    w
}

fn generate_rows(seed: u64, kind: Kind, n: usize, from: i64, to: i64, weights: &[u64]) -> Vec<Row> {
    let mut cum = Vec::with_capacity(weights.len());
    let mut total = 0u64;
    for &w in weights {
        total += w;
        cum.push(total);
    }
    let mut created: Vec<i64> = (0..n as u64)
        .map(|i| {
            let h = hash3(seed, kind.salt(), i);
            let pick = h % total;
            let day = cum.partition_point(|&c| c <= pick) as i64;
            let start = from + day * 86_400;
            let len = (to - start).clamp(1, 86_400) as u64;
            start + ((h >> 32) % len) as i64
        })
        .collect();
    created.sort_unstable();
    created
        .into_iter()
        .enumerate()
        .map(|(i, created)| {
            let h = hash3(seed, kind.salt() ^ 0x5EED, i as u64 + 1);
            let inactive = kind.is_list() && h % 100 < 5;
            let edited = inactive || (h >> 8) % 100 < 35;
            let (updated, sync) = if edited {
                // Edits happen before `to`, so the data never depends on the clock.
                let later = created + 60 + ((h >> 16) % (10 * 86_400)) as i64;
                (later.min(to - 1).max(created), 1 + ((h >> 48) % 3) as u32)
            } else {
                (created, 0)
            };
            Row {
                created,
                updated,
                sync,
                active: !inactive,
                deleted: false,
                amount_delta_cents: 0,
            }
        })
        .collect()
}

pub(crate) const GIVEN: [&str; 30] = [
    "Amy",
    "Peter",
    "Dylan",
    "Zoë",
    "José",
    "François",
    "Björn",
    "Chloé",
    "Siobhán",
    "Renée",
    "Łukasz",
    "Mia",
    "Noah",
    "Olivia",
    "Liam",
    "Emma",
    "Ava",
    "Sofía",
    "Mateo",
    "Hiroshi",
    "Priya",
    "Amélie",
    "Søren",
    "Inês",
    "Jürgen",
    "Kevin",
    "Grace",
    "Bill",
    "Sarah",
    "Diego",
];

pub(crate) const FAMILY: [&str; 30] = [
    "Müller",
    "Dukes",
    "Sollfrank",
    "O'Brien",
    "Nuñez",
    "Kalapatapu",
    "Paulsen",
    "Sonnenschein",
    "Martini",
    "Lefèvre",
    "Sørensen",
    "Ødegaard",
    "García",
    "Smith",
    "Johnson",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Schäfer",
    "D'Angelo",
    "El Sol",
    "Okafor",
    "Tanaka",
    "Dubois",
    "Brontë",
    "Fischer",
    "Novák",
    "Weiß",
    "MacLeod",
    "Chen",
];

/// Company name patterns around a family name.
const FAMILY_COMPANY: [(&str, &str); 6] = [
    ("", " & Söhne"),
    ("Café \"", "\""),
    ("", " Family Store"),
    ("", " Medical Supplies"),
    ("", " Basketball Camp"),
    ("", " & Co. <Landscaping>"),
];

/// Company name patterns around a given name.
const GIVEN_COMPANY: [&str; 2] = ["'s Bird Sanctuary", "'s Bakery"];

const PERSONS: usize = GIVEN.len() * FAMILY.len();
const CUSTOMER_BASES: usize =
    PERSONS + FAMILY.len() * FAMILY_COMPANY.len() + GIVEN.len() * GIVEN_COMPANY.len();

/// A postal address: street, city, state, postal code, lat, long.
pub(crate) type Address = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

pub(crate) const ADDRESSES: [Address; 12] = [
    (
        "Court St.",
        "Tucson",
        "AZ",
        "85719",
        "32.2841116",
        "-110.9744298",
    ),
    ("Finch St.", "Bayshore", "CA", "94326", "INVALID", "INVALID"),
    (
        "Main St.",
        "Middlefield",
        "CA",
        "94303",
        "37.4530553",
        "-122.1178261",
    ),
    (
        "S. Boise Ave",
        "Middlefield",
        "CA",
        "94304",
        "37.3989376",
        "-122.1443935",
    ),
    (
        "Red Rock Rd.",
        "Bayshore",
        "CA",
        "94326",
        "INVALID",
        "INVALID",
    ),
    (
        "Cypress Hill Ave.",
        "Middlefield",
        "CA",
        "94303",
        "37.4238562",
        "-122.1141681",
    ),
    (
        "Ocean Ave.",
        "San Francisco",
        "CA",
        "94112",
        "37.7235134",
        "-122.4546317",
    ),
    (
        "O'Farrell St.",
        "San Francisco",
        "CA",
        "94102",
        "37.7865012",
        "-122.4091003",
    ),
    (
        "Mission Blvd.",
        "Fremont",
        "CA",
        "94539",
        "37.5483210",
        "-121.9886003",
    ),
    (
        "Pine St.",
        "Seattle",
        "WA",
        "98101",
        "47.6101497",
        "-122.3344068",
    ),
    (
        "Congress Ave.",
        "Austin",
        "TX",
        "78701",
        "30.2672310",
        "-97.7430608",
    ),
    (
        "Peachtree St. NE",
        "Atlanta",
        "GA",
        "30303",
        "33.7589912",
        "-84.3877432",
    ),
];

/// Everything about a customer that does not change.
#[derive(Debug, Clone)]
pub(crate) struct CustomerProfile {
    pub(crate) given: &'static str,
    pub(crate) family: &'static str,
    /// `DisplayName` while active (inactive rows get ` (deleted)` appended).
    pub(crate) display: String,
    pub(crate) is_company: bool,
    pub(crate) bill: usize,
    pub(crate) ship: Option<usize>,
    pub(crate) street_no: u32,
    pub(crate) phone: (u32, u32, u32),
    pub(crate) email: String,
    pub(crate) balance_cents: i64,
    pub(crate) taxable: bool,
    pub(crate) delivery: &'static str,
}

/// `(seed, id)` → customer profile; display names are unique.
pub(crate) fn customer_profile(seed: u64, id: u64) -> CustomerProfile {
    let index = id.saturating_sub(1);
    let n = CUSTOMER_BASES as u64;
    // A fixed permutation (7 is coprime with the base count) spreads persons and companies.
    let k = (((index + seed % n) % n) * 7 % n) as usize;
    let round = index / n;
    let h = hash3(seed, 0xC0FF, id);
    let (given, family) = (GIVEN[(h % 30) as usize], FAMILY[((h >> 8) % 30) as usize]);
    let (mut display, given, family, is_company) = if k < PERSONS {
        let (g, f) = (GIVEN[k % GIVEN.len()], FAMILY[k / GIVEN.len()]);
        (format!("{g} {f}"), g, f, false)
    } else if k < PERSONS + FAMILY.len() * FAMILY_COMPANY.len() {
        let j = k - PERSONS;
        let f = FAMILY[j % FAMILY.len()];
        let (pre, post) = FAMILY_COMPANY[j / FAMILY.len()];
        (format!("{pre}{f}{post}"), given, family, true)
    } else {
        let j = k - PERSONS - FAMILY.len() * FAMILY_COMPANY.len();
        let g = GIVEN[j % GIVEN.len()];
        (
            format!("{g}{}", GIVEN_COMPANY[j / GIVEN.len()]),
            given,
            family,
            true,
        )
    };
    if round > 0 {
        display.push(' ');
        display.push_str(&(round + 1).to_string());
    }
    let bill = ((h >> 16) % ADDRESSES.len() as u64) as usize;
    let ship = match (h >> 20) % 4 {
        0 => None,
        1 => Some(((h >> 24) % ADDRESSES.len() as u64) as usize),
        _ => Some(bill),
    };
    let mut email = String::new();
    for c in given.chars().flat_map(ascii_fold) {
        email.push(c.to_ascii_lowercase());
    }
    email.push('.');
    for c in family.chars().flat_map(ascii_fold) {
        email.push(c.to_ascii_lowercase());
    }
    email.push_str(&format!("{id}@example.com"));
    CustomerProfile {
        given,
        family,
        display,
        is_company,
        bill,
        ship,
        street_no: 1 + ((h >> 28) % 9_000) as u32,
        phone: (
            201 + ((h >> 32) % 700) as u32,
            200 + ((h >> 40) % 800) as u32,
            ((h >> 48) % 10_000) as u32,
        ),
        email,
        balance_cents: if (h >> 56).is_multiple_of(3) {
            0
        } else {
            ((h >> 12) % 500_000) as i64
        },
        taxable: (h >> 60).is_multiple_of(2),
        delivery: ["Print", "Email", "None"][((h >> 61) % 3) as usize],
    }
}

/// Folds the letters used in generated names to ASCII for e-mail addresses.
pub(crate) fn ascii_fold(c: char) -> Option<char> {
    let f = match c {
        'a'..='z' | 'A'..='Z' => c,
        'ä' | 'á' | 'à' | 'â' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ï' => 'i',
        'ö' | 'ó' | 'ø' | 'Ø' => 'o',
        'ü' | 'ú' => 'u',
        'ñ' => 'n',
        'ß' => 's',
        'Ł' => 'L',
        _ => return None,
    };
    Some(f)
}

const ITEM_NOUNS: [&str; 30] = [
    "Rock Fountain",
    "Garden Rocks",
    "Pump",
    "Concrete",
    "Design",
    "Installation",
    "Pest Control",
    "Sprinkler Heads",
    "Sprinkler Pipes",
    "Gardening",
    "Hours",
    "Lighting",
    "Maintenance & Repair",
    "Sod",
    "Soil",
    "Trimming",
    "Tree Removal",
    "Fountain Pump",
    "Patio Stones",
    "Bird Feeder",
    "Garden Hose",
    "Mulch",
    "Fertilizer",
    "Planter Box",
    "Irrigation Timer",
    "Lawn Mowing",
    "Hedge Trimming",
    "Snow Removal",
    "Gutter Cleaning",
    "Consulting",
];

const ITEM_QUALIFIERS: [&str; 8] = [
    "",
    "Deluxe ",
    "Économie ",
    "Kid's ",
    "Pro \"Max\" ",
    "Große ",
    "Mini ",
    "Premium ",
];

/// `Item.Type` values.
pub(crate) const ITEM_TYPES: [&str; 3] = ["Inventory", "Service", "NonInventory"];

/// Everything about an item that does not change.
#[derive(Debug, Clone)]
pub(crate) struct ItemProfile {
    /// `Name` while active.
    pub(crate) name: String,
    pub(crate) noun: &'static str,
    pub(crate) item_type: &'static str,
    pub(crate) price_cents: i64,
    pub(crate) cost_cents: i64,
    pub(crate) qty_on_hand: u32,
    pub(crate) taxable: bool,
}

/// `(seed, id)` → item profile; names are unique.
pub(crate) fn item_profile(seed: u64, id: u64) -> ItemProfile {
    let index = id.saturating_sub(1);
    let n = (ITEM_NOUNS.len() * ITEM_QUALIFIERS.len()) as u64;
    let k = ((index + seed % n) % n) as usize;
    let round = index / n;
    let noun = ITEM_NOUNS[k % ITEM_NOUNS.len()];
    let mut name = format!("{}{noun}", ITEM_QUALIFIERS[k / ITEM_NOUNS.len()]);
    if round > 0 {
        name.push(' ');
        name.push_str(&(round + 1).to_string());
    }
    let h = hash3(seed, 0x17E4, id);
    let item_type = match h % 10 {
        0..4 => ITEM_TYPES[0],
        4..8 => ITEM_TYPES[1],
        _ => ITEM_TYPES[2],
    };
    let price_cents = (1 + ((h >> 8) % 400) as i64) * 25;
    ItemProfile {
        name,
        noun,
        item_type,
        price_cents,
        cost_cents: price_cents * 45 / 100,
        qty_on_hand: ((h >> 20) % 120) as u32,
        taxable: !(h >> 30).is_multiple_of(3),
    }
}

/// One sales line of an invoice.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) item_id: u64,
    pub(crate) qty: u32,
    pub(crate) unit_cents: i64,
}

/// Everything about an invoice that does not change.
#[derive(Debug, Clone)]
pub(crate) struct InvoiceProfile {
    /// Referenced customer id (`None` when there are no customers).
    pub(crate) customer_id: Option<u64>,
    pub(crate) lines: Vec<Line>,
    pub(crate) total_cents: i64,
    pub(crate) paid: bool,
    pub(crate) doc_number: u64,
}

/// Price of an item id, or 100.00 when there are no items.
fn item_price(seed: u64, items: usize, id: u64) -> i64 {
    if items == 0 {
        10_000
    } else {
        item_profile(seed, id).price_cents
    }
}

/// `(seed, id)` → invoice profile, referencing real customer and item ids.
pub(crate) fn invoice_profile(
    seed: u64,
    id: u64,
    customers: usize,
    items: usize,
) -> InvoiceProfile {
    let h = hash3(seed, 0x1A02, id);
    let customer_id = (customers > 0).then(|| 1 + h % customers as u64);
    let n = 1 + (h >> 8) % 4;
    let lines: Vec<Line> = (0..n)
        .map(|l| {
            let lh = hash3(seed, 0x11E5 + l, id);
            let item_id = if items == 0 { 1 } else { 1 + lh % items as u64 };
            Line {
                item_id,
                qty: 1 + ((lh >> 32) % 10) as u32,
                unit_cents: item_price(seed, items, item_id),
            }
        })
        .collect();
    let total_cents = lines.iter().map(|l| i64::from(l.qty) * l.unit_cents).sum();
    InvoiceProfile {
        customer_id,
        lines,
        total_cents,
        paid: (h >> 16).is_multiple_of(2),
        doc_number: 1000 + id,
    }
}

/// The `TxnDate` (Pacific calendar day) of an invoice created at `created` (Unix seconds).
pub(crate) fn txn_day(created: i64) -> i64 {
    pacific_day(created)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cfg(n: usize) -> SimConfig {
        SimConfig {
            customers: n,
            items: n / 4,
            invoices: n,
            ..SimConfig::default()
        }
    }

    #[test]
    fn rows_sorted_within_range_with_empty_and_busy_days() {
        let c = cfg(5000);
        let ds = Dataset::generate(&c);
        let rows = read(ds.table(Kind::Customer)).clone();
        assert_eq!(rows.len(), 5000);
        assert!(rows.windows(2).all(|w| w[0].created <= w[1].created));
        let from = days_from_civil(2026, 1, 1) * 86_400;
        let to = days_from_civil(2026, 2, 1) * 86_400;
        assert!(
            rows.iter()
                .all(|r| (from..to).contains(&r.created) && r.updated >= r.created)
        );
        let mut per_day = vec![0usize; 31];
        for r in &rows {
            per_day[((r.created - from) / 86_400) as usize] += 1;
        }
        assert!(per_day.contains(&0), "{per_day:?}");
        let avg = 5000 / 31;
        assert!(per_day.iter().any(|&n| n > 3 * avg), "{per_day:?}");
        assert!(rows.iter().any(|r| !r.active));
        assert!(read(ds.table(Kind::Invoice)).iter().all(|r| r.active));
    }

    #[test]
    fn names_unique_and_special() {
        let names: Vec<String> = (1..=1000)
            .map(|id| customer_profile(42, id).display)
            .collect();
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
        for want in ["Amy's Bird Sanctuary", "Müller & Söhne", "Café \"El Sol\""] {
            assert!(names.iter().any(|n| n == want), "{want}");
        }
        let items: Vec<String> = (1..=1000).map(|id| item_profile(42, id).name).collect();
        assert_eq!(items.iter().collect::<HashSet<_>>().len(), items.len());
    }

    #[test]
    fn invoices_reference_existing_rows() {
        for id in 1..200 {
            let p = invoice_profile(7, id, 50, 10);
            assert!((1..=50).contains(&p.customer_id.unwrap()));
            assert!(p.lines.iter().all(|l| (1..=10).contains(&l.item_id)));
            assert_eq!(
                p.total_cents,
                p.lines
                    .iter()
                    .map(|l| i64::from(l.qty) * l.unit_cents)
                    .sum::<i64>()
            );
        }
    }

    #[test]
    fn every_entity_is_generated_and_listed() {
        let c = SimConfig {
            other_rows: 33,
            ..cfg(500)
        };
        let ds = Dataset::generate(&c);
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        assert_eq!(names, DATA_ENTITIES);
        let lists: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| Kind::from_any_case(n).is_some_and(Kind::is_list))
            .collect();
        assert_eq!(lists, LIST_ENTITIES);
        for kind in Kind::ALL {
            let want = match kind {
                Kind::Customer => 500,
                Kind::Item => 125,
                Kind::Invoice => 500,
                _ => 33,
            };
            assert_eq!(ds.counts()[kind as usize], want, "{kind:?}");
            let rows = read(ds.table(kind));
            assert_eq!(rows.len(), want);
            assert!(rows.windows(2).all(|w| w[0].created <= w[1].created));
            assert!(rows.iter().all(|r| r.active || kind.is_list()));
        }
        for e in EMPTY_ENTITIES.iter().chain(CDC_UNSUPPORTED) {
            assert_eq!(
                Kind::from_any_case(e).is_some(),
                ["TimeActivity", "TaxCode", "TaxRate"].contains(e),
                "{e}"
            );
        }
    }

    #[test]
    fn delete_flags_transactions_only() {
        let ds = Dataset::generate(&cfg(100));
        let g = ds.generation();
        let now = 2_000_000_000;
        ds.mutate("Invoice", "3", now).unwrap();
        ds.delete("invoice", "4", now).unwrap();
        let after = ds.row(Kind::Invoice, 4).unwrap();
        assert!(after.deleted && ds.live_row(Kind::Invoice, 4).is_none());
        assert_eq!(after.updated, now);
        assert!(ds.generation() > g);
        assert_eq!(ds.deleted_ids(Kind::Invoice), ["4"]);
        let created = ds.ids_created_between(Kind::Invoice, 0, now * 1000);
        assert_eq!(created.len(), 99);
        assert!(!created.contains(&"4".to_owned()));
        assert_eq!(
            ds.ids_updated_between(Kind::Invoice, now * 1000, (now + 1) * 1000),
            ["3"]
        );
        assert_eq!(ds.delete("Invoice", "4", 0), Err(ChangeError::NotFound));
        assert_eq!(ds.mutate("Invoice", "4", 0), Err(ChangeError::NotFound));
        assert_eq!(ds.delete("Customer", "4", 0), Err(ChangeError::ListDelete));
        assert_eq!(ds.delete("Vendor", "4", 0), Err(ChangeError::ListDelete));
        ds.delete("TimeActivity", "2", 0).unwrap();
    }

    #[test]
    fn mutate_and_deactivate() {
        let ds = Dataset::generate(&cfg(100));
        let before = ds.row(Kind::Customer, 3).unwrap();
        let g = ds.generation();
        ds.mutate("Customer", "3", before.created + 5).unwrap();
        let after = ds.row(Kind::Customer, 3).unwrap();
        assert_eq!(after.sync, before.sync + 1);
        assert_eq!(after.created, before.created);
        assert!(ds.generation() > g);
        ds.deactivate("customer", "3", after.updated).unwrap();
        assert!(!ds.row(Kind::Customer, 3).unwrap().active);
        assert_eq!(ds.deactivate("Invoice", "1", 0), Err(ChangeError::NotList));
        assert_eq!(ds.mutate("Customer", "0", 0), Err(ChangeError::NotFound));
        assert_eq!(ds.mutate("Customer", "101", 0), Err(ChangeError::NotFound));
        assert_eq!(ds.mutate("Budget", "1", 0), Err(ChangeError::UnknownEntity));
    }
}
