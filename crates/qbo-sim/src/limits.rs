//! Per-company throttling: requests per rolling minute and second, requests in flight, and
//! batch requests per rolling minute.
//!
//! A batch request weighs as many requests as it has items in the per-minute window (Intuit:
//! "500 requests per minute per realmId, including batch requests"; each item "is metered like a
//! normal call"), but as one request for the per-second and in-flight limits (a full 30-item
//! batch could never pass a 10-per-second limit otherwise, and Intuit documents 30-item batches).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::SimLimits;

/// The limiter of the one simulated company.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RwLock<SimLimits>,
    batch_limit: RwLock<Option<u32>>,
    window: Mutex<Window>,
    in_flight: AtomicU32,
    max_in_flight_seen: AtomicU32,
}

/// Admissions within the last minute.
#[derive(Debug, Default)]
struct Window {
    /// Admission instants and their weights (requests they count as), oldest first.
    requests: VecDeque<(Instant, u32)>,
    /// Sum of the weights in `requests`.
    weight: u64,
    /// Admission instants of batch requests.
    batches: VecDeque<Instant>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        let old = |t: &Instant| now.duration_since(*t) >= Duration::from_secs(60);
        while let Some(&(t, w)) = self.requests.front() {
            if !old(&t) {
                break;
            }
            self.requests.pop_front();
            self.weight -= u64::from(w);
        }
        while self.batches.front().is_some_and(old) {
            self.batches.pop_front();
        }
    }
}

/// Decrements the in-flight count when dropped.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    pub(crate) fn new(limits: SimLimits, batch_limit: Option<u32>) -> Self {
        Self {
            limits: RwLock::new(limits),
            batch_limit: RwLock::new(batch_limit),
            window: Mutex::new(Window::default()),
            in_flight: AtomicU32::new(0),
            max_in_flight_seen: AtomicU32::new(0),
        }
    }

    pub(crate) fn set(&self, limits: SimLimits) {
        *self.limits.write().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    pub(crate) fn get(&self) -> SimLimits {
        *self.limits.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_batch_limit(&self, limit: Option<u32>) {
        *self
            .batch_limit
            .write()
            .unwrap_or_else(PoisonError::into_inner) = limit;
    }

    pub(crate) fn batch_limit(&self) -> Option<u32> {
        *self
            .batch_limit
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn max_in_flight_seen(&self) -> u32 {
        self.max_in_flight_seen.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_max_in_flight_seen(&self) {
        self.max_in_flight_seen.store(0, Ordering::Relaxed);
    }

    /// Registers a request. Returns its in-flight guard and whether it must be throttled;
    /// throttled requests do not count towards the rate windows.
    pub(crate) fn admit(&self) -> (InFlight<'_>, bool) {
        self.admit_weighted(1, false)
    }

    /// Registers a request that counts as `weight` requests per minute (a batch of that many
    /// items when `batch`), admitted whole or throttled whole.
    pub(crate) fn admit_weighted(&self, weight: u32, batch: bool) -> (InFlight<'_>, bool) {
        let current = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = InFlight(&self.in_flight);
        self.max_in_flight_seen
            .fetch_max(current, Ordering::Relaxed);
        let limits = self.get();
        if limits.max_in_flight.is_some_and(|m| current > m) {
            return (guard, true);
        }
        let batch_limit = if batch { self.batch_limit() } else { None };
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.prune(now);
        if limits
            .requests_per_minute
            .is_some_and(|m| window.weight + u64::from(weight) > u64::from(m))
        {
            return (guard, true);
        }
        if batch_limit.is_some_and(|m| window.batches.len() >= m as usize) {
            return (guard, true);
        }
        if let Some(m) = limits.requests_per_second {
            let last_second = window
                .requests
                .iter()
                .rev()
                .take_while(|(t, _)| now.duration_since(*t) < Duration::from_secs(1))
                .take(m as usize)
                .count();
            if last_second >= m as usize {
                return (guard, true);
            }
        }
        window.requests.push_back((now, weight));
        window.weight += u64::from(weight);
        if batch {
            window.batches.push_back(now);
        }
        (guard, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_and_in_flight_limits() {
        let l = Limiter::new(
            SimLimits {
                requests_per_minute: Some(100),
                requests_per_second: Some(3),
                max_in_flight: Some(5),
            },
            None,
        );
        let results: Vec<bool> = (0..4).map(|_| l.admit().1).collect();
        assert_eq!(results, vec![false, false, false, true]);
        l.set(SimLimits {
            max_in_flight: Some(2),
            ..SimLimits::none()
        });
        let (_a, t1) = l.admit();
        let (_b, t2) = l.admit();
        let (_c, t3) = l.admit();
        assert_eq!((t1, t2, t3), (false, false, true));
        assert_eq!(l.max_in_flight_seen(), 3);
    }

    #[test]
    fn per_minute_limit_and_disabled() {
        let l = Limiter::new(
            SimLimits {
                requests_per_minute: Some(2),
                ..SimLimits::none()
            },
            None,
        );
        assert!(!l.admit().1);
        assert!(!l.admit().1);
        assert!(l.admit().1);
        l.set(SimLimits::none());
        assert!((0..1000).all(|_| !l.admit().1));
    }

    #[test]
    fn batches_weigh_their_items_and_have_their_own_limit() {
        let l = Limiter::new(
            SimLimits {
                requests_per_minute: Some(10),
                requests_per_second: Some(2),
                ..SimLimits::none()
            },
            Some(3),
        );
        // Seven items fit; four more do not (throttled whole, not counted).
        assert!(!l.admit_weighted(7, true).1);
        assert!(l.admit_weighted(4, true).1);
        // One per-second slot left: a 3-item batch is one request there.
        assert!(!l.admit_weighted(3, true).1);
        assert!(l.admit().1, "10 of 10 per minute used");
        l.set(SimLimits::none());
        assert!(!l.admit_weighted(1, true).1);
        assert!(l.admit_weighted(1, true).1, "3 batches per minute");
        assert!(
            !l.admit_weighted(1, false).1,
            "plain requests are not batches"
        );
        l.set_batch_limit(None);
        assert!(!l.admit_weighted(30, true).1);
    }
}
