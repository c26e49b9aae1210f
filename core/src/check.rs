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
//! [`Image::open`] finds it) and carries the unique id the child records. Sizes that
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

use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE};
use crate::dynamic_header::{
    DynamicHeader, DYNAMIC_HEADER_SIZE, HEADER_VERSION, PARENT_TIMESTAMP_NOT_RECORDED,
};
use crate::error::{Error, Result};
use crate::footer::{
    DiskType, Footer, FEATURE_RESERVED, FOOTER_COOKIE, FOOTER_SIZE, FORMAT_VERSION, NO_DATA_OFFSET,
};
use crate::image::{
    BlockExtent, BlockGeometry, BlockList, FileLayout, Occupant, OutOfRange, Region, Stretch,
    Structure,
};
use crate::image::{FooterSource, Image, OpenOptions, ParentPath};
use crate::parent_locator::platform;
use crate::storage::Storage;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How many findings of one kind a report lists one by one. The others are counted (exactly,
/// by severity: [`CheckReport::count`], [`CheckReport::count_of`]) and summed up in one
/// last finding of that kind whose [`Finding::omitted`] says how many were left out, so that
/// a crafted image with millions of bad BAT entries gives a report of bounded size.
pub const MAX_LISTED_PER_KIND: usize = 1000;

/// BAT entries read at a time (64 KiB): the check never holds the whole table.
const BAT_CHUNK_ENTRIES: u64 = 16 * 1024;

/// The most bytes read at once for the cookies of sector bitmaps that lie close together.
const BITMAP_WINDOW: u64 = 64 * 1024;
/// Bitmaps closer than this to the previous one are read with it: the bytes between (a
/// page or two) cost less than a read of their own. Further apart, as the blocks of images
/// with usual block sizes are, each cookie is read alone.
const BITMAP_GAP: u64 = 8 * 1024;

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
    /// [`Image::open`] does (default `true`), so that an image open for writing elsewhere
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

/// How bad a finding is. Ordered: `Info < Leak < Corrupt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Harmless, for information.
    Info = 0,
    /// Wasted space; no data is lost or wrong.
    Leak = 1,
    /// Damage: data may read wrong, or the image may not open.
    Corrupt = 2,
}

impl Severity {
    /// `"info"`, `"leak"` or `"corrupt"`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Leak => "leak",
            Severity::Corrupt => "corrupt",
        }
    }
}

/// What a finding is about. Each kind has a stable [`code`](FindingKind::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// The file is too short for a structure (or for the data of a fixed image).
    Truncated,
    /// No footer (cookie `conectix`) at the end of the file.
    FooterMissing,
    /// The footer at the end has a bad checksum.
    FooterChecksum,
    /// A footer field holds a wrong or unusual value (disk type, data offset, version…).
    FooterField,
    /// A dynamic or differencing image has no footer copy at offset 0.
    FooterCopyMissing,
    /// The footer copy at offset 0 has a bad checksum.
    FooterCopyChecksum,
    /// The footer copy differs from the footer (corrupt when the disk type, data offset,
    /// size or unique id differ; information for other fields).
    FooterCopyMismatch,
    /// The virtual size and the CHS geometry describe different sizes (never an error).
    SizeGeometry,
    /// No dynamic header (cookie `cxsparse`) at the footer's data offset.
    HeaderCookie,
    /// The dynamic header has a bad checksum.
    HeaderChecksum,
    /// A dynamic header field holds a wrong or unusual value (block size, max table
    /// entries, table offset, version…).
    HeaderField,
    /// A BAT entry points (partly) outside the file or into the footer: the block's data is
    /// not all there.
    BatOutOfRange,
    /// A BAT entry points so far that not even the block's sector bitmap is in front of the
    /// footer.
    BitmapOutOfRange,
    /// A BAT entry belongs to a block past the end of the virtual disk.
    BatPastDiskEnd,
    /// Two structures claim the same bytes of the file: two blocks, or a block and the
    /// header, the BAT, the footer copy or parent locator data.
    Overlap,
    /// A parent locator's data is not inside the file (or its platform code is unknown).
    LocatorOutOfRange,
    /// Blocks that no BAT entry refers to.
    LeakedBlock,
    /// Unused space smaller than a block (padding).
    UnusedSpace,
    /// The parent of a differencing image was not found.
    ParentNotFound,
    /// A file was found where the parent should be, but its unique id is another one.
    ParentMismatch,
    /// The parent was modified after the child was made (its time stamp differs).
    ParentModified,
    /// The parent was found but cannot be used (it, or its own chain, is damaged).
    ParentUnusable,
    /// The parent link could not be checked because the image itself does not open.
    ParentNotChecked,
    /// A differencing image records no parent time stamp (0, as Windows diskpart writes):
    /// its parent is bound by its unique id alone (never an error).
    ParentTimestampNotRecorded,
    /// The image does not open, for a reason none of the other checks names.
    OpenFailed,
    /// An allocated block's sector bitmap holds a footer (cookie `conectix`): the BAT entry
    /// reached the disk but the bitmap was never written, so the footer that stood there
    /// before the block was allocated is read as a bitmap. In a differencing image that
    /// marks sectors present that the child never wrote (they should come from the parent).
    BitmapHoldsFooter,
    /// The footer copy at offset 0 still describes the size the image had before a resize:
    /// it differs from the footer at the end in the current and original sizes (and the
    /// geometry) only, and the footer is one a resize writes (original size = current
    /// size, the geometry of that size). A resize that was killed between writing the
    /// footer and its copy leaves this: the image reads right (readers take the footer at
    /// the end), and `check --repair` writes the copy from the footer. A leak: nothing is
    /// lost, it is repairable; readers that take the copy (qemu, for dynamic images) see
    /// the old size meanwhile.
    FooterCopyStale,
    /// A commit of this differencing image into its parent was interrupted (the header
    /// carries [`COMMIT_IN_PROGRESS`](crate::dynamic_header::COMMIT_IN_PROGRESS)): the
    /// chain reads right, but the child records no parent time stamp, so a later change of
    /// the parent would go unnoticed. A leak: repairable (`check --repair` records the
    /// parent's modification time; running the commit again finishes it).
    CommitInterrupted,
    /// A temporary file beside the image that a `create`, `compact` or `convert` of it left
    /// when its process was killed (its process is gone): space wasted outside the image,
    /// for information. Remove it.
    StaleTempFile,
}

impl FindingKind {
    /// A stable, machine-readable name, e.g. `"leaked-block"`.
    pub fn code(self) -> &'static str {
        match self {
            FindingKind::Truncated => "truncated",
            FindingKind::FooterMissing => "footer-missing",
            FindingKind::FooterChecksum => "footer-checksum",
            FindingKind::FooterField => "footer-field",
            FindingKind::FooterCopyMissing => "footer-copy-missing",
            FindingKind::FooterCopyChecksum => "footer-copy-checksum",
            FindingKind::FooterCopyMismatch => "footer-copy-mismatch",
            FindingKind::SizeGeometry => "size-geometry",
            FindingKind::HeaderCookie => "header-cookie",
            FindingKind::HeaderChecksum => "header-checksum",
            FindingKind::HeaderField => "header-field",
            FindingKind::BatOutOfRange => "bat-out-of-range",
            FindingKind::BitmapOutOfRange => "bitmap-out-of-range",
            FindingKind::BatPastDiskEnd => "bat-past-disk-end",
            FindingKind::Overlap => "overlap",
            FindingKind::LocatorOutOfRange => "locator-out-of-range",
            FindingKind::LeakedBlock => "leaked-block",
            FindingKind::UnusedSpace => "unused-space",
            FindingKind::ParentNotFound => "parent-not-found",
            FindingKind::ParentMismatch => "parent-mismatch",
            FindingKind::ParentModified => "parent-modified",
            FindingKind::ParentUnusable => "parent-unusable",
            FindingKind::ParentNotChecked => "parent-not-checked",
            FindingKind::ParentTimestampNotRecorded => "parent-timestamp-not-recorded",
            FindingKind::OpenFailed => "open-failed",
            FindingKind::BitmapHoldsFooter => "bitmap-holds-footer",
            FindingKind::FooterCopyStale => "footer-copy-stale",
            FindingKind::CommitInterrupted => "commit-interrupted",
            FindingKind::StaleTempFile => "stale-temp-file",
        }
    }
}

/// One problem (or remark) about an image; or, when [`omitted`](Finding::omitted) is set,
/// the summary of the findings of its kind that were not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// For a summary: the worst severity among the findings it stands for.
    pub severity: Severity,
    pub kind: FindingKind,
    /// The file offset the finding is about, when there is one (never for a summary).
    pub offset: Option<u64>,
    /// What is wrong, with offsets, for a human.
    pub message: String,
    /// `None` for a finding. For the summary that ends a kind's list once
    /// [`MAX_LISTED_PER_KIND`] findings of that kind are listed: how many more were found
    /// and not listed.
    pub omitted: Option<u64>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.severity.name(),
            self.kind.code(),
            self.message
        )
    }
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    path: PathBuf,
    file_size: u64,
    disk_type: Option<DiskType>,
    footer_source: Option<FooterSource>,
    virtual_size: Option<u64>,
    block_size: Option<u32>,
    table_entries: u64,
    allocated_blocks: u64,
    leaked_blocks: u64,
    parent: Option<PathBuf>,
    findings: Vec<Finding>,
    /// Every finding made, listed or not: how many of each kind, by severity (indexed by
    /// `Severity as usize`).
    tally: BTreeMap<FindingKind, [u64; 3]>,
    /// The structures as the check read them, for `ops::repair`.
    pub(crate) layout: LayoutFacts,
}

/// What the check learnt of a file's layout: what `ops::repair` plans its changes from, so
/// that it acts on exactly what the check judged.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayoutFacts {
    /// The footer the check relied on (the one at the end, or the copy standing in for it).
    pub footer: Option<Footer>,
    /// The footer at the end of the file, if it has the cookie: the footer, whether its
    /// checksum is right, and its offset.
    pub end_footer: Option<(Footer, bool, u64)>,
    /// The copy at offset 0, if it has the cookie, and whether its checksum is right.
    pub copy: Option<(Footer, bool)>,
    /// Where blocks must end: the offset of the end footer (the file size without one).
    pub limit: u64,
    /// The dynamic header and its offset, when it was read (sparse images).
    pub header: Option<(u64, DynamicHeader)>,
    /// Whether the BAT was read (it is not kept: a repair reads what it rewrites).
    pub bat_read: bool,
    /// `(block, sector)` of the BAT entries whose block is not (wholly) in front of the
    /// footer, in block order ([`LayoutFacts::out_of_range_kind`] says which finding each
    /// gave).
    pub out_of_range: Vec<(u32, u32)>,
    /// The sector of the first block in the file (of those in front of the footer).
    pub first_block: Option<u32>,
    /// Where the blocks lie (sparse images whose header was read).
    pub geometry: Option<BlockGeometry>,
    /// The end of the space used by structures and blocks (sparse images).
    pub used_end: u64,
    /// Unused space of at least one block that ends at the footer: (start, end).
    pub trailing_leak: Option<(u64, u64)>,
    /// `(block, sector)` of the BAT entries whose block overlaps another structure or block
    /// (at most [`MAX_LISTED_PER_KIND`]), both blocks of a pair: one of them may be a BAT
    /// entry that lost a bit.
    pub overlapping: Vec<(u32, u32)>,
}

impl CheckReport {
    /// The path that was checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The findings listed, in the order found (those about BAT entries in the BAT's order,
    /// those about stretches of the file, such as overlaps and leaks, in the file's order,
    /// then the BAT's), at most [`MAX_LISTED_PER_KIND`] of each kind, followed by one
    /// summary (see [`Finding::omitted`]) for each kind that had more.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings of one kind that are listed (and its summary, if some were omitted).
    pub fn findings_of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> + '_ {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// How many findings of `severity` were made, listed or not.
    pub fn count(&self, severity: Severity) -> u64 {
        self.tally
            .values()
            .map(|counts| counts[severity as usize])
            .sum()
    }

    /// How many findings of `kind` were made, listed or not.
    pub fn count_of(&self, kind: FindingKind) -> u64 {
        self.tally
            .get(&kind)
            .map_or(0, |counts| counts.iter().sum())
    }

    /// How many findings of each kind and severity were made, listed or not (those with
    /// none left out).
    pub fn counts(&self) -> impl Iterator<Item = (FindingKind, Severity, u64)> + '_ {
        self.tally.iter().flat_map(|(&kind, counts)| {
            [Severity::Info, Severity::Leak, Severity::Corrupt]
                .into_iter()
                .filter(move |&severity| counts[severity as usize] > 0)
                .map(move |severity| (kind, severity, counts[severity as usize]))
        })
    }

    /// True when nothing but [`Severity::Info`] was found.
    pub fn is_clean(&self) -> bool {
        !self.has_corruption() && !self.has_leaks()
    }

    /// True when anything [`Severity::Corrupt`] was found.
    pub fn has_corruption(&self) -> bool {
        self.count(Severity::Corrupt) > 0
    }

    /// True when anything [`Severity::Leak`] was found.
    pub fn has_leaks(&self) -> bool {
        self.count(Severity::Leak) > 0
    }

    /// The exit code `qemu-img check` would give: 0 clean, 2 corrupt, 3 leaks only.
    pub fn exit_code(&self) -> i32 {
        if self.has_corruption() {
            2
        } else if self.has_leaks() {
            3
        } else {
            0
        }
    }

    /// Block-sized stretches of the file that no BAT entry refers to (see the module
    /// documentation for the rule).
    pub fn leaked_blocks(&self) -> u64 {
        self.leaked_blocks
    }

    /// BAT entries that point at a block.
    pub fn allocated_blocks(&self) -> u64 {
        self.allocated_blocks
    }

    /// Entries of the BAT (its max table entries); 0 for fixed images.
    pub fn table_entries(&self) -> u64 {
        self.table_entries
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The disk type, when the footer names one.
    pub fn disk_type(&self) -> Option<DiskType> {
        self.disk_type
    }

    /// Which footer describes the image: [`FooterSource::Copy`] when the one at the end is
    /// missing or damaged.
    pub fn footer_source(&self) -> Option<FooterSource> {
        self.footer_source
    }

    /// The virtual size, from the footer used.
    pub fn virtual_size(&self) -> Option<u64> {
        self.virtual_size
    }

    /// The block size of dynamic and differencing images.
    pub fn block_size(&self) -> Option<u32> {
        self.block_size
    }

    /// The parent found for a differencing image.
    pub fn parent(&self) -> Option<&Path> {
        self.parent.as_deref()
    }
}

impl CheckReport {
    /// Records a finding: listed while its kind has fewer than [`MAX_LISTED_PER_KIND`]
    /// findings, only counted after that. `message` is called only for a finding that is
    /// listed, so that millions of findings cost no formatting.
    pub(crate) fn add(
        &mut self,
        severity: Severity,
        kind: FindingKind,
        offset: Option<u64>,
        message: impl FnOnce() -> String,
    ) {
        let counts = self.tally.entry(kind).or_default();
        let listed = counts.iter().sum::<u64>() < MAX_LISTED_PER_KIND as u64;
        counts[severity as usize] += 1;
        if listed {
            self.findings.push(Finding {
                severity,
                kind,
                offset,
                message: message(),
                omitted: None,
            });
        }
    }

    /// Reports the temporary files beside the image that a killed `create`, `compact` or
    /// `convert` of it left (see [`FindingKind::StaleTempFile`]); the first
    /// [`MAX_LISTED_PER_KIND`] of them.
    fn note_stale_temp_files(&mut self) {
        let stale = crate::new_file::stale_temp_files(&self.path);
        for file in stale.into_iter().take(MAX_LISTED_PER_KIND) {
            let size = std::fs::symlink_metadata(&file.path).map_or(0, |m| m.len());
            self.add(Severity::Info, FindingKind::StaleTempFile, None, || {
                format!(
                    "{} ({size} bytes) is a temporary file left by a create, compact or convert of this image whose process ({}) was killed; the image is not affected: remove the file",
                    file.path.display(),
                    file.pid
                )
            });
        }
    }

    /// Ends the list of each kind that had more findings than were listed with a summary
    /// of the others: how many, and the worst severity among them.
    fn summarise(&mut self) {
        let mut summaries = Vec::new();
        for (&kind, counts) in &self.tally {
            let mut omitted = *counts;
            for finding in self.findings_of(kind) {
                omitted[finding.severity as usize] -= 1;
            }
            let count: u64 = omitted.iter().sum();
            if count == 0 {
                continue;
            }
            let severity = [Severity::Corrupt, Severity::Leak, Severity::Info]
                .into_iter()
                .find(|&severity| omitted[severity as usize] > 0)
                .unwrap_or(Severity::Info);
            summaries.push(Finding {
                severity,
                kind,
                offset: None,
                message: format!(
                    "… and {count} more {} findings, not listed (only the first {MAX_LISTED_PER_KIND} of each kind are)",
                    kind.code()
                ),
                omitted: Some(count),
            });
        }
        self.findings.extend(summaries);
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let corrupt = self.count(Severity::Corrupt);
        if corrupt > 0 {
            writeln!(f, "{corrupt} errors were found on the image.")?;
        } else if self.has_leaks() {
            writeln!(
                f,
                "{} leaked blocks were found on the image; this means waste of disk space, but no harm to data.",
                self.leaked_blocks
            )?;
        } else {
            writeln!(f, "No errors were found on the image.")?;
        }
        if self.table_entries > 0 {
            writeln!(
                f,
                "{}/{} blocks allocated, {} leaked.",
                self.allocated_blocks, self.table_entries, self.leaked_blocks
            )?;
        }
        Ok(())
    }
}

/// Checks the image at `path` (see the [module documentation](self)). The file is opened
/// read-only and never written.
///
/// Problems with the image are findings of the report; an error is returned only when the
/// check cannot run: the file cannot be opened or read, or it is locked for writing.
pub fn check(path: impl AsRef<Path>, options: &CheckOptions) -> Result<CheckReport> {
    let path = path.as_ref();
    let (file, _) = crate::files::open(
        path,
        std::fs::File::options().read(true),
        crate::files::Use::Read,
        "an image",
        |e| Error::io(format!("opening {}", path.display()), e),
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
        .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?;
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

/// Whether `copy` (valid) differs from `footer` (the one at the end, valid) exactly as a
/// resize killed between writing them leaves it: in the current and original sizes (and the
/// geometry, when the sizes have different ones), nothing else, with the footer as resize
/// writes it (original size = current size, the geometry of that size).
fn is_resize_window(footer: &Footer, copy: &Footer) -> bool {
    let resized = Footer {
        current_size: footer.current_size,
        original_size: footer.original_size,
        geometry: footer.geometry,
        checksum: footer.checksum,
        ..copy.clone()
    };
    resized == *footer
        && copy.current_size != footer.current_size
        && copy.original_size != footer.original_size
        && footer.original_size == footer.current_size
        && footer.geometry == crate::Geometry::for_size(footer.current_size)
}

struct Checker<'a> {
    file: &'a dyn Storage,
    file_size: u64,
    report: CheckReport,
    /// Where the dynamic header is (sparse images), for the offsets of its fields.
    header_offset: u64,
}

/// The footer the rest of the check relies on, and where it is.
struct ChosenFooter {
    footer: Footer,
    /// Blocks must end here: the offset of the footer at the end of the file (or the end
    /// of the file when there is none).
    limit: u64,
    /// The footer at the end is missing and the copy at offset 0 stands in for it.
    end_missing: bool,
    /// The copy at offset 0 was already judged (it is the footer in use).
    copy_used: bool,
    /// The copy at offset 0, parsed, with whether its checksum is right.
    copy: Option<(Footer, bool)>,
}

impl Checker<'_> {
    fn add(&mut self, severity: Severity, kind: FindingKind, offset: Option<u64>, message: String) {
        self.report.add(severity, kind, offset, || message);
    }

    fn read(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
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
    fn read_footer(&self, offset: u64, length: usize) -> Result<Option<(Footer, bool)>> {
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

    /// Finds the footer at the end (512 or 511 bytes) and the copy at offset 0, reports
    /// what is wrong with them, and picks the one to trust.
    fn choose_footer(&mut self) -> Result<Option<ChosenFooter>> {
        let size = self.file_size;
        if size < FOOTER_SIZE as u64 - 1 {
            self.add(
                Severity::Corrupt,
                FindingKind::Truncated,
                Some(0),
                format!("the file has {size} bytes: too short to hold a footer"),
            );
            return Ok(None);
        }
        let mut end = None;
        if size >= FOOTER_SIZE as u64 {
            end = self
                .read_footer(size - FOOTER_SIZE as u64, FOOTER_SIZE)?
                .map(|(f, good)| (f, good, size - FOOTER_SIZE as u64, FooterSource::End));
        }
        if end.is_none() {
            end = self
                .read_footer(size - 511, 511)?
                .map(|(f, good)| (f, good, size - 511, FooterSource::End511));
        }
        let copy = if size >= 2 * FOOTER_SIZE as u64 {
            self.read_footer(0, FOOTER_SIZE)?
        } else {
            None
        };
        self.report.layout.end_footer = end
            .as_ref()
            .map(|(footer, good, offset, _)| (footer.clone(), *good, *offset));
        self.report.layout.copy = copy.clone();
        let copy_usable = |copy: &Option<(Footer, bool)>| {
            copy.as_ref().is_some_and(|(f, good)| {
                *good
                    && matches!(
                        f.disk_type(),
                        Some(DiskType::Dynamic | DiskType::Differencing)
                    )
            })
        };
        match end {
            Some((footer, true, offset, source)) => {
                if source == FooterSource::End511 {
                    self.add(
                        Severity::Info,
                        FindingKind::FooterField,
                        Some(offset),
                        format!("the footer at {offset} is 511 bytes long (as some old Virtual PC images have it)"),
                    );
                }
                self.report.footer_source = Some(source);
                Ok(Some(ChosenFooter {
                    footer,
                    limit: offset,
                    end_missing: false,
                    copy_used: false,
                    copy,
                }))
            }
            Some((footer, false, offset, source)) => {
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterChecksum,
                    Some(offset + 64),
                    format!(
                        "the footer at {offset} has checksum {:#010x}, but its contents sum to {:#010x}",
                        footer.checksum,
                        footer.computed_checksum()
                    ),
                );
                if copy_usable(&copy) {
                    self.report.footer_source = Some(FooterSource::Copy);
                    let (copy_footer, _) = copy.clone().unwrap();
                    return Ok(Some(ChosenFooter {
                        footer: copy_footer,
                        limit: offset,
                        end_missing: false,
                        copy_used: true,
                        copy,
                    }));
                }
                // Go on with the damaged footer: the rest may still be worth checking.
                self.report.footer_source = Some(source);
                Ok(Some(ChosenFooter {
                    footer,
                    limit: offset,
                    end_missing: false,
                    copy_used: false,
                    copy,
                }))
            }
            None if copy_usable(&copy) => {
                // Whether this is a crash's leftover or damage depends on what lies at the
                // end of the file: decided once the structures are known.
                self.report.footer_source = Some(FooterSource::Copy);
                let (copy_footer, _) = copy.clone().unwrap();
                Ok(Some(ChosenFooter {
                    footer: copy_footer,
                    limit: size,
                    end_missing: true,
                    copy_used: true,
                    copy,
                }))
            }
            None => {
                let copy_note = match &copy {
                    Some((_, false)) => ", and the copy at offset 0 has a bad checksum",
                    Some((_, true)) => ", and the copy at offset 0 is a fixed disk's footer",
                    None => ", and there is no copy at offset 0",
                };
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterMissing,
                    Some(size.saturating_sub(FOOTER_SIZE as u64)),
                    format!(
                        "no footer (cookie \"conectix\") in the last 512 bytes of the {size}-byte file{copy_note}: this is not a VHD image, or it was truncated"
                    ),
                );
                Ok(None)
            }
        }
    }

    fn check_footer_fields(&mut self, footer: &Footer) {
        if footer.format_version != FORMAT_VERSION {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(12),
                format!(
                    "the footer's format version is {:#010x}, not 1.0 (0x00010000)",
                    footer.format_version
                ),
            );
        }
        if footer.features & FEATURE_RESERVED == 0 {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(8),
                format!(
                    "the footer's features ({:#010x}) lack the reserved bit 0x2 the specification says is always set",
                    footer.features
                ),
            );
        }
        if !footer.current_size.is_multiple_of(512) {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(48),
                format!(
                    "the virtual size {} is not a whole number of 512-byte sectors",
                    footer.current_size
                ),
            );
        }
        let geometry = footer.geometry;
        if geometry.size() != footer.current_size {
            self.add(
                Severity::Info,
                FindingKind::SizeGeometry,
                Some(56),
                format!(
                    "the virtual size is {} bytes, the CHS geometry {}/{}/{} describes {} bytes (readers that size disks by their geometry see that)",
                    footer.current_size,
                    geometry.cylinders,
                    geometry.heads,
                    geometry.sectors_per_track,
                    geometry.size()
                ),
            );
        }
    }

    fn check_fixed(&mut self, chosen: &ChosenFooter) {
        let footer = &chosen.footer;
        let limit = chosen.limit;
        if footer.data_offset != NO_DATA_OFFSET {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(16),
                format!(
                    "the data offset of a fixed image is {:#x}, not 0xffffffffffffffff",
                    footer.data_offset
                ),
            );
        }
        let size = footer.current_size;
        if size > limit {
            self.add(
                Severity::Corrupt,
                FindingKind::Truncated,
                Some(limit),
                format!(
                    "the {size}-byte virtual disk of this fixed image needs bytes 0..{size} in front of the footer, but the footer is at {limit}"
                ),
            );
        } else if size < limit {
            self.add(
                Severity::Info,
                FindingKind::UnusedSpace,
                Some(size),
                format!(
                    "bytes {size}..{limit}, between the end of the virtual disk and the footer, are not used"
                ),
            );
        }
    }

    /// Dynamic and differencing images. Returns whether the layout could be read.
    fn check_sparse(&mut self, chosen: &ChosenFooter, disk_type: DiskType) -> Result<bool> {
        let footer = &chosen.footer;
        let limit = chosen.limit;
        let size = self.file_size;
        if !chosen.copy_used {
            self.check_copy(footer, &chosen.copy);
        }
        // The dynamic header.
        let header_offset = footer.data_offset;
        let header_end = header_offset.saturating_add(DYNAMIC_HEADER_SIZE as u64);
        if header_offset < FOOTER_SIZE as u64 || header_end > limit {
            let (kind, reason) = if header_offset >= FOOTER_SIZE as u64 && header_end > size {
                (FindingKind::Truncated, "runs past the end of the file")
            } else {
                (
                    FindingKind::FooterField,
                    "must lie between the footer copy and the footer",
                )
            };
            self.add(
                Severity::Corrupt,
                kind,
                Some(16),
                format!(
                    "the footer's data offset {header_offset} puts the dynamic header at bytes {header_offset}..{header_end}, which {reason} (the footer is at {limit}, the file has {size} bytes)"
                ),
            );
            return Ok(false);
        }
        self.header_offset = header_offset;
        let mut bytes = [0u8; DYNAMIC_HEADER_SIZE];
        self.read(&mut bytes, header_offset, "the dynamic header")?;
        let header = match DynamicHeader::parse(&bytes, header_offset) {
            Ok(header) => header,
            Err(_) => {
                self.add(
                    Severity::Corrupt,
                    FindingKind::HeaderCookie,
                    Some(header_offset),
                    format!(
                        "no dynamic header (cookie \"cxsparse\") at offset {header_offset}, where the footer's data offset points: found {:?}",
                        String::from_utf8_lossy(&bytes[..8])
                    ),
                );
                return Ok(false);
            }
        };
        self.report.layout.header = Some((header_offset, header.clone()));
        if header.verify_checksum(header_offset).is_err() {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderChecksum,
                Some(header_offset + 36),
                format!(
                    "the dynamic header at {header_offset} has checksum {:#010x}, but its contents sum to {:#010x}",
                    header.checksum,
                    header.computed_checksum()
                ),
            );
        }
        if header.header_version != HEADER_VERSION {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 24),
                format!(
                    "the dynamic header's version is {:#010x}, not 1.0 (0x00010000)",
                    header.header_version
                ),
            );
        }
        if disk_type == DiskType::Differencing && header.commit_in_progress() {
            self.add(
                Severity::Leak,
                FindingKind::CommitInterrupted,
                Some(header_offset + 768),
                "a commit of this image into its parent was interrupted: the chain reads as it should, but the parent's modification time is not recorded (a later change of the parent would go unnoticed); run the commit again to finish it, or check --repair to record the parent's time stamp".to_string(),
            );
        } else if disk_type == DiskType::Differencing && !header.records_parent_timestamp() {
            self.add(
                Severity::Info,
                FindingKind::ParentTimestampNotRecorded,
                Some(header_offset + 56),
                format!("the parent time stamp is {PARENT_TIMESTAMP_NOT_RECORDED}"),
            );
        }
        let block_size = header.block_size;
        if block_size < 512 || !block_size.is_power_of_two() {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderField,
                Some(header_offset + 32),
                format!("the block size {block_size} is not a power of two of at least 512 bytes"),
            );
            return Ok(false);
        }
        self.report.block_size = Some(block_size);
        let entries = u64::from(header.max_table_entries);
        self.report.table_entries = entries;
        let virtual_size = footer.current_size;
        let needed = virtual_size.div_ceil(u64::from(block_size));
        if entries < needed {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderField,
                Some(header_offset + 28),
                format!(
                    "max table entries is {entries}, but {needed} blocks of {block_size} bytes are needed for the {virtual_size}-byte disk"
                ),
            );
        } else if entries > needed {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 28),
                format!(
                    "max table entries is {entries}, more than the {needed} the {virtual_size}-byte disk needs"
                ),
            );
        }
        // The BAT.
        let table = header.table_offset;
        let table_end = table.saturating_add(entries * BAT_ENTRY_SIZE);
        if table < FOOTER_SIZE as u64 || table_end > limit {
            let kind = if table_end > size {
                FindingKind::Truncated
            } else {
                FindingKind::HeaderField
            };
            self.add(
                Severity::Corrupt,
                kind,
                Some(header_offset + 16),
                format!(
                    "the table offset {table} puts the {entries}-entry BAT at bytes {table}..{table_end}, outside the space between the footer copy and the footer at {limit} ({size}-byte file)"
                ),
            );
            return Ok(false);
        }
        if !table.is_multiple_of(512) {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 16),
                format!("the table offset {table} is not a multiple of 512"),
            );
        }
        let differencing = disk_type == DiskType::Differencing;
        let layout = FileLayout::new(&header, header_offset, virtual_size, limit, differencing);
        self.check_locators(&header, disk_type, &layout);
        self.report.layout.geometry = Some(layout.geometry());
        let mut blocks = self.check_blocks(&header, &layout)?;
        // File order, then BAT order: the order the blocks are judged and listed in.
        blocks.sort();
        self.report.layout.first_block = blocks.iter().next().map(|(_, sector)| sector);
        self.check_bitmaps(&layout, &blocks, disk_type)?;
        self.check_overlaps(&layout, &blocks, &header);
        self.check_unused(&layout, &blocks, chosen.end_missing);
        Ok(true)
    }

    fn check_copy(&mut self, footer: &Footer, copy: &Option<(Footer, bool)>) {
        match copy {
            None => self.add(
                Severity::Corrupt,
                FindingKind::FooterCopyMissing,
                Some(0),
                "there is no footer copy (cookie \"conectix\") at offset 0, which dynamic and differencing images must have".into(),
            ),
            Some((copy, false)) => self.add(
                Severity::Corrupt,
                FindingKind::FooterCopyChecksum,
                Some(64),
                format!(
                    "the footer copy at offset 0 has checksum {:#010x}, but its contents sum to {:#010x}",
                    copy.checksum,
                    copy.computed_checksum()
                ),
            ),
            Some((copy, true)) if copy != footer => {
                let mut differing = Vec::new();
                let mut key = false;
                let mut field = |name: &str, same: bool, is_key: bool| {
                    if !same {
                        differing.push(name.to_string());
                        key |= is_key;
                    }
                };
                field("disk type", copy.disk_type_code == footer.disk_type_code, true);
                field("data offset", copy.data_offset == footer.data_offset, true);
                field("current size", copy.current_size == footer.current_size, true);
                field("unique id", copy.unique_id == footer.unique_id, true);
                field("time stamp", copy.timestamp == footer.timestamp, false);
                field("original size", copy.original_size == footer.original_size, false);
                field("geometry", copy.geometry == footer.geometry, false);
                field(
                    "creator",
                    copy.creator_application == footer.creator_application
                        && copy.creator_version == footer.creator_version
                        && copy.creator_host_os == footer.creator_host_os,
                    false,
                );
                field("saved state", copy.saved_state == footer.saved_state, false);
                field(
                    "other fields",
                    copy.features == footer.features
                        && copy.format_version == footer.format_version
                        && copy.reserved == footer.reserved,
                    false,
                );
                if is_resize_window(footer, copy) {
                    self.add(
                        Severity::Leak,
                        FindingKind::FooterCopyStale,
                        Some(0),
                        format!(
                            "the footer copy at offset 0 still gives the size before a resize ({} bytes; the footer gives {}): a resize was interrupted after writing the footer; the image reads right; repair writes the copy from the footer",
                            copy.current_size, footer.current_size
                        ),
                    );
                    return;
                }
                let severity = if key { Severity::Corrupt } else { Severity::Info };
                self.add(
                    severity,
                    FindingKind::FooterCopyMismatch,
                    Some(0),
                    format!(
                        "the footer copy at offset 0 differs from the footer in: {}",
                        differing.join(", ")
                    ),
                );
            }
            Some(_) => {}
        }
    }

    /// Parent locators: an unknown platform code is worth a remark; data outside the space
    /// between the footer copy and the footer is damage in a differencing image (which reads
    /// it) and a remark in others. (Data in the file is a structure of the layout: blocks
    /// may not overlap it, [`FileLayout::structures`].)
    fn check_locators(&mut self, header: &DynamicHeader, disk_type: DiskType, layout: &FileLayout) {
        // Locators matter to differencing images only; others may carry leftovers.
        let severity = if disk_type == DiskType::Differencing {
            Severity::Corrupt
        } else {
            Severity::Info
        };
        let limit = layout.limit();
        for extent in layout.locators() {
            let i = extent.index;
            let locator = &header.parent_locators[i];
            let entry_offset = Some(self.header_offset + 576 + 24 * i as u64);
            let known = matches!(
                locator.platform_code,
                platform::WI2R
                    | platform::WI2K
                    | platform::W2RU
                    | platform::W2KU
                    | platform::MAC
                    | platform::MACX
            );
            if !known {
                self.add(
                    Severity::Info,
                    FindingKind::LocatorOutOfRange,
                    entry_offset,
                    format!(
                        "parent locator {i} has the unknown platform code {:#010x} ({:?})",
                        locator.platform_code,
                        locator.platform_name()
                    ),
                );
            }
            if !extent.in_file {
                let (start, end) = extent.data;
                self.add(
                    severity,
                    FindingKind::LocatorOutOfRange,
                    entry_offset,
                    format!(
                        "the data of parent locator {i} ({}) is at bytes {start}..{end}, outside the space between the footer copy and the footer at {limit}",
                        locator.platform_name()
                    ),
                );
            }
        }
    }

    /// Reads the BAT a chunk at a time and checks each allocated entry (see
    /// [`Checker::check_entry`]). The table itself is not kept.
    fn check_blocks(&mut self, header: &DynamicHeader, layout: &FileLayout) -> Result<BlockList> {
        let entries = u64::from(header.max_table_entries);
        let mut chunk = vec![0u8; (BAT_CHUNK_ENTRIES.min(entries) * BAT_ENTRY_SIZE) as usize];
        let mut blocks = BlockList::with_capacity(entries as usize);
        let mut first = 0;
        while first < entries {
            let count = BAT_CHUNK_ENTRIES.min(entries - first);
            let bytes = &mut chunk[..(count * BAT_ENTRY_SIZE) as usize];
            let at = header.table_offset + first * BAT_ENTRY_SIZE;
            self.read(bytes, at, "the block allocation table")?;
            for (index, sector) in BlockAllocationTable::parse(bytes).allocated() {
                let block = first as u32 + index;
                if self.check_entry(header.table_offset, block, sector, layout) {
                    blocks.push(block, sector);
                }
            }
            first += count;
        }
        self.report.layout.bat_read = true;
        Ok(blocks)
    }

    /// One allocated BAT entry: its block must be in front of the footer (else it is
    /// recorded for a repair), and one past the end of the disk is worth a remark. Returns
    /// whether the block is in front of the footer, to be compared with the others.
    fn check_entry(
        &mut self,
        table_offset: u64,
        block: u32,
        sector: u32,
        layout: &FileLayout,
    ) -> bool {
        self.report.allocated_blocks += 1;
        let geometry = layout.geometry();
        let extent = geometry.extent(block, sector);
        let entry_offset = Some(table_offset + u64::from(block) * BAT_ENTRY_SIZE);
        if !extent.in_disk {
            let size = geometry.virtual_size();
            self.report.add(Severity::Info, FindingKind::BatPastDiskEnd, entry_offset, || {
                format!("BAT entry {block} points at sector {sector}, but block {block} lies past the end of the {size}-byte disk")
            });
        }
        let BlockExtent {
            start,
            bitmap_end,
            data_end,
            ..
        } = extent;
        let limit = geometry.limit();
        match geometry.out_of_range(&extent).map(out_of_range_kind) {
            None => true,
            Some(kind) => {
                self.report.add(Severity::Corrupt, kind, entry_offset, || {
                    if kind == FindingKind::BitmapOutOfRange {
                        format!("BAT entry {block} points at sector {sector}: its sector bitmap (bytes {start}..{bitmap_end}) is not in front of the footer at {limit}")
                    } else {
                        format!("BAT entry {block} points at sector {sector}: the block's bitmap and data (bytes {start}..{data_end}) run past the footer at {limit}")
                    }
                });
                self.report.layout.out_of_range.push((block, sector));
                false
            }
        }
    }

    /// Bitmap sanity. What a sector bitmap holds cannot be judged from the bitmap alone
    /// (any pattern of bits is valid, and qemu sets every bit, even past the end of the
    /// disk), with one exception that a crash produces: a bitmap that starts with the
    /// footer's cookie is the footer that stood at the end of the file before the block
    /// was allocated, left there because the BAT entry reached the disk and the bitmap did
    /// not. Only a differencing image reads its bitmaps (a dynamic image reads the block's
    /// data as it is), so only there is it damage.
    ///
    /// The blocks of the disk are taken in file order, and the starts of bitmaps that
    /// follow each other closely ([`BITMAP_GAP`]) are read at once, up to [`BITMAP_WINDOW`]
    /// bytes: a crafted BAT whose millions of entries point into one stretch of the file
    /// costs a few reads, not one each (and a bitmap several entries share is read once).
    fn check_bitmaps(
        &mut self,
        layout: &FileLayout,
        blocks: &BlockList,
        disk_type: DiskType,
    ) -> Result<()> {
        let cookie = FOOTER_COOKIE.len() as u64;
        // The `i`th block, where its bitmap starts, and whether it is in the disk (only
        // those bitmaps are read).
        let geometry = layout.geometry();
        let bitmap = |i: usize| {
            let (block, sector) = blocks.get(i);
            let extent = geometry.extent(block, sector);
            (block, extent.start, extent.in_disk)
        };
        let mut window = Vec::new();
        let mut window_start = 0;
        for i in 0..blocks.len() {
            let (block, start, in_disk) = bitmap(i);
            if !in_disk {
                continue;
            }
            // Starts only grow: a cookie not in the window is past it.
            if start + cookie > window_start + window.len() as u64 {
                let mut last = start;
                for (_, next, next_in_disk) in (i + 1..blocks.len()).map(bitmap) {
                    if next + cookie - start > BITMAP_WINDOW {
                        break;
                    }
                    if next_in_disk {
                        if next - last > BITMAP_GAP {
                            break;
                        }
                        last = next;
                    }
                }
                let end = last + cookie;
                window_start = start;
                window.resize((end - start) as usize, 0);
                self.read(&mut window, start, "sector bitmaps")?;
            }
            let at = (start - window_start) as usize;
            if window[at..at + cookie as usize] == FOOTER_COOKIE[..] {
                self.bitmap_holds_footer(block, start, disk_type);
            }
        }
        Ok(())
    }

    fn bitmap_holds_footer(&mut self, block: u32, start: u64, disk_type: DiskType) {
        let (severity, effect) = if disk_type == DiskType::Differencing {
            (
                Severity::Corrupt,
                "its set bits hide the parent's data for sectors the child may never have written",
            )
        } else {
            (
                Severity::Info,
                "a dynamic image does not read its bitmaps, so nothing reads wrong",
            )
        };
        self.report.add(severity, FindingKind::BitmapHoldsFooter, Some(start), || {
            format!(
                "the sector bitmap of block {block} (at {start}) holds a footer (cookie \"conectix\"): the block's BAT entry was written but its bitmap was not; {effect}"
            )
        });
    }

    /// Every structure must have its bytes to itself ([`FileLayout::overlaps`]: one pass,
    /// however many blocks share their bytes).
    fn check_overlaps(&mut self, layout: &FileLayout, blocks: &BlockList, header: &DynamicHeader) {
        for (region, before) in layout.overlaps(blocks) {
            self.note_overlapping(&region);
            self.note_overlapping(&before);
            self.report.add(
                Severity::Corrupt,
                FindingKind::Overlap,
                Some(region.start),
                || {
                    format!(
                        "{} overlaps {}",
                        describe(&region, header),
                        describe(&before, header)
                    )
                },
            );
        }
    }

    /// Keeps the BAT entry of a block that overlaps something, for a repair.
    fn note_overlapping(&mut self, region: &Region) {
        let Occupant::Block(block) = region.occupant else {
            return;
        };
        let overlapping = &mut self.report.layout.overlapping;
        let entry = (block, (region.start / 512) as u32);
        if overlapping.len() < MAX_LISTED_PER_KIND && !overlapping.contains(&entry) {
            overlapping.push(entry);
        }
    }

    /// Space no structure uses: leaked blocks and padding (see the module documentation).
    fn check_unused(&mut self, layout: &FileLayout, blocks: &BlockList, end_missing: bool) {
        let geometry = layout.geometry();
        let limit = geometry.limit();
        let unit = geometry.unit();
        let metadata_end = layout.metadata_end();
        let used_end = layout.used_end(blocks);
        self.report.layout.used_end = used_end;
        if end_missing {
            // The file ends without its footer: decide what the tail is.
            let size = self.file_size;
            let tail_start = used_end.max(metadata_end);
            if size >= tail_start + FOOTER_SIZE as u64 {
                // The last 512 bytes are where the footer belongs; the rest is what the
                // interrupted allocations wrote (or only sized) of their blocks.
                let tail = size - tail_start;
                let blocks = (tail - FOOTER_SIZE as u64).div_ceil(unit).max(1);
                self.report.leaked_blocks += blocks;
                self.add(
                    Severity::Leak,
                    FindingKind::FooterMissing,
                    Some(size - FOOTER_SIZE as u64),
                    format!(
                        "no footer at the end of the file: it ends in bytes {tail_start}..{size}, which no structure uses ({blocks} leaked block(s) of {unit} bytes), as an allocation cut short by a crash leaves it; the footer copy at offset 0 is intact, and the footer belongs at {tail_start}"
                    ),
                );
            } else {
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterMissing,
                    Some(size.saturating_sub(FOOTER_SIZE as u64)),
                    format!(
                        "no footer at the end of the {size}-byte file, whose last bytes belong to a structure (used space ends at {used_end}): the file was truncated or its footer overwritten (the footer copy at offset 0 is intact)"
                    ),
                );
            }
        }
        // The gaps between the used stretches of the file, and up to the footer.
        let mut scan = UnusedScan {
            metadata_end,
            limit,
            end_missing,
            unit,
            padding: Padding::default(),
        };
        let mut position = 0;
        for region in layout.regions(blocks, Stretch::Space) {
            if region.start > position {
                self.unused_stretch(position, region.start, &mut scan);
            }
            position = position.max(region.end);
        }
        if !end_missing && limit > position {
            self.unused_stretch(position, limit, &mut scan);
        }
        self.report_padding(&scan.padding);
    }

    /// Bytes `start..end` that no structure uses: leaked blocks when at least one block's
    /// worth lies past the metadata, padding otherwise.
    fn unused_stretch(&mut self, start: u64, end: u64, scan: &mut UnusedScan) {
        let length = end - start;
        let unit = scan.unit;
        if start < scan.metadata_end || length < unit {
            scan.padding.add(start, end);
            return;
        }
        if end == scan.limit && !scan.end_missing {
            self.report.layout.trailing_leak = Some((start, end));
        }
        let blocks = length / unit;
        self.report.leaked_blocks += blocks;
        self.report.add(Severity::Leak, FindingKind::LeakedBlock, Some(start), || {
            format!(
                "bytes {start}..{end} ({length} bytes: {blocks} block(s) of {unit} bytes, bitmap included) are not referenced by any BAT entry"
            )
        });
    }

    /// Unused space that is not a leak, in one finding: writers that align blocks (Windows
    /// aligns each block's data to 4 KiB) leave a gap after every block.
    fn report_padding(&mut self, padding: &Padding) {
        let Some(&(first, _)) = padding.first.first() else {
            return;
        };
        let total = padding.bytes;
        let mut listed: Vec<String> = padding
            .first
            .iter()
            .map(|(s, e)| format!("{s}..{e}"))
            .collect();
        if padding.count > padding.first.len() as u64 {
            listed.push("…".into());
        }
        let message = if padding.count == 1 {
            format!(
                "bytes {} ({total} bytes) are not used by any structure",
                listed[0]
            )
        } else {
            format!(
                "{} stretches of the file ({total} bytes in all) are not used by any structure: bytes {}",
                padding.count,
                listed.join(", ")
            )
        };
        self.add(
            Severity::Info,
            FindingKind::UnusedSpace,
            Some(first),
            message,
        );
    }
}

/// What [`Checker::check_unused`] knows as it walks the gaps of the file.
struct UnusedScan {
    /// Where the metadata ends: unused space before is never a leak.
    metadata_end: u64,
    limit: u64,
    end_missing: bool,
    /// One block's bytes, bitmap included.
    unit: u64,
    padding: Padding,
}

/// Unused stretches too small (or too early in the file) to be leaks, summed up.
#[derive(Default)]
struct Padding {
    count: u64,
    bytes: u64,
    /// The first few, for the message.
    first: Vec<(u64, u64)>,
}

impl Padding {
    fn add(&mut self, start: u64, end: u64) {
        self.count += 1;
        self.bytes += end - start;
        if self.first.len() < 4 {
            self.first.push((start, end));
        }
    }
}

impl LayoutFacts {
    /// Which finding the out-of-range BAT entry `block` (pointing at `sector`) gave.
    pub(crate) fn out_of_range_kind(&self, block: u32, sector: u32) -> FindingKind {
        self.geometry
            .and_then(|g| g.out_of_range(&g.extent(block, sector)))
            .map_or(FindingKind::BatOutOfRange, out_of_range_kind)
    }
}

/// The finding a block not (wholly) in front of the footer gives.
fn out_of_range_kind(out_of_range: OutOfRange) -> FindingKind {
    match out_of_range {
        OutOfRange::Bitmap => FindingKind::BitmapOutOfRange,
        OutOfRange::Data => FindingKind::BatOutOfRange,
    }
}

/// A stretch of the file in the words of a finding.
fn describe(region: &Region, header: &DynamicHeader) -> String {
    let Region { start, end, .. } = *region;
    match region.occupant {
        Occupant::Structure(Structure::FooterCopy) => "the footer copy".into(),
        Occupant::Structure(Structure::Header) => {
            format!("the dynamic header (bytes {start}..{end})")
        }
        Occupant::Structure(Structure::Bat) => format!("the BAT (bytes {start}..{end})"),
        Occupant::Structure(Structure::Locator(i)) => format!(
            "the data of parent locator {i} ({}, bytes {start}..{end})",
            header.parent_locators[i].platform_name()
        ),
        Occupant::Block(block) => {
            format!(
                "block {block} (sector {}, bytes {start}..{end})",
                start / 512
            )
        }
    }
}

/// Opens the image as a reader would (checksums ignored, read-only): this checks the parent
/// link of a differencing image, and catches whatever makes the image unusable that the
/// structure checks did not name.
fn open_check(
    file: Box<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
    report: &mut CheckReport,
) {
    let differencing = report.disk_type == Some(DiskType::Differencing);
    if differencing && options.skip_parent {
        return;
    }
    let open_options = options.open_for_reading();
    let corrupt_already = report.has_corruption();
    let mut add = |severity, kind, message: String| report.add(severity, kind, None, || message);
    match Image::open_storage(file, path, &open_options) {
        Ok(image) => {
            if let Some(parent) = image.parent() {
                report.parent = Some(parent.path().to_path_buf());
            }
        }
        // Not the image's fault (a file that cannot be read, a parent locked for writing
        // elsewhere), but the check could not be finished.
        Err(e) if matches!(e.root(), Error::Io { .. } | Error::Locked { .. }) => {
            let kind = if differencing {
                FindingKind::ParentNotChecked
            } else {
                FindingKind::OpenFailed
            };
            add(
                Severity::Info,
                kind,
                format!("the image could not be opened to finish the check: {e}"),
            );
        }
        Err(e) if differencing && is_parent_error(&e) => {
            let kind = match &e {
                Error::ParentNotFound { .. } => FindingKind::ParentNotFound,
                Error::ParentMismatch { .. } => FindingKind::ParentMismatch,
                Error::ParentModified { .. } => FindingKind::ParentModified,
                _ => FindingKind::ParentUnusable,
            };
            add(Severity::Corrupt, kind, e.to_string());
        }
        // The structure checks already said what is wrong; the open only repeats it.
        Err(e) if corrupt_already => {
            if differencing {
                add(
                    Severity::Info,
                    FindingKind::ParentNotChecked,
                    format!("the parent link was not checked: the image does not open ({e})"),
                );
            }
        }
        Err(e) => add(
            Severity::Corrupt,
            FindingKind::OpenFailed,
            format!("the image does not open: {e}"),
        ),
    }
}

fn is_parent_error(e: &Error) -> bool {
    matches!(
        e,
        Error::ParentNotFound { .. }
            | Error::ParentMismatch { .. }
            | Error::ParentModified { .. }
            | Error::Parent { .. }
            | Error::ParentLoop { .. }
            | Error::ChainTooDeep { .. }
            | Error::ParentOutsideRoot { .. }
            | Error::ParentSearchLimit { .. }
    )
}
