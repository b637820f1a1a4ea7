//! What the rest of the store stands on: the shared request budget ([`budget`]), the figures of
//! `/metrics` ([`metrics`]), PostgreSQL's time types ([`pgtime`]), the throwaway local cluster
//! ([`local_cluster`]) and, for tests only (feature `test-support`), a database per test.

pub mod allowance;
pub mod budget;
pub mod local_cluster;
pub mod metrics;
pub mod pgtime;
#[cfg(any(test, feature = "test-support"))]
pub mod testdb;
