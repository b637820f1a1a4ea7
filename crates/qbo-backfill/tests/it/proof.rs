//! The proof suite (issue "Nothing lost, no one let in"): six opt-in scenarios that drive the
//! real `qbo-backfill` binary (CLI, `worker`, `serve`) against `qbo-sim` and PostgreSQL and prove
//! that nothing is lost (random SIGKILLs, database restarts and terminated backends, a soak of API
//! faults, 50 triggers due at once on two schedulers and four workers) and no one is let in
//! (a table of hostile inputs, no secret in any output).
//!
//! They are `#[ignore]`d, so `cargo nextest run --workspace` skips them; `scripts/chaos
//! [scenario]` runs them one at a time and prints each scenario's one-line figures, also written to
//! `target/proof/figures/`. Every process's stdout and stderr, every API answer and every HTML
//! page goes to `target/proof/<scenario>/`; every secret value a scenario used goes to
//! `target/proof/secrets/<scenario>.txt`, which the last scenario (`s6_secrets`) searches all of
//! the others' outputs for. docs/RELIABILITY.md explains what each scenario proves.
//!
//! Instruments the tests add to each database (schema `proof`): row triggers on `ops.windows`
//! and statement triggers on the raw tables record, per transaction, which process
//! (`application_name`, one per spawned process) claimed a window, committed a page of it, or
//! wrote raw rows. From that history the suite checks that every committed raw write was fenced
//! by the window's holder, and that a `running` window was only ever taken over from a process
//! that had been killed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use qbo_backfill::store::testdb::TestDb;
use qbo_sim::{FaultConfig, Rotation, SimConfig, SimLimits, SimState};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::{World, stderr, stdout};

const CUSTOMERS: &str = "qb_customers_backfill";
const ITEMS: &str = "qb_items_backfill";
const INVOICES: &str = "qb_invoices_backfill";
/// (pipeline, raw table, simulator entity).
const PIPELINES: [(&str, &str, &str); 3] = [
    (CUSTOMERS, "raw.qb_customers", "Customer"),
    (ITEMS, "raw.qb_items", "Item"),
    (INVOICES, "raw.qb_invoices", "Invoice"),
];
const ADMIN_PASSWORD: &str = "Pr00f-Adm1n-Passw0rd-7c1d";

// ----- small things --------------------------------------------------------------------------

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A seeded xorshift64* generator: kill moments are reproducible with `QBO_PROOF_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = std::env::var("QBO_PROOF_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Self((seed ^ 0x9E37_79B9_7F4A_7C15) | 1), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn today_utc() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

// ----- artifacts: outputs, secrets, figures ---------------------------------------------------

/// Where the suite writes: `QBO_PROOF_DIR`, or `target/proof` of this workspace.
fn proof_root() -> PathBuf {
    std::env::var_os("QBO_PROOF_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/proof"),
        PathBuf::from,
    )
}

/// One scenario's outputs (`target/proof/<scenario>/`), the secret values it used
/// (`target/proof/secrets/<scenario>.txt`) and its figures (`target/proof/figures/`).
struct Artifacts {
    scenario: &'static str,
    dir: PathBuf,
    secrets_file: PathBuf,
    secrets: Mutex<BTreeSet<String>>,
    n: AtomicUsize,
    started: Instant,
}

impl Artifacts {
    fn new(scenario: &'static str) -> Self {
        let root = proof_root();
        let dir = root.join(scenario);
        let _ = std::fs::remove_dir_all(&dir);
        for d in [&dir, &root.join("secrets"), &root.join("figures")] {
            std::fs::create_dir_all(d).expect("proof directory");
        }
        let secrets_file = root.join("secrets").join(format!("{scenario}.txt"));
        std::fs::write(&secrets_file, "").expect("secrets file");
        println!(
            "[{scenario}] started {}; outputs in {}",
            today_utc(),
            dir.display()
        );
        Self {
            scenario,
            dir,
            secrets_file,
            secrets: Mutex::new(BTreeSet::new()),
            n: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    /// A new numbered file name in the scenario's directory.
    fn path(&self, name: &str) -> PathBuf {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        self.dir.join(format!("{n:04}-{clean}"))
    }

    fn save(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), bytes).expect("write artifact");
    }

    /// Remembers a secret value: no output of any scenario may contain it.
    fn secret(&self, value: &str) {
        let value = value.trim();
        if value.len() < 8 {
            return;
        }
        let mut secrets = self.secrets.lock().expect("secrets");
        if secrets.insert(value.to_owned()) {
            let mut all: String = secrets.iter().map(|s| format!("{s}\n")).collect();
            all.shrink_to_fit();
            std::fs::write(&self.secrets_file, all).expect("secrets file");
        }
    }

    fn secret_count(&self) -> usize {
        self.secrets.lock().expect("secrets").len()
    }

    /// Sends a command's stdout and stderr to files of this scenario.
    fn log_to(&self, cmd: &mut tokio::process::Command, name: &str) {
        let base = self.path(name);
        let out = std::fs::File::create(base.with_extension("stdout")).expect("stdout file");
        let err = std::fs::File::create(base.with_extension("stderr")).expect("stderr file");
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    }

    fn note(&self, text: &str) {
        println!("[{}] {text}", self.scenario);
    }

    /// The scenario's one-line figures, printed and kept in `target/proof/figures/`.
    fn figure(&self, text: &str) {
        let line = format!(
            "{} ({} on {}, {})",
            text,
            secs(self.started.elapsed()),
            today_utc(),
            std::env::var("QBO_PROOF_PG").unwrap_or_else(|_| "private PostgreSQL".to_owned())
        );
        let line = line.replace(", private PostgreSQL)", ")");
        println!("FIGURE {}: {line}", self.scenario);
        let path = proof_root()
            .join("figures")
            .join(format!("{}.txt", self.scenario));
        std::fs::write(path, format!("{line}\n")).expect("figure file");
    }
}

// ----- worlds, processes ---------------------------------------------------------------------

/// `url` with an `application_name` naming the process that uses it (what the audit records).
fn tagged(url: &str, tag: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name=proof-{tag}")
}

/// A world (fresh database and simulator) whose token endpoint is reached through a
/// [`TokenTap`], on the default server or on `server`.
async fn proof_world(
    art: &Artifacts,
    config: SimConfig,
    server: Option<&str>,
) -> (World, TokenTap) {
    let mut world = match server {
        None => World::new(config).await,
        Some(url) => {
            let db = TestDb::on_server(url).await.expect("test database");
            let sim = qbo_sim::serve(SimState::new(config.clone()), ([127, 0, 0, 1], 0).into())
                .await
                .expect("simulator");
            World {
                db,
                sim,
                config,
                secret_key_b64: base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
                extra_env: Vec::new(),
            }
        }
    };
    let tap = TokenTap::start(&world.sim.token_url()).await;
    world.extra_env.extend([
        ("QBO_TOKEN_URL".to_owned(), tap.url.clone()),
        (
            "QBO_BACKFILL_ADMIN_PASSWORD".to_owned(),
            ADMIN_PASSWORD.to_owned(),
        ),
    ]);
    remember_world_secrets(art, &world, &tap);
    (world, tap)
}

fn remember_world_secrets(art: &Artifacts, world: &World, tap: &TokenTap) {
    for s in world.secrets() {
        art.secret(&s);
    }
    art.secret(ADMIN_PASSWORD);
    art.secret(&world.sim.state().current_refresh_token());
    for t in tap.issued_tokens() {
        art.secret(&t);
    }
}

/// The binary with the world's environment, its output to the scenario's files, and a database
/// URL that names it (`proof-<tag>`).
fn command(world: &World, art: &Artifacts, tag: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = world.command(args);
    cmd.env("DATABASE_URL", tagged(&world.db.url, tag));
    art.log_to(&mut cmd, tag);
    cmd
}

/// Runs the binary to the end (at most `limit`), keeping its output as an artifact too.
async fn run_to_end(
    world: &World,
    art: &Artifacts,
    tag: &str,
    args: &[&str],
    limit: Duration,
) -> Output {
    let mut cmd = world.command(args);
    cmd.env("DATABASE_URL", tagged(&world.db.url, tag))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{tag}` did not finish within {}", secs(limit)))
        .expect("the binary runs");
    art.save(&format!("{tag}.stdout"), &out.stdout);
    art.save(&format!("{tag}.stderr"), &out.stderr);
    out
}

/// `secrets set NAME` with `value` on stdin.
async fn secrets_set(world: &World, art: &Artifacts, tag: &str, name: &str, value: &[u8]) -> Output {
    let mut cmd = world.command(&["secrets", "set", name]);
    cmd.env("DATABASE_URL", tagged(&world.db.url, tag))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(value).await;
    drop(stdin);
    let out = child.wait_with_output().await.expect("output");
    art.save(&format!("{tag}.stdout"), &out.stdout);
    art.save(&format!("{tag}.stderr"), &out.stderr);
    out
}

/// Waits up to `delay` for `child` to exit; otherwise SIGKILLs it. Whether it had exited first.
async fn kill_after(child: &mut tokio::process::Child, delay: Duration) -> bool {
    tokio::select! {
        _ = child.wait() => true,
        () = tokio::time::sleep(delay) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            false
        }
    }
}

async fn stop(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A query answering one `bigint`, retried while the server comes back (restarts, terminated
/// backends).
async fn count(pool: &PgPool, sql: &str) -> i64 {
    let mut last = String::new();
    for _ in 0..120 {
        match sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(pool)
            .await
        {
            Ok(n) => return n,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("`{sql}` kept failing: {last}");
}

async fn pages_written(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(pages), 0)::bigint FROM ops.windows")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Waits until at least `pages` pages were written (or `limit` passed).
async fn wait_pages(pool: &PgPool, pages: i64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pages_written(pool).await >= pages {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The status of run `id` once it is over (polled in the database, at most `limit`).
async fn wait_run(pool: &PgPool, id: Uuid, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
        if let Some(s) = &status
            && !matches!(s.as_str(), "queued" | "running")
        {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "run {id} still {status:?} after {}",
            secs(limit)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(rows, checksum)` of a raw table: an md5 over every row's id, window and payload, by id.
async fn table_sum(pool: &PgPool, table: &str) -> (i64, String) {
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(md5(id || ':' || \
         extract(epoch FROM extract_window_start_utc)::bigint::text || ':' || payload::text), '' \
         ORDER BY id)), '') FROM {table}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .expect("checksum")
}

/// The simulator's ids of `entity` in `[from, to)` are exactly the table's, and every payload
/// is the simulator's entity.
async fn assert_exact(world: &World, table: &str, entity: &str, from: &str, to: &str) -> usize {
    let expected = world.expected_ids(entity, from, to);
    assert_eq!(
        world.loaded_ids(table).await,
        expected,
        "{table} is not exactly the simulator's {entity} rows of [{from}, {to})"
    );
    world.assert_payloads_match(table, entity).await;
    expected.len()
}

async fn runs_left_open(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM ops.runs WHERE status IN ('queued', 'running')",
    )
    .await
}

// ----- the audit: who claimed, who committed pages, who wrote raw rows ------------------------

const AUDIT_SQL: &str = r"
CREATE SCHEMA proof;
CREATE TABLE proof.win_audit (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid         bigint      NOT NULL,
    at           timestamptz NOT NULL,
    app          text        NOT NULL,
    pipeline     text        NOT NULL,
    window_start timestamptz NOT NULL,
    old_exec     uuid,
    new_exec     uuid,
    old_status   text,
    new_status   text        NOT NULL,
    old_pages    integer,
    new_pages    integer     NOT NULL,
    rows_total   bigint      NOT NULL
);
CREATE FUNCTION proof.win_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO proof.win_audit (txid, at, app, pipeline, window_start, old_exec, new_exec,
                                     old_status, new_status, old_pages, new_pages, rows_total)
        VALUES (txid_current(), clock_timestamp(), current_setting('application_name'),
                NEW.pipeline, NEW.window_start, OLD.execution_id, NEW.execution_id, OLD.status,
                NEW.status, OLD.pages, NEW.pages, NEW.rows_total);
    ELSE
        INSERT INTO proof.win_audit (txid, at, app, pipeline, window_start, new_exec, new_status,
                                     new_pages, rows_total)
        VALUES (txid_current(), clock_timestamp(), current_setting('application_name'),
                NEW.pipeline, NEW.window_start, NEW.execution_id, NEW.status, NEW.pages,
                NEW.rows_total);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER proof_win_audit AFTER INSERT OR UPDATE ON ops.windows
    FOR EACH ROW EXECUTE FUNCTION proof.win_audit();
CREATE TABLE proof.raw_audit (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid         bigint      NOT NULL,
    at           timestamptz NOT NULL,
    app          text        NOT NULL,
    tbl          text        NOT NULL,
    op           text        NOT NULL,
    window_start timestamptz NOT NULL,
    n            bigint      NOT NULL
);
CREATE FUNCTION proof.raw_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proof.raw_audit (txid, at, app, tbl, op, window_start, n)
    SELECT txid_current(), clock_timestamp(), current_setting('application_name'), TG_TABLE_NAME,
           TG_OP, extract_window_start_utc, count(*)
    FROM changed GROUP BY extract_window_start_utc;
    RETURN NULL;
END
$$;
CREATE TRIGGER proof_raw_ins AFTER INSERT ON raw.qb_customers REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TRIGGER proof_raw_upd AFTER UPDATE ON raw.qb_customers REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TRIGGER proof_raw_ins AFTER INSERT ON raw.qb_items REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TRIGGER proof_raw_upd AFTER UPDATE ON raw.qb_items REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TRIGGER proof_raw_ins AFTER INSERT ON raw.qb_invoices REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TRIGGER proof_raw_upd AFTER UPDATE ON raw.qb_invoices REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION proof.raw_audit();
CREATE TABLE proof.kills (app text PRIMARY KEY, at timestamptz NOT NULL);
";

async fn install_audit(pool: &PgPool) {
    sqlx::raw_sql(AUDIT_SQL)
        .execute(pool)
        .await
        .expect("audit triggers");
}

/// Records that the process tagged `tag` was SIGKILLed (by the database's clock).
async fn record_kill(pool: &PgPool, tag: &str) {
    for _ in 0..40 {
        let done = sqlx::query(
            "INSERT INTO proof.kills (app, at) VALUES ($1, clock_timestamp()) ON CONFLICT DO NOTHING",
        )
        .bind(format!("proof-{tag}"))
        .execute(pool)
        .await;
        if done.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cannot record the kill of {tag}");
}

/// What the audit saw, and the violations of its rules.
#[derive(Debug, Default, Clone, Copy)]
struct Audit {
    /// Committed transactions that wrote raw rows (per window).
    raw_writes: i64,
    /// Committed page transactions (a window's page counter moved by its holder).
    page_commits: i64,
    /// Window claims (a window became `running` for an execution).
    claims: i64,
    /// Claims of a window that was `running` for another execution.
    takeovers: i64,
    /// Raw writes without a page commit of their window, by its holder, in the same transaction.
    unfenced: i64,
    /// Page commits by another process than the one that claimed the window.
    foreign_writers: i64,
    /// Takeovers of a window whose holder had not been killed (or not yet).
    live_takeovers: i64,
    /// Succeeded windows whose row counter differs from the rows in the table.
    counter_mismatches: i64,
}

impl Audit {
    fn violations(&self) -> i64 {
        self.unfenced + self.foreign_writers + self.live_takeovers + self.counter_mismatches
    }

    fn short(&self) -> String {
        format!(
            "raw_write_txns={} page_commits={} claims={} takeovers={} unfenced={} \
             foreign_writers={} live_takeovers={} counter_mismatches={}",
            self.raw_writes,
            self.page_commits,
            self.claims,
            self.takeovers,
            self.unfenced,
            self.foreign_writers,
            self.live_takeovers,
            self.counter_mismatches
        )
    }

    fn add(&mut self, o: &Audit) {
        self.raw_writes += o.raw_writes;
        self.page_commits += o.page_commits;
        self.claims += o.claims;
        self.takeovers += o.takeovers;
        self.unfenced += o.unfenced;
        self.foreign_writers += o.foreign_writers;
        self.live_takeovers += o.live_takeovers;
        self.counter_mismatches += o.counter_mismatches;
    }
}

async fn audit(pool: &PgPool) -> Audit {
    const PAGE: &str = "w.old_exec = w.new_exec AND w.new_pages = w.old_pages + 1 \
                        AND w.old_status = 'running' AND w.new_status = 'running'";
    const CLAIM: &str = "w.new_status = 'running' AND (w.old_status IS DISTINCT FROM 'running' \
                         OR w.old_exec IS DISTINCT FROM w.new_exec)";
    let pipeline_of = "CASE r.tbl WHEN 'qb_customers' THEN 'qb_customers_backfill' \
                       WHEN 'qb_items' THEN 'qb_items_backfill' ELSE 'qb_invoices_backfill' END";
    let q = |sql: String| async move { count(pool, &sql).await };
    Audit {
        raw_writes: q(
            "SELECT count(*) FROM (SELECT DISTINCT txid, tbl, window_start FROM proof.raw_audit) r"
                .to_owned(),
        )
        .await,
        page_commits: q(format!("SELECT count(*) FROM proof.win_audit w WHERE {PAGE}")).await,
        claims: q(format!("SELECT count(*) FROM proof.win_audit w WHERE {CLAIM}")).await,
        takeovers: q(
            "SELECT count(*) FROM proof.win_audit w WHERE w.new_status = 'running' \
             AND w.old_status = 'running' AND w.old_exec IS DISTINCT FROM w.new_exec"
                .to_owned(),
        )
        .await,
        unfenced: q(format!(
            "SELECT count(*) FROM (SELECT DISTINCT txid, tbl, window_start FROM proof.raw_audit) r \
             WHERE NOT EXISTS (SELECT 1 FROM proof.win_audit w WHERE w.txid = r.txid \
               AND w.window_start = r.window_start AND w.pipeline = {pipeline_of} AND {PAGE})"
        ))
        .await,
        foreign_writers: q(format!(
            "WITH claims AS (SELECT DISTINCT w.new_exec AS exec, w.app FROM proof.win_audit w \
                             WHERE {CLAIM}) \
             SELECT count(*) FROM proof.win_audit w WHERE {PAGE} \
               AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.exec = w.new_exec AND c.app = w.app)"
        ))
        .await,
        live_takeovers: q(format!(
            "WITH holders AS (SELECT DISTINCT w.new_exec AS exec, w.app FROM proof.win_audit w \
                              WHERE {CLAIM}) \
             SELECT count(*) FROM proof.win_audit w \
             LEFT JOIN holders h ON h.exec = w.old_exec \
             LEFT JOIN proof.kills k ON k.app = h.app \
             WHERE w.new_status = 'running' AND w.old_status = 'running' \
               AND w.old_exec IS DISTINCT FROM w.new_exec AND (k.at IS NULL OR w.at < k.at)"
        ))
        .await,
        counter_mismatches: q(
            "SELECT count(*) FROM ops.windows w WHERE w.status = 'succeeded' AND w.rows_total <> \
             CASE w.pipeline \
               WHEN 'qb_customers_backfill' THEN (SELECT count(*) FROM raw.qb_customers r \
                 WHERE r.realm_id = w.realm_id AND r.extract_window_start_utc = w.window_start) \
               WHEN 'qb_items_backfill' THEN (SELECT count(*) FROM raw.qb_items r \
                 WHERE r.realm_id = w.realm_id AND r.extract_window_start_utc = w.window_start) \
               ELSE (SELECT count(*) FROM raw.qb_invoices r \
                 WHERE r.realm_id = w.realm_id AND r.extract_window_start_utc = w.window_start) END"
                .to_owned(),
        )
        .await,
    }
}

/// The audit of `pool` with no violation (the history goes to the artifacts when there is one).
async fn assert_audit_clean(art: &Artifacts, pool: &PgPool, what: &str) -> Audit {
    let a = audit(pool).await;
    if a.violations() > 0 {
        let rows: Vec<(i64, i64, String, String, String, Option<String>, String, Option<i32>, i32)> =
            sqlx::query_as(
                "SELECT seq, txid, app, window_start::text, coalesce(old_exec::text, '-'), \
                 old_status, new_status, old_pages, new_pages FROM proof.win_audit ORDER BY seq",
            )
            .fetch_all(pool)
            .await
            .unwrap_or_default();
        let text: String = rows.iter().map(|r| format!("{r:?}\n")).collect();
        art.save(&format!("{what}-window-history.txt"), text);
    }
    assert_eq!(a.violations(), 0, "{what}: audit violations: {}", a.short());
    a
}

// ----- the token tap: every exchange with the token endpoint ----------------------------------

/// One request to the token endpoint and what came back.
#[derive(Debug, Clone)]
struct Exchange {
    started: Instant,
    ended: Instant,
    grant_type: String,
    /// The refresh token (or authorization code) presented.
    presented: String,
    /// `None`: the connection closed without an answer (a lost answer).
    status: Option<u16>,
    body: String,
}

impl Exchange {
    fn is_refresh(&self) -> bool {
        self.grant_type == "refresh_token"
    }

    fn invalid_grant(&self) -> bool {
        self.status == Some(400) && self.body.contains("invalid_grant")
    }

    fn issued_refresh_token(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v["refresh_token"].as_str().map(str::to_owned)
    }
}

/// A transparent relay in front of the simulator's token endpoint that records every exchange
/// (the tokens issued, the ones presented, lost answers). A connection the simulator closes
/// without answering is closed without answering here too.
struct TokenTap {
    url: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct HttpMessage {
    raw: Vec<u8>,
    body: Vec<u8>,
    status: u16,
    close: bool,
}

async fn read_http(r: &mut BufReader<TcpStream>, request: bool) -> std::io::Result<Option<HttpMessage>> {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let status = if request {
        0
    } else {
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            raw.extend_from_slice(&line);
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("0"),
                16,
            )
            .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t).await?;
                    raw.extend_from_slice(&t);
                    if t == b"\r\n" || t.is_empty() {
                        break;
                    }
                }
                break;
            }
            r.read_exact(&mut chunk).await?;
            raw.extend_from_slice(&chunk);
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        let mut b = vec![0; n];
        r.read_exact(&mut b).await?;
        raw.extend_from_slice(&b);
        body = b;
    } else if !request {
        r.read_to_end(&mut body).await?;
        raw.extend_from_slice(&body);
        close = true;
    }
    Ok(Some(HttpMessage {
        raw,
        body,
        status,
        close,
    }))
}

fn form_value(body: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            url::form_urlencoded::parse(format!("x={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

async fn relay(conn: TcpStream, upstream: &str, log: &Mutex<Vec<Exchange>>) -> std::io::Result<()> {
    let mut client = BufReader::new(conn);
    loop {
        let Some(request) = read_http(&mut client, true).await? else {
            return Ok(());
        };
        let started = Instant::now();
        let answer = async {
            let mut up = BufReader::new(TcpStream::connect(upstream).await?);
            up.get_mut().write_all(&request.raw).await?;
            read_http(&mut up, false).await
        }
        .await
        .ok()
        .flatten();
        let grant_type = form_value(&request.body, "grant_type");
        let presented = match grant_type.as_str() {
            "refresh_token" => form_value(&request.body, "refresh_token"),
            _ => form_value(&request.body, "code"),
        };
        log.lock().expect("tap log").push(Exchange {
            started,
            ended: Instant::now(),
            grant_type,
            presented,
            status: answer.as_ref().map(|a| a.status),
            body: answer
                .as_ref()
                .map(|a| String::from_utf8_lossy(&a.body).into_owned())
                .unwrap_or_default(),
        });
        match answer {
            None => return Ok(()),
            Some(a) => {
                client.get_mut().write_all(&a.raw).await?;
                if a.close {
                    return Ok(());
                }
            }
        }
    }
}

/// What the token exchanges show.
#[derive(Debug, Default)]
struct TokenFigures {
    requests: usize,
    refreshes: usize,
    answered_ok: usize,
    lost_answers: usize,
    invalid_grant: usize,
    /// `invalid_grant` for a token whose rotation answer had been lost.
    invalid_grant_after_lost_answer: usize,
    /// Any other `invalid_grant`: a token spent twice, or used after its successor arrived.
    invalid_grant_ours: usize,
    /// Refreshes presenting a token a previous answered refresh had already replaced.
    stale_presentations: usize,
    /// Most refreshes in flight at once.
    max_concurrent_refreshes: usize,
}

impl TokenTap {
    async fn start(token_url: &str) -> Self {
        let parsed = url::Url::parse(token_url).expect("token url");
        let upstream = format!(
            "{}:{}",
            parsed.host_str().expect("host"),
            parsed.port().expect("port")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind tap");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let upstream = upstream.clone();
                    let log = log.clone();
                    tokio::spawn(async move {
                        let _ = relay(conn, &upstream, &log).await;
                    });
                }
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}{}", parsed.path()),
            log,
            task,
        }
    }

    fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("tap log").clone()
    }

    /// Every access and refresh token the endpoint handed out (answers that arrived).
    fn issued_tokens(&self) -> Vec<String> {
        self.exchanges()
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(&e.body).ok())
            .flat_map(|v| {
                ["access_token", "refresh_token"]
                    .iter()
                    .filter_map(|k| v[*k].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn figures(&self) -> TokenFigures {
        let all = self.exchanges();
        let refreshes: Vec<&Exchange> = all.iter().filter(|e| e.is_refresh()).collect();
        let mut f = TokenFigures {
            requests: all.len(),
            refreshes: refreshes.len(),
            ..TokenFigures::default()
        };
        for (i, e) in refreshes.iter().enumerate() {
            let earlier = &refreshes[..i];
            match e.status {
                None => f.lost_answers += 1,
                Some(200) => f.answered_ok += 1,
                Some(_) => {}
            }
            let replaced_by_answer = earlier.iter().any(|p| {
                p.presented == e.presented
                    && p.status == Some(200)
                    && p.issued_refresh_token().is_some_and(|t| t != e.presented)
            });
            if replaced_by_answer {
                f.stale_presentations += 1;
            }
            if e.invalid_grant() {
                f.invalid_grant += 1;
                let lost_before = earlier
                    .iter()
                    .any(|p| p.presented == e.presented && p.status.is_none());
                if lost_before && !replaced_by_answer {
                    f.invalid_grant_after_lost_answer += 1;
                } else {
                    f.invalid_grant_ours += 1;
                }
            }
        }
        for e in &refreshes {
            let overlapping = refreshes
                .iter()
                .filter(|o| o.started <= e.started && o.ended > e.started)
                .count();
            f.max_concurrent_refreshes = f.max_concurrent_refreshes.max(overlapping);
        }
        f
    }
}

// ----- the server and its clients -------------------------------------------------------------

/// Creates an API token with the CLI; its one-time display is kept out of the artifacts.
async fn api_token(world: &World, art: &Artifacts) -> String {
    let mut cmd = world.command(&["api-tokens", "create", "proof"]);
    cmd.env("DATABASE_URL", tagged(&world.db.url, "api-tokens"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().await.expect("api-tokens create");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text.lines().last().expect("token line").trim().to_owned();
    assert!(token.starts_with("qbt_"), "not a token line");
    art.secret(&token);
    art.save(
        "api-tokens-create.stdout",
        text.replace(&token, "<the token: shown here once, by design>"),
    );
    art.save("api-tokens-create.stderr", &out.stderr);
    token
}

/// A `serve` process and an API client for it.
struct Server {
    base: String,
    token: String,
    http: reqwest::Client,
    child: tokio::process::Child,
}

impl Server {
    async fn start(world: &World, art: &Artifacts, tag: &str, workers: usize, token: &str) -> Self {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let workers = workers.to_string();
        let child = command(
            world,
            art,
            tag,
            &[
                "serve",
                "--bind",
                &bind,
                "--workers",
                &workers,
                "--poll-ms",
                "100",
            ],
        )
        .spawn()
        .expect("serve");
        let base = format!("http://{bind}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "{tag} never answered /healthz");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            base,
            token: token.to_owned(),
            http,
            child,
        }
    }

    /// A JSON API call; the answer is kept as an artifact.
    async fn call(
        &self,
        art: &Artifacts,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        art.save("api-answer.txt", format!("{method} {path}\n{status}\n{text}"));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A logged-in browser-like client of the web UI (cookies and CSRF by hand, as browser.rs does).
struct Web {
    base: String,
    http: reqwest::Client,
    login_cookie: String,
    login_csrf: String,
    session: String,
    csrf: String,
}

fn csrf_of(html: &str) -> Option<String> {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_owned)
}

fn first_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

impl Web {
    async fn login(base: &str, art: &Artifacts) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let page = http
            .get(format!("{base}/login"))
            .send()
            .await
            .expect("login page");
        let login_cookie = first_cookie(&page, "qbo_login_csrf").expect("login cookie");
        let html = page.text().await.expect("html");
        art.save("web-login.html", &html);
        let login_csrf = csrf_of(&html).expect("login csrf");
        let r = http
            .post(format!("{base}/login"))
            .header("cookie", &login_cookie)
            .form(&[
                ("csrf", login_csrf.as_str()),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 303, "login refused");
        let session = first_cookie(&r, "qbo_session").expect("session cookie");
        let home = http
            .get(format!("{base}/"))
            .header("cookie", &session)
            .send()
            .await
            .expect("home")
            .text()
            .await
            .expect("html");
        art.save("web-home.html", &home);
        let csrf = csrf_of(&home).expect("session csrf");
        Self {
            base: base.to_owned(),
            http,
            login_cookie,
            login_csrf,
            session,
            csrf,
        }
    }

    /// GET a page with the session; `(status, location, body)`, the body kept as an artifact.
    async fn get(&self, art: &Artifacts, path: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.session)
            .send()
            .await
            .expect("get");
        Self::answer(art, "GET", path, r).await
    }

    /// POST a form; the session's CSRF token is added unless `csrf` says otherwise.
    async fn post(
        &self,
        art: &Artifacts,
        path: &str,
        fields: &[(&str, &str)],
        csrf: Option<&str>,
    ) -> (u16, String, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(token) = csrf.or(Some(self.csrf.as_str())).filter(|t| *t != "-") {
            form.push(("csrf", token));
        }
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.session)
            .form(&form)
            .send()
            .await
            .expect("post");
        Self::answer(art, "POST", path, r).await
    }

    async fn answer(
        art: &Artifacts,
        method: &str,
        path: &str,
        r: reqwest::Response,
    ) -> (u16, String, String) {
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.unwrap_or_default();
        art.save(
            "web-answer.html",
            format!("<!-- {method} {path} → {status} {location} -->\n{body}"),
        );
        (status, location, body)
    }
}

// ----- scenario 1: kill at random -------------------------------------------------------------

const KILL_FROM: &str = "2026-01-01";
const KILL_TO: &str = "2026-02-01";

fn kill_config(customers: usize) -> SimConfig {
    SimConfig {
        customers,
        items: 20,
        invoices: 20,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 2, 1),
        ..SimConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cli,
    Worker,
}

struct KillResult {
    mode: Mode,
    at_fraction: f64,
    finished_first: bool,
    rows_at_kill: i64,
    resume: Duration,
    audit: Audit,
}

async fn clean_load(art: &Artifacts, world: &World, tag: &str) -> Duration {
    let started = Instant::now();
    let out = run_to_end(
        world,
        art,
        tag,
        &["run", CUSTOMERS, "--fecha-inicio", KILL_FROM, "--fecha-fin", KILL_TO],
        Duration::from_secs(900),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "the clean load failed: {}", stderr(&out));
    started.elapsed()
}

async fn kill_iteration(
    art: &Artifacts,
    config: &SimConfig,
    i: usize,
    mode: Mode,
    fraction: f64,
    clean: Duration,
    want: &(i64, String),
) -> KillResult {
    let (world, tap) = proof_world(art, config.clone(), None).await;
    let pool = world.pool().clone();
    install_audit(&pool).await;
    let delay = clean.mul_f64(fraction);
    let range = ["--fecha-inicio", KILL_FROM, "--fecha-fin", KILL_TO];
    let (finished_first, rows_at_kill, resume) = match mode {
        Mode::Cli => {
            let tag = format!("i{i:02}-cli-run");
            let mut args = vec!["run", CUSTOMERS];
            args.extend(range);
            let mut child = command(&world, art, &tag, &args).spawn().expect("spawn");
            let finished = kill_after(&mut child, delay).await;
            record_kill(&pool, &tag).await;
            let rows = count(&pool, "SELECT count(*) FROM raw.qb_customers").await;
            let run: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM ops.runs ORDER BY created_at LIMIT 1")
                    .fetch_optional(&pool)
                    .await
                    .expect("run");
            let started = Instant::now();
            let resumed = match run {
                Some(id) => {
                    let id = id.to_string();
                    run_to_end(
                        &world,
                        art,
                        &format!("i{i:02}-cli-retry"),
                        &["retry", &id],
                        Duration::from_secs(900),
                    )
                    .await
                }
                // Killed before its run was even queued: running it again is the resumption.
                None => {
                    run_to_end(
                        &world,
                        art,
                        &format!("i{i:02}-cli-run-again"),
                        &args,
                        Duration::from_secs(900),
                    )
                    .await
                }
            };
            if !finished || run.is_none() {
                assert_eq!(
                    resumed.status.code(),
                    Some(0),
                    "iteration {i}: the resumption failed: {}",
                    stderr(&resumed)
                );
            }
            if let Some(id) = run
                && !finished
            {
                let status: String = sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("status");
                assert_eq!(status, "interrupted", "iteration {i}: the killed CLI run");
            }
            (finished, rows, started.elapsed())
        }
        Mode::Worker => {
            let token = api_token(&world, art).await;
            let mut server = Server::start(&world, art, &format!("i{i:02}-serve"), 0, &token).await;
            let body = json!({"pipeline": CUSTOMERS, "fecha_inicio": KILL_FROM, "fecha_fin": KILL_TO});
            let (status, run) = server
                .call(art, reqwest::Method::POST, "/api/v1/runs", Some(&body))
                .await;
            assert_eq!(status, 202, "{run}");
            let id: Uuid = run["id"].as_str().expect("id").parse().expect("uuid");
            let tag = format!("i{i:02}-worker-1");
            let mut first = command(&world, art, &tag, &["worker", "--poll-ms", "100"])
                .spawn()
                .expect("worker");
            let finished = kill_after(&mut first, delay).await;
            record_kill(&pool, &tag).await;
            let rows = count(&pool, "SELECT count(*) FROM raw.qb_customers").await;
            let started = Instant::now();
            let mut second = command(
                &world,
                art,
                &format!("i{i:02}-worker-2"),
                &["worker", "--poll-ms", "100"],
            )
            .spawn()
            .expect("worker");
            let status = wait_run(&pool, id, Duration::from_secs(900)).await;
            let resume = started.elapsed();
            assert_eq!(status, "succeeded", "iteration {i}: the run after the kill");
            stop(&mut second).await;
            stop(&mut server.child).await;
            (finished, rows, resume)
        }
    };
    let got = table_sum(&pool, "raw.qb_customers").await;
    assert_eq!(
        &got, want,
        "iteration {i} ({mode:?}, killed at {fraction:.2}): the table differs from a clean load"
    );
    assert_eq!(runs_left_open(&pool).await, 0, "iteration {i}: a run was left open");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM ops.windows WHERE status <> 'succeeded'").await,
        0,
        "iteration {i}: a window was left unfinished"
    );
    let audit = assert_audit_clean(art, &pool, &format!("iteration-{i}")).await;
    remember_world_secrets(art, &world, &tap);
    KillResult {
        mode,
        at_fraction: fraction,
        finished_first,
        rows_at_kill,
        resume,
        audit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s1_kill_at_random() {
    let art = Artifacts::new("s1-kill");
    let runs = env_usize("QBO_PROOF_KILL_RUNS", 20);
    let customers = env_usize("QBO_PROOF_CUSTOMERS", 100_000);
    let (mut rng, seed) = Rng::seeded();
    let config = kill_config(customers);

    // A clean load, checked row by row against the simulator: the reference.
    let (reference, tap) = proof_world(&art, config.clone(), None).await;
    let clean = clean_load(&art, &reference, "reference-run").await;
    let rows = assert_exact(&reference, "raw.qb_customers", "Customer", KILL_FROM, KILL_TO).await;
    let want = table_sum(reference.pool(), "raw.qb_customers").await;
    assert_eq!(want.0 as usize, rows);
    remember_world_secrets(&art, &reference, &tap);
    drop((reference, tap));
    art.note(&format!(
        "reference: {rows} customers in {}, checksum {}; seed {seed}",
        secs(clean),
        want.1
    ));

    let mut results = Vec::new();
    for i in 0..runs {
        let mode = if i % 2 == 0 { Mode::Cli } else { Mode::Worker };
        let fraction = 0.05 + 0.9 * rng.unit();
        let r = kill_iteration(&art, &config, i, mode, fraction, clean, &want).await;
        art.note(&format!(
            "run {:2} {:6} killed at {:3.0}% of a clean load ({} rows in){}; resumed in {}; \
             identical; {}",
            i + 1,
            format!("{mode:?}"),
            fraction * 100.0,
            r.rows_at_kill,
            if r.finished_first {
                " (had already finished)"
            } else {
                ""
            },
            secs(r.resume),
            r.audit.short()
        ));
        results.push(r);
    }
    let killed = results.iter().filter(|r| !r.finished_first).count();
    let cli = results.iter().filter(|r| r.mode == Mode::Cli).count();
    let mut at: Vec<f64> = results.iter().map(|r| r.rows_at_kill as f64).collect();
    let (lo, hi) = (
        at.iter().copied().fold(f64::MAX, f64::min),
        at.iter().copied().fold(0.0, f64::max),
    );
    let med = median(&mut at);
    let mut resumes: Vec<f64> = results.iter().map(|r| r.resume.as_secs_f64()).collect();
    let mut total = Audit::default();
    for r in &results {
        total.add(&r.audit);
    }
    art.figure(&format!(
        "PASS kill-at-random: {runs} runs ({cli} CLI, {} worker) of {rows} customers, {killed} \
         SIGKILLed mid-run at 5-95% of a clean load ({}), rows in at the kill min/median/max \
         {lo:.0}/{med:.0}/{hi:.0}; {runs}/{runs} resumed (CLI retry / second worker, median {:.1}s) \
         to a table identical to the clean load (md5 {}); 0 runs left running; audit: {} raw-write \
         txns all fenced by the window's holder, {} takeovers of running windows all after the \
         holder was killed, 0 violations; seed {seed}",
        runs - cli,
        secs(clean),
        median(&mut resumes),
        &want.1[..12],
        total.raw_writes,
        total.takeovers,
    ));
}

// ----- scenario 2: database faults ------------------------------------------------------------

/// The PostgreSQL the database-fault scenario restarts: a private cluster of its own (default,
/// so no other test database on the machine's server is disturbed), or the machine's server
/// (`QBO_PROOF_PG=system`: `pg_ctlcluster <version> main …`, restored at the end).
struct Pg {
    private: Option<PrivateCluster>,
    version: String,
}

struct PrivateCluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn newest_pg_version() -> String {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().expect("a PostgreSQL version").to_string()
}

fn run_checked(cmd: &mut std::process::Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PrivateCluster {
    fn cmd(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn start(version: &str) -> Self {
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let root = std::env::temp_dir().join(format!("qbo-proof-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("cluster dir");
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let as_postgres = uid == "0";
        if as_postgres {
            run_checked(
                std::process::Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&root),
                "chown",
            );
        }
        let cluster = Self {
            root,
            bin,
            port: free_port(),
            as_postgres,
        };
        run_checked(
            cluster
                .cmd("initdb")
                .arg("-D")
                .arg(cluster.root.join("data"))
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.root.display()
        );
        run_checked(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(self.root.join("data"))
                .arg("-l")
                .arg(self.root.join("postgres.log"))
                .args(["-w", "-t", "120", "-o", &options, "start"]),
            "pg_ctl start",
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        run_checked(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(self.root.join("data"))
                .args(["-w", "-t", "120"])
                .args(args),
            "pg_ctl",
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Pg {
    fn start() -> Self {
        let version = newest_pg_version();
        let system = std::env::var("QBO_PROOF_PG").is_ok_and(|v| v == "system");
        Self {
            private: (!system).then(|| PrivateCluster::start(&version)),
            version,
        }
    }

    fn url(&self) -> Option<String> {
        self.private
            .as_ref()
            .map(|c| format!("postgres://postgres@127.0.0.1:{}/postgres", c.port))
    }

    fn describe(&self) -> String {
        match &self.private {
            Some(c) => format!(
                "a private PostgreSQL {} cluster on port {}",
                self.version, c.port
            ),
            None => format!("the machine's PostgreSQL {} (pg_ctlcluster)", self.version),
        }
    }

    fn ctlcluster(&self, args: &[&str]) {
        run_checked(
            std::process::Command::new("pg_ctlcluster")
                .arg("--skip-systemctl-redirect")
                .arg(&self.version)
                .arg("main")
                .args(args),
            "pg_ctlcluster",
        );
    }

    /// A fast restart (what `pg_ctlcluster … restart` does); how long it took.
    fn restart(&self) -> Duration {
        let t = Instant::now();
        match &self.private {
            Some(c) => c.pg_ctl(&["-m", "fast", "restart"]),
            None => self.ctlcluster(&["restart", "-m", "fast"]),
        }
        t.elapsed()
    }

    /// A crash (immediate stop, no shutdown checkpoint), `down` without a server, then a start
    /// with crash recovery; how long the server was gone.
    fn crash(&self, down: Duration) -> Duration {
        let t = Instant::now();
        match &self.private {
            Some(c) => c.pg_ctl(&["-m", "immediate", "stop"]),
            None => self.ctlcluster(&["stop", "-m", "immediate"]),
        }
        std::thread::sleep(down);
        match &self.private {
            Some(c) => c.pg_ctl_start(),
            None => self.ctlcluster(&["start"]),
        }
        t.elapsed()
    }

    fn keep_log(&self, art: &Artifacts) {
        if let Some(c) = &self.private
            && let Ok(log) = std::fs::read(c.root.join("postgres.log"))
        {
            art.save("postgres.log", log);
        }
    }
}

/// Terminates every backend of the database (but the caller's); how many.
async fn terminate_backends(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .await
}

/// Retries (CLI) the latest run until it succeeds; how many retries it took.
async fn retry_until_done(world: &World, art: &Artifacts, tag: &str) -> usize {
    for attempt in 0..5 {
        let (id, status): (Uuid, String) =
            sqlx::query_as("SELECT id, status FROM ops.runs ORDER BY created_at DESC LIMIT 1")
                .fetch_one(world.pool())
                .await
                .expect("latest run");
        if status == "succeeded" {
            return attempt;
        }
        let id = id.to_string();
        let out = run_to_end(
            world,
            art,
            &format!("{tag}-retry-{attempt}"),
            &["retry", &id],
            Duration::from_secs(900),
        )
        .await;
        art.note(&format!(
            "{tag}: retry {} of run {id} exited {:?}",
            attempt + 1,
            out.status.code()
        ));
    }
    panic!("{tag}: the run never succeeded after 5 retries");
}

/// After a fault: the table equals the clean load, nothing is left open, the audit is clean.
async fn assert_recovered(art: &Artifacts, world: &World, want: &(i64, String), what: &str) -> Audit {
    let pool = world.pool();
    assert_eq!(&table_sum(pool, "raw.qb_customers").await, want, "{what}: the table differs");
    assert_eq!(runs_left_open(pool).await, 0, "{what}: a run was left open");
    assert_eq!(
        count(pool, "SELECT count(*) FROM ops.windows WHERE status <> 'succeeded'").await,
        0,
        "{what}: a window was left unfinished"
    );
    assert_audit_clean(art, pool, what).await
}

/// What a run that met a fault did by itself: `(exit, failed windows, summary line)`.
fn summary_of(art_dir: &Path, tag: &str) -> String {
    let Ok(entries) = std::fs::read_dir(art_dir) else {
        return String::new();
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!("{tag}.stdout")) {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let get = |k: &str| {
                text.lines()
                    .rev()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .unwrap_or("?")
                    .to_owned()
            };
            return format!(
                "status={} failed_windows={} retries={}",
                get("status"),
                get("failed_windows"),
                get("retries")
            );
        }
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s2_database_faults() {
    let art = Artifacts::new("s2-db");
    let customers = env_usize("QBO_PROOF_CUSTOMERS", 100_000);
    let pg = Pg::start();
    let server = pg.url();
    art.note(&format!("database faults against {}", pg.describe()));
    let config = kill_config(customers);
    let run_args = ["run", CUSTOMERS, "--fecha-inicio", KILL_FROM, "--fecha-fin", KILL_TO];

    // The reference: a clean load on the same server, checked against the simulator.
    let (reference, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    let clean = clean_load(&art, &reference, "reference-run").await;
    let rows = assert_exact(&reference, "raw.qb_customers", "Customer", KILL_FROM, KILL_TO).await;
    let want = table_sum(reference.pool(), "raw.qb_customers").await;
    let total_pages = pages_written(reference.pool()).await;
    remember_world_secrets(&art, &reference, &tap);
    drop((reference, tap));
    let mut audits = Audit::default();

    // A. The server restarted (fast shutdown, as pg_ctlcluster restart) under a CLI run.
    let (world, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    install_audit(world.pool()).await;
    let mut child = command(&world, &art, "a-run", &run_args).spawn().expect("run");
    assert!(wait_pages(world.pool(), total_pages / 3, Duration::from_secs(300)).await);
    let restart = pg.restart();
    let exit_a = tokio::time::timeout(Duration::from_secs(900), child.wait())
        .await
        .expect("the run ended after the restart")
        .expect("wait")
        .code();
    let by_itself_a = summary_of(&art.dir, "a-run");
    let retries_a = retry_until_done(&world, &art, "a").await;
    audits.add(&assert_recovered(&art, &world, &want, "restart").await);
    remember_world_secrets(&art, &world, &tap);
    art.note(&format!(
        "A restart: down {}; the run exited {exit_a:?} ({by_itself_a}); {retries_a} retries; table exact",
        secs(restart)
    ));
    drop((world, tap));

    // B. Every backend of the database terminated three times under a CLI run.
    let (world, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    install_audit(world.pool()).await;
    let mut child = command(&world, &art, "b-run", &run_args).spawn().expect("run");
    let mut terminated = 0;
    for share in [5, 3, 2] {
        // At 1/5, 1/3 and 1/2 of the pages.
        if wait_pages(world.pool(), total_pages / share, Duration::from_secs(300)).await {
            terminated += terminate_backends(world.pool()).await;
        }
    }
    let exit_b = tokio::time::timeout(Duration::from_secs(900), child.wait())
        .await
        .expect("the run ended after the terminations")
        .expect("wait")
        .code();
    let by_itself_b = summary_of(&art.dir, "b-run");
    let retries_b = retry_until_done(&world, &art, "b").await;
    audits.add(&assert_recovered(&art, &world, &want, "terminate").await);
    remember_world_secrets(&art, &world, &tap);
    art.note(&format!(
        "B terminate: {terminated} backends terminated in 3 rounds; the run exited {exit_b:?} \
         ({by_itself_b}); {retries_b} retries; table exact"
    ));
    drop((world, tap));

    // C. A crash (immediate stop, 3 s without a server, crash recovery) under a worker.
    let (world, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    install_audit(world.pool()).await;
    let token = api_token(&world, &art).await;
    let mut api = Server::start(&world, &art, "c-serve", 0, &token).await;
    let body = json!({"pipeline": CUSTOMERS, "fecha_inicio": KILL_FROM, "fecha_fin": KILL_TO});
    let (status, run) = api
        .call(&art, reqwest::Method::POST, "/api/v1/runs", Some(&body))
        .await;
    assert_eq!(status, 202, "{run}");
    let id: Uuid = run["id"].as_str().expect("id").parse().expect("uuid");
    let mut worker = command(&world, &art, "c-worker", &["worker", "--poll-ms", "100"])
        .spawn()
        .expect("worker");
    assert!(wait_pages(world.pool(), total_pages / 3, Duration::from_secs(300)).await);
    let crash = pg.crash(Duration::from_secs(3));
    let status_c = wait_run(world.pool(), id, Duration::from_secs(900)).await;
    let mut retries_c = 0;
    let mut last = (id, status_c.clone());
    while last.1 != "succeeded" {
        assert!(retries_c < 5, "the crashed run never succeeded");
        retries_c += 1;
        let (s, retry) = api
            .call(
                &art,
                reqwest::Method::POST,
                &format!("/api/v1/runs/{}/retry", last.0),
                Some(&json!({})),
            )
            .await;
        assert_eq!(s, 202, "{retry}");
        let rid: Uuid = retry["id"].as_str().expect("id").parse().expect("uuid");
        last = (rid, wait_run(world.pool(), rid, Duration::from_secs(900)).await);
    }
    let executions: i32 = sqlx::query_scalar("SELECT executions FROM ops.runs WHERE id = $1")
        .bind(id)
        .fetch_one(world.pool())
        .await
        .expect("executions");
    stop(&mut worker).await;
    stop(&mut api.child).await;
    audits.add(&assert_recovered(&art, &world, &want, "crash").await);
    remember_world_secrets(&art, &world, &tap);
    art.note(&format!(
        "C crash: server gone {}; the worker's run ended {status_c} ({executions} executions); \
         {retries_c} retries; table exact",
        secs(crash)
    ));
    drop((world, tap));
    pg.keep_log(&art);

    art.figure(&format!(
        "PASS database-faults on {}: {rows} customers (clean load {}); (A) fast restart, down {}, \
         the CLI run exited {} by itself ({by_itself_a}) and {retries_a} retries finished it; \
         (B) {terminated} backends terminated in 3 rounds, the run exited {} ({by_itself_b}), \
         {retries_b} retries; (C) crash with 3 s down ({} in all) under a worker: run \
         {status_c}, {retries_c} API retries; every table identical to the clean load, 0 runs \
         left open, audit {}",
        pg.describe(),
        secs(clean),
        secs(restart),
        exit_a.map_or("by signal".to_owned(), |c| c.to_string()),
        exit_b.map_or("by signal".to_owned(), |c| c.to_string()),
        secs(crash),
        audits.short()
    ));
}
