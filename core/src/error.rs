//! The one error type of the crate.
//!
//! Every variant says what is wrong and where (file offset, structure, field), so that a
//! message read in a bug report is enough to find the bad bytes with a hex editor.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or creating a VHD image.
///
/// New variants come with new capabilities, so the enum is `#[non_exhaustive]`: match the
/// variants you handle and keep a wildcard arm; [`Error::code`] gives every variant a
/// stable name to log or compare.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an I/O operation.
    #[error("{context}: {source}")]
    Io {
        /// What the library was doing, e.g. "reading the footer at offset 1536".
        context: String,
        /// The underlying error, with the OS error code when there is one.
        #[source]
        source: std::io::Error,
    },

    /// A structure does not start with the cookie the specification requires.
    #[error("bad {structure} cookie at offset {offset}: expected {expected:?}, found {found:?}")]
    BadCookie {
        structure: &'static str,
        offset: u64,
        expected: &'static str,
        found: String,
    },

    /// A structure's stored checksum does not match its contents.
    #[error(
        "{structure} checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    Checksum {
        structure: &'static str,
        offset: u64,
        stored: u32,
        computed: u32,
    },

    /// The file ends before a structure the image needs.
    #[error(
        "file is truncated: {what} needs bytes {offset}..{end}, but the file has {file_size} bytes"
    )]
    Truncated {
        what: String,
        offset: u64,
        end: u64,
        file_size: u64,
    },

    /// A field holds a value the specification (or common sense) does not allow.
    #[error("invalid {structure} field {field} at offset {offset}: {found} ({reason})")]
    InvalidField {
        structure: &'static str,
        field: &'static str,
        offset: u64,
        found: u64,
        reason: String,
    },

    /// A block allocation table entry points at data that is not inside the file: its block
    /// (sector bitmap, and data up to the end of the disk in whole sectors) does not lie in
    /// front of the footer. Also a write that would leave its block's bytes, refused (a
    /// last line of defence: opening checks every block).
    #[error(
        "BAT entry {index} points at sector {sector} (bytes {offset}..{end}), outside the block area of the file (which ends at {limit})"
    )]
    BatEntryOutOfRange {
        index: u32,
        sector: u32,
        offset: u64,
        end: u64,
        limit: u64,
    },

    /// The image is of another type than the caller asked for.
    #[error("{path}: expected a {expected} VHD, found a {found} VHD")]
    WrongDiskType {
        path: PathBuf,
        expected: &'static str,
        found: &'static str,
    },

    /// The image type is valid but this operation does not handle it (yet).
    #[error("{0}")]
    Unsupported(String),

    /// A read or write reaches past the end of the virtual disk.
    #[error("{operation} of {length} bytes at offset {offset} runs past the end of the virtual disk ({size} bytes)")]
    OutOfRange {
        operation: &'static str,
        offset: u64,
        length: u64,
        size: u64,
    },

    /// A write was attempted on an image that may not be written.
    #[error("the image is read-only: {reason}")]
    ReadOnly { reason: String },

    /// `create` was asked to make a file that already exists.
    #[error("{0}: file already exists (pass overwrite to replace it)")]
    AlreadyExists(PathBuf),

    /// No parent of a differencing image could be found: no candidate exists, or none is
    /// a VHD (see `tried` for what each was).
    #[error(
        "{child}: its parent {parent_name:?} was not found; tried: {}",
        display_tried(.tried)
    )]
    ParentNotFound {
        child: PathBuf,
        /// The parent's name as the child records it (header name or a locator).
        parent_name: String,
        /// Every place looked at, in order, and why it was not the parent.
        tried: Vec<TriedParent>,
    },

    /// A VHD was found where the parent should be, but it is another disk (its unique id is
    /// not the one the child records), and no other candidate was usable. Neither id is
    /// part of the error: the parent's unique id is what binds a child to its parent.
    #[error(
        "{child}: {parent} is not its parent (a different disk); tried: {}",
        display_tried(.tried)
    )]
    ParentMismatch {
        child: PathBuf,
        /// The first candidate that was a different disk.
        parent: PathBuf,
        /// Every place looked at, in order, and why it was not the parent.
        tried: Vec<TriedParent>,
    },

    /// The parent changed after the child was made (its time stamp is not the recorded
    /// one), and no other candidate was usable. The time stamps are not part of the error.
    #[error(
        "{child}: its parent {parent} was modified since the child was made (open with the option to ignore the parent time stamp if the parent was only copied); tried: {}",
        display_tried(.tried)
    )]
    ParentModified {
        child: PathBuf,
        /// The first candidate with the right unique id but another time stamp.
        parent: PathBuf,
        /// Every place looked at, in order, and why it was not the parent.
        tried: Vec<TriedParent>,
    },

    /// A file that should be the parent (the right one, or the only one found) could not be
    /// opened or failed a check; `source` says why. [`Error::code`] is the source's code.
    #[error("{child}: its parent {parent} cannot be used: {source}")]
    Parent {
        child: PathBuf,
        parent: PathBuf,
        source: Box<Error>,
    },

    /// The parent chain comes back to an image already in it.
    #[error("the parent chain loops: {}", display_paths(.chain))]
    ParentLoop { chain: Vec<PathBuf> },

    /// The parent chain is deeper than [`MAX_CHAIN_DEPTH`](crate::MAX_CHAIN_DEPTH).
    #[error("{path}: the parent chain is deeper than {limit} images")]
    ChainTooDeep { path: PathBuf, limit: usize },

    /// An argument (size, block size, option) is not acceptable.
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// The file is locked by another open image, in this process or another one: a
    /// read-write open needs the only lock on the file, a read-only open a shared one.
    #[error(
        "{path}: the file is in use: another open image holds a lock that conflicts with opening it {} (close the other one first, or open without locking)",
        if *.read_only { "read-only (someone has it open read-write)" } else { "read-write" }
    )]
    Locked {
        path: PathBuf,
        /// The refused open was read-only (it wanted a shared lock).
        read_only: bool,
    },

    /// A parent found through the child's locators or parent name lies outside the folder
    /// the caller restricted parents to ([`OpenOptions::parent_root`](crate::OpenOptions::parent_root)),
    /// and no other candidate was usable. The file was not opened.
    #[error(
        "{child}: its parent {parent} lies outside {root}, the only folder parents may come from; tried: {}",
        display_tried(.tried)
    )]
    ParentOutsideRoot {
        child: PathBuf,
        /// The first candidate outside the root, as the child names it (where its symbolic
        /// links lead is not told: that is the host's business).
        parent: PathBuf,
        /// The allowed folder, with symbolic links resolved.
        root: PathBuf,
        /// Every place looked at, in order, and why it was not the parent.
        tried: Vec<TriedParent>,
    },

    /// Finding the parents of a differencing image took more candidate files than
    /// [`MAX_PARENT_CANDIDATES`](crate::MAX_PARENT_CANDIDATES) for the whole chain: a
    /// crafted chain that names its parents in many ways, through many copies.
    #[error(
        "{child}: finding the parent chain took more than {limit} candidate files; the image names its parents in too many ways to be searched"
    )]
    ParentSearchLimit { child: PathBuf, limit: usize },

    /// Two block allocation table entries, or an entry and the image's own structures
    /// (footer copy, dynamic header, BAT, a differencing image's parent locator data), claim
    /// the same bytes of the file.
    #[error(
        "BAT entry {index} points at sector {sector} (bytes {offset}..{end}), which overlaps {other}"
    )]
    BatEntryOverlap {
        index: u32,
        sector: u32,
        offset: u64,
        end: u64,
        /// What else lies there, e.g. "the dynamic header (bytes 512..1536)" or "block 3".
        other: String,
    },

    /// The path names something that is not read or written as `what`: a directory, a
    /// FIFO, a socket or a character device, or a block device where only a regular file
    /// will do (an image opened for writing, a new image). Decided on the opened
    /// descriptor, without ever waiting in `open`; nothing was read or written.
    #[error("{path} is {found}: {what} must be {expected}")]
    FileType {
        path: PathBuf,
        /// What it is, e.g. "a FIFO (named pipe)".
        found: &'static str,
        /// What it was to be, e.g. "the destination".
        what: &'static str,
        /// What that may be, e.g. "a regular file or a block device".
        expected: &'static str,
    },

    /// `check --repair` ([`crate::ops::repair`]) planned changes that would make data
    /// unreachable, or would believe a damaged structure that other fields contradict, and
    /// was not forced: nothing was written, the file is byte for byte as it was. `risks`
    /// says what the plan would lose or accept; `before` is the check of the image.
    #[error(
        "the repair of {} was refused, and nothing was written: {}. Keep a copy of the file; to carry out the repair anyway, pass force (vhd check --repair --force; force: true in JavaScript)",
        path.display(),
        risks.join("; ")
    )]
    RepairRefused {
        path: PathBuf,
        /// What the plan would lose or accept, one sentence each.
        risks: Vec<String>,
        /// The check of the image, as the repair found it.
        before: Box<crate::check::CheckReport>,
    },

    /// A long operation was stopped by its caller (see [`crate::ops::Progress`]).
    #[error("{operation} was cancelled")]
    Cancelled { operation: &'static str },

    /// The image has more allocated ranges than a list may hold
    /// ([`MAX_LISTED_RANGES`](crate::ops::MAX_LISTED_RANGES)): a crafted image can hold
    /// millions of runs in a few MiB of file. Iterating them holds a bounded number at a time.
    #[error(
        "{path} has more than {limit} allocated ranges, too many to list at once: iterate them \
         instead (disk.allocatedRanges() in JavaScript, Image::allocated_ranges_iter in Rust; \
         'vhd map' streams them)"
    )]
    TooManyRanges { path: PathBuf, limit: usize },
}

impl Error {
    /// A stable, machine-readable code for this error, e.g. `ERR_VHD_CHECKSUM`.
    ///
    /// I/O errors report `ERR_VHD_IO`; bindings that know the OS error name (such as `ENOENT`)
    /// should prefer it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "ERR_VHD_IO",
            Error::BadCookie { .. } => "ERR_VHD_BAD_COOKIE",
            Error::Checksum { .. } => "ERR_VHD_CHECKSUM",
            Error::Truncated { .. } => "ERR_VHD_TRUNCATED",
            Error::InvalidField { .. } => "ERR_VHD_INVALID_FIELD",
            Error::BatEntryOutOfRange { .. } => "ERR_VHD_BAT_OUT_OF_RANGE",
            Error::WrongDiskType { .. } => "ERR_VHD_WRONG_TYPE",
            Error::Unsupported(_) => "ERR_VHD_UNSUPPORTED",
            Error::OutOfRange { .. } => "ERR_VHD_OUT_OF_RANGE",
            Error::ReadOnly { .. } => "ERR_VHD_READ_ONLY",
            Error::AlreadyExists(_) => "ERR_VHD_EXISTS",
            Error::InvalidArgument { .. } => "ERR_VHD_INVALID_ARGUMENT",
            Error::ParentNotFound { .. } => "ERR_VHD_PARENT_NOT_FOUND",
            Error::ParentMismatch { .. } => "ERR_VHD_PARENT_MISMATCH",
            Error::ParentModified { .. } => "ERR_VHD_PARENT_MODIFIED",
            Error::ParentLoop { .. } => "ERR_VHD_PARENT_LOOP",
            Error::Parent { source, .. } => source.code(),
            Error::ChainTooDeep { .. } => "ERR_VHD_CHAIN_TOO_DEEP",
            Error::Locked { .. } => "ERR_VHD_LOCKED",
            Error::ParentOutsideRoot { .. } => "ERR_VHD_PARENT_OUTSIDE_ROOT",
            Error::ParentSearchLimit { .. } => "ERR_VHD_PARENT_SEARCH_LIMIT",
            Error::BatEntryOverlap { .. } => "ERR_VHD_BAT_OVERLAP",
            Error::Cancelled { .. } => "ERR_VHD_CANCELLED",
            Error::TooManyRanges { .. } => "ERR_VHD_TOO_MANY_RANGES",
            Error::RepairRefused { .. } => "ERR_VHD_REPAIR_REFUSED",
            Error::FileType { .. } => "ERR_VHD_FILE_TYPE",
        }
    }

    /// The underlying error: for [`Error::Parent`], what went wrong in the parent (at any
    /// depth of the chain); otherwise the error itself.
    pub fn root(&self) -> &Error {
        match self {
            Error::Parent { source, .. } => source.root(),
            other => other,
        }
    }

    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// A place where a differencing image's parent was looked for, and why the file there (if
/// any) is not the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriedParent {
    /// The candidate, as the child's locator or parent name spells it (below the child's
    /// folder when relative), or as the caller named it.
    pub path: PathBuf,
    /// Why it was not used.
    pub rejection: ParentRejection,
}

/// Why a candidate for the parent of a differencing image was not used, in words only:
/// nothing read from a file that did not verify as the parent (its bytes, size, unique id
/// or time stamps) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParentRejection {
    /// Nothing is there.
    Missing,
    /// The operating system refused to open it (permission denied, a symbolic link loop…).
    Unreadable(std::io::ErrorKind),
    /// A folder, FIFO, socket or device: never opened as a parent.
    NotRegularFile,
    /// A regular file without a valid VHD footer.
    NotVhd,
    /// A VHD with another unique id than the one the child records.
    DifferentDisk,
    /// The right unique id, but a time stamp other than the one the child records.
    Modified,
    /// Outside [`OpenOptions::parent_root`](crate::OpenOptions::parent_root) once symbolic
    /// links and `..` are resolved (not opened), or moved out of it while being opened.
    OutsideRoot,
    /// A network path (`\\server\share\…`), not contacted unless
    /// [`OpenOptions::allow_remote_parents`](crate::OpenOptions::allow_remote_parents).
    Remote,
    /// A Windows device path (`\\.\…`, `\\?\…` other than a drive or network path).
    DevicePath,
    /// It is the parent, but it (or an image below it) cannot be used; the error returned
    /// says why when it is the most telling one.
    Unusable,
}

impl std::fmt::Display for ParentRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParentRejection::Missing => f.write_str("missing"),
            ParentRejection::Unreadable(kind) => write!(f, "cannot be opened: {kind}"),
            ParentRejection::NotRegularFile => f.write_str("not a regular file"),
            ParentRejection::NotVhd => f.write_str("not a VHD"),
            ParentRejection::DifferentDisk => f.write_str("a different disk"),
            ParentRejection::Modified => f.write_str("modified since the child was made"),
            ParentRejection::OutsideRoot => f.write_str("outside the parent root"),
            ParentRejection::Remote => {
                f.write_str("a network path, not contacted (remote parents are not allowed)")
            }
            ParentRejection::DevicePath => f.write_str("a device path"),
            ParentRejection::Unusable => f.write_str("the parent, but unusable"),
        }
    }
}

fn display_tried(tried: &[TriedParent]) -> String {
    if tried.is_empty() {
        return "nothing (the image has no usable parent locator and no parent name)".into();
    }
    let shown: Vec<String> = tried
        .iter()
        .map(|t| format!("{} ({})", t.path.display(), t.rejection))
        .collect();
    shown.join(", ")
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
