//! QuickBooks Online client: settings, OAuth2 refresh with rotation, the query builder, paging,
//! the error taxonomy, retries and the per-company rate limit.

pub mod entity;
pub mod page;
pub mod token_store;

pub use entity::{Entity, UnknownEntity};
pub use page::{Page, Row};
pub use token_store::{BoxFuture, MemoryTokenStore, TokenLease, TokenSet, TokenStore, TokenStoreError};
