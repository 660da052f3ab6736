//! Integration tests of the partition log through its public API only.
//!
//! One test binary with modules (rather than one per file) keeps link time down.

mod append_read;
mod common;
mod faults;
mod properties;
mod recovery;
mod retention;
mod timestamps;
