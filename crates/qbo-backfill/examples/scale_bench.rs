//! Many companies on one PostgreSQL (issue 18): what the queue costs as it grows.
//!
//! One command per figure, each against a fresh database on the local server:
//!
//! ```text
//! cargo build --release -p qbo-sim -p qbo-backfill --examples --bins
//! target/release/examples/scale_bench claim      # a ten-year span's claim, heartbeats vs windows held
//! target/release/examples/scale_bench runs       # the Runs page and GET /api/v1/runs, 1,000,000 windows
//! target/release/examples/scale_bench companies  # 50 companies, 4 `worker` processes, budgets
//! ```
//!
//! Knobs: `--reps N` (claim), `--windows N --big N --size N` (runs), `--companies N --workers N --customers N
//! --days N --per-minute N --latency-ms N --jitter-ms N --sims-nice N` (companies).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use qbo_backfill::pipeline::{DateRange, Pipeline, Window};
use qbo_backfill::store::TestDb;
use qbo_backfill::store::runs::queue::{self, NewRun};
use qbo_backfill::store::runs::workers::{self, WorkerIdentity};
use qbo_backfill::store::runs::{self, Execution, RunStatus};
use sqlx::PgPool;

const REALM: &str = "9130350000000001";

fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| anyhow::anyhow!("{name} {v}: {e}"))
        }
        None => Ok(default),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorted copy's quantile `q` (0..=1), in milliseconds.
fn quantile(samples: &[Duration], q: f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().map(ms).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    println!("scale_bench {what}: load average before {}", load_average());
    match what.as_str() {
        "claim" => claim_bench().await?,
        "runs" => runs_bench().await?,
        "companies" => companies_bench().await?,
        other => anyhow::bail!("usage: scale_bench claim|runs|companies (not {other:?})"),
    }
    println!("load average after {}", load_average());
    Ok(())
}

/// A run of `range`'s windows, enqueued and claimed by `worker` as the CLI does.
async fn start_run(
    pool: &PgPool,
    range: DateRange,
    windows: &[Window],
    worker: &WorkerIdentity,
) -> anyhow::Result<Execution> {
    let mut tx = pool.begin().await?;
    let id = queue::enqueue_run(
        &mut tx,
        &NewRun {
            pipeline: Pipeline::CUSTOMERS,
            realm_id: REALM,
            range,
            windows,
            trigger: qbo_backfill::domain::run::RunOrigin::Cli,
            trigger_id: None,
            started_by: None,
            retry_of: None,
            requeue_on_loss: false,
        },
    )
    .await?;
    let claimed = queue::claim_run(&mut tx, id, worker, runs::LEASE)
        .await?
        .context("queued")?;
    tx.commit().await?;
    Ok(claimed.execution)
}

async fn finish(pool: &PgPool, exec: &Execution) -> anyhow::Result<()> {
    runs::finish_run(
        pool,
        exec,
        &runs::RunEnd::bare(RunStatus::Interrupted, None),
    )
    .await?;
    Ok(())
}

/// A ten-year span (3,653 windows) claimed at once: free windows, and windows a dead run held
/// (taken over); then one heartbeat with 10 and with 3,653 windows held.
async fn claim_bench() -> anyhow::Result<()> {
    let reps: usize = arg("--reps", 10)?;
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = &db.pool;
    let worker = WorkerIdentity::current();
    workers::register(pool, &worker, "bench").await?;
    let range = DateRange::parse("2016-01-01", "2026-01-01")?;
    let windows = range.windows()?;
    println!(
        "claim of a ten-year span ({} windows), {reps} times each, fresh database:",
        windows.len()
    );

    // Free windows: each run claims every window, then gives them back at its end.
    let mut free = Vec::new();
    for _ in 0..reps {
        let exec = start_run(pool, range, &windows, &worker).await?;
        let t = Instant::now();
        let claim = runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows,
            runs::LEASE,
        )
        .await?;
        free.push(t.elapsed());
        assert_eq!(claim.claimed.len(), windows.len());
        finish(pool, &exec).await?;
    }
    // Taken over: the holder's lease ran out (its worker stopped heartbeating).
    let mut taken = Vec::new();
    let mut holder = start_run(pool, range, &windows, &worker).await?;
    runs::claim_windows(
        pool,
        &holder,
        Pipeline::CUSTOMERS,
        REALM,
        &windows,
        runs::LEASE,
    )
    .await?;
    for _ in 0..reps {
        sqlx::query("UPDATE ops.runs SET lease_until = now() - interval '1 second' WHERE id = $1")
            .bind(holder.run_id)
            .execute(pool)
            .await?;
        let exec = start_run(pool, range, &windows, &worker).await?;
        let t = Instant::now();
        let claim = runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows,
            runs::LEASE,
        )
        .await?;
        taken.push(t.elapsed());
        assert_eq!(claim.claimed.len(), windows.len(), "a dead run's windows");
        holder = exec;
    }
    finish(pool, &holder).await?;
    println!(
        "  free windows          median {:8.1} ms  min {:8.1} ms  max {:8.1} ms",
        quantile(&free, 0.5),
        quantile(&free, 0.0),
        quantile(&free, 1.0)
    );
    println!(
        "  taken over (dead run) median {:8.1} ms  min {:8.1} ms  max {:8.1} ms",
        quantile(&taken, 0.5),
        quantile(&taken, 0.0),
        quantile(&taken, 1.0)
    );

    println!("heartbeat (run lease and its windows' claims), 50 beats each:");
    for held in [10, 365, windows.len()] {
        let exec = start_run(pool, range, &windows, &worker).await?;
        runs::claim_windows(
            pool,
            &exec,
            Pipeline::CUSTOMERS,
            REALM,
            &windows[..held],
            runs::LEASE,
        )
        .await?;
        let mut beats = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let beat = runs::heartbeat(pool, &exec, runs::LEASE).await?;
            beats.push(t.elapsed());
            assert_eq!(beat, Some(false));
        }
        finish(pool, &exec).await?;
        println!(
            "  {held:5} windows held    median {:8.2} ms  p90 {:8.2} ms",
            quantile(&beats, 0.5),
            quantile(&beats, 0.9)
        );
    }
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The `qbo-backfill` binary next to this example (`target/release/`).
fn binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("target dir")?;
    let bin = dir.join("qbo-backfill");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build --release -p qbo-sim -p qbo-backfill --examples --bins",
        bin.display()
    );
    Ok(bin)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

const SECRET_KEY_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const ADMIN_PASSWORD: &str = "Sc4le-bench-Pa55word";

/// A `qbo-backfill` process (`serve` or `worker`) on the database of `url`, killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(url: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Process> {
    let mut cmd = std::process::Command::new(binary()?);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("QBO_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", url)
        .env("QBO_BACKFILL_SECRET_KEY", SECRET_KEY_B64)
        .env("QBO_BACKFILL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(Process(cmd.spawn()?))
}

/// A `serve` (API and pages only, no workers), logged in, with an API token.
struct Server {
    base: String,
    http: reqwest::Client,
    token: String,
    session: String,
    _process: Process,
}

impl Server {
    async fn start(db: &TestDb) -> anyhow::Result<Self> {
        let bind = format!("127.0.0.1:{}", free_port()?);
        let process = spawn(&db.url, &["serve", "--bind", &bind, "--workers", "0"], &[])?;
        let base = format!("http://{bind}");
        let http = qbo::tls::http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "serve never answered /healthz");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, token) = qbo_backfill::store::auth::api_tokens::create(
            &db.pool,
            "scale_bench",
            qbo_backfill::domain::access::Scope::Admin,
            None,
        )
        .await?;
        let session = login(&http, &base).await?;
        Ok(Self {
            base,
            http,
            token,
            session,
            _process: process,
        })
    }

    /// `GET path` through the API (bearer token) or as a logged-in browser; the body and how
    /// long the answer took.
    async fn get(&self, path: &str, api: bool) -> anyhow::Result<(String, Duration)> {
        let req = self.http.get(format!("{}{path}", self.base));
        let req = if api {
            req.bearer_auth(&self.token)
        } else {
            req.header("cookie", &self.session)
        };
        let t = Instant::now();
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        let took = t.elapsed();
        anyhow::ensure!(status == 200, "GET {path}: {status}: {body}");
        Ok((body, took))
    }
}

/// Logs in through the form (its CSRF cookie first); the session cookie.
async fn login(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let page = http.get(format!("{base}/login")).send().await?;
    let csrf_cookie = page
        .headers()
        .get("set-cookie")
        .context("csrf cookie")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let html = page.text().await?;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("csrf field")?
        .to_owned();
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", csrf_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await?;
    anyhow::ensure!(r.status() == 303, "login answered {}", r.status());
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("session=") && !c.contains("Max-Age=0"))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .context("session cookie")
}

/// Finished runs holding `total` run windows: the newest `big` ten-year runs (3,653 windows
/// each: the heaviest first page there can be), then runs of `size` days, spread over 50
/// companies, one in 20 failed with two failed windows (one day when `size` is 1); and the
/// companies' windows (ten years each).
async fn seed_runs(pool: &PgPool, total: i64, big: i64, size: i64) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "CREATE TEMP TABLE seed_runs ON COMMIT DROP AS \
         SELECT g, now() - g * interval '1 second' AS t, \
           '91303500000' || lpad((g % 50)::text, 5, '0') AS realm, \
           CASE WHEN g <= $2 THEN 3653 ELSE $3::int END AS n, \
           CASE WHEN g % 20 = 7 THEN 'failed' ELSE 'succeeded' END AS status \
         FROM generate_series(1, $2 + greatest($1 - $2 * 3653, 0) / $3) g",
    )
    .bind(total)
    .bind(big)
    .bind(size)
    .execute(&mut *tx)
    .await?;
    // Ids are UUIDv7 of their creation time, as the queue makes them.
    sqlx::query(
        "INSERT INTO ops.runs (id, pipeline, realm_id, fecha_inicio, fecha_fin, status, trigger, \
           windows_total, windows_failed, created_at, started_at, finished_at) \
         SELECT overlay(overlay(md5(g::text) placing lpad(to_hex(floor(extract(epoch FROM t) \
                  * 1000)::bigint), 12, '0') from 1 for 12) placing '7' from 13 for 1)::uuid, \
           'qb_customers_backfill', realm, \
           CASE WHEN n = 3653 THEN date '2016-01-01' ELSE date '2025-01-01' + (g % 300)::int END, \
           CASE WHEN n = 3653 THEN date '2026-01-01' \
                ELSE date '2025-01-01' + (g % 300)::int + n END, \
           status, 'api', n, CASE WHEN status = 'failed' THEN least(n, 2) ELSE 0 END, t, t, \
           t + interval '1 minute' \
         FROM seed_runs",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO ops.run_windows (run_id, window_start, window_end, status, pages, \
           rows_total, inserted, duration_ms) \
         SELECT r.id, d, d + interval '1 day', \
           CASE WHEN r.status = 'failed' AND d < r.fecha_inicio + 2 THEN 'failed' \
                ELSE 'succeeded' END, 1, 40, 40, 120 \
         FROM ops.runs r CROSS JOIN LATERAL generate_series(r.fecha_inicio::timestamptz, \
           r.fecha_fin::timestamptz - interval '1 day', interval '1 day') d",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO ops.windows (pipeline, realm_id, window_start, window_end, status, attempts, \
           pages, rows_total) \
         SELECT 'qb_customers_backfill', '91303500000' || lpad(k::text, 5, '0'), d, \
           d + interval '1 day', 'succeeded', 1, 1, 40 \
         FROM generate_series(0, 49) k, generate_series(timestamptz '2016-01-01', \
           timestamptz '2025-12-31', interval '1 day') d",
    )
    .execute(&mut *tx)
    .await?;
    // What each run's end stored: its windows' sums (since migration 0019).
    let sums: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
           WHERE table_schema = 'ops' AND table_name = 'runs' AND column_name = 'w_rows')",
    )
    .fetch_one(&mut *tx)
    .await?;
    if sums {
        sqlx::query(
            "UPDATE ops.runs r SET w_failed = a.failed, w_succeeded = a.succeeded, \
               w_rows = a.rows, w_inserted = a.inserted, w_updated = a.updated, \
               w_unchanged = a.unchanged \
             FROM (SELECT run_id, count(*) FILTER (WHERE status = 'failed') AS failed, \
                     count(*) FILTER (WHERE status = 'succeeded') AS succeeded, \
                     sum(rows_total) AS rows, sum(inserted) AS inserted, \
                     sum(updated) AS updated, sum(unchanged) AS unchanged \
                   FROM ops.run_windows GROUP BY run_id) a WHERE a.run_id = r.id",
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // What autovacuum would have done by the time anyone looks.
    sqlx::raw_sql("VACUUM ANALYZE ops.runs, ops.run_windows, ops.windows")
        .execute(pool)
        .await?;
    Ok(())
}

/// `reps` answers of `path`: median and p99, and the last body.
async fn time_get(
    server: &Server,
    path: &str,
    api: bool,
    reps: usize,
) -> anyhow::Result<(f64, f64, String)> {
    let mut took = Vec::with_capacity(reps);
    let mut last = String::new();
    for _ in 0..reps {
        let (body, t) = server.get(path, api).await?;
        took.push(t);
        last = body;
    }
    Ok((quantile(&took, 0.5), quantile(&took, 0.99), last))
}

/// The Runs page (HTML, as a logged-in browser gets it from a real `serve`) and the API's list
/// with `--windows` run windows (1,000,000 by default) in the database.
async fn runs_bench() -> anyhow::Result<()> {
    let total: i64 = arg("--windows", 1_000_000)?;
    let big: i64 = arg("--big", 50)?;
    let size: i64 = arg("--size", 30)?;
    let reps: usize = arg("--reps", 50)?;
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    seed_runs(&db.pool, total, big, size.max(1)).await?;
    let (runs, windows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ops.runs), (SELECT count(*) FROM ops.run_windows)",
    )
    .fetch_one(&db.pool)
    .await?;
    println!(
        "seeded {runs} runs holding {windows} run windows in {:.1} s (the newest {big} hold 3,653 each, the others {size})",
        t.elapsed().as_secs_f64()
    );
    let server = Server::start(&db).await?;
    let (_, _, body) = time_get(&server, "/api/v1/runs?limit=50", true, 1).await?;
    let page: serde_json::Value = serde_json::from_str(&body)?;
    let last = page["runs"][49]["id"]
        .as_str()
        .context("a 50th run")?
        .to_owned();
    let oldest: String = sqlx::query_scalar(
        "SELECT id::text FROM ops.runs ORDER BY created_at, id LIMIT 1 OFFSET 60",
    )
    .fetch_one(&db.pool)
    .await?;
    println!("{reps} requests each, through a real `serve` on localhost:");
    for (label, path, api) in [
        ("Runs page, first 50 (HTML)", "/runs".to_owned(), false),
        (
            "Runs page, next 50 (keyset)",
            format!("/runs?before={last}"),
            false,
        ),
        (
            "Runs page, last pages",
            format!("/runs?before={oldest}"),
            false,
        ),
        (
            "Runs page, failed only",
            "/runs?status=failed".to_owned(),
            false,
        ),
        (
            "GET /api/v1/runs (first 50)",
            "/api/v1/runs".to_owned(),
            true,
        ),
        (
            "GET /api/v1/runs?before= (next 50)",
            format!("/api/v1/runs?before={last}"),
            true,
        ),
        (
            "GET /api/v1/runs?status=failed",
            "/api/v1/runs?status=failed".to_owned(),
            true,
        ),
    ] {
        let (p50, p99, _) = time_get(&server, &path, api, reps).await?;
        println!("  {label:38} median {p50:7.1} ms  p99 {p99:7.1} ms");
    }
    drop(server);
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// How the many-companies load is shaped (`scale_bench companies --knob N`).
#[derive(Debug, Clone, Copy)]
struct Load {
    companies: usize,
    workers: usize,
    per_worker: usize,
    customers: usize,
    days: i64,
    per_minute: u32,
    per_second: u32,
    in_flight: u32,
    latency_ms: u64,
    jitter_ms: u64,
    page_size: u32,
    pool: u32,
    timeout_s: u64,
    sims_nice: u32,
}

impl Load {
    fn from_args() -> anyhow::Result<Self> {
        Ok(Self {
            companies: arg("--companies", 50)?,
            workers: arg("--workers", 4)?,
            per_worker: arg("--per-worker", 13)?,
            customers: arg("--customers", 4000)?,
            days: arg("--days", 365)?,
            per_minute: arg("--per-minute", 500)?,
            per_second: arg("--per-second", 10)?,
            in_flight: arg("--in-flight", 10)?,
            latency_ms: arg("--latency-ms", 0)?,
            jitter_ms: arg("--jitter-ms", 0)?,
            page_size: arg("--page-size", 1000)?,
            pool: arg("--pool", 8)?,
            timeout_s: arg("--timeout-s", 900)?,
            sims_nice: arg("--sims-nice", 0)?,
        })
    }

    fn first_day(&self) -> jiff::civil::Date {
        jiff::civil::date(2025, 1, 1)
    }

    fn end_day(&self) -> anyhow::Result<jiff::civil::Date> {
        Ok(self
            .first_day()
            .checked_add(jiff::Span::new().days(self.days))?)
    }
}

fn realm(k: usize) -> String {
    format!("91303577{k:08}")
}

/// One company's `qbo-sim`, in its own process, enforcing the company's limits (a 429 means a
/// budget let too much through).
struct Sim {
    _process: Process,
    api_base_url: String,
    token_url: String,
}

fn start_sim(load: &Load, k: usize) -> anyhow::Result<Sim> {
    use std::io::BufRead as _;
    let exe = binary()?.with_file_name("qbo-sim");
    anyhow::ensure!(exe.exists(), "{} is missing", exe.display());
    let limit = |v: u32| v.to_string();
    // `--sims-nice N`: the simulators stand in for Intuit's servers, whose CPU is not this
    // machine's; niced, they take what the system under test leaves.
    let mut command = if load.sims_nice > 0 {
        let mut nice = std::process::Command::new("nice");
        nice.args(["-n", &load.sims_nice.to_string()]).arg(exe);
        nice
    } else {
        std::process::Command::new(exe)
    };
    let mut child = command
        .args([
            "--port",
            "0",
            "--items",
            "0",
            "--invoices",
            "0",
            "--other-rows",
            "0",
        ])
        .args([
            "--seed",
            &k.to_string(),
            "--customers",
            &load.customers.to_string(),
        ])
        .args([
            "--from",
            &load.first_day().to_string(),
            "--to",
            &load.end_day()?.to_string(),
        ])
        .args(["--realm-id", &realm(k)])
        .args(["--requests-per-minute", &limit(load.per_minute)])
        .args(["--requests-per-second", &limit(load.per_second)])
        .args(["--max-in-flight", &limit(load.in_flight)])
        .args(["--latency-ms", &load.latency_ms.to_string()])
        .args(["--latency-jitter-ms", &load.jitter_ms.to_string()])
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("sim stdout")?;
    let process = Process(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut api, mut token) = (None, None);
    while api.is_none() || token.is_none() {
        let line = lines.next().context("qbo-sim exited early")??;
        if let Some(v) = line.strip_prefix("api_base_url=") {
            api = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("token_url=") {
            token = Some(v.to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(Sim {
        _process: process,
        api_base_url: api.unwrap_or_default(),
        token_url: token.unwrap_or_default(),
    })
}

/// Connects company `k` to its simulator: its record and its first refresh token.
async fn connect_company(pool: &PgPool, k: usize, sim: &Sim) -> anyhow::Result<()> {
    use qbo_backfill::store::auth::companies::{self, Company};
    use qbo_backfill::store::auth::secrets::SecretKey;
    use qbo_backfill::store::auth::tokens::PgTokenStore;
    let key = SecretKey::from_base64(SECRET_KEY_B64).map_err(|e| anyhow::anyhow!("{e}"))?;
    let company = Company {
        realm_id: realm(k),
        environment: qbo::Environment::Sandbox,
        client_id: "sim-client-id".to_owned(),
        client_secret: "sim-client-secret".to_owned().into(),
        api_base_url: Some(sim.api_base_url.parse()?),
        token_url: Some(sim.token_url.parse()?),
        minor_version: None,
    };
    companies::upsert(pool, &key, &company).await?;
    PgTokenStore::new(pool.clone(), key, realm(k))
        .seed_if_empty(&"sim-refresh-token-0".to_owned().into())
        .await?;
    Ok(())
}

/// `load.workers` `worker` processes with the companies' budgets.
fn start_workers(db: &TestDb, load: &Load) -> anyhow::Result<Vec<Process>> {
    let env = [
        ("QBO_REQUESTS_PER_MINUTE", load.per_minute.to_string()),
        ("QBO_REQUESTS_PER_SECOND", load.per_second.to_string()),
        ("QBO_MAX_IN_FLIGHT", load.in_flight.to_string()),
        ("QBO_PAGE_SIZE", load.page_size.to_string()),
        ("QBO_BACKFILL_DB_POOL", load.pool.to_string()),
        ("QBO_BACKFILL_POLL_MS", "200".to_owned()),
        ("QBO_INITIAL_BACKOFF_MS", "50".to_owned()),
    ];
    (0..load.workers)
        .map(|_| {
            spawn(
                &db.url,
                &["worker", "--workers", &load.per_worker.to_string()],
                &env,
            )
        })
        .collect()
}

/// API latencies sampled while the companies load: the runs list, and one run with its windows.
#[derive(Default)]
struct Samples {
    list: Vec<Duration>,
    one: Vec<Duration>,
}

/// Samples the API (one request at a time, every 100 ms) until `done`.
async fn sample_api(
    server: &Server,
    runs: &[String],
    done: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let mut i = 0;
    while !done.is_cancelled() {
        let (_, t) = server.get("/api/v1/runs", true).await?;
        samples.list.push(t);
        let (_, t) = server
            .get(&format!("/api/v1/runs/{}", runs[i % runs.len()]), true)
            .await?;
        samples.one.push(t);
        i += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = done.cancelled() => {}
        }
    }
    Ok(samples)
}

/// Waits until every run has ended (or the timeout passes).
async fn wait_for_runs(pool: &PgPool, load: &Load) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(load.timeout_s);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ops.runs WHERE status IN ('queued', 'running')",
        )
        .fetch_one(pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{open} runs still open after the timeout"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One run per company through `POST /api/v1/runs`, all at once; their ids.
async fn enqueue_all(server: &Server, load: &Load) -> anyhow::Result<Vec<String>> {
    let to = load.end_day()?.to_string();
    let posts = (0..load.companies).map(|k| {
        let body = serde_json::json!({
            "pipeline": "qb_customers_backfill",
            "fecha_inicio": load.first_day().to_string(),
            "fecha_fin": to,
            "realm_id": realm(k),
        });
        async move {
            let resp = server
                .http
                .post(format!("{}/api/v1/runs", server.base))
                .bearer_auth(&server.token)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 202, "POST /api/v1/runs: {}", resp.status());
            let run: serde_json::Value = resp.json().await?;
            Ok(run["id"].as_str().context("run id")?.to_owned())
        }
    });
    futures_util::future::join_all(posts)
        .await
        .into_iter()
        .collect()
}

/// 50 companies (one `qbo-sim` each), each with its own request budget in PostgreSQL, loaded by
/// 4 `worker` processes on one PostgreSQL, the API sampled meanwhile.
async fn companies_bench() -> anyhow::Result<()> {
    let load = Load::from_args()?;
    println!("{load:?}");
    let db = TestDb::new().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sims = Vec::new();
    for k in 0..load.companies {
        let sim = start_sim(&load, k)?;
        connect_company(&db.pool, k, &sim).await?;
        sims.push(sim);
    }
    let server = Server::start(&db).await?;
    let workers = start_workers(&db, &load)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let runs = enqueue_all(&server, &load).await?;
    println!(
        "enqueued {} runs through the API in {:.2} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    let done = tokio_util::sync::CancellationToken::new();
    let (samples, waited) = tokio::join!(sample_api(&server, &runs, &done), async {
        let waited = wait_for_runs(&db.pool, &load).await;
        done.cancel();
        waited
    });
    let wall = started.elapsed();
    waited?;
    let samples = samples?;
    drop(workers);
    report_companies(&db.pool, &load, wall, &samples).await?;
    drop((server, sims));
    db.cleanup().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A company's run as it ended.
#[derive(sqlx::FromRow)]
struct Ended {
    realm_id: String,
    status: String,
    rows: i64,
    requests: i64,
    throttled: i64,
    wait_s: f64,
    run_s: f64,
    done_s: f64,
    peak_minute: i64,
    peak_second: i64,
}

fn spread(label: &str, mut v: Vec<f64>, unit: &str) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {label:34} min {:8.2}{unit}  median {:8.2}{unit}  max {:8.2}{unit}",
        at(0.0),
        at(0.5),
        at(1.0)
    );
}

async fn report_companies(
    pool: &PgPool,
    load: &Load,
    wall: Duration,
    samples: &Samples,
) -> anyhow::Result<()> {
    // Requests each company started in its busiest rolling minute (every slot is kept five
    // minutes after it ended; a load longer than that is counted by its last five minutes).
    let ended: Vec<Ended> = sqlx::query_as(
        "SELECT r.realm_id, r.status, coalesce(r.w_rows, 0) AS rows, r.requests, r.throttled, \
           extract(epoch FROM r.started_at - r.created_at)::float8 AS wait_s, \
           extract(epoch FROM r.finished_at - r.started_at)::float8 AS run_s, \
           extract(epoch FROM r.finished_at - first.at)::float8 AS done_s, \
           coalesce((SELECT max(c) FROM (SELECT count(*) OVER (ORDER BY s.started_at \
               RANGE BETWEEN interval '60 seconds' PRECEDING AND CURRENT ROW) AS c \
             FROM ops.budget_slots s WHERE s.realm_id = r.realm_id) m), 0) AS peak_minute, \
           coalesce((SELECT max(c) FROM (SELECT count(*) OVER (ORDER BY s.started_at \
               RANGE BETWEEN interval '1 second' PRECEDING AND CURRENT ROW) AS c \
             FROM ops.budget_slots s WHERE s.realm_id = r.realm_id) m), 0) AS peak_second \
         FROM ops.runs r, (SELECT min(created_at) AS at FROM ops.runs) first \
         ORDER BY r.realm_id",
    )
    .fetch_all(pool)
    .await?;
    let busy_s: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM ops.runs",
    )
    .fetch_one(pool)
    .await?;
    let rows: i64 = ended.iter().map(|e| e.rows).sum();
    let requests: i64 = ended.iter().map(|e| e.requests).sum();
    let throttled: i64 = ended.iter().map(|e| e.throttled).sum();
    let failed = ended.iter().filter(|e| e.status != "succeeded").count();
    println!(
        "{} companies, {} workers x {} runs: {rows} rows in {:.1} s from the first claim to the last end = {:.0} rows/s ({:.1} s from the first POST); {requests} requests, {throttled} throttled (429), {failed} runs not succeeded",
        ended.len(),
        load.workers,
        load.per_worker,
        busy_s,
        rows as f64 / busy_s.max(1e-3),
        wall.as_secs_f64(),
    );
    // The rate a budget sustains: the per-minute rule, or the per-second one if tighter.
    let sustained = (f64::from(load.per_minute) / 60.0).min(f64::from(load.per_second));
    spread(
        "requests/s over its run / budget",
        ended
            .iter()
            .map(|e| 100.0 * e.requests as f64 / e.run_s.max(1e-3) / sustained)
            .collect(),
        " %",
    );
    spread(
        "busiest rolling minute / limit",
        ended
            .iter()
            .map(|e| 100.0 * e.peak_minute as f64 / f64::from(load.per_minute))
            .collect(),
        " %",
    );
    spread(
        "busiest rolling second / limit",
        ended
            .iter()
            .map(|e| 100.0 * e.peak_second as f64 / f64::from(load.per_second))
            .collect(),
        " %",
    );
    spread(
        "requests per company",
        ended.iter().map(|e| e.requests as f64).collect(),
        "  ",
    );
    spread(
        "wait in the queue",
        ended.iter().map(|e| e.wait_s).collect(),
        " s",
    );
    spread("run time", ended.iter().map(|e| e.run_s).collect(), " s");
    spread(
        "done after the first enqueue",
        ended.iter().map(|e| e.done_s).collect(),
        " s",
    );
    let over = ended
        .iter()
        .filter(|e| {
            e.peak_minute > i64::from(load.per_minute)
                || e.peak_second > i64::from(load.per_second)
                || e.throttled > 0
        })
        .count();
    println!(
        "  companies over their budget (busiest minute above the limit, or a 429): {over}; realms {}..{}",
        ended.first().map_or("", |e| e.realm_id.as_str()),
        ended.last().map_or("", |e| e.realm_id.as_str())
    );
    for (label, v) in [
        ("GET /api/v1/runs", &samples.list),
        ("GET /api/v1/runs/{id}", &samples.one),
    ] {
        println!(
            "  {label:34} {} samples during the load: median {:6.1} ms  p99 {:6.1} ms  max {:6.1} ms",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.99),
            quantile(v, 1.0)
        );
    }
    Ok(())
}
