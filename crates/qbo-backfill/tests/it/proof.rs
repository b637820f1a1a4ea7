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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use qbo_backfill::store::infra::testdb::TestDb;
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
            "{} ({} on {})",
            text,
            secs(self.started.elapsed()),
            today_utc()
        );
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
    // The HTTP Basic credentials sent to the token endpoint.
    art.secret(&base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        world.config.client_id, world.config.client_secret
    )));
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
async fn secrets_set(
    world: &World,
    art: &Artifacts,
    tag: &str,
    name: &str,
    value: &[u8],
) -> Output {
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
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
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
    /// Succeeded windows whose row counter differs from the rows in the table, or whose page
    /// counter differs from the page commits since their last claim.
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
    // A claim: a window becomes `running` for an execution, or an execution that still holds a
    // window claims it again to reload it whole (a span split after a failed write whose window
    // ends could not be recorded), which resets its counters.
    const CLAIM: &str = "w.new_status = 'running' AND (w.old_status IS DISTINCT FROM 'running' \
                         OR w.old_exec IS DISTINCT FROM w.new_exec \
                         OR (w.old_pages > 0 AND w.new_pages = 0))";
    let pipeline_of = "CASE r.tbl WHEN 'qb_customers' THEN 'qb_customers_backfill' \
                       WHEN 'qb_items' THEN 'qb_items_backfill' ELSE 'qb_invoices_backfill' END";
    let q = |sql: String| async move { count(pool, &sql).await };
    Audit {
        raw_writes: q(
            "SELECT count(*) FROM (SELECT DISTINCT txid, tbl, window_start FROM proof.raw_audit) r"
                .to_owned(),
        )
        .await,
        page_commits: q(format!(
            "SELECT count(*) FROM proof.win_audit w WHERE {PAGE}"
        ))
        .await,
        claims: q(format!(
            "SELECT count(*) FROM proof.win_audit w WHERE {CLAIM}"
        ))
        .await,
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
        .await
            + q(format!(
                "WITH last_claim AS (SELECT w.pipeline, w.window_start, max(w.seq) AS seq \
                                     FROM proof.win_audit w WHERE {CLAIM} GROUP BY 1, 2), \
                      commits AS (SELECT w.pipeline, w.window_start, count(*) AS n \
                                  FROM proof.win_audit w JOIN last_claim l \
                                    ON l.pipeline = w.pipeline AND l.window_start = w.window_start \
                                  WHERE w.seq > l.seq AND {PAGE} GROUP BY 1, 2) \
                 SELECT count(*) FROM ops.windows o \
                 JOIN last_claim l ON l.pipeline = o.pipeline AND l.window_start = o.window_start \
                 LEFT JOIN commits c ON c.pipeline = o.pipeline AND c.window_start = o.window_start \
                 WHERE o.status = 'succeeded' AND o.pages <> coalesce(c.n, 0)"
            ))
            .await,
    }
}

/// The audit catches what it is there to catch: run on a finished load (whose data it then
/// spoils), each forged event must show up as a violation.
async fn audit_self_test(pool: &PgPool) {
    install_audit(pool).await;
    sqlx::raw_sql(
        "UPDATE raw.qb_customers SET ingested_at_utc = now() \
           WHERE id = (SELECT min(id) FROM raw.qb_customers); \
         SET application_name = 'proof-forged-a'; \
         UPDATE ops.windows SET status = 'running', execution_id = gen_random_uuid() \
           WHERE window_start = (SELECT min(window_start) FROM ops.windows); \
         SET application_name = 'proof-forged-b'; \
         UPDATE ops.windows SET pages = pages + 1 \
           WHERE window_start = (SELECT min(window_start) FROM ops.windows); \
         UPDATE ops.windows SET execution_id = gen_random_uuid() \
           WHERE window_start = (SELECT min(window_start) FROM ops.windows); \
         RESET application_name;",
    )
    .execute(pool)
    .await
    .expect("forged events");
    let a = audit(pool).await;
    assert!(
        a.unfenced >= 1 && a.foreign_writers >= 1 && a.live_takeovers >= 1,
        "the audit missed a forged violation: {}",
        a.short()
    );
}

/// The audit of `pool` with no violation (the history goes to the artifacts when there is one).
async fn assert_audit_clean(art: &Artifacts, pool: &PgPool, what: &str) -> Audit {
    let a = audit(pool).await;
    if a.violations() > 0 {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT concat_ws(' ', seq, txid, app, pipeline, window_start, \
                    coalesce(old_exec::text, '-'), coalesce(new_exec::text, '-'), \
                    coalesce(old_status, '-'), new_status, coalesce(old_pages::text, '-'), \
                    new_pages, rows_total) \
             FROM proof.win_audit ORDER BY seq",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        art.save(&format!("{what}-window-history.txt"), text);
    }
    assert_eq!(a.violations(), 0, "{what}: audit violations: {}", a.short());
    a
}

// ----- the token tap: every exchange with the token endpoint ----------------------------------

/// The first 8 hex digits of a SHA-256: tells tokens apart without showing them.
fn short_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    /// Requests received and not answered (or lost) yet.
    in_flight: Arc<AtomicUsize>,
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

async fn read_http(
    r: &mut BufReader<TcpStream>,
    request: bool,
) -> std::io::Result<Option<HttpMessage>> {
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

async fn relay(
    conn: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Exchange>>,
    in_flight: &AtomicUsize,
) -> std::io::Result<()> {
    let mut client = BufReader::new(conn);
    loop {
        let Some(request) = read_http(&mut client, true).await? else {
            return Ok(());
        };
        in_flight.fetch_add(1, Ordering::SeqCst);
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
        in_flight.fetch_sub(1, Ordering::SeqCst);
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
    /// Most refreshes in flight at once among those presenting a live token (answered, or
    /// rotated with the answer lost): more than one is a refresh race.
    max_concurrent_live_refreshes: usize,
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
        let in_flight = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let log = log.clone();
            let in_flight = in_flight.clone();
            async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let upstream = upstream.clone();
                    let log = log.clone();
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move {
                        let _ = relay(conn, &upstream, &log, &in_flight).await;
                    });
                }
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}{}", parsed.path()),
            log,
            in_flight,
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

    /// One line per exchange: start and end (ms after `t0`), grant, status, and short hashes of
    /// the token presented and the refresh token issued (never the tokens).
    fn dump(&self, t0: Instant) -> String {
        let ms = |t: Instant| t.saturating_duration_since(t0).as_millis();
        self.exchanges()
            .iter()
            .map(|e| {
                format!(
                    "{:>8} {:>8} {} {} presented={} issued={}\n",
                    ms(e.started),
                    ms(e.ended),
                    e.grant_type,
                    e.status.map_or("lost".to_owned(), |s| s.to_string()),
                    short_hash(&e.presented),
                    e.issued_refresh_token()
                        .map_or("-".to_owned(), |t| short_hash(&t)),
                )
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
        let live = |e: &&&Exchange| e.status.is_none() || e.status == Some(200);
        for e in &refreshes {
            let overlapping = |only_live: bool| {
                refreshes
                    .iter()
                    .filter(|o| !only_live || live(o))
                    .filter(|o| o.started <= e.started && o.ended > e.started)
                    .count()
            };
            f.max_concurrent_refreshes = f.max_concurrent_refreshes.max(overlapping(false));
            if live(&e) {
                f.max_concurrent_live_refreshes =
                    f.max_concurrent_live_refreshes.max(overlapping(true));
            }
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
        let http = qbo::tls::http_client_builder()
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
        art.save(
            "api-answer.txt",
            format!("{method} {path}\n{status}\n{text}"),
        );
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
        let http = qbo::tls::http_client_builder()
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
        &[
            "run",
            CUSTOMERS,
            "--fecha-inicio",
            KILL_FROM,
            "--fecha-fin",
            KILL_TO,
        ],
        Duration::from_secs(900),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the clean load failed: {}",
        stderr(&out)
    );
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
                let status: String =
                    sqlx::query_scalar("SELECT status FROM ops.runs WHERE id = $1")
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
            let body =
                json!({"pipeline": CUSTOMERS, "fecha_inicio": KILL_FROM, "fecha_fin": KILL_TO});
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
    assert_eq!(
        runs_left_open(&pool).await,
        0,
        "iteration {i}: a run was left open"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM ops.windows WHERE status <> 'succeeded'"
        )
        .await,
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
    let rows = assert_exact(
        &reference,
        "raw.qb_customers",
        "Customer",
        KILL_FROM,
        KILL_TO,
    )
    .await;
    let want = table_sum(reference.pool(), "raw.qb_customers").await;
    assert_eq!(want.0 as usize, rows);
    audit_self_test(reference.pool()).await;
    remember_world_secrets(&art, &reference, &tap);
    drop((reference, tap));
    art.note("audit self-test: a forged unfenced write, foreign page writer and live takeover are caught");
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
        at.iter().copied().reduce(f64::min).unwrap_or(0.0),
        at.iter().copied().reduce(f64::max).unwrap_or(0.0),
    );
    let med = median(&mut at);
    let mut resumes: Vec<f64> = results.iter().map(|r| r.resume.as_secs_f64()).collect();
    let (f_lo, f_hi) = results.iter().fold((1.0_f64, 0.0_f64), |(lo, hi), r| {
        (lo.min(r.at_fraction), hi.max(r.at_fraction))
    });
    let mut total = Audit::default();
    for r in &results {
        total.add(&r.audit);
    }
    art.figure(&format!(
        "PASS kill-at-random: {runs} runs ({cli} CLI, {} worker) of {rows} customers, {killed} \
         SIGKILLed mid-run at {:.0}-{:.0}% of a clean load ({}), rows in at the kill min/median/max \
         {lo:.0}/{med:.0}/{hi:.0}; {runs}/{runs} resumed (CLI retry / second worker, median {:.1}s) \
         to a table identical to the clean load (md5 {}); 0 runs left running or queued, 0 \
         windows unfinished; audit: {} committed raw-write transactions, each one inside a page \
         commit of the window's holder by the process that claimed it; {} window claims, {} of \
         them of a window still running (allowed only after its holder was killed); page and row \
         counters equal to the rows; 0 violations; seed {seed}",
        runs - cli,
        f_lo * 100.0,
        f_hi * 100.0,
        secs(clean),
        median(&mut resumes),
        &want.1[..12],
        total.raw_writes,
        total.claims,
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

/// Runs a short blocking command (outside the async workers' way) and checks it succeeded.
fn run_checked(cmd: &mut std::process::Command, what: &str) -> std::process::Output {
    cmd.stdin(Stdio::null());
    let out =
        tokio::task::block_in_place(|| cmd.output()).unwrap_or_else(|e| panic!("{what}: {e}"));
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

    /// `pg_ctl` with the log file always given: a postmaster it starts must not inherit our
    /// pipes.
    fn pg_ctl(&self, args: &[&str]) {
        run_checked(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(self.root.join("data"))
                .arg("-l")
                .arg(self.root.join("postgres.log"))
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
        tokio::task::block_in_place(|| std::thread::sleep(down));
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
async fn assert_recovered(
    art: &Artifacts,
    world: &World,
    want: &(i64, String),
    what: &str,
) -> Audit {
    let pool = world.pool();
    assert_eq!(
        &table_sum(pool, "raw.qb_customers").await,
        want,
        "{what}: the table differs"
    );
    assert_eq!(runs_left_open(pool).await, 0, "{what}: a run was left open");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM ops.windows WHERE status <> 'succeeded'"
        )
        .await,
        0,
        "{what}: a window was left unfinished"
    );
    assert_audit_clean(art, pool, what).await
}

/// What a run that met a fault reported by itself: its summary's status, failed windows and
/// retries, from the stdout kept as `<tag>.stdout`.
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
    let run_args = [
        "run",
        CUSTOMERS,
        "--fecha-inicio",
        KILL_FROM,
        "--fecha-fin",
        KILL_TO,
    ];

    // The reference: a clean load on the same server, checked against the simulator.
    let (reference, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    let clean = clean_load(&art, &reference, "reference-run").await;
    let rows = assert_exact(
        &reference,
        "raw.qb_customers",
        "Customer",
        KILL_FROM,
        KILL_TO,
    )
    .await;
    let want = table_sum(reference.pool(), "raw.qb_customers").await;
    let total_pages = pages_written(reference.pool()).await;
    remember_world_secrets(&art, &reference, &tap);
    drop((reference, tap));
    let mut audits = Audit::default();

    // A. The server restarted (fast shutdown, as pg_ctlcluster restart) under a CLI run.
    let (world, tap) = proof_world(&art, config.clone(), server.as_deref()).await;
    install_audit(world.pool()).await;
    let mut child = command(&world, &art, "a-run", &run_args)
        .spawn()
        .expect("run");
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
    let mut child = command(&world, &art, "b-run", &run_args)
        .spawn()
        .expect("run");
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
        last = (
            rid,
            wait_run(world.pool(), rid, Duration::from_secs(900)).await,
        );
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
         the CLI run exited {} on its own ({by_itself_a}), {}; (B) {terminated} backends \
         terminated in 3 rounds, the run exited {} ({by_itself_b}), {}; (C) crash with 3 s down \
         ({} in all) under a worker: the run ended {status_c}, {}; every table identical to the \
         clean load, 0 runs left open, audit {}",
        pg.describe(),
        secs(clean),
        secs(restart),
        exit_a.map_or("by signal".to_owned(), |c| c.to_string()),
        retried(retries_a, "CLI"),
        exit_b.map_or("by signal".to_owned(), |c| c.to_string()),
        retried(retries_b, "CLI"),
        secs(crash),
        retried(retries_c, "API"),
        audits.short()
    ));
}

fn retried(n: usize, how: &str) -> String {
    match n {
        0 => "no retry needed".to_owned(),
        1 => format!("one {how} retry completed it"),
        n => format!("{n} {how} retries completed it"),
    }
}

// ----- scenario 3: API faults soak ------------------------------------------------------------

/// Intuit's limits, enforced by the simulator.
fn intuit_limits() -> SimLimits {
    SimLimits {
        requests_per_minute: Some(500),
        requests_per_second: Some(10),
        max_in_flight: Some(10),
    }
}

fn soak_config(rotation: Rotation) -> SimConfig {
    SimConfig {
        customers: env_usize("QBO_PROOF_SOAK_CUSTOMERS", 60_000),
        items: 2_000,
        invoices: env_usize("QBO_PROOF_SOAK_INVOICES", 40_000),
        from: jiff::civil::date(2025, 1, 1),
        to: jiff::civil::date(2026, 1, 1),
        access_token_ttl: Duration::from_secs(30),
        rotation,
        limits: intuit_limits(),
        faults: FaultConfig {
            error_rate: 0.10,
            html_error_share: 0.5,
            latency: Duration::ZERO,
            latency_jitter: Duration::from_millis(2_000),
            truncate_rate: 0.03,
            drop_rate: 0.0,
            token_drop_rate: 0.25,
        },
        ..SimConfig::default()
    }
}

/// What the product says (`qbo::auth::explain_lost_rotation`) when an `invalid_grant` followed
/// a lost token answer.
const LOST_ANSWER_WORDS: &str = "an earlier token answer was lost";

/// Figures of one soak phase.
struct SoakPhase {
    name: &'static str,
    duration: Duration,
    windows: usize,
    rows: usize,
    requests: u64,
    faults: u64,
    bursts: u64,
    throttled_in_bursts: u64,
    throttled_ours: u64,
    max_in_flight: u64,
    tokens: TokenFigures,
    reconnects: usize,
    rounds: usize,
    failed_window_retries: usize,
    audit: Audit,
    /// Runs stopped by `invalid_grant`: in all, whose stored error says an answer was lost, and
    /// CLI outputs (stdout and stderr) that say so.
    grant_runs: i64,
    grant_runs_explained: i64,
    grant_outputs: usize,
    grant_outputs_explained: usize,
}

/// Bursts of throttling: every 20 s the simulator allows 2 requests per second for 3 s. Returns
/// `(bursts, 429s sent during them)`.
async fn burst_injector(sim: SimState, stop: Arc<tokio::sync::Notify>) -> (u64, u64) {
    let (mut bursts, mut injected) = (0, 0);
    loop {
        tokio::select! {
            () = stop.notified() => return (bursts, injected),
            () = tokio::time::sleep(Duration::from_secs(20)) => {}
        }
        let before = sim.stats().throttled;
        sim.set_limits(SimLimits {
            requests_per_second: Some(2),
            ..intuit_limits()
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        sim.set_limits(intuit_limits());
        injected += sim.stats().throttled - before;
        bursts += 1;
    }
}

async fn soak_phase(
    art: &Artifacts,
    name: &'static str,
    rotation: Rotation,
    from: &str,
    to: &str,
) -> SoakPhase {
    let (mut world, tap) = proof_world(art, soak_config(rotation), None).await;
    // Intuit's 429 has no Retry-After and the client's default wait is 60 s; 2 s keeps the soak
    // short without changing what is measured.
    world
        .extra_env
        .push(("QBO_THROTTLE_WAIT_MS".to_owned(), "2000".to_owned()));
    install_audit(world.pool()).await;
    let started = Instant::now();
    let stop_bursts = Arc::new(tokio::sync::Notify::new());
    let bursts = tokio::spawn(burst_injector(
        world.sim.state().clone(),
        stop_bursts.clone(),
    ));

    // The three pipelines at once, as three CLI processes sharing the company's budget.
    let mut pending: Vec<(&str, Option<String>)> =
        PIPELINES.iter().map(|(p, _, _)| (*p, None)).collect();
    let (mut rounds, mut reconnects, mut failed_window_retries) = (0, 0, 0);
    let (mut grant_outputs, mut grant_outputs_explained) = (0, 0);
    while !pending.is_empty() {
        rounds += 1;
        assert!(
            rounds <= 10,
            "{name}: still unfinished after 10 rounds: {pending:?}"
        );
        let mut children = Vec::new();
        for (pipeline, run) in &pending {
            let tag = format!("{name}-{pipeline}-round{rounds}");
            let mut cmd = world.command(&match run {
                None => vec!["run", pipeline, "--fecha-inicio", from, "--fecha-fin", to],
                Some(id) => vec!["retry", id],
            });
            cmd.env("DATABASE_URL", tagged(&world.db.url, &tag))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            children.push((*pipeline, tag, cmd.spawn().expect("spawn")));
        }
        let mut next = Vec::new();
        let mut lost_grant = false;
        for (pipeline, tag, child) in children {
            let out = tokio::time::timeout(Duration::from_secs(1800), child.wait_with_output())
                .await
                .expect("a soak run finished")
                .expect("output");
            art.save(&format!("{tag}.stdout"), &out.stdout);
            art.save(&format!("{tag}.stderr"), &out.stderr);
            let text = stdout(&out);
            match out.status.code() {
                Some(0) => {}
                Some(1) => {
                    let run = crate::harness::run_id(&text);
                    if text.contains("Token refresh failed: invalid_grant") {
                        lost_grant = true;
                        grant_outputs += 1;
                        if format!("{text}{}", stderr(&out)).contains(LOST_ANSWER_WORDS) {
                            grant_outputs_explained += 1;
                        }
                    } else {
                        failed_window_retries += 1;
                    }
                    next.push((pipeline, Some(run)));
                }
                other => panic!("{tag} exited {other:?}: {}", stderr(&out)),
            }
        }
        if lost_grant {
            // The refresh token is gone (a rotation whose answer was lost): reconnect, as the
            // operator would, and store the new token.
            reconnects += 1;
            let token = world.sim.state().reconnect();
            art.secret(&token);
            let out = secrets_set(
                &world,
                art,
                &format!("{name}-reconnect-{reconnects}"),
                "QBO_REFRESH_TOKEN",
                format!("{token}\n").as_bytes(),
            )
            .await;
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        }
        pending = next;
    }
    stop_bursts.notify_one();
    let (bursts, throttled_in_bursts) = bursts.await.expect("bursts");
    let duration = started.elapsed();
    let mut rows = 0;
    for (_, table, entity) in PIPELINES {
        rows += assert_exact(&world, table, entity, from, to).await;
    }
    let stats = world.sim.state().stats();
    let tokens = tap.figures();
    let windows = count(world.pool(), "SELECT count(*) FROM ops.windows").await as usize;
    assert_eq!(
        runs_left_open(world.pool()).await,
        0,
        "{name}: a run was left open"
    );
    let audit = assert_audit_clean(art, world.pool(), name).await;
    let grant_runs = count(
        world.pool(),
        "SELECT count(*) FROM ops.runs WHERE error LIKE '%invalid_grant%'",
    )
    .await;
    let grant_runs_explained = count(
        world.pool(),
        &format!(
            "SELECT count(*) FROM ops.runs WHERE error LIKE '%invalid_grant%' \
             AND error LIKE '%{LOST_ANSWER_WORDS}%'"
        ),
    )
    .await;
    remember_world_secrets(art, &world, &tap);
    art.save(&format!("{name}-token-exchanges.txt"), tap.dump(started));
    SoakPhase {
        name,
        duration,
        windows,
        rows,
        requests: stats.requests_total,
        faults: stats.faults_injected,
        bursts,
        throttled_in_bursts,
        throttled_ours: stats.throttled - throttled_in_bursts,
        max_in_flight: stats.max_in_flight_seen,
        tokens,
        reconnects,
        rounds,
        failed_window_retries,
        audit,
        grant_runs,
        grant_runs_explained,
        grant_outputs,
        grant_outputs_explained,
    }
}

/// The refresh token the store holds for the world's company (read with the product's store).
async fn stored_refresh_token(world: &World) -> String {
    use qbo::token_store::TokenStore as _;
    use secrecy::ExposeSecret as _;
    let key = qbo_backfill::store::auth::secrets::SecretKey::from_base64(&world.secret_key_b64)
        .expect("key");
    let store = qbo_backfill::store::auth::tokens::PgTokenStore::new(
        world.pool().clone(),
        key,
        world.config.realm_id.clone(),
    );
    let lease = store.lock().await.expect("token row");
    lease.tokens().refresh_token.expose_secret().to_owned()
}

/// How a process stopped (SIGINT / SIGTERM) while its token refresh was in flight left the
/// company's refresh token, and how the next run went.
struct MidRefresh {
    case: &'static str,
    exit: Option<i32>,
    answered: bool,
    store_current: bool,
    next_ok: bool,
    next_invalid_grant: bool,
}

/// Stops a CLI run or a worker with `signal` while its first token refresh is in flight (the
/// token endpoint answers after 2.5 s), then runs again.
async fn stop_mid_refresh(
    art: &Artifacts,
    case: &'static str,
    worker: bool,
    signal: &str,
) -> MidRefresh {
    let config = SimConfig {
        customers: 3_000,
        items: 10,
        invoices: 10,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 2, 1),
        rotation: Rotation::EveryRefresh,
        faults: FaultConfig {
            latency: Duration::from_millis(2_500),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let (world, tap) = proof_world(art, config, None).await;
    let range = ["--fecha-inicio", "2026-01-01", "--fecha-fin", "2026-01-03"];
    let mut server = None;
    let mut args = vec!["run", CUSTOMERS];
    args.extend(range);
    let mut child = if worker {
        let token = api_token(&world, art).await;
        let api = Server::start(&world, art, &format!("{case}-serve"), 0, &token).await;
        let body =
            json!({"pipeline": CUSTOMERS, "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-03"});
        let (status, run) = api
            .call(art, reqwest::Method::POST, "/api/v1/runs", Some(&body))
            .await;
        assert_eq!(status, 202, "{run}");
        server = Some(api);
        command(
            &world,
            art,
            &format!("{case}-worker"),
            &["worker", "--poll-ms", "100"],
        )
        .spawn()
        .expect("worker")
    } else {
        command(&world, art, &format!("{case}-run"), &args)
            .spawn()
            .expect("run")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tap.in_flight.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "{case}: no token refresh started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("stopped in time")
        .expect("wait")
        .code();
    // Let the simulator's answer arrive at the tap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tap.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = tap
        .exchanges()
        .iter()
        .any(|e| e.is_refresh() && e.status == Some(200));
    let store_current =
        stored_refresh_token(&world).await == world.sim.state().current_refresh_token();
    // The next run: the CLI's retry, or another worker taking the run back from the queue.
    let (next_ok, next_invalid_grant) = if worker {
        let id: Uuid = sqlx::query_scalar("SELECT id FROM ops.runs LIMIT 1")
            .fetch_one(world.pool())
            .await
            .expect("run");
        let mut second = command(
            &world,
            art,
            &format!("{case}-worker-2"),
            &["worker", "--poll-ms", "100"],
        )
        .spawn()
        .expect("worker");
        let status = wait_run(world.pool(), id, Duration::from_secs(120)).await;
        stop(&mut second).await;
        let grant = count(
            world.pool(),
            "SELECT count(*) FROM ops.run_logs WHERE text LIKE '%invalid_grant%'",
        )
        .await;
        (status == "succeeded", grant > 0)
    } else {
        let id: Uuid = sqlx::query_scalar("SELECT id FROM ops.runs LIMIT 1")
            .fetch_one(world.pool())
            .await
            .expect("run");
        let id = id.to_string();
        let out = run_to_end(
            &world,
            art,
            &format!("{case}-retry"),
            &["retry", &id],
            Duration::from_secs(120),
        )
        .await;
        (
            out.status.code() == Some(0),
            stdout(&out).contains("invalid_grant"),
        )
    };
    if let Some(mut api) = server {
        stop(&mut api.child).await;
    }
    art.save(
        &format!("{case}-token-exchanges.txt"),
        tap.dump(art.started),
    );
    remember_world_secrets(art, &world, &tap);
    MidRefresh {
        case,
        exit,
        answered,
        store_current,
        next_ok,
        next_invalid_grant,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s3_api_faults_soak() {
    let art = Artifacts::new("s3-soak");
    let which = std::env::var("QBO_PROOF_SOAK_PHASES").unwrap_or_else(|_| "abc".to_owned());
    // C. A process stopped while its token refresh is in flight must not lose the rotated token.
    let mut mid = Vec::new();
    if which.contains('c') {
        for (case, worker, signal) in [
            ("cli-sigint", false, "-INT"),
            ("cli-sigterm", false, "-TERM"),
            ("worker-sigterm", true, "-TERM"),
        ] {
            let m = stop_mid_refresh(&art, case, worker, signal).await;
            art.note(&format!(
                "stopped mid-refresh {}: exit {:?}; the refresh was answered: {}; the store holds \
                 the current refresh token: {}; the next run succeeded: {}, met invalid_grant: {}",
                m.case, m.exit, m.answered, m.store_current, m.next_ok, m.next_invalid_grant
            ));
            mid.push(m);
        }
    }
    for m in &mid {
        assert!(
            !m.answered || m.store_current,
            "{}: stopped while its token refresh was in flight, the process exited without \
             storing the rotated refresh token (an invalid_grant of our own making)",
            m.case
        );
        assert!(
            m.next_ok && !m.next_invalid_grant,
            "{}: the next run after the stop failed",
            m.case
        );
    }
    let mut phases = Vec::new();
    if which.contains('a') {
        phases.push(
            soak_phase(
                &art,
                "rotate-every-refresh",
                Rotation::EveryRefresh,
                "2025-01-01",
                "2025-05-01",
            )
            .await,
        );
    }
    if which.contains('b') {
        phases.push(
            soak_phase(
                &art,
                "rotate-after-24h",
                Rotation::AfterAge(Duration::from_secs(86_400)),
                "2025-07-01",
                "2025-11-01",
            )
            .await,
        );
    }
    let mut parts = Vec::new();
    for p in &phases {
        let t = &p.tokens;
        art.note(&format!(
            "{}: {} in {} rounds; {} windows, {} rows exact; {} requests, {} faults injected, \
             {} bursts ({} 429s injected), {} 429s caused by us, max {} in flight; token: {} \
             refreshes, {} lost answers, {} invalid_grant ({} after a lost answer, {} ours), \
             {} stale presentations, max {} refreshes at once; {} reconnects; {} runs retried \
             for failed windows; audit {}; runs stopped by invalid_grant: {} (stored error \
             names the lost answer in {}), CLI outputs with invalid_grant: {} (name the lost \
             answer: {})",
            p.name,
            secs(p.duration),
            p.rounds,
            p.windows,
            p.rows,
            p.requests,
            p.faults,
            p.bursts,
            p.throttled_in_bursts,
            p.throttled_ours,
            p.max_in_flight,
            t.refreshes,
            t.lost_answers,
            t.invalid_grant,
            t.invalid_grant_after_lost_answer,
            t.invalid_grant_ours,
            t.stale_presentations,
            t.max_concurrent_refreshes,
            p.reconnects,
            p.failed_window_retries,
            p.audit.short(),
            p.grant_runs,
            p.grant_runs_explained,
            p.grant_outputs,
            p.grant_outputs_explained,
        ));
        assert_eq!(
            p.throttled_ours, 0,
            "{}: 429s beyond the injected bursts",
            p.name
        );
        assert!(
            p.max_in_flight <= 10,
            "{}: over 10 requests in flight",
            p.name
        );
        assert_eq!(
            t.invalid_grant_ours, 0,
            "{}: an invalid_grant of our own making",
            p.name
        );
        assert_eq!(
            t.stale_presentations, 0,
            "{}: a replaced refresh token was presented",
            p.name
        );
        assert_eq!(
            t.max_concurrent_live_refreshes, 1,
            "{}: two refreshes with a live token at once",
            p.name
        );
        assert!(
            t.refreshes >= 2,
            "{}: the 30 s access tokens were refreshed",
            p.name
        );
        parts.push(format!(
            "{} ({}): {} windows/{} rows exact, {} requests, {} faults, {} bursts = {} 429s, \
             0 429s ours, max in flight {}, {} refreshes, {} lost answers -> {}, 0 of our own \
             making",
            p.name,
            secs(p.duration),
            p.windows,
            p.rows,
            p.requests,
            p.faults,
            p.bursts,
            p.throttled_in_bursts,
            p.max_in_flight,
            t.refreshes,
            t.lost_answers,
            if t.invalid_grant == 0 {
                "no invalid_grant".to_owned()
            } else {
                format!(
                    "{} invalid_grant, all after a lost answer ({} reconnects)",
                    t.invalid_grant, p.reconnects
                )
            }
        ));
        // With a refresh token that stays valid for a while (Intuit rotates about daily), a
        // lost answer costs nothing: no invalid_grant at all.
        if p.name == "rotate-after-24h" {
            assert_eq!(
                t.invalid_grant, 0,
                "rotate-after-24h: invalid_grant although the refresh token stayed valid"
            );
        }
    }
    // Does the operator learn that the token died because an answer was lost?
    let grant_outputs: usize = phases.iter().map(|p| p.grant_outputs).sum();
    let grant_outputs_explained: usize = phases.iter().map(|p| p.grant_outputs_explained).sum();
    let grant_runs: i64 = phases.iter().map(|p| p.grant_runs).sum();
    let grant_runs_explained: i64 = phases.iter().map(|p| p.grant_runs_explained).sum();
    // What the run itself knows (its stored error names the lost answer) its output says.
    assert!(
        grant_outputs_explained >= grant_runs_explained as usize,
        "{grant_runs_explained} runs stored an error naming the lost answer, but only \
         {grant_outputs_explained} CLI outputs say so"
    );
    // Every invalid_grant of the soak followed a lost answer (the tap shows it): each run it
    // stopped should say so, not only the one whose own refresh lost the answer.
    let explained = grant_outputs_explained == grant_outputs;
    if !explained {
        println!(
            "KNOWN OPEN FINDING F3 (not failing the suite): {grant_outputs} runs were stopped by \
             an invalid_grant that followed a lost token answer; {grant_outputs_explained} say so \
             (their own refresh lost the answer), the others give only the generic advice \
             (\"expired, rotated elsewhere, or from another environment\")"
        );
    }
    let mid_text = if mid.is_empty() {
        String::new()
    } else {
        format!(
            "; stopped (SIGINT/SIGTERM) while a refresh was in flight ({}): rotated token kept \
             and the next run succeeded in {}/{}",
            mid.iter().map(|m| m.case).collect::<Vec<_>>().join(", "),
            mid.len(),
            mid.len()
        )
    };
    let which_phases = phases.iter().map(|p| p.name).collect::<Vec<_>>().join("+");
    art.figure(
        &(format!(
            "{} api-faults-soak ({which_phases}): 3 pipelines at once (3 CLI processes, one \
             shared budget) against 10% 5xx (half HTML), 3% truncated bodies, 0-2 s jitter, 25% \
             lost token answers, 30 s access tokens, XML 429 bursts, Intuit's limits enforced; {}",
            if explained {
                "PASS"
            } else {
                "PASS (open finding F3)"
            },
            parts.join("; ")
        ) + &mid_text
            + &format!(
                "; invalid_grant after a lost answer named as such in {grant_outputs_explained}/\
                 {grant_outputs} CLI outputs and {grant_runs_explained}/{grant_runs} stored run errors"
            )),
    );
}

// ----- scenario 4: concurrency ----------------------------------------------------------------

/// Every page of the UI and every read of the API an operator would look at, kept as artifacts
/// (the secrets scenario searches them).
async fn visit_everything(art: &Artifacts, api: &Server, runs: &[Uuid]) {
    let web = Web::login(&api.base, art).await;
    for path in [
        "/",
        "/pipelines",
        "/runs",
        "/triggers",
        "/secrets",
        "/connect",
    ] {
        let (status, _, _) = web.get(art, path).await;
        assert_eq!(status, 200, "{path}");
    }
    for id in runs.iter().take(5) {
        for path in [
            format!("/runs/{id}"),
            format!("/runs/{id}/live"),
            format!("/runs/{id}/log"),
        ] {
            web.get(art, &path).await;
        }
        for path in [
            format!("/api/v1/runs/{id}"),
            format!("/api/v1/runs/{id}/logs?after=0"),
        ] {
            let (status, _) = api.call(art, reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 200, "{path}");
        }
    }
    for path in [
        "/api/v1/runs?limit=1000",
        "/api/v1/triggers",
        "/api/v1/secrets",
        "/metrics",
    ] {
        let (status, _) = api.call(art, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s4_concurrency() {
    let art = Artifacts::new("s4-concurrency");
    let n = env_usize("QBO_PROOF_TRIGGERS", 50);
    let config = SimConfig {
        customers: 20_000,
        items: 600,
        invoices: 10_000,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 2, 1),
        // Short-lived access tokens and rotation on every refresh: any refresh race shows up
        // as an invalid_grant or a refresh token presented twice.
        access_token_ttl: Duration::from_secs(5),
        rotation: Rotation::EveryRefresh,
        limits: intuit_limits(),
        faults: FaultConfig {
            latency: Duration::from_millis(20),
            latency_jitter: Duration::from_millis(40),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let (world, tap) = proof_world(&art, config, None).await;
    let pool = world.pool().clone();
    install_audit(&pool).await;
    let token = api_token(&world, &art).await;
    // Two servers, each with a scheduler and one worker, and a worker process with two: four
    // workers, two schedulers.
    let mut a = Server::start(&world, &art, "serve-a", 1, &token).await;
    let mut b = Server::start(&world, &art, "serve-b", 1, &token).await;
    let mut c = command(
        &world,
        &art,
        "worker-c",
        &["worker", "--workers", "2", "--poll-ms", "100"],
    )
    .spawn()
    .expect("worker");

    // n one-time triggers, all due at the same second, over overlapping ranges.
    let due = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(20))
        .expect("time")
        .round(jiff::Unit::Second)
        .expect("round");
    let local = due
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let due_text = due.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut specs: Vec<(String, &str, String, String)> = Vec::new();
    for i in 0..n {
        let (pipeline, _, _) = PIPELINES[i % 3];
        // Triggers i and i + 3 (same pipeline) overlap by three of their five days.
        let start = 1 + ((i / 3) * 2) % 24;
        let (from, to) = (
            format!("2026-01-{start:02}"),
            format!("2026-01-{:02}", start + 5),
        );
        let body = json!({"pipeline": pipeline, "kind": "once", "local_time": local, "time_zone": "UTC",
                          "params": {"fecha_inicio": from, "fecha_fin": to}});
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, t) = server
            .call(&art, reqwest::Method::POST, "/api/v1/triggers", Some(&body))
            .await;
        assert_eq!(status, 201, "{t}");
        assert_eq!(t["next_fire_utc"], due_text.as_str(), "{t}");
        specs.push((t["id"].as_str().expect("id").to_owned(), pipeline, from, to));
    }
    assert!(
        jiff::Timestamp::now() < due,
        "creating {n} triggers took longer than the 20 s before they are due"
    );

    // All fire, and all their runs end.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let fired = count(
            &pool,
            "SELECT count(*) FROM ops.triggers WHERE state = 'fired'",
        )
        .await;
        let open = runs_left_open(&pool).await;
        let runs = count(&pool, "SELECT count(*) FROM ops.runs").await;
        if fired == n as i64 && open == 0 && runs >= n as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 15 min: {fired} of {n} triggers fired, {runs} runs, {open} open"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_done = jiff::Timestamp::now();

    // Exactly one run per trigger, as the trigger said, all succeeded.
    let n64 = n as i64;
    for (sql, want) in [
        ("SELECT count(*) FROM ops.runs", n64),
        (
            "SELECT count(*) FROM ops.runs WHERE trigger = 'trigger'",
            n64,
        ),
        ("SELECT count(DISTINCT trigger_id) FROM ops.runs", n64),
        (
            "SELECT count(*) FROM ops.runs WHERE status = 'succeeded'",
            n64,
        ),
        (
            "SELECT count(*) FROM ops.trigger_occurrences WHERE outcome = 'fired'",
            n64,
        ),
        ("SELECT count(*) FROM ops.trigger_occurrences", n64),
        (
            "SELECT count(*) FROM ops.triggers t WHERE t.state <> 'fired' OR t.enabled \
             OR NOT EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = t.last_run_id AND r.trigger_id = t.id)",
            0,
        ),
        (
            "SELECT count(*) FROM ops.runs r JOIN ops.triggers t ON t.id = r.trigger_id \
             WHERE r.pipeline <> t.pipeline OR r.fecha_inicio::text <> t.params->>'fecha_inicio' \
             OR r.fecha_fin::text <> t.params->>'fecha_fin'",
            0,
        ),
    ] {
        assert_eq!(count(&pool, sql).await, want, "{sql}");
    }
    let (first_ms, last_ms): (f64, f64) = sqlx::query_as(
        "SELECT (extract(epoch FROM min(created_at) - $1::timestamptz) * 1000)::float8, \
                (extract(epoch FROM max(created_at) - $1::timestamptz) * 1000)::float8 FROM ops.runs",
    )
    .bind(&due_text)
    .fetch_one(&pool)
    .await
    .expect("fire times");
    let workers_used = count(&pool, "SELECT count(DISTINCT worker_id) FROM ops.runs").await;
    let waits = count(
        &pool,
        "SELECT count(*) FROM ops.run_logs WHERE text LIKE '%is being loaded by run%'",
    )
    .await;

    // The tables hold exactly the simulator's rows of the union of the triggers' ranges.
    let mut rows = 0;
    for (pipeline, table, entity) in PIPELINES {
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for (_, p, from, to) in &specs {
            if *p == pipeline {
                expected.extend(world.expected_ids(entity, from, to));
            }
        }
        let expected: Vec<String> = expected.into_iter().collect();
        assert_eq!(world.loaded_ids(table).await, expected, "{table}");
        world.assert_payloads_match(table, entity).await;
        rows += expected.len();
    }
    let audit_result = assert_audit_clean(&art, &pool, "concurrency").await;

    // No refresh race: one refresh at a time, no token presented twice, no invalid_grant.
    let t = tap.figures();
    let stats = world.sim.state().stats();
    let stored_refreshes = count(
        &pool,
        "SELECT coalesce(sum(refresh_count), 0)::bigint FROM ops.oauth_tokens",
    )
    .await;
    art.save("token-exchanges.txt", tap.dump(art.started));
    assert_eq!(
        t.invalid_grant, 0,
        "invalid_grant with 4 workers and 2 schedulers"
    );
    assert_eq!(
        t.stale_presentations, 0,
        "a replaced refresh token was presented"
    );
    assert_eq!(t.max_concurrent_refreshes, 1, "two refreshes at once");
    assert_eq!(t.max_concurrent_live_refreshes, 1, "two refreshes at once");
    assert_eq!(t.lost_answers, 0);
    assert_eq!(
        stats.token_requests as usize, t.requests,
        "every token request went through the tap"
    );
    assert_eq!(t.answered_ok, t.refreshes);
    assert_eq!(
        stored_refreshes as usize, t.refreshes,
        "each refresh stored once"
    );
    assert_eq!(stats.throttled, 0, "throttled without injected faults");

    let runs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM ops.runs ORDER BY created_at")
        .fetch_all(&pool)
        .await
        .expect("runs");
    visit_everything(&art, &a, &runs).await;
    stop(&mut c).await;
    stop(&mut a.child).await;
    stop(&mut b.child).await;
    remember_world_secrets(&art, &world, &tap);
    art.figure(&format!(
        "PASS concurrency: {n} one-time triggers due at the same second (API, zone UTC, \
         overlapping ranges of the 3 pipelines) with 2 serve schedulers and 4 workers: {n} runs \
         (first created {first_ms:.0} ms, last {last_ms:.0} ms after due), 0 duplicates, 0 lost, \
         {n}/{n} succeeded, all done {:.1}s after due, executed by all {workers_used} processes \
         holding workers, {waits} waits for a window another run was loading; {rows} rows exact; audit {} ; tokens: {} \
         refreshes (5 s access tokens, rotation on every refresh), at most {} at once, 0 tokens \
         presented twice, 0 invalid_grant, simulator counted {} token requests = {} seen, {} \
         stored refreshes; 0 throttled",
        (all_done.as_millisecond() - due.as_millisecond()) as f64 / 1000.0,
        audit_result.short(),
        t.refreshes,
        t.max_concurrent_refreshes,
        stats.token_requests,
        t.requests,
        stored_refreshes,
    ));
}

// ----- scenario 5: hostile input --------------------------------------------------------------

/// What was written where a hostile input must write nothing.
async fn write_snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(' | ', \
           'runs=' || (SELECT count(*) FROM ops.runs), \
           'run_windows=' || (SELECT count(*) FROM ops.run_windows), \
           'triggers=' || (SELECT count(*) FROM ops.triggers), \
           'secrets=' || (SELECT count(*) FROM ops.secrets), \
           'secret_values=' || (SELECT md5(coalesce(string_agg(name || ciphertext::text, ',' ORDER BY name), '')) FROM ops.secrets), \
           'companies=' || (SELECT md5(coalesce(string_agg(realm_id || client_id || client_secret_enc::text, ',' ORDER BY realm_id), '')) FROM ops.companies), \
           'tokens=' || (SELECT md5(coalesce(string_agg(refresh_token_enc::text, ','), '')) FROM ops.oauth_tokens), \
           'api_tokens=' || (SELECT count(*) FROM ops.api_tokens), \
           'users=' || (SELECT count(*) FROM ops.users))",
    )
    .fetch_one(pool)
    .await
    .expect("snapshot")
}

struct HostileRow {
    surface: &'static str,
    target: String,
    input: String,
    expected: String,
    got: String,
    verdict: String,
}

/// The table of hostile inputs: each one's answer, compared with the right one, and whether
/// anything was written.
struct Hostile {
    pool: PgPool,
    before: String,
    rows: Vec<HostileRow>,
    failures: Vec<String>,
    open: Vec<String>,
}

/// A known defect: the row shows it; the rest of the row's checks still apply.
struct Known {
    id: &'static str,
    now: &'static str,
}

impl Hostile {
    async fn new(pool: &PgPool) -> Self {
        Self {
            pool: pool.clone(),
            before: write_snapshot(pool).await,
            rows: Vec::new(),
            failures: Vec::new(),
            open: Vec::new(),
        }
    }

    /// Records one case: `got` must be `expected` (or, for a known open finding, what the
    /// product does today), `clean` its other checks, and nothing may have been written.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &mut self,
        surface: &'static str,
        target: &str,
        input: &str,
        expected: &str,
        got: String,
        clean: Result<(), String>,
        known: Option<Known>,
    ) {
        let now = write_snapshot(&self.pool).await;
        let wrote = now != self.before;
        self.before = now;
        let n = self.rows.len() + 1;
        let mut verdict = Vec::new();
        if got != expected {
            match &known {
                Some(k) if got == k.now => {
                    verdict.push(format!("open finding {}", k.id));
                    self.open
                        .push(format!("#{n} {target} {input}: {got} ({})", k.id));
                }
                _ => {
                    verdict.push(format!("FAIL: expected {expected}"));
                    self.failures.push(format!(
                        "#{n} {surface} {target} [{input}]: expected {expected}, got {got}"
                    ));
                }
            }
        } else if let Some(k) = &known {
            verdict.push(format!("{} fixed", k.id));
        }
        if let Err(why) = clean {
            verdict.push(format!("FAIL: {why}"));
            self.failures
                .push(format!("#{n} {surface} {target} [{input}]: {why}"));
        }
        if wrote {
            verdict.push("FAIL: wrote".to_owned());
            self.failures.push(format!(
                "#{n} {surface} {target} [{input}]: something was written"
            ));
        }
        if verdict.is_empty() {
            verdict.push("ok, nothing written".to_owned());
        }
        self.rows.push(HostileRow {
            surface,
            target: target.to_owned(),
            input: input.to_owned(),
            expected: expected.to_owned(),
            got,
            verdict: verdict.join("; "),
        });
    }

    fn markdown(&self) -> String {
        let cell = |s: &str| {
            let short: String = if s.chars().count() > 70 {
                format!(
                    "{}… ({} chars)",
                    s.chars().take(40).collect::<String>(),
                    s.chars().count()
                )
            } else {
                s.to_owned()
            };
            short.replace('|', "\\|").replace('\n', " ")
        };
        let mut out = String::from(
            "| # | surface | target | hostile input | right answer | answer | verdict |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for (i, r) in self.rows.iter().enumerate() {
            out.push_str(&format!(
                "| {} | {} | `{}` | {} | {} | {} | {} |\n",
                i + 1,
                r.surface,
                cell(&r.target),
                cell(&r.input),
                cell(&r.expected),
                cell(&r.got),
                cell(&r.verdict)
            ));
        }
        out
    }
}

/// Problems of an answer's text: SQL errors, panics or traces. (Echoing a bounded piece of the
/// rejected value is fine: it is what tells the person what was wrong.)
fn text_problems(text: &str) -> Result<(), String> {
    let lower = text.to_lowercase();
    for bad in [
        "syntax error at",
        "sqlstate",
        "error returned from database",
        "panicked",
        "stack backtrace",
        "rust_backtrace",
    ] {
        if lower.contains(bad) {
            return Err(format!("the answer contains `{bad}`"));
        }
    }
    Ok(())
}

/// Problems of an HTML page: those of [`text_problems`], and hostile markup echoed unescaped.
fn html_problems(html: &str) -> Result<(), String> {
    text_problems(html)?;
    for bad in ["<script>alert", "onmouseover='", "\"><script"] {
        if html.contains(bad) {
            return Err(format!("the page contains `{bad}` unescaped"));
        }
    }
    Ok(())
}

async fn hostile_cli(
    h: &mut Hostile,
    world: &World,
    art: &Artifacts,
    input: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) {
    let out = match stdin {
        Some(value) => secrets_set(world, art, "hostile-cli", args[2], value).await,
        None => run_to_end(world, art, "hostile-cli", args, Duration::from_secs(120)).await,
    };
    let err = stderr(&out);
    let got = format!(
        "exit {}",
        out.status
            .code()
            .map_or("signal".to_owned(), |c| c.to_string())
    );
    let clean = if err.lines().count() != 1 || !err.starts_with("error: ") {
        Err(format!(
            "stderr is not one `error:` line ({} lines)",
            err.lines().count()
        ))
    } else if !stdout(&out).is_empty() {
        Err("something on stdout".to_owned())
    } else if err.len() > 400 {
        Err(format!("a {}-byte message", err.len()))
    } else {
        text_problems(&err)
    };
    let target = format!("qbo-backfill {}", args[..args.len().min(2)].join(" "));
    h.record("CLI", &target, input, "exit 2", got, clean, None)
        .await;
}

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

/// One JSON API call with a hostile input; `auth` replaces the API token when given.
#[allow(clippy::too_many_arguments)]
async fn hostile_api(
    h: &mut Hostile,
    api: &Server,
    art: &Artifacts,
    method: reqwest::Method,
    path: &str,
    body: Body,
    auth: Option<&str>,
    input: &str,
    expected: &str,
    known: Option<Known>,
) {
    let mut req = api
        .http
        .request(method.clone(), format!("{}{path}", api.base));
    req = match auth {
        Some(value) => req.header("authorization", value),
        None => req.bearer_auth(&api.token),
    };
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(bytes) => req.header("content-type", "application/json").body(bytes),
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    art.save(
        "hostile-api.txt",
        format!("{method} {path}\n{status}\n{text}"),
    );
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v["error"]["code"].as_str())
        .unwrap_or(if status >= 400 {
            "(no JSON error)"
        } else {
            "-"
        })
        .to_owned();
    let got = format!("{status} {code}");
    let clean = text_problems(&text).and_then(|()| {
        let message = parsed
            .as_ref()
            .and_then(|v| v["error"]["message"].as_str())
            .unwrap_or_default();
        if message.chars().count() > 400 {
            Err(format!("a {}-character message", message.chars().count()))
        } else {
            Ok(())
        }
    });
    let shown_path: String = if path.len() > 70 {
        format!("{}… ({} chars)", &path[..50], path.len())
    } else {
        path.to_owned()
    };
    h.record(
        "JSON API",
        &format!("{method} {shown_path}"),
        input,
        expected,
        got,
        clean,
        known,
    )
    .await;
}

/// What a page answered, in the table's words.
fn web_outcome(status: u16, location: &str, body: &str) -> String {
    match status {
        303 => format!("303 → {location}"),
        200 if body.contains("class=\"error\"") => "200, form error shown".to_owned(),
        200 => "200".to_owned(),
        403 => "403 refused".to_owned(),
        s => s.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn hostile_form(
    h: &mut Hostile,
    web: &Web,
    art: &Artifacts,
    path: &str,
    fields: &[(&str, &str)],
    csrf: Option<&str>,
    input: &str,
    expected: &str,
    known: Option<Known>,
) {
    let (status, location, body) = web.post(art, path, fields, csrf).await;
    let got = web_outcome(status, &location, &body);
    h.record(
        "web form",
        &format!("POST {path}"),
        input,
        expected,
        got,
        html_problems(&body),
        known,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s5_hostile_input() {
    let art = Artifacts::new("s5-hostile");
    let (world, tap) = proof_world(&art, crate::harness::sim_config(200), None).await;
    let pool = world.pool().clone();
    let token = api_token(&world, &art).await;
    // No workers: a hostile run that slipped through would stay queued, and be seen.
    let mut api = Server::start(&world, &art, "serve", 0, &token).await;
    let web = Web::login(&api.base, &art).await;
    let mut h = Hostile::new(&pool).await;
    let long = "a".repeat(10_000);
    let sql = "qb_customers_backfill'; DROP TABLE ops.runs; --";
    let script = "<script>alert(1)</script>";
    let rtl = "\u{202E}2026-01-01";
    let emoji = "2026-01-01🎉";

    // --- CLI arguments.
    let r = |p: &'static str, a: &'static str, b: &'static str| -> Vec<String> {
        ["run", p, "--fecha-inicio", a, "--fecha-fin", b]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let cli_cases: Vec<(&str, Vec<String>)> = vec![
        (
            "reversed range 2026-01-31..2026-01-01",
            r(CUSTOMERS, "2026-01-31", "2026-01-01"),
        ),
        (
            "empty range 2026-01-01..2026-01-01",
            r(CUSTOMERS, "2026-01-01", "2026-01-01"),
        ),
        (
            "impossible date 2026-02-30",
            r(CUSTOMERS, "2026-02-30", "2026-03-01"),
        ),
        ("year 0000", r(CUSTOMERS, "0000-01-01", "0000-01-02")),
        (
            "126-year range 1900-01-01..2026-01-01",
            r(CUSTOMERS, "1900-01-01", "2026-01-01"),
        ),
        (
            "101-year range 1925-01-01..2026-01-01",
            r(CUSTOMERS, "1925-01-01", "2026-01-01"),
        ),
        (
            "0001-01-01..9999-12-31",
            r(CUSTOMERS, "0001-01-01", "9999-12-31"),
        ),
        (
            "unknown pipeline qb_widgets_backfill",
            r("qb_widgets_backfill", "2026-01-01", "2026-01-02"),
        ),
        ("SQL injection in the pipeline", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[1] = sql.to_owned();
            v
        }),
        (
            "SQL injection in --fecha-inicio",
            r(
                CUSTOMERS,
                "2026-01-01'; DROP TABLE raw.qb_customers; --",
                "2026-01-02",
            ),
        ),
        ("script in the pipeline", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[1] = script.to_owned();
            v
        }),
        ("RTL override before the date", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[3] = rtl.to_owned();
            v
        }),
        ("emoji after the date", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[3] = emoji.to_owned();
            v
        }),
        ("full-width digits ２０２６-０１-０１", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[3] = "２０２６-０１-０１".to_owned();
            v
        }),
        (
            "a time and offset 2026-01-01T00:00:00Z",
            r(CUSTOMERS, "2026-01-01T00:00:00Z", "2026-01-02"),
        ),
        ("10,000-character pipeline", {
            let mut v = r(CUSTOMERS, "2026-01-01", "2026-01-02");
            v[1] = long.clone();
            v
        }),
        (
            "retry of a run id that is SQL",
            vec!["retry".into(), "1'; DELETE FROM ops.runs; --".into()],
        ),
        (
            "retry of an unknown run id",
            vec!["retry".into(), Uuid::new_v4().to_string()],
        ),
        (
            "runs --limit -1",
            vec!["runs".into(), "--limit".into(), "-1".into()],
        ),
        (
            "secrets set with a name that is SQL",
            vec![
                "secrets".into(),
                "set".into(),
                "X'; DROP TABLE ops.secrets; --".into(),
            ],
        ),
    ];
    for (input, args) in &cli_cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hostile_cli(&mut h, &world, &art, input, &args, None).await;
    }
    for (input, value) in [
        (
            "secret value with a NUL byte (stdin)",
            b"abc\0def".as_slice(),
        ),
        (
            "secret value with an escape sequence (stdin)",
            b"abc\x1b[31mdef".as_slice(),
        ),
        (
            "secret value that is not UTF-8 (stdin)",
            b"\xff\xfe-secret".as_slice(),
        ),
    ] {
        hostile_cli(
            &mut h,
            &world,
            &art,
            input,
            &["secrets", "set", "QBO_CLIENT_SECRET"],
            Some(value),
        )
        .await;
    }

    // --- JSON API.
    let runs = "/api/v1/runs";
    let run = |p: &str, a: &str, b: &str| {
        Body::Json(json!({"pipeline": p, "fecha_inicio": a, "fecha_fin": b}))
    };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let put = reqwest::Method::PUT;
    for (body, input, expected) in [
        (run(CUSTOMERS, "2026-01-31", "2026-01-01"), "reversed range", "422 invalid_range"),
        (run(CUSTOMERS, "2026-02-30", "2026-03-01"), "impossible date 2026-02-30", "422 invalid_date"),
        (run(CUSTOMERS, "1900-01-01", "2026-01-01"), "126-year range", "422 invalid_range"),
        (run(CUSTOMERS, "1925-01-01", "2026-01-01"), "101-year range", "422 invalid_range"),
        (run("qb_widgets_backfill", "2026-01-01", "2026-01-02"), "unknown pipeline", "422 unknown_pipeline"),
        (run(sql, "2026-01-01", "2026-01-02"), "SQL injection in pipeline", "422 unknown_pipeline"),
        (run(CUSTOMERS, "2026-01-01' OR '1'='1", "2026-01-02"), "SQL injection in fecha_inicio", "422 invalid_date"),
        (run(CUSTOMERS, "2026-01-01", script), "script in fecha_fin", "422 invalid_date"),
        (run("qb_customers_backfill\u{0}", "2026-01-01", "2026-01-02"), "NUL (\\u0000) in pipeline", "422 unknown_pipeline"),
        (run(CUSTOMERS, rtl, "2026-01-02"), "RTL override in fecha_inicio", "422 invalid_date"),
        (run(CUSTOMERS, emoji, "2026-01-02"), "emoji in fecha_inicio", "422 invalid_date"),
        (run(&long, "2026-01-01", "2026-01-02"), "10,000-character pipeline", "422 unknown_pipeline"),
        (Body::Json(json!({"pipeline": CUSTOMERS, "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02", "realm_id": "1' OR '1'='1"})), "SQL injection in realm_id", "422 unknown_company"),
        (Body::Json(json!({"pipeline": CUSTOMERS, "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02", "realm_id": script})), "script in realm_id", "422 unknown_company"),
        (Body::Json(json!({"pipeline": CUSTOMERS, "fecha_inicio": 20260101, "fecha_fin": "2026-01-02"})), "wrong type: a number for fecha_inicio", "422 invalid_request"),
        (Body::Json(json!({"pipeline": [CUSTOMERS], "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"})), "wrong type: an array for pipeline", "422 invalid_request"),
        (Body::Json(json!({"pipeline": null, "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"})), "wrong type: null pipeline", "422 invalid_request"),
        (Body::Json(json!({"pipeline": CUSTOMERS, "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02", "admin": true})), "an unknown field", "422 invalid_request"),
        (Body::Json(json!([1, 2, 3])), "a JSON array instead of an object", "422 invalid_request"),
        (Body::Raw(b"{\"pipeline\": \"qb_customers_backfill\", \"fecha_inicio\": \"2026-01-01\",".to_vec()), "malformed JSON (cut)", "400 invalid_json"),
        (Body::Raw(b"{\"pipeline\": \"\\ud800\", \"fecha_inicio\": \"2026-01-01\", \"fecha_fin\": \"2026-01-02\"}".to_vec()), "lone surrogate \\ud800 in a JSON escape", "400 invalid_json"),
        (Body::Raw(b"{\"pipeline\": \"qb_customers_backfill\", \"pipeline\": \"qb_items_backfill\", \"fecha_inicio\": \"2026-01-01\", \"fecha_fin\": \"2026-01-02\"}".to_vec()), "the same key twice", "422 invalid_request"),
        (Body::Raw(format!("{}1{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()), "5,000 nested arrays", "422 invalid_request"),
        (Body::Raw(b"\xff\xfe{}".to_vec()), "a body that is not UTF-8", "400 invalid_json"),
        (Body::Raw(Vec::new()), "an empty body", "400 invalid_json"),
    ] {
        hostile_api(&mut h, &api, &art, post.clone(), runs, body, None, input, expected, None).await;
    }
    let oversized = json!({"pipeline": "a".repeat(70 * 1024), "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"});
    hostile_api(
        &mut h,
        &api,
        &art,
        post.clone(),
        runs,
        Body::Json(oversized),
        None,
        "a 70 KiB body (limit 64 KiB)",
        "413 body_too_large",
        None,
    )
    .await;
    for (auth, input) in [
        (Some(""), "no API token"),
        (
            Some("Bearer qbt_' OR '1'='1"),
            "SQL injection as the API token",
        ),
        (
            Some(format!("Bearer {}", "q".repeat(10_000)).as_str()),
            "a 10,000-character API token",
        ),
    ] {
        let auth = auth.map(str::to_owned);
        hostile_api(
            &mut h,
            &api,
            &art,
            post.clone(),
            runs,
            run(CUSTOMERS, "2026-01-01", "2026-01-02"),
            auth.as_deref(),
            input,
            "401 unauthorized",
            None,
        )
        .await;
    }
    let trig = |v: Value| Body::Json(v);
    let once = |zone: &str, local: &str, from: &str, to: &str| {
        trig(
            json!({"pipeline": CUSTOMERS, "kind": "once", "local_time": local, "time_zone": zone,
                    "params": {"fecha_inicio": from, "fecha_fin": to}}),
        )
    };
    for (body, input, expected) in [
        (
            once(
                "Mars/Olympus",
                "2030-01-01T10:00",
                "2026-01-01",
                "2026-01-02",
            ),
            "unknown zone Mars/Olympus",
            "422 invalid_time_zone",
        ),
        (
            once(
                "UTC'; DROP TABLE ops.triggers; --",
                "2030-01-01T10:00",
                "2026-01-01",
                "2026-01-02",
            ),
            "SQL injection in time_zone",
            "422 invalid_time_zone",
        ),
        (
            once(
                "../../../../etc/passwd",
                "2030-01-01T10:00",
                "2026-01-01",
                "2026-01-02",
            ),
            "path traversal in time_zone",
            "422 invalid_time_zone",
        ),
        (
            once(
                "America/Guayaquil🎉",
                "2030-01-01T10:00",
                "2026-01-01",
                "2026-01-02",
            ),
            "emoji in time_zone",
            "422 invalid_time_zone",
        ),
        (
            once("UTC", "2030-02-30T10:00", "2026-01-01", "2026-01-02"),
            "impossible local_time 2030-02-30",
            "422 invalid_local_time",
        ),
        (
            once("UTC", script, "2026-01-01", "2026-01-02"),
            "script in local_time",
            "422 invalid_local_time",
        ),
        (
            once("UTC", "2030-01-01T10:00", "1900-01-01", "2026-01-01"),
            "126-year params",
            "422 invalid_params",
        ),
        (
            once("UTC", "2030-01-01T10:00", "2026-01-31", "2026-01-01"),
            "reversed params",
            "422 invalid_params",
        ),
        (
            once(
                "UTC",
                "2030-01-01T10:00",
                "2026-01-01' OR 1=1 --",
                "2026-01-02",
            ),
            "SQL injection in params",
            "422 invalid_params",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "cron", "cron": "* * * * *; rm -rf /", "time_zone": "UTC", "params": {"fecha_inicio": "yesterday", "fecha_fin": "today"}}),
            ),
            "shell injection in cron",
            "422 invalid_cron",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "cron", "cron": script, "time_zone": "UTC", "params": {"fecha_inicio": "yesterday", "fecha_fin": "today"}}),
            ),
            "script in cron",
            "422 invalid_cron",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "sometimes", "local_time": "2030-01-01T10:00", "params": {"fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"}}),
            ),
            "unknown kind",
            "422 invalid_kind",
        ),
        (
            trig(
                json!({"pipeline": sql, "kind": "once", "local_time": "2030-01-01T10:00", "params": {"fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"}}),
            ),
            "SQL injection in pipeline",
            "422 unknown_pipeline",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "once", "local_time": "2030-01-01T10:00", "params": "2026-01-01..2026-01-02"}),
            ),
            "wrong type: params is a string",
            "422 invalid_params",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "once", "local_time": "2030-01-01T10:00", "time_zone": "UTC\u{0}", "params": {"fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"}}),
            ),
            "NUL in time_zone",
            "422 invalid_time_zone",
        ),
        (
            trig(
                json!({"pipeline": CUSTOMERS, "kind": "once", "local_time": "2030-01-01T10:00", "time_zone": long, "params": {"fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-02"}}),
            ),
            "10,000-character time_zone",
            "422 invalid_time_zone",
        ),
    ] {
        hostile_api(
            &mut h,
            &api,
            &art,
            post.clone(),
            "/api/v1/triggers",
            body,
            None,
            input,
            expected,
            None,
        )
        .await;
    }
    hostile_api(
        &mut h,
        &api,
        &art,
        reqwest::Method::PATCH,
        "/api/v1/triggers/1'%3B%20DROP%20TABLE%20ops.triggers%3B--",
        Body::Json(json!({"enabled": true})),
        None,
        "SQL injection as the trigger id",
        "404 trigger_not_found",
        None,
    )
    .await;
    hostile_api(
        &mut h,
        &api,
        &art,
        reqwest::Method::DELETE,
        &format!("/api/v1/triggers/{}", Uuid::new_v4()),
        Body::None,
        None,
        "an unknown trigger id",
        "404 trigger_not_found",
        None,
    )
    .await;
    for (path, body, input, expected) in [
        (
            "/api/v1/secrets/bad%20name",
            json!({"value": "x1234567"}),
            "a name with a space",
            "422 invalid_secret_name",
        ),
        (
            "/api/v1/secrets/QBO_X'%3B%20DROP%20TABLE%20ops.secrets%3B--",
            json!({"value": "x1234567"}),
            "SQL injection in the name",
            "422 invalid_secret_name",
        ),
        (
            "/api/v1/secrets/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            json!({"value": "x1234567"}),
            "script as the name",
            "422 invalid_secret_name",
        ),
        (
            "/api/v1/secrets/QBO_%D0%A1%D0%95%D0%9A%D0%A0%D0%95%D0%A2",
            json!({"value": "x1234567"}),
            "Cyrillic letters in the name",
            "422 invalid_secret_name",
        ),
        (
            "/api/v1/secrets/MY_NOTE",
            json!({"value": "abc\u{0}def"}),
            "NUL in the value",
            "422 invalid_secret_value",
        ),
        (
            "/api/v1/secrets/MY_NOTE",
            json!({"value": "abc\u{1b}[31mdef"}),
            "an escape sequence in the value",
            "422 invalid_secret_value",
        ),
        (
            "/api/v1/secrets/MY_NOTE",
            json!({"value": "line one\nline two"}),
            "a newline in the value",
            "422 invalid_secret_value",
        ),
        (
            "/api/v1/secrets/MY_NOTE",
            json!({"value": 12345678}),
            "wrong type: a number as the value",
            "422 invalid_request",
        ),
        (
            "/api/v1/secrets/MY_NOTE",
            json!({}),
            "no value",
            "422 invalid_request",
        ),
        (
            "/api/v1/secrets/QBO_REFRESH_TOKEN",
            json!({"value": ""}),
            "an empty refresh token",
            "422 invalid_secret_value",
        ),
    ] {
        hostile_api(
            &mut h,
            &api,
            &art,
            put.clone(),
            path,
            Body::Json(body),
            None,
            input,
            expected,
            None,
        )
        .await;
    }
    let long_name = format!("/api/v1/secrets/{}", "A".repeat(10_000));
    hostile_api(
        &mut h,
        &api,
        &art,
        put.clone(),
        &long_name,
        Body::Json(json!({"value": "x1234567"})),
        None,
        "a 10,000-character name",
        "422 invalid_secret_name",
        None,
    )
    .await;
    hostile_api(
        &mut h,
        &api,
        &art,
        put.clone(),
        "/api/v1/secrets/MY_NOTE",
        Body::Json(json!({"value": "v".repeat(70 * 1024)})),
        None,
        "a 70 KiB value (limit 64 KiB)",
        "413 body_too_large",
        None,
    )
    .await;
    for (path, input, expected) in [
        ("/api/v1/runs?limit=abc", "limit=abc", "422 invalid_query"),
        ("/api/v1/runs?limit=-1", "limit=-1", "422 invalid_query"),
        (
            "/api/v1/runs?limit=99999999999999999999999",
            "limit beyond 64 bits",
            "422 invalid_query",
        ),
        (
            "/api/v1/runs?status=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "script in status",
            "422 invalid_query",
        ),
        (
            "/api/v1/runs?before=1'%20OR%20'1'%3D'1",
            "SQL injection in before",
            "422 invalid_query",
        ),
        (
            "/api/v1/runs?pipeline=x'%3B%20DROP%20TABLE%20ops.runs%3B--",
            "SQL injection in pipeline",
            "422 invalid_query",
        ),
        (
            "/api/v1/runs?pipeline=qb%00x",
            "NUL byte in pipeline",
            "422 invalid_query",
        ),
        (
            "/api/v1/runs/..%2F..%2Fetc%2Fpasswd",
            "path traversal as the run id",
            "404 not_found",
        ),
        (
            "/api/v1/runs/00000000-0000-0000-0000-000000000000/logs?after=-5",
            "after=-5 on an unknown run",
            "422 invalid_query",
        ),
    ] {
        hostile_api(
            &mut h,
            &api,
            &art,
            get.clone(),
            path,
            Body::None,
            None,
            input,
            expected,
            None,
        )
        .await;
    }

    // --- Web forms (a logged-in operator's session and its CSRF token).
    let form_run = |p: &'static str, a: &'static str, b: &'static str| {
        vec![("pipeline", p), ("fecha_inicio", a), ("fecha_fin", b)]
    };
    let long_static: &'static str = Box::leak(long.clone().into_boxed_str());
    for (fields, input) in [
        (
            form_run(CUSTOMERS, "2026-01-31", "2026-01-01"),
            "reversed range",
        ),
        (
            form_run(CUSTOMERS, "2026-02-30", "2026-03-01"),
            "impossible date",
        ),
        (
            form_run(CUSTOMERS, "1900-01-01", "2026-01-01"),
            "126-year range",
        ),
        (
            form_run("qb_widgets_backfill", "2026-01-01", "2026-01-02"),
            "unknown pipeline",
        ),
        (
            form_run(
                "qb_customers_backfill'; DROP TABLE ops.runs; --",
                "2026-01-01",
                "2026-01-02",
            ),
            "SQL injection in pipeline",
        ),
        (
            form_run(CUSTOMERS, "<script>alert(1)</script>", "2026-01-02"),
            "script in fecha_inicio",
        ),
        (
            form_run(CUSTOMERS, "2026-01-01\u{0}", "2026-01-02"),
            "NUL in fecha_inicio",
        ),
        (
            form_run(CUSTOMERS, "\u{202E}2026-01-01", "2026-01-02"),
            "RTL override in fecha_inicio",
        ),
        (
            form_run(long_static, "2026-01-01", "2026-01-02"),
            "10,000-character pipeline",
        ),
        (
            vec![
                ("pipeline", CUSTOMERS),
                ("fecha_inicio", "2026-01-01"),
                ("fecha_fin", "2026-01-02"),
                ("realm_id", "1' OR '1'='1"),
            ],
            "SQL injection in realm_id",
        ),
    ] {
        hostile_form(
            &mut h,
            &web,
            &art,
            "/runs",
            &fields,
            None,
            input,
            "200, form error shown",
            None,
        )
        .await;
    }
    let good_run = form_run(CUSTOMERS, "2026-01-01", "2026-01-02");
    hostile_form(
        &mut h,
        &web,
        &art,
        "/runs",
        &good_run,
        Some("-"),
        "no CSRF token",
        "403 refused",
        None,
    )
    .await;
    hostile_form(
        &mut h,
        &web,
        &art,
        "/runs",
        &good_run,
        Some("forged-token"),
        "a forged CSRF token",
        "403 refused",
        None,
    )
    .await;
    hostile_form(
        &mut h,
        &web,
        &art,
        "/runs",
        &good_run,
        Some(web.login_csrf.as_str()),
        "the login form's CSRF token",
        "403 refused",
        None,
    )
    .await;
    let trigger_form = |zone: &'static str, local: &'static str, from: &'static str| {
        vec![
            ("pipeline", CUSTOMERS),
            ("kind", "once"),
            ("local_time", local),
            ("time_zone", zone),
            ("fecha_inicio", from),
            ("fecha_fin", "2026-01-02"),
        ]
    };
    for (fields, input) in [
        (
            trigger_form("Mars/Olympus", "2030-01-01T10:00", "2026-01-01"),
            "unknown zone",
        ),
        (
            trigger_form(
                "UTC'; DROP TABLE ops.triggers; --",
                "2030-01-01T10:00",
                "2026-01-01",
            ),
            "SQL injection in time_zone",
        ),
        (
            trigger_form("UTC", "2030-02-30T10:00", "2026-01-01"),
            "impossible local_time",
        ),
        (
            trigger_form("UTC", "<script>alert(1)</script>", "2026-01-01"),
            "script in local_time",
        ),
        (
            trigger_form("UTC", "2030-01-01T10:00", "1900-01-01"),
            "126-year params",
        ),
        (
            vec![
                ("pipeline", CUSTOMERS),
                ("kind", "cron"),
                ("cron", "<script>alert(1)</script>' onmouseover='y"),
                ("time_zone", "UTC"),
                ("fecha_inicio", "yesterday"),
                ("fecha_fin", "today"),
            ],
            "script in cron",
        ),
    ] {
        hostile_form(
            &mut h,
            &web,
            &art,
            "/triggers",
            &fields,
            None,
            input,
            "200, form error shown",
            None,
        )
        .await;
    }
    for (fields, input) in [
        (
            vec![
                ("name", "X'; DROP TABLE ops.secrets; --"),
                ("value", "x1234567"),
            ],
            "SQL injection in the name",
        ),
        (
            vec![("name", "<script>alert(1)</script>"), ("value", "x1234567")],
            "script as the name",
        ),
        (
            vec![("name", "MY_NOTE"), ("value", "abc\u{0}def")],
            "NUL in the value",
        ),
        (
            vec![("name", "MY_NOTE"), ("value", "abc\u{1b}[31mdef")],
            "an escape sequence in the value",
        ),
    ] {
        hostile_form(
            &mut h,
            &web,
            &art,
            "/secrets",
            &fields,
            None,
            input,
            "200, form error shown",
            None,
        )
        .await;
    }
    hostile_form(
        &mut h,
        &web,
        &art,
        "/secrets",
        &[("name", "MY_NOTE"), ("value", "x1234567")],
        Some("-"),
        "no CSRF token",
        "403 refused",
        None,
    )
    .await;
    let big = "v".repeat(70 * 1024);
    let (status, location, body) = web
        .post(
            &art,
            "/secrets",
            &[("name", "MY_NOTE"), ("value", &big)],
            None,
        )
        .await;
    h.record(
        "web form",
        "POST /secrets",
        "a 70 KiB value (limit 64 KiB)",
        "413",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;
    let (status, location, body) = web
        .get(
            &art,
            "/runs?status=%3Cscript%3Ealert(1)%3C%2Fscript%3E&pipeline=x'%20OR%201%3D1",
        )
        .await;
    h.record(
        "web page",
        "GET /runs",
        "script and SQL in the filters",
        "200",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;
    let (status, location, body) = web.get(&art, "/runs/1'%20OR%20'1'%3D'1").await;
    h.record(
        "web page",
        "GET /runs/{id}",
        "SQL injection as the run id",
        "404",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;
    let (status, location, body) = web.get(&art, "/connect/callback?code=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    h.record(
        "web page",
        "GET /connect/callback",
        "script in code and state",
        "200",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;
    for (query, input) in [
        ("code=abc&state=forged&realmId=123", "a forged OAuth state"),
        (
            "code=abc&state=1'%20OR%20'1'%3D'1&realmId=123",
            "SQL injection as the OAuth state",
        ),
        ("code=abc&realmId=123", "no OAuth state"),
    ] {
        let (status, location, body) = web.get(&art, &format!("/connect/finish?{query}")).await;
        h.record(
            "web page",
            "GET /connect/finish",
            input,
            "303 → /connect?flash=expired",
            web_outcome(status, &location, &body),
            html_problems(&body),
            None,
        )
        .await;
    }
    // The login form: a forged token, then hostile text echoed.
    let (status, location, body) = {
        let r = web
            .http
            .post(format!("{}/login", web.base))
            .header("cookie", &web.login_cookie)
            .form(&[
                ("csrf", "forged"),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .expect("login");
        Web::answer(&art, "POST", "/login", r).await
    };
    h.record(
        "web form",
        "POST /login",
        "a forged login CSRF token",
        "403 refused",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;
    // An expired session: log in again, delete that session's row, use it.
    let stale = Web::login(&api.base, &art).await;
    let deleted = sqlx::query(
        "DELETE FROM ops.sessions WHERE id_hash = (SELECT id_hash FROM ops.sessions ORDER BY created_at DESC LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("delete session")
    .rows_affected();
    assert_eq!(deleted, 1);
    h.before = write_snapshot(&pool).await;
    hostile_form(
        &mut h,
        &stale,
        &art,
        "/runs",
        &good_run,
        None,
        "a session whose row was deleted (expired)",
        "303 → /login",
        None,
    )
    .await;
    hostile_form(
        &mut h,
        &stale,
        &art,
        "/secrets",
        &[("name", "MY_NOTE"), ("value", "x1234567")],
        None,
        "a session whose row was deleted (expired)",
        "303 → /login",
        None,
    )
    .await;
    let (status, location, body) = stale.get(&art, "/secrets").await;
    h.record(
        "web page",
        "GET /secrets",
        "a session whose row was deleted (expired)",
        "303 → /login?next=%2Fsecrets",
        web_outcome(status, &location, &body),
        html_problems(&body),
        None,
    )
    .await;

    let cases = h.rows.len();
    let table = h.markdown();
    std::fs::write(proof_root().join("hostile.md"), &table).expect("hostile.md");
    art.save("hostile.md", &table);
    stop(&mut api.child).await;
    remember_world_secrets(&art, &world, &tap);
    for f in &h.open {
        println!("KNOWN OPEN FINDING (not failing the suite): {f}");
    }
    assert!(
        h.failures.is_empty(),
        "{} of {cases} hostile inputs were not handled right:\n{}",
        h.failures.len(),
        h.failures.join("\n")
    );
    let by_surface = |s: &str| h.rows.iter().filter(|r| r.surface == s).count();
    art.figure(&format!(
        "PASS hostile-input: {cases} hostile inputs ({} CLI, {} JSON API, {} web forms and pages) \
         each answered as it should and none wrote anything (runs, windows, triggers, secrets, \
         companies, tokens, API tokens, users unchanged), no SQL, trace or unescaped markup in \
         any answer; {} cases show a known open finding ({}); table in target/proof/hostile.md",
        by_surface("CLI"),
        by_surface("JSON API"),
        by_surface("web form") + by_surface("web page"),
        h.open.len(),
        if h.open.is_empty() {
            "none".to_owned()
        } else {
            "F2: Run once with a pipeline the page does not have is refused without any \
             message"
                .to_owned()
        },
    ));
}

// ----- scenario 6: secrets --------------------------------------------------------------------

/// Every file under `dir`, recursively, but `skip`.
fn files_under(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            files_under(&path, skip, out);
        } else {
            out.push(path);
        }
    }
}

/// The forms a secret could take in an output: as is, percent-encoded, JSON-escaped.
fn variants(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_owned()];
    let percent: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').replace('/', "\\/");
    for other in [percent, json] {
        if !v.contains(&other) {
            v.push(other);
        }
    }
    v
}

fn kind_of(secret: &str) -> &'static str {
    if secret.starts_with("qbt_") {
        "API tokens"
    } else if secret.starts_with("eyJlbmMi") {
        "access tokens"
    } else if secret.starts_with("AB11") || secret.contains("refresh-token") {
        "refresh tokens"
    } else {
        "other secrets (client secret, its Basic credentials, admin password, secret key)"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "proof suite: run with scripts/chaos"]
async fn s6_secrets() {
    let root = proof_root();
    let secrets_dir = root.join("secrets");
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut scenarios = Vec::new();
    for e in std::fs::read_dir(&secrets_dir)
        .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let name = e
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".txt")
            .to_owned();
        if name == "s6-secrets" {
            continue;
        }
        scenarios.push(name.clone());
        for line in std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
        {
            if line.trim().len() >= 8 {
                secrets
                    .entry(line.trim().to_owned())
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    scenarios.sort();
    assert!(
        !secrets.is_empty(),
        "no secret values recorded under {}: run the other scenarios first (scripts/chaos)",
        secrets_dir.display()
    );
    let art = Artifacts::new("s6-secrets");
    let mut files = Vec::new();
    files_under(&root, &secrets_dir, &mut files);
    let mut bytes = 0_u64;
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for s in secrets.keys() {
        *by_kind.entry(kind_of(s)).or_default() += 1;
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let patterns: Vec<(String, &String)> = secrets
        .keys()
        .flat_map(|s| variants(s).into_iter().map(move |v| (v, s)))
        .collect();
    // The search itself works: a planted secret is found in each of its forms.
    for (secret, _) in secrets.iter().take(3) {
        for form in variants(secret) {
            let planted = format!("<p>token={form}&x</p>");
            assert!(
                patterns.iter().any(|(p, _)| planted.contains(p.as_str())),
                "the search misses a {} written as {}",
                kind_of(secret),
                if form == *secret { "is" } else { "encoded" }
            );
        }
    }
    let mut hits: Vec<String> = Vec::new();
    for file in &files {
        let Ok(content) = std::fs::read(file) else {
            continue;
        };
        bytes += content.len() as u64;
        let name = file.to_string_lossy();
        let kind = if name.ends_with(".stdout") || name.ends_with(".stderr") {
            "process outputs"
        } else if name.ends_with(".html") {
            "HTML pages"
        } else if name.contains("api-answer") || name.contains("hostile-api") {
            "API answers"
        } else if name.ends_with(".log") {
            "logs (test runs, PostgreSQL)"
        } else {
            "other outputs"
        };
        *kinds.entry(kind).or_default() += 1;
        let text = String::from_utf8_lossy(&content);
        for (pattern, secret) in &patterns {
            if text.contains(pattern.as_str()) {
                // Never the secret itself: its kind, its last four characters and where.
                hits.push(format!(
                    "{} (…{}, from {:?}) in {}",
                    kind_of(secret),
                    &secret[secret.len().saturating_sub(4)..],
                    secrets[*secret],
                    file.strip_prefix(&root).unwrap_or(file).display()
                ));
            }
        }
    }
    let kinds_text = kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let secrets_text = by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    art.save("hits.txt", hits.join("\n"));
    assert!(
        hits.is_empty(),
        "{} secret values found in outputs:\n{}",
        hits.len(),
        hits.join("\n")
    );
    art.figure(&format!(
        "PASS secrets: {} files ({:.1} MB: {kinds_text}) written by scenarios {} searched for {} \
         secret values ({secrets_text}), each as is, percent-encoded and JSON-escaped: 0 hits",
        files.len(),
        bytes as f64 / 1e6,
        scenarios.join(", "),
        secrets.len(),
    ));
}
