//! The orchestrator end to end: the real `serve` and `worker` processes, real PostgreSQL and
//! `qbo-sim`, driven through the JSON API as an operator's script would: tokens, starting a run
//! and following it to the end, bad input, faults then retry, cancel, a worker killed with
//! SIGKILL whose run another worker finishes, and no secret in anything served.

use std::time::Duration;

use qbo_sim::FaultConfig;
use serde_json::{Value, json};

use crate::harness::{World, sim_config, stdout};

const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-01-31";

/// A running `qbo-backfill serve` (or `worker`) process.
pub(crate) struct Process {
    child: tokio::process::Child,
}

impl Process {
    fn kill_hard(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A server with an API token.
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    _server: Process,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn spawn(world: &World, args: &[&str]) -> Process {
    let child = world
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    Process { child }
}

impl Api {
    pub(crate) async fn start(world: &World, workers: &str) -> Self {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let server = spawn(
            world,
            &[
                "serve",
                "--bind",
                &bind,
                "--workers",
                workers,
                "--poll-ms",
                "100",
            ],
        )
        .await;
        let base = format!("http://{bind}");
        let http = qbo::tls::http_client_builder()
            .build()
            .expect("an HTTP client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never answered /healthz"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = world.run(&["api-tokens", "create", "tests"]).await;
        assert_eq!(out.status.code(), Some(0));
        let token = stdout(&out).lines().last().expect("token line").to_owned();
        assert!(token.starts_with("qbt_"), "{token}");
        Self {
            base,
            token,
            http,
            _server: server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Polls a run until it is over (at most `secs`).
    pub(crate) async fn wait_final(&self, id: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, run) = self.get(&format!("/api/v1/runs/{id}")).await;
            assert_eq!(status, 200, "{run}");
            let s = run["status"].as_str().unwrap_or_default();
            if !matches!(s, "queued" | "running") {
                return run;
            }
            assert!(tokio::time::Instant::now() < deadline, "run {id} still {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn run_body(from: &str, to: &str) -> Value {
    json!({"pipeline": "qb_customers_backfill", "fecha_inicio": from, "fecha_fin": to})
}

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(world.pool())
        .await
        .expect("count")
}

fn assert_no_secret(world: &World, text: &str) {
    for secret in world.secrets() {
        assert!(!text.contains(&secret), "a secret was served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_through_the_api_is_followed_to_succeeded_with_the_table_exact() {
    let world = World::new(sim_config(400)).await;
    let api = Api::start(&world, "2").await;

    // Without a token, or with a wrong one, nothing but /healthz answers.
    for path in [
        "/api/v1/runs",
        "/metrics",
        "/api/v1/secrets",
        "/api/v1/triggers",
        "/api/v1/nope",
    ] {
        let r = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
        let r = api
            .http
            .get(format!("{}{path}", api.base))
            .bearer_auth("qbt_not-a-token")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{path}");
    }

    // Bad input: a stable code, a message for a person, nothing queued.
    for (body, status, code) in [
        (
            json!({"pipeline": "qb_nope", "fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}),
            422,
            "unknown_pipeline",
        ),
        (run_body("2026-01-31", "2026-01-01"), 422, "invalid_range"),
        (run_body("2026-02-30", "2026-03-01"), 422, "invalid_date"),
        (run_body("1900-01-01", "2026-01-01"), 422, "invalid_range"),
        (
            json!({"pipeline": "qb_customers_backfill", "fecha_inicio": 20260101, "fecha_fin": JAN_TO}),
            422,
            "invalid_request",
        ),
        (
            json!({"pipeline": "qb_customers_backfill"}),
            422,
            "invalid_request",
        ),
        (
            json!({"pipeline": "qb_customers_backfill", "fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO, "realm_id": "42"}),
            422,
            "unknown_company",
        ),
    ] {
        let (got, answer) = api.post("/api/v1/runs", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(!message.is_empty() && !message.contains("SQL") && !message.contains('\n'));
    }
    let malformed = api
        .http
        .post(format!("{}/api/v1/runs", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"pipeline\": ")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    let oversized = api
        .http
        .post(format!("{}/api/v1/runs", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body(format!("{{\"pipeline\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .expect("post");
    assert_eq!(oversized.status(), 413);
    let answer: Value = oversized.json().await.expect("a JSON error");
    assert_eq!(answer["error"]["code"], "body_too_large");
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);

    let (status, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    assert_eq!(status, 202, "{run}");
    // Queued, or already claimed by a worker woken by the API.
    assert!(
        matches!(run["status"].as_str(), Some("queued" | "running")),
        "{run}"
    );
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["started_by"], "tests", "the API token's name");
    let id = run["id"].as_str().expect("id").to_owned();
    let run = api.wait_final(&id, 120).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let expected = world.expected_ids("Customer", JAN_FROM, JAN_TO);
    assert_eq!(run["counts"]["total"], expected.len() as i64);
    assert_eq!(run["counts"]["inserted"], expected.len() as i64);
    let windows = run["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 30);
    assert!(windows.iter().all(|w| w["status"] == "succeeded"), "{run}");
    assert_eq!(windows[0]["start_utc"], "2026-01-01T00:00:00Z");
    assert_eq!(windows[29]["end_utc"], "2026-01-31T00:00:00Z");
    assert_eq!(world.loaded_ids("raw.qb_customers").await, expected);
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;

    // The run's log, as the contract writes it, readable in pieces.
    let (status, logs) = api.get(&format!("/api/v1/runs/{id}/logs?after=0")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Processing Customers window "))
            .count(),
        30
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Window completed | pages="))
            .count(),
        30
    );
    assert!(lines.contains(&"==== QB CUSTOMERS BACKFILL SUMMARY ===="));
    assert!(lines.contains(&"window_end_utc=2026-01-31T00:00:00Z"));
    let next = logs["next"].as_i64().expect("next");
    let (_, rest) = api
        .get(&format!("/api/v1/runs/{id}/logs?after={next}"))
        .await;
    assert_eq!(rest["lines"].as_array().map(Vec::len), Some(0));
    assert_eq!(rest["next"], next);

    let (status, list) = api.get("/api/v1/runs?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(list["runs"][0]["id"], id.as_str());

    let (status, metrics) = api.get("/metrics").await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics.contains("qbo_backfill_runs{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("qbo_backfill_queue_depth 0"), "{metrics}");
    // The month's requests (at least the run's) against the default allowance.
    let month: i64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("qbo_backfill_requests_this_month{realm_id=\"9130350000000001\"} ")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(month > 0, "{metrics}");
    assert!(
        metrics.contains("qbo_backfill_monthly_request_allowance 500000"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("qbo_backfill_budget_requests_last_minute{realm_id=\"9130350000000001\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "qbo_backfill_rows_total{{outcome=\"inserted\"}} {}",
            expected.len()
        )),
        "{metrics}"
    );

    // Secrets: names only; a refresh token stored through the API is never served back.
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/secrets/MY_NOTE",
            Some(json!({"value": "Sup3rSecretNote-x1"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, bad) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/secrets/bad%20name",
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_secret_name"))
    );
    // The one value-size rule: 16 KiB is stored, one byte more is refused.
    let at_limit = "v".repeat(qbo_backfill::domain::secret::MAX_SECRET_VALUE_BYTES);
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/secrets/MY_LONG_NOTE",
            Some(json!({ "value": at_limit })),
        )
        .await;
    assert_eq!(status, 204);
    let (status, bad) = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/secrets/MY_LONG_NOTE",
            Some(json!({ "value": format!("{at_limit}v") })),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_secret_value")),
        "{bad}"
    );
    let (status, secrets) = api.get("/api/v1/secrets").await;
    assert_eq!(status, 200);
    let text = secrets.to_string();
    assert!(
        text.contains("MY_NOTE") && text.contains("QBO_REFRESH_TOKEN"),
        "{text}"
    );
    assert!(
        !text.contains("Sup3rSecretNote") && !text.contains("x1\""),
        "{text}"
    );
    for served in [text, run.to_string(), logs.to_string(), metrics] {
        assert_no_secret(&world, &served);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_broken_by_faults_is_retried_through_the_api_and_only_its_failed_windows_run() {
    let mut world = World::failing(300, 0.5).await;
    // Days asked for one by one, so that single days fail on their own.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let api = Api::start(&world, "1").await;
    let (_, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let run = api.wait_final(&id, 120).await;
    assert_eq!(run["status"], "failed", "{run}");
    let failed: Vec<&Value> = run["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .filter(|w| w["status"] == "failed")
        .collect();
    assert!(!failed.is_empty() && failed.len() < 30, "{run}");
    assert!(
        failed
            .iter()
            .all(|w| w["error"].as_str().is_some_and(|e| !e.is_empty()))
    );

    world.sim.state().set_faults(FaultConfig::default());
    let (status, retry) = api
        .post(&format!("/api/v1/runs/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, 202, "{retry}");
    assert_eq!(retry["retry_of"], id.as_str());
    assert_eq!(
        retry["windows"].as_array().map(Vec::len),
        Some(failed.len())
    );
    let retried = api.wait_final(retry["id"].as_str().expect("id"), 120).await;
    assert_eq!(retried["status"], "succeeded", "{retried}");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    // A run that is over cannot be cancelled; one with nothing left cannot be retried.
    let (status, answer) = api
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("run_finished"))
    );
    let rid = retried["id"].as_str().expect("id");
    let (status, answer) = api
        .post(&format!("/api/v1/runs/{rid}/retry"), json!({}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("nothing_to_retry"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_run_is_cancelled_at_once_and_a_running_one_stops_within_a_heartbeat() {
    let mut config = sim_config(3000);
    config.faults = FaultConfig {
        latency: Duration::from_millis(60),
        ..FaultConfig::default()
    };
    let mut world = World::new(config).await;
    // Days asked for one by one: the run is long enough to be cancelled in its middle.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let api = Api::start(&world, "0").await;
    let (_, queued) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    let id = queued["id"].as_str().expect("id").to_owned();
    let (status, cancelled) = api
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(cancelled["status"], "cancelled");

    let (_, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let mut worker = spawn(&world, &["worker", "--poll-ms", "100"]).await;
    world.wait_for_pages(2).await;
    let (status, _) = api
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202);
    let run = api.wait_final(&id, 30).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.windows WHERE status = 'running'"
        )
        .await,
        0
    );
    worker.kill_hard();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_has_its_run_finished_by_another_worker_with_the_table_exact() {
    let mut config = sim_config(6000);
    config.faults = FaultConfig {
        latency: Duration::from_millis(40),
        ..FaultConfig::default()
    };
    let world = World::new(config).await;
    let api = Api::start(&world, "0").await;
    let (_, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let mut first = spawn(
        &world,
        &["worker", "--poll-ms", "100", "--concurrency", "3"],
    )
    .await;
    world.wait_for_pages(4).await;
    first.kill_hard();
    let _ = first.child.wait().await;
    let loaded = world.loaded_ids("raw.qb_customers").await.len();
    let expected = world.expected_ids("Customer", JAN_FROM, JAN_TO);
    assert!(
        loaded > 0 && loaded < expected.len(),
        "killed mid-run: {loaded}"
    );
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.runs WHERE status = 'running'"
        )
        .await,
        1
    );

    let _second = spawn(&world, &["worker", "--poll-ms", "100"]).await;
    let run = api.wait_final(&id, 120).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(world.loaded_ids("raw.qb_customers").await, expected);
    world
        .assert_payloads_match("raw.qb_customers", "Customer")
        .await;
    let executions: i32 = sqlx::query_scalar("SELECT executions FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .expect("executions");
    assert_eq!(executions, 2, "the second worker took the run over");
    for sql in [
        "SELECT count(*) FROM ops.runs WHERE status = 'running'",
        "SELECT count(*) FROM ops.windows WHERE status <> 'succeeded'",
        "SELECT count(*) FROM ops.run_windows WHERE status <> 'succeeded'",
    ] {
        assert_eq!(count(&world, sql).await, 0, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_managed_through_the_api_and_a_due_one_fires_once_into_a_run() {
    let world = World::new(sim_config(200)).await;
    let api = Api::start(&world, "1").await;

    // 10:00 in Guayaquil (the default zone) is 15:00 UTC.
    let (status, once) = api
        .post(
            "/api/v1/triggers",
            json!({"pipeline": "qb_customers_backfill", "kind": "once", "local_time": "2030-02-02T10:00",
                   "params": {"fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}}),
        )
        .await;
    assert_eq!(status, 201, "{once}");
    assert_eq!(once["time_zone"], "America/Guayaquil");
    assert_eq!(once["next_fire_utc"], "2030-02-02T15:00:00Z");
    assert_eq!(once["state"], "scheduled");
    assert_eq!(once["enabled"], true);
    let once_id = once["id"].as_str().expect("id").to_owned();

    let (status, cron) = api
        .post(
            "/api/v1/triggers",
            json!({"pipeline": "qb_items_backfill", "kind": "cron", "cron": "0 10 * * *",
                   "time_zone": "America/Guayaquil", "params": {"fecha_inicio": "yesterday", "fecha_fin": "today"}}),
        )
        .await;
    assert_eq!(status, 201, "{cron}");
    assert!(
        cron["next_fire_utc"]
            .as_str()
            .is_some_and(|t| t.ends_with("T15:00:00Z")),
        "{cron}"
    );

    for (body, code) in [
        (
            json!({"pipeline": "qb_customers_backfill", "kind": "once", "local_time": "2030-02-02T10:00", "time_zone": "Mars/Olympus",
                "params": {"fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}}),
            "invalid_time_zone",
        ),
        (
            json!({"pipeline": "qb_customers_backfill", "kind": "cron", "cron": "61 * * * *",
                "params": {"fecha_inicio": "yesterday", "fecha_fin": "today"}}),
            "invalid_cron",
        ),
        (
            json!({"pipeline": "qb_customers_backfill", "kind": "once", "local_time": "2030-02-02T10:00",
                "params": {"fecha_inicio": JAN_TO, "fecha_fin": JAN_FROM}}),
            "invalid_params",
        ),
        (
            json!({"pipeline": "nope", "kind": "once", "local_time": "2030-02-02T10:00",
                "params": {"fecha_inicio": JAN_FROM, "fecha_fin": JAN_TO}}),
            "unknown_pipeline",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/triggers", body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body} → {answer}"
        );
    }

    let (status, list) = api.get("/api/v1/triggers").await;
    assert_eq!(status, 200);
    assert_eq!(list["triggers"].as_array().map(Vec::len), Some(2));
    let (status, disabled) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/triggers/{once_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{disabled}");
    assert_eq!(disabled["enabled"], false);
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/triggers/{once_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, gone) = api.get(&format!("/api/v1/triggers/{once_id}")).await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("trigger_not_found"))
    );

    // A one-time trigger due in a few seconds fires once, records its run, and disables itself.
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(3))
        .expect("time")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (status, due) = api
        .post(
            "/api/v1/triggers",
            json!({"pipeline": "qb_customers_backfill", "kind": "once", "local_time": soon, "time_zone": "UTC",
                   "params": {"fecha_inicio": "2026-01-05", "fecha_fin": "2026-01-07"}}),
        )
        .await;
    assert_eq!(status, 201, "{due}");
    let due_id = due["id"].as_str().expect("id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let fired = loop {
        let (_, t) = api.get(&format!("/api/v1/triggers/{due_id}")).await;
        if t["state"] == "fired" {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "never fired: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fired["enabled"], false);
    let run_id = fired["last_run_id"].as_str().expect("run id").to_owned();
    let run = api.wait_final(&run_id, 60).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "trigger");
    assert_eq!(run["trigger_id"], due_id.as_str());
    assert_eq!(run["fecha_inicio"], "2026-01-05");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.runs WHERE trigger = 'trigger'"
        )
        .await,
        1,
        "a one-time trigger fired twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_worker_gives_its_run_back_to_the_queue_and_another_worker_finishes_it() {
    let mut config = sim_config(6000);
    config.faults = FaultConfig {
        latency: Duration::from_millis(40),
        ..FaultConfig::default()
    };
    let world = World::new(config).await;
    let api = Api::start(&world, "0").await;
    let (_, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let mut first = spawn(
        &world,
        &["worker", "--poll-ms", "100", "--concurrency", "3"],
    )
    .await;
    world.wait_for_pages(4).await;
    let pid = first.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .expect("the worker stopped in time")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    // Back in the queue, nothing held, every written page whole.
    let (_, run) = api.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["status"], "queued", "{run}");
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM ops.windows WHERE status = 'running'"
        )
        .await,
        0
    );
    let (pages_rows, loaded): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(rows_total), 0)::bigint FROM ops.windows), \
                (SELECT count(*) FROM raw.qb_customers)",
    )
    .fetch_one(world.pool())
    .await
    .expect("counts");
    assert_eq!(pages_rows, loaded, "pages commit whole with their progress");

    let _second = spawn(&world, &["worker", "--poll-ms", "100"]).await;
    let run = api.wait_final(&id, 120).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_sync_runs_through_the_api_with_dates_then_from_its_cursor() {
    let world = World::new(sim_config(60)).await;
    let api = Api::start(&world, "1").await;
    // Without a cursor, a sync without dates is refused in words; a backfill needs dates.
    let sync = json!({"pipeline": "qb_customers_incremental"});
    let (status, refused) = api.post("/api/v1/runs", sync.clone()).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "no_cursor", "{refused}");
    let (status, refused) = api
        .post("/api/v1/runs", json!({"pipeline": "qb_items_backfill"}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);

    // The first sync names its range; every customer changed in January arrives.
    let (_, first) = api
        .post(
            "/api/v1/runs",
            json!({"pipeline": "qb_customers_incremental", "fecha_inicio": JAN_FROM, "fecha_fin": "2026-02-01"}),
        )
        .await;
    let first = api.wait_final(first["id"].as_str().expect("id"), 60).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, "2026-02-01")
    );

    // Then without dates: from the cursor to the end of today, nothing rewritten.
    let (status, second) = api.post("/api/v1/runs", sync).await;
    assert_eq!(status, 202, "{second}");
    let second = api.wait_final(second["id"].as_str().expect("id"), 60).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    assert_eq!(
        second["fecha_fin"],
        today.tomorrow().expect("tomorrow").to_string()
    );
    assert_eq!(second["counts"]["inserted"], 0, "{second}");
    assert_eq!(second["counts"]["updated"], 0, "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_stops_a_queued_run_at_its_first_refresh() {
    let world = World::new(sim_config(20)).await;
    let api = Api::start(&world, "1").await;
    world.sim.state().revoke_refresh_tokens();
    let before = world.sim.state().stats().token_requests;
    let (status, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    assert_eq!(status, 202, "{run}");
    let run = api.wait_final(run["id"].as_str().expect("id"), 60).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        world.sim.state().stats().token_requests - before,
        1,
        "the refused refresh token was sent again"
    );
    let auth_error: Option<String> =
        sqlx::query_scalar("SELECT last_auth_error FROM ops.companies")
            .fetch_one(world.pool())
            .await
            .expect("company");
    assert_eq!(auth_error.as_deref(), Some("invalid_grant"));
    assert_eq!(
        count(&world, "SELECT count(*) FROM raw.qb_customers").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_retries_a_run_whose_worker_died_by_the_one_retry_rule() {
    let world = World::new(sim_config(60)).await;
    let api = Api::start(&world, "1").await;
    let dead =
        crate::support::dead_run_holding_its_first_day(world.pool(), &world.config.realm_id).await;
    // Still recorded running, but its worker is gone: retried, not refused.
    let (status, retry) = api
        .post(&format!("/api/v1/runs/{}/retry", dead.run_id), json!({}))
        .await;
    assert_eq!(status, 202, "{retry}");
    assert_eq!(retry["retry_of"], dead.run_id.to_string(), "{retry}");
    let done = api.wait_final(retry["id"].as_str().expect("id"), 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let old: String = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
        .bind(dead.run_id)
        .fetch_one(world.pool())
        .await
        .expect("status");
    assert_eq!(old, "interrupted");
    // A second retry finds nothing left: a conflict in words.
    let (status, again) = api
        .post(&format!("/api/v1/runs/{}/retry", dead.run_id), json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("nothing_to_retry")),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_one_run_asked_at_once_queue_one_retry() {
    let world = World::new(sim_config(20)).await;
    // No worker: the retry stays queued while the others are asked.
    let api = Api::start(&world, "0").await;
    let (status, run) = api.post("/api/v1/runs", run_body(JAN_FROM, JAN_TO)).await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let (status, cancelled) = api
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{cancelled}");
    let path = format!("/api/v1/runs/{id}/retry");
    let answers = futures_util::future::join_all((0..8).map(|_| api.post(&path, json!({})))).await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, answer)| answer)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let retry = accepted[0]["id"].as_str().expect("id");
    assert_eq!(accepted[0]["retry_of"], id.as_str());
    for (status, answer) in answers.iter().filter(|(status, _)| *status != 202) {
        assert_eq!(
            (*status, answer["error"]["code"].as_str()),
            (409, Some("run_active")),
            "{answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(retry)),
            "the refusal names the retry to follow: {answer}"
        );
    }
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 2);
    // Asked again later, while that retry is still queued: refused the same way.
    let (status, again) = api.post(&path, json!({})).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("run_active")),
        "{again}"
    );
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_does_not_take_and_a_refused_token_are_answered_in_the_envelope() {
    let world = World::new(sim_config(5)).await;
    let api = Api::start(&world, "0").await;
    for (method, path, allow) in [
        ("PUT", "/api/v1/runs", "GET,HEAD,POST"),
        ("GET", "/api/v1/verify", "POST"),
        ("DELETE", "/api/v1/secrets/X", "PUT"),
        (
            "POST",
            "/api/v1/runs/00000000-0000-0000-0000-000000000000",
            "GET,HEAD",
        ),
    ] {
        let r = api
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", api.base),
            )
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        let allowed = r.headers()["allow"]
            .to_str()
            .expect("allow")
            .replace(' ', "");
        let mut allowed: Vec<&str> = allowed.split(',').collect();
        allowed.sort_unstable();
        assert_eq!(allowed.join(","), allow, "{method} {path}");
        let answer: Value = r.json().await.expect("a JSON error");
        assert_eq!(answer["error"]["code"], "method_not_allowed", "{answer}");
    }
    // No token, and a token that is not (or no longer) one: 401 saying which, with the scheme.
    for (token, says) in [(None, "is required"), (Some("qbo_nope"), "not accepted")] {
        let mut request = api.http.get(format!("{}/api/v1/runs", api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.expect("request");
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"qbo-backfill\""
        );
        let answer: Value = r.json().await.expect("a JSON error");
        assert_eq!(answer["error"]["code"], "unauthorized");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{answer}"
        );
    }
}
