//! `GET /metrics`: the store's [`Snapshot`] as Prometheus text (format 0.0.4).

use std::fmt::Write as _;

use crate::store::infra::metrics::Snapshot;
use crate::store::runs::RunStatus;
use crate::store::webhooks::WebhookFigures;

/// One metric family: its help, type and samples (`labels`, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, i64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn realm(realm_id: &str) -> String {
    format!("realm_id=\"{realm_id}\"")
}

/// Renders a snapshot.
#[must_use]
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    render_runs(&mut out, s);
    render_requests(&mut out, s);
    render_webhooks(&mut out, &s.webhooks);
    family(
        &mut out,
        "qbo_backfill_requests_this_month",
        "gauge",
        "QuickBooks requests this calendar month (UTC), per company.",
        s.month_requests.iter().map(|(r, n)| (realm(r), *n)),
    );
    family(
        &mut out,
        "qbo_backfill_monthly_request_allowance",
        "gauge",
        "Requests a company may send per calendar month (QBO_MONTHLY_REQUEST_ALLOWANCE); warned at 80 %.",
        [(String::new(), s.monthly_allowance)],
    );
    family(
        &mut out,
        "qbo_backfill_queue_depth",
        "gauge",
        "Runs waiting for a worker.",
        [(String::new(), s.queue_depth)],
    );
    family(
        &mut out,
        "qbo_backfill_workers",
        "gauge",
        "Worker processes with a heartbeat in the last minute.",
        [(String::new(), s.live_workers)],
    );
    out
}

fn render_runs(out: &mut String, s: &Snapshot) {
    family(
        out,
        "qbo_backfill_runs",
        "gauge",
        "Runs by status.",
        RunStatus::ALL.iter().map(|status| {
            let n = s
                .runs
                .iter()
                .find(|(st, _)| st == status.as_str())
                .map_or(0, |(_, n)| *n);
            (format!("status=\"{status}\""), n)
        }),
    );
    family(
        out,
        "qbo_backfill_windows",
        "gauge",
        "Daily windows by pipeline and status (the latest truth per window).",
        s.windows
            .iter()
            .map(|(p, st, n)| (format!("pipeline=\"{p}\",status=\"{st}\""), *n)),
    );
    let (inserted, updated, unchanged) = s.rows;
    family(
        out,
        "qbo_backfill_rows_total",
        "counter",
        "Rows written to raw, by outcome.",
        [
            ("inserted", inserted),
            ("updated", updated),
            ("unchanged", unchanged),
        ]
        .map(|(o, n)| (format!("outcome=\"{o}\""), n)),
    );
}

fn render_requests(out: &mut String, s: &Snapshot) {
    family(
        out,
        "qbo_backfill_qbo_requests_total",
        "counter",
        "QuickBooks requests by company and outcome (counted when a run's execution ends).",
        s.requests.iter().flat_map(|r| {
            [
                ("answered", r.requests - r.retries),
                ("retried", r.retries),
                ("throttled", r.throttled),
            ]
            .map(|(o, n)| (format!("{},outcome=\"{o}\"", realm(&r.realm_id)), n))
        }),
    );
    family(
        out,
        "qbo_backfill_throttled_waits_total",
        "counter",
        "429 answers waited out, by company.",
        s.requests.iter().map(|r| (realm(&r.realm_id), r.throttled)),
    );
    family(
        out,
        "qbo_backfill_token_refreshes_total",
        "counter",
        "OAuth token refreshes committed, by company.",
        s.refreshes.iter().map(|(r, n)| (realm(r), *n)),
    );
    family(
        out,
        "qbo_backfill_budget_requests_last_minute",
        "gauge",
        "Requests of the company's shared budget counted in the rolling minute (Intuit allows 500).",
        s.budget.iter().map(|(r, minute, _)| (realm(r), *minute)),
    );
    family(
        out,
        "qbo_backfill_budget_in_flight",
        "gauge",
        "Requests of the company's shared budget in flight (Intuit allows 10).",
        s.budget
            .iter()
            .map(|(r, _, in_flight)| (realm(r), *in_flight)),
    );
}

fn render_webhooks(out: &mut String, w: &WebhookFigures) {
    let stored: i64 = w.events.iter().map(|(_, n)| *n).sum();
    let by_status = |status: &str| {
        w.events
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    family(
        out,
        "qbo_backfill_webhook_events_received_total",
        "counter",
        "QuickBooks webhook events received and stored (each event id once).",
        [(String::new(), stored)],
    );
    family(
        out,
        "qbo_backfill_webhook_events",
        "gauge",
        "Stored webhook events by status: pending (quiet period), synced (a run loads them), ignored (unknown company or entity).",
        ["pending", "synced", "ignored"].map(|st| (format!("status=\"{st}\""), by_status(st))),
    );
    family(
        out,
        "qbo_backfill_webhook_events_redelivered_total",
        "counter",
        "Webhook events delivered again after they were stored (nothing was added).",
        [(String::new(), w.redelivered)],
    );
    family(
        out,
        "qbo_backfill_webhook_deliveries_rejected_total",
        "counter",
        "Signed webhook deliveries whose body could not be read (stored as rejected, answered 200).",
        [(String::new(), w.rejected)],
    );
    family(
        out,
        "qbo_backfill_webhook_events_coalesced_total",
        "counter",
        "Webhook events handed to an incremental sync.",
        [(String::new(), by_status("synced"))],
    );
    family(
        out,
        "qbo_backfill_webhook_syncs_total",
        "counter",
        "Incremental syncs webhook events were coalesced into.",
        [(String::new(), w.syncs)],
    );
    let _ = writeln!(
        out,
        "# HELP qbo_backfill_webhook_lag_seconds From QuickBooks' event time to the end of the sync that loaded the change, events of the last 24 hours."
    );
    let _ = writeln!(out, "# TYPE qbo_backfill_webhook_lag_seconds gauge");
    if let Some((p50, p99)) = w.lag_seconds {
        let _ = writeln!(
            out,
            "qbo_backfill_webhook_lag_seconds{{quantile=\"0.5\"}} {p50:.3}"
        );
        let _ = writeln!(
            out,
            "qbo_backfill_webhook_lag_seconds{{quantile=\"0.99\"}} {p99:.3}"
        );
    }
}
