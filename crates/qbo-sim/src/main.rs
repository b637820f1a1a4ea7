//! `qbo-sim` binary: parses flags, runs the simulator on 127.0.0.1 and prints
//! `api_base_url=…`, `token_url=…`, `authorize_url=…` and `discovery_url=…` on stdout once it is
//! ready; stops on Ctrl-C or SIGTERM.
//! Logs go to stderr.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use qbo_sim::{FaultConfig, Rotation, RunningSim, SimConfig, SimLimits, SimState, serve};

/// A QuickBooks Online simulator.
#[derive(Debug, Parser)]
#[command(name = "qbo-sim", version, about)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the deterministic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of customers.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Number of items.
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Number of invoices.
    #[arg(long, default_value_t = 2000)]
    invoices: usize,
    /// Number of rows of each other entity with data (Account, Bill, Vendor, …).
    #[arg(long, default_value_t = 40)]
    other_rows: usize,
    /// First UTC day of the CreateTime spread (inclusive).
    #[arg(long, default_value = "2026-01-01")]
    from: jiff::civil::Date,
    /// Last UTC day of the CreateTime spread (exclusive).
    #[arg(long, default_value = "2026-02-01")]
    to: jiff::civil::Date,
    /// OAuth2 client id.
    #[arg(long, env = "QBO_SIM_CLIENT_ID", default_value = "sim-client-id")]
    client_id: String,
    /// OAuth2 client secret.
    #[arg(
        long,
        env = "QBO_SIM_CLIENT_SECRET",
        default_value = "sim-client-secret",
        hide_env_values = true,
        hide_default_value = true
    )]
    client_secret: String,
    /// Refresh token valid at start-up.
    #[arg(
        long,
        env = "QBO_SIM_REFRESH_TOKEN",
        default_value = "sim-refresh-token-0",
        hide_env_values = true,
        hide_default_value = true
    )]
    refresh_token: String,
    /// Company (realm) id.
    #[arg(long, default_value = "9130350000000001")]
    realm_id: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_ttl_secs: u64,
    /// Rotate the refresh token only once it is this old (seconds); default: on every refresh.
    #[arg(long)]
    rotate_after_secs: Option<u64>,
    /// Lifetime of the authorization codes of the consent flow, in seconds.
    #[arg(long, default_value_t = 300)]
    auth_code_ttl_secs: u64,
    /// A registered redirect URI of the app (repeatable); the authorization endpoint accepts
    /// only these. Default: any http(s) URI.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Requests per rolling minute (0 = unlimited).
    #[arg(long, default_value_t = 500)]
    requests_per_minute: u32,
    /// Requests per rolling second (0 = unlimited). Intuit documents 10; off by default because
    /// sequential clients on loopback are far faster than over the internet.
    #[arg(long, default_value_t = 0)]
    requests_per_second: u32,
    /// Requests in flight at once (0 = unlimited).
    #[arg(long, default_value_t = 10)]
    max_in_flight: u32,
    /// Batch requests per rolling minute (0 = unlimited); each batch item also counts as one
    /// request towards --requests-per-minute.
    #[arg(long, default_value_t = 40)]
    batch_requests_per_minute: u32,
    /// Disable all throttling.
    #[arg(long)]
    no_limits: bool,
    /// Probability of a 500/502/503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of injected errors sent as the load balancer's HTML page.
    #[arg(long, default_value_t = 0.0)]
    html_error_share: f64,
    /// Fixed latency added to each API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Probability that a 200 body is cut partway.
    #[arg(long, default_value_t = 0.0)]
    truncate_rate: f64,
    /// Probability that the connection is closed without a response.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Probability that a token refresh rotates the refresh token and its answer is then lost.
    #[arg(long, default_value_t = 0.0)]
    token_drop_rate: f64,
    /// Reports over a range longer than this many days answer cut short with QuickBooks'
    /// "Unable to display more data. Please reduce the date range." row (default: no limit).
    #[arg(long, env = "QBO_SIM_REPORT_MAX_DAYS")]
    report_max_days: Option<u32>,
    /// Send signed webhooks for every change (admin mutate, change-amount, deactivate, delete)
    /// to this URL (e.g. `http://127.0.0.1:6789/webhooks/intuit`).
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// The verifier token webhooks are signed with (`intuit-signature`).
    #[arg(
        long,
        env = "QBO_SIM_WEBHOOK_VERIFIER_TOKEN",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    webhook_verifier_token: String,
    /// The webhook payload format: `legacy` or `cloudevents`.
    #[arg(long, default_value = "cloudevents")]
    webhook_format: qbo_sim::WebhookFormat,
    /// Send every webhook delivery twice.
    #[arg(long)]
    webhook_duplicate: bool,
    /// Split every webhook batch in two and send the later half first.
    #[arg(long)]
    webhook_reorder: bool,
    /// How long changes are collected into one webhook delivery, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    webhook_batch_ms: u64,
}

fn limit(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

fn redact(secret: &str) -> String {
    let tail: Vec<char> = secret.chars().rev().take(4).collect();
    format!("…{}", tail.into_iter().rev().collect::<String>())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    args.check_rates()?;
    let config = args.config();
    let started = Instant::now();
    let initial_rt = redact(&config.refresh_token);
    let state = SimState::new(config);
    state.set_report_max_days(args.report_max_days);
    if args.webhook_url.is_some() {
        anyhow::ensure!(
            !args.webhook_verifier_token.is_empty(),
            "--webhook-url needs --webhook-verifier-token (the token deliveries are signed with)"
        );
        state.set_webhooks(qbo_sim::WebhookConfig {
            url: args.webhook_url.clone(),
            verifier_token: args.webhook_verifier_token.clone(),
            format: args.webhook_format,
            duplicate: args.webhook_duplicate,
            reorder: args.webhook_reorder,
            batch_ms: args.webhook_batch_ms,
        });
    }
    let sim = serve(state, SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .context("binding the listener")?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        customers = args.customers,
        items = args.items,
        invoices = args.invoices,
        other_rows = args.other_rows,
        refresh_token = %initial_rt,
        "qbo-sim ready"
    );
    print_urls(&sim)?;
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

/// Logs to stderr (coloured on a terminal), at `RUST_LOG` or `info`.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

impl Args {
    /// Every probability flag is within `[0, 1]`.
    fn check_rates(&self) -> anyhow::Result<()> {
        for (name, rate) in [
            ("--error-rate", self.error_rate),
            ("--html-error-share", self.html_error_share),
            ("--truncate-rate", self.truncate_rate),
            ("--drop-rate", self.drop_rate),
            ("--token-drop-rate", self.token_drop_rate),
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&rate), "{name} must be within [0, 1]");
        }
        Ok(())
    }

    /// The simulator's settings.
    fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            customers: self.customers,
            items: self.items,
            invoices: self.invoices,
            other_rows: self.other_rows,
            from: self.from,
            to: self.to,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            refresh_token: self.refresh_token.clone(),
            realm_id: self.realm_id.clone(),
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            rotation: self.rotate_after_secs.map_or(Rotation::EveryRefresh, |s| {
                Rotation::AfterAge(Duration::from_secs(s))
            }),
            auth_code_ttl: Duration::from_secs(self.auth_code_ttl_secs),
            redirect_uris: self.redirect_uris.clone(),
            batch_requests_per_minute: if self.no_limits {
                None
            } else {
                limit(self.batch_requests_per_minute)
            },
            limits: self.limits(),
            faults: self.faults(),
        }
    }

    fn limits(&self) -> SimLimits {
        if self.no_limits {
            SimLimits::none()
        } else {
            SimLimits {
                requests_per_minute: limit(self.requests_per_minute),
                requests_per_second: limit(self.requests_per_second),
                max_in_flight: limit(self.max_in_flight),
            }
        }
    }

    fn faults(&self) -> FaultConfig {
        FaultConfig {
            error_rate: self.error_rate,
            html_error_share: self.html_error_share,
            latency: Duration::from_millis(self.latency_ms),
            latency_jitter: Duration::from_millis(self.latency_jitter_ms),
            truncate_rate: self.truncate_rate,
            drop_rate: self.drop_rate,
            token_drop_rate: self.token_drop_rate,
        }
    }
}

/// The ready lines on stdout: `api_base_url=…`, `token_url=…`, `authorize_url=…`,
/// `discovery_url=…`.
fn print_urls(sim: &RunningSim) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "api_base_url={}", sim.api_base_url())?;
    writeln!(out, "token_url={}", sim.token_url())?;
    writeln!(out, "authorize_url={}", sim.authorize_url())?;
    writeln!(
        out,
        "discovery_url={}/.well-known/openid_configuration",
        sim.api_base_url()
    )?;
    out.flush()
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
