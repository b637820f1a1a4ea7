//! The orchestrator: the run queue and its workers ([`worker`]) and the scheduler that fires
//! triggers ([`scheduler`]). What a trigger is and when it fires is pure logic in
//! [`crate::domain::trigger`], re-exported here as `triggers`. The alert delivery loop is
//! [`alerts`].

pub use crate::domain::trigger as triggers;
pub mod alerts;
pub mod coalescer;
pub mod scheduler;
pub mod worker;
