//! `qbo-backfill` binary.
fn main() {}
