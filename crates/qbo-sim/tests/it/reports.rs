//! Financial reports computed from the simulator's books: every report parses with the
//! client's parser and adds up, the trial balance balances, net income matches the change in
//! equity, aging matches the open balances, deletions show, `report_max_days` truncates, and
//! report requests count like any other.

use qbo::is_range_too_large;
use qbo::report::{Basis, Report, ReportName, ReportRequest, SummarizeBy, parse_report};
use qbo_sim::{RunningSim, SimConfig, SimLimits};
use serde_json::Value;

use crate::common::{access_token, client, query_ok, start};

/// Eighteen months of data (2024-07 to 2025-12), so 2025 has an opening balance sheet.
fn config() -> SimConfig {
    SimConfig {
        customers: 80,
        items: 30,
        invoices: 600,
        other_rows: 90,
        from: jiff::civil::date(2024, 7, 1),
        to: jiff::civil::date(2026, 1, 1),
        limits: SimLimits::none(),
        ..SimConfig::default()
    }
}

fn day(s: &str) -> jiff::civil::Date {
    s.parse().unwrap()
}

/// `GET reports/{Name}` with the client's own query pairs; `(status, body)`.
async fn get(
    sim: &RunningSim,
    c: &reqwest::Client,
    at: &str,
    name: &str,
    pairs: &[(&str, String)],
) -> (u16, String) {
    let url = format!(
        "{}/v3/company/9130350000000001/reports/{name}",
        sim.api_base_url()
    );
    let r = c
        .get(url)
        .query(pairs)
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Fetches `req`, which must answer 200 with a report that parses and adds up.
async fn fetch(sim: &RunningSim, c: &reqwest::Client, at: &str, req: &ReportRequest) -> Report {
    let (status, body) = get(sim, c, at, req.name.as_str(), &req.query_pairs(75)).await;
    assert_eq!(status, 200, "{body}");
    let report = parse_report(body.as_bytes()).unwrap();
    assert_eq!(
        report.header.report_name.as_deref(),
        Some(req.name.as_str())
    );
    assert!(!is_range_too_large(&report));
    let mismatches = report.total_mismatches().unwrap();
    assert!(mismatches.is_empty(), "{}: {mismatches:?}", req.name);
    report
}

fn request(name: ReportName, start: &str, end: &str, basis: Basis) -> ReportRequest {
    ReportRequest::new(name, day(start), day(end))
        .unwrap()
        .basis(basis)
}

/// `"-123.40"` → -12340.
fn cents(s: &str) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<2}");
    let v = whole.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap();
    if neg { -v } else { v }
}

/// The values of the summary line of `group` (leaf column index → cents).
fn total_of(r: &Report, group: &str) -> Vec<(usize, i64)> {
    let t = r.totals().unwrap();
    let line = t
        .iter()
        .find(|t| t.group.as_deref() == Some(group))
        .unwrap_or_else(|| panic!("no {group} line"));
    line.values
        .iter()
        .map(|(i, a)| (*i, cents(a.as_str())))
        .collect()
}

/// The amount in column 1 of the Data row named `name`.
fn data_value(r: &Report, name: &str) -> i64 {
    r.cells()
        .unwrap()
        .iter()
        .find(|c| c.name.as_deref() == Some(name) && c.column_index == 1)
        .map_or(0, |c| cents(&c.text))
}

#[tokio::test]
async fn every_report_parses_and_adds_up_on_both_bases() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    for basis in [Basis::Accrual, Basis::Cash] {
        for name in ReportName::ALL {
            let req = request(name, "2025-01-01", "2025-12-31", basis);
            let r = fetch(&sim, &c, &at, &req).await;
            assert!(!r.rows.row.is_empty(), "{name}");
            if matches!(
                name,
                ReportName::ProfitAndLoss | ReportName::BalanceSheet | ReportName::CashFlow
            ) {
                let monthly =
                    fetch(&sim, &c, &at, &req.clone().summarize_by(SummarizeBy::Month)).await;
                let cols = monthly.leaf_columns().unwrap();
                assert!(cols.len() >= 13, "{name}: {} columns", cols.len());
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn trial_balance_balances_and_net_income_matches_the_balance_sheet() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    for basis in [Basis::Accrual, Basis::Cash] {
        let tb = fetch(
            &sim,
            &c,
            &at,
            &request(ReportName::TrialBalance, "2025-01-01", "2025-12-31", basis),
        )
        .await;
        let grand = total_of(&tb, "GrandTotal");
        assert_eq!(grand.len(), 2);
        assert_eq!(grand[0].1, grand[1].1, "{basis:?}: debits ≠ credits");
        assert!(grand[0].1 > 0);
        let pl = fetch(
            &sim,
            &c,
            &at,
            &request(ReportName::ProfitAndLoss, "2025-01-01", "2025-12-31", basis),
        )
        .await;
        let net_income = total_of(&pl, "NetIncome")[0].1;
        let equity_gain =
            |bs: &Report| data_value(bs, "Retained Earnings") + data_value(bs, "Net Income");
        let end = fetch(
            &sim,
            &c,
            &at,
            &request(ReportName::BalanceSheet, "2025-01-01", "2025-12-31", basis),
        )
        .await;
        let before = fetch(
            &sim,
            &c,
            &at,
            &request(ReportName::BalanceSheet, "2024-01-01", "2024-12-31", basis),
        )
        .await;
        assert_ne!(equity_gain(&before), 0, "2024 has profit and loss");
        assert_eq!(
            equity_gain(&end) - equity_gain(&before),
            net_income,
            "{basis:?}"
        );
        assert_eq!(data_value(&end, "Net Income"), net_income);
        assert_eq!(
            total_of(&end, "TotalAssets"),
            total_of(&end, "TotalLiabilitiesAndEquity"),
            "{basis:?}: the balance sheet balances"
        );
        let cf = fetch(
            &sim,
            &c,
            &at,
            &request(ReportName::CashFlow, "2025-01-01", "2025-12-31", basis),
        )
        .await;
        let ops = cf.cells().unwrap();
        let ni = ops
            .iter()
            .find(|c| c.name.as_deref() == Some("Net Income"))
            .unwrap();
        assert_eq!(cents(&ni.text), net_income);
        assert_eq!(total_of(&cf, "EndingCash")[0].1, {
            let t = end.totals().unwrap();
            t.iter()
                .find(|t| t.group.as_deref() == Some("BankAccounts"))
                .map_or(0, |t| cents(t.values[0].1.as_str()))
        });
    }
    sim.shutdown().await;
}

/// Sum of `Balance` per `CustomerRef` / `VendorRef` of a query's rows.
fn balances(v: &Value, entity: &str, party: &str) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for e in v["QueryResponse"][entity].as_array().unwrap() {
        let b = cents(&e["Balance"].to_string());
        if b != 0 {
            *out.entry(e[party]["value"].as_str().unwrap().to_owned())
                .or_default() += b;
        }
    }
    out
}

/// Aging `Total` (last column) per row id.
fn aging_totals(r: &Report) -> std::collections::BTreeMap<String, i64> {
    r.cells()
        .unwrap()
        .iter()
        .filter(|c| c.column_index == 6 && c.account_or_entity_id.is_some())
        .map(|c| (c.account_or_entity_id.clone().unwrap(), cents(&c.text)))
        .collect()
}

#[tokio::test]
async fn aging_equals_the_open_balances_the_query_endpoint_shows() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    let inv = query_ok(&sim, &c, &at, "SELECT * FROM Invoice MAXRESULTS 1000").await;
    let bills = query_ok(&sim, &c, &at, "SELECT * FROM Bill MAXRESULTS 1000").await;
    for (name, v, entity, party) in [
        (ReportName::AgedReceivables, &inv, "Invoice", "CustomerRef"),
        (ReportName::AgedPayables, &bills, "Bill", "VendorRef"),
    ] {
        let expected = balances(v, entity, party);
        assert!(!expected.is_empty());
        let r = fetch(
            &sim,
            &c,
            &at,
            &request(name, "2026-06-30", "2026-06-30", Basis::Accrual),
        )
        .await;
        assert_eq!(aging_totals(&r), expected, "{name}");
        assert_eq!(r.header.option("report_date"), Some("2026-06-30"));
        // Six months after the last document, everything open is 91 days late or more.
        let grand = total_of(&r, "GrandTotal");
        assert_eq!(
            grand.iter().find(|(i, _)| *i == 5).map(|x| x.1),
            Some(expected.values().sum())
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_an_invoice_takes_it_out_of_the_trial_balance() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    let req = request(
        ReportName::TrialBalance,
        "2025-01-01",
        "2025-12-31",
        Basis::Accrual,
    );
    let grand = |r: &Report| total_of(r, "GrandTotal")[0].1;
    let ar = |r: &Report| data_value(r, "Accounts Receivable (A/R)");
    let before = fetch(&sim, &c, &at, &req).await;
    let inv = query_ok(
        &sim,
        &c,
        &at,
        "SELECT * FROM Invoice WHERE TxnDate >= '2025-03-01' MAXRESULTS 1",
    )
    .await;
    let inv = &inv["QueryResponse"]["Invoice"][0];
    let (id, total) = (
        inv["Id"].as_str().unwrap(),
        cents(&inv["TotalAmt"].to_string()),
    );
    sim.state().mutate("Invoice", id).unwrap();
    let edited = fetch(&sim, &c, &at, &req).await;
    assert_eq!(grand(&edited), grand(&before), "an edit changes no amount");
    sim.state().delete("Invoice", id).unwrap();
    let after = fetch(&sim, &c, &at, &req).await;
    assert_eq!(ar(&before) - ar(&after), total);
    let sum = |r: &Report| total_of(r, "GrandTotal");
    assert_eq!(sum(&after)[0].1, sum(&after)[1].1);
    assert_ne!(sum(&after), sum(&before));
    sim.shutdown().await;
}

#[tokio::test]
async fn report_max_days_cuts_longer_ranges_short() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    sim.state().set_report_max_days(Some(31));
    for name in [
        ReportName::GeneralLedger,
        ReportName::ProfitAndLoss,
        ReportName::TrialBalance,
    ] {
        let long = request(name, "2025-01-01", "2025-12-31", Basis::Accrual);
        let (status, body) = get(&sim, &c, &at, name.as_str(), &long.query_pairs(75)).await;
        assert_eq!(status, 200);
        assert!(body.contains("Unable to display more data. Please reduce the date range."));
        assert!(
            is_range_too_large(&parse_report(body.as_bytes()).unwrap()),
            "{name}"
        );
        let (first, second) = long.halves().unwrap();
        assert!(first.end_date < second.start_date);
        fetch(
            &sim,
            &c,
            &at,
            &request(name, "2025-01-01", "2025-01-31", Basis::Accrual),
        )
        .await;
    }
    // The admin API shows and changes the knob.
    let admin = format!("{}/__admin/reports", sim.api_base_url());
    let v: Value = c.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["max_days"], 31);
    let r = c
        .put(&admin)
        .body(r#"{"max_days":null}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.state().report_max_days(), None);
    let long = request(
        ReportName::GeneralLedger,
        "2025-01-01",
        "2025-12-31",
        Basis::Accrual,
    );
    fetch(&sim, &c, &at, &long).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn report_requests_count_and_refuse_like_other_requests() {
    let sim = start(config()).await;
    let (c, at) = (client(), access_token(&sim, &client()).await);
    let pairs = [
        ("start_date", "2025-01-01".to_owned()),
        ("end_date", "2025-01-31".to_owned()),
    ];
    let before = sim.state().stats();
    assert_eq!(get(&sim, &c, &at, "ProfitAndLoss", &pairs).await.0, 200);
    let (status, body) = get(&sim, &c, &at, "ProfitAndLossDetailX", &pairs).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("\"code\":\"500\"") && body.contains("reports/ProfitAndLossDetailX"),
        "{body}"
    );
    let bad = [("start_date", "2025-13-01".to_owned())];
    let (status, body) = get(&sim, &c, &at, "BalanceSheet", &bad).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("\"code\":\"2010\"") && body.contains("start_date"),
        "{body}"
    );
    let method = [("accounting_method", "Modified".to_owned())];
    assert_eq!(get(&sim, &c, &at, "ProfitAndLoss", &method).await.0, 400);
    assert_eq!(get(&sim, &c, &at, "ProfitAndLoss", &pairs).await.0, 200);
    assert_eq!(
        get(
            &sim,
            &c,
            "not-a-valid-token-at-all-xx",
            "ProfitAndLoss",
            &pairs
        )
        .await
        .0,
        401
    );
    let after = sim.state().stats();
    assert_eq!(after.requests_total - before.requests_total, 6);
    assert_eq!(after.report_requests - before.report_requests, 5);
    sim.state().set_limits(SimLimits {
        requests_per_minute: Some(1),
        ..SimLimits::none()
    });
    let statuses = [
        get(&sim, &c, &at, "TrialBalance", &pairs).await.0,
        get(&sim, &c, &at, "TrialBalance", &pairs).await.0,
    ];
    assert!(statuses.contains(&429), "{statuses:?}");
    sim.shutdown().await;
}
