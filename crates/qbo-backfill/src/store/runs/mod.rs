//! Run and window bookkeeping in `ops`: the statuses, claiming a window so two runs never load it
//! at once (a lease renewed by the run's heartbeat, taken over when its holder is gone), recording
//! each page's progress in the page's own transaction, ending windows and runs, and reaping runs
//! whose worker died.
//!
//! Every write on behalf of a run is fenced by its [`Execution`]: once a run was taken over (its
//! lease expired, its worker died, it was requeued), the old execution's page commits, window ends
//! and run end all find nothing to update, so a lost worker can never report anything.

pub mod batches;
mod claims;
pub mod cursors;
mod lifecycle;
pub mod logs;
pub mod queue;
pub mod triggers;
pub mod views;
pub mod workers;

pub use claims::*;
pub use lifecycle::*;

use std::time::Duration;

use uuid::Uuid;

use crate::domain::pipeline::DateRange;
use crate::store::PgDate;
use crate::store::raw::UpsertCounts;

/// How long a run's claim (and its windows' claims) last without a heartbeat, by default.
pub const LEASE: Duration = Duration::from_secs(30);

/// How often a running run renews its leases and reads cancel requests.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// A failure of the bookkeeping queries.
pub type Result<T> = std::result::Result<T, sqlx::Error>;

pub use crate::domain::run::{RunStatus, WindowStatus};

/// One claim of a run by one worker: what every write on the run's behalf is fenced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execution {
    /// The run.
    pub run_id: Uuid,
    /// This claim of it (a new one each time the run is claimed).
    pub execution_id: Uuid,
    /// The worker holding it.
    pub worker_id: Uuid,
}

/// A run as stored (for `retry` and liveness checks).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRecord {
    /// Run id.
    pub id: Uuid,
    /// Pipeline name.
    pub pipeline: String,
    /// Company.
    pub realm_id: String,
    /// First day.
    pub fecha_inicio: PgDate,
    /// First day not loaded.
    pub fecha_fin: PgDate,
    /// Status.
    pub status: RunStatus,
    /// Host that ran it.
    pub host: Option<String>,
    /// Process that ran it.
    pub pid: Option<i32>,
    /// Whether its lease (or, for old rows, its heartbeat) expired.
    pub lease_expired: bool,
    /// The liveness key of its worker.
    pub liveness_key: Option<String>,
}

impl RunRecord {
    /// The range asked.
    #[must_use]
    pub fn range(&self) -> DateRange {
        DateRange {
            fecha_inicio: self.fecha_inicio.0,
            fecha_fin: self.fecha_fin.0,
        }
    }
}

/// Totals of a run, as written at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Windows in the run.
    pub windows: u64,
    /// Windows that failed.
    pub failed_windows: u64,
    /// Pages written.
    pub pages: u64,
    /// Rows received.
    pub rows: u64,
    /// Upsert counts.
    pub counts: UpsertCounts,
}

/// QuickBooks request counters of one execution, stored with the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Requests sent.
    pub requests: u64,
    /// Requests re-sent.
    pub retries: u64,
    /// Throttled answers.
    pub throttled: u64,
    /// Token refreshes.
    pub refreshes: u64,
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ts(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// The condition (on `ops.runs r`) under which a running run's lease ran out.
const LEASE_EXPIRED: &str = "(coalesce(r.lease_until, r.heartbeat_at + interval '60 seconds', \
     r.created_at + interval '60 seconds') < now())";
