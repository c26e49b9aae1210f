//! Locking the files of open images, against other processes and within this one.
//!
//! A read-write open takes an exclusive lock on its file, a read-only open (and every
//! parent of a differencing image) a shared one; a conflicting open fails at once with
//! [`Error::Locked`]. Two mechanisms make that hold whatever route an open takes:
//!
//! - **The operating system's whole-file lock** (`flock` on Unix, `LockFileEx` on Windows)
//!   keeps other processes out. It is advisory on Unix: it keeps out every program that
//!   locks, not one that ignores locks.
//! - **A table of the files this process has open**, by device and inode, keeps this
//!   process's own opens apart. `flock` cannot: its lock belongs to the *open file
//!   description*, which every descriptor duplicated from it shares (`dup`, a descriptor
//!   handed to `Image::open_file` twice, the copy the JavaScript binding makes of a caller's
//!   `fd`). Two read-write images on one description both "got" the exclusive lock, both
//!   appended their first block at the same offset (the image was destroyed), and closing
//!   one unlocked the other. On NFS, Linux (since 2.6.12) emulates `flock` with `fcntl`
//!   byte-range locks over the whole file, whose owners and rules are not `flock`'s (an
//!   exclusive one needs the file open for writing; which opens of one process conflict is
//!   up to the client and the server). The table sees every route (a path, a descriptor,
//!   a duplicate of one, a hard link, a symbolic link) because it compares the files
//!   themselves, whatever the file system does with locks.
//!
//! The table is process-wide state, which this crate otherwise avoids; here it is the
//! point: it stands for the one thing the operating system does not track, what this
//! process itself holds. Shared entries coexist (a count), an exclusive one excludes
//! everything, exactly as `flock` does between processes. An entry is made when a file is
//! locked and left when the [`LockedFile`] is dropped (or the open fails). The OS lock of a
//! file is taken once, by the first open that enters it, and released by the last one to
//! leave; the opens in between (shared ones) use that lock. Opens with
//! [`OpenOptions::lock`](super::OpenOptions::lock) off take no lock and do not look at the
//! table either ("no lock is taken or checked"), and `Image::open_storage` takes none (its
//! storage may be anything; locking it is the caller's business).
//!
//! Across machines, on NFS, whether a lock is seen depends on the server's lock manager
//! (NFSv4 locks, or NLM for NFSv3): with one, opens on other clients conflict as on one
//! machine; mounted with `nolock` or `local_lock=flock`/`all`, locks stay on each client.
//! Where the file system has no locks at all, the OS lock is skipped (the open goes ahead)
//! and only the table protects the image, within this process. A descriptor passed to
//! another process (inherited, or sent over a socket) carries its lock with it: that
//! process shares it, as `flock` has it.
//!
//! On Windows the table is not used: files have no stable identity in the standard
//! library there, the JavaScript API offers no descriptors, and `LockFileEx` already
//! refuses a second handle opened on a locked file (handles duplicated from one another,
//! reachable only through `Image::open_file`, are not told apart).

use crate::error::{Error, Result};
use crate::storage::Storage;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// A file opened by this library, with the lock its open needs (or none).
///
/// Dropping it leaves the table and, for the last open of the file in this process,
/// releases the OS lock explicitly: closing the descriptor alone does not always release
/// it at once, because the lock belongs to the open file description, which other
/// descriptors may share (a process being spawned by another thread holds a copy of every
/// descriptor until it execs; the caller of `Image::open_file` keeps its own).
#[derive(Debug)]
pub(crate) struct LockedFile {
    file: File,
    /// The table entry this open holds; `None` when unlocked, and on Windows.
    entry: Option<table::Entry>,
    /// Whether this open must release the OS lock itself when it is dropped (Windows, where
    /// the table is not used).
    unlock_on_drop: bool,
    /// The file said it cannot read without waiting (`Storage::read_exact_now`): ask no more.
    cannot_read_now: AtomicBool,
}

impl LockedFile {
    /// `file` (opened from `path`), locked for a read-only open (shared) or a read-write one
    /// (exclusive) when `lock` is set, or unlocked. A conflict with another open, in this
    /// process or another, is [`Error::Locked`] naming `path`; `file` is then closed and
    /// nothing stays locked.
    pub(crate) fn new(file: File, path: &Path, read_only: bool, lock: bool) -> Result<LockedFile> {
        let (entry, unlock_on_drop) = match lock {
            false => (None, false),
            true => match table::enter(&file, path, read_only)? {
                Some(entry) => (Some(entry), false),
                None => {
                    os_lock(&file, path, read_only)?;
                    (None, true)
                }
            },
        };
        Ok(LockedFile {
            file,
            entry,
            unlock_on_drop,
            cannot_read_now: AtomicBool::new(false),
        })
    }
}

impl std::ops::Deref for LockedFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            table::leave(entry, &self.file);
        } else if self.unlock_on_drop {
            let _ = self.file.unlock();
        }
    }
}

impl Storage for LockedFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn read_exact_gapped_at(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> std::io::Result<()> {
        self.file.read_exact_gapped_at(parts, gap, offset)
    }
    fn read_exact_gapped_now(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> std::io::Result<()> {
        // Once the file has said it can never tell (tmpfs), do not ask it on every read.
        if self.cannot_read_now.load(Ordering::Relaxed) {
            return Err(std::io::ErrorKind::Unsupported.into());
        }
        let result = self.file.read_exact_gapped_now(parts, gap, offset);
        if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::Unsupported) {
            self.cannot_read_now.store(true, Ordering::Relaxed);
        }
        result
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        Storage::write_all_at(&self.file, buf, offset)
    }
    fn sync(&self) -> std::io::Result<()> {
        Storage::sync(&self.file)
    }
    fn file_size(&self) -> std::io::Result<u64> {
        self.file.file_size()
    }
    fn set_len(&self, size: u64) -> std::io::Result<()> {
        Storage::set_len(&self.file, size)
    }
    fn next_data(&self, offset: u64) -> std::io::Result<Option<std::ops::Range<u64>>> {
        self.file.next_data(offset)
    }
}

/// Takes the OS lock that an open of `path` needs, without waiting: shared for a read-only
/// open, exclusive otherwise. A file system without locks (or a platform without them) is
/// used unlocked: `Ok(false)`.
fn os_lock(file: &File, path: &Path, read_only: bool) -> Result<bool> {
    let locked = if read_only {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Err(locked_error(path, read_only)),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            Ok(false)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io_at(path, "flock", "locking", e)),
    }
}

fn locked_error(path: &Path, read_only: bool) -> Error {
    Error::Locked {
        path: path.to_path_buf(),
        read_only,
    }
}

/// The table of the files this process holds locked (see the module documentation).
#[cfg(unix)]
mod table {
    use super::{locked_error, os_lock};
    use crate::error::{Error, Result};
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
    use std::path::Path;
    use std::sync::Mutex;

    use crate::files::FileId;

    /// The opens of one file in this process.
    #[derive(Debug)]
    struct Holders {
        /// A read-write open: it is the only one.
        exclusive: bool,
        /// Opens holding the file (1 when exclusive).
        count: usize,
        /// Whether the OS lock was taken (not on a file system without locks).
        os_locked: bool,
        /// The descriptor of the open that took the OS lock, while it is the only holder.
        /// Valid as long as that open is in the table: it leaves (under the table's mutex)
        /// before its file is closed.
        first: RawFd,
        /// Once a second (shared) open joins: a duplicate of `first`, which carries the OS
        /// lock from then on, so that the first open may close before the others. The last
        /// to leave releases the lock through it.
        carrier: Option<File>,
    }

    /// What an open holds in the table.
    #[derive(Debug)]
    pub(super) struct Entry {
        id: FileId,
    }

    static OPEN_FILES: Mutex<BTreeMap<FileId, Holders>> = Mutex::new(BTreeMap::new());

    fn open_files() -> std::sync::MutexGuard<'static, BTreeMap<FileId, Holders>> {
        // A panic while the table was held cannot have left it half-changed: every change
        // is a single insert, remove or field update.
        OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters `file` (opened from `path`) in the table for a read-only (shared) or a
    /// read-write (exclusive) open, taking the OS lock when it is the first open of the
    /// file. `Error::Locked` when an open in this process (or, through the OS lock, in
    /// another one) conflicts; nothing is left locked then.
    pub(super) fn enter(file: &File, path: &Path, read_only: bool) -> Result<Option<Entry>> {
        let metadata = file
            .metadata()
            .map_err(|e| Error::io_at(path, "fstat", "reading the identity", e))?;
        let id = FileId::of(&metadata);
        let mut table = open_files();
        if let Some(holders) = table.get_mut(&id) {
            // Never a second OS lock call on a description that holds one: an exclusive
            // request would be granted (it is ours), and a shared one would turn an
            // exclusive lock shared.
            if !read_only || holders.exclusive {
                return Err(locked_error(path, read_only));
            }
            if holders.os_locked && holders.carrier.is_none() {
                // SAFETY: `first` belongs to the open that took the lock, which is in the
                // table (count >= 1 with no carrier means it is the only holder) and so
                // has not closed it; it is only borrowed for the duplication.
                let first = unsafe { BorrowedFd::borrow_raw(holders.first) };
                let carrier = first.try_clone_to_owned().map_err(|e| {
                    Error::io(
                        format!("duplicating the descriptor of {}", path.display()),
                        e,
                    )
                })?;
                holders.carrier = Some(File::from(carrier));
            }
            holders.count += 1;
            return Ok(Some(Entry { id }));
        }
        let os_locked = os_lock(file, path, read_only)?;
        table.insert(
            id.clone(),
            Holders {
                exclusive: !read_only,
                count: 1,
                os_locked,
                first: file.as_raw_fd(),
                carrier: None,
            },
        );
        Ok(Some(Entry { id }))
    }

    /// Leaves the table for the open of `file` that made `entry`; the last open of the file
    /// releases the OS lock.
    pub(super) fn leave(entry: Entry, file: &File) {
        let mut table = open_files();
        let Some(holders) = table.get_mut(&entry.id) else {
            return;
        };
        holders.count -= 1;
        if holders.count > 0 {
            return;
        }
        let holders = table.remove(&entry.id).expect("just found");
        if holders.os_locked {
            match &holders.carrier {
                Some(carrier) => {
                    let _ = carrier.unlock();
                }
                // The only holder was the open that took the lock: this one.
                None => {
                    let _ = file.unlock();
                }
            }
        }
    }

    /// How many opens of the file `path` names this process holds, and whether one is
    /// read-write (for tests).
    #[cfg(test)]
    pub(super) fn holders(path: &Path) -> Option<(usize, bool)> {
        let metadata = std::fs::metadata(path).ok()?;
        let table = open_files();
        let holders = table.get(&FileId::of(&metadata))?;
        Some((holders.count, holders.exclusive))
    }
}

/// Elsewhere, the OS lock alone (see the module documentation).
#[cfg(not(unix))]
mod table {
    use crate::error::Result;
    use std::fs::File;
    use std::path::Path;

    #[derive(Debug)]
    pub(super) enum Entry {}

    pub(super) fn enter(_file: &File, _path: &Path, _read_only: bool) -> Result<Option<Entry>> {
        Ok(None)
    }

    pub(super) fn leave(entry: Entry, _file: &File) {
        match entry {}
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::{create, CreateOptions, DiskType, Image, OpenOptions};

    /// The table holds an entry exactly while opens of the file do, with their count, and
    /// none after an open that failed, whichever step failed.
    #[test]
    fn entries_last_as_long_as_the_opens() {
        let dir = std::env::temp_dir().join(format!("vhd-lock-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.vhd");
        let image = create(&path, &CreateOptions::new(DiskType::Dynamic, 1 << 20)).unwrap();
        assert_eq!(table::holders(&path), Some((1, true)));
        drop(image);
        assert_eq!(table::holders(&path), None);

        let read_only = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let a = Image::open(&path, &read_only).unwrap();
        let b = Image::open_file(File::open(&path).unwrap(), &path, &read_only).unwrap();
        assert_eq!(table::holders(&path), Some((2, false)));
        // Refused by the table: the entry is as it was.
        assert!(Image::open(&path, &OpenOptions::default()).is_err());
        assert_eq!(table::holders(&path), Some((2, false)));
        drop(a);
        assert_eq!(table::holders(&path), Some((1, false)));
        drop(b);
        assert_eq!(table::holders(&path), None);

        // Refused after the file was entered (the wrong type): the entry is gone.
        let fixed = OpenOptions {
            expected_type: Some(DiskType::Fixed),
            ..OpenOptions::default()
        };
        assert!(Image::open(&path, &fixed).is_err());
        assert_eq!(table::holders(&path), None);
        // Unlocked opens never enter it.
        let unlocked = OpenOptions {
            lock: false,
            ..OpenOptions::default()
        };
        let c = Image::open(&path, &unlocked).unwrap();
        assert_eq!(table::holders(&path), None);
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file system that cannot read without waiting (tmpfs answers RWF_NOWAIT with
    /// EOPNOTSUPP) is asked once, not on every read; files that can are asked every time.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_that_cannot_read_now_is_asked_once() {
        use crate::storage::Storage;
        use std::io::ErrorKind;
        for dir in ["/dev/shm", "/tmp"] {
            if !Path::new(dir).is_dir() {
                continue;
            }
            let path = Path::new(dir).join(format!("vhd-lock-unit-now-{}", std::process::id()));
            std::fs::write(&path, [7u8; 8192]).unwrap();
            let file = LockedFile::new(File::open(&path).unwrap(), &path, true, false).unwrap();
            let mut buf = [0u8; 4096];
            let first = file.read_exact_now(&mut buf, 0).map_err(|e| e.kind());
            let asked = file.cannot_read_now.load(Ordering::Relaxed);
            std::fs::remove_file(&path).unwrap();
            match first {
                Ok(()) => assert!(!asked && buf == [7u8; 4096], "{dir}"),
                Err(ErrorKind::WouldBlock) => assert!(!asked, "{dir}"),
                Err(ErrorKind::Unsupported) => {
                    assert!(asked, "{dir}: remembered");
                    let again = file.read_exact_now(&mut buf, 0).map_err(|e| e.kind());
                    assert_eq!(again, Err(ErrorKind::Unsupported), "{dir}");
                }
                Err(other) => panic!("{dir}: {other:?}"),
            }
        }
    }
}
