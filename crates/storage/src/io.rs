//! Every file operation of the log goes through this module (docs/ARCHITECTURE.md §6), through the [`StorageEnv`]
//! its log was opened with, so that a test can make any of them fail (a fault hook of its
//! own environment, not of the process, so such tests run in parallel) and check that the
//! log neither panics nor loses acknowledged data.
//!
//! Data files are accessed with positional reads and writes only: reads take `&self`, so
//! the broker can serve fetches under a read lock while the appender holds nothing else.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::open_files::{CachedFile, OpenFiles};
use crate::sync_ledger;

/// Most slices one `pwritev` takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// The kind of operation a fault hook is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    Open,
    Read,
    Write,
    Sync,
    Truncate,
    Remove,
    Rename,
    ReadDir,
    CreateDir,
}

/// Decides, before an operation runs, whether it fails instead. It sees the path, so a
/// test can fail the operations of one file or one partition only.
pub type FaultHook = Arc<dyn Fn(IoOp, &Path) -> io::Result<()> + Send + Sync>;

/// What the logs of one broker share: the budget of open segment files and, in tests, a
/// fault hook asked before every file operation. The broker's log manager owns one; a
/// test builds its own, so its faults reach only its logs.
pub struct StorageEnv {
    open_files: Arc<OpenFiles>,
    faults: Option<FaultHook>,
    filesystem_sync: FilesystemSync,
}

/// When the syncs of several logs on one filesystem may be one syncfs(2)
/// ([`crate::flush_together`]). syncfs writes back every dirty page of the filesystem,
/// other programs' too: beside a compiler writing gigabytes to the same disk it made
/// acks=all slower, not faster, so by default it is used only while the machine holds
/// little dirty data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesystemSync {
    /// While the machine's dirty and in-writeback data is under
    /// [`FILESYSTEM_SYNC_MAX_DIRTY_BYTES`] (what the broker runs with).
    WhenLittleDirtyData,
    /// Whenever several logs share a filesystem (tests).
    Always,
}

/// The most dirty data (all of the machine's, from /proc/meminfo) at which one syncfs still
/// costs less than a sync per file.
pub const FILESYSTEM_SYNC_MAX_DIRTY_BYTES: u64 = 16 << 20;

impl std::fmt::Debug for StorageEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageEnv")
            .field("open_files", &self.open_files)
            .field("faults", &self.faults.is_some())
            .finish()
    }
}

impl StorageEnv {
    /// Real files within `open_files`, no faults: what the broker runs with.
    pub fn new(open_files: Arc<OpenFiles>) -> Arc<Self> {
        Arc::new(Self {
            open_files,
            faults: None,
            filesystem_sync: FilesystemSync::WhenLittleDirtyData,
        })
    }

    /// No bound on open files and no faults: tools and most tests.
    pub fn unbounded() -> Arc<Self> {
        Self::new(OpenFiles::unbounded())
    }

    /// Like [`StorageEnv::new`], with every file operation first put to `hook`, which may
    /// fail it instead.
    pub fn with_faults(open_files: Arc<OpenFiles>, hook: FaultHook) -> Arc<Self> {
        Arc::new(Self {
            open_files,
            faults: Some(hook),
            filesystem_sync: FilesystemSync::WhenLittleDirtyData,
        })
    }

    /// Like [`StorageEnv::with_faults`] (no faults when `hook` is `None`), with syncfs used
    /// as `filesystem_sync` says.
    pub fn with_filesystem_sync(
        open_files: Arc<OpenFiles>,
        hook: Option<FaultHook>,
        filesystem_sync: FilesystemSync,
    ) -> Arc<Self> {
        Arc::new(Self {
            open_files,
            faults: hook,
            filesystem_sync,
        })
    }

    /// Whether a sync of several logs may be one syncfs now (see [`FilesystemSync`]).
    pub(crate) fn filesystem_sync_allowed(&self) -> bool {
        filesystem_sync_reports_errors()
            && match self.filesystem_sync {
                FilesystemSync::Always => true,
                FilesystemSync::WhenLittleDirtyData => little_dirty_data(),
            }
    }

    /// The open-files budget segment files count against.
    pub fn open_files(&self) -> &Arc<OpenFiles> {
        &self.open_files
    }

    /// Asks the fault hook about one operation; free when there is none.
    fn check(&self, op: IoOp, path: &Path) -> io::Result<()> {
        match &self.faults {
            Some(hook) => hook(op, path),
            None => Ok(()),
        }
    }
}

/// Gives an OS error the path it happened on, so that whoever logs it can say which file
/// filled the disk or met the open-files limit; the kind and the errno text are kept.
pub fn on(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A segment's data file, accessed with positional reads and writes. Its descriptor is
/// counted in an [`OpenFiles`] budget: it may be closed while idle and is reopened on the
/// next operation.
#[derive(Debug)]
pub(crate) struct DataFile {
    file: CachedFile,
    env: Arc<StorageEnv>,
}

impl DataFile {
    /// Opens an existing file read-write, or creates it empty when `create` is set.
    pub(crate) fn open(path: &Path, create: bool, env: &Arc<StorageEnv>) -> io::Result<Self> {
        env.check(IoOp::Open, path)?;
        let new = create && sync_ledger::enabled() && !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(on(path))?;
        if new {
            sync_ledger::created(path);
        }
        Ok(Self {
            file: CachedFile::new(path, file, &env.open_files),
            env: env.clone(),
        })
    }

    /// The environment the file was opened in.
    pub(crate) fn env(&self) -> &Arc<StorageEnv> {
        &self.env
    }

    fn check(&self, op: IoOp) -> io::Result<()> {
        self.env.check(op, self.path())
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        self.check(IoOp::Read)?;
        let len = self.file.get().and_then(|f| f.metadata());
        Ok(len.map_err(on(self.path()))?.len())
    }

    /// Fills `buf` from `pos`; a short file is an `UnexpectedEof` error.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.check(IoOp::Read)?;
        self.file
            .get()
            .and_then(|f| f.read_exact_at(buf, pos))
            .map_err(on(self.path()))
    }

    /// Reads `len` bytes at `pos` into a new buffer. Callers bound `len` by the file size
    /// they know, never by a length read from the file alone.
    pub(crate) fn read_vec_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// Writes every slice, in order, from `pos`: one `pwritev` per [`IOV_MAX`] slices,
    /// repeated after a short write, so a batch's stamped header and the client's bytes
    /// after it reach the file without being copied into one buffer first.
    pub(crate) fn write_all_vectored_at(
        &self,
        mut slices: &mut [IoSlice<'_>],
        mut pos: u64,
    ) -> io::Result<()> {
        self.check(IoOp::Write)?;
        let file = self.file.get().map_err(on(self.path()))?;
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            let chunk = slices.get(..IOV_MAX).unwrap_or(slices);
            let written = match rustix::io::pwritev(&*file, chunk, pos) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(on(self.path())(e.into())),
            };
            self.file.wrote();
            pos = pos.saturating_add(written as u64);
            IoSlice::advance_slices(&mut slices, written);
        }
        Ok(())
    }

    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.check(IoOp::Sync)?;
        self.file.sync_data().map_err(on(self.path()))
    }

    /// Readies the file for a sync of its whole filesystem (see
    /// [`StorageEnv::sync_filesystem`]); the fault hook sees it as this file's sync.
    /// Returns whether it was written since its last sync.
    pub(crate) fn begin_filesystem_sync(&self) -> io::Result<bool> {
        self.check(IoOp::Sync)?;
        self.file.begin_covering_sync().map_err(on(self.path()))
    }

    /// The filesystem sync begun with [`Self::begin_filesystem_sync`] completed.
    pub(crate) fn filesystem_synced(&self) {
        self.file.covered_by_sync();
    }

    /// The filesystem sync begun with [`Self::begin_filesystem_sync`] failed.
    pub(crate) fn filesystem_sync_failed(&self, was_dirty: bool) {
        self.file.sync_failed_elsewhere(was_dirty);
    }

    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(IoOp::Truncate)?;
        self.file
            .get()
            .and_then(|f| f.set_len(len))
            .map_err(on(self.path()))?;
        sync_ledger::truncated(self.path(), len);
        self.file.wrote();
        Ok(())
    }
}

impl StorageEnv {
    /// Reads a whole small file (checkpoint, index), `None` if it does not exist. Files larger
    /// than `max_len` are an error rather than an allocation of whatever size they claim.
    pub(crate) fn read_small_file(&self, path: &Path, max_len: u64) -> io::Result<Option<Vec<u8>>> {
        self.check(IoOp::Read, path)?;
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(on(path)(e)),
        };
        let len = file.metadata().map_err(on(path))?.len();
        if len > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is {len} bytes, more than {max_len}", path.display()),
            ));
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0).map_err(on(path))?;
        Ok(Some(buf))
    }

    /// Replaces `path` atomically: the content goes to a temporary file that is renamed over
    /// the target, so readers see the old or the new file, never a torn one. With `durable`
    /// the data and the directory entry are synced too.
    pub(crate) fn write_file_atomic(
        &self,
        path: &Path,
        data: &[u8],
        durable: bool,
    ) -> io::Result<()> {
        let tmp = tmp_path(path);
        self.check(IoOp::Open, &tmp)?;
        let mut file = File::create(&tmp).map_err(on(&tmp))?;
        self.check(IoOp::Write, &tmp)?;
        file.write_all(data).map_err(on(&tmp))?;
        if durable {
            self.check(IoOp::Sync, &tmp)?;
            file.sync_data().map_err(on(&tmp))?;
        }
        drop(file);
        self.check(IoOp::Rename, path)?;
        fs::rename(&tmp, path).map_err(on(path))?;
        if durable && let Some(dir) = path.parent() {
            self.sync_dir(dir)?;
        }
        Ok(())
    }

    /// Makes created, renamed or removed directory entries durable.
    /// syncfs(2) of the filesystem holding `path`: every dirty file of it, and the
    /// directory entries, reach the disk in one journal commit — where an fdatasync per
    /// file pays one commit and one device flush each. Only where the kernel reports
    /// writeback errors through it (see [`filesystem_sync_reports_errors`]).
    pub(crate) fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        self.check(IoOp::Sync, path)?;
        let dir = File::open(path).map_err(on(path))?;
        rustix::fs::syncfs(&dir).map_err(|e| on(path)(e.into()))
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(IoOp::Sync, dir)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(on(dir))
    }

    /// Renames a file (atomically replacing `to`); sync the directory to make it durable.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(IoOp::Rename, to)?;
        fs::rename(from, to).map_err(on(from))?;
        sync_ledger::renamed(from, to);
        Ok(())
    }

    /// Removes a file; a file that is already gone is not an error.
    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(IoOp::Remove, path)?;
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(on(path)(e)),
            _ => {
                sync_ledger::removed(path);
                Ok(())
            }
        }
    }

    pub(crate) fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(IoOp::CreateDir, dir)?;
        fs::create_dir_all(dir).map_err(on(dir))
    }

    /// File names (not paths) in `dir`.
    pub(crate) fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(IoOp::ReadDir, dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(on(dir))? {
            if let Some(name) = entry.map_err(on(dir))?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }
}

/// The temporary name used by [`StorageEnv::write_file_atomic`]; leftovers are removed on open.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Whether syncfs(2) returns the writeback errors of the files it synced: Linux 5.8 and
/// later. Before, it returned success even when a page could not be written, so a sync
/// must go file by file there.
pub(crate) fn filesystem_sync_reports_errors() -> bool {
    static REPORTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REPORTS.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| kernel_version(&release))
            .is_some_and(|version| version >= (5, 8))
    })
}

/// Whether the machine's dirty and in-writeback data is under
/// [`FILESYSTEM_SYNC_MAX_DIRTY_BYTES`]; read from /proc/meminfo at most every 100 ms (a
/// sync pass can run every 1.5 ms). Unknown counts as not little.
fn little_dirty_data() -> bool {
    const REFRESH: std::time::Duration = std::time::Duration::from_millis(100);
    static LAST: std::sync::Mutex<Option<(std::time::Instant, bool)>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, little)) = *last
        && at.elapsed() < REFRESH
    {
        return little;
    }
    let little = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| dirty_bytes(&text))
        .is_some_and(|dirty| dirty <= FILESYSTEM_SYNC_MAX_DIRTY_BYTES);
    *last = Some((std::time::Instant::now(), little));
    little
}

/// `Dirty` plus `Writeback` of a /proc/meminfo text, in bytes.
fn dirty_bytes(meminfo: &str) -> Option<u64> {
    let kib = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let value = line.get(name.len()..)?.trim().strip_suffix("kB")?;
        value.trim().parse().ok()
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) * 1024)
}

/// `(major, minor)` of a kernel release string such as `6.18.44-fc-v1300`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod kernel_version_tests {
    use super::{dirty_bytes, kernel_version};

    #[test]
    fn dirty_data_is_dirty_plus_writeback() {
        let meminfo = "MemTotal:       24598916 kB\nDirty:             80580 kB\n\
                       Writeback:            12 kB\nAnonPages:       1234 kB\n";
        assert_eq!(dirty_bytes(meminfo), Some((80580 + 12) * 1024));
        assert_eq!(dirty_bytes("Dirty: 5 kB\n"), None);
        assert_eq!(dirty_bytes("Dirty: x kB\nWriteback: 0 kB\n"), None);
    }

    #[test]
    fn parses_major_and_minor_of_kernel_releases() {
        assert_eq!(kernel_version("6.18.44-fc-v1300\n"), Some((6, 18)));
        assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(kernel_version("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(kernel_version("garbage"), None);
    }
}
