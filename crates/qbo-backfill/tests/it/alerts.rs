//! Alerts against the real `serve`, a local SMTP server and a local HTTP receiver written here:
//! a run failing on `invalid_grant` reaches every channel exactly once within seconds, signed
//! (webhook) or as an e-mail; a receiver that fails twice gets the alert on the third attempt,
//! one delivery recorded with `attempts = 3`, also when it was raised while no server ran; the
//! API creates, lists, tests and deletes channels, refuses hostile input with nothing written,
//! and holds to the `admin` scope; the Alerts page does the same in a browser.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::browser::{Browser, Ui};
use crate::harness::{World, sim_config, stderr, stdout};

/// A POST the HTTP receiver got: its signature header and body.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: String,
}

/// A local webhook receiver (any path): answers 500 to the first `fail_first` POSTs, then 204.
#[derive(Clone)]
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    accepted: Arc<AtomicUsize>,
}

impl Hook {
    async fn start(fail_first: usize) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (g, a) = (got.clone(), accepted.clone());
        let app =
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
                let (g, a, failures) = (g.clone(), a.clone(), failures.clone());
                async move {
                    let signature = headers
                        .get("x-qbo-backfill-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    g.lock().expect("lock").push(Received { signature, body });
                    let fail = failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if fail {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        a.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, got, accepted }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

/// What a receiver computes to check a POST: `sha256=` hex HMAC-SHA256 of the body.
fn expected_signature(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The messages an SMTP server received: envelope recipients and data.
type Mails = Arc<Mutex<Vec<(Vec<String>, String)>>>;

/// A local SMTP server speaking enough of the protocol for a real client (EHLO/HELO, MAIL,
/// RCPT, DATA, RSET, NOOP, QUIT); keeps each message's envelope recipients and data.
#[derive(Clone)]
struct Smtp {
    port: u16,
    mails: Mails,
}

impl Smtp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(socket, kept).await;
                });
            }
        });
        Self { port, mails }
    }

    fn mails(&self) -> Vec<(Vec<String>, String)> {
        self.mails.lock().expect("lock").clone()
    }
}

async fn smtp_session(socket: tokio::net::TcpStream, mails: Mails) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut rcpt = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-test.local\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM") {
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO") {
            rcpt.push(line[8..].trim().to_owned());
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            mails
                .lock()
                .expect("lock")
                .push((std::mem::take(&mut rcpt), data));
            b"250 queued\r\n"
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(answer).await?;
    }
    Ok(())
}

/// Points the world's `serve` at the local SMTP server.
fn use_smtp(world: &mut World, smtp: &Smtp) {
    world.extra_env.extend([
        ("QBO_SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("QBO_SMTP_PORT".to_owned(), smtp.port.to_string()),
        ("QBO_SMTP_TLS".to_owned(), "none".to_owned()),
        (
            "QBO_SMTP_FROM".to_owned(),
            "qbo-backfill@test.local".to_owned(),
        ),
    ]);
}

/// An API token of `scope`.
async fn token(world: &World, scope: &str) -> String {
    let out = world
        .run(&["api-tokens", "create", scope, "--scope", scope])
        .await;
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

async fn count(world: &World, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(world.pool())
        .await
        .expect("count")
}

/// Waits (at most `secs`) until `done` holds.
async fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_failing_on_invalid_grant_alerts_every_channel_exactly_once_within_seconds() {
    let mut world = World::new(sim_config(20)).await;
    let (hook, smtp) = (Hook::start(0).await, Smtp::start().await);
    use_smtp(&mut world, &smtp);
    let ui = Ui::start_with_workers(&mut world, "1").await;
    let admin = token(&world, "admin").await;
    let (status, created) = call(&ui.base, &admin, "POST", "/api/v1/alert-channels", Some(json!({
        "name": "ops chat", "kind": "webhook", "url": hook.url, "events": ["auth_failed", "run_failed"]
    }))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    let (status, _) = call(
        &ui.base,
        &admin,
        "POST",
        "/api/v1/alert-channels",
        Some(json!({
            "name": "ops mail", "kind": "email", "to": "ops@example.com", "events": ["auth_failed"]
        })),
    )
    .await;
    assert_eq!(status, 201);

    // Intuit revokes the refresh token: the next run fails on invalid_grant.
    for admin_route in ["tokens/revoke", "tokens/expire"] {
        let r = qbo::tls::http_client_builder()
            .build()
            .expect("an HTTP client")
            .post(format!(
                "{}/__admin/{admin_route}",
                world.sim.api_base_url()
            ))
            .send()
            .await
            .expect("sim admin");
        assert!(r.status().is_success());
    }
    let (status, run) = call(&ui.base, &admin, "POST", "/api/v1/runs", Some(json!({
        "pipeline": "qb_customers_backfill", "fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-03"
    }))).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let started = tokio::time::Instant::now();
    let auth_alerts = |hook: &Hook| {
        hook.received()
            .into_iter()
            .filter(|r| r.body.contains("\"event\":\"auth_failed\""))
            .count()
    };
    assert!(
        wait_until(30, || auth_alerts(&hook) >= 1 && !smtp.mails().is_empty()).await,
        "no alert within 30 s: webhook {:?}, mails {}",
        hook.received(),
        smtp.mails().len()
    );
    let took = started.elapsed();
    // Nothing more arrives: exactly one auth_failed on each channel.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(auth_alerts(&hook), 1, "{:?}", hook.received());
    assert_eq!(smtp.mails().len(), 1);
    eprintln!(
        "auth_failed reached both channels {:.2}s after the run was queued",
        took.as_secs_f64()
    );

    let received = hook.received();
    let auth = received
        .iter()
        .find(|r| r.body.contains("\"event\":\"auth_failed\""))
        .expect("auth alert");
    assert_eq!(auth.signature, expected_signature(&secret, &auth.body));
    let body: Value = serde_json::from_str(&auth.body).expect("json body");
    assert_eq!(body["run_id"], run_id.as_str());
    assert_eq!(body["realm_id"], world.config.realm_id.as_str());
    assert_eq!(body["pipeline"], "qb_customers_backfill");
    let text = body["text"].as_str().expect("text");
    assert!(
        text.contains("invalid_grant") && text.contains("Connect QuickBooks"),
        "{text}"
    );
    // The run failed too: the webhook subscribed to run_failed got that as well.
    assert!(
        received
            .iter()
            .any(|r| r.body.contains("\"event\":\"run_failed\""))
    );
    let (rcpt, mail) = &smtp.mails()[0];
    assert_eq!(rcpt, &vec!["<ops@example.com>".to_owned()]);
    assert!(
        mail.contains("Subject: [qbo-backfill] auth_failed"),
        "{mail}"
    );
    assert!(mail.contains(&run_id), "{mail}");
    for secret in world.secrets() {
        assert!(!mail.contains(&secret) && received.iter().all(|r| !r.body.contains(&secret)));
    }
    let states: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT event, state, attempts FROM ops.alert_deliveries ORDER BY event, state",
    )
    .fetch_all(world.pool())
    .await
    .expect("deliveries");
    assert!(
        states
            .iter()
            .all(|(_, state, attempts)| state == "delivered" && *attempts == 1),
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|(e, _, _)| e == "auth_failed").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_while_no_server_runs_is_delivered_once_after_two_failures() {
    let mut world = World::new(sim_config(5)).await;
    let hook = Hook::start(2).await;
    // A channel and an event raised with no server running (as a CLI run would): pending.
    let key = qbo_backfill::store::auth::secrets::SecretKey::from_bytes([7u8; 32]);
    let new = qbo_backfill::domain::alert::NewChannel {
        name: Some("flaky".to_owned()),
        kind: Some("webhook".to_owned()),
        url: Some(hook.url.clone()),
        to: None,
        events: Some(vec!["run_failed".to_owned()]),
    };
    let created = qbo_backfill::service::alerts::create_channel(world.pool(), &key, &new)
        .await
        .expect("channel");
    let secret = created.secret.expect("secret");
    let alert = qbo_backfill::domain::alert::Alert::run_failed(
        "123",
        uuid::Uuid::now_v7(),
        "qb_items_backfill",
        "2 of 3 windows failed",
        jiff::Timestamp::now(),
    );
    qbo_backfill::service::alerts::raise(world.pool(), &alert).await;
    assert_eq!(
        count(&world, "ops.alert_deliveries WHERE state = 'pending'").await,
        1
    );

    let _ui = Ui::start_with_workers(&mut world, "0").await;
    assert!(
        wait_until(30, || hook.accepted.load(Ordering::SeqCst) == 1).await,
        "not delivered: {:?}",
        hook.received()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = hook.received();
    assert_eq!(received.len(), 3, "two refusals, then one acceptance");
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "every attempt sends the same body"
    );
    assert!(
        received
            .iter()
            .all(|r| r.signature == expected_signature(&secret, &r.body))
    );
    let (state, attempts, last_error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, attempts, last_error FROM ops.alert_deliveries")
            .fetch_one(world.pool())
            .await
            .expect("delivery");
    assert_eq!((state.as_str(), attempts), ("delivered", 3));
    assert!(last_error.is_some_and(|e| e.contains("HTTP 500")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_channel_api_creates_tests_deletes_refuses_hostile_input_and_holds_to_admin() {
    let mut world = World::new(sim_config(5)).await;
    let (hook, smtp) = (Hook::start(0).await, Smtp::start().await);
    use_smtp(&mut world, &smtp);
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let base = ui.base.as_str();
    let (admin, read, run) = (
        token(&world, "admin").await,
        token(&world, "read").await,
        token(&world, "run").await,
    );
    let webhook = json!({"name": "chat", "kind": "webhook", "url": hook.url, "events": ["run_failed", "verify_drift"]});

    // Outside the admin scope: 403, nothing written.
    for t in [&read, &run] {
        let (status, body) = call(
            base,
            t,
            "POST",
            "/api/v1/alert-channels",
            Some(webhook.clone()),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(count(&world, "ops.alert_channels").await, 0);

    // Hostile input: refused with a code and a message, nothing written.
    let long = "n".repeat(101);
    for (body, code) in [
        (
            json!({"name": "x", "kind": "sms", "url": hook.url, "events": ["run_failed"]}),
            "invalid_kind",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "ftp://example.com/x", "events": ["run_failed"]}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "javascript:alert(1)", "events": ["run_failed"]}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "http://u:p@example.com/", "events": ["run_failed"]}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "kind": "email", "to": "ops@example.com\r\nBcc: x@evil.com", "events": ["run_failed"]}),
            "invalid_email",
        ),
        (
            json!({"name": "x", "kind": "email", "to": "not-an-address", "events": ["run_failed"]}),
            "invalid_email",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": hook.url, "events": []}),
            "invalid_events",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": hook.url, "events": ["run_failed", "everything"]}),
            "invalid_events",
        ),
        (
            json!({"name": long, "kind": "webhook", "url": hook.url, "events": ["run_failed"]}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": hook.url, "events": ["run_failed"], "admin": true}),
            "invalid_request",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": hook.url, "events": "run_failed"}),
            "invalid_request",
        ),
    ] {
        let (status, answer) = call(
            base,
            &admin,
            "POST",
            "/api/v1/alert-channels",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body} → {answer}"
        );
    }
    let (status, _) = call(
        base,
        &admin,
        "POST",
        "/api/v1/alert-channels",
        Some(Value::String("{".into())),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(count(&world, "ops.alert_channels").await, 0);

    // Create: 201, the secret once; listing and reading never show it again.
    let (status, created) = call(
        base,
        &admin,
        "POST",
        "/api/v1/alert-channels",
        Some(webhook.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(created["events"], json!(["run_failed", "verify_drift"]));
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, dup) = call(
        base,
        &admin,
        "POST",
        "/api/v1/alert-channels",
        Some(webhook.clone()),
    )
    .await;
    assert_eq!(
        (status, dup["error"]["code"].as_str()),
        (409, Some("alert_channel_exists"))
    );
    let (status, mail) = call(
        base,
        &admin,
        "POST",
        "/api/v1/alert-channels",
        Some(json!({
            "name": "mail", "kind": "email", "to": "ops@example.com", "events": ["run_failed"]
        })),
    )
    .await;
    assert_eq!(status, 201);
    assert!(mail.get("secret").is_none());
    let (status, list) = call(base, &read, "GET", "/api/v1/alert-channels", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["alert_channels"].as_array().map(Vec::len), Some(2));
    assert!(!list.to_string().contains(&secret));

    // Test: the webhook gets a signed test alert, the e-mail arrives, the answer says so.
    let (status, tested) = call(
        base,
        &admin,
        "POST",
        &format!("/api/v1/alert-channels/{id}/test"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivery"]["state"], "delivered", "{tested}");
    assert_eq!(tested["delivery"]["attempts"], 1);
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].signature, expected_signature(&secret, &got[0].body));
    assert!(got[0].body.contains("\"event\":\"test\""));
    let mail_id = mail["id"].as_str().expect("id");
    let (status, tested) = call(
        base,
        &admin,
        "POST",
        &format!("/api/v1/alert-channels/{mail_id}/test"),
        None,
    )
    .await;
    assert_eq!(
        (status, tested["delivery"]["state"].as_str()),
        (200, Some("delivered")),
        "{tested}"
    );
    assert_eq!(smtp.mails().len(), 1);
    let (status, _) = call(
        base,
        &run,
        "POST",
        &format!("/api/v1/alert-channels/{id}/test"),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // A receiver that does not answer: the test says failed, in words, at once.
    let (_, dead) = call(base, &admin, "POST", "/api/v1/alert-channels", Some(json!({
        "name": "dead", "kind": "webhook", "url": "http://127.0.0.1:9/hook", "events": ["run_failed"]
    }))).await;
    let dead_id = dead["id"].as_str().expect("id");
    let (status, tested) = call(
        base,
        &admin,
        "POST",
        &format!("/api/v1/alert-channels/{dead_id}/test"),
        None,
    )
    .await;
    assert_eq!(
        (status, tested["delivery"]["state"].as_str()),
        (200, Some("failed")),
        "{tested}"
    );
    assert!(
        tested["delivery"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be reached")),
        "{tested}"
    );

    // Read one with its deliveries; delete; then it is gone, with its deliveries.
    let (status, one) = call(
        base,
        &read,
        "GET",
        &format!("/api/v1/alert-channels/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["deliveries"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call(
            base,
            &run,
            "DELETE",
            &format!("/api/v1/alert-channels/{id}"),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            base,
            &admin,
            "DELETE",
            &format!("/api/v1/alert-channels/{id}"),
            None
        )
        .await
        .0,
        204
    );
    let (status, gone) = call(
        base,
        &admin,
        "GET",
        &format!("/api/v1/alert-channels/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("alert_channel_not_found"))
    );
    assert_eq!(
        call(
            base,
            &admin,
            "DELETE",
            &format!("/api/v1/alert-channels/{id}"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            base,
            &admin,
            "GET",
            "/api/v1/alert-channels/not-an-id",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(count(&world, "ops.alert_deliveries").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_creates_tests_and_lists_deliveries_and_reads_on_a_phone() {
    let mut world = World::new(sim_config(5)).await;
    let hook = Hook::start(0).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let browser = Browser::start().await;
    ui.login(&browser).await;
    browser.goto(&format!("{}/alerts", ui.base)).await;
    assert!(
        browser
            .text("table.channels")
            .await
            .contains("No alert channels yet")
    );

    // A refused form keeps what was typed and says why; nothing is written.
    browser.set_value("input[name=name]", "ops chat").await;
    browser
        .set_value("input[name=target]", "ftp://example.com/")
        .await;
    browser.click("input[name=event_auth_failed]").await;
    browser.click("form.alert-form button[type=submit]").await;
    assert!(
        browser
            .text("p.error[role=alert]")
            .await
            .contains("not an http or https URL")
    );
    assert_eq!(count(&world, "ops.alert_channels").await, 0);

    let url = format!("{}/services/T0001/B0001/aBcDeFgH12345678wxyz", hook.url);
    browser.set_value("input[name=target]", &url).await;
    browser.click("input[name=event_run_failed]").await;
    browser.click("form.alert-form button[type=submit]").await;
    browser.wait_for(".secret-once code.secret", 1, 20).await;
    let secret = browser.text(".secret-once code.secret").await;
    assert_eq!(secret.len(), 64, "{secret}");
    let row = browser.text("table.channels tbody tr").await;
    assert!(
        row.contains("ops chat") && row.contains("run_failed, auth_failed"),
        "{row}"
    );
    assert!(
        row.contains("/…") && !row.contains("aBcDeFgH") && !row.contains("wxyz"),
        "the webhook's key is not shown: {row}"
    );

    // Test: delivered, signed with the secret shown once; the delivery is listed.
    browser
        .click("table.channels form[action$='/test'] button")
        .await;
    let mut flash = String::new();
    for _ in 0..50 {
        flash = browser.text(".flash").await;
        if flash.contains("Test alert") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        flash.contains("Test alert delivered to ops chat"),
        "{flash}: {}",
        browser.source().await
    );
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].signature, expected_signature(&secret, &got[0].body));
    let delivery = browser.text("table.deliveries tbody tr").await;
    assert!(
        delivery.contains("test") && delivery.contains("delivered"),
        "{delivery}"
    );
    assert!(
        !browser.source().await.contains(&secret),
        "the secret is shown once only"
    );
    browser.screenshot("30-alerts").await;

    // Without a session the page sends to the login; a forged form is refused, nothing written.
    let http = qbo::tls::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .get(format!("{}/alerts", ui.base))
        .send()
        .await
        .expect("get");
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().ok()),
        (303, Some("/login?next=%2Falerts"))
    );
    let cookie = browser
        .cmd(reqwest::Method::GET, "/cookie/qbo_session", None)
        .await;
    let session = format!(
        "qbo_session={}",
        cookie["value"].as_str().expect("session cookie")
    );
    let forged = [
        ("csrf", "forged"),
        ("name", "<script>x</script>"),
        ("kind", "webhook"),
        ("target", "http://127.0.0.1:9/x"),
        ("event_run_failed", "on"),
    ];
    for path in [
        "/alerts",
        "/alerts/00000000-0000-0000-0000-000000000000/delete",
    ] {
        let r = http
            .post(format!("{}{path}", ui.base))
            .header("cookie", &session)
            .form(&forged)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "{path}");
    }
    assert_eq!(count(&world, "ops.alert_channels").await, 1);

    browser.resize(390, 844).await;
    browser.goto(&format!("{}/alerts", ui.base)).await;
    let fits: Value = browser
        .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.documentElement.scrollWidth <= window.innerWidth + 1;", "args": []})))
        .await;
    assert_eq!(fits, true, "the Alerts page scrolls sideways on a phone");
    browser.screenshot("31-alerts-390").await;
    browser.resize(1280, 1000).await;
    for page in browser.pages_seen() {
        for s in world.secrets() {
            assert!(!page.contains(&s));
        }
    }
}

#[tokio::test]
async fn a_missed_trigger_raises_trigger_missed_on_the_channels_that_receive_it_only() {
    use qbo_backfill::orchestrator::scheduler::{TestClock, fire_step};
    use qbo_backfill::orchestrator::triggers::{DEFAULT_GRACE, NewTrigger};
    let db = crate::support::test_db().await;
    let key = qbo_backfill::store::auth::secrets::SecretKey::from_bytes([7u8; 32]);
    for (name, events) in [("missed", "trigger_missed"), ("failures", "run_failed")] {
        let new = qbo_backfill::domain::alert::NewChannel {
            name: Some(name.to_owned()),
            kind: Some("email".to_owned()),
            url: None,
            to: Some("ops@example.com".to_owned()),
            events: Some(vec![events.to_owned()]),
        };
        qbo_backfill::service::alerts::create_channel(&db.pool, &key, &new)
            .await
            .expect("channel");
    }
    let trigger = NewTrigger {
        pipeline: Some("qb_customers_backfill".to_owned()),
        kind: Some("once".to_owned()),
        local_time: Some("2026-02-02T10:00".to_owned()),
        time_zone: Some("America/Guayaquil".to_owned()),
        params: Some(json!({"fecha_inicio": "2026-01-01", "fecha_fin": "2026-01-31"})),
        ..NewTrigger::default()
    };
    let now = crate::support::ts("2026-02-01T00:00:00Z");
    let trigger = qbo_backfill::store::runs::triggers::create(&db.pool, &trigger, now)
        .await
        .expect("trigger");
    // The scheduler was down past the grace: the occurrence is missed.
    let clock = TestClock::new(crate::support::ts("2026-02-02T15:20:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, "4620816365000000")
        .await
        .expect("step");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].run_id, None);
    let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT c.name, d.event, d.pipeline, d.text FROM ops.alert_deliveries d \
         JOIN ops.alert_channels c ON c.id = d.channel_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("deliveries");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (channel, event, pipeline, text) = &rows[0];
    assert_eq!(
        (channel.as_str(), event.as_str()),
        ("missed", "trigger_missed")
    );
    assert_eq!(pipeline.as_deref(), Some("qb_customers_backfill"));
    assert!(
        text.contains("2026-02-02T15:00:00Z") && text.contains(&trigger.id.to_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_that_finds_drift_raises_verify_drift_from_the_cli_too() {
    let world = World::new(sim_config(30)).await;
    let key = qbo_backfill::store::auth::secrets::SecretKey::from_bytes([7u8; 32]);
    let new = qbo_backfill::domain::alert::NewChannel {
        name: Some("drift".to_owned()),
        kind: Some("email".to_owned()),
        url: None,
        to: Some("ops@example.com".to_owned()),
        events: Some(vec!["verify_drift".to_owned(), "run_failed".to_owned()]),
    };
    qbo_backfill::service::alerts::create_channel(world.pool(), &key, &new)
        .await
        .expect("channel");
    let out = world
        .load("qb_customers_backfill", "2026-01-01", "2026-02-01")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A row goes missing from raw by hand: verify finds the month drifted and repairs it.
    sqlx::query("DELETE FROM raw.qb_customers WHERE id = (SELECT min(id) FROM raw.qb_customers)")
        .execute(world.pool())
        .await
        .expect("delete");
    let out = world
        .run(&[
            "verify",
            "customers",
            "--fecha-inicio",
            "2026-01-01",
            "--fecha-fin",
            "2026-02-01",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("drifted=1"), "{}", stdout(&out));
    // Raised by the CLI, pending until a `serve` sends it; no run failed.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event, state, text FROM ops.alert_deliveries")
            .fetch_all(world.pool())
            .await
            .expect("deliveries");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("verify_drift", "pending")
    );
    assert!(rows[0].2.contains("1 month(s) drifted"), "{}", rows[0].2);
}

/// The hostile probe: a webhook URL carrying a password is refused without repeating it (API
/// and form, whose input is not refilled with it); a chat webhook's key in its path, its
/// parameters or its query is never shown (the `201` answer, the list, the page); a refused
/// value with a NUL is echoed escaped, not cleaned into one that looks valid; and the database
/// keeps no webhook URL in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_channels_never_echo_a_credential_nor_show_a_webhook_key() {
    const CANARY: &str = "SECRETCANARY";
    let mut world = World::new(sim_config(5)).await;
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let base = ui.base.as_str();
    let admin = token(&world, "admin").await;
    let post = |body: Value| {
        let admin = admin.clone();
        async move { call(base, &admin, "POST", "/api/v1/alert-channels", Some(body)).await }
    };

    // A URL with a user and password: refused, saying why, without the URL or the password.
    let (status, answer) = post(json!({"name": "w2", "kind": "webhook",
        "url": "https://user:SECRETCANARYpw@hooks.example.com/x", "events": ["run_failed"]}))
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_url")),
        "{answer}"
    );
    let text = answer.to_string();
    assert!(text.contains("must not carry a user or password"), "{text}");
    assert!(
        !text.contains(CANARY) && !text.contains("hooks.example.com"),
        "{text}"
    );

    // Control characters are echoed escaped, and a URL is not echoed at all.
    let (status, answer) = post(json!({"name": "m", "kind": "email", "to": "a\u{0}@b.co",
        "events": ["run_failed"]}))
    .await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("`a\\u{0}@b.co`"), "{message}");
    let (status, answer) = post(json!({"name": "n", "kind": "webhook",
        "url": "http://example.com/a\u{0}b", "events": ["run_failed"]}))
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_url")),
        "{answer}"
    );
    assert!(!answer.to_string().contains("example.com/ab"), "{answer}");
    assert_eq!(count(&world, "ops.alert_channels").await, 0);

    // Chat webhooks whose key is the path, a path parameter or the query: shown as the host.
    for (name, url, shown) in [
        (
            "slack",
            "https://hooks.example.com/services/T0000/B0000/SECRETCANARYslackpathkey",
            "https://hooks.example.com/…",
        ),
        ("semi", "http://h/hook;SECRETCANARYsemi", "http://h/…"),
        (
            "query",
            "https://chat.example.com/hook?key=SECRETCANARYq",
            "https://chat.example.com/…",
        ),
    ] {
        let (status, created) =
            post(json!({"name": name, "kind": "webhook", "url": url, "events": ["run_failed"]}))
                .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["url"], shown, "{created}");
        assert!(!created.to_string().contains(CANARY), "{created}");
    }
    let (status, list) = call(base, &admin, "GET", "/api/v1/alert-channels", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["alert_channels"].as_array().map(Vec::len), Some(3));
    assert!(!list.to_string().contains(CANARY), "{list}");
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ops.alert_channels WHERE target LIKE '%SECRETCANARY%'",
    )
    .fetch_one(world.pool())
    .await
    .expect("count");
    assert_eq!(plain, 0, "a webhook URL is stored in plain text");

    // The page: no key in the list; a refused form says why and does not refill the URL.
    let (http, cookies) = crate::support::web_session(base, crate::browser::ADMIN_PASSWORD).await;
    let html = http
        .get(format!("{base}/alerts"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("https://hooks.example.com/…"), "{html}");
    assert!(!html.contains(CANARY), "{html}");
    let csrf = crate::support::csrf_field(&html);
    let refused = http
        .post(format!("{base}/alerts"))
        .header("cookie", &cookies)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "w2"),
            ("kind", "webhook"),
            ("target", "https://user:SECRETCANARYpw@hooks.example.com/x"),
            ("event_run_failed", "on"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status().as_u16(), 200);
    let html = refused.text().await.expect("html");
    assert!(html.contains("must not carry a user or password"), "{html}");
    assert!(!html.contains(CANARY), "{html}");
    assert!(html.contains("value=\"w2\""), "the name is kept: {html}");
    assert_eq!(count(&world, "ops.alert_channels").await, 3);
}

/// A webhook's URL (its key) is sealed at rest, only its scheme and host in plain text, and
/// alerts still reach it; a URL stored in plain text before is sealed by the first delivery
/// that reads it, or by `serve` when it starts (`seal_plain_targets`), and still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_are_sealed_at_rest_and_old_plain_ones_are_sealed_and_still_delivered() {
    use qbo_backfill::service::alerts::{Sender, create_channel, seal_plain_targets, test_channel};
    let db = crate::support::test_db().await;
    let pool = &db.pool;
    let key = qbo_backfill::store::auth::secrets::SecretKey::from_bytes([7u8; 32]);
    let hook = Hook::start(0).await;
    let url = format!(
        "{}/services/T0/B0/SECRETCANARYkey?token=SECRETCANARYq",
        hook.url
    );
    let mut ids = Vec::new();
    for name in ["new", "old-delivered", "old-at-start"] {
        let new = qbo_backfill::domain::alert::NewChannel {
            name: Some(name.to_owned()),
            kind: Some("webhook".to_owned()),
            url: Some(url.clone()),
            to: None,
            events: Some(vec!["run_failed".to_owned()]),
        };
        let created = create_channel(pool, &key, &new).await.expect("channel");
        ids.push(created.channel.id);
    }
    let stored = || async {
        sqlx::query_as::<_, (String, Option<Vec<u8>>)>(
            "SELECT target, target_enc FROM ops.alert_channels ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("channels")
    };
    for (target, sealed) in stored().await {
        assert!(!target.contains("SECRETCANARY"), "{target}");
        assert!(target.ends_with("/…"), "{target}");
        let sealed = sealed.expect("sealed");
        assert!(
            !String::from_utf8_lossy(&sealed).contains("SECRETCANARY"),
            "the URL is sealed"
        );
    }
    // Two channels as a release before sealing left them: the URL in plain text.
    sqlx::query("UPDATE ops.alert_channels SET target = $1, target_enc = NULL WHERE id <> $2")
        .bind(&url)
        .bind(ids[0])
        .execute(pool)
        .await
        .expect("old rows");

    let sender = Sender::new(pool.clone(), key.clone(), Duration::from_millis(10)).expect("sender");
    for id in &ids[..2] {
        let delivery = test_channel(&sender, *id).await.expect("test");
        assert_eq!(delivery.state, "delivered", "{:?}", delivery.last_error);
    }
    assert_eq!(hook.received().len(), 2);
    let plain: Vec<bool> = stored()
        .await
        .into_iter()
        .map(|(target, _)| target.contains("SECRETCANARY"))
        .collect();
    assert_eq!(
        plain.iter().filter(|p| **p).count(),
        1,
        "the delivery sealed the URL it read"
    );
    assert_eq!(seal_plain_targets(pool, &key).await.expect("sealed"), 1);
    assert_eq!(seal_plain_targets(pool, &key).await.expect("sealed"), 0);
    for (target, sealed) in stored().await {
        assert!(
            !target.contains("SECRETCANARY") && sealed.is_some(),
            "{target}"
        );
    }
    let delivery = test_channel(&sender, ids[2]).await.expect("test");
    assert_eq!(delivery.state, "delivered", "{:?}", delivery.last_error);
    assert_eq!(hook.received().len(), 3);
}
