//! Files that appear whole or not at all: the output of `create`, `compact` and `convert`.
//!
//! A new file is written beside its destination (the same folder, so the same file
//! system), made durable (`fsync`), then given the destination's name, and the folder is
//! made durable. Until the name changes the destination is untouched; a crash at any point
//! leaves the old file (or none) or the new one, whole.
//!
//! On Linux the file is created without a name (`O_TMPFILE`) where the file system allows
//! it, and linked into the folder (`linkat`) only once it is durable: a process killed
//! while writing leaves nothing behind. Elsewhere, and on file systems without
//! `O_TMPFILE`, it is a hidden file named [`.NAME.OPERATION-PID-N.vhd-tmp`](temp_name),
//! removed on error or cancellation; a killed process leaves it, and [`stale_temp_files`]
//! recognises it (`check` reports it). A name another process holds is skipped (`N` counts
//! up), so a leftover never blocks a later run, and the next new file for the same
//! destination removes the leftovers nobody holds locked. (Replacing a file leaves a name
//! for a moment even with `O_TMPFILE`; see below.)
//!
//! Replacing: without a name, the file is linked under a temporary name and that name
//! renamed over the destination (rename is atomic); a new file that must not replace
//! anything is linked straight to the destination, which fails if the name was taken
//! meanwhile (no check-then-rename race).

use crate::error::{Error, Result};
use crate::image::LockedFile;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};

/// How many temporary names are tried before giving up.
const MAX_ATTEMPTS: u32 = 1000;

/// What a temporary file name ends with.
const TEMP_SUFFIX: &str = ".vhd-tmp";

/// A file being written, to be moved to its destination by [`NewFile::persist`]; removed
/// (or, without a name, gone) when dropped before that. Locked exclusively from the start,
/// so that nobody opens the new image before its writer lets go.
#[derive(Debug)]
pub(crate) struct NewFile {
    file: LockedFile,
    temp: TempName,
    destination: PathBuf,
    operation: &'static str,
}

/// The temporary name of a [`NewFile`], removed when dropped (unless taken); none for a
/// file without a name (`O_TMPFILE`).
#[derive(Debug)]
struct TempName(Option<PathBuf>);

impl Drop for TempName {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether [`NewFile::persist`] may replace a file at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Replace what is there (atomically: rename).
    Yes,
    /// Fail with [`Error::AlreadyExists`] if the name is taken (even meanwhile).
    No,
}

impl NewFile {
    /// A new, empty file for `destination`, written by `operation` ("create", "compact",
    /// "convert": part of a temporary name).
    pub(crate) fn create(destination: &Path, operation: &'static str) -> Result<NewFile> {
        if destination.file_name().is_none() {
            return Err(Error::InvalidArgument {
                name: "destination",
                reason: format!("{} does not name a file", destination.display()),
            });
        }
        remove_stale_temp_files(destination);
        let (file, temp) = match unnamed(destination) {
            Some(file) => (file, TempName(None)),
            None => {
                let (file, path) = named(destination, operation)?;
                (file, TempName(Some(path)))
            }
        };
        // Locked under the name it will have (what a refused open elsewhere in this process
        // names). On error `temp` is dropped here: the temporary name is removed.
        let file = LockedFile::new(file, destination, false, true)?;
        Ok(NewFile {
            file,
            temp,
            destination: destination.to_path_buf(),
            operation,
        })
    }

    /// The file, to write.
    pub(crate) fn file(&self) -> &LockedFile {
        &self.file
    }

    /// The error of the system call `syscall` on the new file, while doing `what`
    /// ("writing the new image"): named by its destination, the name the caller gave,
    /// never by its temporary name alone (which is told as a detail, when it has one).
    pub(crate) fn io_error(&self, syscall: &'static str, what: &str, e: std::io::Error) -> Error {
        let context = match &self.temp.0 {
            Some(temp) => format!("{what} (in its temporary file {})", temp.display()),
            None => what.to_string(),
        };
        Error::io_at(&self.destination, syscall, context, e)
    }

    /// Makes the file durable, gives it the destination's name (see [`Replace`]) and
    /// makes the folder durable. Returns the file, still locked.
    pub(crate) fn persist(mut self, replace: Replace) -> Result<LockedFile> {
        let io = |what: &str, e| Error::io_at(&self.destination, "rename", what, e);
        self.file
            .sync_all()
            .map_err(|e| self.io_error("fsync", "flushing the new file to disk", e))?;
        match (self.temp.0.clone(), replace) {
            (Some(temp), Replace::Yes) => {
                std::fs::rename(&temp, &self.destination)
                    .map_err(|e| io("giving the new file its name", e))?;
            }
            (Some(temp), Replace::No) => {
                match std::fs::hard_link(&temp, &self.destination) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::AlreadyExists(self.destination.clone()))
                    }
                    // No hard links here (FAT, some network file systems): a check, then a
                    // rename (a name taken in between is replaced).
                    Err(_) if self.destination.exists() => {
                        return Err(Error::AlreadyExists(self.destination.clone()))
                    }
                    Err(_) => std::fs::rename(&temp, &self.destination)
                        .map_err(|e| io("giving the new file its name", e))?,
                }
                // The destination holds the file now; a hard link left the temporary name.
                let _ = std::fs::remove_file(&temp);
            }
            (None, Replace::No) => {
                link_unnamed(&self.file, &self.destination).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::AlreadyExists(self.destination.clone())
                    } else {
                        Error::io_at(&self.destination, "link", "giving the new file its name", e)
                    }
                })?;
            }
            (None, Replace::Yes) => {
                let temp = link_under_temp_name(&self.file, &self.destination, self.operation)?;
                if let Err(e) = std::fs::rename(&temp, &self.destination) {
                    let _ = std::fs::remove_file(&temp);
                    return Err(io("giving the new file its name", e));
                }
            }
        }
        // The temporary name is the destination's now (or was removed): nothing to remove.
        self.temp.0 = None;
        sync_folder(&self.destination)?;
        Ok(self.file)
    }
}

impl NewFile {
    /// Gives the new file what the file it replaces has beside its contents: the owner and
    /// group, the permissions, and (Linux) every extended attribute, which includes the
    /// ACLs (`system.posix_acl_access`) and security labels. Called before anything is
    /// written, so that a refusal costs nothing: each of them that cannot be given (a user
    /// who is neither root nor allowed to give the file to its owner, a label the policy
    /// refuses) fails the whole operation, and the original stays as it was; nobody loses
    /// access to the file, nor gains it, because it was rewritten.
    pub(crate) fn take_attributes_of(&self, original: &Path, metadata: &Metadata) -> Result<()> {
        let io = |what: &str, e| {
            Error::io(
                format!(
                    "keeping the {what} of {} in the new file that replaces it (nothing was \
                     changed; run this as the file's owner or as root)",
                    original.display()
                ),
                e,
            )
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ours = self.file.metadata().map_err(|e| io("owner", e))?;
            if (ours.uid(), ours.gid()) != (metadata.uid(), metadata.gid()) {
                std::os::unix::fs::fchown(&*self.file, Some(metadata.uid()), Some(metadata.gid()))
                    .map_err(|e| io("owner and group", e))?;
            }
        }
        // After the owner: changing it may clear the set-user-ID and set-group-ID bits.
        self.file
            .set_permissions(metadata.permissions())
            .map_err(|e| io("permissions", e))?;
        #[cfg(target_os = "linux")]
        xattr::copy(original, &self.file).map_err(|e| io("extended attributes", e))?;
        Ok(())
    }
}

/// Extended attributes, by name, through the C library (Linux).
#[cfg(target_os = "linux")]
mod xattr {
    use std::ffi::{CStr, CString};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Sets on `to` every extended attribute of the file at `from` that this process can
    /// read (the `trusted.*` ones only root sees).
    pub(super) fn copy(from: &Path, to: &File) -> io::Result<()> {
        let from = CString::new(from.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let names = read(|buf, len| {
            // SAFETY: `from` is a NUL-terminated path; `buf` holds `len` writable bytes
            // (or is null with `len` 0, which asks for the size).
            unsafe { libc::listxattr(from.as_ptr(), buf.cast(), len) }
        })?;
        for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name = CString::new(name).map_err(io::Error::other)?;
            let value = read(|buf, len| {
                // SAFETY: as above; `name` is NUL-terminated.
                unsafe { libc::getxattr(from.as_ptr(), name.as_ptr(), buf.cast(), len) }
            });
            let value = match value {
                Ok(value) => value,
                // Removed meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(e),
            };
            set(to, &name, &value)?;
        }
        Ok(())
    }

    fn set(to: &File, name: &CStr, value: &[u8]) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated; `value` is readable for its length; the
        // descriptor is open while `to` is borrowed.
        let set = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if set != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", name.to_string_lossy()),
            ));
        }
        Ok(())
    }

    /// Calls `call` for the size, then for the bytes (again if they grew in between).
    fn read(call: impl Fn(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
        loop {
            let size = call(std::ptr::null_mut(), 0);
            if size < 0 {
                let e = io::Error::last_os_error();
                // No extended attributes on this file system: nothing to copy.
                if e.raw_os_error() == Some(libc::ENOTSUP) {
                    return Ok(Vec::new());
                }
                return Err(e);
            }
            let mut buf = vec![0u8; size as usize];
            let got = call(buf.as_mut_ptr(), buf.len());
            if got >= 0 {
                buf.truncate(got as usize);
                return Ok(buf);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ERANGE) {
                return Err(e);
            }
        }
    }
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

/// The name of the `attempt`-th temporary file of `operation` for `destination` in this
/// process: `.NAME.OPERATION-PID-ATTEMPT.vhd-tmp`, beside it.
pub(crate) fn temp_name(destination: &Path, operation: &str, attempt: u32) -> PathBuf {
    let name = destination
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    folder_of(destination).join(format!(
        ".{name}.{operation}-{}-{attempt}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

/// A new hidden file beside `destination`, under the first free temporary name.
fn named(destination: &Path, operation: &'static str) -> Result<(File, PathBuf)> {
    let mut attempt = 0;
    loop {
        let path = temp_name(destination, operation, attempt);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            // A leftover of a killed run whose PID this process now has: the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < MAX_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => {
                return Err(Error::io_at(
                    destination,
                    "open",
                    format!(
                        "creating the new file (under the temporary name {})",
                        path.display()
                    ),
                    e,
                ))
            }
        }
    }
}

/// A file without a name in `destination`'s folder (`O_TMPFILE`), where the system and
/// the file system allow one and it can be linked later (through `/proc/self/fd`).
#[cfg(target_os = "linux")]
fn unnamed(destination: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(folder_of(destination))
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn unnamed(_destination: &Path) -> Option<File> {
    None
}

/// Gives the unnamed `file` the name `path` (fails with `AlreadyExists` if it is taken).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _path: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Links the unnamed `file` under the first free temporary name beside `destination`.
fn link_under_temp_name(file: &File, destination: &Path, operation: &str) -> Result<PathBuf> {
    let mut attempt = 0;
    loop {
        let path = temp_name(destination, operation, attempt);
        match link_unnamed(file, &path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < MAX_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => {
                return Err(Error::io_at(
                    destination,
                    "link",
                    format!("giving the new file the temporary name {}", path.display()),
                    e,
                ))
            }
        }
    }
}

/// Makes a new name in `path`'s folder durable (a no-op where folders cannot be opened).
pub(crate) fn sync_folder(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let folder = folder_of(path);
        let dir = File::open(folder)
            .map_err(|e| Error::io_at(folder, "open", "opening the folder", e))?;
        dir.sync_all()
            .map_err(|e| Error::io_at(folder, "fsync", "flushing the folder", e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A temporary file that a `create`, `compact` or `convert` of `image` left behind when
/// its process was killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaleTempFile {
    /// Where it is.
    pub path: PathBuf,
    /// The process that made it (no longer running).
    pub pid: u32,
}

/// The temporary files beside `image` that belong to it (names made by [`temp_name`], and
/// those of earlier versions: `.NAME.compact-PID.tmp`, `.NAME.PID-N.convert-tmp`) and
/// whose process is gone: what a killed run left. A temporary file whose process still
/// runs may be in use and is not listed.
pub(crate) fn stale_temp_files(image: &Path) -> Vec<StaleTempFile> {
    let Some(name) = image.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(folder_of(image)) else {
        return Vec::new();
    };
    let mut found: Vec<StaleTempFile> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let rest = file_name.strip_prefix(&prefix)?;
            let pid = temp_pid(rest)?;
            let regular = entry.file_type().ok()?.is_file();
            (regular && !process_runs(pid)).then(|| StaleTempFile {
                path: entry.path(),
                pid,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Removes the temporary files that killed runs for `destination` left (see
/// [`stale_temp_files`]: ours by name, their process gone), each only while this process
/// holds it locked exclusively, which no running writer allows (a [`NewFile`] is locked
/// from the start): what a kill between naming a finished file and renaming it leaves
/// would otherwise stay forever, and a later run is the one that knows the name. Best
/// effort: a file that cannot be opened, locked or removed stays (and `check` reports it).
fn remove_stale_temp_files(destination: &Path) {
    for stale in stale_temp_files(destination) {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Never through a link swapped in for the name, never waiting in open.
            options.custom_flags(crate::files::OPEN_WITHOUT_WAITING | libc::O_NOFOLLOW);
        }
        let Ok(file) = options.open(&stale.path) else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Ok(_locked) = LockedFile::new(file, &stale.path, false, true) {
            let _ = std::fs::remove_file(&stale.path);
        }
    }
}

/// The PID in what follows `.NAME.` in a temporary file's name, if it is one of ours.
fn temp_pid(rest: &str) -> Option<u32> {
    let number = |s: &str| s.parse::<u32>().ok();
    if let Some(stem) = rest.strip_suffix(TEMP_SUFFIX) {
        // OPERATION-PID-ATTEMPT
        let mut parts = stem.rsplitn(3, '-');
        let _attempt = number(parts.next()?)?;
        let pid = number(parts.next()?)?;
        let operation = parts.next()?;
        return ["create", "compact", "convert"]
            .contains(&operation)
            .then_some(pid);
    }
    if let Some(pid) = rest
        .strip_prefix("compact-")
        .and_then(|r| r.strip_suffix(".tmp"))
    {
        return number(pid);
    }
    let (pid, attempt) = rest.strip_suffix(".convert-tmp")?.split_once('-')?;
    number(attempt)?;
    number(pid)
}

/// Whether a process with this id runs (on Unix; elsewhere, assumed so: nothing is called
/// stale).
fn process_runs(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid == 0 {
            return false;
        }
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        let sent = unsafe { libc::kill(pid, 0) };
        sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A new file under a temporary name (what file systems without `O_TMPFILE` get): its
    /// errors name the destination the caller gave, the temporary name only as a detail.
    #[test]
    fn errors_of_a_named_temporary_file_name_the_destination() {
        let folder = std::env::temp_dir().join(format!("vhd-new-file-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let destination = folder.join("out.vhd");
        let (file, temp) = named(&destination, "test").unwrap();
        let new = NewFile {
            file: LockedFile::new(file, &destination, false, false).unwrap(),
            temp: TempName(Some(temp.clone())),
            destination: destination.clone(),
            operation: "test",
        };
        let error = new.io_error(
            "write",
            "writing the new image",
            std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(error.os_code(), Some("ENOSPC"));
        match &error {
            Error::Io { path, syscall, .. } => {
                assert_eq!(path.as_deref(), Some(destination.as_path()));
                assert_eq!(*syscall, Some("write"));
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "{}: writing the new image (in its temporary file {})",
                destination.display(),
                temp.display()
            )),
            "{message}"
        );
        drop(new);
        assert!(!temp.exists(), "the temporary name is removed");
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn our_temporary_names_are_recognised_and_others_are_not() {
        let pid = |name: &str| temp_pid(name);
        assert_eq!(pid("compact-123-0.vhd-tmp"), Some(123));
        assert_eq!(pid("convert-7-12.vhd-tmp"), Some(7));
        assert_eq!(pid("create-99-0.vhd-tmp"), Some(99));
        assert_eq!(pid("compact-123.tmp"), Some(123), "earlier compact");
        assert_eq!(pid("4567-2.convert-tmp"), Some(4567), "earlier convert");
        assert_eq!(pid("swap-1-0.vhd-tmp"), None);
        assert_eq!(pid("compact-x-0.vhd-tmp"), None);
        assert_eq!(pid("compact-1-0.vhd-tmp.bak"), None);
        assert_eq!(pid("swp"), None);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vhd-new-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Without `O_TMPFILE`, a leftover under this process's first temporary name (a killed
    /// run whose PID this process now has) is skipped, not an error, and left alone.
    #[test]
    fn a_taken_temporary_name_is_skipped() {
        let dir = temp_dir("taken");
        let destination = dir.join("disk.vhd");
        let taken = temp_name(&destination, "compact", 0);
        std::fs::write(&taken, b"left").unwrap();
        let (_, path) = named(&destination, "compact").unwrap();
        assert_eq!(path, temp_name(&destination, "compact", 1));
        assert_eq!(std::fs::read(&taken).unwrap(), b"left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a killed run left for the same destination is removed by the next new file,
    /// unless somebody holds it locked; other files stay.
    #[cfg(unix)]
    #[test]
    fn leftovers_nobody_holds_are_removed_by_the_next_new_file() {
        let dir = temp_dir("leftovers");
        let destination = dir.join("disk.vhd");
        // A process that has ended: its id is not running (ids are not reused at once).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let left = dir.join(format!(".disk.vhd.compact-{dead}-0.vhd-tmp"));
        let held = dir.join(format!(".disk.vhd.convert-{dead}-1.vhd-tmp"));
        let other = dir.join(format!(".other.vhd.compact-{dead}-0.vhd-tmp"));
        for path in [&left, &held, &other] {
            std::fs::write(path, b"left").unwrap();
        }
        let holder = LockedFile::new(File::open(&held).unwrap(), &held, false, true).unwrap();
        let new = NewFile::create(&destination, "create").unwrap();
        assert!(!left.exists(), "a leftover nobody holds is removed");
        assert!(held.exists(), "a file somebody holds locked stays");
        assert!(other.exists(), "another destination's file stays");
        drop((new, holder));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A new file that is never persisted (its process killed: nothing runs on drop)
    /// leaves no name behind where the file system has `O_TMPFILE`, and a persisted one
    /// takes the destination's name, refusing a taken one unless it replaces.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_file_has_no_name_until_it_is_persisted() {
        let dir = temp_dir("unnamed");
        let destination = dir.join("disk.vhd");
        let new = NewFile::create(&destination, "create").unwrap();
        crate::storage::Storage::write_all_at(new.file(), b"new", 0).unwrap();
        if new.temp.0.is_some() {
            eprintln!("SKIPPED: no O_TMPFILE in {}", dir.display());
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        std::mem::forget(new);
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));

        let new = NewFile::create(&destination, "create").unwrap();
        crate::storage::Storage::write_all_at(new.file(), b"first", 0).unwrap();
        drop(new.persist(Replace::No).unwrap());
        assert_eq!(std::fs::read(&destination).unwrap(), b"first");
        let new = NewFile::create(&destination, "create").unwrap();
        let e = new.persist(Replace::No).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_EXISTS", "{e}");
        let new = NewFile::create(&destination, "create").unwrap();
        crate::storage::Storage::write_all_at(new.file(), b"second", 0).unwrap();
        drop(new.persist(Replace::Yes).unwrap());
        assert_eq!(std::fs::read(&destination).unwrap(), b"second");
        assert_eq!(names(&dir), vec!["disk.vhd".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
