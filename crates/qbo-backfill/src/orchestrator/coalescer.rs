//! The webhook coalescer: a loop inside `serve` that, every tick, turns the webhook events that
//! went quiet into incremental syncs ([`crate::service::webhooks::coalesce_due`]), logs each,
//! and wakes this process's idle workers. Any number may run against one database: each group
//! of events is taken with `SKIP LOCKED`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::service::webhooks::{Coalesced, coalesce_due};

/// The coalescer's tick.
pub const TICK: Duration = Duration::from_millis(500);

/// Runs the coalescer every [`TICK`] until `shutdown`; a failing step (database down) is logged
/// once and retried on the next tick.
pub async fn run_coalescer(
    pool: PgPool,
    quiet: Duration,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match coalesce_due(&pool, jiff::Timestamp::now(), quiet).await {
            Ok(done) => {
                failing = false;
                for c in &done {
                    log(c);
                }
                if !done.is_empty() {
                    wake.notify_waiters();
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("Webhook coalescer step failed; retrying every tick: {e}");
            }
            Err(_) => {}
        }
    }
}

fn log(c: &Coalesced) {
    let how = if c.queued_now { "queued" } else { "joined" };
    tracing::info!(
        realm_id = %c.realm_id,
        "Webhook sync {how} | pipeline={} run={} events={} range={}..{}",
        c.pipeline,
        c.run_id,
        c.events,
        c.range.fecha_inicio,
        c.range.fecha_fin,
    );
    if c.deleted > 0 {
        tracing::info!(
            realm_id = %c.realm_id,
            "Webhook deletions marked | pipeline={} deleted={} run={}",
            c.pipeline,
            c.deleted,
            c.run_id,
        );
    }
}
