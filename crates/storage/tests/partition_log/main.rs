//! Integration tests of the partition log through its public API only.
//!
//! One test binary with modules (rather than one per file) keeps link time down.

// Test code (helpers included, which clippy does not see as tests) may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod append_read;
mod common;
mod compaction;
mod epochs;
mod faults;
mod follower;
mod model;
mod producers;
mod properties;
mod recovery;
mod retention;
mod shared_sync;
mod timestamps;
mod transactions;
