//! The SQL of migration 0012 on hand-made rows: every posting rule of `raw.qb_journal_lines`
//! (both bases) and the as-of semantics of `raw.qb_trial_balance` (balance-sheet accounts
//! cumulative, profit and loss for the calendar year, earlier years in Retained Earnings,
//! deleted transactions posting nothing), with the balances worked out by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::test_db;

const REALM: &str = "4620816365000000001";

async fn insert(pool: &PgPool, table: &str, id: &str, payload: Value, deleted: bool) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO raw.{table} (realm_id, id, payload, ingested_at_utc, \
             extract_window_start_utc, extract_window_end_utc, deleted_at_utc) \
         VALUES ($1, $2, $3, now(), now(), now(), CASE WHEN $4 THEN now() END)"
    )))
    .bind(REALM)
    .bind(id)
    .bind(payload)
    .bind(deleted)
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("{table} {id}: {e}"));
}

fn r(id: &str) -> Value {
    json!({ "value": id })
}

/// A sales item line of item 1 (income account 7).
fn sales(amount: f64) -> Value {
    json!({"Amount": amount, "DetailType": "SalesItemLineDetail",
           "SalesItemLineDetail": {"ItemRef": r("1"), "Qty": 1}})
}

fn expense(account: &str, amount: f64) -> Value {
    json!({"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
           "AccountBasedExpenseLineDetail": {"AccountRef": r(account)}})
}

fn journal(posting: &str, account: &str, amount: f64) -> Value {
    json!({"Amount": amount, "DetailType": "JournalEntryLineDetail",
           "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": r(account)}})
}

/// A chart of ten accounts and two items (a service and an inventory item).
async fn chart(pool: &PgPool) {
    let accounts = [
        ("1", "Checking", "Bank", "Checking", "Asset"),
        (
            "2",
            "A/R",
            "Accounts Receivable",
            "AccountsReceivable",
            "Asset",
        ),
        (
            "3",
            "Undeposited Funds",
            "Other Current Asset",
            "UndepositedFunds",
            "Asset",
        ),
        (
            "4",
            "A/P",
            "Accounts Payable",
            "AccountsPayable",
            "Liability",
        ),
        ("5", "Mastercard", "Credit Card", "CreditCard", "Liability"),
        (
            "6",
            "Retained Earnings",
            "Equity",
            "RetainedEarnings",
            "Equity",
        ),
        ("7", "Sales", "Income", "SalesOfProductIncome", "Revenue"),
        ("8", "Rent", "Expense", "RentOrLeaseOfBuildings", "Expense"),
        (
            "9",
            "Inventory Asset",
            "Other Current Asset",
            "Inventory",
            "Asset",
        ),
        (
            "10",
            "Discounts given",
            "Income",
            "DiscountsRefundsGiven",
            "Revenue",
        ),
    ];
    for (id, name, t, sub, class) in accounts {
        let payload = json!({"Id": id, "Name": name, "AccountType": t, "AccountSubType": sub,
                             "Classification": class, "Active": true});
        insert(pool, "qb_accounts", id, payload, false).await;
    }
    let service = json!({"Id": "1", "Type": "Service", "IncomeAccountRef": r("7")});
    insert(pool, "qb_items", "1", service, false).await;
    let inventory = json!({"Id": "2", "Type": "Inventory", "IncomeAccountRef": r("7"),
                           "ExpenseAccountRef": r("8"), "AssetAccountRef": r("9")});
    insert(pool, "qb_items", "2", inventory, false).await;
}

/// Sales: an invoice with a discount, a payment of half of it, an unapplied payment, a sales
/// receipt, a refund, a credit memo, and a deposit of the first payment with cash back.
async fn sales_side(pool: &PgPool) {
    let subtotal =
        json!({"Amount": 150.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}});
    let discount = json!({"Amount": 15.0, "DetailType": "DiscountLineDetail",
                          "DiscountLineDetail": {"PercentBased": false, "DiscountAccountRef": r("10")}});
    let invoice = json!({"TxnDate": "2026-01-05", "TotalAmt": 135.0,
                         "Line": [sales(100.0), sales(50.0), subtotal, discount]});
    insert(pool, "qb_invoices", "1", invoice, false).await;
    let paid = json!({"TxnDate": "2026-01-20", "TotalAmt": 67.5, "DepositToAccountRef": r("3"),
                      "Line": [{"Amount": 67.5, "LinkedTxn": [{"TxnId": "1", "TxnType": "Invoice"}]}]});
    insert(pool, "qb_payments", "1", paid, false).await;
    let unapplied = json!({"TxnDate": "2026-01-21", "TotalAmt": 10.0, "Line": []});
    insert(pool, "qb_payments", "2", unapplied, false).await;
    let receipt = json!({"TxnDate": "2026-01-06", "TotalAmt": 40.0, "DepositToAccountRef": r("1"),
                         "Line": [sales(40.0)]});
    insert(pool, "qb_sales_receipts", "1", receipt, false).await;
    let refund = json!({"TxnDate": "2026-01-07", "TotalAmt": 5.0, "DepositToAccountRef": r("1"),
                        "Line": [sales(5.0)]});
    insert(pool, "qb_refund_receipts", "1", refund, false).await;
    let credit = json!({"TxnDate": "2026-01-08", "TotalAmt": 20.0, "Line": [sales(20.0)]});
    insert(pool, "qb_credit_memos", "1", credit, false).await;
    let deposit = json!({"TxnDate": "2026-01-25", "TotalAmt": 75.0, "DepositToAccountRef": r("1"),
        "CashBack": {"AccountRef": r("8"), "Amount": 5.0},
        "Line": [{"Amount": 67.5, "LinkedTxn": [{"TxnId": "1", "TxnType": "Payment"}]},
                 {"Amount": 12.5, "DetailType": "DepositLineDetail",
                  "DepositLineDetail": {"AccountRef": r("7")}}]});
    insert(pool, "qb_deposits", "1", deposit, false).await;
}

/// Purchases: a bill (an expense and an inventory line), half of it paid, a vendor credit, a
/// card purchase and a card refund, a deleted purchase, a transfer and two journal entries
/// (one of the year before).
async fn purchase_side(pool: &PgPool) {
    let item_line = json!({"Amount": 200.0, "DetailType": "ItemBasedExpenseLineDetail",
                           "ItemBasedExpenseLineDetail": {"ItemRef": r("2")}});
    let bill = json!({"TxnDate": "2026-01-03", "TotalAmt": 500.0, "APAccountRef": r("4"),
                      "Line": [expense("8", 300.0), item_line]});
    insert(pool, "qb_bills", "1", bill, false).await;
    let pay = json!({"TxnDate": "2026-01-15", "TotalAmt": 250.0, "PayType": "Check",
                     "CheckPayment": {"BankAccountRef": r("1")},
                     "Line": [{"Amount": 250.0, "LinkedTxn": [{"TxnId": "1", "TxnType": "Bill"}]}]});
    insert(pool, "qb_bill_payments", "1", pay, false).await;
    let vc = json!({"TxnDate": "2026-01-16", "TotalAmt": 30.0, "Line": [expense("8", 30.0)]});
    insert(pool, "qb_vendor_credits", "1", vc, false).await;
    let card = json!({"TxnDate": "2026-01-10", "TotalAmt": 70.0, "AccountRef": r("5"),
                      "PaymentType": "CreditCard", "Line": [expense("8", 70.0)]});
    insert(pool, "qb_purchases", "1", card, false).await;
    let refund = json!({"TxnDate": "2026-01-11", "TotalAmt": 10.0, "AccountRef": r("5"),
                        "PaymentType": "CreditCard", "Credit": true, "Line": [expense("8", 10.0)]});
    insert(pool, "qb_purchases", "2", refund, false).await;
    let gone = json!({"TxnDate": "2026-01-12", "TotalAmt": 999.0, "AccountRef": r("1"),
                      "Line": [expense("8", 999.0)]});
    insert(pool, "qb_purchases", "3", gone, true).await;
    let transfer = json!({"TxnDate": "2026-01-13", "Amount": 100.0,
                          "FromAccountRef": r("1"), "ToAccountRef": r("5")});
    insert(pool, "qb_transfers", "1", transfer, false).await;
    let je = json!({"TxnDate": "2026-01-31", "Line": [journal("Debit", "8", 25.0), journal("Credit", "1", 25.0)]});
    insert(pool, "qb_journal_entries", "1", je, false).await;
    let last_year = json!({"TxnDate": "2025-12-31",
                           "Line": [journal("Debit", "1", 1000.0), journal("Credit", "7", 1000.0)]});
    insert(pool, "qb_journal_entries", "2", last_year, false).await;
}

/// `account id → balance` of `raw.qb_trial_balance(basis, as_of)`.
async fn trial_balance(pool: &PgPool, basis: &str, as_of: &str) -> BTreeMap<String, String> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT account_id, balance::text, debit::text, credit::text \
         FROM raw.qb_trial_balance($1, $2::date) WHERE realm_id = $3",
    )
    .bind(basis)
    .bind(as_of)
    .bind(REALM)
    .fetch_all(pool)
    .await
    .expect("trial balance");
    rows.into_iter()
        .map(|(a, b, d, c)| {
            let b: f64 = b.parse().unwrap();
            let (d, c): (f64, f64) = (d.parse().unwrap(), c.parse().unwrap());
            assert_eq!(d - c, b, "account {a}: debit {d} credit {c}");
            assert!(d == 0.0 || c == 0.0, "account {a} on one side");
            (a, format!("{b:.2}"))
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn every_posting_rule_and_the_as_of_semantics_on_hand_made_rows() {
    let db = test_db().await;
    chart(&db.pool).await;
    sales_side(&db.pool).await;
    purchase_side(&db.pool).await;

    let accrual = trial_balance(&db.pool, "Accrual", "2026-01-31").await;
    let expected_accrual = expect(&[
        ("1", "735.00"),
        ("2", "37.50"),
        ("3", "10.00"),
        ("4", "-220.00"),
        ("5", "40.00"),
        ("6", "-1000.00"),
        ("7", "-177.50"),
        ("8", "360.00"),
        ("9", "200.00"),
        ("10", "15.00"),
    ]);
    assert_eq!(accrual, expected_accrual);

    // Cash: the invoice and credit memo, the bill and vendor credit post nothing; the payment
    // credits half of the invoice's lines, the bill payment debits half of the bill's, the
    // unapplied payment stays on A/R.
    let cash = trial_balance(&db.pool, "Cash", "2026-01-31").await;
    let expected_cash = expect(&[
        ("1", "735.00"),
        ("2", "-10.00"),
        ("3", "10.00"),
        ("5", "40.00"),
        ("6", "-1000.00"),
        ("7", "-122.50"),
        ("8", "240.00"),
        ("9", "100.00"),
        ("10", "7.50"),
    ]);
    assert_eq!(cash, expected_cash);

    // The year before: its own profit and loss, nothing in Retained Earnings yet.
    for basis in ["Accrual", "Cash"] {
        let dec = trial_balance(&db.pool, basis, "2025-12-31").await;
        assert_eq!(
            dec,
            expect(&[("1", "1000.00"), ("7", "-1000.00")]),
            "{basis}"
        );
    }

    // Every transaction balances, on both bases; the deleted purchase posts nothing.
    let unbalanced: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT basis, txn_type, txn_id FROM raw.qb_journal_lines \
         GROUP BY 1, 2, 3 HAVING sum(amount) <> 0",
    )
    .fetch_all(&db.pool)
    .await
    .expect("balance");
    assert_eq!(unbalanced, vec![]);
    let deleted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_journal_lines WHERE txn_type = 'Purchase' AND txn_id = '3'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(deleted, 0);

    // The per-basis views hold the same rows as the function at a month end.
    let view: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_trial_balance_cash WHERE as_of = DATE '2026-01-31'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("view");
    assert_eq!(view, expected_cash.len() as i64);
}
