//! Hostile input and leftovers, with the real binary: dates PostgreSQL cannot store, huge or
//! malformed values, URLs carrying credentials, clap's usage errors, secrets that would be
//! stored cut or mangled, and runs whose process died.

use std::process::{Output, Stdio};

use qbo_backfill::pipeline::{DateRange, Pipeline};
use qbo_backfill::store::runs::{self, Claim};
use tokio::io::AsyncWriteExt as _;

use crate::harness::{World, assert_no_secrets, sim_config, stderr, stdout};

/// Bad input: exit 2, one line on stderr, nothing on stdout.
fn assert_bad_input(out: &Output) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}{}", stdout(out));
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(stdout(out), "", "{err}");
}

async fn count(world: &World, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(world.pool())
        .await
        .expect("count")
}

/// `secrets set NAME` with `value` on stdin.
async fn secrets_set(world: &World, name: &str, value: &[u8]) -> Output {
    let mut cmd = world.command(&["secrets", "set", name]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // The binary may stop reading early (too long); a broken pipe is fine.
    let _ = stdin.write_all(value).await;
    drop(stdin);
    child.wait_with_output().await.expect("output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_0000_is_bad_input_and_writes_nothing() {
    let world = World::new(sim_config(10)).await;
    let out = world
        .load("qb_customers_backfill", "0000-01-01", "0000-01-02")
        .await;
    assert_bad_input(&out);
    assert!(stderr(&out).contains("0000-01-01"), "{}", stderr(&out));
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_or_odd_arguments_are_one_short_line() {
    let world = World::new(sim_config(10)).await;
    let huge = "9".repeat(100_000);
    for args in [
        vec![
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            &huge,
        ],
        vec![
            "run",
            &huge,
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-01-02",
        ],
        vec!["retry", &huge],
        // clap's own errors: a missing flag, an unknown one, a value that looks like a flag.
        vec![
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
        ],
        vec![
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "-2026-01-01",
            "--fecha-fin",
            "2026-01-02",
        ],
        vec!["runs", "--limit", "lots"],
        vec!["no-such-command"],
    ] {
        let out = world.run(&args).await;
        assert_bad_input(&out);
        assert!(stderr(&out).len() < 300, "{} bytes", stderr(&out).len());
    }
    let out = world
        .run(&[
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-01",
        ])
        .await;
    assert!(stderr(&out).contains("--fecha-fin"), "{}", stderr(&out));
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_with_credentials_are_refused_without_printing_them() {
    let mut world = World::new(sim_config(10)).await;
    let port = world
        .sim
        .api_base_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    for (var, value) in [
        (
            "QBO_API_BASE_URL",
            format!("http://user:Pw5ecretZZ@127.0.0.1:{port}"),
        ),
        (
            "QBO_API_BASE_URL",
            "ftp://user:Pw5ecretZZ@127.0.0.1:1".to_owned(),
        ),
        (
            "QBO_TOKEN_URL",
            "http://user:Pw5ecretZZ@[::1:8080/oauth".to_owned(),
        ),
    ] {
        world.extra_env = vec![(var.to_owned(), value.clone())];
        let out = world
            .load("qb_customers_backfill", "2026-01-01", "2026-01-02")
            .await;
        assert_bad_input(&out);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("Pw5ecretZZ"), "{var}={value}: {all}");
        assert!(all.contains(var), "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_bad_input_and_writes_nothing() {
    let mut world = World::new(sim_config(10)).await;
    let load = [
        "run",
        "qb_customers_backfill",
        "--fecha-inicio",
        "2026-01-01",
        "--fecha-fin",
        "2026-01-02",
    ];
    for (var, value, args) in [
        ("QBO_PAGE_SIZE", "0", &load[..]),
        ("QBO_PAGE_SIZE", "5000", &load[..]),
        ("QBO_INITIAL_BACKOFF_MS", "999999999", &load[..]),
        ("QBO_THROTTLE_WAIT_MS", "18446744073709551615", &load[..]),
        ("QBO_REQUEST_TIMEOUT_S", "0", &load[..]),
        ("QBO_BACKFILL_DB_POOL", "0", &["runs"][..]),
        (
            "QBO_BACKFILL_SECRET_KEY",
            "notbase64",
            &["secrets", "list"][..],
        ),
    ] {
        world.extra_env = vec![(var.to_owned(), value.to_owned())];
        let out = world.run(args).await;
        assert_bad_input(&out);
        assert_eq!(
            count(&world, "SELECT count(*) FROM ops.runs").await,
            0,
            "{var}={value}"
        );
    }
    world.extra_env.clear();
    // A value typed after the name by mistake is refused and never printed.
    let out = world
        .run(&["secrets", "set", "QBO_CLIENT_SECRET", "Typ3dOnArgvZZ9"])
        .await;
    assert_bad_input(&out);
    assert!(!stderr(&out).contains("Typ3dOnArgvZZ9"), "{}", stderr(&out));
    assert_eq!(count(&world, "SELECT count(*) FROM ops.secrets").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_set_never_stores_a_cut_binary_or_control_value() {
    let world = World::new(sim_config(10)).await;
    let too_long = vec![b'a'; qbo_backfill::domain::secret::MAX_SECRET_VALUE_BYTES + 1];
    let far_too_long = vec![b'a'; (1 << 20) + 10];
    for (what, value) in [
        ("one byte over the value rule's 16 KiB", too_long.as_slice()),
        ("longer than 1 MiB", far_too_long.as_slice()),
        ("not UTF-8", b"\xff\xfe-secret".as_slice()),
        ("a NUL byte", b"abc\0def".as_slice()),
        ("an escape", b"abc\x1b[31mdef".as_slice()),
    ] {
        let out = secrets_set(&world, "QBO_CLIENT_SECRET", value).await;
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{what}: {}", stderr(&out));
        assert_eq!(
            count(&world, "SELECT count(*) FROM ops.secrets").await,
            0,
            "{what} was stored"
        );
    }
    // An ordinary value, with the newline `echo` adds, is stored and shown redacted.
    let out = secrets_set(&world, "QBO_CLIENT_SECRET", b"  Cl1entSecretValue-9f3k  \n").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = world.run(&["secrets", "list"]).await;
    assert!(
        stdout(&list).contains("QBO_CLIENT_SECRET …9f3k"),
        "{}",
        stdout(&list)
    );
    assert!(!stdout(&list).contains("Cl1entSecretValue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_list_shows_the_refresh_token_and_warns_a_month_before_it_ends() {
    let world = World::new(sim_config(10)).await;
    let realm = world.config.realm_id.clone();
    let out = secrets_set(&world, "QBO_REFRESH_TOKEN", b"Refr3shTokenValue-7q2w\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = world.run(&["secrets", "list"]).await;
    let text = stdout(&list);
    let line = text
        .lines()
        .find(|l| l.contains("QBO_REFRESH_TOKEN"))
        .unwrap_or_else(|| panic!("the refresh token is listed: {text}"));
    assert!(line.contains(&format!("realm_id={realm}")), "{line}");
    assert!(line.contains("…7q2w"), "{line}");
    assert!(!text.contains("Refr3shTokenValue"), "{text}");
    assert!(!line.contains("reconnect"), "{line}");
    // Intuit said it ends in ten days: the listing says so and what to do.
    sqlx::query(
        "UPDATE ops.oauth_tokens SET refresh_token_expires_at = now() + interval '10 days 1 hour'",
    )
    .execute(world.pool())
    .await
    .expect("expiry");
    let list = world.run(&["secrets", "list"]).await;
    let text = stdout(&list);
    let line = text
        .lines()
        .find(|l| l.contains("QBO_REFRESH_TOKEN"))
        .unwrap_or_else(|| panic!("the refresh token is listed: {text}"));
    assert!(
        line.contains("(in 10 days: reconnect the company"),
        "{line}"
    );
    assert!(line.contains("Connect QuickBooks"), "{line}");
    // The `token_expiring` warning is given once for this end, whatever the number of servers.
    let claim = || qbo_backfill::store::auth::tokens::claim_expiry_warnings(world.pool(), 30);
    let first = claim().await.expect("claim");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, realm);
    assert!(claim().await.expect("claim").is_empty(), "warned twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_process_died_is_shown_interrupted_and_nothing_stays_running() {
    let world = World::new(sim_config(200)).await;
    let realm = world.config.realm_id.clone();
    let range = DateRange::parse("2026-01-05", "2026-01-08").expect("range");
    let windows = range.windows().expect("windows");
    // A run that claimed a window and whose process then died (kill -9 before any page).
    let dead_exec = crate::support::start_run(
        world.pool(),
        &realm,
        range,
        &windows,
        &crate::support::dead_worker(),
    )
    .await;
    let dead = dead_exec.run_id;
    assert_eq!(
        runs::claim_window(
            world.pool(),
            &dead_exec,
            Pipeline::CUSTOMERS,
            &realm,
            &windows[1],
            runs::LEASE
        )
        .await
        .expect("claim"),
        Claim::Claimed
    );
    // A second one died before claiming anything (e.g. during its first token refresh).
    crate::support::start_run(
        world.pool(),
        &realm,
        range,
        &windows,
        &crate::support::dead_worker(),
    )
    .await;

    let listed = world.run(&["runs"]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert_eq!(text.matches("status=interrupted").count(), 2, "{text}");
    assert!(!text.contains("status=running"), "{text}");

    // Re-running a different range leaves nothing of the dead runs `running` either.
    let out = world
        .load("qb_customers_backfill", "2026-01-10", "2026-01-11")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secrets(&world, &out);
    for sql in [
        "SELECT count(*) FROM ops.runs WHERE status = 'running'",
        "SELECT count(*) FROM ops.windows WHERE status = 'running'",
        "SELECT count(*) FROM ops.run_windows WHERE status = 'running'",
    ] {
        assert_eq!(count(&world, sql).await, 0, "{sql}");
    }
    // Both stay retryable, and the retry loads their range.
    let retry = world.run(&["retry", &dead.to_string()]).await;
    assert_eq!(retry.status.code(), Some(0), "{}", stderr(&retry));
    assert_eq!(world.loaded_ids("raw.qb_customers").await, {
        let mut ids = world.expected_ids("Customer", "2026-01-05", "2026-01-08");
        ids.extend(world.expected_ids("Customer", "2026-01-10", "2026-01-11"));
        ids.sort();
        ids
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_secret_key_is_refused_in_one_line_and_changes_nothing() {
    let mut world = World::new(sim_config(50)).await;
    let out = world
        .load("qb_customers_backfill", "2026-01-05", "2026-01-06")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tokens_before: Vec<u8> =
        sqlx::query_scalar("SELECT refresh_token_enc FROM ops.oauth_tokens")
            .fetch_one(world.pool())
            .await
            .expect("tokens");
    // The key file was lost and a new key came up (or another deployment's key was given).
    world.secret_key_b64 =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [8u8; 32]);
    for args in [
        vec![
            "run",
            "qb_customers_backfill",
            "--fecha-inicio",
            "2026-01-05",
            "--fecha-fin",
            "2026-01-06",
        ],
        vec!["worker"],
        vec!["serve", "--bind", "127.0.0.1:0"],
    ] {
        let out = world.run(&args).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = format!("{}{}", stdout(&out), stderr(&out));
        let refusal: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("is not the one that"))
            .collect();
        assert_eq!(refusal.len(), 1, "{args:?}: {text}");
        assert_no_secrets(&world, &out);
    }
    let tokens_after: Vec<u8> =
        sqlx::query_scalar("SELECT refresh_token_enc FROM ops.oauth_tokens")
            .fetch_one(world.pool())
            .await
            .expect("tokens");
    assert_eq!(tokens_before, tokens_after, "the stored tokens changed");
    assert_eq!(count(&world, "SELECT count(*) FROM ops.runs").await, 1);

    // The original key is lost for good: forget what it sealed, store again, go on.
    let refused = world.run(&["secrets", "reset"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let reset = world.run(&["secrets", "reset", "--yes"]).await;
    assert_eq!(reset.status.code(), Some(0), "{}", stderr(&reset));
    assert_eq!(
        count(&world, "SELECT count(*) FROM ops.oauth_tokens").await,
        0
    );
    world.extra_env.push((
        "QBO_REFRESH_TOKEN".to_owned(),
        world.sim.state().current_refresh_token(),
    ));
    let out = world
        .load("qb_customers_backfill", "2026-01-05", "2026-01-06")
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_contract_lines_as_messages_one_object_a_line() {
    let mut world = World::new(sim_config(20)).await;
    world
        .extra_env
        .push(("QBO_LOG_FORMAT".to_owned(), "json".to_owned()));
    let out = world
        .load("qb_customers_backfill", "2026-01-01", "2026-01-04")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(object["level"], "INFO", "{line}");
        assert!(
            object["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        messages.push(object["message"].as_str().expect("message").to_owned());
    }
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Processing Customers window 2026-01-01")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "==== QB CUSTOMERS BACKFILL SUMMARY ===="),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Export completed | inserted=")),
        "{messages:?}"
    );
    for secret in world.secrets() {
        assert!(!text.contains(&secret), "a secret in the JSON log");
    }
}
