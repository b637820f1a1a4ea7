//! `verify reports` end to end against `qbo-sim` and real PostgreSQL: a simulated year of
//! transactions and of monthly Trial Balances (both bases) loaded into `raw` agree account by
//! account with `raw.qb_trial_balance` on every month; a month without a stored Trial Balance
//! is reported missing (exit 1), bad input writes nothing (exit 2); then one Purchase's amount
//! changed in the simulator after the reports were read and re-loaded into `raw` (not the
//! reports) is exactly the difference found, naming both accounts, both amounts and the
//! transaction; the API's `POST /api/v1/verify` with `reports` answers the same; and `verify
//! all` reconciles too.

use std::collections::BTreeSet;

use jiff::civil::Date;
use qbo::report::{Basis, ReportName, ReportRequest};
use qbo_backfill::pipeline::report_load::{ReportLineage, load_report_range};
use qbo_sim::SimConfig;

use super::harness::{World, field, stderr, stdout};

const FROM: &str = "2025-01-01";
const TO: &str = "2026-01-01";

/// The entities whose rows the Trial Balance is computed from (and the accounts and items
/// they name).
const ENTITIES: [&str; 14] = [
    "accounts",
    "items",
    "invoices",
    "payments",
    "sales_receipts",
    "refund_receipts",
    "credit_memos",
    "bills",
    "bill_payments",
    "vendor_credits",
    "purchases",
    "deposits",
    "transfers",
    "journal_entries",
];

/// A company whose rows were created over 2025 (so none was edited after today).
fn a_year() -> SimConfig {
    SimConfig {
        customers: 20,
        items: 12,
        invoices: 120,
        other_rows: 60,
        from: jiff::civil::date(2025, 1, 1),
        to: jiff::civil::date(2026, 1, 1),
        limits: qbo_sim::SimLimits::none(),
        ..SimConfig::default()
    }
}

/// A client of the world's simulator.
fn sim_client(world: &World) -> qbo::QboClient {
    let config = &world.config;
    let mut settings = qbo::ClientSettings::for_environment(qbo::Environment::Sandbox);
    settings.api_base_url = world.sim.api_base_url().parse().expect("base url");
    settings.token_url = world.sim.token_url().parse().expect("token url");
    settings.retry.initial_backoff = std::time::Duration::from_millis(5);
    let store = qbo::MemoryTokenStore::new(qbo::TokenSet::from_refresh_token(
        secrecy::SecretString::from(world.sim.state().current_refresh_token()),
    ));
    qbo::QboClient::new(
        settings,
        qbo::Credentials {
            client_id: config.client_id.clone(),
            client_secret: secrecy::SecretString::from(config.client_secret.clone()),
            realm_id: config.realm_id.clone(),
        },
        std::sync::Arc::new(store),
    )
    .expect("client")
}

/// Loads every entity of [`ENTITIES`] created in `[from, to)` with the real binary.
async fn load_entities(world: &World, from: &str, to: &str) {
    for plural in ENTITIES {
        let pipeline = format!("qb_{plural}_backfill");
        let out = world.load(&pipeline, from, to).await;
        assert_eq!(out.status.code(), Some(0), "{pipeline}: {}", stdout(&out));
    }
}

/// The first days of the months of 2025 and of January 2026 (whose Trial Balance rolls 2025's
/// profit and loss into Retained Earnings).
fn months() -> Vec<Date> {
    let mut months: Vec<Date> = (1..=12).map(|m| jiff::civil::date(2025, m, 1)).collect();
    months.push(jiff::civil::date(2026, 1, 1));
    months
}

/// Through January 2026.
const REPORTS_TO: &str = "2026-02-01";

/// Reads each month's Trial Balance, both bases, into `raw.qb_reports` as the loader does.
async fn load_trial_balances(world: &World) {
    for month in months() {
        load_trial_balance(world, month, month.last_of_month()).await;
    }
}

/// Reads the Trial Balance `[start, end]` (as of `end`), both bases.
async fn load_trial_balance(world: &World, start: Date, end: Date) {
    let client = sim_client(world);
    for basis in [Basis::Accrual, Basis::Cash] {
        let mut request = ReportRequest::new(ReportName::TrialBalance, start, end).expect("range");
        request.accounting_method = Some(basis);
        let lineage = ReportLineage {
            run_id: None,
            window: None,
        };
        load_report_range(&client, world.pool(), &request, lineage)
            .await
            .unwrap_or_else(|e| panic!("{start}..{end} {basis:?}: {e}"));
    }
}

async fn verify(world: &World, target: &str, from: &str, to: &str) -> (Option<i32>, String) {
    let out = world
        .run(&["verify", target, "--fecha-inicio", from, "--fecha-fin", to])
        .await;
    (
        out.status.code(),
        format!("{}\n{}", stdout(&out), stderr(&out)),
    )
}

/// `(month, basis, accounts, agreed, differences)` of every `Reconcile | …` line.
fn reconcile_lines(text: &str) -> Vec<(String, String, u64, u64, u64)> {
    text.lines()
        .filter_map(|l| l.find("Reconcile | ").map(|i| &l[i..]))
        .map(|l| {
            let get = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or_else(|| panic!("no {k}= in {l}"))
                    .to_owned()
            };
            let n = |k: &str| get(k).parse::<u64>().expect("a count");
            (
                get("month"),
                get("basis"),
                n("accounts"),
                n("agreed"),
                n("differences"),
            )
        })
        .collect()
}

/// The `Reconcile difference | …` lines, from their prefix on.
fn difference_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find("Reconcile difference | ").map(|i| l[i..].to_owned()))
        .collect()
}

fn value<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// A Purchase created in March 2025, with the accounts its first line and its payment post to.
fn a_march_purchase(world: &World) -> (String, String, String) {
    let ids = world.expected_ids("Purchase", "2025-03-01", "2025-04-01");
    let id = ids.first().expect("a purchase in March").clone();
    let p = world
        .sim
        .state()
        .entity_json("Purchase", &id)
        .expect("json");
    let line = p["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]
        .as_str()
        .expect("expense account")
        .to_owned();
    let paid_from = p["AccountRef"]["value"]
        .as_str()
        .expect("account")
        .to_owned();
    assert_ne!(line, paid_from);
    (id, line, paid_from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_year_reconciles_then_exactly_the_planted_change_differs() {
    let world = World::new(a_year()).await;

    let (code, text) = verify(&world, "reports", "2025-03-01", "2025-02-01").await;
    assert_eq!(code, Some(2), "{text}");
    assert!(!text.contains("Reconcile"), "{text}");

    load_entities(&world, FROM, TO).await;
    // No Trial Balance stored yet: every month and basis is missing, not agreed.
    let (code, text) = verify(&world, "reports", "2025-01-01", "2025-03-01").await;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.matches("Reconcile missing | ").count(), 4, "{text}");
    assert!(
        text.contains("qb_trial_balance_backfill --fecha-inicio 2025-02-01 --fecha-fin 2025-03-01"),
        "{text}"
    );
    assert!(reconcile_lines(&text).is_empty(), "{text}");

    load_trial_balances(&world).await;
    let (code, text) = verify(&world, "reports", FROM, REPORTS_TO).await;
    println!("{text}");
    assert_eq!(code, Some(0), "{text}");
    let lines = reconcile_lines(&text);
    assert_eq!(lines.len(), 26, "13 months, 2 bases: {text}");
    for (month, basis, accounts, agreed, differences) in &lines {
        assert!(*accounts > 5, "{month} {basis}: {accounts} accounts");
        assert_eq!(
            (agreed, differences),
            (accounts, &0),
            "{month} {basis}: {text}"
        );
    }
    assert!(
        text.contains("Reconcile done | months=26 agreed=26 differed=0 missing=0 differences=0"),
        "{text}"
    );

    // A month read only in part (the current month) is reconciled as of its last day read.
    let (start, end) = (jiff::civil::date(2026, 2, 1), jiff::civil::date(2026, 2, 9));
    load_trial_balance(&world, start, end).await;
    let (code, text) = verify(&world, "reports", "2026-02-01", "2026-03-01").await;
    assert_eq!(code, Some(0), "{text}");
    let partial: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Reconcile | "))
        .collect();
    assert_eq!(partial.len(), 2, "{text}");
    assert!(
        partial.iter().all(|l| l.ends_with("as_of=2026-02-09")),
        "{text}"
    );

    // After the reports were read, a March purchase grows by 123.45 in QuickBooks and is
    // re-loaded into raw (its month); the reports are not read again.
    let (id, expense, paid_from) = a_march_purchase(&world);
    world
        .sim
        .state()
        .change_amount("Purchase", &id, 12_345)
        .expect("change");
    let out = world
        .load("qb_purchases_backfill", "2025-03-01", "2025-04-01")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let (code, text) = verify(&world, "reports", FROM, REPORTS_TO).await;
    println!("{text}");
    assert_eq!(code, Some(1), "{text}");
    let lines = reconcile_lines(&text);
    assert_eq!(lines.len(), 26, "{text}");
    for (month, basis, accounts, agreed, differences) in &lines {
        let expected = if month.as_str() >= "2025-03" { 2 } else { 0 };
        assert_eq!(*differences, expected, "{month} {basis}: {text}");
        assert_eq!(agreed + differences, *accounts, "{month} {basis}");
    }
    let diffs = difference_lines(&text);
    assert_eq!(diffs.len(), 2 * 11 * 2, "{text}");
    // In 2025 the expense account differs; in January 2026 its 2025 balance is in Retained
    // Earnings, which differs instead.
    let retained: String =
        sqlx::query_scalar("SELECT retained_earnings_account_id FROM raw.qb_default_accounts")
            .fetch_one(world.pool())
            .await
            .expect("retained earnings");
    let accounts_of = |in_2026: bool| -> BTreeSet<&str> {
        diffs
            .iter()
            .filter(|l| l.contains("month=2026-01") == in_2026)
            .map(|l| value(l, "account_id"))
            .collect()
    };
    let want_2025 = BTreeSet::from([expense.as_str(), paid_from.as_str()]);
    assert_eq!(accounts_of(false), want_2025, "{text}");
    let want_2026 = BTreeSet::from([retained.as_str(), paid_from.as_str()]);
    assert_eq!(accounts_of(true), want_2026, "{text}");
    for line in &diffs {
        let debited = [expense.as_str(), retained.as_str()].contains(&value(line, "account_id"));
        let delta = if debited { "123.45" } else { "-123.45" };
        assert_eq!(value(line, "difference"), delta, "{line}");
        let qb: f64 = value(line, "quickbooks").parse().unwrap();
        let ours: f64 = value(line, "ours").parse().unwrap();
        assert!(
            (ours - qb - delta.parse::<f64>().unwrap()).abs() < 0.001,
            "{line}"
        );
    }
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Reconcile changed | "))
        .collect();
    assert_eq!(
        changed.len(),
        diffs.len(),
        "one changed transaction per difference: {text}"
    );
    for line in &changed {
        assert!(
            line.contains(&format!("txn=Purchase txn_id={id} ")),
            "{line}"
        );
    }

    // The API answers the same reconciliation, as JSON.
    let api = super::server::Api::start(&world, "0").await;
    let asked =
        serde_json::json!({"entity": "reports", "fecha_inicio": FROM, "fecha_fin": REPORTS_TO});
    let (status, body) = api.post("/api/v1/verify", asked).await;
    assert_eq!(status, 200, "{body}");
    for key in ["months", "agreed", "differed", "missing", "differences"] {
        let cli = field(&text, "Reconcile done |", key);
        assert_eq!(body["totals"][key].as_u64(), cli, "{key}: {body}");
    }
    let march = body["months"]
        .as_array()
        .expect("months")
        .iter()
        .find(|m| m["month"] == "2025-03-01" && m["basis"] == "Accrual")
        .expect("March, accrual");
    assert_eq!(march["outcome"], "compared", "{march}");
    let differences = march["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 2, "{march}");
    assert!(
        differences
            .iter()
            .all(|d| d["changed"][0]["txn_id"] == id.as_str()),
        "{march}"
    );
    let (status, body) = api
        .post(
            "/api/v1/verify",
            serde_json::json!({"entity": "reports", "fecha_inicio": "2025-03-01", "fecha_fin": "2025-02-01"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // `verify all` reconciles the same way after the entities.
    let (code, text) = verify(&world, "all", "2025-03-01", "2025-04-01").await;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        field(&text, "Verify done |", "entities"),
        Some(26),
        "{text}"
    );
    let lines = reconcile_lines(&text);
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.0 == "2025-03" && l.4 == 2), "{text}");
}
