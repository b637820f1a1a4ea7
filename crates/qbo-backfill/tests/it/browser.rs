//! The web UI in a real browser (headless Chromium through chromedriver's W3C WebDriver API,
//! spoken with plain HTTP), against the real `serve`, real PostgreSQL and `qbo-sim`, as an
//! operator would: log in; Run once and watch every window turn green; a one-time trigger at
//! 10:00 America/Guayaquil reads 15:00 UTC; after `invalid_grant` the banner, Connect QuickBooks,
//! retry and success; retry only the failed windows of a run broken by faults. Screenshots of
//! every page go to `target/ui-screenshots/`. Plus the security checks: no page without a
//! session, no form without its CSRF token, hostile text escaped, no secret in any page.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use qbo_sim::FaultConfig;
use serde_json::{Value, json};

use crate::harness::{World, sim_config};

const JAN_FROM: &str = "2026-01-01";
const JAN_TO: &str = "2026-02-01";
pub(crate) const ADMIN_PASSWORD: &str = "Adm1n-Pa55word-for-tests";

/// A headless Chromium session driven through chromedriver.
pub(crate) struct Browser {
    http: reqwest::Client,
    driver: String,
    session: String,
    _chromedriver: tokio::process::Child,
    pages: std::sync::Mutex<Vec<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn find_program(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        })
    })
}

impl Browser {
    /// A browser whose language is English (`Accept-Language: en-US`), as every test but the
    /// languages' expects.
    pub(crate) async fn start() -> Self {
        Self::start_with_language("en-US").await
    }

    /// A browser whose `Accept-Language` is `accept` (e.g. `es-EC,es`).
    pub(crate) async fn start_with_language(accept: &str) -> Self {
        let chromedriver = find_program(&["chromedriver"])
            .expect("chromedriver is not installed: `apt-get install chromium chromium-driver` (.ci/run does)");
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]).expect(
            "chromium is not installed: `apt-get install chromium chromium-driver` (.ci/run does)",
        );
        let port = free_port();
        let child = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let driver = format!("http://127.0.0.1:{port}");
        let http = qbo::tls::http_client_builder()
            .build()
            .expect("an HTTP client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while http.get(format!("{driver}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", format!("--lang={}", accept.split(',').next().unwrap_or("en-US"))
            ], "prefs": {"intl.accept_languages": accept}}
        }}});
        let created: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            http,
            driver,
            session,
            _chromedriver: child,
            pages: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        answer["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
        self.remember_page().await;
    }

    pub(crate) async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn remember_page(&self) {
        let source = self.source().await;
        self.pages.lock().expect("pages").push(source);
    }

    async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub(crate) async fn count(&self, css: &str) -> usize {
        self.cmd(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    async fn element(&self, css: &str) -> String {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element `{css}`"))
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Sets an input's value directly (date and datetime inputs take keyboard input per locale).
    pub(crate) async fn set_value(&self, css: &str, value: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "document.querySelector(arguments[0]).value = arguments[1];", "args": [css, value]})),
        )
        .await;
    }

    /// Sets an input's value and tells the page, as typing would (an `input` event).
    pub(crate) async fn typed(&self, css: &str, value: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "var el = document.querySelector(arguments[0]); el.value = arguments[1]; el.dispatchEvent(new Event('input', {bubbles: true}));", "args": [css, value]})),
        )
        .await;
    }

    pub(crate) async fn click(&self, css: &str) {
        // A run's page swaps its live part in as soon as it loads: an element found just before
        // the swap is stale, so it is found again and clicked again.
        for _ in 0..10 {
            let el = self.element(css).await;
            let clicked = self
                .cmd(
                    reqwest::Method::POST,
                    &format!("/element/{el}/click"),
                    Some(json!({})),
                )
                .await;
            if clicked["error"] != "stale element reference" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.remember_page().await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let el = self.element(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `css` matches at least `n` elements.
    pub(crate) async fn wait_for(&self, css: &str, n: usize, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if self.count(css).await >= n {
                self.remember_page().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` never reached {n}; page: {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("png");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write");
    }

    /// Whether the first element matching `selector` shows all its content without scrolling
    /// sideways.
    pub(crate) async fn fits(&self, selector: &str) -> bool {
        let script = "const e = document.querySelector(arguments[0]); return e !== null && e.scrollWidth <= e.clientWidth + 1;";
        let fits: Value = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": script, "args": [selector]})),
            )
            .await;
        fits == true
    }

    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    pub(crate) fn pages_seen(&self) -> Vec<String> {
        self.pages.lock().expect("pages").clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver, self.session);
        // Best effort: chromedriver is killed on drop anyway.
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("curl")
                .args(["-s", "-X", "DELETE", &url])
                .output();
        })
        .join();
    }
}

/// A `serve` process for the browser, with the simulator as Intuit (its consent page too).
pub(crate) struct Ui {
    pub(crate) base: String,
    _server: tokio::process::Child,
}

impl Ui {
    pub(crate) async fn start(world: &mut World) -> Self {
        Self::start_with_workers(world, "2").await
    }

    /// A `serve` with `workers` workers (`"0"`: none, and so no reaper either).
    pub(crate) async fn start_with_workers(world: &mut World, workers: &str) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        world.extra_env.extend([
            (
                "QBO_BACKFILL_ADMIN_PASSWORD".to_owned(),
                ADMIN_PASSWORD.to_owned(),
            ),
            ("QBO_AUTHORIZE_URL".to_owned(), world.sim.authorize_url()),
            (
                "QBO_REDIRECT_URI".to_owned(),
                format!("{base}/connect/callback"),
            ),
        ]);
        let server = world
            .command(&[
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--workers",
                workers,
                "--poll-ms",
                "100",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve");
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
                "serve never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            base,
            _server: server,
        }
    }

    pub(crate) async fn login(&self, browser: &Browser) {
        browser.goto(&format!("{}/login", self.base)).await;
        browser.type_into("input[name=username]", "admin").await;
        browser
            .type_into("input[name=password]", ADMIN_PASSWORD)
            .await;
        browser.click("button[type=submit]").await;
        // The home page: the dashboard.
        browser.wait_for("main h1", 1, 20).await;
    }

    /// Run once from the Pipelines page; returns the run page's URL.
    pub(crate) async fn run_once(&self, browser: &Browser, from: &str, to: &str) -> String {
        browser.goto(&format!("{}/pipelines", self.base)).await;
        let form = "#qb_customers_backfill form.run-once";
        browser
            .set_value(&format!("{form} input[name=fecha_inicio]"), from)
            .await;
        browser
            .set_value(&format!("{form} input[name=fecha_fin]"), to)
            .await;
        browser.click(&format!("{form} button[type=submit]")).await;
        browser.wait_for("#live", 1, 20).await;
        browser.url().await
    }
}

fn assert_no_secret_in(world: &World, pages: &[String]) {
    for page in pages {
        for secret in world.secrets() {
            assert!(!page.contains(&secret), "a secret was sent to the browser");
        }
        assert!(
            !page.contains(ADMIN_PASSWORD),
            "the admin password was sent to the browser"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_once_schedules_a_trigger_and_reconnects_after_invalid_grant() {
    let mut world = World::new(sim_config(400)).await;
    let ui = Ui::start(&mut world).await;
    let browser = Browser::start().await;

    // Every page without a session goes to the login page.
    for path in [
        "/",
        "/pipelines",
        "/runs",
        "/triggers",
        "/secrets",
        "/connect",
    ] {
        browser.goto(&format!("{}{path}", ui.base)).await;
        let url = browser.url().await;
        assert!(
            url.ends_with("/login") || url.contains("/login?next="),
            "{path} without a session: {url}"
        );
    }
    browser.screenshot("01-login").await;
    // A wrong password is refused in words.
    browser.type_into("input[name=username]", "admin").await;
    browser.type_into("input[name=password]", "wrong").await;
    browser.click("button[type=submit]").await;
    assert!(
        browser
            .text("p.error")
            .await
            .contains("Wrong user name or password")
    );
    ui.login(&browser).await;
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    browser.screenshot("02-pipelines").await;

    // A reversed range is refused inline, in an operator's words, and nothing is queued.
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    let form = "#qb_customers_backfill form.run-once";
    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), JAN_TO)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), JAN_FROM)
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    assert!(
        browser
            .text("#qb_customers_backfill p.error")
            .await
            .contains("must be after")
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(runs, 0);

    // Run once, and watch every window turn green.
    let run_url = ui.run_once(&browser, JAN_FROM, JAN_TO).await;
    assert!(run_url.contains("/runs/"), "{run_url}");
    browser
        .wait_for("ol.grid li.cell.s-succeeded", 31, 120)
        .await;
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 30)
        .await;
    browser.wait_for("#log span", 30, 30).await;
    let log = browser.text("#log").await;
    assert!(log.contains("Window completed | pages="), "{log}");
    assert!(
        log.contains("==== QB CUSTOMERS BACKFILL SUMMARY ===="),
        "{log}"
    );
    browser.screenshot("03-run-succeeded").await;
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    browser.goto(&format!("{}/runs", ui.base)).await;
    assert_eq!(browser.count("tbody tr .status.s-succeeded").await, 1);
    assert!(
        browser.fits(".table-wrap").await,
        "the runs table is clipped at 1280 px"
    );
    browser.screenshot("04-runs").await;

    // The dashboard: the customers table's rows, its last backfill, and what is stale.
    browser.goto(&format!("{}/", ui.base)).await;
    let loaded = world.expected_ids("Customer", JAN_FROM, JAN_TO).len();
    let shown = if loaded >= 1000 {
        format!("{},{:03}", loaded / 1000, loaded % 1000)
    } else {
        loaded.to_string()
    };
    let customers = browser.text("tr[data-name^='Customers']").await;
    assert!(customers.contains(&shown), "{customers}");
    assert!(customers.contains("never synced"), "{customers}");
    assert!(!customers.contains("⚠"), "nothing failed: {customers}");
    assert!(
        browser.fits(".table-wrap").await,
        "the dashboard is clipped at 1280 px"
    );
    // Filtering by name leaves the customers' row alone.
    browser.type_into("input[data-filter]", "custom").await;
    let visible: Value = browser
        .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return Array.from(document.querySelectorAll('table.dashboard tbody tr')).filter(tr => !tr.hidden).length;", "args": []})))
        .await;
    assert_eq!(visible, 1, "the filter keeps one row");
    browser.goto(&format!("{}/", ui.base)).await;
    browser.screenshot("04-dashboard").await;

    // A one-time trigger at 10:00 in Guayaquil (the default zone) reads 15:00 UTC.
    browser.goto(&format!("{}/triggers", ui.base)).await;
    assert_eq!(
        browser
            .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.querySelector('input[name=time_zone]').value;", "args": []})))
            .await,
        "America/Guayaquil"
    );
    // As it is typed, the form says when it would fire (or why it would be refused).
    browser
        .set_value("input[name=fecha_inicio]", JAN_FROM)
        .await;
    browser.set_value("input[name=fecha_fin]", JAN_TO).await;
    browser
        .typed("input[name=local_time]", "2020-02-02T10:00")
        .await;
    browser.wait_for("#trigger-when.error", 1, 10).await;
    let refused = browser.text("#trigger-when").await;
    assert!(refused.contains("already past"), "{refused}");
    browser
        .typed("input[name=local_time]", "2030-02-02T10:00")
        .await;
    browser
        .wait_for("#trigger-when:not(.error):not(:empty)", 1, 10)
        .await;
    let fires = browser.text("#trigger-when").await;
    assert!(
        fires.contains("2030-02-02T10:00:00-05:00")
            && fires.contains("America/Guayaquil")
            && fires.contains("2030-02-02 15:00:00Z"),
        "{fires}"
    );
    browser.screenshot("05a-trigger-form-says-when").await;
    browser.click("form.trigger-form button[type=submit]").await;
    let flash = browser.text(".flash").await;
    assert!(flash.contains("2030-02-02T10:00:00-05:00"), "{flash}");
    assert!(flash.contains("2030-02-02 15:00:00Z"), "{flash}");
    let row = browser.text("tbody tr").await;
    assert!(
        row.contains("2030-02-02 15:00:00Z") && row.contains("scheduled"),
        "{row}"
    );
    assert!(
        browser.fits(".table-wrap").await,
        "the triggers table is clipped at 1280 px"
    );
    browser.screenshot("05-triggers").await;
    // The dashboard shows the customers' next trigger in local time and in UTC.
    browser.goto(&format!("{}/", ui.base)).await;
    let customers = browser.text("tr[data-name^='Customers']").await;
    assert!(
        customers.contains("2030-02-02T10:00:00-05:00")
            && customers.contains("2030-02-02 15:00:00Z"),
        "{customers}"
    );

    // The refresh token dies: the next run fails with invalid_grant and every page shows the
    // banner; Connect QuickBooks fixes it in one click; retrying the run succeeds.
    for admin in ["tokens/revoke", "tokens/expire"] {
        let r = qbo::tls::http_client_builder()
            .build()
            .expect("an HTTP client")
            .post(format!("{}/__admin/{admin}", world.sim.api_base_url()))
            .send()
            .await
            .expect("admin");
        assert!(r.status().is_success(), "{admin}");
    }
    // Days not loaded yet (days another run loaded since are not offered for retry).
    let failed_url = ui.run_once(&browser, "2026-02-05", "2026-02-08").await;
    browser.wait_for(".run-head .status.s-failed", 1, 60).await;
    // The reconnect banner appears on the run's page without a reload.
    browser.wait_for(".banner a[href='/connect']", 1, 10).await;
    browser.goto(&failed_url).await;
    browser.wait_for(".banner a[href='/connect']", 1, 10).await;
    assert_eq!(browser.count(".banner").await, 1, "the banner shows once");
    assert!(browser.text(".banner").await.contains("invalid_grant"));
    browser.screenshot("06-invalid-grant-banner").await;
    browser.goto(&format!("{}/connect", ui.base)).await;
    browser.screenshot("07-connect").await;
    browser
        .click("a.button.primary[href='/connect/start']")
        .await;
    browser.wait_for(".flash", 1, 20).await;
    assert!(
        browser
            .text(".flash")
            .await
            .contains("Connected QuickBooks company")
    );
    assert_eq!(
        browser.count(".banner").await,
        0,
        "the banner stays after reconnecting"
    );
    browser.goto(&failed_url).await;
    browser.click("form[action$='/retry'] button").await;
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 60)
        .await;
    browser.screenshot("08-retried-after-reconnect").await;

    // Secrets: names only, and a replaced value is never sent back.
    browser.goto(&format!("{}/secrets", ui.base)).await;
    browser.type_into("input[name=name]", "MY_NOTE").await;
    browser
        .type_into("input[name=value]", "Pr1vate-Note-Value-zz9")
        .await;
    browser.click("form[action='/secrets'] button").await;
    assert!(browser.text(".flash").await.contains("MY_NOTE replaced"));
    browser.screenshot("09-secrets").await;
    let pages = browser.pages_seen();
    assert!(pages.iter().all(|p| !p.contains("Pr1vate-Note-Value")));

    // On a phone's width every page still reads (no horizontal scroll of the page itself).
    browser.resize(390, 844).await;
    browser.goto(&format!("{}/", ui.base)).await;
    let width: Value = browser
        .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.documentElement.scrollWidth <= window.innerWidth + 1;", "args": []})))
        .await;
    assert_eq!(width, true, "the dashboard scrolls sideways on a phone");
    browser.screenshot("10-dashboard-phone").await;
    browser.goto(&failed_url).await;
    let width: Value = browser
        .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.documentElement.scrollWidth <= window.innerWidth + 1;", "args": []})))
        .await;
    assert_eq!(width, true, "the run page scrolls sideways on a phone");
    browser.screenshot("10-run-phone").await;
    browser
        .goto(&format!("{}/pipelines#qb_customers_incremental", ui.base))
        .await;
    let width: Value = browser
        .cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.documentElement.scrollWidth <= window.innerWidth + 1;", "args": []})))
        .await;
    assert_eq!(
        width, true,
        "the pipelines page scrolls sideways on a phone"
    );
    assert!(
        browser
            .text("#qb_customers_incremental")
            .await
            .contains("since the last sync")
    );
    browser.screenshot("10-pipelines-phone").await;
    assert_no_secret_in(&world, &browser.pages_seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_failed_windows_of_a_run_broken_by_faults_are_retried_from_the_ui() {
    let mut world = World::failing(300, 0.5).await;
    // Days asked for one by one, so that single days fail on their own.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let ui = Ui::start(&mut world).await;
    let browser = Browser::start().await;
    ui.login(&browser).await;
    let run_url = ui.run_once(&browser, JAN_FROM, JAN_TO).await;
    browser.wait_for(".run-head .status.s-failed", 1, 120).await;
    let failed = browser.count("ol.grid li.cell.s-failed").await;
    assert!(failed > 0 && failed < 30, "{failed} failed windows");
    assert!(browser.count("table.windows td.error").await > 0);
    browser.screenshot("11-run-with-failed-windows").await;

    world.sim.state().set_faults(FaultConfig::default());
    browser.goto(&run_url).await;
    browser.click("form[action$='/retry'] button").await;
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 120)
        .await;
    assert_eq!(
        browser.count("ol.grid li.cell").await,
        failed,
        "the retry ran only the failed windows"
    );
    assert!(browser.source().await.contains("retry of"));
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", JAN_FROM, JAN_TO)
    );
    assert_no_secret_in(&world, &browser.pages_seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_worker_died_is_retried_from_the_ui_by_the_one_retry_rule() {
    let mut world = World::new(sim_config(60)).await;
    // No workers in the server, so no reaper: only the retry can find the run dead.
    let ui = Ui::start_with_workers(&mut world, "0").await;
    let dead =
        crate::support::dead_run_holding_its_first_day(world.pool(), &world.config.realm_id).await;
    let status = |id: uuid::Uuid| {
        let pool = world.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM ops.runs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("status")
        }
    };
    let browser = Browser::start().await;
    ui.login(&browser).await;
    // Still recorded running, but its worker is gone: the page offers Retry.
    browser
        .goto(&format!("{}/runs/{}", ui.base, dead.run_id))
        .await;
    browser.wait_for(".run-head .status.s-running", 1, 20).await;
    assert_eq!(browser.count("form[action$='/retry'] button").await, 1);
    browser.click("form[action$='/retry'] button").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while browser.url().await.ends_with(&dead.run_id.to_string()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_for("#live", 1, 20).await;
    let url = browser.url().await;
    let retry_id: uuid::Uuid = url
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a run page: {url}"));
    assert_ne!(retry_id, dead.run_id, "the retry is a new run");
    assert_eq!(status(dead.run_id).await, "interrupted");
    let retry_of: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT retry_of FROM ops.runs WHERE id = $1")
            .bind(retry_id)
            .fetch_one(world.pool())
            .await
            .expect("retry_of");
    assert_eq!(retry_of, Some(dead.run_id));
    assert!(browser.source().await.contains("retry of"));
    // A worker takes the retry and loads the range.
    let _worker = world
        .command(&["worker", "--poll-ms", "100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 120)
        .await;
    assert_eq!(status(retry_id).await, "succeeded");
    assert_eq!(
        world.loaded_ids("raw.qb_customers").await,
        world.expected_ids("Customer", "2026-01-05", "2026-01-08")
    );
    browser.screenshot("12-dead-run-retried").await;
    assert_no_secret_in(&world, &browser.pages_seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuse_strangers_and_forged_forms_and_escape_hostile_text() {
    let mut world = World::new(sim_config(50)).await;
    let ui = Ui::start(&mut world).await;
    let http = qbo::tls::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Without a session: pages redirect to the login, forms and live parts are refused.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/runs"),
        ("GET", "/runs/00000000-0000-0000-0000-000000000000"),
        ("GET", "/triggers"),
        ("GET", "/secrets"),
        ("GET", "/connect"),
        ("GET", "/connect/start"),
        ("GET", "/connect/finish?code=x&state=y&realmId=1"),
        ("POST", "/runs"),
        ("POST", "/secrets"),
        ("POST", "/triggers"),
        ("POST", "/logout"),
    ] {
        let req = http.request(
            method.parse().expect("method"),
            format!("{}{path}", ui.base),
        );
        let req = if method == "POST" {
            req.form(&[("csrf", "x")])
        } else {
            req
        };
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 303, "{method} {path}");
        // A page asked for comes back after the login; a form does not.
        let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        let login = if method == "GET" && path != "/" {
            format!("/login?next={back}")
        } else {
            "/login".to_owned()
        };
        assert_eq!(r.headers()["location"], login.as_str(), "{method} {path}");
    }
    // A login form posted without its token is refused; so is one with a forged token.
    let r = http
        .post(format!("{}/login", ui.base))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403);
    // Log in properly (cookie jar by hand).
    let login = http
        .get(format!("{}/login", ui.base))
        .send()
        .await
        .expect("login page");
    let login_cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let page = login.text().await.expect("html");
    let csrf = crate::support::csrf_field(&page);
    let r = http
        .post(format!("{}/login", ui.base))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let session = set_cookie.split(';').next().expect("pair").to_owned();
    let home = http
        .get(format!("{}/", ui.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("home");
    assert_eq!(home.status(), 200);
    let csp = home.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let home = home.text().await.expect("html");
    let session_csrf = crate::support::csrf_field(&home);
    // Forms without their token, or with another's, are refused and write nothing.
    for token in ["", "forged-token", csrf.as_str()] {
        let r = http
            .post(format!("{}/runs", ui.base))
            .header("cookie", &session)
            .form(&[
                ("csrf", token),
                ("pipeline", "qb_customers_backfill"),
                ("fecha_inicio", JAN_FROM),
                ("fecha_fin", JAN_TO),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "token `{token}`");
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.runs")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(runs, 0);
    // Hostile text is shown escaped wherever it is echoed.
    let hostile = "<script>alert(\"x\")</script>' onmouseover='y";
    let r = http
        .post(format!("{}/triggers", ui.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", session_csrf.as_str()),
            ("pipeline", "qb_customers_backfill"),
            ("kind", "cron"),
            ("cron", hostile),
            ("time_zone", hostile),
            ("fecha_inicio", hostile),
            ("fecha_fin", "today"),
        ])
        .send()
        .await
        .expect("post");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("class=\"error\""),
        "the hostile trigger was not refused"
    );
    assert!(
        !html.contains("<script>alert"),
        "hostile text was not escaped"
    );
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "hostile text missing"
    );
    let r = http
        .post(format!("{}/login", ui.base))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", hostile),
            ("password", "x"),
        ])
        .send()
        .await
        .expect("login");
    let html = r.text().await.expect("html");
    assert!(
        !html.contains("<script>alert") && !html.contains("' onmouseover='"),
        "login echo not escaped"
    );
    // Failed logins are rate-limited.
    let mut blocked = false;
    for _ in 0..8 {
        let r = http
            .post(format!("{}/login", ui.base))
            .header("cookie", &login_cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", "admin"),
                ("password", "wrong"),
            ])
            .send()
            .await
            .expect("login");
        blocked |= r
            .text()
            .await
            .expect("html")
            .contains("Too many failed attempts");
    }
    assert!(blocked, "failed logins were never rate-limited");
    // A forged OAuth state is refused and stores nothing.
    let r = http
        .get(format!(
            "{}/connect/finish?code=abc&state=forged&realmId=123",
            ui.base
        ))
        .header("cookie", &session)
        .send()
        .await
        .expect("finish");
    assert_eq!(r.headers()["location"], "/connect?flash=expired");
    let companies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ops.companies WHERE realm_id = '123'")
            .fetch_one(world.pool())
            .await
            .expect("count");
    assert_eq!(companies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_history_starts_every_entity_as_one_batch_followed_on_one_page() {
    let mut world = World::new(sim_config(40)).await;
    let ui = Ui::start(&mut world).await;
    let browser = Browser::start().await;
    ui.login(&browser).await;
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    let form = "#load-history form";
    // No dates for a backfill: refused on the page, nothing written.
    browser.click(&format!("{form} button[type=submit]")).await;
    browser.wait_for("p.error[role=alert]", 1, 20).await;
    assert!(
        browser
            .text("p.error[role=alert]")
            .await
            .contains("all_backfill needs")
    );
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.batches")
        .fetch_one(world.pool())
        .await
        .expect("count");
    assert_eq!(batches, 0);

    browser
        .set_value(&format!("{form} input[name=fecha_inicio]"), JAN_FROM)
        .await;
    browser
        .set_value(&format!("{form} input[name=fecha_fin]"), "2026-02-01")
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 180)
        .await;
    assert!(browser.url().await.contains("/batches/"));
    assert_eq!(browser.count("table tbody tr").await, 26);
    assert_eq!(browser.count("table tbody .status.s-succeeded").await, 26);
    assert!(browser.source().await.contains("100%"));
    browser.screenshot("20-batch-load-history").await;
    browser.resize(390, 844).await;
    browser.screenshot("21-batch-load-history-390").await;
    browser.resize(1280, 900).await;
    assert_eq!(
        world.loaded_ids("raw.qb_invoices").await,
        world.expected_ids("Invoice", JAN_FROM, "2026-02-01")
    );
    assert_no_secret_in(&world, &browser.pages_seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_refresh_of_a_run_leaves_the_focus_on_the_button_the_operator_is_on() {
    let mut config = sim_config(400);
    config.faults = FaultConfig {
        latency: Duration::from_millis(400),
        ..FaultConfig::default()
    };
    let mut world = World::new(config).await;
    world.extra_env.extend([
        ("QBO_SPAN_MAX_PAGES".to_owned(), "0".to_owned()),
        ("QBO_WINDOW_CONCURRENCY".to_owned(), "1".to_owned()),
    ]);
    let ui = Ui::start_with_workers(&mut world, "1").await;
    let browser = Browser::start().await;
    ui.login(&browser).await;
    ui.run_once(&browser, "2026-01-01", "2026-01-31").await;
    browser
        .wait_for("#live form[action$='/cancel'] button", 1, 20)
        .await;
    let on_cancel = "const f = document.activeElement && document.activeElement.closest('form'); \
                     return f !== null && f.getAttribute('action').endsWith('/cancel');";
    browser
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "document.querySelector(\"#live form[action$='/cancel'] button\").focus();", "args": []})),
        )
        .await;
    // Three refreshes of the live part (one a second) while the run goes on.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let still: Value = browser
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": on_cancel, "args": []})),
        )
        .await;
    let running = browser.count("#live[data-final='false']").await;
    assert_eq!(running, 1, "the run ended too soon to tell");
    assert_eq!(still, true, "the focus left Cancel");
}
