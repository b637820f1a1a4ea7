//! What a planned run's requests mean against the company's budget before it starts: the least
//! time Intuit's per-company limits let them take ([`least_duration`]) and where they take the
//! month's request allowance ([`MonthOutlook`]). Pure: the figures are given.

use std::time::Duration;

use super::health::Allowance;

/// The least time `requests` can take when at most `per_second` start in any second and at
/// most `per_minute` in any minute (rolling windows, `None` or 0: no limit), however fast
/// QuickBooks answers: the last request waits for the windows of those before it.
#[must_use]
pub fn least_duration(requests: u64, per_second: Option<u32>, per_minute: Option<u32>) -> Duration {
    let waits = |limit: Option<u32>, window: u64| {
        limit
            .filter(|n| *n > 0)
            .map_or(0, |n| requests.saturating_sub(1) / u64::from(n) * window)
    };
    Duration::from_secs(waits(per_second, 1).max(waits(per_minute, 60)))
}

/// A company's calendar month (UTC) with a run's planned requests added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthOutlook {
    /// The month (`2026-12`).
    pub month: String,
    /// Requests already spent this month (the estimate's own counts included).
    pub spent: u64,
    /// Requests the run would spend.
    pub planned: u64,
    /// The monthly allowance.
    pub allowance: Allowance,
}

impl MonthOutlook {
    /// Requests of the month once the run ended.
    #[must_use]
    pub fn after(&self) -> u64 {
        self.spent.saturating_add(self.planned)
    }

    /// Percent of the allowance spent once the run ended.
    #[must_use]
    pub fn percent_after(&self) -> u64 {
        self.allowance.percent(self.after())
    }

    /// The run would take the month to the warning share (80 %) or past it.
    #[must_use]
    pub fn reaches_warning(&self) -> bool {
        self.allowance.warns(self.after())
    }

    /// The run would take the month past its allowance: Intuit would block the app for the rest
    /// of the month.
    #[must_use]
    pub fn exceeds(&self) -> bool {
        self.after() > self.allowance.monthly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_set_the_least_time_the_requests_take() {
        let at_least = |n, s, m| least_duration(n, s, m).as_secs();
        // Intuit's limits: 10 a second decides short runs, 500 a minute long ones.
        assert_eq!(at_least(0, Some(10), Some(500)), 0);
        assert_eq!(at_least(10, Some(10), Some(500)), 0);
        assert_eq!(at_least(11, Some(10), Some(500)), 1);
        assert_eq!(at_least(1000, Some(10), Some(500)), 99);
        assert_eq!(at_least(10_000, Some(10), Some(500)), 19 * 60);
        assert_eq!(at_least(10_000, None, Some(0)), 0);
    }

    #[test]
    fn the_outlook_says_when_a_run_reaches_80_percent_and_passes_the_allowance() {
        let outlook = |spent, planned| MonthOutlook {
            month: "2026-12".to_owned(),
            spent,
            planned,
            allowance: Allowance::parse("1000").expect("allowance"),
        };
        let calm = outlook(100, 600);
        assert_eq!((calm.after(), calm.percent_after()), (700, 70));
        assert!(!calm.reaches_warning() && !calm.exceeds());
        let warned = outlook(100, 700);
        assert!(warned.reaches_warning() && !warned.exceeds());
        let over = outlook(900, 101);
        assert!(over.reaches_warning() && over.exceeds());
        assert_eq!(over.percent_after(), 100);
    }
}
