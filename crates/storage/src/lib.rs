//! The partition log of Sluice: segments, sparse indexes, recovery and retention.
//!
//! One directory per partition:
//!
//! ```text
//! 00000000000000000000.log        record batches (magic v2) exactly as stored
//! 00000000000000000000.index      sparse offset → file position
//! 00000000000000000000.timeindex  sparse max timestamp → offset
//! log-start-offset                checkpoint moved by retention and DeleteRecords
//! recovery-point                  checkpoint: everything below it was synced
//! ```
//!
//! This crate knows nothing of the network: it stores and returns record batches as bytes,
//! and decodes records only for timestamp lookups. All file access goes through [`io`],
//! with the [`StorageEnv`] a log was opened in: the broker's bounds the open files, a
//! test's may inject faults into its own logs only.

mod checkpoint;
mod config;
mod error;
mod flush;
mod index;
pub mod invariant;
pub mod io;
mod log;
mod open_files;
pub mod producer_state;
mod segment;

pub use config::LogConfig;
pub use error::StorageError;
pub use flush::FlushHandle;
pub use io::{FaultHook, IoOp, StorageEnv};
pub use log::{AppendInfo, PartitionLog};
pub use open_files::OpenFiles;
