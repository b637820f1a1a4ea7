//! The connectors our users run, unmodified, against the simulator: Singer's `tap-quickbooks`
//! and Airbyte's `source-quickbooks`. Each test installs its connector (pinned) into a throwaway
//! virtualenv with a pip cache that lives only as long as the test, starts a simulator with
//! Intuit's default limits, runs the connector through `peer-clients/*_check.py` (which only
//! rebinds Intuit's hostnames, see `peer-clients/intuit_rebind.py`), and compares the ids it
//! extracted of each of the 26 entities with data (`DATA_ENTITIES`) with the simulator's.
//!
//! Needs `python3` (with `venv`) and the Python package index. When the index cannot be reached
//! (a `pip download` probe fails with a network error) the test prints why and passes without
//! running; any other failure fails it. Filter with `connectors::`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::ToSpan;
use qbo_sim::{DATA_ENTITIES, SimConfig, SimLimits};
use tokio::process::Command;

use crate::common::start;

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let dir =
            std::env::temp_dir().join(format!("qbo-sim-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion (killed after `limit`), capturing its output.
async fn run(mut cmd: Command, limit: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1");
    let what = format!("{cmd:?}");
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What pip prints when it cannot reach the index (as opposed to the package being missing).
fn network_error(pip_output: &str) -> bool {
    [
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "Connection refused",
        "ConnectTimeout",
        "ReadTimeout",
        "timed out",
        "ProxyError",
        "SSLError",
        "Max retries exceeded",
    ]
    .iter()
    .any(|m| pip_output.contains(m))
}

/// A virtualenv in `dir` with `requirement` installed, or `None` (after saying why) when the
/// package index cannot be reached.
async fn python_env(dir: &Path, requirement: &str) -> Option<PathBuf> {
    let venv = dir.join("venv");
    let python3 = std::env::var("QBO_SIM_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut cmd = Command::new(&python3);
    cmd.args(["-m", "venv"]).arg(&venv);
    let r = run(cmd, Duration::from_secs(120)).await;
    assert!(
        r.ok,
        "`{python3} -m venv` failed (python3 with venv is required):\n{}",
        r.stderr
    );
    let pip = venv.join("bin/pip");
    let cache = dir.join("pip-cache");

    // Probe: can the index be reached? Fail fast (10 s, no retries).
    let mut cmd = Command::new(&pip);
    cmd.args(["download", "--no-deps", "--no-cache-dir", "--timeout", "10"])
        .args(["--retries", "0", "--dest"])
        .arg(dir.join("probe"))
        .arg(requirement);
    let r = run(cmd, Duration::from_secs(120)).await;
    if !r.ok {
        let out = format!("{}\n{}", r.stdout, r.stderr);
        assert!(
            network_error(&out),
            "pip could reach the index but not get {requirement}:\n{out}"
        );
        println!(
            "SKIPPED: the Python package index cannot be reached, so {requirement} cannot be \
             installed; nothing was checked.\n{}",
            tail(&out, 5)
        );
        return None;
    }

    // The real install: its cache lives in `dir` and goes with it.
    let mut cmd = Command::new(&pip);
    cmd.args(["install", "--quiet", requirement])
        .env("PIP_CACHE_DIR", &cache);
    let started = Instant::now();
    let r = run(cmd, Duration::from_secs(300)).await;
    assert!(
        r.ok,
        "pip install {requirement} failed:\n{}\n{}",
        tail(&r.stdout, 20),
        tail(&r.stderr, 20)
    );
    println!(
        "installed {requirement} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Some(venv.join("bin/python"))
}

/// Thirty days of data ending today (UTC), so Airbyte's 30-day slices from the data's first day
/// to now are one or two per stream whatever the date; Intuit's default limits.
fn connector_config() -> SimConfig {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    SimConfig {
        customers: 300,
        items: 40,
        invoices: 500,
        other_rows: 40,
        from: today.checked_sub(30.days()).unwrap(),
        to: today,
        limits: SimLimits::default(),
        ..SimConfig::default()
    }
}

/// Installs `requirement`, runs `script` against a fresh simulator and checks the extracted ids.
/// `min_batches`: batch requests the connector must have made.
async fn connector_extracts_everything(
    name: &str,
    requirement: &str,
    script: &str,
    min_batches: u64,
) {
    let started = Instant::now();
    let dir = TempDir::new(name);
    let Some(python) = python_env(&dir.0, requirement).await else {
        return;
    };
    let sim = start(connector_config()).await;
    let ids_path = dir.0.join("ids.json");
    let script_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("peer-clients")
        .join(script);
    let mut cmd = Command::new(&python);
    cmd.arg(&script_path)
        .args(["--base-url", &sim.api_base_url(), "--workdir"])
        .arg(dir.0.join("work"))
        .arg("--ids-out")
        .arg(&ids_path);
    let r = run(cmd, Duration::from_secs(300)).await;
    println!("{}", r.stdout);
    assert!(
        r.ok,
        "{script} failed:\n{}\n{}",
        tail(&r.stdout, 40),
        tail(&r.stderr, 40)
    );

    // The extracted ids, against the simulator's own (inactive rows included).
    let extracted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ids_path).unwrap()).unwrap();
    let (from, to) = (
        jiff::Timestamp::UNIX_EPOCH,
        jiff::Timestamp::now() + 48.hours(),
    );
    for entity in DATA_ENTITIES {
        let n = match *entity {
            "Customer" => 300,
            "Item" => 40,
            "Invoice" => 500,
            _ => 40,
        };
        let mut got: Vec<u64> = extracted[*entity]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no ids of {entity}"))
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        got.sort_unstable();
        let want: Vec<u64> = sim
            .state()
            .ids_created_between(entity, from, to)
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(want.len(), n, "{entity}");
        assert_eq!(got, want, "{name}: {entity}");
    }
    let stats = sim.state().stats();
    assert!(stats.batch_requests >= min_batches, "{stats:?}");
    println!(
        "{name}: {} API requests ({} batches, {} throttled), whole test {:.1}s",
        stats.requests_total,
        stats.batch_requests,
        stats.throttled,
        started.elapsed().as_secs_f64()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn singer_tap_quickbooks_extracts_everything() {
    connector_extracts_everything(
        "tap-quickbooks",
        "tap-quickbooks==2.5.0",
        "singer_tap_quickbooks_check.py",
        2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airbyte_source_quickbooks_extracts_everything() {
    connector_extracts_everything(
        "source-quickbooks",
        "airbyte-source-quickbooks==4.0.4",
        "airbyte_source_quickbooks_check.py",
        0,
    )
    .await;
}
