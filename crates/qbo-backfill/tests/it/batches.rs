//! Batches end to end against `qbo-sim` and real PostgreSQL: `run all_backfill` loads every
//! entity of the company as one batch (26 runs, one `Batch done` line), `all_incremental`
//! without dates continues every sync from its cursor, bad input writes nothing, and through
//! the API a batch is enqueued, followed, and its failed runs retried in one call.

use qbo_backfill::domain::catalog::ENTITIES;
use qbo_sim::FaultConfig;
use serde_json::{Value, json};

use super::harness::{World, field, sim_config, stderr, stdout};
use super::server::Api;

const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-02-01";

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_backfill_loads_every_entity_as_one_batch_and_bad_input_writes_nothing() {
    let world = World::new(sim_config(40)).await;
    // Refused whole, one line, exit 2, nothing written.
    for args in [
        vec!["run", "all_backfill"],
        vec!["run", "all_backfill", "--fecha-inicio", JAN_FROM],
        vec!["run", "all_incremental"],
        vec![
            "run",
            "all_verify",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
        ],
    ] {
        let out = world.run(&args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let out = world.run(&["run", "all_incremental"]).await;
    assert!(stderr(&out).contains("never were"), "{}", stderr(&out));
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);
    assert_eq!(count(&world, "SELECT count(*) FROM ops.batches").await, 0);

    let out = world
        .run(&[
            "run",
            "all_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
        ])
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(field(&text, "Batch done |", "runs"), Some(26), "{text}");
    assert_eq!(
        field(&text, "Batch done |", "succeeded"),
        Some(26),
        "{text}"
    );
    assert_eq!(text.matches("Export completed |").count(), 26, "{text}");
    assert_eq!(count(&world, "SELECT count(*) FROM ops.batches").await, 1);
    assert_eq!(
        count(
            &world,
            "SELECT count(DISTINCT pipeline) FROM ops.runs WHERE batch_id IS NOT NULL"
        )
        .await,
        26
    );
    for spec in ENTITIES {
        let expected = world.expected_ids(&format!("{:?}", spec.entity), JAN_FROM, JAN_TO);
        assert_eq!(
            world.loaded_ids(spec.table).await,
            expected,
            "{}",
            spec.table
        );
    }

    // Every sync once with dates, then all of them from their cursors.
    let out = world
        .run(&[
            "run",
            "all_incremental",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = world.run(&["run", "all_incremental"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        field(&text, "Batch done |", "succeeded"),
        Some(26),
        "{text}"
    );
    assert_eq!(count(&world, "SELECT count(*) FROM ops.batches").await, 3);
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.batches WHERE fecha_inicio IS NULL"
        )
        .await,
        1
    );
}

fn status_count(batch: &Value, status: &str) -> u64 {
    batch["batch"]["status_counts"][status]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until every run of the batch is over; the batch.
async fn wait_batch(api: &Api, id: &str) -> Value {
    for _ in 0..240 {
        let (_, batch) = api.get(&format!("/api/v1/batches/{id}")).await;
        let runs = batch["batch"]["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let over = ["queued", "running"]
            .iter()
            .all(|s| status_count(&batch, s) == 0);
        if !runs.is_empty() && over {
            return batch;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("batch {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_a_batch_follows_it_and_retries_its_failed_runs_in_one_call() {
    let mut world = World::failing(60, 0.3).await;
    // Day by day, so that every failed request fails its window: with spans a failed span is
    // loaded again in halves, and all 26 runs could end succeeded by chance (it happened once
    // in CI). The simulator enforces no limit here; neither does the client (806 requests).
    for (name, value) in [
        ("QBO_SPAN_MAX_PAGES", "0"),
        ("QBO_REQUESTS_PER_MINUTE", "100000"),
        ("QBO_REQUESTS_PER_SECOND", "10000"),
    ] {
        world.extra_env.push((name.into(), value.into()));
    }
    let api = Api::start(&world, "2").await;

    for (body, code) in [
        (json!({"pipeline": "all_backfill"}), "invalid_request"),
        (json!({"pipeline": "all_incremental"}), "no_cursor"),
        (
            json!({"pipeline": "all_backfill", "fecha_inicio": JAN_TO, "fecha_fin": JAN_FROM}),
            "invalid_range",
        ),
        (
            json!({"pipeline": "all_nothing", "fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}),
            "unknown_pipeline",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/runs", body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}: {answer}"
        );
    }
    assert_eq!(count(&world, "SELECT count(*) FROM ops.batches").await, 0);

    let (status, answer) = api
        .post(
            "/api/v1/runs",
            json!({"pipeline": "all_backfill", "fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["batch"]["name"], "all_backfill");
    assert_eq!(
        answer["batch"]["runs"].as_array().map(Vec::len),
        Some(26),
        "{answer}"
    );
    let id = answer["batch"]["id"].as_str().expect("id").to_owned();
    let done = wait_batch(&api, &id).await;
    let failed = status_count(&done, "failed");
    assert!(failed > 0, "faults at 30% fail some runs: {done}");
    assert_eq!(status_count(&done, "succeeded") + failed, 26, "{done}");

    world.sim.state().set_faults(FaultConfig::default());
    // Four scripts (or clicks) retry the batch at once: each failed run is retried once.
    let path = format!("/api/v1/batches/{id}/retry");
    let answers = futures_util::future::join_all((0..4).map(|_| api.post(&path, json!({})))).await;
    for (status, answer) in &answers {
        assert!(
            *status == 202 || (*status == 409 && answer["error"]["code"] == "nothing_to_retry"),
            "{status} {answer}"
        );
    }
    assert!(answers.iter().any(|(status, _)| *status == 202));
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.runs").await,
        26 + i64::try_from(failed).expect("small"),
        "one retry per failed run"
    );
    let done = wait_batch(&api, &id).await;
    // Counted through the retries: every entity's latest run succeeded, every window loaded.
    assert_eq!(status_count(&done, "succeeded"), 26, "{done}");
    assert_eq!(status_count(&done, "failed"), 0, "{done}");
    assert_eq!(status_count(&done, "total"), 26, "{done}");
    assert_eq!(
        done["batch"]["windows_succeeded"], done["batch"]["windows_total"],
        "{done}"
    );
    assert_eq!(done["batch"]["windows_failed"], 0, "{done}");
    for spec in ENTITIES {
        let expected = world.expected_ids(&format!("{:?}", spec.entity), JAN_FROM, JAN_TO);
        assert_eq!(
            world.loaded_ids(spec.table).await,
            expected,
            "{}",
            spec.table
        );
    }
    let (status, again) = api
        .post(&format!("/api/v1/batches/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("nothing_to_retry")),
        "{again}"
    );
    let (status, _) = api
        .get("/api/v1/batches/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_command_line_is_killed_leaves_no_run_queued_for_nobody() {
    let mut config = sim_config(2000);
    config.faults = FaultConfig {
        latency: std::time::Duration::from_millis(40),
        ..FaultConfig::default()
    };
    let world = World::new(config).await;
    let mut child = world
        .command(&[
            "run",
            "all_backfill",
            "--fecha-inicio",
            JAN_FROM,
            "--fecha-fin",
            JAN_TO,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Killed while its first run loads: the batch's other runs are still queued for it.
    world.wait_for_pages(2).await;
    child.start_kill().expect("kill");
    child.wait().await.expect("wait");
    let queued = count(
        &world,
        "SELECT count(*) FROM ops.runs WHERE status = 'queued'",
    )
    .await;
    assert!(queued > 20, "{queued} runs queued when it was killed");
    // The next command that looks (here `runs`) finds the process dead: the run it was loading,
    // if it was between two runs none, is interrupted, and the runs it was going to run are
    // cancelled, as Ctrl-C would have left them.
    let out = world.run(&["runs"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM ops.runs GROUP BY status ORDER BY status")
            .fetch_all(world.pool())
            .await
            .expect("statuses");
    let of = |s: &str| statuses.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    assert_eq!(of("queued") + of("running"), 0, "{statuses:?}");
    assert!(of("interrupted") <= 1, "{statuses:?}");
    assert_eq!(
        of("cancelled") + of("succeeded") + of("interrupted"),
        26,
        "{statuses:?}"
    );
    assert!(of("cancelled") > 20, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_at_any_moment_leaves_no_run_queued_or_running() {
    let world = World::new(sim_config(40)).await;
    let args = [
        "run",
        "all_backfill",
        "--fecha-inicio",
        JAN_FROM,
        "--fecha-fin",
        JAN_TO,
    ];
    // How long a whole batch takes here, to spread the kills over it (runs, and the moments
    // between two runs).
    let started = std::time::Instant::now();
    let out = world.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let whole = started.elapsed();
    for step in 0..6_u32 {
        let mut child = world
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(whole * step / 6).await;
        child.start_kill().expect("kill");
        child.wait().await.expect("wait");
        // The next command that looks finds the process dead.
        let out = world.run(&["runs"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let stuck = count(
            &world,
            "SELECT count(*) FROM ops.runs WHERE status IN ('queued', 'running')",
        )
        .await;
        assert_eq!(stuck, 0, "killed at {:?} of {whole:?}", whole * step / 6);
    }
}
