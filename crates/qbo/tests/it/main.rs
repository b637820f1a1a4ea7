//! Integration tests of the QBO client over real HTTP: against the simulator (`qbo-sim`) for
//! token rotation, 401 handling, injected faults, throttling and paging, and against a tiny
//! scripted stub server for the quirks the simulator does not produce (re-paging a window
//! that changes, pages longer than requested, JSON 429 with `Retry-After`, faults on 200).

mod auth;
mod common;
mod echoed_secrets;
mod escaping;
mod faults;
mod limits;
mod paging;
mod quirks;
mod stub;
