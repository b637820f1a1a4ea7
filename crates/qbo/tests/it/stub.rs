//! A tiny scripted HTTP/1.1 server for quirks the simulator does not produce: a handler closure
//! answers each request (token endpoint included); every request is recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use qbo::{ClientSettings, Credentials, MemoryTokenStore, QboClient};
use secrecy::SecretString;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct StubRequest {
    /// `/v3/company/…/query` or the token path.
    pub(crate) path: String,
    /// The decoded `query` parameter, if any.
    pub(crate) query: Option<String>,
    /// The request body.
    pub(crate) body: String,
}

impl StubRequest {
    /// Whether this is a token endpoint call.
    pub(crate) fn is_token(&self) -> bool {
        self.path.ends_with("/tokens/bearer")
    }

    /// The `STARTPOSITION` of the query, if any.
    pub(crate) fn start_position(&self) -> Option<u32> {
        let q = self.query.as_deref()?;
        let rest = &q[q.find("STARTPOSITION ")? + "STARTPOSITION ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The `MAXRESULTS` of the query, if any.
    pub(crate) fn max_results(&self) -> Option<u32> {
        let q = self.query.as_deref()?;
        let rest = &q[q.find("MAXRESULTS ")? + "MAXRESULTS ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    }

    /// Whether the query is a `COUNT(*)`.
    pub(crate) fn is_count(&self) -> bool {
        self.query
            .as_deref()
            .is_some_and(|q| q.contains("COUNT(*)"))
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub(crate) struct StubResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// A `Content-Length` larger than the body: the connection closes mid-body.
    declared_length: Option<usize>,
}

impl StubResponse {
    /// A response with `status` and `body` (JSON content type).
    pub(crate) fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json;charset=utf-8".into(),
            )],
            body: body.into(),
            declared_length: None,
        }
    }

    /// A load balancer's page: `status` with an HTML body.
    pub(crate) fn html(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: body.into(),
            declared_length: None,
        }
    }

    /// Intuit's gateway timeout: HTTP 504 with an XML `Error` body.
    pub(crate) fn gateway_timeout() -> Self {
        Self {
            status: 504,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Error code="6002"><Message>message=GatewayTimeout; errorCode=006002; statusCode=504</Message></Error>"#.into(),
            declared_length: None,
        }
    }

    /// A 200 whose head promises `declared` bytes and whose connection closes after `body`.
    pub(crate) fn cut_short(body: &str, declared: usize) -> Self {
        let mut response = Self::json(200, body);
        response.declared_length = Some(declared);
        response
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A successful token response that rotates the refresh token.
    pub(crate) fn token_ok() -> Self {
        Self::json(
            200,
            r#"{"access_token":"stub-access-token-000000000001","refresh_token":"stub-refresh-token-2","token_type":"bearer","expires_in":3600,"x_refresh_token_expires_in":8726400}"#,
        )
    }

    /// `{"QueryResponse":{"Customer":[rows for ids],"startPosition":s,"maxResults":n}}`.
    pub(crate) fn customers(ids: &[u32], start: u32) -> Self {
        if ids.is_empty() {
            return Self::json(
                200,
                r#"{"QueryResponse":{},"time":"2026-01-01T00:00:00.000-08:00"}"#,
            );
        }
        let rows: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(r#"{{"Id":"{id}","SyncToken":"0","DisplayName":"C{id}","Active":true}}"#)
            })
            .collect();
        Self::json(
            200,
            format!(
                r#"{{"QueryResponse":{{"Customer":[{}],"startPosition":{start},"maxResults":{}}},"time":"2026-01-01T00:00:00.000-08:00"}}"#,
                rows.join(","),
                ids.len()
            ),
        )
    }

    /// `{"QueryResponse":{"totalCount":n}}`.
    pub(crate) fn count(n: u64) -> Self {
        Self::json(
            200,
            format!(
                r#"{{"QueryResponse":{{"totalCount":{n}}},"time":"2026-01-01T00:00:00.000-08:00"}}"#
            ),
        )
    }
}

type Handler = dyn Fn(&StubRequest) -> StubResponse + Send + Sync;

/// A running stub server.
pub(crate) struct Stub {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<StubRequest>>>,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// Starts a server answering with `handler`.
    pub(crate) async fn start(
        handler: impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let _ = serve_one(stream, &*handler, &recorded).await;
                });
            }
        });
        Self {
            base,
            requests,
            task,
        }
    }

    /// The token endpoint URL.
    pub(crate) fn token_url(&self) -> String {
        format!("{}/oauth2/v1/tokens/bearer", self.base)
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// The API requests (not token calls) so far.
    pub(crate) fn api_requests(&self) -> Vec<StubRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_token())
            .collect()
    }

    /// A client for this stub with fast retries, page size `page_size`, and its store.
    pub(crate) fn client(&self, page_size: u32) -> (QboClient, MemoryTokenStore) {
        self.client_with(|s| s.page_size = page_size)
    }

    /// A client for this stub with fast retries and `adjust`ed settings, and its store.
    pub(crate) fn client_with(
        &self,
        adjust: impl FnOnce(&mut ClientSettings),
    ) -> (QboClient, MemoryTokenStore) {
        let mut settings: ClientSettings =
            crate::common::fast_settings(&self.base, &self.token_url());
        adjust(&mut settings);
        let store = crate::common::store_with("stub-refresh-token-1");
        let creds = Credentials {
            client_id: "stub-client".into(),
            client_secret: SecretString::from("stub-secret".to_owned()),
            realm_id: "4620816365".into(),
        };
        (
            QboClient::new(settings, creds, Arc::new(store.clone())).expect("client"),
            store,
        )
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve_one(
    mut stream: TcpStream,
    handler: &Handler,
    recorded: &Mutex<Vec<StubRequest>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let content_length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let (path, qs) = target
        .split_once('?')
        .map_or((target.clone(), None), |(p, q)| {
            (p.to_owned(), Some(q.to_owned()))
        });
    let query = qs.and_then(|qs| {
        qs.split('&')
            .find_map(|kv| kv.strip_prefix("query=").map(percent_decode))
    });
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let request = StubRequest { path, query, body };
    let response = handler(&request);
    recorded.lock().expect("lock").push(request);
    let mut out = format!(
        "HTTP/1.1 {} Stub\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.declared_length.unwrap_or(response.body.len())
    );
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("intuit_tid: 1-stub-tid\r\n\r\n");
    out.push_str(&response.body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}
