//! The partition log of Sluice: segments, sparse indexes, recovery and retention, and what
//! replication needs of a log: appends that keep a leader's offsets and epochs, truncation,
//! the leader-epoch cache and the high watermark.
//!
//! One directory per partition:
//!
//! ```text
//! 00000000000000000000.log        record batches (magic v2) exactly as stored
//! 00000000000000000000.index      sparse offset → file position
//! 00000000000000000000.timeindex  sparse max timestamp → offset
//! 00000000000000000120.snapshot   producer state and aborted transactions below offset
//!                                 120, taken when the segment at 120 was rolled
//! log-start-offset                checkpoint moved by retention and DeleteRecords
//! recovery-point                  checkpoint: everything below it was synced
//! leader-epoch-checkpoint         leader epoch → offset of its first batch
//! high-watermark                  checkpoint of the high watermark the broker sets
//! cleaner-offset-checkpoint       compacted logs: where the log cleaner stopped
//! 00000000000000000000.log.cleaned  a cleaned segment being written (and its
//!                                 .index.cleaned, .timeindex.cleaned)
//! 00000000000000000000.log.swap   a cleaned segment replacing the segments it was made
//!                                 from (and its .index.swap, .timeindex.swap)
//! ```
//!
//! * `.log`, `.index`, `.timeindex`: described in the `segment` and `index` modules; indexes
//!   carry a CRC and are rebuilt from the log when missing or damaged.
//! * `.snapshot` (version 1, big-endian, CRC-32C): the producers (id, epoch, last
//!   timestamp, first offset of an open transaction, their last five batches as sequence
//!   and offset ranges) and the aborted transactions (producer, first offset, marker
//!   offset) below the offset the file is named by. Opening a log loads the latest one
//!   and replays the batch headers after it; truncation restores from the latest one at
//!   or below the new end. Not synced: a damaged one is skipped for an older one, or a
//!   replay of every segment.
//! * Checkpoints of one offset (`log-start-offset`, `recovery-point`, `high-watermark`,
//!   `cleaner-offset-checkpoint`): `0\n<offset>\n`, replaced atomically; the first two are
//!   synced, the others not (a lower or missing one after a crash is safe: the high
//!   watermark is learnt again, the cleaner reads more).
//! * `.cleaned` and `.swap` files: the log cleaner's ([`cleaner`], [`cleaner::swap`]
//!   describes the swap). Opening a log removes `.cleaned` files and finishes every
//!   `.swap`.
//! * `leader-epoch-checkpoint`: Kafka's format, `0\n<count>\n` then `<epoch> <start
//!   offset>\n` per entry. Synced before each recovery point, at truncation and on close;
//!   recovery derives the entries of the tail it scans again from the batch headers, which
//!   carry their epoch.
//!
//! A failed fsync takes a log offline until it is reopened (see [`FlushHandle`]), and
//! internal invariants stop the process ([`invariant!`]).
//!
//! This crate knows nothing of the network (docs/ARCHITECTURE.md §2): it stores and returns record batches as bytes,
//! and decodes records only for timestamp lookups. All file access goes through [`io`],
//! with the [`StorageEnv`] a log was opened in: the broker's bounds the open files, a
//! test's may inject faults into its own logs only.

mod checkpoint;
pub mod cleaner;
mod config;
mod error;
mod flush;
mod index;
pub mod invariant;
pub mod io;
pub mod leader_epoch;
mod log;
mod open_files;
mod producer_snapshot;
pub mod producer_state;
mod segment;
pub mod sync_ledger;

pub use cleaner::{CleanStats, CleanedSegments, CleanerControl, CleaningTask, DirtyStats};
pub use config::{CompactionConfig, LogConfig};
pub use error::{AppendOrderError, StorageError};
pub use flush::{FlushHandle, flush_together};
pub use io::{FILESYSTEM_SYNC_MAX_DIRTY_BYTES, FaultHook, FilesystemSync, IoOp, StorageEnv};
pub use leader_epoch::{EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use log::{AppendInfo, CleanOutcome, PartitionLog};
pub use open_files::OpenFiles;
