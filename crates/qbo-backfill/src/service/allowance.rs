//! The monthly request allowance (`QBO_MONTHLY_REQUEST_ALLOWANCE`, default Intuit's free tier of
//! 500,000 a month): its setting, and the one warning per company and month when 80 % of it is
//! spent (a `Request allowance | …` log line; an `allowance_80` alert where channels exist).

use sqlx::PgPool;

use crate::domain::health::Allowance;
use crate::store::infra::allowance::{self, MonthRequests};

/// The setting's name.
pub const SETTING: &str = "QBO_MONTHLY_REQUEST_ALLOWANCE";

/// The configured allowance.
///
/// # Errors
/// A value that is not a whole number above 0, said in one line.
pub fn configured() -> Result<Allowance, String> {
    match crate::settings::env_var(SETTING) {
        None => Ok(Allowance::default()),
        Some(text) => Allowance::parse(&text).ok_or_else(|| {
            format!(
                "{SETTING}=`{}` is not a whole number of requests above 0 (e.g. 500000)",
                crate::pipeline::echo(&text)
            )
        }),
    }
}

/// Companies whose requests this month reached 80 % of `allowance` and were not warned of it
/// yet: each is marked warned (once, across processes) and returned.
///
/// # Errors
/// Database errors.
pub async fn newly_crossed(
    pool: &PgPool,
    allowance: Allowance,
) -> Result<Vec<MonthRequests>, sqlx::Error> {
    let mut crossed = Vec::new();
    for month in allowance::this_month(pool).await? {
        let requests = u64::try_from(month.requests).unwrap_or(0);
        if !month.warned
            && allowance.warns(requests)
            && allowance::mark_warned(pool, &month.realm_id).await?
        {
            crossed.push(month);
        }
    }
    Ok(crossed)
}

/// The warning line of `month`.
#[must_use]
pub fn warning_line(month: &MonthRequests, allowance: Allowance) -> String {
    let requests = u64::try_from(month.requests).unwrap_or(0);
    format!(
        "Request allowance | realm_id={} month={} requests={requests} allowance={} percent={}: Intuit blocks the app for the rest of the month past its allowance; spread long backfills over months or raise {SETTING} if your plan allows more",
        month.realm_id,
        month.month,
        allowance.monthly,
        allowance.percent(requests)
    )
}
