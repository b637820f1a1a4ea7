//! The scheduler: a loop that, every tick, asks the store to fire the triggers that are due
//! ([`crate::service::triggers::fire_due`]) and logs each one fired or missed. Time comes from a
//! [`Clock`], so tests move time with a `TestClock` (feature `test-support`) instead of
//! sleeping. Any number of schedulers may run against one database: due triggers are locked with
//! `SKIP LOCKED`, so each occurrence is handled by exactly one of them.

use std::future::Future;
#[cfg(feature = "test-support")]
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[cfg(feature = "test-support")]
use jiff::SignedDuration;
use jiff::Timestamp;
use sqlx::PgPool;

use crate::domain::alert::Alert;
use crate::service::triggers::{Fired, fire_due};
use crate::store::runs::triggers::TriggerStoreError;

/// The scheduler's tick unless configured otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);

/// Where the scheduler gets the time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told otherwise (microsecond precision, like PostgreSQL).
/// For tests only: compiled with the `test-support` feature, never into the shipped binary.
#[cfg(feature = "test-support")]
#[derive(Debug)]
pub struct TestClock {
    micros: AtomicI64,
}

#[cfg(feature = "test-support")]
impl TestClock {
    /// A clock showing `at`.
    #[must_use]
    pub fn new(at: Timestamp) -> Self {
        Self {
            micros: AtomicI64::new(at.as_microsecond()),
        }
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.micros.store(at.as_microsecond(), Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (backward if negative).
    pub fn advance(&self, by: SignedDuration) {
        let micros = by
            .as_micros()
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        let delta = i64::try_from(micros).unwrap_or(0);
        self.micros.fetch_add(delta, Ordering::SeqCst);
    }
}

#[cfg(feature = "test-support")]
impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.micros.load(Ordering::SeqCst))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// One scheduler step at the clock's current time: fires (or marks missed) every due trigger
/// and logs each one.
///
/// # Errors
/// Database errors (nothing of the failing batch is kept).
pub async fn fire_step(
    pool: &PgPool,
    clock: &impl Clock,
    grace: Duration,
    default_realm: &str,
) -> Result<Vec<Fired>, TriggerStoreError> {
    let fired = fire_due(pool, clock.now(), grace, default_realm).await?;
    for f in &fired {
        log_fired(f);
        if f.run_id.is_none() || f.missed > 0 {
            let reason = f
                .reason
                .as_deref()
                .unwrap_or("the scheduler was not running in time");
            let alert = Alert::trigger_missed(
                &f.realm_id,
                f.trigger_id,
                &f.pipeline,
                f.occurrence_utc,
                reason,
                Timestamp::now(),
            );
            crate::service::alerts::raise(pool, &alert).await;
        }
    }
    Ok(fired)
}

/// One line per trigger handled: id, pipeline, run, local time and UTC of the occurrence (and,
/// for a missed one, why).
fn log_fired(f: &Fired) {
    let next = f.next_fire_utc.map(|t| t.to_string());
    let next = next.as_deref().unwrap_or("-");
    let (outcome, run, reason) = match f.run_id {
        Some(run) => ("fired", run.to_string(), String::new()),
        None => (
            "missed",
            "-".to_owned(),
            format!(" reason={}", f.reason.as_deref().unwrap_or("-")),
        ),
    };
    tracing::info!(
        realm_id = %f.realm_id,
        missed = f.missed,
        next = %next,
        "Trigger {outcome} | trigger={} pipeline={} run={run} local={} utc={}{reason}",
        f.trigger_id,
        f.pipeline,
        f.occurrence_local,
        f.occurrence_utc,
    );
}

/// Runs [`fire_step`] every `tick` until `shutdown` completes. A failing step (database down)
/// is logged and retried on the next tick; the loop itself never fails.
pub async fn run_scheduler(
    pool: PgPool,
    clock: impl Clock,
    tick: Duration,
    grace: Duration,
    default_realm: &str,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tracing::info!(
        tick_ms = u64::try_from(tick.as_millis()).unwrap_or(u64::MAX),
        grace_s = grace.as_secs(),
        "Scheduler started."
    );
    let mut failing = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let step = fire_step(&pool, &clock, grace, default_realm);
        let result = tokio::select! {
            () = &mut shutdown => break,
            r = step => r,
        };
        match result {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("Scheduler recovered: triggers fire again.");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "Scheduler step failed; retrying every tick: {e}");
            }
            Err(_) => {}
        }
    }
    tracing::info!("Scheduler stopped.");
}
