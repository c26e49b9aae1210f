//! The one error type of the crate.
//!
//! Every variant says what is wrong and where (file offset, structure, field), so that a
//! message read in a bug report is enough to find the bad bytes with a hex editor.

use crate::sniff::KnownFormat;
use std::path::{Path, PathBuf};

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
    ///
    /// The message starts with the file the caller named (never an internal temporary
    /// file: a new image written beside its destination is named by its destination), then
    /// says what was being done: `out.vhd: writing the new image: No space left on device
    /// (os error 28)`. [`Error::os_code`] gives the OS error's name (`ENOSPC`).
    #[error("{}{context}: {source}", display_path_prefix(.path.as_deref()))]
    Io {
        /// The file the caller named, when the error concerns one (see [`Error::in_file`]).
        path: Option<PathBuf>,
        /// The system call that failed, named as Node.js names it on its own errors
        /// (`open`, `read`, `write`, `fsync`, `rename`, `stat`, `ftruncate`, `link`,
        /// `flock`…), when known.
        syscall: Option<&'static str>,
        /// What the library was doing, e.g. "reading the footer at offset 1536".
        context: String,
        /// The underlying error, with the OS error code when there is one.
        #[source]
        source: std::io::Error,
    },

    /// A structure does not start with the cookie the specification requires.
    #[error("{}", self.message_with(&Hint::rust_option))]
    BadCookie {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
        structure: &'static str,
        offset: u64,
        expected: &'static str,
        found: String,
    },

    /// A structure's stored checksum does not match its contents.
    #[error("{}", self.message_with(&Hint::rust_option))]
    Checksum {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
        structure: &'static str,
        offset: u64,
        stored: u32,
        computed: u32,
    },

    /// The file ends before a structure the image needs.
    #[error("{}", self.message_with(&Hint::rust_option))]
    Truncated {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
        what: String,
        offset: u64,
        end: u64,
        file_size: u64,
    },

    /// A field holds a value the specification (or common sense) does not allow.
    #[error("{}", self.message_with(&Hint::rust_option))]
    InvalidField {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
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
    #[error("{}", self.message_with(&Hint::rust_option))]
    BatEntryOutOfRange {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
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
    #[error("{}{operation} of {length} bytes at offset {offset} runs past the end of the virtual disk ({size} bytes)", display_path_prefix(.path.as_deref()))]
    OutOfRange {
        /// The image, once known ([`Error::in_file`] fills it in where the error leaves
        /// the image that met it).
        path: Option<PathBuf>,
        operation: &'static str,
        offset: u64,
        length: u64,
        size: u64,
    },

    /// A write was attempted on an image that may not be written.
    #[error("{}the image is read-only: {reason}", display_path_prefix(.path.as_deref()))]
    ReadOnly {
        /// The image, once known ([`Error::in_file`] fills it in where the error leaves
        /// the image that met it).
        path: Option<PathBuf>,
        reason: String,
    },

    /// `create` was asked to make a file that already exists ([`Hint::Overwrite`]).
    #[error("{}", self.message_with(&Hint::rust_option))]
    AlreadyExists(PathBuf),

    /// No parent of a differencing image could be found: no candidate exists, or none is
    /// a VHD (see `tried` for what each was).
    /// ([`Hint::Parent`].)
    #[error("{}", self.message_with(&Hint::rust_option))]
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
    /// ([`Hint::IgnoreParentTimestamp`].)
    #[error("{}", self.message_with(&Hint::rust_option))]
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
    /// ([`Hint::NoLock`].)
    #[error("{}", self.message_with(&Hint::rust_option))]
    Locked {
        path: PathBuf,
        /// The refused open was read-only (it wanted a shared lock).
        read_only: bool,
    },

    /// A parent found through the child's locators or parent name lies outside the folder
    /// the caller restricted parents to ([`OpenOptions::parent_root`](crate::OpenOptions::parent_root)),
    /// and no other candidate was usable. The file was not opened.
    /// ([`Hint::Parent`].)
    #[error("{}", self.message_with(&Hint::rust_option))]
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
    #[error("{}", self.message_with(&Hint::rust_option))]
    BatEntryOverlap {
        /// The image file, once known ([`Error::in_file`] fills it in where the error
        /// leaves the image that met it).
        path: Option<PathBuf>,
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
    /// ([`Hint::Force`].)
    #[error("{}", self.message_with(&Hint::rust_option))]
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

    /// The file is not a VHD image: too short to hold a footer, or no VHD footer (cookie
    /// `conectix`) at its end, nor a footer copy or dynamic header at its start, nor a footer
    /// cookie out of place near its end. A VHD whose footer is damaged but whose copy is
    /// good opens (read-only); one with any of those signs keeps the error that says what is
    /// damaged ([`Error::BadCookie`], [`Error::Truncated`]…). `looks_like` says what the file
    /// is when its signature is a known one ([`crate::sniff`]).
    #[error(
        "{} is not a VHD image ({})",
        path.display(),
        describe_not_vhd(*.file_size, *.looks_like)
    )]
    NotVhd {
        path: PathBuf,
        /// The file's size in bytes.
        file_size: u64,
        /// What it is instead, when its signature is a known one.
        looks_like: Option<KnownFormat>,
    },

    /// A conversion whose source format was to be detected found another image format, a
    /// compressed file or an archive ([`KnownFormat::is_container`]): its bytes are not a
    /// raw disk, and a VHD of them would be a VHD of the container. Nothing was written
    /// ([`Hint::SourceRaw`]).
    #[error("{}", self.message_with(&Hint::rust_option))]
    ForeignFormat { path: PathBuf, format: KnownFormat },

    /// An NBD server was asked to listen on an address other than a loopback one without
    /// being allowed to ([`Hint::AllowRemote`]): NBD is cleartext and unauthenticated.
    /// Its code is `ERR_VHD_INVALID_ARGUMENT`.
    #[error("{}", self.message_with(&Hint::rust_option))]
    RemoteAddressRefused {
        /// The address, as given.
        address: String,
    },

    /// A shrink would cut off data that is not zero, and was not forced ([`Hint::Force`]).
    /// Its code is `ERR_VHD_INVALID_ARGUMENT`, as before it had a variant of its own.
    #[error("{}", self.message_with(&Hint::rust_option))]
    ShrinkRefused {
        path: PathBuf,
        /// The size asked for.
        new_size: u64,
        /// The first byte past the new end that is not zero.
        first_data: u64,
    },

    /// An operation would write the very file it reads (an output that is the input,
    /// spelled the same or not: a symbolic or hard link, `./`, another route to it): a
    /// differencing image created (or a snapshot taken) over its own parent, a child rebased
    /// onto itself. Nothing was written. (`convert` onto its own source keeps
    /// [`Error::InvalidArgument`], as it always had.)
    #[error("{}: {what}", display_output_is_input(.output, .input))]
    OutputIsInput {
        /// The output as the caller named it.
        output: PathBuf,
        /// The input as the caller named it.
        input: PathBuf,
        /// Why that cannot be, e.g. "a snapshot cannot be its own parent".
        what: &'static str,
    },
}

/// Something the caller can do about an error by passing an option: carried by the error
/// ([`Error::hint`]), and spelled by each front end in its own terms — `--overwrite` on
/// the command line, `{ overwrite: true }` in JavaScript, `CreateOptions::overwrite` in
/// Rust (the error's `Display`) — through [`Error::message_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// Replace an existing output file.
    Overwrite,
    /// Carry out a refused repair, or a shrink that cuts off data, anyway.
    Force,
    /// Accept a parent whose time stamp changed (a copied parent).
    IgnoreParentTimestamp,
    /// Open without taking or checking locks.
    NoLock,
    /// Read a conversion's source as a raw disk, whatever it looks like.
    SourceRaw,
    /// Name the parent of a differencing image (a parent the caller names is trusted).
    Parent,
    /// See what is damaged in an image, and what can be mended ([`crate::check()`]).
    Check,
    /// Serve over NBD on an address other than a loopback one (NBD is cleartext).
    AllowRemote,
}

impl Hint {
    /// The option in this crate's Rust API.
    pub fn rust_option(self) -> &'static str {
        match self {
            Hint::Overwrite => "CreateOptions::overwrite (ConvertOptions::overwrite)",
            Hint::Force => "force",
            Hint::IgnoreParentTimestamp => "OpenOptions::ignore_parent_timestamp",
            Hint::NoLock => "OpenOptions::lock = false",
            Hint::SourceRaw => "ConvertOptions::source_format = SourceFormat::Raw",
            Hint::Parent => "OpenOptions::parents",
            Hint::Check => "vhd_core::check()",
            Hint::AllowRemote => "ServeOptions::allow_remote (vhd-nbd)",
        }
    }

    /// What to do, in a sentence that names the option as `option` spells it.
    pub fn advice(self, option: &str) -> String {
        match self {
            Hint::Overwrite => format!("pass {option} to replace it"),
            Hint::Force => format!("to do it anyway, pass {option}"),
            Hint::IgnoreParentTimestamp => {
                format!("if the parent was only copied, pass {option}")
            }
            Hint::NoLock => format!("close the other one first, or pass {option}"),
            Hint::SourceRaw => format!("to wrap its bytes as they are, pass {option}"),
            Hint::Parent => format!("to name the parent yourself, pass {option}"),
            Hint::Check => format!("to see what is damaged and what can be mended, run {option}"),
            Hint::AllowRemote => format!("to serve beyond this machine anyway, pass {option}"),
        }
    }
}

/// The `path` field of the errors whose message names their file only once it is known
/// (filled in by [`Error::in_file`]), borrowed as the error is (`&` or `&mut`): the one
/// list of those variants.
macro_rules! path_field {
    ($error:expr) => {
        match $error {
            Error::Io { path, .. }
            | Error::BadCookie { path, .. }
            | Error::Checksum { path, .. }
            | Error::Truncated { path, .. }
            | Error::InvalidField { path, .. }
            | Error::BatEntryOutOfRange { path, .. }
            | Error::BatEntryOverlap { path, .. }
            | Error::OutOfRange { path, .. }
            | Error::ReadOnly { path, .. } => Some(path),
            _ => None,
        }
    };
}

impl Error {
    /// A stable, machine-readable code for this error, e.g. `ERR_VHD_CHECKSUM`.
    ///
    /// I/O errors report `ERR_VHD_IO`; front ends show the OS error's name instead when
    /// there is one ([`Error::os_code`]: `ENOENT`, `ENOSPC`…), as the `vhd` command and the
    /// Node.js binding do.
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
            Error::NotVhd { .. } => "ERR_VHD_NOT_VHD",
            Error::ForeignFormat { .. } => "ERR_VHD_FOREIGN_FORMAT",
            Error::ShrinkRefused { .. } | Error::RemoteAddressRefused { .. } => {
                "ERR_VHD_INVALID_ARGUMENT"
            }
            Error::OutputIsInput { .. } => "ERR_VHD_OUTPUT_IS_INPUT",
        }
    }

    /// What the caller can do about this error by passing an option, if anything.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Error::AlreadyExists(_) => Some(Hint::Overwrite),
            Error::RepairRefused { .. } | Error::ShrinkRefused { .. } => Some(Hint::Force),
            Error::RemoteAddressRefused { .. } => Some(Hint::AllowRemote),
            Error::ParentModified { .. } => Some(Hint::IgnoreParentTimestamp),
            Error::Locked { .. } => Some(Hint::NoLock),
            Error::ForeignFormat { .. } => Some(Hint::SourceRaw),
            Error::ParentNotFound { .. } | Error::ParentOutsideRoot { .. } => Some(Hint::Parent),
            Error::BadCookie { .. }
            | Error::Checksum { .. }
            | Error::Truncated { .. }
            | Error::InvalidField { .. }
            | Error::BatEntryOutOfRange { .. }
            | Error::BatEntryOverlap { .. } => Some(Hint::Check),
            Error::Parent { source, .. } => source.hint(),
            _ => None,
        }
    }

    /// The message, with the [hint](Error::hint) naming its option as `option` spells it
    /// (the command line passes `--overwrite`, JavaScript `{ overwrite: true }`); the
    /// `Display` of the error is this with [`Hint::rust_option`].
    pub fn message_with(&self, option: &dyn Fn(Hint) -> &'static str) -> String {
        let advice = |hint: Hint| hint.advice(option(hint));
        match self {
            Error::AlreadyExists(path) => format!(
                "{}: file already exists ({})",
                path.display(),
                advice(Hint::Overwrite)
            ),
            Error::ParentModified {
                child,
                parent,
                tried,
            } => format!(
                "{}: its parent {} was modified since the child was made ({}); tried: {}",
                child.display(),
                parent.display(),
                advice(Hint::IgnoreParentTimestamp),
                display_tried(tried)
            ),
            Error::Locked { path, read_only } => format!(
                "{}: the file is in use: another open image holds a lock that conflicts with \
                 opening it {} ({})",
                path.display(),
                if *read_only {
                    "read-only (someone has it open read-write)"
                } else {
                    "read-write"
                },
                advice(Hint::NoLock)
            ),
            Error::RepairRefused { path, risks, .. } => format!(
                "the repair of {} was refused, and nothing was written: {}. Keep a copy of the \
                 file; {}",
                path.display(),
                risks.join("; "),
                advice(Hint::Force)
            ),
            Error::ParentNotFound {
                child,
                parent_name,
                tried,
            } => format!(
                "{}: its parent {parent_name:?} was not found; tried: {}; {}",
                child.display(),
                display_tried(tried),
                advice(Hint::Parent)
            ),
            Error::ParentOutsideRoot {
                child,
                parent,
                root,
                tried,
            } => format!(
                "{}: its parent {} lies outside {}, the only folder parents may come from; \
                 tried: {}; {}",
                child.display(),
                parent.display(),
                root.display(),
                display_tried(tried),
                advice(Hint::Parent)
            ),
            Error::ForeignFormat { path, format } => format!(
                "{} is {}, not a raw disk or a VHD: {}; {}",
                path.display(),
                format,
                format.advice(),
                advice(Hint::SourceRaw)
            ),
            Error::RemoteAddressRefused { address } => format!(
                "{address} is not a loopback address: NBD is cleartext and unauthenticated, so \
                 anyone who can reach it could read and write the disk; {}",
                advice(Hint::AllowRemote)
            ),
            Error::ShrinkRefused {
                path,
                new_size,
                first_data,
            } => format!(
                "invalid argument size: shrinking {} to {new_size} bytes would cut off data \
                 (byte {first_data} is not zero); {}",
                path.display(),
                advice(Hint::Force)
            ),
            Error::Parent {
                child,
                parent,
                source,
            } => format!(
                "{}: its parent {} cannot be used: {}",
                child.display(),
                parent.display(),
                source.message_with(option)
            ),
            other => match other.damage() {
                Some(damage) => format!("{damage}; {}", advice(Hint::Check)),
                None => other.to_string(),
            },
        }
    }

    /// The message of an error about a damaged image (without its advice), `None` for
    /// other errors.
    fn damage(&self) -> Option<String> {
        Some(match self {
            Error::BadCookie {
                path, structure, offset, expected, found, ..
            } => format!("{prefix}bad {structure} cookie at offset {offset}: expected {expected:?}, found {found:?}", prefix = display_path_prefix(path.as_deref())),
            Error::Checksum {
                path, structure, offset, stored, computed, ..
            } => format!("{prefix}{structure} checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}", prefix = display_path_prefix(path.as_deref())),
            Error::Truncated {
                path, what, offset, end, file_size, ..
            } => format!("{prefix}file is truncated: {what} needs bytes {offset}..{end}, but the file has {file_size} bytes", prefix = display_path_prefix(path.as_deref())),
            Error::InvalidField {
                path, structure, field, offset, found, reason, ..
            } => format!("{prefix}invalid {structure} field {field} at offset {offset}: {found} ({reason})", prefix = display_path_prefix(path.as_deref())),
            Error::BatEntryOutOfRange {
                path, index, sector, offset, end, limit, ..
            } => format!("{prefix}BAT entry {index} points at sector {sector} (bytes {offset}..{end}), outside the block area of the file (which ends at {limit})", prefix = display_path_prefix(path.as_deref())),
            Error::BatEntryOverlap {
                path, index, sector, offset, end, other, ..
            } => format!("{prefix}BAT entry {index} points at sector {sector} (bytes {offset}..{end}), which overlaps {other}", prefix = display_path_prefix(path.as_deref())),
            _ => return None,
        })
    }

    /// The underlying error: for [`Error::Parent`], what went wrong in the parent (at any
    /// depth of the chain); otherwise the error itself.
    pub fn root(&self) -> &Error {
        match self {
            Error::Parent { source, .. } => source.root(),
            other => other,
        }
    }

    /// Wraps an I/O error with a description of what was being done; the file it concerns
    /// may be added later with [`Error::in_file`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: None,
            syscall: None,
            context: context.into(),
            source,
        }
    }

    /// Wraps an I/O error of the system call `syscall`; the file it concerns is added
    /// later with [`Error::in_file`].
    pub(crate) fn io_op(
        syscall: &'static str,
        context: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: None,
            syscall: Some(syscall),
            context: context.into(),
            source,
        }
    }

    /// Wraps an I/O error of the system call `syscall` on the file `path` (as the caller
    /// named it), with a description of what was being done (`context`, without the path:
    /// the message puts the path first).
    pub fn io_at(
        path: &Path,
        syscall: &'static str,
        context: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: Some(path.to_path_buf()),
            syscall: Some(syscall),
            context: context.into(),
            source,
        }
    }

    /// Names `file` as the file an I/O error or a damaged structure (a bad cookie or
    /// checksum, a truncated file, an invalid field, a BAT entry out of range or
    /// overlapping) concerns, unless it already names one: the entry points call this with
    /// the path their caller gave, so that an error from deep inside (a read of the BAT, a
    /// write of a block, the parse of a parent's header) says which file it was about.
    /// Other errors (which name their files themselves, or concern none) are returned
    /// unchanged.
    pub fn in_file(mut self, file: &Path) -> Error {
        if let Some(slot @ None) = path_field!(&mut self) {
            *slot = Some(file.to_path_buf());
        }
        self
    }

    /// The file the error concerns, once known (also inside a parent's error): what Node.js
    /// calls an error's `path`. For an I/O error or a damaged structure, the file it
    /// happened in; for an error about a child's parents, the child; for an output that
    /// would overwrite its input, the output. `None` for errors about no file in particular
    /// (an argument, a cancellation, a parent chain that loops).
    pub fn file(&self) -> Option<&Path> {
        let error = self.root();
        if let Some(path) = path_field!(error) {
            return path.as_deref();
        }
        match error {
            Error::WrongDiskType { path, .. }
            | Error::AlreadyExists(path)
            | Error::ChainTooDeep { path, .. }
            | Error::Locked { path, .. }
            | Error::FileType { path, .. }
            | Error::RepairRefused { path, .. }
            | Error::TooManyRanges { path, .. }
            | Error::NotVhd { path, .. }
            | Error::ForeignFormat { path, .. }
            | Error::ShrinkRefused { path, .. }
            | Error::OutputIsInput { output: path, .. }
            | Error::ParentNotFound { child: path, .. }
            | Error::ParentMismatch { child: path, .. }
            | Error::ParentModified { child: path, .. }
            | Error::ParentOutsideRoot { child: path, .. }
            | Error::ParentSearchLimit { child: path, .. } => Some(path),
            _ => None,
        }
    }

    /// For an I/O error (also inside a parent's error), the operating system's name of the
    /// error as Node.js and the C library spell it (`ENOENT`, `EACCES`, `ENOSPC`, `EROFS`,
    /// `EISDIR`…); `None` for other errors and for I/O errors without a known OS code.
    pub fn os_code(&self) -> Option<&'static str> {
        match self.root() {
            Error::Io { source, .. } => os_error_name(source),
            _ => None,
        }
    }
}

fn describe_not_vhd(file_size: u64, looks_like: Option<KnownFormat>) -> String {
    match looks_like {
        Some(format) => format!("it looks like {format}"),
        None if file_size < crate::footer::FOOTER_SIZE as u64 => {
            format!("it is {file_size} bytes long; a VHD has at least a 512-byte footer")
        }
        None => "it has no VHD footer (cookie \"conectix\") at its end or its start".into(),
    }
}

fn display_output_is_input(output: &Path, input: &Path) -> String {
    if output == input {
        format!("{} is both the input and the output", output.display())
    } else {
        format!(
            "the output {} is the input {} under another name",
            output.display(),
            input.display()
        )
    }
}

fn display_path_prefix(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// The name of an OS error (`ENOENT`, `EACCES`, …), from its number where the number means
/// the same on every Unix, else from its kind; `None` for uncommon ones.
pub(crate) fn os_error_name(error: &std::io::Error) -> Option<&'static str> {
    #[cfg(unix)]
    if let Some(name) = error.raw_os_error().and_then(unix_errno_name) {
        return Some(name);
    }
    use std::io::ErrorKind as K;
    Some(match error.kind() {
        K::NotFound => "ENOENT",
        K::PermissionDenied => "EACCES",
        K::AlreadyExists => "EEXIST",
        K::StorageFull => "ENOSPC",
        K::IsADirectory => "EISDIR",
        K::NotADirectory => "ENOTDIR",
        K::ReadOnlyFilesystem => "EROFS",
        K::FileTooLarge => "EFBIG",
        K::ResourceBusy => "EBUSY",
        K::InvalidFilename => "ENAMETOOLONG",
        K::QuotaExceeded => "EDQUOT",
        K::Interrupted => "EINTR",
        K::WouldBlock => "EAGAIN",
        // Sockets (the NBD server's): their numbers differ between systems, their kinds not.
        K::AddrInUse => "EADDRINUSE",
        K::AddrNotAvailable => "EADDRNOTAVAIL",
        _ => return None,
    })
}

/// Error numbers 1–34 are the same on Linux, macOS and the BSDs; the others differ.
#[cfg(unix)]
fn unix_errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        9 => "EBADF",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        11 => "EAGAIN",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        36 => "ENAMETOOLONG",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        40 => "ELOOP",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        122 => "EDQUOT",
        #[cfg(target_os = "macos")]
        35 => "EAGAIN",
        #[cfg(target_os = "macos")]
        62 => "ELOOP",
        #[cfg(target_os = "macos")]
        63 => "ENAMETOOLONG",
        #[cfg(target_os = "macos")]
        69 => "EDQUOT",
        _ => return None,
    })
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
