//! `qbo-sim` binary.
fn main() {}
