//! The broker's file descriptors. At start the open-files limit (RLIMIT_NOFILE) is raised
//! to its hard maximum, then split between client connections and log files, so that
//! neither can starve the other: without a split, idle sockets could take every
//! descriptor and fail appends, or partitions could take them all and lock clients out.
//! Log files need not fit: idle ones are closed and reopened on use
//! ([`sluice_storage::OpenFiles`]).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything that is neither a client connection nor a segment
/// file: listeners, the metadata log, checkpoint and index files being rewritten,
/// directory syncs, the HTTP listener and its clients, the runtime's own.
const RESERVED: u64 = 256;
/// Log files kept open at least, however many connections are allowed.
const MIN_LOG_FILES: u64 = 64;
/// Used when the hard limit is "unlimited": Linux's default `fs.nr_open`.
const UNLIMITED_CAP: u64 = 1 << 20;

/// How the broker's descriptors are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The process's open-files limit after raising it.
    pub limit: u64,
    /// What it was before.
    pub limit_before: u64,
    /// Client connections open at once.
    pub connections: u32,
    /// Segment files kept open at once.
    pub log_files: usize,
    /// `max-connections` asked for more than the limit leaves room for.
    pub connections_capped_from: Option<u32>,
}

impl FdBudget {
    /// Raises the soft open-files limit to the hard one and splits it.
    pub fn from_process(max_connections: Option<u32>) -> Self {
        let (before, after) = raise_open_files_limit();
        Self::split(before, after, max_connections)
    }

    /// Splits `limit` descriptors: `max_connections` (or half of what is left after the
    /// reserve) for connections, the rest for log files.
    pub fn split(limit_before: u64, limit: u64, max_connections: Option<u32>) -> Self {
        let usable = limit.saturating_sub(RESERVED).max(2 * MIN_LOG_FILES);
        let room_for_connections = usable.saturating_sub(MIN_LOG_FILES);
        let wanted = max_connections.map_or(usable / 2, u64::from);
        let connections = wanted.min(room_for_connections).max(1);
        let capped_from = max_connections.filter(|&asked| u64::from(asked) > connections);
        Self {
            limit,
            limit_before,
            connections: u32::try_from(connections).unwrap_or(u32::MAX),
            log_files: usize::try_from(usable.saturating_sub(connections)).unwrap_or(usize::MAX),
            connections_capped_from: capped_from,
        }
    }
}

/// Sets the soft RLIMIT_NOFILE to the hard one; returns (before, after). Failures leave
/// the limit as it was: the budget is then planned within it.
fn raise_open_files_limit() -> (u64, u64) {
    let current = getrlimit(Resource::Nofile);
    let before = current.current.unwrap_or(UNLIMITED_CAP);
    let hard = current.maximum.unwrap_or(UNLIMITED_CAP);
    if hard <= before {
        return (before, before);
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: current.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (before, hard),
        Err(e) => {
            tracing::warn!(error = %e, limit = before, "cannot raise the open-files limit");
            (before, before)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_what_is_left_after_the_reserve() {
        let b = FdBudget::split(1024, 20_000, None);
        assert_eq!(b.connections, (20_000 - 256) / 2);
        assert_eq!(b.log_files, 20_000 - 256 - (20_000 - 256) / 2);
        assert_eq!(b.connections_capped_from, None);
        let b = FdBudget::split(20_000, 20_000, Some(100));
        assert_eq!((b.connections, b.log_files), (100, 20_000 - 256 - 100));
    }

    #[test]
    fn too_many_connections_are_capped_and_reported() {
        let b = FdBudget::split(1024, 1024, Some(5000));
        assert_eq!(b.connections, 1024 - 256 - 64);
        assert_eq!(b.log_files, 64);
        assert_eq!(b.connections_capped_from, Some(5000));
    }

    #[test]
    fn a_tiny_limit_still_leaves_room_for_both() {
        let b = FdBudget::split(64, 64, None);
        assert!(b.connections >= 1 && b.log_files >= 64);
    }
}
