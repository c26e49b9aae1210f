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
//! (its block's sector bitmap and the data inside the virtual size must lie in front of
//! the footer; an entry is a sector number, so every block is sector-aligned by
//! construction, and a block off the grid the others follow shows up as an overlap), that
//! no two structures share bytes (blocks, footer copy, header, BAT, parent locator data),
//! the space no structure uses, the sector bitmaps (see below), and, for differencing
//! images, the parent link: the parent is found (as [`Image::open`] finds it) and carries
//! the unique id the child records. Sizes that disagree with the CHS geometry are only
//! information. Finally the image is opened as a reader would (checksums ignored) to catch
//! whatever else would stop it.
//!
//! Bitmap sanity: any pattern of bits is a valid bitmap, and bits past the end of the disk
//! are normal (qemu sets whole bitmaps). What is wrong is a bitmap that holds a footer
//! (cookie `conectix`): the trace of a BAT entry written before its block's bitmap. That
//! is damage in a differencing image, which reads its bitmaps, and only information in a
//! dynamic one, which does not.
//!
//! [`crate::ops::repair`] repairs what can be repaired safely.
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
use crate::image::{FooterSource, Image, OpenOptions, ParentPath};
use crate::parent_locator::{platform, ParentLocator};
use crate::sector_bitmap::bitmap_size;
use crate::storage::Storage;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How many findings of one kind are listed one by one; the rest are summed up in one.
const MAX_LISTED_PER_KIND: usize = 32;

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
            lock: true,
            skip_parent: false,
        }
    }
}

/// How bad a finding is. Ordered: `Info < Leak < Corrupt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Harmless, for information.
    Info,
    /// Wasted space; no data is lost or wrong.
    Leak,
    /// Damage: data may read wrong, or the image may not open.
    Corrupt,
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
        }
    }
}

/// One problem (or remark) about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    /// The file offset the finding is about, when there is one.
    pub offset: Option<u64>,
    /// What is wrong, with offsets, for a human.
    pub message: String,
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
    /// The BAT, when it was read.
    pub bat: Option<BlockAllocationTable>,
    /// BAT entries whose block is not (wholly) in front of the footer.
    pub out_of_range: Vec<u32>,
    /// Allocated blocks of the disk, as (start, end) byte ranges of the file.
    pub blocks: Vec<(u64, u64)>,
    /// The end of the space used by structures and blocks (sparse images).
    pub used_end: u64,
    /// Unused space of at least one block that ends at the footer: (start, end).
    pub trailing_leak: Option<(u64, u64)>,
}

impl CheckReport {
    /// The path that was checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every finding, in the order found.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings of one kind.
    pub fn findings_of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> + '_ {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// True when nothing but [`Severity::Info`] was found.
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.severity == Severity::Info)
    }

    /// True when anything [`Severity::Corrupt`] was found.
    pub fn has_corruption(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Corrupt)
    }

    /// True when anything [`Severity::Leak`] was found.
    pub fn has_leaks(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Leak)
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

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        let corrupt = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Corrupt)
            .count();
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
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let storage = crate::image::locked_storage(file, path, true, options.lock)?;
    check_storage(storage, path, options)
}

/// Checks the image held by `file`, as [`check`] does; `path` names it in messages and
/// is where the parent of a differencing image is looked for. Nothing is written.
pub fn check_storage(
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
            layout: LayoutFacts::default(),
        },
        counts: BTreeMap::new(),
        header_offset: 0,
    };
    let structure_read = checker.check_structures()?;
    let mut report = checker.finish();
    if structure_read {
        open_check(file, path, options, &mut report);
    }
    Ok(report)
}

struct Checker<'a> {
    file: &'a dyn Storage,
    file_size: u64,
    report: CheckReport,
    /// Per kind: findings seen, and the worst severity among those not listed.
    counts: BTreeMap<FindingKind, (usize, Severity)>,
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

/// A stretch of the file and what occupies it.
#[derive(Debug, Clone)]
struct Region {
    start: u64,
    end: u64,
    what: String,
}

impl Checker<'_> {
    fn add(&mut self, severity: Severity, kind: FindingKind, offset: Option<u64>, message: String) {
        let count = self.counts.entry(kind).or_insert((0, Severity::Info));
        count.0 += 1;
        if count.0 <= MAX_LISTED_PER_KIND {
            self.report.findings.push(Finding {
                severity,
                kind,
                offset,
                message,
            });
        } else {
            count.1 = count.1.max(severity);
        }
    }

    fn finish(mut self) -> CheckReport {
        for (kind, (count, severity)) in std::mem::take(&mut self.counts) {
            if count > MAX_LISTED_PER_KIND {
                self.report.findings.push(Finding {
                    severity,
                    kind,
                    offset: None,
                    message: format!(
                        "… and {} more findings of this kind",
                        count - MAX_LISTED_PER_KIND
                    ),
                });
            }
        }
        self.report
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
        if disk_type == DiskType::Differencing && !header.records_parent_timestamp() {
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
        let mut bat_bytes = vec![0u8; (entries * BAT_ENTRY_SIZE) as usize];
        self.read(&mut bat_bytes, table, "the block allocation table")?;
        let bat = BlockAllocationTable::parse(&bat_bytes);

        let mut layout = Layout {
            exact: vec![
                region(0, FOOTER_SIZE as u64, "the footer copy".into()),
                region(
                    header_offset,
                    header_end,
                    format!("the dynamic header (bytes {header_offset}..{header_end})"),
                ),
                region(
                    table,
                    table_end,
                    format!("the BAT (bytes {table}..{table_end})"),
                ),
            ],
            space: Vec::new(),
        };
        layout.space = layout.exact.clone();
        // The BAT is padded to a whole sector by every writer.
        layout.space[2].end = table_end.next_multiple_of(512).min(limit);
        self.check_locators(&header, disk_type, limit, &mut layout);
        let metadata_end = layout.space.iter().map(|r| r.end).max().unwrap_or(0);
        self.check_blocks(&bat, &header, disk_type, virtual_size, limit, &mut layout)?;
        self.report.layout.bat = Some(bat);
        self.check_overlaps(&layout.exact);
        self.check_unused(
            &layout.space,
            metadata_end,
            limit,
            chosen.end_missing,
            block_size,
        );
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

    fn check_locators(
        &mut self,
        header: &DynamicHeader,
        disk_type: DiskType,
        limit: u64,
        layout: &mut Layout,
    ) {
        // Locators matter to differencing images only; others may carry leftovers.
        let severity = if disk_type == DiskType::Differencing {
            Severity::Corrupt
        } else {
            Severity::Info
        };
        for (i, locator) in header.parent_locators.iter().enumerate() {
            if locator.is_empty() {
                continue;
            }
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
            let start = locator.platform_data_offset;
            let end = start.saturating_add(u64::from(locator.platform_data_length));
            if start < FOOTER_SIZE as u64 || end > limit {
                self.add(
                    severity,
                    FindingKind::LocatorOutOfRange,
                    entry_offset,
                    format!(
                        "the data of parent locator {i} ({}) is at bytes {start}..{end}, outside the space between the footer copy and the footer at {limit}",
                        locator.platform_name()
                    ),
                );
                continue;
            }
            let what = format!(
                "the data of parent locator {i} ({}, bytes {start}..{end})",
                locator.platform_name()
            );
            // A dynamic image never reads its locators: leftovers there overlap nothing.
            if end > start && disk_type == DiskType::Differencing {
                layout.exact.push(region(start, end, what.clone()));
            }
            let space_end = start.saturating_add(locator_space(locator)).min(limit);
            if space_end > start {
                layout.space.push(region(start, space_end, what));
            }
        }
    }

    fn check_blocks(
        &mut self,
        bat: &BlockAllocationTable,
        header: &DynamicHeader,
        disk_type: DiskType,
        virtual_size: u64,
        limit: u64,
        layout: &mut Layout,
    ) -> Result<()> {
        let block_size = u64::from(header.block_size);
        let bitmap = bitmap_size(header.block_size);
        for (block, sector) in bat.allocated() {
            self.report.allocated_blocks += 1;
            let start = u64::from(sector) * 512;
            let block_start = u64::from(block) * block_size;
            // Only the part of the last block inside the virtual size has to be in the file;
            // a block wholly past the end of the disk holds nothing that is read.
            let needed = block_size.min(virtual_size.saturating_sub(block_start));
            if block_start >= virtual_size {
                self.add(
                    Severity::Info,
                    FindingKind::BatPastDiskEnd,
                    Some(header.table_offset + u64::from(block) * BAT_ENTRY_SIZE),
                    format!(
                        "BAT entry {block} points at sector {sector}, but block {block} lies past the end of the {virtual_size}-byte disk"
                    ),
                );
            }
            let bitmap_end = start + bitmap;
            let data_end = bitmap_end + needed;
            if bitmap_end > limit {
                self.add(
                    Severity::Corrupt,
                    FindingKind::BitmapOutOfRange,
                    Some(header.table_offset + u64::from(block) * BAT_ENTRY_SIZE),
                    format!(
                        "BAT entry {block} points at sector {sector}: its sector bitmap (bytes {start}..{bitmap_end}) is not in front of the footer at {limit}"
                    ),
                );
                self.report.layout.out_of_range.push(block);
                continue;
            }
            if data_end > limit {
                self.add(
                    Severity::Corrupt,
                    FindingKind::BatOutOfRange,
                    Some(header.table_offset + u64::from(block) * BAT_ENTRY_SIZE),
                    format!(
                        "BAT entry {block} points at sector {sector}: the block's bitmap and data (bytes {start}..{data_end}) run past the footer at {limit}"
                    ),
                );
                self.report.layout.out_of_range.push(block);
                continue;
            }
            let what = format!("block {block} (sector {sector}, bytes {start}..{data_end})");
            layout.exact.push(region(start, data_end, what.clone()));
            let space_end = (bitmap_end + block_size).min(limit);
            layout.space.push(region(start, space_end, what));
            self.report.layout.blocks.push((start, data_end));
            if block_start < virtual_size {
                self.check_bitmap(block, sector, disk_type)?;
            }
        }
        Ok(())
    }

    /// Bitmap sanity. What a sector bitmap holds cannot be judged from the bitmap alone
    /// (any pattern of bits is valid, and qemu sets every bit, even past the end of the
    /// disk), with one exception that a crash produces: a bitmap that starts with the
    /// footer's cookie is the footer that stood at the end of the file before the block
    /// was allocated, left there because the BAT entry reached the disk and the bitmap did
    /// not. Only a differencing image reads its bitmaps (a dynamic image reads the block's
    /// data as it is), so only there is it damage.
    fn check_bitmap(&mut self, block: u32, sector: u32, disk_type: DiskType) -> Result<()> {
        let start = u64::from(sector) * 512;
        let mut cookie = [0u8; 8];
        self.read(&mut cookie, start, "a sector bitmap")?;
        if &cookie != FOOTER_COOKIE {
            return Ok(());
        }
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
        self.add(
            severity,
            FindingKind::BitmapHoldsFooter,
            Some(start),
            format!(
                "the sector bitmap of block {block} (at {start}) holds a footer (cookie \"conectix\"): the block's BAT entry was written but its bitmap was not; {effect}"
            ),
        );
        Ok(())
    }

    /// Every structure must have its bytes to itself. Sorted by start, each region is
    /// compared with the one reaching furthest before it.
    fn check_overlaps(&mut self, regions: &[Region]) {
        let mut sorted: Vec<&Region> = regions.iter().collect();
        sorted.sort_by_key(|r| (r.start, r.end));
        let mut furthest: Option<&Region> = None;
        for r in sorted {
            if let Some(f) = furthest {
                if r.start < f.end {
                    self.add(
                        Severity::Corrupt,
                        FindingKind::Overlap,
                        Some(r.start),
                        format!("{} overlaps {}", r.what, f.what),
                    );
                }
            }
            if furthest.is_none_or(|f| r.end > f.end) {
                furthest = Some(r);
            }
        }
    }

    /// Space no structure uses: leaked blocks and padding (see the module documentation).
    fn check_unused(
        &mut self,
        space: &[Region],
        metadata_end: u64,
        limit: u64,
        end_missing: bool,
        block_size: u32,
    ) {
        let unit = bitmap_size(block_size) + u64::from(block_size);
        let mut spans: Vec<(u64, u64)> = space.iter().map(|r| (r.start, r.end)).collect();
        spans.sort_unstable();
        // Merge into the used stretches of the file.
        let mut used: Vec<(u64, u64)> = Vec::new();
        for (start, end) in spans {
            match used.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => used.push((start, end)),
            }
        }
        let used_end = used.last().map_or(0, |u| u.1);
        self.report.layout.used_end = used_end.max(metadata_end);
        // Gaps between used stretches, and up to the footer (or the end of the file).
        let mut gaps = Vec::new();
        let mut position = 0;
        for &(start, end) in &used {
            if start > position {
                gaps.push((position, start));
            }
            position = position.max(end);
        }
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
                let last = used.last().copied().unwrap_or((0, 0));
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterMissing,
                    Some(size.saturating_sub(FOOTER_SIZE as u64)),
                    format!(
                        "no footer at the end of the {size}-byte file, whose last bytes belong to a structure (used space ends at {}): the file was truncated or its footer overwritten (the footer copy at offset 0 is intact)",
                        last.1
                    ),
                );
            }
        } else if limit > position {
            gaps.push((position, limit));
        }
        let mut padding = Vec::new();
        for (start, end) in gaps {
            let length = end - start;
            if start >= metadata_end && length >= unit {
                if end == limit && !end_missing {
                    self.report.layout.trailing_leak = Some((start, end));
                }
                let blocks = length / unit;
                self.report.leaked_blocks += blocks;
                self.add(
                    Severity::Leak,
                    FindingKind::LeakedBlock,
                    Some(start),
                    format!(
                        "bytes {start}..{end} ({length} bytes: {blocks} block(s) of {unit} bytes, bitmap included) are not referenced by any BAT entry"
                    ),
                );
            } else {
                padding.push((start, end));
            }
        }
        self.report_padding(&padding);
    }

    /// Unused space that is not a leak, in one finding: writers that align blocks (Windows
    /// aligns each block's data to 4 KiB) leave a gap after every block.
    fn report_padding(&mut self, padding: &[(u64, u64)]) {
        let Some(&(first, _)) = padding.first() else {
            return;
        };
        let total: u64 = padding.iter().map(|(s, e)| e - s).sum();
        let mut listed: Vec<String> = padding
            .iter()
            .take(4)
            .map(|(s, e)| format!("{s}..{e}"))
            .collect();
        if padding.len() > 4 {
            listed.push("…".into());
        }
        let message = if padding.len() == 1 {
            format!(
                "bytes {} ({total} bytes) are not used by any structure",
                listed[0]
            )
        } else {
            format!(
                "{} stretches of the file ({total} bytes in all) are not used by any structure: bytes {}",
                padding.len(),
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

/// The stretches of a sparse image's file: `exact` for overlap checks (the bytes each
/// structure is read from), `space` for finding unused space (with padding: the BAT to a
/// sector, locators to their data space, blocks to a whole block).
struct Layout {
    exact: Vec<Region>,
    space: Vec<Region>,
}

fn region(start: u64, end: u64, what: String) -> Region {
    Region { start, end, what }
}

/// Bytes reserved for a parent locator's data. The specification counts the space in
/// sectors, Windows in bytes: a value smaller than the data length can only be sectors.
/// (The same rule as the reader's.)
fn locator_space(locator: &ParentLocator) -> u64 {
    let space = u64::from(locator.platform_data_space);
    let length = u64::from(locator.platform_data_length);
    if space < length {
        space * 512
    } else {
        space.max(length)
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
    let open_options = OpenOptions {
        read_only: true,
        ignore_checksums: true,
        parents: options.parents.clone(),
        ignore_parent_timestamp: options.ignore_parent_timestamp,
        parent_root: options.parent_root.clone(),
        lock: options.lock,
        ..OpenOptions::default()
    };
    let corrupt_already = report.has_corruption();
    let mut add = |severity, kind, message: String| {
        report.findings.push(Finding {
            severity,
            kind,
            offset: None,
            message,
        })
    };
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
