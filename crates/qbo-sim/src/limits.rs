//! Per-company throttling: requests per rolling minute and second, and requests in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::SimLimits;

/// The limiter of the one simulated company.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RwLock<SimLimits>,
    /// Admission instants within the last minute.
    window: Mutex<VecDeque<Instant>>,
    in_flight: AtomicU32,
    max_in_flight_seen: AtomicU32,
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
    pub(crate) fn new(limits: SimLimits) -> Self {
        Self {
            limits: RwLock::new(limits),
            window: Mutex::new(VecDeque::new()),
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

    pub(crate) fn max_in_flight_seen(&self) -> u32 {
        self.max_in_flight_seen.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_max_in_flight_seen(&self) {
        self.max_in_flight_seen.store(0, Ordering::Relaxed);
    }

    /// Registers a request. Returns its in-flight guard and whether it must be throttled;
    /// throttled requests do not count towards the rate windows.
    pub(crate) fn admit(&self) -> (InFlight<'_>, bool) {
        let current = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = InFlight(&self.in_flight);
        self.max_in_flight_seen
            .fetch_max(current, Ordering::Relaxed);
        let limits = self.get();
        if limits.max_in_flight.is_some_and(|m| current > m) {
            return (guard, true);
        }
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if limits
            .requests_per_minute
            .is_some_and(|m| window.len() >= m as usize)
        {
            return (guard, true);
        }
        if let Some(m) = limits.requests_per_second {
            let last_second = window
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < Duration::from_secs(1))
                .take(m as usize)
                .count();
            if last_second >= m as usize {
                return (guard, true);
            }
        }
        window.push_back(now);
        (guard, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_and_in_flight_limits() {
        let l = Limiter::new(SimLimits {
            requests_per_minute: Some(100),
            requests_per_second: Some(3),
            max_in_flight: Some(5),
        });
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
        let l = Limiter::new(SimLimits {
            requests_per_minute: Some(2),
            ..SimLimits::none()
        });
        assert!(!l.admit().1);
        assert!(!l.admit().1);
        assert!(l.admit().1);
        l.set(SimLimits::none());
        assert!((0..1000).all(|_| !l.admit().1));
    }
}
