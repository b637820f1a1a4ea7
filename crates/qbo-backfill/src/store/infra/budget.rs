//! [`PgBudget`]: one company's QuickBooks request budget in `ops.budget_companies` and
//! `ops.budget_slots`, shared by every process on the database, implementing
//! [`qbo::SharedBudget`].
//!
//! Each acquire is one call of `ops.budget_acquire` (migrations `0004_budget.sql`,
//! `0021_budget_warm_slots.sql`): under the company row's lock, by the database clock, it counts
//! the slots in flight and the slots inside the rolling minute and second (a slot counts from its
//! start until the window span plus [`qbo::MINUTE_GUARD`] / [`qbo::SECOND_GUARD`] after it
//! completed; in the second, a slot the client counts [`Counted::FromStart`] only for the span
//! after its start), and either inserts a slot
//! or answers how long to wait. Waiting happens here, without any lock: until a window frees a
//! slot or a shared pause ends, or a short poll while only in-flight requests block. Within one
//! process a gate lets one task at a time ask, so a process adds at most one waiter to the
//! database. Releasing sets `completed_at`; a slot that is never released (its process died, its
//! future was dropped before the release could be sent) counts as in flight until its lease
//! expires and as completed at that moment afterwards.
//!
//! Costs: a grant is one round trip committed durably (the row lock and the slot write WAL); a
//! release is one round trip committed without waiting for the WAL flush, since losing one in a
//! crash only makes a slot count longer. `examples/budget_bench.rs` measures both.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use qbo::{
    BoxFuture, BudgetError, BudgetSlot, ClientSettings, Counted, MINUTE_GUARD, RateLimitSettings,
    SECOND_GUARD, SharedBudget,
};
use sqlx::PgPool;

use crate::store::StoreError;

/// How long an unreleased slot counts as in flight by default: Intuit's 120 s request timeout
/// plus [`LEASE_MARGIN`].
pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(130);

/// Added to the request timeout by [`PgBudget::for_client`]. The client sends right after the
/// slot is granted and abandons the request at its timeout (which covers reading the body), so
/// the slot cannot still be in flight this much later. The price of the margin: the slots of a
/// process killed mid-request hold their in-flight places that long.
pub const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// First poll interval while only in-flight requests block.
const POLL_MIN: Duration = Duration::from_millis(5);
/// Longest poll interval while only in-flight requests block.
const POLL_MAX: Duration = Duration::from_millis(50);
/// Longest single sleep before asking again (guards against a wild answer).
const MAX_SLEEP: Duration = Duration::from_secs(120);

/// The request budget of one company (realm) in PostgreSQL. Clones share the in-process gate.
#[derive(Clone)]
pub struct PgBudget {
    pool: PgPool,
    realm_id: Arc<str>,
    limits: RateLimitSettings,
    lease: Duration,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for PgBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBudget")
            .field("realm_id", &self.realm_id)
            .field("limits", &self.limits)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// What one call of `ops.budget_acquire` decided.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    /// A slot was recorded.
    Granted(i64),
    /// Ask again after this long.
    Wait(Duration),
    /// Only an in-flight request completing can make room: poll.
    Poll,
}

impl PgBudget {
    /// The budget of `realm_id` over `pool`, with `limits` (each `None` is off) and the
    /// [`DEFAULT_SLOT_LEASE`].
    #[must_use]
    pub fn new(pool: PgPool, realm_id: impl Into<String>, limits: &RateLimitSettings) -> Self {
        Self {
            pool,
            realm_id: Arc::from(realm_id.into()),
            limits: limits.clone(),
            lease: DEFAULT_SLOT_LEASE,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The budget for a client built with `settings`: its limits, and a slot lease of its
    /// request timeout plus [`LEASE_MARGIN`].
    #[must_use]
    pub fn for_client(
        pool: PgPool,
        realm_id: impl Into<String>,
        settings: &ClientSettings,
    ) -> Self {
        Self::new(pool, realm_id, &settings.limits)
            .with_slot_lease(settings.request_timeout.saturating_add(LEASE_MARGIN))
    }

    /// Changes how long an unreleased slot counts as in flight (default
    /// [`DEFAULT_SLOT_LEASE`]). It must exceed the longest a request can take; after it, a slot
    /// whose process died counts as completed.
    #[must_use]
    pub fn with_slot_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// The company this budget serves.
    #[must_use]
    pub fn realm_id(&self) -> &str {
        &self.realm_id
    }

    /// Waits until one more request may start, records its slot (counted in the rolling
    /// second as `counted` says) and returns it; call [`PgSlot::complete`] once the response
    /// has been read.
    ///
    /// # Errors
    /// Database errors (nothing is granted then).
    pub async fn acquire_slot(&self, counted: Counted) -> Result<PgSlot, StoreError> {
        let _gate = self.gate.lock().await;
        let mut poll = POLL_MIN;
        loop {
            match self.try_acquire(counted).await? {
                Decision::Granted(id) => {
                    return Ok(PgSlot {
                        pool: self.pool.clone(),
                        realm_id: Arc::clone(&self.realm_id),
                        id: Some(id),
                    });
                }
                Decision::Wait(wait) => {
                    poll = POLL_MIN;
                    tokio::time::sleep(wait).await;
                }
                Decision::Poll => {
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
            }
        }
    }

    /// One decision: a slot now, or how long to wait.
    async fn try_acquire(&self, counted: Counted) -> Result<Decision, StoreError> {
        let limit = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        // `on_completion` needs no reading: without a positive `wait_ms` the answer is to poll.
        let (slot_id, wait_ms): (Option<i64>, Option<f64>) = sqlx::query_as(
            "SELECT slot_id, wait_ms FROM ops.budget_acquire($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&*self.realm_id)
        .bind(limit(self.limits.requests_per_minute))
        .bind(limit(self.limits.requests_per_second))
        .bind(limit(self.limits.max_in_flight))
        .bind(micros(Duration::from_secs(60) + MINUTE_GUARD))
        .bind(micros(Duration::from_secs(1) + SECOND_GUARD))
        .bind(micros(self.lease))
        .bind(counted == Counted::FromStart)
        .fetch_one(&self.pool)
        .await?;
        if let Some(id) = slot_id {
            return Ok(Decision::Granted(id));
        }
        let wait = wait_ms
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
            .map(|d| d.min(MAX_SLEEP));
        Ok(wait.map_or(Decision::Poll, Decision::Wait))
    }

    /// Holds every process's new requests for this company back until `wait` from now (by the
    /// database clock). A shorter pause never shortens one in place.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pause(&self, wait: Duration) -> Result<(), StoreError> {
        sqlx::query("SELECT ops.budget_pause($1, $2)")
            .bind(&*self.realm_id)
            .bind(micros(wait))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `d` in whole microseconds, saturating.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One request's slot in a [`PgBudget`]. [`PgSlot::complete`] (or [`BudgetSlot::release`])
/// marks it completed; dropping it unreleased sends the release from a background task when a
/// runtime is at hand, and otherwise leaves it to expire with its lease.
pub struct PgSlot {
    pool: PgPool,
    realm_id: Arc<str>,
    id: Option<i64>,
}

impl fmt::Debug for PgSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSlot")
            .field("realm_id", &self.realm_id)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PgSlot {
    /// The slot's row id in `ops.budget_slots`.
    #[must_use]
    pub fn id(&self) -> Option<i64> {
        self.id
    }

    /// Marks the request completed now (by the database clock).
    ///
    /// # Errors
    /// Database errors; the slot then counts until its lease expires.
    pub async fn complete(mut self) -> Result<(), StoreError> {
        match self.id.take() {
            Some(id) => release(&self.pool, id).await,
            None => Ok(()),
        }
    }

    /// Forgets the slot without releasing it, as a process that dies does. For tests only:
    /// compiled with the `test-support` feature, never into the shipped binary.
    #[cfg(feature = "test-support")]
    pub fn leak(mut self) {
        self.id = None;
    }
}

/// Marks slot `id` completed. Committed without waiting for the WAL flush (about 4 times
/// cheaper here): a release lost in a crash of PostgreSQL only makes its slot count until its
/// lease expires, which errs on the safe side. Grants are committed durably.
async fn release(pool: &PgPool, id: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT ops.budget_release($1), set_config('synchronous_commit', 'off', true)")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

async fn release_logged(pool: PgPool, realm_id: Arc<str>, id: i64) {
    if let Err(e) = release(&pool, id).await {
        tracing::warn!(
            realm_id = %realm_id,
            slot = id,
            "Could not release a request slot of the shared budget; it counts until its lease expires: {e}"
        );
    }
}

impl Drop for PgSlot {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(release_logged(
                self.pool.clone(),
                Arc::clone(&self.realm_id),
                id,
            ));
        }
    }
}

impl BudgetSlot for PgSlot {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let pool = self.pool.clone();
        let realm_id = Arc::clone(&self.realm_id);
        let id = self.id.take();
        Box::pin(async move {
            if let Some(id) = id {
                release_logged(pool, realm_id, id).await;
            }
        })
    }
}

impl SharedBudget for PgBudget {
    fn acquire(&self, counted: Counted) -> BoxFuture<'_, Result<Box<dyn BudgetSlot>, BudgetError>> {
        Box::pin(async move {
            match self.acquire_slot(counted).await {
                Ok(slot) => Ok(Box::new(slot) as Box<dyn BudgetSlot>),
                Err(e) => Err(BudgetError::with_source(
                    "the shared request budget in PostgreSQL failed",
                    e,
                )),
            }
        })
    }

    fn pause_for(&self, wait: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.pause(wait).await {
                tracing::warn!(
                    realm_id = %self.realm_id,
                    "Could not share a throttling pause with other processes: {e}"
                );
            }
        })
    }
}
