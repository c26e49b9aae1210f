//! Opening a file that a differencing image names as its parent, without trusting the name.
//!
//! The child is untrusted: its locators may name any path, including a FIFO (whose open
//! would block forever), a device (whose open may have effects), a file outside the folder
//! the caller allows, or a symbolic link that an attacker swaps while the search runs.
//! So each candidate is resolved and opened once, and every check is made on the file
//! actually opened:
//!
//! - it is opened read-only, non-blocking (a FIFO without a writer does not block), without
//!   becoming the controlling terminal, close-on-exec; and, inside a parent root, without
//!   following a symbolic link in its last component;
//! - `fstat` of the descriptor must say "regular file", or it is closed unread;
//! - inside a parent root, the path the kernel gives for the descriptor (`/proc/self/fd` on
//!   Linux, `F_GETPATH` on macOS) must lie in the root, so that a folder swapped for a link
//!   between the resolution and the open is caught;
//! - its identity (device and inode) is what the search de-duplicates on and remembers.
//!
//! Nothing is read here, and no lock is taken: the caller reads the footer to verify the
//! candidate, and locks it only once it is the parent.

use crate::error::ParentRejection;
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub(crate) use crate::files::FileId;

/// A candidate opened for verification.
#[derive(Debug)]
pub(crate) struct OpenedCandidate {
    pub file: File,
    pub id: FileId,
    /// The file's metadata, from the descriptor (its modification time verifies it).
    pub metadata: std::fs::Metadata,
    /// The path it was opened by: the candidate as named, or inside a parent root the
    /// candidate with symbolic links and `..` resolved.
    pub path: PathBuf,
}

thread_local! {
    /// Candidate files opened by this thread (see [`candidates_opened`]).
    static OPENED: Cell<u64> = const { Cell::new(0) };
}

/// How many candidate files for a parent this thread has opened so far. For tests: an open
/// runs on the calling thread, so the difference across it is what that open cost.
#[doc(hidden)]
pub fn candidates_opened() -> u64 {
    OPENED.with(Cell::get)
}

/// Opens the candidate `path` (see the module documentation); `root` is the canonical
/// parent root, when the candidate must lie inside one.
pub(crate) fn open_candidate(
    path: &Path,
    root: Option<&Path>,
) -> Result<OpenedCandidate, ParentRejection> {
    open_candidate_with(path, root, &mut || {})
}

/// [`open_candidate`], calling `between` after the path is resolved and before it is
/// opened: where an attacker would swap a link (the tests do it there).
fn open_candidate_with(
    path: &Path,
    root: Option<&Path>,
    between: &mut dyn FnMut(),
) -> Result<OpenedCandidate, ParentRejection> {
    let target = match root {
        None => path.to_path_buf(),
        Some(root) => {
            // Outside the root, nothing is opened at all.
            let resolved = path.canonicalize().map_err(rejection)?;
            if !resolved.starts_with(root) {
                return Err(ParentRejection::OutsideRoot);
            }
            resolved
        }
    };
    between();
    OPENED.with(|n| n.set(n.get() + 1));
    let file = open_without_blocking(&target, root.is_some()).map_err(rejection)?;
    let metadata = file.metadata().map_err(rejection)?;
    if !metadata.is_file() {
        return Err(ParentRejection::NotRegularFile);
    }
    if let Some(root) = root {
        if !opened_inside(&file, &metadata, &target, root) {
            return Err(ParentRejection::OutsideRoot);
        }
    }
    crate::files::clear_nonblocking(&file).map_err(rejection)?;
    let id = FileId::of_opened(&metadata, &target).map_err(rejection)?;
    Ok(OpenedCandidate {
        file,
        id,
        metadata,
        path: target,
    })
}

/// Why a candidate could not be resolved or opened, in words.
fn rejection(error: io::Error) -> ParentRejection {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ParentRejection::Missing,
        kind => ParentRejection::Unreadable(kind),
    }
}

/// Opens `path` read-only without blocking on a FIFO or taking a terminal; `no_follow`:
/// fails on a symbolic link in the last component.
#[cfg(unix)]
fn open_without_blocking(path: &Path, no_follow: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = crate::files::OPEN_WITHOUT_WAITING;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

#[cfg(not(unix))]
fn open_without_blocking(path: &Path, _no_follow: bool) -> io::Result<File> {
    File::open(path)
}

/// Whether the file opened (as `file`, from the resolved path `target`) lies inside
/// `root`: by the path the kernel gives for the descriptor where there is one; elsewhere
/// by checking that `target`, resolved again, is still inside and is the same file (which
/// narrows the race to the moments between those calls).
fn opened_inside(file: &File, metadata: &std::fs::Metadata, target: &Path, root: &Path) -> bool {
    if let Some(path) = descriptor_path(file) {
        return path.starts_with(root);
    }
    let _ = metadata;
    let Ok(again) = target.canonicalize() else {
        return false;
    };
    if !again.starts_with(root) {
        return false;
    }
    #[cfg(unix)]
    {
        std::fs::metadata(&again)
            .map(|m| FileId::of(&m) == FileId::of(metadata))
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        again == target
    }
}

/// The path of the file behind `file`, as the kernel knows it, where it tells.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn descriptor_path(file: &File) -> Option<PathBuf> {
    use std::os::unix::io::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(target_os = "macos")]
fn descriptor_path(file: &File) -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let mut buf = [0 as libc::c_char; libc::PATH_MAX as usize];
    // SAFETY: F_GETPATH writes a NUL-terminated path of at most PATH_MAX bytes into `buf`,
    // which is that large and lives across the call; `fd` is open for the whole call.
    let path = unsafe {
        if libc::fcntl(file.as_raw_fd(), libc::F_GETPATH, buf.as_mut_ptr()) < 0 {
            return None;
        }
        CStr::from_ptr(buf.as_ptr())
    };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
fn descriptor_path(_file: &File) -> Option<PathBuf> {
    None
}

/// What a Windows absolute path in a locator reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowsPathKind {
    /// A drive: `C:\…`, `C:/…`, `\\?\C:\…`.
    Drive,
    /// Another computer: `\\server\share\…`, `//server/share/…`, `\\?\UNC\server\…`.
    Network,
    /// The device namespace: `\\.\…` (`\\.\PhysicalDrive0`, `\\.\pipe\…`) and any other
    /// `\\?\…` path.
    Device,
}

/// The kind of a Windows absolute path, or `None` for any other text.
pub(crate) fn windows_path_kind(text: &str) -> Option<WindowsPathKind> {
    let is_separator = |b: u8| b == b'\\' || b == b'/';
    let is_drive =
        |b: &[u8]| b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && is_separator(b[2]);
    let b = text.as_bytes();
    if is_drive(b) {
        return Some(WindowsPathKind::Drive);
    }
    if b.len() < 2 || !is_separator(b[0]) || !is_separator(b[1]) {
        return None;
    }
    // `\\?\` (verbatim) and `\\.\` (device) prefixes.
    if b.len() >= 4 && (b[2] == b'?' || b[2] == b'.') && is_separator(b[3]) {
        let rest = &b[4..];
        if rest.len() >= 4 && rest[..3].eq_ignore_ascii_case(b"UNC") && is_separator(rest[3]) {
            return Some(WindowsPathKind::Network);
        }
        if b[2] == b'?' && is_drive(rest) {
            return Some(WindowsPathKind::Drive);
        }
        return Some(WindowsPathKind::Device);
    }
    Some(WindowsPathKind::Network)
}

/// Whether a Windows absolute path of `kind` may be opened (on Windows: on other systems
/// such paths are never opened, only their file name in the child's folder is tried): a
/// drive path may; a network path only when the caller allows remote parents (opening it
/// would contact the server, and hand it the user's credentials); a device path never.
pub(crate) fn windows_path_access(
    kind: WindowsPathKind,
    allow_remote: bool,
) -> Result<(), ParentRejection> {
    match kind {
        WindowsPathKind::Drive => Ok(()),
        WindowsPathKind::Network if allow_remote => Ok(()),
        WindowsPathKind::Network => Err(ParentRejection::Remote),
        WindowsPathKind::Device => Err(ParentRejection::DevicePath),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_by_kind() {
        use WindowsPathKind::*;
        for (text, kind) in [
            ("C:\\dir\\p.vhd", Some(Drive)),
            ("c:/dir/p.vhd", Some(Drive)),
            ("\\\\?\\D:\\long\\p.vhd", Some(Drive)),
            ("\\\\server\\share\\p.vhd", Some(Network)),
            ("//server/share/p.vhd", Some(Network)),
            ("\\/server\\share\\p.vhd", Some(Network)),
            ("\\\\?\\UNC\\server\\share\\p.vhd", Some(Network)),
            ("\\\\?\\unc\\server\\share\\p.vhd", Some(Network)),
            ("\\\\.\\UNC\\server\\share\\p.vhd", Some(Network)),
            ("\\\\.\\PhysicalDrive0", Some(Device)),
            ("\\\\.\\pipe\\p", Some(Device)),
            ("\\\\.\\C:\\p.vhd", Some(Device)),
            ("\\\\?\\GLOBALROOT\\Device\\p", Some(Device)),
            ("\\\\?\\Volume{0}\\p.vhd", Some(Device)),
            (".\\p.vhd", None),
            ("..\\base\\p.vhd", None),
            ("/srv/p.vhd", None),
            ("p.vhd", None),
            ("C:p.vhd", None),
            ("\\p.vhd", None),
            ("", None),
        ] {
            assert_eq!(windows_path_kind(text), kind, "{text}");
        }
    }

    #[test]
    fn network_paths_only_when_allowed_and_devices_never() {
        use WindowsPathKind::*;
        assert_eq!(windows_path_access(Drive, false), Ok(()));
        assert_eq!(windows_path_access(Drive, true), Ok(()));
        assert_eq!(
            windows_path_access(Network, false),
            Err(ParentRejection::Remote)
        );
        assert_eq!(windows_path_access(Network, true), Ok(()));
        assert_eq!(
            windows_path_access(Device, true),
            Err(ParentRejection::DevicePath)
        );
        assert_eq!(
            windows_path_access(Device, false),
            Err(ParentRejection::DevicePath)
        );
    }

    /// A scratch folder for one test.
    #[cfg(unix)]
    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vhd-core-candidate-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    /// The race a parent root must survive: the candidate is resolved inside the root, then
    /// (here, from the hook) a folder on its path is replaced by a link to a folder outside
    /// before it is opened. The file actually opened is outside: refused, though its path
    /// as resolved was inside.
    #[cfg(unix)]
    #[test]
    fn a_folder_swapped_for_a_link_after_resolution_is_caught_on_the_descriptor() {
        let dir = scratch("swap-folder");
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub").join("p.vhd"), b"inside").unwrap();
        std::fs::write(outside.join("p.vhd"), b"outside").unwrap();
        let candidate = root.join("sub").join("p.vhd");

        // Undisturbed, the file inside is opened.
        let opened = open_candidate(&candidate, Some(&root)).unwrap();
        assert_eq!(opened.path, candidate);
        assert_eq!(std::fs::read(&opened.path).unwrap(), b"inside");
        drop(opened);

        let mut swap = || {
            std::fs::rename(root.join("sub"), dir.join("sub.away")).unwrap();
            std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        };
        let e = open_candidate_with(&candidate, Some(&root), &mut swap).unwrap_err();
        assert_eq!(e, ParentRejection::OutsideRoot);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The same with the file itself swapped for a link to a file outside: the open does not
    /// follow a link in the last component.
    #[cfg(unix)]
    #[test]
    fn a_file_swapped_for_a_link_after_resolution_is_not_followed() {
        let dir = scratch("swap-file");
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("p.vhd"), b"inside").unwrap();
        std::fs::write(outside.join("p.vhd"), b"outside").unwrap();
        let candidate = root.join("p.vhd");
        let mut swap = || {
            std::fs::remove_file(root.join("p.vhd")).unwrap();
            std::os::unix::fs::symlink(outside.join("p.vhd"), root.join("p.vhd")).unwrap();
        };
        let e = open_candidate_with(&candidate, Some(&root), &mut swap).unwrap_err();
        assert!(
            matches!(
                e,
                ParentRejection::Unreadable(_) | ParentRejection::OutsideRoot
            ),
            "{e:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A FIFO (swapped in after resolution, or named outright) is opened without blocking
    /// and refused as not a regular file; so are devices and folders.
    #[cfg(unix)]
    #[test]
    fn fifos_devices_and_folders_are_refused_unread() {
        let dir = scratch("fifo");
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for (path, root) in [
            (fifo.as_path(), None),
            (fifo.as_path(), Some(dir.as_path())),
            (Path::new("/dev/zero"), None),
            (Path::new("/dev/null"), None),
            (dir.as_path(), None),
        ] {
            let e = open_candidate(path, root).unwrap_err();
            assert_eq!(e, ParentRejection::NotRegularFile, "{}", path.display());
        }
        // Swapped in between resolution and open (the resolved path was a regular file).
        let file = dir.join("p.vhd");
        std::fs::write(&file, b"x").unwrap();
        let mut swap = || std::fs::rename(&fifo, &file).unwrap();
        let e = open_candidate_with(&file, Some(&dir), &mut swap).unwrap_err();
        assert_eq!(e, ParentRejection::NotRegularFile);
        assert_eq!(
            open_candidate(&dir.join("missing"), None).unwrap_err(),
            ParentRejection::Missing
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two spellings of one file, a hard link and a symbolic link to it: one identity.
    #[cfg(unix)]
    #[test]
    fn one_identity_for_every_path_to_a_file() {
        let dir = scratch("identity");
        std::fs::create_dir(dir.join("sub")).unwrap();
        let file = dir.join("p.vhd");
        std::fs::write(&file, b"x").unwrap();
        std::fs::hard_link(&file, dir.join("hard.vhd")).unwrap();
        std::os::unix::fs::symlink(&file, dir.join("soft.vhd")).unwrap();
        std::fs::write(dir.join("other.vhd"), b"x").unwrap();
        let id = |p: PathBuf| open_candidate(&p, None).unwrap().id;
        let first = id(file.clone());
        for path in [
            dir.join("sub").join("..").join("p.vhd"),
            dir.join("hard.vhd"),
            dir.join("soft.vhd"),
        ] {
            assert_eq!(id(path), first);
        }
        assert_ne!(id(dir.join("other.vhd")), first);
        assert_eq!(FileId::of_path(&file), Some(first));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
