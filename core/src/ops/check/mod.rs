//! Checking an image's structure without changing it, in the spirit of `qemu-img check`.
//!
//! [`check`] opens the file read-only and never writes it. It reads the structures itself,
//! tolerantly, so that one problem does not hide the others, and reports every
//! [`Finding`] with a [`Severity`]:
//!
//! - [`Severity::Corrupt`]: the image is damaged: a structure is missing or has a bad
//!   checksum, a field holds an impossible value, a BAT entry points outside the file or at
//!   bytes something else uses, the parent cannot be found or is not the right one. Reading
//!   may give wrong data, or the image does not open at all.
//! - [`Severity::Leak`]: space is wasted, and nothing is lost: blocks no BAT entry refers
//!   to, as a crash between moving the footer and writing the BAT leaves them, and a file
//!   that ends in such space without its footer (the crash came before the moved footer
//!   reached the disk; the footer copy at offset 0 still describes the image).
//! - [`Severity::Info`]: worth knowing, and harmless: sizes that disagree with the CHS
//!   geometry (Windows and FreeBSD's mkimg images do), padding smaller than a block, more
//!   BAT entries than the size needs, a 511-byte footer.
//!
//! What is checked: the footer at the end (cookie, checksum, fields), its copy at offset 0
//! (dynamic and differencing images), the dynamic header (cookie, checksum, block size a
//! power of two, enough BAT entries for the size, the BAT inside the file), every BAT entry
//! (its block's sector bitmap and the data inside the virtual size, in whole sectors, must
//! lie in front of the footer, as opening requires; an entry is a sector number, so every
//! block is sector-aligned by construction, and a block off the grid the others follow
//! shows up as an overlap), that no two structures share bytes (blocks, footer copy,
//! header, BAT, parent locator data), the space no structure uses, the sector bitmaps
//! (see below), and, for differencing images, the parent link: the parent is found (as
//! [`Image::open`](crate::Image::open) finds it) and carries the unique id the child records. Sizes that
//! disagree with the CHS geometry are only information. Finally the image is opened as a
//! reader would (checksums ignored) to catch whatever else would stop it.
//!
//! Bitmap sanity: any pattern of bits is a valid bitmap, and bits past the end of the disk
//! are normal (qemu sets whole bitmaps). What is wrong is a bitmap that holds a footer
//! (cookie `conectix`): the trace of a BAT entry written before its block's bitmap. That
//! is damage in a differencing image, which reads its bitmaps, and only information in a
//! dynamic one, which does not.
//!
//! [`crate::ops::repair`] repairs what can be repaired safely.
//!
//! # Hostile images: bounded reports, memory and time
//!
//! A crafted image can have millions of findings: a 16 MiB BAT holds 4M entries, which may
//! all point at one block. A report lists at most [`MAX_LISTED_PER_KIND`] findings of each
//! kind, then one summary of the others ([`Finding::omitted`]); the totals
//! ([`CheckReport::count`], [`CheckReport::count_of`], the exit code) count every finding,
//! and a finding's message is formatted only when it is listed. The check's memory is
//! proportional to the BAT, whatever it holds: the table is read 64 KiB at a time, and each
//! block in front of the footer costs one 8-byte number (its sector and BAT index) while
//! the check runs. Its time is one sort of those numbers and linear passes over them
//! (overlaps, unused space, bitmaps; a sector bitmap several entries share is read once).
//!
//! [`CheckReport::exit_code`] follows `qemu-img check`: 0 clean, 2 corrupt, 3 leaked space
//! only (and 1, which this function never produces, is for a check that could not run:
//! [`check`] returned an error).
//!
//! # What is a leaked block
//!
//! Writers (ours included) append blocks at the end of the file, where the footer was, so
//! the file is: metadata (footer copy, dynamic header, BAT, parent locator data, in any
//! order), then blocks, then the footer. The space from the end of the metadata to the
//! footer that no BAT entry refers to is unused; every stretch of it is counted in whole
//! units of one block (its sector bitmap plus its data): `floor(length / unit)` leaked
//! blocks. A stretch shorter than a unit is padding (Windows pads files to 4 KiB, mkimg to a
//! cylinder) and only reported as [`Severity::Info`]. Unused space among the metadata (say,
//! between the header and a BAT placed at 8 KiB) is never a leak. When the footer at the end
//! of the file is missing (no `conectix` cookie there), the copy at offset 0 is valid, and
//! the last 512 bytes of the file are unused space past every structure, the file is the
//! remains of an interrupted allocation: that tail, less the 512 bytes where the footer
//! belongs, counts as `ceil(length / unit)` leaked blocks (at least one), and the missing
//! footer is a leak too. A footer that is there but has a bad
//! checksum is damage, not a crash: it is corrupt.
//!
//! # Where each pass is
//!
//! `report.rs` holds what a check returns ([`CheckReport`], [`Finding`], [`FindingKind`],
//! [`Severity`]) and the layout facts a repair plans from; the passes, in the order they
//! run: `footer.rs` (the footer, its copy, a fixed image's data), `sparse.rs` (the dynamic
//! header, where the BAT lies, the parent locators), `blocks.rs` (each BAT entry, the
//! sector bitmaps), `space.rs` (overlaps, leaked blocks, padding) and `open.rs` (opening
//! as a reader would: the parent link). Where structures and blocks lie, and which
//! overlap, is the layout model's to say (`image/layout.rs`); the passes turn its facts
//! into findings.

mod blocks;
mod footer;
mod json;
mod open;
mod report;
mod space;
mod sparse;

pub(crate) use open::is_parent_error;
pub(crate) use report::LayoutFacts;
pub use report::{CheckReport, Finding, FindingKind, Severity, PARENT_LINK_EXIT_CODE};

use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::image::{OpenOptions, ParentPath};
use crate::storage::Storage;
use open::open_check;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How many findings of one kind a report lists one by one. The others are counted (exactly,
/// by severity: [`CheckReport::count`], [`CheckReport::count_of`]) and summed up in one
/// last finding of that kind whose [`Finding::omitted`] says how many were left out, so that
/// a crafted image with millions of bad BAT entries gives a report of bounded size.
pub const MAX_LISTED_PER_KIND: usize = 1000;

/// How to check an image.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Parents named by the caller, nearest first, as in [`OpenOptions::parents`].
    pub parents: Vec<ParentPath>,
    /// Accept a parent whose time stamp is not the one the child recorded (see
    /// [`OpenOptions::ignore_parent_timestamp`]); otherwise such a parent is a finding.
    pub ignore_parent_timestamp: bool,
    /// Only accept parents inside this folder (see [`OpenOptions::parent_root`]).
    pub parent_root: Option<PathBuf>,
    /// Follow parent locators naming network paths (Windows; see
    /// [`OpenOptions::allow_remote_parents`]).
    pub allow_remote_parents: bool,
    /// Take a shared lock on the file (and the parents) while checking, as a read-only
    /// [`Image::open`](crate::Image::open) does (default `true`), so that an image open for writing elsewhere
    /// is refused with [`Error::Locked`] rather than checked in the middle of a change.
    /// [`crate::ops::repair`] takes an exclusive lock instead, refusing an image open
    /// anywhere else.
    pub lock: bool,
    /// Do not look for the parent of a differencing image (the parent link is then not
    /// checked).
    pub skip_parent: bool,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            parents: Vec::new(),
            ignore_parent_timestamp: false,
            parent_root: None,
            allow_remote_parents: false,
            lock: true,
            skip_parent: false,
        }
    }
}

impl From<&OpenOptions> for CheckOptions {
    /// The options that say how to open the chain (`parents`, `ignore_parent_timestamp`,
    /// `parent_root`, `allow_remote_parents`, `lock`), taken from open options, so that a caller that has them
    /// checks the image as it would open it. `read_only`, `ignore_checksums` and
    /// `expected_type` do not apply (a check reads, and reports bad checksums).
    fn from(open: &OpenOptions) -> CheckOptions {
        CheckOptions {
            parents: open.parents.clone(),
            ignore_parent_timestamp: open.ignore_parent_timestamp,
            parent_root: open.parent_root.clone(),
            allow_remote_parents: open.allow_remote_parents,
            lock: open.lock,
            ..CheckOptions::default()
        }
    }
}

impl CheckOptions {
    /// How the check (and repair) opens the chain to read it: read-only, checksums ignored
    /// (they are findings, not reasons to stop), with the chain options of `self`.
    pub(crate) fn open_for_reading(&self) -> OpenOptions {
        OpenOptions {
            read_only: true,
            ignore_checksums: true,
            parents: self.parents.clone(),
            ignore_parent_timestamp: self.ignore_parent_timestamp,
            parent_root: self.parent_root.clone(),
            allow_remote_parents: self.allow_remote_parents,
            lock: self.lock,
            ..OpenOptions::default()
        }
    }
}

/// Checks the image at `path` (see the [module documentation](self)). The file is opened
/// read-only and never written.
///
/// Problems with the image are findings of the report; an error is returned only when the
/// check cannot run: the file cannot be opened or read, or it is locked for writing.
pub fn check(path: impl AsRef<Path>, options: &CheckOptions) -> Result<CheckReport> {
    let path = path.as_ref();
    check_unnamed(path, options).map_err(|e| e.in_file(path))
}

/// [`check`], whose I/O errors may not name the file yet.
fn check_unnamed(path: impl AsRef<Path>, options: &CheckOptions) -> Result<CheckReport> {
    let path = path.as_ref();
    let (file, _) = crate::files::open(
        path,
        std::fs::File::options().read(true),
        crate::files::Use::Read,
        "an image",
        |e| Error::io_at(path, "open", "opening the file", e),
    )?;
    let storage = crate::image::locked_storage(file, path, true, options.lock)?;
    let mut report = check_storage(storage, path, options)?;
    report.note_stale_temp_files();
    Ok(report)
}

/// Checks the image held by `file`, as [`check`] does; `path` names it in messages and
/// is where the parent of a differencing image is looked for. Nothing is written.
pub fn check_storage(
    file: Box<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
) -> Result<CheckReport> {
    let mut report = check_layout(file, path, options)?;
    // What the check learnt of the layout (up to 8 bytes per BAT entry) only serves a
    // repair.
    report.layout = LayoutFacts::default();
    Ok(report)
}

/// Checks as [`check_storage`] does, and keeps in the report what a repair plans from.
pub(crate) fn check_layout(
    file: Box<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
) -> Result<CheckReport> {
    let file_size = file
        .file_size()
        .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?;
    let mut checker = Checker {
        file: file.as_ref(),
        file_size,
        report: CheckReport {
            path: path.to_path_buf(),
            file_size,
            disk_type: None,
            footer_source: None,
            virtual_size: None,
            block_size: None,
            table_entries: 0,
            allocated_blocks: 0,
            leaked_blocks: 0,
            parent: None,
            findings: Vec::new(),
            tally: BTreeMap::new(),
            layout: LayoutFacts::default(),
        },
        header_offset: 0,
    };
    let structure_read = checker.check_structures()?;
    let mut report = checker.report;
    if structure_read {
        open_check(file, path, options, &mut report);
    }
    report.summarise();
    Ok(report)
}

struct Checker<'a> {
    file: &'a dyn Storage,
    file_size: u64,
    report: CheckReport,
    /// Where the dynamic header is (sparse images), for the offsets of its fields.
    header_offset: u64,
}

impl Checker<'_> {
    pub(super) fn add(
        &mut self,
        severity: Severity,
        kind: FindingKind,
        offset: Option<u64>,
        message: String,
    ) {
        self.report.add(severity, kind, offset, || message);
    }

    pub(super) fn read(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io(
                format!(
                    "reading {what} at offset {offset} of {}",
                    self.report.path.display()
                ),
                e,
            )
        })
    }

    /// A footer at `offset`: `None` without the cookie, else the footer and whether its
    /// checksum is right. `length` is 512, or 511 for the short footer of old images.
    pub(super) fn read_footer(&self, offset: u64, length: usize) -> Result<Option<(Footer, bool)>> {
        let mut bytes = [0u8; FOOTER_SIZE];
        self.read(&mut bytes[..length], offset, "a footer")?;
        Ok(Footer::parse(&bytes, offset).ok().map(|footer| {
            let good = footer.verify_checksum(offset).is_ok();
            (footer, good)
        }))
    }

    /// Reads the structures and checks them. Returns whether the image's kind and layout
    /// could be worked out (so that opening it is worth trying).
    fn check_structures(&mut self) -> Result<bool> {
        let Some(chosen) = self.choose_footer()? else {
            return Ok(false);
        };
        let footer = &chosen.footer;
        self.report.virtual_size = Some(footer.current_size);
        self.report.layout.footer = Some(footer.clone());
        self.report.layout.limit = chosen.limit;
        let Some(disk_type) = footer.disk_type() else {
            self.add(
                Severity::Corrupt,
                FindingKind::FooterField,
                Some(60),
                format!(
                    "the footer's disk type is {}: expected 2 (fixed), 3 (dynamic) or 4 (differencing)",
                    footer.disk_type_code
                ),
            );
            return Ok(false);
        };
        self.report.disk_type = Some(disk_type);
        self.check_footer_fields(footer);
        match disk_type {
            DiskType::Fixed => {
                self.check_fixed(&chosen);
                Ok(true)
            }
            DiskType::Dynamic | DiskType::Differencing => self.check_sparse(&chosen, disk_type),
        }
    }
}
