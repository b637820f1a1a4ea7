//! The front door as an attacker would try it, against the real `serve`: floods of wrong
//! passwords (with forged `X-Forwarded-For`) from one address never stop the right password from
//! another; a trusted proxy's `X-Forwarded-For` is honoured; unknown user names cost what known
//! ones cost; API tokens hold to their scope and expiry, and the CLI refuses bad flags.
//!
//! Clients come from different loopback addresses (Linux routes all of 127.0.0.0/8 to `lo`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{ADMIN_PASSWORD, Ui};
use crate::harness::{World, sim_config, stderr, stdout};

/// How a login attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    LoggedIn,
    Refused,
    Throttled,
}

/// A login client from `local` (a loopback address).
fn client_from(local: &str) -> reqwest::Client {
    qbo::tls::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// One login through the form (its CSRF cookie first), with an `X-Forwarded-For` when given;
/// returns the outcome and how long the POST took.
async fn attempt(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (Outcome, Duration) {
    let fields = [("username", user), ("password", password)];
    let (_, r, posted) =
        crate::support::post_login(http, base, "/login", &fields, forwarded_for).await;
    let status = r.status().as_u16();
    let read = Instant::now();
    let html = r.text().await.expect("html");
    let took = posted + read.elapsed();
    let outcome = match status {
        303 => Outcome::LoggedIn,
        200 if html.contains("Too many failed attempts") => Outcome::Throttled,
        200 if html.contains("Wrong user name or password") => Outcome::Refused,
        other => panic!("login answered {other}: {html}"),
    };
    (outcome, took)
}

async fn failure_clients(world: &World) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT client FROM ops.login_failures ORDER BY 1")
        .fetch_all(world.pool())
        .await
        .expect("clients")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wrong_passwords_from_one_address_never_locks_out_another() {
    let mut world = World::new(sim_config(5)).await;
    world.extra_env.push((
        "QBO_BACKFILL_TRUSTED_PROXIES".to_owned(),
        "127.0.0.3, 10.9.0.0/16".to_owned(),
    ));
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let base = ui.base.as_str();
    // A stranger at 127.0.0.2 floods wrong passwords for admin and other names, forging
    // X-Forwarded-For (not believed: 127.0.0.2 is no trusted proxy).
    let attacker = client_from("127.0.0.2");
    // A NUL in the user name (PostgreSQL's text holds none) is refused and counted, not a 500.
    let (outcome, _) = attempt(&attacker, base, "ad\0min", "wrong", None).await;
    assert_eq!(outcome, Outcome::Refused);
    let mut throttled = 0;
    for i in 0..30 {
        let user = if i % 2 == 0 { "admin" } else { "root" };
        let xff = format!("203.0.113.{i}");
        let (outcome, _) = attempt(&attacker, base, user, "wrong", Some(&xff)).await;
        assert_ne!(outcome, Outcome::LoggedIn);
        throttled += usize::from(outcome == Outcome::Throttled);
    }
    assert!(
        throttled >= 20,
        "the flood was throttled only {throttled} times"
    );
    // The attacker is throttled even with the right password; the operator at another address
    // logs in at once.
    let (outcome, _) = attempt(&attacker, base, "admin", ADMIN_PASSWORD, None).await;
    assert_eq!(outcome, Outcome::Throttled);
    let operator = client_from("127.0.0.1");
    let (outcome, _) = attempt(&operator, base, "admin", ADMIN_PASSWORD, None).await;
    assert_eq!(outcome, Outcome::LoggedIn);
    assert_eq!(failure_clients(&world).await, ["127.0.0.2"]);
    // Behind the trusted proxy 127.0.0.3, X-Forwarded-For names the client: the right-most
    // untrusted hop, so a forged left part does not move the blame.
    let proxy = client_from("127.0.0.3");
    for _ in 0..6 {
        let xff = Some("198.51.100.1, 10.9.0.1, 198.51.100.66, 10.9.8.7");
        attempt(&proxy, base, "admin", "wrong", xff).await;
    }
    let (outcome, _) = attempt(&proxy, base, "admin", ADMIN_PASSWORD, Some("198.51.100.66")).await;
    assert_eq!(
        outcome,
        Outcome::Throttled,
        "the proxied client was not throttled"
    );
    let (outcome, _) = attempt(&proxy, base, "admin", ADMIN_PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(
        outcome,
        Outcome::LoggedIn,
        "another client behind the proxy was locked out"
    );
    assert_eq!(
        failure_clients(&world).await,
        ["127.0.0.2", "198.51.100.66"]
    );
    // Failures older than the window are pruned with the next failure.
    sqlx::query("UPDATE ops.login_failures SET at = now() - interval '1 hour'")
        .execute(world.pool())
        .await
        .expect("age");
    let (outcome, _) = attempt(&attacker, base, "admin", "wrong", None).await;
    assert_eq!(outcome, Outcome::Refused, "old failures still counted");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.login_failures")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(left, 1, "old failures were not pruned");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_user_names_cost_what_known_ones_cost() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let known_client = client_from("127.0.0.4");
    let unknown_client = client_from("127.0.0.5");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Alternate, so a burst of load on the machine hits both alike; four tries each stays under
    // the per-name limit.
    for i in 0..4 {
        let (outcome, took) = attempt(&known_client, &ui.base, "admin", "wrong", None).await;
        assert_eq!(outcome, Outcome::Refused);
        known.push(took.as_secs_f64());
        let name = format!("nobody-{i}");
        let (outcome, took) = attempt(&unknown_client, &ui.base, &name, "wrong", None).await;
        assert_eq!(outcome, Outcome::Refused);
        unknown.push(took.as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[1] + v[2]) / 2.0
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = unknown / known;
    eprintln!("login timing: known user {known:.4}s, unknown user {unknown:.4}s, ratio {ratio:.2}");
    assert!(
        (0.5..=2.0).contains(&ratio),
        "known {known:.4}s vs unknown {unknown:.4}s (ratio {ratio:.2})"
    );
}

/// Creates a token with these extra flags; returns it.
async fn token(world: &World, name: &str, flags: &[&str]) -> String {
    let mut args = vec!["api-tokens", "create", name];
    args.extend_from_slice(flags);
    let out = world.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).lines().last().expect("token").to_owned()
}

async fn call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = qbo::tls::http_client_builder()
        .build()
        .expect("an HTTP client")
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_hold_to_their_scope_and_expiry() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let base = ui.base.as_str();
    let run = json!({"pipeline": "qb_customers_backfill", "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-03"});
    let secret = json!({"value": "scoped-test-client-id"});
    // (scope flags, may enqueue a run, may write a secret)
    for (flags, runs, admin) in [
        (&["--scope", "read"][..], false, false),
        (&["--scope", "run"][..], true, false),
        (&["--scope", "admin"][..], true, true),
        (&[][..], true, true),
    ] {
        let t = token(&world, "scoped", flags).await;
        let label = format!("{flags:?}");
        assert_eq!(
            call(base, &t, "GET", "/api/v1/runs", None).await.0,
            200,
            "{label}"
        );
        assert_eq!(
            call(base, &t, "GET", "/metrics", None).await.0,
            200,
            "{label}"
        );
        let (status, body) = call(base, &t, "POST", "/api/v1/runs", Some(run.clone())).await;
        if runs {
            assert_eq!(status, 202, "{label} {body}");
            let id = body["id"].as_str().expect("id");
            let cancel = format!("/api/v1/runs/{id}/cancel");
            assert_eq!(
                call(base, &t, "POST", &cancel, None).await.0,
                202,
                "{label}"
            );
        } else {
            assert_eq!(status, 403, "{label} {body}");
            assert_eq!(body["error"]["code"], "forbidden", "{label} {body}");
        }
        let (status, body) = call(
            base,
            &t,
            "PUT",
            "/api/v1/secrets/QBO_CLIENT_ID",
            Some(secret.clone()),
        )
        .await;
        if admin {
            assert_eq!(status, 204, "{label} {body}");
        } else {
            assert_eq!(status, 403, "{label} {body}");
            assert_eq!(body["error"]["code"], "forbidden", "{label} {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    // A read token was refused before anything was written: 3 runs from the run and admin
    // tokens only.
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .expect("runs");
    assert_eq!(runs, 3);
    // Expiry: a token past its time is 401 like an unknown one.
    let short = token(&world, "short", &["--scope", "read", "--expires-in", "1h"]).await;
    assert_eq!(call(base, &short, "GET", "/api/v1/runs", None).await.0, 200);
    sqlx::query(
        "UPDATE ops.api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short'",
    )
    .execute(world.pool())
    .await
    .expect("expire");
    let (status, body) = call(base, &short, "GET", "/api/v1/runs", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let _ = token(
        &world,
        "quarterly",
        &["--scope", "run", "--expires-in", "90d"],
    )
    .await;
    let out = world.run(&["api-tokens", "list"]).await;
    let listing = format!("{}{}", stdout(&out), stderr(&out));
    assert!(listing.contains("expired scope=read"), "{listing}");
    assert!(
        listing.contains("active scope=run expires_at=2"),
        "{listing}"
    );
    assert!(
        listing.contains("scope=admin expires_at=never"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_create_refuses_bad_scope_and_lifetime_with_one_line() {
    let world = World::new(sim_config(5)).await;
    world.run(&["migrate"]).await;
    for flags in [
        &["--scope", "root"][..],
        &["--scope", ""][..],
        &["--scope", "READ"][..],
        &["--expires-in", "0d"][..],
        &["--expires-in", "90"][..],
        &["--expires-in", "1.5d"][..],
        &["--expires-in", "-1d"][..],
        &["--expires-in", "99999999999d"][..],
        &["--scope", "read", "--expires-in", "soon"][..],
    ] {
        let mut args = vec!["api-tokens", "create", "bad"];
        args.extend_from_slice(flags);
        let out = world.run(&args).await;
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{flags:?}: {err}");
        assert!(
            stdout(&out).trim().is_empty(),
            "{flags:?}: {}",
            stdout(&out)
        );
    }
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.api_tokens")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(tokens, 0);
}

/// The `Set-Cookie` names of a login through the form, and the session cookie as sent back.
async fn login_cookies(base: &str) -> (Vec<String>, String) {
    let http = client_from("127.0.0.1");
    let page = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    let csrf_cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let pair = csrf_cookie.split(';').next().expect("pair").to_owned();
    let html = page.text().await.expect("html");
    let csrf = crate::support::csrf_field(&html);
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", pair)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 303, "logged in");
    let mut set: Vec<String> = vec![csrf_cookie];
    set.extend(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("cookie").to_owned()),
    );
    let session = set
        .iter()
        .find(|c| c.contains("qbo_session=") && !c.contains("Max-Age=0"))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned();
    (set, session)
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_host_only_over_https_and_a_session_ends_a_week_after_login() {
    // Served over HTTPS (behind a proxy): every cookie is `__Host-`, `Secure`, for `/`.
    let mut world = World::new(sim_config(5)).await;
    world
        .extra_env
        .push(("QBO_BACKFILL_SECURE_COOKIES".to_owned(), "1".to_owned()));
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let (set, session) = login_cookies(&ui.base).await;
    for c in &set {
        assert!(c.starts_with("__Host-"), "{c}");
        assert!(c.contains("; Secure") && c.contains("Path=/"), "{c}");
        assert!(!c.contains("Domain="), "{c}");
    }
    let http = client_from("127.0.0.1");
    let home = |cookie: &str| {
        http.get(format!("{}/", ui.base))
            .header("cookie", cookie.to_owned())
            .send()
    };
    assert_eq!(home(&session).await.expect("home").status().as_u16(), 200);
    // The unprefixed name is not a session.
    let bare = session.trim_start_matches("__Host-");
    assert_eq!(home(bare).await.expect("home").status().as_u16(), 303);

    // Active all along, but logged in eight days ago: the session is over.
    sqlx::query("UPDATE ops.sessions SET created_at = now() - interval '8 days'")
        .execute(world.pool())
        .await
        .expect("age");
    let r = home(&session).await.expect("home");
    assert_eq!(
        r.status().as_u16(),
        303,
        "an eight-day-old session still opens pages"
    );
    assert!(
        r.headers()["location"]
            .to_str()
            .expect("location")
            .contains("/login")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_opened_at_another_address_says_so_and_starts_at_the_redirect_uris() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let (_, session) = login_cookies(&ui.base).await;
    let port = ui.base.rsplit(':').next().expect("port");
    let http = client_from("127.0.0.1");
    let get = |path: &str, host: String| {
        http.get(format!("{}{path}", ui.base))
            .header("cookie", session.clone())
            .header("host", host)
            .send()
    };
    // At the redirect URI's own address: the Connect button starts the flow.
    let here = get("/connect", format!("127.0.0.1:{port}"))
        .await
        .expect("page");
    let html = here.text().await.expect("html");
    assert!(html.contains("href=\"/connect/start\""), "{html}");
    assert!(!html.contains("another address"), "{html}");
    // At another name of the same server: the page says where to go, and starting the flow
    // moves there instead of sending Intuit back to an address without this session.
    let there = get("/connect", format!("localhost:{port}"))
        .await
        .expect("page");
    let html = there.text().await.expect("html");
    assert!(html.contains("another address"), "{html}");
    assert!(
        html.contains(&format!("href=\"{}/connect\"", ui.base)),
        "{html}"
    );
    let start = get("/connect/start", format!("localhost:{port}"))
        .await
        .expect("start");
    assert_eq!(start.status().as_u16(), 303);
    assert_eq!(
        start.headers()["location"].to_str().expect("location"),
        format!("{}/connect", ui.base)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_century_runs_page_stays_small_and_says_where_every_window_is() {
    use qbo_backfill::pipeline::DateRange;
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let range = DateRange::new(jiff::civil::date(1926, 1, 1), jiff::civil::date(2026, 1, 1))
        .expect("a century");
    let windows = range.windows().expect("windows");
    assert_eq!(windows.len(), 36_525);
    let mut tx = world.pool().begin().await.expect("begin");
    let realm = world.config.realm_id.clone();
    let id = crate::support::enqueue_customers(&mut tx, &realm, range, &windows).await;
    tx.commit().await.expect("commit");
    let (http, session) = crate::support::web_session(&ui.base, ADMIN_PASSWORD).await;
    let page = http
        .get(format!("{}/runs/{id}", ui.base))
        .header("cookie", session)
        .send()
        .await
        .expect("run page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    println!("a century's run page: {} bytes", html.len());
    assert!(html.len() < 4_000_000, "{} bytes", html.len());
    assert!(html.contains("id=\"windows-hidden\""), "no note");
    assert!(html.contains("32,525 more windows"), "the note counts them");
    assert!(
        html.contains(&format!("/api/v1/runs/{id}")),
        "the note names the API"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_page_is_not_found_in_the_readers_language_and_an_unknown_api_route_asks_for_a_token()
 {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let http = client_from("127.0.0.1");
    for (path, lang) in [
        ("/favicon.ico", "en"),
        ("/nonexistent", "es"),
        ("/runs/x/y/z", "en"),
    ] {
        let r = http
            .get(format!("{}{path}", ui.base))
            .header("accept-language", lang)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let html = r.text().await.expect("html");
        assert!(html.contains(&format!("lang=\"{lang}\"")), "{path}: {html}");
        assert!(!html.contains("API token"), "{path}: {html}");
    }
    let r = http
        .get(format!("{}/api/v1/nope", ui.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let (http, session) = crate::support::web_session(&ui.base, ADMIN_PASSWORD).await;
    let r = http
        .get(format!("{}/nonexistent", ui.base))
        .header("cookie", session)
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status().as_u16(),
        404,
        "logged in, a wrong address is still not found"
    );
}

/// Logs in through the form of `login_path` (`/login?next=…` as the redirect gave it); where
/// the login sends the browser.
async fn login_going_to(base: &str, login_path: &str) -> String {
    let fields = [("username", "admin"), ("password", ADMIN_PASSWORD)];
    let http = client_from("127.0.0.1");
    let (_, r, _) = crate::support::post_login(&http, base, login_path, &fields, None).await;
    assert_eq!(r.status().as_u16(), 303);
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_asked_for_before_logging_in_is_where_the_login_goes_and_only_a_page_of_this_site() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let r = client_from("127.0.0.1")
        .get(format!("{}/runs?status=failed", ui.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 303);
    let to_login = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(to_login, "/login?next=%2Fruns%3Fstatus%3Dfailed");
    assert_eq!(
        login_going_to(&ui.base, &to_login).await,
        "/runs?status=failed"
    );
    for elsewhere in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let path = format!("/login?next={}", elsewhere.replace('/', "%2F"));
        assert_eq!(login_going_to(&ui.base, &path).await, "/", "{elsewhere}");
    }
    assert_eq!(login_going_to(&ui.base, "/login").await, "/");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_load_history_keeps_its_dates_and_writes_nothing() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let (http, session) = crate::support::web_session(&ui.base, ADMIN_PASSWORD).await;
    let page = http
        .get(format!("{}/pipelines", ui.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("pipelines")
        .text()
        .await
        .expect("html");
    let csrf = crate::support::csrf_field(&page);
    let r = http
        .post(format!("{}/batches", ui.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("batch", "all_backfill"),
            ("fecha_inicio", "2026-03-01"),
            ("fecha_fin", "2026-02-01"),
        ])
        .send()
        .await
        .expect("load history");
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("name=\"fecha_inicio\" value=\"2026-03-01\" autofocus"),
        "{html}"
    );
    assert!(
        html.contains("name=\"fecha_fin\" value=\"2026-02-01\""),
        "{html}"
    );
    let (batches, runs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ops.batches), (SELECT count(*) FROM ops.runs)",
    )
    .fetch_one(world.pool())
    .await
    .expect("counts");
    assert_eq!((batches, runs), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_operator_starts_names_them_on_its_pages_in_their_language() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let (http, session) = crate::support::web_session(&ui.base, ADMIN_PASSWORD).await;
    let get = |path: String, lang: &'static str| {
        let http = http.clone();
        let session = session.clone();
        let base = ui.base.clone();
        async move {
            http.get(format!("{base}{path}"))
                .header("cookie", format!("{session}; lang={lang}"))
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("html")
        }
    };
    let csrf = crate::support::csrf_field(&get("/pipelines".into(), "en").await);
    let post = |path: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let http = http.clone();
        let session = session.clone();
        let base = ui.base.clone();
        let csrf = csrf.clone();
        async move {
            let mut form = vec![("csrf", csrf.as_str())];
            form.extend(fields);
            http.post(format!("{base}{path}"))
                .header("cookie", &session)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    let run_once = post(
        "/runs",
        vec![
            ("pipeline", "qb_customers_backfill"),
            ("fecha_inicio", "2026-01-01"),
            ("fecha_fin", "2026-01-03"),
        ],
    )
    .await;
    assert!(run_once.status().is_success() || run_once.status().is_redirection());
    let load_history = post(
        "/batches",
        vec![
            ("batch", "all_backfill"),
            ("fecha_inicio", "2026-01-01"),
            ("fecha_fin", "2026-01-03"),
        ],
    )
    .await;
    assert_eq!(load_history.status().as_u16(), 303);
    let batch = load_history.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let started: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT trigger, started_by FROM ops.runs")
            .fetch_all(world.pool())
            .await
            .expect("runs");
    assert_eq!(started.len(), 27, "{started:?}");
    assert!(
        started
            .iter()
            .all(|(t, by)| t == "ui" && by.as_deref() == Some("admin")),
        "{started:?}"
    );
    let by: Option<String> = sqlx::query_scalar("SELECT started_by FROM ops.batches")
        .fetch_one(world.pool())
        .await
        .expect("batch");
    assert_eq!(by.as_deref(), Some("admin"));
    assert!(get("/runs".into(), "en").await.contains("web UI · admin"));
    assert!(
        get("/runs".into(), "es")
            .await
            .contains("interfaz web · admin")
    );
    assert!(get(batch, "es").await.contains("interfaz web · admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trigger_form_says_when_it_would_fire_before_anything_is_created() {
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let (http, session) = crate::support::web_session(&ui.base, ADMIN_PASSWORD).await;
    let when = |query: &'static str, lang: &'static str| {
        let http = http.clone();
        let session = session.clone();
        let base = ui.base.clone();
        async move {
            let r = http
                .get(format!(
                    "{base}/triggers/when?pipeline=qb_customers_backfill&fecha_inicio=yesterday&fecha_fin=today&{query}"
                ))
                .header("cookie", format!("{session}; lang={lang}"))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status().as_u16(), 200);
            r.json::<serde_json::Value>().await.expect("json")
        }
    };
    let once = when(
        "kind=once&local_time=2030-02-02T10%3A00&time_zone=America%2FGuayaquil",
        "en",
    )
    .await;
    assert_eq!(once["ok"], true, "{once}");
    assert_eq!(
        once["text"],
        "It would fire at 2030-02-02T10:00:00-05:00 (America/Guayaquil), that is 2030-02-02 15:00:00Z (UTC)."
    );
    let madrid = when(
        "kind=once&local_time=2030-07-01T10%3A00&time_zone=Europe%2FMadrid",
        "es",
    )
    .await;
    assert_eq!(
        madrid["text"],
        "Se dispararía el 2030-07-01T10:00:00+02:00 (Europe/Madrid), es decir 2030-07-01 08:00:00Z (UTC).",
        "{madrid}"
    );
    let past = when(
        "kind=once&local_time=2020-02-02T10%3A00&time_zone=America%2FGuayaquil",
        "en",
    )
    .await;
    assert_eq!(past["ok"], false, "{past}");
    assert!(
        past["text"]
            .as_str()
            .is_some_and(|t| t.contains("already past")),
        "{past}"
    );
    let cron = when(
        "kind=cron&cron=0+10+*+*+*&time_zone=America%2FGuayaquil",
        "en",
    )
    .await;
    assert_eq!(cron["ok"], true, "{cron}");
    assert!(
        cron["text"]
            .as_str()
            .is_some_and(|t| t.contains("10:00:00-05:00") && t.contains("15:00:00Z")),
        "{cron}"
    );
    let bad = when("kind=cron&cron=99+*+*+*+*", "en").await;
    assert_eq!(bad["ok"], false, "{bad}");
    let zone = when(
        "kind=once&local_time=2030-02-02T10%3A00&time_zone=Mars%2FOlympus",
        "en",
    )
    .await;
    assert_eq!(zone["ok"], false, "{zone}");
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.triggers")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(created, 0, "asking writes nothing");
    // Without a session it is not answered.
    let r = client_from("127.0.0.1")
        .get(format!(
            "{}/triggers/when?kind=once&local_time=2030-02-02T10%3A00",
            ui.base
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 303);
}
