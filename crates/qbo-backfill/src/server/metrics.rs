//! `GET /metrics`: the store's [`Snapshot`] as Prometheus text.

use std::fmt::Write as _;

use crate::store::metrics::Snapshot;
use crate::store::runs::RunStatus;

/// Renders a snapshot as Prometheus text (format 0.0.4).
#[must_use]
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    family(&mut out, "qbo_backfill_runs", "gauge", "Runs by status.");
    for status in RunStatus::ALL {
        let n = s
            .runs
            .iter()
            .find(|(st, _)| st == status.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "qbo_backfill_runs{{status=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "qbo_backfill_windows",
        "gauge",
        "Daily windows by pipeline and status (the latest truth per window).",
    );
    for (pipeline, status, n) in &s.windows {
        let _ = writeln!(
            out,
            "qbo_backfill_windows{{pipeline=\"{pipeline}\",status=\"{status}\"}} {n}"
        );
    }
    family(
        &mut out,
        "qbo_backfill_rows_total",
        "counter",
        "Rows written to raw, by outcome.",
    );
    let (inserted, updated, unchanged) = s.rows;
    for (outcome, n) in [
        ("inserted", inserted),
        ("updated", updated),
        ("unchanged", unchanged),
    ] {
        let _ = writeln!(out, "qbo_backfill_rows_total{{outcome=\"{outcome}\"}} {n}");
    }
    family(
        &mut out,
        "qbo_backfill_qbo_requests_total",
        "counter",
        "QuickBooks requests by company and outcome (counted when a run's execution ends).",
    );
    for r in &s.requests {
        let realm = &r.realm_id;
        for (outcome, n) in [
            ("answered", r.requests - r.retries),
            ("retried", r.retries),
            ("throttled", r.throttled),
        ] {
            let _ = writeln!(
                out,
                "qbo_backfill_qbo_requests_total{{realm_id=\"{realm}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "qbo_backfill_throttled_waits_total",
        "counter",
        "429 answers waited out, by company.",
    );
    for r in &s.requests {
        let _ = writeln!(
            out,
            "qbo_backfill_throttled_waits_total{{realm_id=\"{}\"}} {}",
            r.realm_id, r.throttled
        );
    }
    family(
        &mut out,
        "qbo_backfill_token_refreshes_total",
        "counter",
        "OAuth token refreshes committed, by company.",
    );
    for (realm, n) in &s.refreshes {
        let _ = writeln!(
            out,
            "qbo_backfill_token_refreshes_total{{realm_id=\"{realm}\"}} {n}"
        );
    }
    family(
        &mut out,
        "qbo_backfill_budget_requests_last_minute",
        "gauge",
        "Requests of the company's shared budget counted in the rolling minute (Intuit allows 500).",
    );
    for (realm, minute, _) in &s.budget {
        let _ = writeln!(
            out,
            "qbo_backfill_budget_requests_last_minute{{realm_id=\"{realm}\"}} {minute}"
        );
    }
    family(
        &mut out,
        "qbo_backfill_budget_in_flight",
        "gauge",
        "Requests of the company's shared budget in flight (Intuit allows 10).",
    );
    for (realm, _, in_flight) in &s.budget {
        let _ = writeln!(
            out,
            "qbo_backfill_budget_in_flight{{realm_id=\"{realm}\"}} {in_flight}"
        );
    }
    family(
        &mut out,
        "qbo_backfill_queue_depth",
        "gauge",
        "Runs waiting for a worker.",
    );
    let _ = writeln!(out, "qbo_backfill_queue_depth {}", s.queue_depth);
    family(
        &mut out,
        "qbo_backfill_workers",
        "gauge",
        "Worker processes with a heartbeat in the last minute.",
    );
    let _ = writeln!(out, "qbo_backfill_workers {}", s.live_workers);
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
