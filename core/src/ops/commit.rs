//! Merging a differencing image into its parent (`qemu-img commit`).
//!
//! # Steps, and what a crash (or a failure) at each point leaves
//!
//! 1. The child's file is locked exclusively for the whole operation, its chain opened
//!    (unlocked: the parent is then locked below) and the runs of sectors it holds counted
//!    (walked a window of the disk at a time, here and in step 3, never all held in
//!    memory: a crafted child can hold millions of runs). The parent is opened read-write with an exclusive lock (its own chain read-only), so
//!    nobody else uses the parent, nor the child, meanwhile. Nothing is written yet.
//! 2. The child's recorded parent time stamp is set to 0 ("not recorded", as Windows
//!    diskpart writes it), one header write, fsync: from here on the parent changes, and
//!    the child must stay openable whatever happens.
//! 3. The child's runs are copied into the parent in chunks of up to 4 MiB (progress and
//!    cancellation between chunks), then the parent is flushed (fsync). A crash here
//!    leaves a chain that reads exactly as before: the child still holds every sector it
//!    held, and they hide the parent's. Committing again finishes the job (copying is
//!    idempotent). A cancelled or failed copy flushes the parent and records its new time
//!    stamp in the child (step 4) before returning the error.
//! 4. The child records the parent's new modification time (one header write, fsync), as
//!    the child's open checks it. A crash here leaves the child at time stamp 0: still
//!    consistent, and committing again finishes.
//! 5. The child is emptied: every BAT entry unallocated (one write of the table), fsync —
//!    the chain now reads the parent's (identical) data. Locator data that a rebase put
//!    after the blocks is copied next to the BAT (fsync) and the header pointed at it (one
//!    write, fsync). Then the footer is written right after the child's metadata (dynamic
//!    header, BAT, locator data), fsync, and the file cut after it, fsync (a power cut can
//!    keep a cut and lose an unsynced write: the footer must be durable first, so that the
//!    file ends with a valid footer at every instant). A crash in this step leaves
//!    the old blocks as leaked space ahead of the old footer (`check` reports a leak, exit
//!    code 3; nothing is read wrong), and the old or the new locators, both complete.
//!
//! Other children of the same parent are NOT updated: their data was written over the
//! parent's old contents, which commit changed, so they no longer read what they did.
//! Their open fails with [`Error::ParentModified`] (the parent's time stamp changed), as
//! qemu leaves them invalid too. Commit only the last snapshot of a parent that has several.

use super::Progress;
use crate::dynamic_header::DynamicHeader;
use crate::error::{Error, ParentRejection, Result, TriedParent};
use crate::footer::{DiskType, FOOTER_SIZE};
use crate::image::LockedFile;
use crate::ops::AllocatedRange;
use crate::parent_locator::MAX_LOCATOR_BYTES;
use crate::storage::Storage;
use crate::{FooterSource, Image, OpenOptions, Parent, VirtualDisk};
use std::path::{Path, PathBuf};

/// Largest single copy: big sequential I/O, few syscalls, bounded memory.
const CHUNK: u64 = 4 << 20;

/// The operation name given to [`Progress::report`].
const OPERATION: &str = "commit";

/// What `commit` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// The parent that received the data.
    pub parent: PathBuf,
    /// Bytes copied into the parent (every sector the child held).
    pub bytes_committed: u64,
    /// The child's file size after it was emptied.
    pub child_file_size: u64,
}

/// Writes the sectors present in the differencing image at `path` into its parent (only
/// those: what the child does not hold is left as it is), then empties the child, so that
/// the chain reads exactly as before and the child is ready for new writes.
///
/// `options` say how to open the chain: [`OpenOptions::parents`] names the parent (entry
/// 0, a VHD or a raw file, which is then written) and the levels below;
/// `ignore_parent_timestamp`, `ignore_checksums` and `parent_root` apply as for
/// [`Image::open`]; `read_only` must be off and `expected_type` is ignored. The parent may
/// be a fixed, dynamic or differencing image or a raw file; data the child holds past the
/// parent's end is refused ([`Error::InvalidArgument`]: grow the parent first).
///
/// Refused: an image that is not a differencing one ([`Error::WrongDiskType`]), a child
/// or parent that cannot be written ([`Error::ReadOnly`], for instance when opened from
/// its footer copy), a child or parent open elsewhere ([`Error::Locked`]).
///
/// `progress` gets `(bytes copied, bytes to copy)` after every chunk of up to 4 MiB;
/// cancelling stops between chunks with [`Error::Cancelled`] and leaves a consistent chain
/// whose child still holds all its data. See the module documentation for the order of
/// the writes and what a crash leaves. Other children of the parent become invalid.
pub fn commit(path: &Path, options: &OpenOptions, progress: Progress) -> Result<CommitReport> {
    commit_unnamed(path, options, progress).map_err(|e| e.in_file(path))
}

/// [`commit`], whose I/O errors may not name the file yet.
fn commit_unnamed(path: &Path, options: &OpenOptions, progress: Progress) -> Result<CommitReport> {
    if options.read_only {
        return Err(Error::InvalidArgument {
            name: "options.read_only",
            reason: "commit writes the child and its parent".into(),
        });
    }
    let child_file = open_locked(path, options.lock)?;
    commit_through(&child_file, path, options, progress)
}

/// [`commit`], writing the child through `child_file`, which must hold what the file at
/// `path` holds (the chain is read through `path`; the caller opened and locks the file):
/// the injection point of the crash tests, which hand in a storage that dies or loses
/// power after any write. Not a stable interface.
#[doc(hidden)]
pub fn commit_through(
    child_file: &dyn Storage,
    path: &Path,
    options: &OpenOptions,
    progress: Progress,
) -> Result<CommitReport> {
    let child = Child::inspect(path, options)?;
    let mut parent = Target::open(&child, options)?;
    let total = child.bytes_held;
    progress.report(OPERATION, 0, total)?;

    // The parent changes from here on: until its new modification time is recorded, the
    // child records none (0, accepted by every reader), marked as a commit in progress so
    // that an interruption can be told from a 0 written on purpose (see
    // `COMMIT_IN_PROGRESS`).
    let mut header = child.header.clone();
    header.parent_timestamp = 0;
    header.set_commit_in_progress(true);
    write_header(child_file, path, child.header_offset, &mut header)?;
    let copied = copy_runs(
        child_file,
        child.image.own_ranges_iter(),
        &mut parent,
        total,
        progress,
    );
    // Whatever happened, the parent is made durable and the child records its new time
    // stamp, so that the chain opens as usual; the first error is the one reported.
    let recorded = parent.flush().and_then(|()| {
        header.parent_timestamp = crate::files::modification_timestamp(&parent.path)?;
        header.set_commit_in_progress(false);
        write_header(child_file, path, child.header_offset, &mut header)
    });
    copied.and(recorded)?;

    // No progress report from here on: the last chunk reported `total`, and a cancel now
    // would come too late to leave the child as it was.
    let child_file_size = empty(child_file, path, &child, header)?;
    Ok(CommitReport {
        parent: parent.path,
        bytes_committed: total,
        child_file_size,
    })
}

/// What commit needs to know about the child, read from its open chain.
struct Child {
    path: PathBuf,
    header: DynamicHeader,
    header_offset: u64,
    /// Offset of the footer at the end of the file, and its bytes (kept as they are).
    footer_offset: u64,
    footer_bytes: [u8; FOOTER_SIZE],
    /// The child's open image (not locked: `commit` holds the lock), whose runs of sectors
    /// are listed as they are copied, a bounded number at a time: a crafted child can hold
    /// millions of runs.
    image: Image,
    /// The bytes of the runs the child holds.
    bytes_held: u64,
    parent_path: PathBuf,
    parent_is_raw: bool,
    parent_unique_id: [u8; 16],
}

impl Child {
    /// Opens the chain (without locking: the caller holds the child's lock, and the parent
    /// is locked when it is reopened for writing) and reads what commit needs.
    fn inspect(path: &Path, options: &OpenOptions) -> Result<Child> {
        let image = Image::open(
            path,
            &OpenOptions {
                read_only: false,
                lock: false,
                expected_type: Some(DiskType::Differencing),
                ..options.clone()
            },
        )?;
        if let Some(reason) = image.read_only_reason() {
            return Err(Error::ReadOnly {
                path: Some(path.to_path_buf()),
                reason: reason.to_string(),
            });
        }
        if image.footer_source() != FooterSource::End {
            return Err(Error::Unsupported(format!(
                "{}: the footer is not in the last 512 bytes of the file; repair the image first",
                path.display()
            )));
        }
        let header = image
            .header()
            .expect("differencing images have one")
            .clone();
        let parent = image.parent().expect("differencing images have one");
        let parent_size = parent.disk().size();
        let mut bytes_held = 0;
        for range in image.own_ranges_iter() {
            let range = range?;
            bytes_held += range.length;
            if range.offset + range.length <= parent_size {
                continue;
            }
            return Err(Error::InvalidArgument {
                name: "path",
                reason: format!(
                    "{} holds data at bytes {}..{}, past the end of its {parent_size}-byte parent {}: grow the parent first",
                    path.display(),
                    range.offset,
                    range.offset + range.length,
                    parent.path().display()
                ),
            });
        }
        let file_size = std::fs::metadata(path)
            .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?
            .len();
        let footer_offset = file_size - FOOTER_SIZE as u64;
        Ok(Child {
            path: path.to_path_buf(),
            header_offset: image.footer().data_offset,
            footer_offset,
            footer_bytes: image.footer().to_bytes(),
            bytes_held,
            parent_path: parent.path().to_path_buf(),
            parent_is_raw: matches!(parent, Parent::Raw(_)),
            parent_unique_id: header.parent_unique_id,
            header,
            image,
        })
    }
}

/// The parent, open for writing.
struct Target {
    path: PathBuf,
    disk: TargetDisk,
}

enum TargetDisk {
    Image(Box<Image>),
    /// A raw base, written at the same offsets as the virtual disk.
    Raw(LockedFile),
}

impl Target {
    /// Opens the child's parent read-write and locked (its own chain read-only), and checks
    /// that it is still the image the child records.
    fn open(child: &Child, options: &OpenOptions) -> Result<Target> {
        let path = child.parent_path.clone();
        if child.parent_is_raw {
            return Ok(Target {
                disk: TargetDisk::Raw(open_locked(&path, options.lock)?),
                path,
            });
        }
        let image = Image::open(
            &path,
            &OpenOptions {
                read_only: false,
                expected_type: None,
                parents: options.parents.iter().skip(1).cloned().collect(),
                ..options.clone()
            },
        )?;
        if let Some(reason) = image.read_only_reason() {
            return Err(Error::ReadOnly {
                path: Some(path.to_path_buf()),
                reason: reason.to_string(),
            });
        }
        let found = image.footer().unique_id;
        if found != child.parent_unique_id {
            return Err(Error::ParentMismatch {
                child: child.path.clone(),
                parent: path.clone(),
                tried: vec![TriedParent {
                    path,
                    rejection: ParentRejection::DifferentDisk,
                }],
            });
        }
        Ok(Target {
            disk: TargetDisk::Image(Box::new(image)),
            path,
        })
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> Result<()> {
        match &mut self.disk {
            TargetDisk::Image(image) => image.write_at(data, offset),
            TargetDisk::Raw(file) => file
                .write_all_at(data, offset)
                .map_err(|e| Error::io_at(&self.path, "write", format!("writing at {offset}"), e)),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match &mut self.disk {
            TargetDisk::Image(image) => image.flush(),
            TargetDisk::Raw(file) => {
                Storage::sync(file).map_err(|e| Error::io_at(&self.path, "fsync", "flushing", e))
            }
        }
    }
}

/// Copies each run from the child's file into the parent, in chunks of up to [`CHUNK`].
fn copy_runs(
    child: &dyn Storage,
    ranges: impl Iterator<Item = Result<AllocatedRange>>,
    parent: &mut Target,
    total: u64,
    progress: Progress,
) -> Result<()> {
    let mut buffer = vec![0u8; CHUNK.min(total) as usize];
    let mut done = 0;
    for range in ranges {
        let range = range?;
        let file_offset = range
            .file_offset
            .expect("allocated_ranges sets file offsets");
        let mut position = 0;
        while position < range.length {
            let length = CHUNK.min(range.length - position) as usize;
            let chunk = &mut buffer[..length];
            let at = file_offset + position;
            child
                .read_exact_at(chunk, at)
                .map_err(|e| Error::io(format!("reading the child's data at {at}"), e))?;
            parent.write_at(chunk, range.offset + position)?;
            position += length as u64;
            done += length as u64;
            progress.report(OPERATION, done, total)?;
        }
    }
    Ok(())
}

/// Marks every block of the child unallocated, packs the locator data next to the BAT if
/// that lets the file shrink, then moves the footer to the end of the metadata and cuts
/// the file there. `header` is the child's header as it is on disk. Returns the new file
/// size.
fn empty(file: &dyn Storage, path: &Path, child: &Child, header: DynamicHeader) -> Result<u64> {
    let table = vec![0xFF; header.max_table_entries as usize * 4];
    file.write_all_at(&table, header.table_offset)
        .map_err(|e| Error::io_at(path, "write", "writing the BAT", e))?;
    sync(file, path)?;
    let header = pack_locators(file, path, child, header)?;
    let end = metadata_end(&header, child);
    if end < child.footer_offset {
        file.write_all_at(&child.footer_bytes, end)
            .map_err(|e| Error::io_at(path, "write", "writing the footer", e))?;
        // The footer is durable before the file is cut after it: a power cut may keep the
        // cut and lose an unsynced write, and the file would then end without a footer.
        sync(file, path)?;
        file.set_len(end + FOOTER_SIZE as u64)
            .map_err(|e| Error::io_at(path, "ftruncate", "truncating", e))?;
        sync(file, path)?;
        return Ok(end + FOOTER_SIZE as u64);
    }
    Ok(child.footer_offset + FOOTER_SIZE as u64)
}

/// A rebase appends locator data after the blocks, where it would keep the emptied child
/// from shrinking. When every locator's data lies past the dynamic header and the BAT, it
/// is copied right after them (space the emptied BAT freed, clear of the data being
/// copied), fsync, then the header points at the copies (one write, fsync): a crash in
/// between leaves the old header and the old data intact. Returns the header on disk.
fn pack_locators(
    file: &dyn Storage,
    path: &Path,
    child: &Child,
    mut header: DynamicHeader,
) -> Result<DynamicHeader> {
    let start = structures_end(&header, child.header_offset);
    let mut data = Vec::new();
    let mut entries = header.parent_locators;
    for entry in entries.iter_mut().filter(|l| !l.is_empty()) {
        let length = entry.platform_data_length;
        let inside = entry.platform_data_offset >= start
            && entry.platform_data_offset.saturating_add(u64::from(length)) <= child.footer_offset;
        if !inside || length > MAX_LOCATOR_BYTES {
            return Ok(header);
        }
        let mut payload = vec![0u8; length as usize];
        file.read_exact_at(&mut payload, entry.platform_data_offset)
            .map_err(|e| Error::io_at(path, "read", "reading a parent locator", e))?;
        let space = payload.len().next_multiple_of(512);
        entry.platform_data_offset = start + data.len() as u64;
        entry.platform_data_space = space as u32;
        data.extend_from_slice(&payload);
        data.resize(data.len() + space - payload.len(), 0);
    }
    let packed_end = start + data.len() as u64;
    let overlaps = header
        .parent_locators
        .iter()
        .any(|l| !l.is_empty() && l.platform_data_offset < packed_end);
    if data.is_empty() || overlaps || packed_end >= metadata_end(&header, child) {
        return Ok(header);
    }
    file.write_all_at(&data, start)
        .map_err(|e| Error::io_at(path, "write", "writing parent locators", e))?;
    sync(file, path)?;
    header.parent_locators = entries;
    write_header(file, path, child.header_offset, &mut header)?;
    Ok(header)
}

/// The first sector boundary past the footer copy, the dynamic header and the BAT.
fn structures_end(header: &DynamicHeader, header_offset: u64) -> u64 {
    let bat_end = crate::image::bat_extent(header).end;
    [
        FOOTER_SIZE as u64,
        crate::image::header_extent(header_offset).end,
        bat_end,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
    .next_multiple_of(512)
}

/// The first sector boundary past the footer copy, the dynamic header, the BAT (padded to
/// a sector) and every parent locator's data space: what an empty child keeps.
fn metadata_end(header: &DynamicHeader, child: &Child) -> u64 {
    let locators = header
        .parent_locators
        .iter()
        .filter(|l| !l.is_empty() && l.platform_data_offset < child.footer_offset)
        .map(|l| {
            let space = u64::from(l.platform_data_space);
            let length = u64::from(l.platform_data_length);
            // The space is in sectors by the specification, in bytes as Windows writes it.
            let space = if space < length { space * 512 } else { space };
            (l.platform_data_offset + space.max(length)).min(child.footer_offset)
        });
    std::iter::once(structures_end(header, child.header_offset))
        .chain(locators)
        .max()
        .unwrap_or(0)
        .next_multiple_of(512)
}

/// Opens `path` read-write with an exclusive lock (when `lock`), held until the file is
/// dropped.
pub(super) fn open_locked(path: &Path, lock: bool) -> Result<LockedFile> {
    let (file, _) = crate::files::open(
        path,
        std::fs::OpenOptions::new().read(true).write(true),
        crate::files::Use::WriteFile,
        "an image opened for writing",
        |e| Error::io_at(path, "open", "opening the file", e),
    )?;
    LockedFile::new(file, path, false, lock)
}

/// Writes `header` (with a fresh checksum) at `offset` in one write, then fsyncs.
pub(super) fn write_header(
    file: &dyn Storage,
    path: &Path,
    offset: u64,
    header: &mut DynamicHeader,
) -> Result<()> {
    header.update_checksum();
    file.write_all_at(&header.to_bytes(), offset).map_err(|e| {
        Error::io(
            format!("writing the dynamic header of {}", path.display()),
            e,
        )
    })?;
    sync(file, path)
}

pub(super) fn sync(file: &dyn Storage, path: &Path) -> Result<()> {
    file.sync()
        .map_err(|e| Error::io_at(path, "fsync", "flushing to disk (fsync)", e))
}
