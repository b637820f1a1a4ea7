//! QuickBooks webhooks end to end: `qbo-sim` sends signed notifications of its changes to the
//! real `serve`, which stores them, coalesces them and loads them through the run queue with no
//! trigger configured. Edits and deletions reach `raw` within seconds, a burst of 500 edits costs
//! a handful of requests, and duplicated, reordered, forged, malformed and unknown deliveries
//! change nothing they should not.

use std::time::{Duration, Instant};

use qbo_sim::{WebhookConfig, WebhookFormat};
use serde_json::json;

use crate::harness::{World, sim_config, stdout};
use crate::server::Api;

const TOKEN: &str = "sim-verifier-token-7f3a";
const ADMIN_PASSWORD: &str = "webhooks-Admin-Passw0rd-2026";
const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-01-31";

/// A world with January's invoices loaded and `serve` (one worker) listening for webhooks with a
/// one-second quiet period; the simulator sends to it in `format`. The verifier token is in the
/// environment, or (`stored`) put in the secret store through the API once the server runs.
async fn world_with_webhooks(
    format: WebhookFormat,
    duplicate: bool,
    reorder: bool,
    stored: bool,
) -> (World, Api) {
    let mut world = World::new(sim_config(50)).await;
    let out = world.load("qb_invoices_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    if !stored {
        world
            .extra_env
            .push(("QBO_WEBHOOK_VERIFIER_TOKEN".into(), TOKEN.into()));
    }
    world
        .extra_env
        .push(("QBO_WEBHOOK_QUIET_SECS".into(), "1".into()));
    world
        .extra_env
        .push(("QBO_BACKFILL_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()));
    let api = Api::start(&world, "1").await;
    if stored {
        // Until the token is stored, nothing can be verified: refused, nothing stored.
        let body = br#"[{"specversion":"1.0","id":"early","type":"qbo.invoice.updated.v1","intuitaccountid":"1","intuitentityid":"1"}]"#;
        assert_eq!(post(&api, body, Some(&signed(body))).await, 401);
        let (status, answer) = api
            .put(
                "/api/v1/secrets/QBO_WEBHOOK_VERIFIER_TOKEN",
                json!({"value": TOKEN}),
            )
            .await;
        assert_eq!(status, 204, "{answer}");
        assert_eq!(
            count(&world, "SELECT count(*) FROM ops.webhook_deliveries").await,
            0
        );
    }
    world.sim.state().set_webhooks(WebhookConfig {
        url: Some(format!("{}/webhooks/intuit", api.base())),
        verifier_token: TOKEN.into(),
        format,
        duplicate,
        reorder,
        batch_ms: 1000,
    });
    world.sim.state().reset_stats();
    (world, api)
}

/// Whether `raw.qb_invoices` holds the simulator's current payload of every id of `edited` and
/// marks every id of `deleted` deleted.
async fn raw_caught_up(world: &World, edited: &[String], deleted: &[&str]) -> bool {
    for id in edited {
        let payload: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT payload FROM raw.qb_invoices WHERE id = $1")
                .bind(id)
                .fetch_optional(world.pool())
                .await
                .expect("payload");
        if payload != world.sim.state().entity_json("Invoice", id) {
            return false;
        }
    }
    let marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_invoices WHERE id = ANY($1) AND deleted_at_utc IS NOT NULL",
    )
    .bind(deleted)
    .fetch_one(world.pool())
    .await
    .expect("deleted");
    marked == deleted.len() as i64
}

/// Waits until `raw` caught up (at most `secs`), and returns how long that took.
async fn wait_caught_up(world: &World, edited: &[String], deleted: &[&str], secs: u64) -> Duration {
    let started = Instant::now();
    while !raw_caught_up(world, edited, deleted).await {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "raw did not show the changes within {secs} s; runs: {:?}",
            runs(world).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Every run as (pipeline, trigger, status).
async fn runs(world: &World) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT pipeline, trigger, status FROM ops.runs ORDER BY created_at")
        .fetch_all(world.pool())
        .await
        .expect("runs")
}

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_reach_raw_within_seconds_with_no_trigger() {
    let (world, api) = world_with_webhooks(WebhookFormat::CloudEvents, false, false, false).await;
    assert_eq!(count(&world, "SELECT count(*) FROM ops.triggers").await, 0);
    let sim = world.sim.state();
    let edited: Vec<String> = ["3", "10", "20"].map(String::from).to_vec();
    let deleted = ["5", "15"];
    for id in &edited {
        sim.mutate("Invoice", id).expect("edit");
    }
    for id in deleted {
        sim.delete("Invoice", id).expect("delete");
    }
    let took = wait_caught_up(&world, &edited, &deleted, 10).await;
    eprintln!("webhooks: edits and deletions in raw after {took:?}");
    let by: Vec<Option<String>> =
        sqlx::query_scalar("SELECT deleted_by FROM raw.qb_invoices WHERE id = ANY($1)")
            .bind(&deleted[..])
            .fetch_all(world.pool())
            .await
            .expect("deleted_by");
    // Marked as the `Delete` events named them, before the sync's change data capture (which
    // keeps the first mark).
    assert_eq!(by, [Some("webhook".to_owned()), Some("webhook".to_owned())]);
    let all = runs(&world).await;
    let webhook_runs: Vec<_> = all.iter().filter(|r| r.1 == "webhook").collect();
    assert_eq!(webhook_runs.len(), 1, "{all:?}");
    assert_eq!(webhook_runs[0].0, "qb_invoices_incremental");
    // The sync finishes (deletions are marked at its end): wait for it to be stored.
    let started = Instant::now();
    while count(
        &world,
        "SELECT count(*) FROM ops.runs WHERE trigger = 'webhook' AND status = 'succeeded'",
    )
    .await
        < 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            runs(&world).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = count(
        &world,
        "SELECT count(*) FROM ops.webhook_events WHERE status = 'synced'",
    )
    .await;
    assert_eq!(events, 5);
    // A webhook sync starts at the changes it was told of: it creates no cursor.
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.sync_cursors").await,
        0
    );
    let (status, metrics) = api.get("/metrics").await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text").to_owned();
    for line in [
        "qbo_backfill_webhook_events_received_total 5",
        "qbo_backfill_webhook_events_coalesced_total 5",
        "qbo_backfill_webhook_syncs_total 1",
        "qbo_backfill_webhook_lag_seconds{quantile=\"0.99\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let home = web_page(&api, "/pipelines").await;
    assert!(home.contains("QuickBooks webhooks"), "{home}");
    assert!(home.contains("5 events into 1 syncs"), "{home}");
    eprintln!(
        "webhooks: {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("qbo_backfill_webhook_lag"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_edits_costs_at_most_five_requests() {
    let (world, _api) = world_with_webhooks(WebhookFormat::Legacy, false, false, false).await;
    let sim = world.sim.state();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM raw.qb_invoices ORDER BY id::int LIMIT 250")
            .fetch_all(world.pool())
            .await
            .expect("ids");
    assert_eq!(ids.len(), 250);
    for round in 0..2 {
        for id in &ids {
            sim.mutate("Invoice", id)
                .unwrap_or_else(|e| panic!("edit {id} ({round}): {e}"));
        }
    }
    let took = wait_caught_up(&world, &ids, &[], 10).await;
    // Let any further sync the burst would cause happen before counting.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = sim.stats();
    eprintln!(
        "webhooks: 500 edits in raw after {took:?} with {} requests ({} queries, {} token)",
        stats.requests_total, stats.query_requests, stats.token_requests
    );
    assert!(
        stats.requests_total <= 5,
        "{} requests: {:?}",
        stats.requests_total,
        sim.queries()
    );
    let webhook_runs = count(
        &world,
        "SELECT count(*) FROM ops.runs WHERE trigger = 'webhook'",
    )
    .await;
    assert_eq!(webhook_runs, 1, "{:?}", runs(&world).await);
    assert!(sim.webhook_stats().delivered >= 1);
}

/// The web page at `path`, logged in as the first operator.
async fn web_page(api: &Api, path: &str) -> String {
    let base = api.base();
    let (http, cookies) = crate::support::web_session(base, ADMIN_PASSWORD).await;
    http.get(format!("{base}{path}"))
        .header("cookie", cookies)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
}

/// Posts `body` to the webhook endpoint with `signature` (none: no header).
async fn post(api: &Api, body: &[u8], signature: Option<&str>) -> u16 {
    let mut req = qbo::tls::http_client_builder()
        .build()
        .expect("an HTTP client")
        .post(format!("{}/webhooks/intuit", api.base()))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("intuit-signature", sig);
    }
    req.send().await.expect("post").status().as_u16()
}

fn signed(body: &[u8]) -> String {
    qbo_backfill::domain::webhook::sign(body, TOKEN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_forged_deliveries_change_nothing_they_should_not() {
    let (world, api) = world_with_webhooks(WebhookFormat::CloudEvents, true, true, true).await;
    let sim = world.sim.state();
    // The same invoice edited, then deleted; others edited: sent twice, later half first.
    let edited: Vec<String> = ["2", "4", "6", "8"].map(String::from).to_vec();
    for id in &edited {
        sim.mutate("Invoice", id).expect("edit");
    }
    sim.mutate("Invoice", "9").expect("edit");
    sim.delete("Invoice", "9").expect("delete");
    wait_caught_up(&world, &edited, &["9"], 10).await;
    let stats = sim.webhook_stats();
    assert_eq!(stats.delivered, 4, "two halves, each twice: {stats:?}");
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.webhook_events").await,
        6,
        "each event once"
    );
    assert_eq!(
        count(
            &world,
            "SELECT coalesce(sum(events - new_events), 0)::bigint FROM ops.webhook_deliveries"
        )
        .await,
        6,
        "the second copies added nothing"
    );
    world
        .assert_payloads_match_except("raw.qb_invoices", "Invoice", &["9"])
        .await;
    let deliveries = count(&world, "SELECT count(*) FROM ops.webhook_deliveries").await;

    // Forged: a wrong signature, another token's, none at all. Nothing is stored.
    let body = json!([{"specversion": "1.0", "id": "forged-1", "type": "qbo.invoice.deleted.v1",
                       "intuitaccountid": world.config.realm_id, "intuitentityid": "2",
                       "time": "2026-01-05T00:00:00Z"}])
    .to_string();
    let other = qbo_backfill::domain::webhook::sign(body.as_bytes(), "not-the-token");
    assert_eq!(post(&api, body.as_bytes(), Some(&other)).await, 401);
    assert_eq!(post(&api, body.as_bytes(), Some("AAAA")).await, 401);
    assert_eq!(post(&api, body.as_bytes(), None).await, 401);
    let mut tampered = body.clone().into_bytes();
    tampered[body.len() - 3] = b' ';
    assert_eq!(
        post(&api, &tampered, Some(&signed(body.as_bytes()))).await,
        401
    );
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.webhook_deliveries").await,
        deliveries
    );
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.webhook_events WHERE event_id = 'forged-1'"
        )
        .await,
        0
    );

    // Too large: refused before anything is read (413, or the connection closed mid-body).
    let huge = vec![b' '; 5 * 1024 * 1024];
    let refused = qbo::tls::http_client_builder()
        .build()
        .expect("an HTTP client")
        .post(format!("{}/webhooks/intuit", api.base()))
        .header("intuit-signature", signed(&huge))
        .body(huge)
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert!(matches!(refused, Ok(413) | Err(_)), "{refused:?}");
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.webhook_deliveries").await,
        deliveries
    );

    // Malformed from the valid signer: stored as rejected, answered 200.
    let garbage = b"{\"eventNotifications\": not json";
    assert_eq!(post(&api, garbage, Some(&signed(garbage))).await, 200);
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.webhook_deliveries WHERE status = 'rejected' AND body LIKE '%not json%'").await,
        1
    );

    // Unknown company and unknown entity: recorded, ignored, no sync.
    let runs_before = count(&world, "SELECT count(*) FROM ops.runs").await;
    let unknown = json!([
        {"specversion": "1.0", "id": "u-1", "type": "qbo.invoice.updated.v1",
         "intuitaccountid": "4620816365000000000", "intuitentityid": "2"},
        {"specversion": "1.0", "id": "u-2", "type": "qbo.budget.updated.v1",
         "intuitaccountid": world.config.realm_id, "intuitentityid": "1"}
    ])
    .to_string();
    assert_eq!(
        post(&api, unknown.as_bytes(), Some(&signed(unknown.as_bytes()))).await,
        200
    );
    let reasons: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, reason FROM ops.webhook_events WHERE event_id IN ('u-1', 'u-2') ORDER BY event_id",
    )
    .fetch_all(world.pool())
    .await
    .expect("reasons");
    assert_eq!(
        reasons,
        [
            ("ignored".to_owned(), Some("unknown_company".to_owned())),
            ("ignored".to_owned(), Some("unknown_entity".to_owned()))
        ]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.runs").await,
        runs_before
    );
    let (_, metrics) = api.get("/metrics").await;
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics.contains("qbo_backfill_webhook_deliveries_rejected_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("qbo_backfill_webhook_events_redelivered_total 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("qbo_backfill_webhook_events{status=\"ignored\"} 2"),
        "{metrics}"
    );
}

/// `n` CloudEvents of `entity` for company `realm`, ids prefixed with `tag`.
fn events(
    realm: &str,
    entity: &str,
    tag: &str,
    n: usize,
) -> Vec<(
    qbo_backfill::domain::webhook::Event,
    Option<qbo_backfill::domain::webhook::Ignored>,
)> {
    (0..n)
        .map(|i| {
            let event = qbo_backfill::domain::webhook::Event {
                id: format!("{tag}-{i}"),
                realm_id: realm.to_owned(),
                entity: entity.to_owned(),
                entity_id: i.to_string(),
                operation: "Update".to_owned(),
                time: Some(jiff::Timestamp::now()),
            };
            (event, None)
        })
        .collect()
}

async fn deliver(
    pool: &sqlx::PgPool,
    batch: &[(
        qbo_backfill::domain::webhook::Event,
        Option<qbo_backfill::domain::webhook::Ignored>,
    )],
) {
    let delivery = qbo_backfill::store::webhooks::NewDelivery {
        id: uuid::Uuid::now_v7(),
        format: Some(qbo_backfill::domain::webhook::Format::CloudEvents),
        accepted: true,
        error: None,
        body: None,
    };
    qbo_backfill::store::webhooks::record_delivery(pool, &delivery, batch)
        .await
        .expect("stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_join_a_queued_sync_and_two_coalescers_never_queue_one_twice() {
    use qbo_backfill::service::webhooks::coalesce_due;
    let db = crate::support::test_db().await;
    let pool = &db.pool;
    let realm = "9130350000000001";
    sqlx::query(
        "INSERT INTO ops.companies (realm_id, environment, client_id, client_secret_enc) \
         VALUES ($1, 'sandbox', 'id', '\\x00')",
    )
    .bind(realm)
    .execute(pool)
    .await
    .expect("company");
    let quiet = Duration::from_secs(1);
    let later = || jiff::Timestamp::now() + jiff::SignedDuration::from_secs(5);

    deliver(
        pool,
        &[
            events(realm, "Invoice", "a", 3),
            events(realm, "Customer", "c", 1),
        ]
        .concat(),
    )
    .await;
    // Not quiet yet: nothing happens.
    assert!(
        coalesce_due(pool, jiff::Timestamp::now(), quiet)
            .await
            .expect("step")
            .is_empty()
    );
    // Two schedulers at once: each group goes to exactly one of them.
    let (one, two) = tokio::join!(
        coalesce_due(pool, later(), quiet),
        coalesce_due(pool, later(), quiet)
    );
    let mut done = one.expect("one");
    done.extend(two.expect("two"));
    let mut names: Vec<&str> = done.iter().map(|c| c.pipeline.name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["qb_customers_incremental", "qb_invoices_incremental"]
    );
    assert!(done.iter().all(|c| c.queued_now));
    let invoices = done
        .iter()
        .find(|c| c.pipeline.name() == "qb_invoices_incremental")
        .expect("invoices")
        .run_id;
    let queued: Vec<(String, String, String)> =
        sqlx::query_as("SELECT pipeline, trigger, status FROM ops.runs ORDER BY pipeline")
            .fetch_all(pool)
            .await
            .expect("runs");
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(
        queued.iter().all(|r| r.1 == "webhook" && r.2 == "queued"),
        "{queued:?}"
    );

    // More changes while that sync still waits in the queue: they join it.
    deliver(pool, &events(realm, "Invoice", "b", 2)).await;
    let joined = coalesce_due(pool, later(), quiet).await.expect("step");
    assert_eq!(joined.len(), 1);
    assert!(!joined[0].queued_now);
    assert_eq!(joined[0].run_id, invoices);
    let on_it: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ops.webhook_events WHERE run_id = $1")
            .bind(invoices)
            .fetch_one(pool)
            .await
            .expect("events");
    assert_eq!(on_it, 5);

    // Once it runs, new changes need a sync of their own (it may have read past them already).
    sqlx::query("UPDATE ops.runs SET status = 'running' WHERE id = $1")
        .bind(invoices)
        .execute(pool)
        .await
        .expect("running");
    deliver(pool, &events(realm, "Invoice", "d", 1)).await;
    let next = coalesce_due(pool, later(), quiet).await.expect("step");
    assert_eq!(next.len(), 1);
    assert!(next[0].queued_now);
    assert_ne!(next[0].run_id, invoices);
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ops.webhook_events WHERE status = 'pending'")
            .fetch_one(pool)
            .await
            .expect("pending");
    assert_eq!(pending, 0);
}

/// A signed delivery whose JSON carries `\u0000` (which PostgreSQL cannot store in text) is
/// stored with U+FFFD in its place and answered as stored, not refused for Intuit to retry for
/// ever; its events go on to a sync, a redelivery adds nothing, and a signed body with a raw
/// NUL byte is kept as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_carrying_nul_is_stored_with_it_replaced_and_synced() {
    use qbo_backfill::service::webhooks::{Receipt, coalesce_due, receive};
    use qbo_backfill::store::auth::secrets::{SecretKey, SecretStore};
    let db = crate::support::test_db().await;
    let pool = &db.pool;
    let key = SecretKey::from_bytes([7u8; 32]);
    SecretStore::new(pool.clone(), key.clone())
        .set(
            "QBO_WEBHOOK_VERIFIER_TOKEN",
            &secrecy::SecretString::from(TOKEN),
        )
        .await
        .expect("verifier token");
    let realm = "9130350000000001";
    sqlx::query(
        "INSERT INTO ops.companies (realm_id, environment, client_id, client_secret_enc) \
         VALUES ($1, 'sandbox', 'id', '\\x00')",
    )
    .bind(realm)
    .execute(pool)
    .await
    .expect("company");

    let body = json!([
        {"specversion": "1.0", "id": "nul-\u{0}-1", "type": "qbo.invoice.updated.v1",
         "intuitaccountid": realm, "intuitentityid": "4\u{0}2",
         "time": "2026-01-05T00:00:00Z"},
        {"specversion": "1.0", "id": "nul-2", "type": "qbo.invoice.updated.v1",
         "intuitaccountid": realm, "intuitentityid": "7", "time": "2026-01-05T00:00:00\u{0}Z"}
    ])
    .to_string();
    assert!(body.contains("\\u0000"), "{body}");
    let sig = signed(body.as_bytes());
    let receipt = receive(pool, &key, body.as_bytes(), Some(&sig))
        .await
        .expect("stored, not refused for a retry");
    assert!(
        matches!(
            receipt,
            Receipt::Stored {
                events: 2,
                new: 2,
                ..
            }
        ),
        "{receipt:?}"
    );
    let stored: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_id, entity_id, status FROM ops.webhook_events ORDER BY event_id",
    )
    .fetch_all(pool)
    .await
    .expect("events");
    assert_eq!(
        stored,
        [
            ("nul-2".to_owned(), "7".to_owned(), "pending".to_owned()),
            (
                "nul-\u{fffd}-1".to_owned(),
                "4\u{fffd}2".to_owned(),
                "pending".to_owned()
            ),
        ]
    );
    // Intuit delivers it again: the same events, nothing new.
    let again = receive(pool, &key, body.as_bytes(), Some(&sig))
        .await
        .expect("stored");
    assert!(matches!(again, Receipt::Stored { new: 0, .. }), "{again:?}");
    // Processing goes on: the changes become one incremental sync.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(5);
    let done = coalesce_due(pool, later, Duration::from_secs(1))
        .await
        .expect("coalesced");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].pipeline.name(), "qb_invoices_incremental");
    assert_eq!(done[0].events, 2);

    // A raw NUL byte is not JSON: kept as rejected (answered 200), the NUL replaced.
    let raw = b"{\"eventNotifications\": \0 not json";
    let rejected = receive(pool, &key, raw, Some(&signed(raw)))
        .await
        .expect("kept as rejected");
    assert!(matches!(rejected, Receipt::Rejected { .. }), "{rejected:?}");
    let kept: String =
        sqlx::query_scalar("SELECT body FROM ops.webhook_deliveries WHERE status = 'rejected'")
            .fetch_one(pool)
            .await
            .expect("rejected body");
    assert_eq!(kept, "{\"eventNotifications\": \u{fffd} not json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_change_data_capture_never_reports_is_marked_from_its_webhook() {
    let (world, _api) = world_with_webhooks(WebhookFormat::CloudEvents, false, false, false).await;
    let out = world
        .load("qb_time_activities_backfill", JAN_FROM, JAN_TO)
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let id: String = sqlx::query_scalar("SELECT min(id) FROM raw.qb_time_activities")
        .fetch_one(world.pool())
        .await
        .expect("a time activity");
    world
        .sim
        .state()
        .delete("TimeActivity", &id)
        .expect("delete");
    let started = Instant::now();
    loop {
        let by: Option<String> = sqlx::query_scalar(
            "SELECT deleted_by FROM raw.qb_time_activities WHERE id = $1 AND deleted_at_utc IS NOT NULL",
        )
        .bind(&id)
        .fetch_optional(world.pool())
        .await
        .expect("deleted_by")
        .flatten();
        if let Some(by) = by {
            assert_eq!(by, "webhook");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "time activity {id} deleted in QuickBooks is still live in raw"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM raw.qb_time_activities WHERE deleted_at_utc IS NOT NULL"
        )
        .await,
        1,
        "only the one deleted"
    );
}
