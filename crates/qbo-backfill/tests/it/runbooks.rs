//! The operators' runbooks (`docs/RUNBOOK.es.md`, `docs/RUNBOOK.md`) executed as written, so they
//! cannot rot.
//!
//! Each runbook is parsed into its fenced blocks and run in order against a fresh world (a new
//! database, a running `qbo-sim`, the real binary), following the convention stated at the top of
//! both files:
//!
//! - `sh`: run with `bash -eu` (errexit, nounset), one process per block, in a scratch directory
//!   that is also `$HOME`; it must exit 0 within [`BLOCK_TIMEOUT`]. A block that runs
//!   `qbo-backfill secrets set NAME` gets the value on stdin (the simulator's client secret or its
//!   current refresh token), as an operator pastes it at the hidden prompt.
//! - `sh env`: the variables the reader sets first. A variable this test provides (`DATABASE_URL`
//!   of its database, `QBO_BACKFILL_URL` of its server, the company settings of its simulator)
//!   takes the test's value; any other line (`TOKEN=$(qbo-backfill api-tokens create …)`) is run
//!   as written. From then on every block sees them.
//! - `sh background`: a command that keeps running (`qbo-backfill serve`, `qbo-backfill worker`):
//!   started in its own process group with `QBO_BACKFILL_BIND` set to a free port, ready once it
//!   prints its start line, stopped with SIGTERM at the end.
//! - `sql`: run with `psql -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL"`.
//! - `console`, `text`, `yaml`: shown, never run (Docker, a browser, Intuit's site). No executed
//!   block may mention `docker`.
//! - `<!-- runbook-test: NAME -->` on the line before a block sets up the situation the block is
//!   about: `failed-run` (a run whose windows failed: the simulator answers 500), `invalid-grant`
//!   (QuickBooks refuses the refresh token and a run fails with `invalid_grant`; then the company
//!   is reconnected, as the operator does at Intuit), `long-run` (a long run is running).
//!
//! The environment is the world's (what `World::command` gives the binary) except that the secret
//! key comes from the default key file under `$HOME` and the client secret and refresh token are
//! not in it: the runbook stores them with `secrets set`, so those blocks are load-bearing.
//!
//! On failure the scratch directory (each block as `block-NN.sh`/`.sql` and its `block-NN.out`)
//! is left in the system's temporary directory for a look; a run that passes removes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use qbo_sim::FaultConfig;

use crate::harness::{World, expected_ids_by_day, sim_config};

/// The longest a block may take.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Info strings of blocks shown but not run.
const SHOWN_ONLY: &[&str] = &["console", "text", "yaml"];

/// Directives the test knows.
const DIRECTIVES: &[&str] = &["failed-run", "invalid-grant", "long-run"];

/// The runbook's two checks, exactly as the seed runbook's operators type them.
const COUNT_QUERY: &str = "SELECT COUNT(*) FROM raw.qb_customers;";
const DAILY_QUERY: &str = "SELECT extract_window_start_utc::date AS day, COUNT(*) FROM raw.qb_customers GROUP BY 1 ORDER BY 1;";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sh,
    Env,
    Background,
    Sql,
    Shown,
}

#[derive(Debug, Clone)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    info: String,
    kind: Kind,
    code: String,
    directives: Vec<String>,
}

impl Block {
    fn executed(&self) -> bool {
        self.kind != Kind::Shown
    }
}

fn runbook_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
}

fn read_runbook(name: &str) -> String {
    let path = runbook_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks of a Markdown file (outside HTML comments), with their directives.
fn parse(name: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("<!--") {
            if let Some(directive) = rest
                .trim()
                .strip_prefix("runbook-test:")
                .and_then(|d| d.trim().strip_suffix("-->"))
            {
                let directive = directive.trim().to_owned();
                assert!(
                    DIRECTIVES.contains(&directive.as_str()),
                    "{name}:{}: unknown directive `{directive}`",
                    i + 1
                );
                pending.push(directive);
                continue;
            }
            // Any other comment: skipped whole (the convention comment at the top).
            if !rest.contains("-->") {
                for (_, line) in lines.by_ref() {
                    if line.contains("-->") {
                        break;
                    }
                }
            }
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let info = info.trim().to_owned();
        let mut code = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.trim_end() == "```" {
                closed = true;
                break;
            }
            code.push_str(line);
            code.push('\n');
        }
        assert!(closed, "{name}:{}: unclosed code block", i + 1);
        let kind = match info.as_str() {
            "sh" => Kind::Sh,
            "sh env" => Kind::Env,
            "sh background" => Kind::Background,
            "sql" => Kind::Sql,
            other if SHOWN_ONLY.contains(&other) => Kind::Shown,
            other => panic!(
                "{name}:{}: code block with info string `{other}`: use sh, sh env, sh background, \
                 sql, or one of {SHOWN_ONLY:?} for blocks that are not run",
                i + 1
            ),
        };
        assert!(
            pending.is_empty() || kind != Kind::Shown,
            "{name}:{}: a runbook-test directive before a block that is not run",
            i + 1
        );
        blocks.push(Block {
            line: i + 1,
            info,
            kind,
            code,
            directives: std::mem::take(&mut pending),
        });
    }
    assert!(
        pending.is_empty(),
        "{name}: a directive with no block after it"
    );
    blocks
}

/// `code` without comments (shell `#`, SQL `--`) and blank lines: what both languages share.
fn normalized(block: &Block) -> String {
    let marker = if block.kind == Kind::Sql { "--" } else { "#" };
    block
        .code
        .lines()
        .map(|line| strip_comment(line, marker).trim_end().to_owned())
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line` up to a comment `marker` that starts a word outside quotes.
fn strip_comment<'a>(line: &'a str, marker: &str) -> &'a str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ if !single
                && !double
                && previous.is_whitespace()
                && line[i..].starts_with(marker) =>
            {
                return &line[..i];
            }
            _ => {}
        }
        previous = c;
    }
    line
}

/// The variables a shell block reads (`$NAME`, `${NAME…}`), and the ones it assigns.
fn variables(code: &str) -> (Vec<String>, Vec<String>) {
    let mut read = Vec::new();
    let mut assigned = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for line in code.lines() {
        let line = strip_comment(line, "#");
        for (i, _) in line.match_indices('$') {
            let rest = &line[i + 1..];
            let name = ident(rest.strip_prefix('{').unwrap_or(rest));
            if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                read.push(name);
            }
        }
        for word in line.split(|c: char| c.is_whitespace() || c == ';' || c == '(') {
            let word = word.strip_prefix("export").unwrap_or(word);
            if let Some((name, _)) = word.split_once('=')
                && !name.is_empty()
                && ident(name) == name
            {
                assigned.push(name.to_owned());
            }
        }
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word == "for"
                && let Some(name) = words.next()
            {
                assigned.push(name.to_owned());
            }
        }
    }
    (read, assigned)
}

/// The `export NAME=…` lines of an env block: (name, line).
fn env_lines(block: &Block) -> Vec<(String, String)> {
    block
        .code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let assignment = l.strip_prefix("export ").unwrap_or_else(|| {
                panic!(
                    "line {}: an `sh env` block holds only `export NAME=VALUE` lines, not `{l}`",
                    block.line
                )
            });
            let (name, _) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("line {}: `{l}` assigns nothing", block.line));
            (name.to_owned(), l.to_owned())
        })
        .collect()
}

/// Checks that need no world: the convention is honest, and both runbooks run the same blocks.
fn check_convention(name: &str, blocks: &[Block]) {
    let executed: Vec<&Block> = blocks.iter().filter(|b| b.executed()).collect();
    assert!(
        executed.len() >= 25,
        "{name}: only {} executed blocks",
        executed.len()
    );
    for block in &executed {
        assert!(
            !block.code.to_lowercase().contains("docker"),
            "{name}:{}: an executed `{}` block mentions docker; show it as `console`",
            block.line,
            block.info
        );
        assert!(
            block.code.matches("secrets set").count() <= 1,
            "{name}:{}: one `secrets set` per block (its prompt would swallow the next lines)",
            block.line
        );
    }
    // Every variable a block reads was set by an `sh env` block before it, or by the block itself.
    let mut declared: Vec<String> = vec!["HOME".into(), "PATH".into()];
    for block in &executed {
        match block.kind {
            Kind::Env => declared.extend(env_lines(block).into_iter().map(|(n, _)| n)),
            Kind::Sh | Kind::Background => {
                let (read, assigned) = variables(&block.code);
                for var in read {
                    assert!(
                        declared.contains(&var) || assigned.contains(&var),
                        "{name}:{}: the block reads ${var}, which no `sh env` block before it \
                         sets",
                        block.line
                    );
                }
            }
            Kind::Sql | Kind::Shown => {}
        }
    }
    for var in ["DATABASE_URL", "QBO_BACKFILL_URL", "TOKEN"] {
        assert!(
            declared.iter().any(|d| d == var),
            "{name}: no `sh env` block sets {var}"
        );
    }
    let sql: Vec<String> = executed
        .iter()
        .filter(|b| b.kind == Kind::Sql)
        .flat_map(|b| b.code.lines().map(str::trim).map(str::to_owned))
        .collect();
    for query in [COUNT_QUERY, DAILY_QUERY] {
        assert!(
            sql.iter().any(|l| l == query),
            "{name}: no sql block runs `{query}` as written"
        );
    }
    assert!(
        executed
            .iter()
            .any(|b| b.kind == Kind::Background && b.code.contains("qbo-backfill serve")),
        "{name}: the runbook never starts `qbo-backfill serve`"
    );
}

#[test]
fn both_runbooks_run_the_same_blocks_and_keep_the_convention() {
    let es = parse("RUNBOOK.es.md", &read_runbook("RUNBOOK.es.md"));
    let en = parse("RUNBOOK.md", &read_runbook("RUNBOOK.md"));
    check_convention("RUNBOOK.es.md", &es);
    check_convention("RUNBOOK.md", &en);
    let executed = |blocks: &[Block]| -> Vec<(String, Vec<String>, String)> {
        blocks
            .iter()
            .filter(|b| b.executed())
            .map(|b| (b.info.clone(), b.directives.clone(), normalized(b)))
            .collect()
    };
    let (es_blocks, en_blocks) = (executed(&es), executed(&en));
    for (i, (a, b)) in es_blocks.iter().zip(&en_blocks).enumerate() {
        assert_eq!(
            a,
            b,
            "executed block {} differs (RUNBOOK.es.md line {}, RUNBOOK.md line {})",
            i + 1,
            es.iter()
                .filter(|b| b.executed())
                .nth(i)
                .map_or(0, |b| b.line),
            en.iter()
                .filter(|b| b.executed())
                .nth(i)
                .map_or(0, |b| b.line),
        );
    }
    assert_eq!(
        es_blocks.len(),
        en_blocks.len(),
        "the two runbooks run a different number of blocks"
    );
    for text in [read_runbook("RUNBOOK.es.md"), read_runbook("RUNBOOK.md")] {
        let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("<!--") && head.contains("runbooks.rs"),
            "the convention comment is missing at the top"
        );
    }
}

/// A process group started by this test, killed when dropped.
struct Group {
    child: tokio::process::Child,
    pgid: i32,
    out: PathBuf,
    what: String,
}

fn signal_group(signal: &str, pgid: i32) -> bool {
    std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Group {
    /// SIGTERM, then waits (at most 30 s) until no process of the group is left.
    async fn stop(&mut self) {
        signal_group("-TERM", self.pgid);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while signal_group("-0", self.pgid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        signal_group("-KILL", self.pgid);
    }
}

/// One runbook's run: its scratch directory, the blocks' environment, background processes.
struct Runner<'w> {
    world: &'w World,
    name: &'static str,
    dir: PathBuf,
    /// What every block sees.
    env: BTreeMap<String, String>,
    /// Values this test provides for the variables an `sh env` block names.
    provided: BTreeMap<String, String>,
    background: Vec<Group>,
    n: usize,
    base_url: String,
}

struct Outcome {
    code: Option<i32>,
    output: String,
}

impl<'w> Runner<'w> {
    fn new(world: &'w World, name: &'static str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "qbo-runbook-{}-{}",
            name.replace('.', "-"),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let base_url = format!("http://127.0.0.1:{port}");
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_qbo-backfill"))
            .parent()
            .expect("bin dir")
            .to_owned();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        let mut env = BTreeMap::new();
        // The world's settings for the binary, as `World::command` passes them.
        let world_cmd = world.command(&[]);
        for (k, v) in world_cmd.as_std().get_envs() {
            if let Some(v) = v {
                env.insert(
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                );
            }
        }
        // The runbook stores these itself; the key is the default key file under $HOME.
        for k in [
            "QBO_BACKFILL_SECRET_KEY",
            "QBO_CLIENT_SECRET",
            "QBO_REFRESH_TOKEN",
        ] {
            env.remove(k);
        }
        env.insert("PATH".into(), path);
        env.insert("HOME".into(), dir.display().to_string());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("QBO_BACKFILL_BIND".into(), format!("127.0.0.1:{port}"));
        env.insert("QBO_BACKFILL_POLL_MS".into(), "100".into());
        let mut provided = env.clone();
        provided.insert("QBO_BACKFILL_URL".into(), base_url.clone());
        Self {
            world,
            name,
            dir,
            env,
            provided,
            background: Vec::new(),
            n: 0,
            base_url,
        }
    }

    fn command(&mut self, script: &str, suffix: &str) -> (tokio::process::Command, PathBuf) {
        self.n += 1;
        let file = self.dir.join(format!("block-{:02}.{suffix}", self.n));
        std::fs::write(&file, script).expect("write block");
        let out = self.dir.join(format!("block-{:02}.out", self.n));
        let mut cmd = tokio::process::Command::new("bash");
        cmd.env_clear()
            .envs(&self.env)
            .current_dir(&self.dir)
            .process_group(0)
            .kill_on_drop(true);
        if suffix == "sql" {
            cmd.arg("-euc").arg(format!(
                "exec psql -X -q -v ON_ERROR_STOP=1 -d \"$DATABASE_URL\" -f {}",
                file.display()
            ));
        } else {
            cmd.arg("-eu").arg(&file);
        }
        let log = std::fs::File::create(&out).expect("output file");
        cmd.stdout(log.try_clone().expect("clone")).stderr(log);
        (cmd, out)
    }

    /// Runs `script` to its end (or the timeout); stdout and stderr interleaved.
    async fn run(&mut self, script: &str, suffix: &str, stdin: Option<String>) -> Outcome {
        let (mut cmd, out) = self.command(script, suffix);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("bash runs");
        let pgid = child.id().expect("pid") as i32;
        if let Some(value) = stdin {
            use tokio::io::AsyncWriteExt as _;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(value.as_bytes()).await.expect("stdin");
            drop(pipe);
        }
        let code = match tokio::time::timeout(BLOCK_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait").code(),
            Err(_) => {
                signal_group("-KILL", pgid);
                let _ = child.wait().await;
                None
            }
        };
        // Whatever the block left running in its group goes with it.
        signal_group("-KILL", pgid);
        let output = std::fs::read_to_string(&out).unwrap_or_default();
        Outcome { code, output }
    }

    /// Starts a long-running block and waits for its start line.
    async fn start(&mut self, block: &Block) {
        let (mut cmd, out) = self.command(&block.code, "sh");
        cmd.stdin(Stdio::null()).kill_on_drop(false);
        let child = cmd.spawn().expect("bash runs");
        let pgid = child.id().expect("pid") as i32;
        let mut group = Group {
            child,
            pgid,
            out,
            what: block.code.trim().to_owned(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&group.out).unwrap_or_default();
            if text.contains("Serving on http") || text.contains(" started: ") {
                break;
            }
            if let Ok(Some(status)) = group.child.try_wait() {
                panic!(
                    "{}:{}: `{}` exited ({status}) before it was ready:\n{text}",
                    self.name, block.line, group.what
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}:{}: `{}` never printed its start line:\n{text}",
                self.name,
                block.line,
                group.what
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if block.code.contains(" serve") {
            let health = qbo::tls::http_client_builder()
                .build()
                .expect("an HTTP client")
                .get(format!("{}/healthz", self.base_url))
                .send()
                .await
                .expect("healthz");
            assert_eq!(health.status(), 200);
        }
        self.background.push(group);
    }

    /// Sets the variables an `sh env` block names.
    async fn declare(&mut self, block: &Block) -> String {
        let mut shown = String::new();
        for (name, line) in env_lines(block) {
            let value = match self.provided.get(&name) {
                Some(v) => v.clone(),
                None => {
                    let outcome = self
                        .run(&format!("{line}\nprintf '%s' \"${name}\"\n"), "sh", None)
                        .await;
                    assert_eq!(
                        outcome.code,
                        Some(0),
                        "{}:{}: `{line}` failed:\n{}",
                        self.name,
                        block.line,
                        outcome.output
                    );
                    // The value is the last line; what the command logged comes before it.
                    outcome.output.lines().last().unwrap_or_default().to_owned()
                }
            };
            assert!(
                !value.trim().is_empty(),
                "{}:{}: {name} is empty",
                self.name,
                block.line
            );
            shown.push_str(&format!("{name} set\n"));
            self.env.insert(name, value);
        }
        shown
    }

    /// What a block's `secrets set NAME` reads on stdin.
    fn stdin_for(&self, code: &str) -> Option<String> {
        let name = code
            .split("secrets set ")
            .nth(1)?
            .split_whitespace()
            .next()?;
        let value = match name {
            "QBO_CLIENT_SECRET" => self.world.config.client_secret.clone(),
            "QBO_REFRESH_TOKEN" => self.world.sim.state().current_refresh_token(),
            other => panic!("the test has no value for `secrets set {other}`"),
        };
        Some(format!("{value}\n"))
    }

    /// The situation a directive describes.
    async fn set_up(&mut self, directive: &str) {
        match directive {
            "failed-run" => {
                self.world.sim.state().set_faults(FaultConfig {
                    error_rate: 1.0,
                    ..FaultConfig::default()
                });
                let outcome = self
                    .run(
                        "qbo-backfill run qb_items_backfill --fecha-inicio 2026-01-12 \
                         --fecha-fin 2026-01-14 --max-retries 0 || test $? -eq 1\n",
                        "sh",
                        None,
                    )
                    .await;
                self.world.sim.state().set_faults(FaultConfig::default());
                assert_eq!(outcome.code, Some(0), "{}", outcome.output);
                assert!(
                    outcome.output.contains("status=failed"),
                    "{}",
                    outcome.output
                );
            }
            "invalid-grant" => {
                self.world.sim.state().revoke_refresh_tokens();
                self.world.sim.state().expire_access_tokens();
                let outcome = self
                    .run(
                        "qbo-backfill run qb_invoices_backfill --fecha-inicio 2026-01-20 \
                         --fecha-fin 2026-01-22 || test $? -eq 1\n",
                        "sh",
                        None,
                    )
                    .await;
                assert_eq!(outcome.code, Some(0), "{}", outcome.output);
                assert!(
                    outcome
                        .output
                        .lines()
                        .any(|l| l == "Token refresh failed: invalid_grant"),
                    "{}",
                    outcome.output
                );
                // The operator reconnects the app at Intuit: a new refresh token exists.
                self.world.sim.state().reconnect();
            }
            "long-run" => {
                let token = self.env.get("TOKEN").expect("TOKEN declared").clone();
                let http = qbo::tls::http_client_builder()
                    .build()
                    .expect("an HTTP client");
                let run: serde_json::Value = http
                    .post(format!("{}/api/v1/runs", self.base_url))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "pipeline": "qb_items_backfill",
                        "fecha_inicio": "2025-01-01",
                        "fecha_fin": "2026-01-01",
                    }))
                    .send()
                    .await
                    .expect("post")
                    .json()
                    .await
                    .expect("json");
                let id = run["id"].as_str().expect("run id").to_owned();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let run: serde_json::Value = http
                        .get(format!("{}/api/v1/runs/{id}", self.base_url))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("get")
                        .json()
                        .await
                        .expect("json");
                    if run["status"] == "running" {
                        break;
                    }
                    assert!(
                        run["status"] == "queued" && tokio::time::Instant::now() < deadline,
                        "the long run never ran: {run}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            other => panic!("unknown directive {other}"),
        }
    }

    async fn stop_background(&mut self) -> Vec<String> {
        let mut outputs = Vec::new();
        while let Some(mut group) = self.background.pop() {
            group.stop().await;
            outputs.push(std::fs::read_to_string(&group.out).unwrap_or_default());
        }
        outputs
    }
}

/// A block and what it printed.
struct Ran {
    block: Block,
    output: String,
}

/// The outputs of the blocks whose code contains `needle`, in order.
fn outputs<'a>(ran: &'a [Ran], needle: &str) -> Vec<&'a str> {
    let found: Vec<&str> = ran
        .iter()
        .filter(|r| r.block.code.contains(needle))
        .map(|r| r.output.as_str())
        .collect();
    assert!(!found.is_empty(), "no executed block contains `{needle}`");
    found
}

/// Without a terminal, `serve` writes the generated first password to a 0600 file in the data
/// directory (beside the default key file under `$HOME`) and logs only where it is: the password
/// itself is in no output.
fn assert_first_password_handed_over(scratch: &Path, serve_output: &str, ran: &[Ran]) {
    use std::os::unix::fs::PermissionsExt as _;
    let file = scratch.join(".local/share/qbo-backfill/first-operator-password");
    assert_contains(
        serve_output,
        &format!(
            "Created the first operator `admin`; its generated password is in {}",
            file.display()
        ),
        "serve says where the first password is",
    );
    let password = std::fs::read_to_string(&file).expect("the first password file");
    let password = password.trim();
    assert!(password.len() >= 16, "a generated password: {password:?}");
    let mode = std::fs::metadata(&file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the first password file is 0600");
    assert!(
        !serve_output.contains(password),
        "the first password is not in the log"
    );
    for block in ran {
        assert!(
            !block.output.contains(password),
            "the first password is in the output of the block at line {}",
            block.block.line
        );
    }
}

fn assert_contains(output: &str, expected: &str, what: &str) {
    assert!(
        output.contains(expected),
        "{what}: expected `{expected}` in:\n{output}"
    );
}

async fn run_runbook(name: &'static str) {
    let blocks = parse(name, &read_runbook(name));
    check_convention(name, &blocks);
    let mut world = World::new(sim_config(200)).await;
    // Days asked for one by one, as a calendar scan would: the `long-run` directive's year of
    // items is then still running when section 12 cancels it.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let mut runner = Runner::new(&world, name);
    let scratch = runner.dir.clone();
    // Tomorrow in Guayaquil, as the runbook's `DIA` is (from 19:00 there it is not UTC's).
    let tomorrow = jiff::Timestamp::now()
        .in_tz("America/Guayaquil")
        .expect("America/Guayaquil")
        .date()
        .tomorrow()
        .expect("tomorrow")
        .to_string();
    let mut ran: Vec<Ran> = Vec::new();
    for block in blocks.into_iter().filter(Block::executed) {
        for directive in &block.directives {
            runner.set_up(directive).await;
        }
        let output = match block.kind {
            Kind::Env => runner.declare(&block).await,
            Kind::Background => {
                runner.start(&block).await;
                String::new()
            }
            Kind::Sh | Kind::Sql => {
                let stdin = runner.stdin_for(&block.code);
                let suffix = if block.kind == Kind::Sql { "sql" } else { "sh" };
                let outcome = runner.run(&block.code, suffix, stdin).await;
                assert_eq!(
                    outcome.code,
                    Some(0),
                    "{name}:{}: the `{}` block failed (exit {:?}; scratch {}):\n{}\n--- output ---\n{}",
                    block.line,
                    block.info,
                    outcome.code,
                    scratch.display(),
                    block.code,
                    outcome.output
                );
                outcome.output
            }
            Kind::Shown => unreachable!(),
        };
        ran.push(Ran { block, output });
    }
    let background = runner.stop_background().await;

    // Start and first login.
    let serve_output = background.last().cloned().unwrap_or_default();
    assert_first_password_handed_over(&scratch, &serve_output, &ran);
    assert_contains(
        outputs(&ran, "/healthz")[0],
        "ok",
        "the health check answers",
    );

    // The schema check lists the raw tables.
    let tables = outputs(&ran, "information_schema.tables")[0];
    for table in ["qb_customers", "qb_items", "qb_invoices", "runs", "windows"] {
        assert_contains(tables, table, "the schema check");
    }

    // Run once from the CLI: the contract's lines; the re-run inserts nothing.
    let cli_runs = outputs(
        &ran,
        "qbo-backfill run qb_customers_backfill --fecha-inicio 2026-01-01 --fecha-fin 2026-02-01",
    );
    assert!(cli_runs.len() >= 2, "a run and its idempotent re-run");
    let first = cli_runs[0];
    for line in [
        "Processing Customers window 2026-01-10 → 2026-01-11",
        "==== QB CUSTOMERS BACKFILL SUMMARY ====",
        "window_start_utc=2026-01-01T00:00:00Z",
        "window_end_utc=2026-02-01T00:00:00Z",
        "status=succeeded",
    ] {
        assert_contains(first, line, "the first CLI run");
    }
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("Window completed | pages=") && l.contains(" window=")),
        "{first}"
    );
    let expected = world
        .expected_ids("Customer", "2026-01-01", "2026-02-01")
        .len();
    assert_contains(
        first,
        &format!("Export completed | inserted={expected} updated=0 unchanged=0 total={expected}"),
        "the first CLI run",
    );
    let rerun = cli_runs[cli_runs.len() - 1];
    assert_contains(
        rerun,
        &format!("Export completed | inserted=0 updated=0 unchanged={expected} total={expected}"),
        "the re-run",
    );

    // The SQL checks: the count never grows past the company's customers; daily counts match.
    let counts = outputs(&ran, COUNT_QUERY);
    let last_count = counts[counts.len() - 1];
    assert_eq!(
        last_count
            .lines()
            .map(str::trim)
            .find(|l| l.parse::<usize>().is_ok()),
        Some(expected.to_string().as_str()),
        "{last_count}"
    );
    let daily = outputs(&ran, DAILY_QUERY)[0];
    let got: BTreeMap<String, i64> = daily
        .lines()
        .filter_map(|l| {
            let (day, n) = l.split_once('|')?;
            Some((day.trim().to_owned(), n.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(
        got,
        expected_ids_by_day(&world, "Customer", "2026-01-01", "2026-02-01"),
        "{daily}"
    );

    // Triggers at 10:00 America/Guayaquil fire at 15:00 UTC.
    let created = outputs(&ran, "\"kind\":\"once\"")[0];
    assert_eq!(
        created
            .matches(&format!("\"next_fire_utc\":\"{tomorrow}T15:00:00Z\""))
            .count(),
        3,
        "{created}"
    );
    assert_contains(
        created,
        &format!("\"local_time\":\"{tomorrow}T10:00\""),
        "the trigger",
    );
    assert_contains(created, "\"state\":\"scheduled\"", "the trigger");
    let disabled = outputs(&ran, "{\"enabled\":false}")[0];
    assert_contains(disabled, "\"state\":\"disabled\"", "disabling a trigger");

    // Run once through the API, followed to the end, and its log.
    let api_run = outputs(&ran, "\"pipeline\":\"qb_items_backfill\"")[0];
    assert!(
        api_run.trim_end().ends_with("status=succeeded"),
        "{api_run}"
    );
    let log = outputs(&ran, "/logs?after=")[0];
    for line in [
        "Processing Items window 2026-01-10 → 2026-01-11",
        "Window completed | pages=",
        "==== QB ITEMS BACKFILL SUMMARY ====",
        "window_end_utc=2026-02-01T00:00:00Z",
        "Export completed | inserted=",
    ] {
        assert_contains(log, line, "the run's log through the API");
    }

    // Retrying one day; retrying only the failed windows (CLI and API).
    let one_day = outputs(
        &ran,
        "qbo-backfill run qb_customers_backfill --fecha-inicio 2026-01-10 --fecha-fin 2026-01-11",
    )[0];
    for line in [
        "windows=1",
        "window_start_utc=2026-01-10T00:00:00Z",
        "window_end_utc=2026-01-11T00:00:00Z",
        "Export completed | inserted=0",
    ] {
        assert_contains(one_day, line, "retrying one day");
    }
    let retries = outputs(&ran, "qbo-backfill retry \"$RUN_ID\"");
    assert!(retries.len() >= 2, "failed windows and invalid_grant");
    for retry in &retries {
        assert_contains(retry, "status=succeeded", "a CLI retry");
        assert_contains(retry, "failed_windows=0", "a CLI retry");
    }
    let api_retry = outputs(&ran, "/retry\"")[0];
    assert_contains(api_retry, "\"retry_of\":\"", "an API retry");
    assert!(
        api_retry.trim_end().ends_with("status=succeeded"),
        "{api_retry}"
    );

    // invalid_grant: seen, then repaired with secrets set and retry.
    let recovery = ran
        .iter()
        .find(|r| r.block.directives.iter().any(|d| d == "invalid-grant"))
        .expect("an invalid-grant block");
    assert_contains(
        &recovery.output,
        "status=failed",
        "the failed run is listed",
    );
    assert_contains(
        &recovery.output,
        "\"error\":\"Token refresh failed: QuickBooks refused the refresh token (invalid_grant",
        "the failed run's error",
    );
    let stored = outputs(&ran, "secrets set QBO_REFRESH_TOKEN");
    assert_contains(
        stored[stored.len() - 1],
        "Stored a new refresh token for realm",
        "storing the new refresh token",
    );

    // Cancel, metrics, a second worker, companies, backups, bad input.
    assert!(
        outputs(&ran, "/cancel\"")[0]
            .trim_end()
            .ends_with("status=cancelled"),
        "the long run was cancelled"
    );
    let metrics = outputs(&ran, "/metrics\"");
    assert_contains(metrics[0], "401", "metrics without a token");
    assert_contains(
        metrics[0],
        "qbo_backfill_runs{status=\"succeeded\"}",
        "metrics with a token",
    );
    assert_contains(
        metrics[metrics.len() - 1],
        "qbo_backfill_workers 2",
        "serve and the extra worker",
    );
    let companies = outputs(&ran, "\"realm_id\":\"123\"")[0];
    assert_contains(
        companies,
        &format!("\"realm_id\":\"{}\"", world.config.realm_id),
        "a run naming its company",
    );
    assert_contains(companies, "unknown_company", "an unknown company");
    assert_contains(
        outputs(&ran, "pg_dump")[0],
        "TABLE DATA raw qb_customers",
        "the dump holds the raw tables",
    );
    let key_backup = scratch.join("secret.key.backup");
    let key_file = scratch.join(".local/share/qbo-backfill/secret.key");
    assert_eq!(
        std::fs::read(&key_backup).expect("secret.key.backup"),
        std::fs::read(&key_file).expect("secret.key"),
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_backup)
            .expect("backup")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "the key backup is private");
    }
    assert_contains(
        outputs(&ran, "--fecha-inicio 2026-01-31 --fecha-fin 2026-01-01")[0],
        "exit=2",
        "bad input",
    );

    // Nothing printed a secret.
    let key_text = std::fs::read_to_string(&key_file).expect("key");
    let mut secrets = world.secrets();
    secrets.push(key_text.trim().to_owned());
    for text in ran
        .iter()
        .map(|r| r.output.as_str())
        .chain(background.iter().map(String::as_str))
    {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret was printed: …{}",
                &secret[secret.len().saturating_sub(4)..]
            );
        }
    }
    drop(runner);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spanish_runbook_runs_as_written() {
    run_runbook("RUNBOOK.es.md").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_english_runbook_runs_as_written() {
    run_runbook("RUNBOOK.md").await;
}
