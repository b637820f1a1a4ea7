//! QuickBooks Online client: settings, OAuth2 refresh with rotation, the query builder, paging,
//! the error taxonomy, retries and the per-company rate limit.

mod auth;
pub mod authorization;
mod budget;
mod client;
pub mod entity;
pub mod error;
pub mod page;
mod pager;
pub mod query;
mod rate_limit;
pub mod redact;
pub mod report;
pub mod response;
pub mod settings;
pub mod tls;
pub mod token_store;
mod transport;

pub use budget::{BudgetError, BudgetSlot, SharedBudget};
pub use client::{ClientStats, QboClient};
pub use entity::{Entity, UnknownEntity};
pub use error::{ENVIRONMENT_HINT, Fault, FaultError, QboError};
pub use page::{Page, Row};
pub use pager::{MAX_REPAGES, MIN_FALLBACK_PAGE_SIZE, WindowPager};
pub use query::{Literal, Operator, Query, TimeField, TimeWindow, escape_literal, format_datetime};
pub use rate_limit::{COLD_AFTER_THROTTLE, Counted, MINUTE_GUARD, POOL_IDLE, SECOND_GUARD};
pub use report::{
    Amount, Basis, FetchedReport, Report, ReportCell, ReportError, ReportFetchError, ReportName,
    ReportRequest, RowKind, SummarizeBy, is_range_too_large,
};
pub use response::{CdcChange, QueryPage};

/// The most objects QuickBooks' change-data-capture endpoint answers at once.
pub const CDC_MAX_OBJECTS: usize = 1000;
pub use settings::{
    ClientSettings, Credentials, Environment, RateLimitSettings, RetrySettings, UnknownEnvironment,
};
pub use token_store::{
    BoxFuture, MemoryTokenStore, TokenLease, TokenSet, TokenStore, TokenStoreError,
};
