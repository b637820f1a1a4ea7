//! How healthy a company's copy is, as the dashboard judges it: how far behind an incremental
//! sync's cursor is ([`Freshness`]) and how much of the month's request allowance is spent
//! ([`Allowance`]). Pure: the clock and the figures are given.

use jiff::{SignedDuration, Timestamp};

/// A table whose sync cursor is older than this is stale (a daily sync plus a few hours).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_hours(26);

/// How current an entity's table is, from its sync cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// No incremental sync has succeeded yet.
    NeverSynced,
    /// Synced through this long ago (at most [`STALE_AFTER`]).
    Fresh(SignedDuration),
    /// Synced through this long ago (more than [`STALE_AFTER`]).
    Stale(SignedDuration),
}

impl Freshness {
    /// The freshness of a table whose cursor is `synced_through`, at `now`.
    #[must_use]
    pub fn of(synced_through: Option<Timestamp>, now: Timestamp) -> Self {
        match synced_through {
            None => Self::NeverSynced,
            Some(at) => {
                let behind = now.duration_since(at).max(SignedDuration::ZERO);
                if behind > STALE_AFTER {
                    Self::Stale(behind)
                } else {
                    Self::Fresh(behind)
                }
            }
        }
    }

    /// `3 h behind`, `2 d 4 h behind`, `never synced`.
    #[must_use]
    pub fn text(self) -> String {
        let behind = match self {
            Self::NeverSynced => return "never synced".to_owned(),
            Self::Fresh(d) | Self::Stale(d) => d,
        };
        let minutes = behind.as_secs() / 60;
        let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
        match (days, hours) {
            (0, 0) => format!("{mins} min behind"),
            (0, h) => format!("{h} h {mins} min behind"),
            (d, h) => format!("{d} d {h} h behind"),
        }
    }

    /// Whether it stands out on the dashboard.
    #[must_use]
    pub fn is_stale(self) -> bool {
        matches!(self, Self::Stale(_))
    }
}

/// Intuit's free tier: 500,000 read requests a calendar month.
pub const DEFAULT_MONTHLY_ALLOWANCE: u64 = 500_000;

/// The share of the allowance at which the operator is warned.
pub const WARN_SHARE_PERCENT: u64 = 80;

/// A company's monthly request allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests allowed per calendar month (never 0).
    pub monthly: u64,
}

impl Default for Allowance {
    fn default() -> Self {
        Self {
            monthly: DEFAULT_MONTHLY_ALLOWANCE,
        }
    }
}

impl Allowance {
    /// The allowance from a setting's text (`500000`, `500_000`); `None` when it is not a
    /// whole number above 0.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
        digits
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|monthly| Self { monthly })
    }

    /// Percent of the allowance `requests` spend (may pass 100).
    #[must_use]
    pub fn percent(self, requests: u64) -> u64 {
        requests.saturating_mul(100) / self.monthly.max(1)
    }

    /// Whether `requests` reach the warning share.
    #[must_use]
    pub fn warns(self, requests: u64) -> bool {
        self.percent(requests) >= WARN_SHARE_PERCENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_older_than_a_day_and_two_hours_is_stale() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().expect("now");
        let ago = |h: i64| Some(now - SignedDuration::from_hours(h));
        assert_eq!(Freshness::of(None, now), Freshness::NeverSynced);
        assert!(!Freshness::of(ago(26), now).is_stale());
        assert!(Freshness::of(ago(27), now).is_stale());
        assert_eq!(Freshness::of(ago(3), now).text(), "3 h 0 min behind");
        assert_eq!(Freshness::of(ago(52), now).text(), "2 d 4 h behind");
        // A cursor a little ahead of this clock is current, not negative.
        assert_eq!(
            Freshness::of(Some(now + SignedDuration::from_mins(5)), now).text(),
            "0 min behind"
        );
    }

    #[test]
    fn the_allowance_warns_from_eighty_percent() {
        let a = Allowance::parse("1_000").expect("allowance");
        assert!(!a.warns(799));
        assert!(a.warns(800));
        assert_eq!(a.percent(1_500), 150);
        assert_eq!(Allowance::parse("0"), None);
        assert_eq!(Allowance::parse("-5"), None);
        assert_eq!(Allowance::parse("lots"), None);
        assert_eq!(Allowance::default().monthly, 500_000);
    }
}
