//! Which kinds of file are read and written, decided on the opened descriptor.
//!
//! Images, conversion sources and outputs are regular files. A block device is read like
//! one (a raw disk, or a VHD copied onto a device), and written in place only where the
//! output is laid out from its start by this crate and never grows afterwards: the
//! destination of `convert`, as `qemu-img convert` writes straight onto `/dev/sdX`. An
//! image opened for writing must be a regular file: it grows, shrinks and is replaced by
//! rename, none of which a device can do.
//!
//! Directories, FIFOs, sockets and character devices are refused everywhere: opening a FIFO
//! waits for its other end (a thread stuck in `open` that no cancellation reaches), a
//! character device reads forever or swallows what is written (`/dev/zero`, `/dev/null`),
//! and an output renamed over a device node replaces the node with a regular file.
//!
//! Every open of an image, a source or an output goes through [`open`], and a descriptor
//! the caller opened goes through [`check`]:
//! - the path is looked at first (`stat`), so that a FIFO or device plainly there is
//!   refused without being opened at all (opening some devices has effects: a tape
//!   rewinds, a serial line is raised);
//! - it is then opened with `O_NONBLOCK` (an open never waits for a FIFO's writer or
//!   reader) and `O_NOCTTY` (a terminal never becomes ours), and `O_CLOEXEC` (as the
//!   standard library always does);
//! - the decision is taken again on the opened descriptor (`fstat`): that one counts, so a
//!   path swapped between the look and the open is still caught;
//! - `O_NONBLOCK` is cleared again on what is kept.
//!
//! `O_NOFOLLOW` is not used: devices are normally named through symbolic links
//! (`/dev/disk/by-id/...`), and the type checked is that of what the link leads to.

use crate::error::{Error, Result};
use std::fs::{File, Metadata, OpenOptions};
use std::path::Path;

/// What a path names, as `stat` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    BlockDevice,
    Directory,
    CharacterDevice,
    Fifo,
    Socket,
    /// Anything else the platform has (a Windows reparse point the open did not follow…).
    Other,
}

impl FileKind {
    /// The kind of the file `metadata` describes.
    pub(crate) fn of(metadata: &Metadata) -> FileKind {
        let file_type = metadata.file_type();
        if file_type.is_file() {
            return FileKind::Regular;
        }
        if file_type.is_dir() {
            return FileKind::Directory;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_block_device() {
                return FileKind::BlockDevice;
            }
            if file_type.is_char_device() {
                return FileKind::CharacterDevice;
            }
            if file_type.is_fifo() {
                return FileKind::Fifo;
            }
            if file_type.is_socket() {
                return FileKind::Socket;
            }
        }
        FileKind::Other
    }

    /// The kind, in words that follow "is".
    fn description(self) -> &'static str {
        match self {
            FileKind::Regular => "a regular file",
            FileKind::BlockDevice => "a block device",
            FileKind::Directory => "a directory",
            FileKind::CharacterDevice => "a character device",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::Other => "neither a regular file nor a device",
        }
    }
}

/// What a file is opened for, which says which kinds are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Only read (an image opened read-only, a conversion source, a raw parent): a regular
    /// file or a block device.
    Read,
    /// Written as an image is (in place, growing and shrinking, or replaced by rename): a
    /// regular file only.
    WriteFile,
    /// Written once from its start, in place on a block device (the destination of
    /// `convert`): a regular file or a block device.
    WriteDevice,
}

impl Use {
    fn accepts(self, kind: FileKind) -> bool {
        match kind {
            FileKind::Regular => true,
            FileKind::BlockDevice => self != Use::WriteFile,
            _ => false,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Use::WriteFile => "a regular file",
            Use::Read | Use::WriteDevice => "a regular file or a block device",
        }
    }
}

/// The modification time of the file at `path` as a VHD time stamp (seconds since
/// 2000-01-01): what a differencing image records of its parent (`create`, `rebase`,
/// `commit` and `repair` record it; the parent search compares it).
pub(crate) fn modification_timestamp(path: &Path) -> Result<u32> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(crate::footer::vhd_timestamp)
        .map_err(|e| Error::io_at(path, "stat", "reading the time stamp", e))
}

/// Fails with [`Error::FileType`] unless a file of `kind` at `path` may serve as `what`
/// ("the destination", "an image opened for writing"…) for `usage`.
pub(crate) fn accept(
    kind: FileKind,
    path: &Path,
    usage: Use,
    what: &'static str,
) -> Result<FileKind> {
    if usage.accepts(kind) {
        return Ok(kind);
    }
    Err(Error::FileType {
        path: path.to_path_buf(),
        found: kind.description(),
        what,
        expected: usage.expected(),
    })
}

/// Opens `path` as `options` say (read, write, create…), refusing what `usage` does not
/// accept, without ever waiting in `open` (see the [module documentation](self)).
/// `io_error` turns a failure of the open itself into the caller's error (so that, say,
/// `create` reports an existing file as [`Error::AlreadyExists`]). Returns the file, with
/// `O_NONBLOCK` cleared, and its kind.
pub(crate) fn open(
    path: &Path,
    options: &mut OpenOptions,
    usage: Use,
    what: &'static str,
    io_error: impl FnOnce(std::io::Error) -> Error,
) -> Result<(File, FileKind)> {
    // A path that is plainly a FIFO or a device is refused without being opened. One that
    // does not exist (yet) or cannot be looked at is left to the open to report.
    if let Ok(metadata) = std::fs::metadata(path) {
        accept(FileKind::of(&metadata), path, usage, what)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(OPEN_WITHOUT_WAITING);
    }
    let file = options.open(path).map_err(io_error)?;
    let kind = check(&file, path, usage, what)?;
    blocking(&file, path)?;
    Ok((file, kind))
}

/// Fails with [`Error::FileType`] unless the open `file` (named `path` in messages) is of
/// a kind `usage` accepts; returns its kind. For descriptors the caller opened.
pub(crate) fn check(file: &File, path: &Path, usage: Use, what: &'static str) -> Result<FileKind> {
    let metadata = file
        .metadata()
        .map_err(|e| Error::io_at(path, "stat", "reading the metadata", e))?;
    accept(FileKind::of(&metadata), path, usage, what)
}

/// Clears `O_NONBLOCK`, which [`open`] set only so that the open could not wait. Regular
/// files and block devices ignore it, but a descriptor handed on (to JavaScript as
/// `image.fd`) should not surprise anyone.
fn blocking(file: &File, path: &Path) -> Result<()> {
    clear_nonblocking(file).map_err(|e| Error::io_at(path, "fcntl", "setting up", e))
}

/// The flags of an open that must not wait: `O_NONBLOCK`, so that opening a FIFO with no
/// writer returns at once, and `O_NOCTTY`, so that opening a terminal does not take it (the
/// standard library adds `O_CLOEXEC` itself). Clear `O_NONBLOCK` again with
/// [`clear_nonblocking`] once the opened file is known to be one to use.
#[cfg(unix)]
pub(crate) const OPEN_WITHOUT_WAITING: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

/// Clears `O_NONBLOCK` on an open file (see [`OPEN_WITHOUT_WAITING`]): reads of regular files
/// ignore it on most file systems, but some (with leases, or FUSE) honour it.
pub(crate) fn clear_nonblocking(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is open for as long as `file` is borrowed; F_GETFL and F_SETFL only
        // read and set the descriptor's status flags, and touch no memory of ours.
        let cleared = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
        };
        if !cleared {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// The size of an open file in bytes: its length, or for a block device (whose `stat`
/// length is 0) the device's size.
pub(crate) fn size(file: &File) -> std::io::Result<u64> {
    let metadata = file.metadata()?;
    if FileKind::of(&metadata) == FileKind::BlockDevice {
        use std::io::{Seek, SeekFrom};
        // `&File` seeks the shared position, which nothing here uses: every read and write
        // is positioned (`pread`, `pwrite`).
        return (&mut &*file).seek(SeekFrom::End(0));
    }
    Ok(metadata.len())
}

/// The identity of a file, whatever path or descriptor reaches it: on Unix the device and
/// inode of a file, or the device number of a device node (two nodes, or a node and a link
/// to it, name the same device); elsewhere the canonical path (the standard library gives
/// no file index on Windows yet). What the lock table, the parent search and the "is the
/// destination the source" check compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum FileId {
    #[cfg(unix)]
    Inode { device: u64, inode: u64 },
    #[cfg(unix)]
    Device(u64),
    #[cfg(not(unix))]
    Path(std::path::PathBuf),
}

impl FileId {
    /// The identity of a file whose metadata this is.
    #[cfg(unix)]
    pub(crate) fn of(metadata: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        match FileKind::of(metadata) {
            FileKind::BlockDevice | FileKind::CharacterDevice => FileId::Device(metadata.rdev()),
            _ => FileId::Inode {
                device: metadata.dev(),
                inode: metadata.ino(),
            },
        }
    }

    /// The identity of the open `file`, opened from `path`.
    pub(crate) fn of_file(file: &File, path: &Path) -> std::io::Result<FileId> {
        FileId::of_opened(&file.metadata()?, path)
    }

    /// The identity of a file opened from `path`, whose metadata (from the descriptor) the
    /// caller already has.
    pub(crate) fn of_opened(metadata: &Metadata, path: &Path) -> std::io::Result<FileId> {
        #[cfg(unix)]
        {
            let _ = path;
            Ok(FileId::of(metadata))
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            Ok(FileId::Path(path.canonicalize()?))
        }
    }

    /// The identity of the file at `path` now (symbolic links followed), if it can be
    /// looked at.
    pub(crate) fn of_path(path: &Path) -> Option<FileId> {
        #[cfg(unix)]
        {
            std::fs::metadata(path).ok().map(|m| FileId::of(&m))
        }
        #[cfg(not(unix))]
        {
            path.canonicalize().ok().map(FileId::Path)
        }
    }
}

/// Whether `a` and `b` name the same file or device (symbolic links followed, hard links
/// and other device nodes of one device included). False when either cannot be looked at.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    matches!((FileId::of_path(a), FileId::of_path(b)), (Some(a), Some(b)) if a == b)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vhd-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.read(true);
        options
    }

    #[test]
    fn regular_files_are_opened_and_left_blocking() {
        let dir = temp_dir("regular");
        let path = dir.join("file");
        std::fs::write(&path, b"12345").unwrap();
        let (file, kind) = open(&path, &mut read(), Use::WriteFile, "it", |e| {
            Error::io("opening", e)
        })
        .unwrap();
        assert_eq!(kind, FileKind::Regular);
        assert_eq!(size(&file).unwrap(), 5);
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETFL on a descriptor `file` holds open.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "O_NONBLOCK is cleared");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A FIFO with no writer: a plain open for reading would wait for ever.
    #[test]
    fn a_fifo_is_refused_without_waiting_even_when_it_appears_after_the_look() {
        let dir = temp_dir("fifo");
        let path = dir.join("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for usage in [Use::Read, Use::WriteFile, Use::WriteDevice] {
            let err = open(&path, &mut read(), usage, "the thing", |e| {
                Error::io("opening", e)
            })
            .unwrap_err();
            assert_eq!(err.code(), "ERR_VHD_FILE_TYPE", "{err}");
            assert!(err.to_string().contains("FIFO"), "{err}");
        }
        // The decision on the descriptor, as when the path was swapped after the look.
        let file = File::options()
            .read(true)
            .custom_flags_nonblock()
            .open(&path)
            .unwrap();
        let err = check(&file, &path, Use::Read, "the thing").unwrap_err();
        assert_eq!(err.code(), "ERR_VHD_FILE_TYPE", "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    trait NonBlock {
        fn custom_flags_nonblock(&mut self) -> &mut Self;
    }
    impl NonBlock for OpenOptions {
        fn custom_flags_nonblock(&mut self) -> &mut Self {
            use std::os::unix::fs::OpenOptionsExt;
            self.custom_flags(libc::O_NONBLOCK)
        }
    }

    #[test]
    fn directories_are_refused() {
        let dir = temp_dir("dir");
        let err = open(&dir, &mut read(), Use::Read, "an image", |e| {
            Error::io("opening", e)
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a directory: an image must be a regular file or a block device",
                dir.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
