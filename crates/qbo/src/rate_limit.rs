//! The per-company client-side rate limit shared by every clone of a client: at most N requests
//! in any rolling minute, at most M in any rolling second, at most K in flight, and a shared
//! pause after the server throttles us. Uses `tokio::time`, so paused-time tests drive it.
//!
//! The server counts a request when it *arrives*, somewhere between our send and our receipt of
//! the answer. So a request is counted here from the moment it starts until its window span has
//! passed after it *completed*: whatever the network delay, no rolling window on the server can
//! then hold more requests than the limit. In-flight requests occupy a slot until they finish.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};

use crate::RateLimitSettings;

/// Added to the minute window: a request is counted for 60.5 s after it completed.
pub const MINUTE_GUARD: Duration = Duration::from_millis(500);
/// Added to the second window: a request is counted for 1.05 s after it completed.
pub const SECOND_GUARD: Duration = Duration::from_millis(50);

/// A rolling window: the completion instants of the last requests inside it, oldest first.
#[derive(Debug)]
struct Window {
    limit: usize,
    span: Duration,
    done: VecDeque<Instant>,
}

/// When a window lets a new request start.
enum Ready {
    Now,
    At(Instant),
    /// Only once an in-flight request completes.
    OnCompletion,
}

impl Window {
    fn new(limit: u32, span: Duration) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        Self {
            limit,
            span,
            done: VecDeque::with_capacity(limit.min(4096)),
        }
    }

    fn ready(&mut self, now: Instant, in_flight: usize) -> Ready {
        while self.done.front().is_some_and(|&t| t + self.span <= now) {
            self.done.pop_front();
        }
        let used = self.done.len() + in_flight;
        if used < self.limit {
            return Ready::Now;
        }
        // In-flight requests complete after `now`, so they leave the window after every
        // completed one: the `used - limit`-th completed entry is the one to wait for.
        match self.done.get(used - self.limit) {
            Some(&t) => Ready::At(t + self.span),
            None => Ready::OnCompletion,
        }
    }
}

#[derive(Debug)]
struct State {
    minute: Option<Window>,
    second: Option<Window>,
    /// Requests started and not yet completed.
    in_flight: usize,
}

#[derive(Debug)]
struct Shared {
    state: StdMutex<State>,
    completed: Notify,
    paused_until: StdMutex<Option<Instant>>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Limits request starts and concurrency for one company.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    in_flight: Option<Arc<Semaphore>>,
    /// Held (fairly, FIFO) by the one task waiting for a window slot; others queue behind it.
    gate: Mutex<()>,
    shared: Arc<Shared>,
}

/// Permission to have one request in flight; dropping it marks the request completed.
#[derive(Debug)]
pub(crate) struct Permit {
    shared: Arc<Shared>,
    _in_flight: Option<OwnedSemaphorePermit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let now = Instant::now();
        {
            let mut state = self.shared.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            let State { minute, second, .. } = &mut *state;
            for w in [minute.as_mut(), second.as_mut()].into_iter().flatten() {
                w.done.push_back(now);
            }
        }
        self.shared.completed.notify_waiters();
    }
}

impl RateLimiter {
    pub(crate) fn new(settings: &RateLimitSettings) -> Self {
        Self {
            in_flight: settings.max_in_flight.map(|n| {
                Arc::new(Semaphore::new(
                    usize::try_from(n).unwrap_or(usize::MAX).max(1),
                ))
            }),
            gate: Mutex::new(()),
            shared: Arc::new(Shared {
                state: StdMutex::new(State {
                    minute: settings
                        .requests_per_minute
                        .map(|n| Window::new(n, Duration::from_secs(60) + MINUTE_GUARD)),
                    second: settings
                        .requests_per_second
                        .map(|n| Window::new(n, Duration::from_secs(1) + SECOND_GUARD)),
                    in_flight: 0,
                }),
                completed: Notify::new(),
                paused_until: StdMutex::new(None),
            }),
        }
    }

    /// Waits until a request may start and returns its permit; drop the permit once the
    /// response has been read completely.
    pub(crate) async fn acquire(&self) -> Permit {
        let in_flight = match &self.in_flight {
            // The semaphore is never closed, so this only fails if that changes; run unlimited then.
            Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
            None => None,
        };
        let _gate = self.gate.lock().await;
        loop {
            let completed = self.shared.completed.notified();
            tokio::pin!(completed);
            completed.as_mut().enable();
            let now = Instant::now();
            let mut wait_at = self.paused_until().filter(|&p| p > now);
            let mut on_completion = false;
            {
                let mut state = self.shared.state();
                let pending = state.in_flight;
                let State { minute, second, .. } = &mut *state;
                for w in [minute.as_mut(), second.as_mut()].into_iter().flatten() {
                    match w.ready(now, pending) {
                        Ready::Now => {}
                        Ready::At(at) => wait_at = wait_at.max(Some(at)),
                        Ready::OnCompletion => on_completion = true,
                    }
                }
                if wait_at.is_none() && !on_completion {
                    state.in_flight += 1;
                    return Permit {
                        shared: Arc::clone(&self.shared),
                        _in_flight: in_flight,
                    };
                }
            }
            match (wait_at, on_completion) {
                (Some(at), false) => sleep_until(at).await,
                (Some(at), true) => {
                    tokio::select! {
                        () = sleep_until(at) => {}
                        () = &mut completed => {}
                    }
                }
                (None, _) => completed.await,
            }
        }
    }

    /// Holds every new request back for `wait` (after the server throttled us).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self
            .shared
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none_or(|p| p < until) {
            *guard = Some(until);
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        *self
            .shared
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(
        per_minute: Option<u32>,
        per_second: Option<u32>,
        in_flight: Option<u32>,
    ) -> RateLimitSettings {
        RateLimitSettings {
            requests_per_minute: per_minute,
            requests_per_second: per_second,
            max_in_flight: in_flight,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_second_limit_spreads_starts() {
        let limiter = RateLimiter::new(&limits(None, Some(3), None));
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..7 {
            let _p = limiter.acquire().await;
            starts.push(Instant::now() - t0);
        }
        let span = Duration::from_secs(1) + SECOND_GUARD;
        assert_eq!(&starts[..3], &[Duration::ZERO; 3]);
        assert_eq!(&starts[3..6], &[span; 3]);
        assert_eq!(starts[6], span * 2);
        // No rolling window of `span` ever holds more than 3 starts.
        for (i, a) in starts.iter().enumerate() {
            let inside = starts[i..].iter().filter(|b| **b < *a + span).count();
            assert!(inside <= 3, "window starting at {a:?} holds {inside}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_minute_limit_waits_for_the_oldest_start_to_age_out() {
        let limiter = RateLimiter::new(&limits(Some(5), None, None));
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(limiter.acquire().await);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        drop(limiter.acquire().await);
        // The first start (t0) leaves the 60.5 s window at t0 + 60.5 s.
        assert_eq!(Instant::now() - t0, Duration::from_secs(60) + MINUTE_GUARD);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_limit_is_shared_and_released_on_drop() {
        let limiter = Arc::new(RateLimiter::new(&limits(None, None, Some(2))));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let l2 = Arc::clone(&limiter);
        let third = tokio::spawn(async move {
            let _c = l2.acquire().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !third.is_finished(),
            "a third request started while two were in flight"
        );
        let released = Instant::now();
        drop(a);
        let started = third.await.expect("task");
        assert_eq!(started, released);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_held_from_start_until_a_window_after_completion() {
        let limiter = Arc::new(RateLimiter::new(&limits(None, Some(1), None)));
        let t0 = Instant::now();
        let first = limiter.acquire().await;
        let l2 = Arc::clone(&limiter);
        let second = tokio::spawn(async move {
            let _p = l2.acquire().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !second.is_finished(),
            "started while the slot's request was in flight"
        );
        drop(first);
        let started = second.await.expect("task");
        assert_eq!(started - t0, Duration::from_secs(3) + SECOND_GUARD);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_back_new_requests() {
        let limiter = RateLimiter::new(&RateLimitSettings::unlimited());
        let t0 = Instant::now();
        limiter.pause_for(Duration::from_secs(3));
        limiter.pause_for(Duration::from_secs(1)); // a shorter pause does not shorten it
        drop(limiter.acquire().await);
        assert_eq!(Instant::now() - t0, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_tasks_never_exceed_either_window() {
        let limiter = Arc::new(RateLimiter::new(&limits(Some(20), Some(4), Some(3))));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let l = Arc::clone(&limiter);
            tasks.push(tokio::spawn(async move {
                let _p = l.acquire().await;
                let at = Instant::now() - t0;
                tokio::time::sleep(Duration::from_millis(300)).await;
                at
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.expect("task"));
        }
        starts.sort();
        let minute = Duration::from_secs(60) + MINUTE_GUARD;
        let second = Duration::from_secs(1) + SECOND_GUARD;
        for (i, a) in starts.iter().enumerate() {
            assert!(starts[i..].iter().filter(|b| **b < *a + minute).count() <= 20);
            assert!(starts[i..].iter().filter(|b| **b < *a + second).count() <= 4);
        }
        // 40 requests at 20 per 60.5 s: the last batch starts after at least one full window.
        assert!(*starts.last().expect("starts") >= minute);
    }
}
