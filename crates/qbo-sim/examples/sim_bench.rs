//! Benchmark: 1,000,000 customers in-process, 1000-row pages over daily CreateTime windows,
//! sequential and concurrent, plus a LastUpdatedTime-ordered scan. Prints pages/s and peak RSS.
//!
//! Run with `cargo run --release -p qbo-sim --example sim_bench [customers] [seconds-per-phase]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qbo_sim::{SimConfig, SimLimits, SimState, serve};

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Bench {
    client: reqwest::Client,
    url: String,
    token: String,
    pages: AtomicU64,
    bytes: AtomicU64,
}

impl Bench {
    /// Pages through one query until a short page; returns when done or past `deadline`.
    async fn scan(&self, base: &str, deadline: Instant) -> anyhow::Result<()> {
        let mut start = 1;
        while Instant::now() < deadline {
            let q = format!("{base} STARTPOSITION {start} MAXRESULTS 1000");
            let r = self
                .client
                .get(&self.url)
                .query(&[("query", q.as_str()), ("minorversion", "75")])
                .bearer_auth(&self.token)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "status {}", r.status());
            let body = r.bytes().await?;
            self.pages.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            // A full page has 1000 rows; anything shorter is the last page.
            let rows = body.windows(9).filter(|w| w == b"\"domain\":").count();
            if rows < 1000 {
                break;
            }
            start += 1000;
        }
        Ok(())
    }
}

fn window(day: u32) -> String {
    let from = jiff::civil::date(2026, 1, 1) + jiff::Span::new().days(i64::from(day % 31));
    let to = from + jiff::Span::new().days(1);
    format!(
        "SELECT * FROM Customer WHERE MetaData.CreateTime >= '{from}T00:00:00Z' \
         AND MetaData.CreateTime < '{to}T00:00:00Z' AND Active IN (true, false)"
    )
}

async fn phase(name: &str, bench: &Arc<Bench>, tasks: u32, secs: u64, query: fn(u32) -> String) {
    bench.pages.store(0, Ordering::Relaxed);
    bench.bytes.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let bench = Arc::clone(bench);
        handles.push(tokio::spawn(async move {
            let mut day = t;
            while Instant::now() < deadline {
                if let Err(e) = bench.scan(&query(day), deadline).await {
                    eprintln!("error: {e:#}");
                    return;
                }
                day += tasks;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let pages = bench.pages.load(Ordering::Relaxed) as f64;
    let mb = bench.bytes.load(Ordering::Relaxed) as f64 / 1e6;
    println!(
        "{name:<44} {tasks} task(s): {:>7.1} pages/s  {:>7.1} MB/s  ({pages} pages, avg {:.0} KB)",
        pages / secs,
        mb / secs,
        mb * 1000.0 / pages.max(1.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let started = Instant::now();
    let state = SimState::new(SimConfig {
        customers,
        items: 1000,
        invoices: 10_000,
        limits: SimLimits::none(),
        ..SimConfig::default()
    });
    println!(
        "startup: {customers} customers generated in {:.2} s, VmHWM {:.0} MB",
        started.elapsed().as_secs_f64(),
        vm_hwm_mb()
    );
    let sim = serve(state, "127.0.0.1:0".parse()?).await?;
    let client = qbo_sim::webhooks::http_client_builder()
        .pool_max_idle_per_host(16)
        .build()?;
    let token: serde_json::Value = client
        .post(sim.token_url())
        .basic_auth("sim-client-id", Some("sim-client-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim-refresh-token-0"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let bench = Arc::new(Bench {
        client,
        url: format!("{}/v3/company/9130350000000001/query", sim.api_base_url()),
        token: token["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        pages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    phase(
        "daily CreateTime windows, sequential",
        &bench,
        1,
        secs,
        window,
    )
    .await;
    phase(
        "daily CreateTime windows, concurrent",
        &bench,
        4,
        secs,
        window,
    )
    .await;
    phase(
        "LastUpdatedTime window ORDER BY, concurrent",
        &bench,
        4,
        secs,
        |day| {
            format!(
                "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2026-01-{:02}T00:00:00Z' \
             AND Active IN (true, false) ORDER BY Metadata.LastUpdatedTime ASC",
                1 + day % 28
            )
        },
    )
    .await;
    println!("peak RSS (VmHWM): {:.0} MB", vm_hwm_mb());
    sim.shutdown().await;
    Ok(())
}
