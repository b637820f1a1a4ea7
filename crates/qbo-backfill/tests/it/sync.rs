//! Fresh and frugal, end to end against `qbo-sim`: incremental syncs by `LastUpdatedTime` with
//! deletions from change data capture and a cursor; requests planned by what is there (a sparse
//! range in one query, a dense one split); every entity of the catalog through its own pipeline.

use jiff::Timestamp;
use qbo_backfill::pipeline::catalog::ENTITIES;
use qbo_sim::SimConfig;

use super::harness::{World, field, midnight, sim_config, stderr, stdout};

const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-01-31";

/// Every row of `table` as `(id, payload hash, ingested at, deleted at, deleted by)`, by id.
type Snapshot = Vec<(String, Vec<u8>, String, Option<String>, Option<String>)>;

async fn snapshot(world: &World, table: &str) -> Snapshot {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, payload_hash, ingested_at_utc::text, deleted_at_utc::text, deleted_by \
         FROM {table} ORDER BY id"
    )))
    .fetch_all(world.pool())
    .await
    .expect("snapshot")
}

fn today_and_tomorrow() -> (String, String) {
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let tomorrow = today.tomorrow().expect("tomorrow");
    (today.to_string(), tomorrow.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_loads_edits_marks_deletions_and_touches_nothing_else() {
    let world = World::new(sim_config(50)).await;
    let out = world.load("qb_invoices_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let before = snapshot(&world, "raw.qb_invoices").await;
    assert!(before.len() > 100, "{} invoices", before.len());

    let edited = ["3", "10", "20", "30", "40"];
    let deleted = ["5", "15", "25"];
    let sim = world.sim.state();
    for id in edited {
        sim.mutate("Invoice", id).expect("edit");
    }
    for id in deleted {
        sim.delete("Invoice", id).expect("delete");
    }

    // The first sync names its range (there is no cursor yet).
    let (today, tomorrow) = today_and_tomorrow();
    let out = world
        .load("qb_invoices_incremental", &today, &tomorrow)
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        field(&text, "Export completed", "inserted"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        field(&text, "Export completed", "updated"),
        Some(edited.len() as u64),
        "{text}"
    );
    assert_eq!(
        field(&text, "Deletions marked", "deleted"),
        Some(3),
        "{text}"
    );

    let after = snapshot(&world, "raw.qb_invoices").await;
    assert_eq!(after.len(), before.len(), "deleted rows are kept, marked");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.0, new.0);
        let id = old.0.as_str();
        if edited.contains(&id) {
            assert_ne!(old.1, new.1, "invoice {id} was edited: new payload");
            assert_eq!((&new.3, &new.4), (&None, &None));
        } else if deleted.contains(&id) {
            assert_eq!(
                (&old.1, &old.2),
                (&new.1, &new.2),
                "invoice {id}: payload kept"
            );
            assert!(new.3.is_some(), "invoice {id} is marked deleted");
            assert_eq!(new.4.as_deref(), Some("cdc"), "invoice {id}: found by CDC");
        } else {
            assert_eq!(old, new, "invoice {id} was not touched");
        }
    }
    world
        .assert_payloads_match_except("raw.qb_invoices", "Invoice", &deleted)
        .await;
    // History: one version per invoice from the backfill, a second for each edited one from
    // the sync, each by its run.
    let versions: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT h.id, count(*), count(DISTINCT r.id) FROM raw.qb_invoices_history h \
         LEFT JOIN ops.runs r ON r.id = h.run_id GROUP BY h.id ORDER BY h.id",
    )
    .fetch_all(world.pool())
    .await
    .expect("history");
    assert_eq!(versions.len(), before.len());
    for (id, count, runs) in &versions {
        let expected = if edited.contains(&id.as_str()) { 2 } else { 1 };
        assert_eq!((*count, *runs), (expected, expected), "invoice {id}");
    }

    // A second sync, without dates, continues from the cursor and writes nothing.
    let out = world.run(&["run", "qb_invoices_incremental"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        field(&text, "Export completed", "inserted"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        field(&text, "Export completed", "updated"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        field(&text, "Deletions marked", "deleted"),
        Some(0),
        "{text}"
    );
    assert_eq!(snapshot(&world, "raw.qb_invoices").await, after);
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM raw.qb_invoices_history")
        .fetch_one(world.pool())
        .await
        .expect("history");
    assert_eq!(history as usize, before.len() + edited.len());
    let cursors: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.sync_cursors")
        .fetch_one(world.pool())
        .await
        .expect("cursors");
    assert_eq!(cursors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_without_dates_are_refused_clearly_when_they_cannot_continue() {
    let world = World::new(sim_config(10)).await;
    let out = world.run(&["run", "qb_customers_incremental"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no cursor for company"),
        "{}",
        stderr(&out)
    );
    let out = world.run(&["run", "qb_customers_backfill"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs --fecha-inicio and --fecha-fin"));
    let out = world
        .run(&[
            "run",
            "qb_customers_incremental",
            "--fecha-inicio",
            JAN_FROM,
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .expect("runs");
    assert_eq!(runs, 0, "refused runs write nothing");
}

/// The seed's job: 22 customers created over 30 days.
fn seed_company() -> SimConfig {
    SimConfig {
        customers: 22,
        items: 5,
        invoices: 10,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 1, 31),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_job_costs_at_most_three_requests_and_a_day_costs_one() {
    let world = World::new(seed_company()).await;
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    let queries = world.sim.state().stats().query_requests;
    assert!(
        queries <= 3,
        "{queries} requests: {:?}",
        world.sim.state().queries()
    );
    // Daily windows stay the unit of bookkeeping and of the runbook's per-day counts.
    assert_eq!(text.matches("Window completed").count(), 30, "{text}");
    let days: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT extract_window_start_utc::date) FROM raw.qb_customers",
    )
    .fetch_one(world.pool())
    .await
    .expect("days");
    assert!(days > 1, "rows are filed under their own days");

    // One day asks only for that day.
    world.sim.state().reset_stats();
    let out = world
        .load("qb_customers_backfill", "2026-01-07", "2026-01-08")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let queries = world.sim.state().queries();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert!(
        queries[0].contains("2026-01-07T00:00:00") && queries[0].contains("2026-01-08T00:00:00"),
        "{queries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_range_is_split_until_it_pages_cleanly_and_stays_exact() {
    let mut config = sim_config(3000);
    config.limits = qbo_sim::SimLimits::none();
    let mut world = World::new(config).await;
    // 20 rows a page: a span of more than 50 pages (1,000 rows) is split.
    world.extra_env.push(("QBO_PAGE_SIZE".into(), "20".into()));
    world
        .extra_env
        .push(("QBO_REQUESTS_PER_SECOND".into(), "0".into()));
    world
        .extra_env
        .push(("QBO_REQUESTS_PER_MINUTE".into(), "0".into()));
    let out = world.load("qb_customers_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let expected = world.expected_ids("Customer", JAN_FROM, JAN_TO);
    assert_eq!(world.loaded_ids("raw.qb_customers").await, expected);
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
    let minimum_pages = expected.len().div_ceil(20) as u64;
    let queries = world.sim.state().stats().query_requests;
    assert!(
        queries * 10 <= minimum_pages * 12,
        "{queries} requests for {} rows (minimum {minimum_pages} pages)",
        expected.len()
    );
    let counts = world
        .sim
        .state()
        .queries()
        .iter()
        .filter(|q| q.to_uppercase().contains("COUNT(*)"))
        .count();
    assert!(counts > 1, "the range was split: {counts} counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entity_loads_through_its_own_pipeline_into_its_own_table() {
    let world = World::new(sim_config(30)).await;
    let out = world.run(&["pipelines"]).await;
    let listing = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        listing.lines().count(),
        1 + 3 * ENTITIES.len() + qbo_backfill::domain::catalog::REPORTS.len(),
        "{listing}"
    );
    assert!(
        listing.contains("qb_trial_balance_backfill\tTrialBalance\traw.qb_reports\t"),
        "{listing}"
    );
    let mut with_rows = 0;
    for spec in ENTITIES {
        assert!(listing.contains(spec.backfill) && listing.contains(spec.incremental));
        assert!(listing.contains(spec.verify), "{listing}");
        let out = world.load(spec.backfill, JAN_FROM, JAN_TO).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}\n{}",
            spec.backfill,
            stdout(&out),
            stderr(&out)
        );
        let name = spec.entity.qbo_name();
        let expected = world.expected_ids(name, JAN_FROM, JAN_TO);
        assert_eq!(world.loaded_ids(spec.table).await, expected, "{name}");
        if !expected.is_empty() {
            with_rows += 1;
            world.assert_payloads_match(spec.table, name).await;
        }
    }
    assert_eq!(
        with_rows,
        ENTITIES.len(),
        "the simulator generates every entity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_past_change_data_captures_cap_are_all_marked() {
    let mut config = sim_config(20);
    config.invoices = 1_300;
    let world = World::new(config).await;
    let out = world.load("qb_invoices_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A first sync sets the cursor.
    let (today, tomorrow) = today_and_tomorrow();
    let out = world
        .load("qb_invoices_incremental", &today, &tomorrow)
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let before = snapshot(&world, "raw.qb_invoices").await;
    assert!(before.len() > 1_200, "{} invoices", before.len());

    // 1,100 changes over a few seconds (QuickBooks' times have whole seconds), then one
    // deletion: the newest change, past the first answer's cap of 1,000 objects.
    let sim = world.sim.state();
    let edited: Vec<String> = (1..=1_100).map(|i| i.to_string()).collect();
    for chunk in edited.chunks(400) {
        for id in chunk {
            sim.mutate("Invoice", id).expect("edit");
        }
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    }
    let deleted = "1200";
    sim.delete("Invoice", deleted).expect("delete");

    let out = world.run(&["run", "qb_invoices_incremental"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        field(&text, "Export completed", "updated"),
        Some(1_100),
        "{text}"
    );
    assert_eq!(
        field(&text, "Export completed", "inserted"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        field(&text, "Deletions marked", "deleted"),
        Some(1),
        "{text}"
    );
    assert!(
        text.contains("Change data capture answered its maximum of 1000 objects"),
        "{text}"
    );

    let after = snapshot(&world, "raw.qb_invoices").await;
    assert_eq!(after.len(), before.len());
    for (old, new) in before.iter().zip(&after) {
        let id = old.0.as_str();
        if id == deleted {
            assert_eq!((&old.1, &old.2), (&new.1, &new.2), "payload kept");
            assert!(new.3.is_some(), "invoice {id} is marked deleted");
        } else if edited.iter().any(|e| e == id) {
            assert_ne!(old.1, new.1, "invoice {id} was edited");
            assert_eq!(new.3, None);
        } else {
            assert_eq!(old, new, "invoice {id} was not touched");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_past_more_changes_at_one_instant_than_the_cap_warns_and_goes_on() {
    let mut config = sim_config(20);
    config.invoices = 1_300;
    let world = World::new(config).await;
    let (today, tomorrow) = today_and_tomorrow();
    let out = world
        .load("qb_invoices_incremental", "2026-01-01", &tomorrow)
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let cursor = || async {
        sqlx::query_scalar::<_, String>("SELECT synced_through::text FROM ops.sync_cursors")
            .fetch_one(world.pool())
            .await
            .expect("cursor")
    };
    let before = cursor().await;
    // 1,001 changes within one second (QuickBooks' times have whole seconds): the cap cannot be
    // followed past that instant. Start just after a second begins; the edits take microseconds.
    let sim = world.sim.state();
    let into_second = Timestamp::now().subsec_nanosecond();
    tokio::time::sleep(std::time::Duration::from_nanos(
        u64::try_from(1_000_000_000 - into_second).expect("nanoseconds"),
    ))
    .await;
    let second = Timestamp::now().as_second();
    for id in 1..=1_001 {
        sim.mutate("Invoice", &id.to_string()).expect("edit");
    }
    assert_eq!(
        Timestamp::now().as_second(),
        second,
        "the edits took a second"
    );
    // A deletion after that instant is still seen.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    sim.delete("Invoice", "1200").expect("delete");
    let out = world
        .load("qb_invoices_incremental", &today, &tomorrow)
        .await;
    let text = stdout(&out);
    // The rest of that instant cannot be asked for: said, with the verify that finds what a
    // deletion among it left, and the sync goes on (it used to fail every sync for 30 days).
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("may be left out"), "{text}");
    let (first, after): (String, String) = sqlx::query_as(
        "SELECT min(c)::text, (max(c) + 1)::text FROM (SELECT ((payload -> 'MetaData' ->> \
         'CreateTime')::timestamptz AT TIME ZONE 'UTC')::date AS c FROM raw.qb_invoices \
         WHERE deleted_at_utc IS NULL) AS t",
    )
    .fetch_one(world.pool())
    .await
    .expect("creation days");
    assert!(
        text.contains(&format!(
            "`qbo-backfill verify invoices --fecha-inicio {first} --fecha-fin {after}`"
        )),
        "the verify named covers every day the stored invoices were created on \
         ({first}..{after}): {text}"
    );
    assert_eq!(
        field(&text, "Deletions marked", "deleted"),
        Some(1),
        "{text}"
    );
    assert_ne!(cursor().await, before, "the cursor moved");
    let marked: Option<String> =
        sqlx::query_scalar("SELECT deleted_at_utc::text FROM raw.qb_invoices WHERE id = '1200'")
            .fetch_one(world.pool())
            .await
            .expect("invoice 1200");
    assert!(marked.is_some(), "invoice 1200 is marked deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_taken_over_mid_run_loads_the_day_again_and_writes_only_what_it_holds() {
    use qbo_backfill::pipeline::{DateRange, Pipeline};
    use qbo_backfill::store::runs;
    use std::time::Duration;

    let mut config = sim_config(300);
    config.faults.latency = Duration::from_millis(250);
    let mut world = World::new(config).await;
    world
        .extra_env
        .push(("QBO_PAGE_SIZE".to_owned(), "20".to_owned()));
    let realm = world.config.realm_id.clone();
    let pool = world.pool().clone();
    let run_a = world
        .command(&[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-11",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run A");

    // Once A holds its span, another live run (B) takes one of its late days over.
    let taken = DateRange::parse("2026-01-08", "2026-01-09").expect("range");
    let taken_windows = taken.windows().expect("windows");
    let mut held = false;
    for _ in 0..500 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ops.windows WHERE pipeline = 'qb_customers_backfill' \
             AND status = 'running' AND window_start = '2026-01-08T00:00:00Z'",
        )
        .fetch_one(&pool)
        .await
        .expect("windows");
        if running == 1 {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "run A never held its span");
    let b = crate::support::start_run(
        &pool,
        &realm,
        taken,
        &taken_windows,
        &qbo_backfill::store::runs::workers::WorkerIdentity::current(),
    )
    .await;
    sqlx::query(
        "UPDATE ops.windows SET lease_until = now() - interval '1 second' \
         WHERE pipeline = 'qb_customers_backfill' AND window_start = '2026-01-08T00:00:00Z'",
    )
    .execute(&pool)
    .await
    .expect("expire A's lease of the day");
    let claim = runs::claim_window(
        &pool,
        &b,
        Pipeline::CUSTOMERS,
        &realm,
        &taken_windows[0],
        runs::LEASE,
    )
    .await
    .expect("claim");
    assert_eq!(claim, runs::Claim::Claimed);
    // B keeps the day a while (A meets it held by someone else), then ends it without rows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        runs::end_window(
            &pool,
            &b,
            Pipeline::CUSTOMERS,
            &realm,
            &taken_windows[0],
            &runs::WindowEnd::Succeeded,
            Duration::ZERO,
        )
        .await
        .expect("end B's window")
    );
    runs::finish_run(
        &pool,
        &b,
        &runs::RunEnd::bare(runs::RunStatus::Succeeded, None),
    )
    .await
    .expect("finish B");

    let out = tokio::time::timeout(Duration::from_secs(120), run_a.wait_with_output())
        .await
        .expect("run A finished in time")
        .expect("run A");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("Window 2026-01-08 was taken over by another run"),
        "{text}"
    );
    // A's own record: every day succeeded, none left pending.
    let a_windows: Vec<String> = sqlx::query_scalar(
        "SELECT rw.status FROM ops.run_windows rw JOIN ops.runs r ON r.id = rw.run_id \
         WHERE r.id <> $1 ORDER BY rw.window_start",
    )
    .bind(b.run_id)
    .fetch_all(&pool)
    .await
    .expect("A's windows");
    assert_eq!(a_windows, vec!["succeeded"; 10]);
    // Every succeeded window counts exactly the rows that carry its lineage.
    let mismatched: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT w.window_start::text, w.rows_total, \
                (SELECT count(*) FROM raw.qb_customers c WHERE c.realm_id = w.realm_id \
                   AND c.extract_window_start_utc = w.window_start) \
         FROM ops.windows w WHERE w.pipeline = 'qb_customers_backfill' \
           AND w.status = 'succeeded' AND w.rows_total <> \
               (SELECT count(*) FROM raw.qb_customers c WHERE c.realm_id = w.realm_id \
                  AND c.extract_window_start_utc = w.window_start)",
    )
    .fetch_all(&pool)
    .await
    .expect("counters");
    assert!(mismatched.is_empty(), "{mismatched:?}");
    let lineage_off: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw.qb_customers WHERE extract_window_start_utc <> \
         date_trunc('day', (payload #>> '{MetaData,CreateTime}')::timestamptz AT TIME ZONE 'UTC') \
           AT TIME ZONE 'UTC'",
    )
    .fetch_one(&pool)
    .await
    .expect("lineage");
    assert_eq!(lineage_off, 0, "rows written into another day's window");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", "2026-01-01", "2026-01-11")
    );
}

/// 600 invoices over January 2026, no server limits, 20 ms a request; loaded 20 rows a page
/// without client rate limits: one span of 30 days, about 31 pages fetched ahead.
async fn paged_invoices() -> World {
    let mut config = sim_config(10);
    config.invoices = 600;
    config.limits = qbo_sim::SimLimits::none();
    let mut world = World::new(config).await;
    for (k, v) in [
        ("QBO_PAGE_SIZE", "20"),
        ("QBO_REQUESTS_PER_SECOND", "0"),
        ("QBO_REQUESTS_PER_MINUTE", "0"),
    ] {
        world.extra_env.push((k.into(), v.into()));
    }
    world.sim.state().set_faults(qbo_sim::FaultConfig {
        latency: std::time::Duration::from_millis(20),
        ..qbo_sim::FaultConfig::default()
    });
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_asks_for_its_pages_at_once_and_for_no_more_than_one_at_a_time() {
    let world = paged_invoices().await;
    let out = world.load("qb_invoices_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let expected = world.expected_ids("Invoice", JAN_FROM, JAN_TO);
    assert_eq!(world.loaded_ids("raw.qb_invoices").await, expected);
    world
        .assert_payloads_match("raw.qb_invoices", "Invoice")
        .await;
    // One COUNT(*), then the pages of one pass (20 rows, overlapping by one): the requests of
    // one page at a time, sent several at once.
    let n = expected.len() as u64;
    assert!(n > 200, "{n} invoices");
    let pages = (n - 20) / 19 + 2;
    let stats = world.sim.state().stats();
    assert_eq!(
        stats.query_requests,
        1 + pages,
        "{:?}",
        world.sim.state().queries()
    );
    assert!(
        stats.max_in_flight_seen > 1,
        "pages were asked one at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_deleted_while_a_span_fetches_ahead_make_no_other_row_slip_through() {
    let world = paged_invoices().await;
    let window = (midnight(JAN_FROM), midnight(JAN_TO));
    let before = world
        .sim
        .state()
        .ids_created_between("Invoice", window.0, window.1);
    // Once the COUNT(*) and a few pages were answered, the span's first invoices go: every
    // later row moves up three places, under pages asked for and not answered yet.
    let delete_early = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while world.sim.state().stats().query_requests < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never paged"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        for id in &before[..3] {
            world.sim.state().delete("Invoice", id).expect("delete");
        }
    };
    let (out, ()) = tokio::join!(
        world.load("qb_invoices_backfill", JAN_FROM, JAN_TO),
        delete_early
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let loaded = world.loaded_ids("raw.qb_invoices").await;
    let now = world.expected_ids("Invoice", JAN_FROM, JAN_TO);
    assert_eq!(now.len(), before.len() - 3);
    for id in &now {
        assert!(loaded.contains(id), "invoice {id} slipped through");
    }
    assert!(
        loaded.iter().all(|id| before.contains(id)),
        "only the span's rows"
    );
    world
        .assert_payloads_match_except(
            "raw.qb_invoices",
            "Invoice",
            &before[..3].iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
    // Every row once, with one version in history, whatever was paged twice.
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM raw.qb_invoices_history")
        .fetch_one(world.pool())
        .await
        .expect("versions");
    assert_eq!(versions, loaded.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_that_starts_after_the_history_ends_says_what_it_leaves_out() {
    let world = World::new(sim_config(20)).await;
    let out = world.load("qb_invoices_backfill", JAN_FROM, JAN_TO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (today, tomorrow) = today_and_tomorrow();
    let out = world
        .load("qb_invoices_incremental", &today, &tomorrow)
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "invoices have no sync cursor yet and their loaded history ends {JAN_TO}, before this sync's range starts ({today}): changes made in between are in neither; `qbo-backfill run qb_invoices_incremental --fecha-inicio {JAN_TO} --fecha-fin {today}` loads them"
        )),
        "{text}"
    );
    // Once it has a cursor, a sync continues from it: nothing to say.
    let out = world.run(&["run", "qb_invoices_incremental"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("no sync cursor yet"), "{text}");
}
