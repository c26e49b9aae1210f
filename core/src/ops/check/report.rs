//! What a check found: findings, their kinds and severities, the report and its totals,
//! and the layout facts a repair plans from.

use super::MAX_LISTED_PER_KIND;
use crate::dynamic_header::DynamicHeader;
use crate::footer::{DiskType, Footer};
use crate::image::{BlockGeometry, FooterSource};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The exit code of a check whose only damage is a broken link to the parent (see
/// [`FindingKind::is_parent_link`]): not qemu-img's 2 (the image is corrupt), which a
/// script would answer with a repair that cannot help, but its own.
pub const PARENT_LINK_EXIT_CODE: i32 = 4;

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
    /// The virtual size and the CHS geometry describe different sizes. No longer reported
    /// (it is the rule for images made to an exact size, and no error): the size the
    /// geometry describes is [`ImageInfo::geometry_size`](crate::ops::ImageInfo::geometry_size).
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
    /// Whether the finding is about the link to the parent (a differencing image's parent
    /// missing, replaced, modified since, or unusable) rather than the image's own
    /// structures: the chain is broken, the image itself may be sound. Such findings are
    /// [`Severity::Corrupt`] (the disk cannot be read), and give their own exit code
    /// ([`PARENT_LINK_EXIT_CODE`]) when nothing else is damaged.
    pub fn is_parent_link(self) -> bool {
        matches!(
            self,
            FindingKind::ParentNotFound
                | FindingKind::ParentMismatch
                | FindingKind::ParentModified
                | FindingKind::ParentUnusable
        )
    }

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

/// What [`check`](super::check()) found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub(super) path: PathBuf,
    pub(super) file_size: u64,
    pub(super) disk_type: Option<DiskType>,
    pub(super) footer_source: Option<FooterSource>,
    pub(super) virtual_size: Option<u64>,
    pub(super) block_size: Option<u32>,
    pub(super) table_entries: u64,
    pub(super) allocated_blocks: u64,
    pub(super) leaked_blocks: u64,
    pub(super) parent: Option<PathBuf>,
    pub(super) findings: Vec<Finding>,
    /// Every finding made, listed or not: how many of each kind, by severity (indexed by
    /// `Severity as usize`).
    pub(super) tally: BTreeMap<FindingKind, [u64; 3]>,
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

    /// How many [`Severity::Corrupt`] findings are about the image's own structures (those
    /// about the parent link, [`FindingKind::is_parent_link`], left out).
    pub fn damage(&self) -> u64 {
        self.tally
            .iter()
            .filter(|(kind, _)| !kind.is_parent_link())
            .map(|(_, counts)| counts[Severity::Corrupt as usize])
            .sum()
    }

    /// True when the link to the parent is broken (missing, replaced, modified or unusable
    /// parent).
    pub fn parent_link_broken(&self) -> bool {
        self.tally.keys().any(|kind| kind.is_parent_link())
    }

    /// The exit code, as `qemu-img check` gives it: 0 clean, 2 corrupt, 3 leaks only; and
    /// [`PARENT_LINK_EXIT_CODE`] (4) when the only damage is a broken link to the parent.
    pub fn exit_code(&self) -> i32 {
        if self.damage() > 0 {
            2
        } else if self.parent_link_broken() {
            PARENT_LINK_EXIT_CODE
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
    pub(super) fn note_stale_temp_files(&mut self) {
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
    pub(super) fn summarise(&mut self) {
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
        let corrupt = self.damage();
        if corrupt > 0 {
            writeln!(f, "{corrupt} errors were found on the image.")?;
        } else if self.parent_link_broken() {
            writeln!(f, "The parent chain is broken.")?;
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

impl LayoutFacts {
    /// Which finding the out-of-range BAT entry `block` (pointing at `sector`) gave.
    pub(crate) fn out_of_range_kind(&self, block: u32, sector: u32) -> FindingKind {
        self.geometry
            .and_then(|g| g.out_of_range(&g.extent(block, sector)))
            .map_or(FindingKind::BatOutOfRange, super::blocks::out_of_range_kind)
    }
}
