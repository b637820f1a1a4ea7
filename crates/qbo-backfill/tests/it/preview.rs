//! The planned cost of a run or a batch, before it starts (`run … --plan`, `POST
//! /api/v1/runs/preview`, the pages' Preview cost), against real PostgreSQL and `qbo-sim`: the
//! estimate is the requests the run then spends (counted by the run's own client), a capped
//! preview stays close, and nothing is written by any front end.

use std::sync::Arc;
use std::time::Duration;

use qbo_backfill::domain::batch::{Batch, RunTarget};
use qbo_backfill::domain::health::Allowance;
use qbo_backfill::orchestrator::worker::{Executor, LocalRun, LogEvents};
use qbo_backfill::pipeline::{DateRange, Pipeline};
use qbo_backfill::service::company::save_company;
use qbo_backfill::service::preview::{Basis, MAX_PREVIEW_COUNTS, Preview, PreviewAsk, preview};
use qbo_backfill::settings::{ClientTuning, QboSettings};
use qbo_backfill::store::auth::secrets::SecretKey;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::browser::{Browser, Ui};
use crate::harness::{World, field, sim_config, stderr, stdout};
use crate::server::Api;

const JAN_FROM: &str = "2026-01-01";
const FEB_FROM: &str = "2026-02-01";

/// A world whose simulator answers as fast as it can, with its company saved for in-process
/// use; the secret key.
pub(crate) async fn world_with_company(customers: usize) -> (World, SecretKey) {
    let mut config = sim_config(customers);
    config.limits = qbo_sim::SimLimits::none();
    let world = World::new(config).await;
    let key = SecretKey::from_bytes([7u8; 32]);
    let mut client = qbo::ClientSettings::for_environment(qbo::Environment::Sandbox);
    client.api_base_url = world.sim.api_base_url().parse().expect("url");
    client.token_url = world.sim.token_url().parse().expect("url");
    let settings = QboSettings {
        client,
        client_id: world.config.client_id.clone(),
        client_secret: SecretString::from(world.config.client_secret.clone()),
        realm_id: world.config.realm_id.clone(),
        seed_refresh_token: Some(SecretString::from(world.config.refresh_token.clone())),
    };
    save_company(world.pool(), &key, &settings)
        .await
        .expect("company");
    (world, key)
}

/// Pacing without client-side limits, `page_size` rows a page, spans of `span_max_pages`.
pub(crate) fn tuning(page_size: u32, span_max_pages: u64) -> ClientTuning {
    ClientTuning {
        requests_per_minute: 0,
        requests_per_second: 0,
        initial_backoff_ms: 5,
        page_size,
        span_max_pages,
        ..ClientTuning::default()
    }
}

async fn plan(world: &World, key: &SecretKey, target: RunTarget, tuning: &ClientTuning) -> Preview {
    let ask = PreviewAsk {
        target,
        realm_id: &world.config.realm_id,
        dates: Some(DateRange::parse(JAN_FROM, FEB_FROM).expect("range")),
    };
    preview(world.pool(), key, ask, tuning, Allowance::default())
        .await
        .expect("a preview")
}

/// Runs `pipeline` over January here; the requests its client spent and the rows it loaded.
pub(crate) async fn run(
    world: &World,
    key: &SecretKey,
    pipeline: Pipeline,
    tuning: &ClientTuning,
) -> (u64, u64) {
    let executor = Executor::new(
        world.pool().clone(),
        key.clone(),
        tuning.clone(),
        Duration::from_secs(30),
    );
    let client = executor
        .client_for(&world.config.realm_id)
        .await
        .expect("client");
    let before = client.stats().requests;
    let range = DateRange::parse(JAN_FROM, FEB_FROM).expect("range");
    let outcome = executor
        .run_here(
            LocalRun {
                pipeline,
                realm_id: &world.config.realm_id,
                range,
                windows: pipeline.windows(&range).expect("windows"),
                trigger: qbo_backfill::domain::run::RunOrigin::Cli,
                started_by: None,
                retry_of: None,
            },
            tokio_util::sync::CancellationToken::new(),
            Arc::new(LogEvents),
        )
        .await
        .expect("run");
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.fatal);
    (client.stats().requests - before, outcome.totals.rows)
}

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_is_the_requests_the_run_then_spends() {
    let (world, key) = world_with_company(3000).await;
    for (pipeline, page_size, splits) in [
        // A month of invoices in one span: one count, its pages.
        (Pipeline::INVOICES, 1000, false),
        // 3,000 customers at 20 a page: spans of more than 50 pages split, down the same halves.
        (Pipeline::CUSTOMERS, 20, true),
    ] {
        let tuning = tuning(page_size, 50);
        let runs = count(&world, "SELECT count(*) FROM ops.runs").await;
        world.sim.state().reset_stats();
        let estimate = plan(&world, &key, RunTarget::Pipeline(pipeline), &tuning).await;
        let sent = world.sim.state().stats().query_requests;
        assert_eq!(
            estimate.preview_requests, sent,
            "the preview says what it spent"
        );
        assert_eq!(estimate.basis, Basis::Counted, "{estimate:?}");
        let load = estimate.runs[0].load.expect("a load");
        assert_eq!(load.spans > 1, splits, "{load:?}");
        // The preview wrote nothing.
        assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, runs);
        let table = format!("SELECT count(*) FROM {}", pipeline.table());
        assert_eq!(count(&world, &table).await, 0);

        let (spent, rows) = run(&world, &key, pipeline, &tuning).await;
        assert_eq!(estimate.requests, spent, "{pipeline}: {estimate:?}");
        assert_eq!(estimate.rows, rows, "{pipeline}");
        eprintln!(
            "{pipeline}: estimate {} requests, the run spent {spent}",
            estimate.requests
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_preview_spends_few_requests_and_stays_close_to_the_run() {
    let (world, key) = world_with_company(2000).await;
    // 10 rows a page, spans of at most 20 rows: the run counts well over a hundred spans.
    let tuning = tuning(10, 2);
    let estimate = plan(
        &world,
        &key,
        RunTarget::Pipeline(Pipeline::CUSTOMERS),
        &tuning,
    )
    .await;
    assert_eq!(estimate.basis, Basis::Spread, "{estimate:?}");
    assert!(
        estimate.preview_requests <= MAX_PREVIEW_COUNTS,
        "{estimate:?}"
    );
    let load = estimate.runs[0].load.expect("a load");
    assert!(load.counts > MAX_PREVIEW_COUNTS, "{load:?}");
    let (spent, rows) = run(&world, &key, Pipeline::CUSTOMERS, &tuning).await;
    assert_eq!(estimate.rows, rows, "the rows of the first count are kept");
    let off = estimate.requests.abs_diff(spent) as f64 / spent as f64;
    eprintln!(
        "capped: estimate {} requests, the run spent {spent}",
        estimate.requests
    );
    assert!(
        off <= 0.15,
        "estimate {} against {spent}",
        estimate.requests
    );

    // A batch: one count per entity at least, never more than the cap in all.
    let batch = plan(&world, &key, RunTarget::Batch(Batch::AllBackfill), &tuning).await;
    assert_eq!(batch.runs.len(), 26);
    assert!(
        batch.preview_requests <= MAX_PREVIEW_COUNTS,
        "{}",
        batch.preview_requests
    );
    assert_eq!(
        batch.requests,
        batch.runs.iter().map(|r| r.requests).sum::<u64>()
    );
}

fn body(pipeline: &str, from: &str, to: &str) -> Value {
    json!({"pipeline": pipeline, "fecha_inicio": from, "fecha_fin": to})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_previews_runs_and_batches_and_writes_nothing() {
    let world = World::new(sim_config(300)).await;
    let api = Api::start(&world, "0").await;

    // Bad input: the codes of POST /api/v1/runs, and not a request to QuickBooks.
    world.sim.state().reset_stats();
    for (b, code) in [
        (body("qb_nope", JAN_FROM, FEB_FROM), "unknown_pipeline"),
        (
            body("qb_customers_backfill", FEB_FROM, JAN_FROM),
            "invalid_range",
        ),
        (
            body("qb_customers_backfill", "2026-02-30", FEB_FROM),
            "invalid_date",
        ),
        (
            json!({"pipeline": "qb_customers_backfill"}),
            "invalid_request",
        ),
        (json!({"pipeline": "all_backfill"}), "invalid_request"),
    ] {
        let (status, answer) = api.post("/api/v1/runs/preview", b.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{b} → {answer}"
        );
    }
    let (status, answer) = api
        .post(
            "/api/v1/batches/preview",
            body("qb_customers_backfill", JAN_FROM, FEB_FROM),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("unknown_pipeline"))
    );
    assert_eq!(world.sim.state().stats().query_requests, 0);

    let (status, answer) = api
        .post(
            "/api/v1/runs/preview",
            body("qb_invoices_backfill", JAN_FROM, FEB_FROM),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let p = &answer["preview"];
    assert_eq!(p["target"], "qb_invoices_backfill");
    assert_eq!(p["estimate"], "counted");
    assert_eq!(p["preview_requests"], 1);
    assert_eq!(
        p["rows"],
        world.expected_ids("Invoice", JAN_FROM, FEB_FROM).len()
    );
    // One count, one page: the run's requests.
    assert_eq!(p["requests"], 2, "{p}");
    assert_eq!(p["runs"][0]["counts"], 1);
    assert_eq!(p["runs"][0]["windows"], 31);
    assert_eq!(p["limits"]["requests_per_minute"], 500);
    assert_eq!(p["month"]["allowance"], 500_000);
    assert_eq!(p["month"]["reaches_80_percent"], false);
    assert!(
        p["month"]["requests"].as_u64().expect("month") >= 1,
        "the count is in the month"
    );

    let (status, answer) = api
        .post(
            "/api/v1/batches/preview",
            body("all_backfill", JAN_FROM, FEB_FROM),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let runs = answer["preview"]["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 26);
    assert_eq!(runs[0]["pipeline"], "qb_customers_backfill");
    let (status, same) = api
        .post(
            "/api/v1/runs/preview",
            body("all_backfill", JAN_FROM, FEB_FROM),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["preview"]["requests"], answer["preview"]["requests"]);
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);
    assert_eq!(count(&world, "SELECT count(*) FROM ops.batches").await, 0);

    // A read token may not spend the company's requests.
    let out = world
        .run(&["api-tokens", "create", "reader", "--scope", "read"])
        .await;
    let reader = stdout(&out).lines().last().expect("token").to_owned();
    let refused = qbo::tls::http_client_builder()
        .build()
        .expect("client")
        .post(format!("{}/api/v1/runs/preview", api.base()))
        .bearer_auth(reader)
        .json(&body("qb_invoices_backfill", JAN_FROM, FEB_FROM))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_plans_a_run_and_a_batch_and_writes_nothing() {
    let world = World::new(sim_config(300)).await;
    let out = world
        .run(&[
            "run",
            "qb_invoices_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            FEB_FROM,
            "--plan",
        ])
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(field(&text, "Plan summary", "requests"), Some(2), "{text}");
    assert_eq!(
        field(&text, "Plan summary", "preview_requests"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        field(&text, "Plan budget", "allowance"),
        Some(500_000),
        "{text}"
    );
    assert!(text.contains("estimate=counted"), "{text}");

    // The run spends what the plan said.
    let out = world.load("qb_invoices_backfill", JAN_FROM, FEB_FROM).await;
    assert_eq!(out.status.code(), Some(0));
    let spent = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("requests="))
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(spent, Some(2), "{}", stdout(&out));

    // A batch, with --dry-run; a month past 80 % of a small allowance is said.
    let mut world = world;
    world
        .extra_env
        .push(("QBO_MONTHLY_REQUEST_ALLOWANCE".into(), "20".into()));
    let out = world
        .run(&[
            "run",
            "all_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            FEB_FROM,
            "--dry-run",
        ])
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(text.matches("Plan | pipeline=").count(), 26, "{text}");
    assert!(text.contains("Plan warning | this would take"), "{text}");
    let runs_before = count(&world, "SELECT count(*) FROM ops.runs").await;
    assert_eq!(runs_before, 1, "only the real run");

    // Bad input: exit 2, one line, nothing asked of QuickBooks.
    world.sim.state().reset_stats();
    for args in [
        vec![
            "run",
            "qb_invoices_backfill",
            "--fecha-inicio",
            FEB_FROM,
            "--fecha-fin",
            JAN_FROM,
            "--plan",
        ],
        vec!["run", "qb_invoices_backfill", "--plan"],
        vec![
            "run",
            "qb_nope",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            FEB_FROM,
            "--plan",
        ],
    ] {
        let out = world.run(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
    assert_eq!(world.sim.state().stats().query_requests, 0);
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.runs").await,
        runs_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_previews_the_cost_before_running_once() {
    let mut world = World::new(sim_config(300)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let browser = Browser::start().await;
    ui.login(&browser).await;
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    let form = "#qb_invoices_backfill form.run-once";
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), JAN_FROM)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), FEB_FROM)
        .await;
    browser
        .click(&format!("{form} button.preview-button"))
        .await;
    browser
        .wait_for("#qb_invoices_backfill .preview .preview-requests", 1, 30)
        .await;
    let requests = browser
        .text("#qb_invoices_backfill .preview .preview-requests")
        .await;
    assert_eq!(requests, "2");
    let rows = browser
        .text("#qb_invoices_backfill .preview .preview-rows")
        .await;
    let expected = world.expected_ids("Invoice", JAN_FROM, FEB_FROM).len();
    assert_eq!(rows.replace(',', ""), expected.to_string());
    let month = browser
        .text("#qb_invoices_backfill .preview .preview-month")
        .await;
    assert!(month.contains("% of the allowance of 500,000)"), "{month}");
    // The dates stay in the form for Run once; nothing was started.
    let source = browser.source().await;
    assert!(
        source.contains(&format!("value=\"{JAN_FROM}\"")),
        "the dates are kept"
    );
    assert!(
        browser.fits("main").await,
        "the page is no wider than the window"
    );
    browser.screenshot("preview-run-once").await;
    browser.resize(390, 844).await;
    assert!(browser.fits("main").await, "readable on a phone");
    browser.screenshot("preview-run-once-390").await;
    browser.resize(1280, 1000).await;
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);

    // The batch form: every entity, per pipeline on demand.
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    let form = "#load-history form.run-once";
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), JAN_FROM)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), FEB_FROM)
        .await;
    browser
        .click(&format!("{form} button.preview-button"))
        .await;
    browser
        .wait_for("#load-history .preview details", 1, 30)
        .await;
    assert_eq!(browser.count("#load-history .preview tbody tr").await, 26);
    assert!(browser.fits("main").await);
    browser.screenshot("preview-batch").await;
    // A refused preview shows on the card, as Run once's refusals do.
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    let form = "#qb_invoices_backfill form.run-once";
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), FEB_FROM)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), JAN_FROM)
        .await;
    browser
        .click(&format!("{form} button.preview-button"))
        .await;
    browser
        .wait_for("#qb_invoices_backfill .error", 1, 30)
        .await;
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);
}
