//! The QuickBooks Online entities this client knows: their wire names and whether they are
//! list entities (which hide inactive rows unless a query asks for them).

use std::fmt;
use std::str::FromStr;

/// A QuickBooks Online entity that can be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// `Customer` (list entity).
    Customer,
    /// `Item` (list entity).
    Item,
    /// `Invoice` (transaction).
    Invoice,
    /// `Vendor` (list entity).
    Vendor,
    /// `Account` (list entity).
    Account,
    /// `Employee` (list entity).
    Employee,
    /// `Class` (list entity).
    Class,
    /// `Department` (list entity).
    Department,
    /// `PaymentMethod` (list entity).
    PaymentMethod,
    /// `Term` (list entity).
    Term,
    /// `TaxCode` (list entity).
    TaxCode,
    /// `TaxRate` (list entity).
    TaxRate,
    /// `Payment` (transaction).
    Payment,
    /// `Bill` (transaction).
    Bill,
    /// `Estimate` (transaction).
    Estimate,
    /// `SalesReceipt` (transaction).
    SalesReceipt,
    /// `CreditMemo` (transaction).
    CreditMemo,
    /// `Purchase` (transaction).
    Purchase,
    /// `JournalEntry` (transaction).
    JournalEntry,
    /// `BillPayment` (transaction).
    BillPayment,
    /// `Deposit` (transaction).
    Deposit,
    /// `PurchaseOrder` (transaction).
    PurchaseOrder,
    /// `RefundReceipt` (transaction).
    RefundReceipt,
    /// `TimeActivity` (transaction).
    TimeActivity,
    /// `Transfer` (transaction).
    Transfer,
    /// `VendorCredit` (transaction).
    VendorCredit,
}

impl Entity {
    /// Every entity, in declaration order.
    pub const ALL: [Self; 26] = [
        Self::Customer,
        Self::Item,
        Self::Invoice,
        Self::Vendor,
        Self::Account,
        Self::Employee,
        Self::Class,
        Self::Department,
        Self::PaymentMethod,
        Self::Term,
        Self::TaxCode,
        Self::TaxRate,
        Self::Payment,
        Self::Bill,
        Self::Estimate,
        Self::SalesReceipt,
        Self::CreditMemo,
        Self::Purchase,
        Self::JournalEntry,
        Self::BillPayment,
        Self::Deposit,
        Self::PurchaseOrder,
        Self::RefundReceipt,
        Self::TimeActivity,
        Self::Transfer,
        Self::VendorCredit,
    ];

    /// The case-sensitive name QBO uses in queries and as the response array key.
    #[must_use]
    pub const fn qbo_name(self) -> &'static str {
        match self {
            Self::Customer => "Customer",
            Self::Item => "Item",
            Self::Invoice => "Invoice",
            Self::Vendor => "Vendor",
            Self::Account => "Account",
            Self::Employee => "Employee",
            Self::Class => "Class",
            Self::Department => "Department",
            Self::PaymentMethod => "PaymentMethod",
            Self::Term => "Term",
            Self::TaxCode => "TaxCode",
            Self::TaxRate => "TaxRate",
            Self::Payment => "Payment",
            Self::Bill => "Bill",
            Self::Estimate => "Estimate",
            Self::SalesReceipt => "SalesReceipt",
            Self::CreditMemo => "CreditMemo",
            Self::Purchase => "Purchase",
            Self::JournalEntry => "JournalEntry",
            Self::BillPayment => "BillPayment",
            Self::Deposit => "Deposit",
            Self::PurchaseOrder => "PurchaseOrder",
            Self::RefundReceipt => "RefundReceipt",
            Self::TimeActivity => "TimeActivity",
            Self::Transfer => "Transfer",
            Self::VendorCredit => "VendorCredit",
        }
    }

    /// Whether QuickBooks' change-data-capture endpoint (`/cdc`) reports this entity; it does not
    /// for TimeActivity, TaxCode and TaxRate (nor JournalCode and TaxAgency, which we do not load).
    #[must_use]
    pub const fn has_cdc(self) -> bool {
        !matches!(self, Self::TimeActivity | Self::TaxCode | Self::TaxRate)
    }

    /// Whether this is a list entity: list entities are never deleted, they become inactive, and
    /// a plain `SELECT` hides inactive rows, so queries must add `Active IN (true, false)`.
    #[must_use]
    pub const fn is_list_entity(self) -> bool {
        matches!(
            self,
            Self::Customer
                | Self::Item
                | Self::Vendor
                | Self::Account
                | Self::Employee
                | Self::Class
                | Self::Department
                | Self::PaymentMethod
                | Self::Term
                | Self::TaxCode
                | Self::TaxRate
        )
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qbo_name())
    }
}

/// The name given is not a known QBO entity (names are case-sensitive, as in QBO).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known QuickBooks Online entity")]
pub struct UnknownEntity(pub String);

impl FromStr for Entity {
    type Err = UnknownEntity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.qbo_name() == s)
            .ok_or_else(|| UnknownEntity(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for e in Entity::ALL {
            assert_eq!(e.qbo_name().parse::<Entity>(), Ok(e));
        }
        assert!("customer".parse::<Entity>().is_err());
    }

    #[test]
    fn only_list_entities_are_list_entities() {
        assert!(Entity::Customer.is_list_entity());
        assert!(Entity::Item.is_list_entity());
        assert!(!Entity::Invoice.is_list_entity());
        assert!(!Entity::Payment.is_list_entity());
    }
}
