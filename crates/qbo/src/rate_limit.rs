//! The per-company client-side rate limit shared by every clone of a client: at most N requests
//! in any rolling minute, at most M in any rolling second, at most K in flight, and a shared
//! pause after the server throttles us. Uses `tokio::time`, so paused-time tests drive it.
//!
//! The server counts a request when it *arrives*, somewhere between our send and our receipt of
//! the answer. In the rolling minute, a request is counted here from the moment it starts until
//! the window span has passed after it *completed*: whatever the network delay, no rolling
//! minute on the server can then hold more requests than the limit.
//!
//! In the rolling second that rule would cost a quarter of the allowance (with answers of
//! 300 ms, a slot was held 1.35 s instead of 1 s), so the second counts a request by how it
//! reaches the server ([`Counted`]):
//! - on a connection the HTTP pool already holds (*warm*), a request arrives a network delay
//!   after it starts, the same delay for every warm request: it counts from its start for
//!   1 s + [`SECOND_GUARD`], the guard covering the delay's jitter;
//! - a request that may have to open a connection (*cold*: more requests in flight than the
//!   pool has held since it was last idle, or after [`POOL_IDLE`] without traffic) may arrive
//!   handshakes later: it counts, like every request in the minute, from its start until the span
//!   has passed after its completion;
//! - after the server throttles us, every request counts as cold for
//!   [`COLD_AFTER_THROTTLE`]: if its clock or its network disagree with the rule, we fall back to
//!   the rule that cannot overrun.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};

use crate::RateLimitSettings;

/// Added to the minute window: a request is counted for 60.5 s after it completed.
pub const MINUTE_GUARD: Duration = Duration::from_millis(500);
/// Added to the second window: a request is counted for 1.1 s after it started (warm) or
/// completed (cold).
pub const SECOND_GUARD: Duration = Duration::from_millis(100);
/// After this long without a request in flight, the pool's connections may have been closed
/// by either side: the next requests count as cold.
pub const POOL_IDLE: Duration = Duration::from_secs(15);
/// After a 429, every request counts as cold for this long.
pub const COLD_AFTER_THROTTLE: Duration = Duration::from_secs(3600);

/// From when a request counts in the rolling second (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Sent on a connection the pool holds: counted from its start.
    FromStart,
    /// May open a connection first: counted from its completion (and in flight until then).
    FromCompletion,
}

/// A rolling window: the instants from which the last requests inside it count (their
/// completion, or for a warm request in the second window its start), oldest first.
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
    /// Of those, the ones counted from their completion in the second window.
    cold_in_flight: usize,
    /// The most requests in flight at once since the pool was last idle: how many connections
    /// it holds, as far as we know.
    pooled: usize,
    /// When a request last completed.
    last_completed: Option<Instant>,
    /// Until then every request is cold (set by a 429).
    cold_until: Option<Instant>,
}

impl State {
    /// How a request starting `now` is counted, given the requests in flight.
    fn counting(&mut self, now: Instant) -> Counted {
        let idle = self.in_flight == 0
            && self
                .last_completed
                .is_none_or(|t| now.saturating_duration_since(t) >= POOL_IDLE);
        if idle {
            self.pooled = 0;
        }
        let concurrent = self.in_flight + 1;
        let warm = concurrent <= self.pooled && self.cold_until.is_none_or(|t| t <= now);
        self.pooled = self.pooled.max(concurrent);
        if warm {
            Counted::FromStart
        } else {
            Counted::FromCompletion
        }
    }
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
    counted: Counted,
    _in_flight: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// From when this request counts in the rolling second; a shared budget counts it alike.
    pub(crate) const fn counted(&self) -> Counted {
        self.counted
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state();
            let now = Instant::now();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.last_completed = Some(now);
            if let Some(w) = state.minute.as_mut() {
                w.done.push_back(now);
            }
            if self.counted == Counted::FromCompletion {
                state.cold_in_flight = state.cold_in_flight.saturating_sub(1);
                if let Some(w) = state.second.as_mut() {
                    w.done.push_back(now);
                }
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
                    cold_in_flight: 0,
                    pooled: 0,
                    last_completed: None,
                    cold_until: None,
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
                let (all, cold) = (state.in_flight, state.cold_in_flight);
                let State { minute, second, .. } = &mut *state;
                let windows = [(minute.as_mut(), all), (second.as_mut(), cold)];
                for (w, pending) in windows.into_iter().filter_map(|(w, p)| Some((w?, p))) {
                    match w.ready(now, pending) {
                        Ready::Now => {}
                        Ready::At(at) => wait_at = wait_at.max(Some(at)),
                        Ready::OnCompletion => on_completion = true,
                    }
                }
                if wait_at.is_none() && !on_completion {
                    let counted = state.counting(now);
                    state.in_flight += 1;
                    match counted {
                        Counted::FromStart => {
                            if let Some(w) = state.second.as_mut() {
                                w.done.push_back(now);
                            }
                        }
                        Counted::FromCompletion => state.cold_in_flight += 1,
                    }
                    return Permit {
                        shared: Arc::clone(&self.shared),
                        counted,
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

    /// Holds every new request back for `wait` (after the server throttled us), and counts
    /// every request as cold for [`COLD_AFTER_THROTTLE`].
    pub(crate) fn pause_for(&self, wait: Duration) {
        let now = Instant::now();
        self.shared.state().cold_until = Some(now + COLD_AFTER_THROTTLE);
        let until = now + wait;
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

    /// Sends `n` requests one after another, each answered after `answer`; their starts.
    async fn sequential(limiter: &RateLimiter, n: usize, answer: Duration) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..n {
            let permit = limiter.acquire().await;
            starts.push(Instant::now() - t0);
            tokio::time::sleep(answer).await;
            drop(permit);
        }
        starts
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_a_warm_connection_counts_from_its_start() {
        let limiter = RateLimiter::new(&limits(None, Some(1), None));
        let answer = Duration::from_millis(300);
        let span = Duration::from_secs(1) + SECOND_GUARD;
        let starts = sequential(&limiter, 4, answer).await;
        // The first opens the connection: counted from its answer. The others reuse it:
        // each may start a span after the previous one started.
        assert_eq!(
            starts,
            [
                Duration::ZERO,
                answer + span,
                answer + span * 2,
                answer + span * 3
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn more_requests_in_flight_than_the_pool_held_count_from_their_completion() {
        let limiter = RateLimiter::new(&limits(None, None, None));
        let first = limiter.acquire().await;
        assert_eq!(
            first.counted(),
            Counted::FromCompletion,
            "the pool is empty"
        );
        drop(first);
        let one = limiter.acquire().await;
        assert_eq!(
            one.counted(),
            Counted::FromStart,
            "one connection is pooled"
        );
        let two = limiter.acquire().await;
        assert_eq!(
            two.counted(),
            Counted::FromCompletion,
            "a second connection opens"
        );
        drop((one, two));
        let (a, b) = (limiter.acquire().await, limiter.acquire().await);
        assert_eq!(
            (a.counted(), b.counted()),
            (Counted::FromStart, Counted::FromStart)
        );
        drop((a, b));
        tokio::time::advance(POOL_IDLE).await;
        let after_idle = limiter.acquire().await;
        assert_eq!(
            after_idle.counted(),
            Counted::FromCompletion,
            "idle connections may be gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_throttle_every_request_counts_from_its_completion_for_an_hour() {
        let limiter = RateLimiter::new(&limits(None, Some(1), None));
        let answer = Duration::from_millis(300);
        let span = Duration::from_secs(1) + SECOND_GUARD;
        drop(limiter.acquire().await);
        limiter.pause_for(Duration::from_millis(10));
        let starts = sequential(&limiter, 3, answer).await;
        // Each waits a span after the previous answer, not after the previous start.
        assert_eq!(starts, [span, span * 2 + answer, span * 3 + answer * 2]);
        tokio::time::advance(COLD_AFTER_THROTTLE).await;
        drop(limiter.acquire().await); // reopens the connection idle for an hour
        let permit = limiter.acquire().await;
        assert_eq!(
            permit.counted(),
            Counted::FromStart,
            "an hour later, warm again"
        );
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
