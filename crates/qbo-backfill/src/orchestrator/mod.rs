//! The orchestrator: the run queue and its workers ([`worker`]), triggers ([`triggers`]) and the
//! scheduler that fires them ([`scheduler`]).

pub mod scheduler;
pub mod triggers;
pub mod worker;
