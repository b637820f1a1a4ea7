//! A fresh database, a running simulator, and the real `qbo-backfill` binary wired to both:
//! what the end-to-end tests of the runbook drive.

use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use qbo_backfill::store::infra::testdb::TestDb;
use qbo_sim::{RunningSim, SimConfig, SimState};
use sqlx::PgPool;

/// One test's world.
pub(crate) struct World {
    pub(crate) db: TestDb,
    pub(crate) sim: RunningSim,
    pub(crate) config: SimConfig,
    pub secret_key_b64: String,
    pub(crate) extra_env: Vec<(String, String)>,
}

/// A small simulated company: `customers` customers created over January 2026.
pub(crate) fn sim_config(customers: usize) -> SimConfig {
    SimConfig {
        customers,
        items: 40,
        invoices: 300,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 2, 1),
        ..SimConfig::default()
    }
}

impl World {
    pub(crate) async fn new(config: SimConfig) -> Self {
        let db = TestDb::new().await.expect("test database");
        let sim = qbo_sim::serve(SimState::new(config.clone()), ([127, 0, 0, 1], 0).into())
            .await
            .expect("simulator");
        let secret_key_b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        Self {
            db,
            sim,
            config,
            secret_key_b64,
            extra_env: Vec::new(),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// The binary with this world's environment (and nothing of the caller's `QBO_*`).
    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_qbo-backfill"));
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("QBO_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let config = &self.config;
        cmd.env("DATABASE_URL", &self.db.url)
            .env("QBO_BACKFILL_SECRET_KEY", &self.secret_key_b64)
            .env("QBO_API_BASE_URL", self.sim.api_base_url())
            .env("QBO_TOKEN_URL", self.sim.token_url())
            .env("QBO_CLIENT_ID", &config.client_id)
            .env("QBO_CLIENT_SECRET", &config.client_secret)
            .env("QBO_REALM_ID", &config.realm_id)
            .env("QBO_REFRESH_TOKEN", &config.refresh_token)
            .env("QBO_THROTTLE_WAIT_MS", "1100")
            .env("QBO_INITIAL_BACKOFF_MS", "5")
            .env("QBO_REQUEST_TIMEOUT_S", "10")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// A world whose simulator fails `error_rate` of its answers with a 5xx and throttles
    /// nothing, and whose client does not retry: only the injected faults fail a window.
    pub(crate) async fn failing(customers: usize, error_rate: f64) -> Self {
        let mut config = sim_config(customers);
        config.faults = qbo_sim::FaultConfig {
            error_rate,
            ..qbo_sim::FaultConfig::default()
        };
        config.limits = qbo_sim::SimLimits::none();
        let mut world = Self::new(config).await;
        world.extra_env.push(("QBO_MAX_RETRIES".into(), "0".into()));
        world
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(240), self.command(args).output())
            .await
            .expect("the command finished in time")
            .expect("the binary runs")
    }

    pub(crate) async fn load(&self, pipeline: &str, from: &str, to: &str) -> Output {
        self.run(&["run", pipeline, "--fecha-inicio", from, "--fecha-fin", to])
            .await
    }

    /// The ids the simulator holds for `entity` created in `[from, to)` (inactive included).
    pub(crate) fn expected_ids(&self, entity: &str, from: &str, to: &str) -> Vec<String> {
        let mut ids = self
            .sim
            .state()
            .ids_created_between(entity, midnight(from), midnight(to));
        ids.sort();
        ids
    }

    pub(crate) async fn loaded_ids(&self, table: &str) -> Vec<String> {
        let mut ids: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM {table}")))
                .fetch_all(self.pool())
                .await
                .expect("ids");
        ids.sort();
        ids
    }

    /// Every loaded payload equals the simulator's current entity.
    pub(crate) async fn assert_payloads_match(&self, table: &str, entity: &str) {
        self.assert_payloads_match_except(table, entity, &[]).await;
    }

    /// Every loaded payload but those of `except` (deleted in the simulator) equals the
    /// simulator's current entity.
    pub(crate) async fn assert_payloads_match_except(
        &self,
        table: &str,
        entity: &str,
        except: &[&str],
    ) {
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, payload FROM {table}"
        )))
        .fetch_all(self.pool())
        .await
        .expect("payloads");
        for (id, payload) in rows {
            if except.contains(&id.as_str()) {
                continue;
            }
            let expected = self
                .sim
                .state()
                .entity_json(entity, &id)
                .expect("entity exists");
            assert_eq!(
                payload, expected,
                "{entity} {id} differs from the simulator's"
            );
        }
    }

    /// Waits (at most 60 s) until at least `pages` pages were written for any window.
    pub(crate) async fn wait_for_pages(&self, pages: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            let written: i64 =
                sqlx::query_scalar("SELECT coalesce(sum(pages), 0)::bigint FROM ops.windows")
                    .fetch_one(self.pool())
                    .await
                    .unwrap_or(0);
            if written >= pages {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Strings that must never be printed.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let config = &self.config;
        vec![
            config.client_secret.clone(),
            config.refresh_token.clone(),
            self.sim.state().current_refresh_token(),
            self.secret_key_b64.clone(),
        ]
    }
}

pub(crate) fn midnight(day: &str) -> Timestamp {
    format!("{day}T00:00:00Z").parse().expect("timestamp")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value of `key=` in the line starting with `prefix`.
pub(crate) fn field(text: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.starts_with(prefix))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// The run id printed in the summary.
pub(crate) fn run_id(text: &str) -> String {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("run_id="))
        .expect("a run_id line")
        .to_owned()
}

pub(crate) fn assert_no_secrets(world: &World, out: &Output) {
    let all = format!("{}{}", stdout(out), stderr(out));
    for secret in world.secrets() {
        assert!(
            !all.contains(&secret),
            "a secret was printed: …{}",
            &secret[secret.len().saturating_sub(4)..]
        );
    }
}

/// Expected rows per UTC day of `[from, to)`, as the runbook's daily counts query shows them.
pub(crate) fn expected_ids_by_day(
    world: &World,
    entity: &str,
    from: &str,
    to: &str,
) -> std::collections::BTreeMap<String, i64> {
    let range = qbo_backfill::pipeline::DateRange::parse(from, to).expect("range");
    let mut out = std::collections::BTreeMap::new();
    for window in range.windows().expect("windows") {
        let n = world
            .sim
            .state()
            .ids_created_between(entity, window.start, window.end)
            .len();
        if n > 0 {
            out.insert(window.day.to_string(), n as i64);
        }
    }
    out
}
