//! The alert delivery loop: every tick it sends the deliveries that are due
//! ([`crate::service::alerts::deliver_due`]), so an event raised by a run, the scheduler or
//! another process reaches its channels within about a second, and a delivery left `pending`
//! by a crash is sent when `serve` starts again. Runs inside `serve`, next to the scheduler;
//! when it starts it seals the webhook URLs still stored in plain text.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::alert::FIRST_DELAY;
use crate::service::alerts::{Sender, deliver_due, seal_plain_targets};
use crate::store::auth::secrets::SecretKey;

/// How often the loop looks for due deliveries.
pub const DEFAULT_TICK: Duration = Duration::from_millis(500);

/// Deliveries claimed at most per tick.
const BATCH: i64 = 20;

/// Sends due alert deliveries every `tick` until `shutdown` completes. A failing step (database
/// down) is logged once and retried every tick; the loop itself never fails.
pub async fn run_delivery_loop(
    pool: PgPool,
    key: SecretKey,
    tick: Duration,
    shutdown: impl Future<Output = ()>,
) {
    match seal_plain_targets(&pool, &key).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("Sealed the URLs of {n} webhook alert channel(s)."),
        Err(e) => tracing::warn!("Could not seal the URLs of webhook alert channels: {e}"),
    }
    let sender = match Sender::new(pool, key, FIRST_DELAY) {
        Ok(sender) => Arc::new(sender),
        Err(e) => {
            tracing::error!("Alerts cannot be sent: the HTTP client cannot be built: {e}");
            return;
        }
    };
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut failing = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let step = tokio::select! {
            () = &mut shutdown => break,
            r = deliver_due(&sender, BATCH) => r,
        };
        match step {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("Alert delivery recovered.");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("Alert delivery step failed; retrying every tick: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Starts [`run_delivery_loop`] in `tasks` with the default tick, until `shutdown` is cancelled.
pub fn spawn_delivery_loop(
    tasks: &mut tokio::task::JoinSet<()>,
    pool: &PgPool,
    key: &SecretKey,
    shutdown: &CancellationToken,
) {
    let (pool, key, shutdown) = (pool.clone(), key.clone(), shutdown.clone());
    tasks.spawn(async move {
        run_delivery_loop(pool, key, DEFAULT_TICK, shutdown.cancelled()).await;
    });
}
