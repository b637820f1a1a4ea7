//! The 26 entities with data: paging, counts, filters, single reads and batch for each; the
//! rendered shapes (key fields, references to ids that exist, two-decimal money, balanced
//! journal entries) against the fixtures where we have them; inactive list rows; deleted
//! transactions (gone from query / count / read / batch, reported by CDC); CDC after edits and
//! its 1000-object cap.

use std::collections::BTreeSet;

use jiff::{Timestamp, ToSpan};
use qbo_sim::{DATA_ENTITIES, LIST_ENTITIES, RunningSim, SimConfig, SimError, SimLimits};
use serde_json::{Value, json};

use crate::common::*;
use crate::envelopes::{assert_like_fixture, assert_meta_times, keys};

const REALM: &str = "9130350000000001";

fn config() -> SimConfig {
    SimConfig {
        customers: 120,
        items: 30,
        invoices: 150,
        other_rows: 45,
        from: jiff::civil::date(2025, 1, 1),
        to: jiff::civil::date(2025, 2, 1),
        limits: SimLimits::none(),
        ..SimConfig::default()
    }
}

fn rows_of(cfg: &SimConfig, entity: &str) -> usize {
    match entity {
        "Customer" => cfg.customers,
        "Item" => cfg.items,
        "Invoice" => cfg.invoices,
        _ => cfg.other_rows,
    }
}

fn is_list(entity: &str) -> bool {
    LIST_ENTITIES.contains(&entity)
}

/// ` WHERE Active IN (true, false)` for list entities, else nothing.
fn all_rows(entity: &str) -> &'static str {
    if is_list(entity) {
        " WHERE Active IN (true, false)"
    } else {
        ""
    }
}

/// ` AND Active IN (true, false)` for list entities, else nothing.
fn and_all_rows(entity: &str) -> &'static str {
    if is_list(entity) {
        " AND Active IN (true, false)"
    } else {
        ""
    }
}

fn url(sim: &RunningSim, path: &str) -> String {
    format!("{}{path}", sim.api_base_url())
}

fn count(v: &Value) -> u64 {
    v["QueryResponse"]["totalCount"].as_u64().unwrap()
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 100.0).round() as i64
}

/// Fields every row of the entity has, besides `domain`, `sparse`, `Id`, `SyncToken` and
/// `MetaData`.
fn key_fields(entity: &str) -> &'static [&'static str] {
    match entity {
        "Account" => &[
            "Name",
            "FullyQualifiedName",
            "AccountType",
            "AccountSubType",
            "Classification",
            "CurrentBalance",
            "CurrencyRef",
        ],
        "Bill" => &[
            "VendorRef",
            "APAccountRef",
            "DocNumber",
            "TxnDate",
            "DueDate",
            "Line",
            "TotalAmt",
            "Balance",
        ],
        "BillPayment" => &["VendorRef", "PayType", "TotalAmt", "TxnDate", "Line"],
        "Class" => &["Name", "FullyQualifiedName", "SubClass"],
        "CreditMemo" => &[
            "CustomerRef",
            "DocNumber",
            "TxnDate",
            "Line",
            "TotalAmt",
            "Balance",
            "RemainingCredit",
        ],
        "Customer" => &["DisplayName", "PrimaryEmailAddr", "Balance"],
        "Department" => &["Name", "FullyQualifiedName", "SubDepartment"],
        "Deposit" => &["DepositToAccountRef", "TxnDate", "Line", "TotalAmt"],
        "Employee" => &[
            "DisplayName",
            "GivenName",
            "FamilyName",
            "PrimaryEmailAddr",
            "PrimaryPhone",
            "HiredDate",
        ],
        "Estimate" => &[
            "CustomerRef",
            "DocNumber",
            "TxnDate",
            "TxnStatus",
            "ExpirationDate",
            "Line",
            "TotalAmt",
        ],
        "Invoice" => &[
            "CustomerRef",
            "TxnDate",
            "DueDate",
            "Line",
            "TotalAmt",
            "Balance",
        ],
        "Item" => &["Name", "Type", "UnitPrice"],
        "JournalEntry" => &["Adjustment", "DocNumber", "TxnDate", "Line", "TotalAmt"],
        "Payment" => &[
            "CustomerRef",
            "DepositToAccountRef",
            "TotalAmt",
            "UnappliedAmt",
            "TxnDate",
            "Line",
        ],
        "PaymentMethod" => &["Name", "Type"],
        "Purchase" => &[
            "AccountRef",
            "PaymentType",
            "EntityRef",
            "TxnDate",
            "Line",
            "TotalAmt",
        ],
        "PurchaseOrder" => &[
            "VendorRef",
            "APAccountRef",
            "DocNumber",
            "POStatus",
            "TxnDate",
            "Line",
            "TotalAmt",
        ],
        "RefundReceipt" | "SalesReceipt" => &[
            "CustomerRef",
            "DepositToAccountRef",
            "PaymentMethodRef",
            "DocNumber",
            "TxnDate",
            "Line",
            "TotalAmt",
            "Balance",
        ],
        "TaxCode" => &[
            "Name",
            "Taxable",
            "TaxGroup",
            "SalesTaxRateList",
            "PurchaseTaxRateList",
        ],
        "TaxRate" => &["Name", "RateValue", "EffectiveTaxRate"],
        "Term" => &["Name", "Type", "DueDays"],
        "TimeActivity" => &[
            "TxnDate",
            "NameOf",
            "Hours",
            "Minutes",
            "HourlyRate",
            "BillableStatus",
        ],
        "Transfer" => &["FromAccountRef", "ToAccountRef", "Amount", "TxnDate"],
        "Vendor" => &[
            "DisplayName",
            "PrintOnCheckName",
            "PrimaryEmailAddr",
            "Balance",
            "Vendor1099",
            "CurrencyRef",
        ],
        "VendorCredit" => &[
            "VendorRef",
            "APAccountRef",
            "TxnDate",
            "Line",
            "TotalAmt",
            "Balance",
        ],
        other => panic!("no key fields for {other}"),
    }
}

/// The entity a reference key points at (`None`: not one the simulator checks, such as
/// `CurrencyRef`, `TaxCodeRef` "NON" or an item's fixed income account).
fn ref_target(key: &str, obj: &Value) -> Option<&'static str> {
    Some(match key {
        "CustomerRef" => "Customer",
        "VendorRef" => "Vendor",
        "EmployeeRef" => "Employee",
        "ItemRef" => "Item",
        "AccountRef"
        | "APAccountRef"
        | "DepositToAccountRef"
        | "BankAccountRef"
        | "CCAccountRef"
        | "FromAccountRef"
        | "ToAccountRef" => "Account",
        "TermRef" | "SalesTermRef" => "Term",
        "PaymentMethodRef" => "PaymentMethod",
        "TaxRateRef" => "TaxRate",
        "EntityRef" if obj["type"] == "Vendor" => "Vendor",
        "Entity" if obj["type"] == "CUSTOMER" => "Customer",
        _ => return None,
    })
}

/// Every checked reference in `v`: (key, entity, id, name).
fn refs(v: &Value, out: &mut Vec<(String, &'static str, String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if let Some(target) = child.get("value").and_then(|_| ref_target(k, child)) {
                    out.push((
                        k.clone(),
                        target,
                        child["value"].as_str().unwrap().to_owned(),
                        child["name"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
                refs(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The name a reference to a row carries: its name without the ` (deleted)` suffix.
fn name_of(row: &Value) -> String {
    let name = row
        .get("DisplayName")
        .or_else(|| row.get("Name"))
        .and_then(Value::as_str)
        .unwrap();
    name.trim_end_matches(" (deleted)").to_owned()
}

/// Amounts keep two decimals on the wire; balances are `0` or two decimals.
fn assert_money_scale(body: &str, entity: &str) {
    for (key, zero_ok) in [
        ("\"Amount\":", false),
        ("\"TotalAmt\":", false),
        ("\"Balance\":", true),
        ("\"UnappliedAmt\":", true),
        ("\"CurrentBalance\":", true),
        ("\"RemainingCredit\":", true),
    ] {
        for part in body.split(key).skip(1) {
            let num: String = part
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            if zero_ok && num == "0" {
                continue;
            }
            let frac = num.split_once('.').map(|(_, f)| f.len());
            assert_eq!(frac, Some(2), "{entity}: {key}{num}");
        }
    }
}

/// Checks one rendered row beyond its key fields.
fn check_row(sim: &RunningSim, cfg: &SimConfig, entity: &str, row: &Value) {
    let state = sim.state();
    assert_eq!(row["domain"], "QBO", "{entity}");
    assert_eq!(row["sparse"], false, "{entity}");
    let id: usize = row["Id"].as_str().unwrap().parse().unwrap();
    assert!((1..=rows_of(cfg, entity)).contains(&id), "{entity} {id}");
    assert!(row["SyncToken"].as_str().unwrap().parse::<u32>().is_ok());
    assert_meta_times(row);
    for k in key_fields(entity) {
        assert!(row.get(*k).is_some(), "{entity} {id}: no {k} in {row}");
    }
    if is_list(entity) {
        let active = row["Active"].as_bool().unwrap();
        assert_eq!(
            !active,
            name_of(row)
                != row
                    .get("DisplayName")
                    .or(row.get("Name"))
                    .unwrap()
                    .as_str()
                    .unwrap()
        );
    } else {
        assert!(row.get("Active").is_none(), "{entity}");
    }
    // References point at rows that exist, carry their names, and accounts have the role.
    let mut found = Vec::new();
    refs(row, &mut found);
    for (key, target, ref_id, name) in found {
        let n: usize = ref_id.parse().unwrap();
        assert!(
            (1..=rows_of(cfg, target)).contains(&n),
            "{entity} {id}: {key} {ref_id} beyond {target}"
        );
        let t = state.entity_json(target, &ref_id).unwrap();
        if key != "Entity" && key != "EntityRef" {
            assert_eq!(name, name_of(&t), "{entity} {id}: {key}");
        }
        let account_type = t["AccountType"].as_str().unwrap_or_default();
        match key.as_str() {
            "APAccountRef" => assert_eq!(account_type, "Accounts Payable"),
            "BankAccountRef" | "FromAccountRef" | "ToAccountRef" => {
                assert_eq!(account_type, "Bank", "{entity} {id}: {key}");
            }
            "CCAccountRef" => assert_eq!(account_type, "Credit Card"),
            "DepositToAccountRef" => assert!(
                ["Bank", "Other Current Asset"].contains(&account_type),
                "{entity} {id}: {account_type}"
            ),
            _ => {}
        }
    }
    let lines = row["Line"].as_array();
    let total = row.get("TotalAmt").map(cents);
    match entity {
        "JournalEntry" => {
            let sum = |posting: &str| -> i64 {
                lines
                    .unwrap()
                    .iter()
                    .filter(|l| l["JournalEntryLineDetail"]["PostingType"] == posting)
                    .map(|l| cents(&l["Amount"]))
                    .sum()
            };
            assert_eq!(sum("Debit"), sum("Credit"), "{row}");
            assert_eq!(Some(sum("Debit")), total);
        }
        "Payment" | "BillPayment" => {
            let (target, party) = if entity == "Payment" {
                ("Invoice", "CustomerRef")
            } else {
                ("Bill", "VendorRef")
            };
            let line = &lines.unwrap()[0];
            let linked = &line["LinkedTxn"][0];
            assert_eq!(linked["TxnType"], target);
            let paid = state
                .entity_json(target, linked["TxnId"].as_str().unwrap())
                .unwrap();
            assert_eq!(row[party]["value"], paid[party]["value"], "{entity} {id}");
            assert_eq!(total, Some(cents(&paid["TotalAmt"])));
            assert_eq!(cents(&line["Amount"]), cents(&paid["TotalAmt"]));
        }
        "Deposit" | "Bill" | "VendorCredit" | "Purchase" | "PurchaseOrder" => {
            let sum: i64 = lines.unwrap().iter().map(|l| cents(&l["Amount"])).sum();
            assert_eq!(Some(sum), total, "{entity} {id}");
        }
        "CreditMemo" | "Estimate" | "SalesReceipt" | "RefundReceipt" | "Invoice" => {
            let lines = lines.unwrap();
            let (items, sub): (Vec<&Value>, Vec<&Value>) = lines
                .iter()
                .partition(|l| l["DetailType"] == "SalesItemLineDetail");
            let sum: i64 = items.iter().map(|l| cents(&l["Amount"])).sum();
            assert_eq!(Some(sum), total, "{entity} {id}");
            assert_eq!(sub.len(), 1);
            assert_eq!(Some(cents(&sub[0]["Amount"])), total);
        }
        "TimeActivity" => {
            let who = if row["NameOf"] == "Employee" {
                "EmployeeRef"
            } else {
                "VendorRef"
            };
            assert!(row.get(who).is_some(), "{row}");
            assert!(row["Hours"].is_u64() && row["Minutes"].is_u64());
            assert!(row["HourlyRate"].is_u64());
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_entity_pages_counts_reads_and_filters() {
    let cfg = config();
    let sim = start(cfg.clone()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let state = sim.state();
    let (epoch, far) = (Timestamp::UNIX_EPOCH, Timestamp::now() + 48.hours());
    assert_eq!(DATA_ENTITIES.len(), 26);
    for entity in DATA_ENTITIES {
        let n = rows_of(&cfg, entity);
        let want = state.ids_created_between(entity, epoch, far);
        assert_eq!(want.len(), n, "{entity}");
        let where_all = all_rows(entity);
        let v = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT COUNT(*) FROM {entity}{where_all}"),
        )
        .await;
        assert_eq!(count(&v), n as u64, "{entity}");

        // Pages of 7 in Id order: exactly the rows, then an empty page.
        let mut got = Vec::new();
        let mut pos = 1;
        loop {
            let q = format!("SELECT * FROM {entity}{where_all} STARTPOSITION {pos} MAXRESULTS 7");
            let r = query(&sim, &c, &at, &q).await;
            assert_eq!(r.status(), 200, "{q}");
            let body = r.text().await.unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            let page = ids(&v, entity);
            if page.is_empty() {
                assert_eq!(v["QueryResponse"], json!({}), "{q}");
                break;
            }
            assert_eq!(v["QueryResponse"]["startPosition"], pos);
            assert_eq!(v["QueryResponse"]["maxResults"], page.len());
            assert_money_scale(&body, entity);
            for row in v["QueryResponse"][entity].as_array().unwrap() {
                check_row(&sim, &cfg, entity, row);
            }
            pos += page.len();
            got.extend(page);
        }
        assert_eq!(got, want, "{entity}");

        // Single read, as the API answers it and as `entity_json` has it.
        let id = &want[n / 2];
        let r = c
            .get(url(
                &sim,
                &format!("/v3/company/{REALM}/{}/{id}", entity.to_lowercase()),
            ))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{entity}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            keys(&v),
            BTreeSet::from([entity.to_string(), "time".to_string()])
        );
        assert_eq!(Some(&v[entity]), state.entity_json(entity, id).as_ref());

        // CreateTime window, Id range and LastUpdatedTime filters.
        let (from, to) = ("2025-01-10T00:00:00Z", "2025-01-20T00:00:00Z");
        let q = format!(
            "SELECT * FROM {entity} WHERE MetaData.CreateTime >= '{from}' \
             AND MetaData.CreateTime < '{to}'{} MAXRESULTS 1000",
            and_all_rows(entity)
        );
        let window = ids(&query_ok(&sim, &c, &at, &q).await, entity);
        assert_eq!(
            window,
            state.ids_created_between(entity, from.parse().unwrap(), to.parse().unwrap()),
            "{q}"
        );
        assert!(!window.is_empty() && window.len() < n, "{entity}");
        let q = format!(
            "SELECT * FROM {entity} WHERE Id > '10' AND Id <= '20'{} MAXRESULTS 1000",
            and_all_rows(entity)
        );
        let range = ids(&query_ok(&sim, &c, &at, &q).await, entity);
        assert_eq!(
            range,
            (11..=20).map(|i| i.to_string()).collect::<Vec<_>>(),
            "{q}"
        );
        let q = format!(
            "SELECT * FROM {entity} WHERE MetaData.LastUpdatedTime >= '{from}'{} \
             ORDER BY MetaData.LastUpdatedTime MAXRESULTS 1000",
            and_all_rows(entity)
        );
        let v = query_ok(&sim, &c, &at, &q).await;
        let rows = v["QueryResponse"][*entity].as_array().unwrap();
        let times: Vec<Timestamp> = rows
            .iter()
            .map(|r| {
                r["MetaData"]["LastUpdatedTime"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{entity}");
        let mut updated = ids(&v, entity);
        updated.sort_by_key(|s| s.parse::<u64>().unwrap());
        assert_eq!(
            updated,
            state.ids_updated_between(entity, from.parse().unwrap(), far),
            "{entity}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_and_post_queries_serve_every_entity() {
    let sim = start(config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let items: Vec<Value> = DATA_ENTITIES
        .iter()
        .map(|e| {
            json!({ "bId": e, "Query": format!("SELECT * FROM {e}{} MAXRESULTS 3", all_rows(e)) })
        })
        .collect();
    let r = c
        .post(url(&sim, &format!("/v3/company/{REALM}/batch")))
        .bearer_auth(&at)
        .json(&json!({ "BatchItemRequest": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let answers = v["BatchItemResponse"].as_array().unwrap();
    assert_eq!(answers.len(), DATA_ENTITIES.len());
    for (entity, answer) in DATA_ENTITIES.iter().zip(answers) {
        assert_eq!(answer["bId"], *entity);
        assert_eq!(ids(answer, entity), ["1", "2", "3"], "{entity}");
        // POST with an application/text body answers the same.
        let q = format!("SELECT * FROM {entity}{} MAXRESULTS 3", all_rows(entity));
        let posted: Value = c
            .post(query_url(&sim))
            .bearer_auth(&at)
            .header("Content-Type", "application/text")
            .body(q)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(posted["QueryResponse"], answer["QueryResponse"], "{entity}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn shapes_match_the_fixtures() {
    let sim = start(config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let page = |entity: &'static str| {
        let (sim, c, at) = (&sim, &c, &at);
        async move {
            let v = query_ok(
                sim,
                c,
                at,
                &format!("SELECT * FROM {entity}{} MAXRESULTS 1000", all_rows(entity)),
            )
            .await;
            v["QueryResponse"][entity].as_array().unwrap().clone()
        }
    };

    // Vendor: the batch fixture's created vendor.
    let batch = fixture("batch_response.json");
    let vendors = page("Vendor").await;
    assert_like_fixture(&batch["BatchItemResponse"][0]["Vendor"], &vendors, "Vendor");

    // SalesReceipt: the batch fixture's query item (the one with a customer, too).
    let receipts = page("SalesReceipt").await;
    let our_lines: Vec<Value> = receipts
        .iter()
        .flat_map(|r| r["Line"].as_array().unwrap().clone())
        .collect();
    for r in batch["BatchItemResponse"][3]["QueryResponse"]["SalesReceipt"]
        .as_array()
        .unwrap()
    {
        assert_like_fixture(r, &receipts, "SalesReceipt");
        for line in r["Line"].as_array().unwrap() {
            let same: Vec<Value> = our_lines
                .iter()
                .filter(|l| l["DetailType"] == line["DetailType"])
                .cloned()
                .collect();
            assert_like_fixture(line, &same, "SalesReceipt.Line");
        }
    }

    // Estimate: the CDC fixture (multi-line addresses aside; ours are shaped like invoice.json's).
    let cdc = fixture("cdc_response.json");
    let estimates = page("Estimate").await;
    let invoice = fixture("invoice.json");
    for e in cdc["CDCResponse"][0]["QueryResponse"][0]["Estimate"]
        .as_array()
        .unwrap()
    {
        let mut e = e.clone();
        let m = e.as_object_mut().unwrap();
        for k in ["BillAddr", "ShipAddr", "DeliveryInfo"] {
            m.remove(k);
        }
        // Ours carry no sales tax (like the simulator's invoices).
        m.insert("TxnTaxDetail".into(), json!({"TotalTax": 0}));
        assert_like_fixture(&e, &estimates, "Estimate");
    }
    let addrs: Vec<Value> = estimates.iter().map(|e| e["BillAddr"].clone()).collect();
    assert_like_fixture(&invoice["BillAddr"], &addrs, "Estimate.BillAddr");

    // Sales forms and bills share the invoice's line shapes and header fields.
    for entity in ["CreditMemo", "RefundReceipt"] {
        let rows = page(entity).await;
        let mut inv = invoice.clone();
        let m = inv.as_object_mut().unwrap();
        for k in [
            "AllowIPNPayment",
            "AllowOnlinePayment",
            "AllowOnlineCreditCardPayment",
            "AllowOnlineACHPayment",
            "DueDate",
            "LinkedTxn",
            "ShipAddr",
            "EmailStatus",
        ] {
            m.remove(k);
        }
        assert_like_fixture(&inv, &rows, entity);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn inactive_vendors_hide_unless_active_is_constrained() {
    let sim = start(config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let state = sim.state();
    for entity in ["Vendor", "Account", "Employee", "Term"] {
        // One more inactive row, through the admin API.
        let r = c
            .post(url(
                &sim,
                &format!("/__admin/entities/{entity}/7/deactivate"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{entity}");
        let shown: Value = r.json().await.unwrap();
        assert_eq!(shown["Active"], false);
        let name = shown
            .get("DisplayName")
            .or(shown.get("Name"))
            .and_then(Value::as_str)
            .unwrap();
        assert!(name.ends_with(" (deleted)"), "{name}");

        let default =
            count(&query_ok(&sim, &c, &at, &format!("SELECT COUNT(*) FROM {entity}")).await);
        let all = count(
            &query_ok(
                &sim,
                &c,
                &at,
                &format!("SELECT COUNT(*) FROM {entity} WHERE Active IN (true, false)"),
            )
            .await,
        );
        let inactive = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} WHERE Active = false MAXRESULTS 1000"),
        )
        .await;
        let inactive = inactive["QueryResponse"][entity].as_array().unwrap();
        assert!(inactive.iter().all(|r| r["Active"] == false));
        assert!(inactive.iter().any(|r| r["Id"] == "7"));
        assert_eq!(default + inactive.len() as u64, all, "{entity}");
        assert_eq!(all, 45);
        let plain = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} MAXRESULTS 1000"),
        )
        .await;
        let plain = ids(&plain, entity);
        assert_eq!(plain.len() as u64, default);
        assert!(!plain.contains(&"7".to_string()), "{entity}");
        assert!(state.delete(entity, "8").is_err(), "{entity}");
    }

    // Names with quotes query as QBO escapes them.
    let chins = (1..=45)
        .map(|i| state.entity_json("Vendor", &i.to_string()).unwrap())
        .find(|v| v["PrintOnCheckName"] == "Chin's Gas and Oil")
        .unwrap();
    let v = query_ok(
        &sim,
        &c,
        &at,
        "SELECT * FROM Vendor WHERE PrintOnCheckName = 'Chin\\'s Gas and Oil' \
         AND Active IN (true, false)",
    )
    .await;
    assert_eq!(ids(&v, "Vendor"), [chins["Id"].as_str().unwrap()]);
    let v = query_ok(
        &sim,
        &c,
        &at,
        "SELECT * FROM Vendor WHERE DisplayName LIKE 'Chin\\'s%' AND Active IN (true, false)",
    )
    .await;
    assert_eq!(ids(&v, "Vendor"), [chins["Id"].as_str().unwrap()]);
    let v = query_ok(
        &sim,
        &c,
        &at,
        "SELECT COUNT(*) FROM Account WHERE AccountType = 'Bank' AND Active IN (true, false)",
    )
    .await;
    assert_eq!(count(&v), 4, "Checking, Savings, Checking 2, Savings 2");
    sim.shutdown().await;
}

#[tokio::test]
async fn deleted_transactions_leave_queries_and_reads_and_show_in_cdc() {
    let sim = start(config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let state = sim.state();
    let before = Timestamp::now() - 1.minute();
    let read = |entity: &'static str, id: &'static str| {
        let (c, at, u) = (
            &c,
            &at,
            url(&sim, &format!("/v3/company/{REALM}/{entity}/{id}")),
        );
        async move { c.get(u).bearer_auth(at).send().await.unwrap() }
    };
    assert_eq!(read("bill", "5").await.status(), 200);

    // The admin endpoint answers Intuit's delete response.
    let r = c
        .post(url(&sim, "/__admin/entities/bill/5/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let want = fixture("delete_response_invoice.json");
    assert_eq!(
        keys(&v),
        BTreeSet::from(["Bill".to_string(), "time".to_string()])
    );
    assert_eq!(keys(&v["Bill"]), keys(&want["Invoice"]));
    assert_eq!(
        v["Bill"],
        json!({"domain": "QBO", "status": "Deleted", "Id": "5"})
    );
    assert_pacific_millis(v["time"].as_str().unwrap());
    state.delete("Invoice", "9").unwrap();

    for (entity, id, n) in [("Bill", "5", 45), ("Invoice", "9", 150)] {
        let v = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} WHERE Id = '{id}'"),
        )
        .await;
        assert_eq!(v["QueryResponse"], json!({}), "{entity}");
        let v = query_ok(&sim, &c, &at, &format!("SELECT COUNT(*) FROM {entity}")).await;
        assert_eq!(count(&v), n - 1);
        let v = query_ok(
            &sim,
            &c,
            &at,
            &format!("SELECT * FROM {entity} MAXRESULTS 1000"),
        )
        .await;
        let all = ids(&v, entity);
        assert_eq!(all.len(), n as usize - 1);
        assert!(!all.contains(&id.to_string()));
        assert_eq!(state.deleted_ids(entity), [id]);
        assert!(state.entity_json(entity, id).is_none());
        let created = state.ids_created_between(entity, Timestamp::UNIX_EPOCH, Timestamp::now());
        assert_eq!(created, all);
        assert!(
            state
                .ids_updated_between(entity, before, Timestamp::now() + 1.minute())
                .is_empty()
        );
    }
    let r = read("bill", "5").await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Fault"]["Error"][0]["code"], "610");
    assert_eq!(v["Fault"]["Error"][0]["Message"], "Object Not Found");
    assert_eq!(read("invoice", "9").await.status(), 400);

    // Batch queries do not see it either.
    let r = c
        .post(url(&sim, &format!("/v3/company/{REALM}/batch")))
        .bearer_auth(&at)
        .json(&json!({"BatchItemRequest": [
            {"bId": "1", "Query": "SELECT * FROM Bill WHERE Id IN ('4', '5', '6')"}
        ]}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(ids(&v["BatchItemResponse"][0], "Bill"), ["4", "6"]);

    // CDC reports the deletions, with the deletion time.
    let since = before.to_string();
    let r = c
        .get(url(&sim, &format!("/v3/company/{REALM}/cdc")))
        .query(&[
            ("entities", "Bill,Invoice,Payment"),
            ("changedSince", since.as_str()),
        ])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sections = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    for (section, entity, id) in [(&sections[0], "Bill", "5"), (&sections[1], "Invoice", "9")] {
        let rows = section[entity].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{entity}");
        let d = &rows[0];
        assert_eq!(
            keys(d),
            BTreeSet::from(["domain", "status", "Id", "MetaData"].map(String::from))
        );
        assert_eq!(
            (&d["domain"], &d["status"], &d["Id"]),
            (&json!("QBO"), &json!("Deleted"), &json!(id))
        );
        let t: Timestamp = d["MetaData"]["LastUpdatedTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((Timestamp::now() - t).get_seconds().abs() < 90, "{t}");
        assert_eq!(section["maxResults"], 1);
    }
    assert_eq!(sections[2], json!({}));

    // Deleting again, editing a deleted row, deleting a list entity or an unknown one fail.
    let r = c
        .post(url(&sim, "/__admin/entities/Bill/5/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(matches!(
        state.delete("Bill", "5"),
        Err(SimError::NotFound { .. })
    ));
    assert!(matches!(
        state.mutate("Bill", "5"),
        Err(SimError::NotFound { .. })
    ));
    let r = c
        .post(url(&sim, "/__admin/entities/Vendor/3/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("inactive"), "{v}");
    assert!(matches!(
        state.delete("Customer", "3"),
        Err(SimError::ListEntityNotDeletable(_))
    ));
    assert!(matches!(
        state.delete("Budget", "1"),
        Err(SimError::UnknownEntity(_))
    ));
    assert!(matches!(
        state.delete("Bill", "46"),
        Err(SimError::NotFound { .. })
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn cdc_reports_edits_of_every_entity_it_supports() {
    let sim = start(config()).await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let state = sim.state();
    let since = Timestamp::now() - 1.minute();
    let cdc = |entities: String| {
        let (c, at, u, since) = (
            &c,
            &at,
            url(&sim, &format!("/v3/company/{REALM}/cdc")),
            since.to_string(),
        );
        async move {
            c.get(u)
                .query(&[
                    ("entities", entities.as_str()),
                    ("changedSince", since.as_str()),
                ])
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
        }
    };
    let unsupported = ["TimeActivity", "TaxCode", "TaxRate"];
    let supported: Vec<&str> = DATA_ENTITIES
        .iter()
        .copied()
        .filter(|e| !unsupported.contains(e))
        .collect();
    assert_eq!(supported.len(), 23);
    for entity in DATA_ENTITIES {
        state.mutate(entity, "12").unwrap();
    }
    state.deactivate("Vendor", "13").unwrap();
    let r = cdc(supported.join(",")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sections = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    assert_eq!(sections.len(), supported.len());
    for (section, entity) in sections.iter().zip(&supported) {
        let rows = section[*entity].as_array().unwrap();
        let got: Vec<&str> = rows.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        let want = if *entity == "Vendor" {
            vec!["12", "13"]
        } else {
            vec!["12"]
        };
        assert_eq!(got, want, "{entity}");
        assert_eq!(
            state.ids_updated_between(entity, since, Timestamp::now() + 1.minute()),
            want
        );
        assert_eq!(
            Some(&rows[0]),
            state.entity_json(entity, "12").as_ref(),
            "{entity}"
        );
        assert_eq!(section["startPosition"], 1);
        assert_eq!(section["maxResults"], rows.len());
        if *entity == "Vendor" {
            assert_eq!(rows[1]["Active"], false);
        }
    }

    // Entities Intuit's CDC does not serve are refused; known entities without data are empty.
    for entity in unsupported.iter().chain(&["JournalCode", "TaxAgency"]) {
        let r = cdc(format!("Customer,{entity}")).await;
        assert_eq!(r.status(), 400, "{entity}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Fault"]["type"], "ValidationFault");
        assert_eq!(v["Fault"]["Error"][0]["code"], "2010");
        assert!(
            v["Fault"]["Error"][0]["Detail"]
                .as_str()
                .unwrap()
                .contains(entity),
            "{v}"
        );
    }
    let v: Value = cdc("Budget,Attachable".into()).await.json().await.unwrap();
    assert_eq!(v["CDCResponse"][0]["QueryResponse"], json!([{}, {}]));
    sim.shutdown().await;
}

#[tokio::test]
async fn cdc_carries_at_most_1000_objects() {
    let sim = start(SimConfig {
        other_rows: 600,
        ..config()
    })
    .await;
    let c = client();
    let at = access_token(&sim, &c).await;
    let cdc = |entities: &'static str| {
        c.get(url(&sim, &format!("/v3/company/{REALM}/cdc")))
            .query(&[
                ("entities", entities),
                ("changedSince", "2024-12-01T00:00:00Z"),
            ])
            .bearer_auth(&at)
            .send()
    };
    let v: Value = cdc("Vendor,Bill,Class")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sections = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    assert_eq!(sections[0]["maxResults"], 600);
    assert_eq!(sections[0]["Vendor"].as_array().unwrap().len(), 600);
    assert_eq!(sections[1]["maxResults"], 400);
    assert_eq!(sections[2], json!({}), "the cap is spent");
    // Oldest changes first, so what is cut is the newest.
    let bills = sections[1]["Bill"].as_array().unwrap();
    let time = |r: &Value| -> Timestamp {
        r["MetaData"]["LastUpdatedTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(bills.windows(2).all(|w| time(&w[0]) <= time(&w[1])));
    // Asked alone (what singer's tap does when a response holds 1000), each comes whole.
    for entity in ["Bill", "Class"] {
        let v: Value = cdc(entity).await.unwrap().json().await.unwrap();
        assert_eq!(v["CDCResponse"][0]["QueryResponse"][0]["maxResults"], 600);
    }
    sim.shutdown().await;
}
