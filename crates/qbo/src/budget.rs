//! The request budget of one company shared by every process that talks to it: the
//! [`SharedBudget`] trait the caller implements (PostgreSQL in `qbo-backfill`), the
//! [`BudgetSlot`] a request holds while it counts, and [`BudgetError`].
//!
//! Intuit's limits (500 requests per rolling minute, 10 per rolling second, 10 in flight) apply
//! to the company, whoever sends the requests. The in-process rate limiter keeps one client
//! within them; a [`SharedBudget`] keeps all clients of all processes within them together.
//! [`crate::QboClient`] takes its in-process permit first (so a process queues locally and asks
//! the shared budget for one request at a time), then a slot from the shared budget, sends, reads
//! the whole body, and releases the slot. A slot counts exactly like the in-process permit it
//! goes with: in the rolling minute from its start until a window span after its release; in the
//! rolling second the same, or, when the permit says [`Counted::FromStart`], from its start
//! for a span. A slot that is never released (its process died) must still be counted by the
//! implementation, e.g. until a lease expires.

use std::time::Duration;

use crate::{BoxFuture, Counted};

/// A failure of the shared budget itself (database down, …). The client sends nothing without
/// a slot: it reports a retryable error instead.
pub type BudgetError = crate::error::CallerError;

/// One company's request budget, shared by every process that sends requests for it.
pub trait SharedBudget: Send + Sync {
    /// Waits until one more request may start for this company across all processes; the slot
    /// is held until released and counts in the rolling second as `counted` says.
    fn acquire(&self, counted: Counted) -> BoxFuture<'_, Result<Box<dyn BudgetSlot>, BudgetError>>;

    /// Holds every process's new requests back until `wait` from now (after a 429). A shorter
    /// pause never shortens one already in place. Failures are the implementation's to log.
    fn pause_for(&self, wait: Duration) -> BoxFuture<'_, ()>;
}

/// Permission to have one request in flight, from [`SharedBudget::acquire`].
pub trait BudgetSlot: Send {
    /// Marks the request completed: from now on it counts only in the rolling windows. Failures
    /// are the implementation's to log; a slot that is dropped or whose release fails must
    /// still be counted safely (e.g. until its lease expires).
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}
