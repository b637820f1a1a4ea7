//! The per-company client-side rate limit shared by every clone of a client: at most N requests
//! started in any rolling minute, at most M in any rolling second (both with a small guard so the
//! server, which counts arrivals, never sees more), at most K in flight, and a shared pause after
//! the server throttles us. Uses `tokio::time`, so paused-time tests drive it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};

use crate::RateLimitSettings;

/// Added to the minute window: a request is counted for 60.5 s.
pub const MINUTE_GUARD: Duration = Duration::from_millis(500);
/// Added to the second window: a request is counted for 1.2 s.
pub const SECOND_GUARD: Duration = Duration::from_millis(200);

/// A rolling window: the start instants of the last requests inside it.
#[derive(Debug)]
struct Window {
    limit: usize,
    span: Duration,
    starts: VecDeque<Instant>,
}

impl Window {
    fn new(limit: u32, span: Duration) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        Self {
            limit,
            span,
            starts: VecDeque::with_capacity(limit.min(4096)),
        }
    }

    /// When a new request may start (`None`: now).
    fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        while self.starts.front().is_some_and(|&t| t + self.span <= now) {
            self.starts.pop_front();
        }
        if self.starts.len() < self.limit {
            None
        } else {
            // Once this entry leaves the window, `limit - 1` remain.
            self.starts
                .get(self.starts.len() - self.limit)
                .map(|&t| t + self.span)
        }
    }
}

#[derive(Debug)]
struct Windows {
    minute: Option<Window>,
    second: Option<Window>,
}

/// Limits request starts and concurrency for one company.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    in_flight: Option<Arc<Semaphore>>,
    /// Held (fairly, FIFO) by the one task waiting for a window slot; others queue behind it.
    windows: Mutex<Windows>,
    paused_until: StdMutex<Option<Instant>>,
}

/// Permission to have one request in flight; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit {
    _in_flight: Option<OwnedSemaphorePermit>,
}

impl RateLimiter {
    pub(crate) fn new(settings: &RateLimitSettings) -> Self {
        Self {
            in_flight: settings.max_in_flight.map(|n| {
                Arc::new(Semaphore::new(
                    usize::try_from(n).unwrap_or(usize::MAX).max(1),
                ))
            }),
            windows: Mutex::new(Windows {
                minute: settings
                    .requests_per_minute
                    .map(|n| Window::new(n, Duration::from_secs(60) + MINUTE_GUARD)),
                second: settings
                    .requests_per_second
                    .map(|n| Window::new(n, Duration::from_secs(1) + SECOND_GUARD)),
            }),
            paused_until: StdMutex::new(None),
        }
    }

    /// Waits until a request may start, records its start, and returns its in-flight permit.
    pub(crate) async fn acquire(&self) -> Permit {
        let in_flight = match &self.in_flight {
            // The semaphore is never closed, so this only fails if that changes; run unlimited then.
            Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
            None => None,
        };
        let mut guard = self.windows.lock().await;
        let windows = &mut *guard;
        loop {
            let now = Instant::now();
            let paused = self.paused_until().filter(|&p| p > now);
            let ready = [
                paused,
                windows.minute.as_mut().and_then(|w| w.ready_at(now)),
                windows.second.as_mut().and_then(|w| w.ready_at(now)),
            ]
            .into_iter()
            .flatten()
            .max();
            match ready {
                Some(at) => sleep_until(at).await,
                None => {
                    for w in [windows.minute.as_mut(), windows.second.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        w.starts.push_back(now);
                    }
                    return Permit {
                        _in_flight: in_flight,
                    };
                }
            }
        }
    }

    /// Holds every new request back for `wait` (after the server throttled us).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none_or(|p| p < until) {
            *guard = Some(until);
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        *self
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
