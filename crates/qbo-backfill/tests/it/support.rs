//! Helpers shared by the integration tests: a throwaway database, QBO-shaped rows and pages, and
//! timestamps.

use jiff::Timestamp;
use qbo_backfill::store::TestDb;
use serde_json::value::RawValue;

/// A fresh, migrated database on the test server; panics with the store's one-line reason.
pub(crate) async fn test_db() -> TestDb {
    match TestDb::new().await {
        Ok(db) => db,
        Err(e) => panic!("no test database: {e}"),
    }
}

/// A timestamp from RFC 3339 text.
pub(crate) fn ts(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

/// A customer as QBO returns it (about 1 KB), with a given `Id`, `SyncToken` and name.
pub(crate) fn customer_json(id: &str, sync_token: u64, name: &str) -> String {
    serde_json::json!({
        "Taxable": true,
        "BillAddr": {"Id": "6", "Line1": "25 Court St.", "City": "Tucson",
                     "CountrySubDivisionCode": "AZ", "PostalCode": "85719"},
        "Job": false, "BillWithParent": false, "Balance": 0, "BalanceWithJobs": 0,
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "PreferredDeliveryMethod": "Print", "domain": "QBO", "sparse": false,
        "Id": id, "SyncToken": sync_token.to_string(),
        "MetaData": {"CreateTime": "2026-01-01T08:00:00-08:00",
                     "LastUpdatedTime": "2026-01-02T08:00:00-08:00"},
        "DisplayName": name, "FullyQualifiedName": name, "CompanyName": name,
        "Active": true, "PrimaryEmailAddr": {"Address": "ops@example.com"},
        "Notes": "Line one\nline \"two\" with a backslash \\ and ünïcödé"
    })
    .to_string()
}

/// A query row from raw JSON text; `Id` and `SyncToken` are read from it.
pub(crate) fn row(json: &str) -> qbo::Row {
    let value: serde_json::Value = serde_json::from_str(json).expect("valid json");
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    qbo::Row {
        id: field("Id"),
        sync_token: field("SyncToken"),
        raw: RawValue::from_string(json.to_owned()).expect("valid json"),
        created: None,
        updated: None,
    }
}

/// A customer row.
pub(crate) fn customer(id: &str, sync_token: u64, name: &str) -> qbo::Row {
    row(&customer_json(id, sync_token, name))
}

/// Page `number` of a customer query holding `rows`.
pub(crate) fn page(number: u32, rows: Vec<qbo::Row>) -> qbo::Page {
    let start = (number - 1) * 1000 + 1;
    qbo::Page {
        entity: qbo::Entity::Customer,
        number,
        start_position: start,
        page_size: 1000,
        query: format!(
            "SELECT * FROM Customer WHERE Active IN (true, false) STARTPOSITION {start} \
             MAXRESULTS 1000"
        ),
        minor_version: 75,
        intuit_tid: Some(format!("tid-{number}")),
        rows,
    }
}

/// A worker identity that this machine can tell is dead: this boot and pid namespace, a pid
/// that does not exist. Without `/proc`, a fresh identity (then only leases decide).
pub(crate) fn dead_worker() -> qbo_backfill::store::runs::workers::WorkerIdentity {
    let mut worker = qbo_backfill::store::runs::workers::WorkerIdentity::current();
    worker.pid = 99_999_999;
    worker.liveness_key = worker.liveness_key.as_deref().and_then(|key| {
        let mut parts = key.splitn(3, '/');
        Some(format!("{}/{}/99999999/1", parts.next()?, parts.next()?))
    });
    worker
}

/// A customers run of `windows` enqueued in `tx`, as a CLI run is; its id.
pub(crate) async fn enqueue_customers(
    tx: &mut sqlx::PgConnection,
    realm_id: &str,
    range: qbo_backfill::pipeline::DateRange,
    windows: &[qbo_backfill::pipeline::Window],
) -> uuid::Uuid {
    use qbo_backfill::store::runs::queue::{NewRun, enqueue_run};
    enqueue_run(
        tx,
        &NewRun {
            pipeline: qbo_backfill::pipeline::Pipeline::CUSTOMERS,
            realm_id,
            range,
            windows,
            trigger: qbo_backfill::domain::run::RunOrigin::Cli,
            trigger_id: None,
            started_by: None,
            retry_of: None,
            requeue_on_loss: false,
        },
    )
    .await
    .expect("enqueue")
}

/// A run of `windows` enqueued and claimed by `worker` (registered first), as a CLI run is.
pub(crate) async fn start_run(
    pool: &sqlx::PgPool,
    realm_id: &str,
    range: qbo_backfill::pipeline::DateRange,
    windows: &[qbo_backfill::pipeline::Window],
    worker: &qbo_backfill::store::runs::workers::WorkerIdentity,
) -> qbo_backfill::store::runs::Execution {
    use qbo_backfill::store::runs::queue::claim_run;
    qbo_backfill::store::runs::workers::register(pool, worker, "test")
        .await
        .expect("register worker");
    let mut tx = pool.begin().await.expect("begin");
    let id = enqueue_customers(&mut tx, realm_id, range, windows).await;
    let claimed = claim_run(&mut tx, id, worker, qbo_backfill::store::runs::LEASE)
        .await
        .expect("claim")
        .expect("queued");
    tx.commit().await.expect("commit");
    claimed.execution
}

/// A customers run of 2026-01-05..2026-01-08 left `running` by a worker that is gone, holding the
/// claim of its first day: what a `kill -9` right after the first claim leaves behind.
pub(crate) async fn dead_run_holding_its_first_day(
    pool: &sqlx::PgPool,
    realm_id: &str,
) -> qbo_backfill::store::runs::Execution {
    use qbo_backfill::store::runs;
    let range =
        qbo_backfill::pipeline::DateRange::parse("2026-01-05", "2026-01-08").expect("range");
    let windows = range.windows().expect("windows");
    let dead = start_run(pool, realm_id, range, &windows, &dead_worker()).await;
    let claim = runs::claim_window(
        pool,
        &dead,
        qbo_backfill::pipeline::Pipeline::CUSTOMERS,
        realm_id,
        &windows[0],
        runs::LEASE,
    )
    .await
    .expect("claim");
    assert_eq!(
        claim,
        runs::Claim::Claimed,
        "the dead run holds its first day"
    );
    dead
}

/// The value of a page's hidden `csrf` field (every form carries one).
pub(crate) fn csrf_field(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf")
        .to_owned()
}

/// The `name=value` pairs of a response's `Set-Cookie` headers.
pub(crate) fn cookie_pairs(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect()
}

/// A login through the form at `path` (`/login`, `/login?next=…`) as a browser posts it: the
/// form's CSRF cookie and token first, then `fields` with the token and the form's `next`, and
/// an `X-Forwarded-For` when given. The cookies sent, the answer (not read yet) and how long
/// the POST took.
pub(crate) async fn post_login(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
    forwarded_for: Option<&str>,
) -> (String, reqwest::Response, std::time::Duration) {
    let page = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("login page");
    let cookies = cookie_pairs(&page).join("; ");
    let html = page.text().await.expect("html");
    let csrf = csrf_field(&html);
    let next = html
        .split("name=\"next\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("/")
        .replace("&#x2f;", "/")
        .replace("&#x3f;", "?")
        .replace("&#x3d;", "=")
        .replace("&amp;", "&");
    let mut form = vec![("csrf", csrf.as_str()), ("next", next.as_str())];
    form.extend_from_slice(fields);
    let mut request = http
        .post(format!("{base}/login"))
        .header("cookie", &cookies)
        .form(&form);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let started = std::time::Instant::now();
    let answer = request.send().await.expect("login");
    (cookies, answer, started.elapsed())
}

/// A web session of the first operator (`admin`, logged in through the form with `password`):
/// the client and its cookies.
pub(crate) async fn web_session(base: &str, password: &str) -> (reqwest::Client, String) {
    let http = qbo::tls::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let fields = [("username", "admin"), ("password", password)];
    let (sent, login, _) = post_login(&http, base, "/login", &fields, None).await;
    assert_eq!(login.status().as_u16(), 303, "login refused");
    let mut cookies = vec![sent];
    cookies.extend(cookie_pairs(&login));
    (http, cookies.join("; "))
}
