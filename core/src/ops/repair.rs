//! `check --repair`: fixing what [`check`](crate::check()) finds, where that is safe.
//!
//! The rules are documented on [`repair`].

use crate::bat::{BAT_ENTRY_SIZE, UNALLOCATED};
use crate::check::{
    check_layout, check_storage, CheckOptions, CheckReport, Finding, FindingKind, LayoutFacts,
    Severity, MAX_LISTED_PER_KIND,
};
use crate::dynamic_header::DynamicHeader;
use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::image::LockedFile;
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// One change [`repair`] made: what, where and why; or, when
/// [`omitted`](RepairAction::omitted) is set, the summary of the changes of its kind that
/// were not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairAction {
    /// The finding this change repairs.
    pub fixes: FindingKind,
    /// Where in the file the change was made (for a cut: the new file size; for a summary:
    /// the first change it stands for).
    pub offset: u64,
    /// What was changed, for a human.
    pub description: String,
    /// `None` for a change. For the summary that ends the list of a kind's changes once
    /// [`MAX_LISTED_PER_KIND`] of them are listed: how many more were made.
    pub omitted: Option<u64>,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The check before repairing.
    pub before: CheckReport,
    /// The changes made, in the order they were made (at most [`MAX_LISTED_PER_KIND`] of
    /// each kind, then a summary of the others); empty when nothing needed (or could safely
    /// get) a repair.
    pub actions: Vec<RepairAction>,
    /// Ranges of the virtual disk that read differently now because the blocks their BAT
    /// entries pointed at were not in the file: they read as zeros (in a differencing
    /// image, from the parent). In disk order, ranges that touch merged, at most
    /// [`MAX_LISTED_PER_KIND`] of them.
    pub lost: Vec<Range<u64>>,
    /// How many more such ranges (after those of `lost`) were not listed.
    pub lost_omitted: u64,
    /// The check after repairing (the same as `before` when nothing was written).
    pub after: CheckReport,
    /// What is still wrong: the findings of `after` that are damage or leaks.
    pub not_repaired: Vec<Finding>,
}

impl RepairReport {
    /// True when something was written.
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

impl std::fmt::Display for RepairReport {
    /// The changes, what now reads differently, what is still wrong, then the check after.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for action in &self.actions {
            writeln!(
                f,
                "repaired [{}] at {}: {}",
                action.fixes.code(),
                action.offset,
                action.description
            )?;
        }
        for range in &self.lost {
            writeln!(
                f,
                "lost: bytes {}..{} of the disk now read differently",
                range.start, range.end
            )?;
        }
        if self.lost_omitted > 0 {
            writeln!(
                f,
                "lost: … and {} more ranges of the disk, not listed",
                self.lost_omitted
            )?;
        }
        for finding in &self.not_repaired {
            writeln!(f, "not repaired: {finding}")?;
        }
        write!(f, "{}", self.after)
    }
}

/// Checks the image at `path` and repairs what can be repaired safely; the parent of a
/// differencing image is looked for as `options` say, and never written.
///
/// It checks the image, plans every change from what the check found, tries the
/// plan on an in-memory view of the file and checks that view, and only writes when the
/// plan leaves no new damage and less of the old. The check of that view is the check
/// after the repair: the file, locked, then holds exactly the bytes the view showed.
///
/// What is repaired (only when the footer fields, the dynamic header's fields and the BAT's
/// place are sound, so that the structures a fix relies on are the right ones):
///
/// - The footer at the end missing (a crash after a block allocation lost the moved
///   footer, or the file was cut) or damaged, with a good copy at offset 0: the footer is
///   written again, at the end of the space the structures and blocks use (rounded up to a
///   sector, where the next block would go), and the file is cut after it.
/// - The footer copy missing, damaged, or describing another disk (type, data offset,
///   size, unique id), with a good footer at the end: the copy is written from the footer.
/// - Bad checksums (footer and copy when neither is good, dynamic header): recomputed.
/// - BAT entries whose block is not (wholly) in front of the footer: set to unallocated.
///   What the block held is not in the file; its part of the disk now reads as zeros (from
///   the parent, for a differencing image): [`RepairReport::lost`] lists those ranges.
/// - Leaked blocks at the end of the file (in front of the footer): the footer moves to
///   the end of the used space and the file is cut after it. Leaks between blocks stay
///   (moving blocks is compaction's job) and are reported.
///
/// Everything else (overlapping blocks, a missing dynamic header, bad header or footer
/// fields, a truncated fixed image, parent problems, a bitmap that holds a footer) is
/// reported in [`RepairReport::not_repaired`] and left alone.
///
/// # Crash safety
///
/// The file is locked exclusively for the whole repair. Each structure is written in one
/// positioned write and made durable (`fsync`) before the next, in this order: BAT entries
/// and the dynamic header; the footer at the end; then the file is cut after it; then the
/// footer copy. Until the new footer is durable the file still opens as before (from the
/// copy at offset 0, or with the old end footer); a cut only removes space no structure
/// uses; the copy is written last from a footer already durable at the end.
///
/// # Errors
///
/// The file must be writable: a file without write permission fails with
/// [`Error::ReadOnly`] before anything is read. It is locked exclusively (unless
/// `options.lock` is off), so an image open elsewhere fails with [`Error::Locked`]. An
/// image with nothing to repair is not written at all. Errors are returned only when the
/// repair cannot run (I/O, lock, permissions); problems with the image are in the report.
pub fn repair(path: impl AsRef<Path>, options: &CheckOptions) -> Result<RepairReport> {
    let path = path.as_ref();
    let file = open_for_repair(path, options)?;
    let mut before = check_layout(Box::new(Shared(file.clone())), path, options)?;
    let plan = Plan::make(&before, &file)?;
    // What the check learnt of the layout served the plan; the report does not need it.
    before.layout = LayoutFacts::default();
    let preview = if plan.steps.is_empty() {
        None
    } else {
        plan.preview_if_better(&file, path, options, &before)?
    };
    let Some(after) = preview else {
        return Ok(report(before.clone(), Plan::default(), before));
    };
    plan.apply(file.as_ref())?;
    Ok(report(before, plan, after))
}

fn report(before: CheckReport, plan: Plan, after: CheckReport) -> RepairReport {
    let not_repaired = after
        .findings()
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .cloned()
        .collect();
    RepairReport {
        before,
        actions: plan.actions,
        lost: plan.lost,
        lost_omitted: plan.lost_omitted,
        after,
        not_repaired,
    }
}

/// Opens `path` for reading and writing and locks it exclusively. A file without write
/// permission is refused up front (even for a user the permissions do not bind, such as
/// root): its owner said it is not to be changed.
fn open_for_repair(path: &Path, options: &CheckOptions) -> Result<Arc<LockedFile>> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading the metadata of {}", path.display()), e))?;
    if metadata.permissions().readonly() {
        return Err(Error::ReadOnly {
            reason: format!(
                "{} has no write permission, and repairing writes it",
                path.display()
            ),
        });
    }
    let (file, _) = crate::files::open(
        path,
        File::options().read(true).write(true),
        crate::files::Use::WriteFile,
        "an image being repaired",
        |e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::ReadOnly {
                reason: format!("{} cannot be opened for writing ({e})", path.display()),
            },
            _ => Error::io(format!("opening {} for repair", path.display()), e),
        },
    )?;
    Ok(Arc::new(LockedFile::new(file, path, false, options.lock)?))
}

/// The repaired file as [`Storage`] for the checks, which take their storage by value.
#[derive(Debug)]
struct Shared(Arc<LockedFile>);

impl Storage for Shared {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        Storage::sync(&*self.0)
    }
    fn file_size(&self) -> io::Result<u64> {
        self.0.file_size()
    }
}

/// One change to the file.
#[derive(Debug, Clone)]
enum Step {
    /// Shared: the preview of a plan takes its steps without copying the bytes (a BAT's
    /// worth, at most).
    Write {
        offset: u64,
        bytes: Arc<Vec<u8>>,
    },
    SetLength(u64),
}

/// Every change a repair will make, in the order it makes them.
#[derive(Debug, Default)]
struct Plan {
    steps: Vec<Step>,
    actions: Vec<RepairAction>,
    lost: Vec<Range<u64>>,
    lost_omitted: u64,
}

impl Plan {
    /// Plans the repairs of what `before` found (see [`repair`]) in `file`, the file it
    /// checked (locked since).
    fn make(before: &CheckReport, file: &LockedFile) -> Result<Plan> {
        let mut plan = Plan::default();
        let layout = &before.layout;
        let (Some(disk_type), Some(footer)) = (before.disk_type(), layout.footer.as_ref()) else {
            return Ok(plan);
        };
        if !structure_sound(before, disk_type) {
            return Ok(plan);
        }
        // The footer to write wherever one is missing or damaged: the one the check
        // relied on, with its checksum made right (it is right already unless neither the
        // end footer nor the copy had a good one).
        let mut good = footer.clone();
        good.update_checksum();
        if let Some((header_offset, header)) = &layout.header {
            plan.drop_out_of_range(before, header, file)?;
            plan.fix_header_checksum(before, *header_offset, header);
        }
        plan.fix_end_footer(before, &good);
        if disk_type != DiskType::Fixed {
            plan.fix_copy(before, &good);
        }
        Ok(plan)
    }

    fn act(&mut self, fixes: FindingKind, offset: u64, description: String) {
        self.actions.push(RepairAction {
            fixes,
            offset,
            description,
            omitted: None,
        });
    }

    /// Sets BAT entries whose block is not in the file to unallocated, in one write that
    /// spans the first to the last of them (the entries between are written as they are
    /// in the file). Each change is listed, up to [`MAX_LISTED_PER_KIND`] of each kind.
    fn drop_out_of_range(
        &mut self,
        before: &CheckReport,
        header: &DynamicHeader,
        file: &LockedFile,
    ) -> Result<()> {
        let layout = &before.layout;
        // In block order, as the check found them.
        let dropped = &layout.out_of_range;
        let (Some(&(first, _)), Some(&(last, _))) = (dropped.first(), dropped.last()) else {
            return Ok(());
        };
        let offset = header.table_offset + u64::from(first) * BAT_ENTRY_SIZE;
        let mut entries =
            vec![0u8; (u64::from(last - first) + 1) as usize * BAT_ENTRY_SIZE as usize];
        file.read_exact_at(&mut entries, offset).map_err(|e| {
            let path = before.path().display();
            Error::io(
                format!("reading the BAT entries at offset {offset} of {path}"),
                e,
            )
        })?;
        let size = before.virtual_size().unwrap_or(0);
        let block_size = u64::from(header.block_size);
        let reads_as = if before.disk_type() == Some(DiskType::Differencing) {
            "from the parent"
        } else {
            "as zeros"
        };
        let mut lost = Lost::default();
        let mut listed: BTreeMap<FindingKind, usize> = BTreeMap::new();
        let mut omitted: BTreeMap<FindingKind, (u64, u64)> = BTreeMap::new();
        for &(block, sector) in dropped {
            let at = (block - first) as usize * BAT_ENTRY_SIZE as usize;
            entries[at..at + BAT_ENTRY_SIZE as usize].copy_from_slice(&UNALLOCATED.to_be_bytes());
            let start = u64::from(block) * block_size;
            let end = (start + block_size).min(size);
            if start < end {
                lost.add(start..end);
            }
            let kind = layout.out_of_range_kind(block, sector);
            let entry = header.table_offset + u64::from(block) * BAT_ENTRY_SIZE;
            let count = listed.entry(kind).or_insert(0);
            if *count == MAX_LISTED_PER_KIND {
                omitted.entry(kind).or_insert((0, entry)).0 += 1;
                continue;
            }
            *count += 1;
            let effect = if start < end {
                format!("bytes {start}..{end} of the disk now read {reads_as}")
            } else {
                "the block lies past the end of the disk".to_string()
            };
            self.act(
                kind,
                entry,
                format!(
                    "BAT entry {block} pointed at sector {sector}, whose block is not in the file: set to unallocated; {effect}"
                ),
            );
        }
        for (kind, (count, first_entry)) in omitted {
            self.actions.push(RepairAction {
                fixes: kind,
                offset: first_entry,
                description: format!(
                    "… and {count} more BAT entries ({}) whose block is not in the file were set to unallocated, not listed (only the first {MAX_LISTED_PER_KIND} of each kind are)",
                    kind.code()
                ),
                omitted: Some(count),
            });
        }
        (self.lost, self.lost_omitted) = lost.finish();
        self.steps.push(Step::Write {
            offset,
            bytes: Arc::new(entries),
        });
        Ok(())
    }

    fn fix_header_checksum(
        &mut self,
        before: &CheckReport,
        header_offset: u64,
        header: &DynamicHeader,
    ) {
        if before.count_of(FindingKind::HeaderChecksum) == 0 {
            return;
        }
        let mut header = header.clone();
        let stored = header.checksum;
        header.update_checksum();
        self.steps.push(Step::Write {
            offset: header_offset,
            bytes: Arc::new(header.to_bytes().to_vec()),
        });
        self.act(
            FindingKind::HeaderChecksum,
            header_offset + 36,
            format!(
                "the dynamic header's checksum {stored:#010x} was replaced by {:#010x}, the sum of its contents",
                header.checksum
            ),
        );
    }

    /// Writes the footer at the end again where it is missing or damaged, and moves it
    /// in front of leaked space at the end of the file (cutting the file after it).
    fn fix_end_footer(&mut self, before: &CheckReport, good: &Footer) {
        let layout = &before.layout;
        let file_size = before.file_size();
        let end_bad = layout.end_footer.as_ref().is_some_and(|(_, ok, _)| !ok);
        let bytes = Arc::new(good.to_bytes().to_vec());
        match &layout.end_footer {
            None => {
                // Where the next block would have gone, as the writer that lost it left it.
                let offset = layout.used_end.next_multiple_of(512);
                let leak = found(before, FindingKind::FooterMissing, Severity::Leak);
                let why = if leak {
                    "the file ended in space no structure uses, without its footer"
                } else {
                    "the file ended without its footer"
                };
                self.steps.push(Step::Write { offset, bytes });
                self.steps
                    .push(Step::SetLength(offset + FOOTER_SIZE as u64));
                self.act(
                    FindingKind::FooterMissing,
                    offset,
                    format!(
                        "{why}: the footer (from the copy at offset 0) was written at {offset}, the end of the used space, and the {file_size}-byte file now ends after it ({} bytes)",
                        offset + FOOTER_SIZE as u64
                    ),
                );
            }
            Some((_, _, end_offset)) => {
                if let Some((start, end)) = layout.trailing_leak {
                    let offset = start.next_multiple_of(512);
                    self.steps.push(Step::Write { offset, bytes });
                    self.steps
                        .push(Step::SetLength(offset + FOOTER_SIZE as u64));
                    self.act(
                        FindingKind::LeakedBlock,
                        offset,
                        format!(
                            "bytes {start}..{end}, in front of the footer, were not used by any block: the footer was moved to {offset} and the file cut after it, from {file_size} to {} bytes",
                            offset + FOOTER_SIZE as u64
                        ),
                    );
                    if end_bad {
                        self.act(
                            FindingKind::FooterChecksum,
                            offset,
                            format!("the footer at {end_offset} had a bad checksum: the one written at {offset} is right"),
                        );
                    }
                } else if end_bad {
                    self.steps.push(Step::Write {
                        offset: *end_offset,
                        bytes,
                    });
                    self.act(
                        FindingKind::FooterChecksum,
                        *end_offset,
                        format!(
                            "the footer at {end_offset} had a bad checksum: {}",
                            source_of(before, good)
                        ),
                    );
                }
            }
        }
    }

    /// Writes the footer copy at offset 0 from the footer when it is missing, damaged or
    /// describes another disk, unless a block claims those bytes.
    fn fix_copy(&mut self, before: &CheckReport, good: &Footer) {
        let kind = [
            FindingKind::FooterCopyMissing,
            FindingKind::FooterCopyChecksum,
            FindingKind::FooterCopyMismatch,
        ]
        .into_iter()
        .find(|&kind| found(before, kind, Severity::Corrupt))
        .or_else(|| {
            // The copy a resize had not rewritten yet when it was killed.
            let stale = FindingKind::FooterCopyStale;
            found(before, stale, Severity::Leak).then_some(stale)
        });
        let Some(kind) = kind else { return };
        // A block at sector 0 holds those bytes.
        if before.layout.first_block == Some(0) {
            return;
        }
        self.steps.push(Step::Write {
            offset: 0,
            bytes: Arc::new(good.to_bytes().to_vec()),
        });
        let what = match kind {
            FindingKind::FooterCopyMissing => "was missing",
            FindingKind::FooterCopyChecksum => "had a bad checksum",
            FindingKind::FooterCopyStale => "still gave the size before a resize",
            _ => "described another disk than the footer",
        };
        self.act(
            kind,
            0,
            format!("the footer copy at offset 0 {what}: it was written from the footer"),
        );
    }

    /// Tries the plan on an in-memory view of the file: it must leave no damage or leak
    /// the image did not have, and fewer of those it had. Returns the check of the view
    /// when it does.
    fn preview_if_better(
        &self,
        file: &Arc<LockedFile>,
        path: &Path,
        options: &CheckOptions,
        before: &CheckReport,
    ) -> Result<Option<CheckReport>> {
        let view = Preview {
            file: file.clone(),
            steps: self.steps.clone(),
            length: self.final_length(before.file_size()),
        };
        let preview = check_storage(Box::new(view), path, options)?;
        let problems = |report: &CheckReport| -> BTreeSet<(FindingKind, Severity)> {
            report
                .counts()
                .filter(|&(_, severity, _)| severity > Severity::Info)
                .map(|(kind, severity, _)| (kind, severity))
                .collect()
        };
        let count = |report: &CheckReport| -> u64 {
            report
                .counts()
                .filter(|&(_, severity, _)| severity > Severity::Info)
                .map(|(_, _, n)| n)
                .sum()
        };
        let nothing_new = problems(&preview).is_subset(&problems(before));
        let better = nothing_new && count(&preview) < count(before);
        Ok(better.then_some(preview))
    }

    fn final_length(&self, file_size: u64) -> u64 {
        let mut length = file_size;
        for step in &self.steps {
            match step {
                Step::Write { offset, bytes } => length = length.max(offset + bytes.len() as u64),
                Step::SetLength(l) => length = *l,
            }
        }
        length
    }

    /// Writes the plan, each step durable before the next (see [`repair`] for the order,
    /// which [`Plan::make`] builds the steps in).
    fn apply(&self, file: &LockedFile) -> Result<()> {
        apply_steps(&self.steps, file)
    }
}

/// Makes each step durable before the next.
fn apply_steps(steps: &[Step], file: &LockedFile) -> Result<()> {
    for step in steps {
        match step {
            Step::Write { offset, bytes } => file
                .write_all_at(bytes, *offset)
                .map_err(|e| Error::io(format!("writing the repair at offset {offset}"), e))?,
            Step::SetLength(length) => file
                .set_len(*length)
                .map_err(|e| Error::io(format!("cutting the file to {length} bytes"), e))?,
        }
        file.sync_all()
            .map_err(|e| Error::io("flushing the repair to disk (fsync)", e))?;
    }
    Ok(())
}

/// Ranges of the virtual disk that read differently after a repair, in disk order, merged
/// where they touch: the first [`MAX_LISTED_PER_KIND`] are kept, the others counted.
#[derive(Debug, Default)]
struct Lost {
    listed: Vec<Range<u64>>,
    /// The range being merged.
    current: Option<Range<u64>>,
    omitted: u64,
}

impl Lost {
    fn add(&mut self, range: Range<u64>) {
        match &mut self.current {
            Some(current) if current.end == range.start => current.end = range.end,
            _ => {
                self.close();
                self.current = Some(range);
            }
        }
    }

    fn close(&mut self) {
        if let Some(range) = self.current.take() {
            if self.listed.len() < MAX_LISTED_PER_KIND {
                self.listed.push(range);
            } else {
                self.omitted += 1;
            }
        }
    }

    /// The ranges listed, and how many more there are.
    fn finish(mut self) -> (Vec<Range<u64>>, u64) {
        self.close();
        (self.listed, self.omitted)
    }
}

/// Whether `report` found anything of `kind` with `severity` (listed or not).
fn found(report: &CheckReport, kind: FindingKind, severity: Severity) -> bool {
    report.counts().any(|(k, s, _)| k == kind && s == severity)
}

/// Where the footer written at the end comes from, for messages.
fn source_of(before: &CheckReport, good: &Footer) -> &'static str {
    match &before.layout.copy {
        Some((copy, true)) if copy == good => "it was written again from the copy at offset 0",
        _ => "its checksum was recomputed",
    }
}

/// Whether the structures a repair relies on are trustworthy: the footer's fields, the
/// dynamic header (found, with sound fields) and the BAT's place. Damage there means the
/// footer, header or BAT the repair would write could be the wrong ones.
fn structure_sound(before: &CheckReport, disk_type: DiskType) -> bool {
    let unsound = [
        FindingKind::FooterField,
        FindingKind::HeaderCookie,
        FindingKind::HeaderField,
        FindingKind::Truncated,
    ];
    let fields_sound = !unsound
        .iter()
        .any(|&kind| found(before, kind, Severity::Corrupt));
    let layout_read =
        disk_type == DiskType::Fixed || (before.layout.header.is_some() && before.layout.bat_read);
    fields_sound && layout_read
}

/// The file as the plan would leave it, read-only, for checking the plan before writing.
#[derive(Debug)]
struct Preview {
    file: Arc<LockedFile>,
    steps: Vec<Step>,
    length: u64,
}

impl Storage for Preview {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.length {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // The file's bytes (zeros past its end), then each planned write over them. Only
        // the final length counts: every cut in a plan is its last step on that range.
        let file_size = self.file.file_size()?;
        buf.fill(0);
        if offset < file_size {
            let available = (file_size - offset).min(buf.len() as u64) as usize;
            self.file.read_exact_at(&mut buf[..available], offset)?;
        }
        for step in &self.steps {
            if let Step::Write { offset: at, bytes } = step {
                let from = offset.max(*at);
                let to = end.min(at + bytes.len() as u64);
                if from < to {
                    buf[(from - offset) as usize..(to - offset) as usize]
                        .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
                }
            }
        }
        Ok(())
    }

    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("the repair preview is read-only"))
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn file_size(&self) -> io::Result<u64> {
        Ok(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, CreateOptions, Image, OpenOptions, VirtualDisk};

    /// A repair cut short after any of its steps (a crash, a full disk) leaves an image no
    /// worse than before: every problem the check finds then was there before the repair.
    #[test]
    fn every_prefix_of_a_repair_is_no_worse_than_before() {
        let dir = std::env::temp_dir().join(format!("vhd-repair-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.vhd");
        let mut options = CreateOptions::new(DiskType::Dynamic, 8 << 20);
        options.block_size = 1 << 20;
        let mut disk = create(&path, &options).unwrap();
        for block in [0u64, 2, 5] {
            disk.write_at(&[block as u8 + 1; 8192], block << 20)
                .unwrap();
        }
        disk.flush().unwrap();
        drop(disk);
        let mut bytes = std::fs::read(&path).unwrap();
        let footer_at = bytes.len() - 512;
        let image = Image::open(&path, &OpenOptions::default()).unwrap();
        let header = image.header().unwrap().clone();
        drop(image);
        // BAT entry 7 far outside the file, the header's checksum damaged, and the footer
        // lost behind half a block of a torn allocation.
        let entry = header.table_offset as usize + 7 * 4;
        bytes[entry..entry + 4].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        bytes[512 + 1000] ^= 0xFF;
        bytes.resize(footer_at + 512 + (512 << 10), 0x33);
        std::fs::write(&path, &bytes).unwrap();

        let options = CheckOptions::default();
        let problems = |report: &CheckReport| -> BTreeSet<FindingKind> {
            report
                .findings()
                .iter()
                .filter(|f| f.severity > Severity::Info)
                .map(|f| f.kind)
                .collect()
        };
        let file = open_for_repair(&path, &options).unwrap();
        let before = check_layout(Box::new(Shared(file.clone())), &path, &options).unwrap();
        let plan = Plan::make(&before, &file).unwrap();
        drop(file);
        assert_eq!(plan.steps.len(), 4, "{plan:#?}");
        for k in 0..=plan.steps.len() {
            std::fs::write(&path, &bytes).unwrap();
            let file = open_for_repair(&path, &options).unwrap();
            apply_steps(&plan.steps[..k], &file).unwrap();
            drop(file);
            let now = crate::check(&path, &options).unwrap();
            assert!(
                problems(&now).is_subset(&problems(&before)),
                "after {k} steps:\n{now}"
            );
            if k == plan.steps.len() {
                assert!(now.is_clean(), "{now}");
                assert_eq!(now.file_size(), footer_at as u64 + 512);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
