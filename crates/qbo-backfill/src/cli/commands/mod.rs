//! One module per use case of the command line.

pub(super) mod api_tokens;
pub(super) mod listings;
pub(super) mod plan;
pub(super) mod retry;
pub(super) mod run;
pub(super) mod secrets;
pub(super) mod serve;
pub(super) mod verify;
