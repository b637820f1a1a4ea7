//! qbo-backfill library.
