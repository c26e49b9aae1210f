//! `check --repair`: fixing what [`check`](crate::check()) finds, where that is safe.
//!
//! The rules are documented on [`repair`].

use super::check::{
    check_layout, check_storage, CheckOptions, CheckReport, Finding, FindingKind, LayoutFacts,
    Severity, MAX_LISTED_PER_KIND,
};
use crate::bat::{BAT_ENTRY_SIZE, UNALLOCATED};
use crate::checksum::checksum;
use crate::dynamic_header::{DynamicHeader, DYNAMIC_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer, FOOTER_COOKIE, FOOTER_SIZE};
use crate::image::{bat_entry_offset, block_extent, Image, LockedFile, VirtualDisk};
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
    /// What a forced repair ([`RepairOptions::force`]) carried out that a repair without
    /// force refuses: what was lost or accepted, one sentence each (the `risks` of
    /// [`Error::RepairRefused`]). Empty when nothing of the kind was done.
    pub forced: Vec<String>,
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
        for risk in &self.forced {
            writeln!(f, "forced: {risk}")?;
        }
        for finding in &self.not_repaired {
            writeln!(f, "not repaired: {finding}")?;
        }
        write!(f, "{}", self.after)
    }
}

/// How [`repair_with`] may repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Carry out a plan that would make data unreachable or believe a damaged structure
    /// that other fields contradict (see [`repair`]). Off by default: such a plan is
    /// refused with [`Error::RepairRefused`], which says what would be lost, and nothing
    /// is written. Keep a copy of the image before forcing.
    pub force: bool,
}

/// Checks the image at `path` and repairs what can be repaired without losing data; the
/// parent of a differencing image is looked for as `options` say, and never written. The
/// same as [`repair_with`] without `force`.
///
/// It checks the image, plans every change from what the check found, tries the plan on
/// an in-memory view of the file and checks that view, and only writes when the plan
/// leaves no new damage and less of the old, and every sector a reader could read before
/// (checksums ignored) reads the same. The check of that view is the check after the
/// repair: the file, locked, then holds exactly the bytes the view showed.
///
/// # Which structure to believe
///
/// A structure whose checksum failed is not believed on its own word. The format's
/// redundancy decides: the footer copy at offset 0 against the footer at the end; the
/// original size and the file's length against a fixed image's current size; the BAT's
/// own consistency (entries inside the file, blocks apart from each other and from the
/// metadata, no block-sized space that no entry refers to) against the dynamic header's
/// table offset, block size and entry count. When one bit of a damaged field, flipped
/// back, makes the stored checksum right and the structure consistent with the rest, and
/// no other such bit does, the field is restored (a *correction*). A BAT entry (which has
/// no checksum) pointing outside the file or into another block is restored when one bit
/// flipped back makes it point at the start of a block-sized stretch that no entry refers
/// to and that holds a sector bitmap, and no other bit does.
///
/// # What is repaired
///
/// Only when the footer fields, the dynamic header's fields and the BAT's place are sound:
///
/// - The footer at the end missing (a crash after a block allocation lost the moved
///   footer, or the file was cut) or damaged, with a good copy at offset 0: the footer is
///   written again, at the end of the space the structures and blocks use (rounded up to a
///   sector, where the next block would go), and the file is cut after it.
/// - The footer copy missing, damaged, or describing another disk (type, data offset,
///   size, unique id), with a good footer at the end: the copy is written from the footer.
/// - Bad checksums (footer and copy when neither is good, dynamic header): recomputed,
///   when the structure agrees with the rest (see *What needs force*).
/// - Corrections, as above.
/// - BAT entries whose block is not (wholly) in front of the footer: set to unallocated
///   (with force only). [`RepairReport::lost`] lists the ranges of the disk that then read
///   as zeros (from the parent, for a differencing image).
/// - Leaked blocks at the end of the file (in front of the footer): the footer moves to
///   the end of the used space and the file is cut after it (with force only when that
///   space holds plausible block data). Leaks between blocks stay (moving blocks is
///   compaction's job) and are reported.
///
/// Everything else (overlapping blocks, a missing dynamic header, bad header or footer
/// fields, a truncated fixed image, parent problems, a bitmap that holds a footer) is
/// reported in [`RepairReport::not_repaired`] and left alone.
///
/// # What needs force
///
/// A plan that would drop allocated blocks (BAT entries set to unallocated), cut space
/// that holds plausible block data (a sector bitmap with bits set, or data, that is not
/// the footer a cut-short allocation leaves where its bitmap was), make any sector that
/// reads now read differently, recompute the checksum of a dynamic header whose BAT is
/// not consistent (or, in a differencing image, whose parent fields the parent found does
/// not confirm), or recompute the checksum of a footer whose size other fields
/// contradict (a fixed image's current size against the file's length; a footer and a
/// copy, both damaged, that disagree), is not carried out: [`Error::RepairRefused`] says
/// what would be lost, and the file is left byte for byte as it was. The space a file
/// that lost its end footer ends in (with a good copy at offset 0: the remains of an
/// allocation cut short) is not judged: no BAT entry ever referred to it.
///
/// # Crash safety
///
/// The file is locked exclusively for the whole repair. Each structure is written in one
/// positioned write and made durable (`fsync`) before the next, in this order:
/// corrections; BAT entries and the dynamic header; the footer at the end; then the file
/// is cut after it; then the footer copy. Until the new footer is durable the file still
/// opens as before (from the copy at offset 0, or with the old end footer); a cut only
/// removes space no structure uses; the copy is written last from a footer already
/// durable at the end.
///
/// # Errors
///
/// The file must be writable: a file without write permission fails with
/// [`Error::ReadOnly`] before anything is read. It is locked exclusively (unless
/// `options.lock` is off), so an image open elsewhere fails with [`Error::Locked`]. An
/// image with nothing to repair is not written at all. A plan that needs force fails with
/// [`Error::RepairRefused`]. Other errors are returned only when the repair cannot run
/// (I/O, lock, permissions); problems with the image are in the report.
pub fn repair(path: impl AsRef<Path>, options: &CheckOptions) -> Result<RepairReport> {
    repair_with(path, options, &RepairOptions::default())
}

/// [`repair`], with `force` (see [`RepairOptions`]): a plan that would lose data is
/// carried out, and its losses are in the report.
pub fn repair_with(
    path: impl AsRef<Path>,
    options: &CheckOptions,
    repair: &RepairOptions,
) -> Result<RepairReport> {
    let path = path.as_ref();
    repair_with_unnamed(path, options, repair).map_err(|e| e.in_file(path))
}

/// [`repair_with`], whose I/O errors may not name the file yet.
fn repair_with_unnamed(
    path: impl AsRef<Path>,
    options: &CheckOptions,
    repair: &RepairOptions,
) -> Result<RepairReport> {
    let path = path.as_ref();
    let file = open_for_repair(path, options)?;
    repair_through(file, path, options, repair)
}

/// [`repair_with`], reading and writing the image through `file`, which must hold what the
/// file at `path` holds (a differencing image's parents are found through `path`; the
/// caller opened and locks the file): the injection point of the crash tests, which hand
/// in a storage that dies or loses power after any write. Not a stable interface.
#[doc(hidden)]
pub fn repair_through(
    file: Arc<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
    repair: &RepairOptions,
) -> Result<RepairReport> {
    let mut before = check_layout(Box::new(Shared(file.clone())), path, options)?;
    let mut plan = Plan::default();
    // What the redundancy of the format says the damaged structures held; then the
    // repairs of what is left, planned from the check of the file as corrected.
    let corrected = plan.correct(&before, &file, path, options)?;
    let basis = corrected.as_ref().unwrap_or(&before);
    let view = plan.view(&file, before.file_size());
    plan.make(basis, &view)?;
    drop(corrected);
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
    plan.check_readable(&file, path, options, before.file_size())?;
    if !plan.risks.is_empty() && !repair.force {
        return Err(Error::RepairRefused {
            path: path.to_path_buf(),
            risks: plan.risks,
            before: Box::new(before),
        });
    }
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
        forced: plan.risks,
    }
}

/// Opens `path` for reading and writing and locks it exclusively. A file without write
/// permission is refused up front (even for a user the permissions do not bind, such as
/// root): its owner said it is not to be changed.
fn open_for_repair(path: &Path, options: &CheckOptions) -> Result<Arc<LockedFile>> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| Error::io_at(path, "stat", "reading the metadata", e))?;
    if metadata.permissions().readonly() {
        return Err(Error::ReadOnly {
            path: Some(path.to_path_buf()),
            reason: "it has no write permission, and repairing writes it".into(),
        });
    }
    let (file, _) = crate::files::open(
        path,
        File::options().read(true).write(true),
        crate::files::Use::WriteFile,
        "an image being repaired",
        |e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::ReadOnly {
                path: Some(path.to_path_buf()),
                reason: format!("it cannot be opened for writing ({e})"),
            },
            _ => Error::io_at(path, "open", "opening for repair", e),
        },
    )?;
    Ok(Arc::new(LockedFile::new(file, path, false, options.lock)?))
}

/// The repaired file as [`Storage`] for the checks, which take their storage by value.
#[derive(Debug)]
struct Shared(Arc<dyn Storage>);

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

impl Step {
    /// Writing `bytes` at `offset`.
    fn write(offset: u64, bytes: Vec<u8>) -> Step {
        Step::Write {
            offset,
            bytes: Arc::new(bytes),
        }
    }
}

/// Every change a repair will make, in the order it makes them.
#[derive(Debug, Default)]
struct Plan {
    steps: Vec<Step>,
    actions: Vec<RepairAction>,
    lost: Vec<Range<u64>>,
    lost_omitted: u64,
    /// Why the plan needs force: what it would lose or accept, one sentence each.
    risks: Vec<String>,
}

impl Plan {
    /// Plans the repairs of what `before` found (see [`repair`]) in `file`, the file it
    /// checked (locked since, seen with the corrections planned so far).
    fn make(&mut self, before: &CheckReport, file: &dyn Storage) -> Result<()> {
        let layout = &before.layout;
        let (Some(disk_type), Some(footer)) = (before.disk_type(), layout.footer.as_ref()) else {
            return Ok(());
        };
        if !structure_sound(before, disk_type) {
            return Ok(());
        }
        // The footer to write wherever one is missing or damaged: the one the check
        // relied on, with its checksum made right (it is right already unless neither the
        // end footer nor the copy had a good one).
        let mut good = footer.clone();
        good.update_checksum();
        self.judge_footer_sizes(before, disk_type);
        if let Some((header_offset, header)) = &layout.header {
            self.drop_out_of_range(before, header, file)?;
            self.fix_header_checksum(before, *header_offset, header);
            self.fix_interrupted_commit(before, *header_offset, header)?;
        }
        self.fix_end_footer(before, &good, file)?;
        if disk_type != DiskType::Fixed {
            self.fix_copy(before, &good);
        }
        Ok(())
    }

    /// The footer `bytes` written at `offset`, and the file cut after it: the end of a file
    /// whose footer was lost or that ends in leaked space.
    fn end_file_with(&mut self, offset: u64, bytes: Arc<Vec<u8>>) {
        self.steps.push(Step::Write { offset, bytes });
        self.steps
            .push(Step::SetLength(offset + FOOTER_SIZE as u64));
    }

    /// The file as the steps planned so far leave it.
    fn view(&self, file: &Arc<dyn Storage>, file_size: u64) -> Preview {
        Preview {
            file: file.clone(),
            steps: self.steps.clone(),
            length: self.final_length(file_size),
        }
    }

    /// Restores what one flipped bit changed, where the format's redundancy says what it
    /// was (see [`repair`]): a fixed image's current size, the dynamic header's layout
    /// fields, BAT entries. Returns the check of the file as corrected, when anything was.
    fn correct(
        &mut self,
        before: &CheckReport,
        file: &Arc<dyn Storage>,
        path: &Path,
        options: &CheckOptions,
    ) -> Result<Option<CheckReport>> {
        let size = before.file_size();
        let mut basis: Option<CheckReport> = None;
        self.correct_fixed_footer(before);
        self.correct_header(before, file, path, options)?;
        if !self.steps.is_empty() {
            basis = Some(check_layout(
                Box::new(self.view(file, size)),
                path,
                options,
            )?);
        }
        let count = self.steps.len();
        self.correct_bat_entries(basis.as_ref().unwrap_or(before), file, path, options)?;
        if self.steps.len() > count {
            basis = Some(check_layout(
                Box::new(self.view(file, size)),
                path,
                options,
            )?);
        }
        Ok(basis)
    }

    /// A fixed image's footer with a bad checksum whose current size is not the length of
    /// the data in front of it: if one bit of the current size, flipped, makes both right,
    /// the size lost that bit.
    fn correct_fixed_footer(&mut self, before: &CheckReport) {
        let layout = &before.layout;
        let Some((footer, false, offset)) = &layout.end_footer else {
            return;
        };
        if footer.disk_type() != Some(DiskType::Fixed) || footer.current_size == *offset {
            return;
        }
        let bytes = footer.to_bytes();
        let candidates: Vec<Vec<u8>> =
            one_bit_repairs(&bytes, FOOTER_CHECKSUM_AT, std::iter::once(48..56))
                .into_iter()
                .filter(|candidate| be_u64(candidate, 48) == *offset)
                .collect();
        let [candidate] = &candidates[..] else {
            return;
        };
        self.steps.push(Step::write(*offset, candidate.clone()));
        self.act(
            FindingKind::FooterChecksum,
            offset + 48,
            format!(
                "the footer's current size {} had lost a bit: {offset}, the length of the data in front of the footer (original size {}), makes its stored checksum right again, and was restored",
                footer.current_size, footer.original_size
            ),
        );
    }

    /// A dynamic header with a bad checksum whose BAT is not consistent (see
    /// [`layout_consistent`]): the one bit of its table offset, entry count or block size
    /// that, flipped back, makes the stored checksum right and the BAT consistent, if
    /// there is exactly one.
    fn correct_header(
        &mut self,
        before: &CheckReport,
        file: &Arc<dyn Storage>,
        path: &Path,
        options: &CheckOptions,
    ) -> Result<()> {
        let Some((header_offset, header)) = &before.layout.header else {
            return Ok(());
        };
        if before.count_of(FindingKind::HeaderChecksum) == 0 || layout_consistent(before) {
            return Ok(());
        }
        // Only the structures are judged: the parent is not looked for.
        let options = CheckOptions {
            skip_parent: true,
            ..options.clone()
        };
        let bytes = header.to_bytes();
        let fields = [16..24, 28..32, 32..36];
        let mut consistent = Vec::new();
        for candidate in one_bit_repairs(&bytes, HEADER_CHECKSUM_AT, fields) {
            let mut view = self.view(file, before.file_size());
            view.steps
                .push(Step::write(*header_offset, candidate.clone()));
            let report = check_layout(Box::new(view), path, &options)?;
            if layout_consistent(&report) && report.count_of(FindingKind::HeaderChecksum) == 0 {
                consistent.push(candidate);
            }
        }
        let [candidate] = &consistent[..] else {
            return Ok(());
        };
        let field = (0..DYNAMIC_HEADER_SIZE)
            .find(|&i| candidate[i] != bytes[i])
            .unwrap_or(0);
        let (name, was, is) = match field {
            16..=23 => ("table offset", header.table_offset, be_u64(candidate, 16)),
            28..=31 => (
                "max table entries",
                u64::from(header.max_table_entries),
                u64::from(be_u32(candidate, 28)),
            ),
            _ => (
                "block size",
                u64::from(header.block_size),
                u64::from(be_u32(candidate, 32)),
            ),
        };
        self.steps
            .push(Step::write(*header_offset, candidate.clone()));
        self.act(
            FindingKind::HeaderChecksum,
            header_offset + field as u64,
            format!(
                "the dynamic header's {name} {was:#x} had a flipped bit and its checksum failed: {is:#x} makes the stored checksum right and the BAT consistent, and was restored"
            ),
        );
        Ok(())
    }

    /// BAT entries pointing outside the file or into another block: restored when one bit
    /// flipped back makes the entry point at a sector bitmap in front of the footer (or
    /// makes it unallocated) and leaves fewer entries outside the file, overlaps and leaked
    /// blocks, and no new kind of problem, and no other bit does. Each candidate is judged
    /// by a check of the file with it (at most [`MAX_CANDIDATE_CHECKS`] in all).
    fn correct_bat_entries(
        &mut self,
        before: &CheckReport,
        file: &Arc<dyn Storage>,
        path: &Path,
        options: &CheckOptions,
    ) -> Result<()> {
        let layout = &before.layout;
        let (Some((_, header)), Some(geometry)) = (&layout.header, layout.geometry) else {
            return Ok(());
        };
        if !layout.bat_read
            || !structure_sound(before, before.disk_type().unwrap_or(DiskType::Dynamic))
        {
            return Ok(());
        }
        let options = CheckOptions {
            skip_parent: true,
            ..options.clone()
        };
        // Thousands of damaged entries are not the work of a flipped bit or two.
        let damaged = before.count_of(FindingKind::BatOutOfRange)
            + before.count_of(FindingKind::BitmapOutOfRange)
            + before.count_of(FindingKind::Overlap);
        if damaged > MAX_SUSPECT_ENTRIES as u64 {
            return Ok(());
        }
        let suspects: Vec<(u32, u32, FindingKind)> = layout
            .out_of_range
            .iter()
            .map(|&(block, sector)| (block, sector, layout.out_of_range_kind(block, sector)))
            .chain(
                layout
                    .overlapping
                    .iter()
                    .map(|&(block, sector)| (block, sector, FindingKind::Overlap)),
            )
            .take(MAX_SUSPECT_ENTRIES)
            .collect();
        let size = before.file_size();
        let mut problems = bat_problems(before);
        let mut budget = MAX_CANDIDATE_CHECKS;
        for (block, sector, kind) in suspects {
            let view = self.view(file, size);
            let entry = bat_entry_offset(header, block);
            let mut better = Vec::new();
            for bit in 0..32 {
                let candidate = sector ^ (1 << bit);
                if candidate != UNALLOCATED {
                    let extent = geometry.read_extent(block, candidate);
                    if extent.end > layout.limit
                        || !holds_bitmap(
                            &view,
                            extent.start,
                            geometry.bitmap_bytes(),
                            geometry.unit(),
                        )?
                    {
                        continue;
                    }
                }
                if budget == 0 {
                    return Ok(());
                }
                budget -= 1;
                let mut trial = self.view(file, size);
                trial
                    .steps
                    .push(Step::write(entry, candidate.to_be_bytes().to_vec()));
                let report = check_layout(Box::new(trial), path, &options)?;
                let now = bat_problems(&report);
                // The entry itself must now be in order, not merely the total smaller.
                let settled = !report.layout.overlapping.iter().any(|&(b, _)| b == block)
                    && !report.layout.out_of_range.iter().any(|&(b, _)| b == block);
                if settled && now.0 < problems.0 && now.1.is_subset(&problems.1) {
                    better.push((candidate, now));
                }
            }
            let [(candidate, now)] = &better[..] else {
                continue;
            };
            let candidate = *candidate;
            problems = now.clone();
            self.steps
                .push(Step::write(entry, candidate.to_be_bytes().to_vec()));
            let what = if candidate == UNALLOCATED {
                "unallocated (0xffffffff), as it was".to_string()
            } else {
                format!("sector {candidate}, where its block lies")
            };
            self.act(
                kind,
                entry,
                format!(
                    "BAT entry {block} pointed at sector {sector} ({}): one bit flipped back, it points at {what}, and the BAT agrees with the file again",
                    kind.code()
                ),
            );
        }
        Ok(())
    }

    /// A footer with a bad checksum whose size other fields contradict: its checksum is
    /// not recomputed without force.
    fn judge_footer_sizes(&mut self, before: &CheckReport, disk_type: DiskType) {
        let layout = &before.layout;
        let end_bad = layout.end_footer.as_ref().filter(|(_, good, _)| !good);
        if disk_type == DiskType::Fixed {
            if let Some((footer, _, offset)) = end_bad {
                if footer.current_size != *offset {
                    self.risks.push(format!(
                        "the footer's checksum is bad and its current size ({} bytes) is not the length of the data in front of it ({offset} bytes; original size {}): recomputing the checksum would accept the damaged size{}",
                        footer.current_size,
                        footer.original_size,
                        if footer.current_size < *offset {
                            format!(", and bytes {}..{offset} of the disk would no longer be read", footer.current_size)
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            return;
        }
        if let (Some((footer, _, _)), Some((copy, false))) = (end_bad, &layout.copy) {
            let key = |f: &Footer| {
                (
                    f.disk_type_code,
                    f.data_offset,
                    f.current_size,
                    f.original_size,
                    f.unique_id,
                )
            };
            if key(footer) != key(copy) {
                self.risks.push(
                    "the footer and its copy at offset 0 both have bad checksums and disagree on the disk's type, data offset, size or unique id: recomputing the footer's checksum would accept a value that may be damaged".to_string(),
                );
            }
        }
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
        file: &dyn Storage,
    ) -> Result<()> {
        let layout = &before.layout;
        // In block order, as the check found them.
        let dropped = &layout.out_of_range;
        let (Some(&(first, _)), Some(&(last, _))) = (dropped.first(), dropped.last()) else {
            return Ok(());
        };
        let offset = bat_entry_offset(header, first);
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
            let entry = bat_entry_offset(header, block);
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
        let total = dropped.len();
        self.risks.push(format!(
            "{total} BAT entries point at blocks that are not in the file and would be set to unallocated: bytes {} of the disk would then read {reads_as}",
            some_ranges(&self.lost, self.lost_omitted)
        ));
        self.steps.push(Step::write(offset, entries));
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
        if !layout_consistent(before) {
            self.risks.push(format!(
                "the dynamic header at {header_offset} has a bad checksum and its BAT (table offset {}, {} entries, blocks of {} bytes) does not agree with the file (entries outside the file, overlapping blocks or block-sized space no entry refers to): recomputing its checksum would accept fields that may be damaged",
                header.table_offset, header.max_table_entries, header.block_size
            ));
        } else if !parent_fields_confirmed(before) {
            self.risks.push(format!(
                "the dynamic header at {header_offset} has a bad checksum and the parent it describes (unique id, time stamp, name, locators) is not confirmed by the parent found: recomputing its checksum would accept fields that may be damaged"
            ));
        }
        let mut header = header.clone();
        let stored = header.checksum;
        header.update_checksum();
        self.steps
            .push(Step::write(header_offset, header.to_bytes().to_vec()));
        self.act(
            FindingKind::HeaderChecksum,
            header_offset + 36,
            format!(
                "the dynamic header's checksum {stored:#010x} was replaced by {:#010x}, the sum of its contents",
                header.checksum
            ),
        );
    }

    /// A commit killed while it wrote into the parent left the child without its parent's
    /// time stamp, marked (`commit-interrupted`): the parent the check found and verified
    /// by its unique id is the one the chain reads through, so its modification time is
    /// recorded and the mark removed, as the commit would have done at its end. Left alone
    /// when the header's checksum failed (its fields are then not to be rewritten on their
    /// own word) or no parent was found.
    fn fix_interrupted_commit(
        &mut self,
        before: &CheckReport,
        header_offset: u64,
        header: &DynamicHeader,
    ) -> Result<()> {
        if before.count_of(FindingKind::CommitInterrupted) == 0
            || before.count_of(FindingKind::HeaderChecksum) > 0
        {
            return Ok(());
        }
        let Some(parent) = before.parent() else {
            return Ok(());
        };
        let mut header = header.clone();
        header.parent_timestamp = crate::files::modification_timestamp(parent)?;
        header.set_commit_in_progress(false);
        header.update_checksum();
        self.steps
            .push(Step::write(header_offset, header.to_bytes().to_vec()));
        self.act(
            FindingKind::CommitInterrupted,
            header_offset + 56,
            format!(
                "the parent time stamp a killed commit had cleared was recorded again from {}",
                parent.display()
            ),
        );
        Ok(())
    }

    /// Writes the footer at the end again where it is missing or damaged, and moves it
    /// in front of leaked space at the end of the file (cutting the file after it).
    fn fix_end_footer(
        &mut self,
        before: &CheckReport,
        good: &Footer,
        file: &dyn Storage,
    ) -> Result<()> {
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
                self.end_file_with(offset, bytes);
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
                    if let Some(geometry) = layout.geometry {
                        let plausible = plausible_blocks(
                            file,
                            start,
                            end,
                            geometry.bitmap_bytes(),
                            geometry.unit(),
                        )?;
                        if plausible > 0 {
                            self.risks.push(format!(
                                "bytes {start}..{end}, in front of the footer, are not referenced by any BAT entry but hold {plausible} plausible block(s) (a sector bitmap followed by data): cutting the file to {} bytes would destroy them",
                                offset + FOOTER_SIZE as u64
                            ));
                        }
                    }
                    self.end_file_with(offset, bytes);
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
        Ok(())
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
        self.steps.push(Step::write(0, good.to_bytes().to_vec()));
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
    /// when it does. The findings only say whether the plan does any good: whether it
    /// loses anything is judged on what a reader gets ([`Plan::check_readable`]) and on
    /// what the plan drops or cuts.
    fn preview_if_better(
        &self,
        file: &Arc<dyn Storage>,
        path: &Path,
        options: &CheckOptions,
        before: &CheckReport,
    ) -> Result<Option<CheckReport>> {
        let preview = check_storage(Box::new(self.view(file, before.file_size())), path, options)?;
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

    /// Tries the plan as a reader: every sector readable in the file now (checksums
    /// ignored) must read the same once the plan is carried out. Those that would not are
    /// a risk.
    fn check_readable(
        &mut self,
        file: &Arc<dyn Storage>,
        path: &Path,
        options: &CheckOptions,
        file_size: u64,
    ) -> Result<()> {
        let before = Plan::default().view(file, file_size);
        let after = self.view(file, file_size);
        let mut touched: Vec<Range<u64>> = self
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Write { offset, bytes } => Some(*offset..offset + bytes.len() as u64),
                Step::SetLength(_) => None,
            })
            .collect();
        if after.length < before.length {
            touched.push(after.length..before.length);
        }
        let (changed, omitted) =
            readable_changes(Box::new(before), Box::new(after), path, options, &touched)?;
        if changed.is_empty() {
            return Ok(());
        }
        self.risks.push(format!(
            "bytes {} of the disk, which a reader gets now, would read differently",
            some_ranges(&changed, omitted)
        ));
        Ok(())
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
    fn apply(&self, file: &dyn Storage) -> Result<()> {
        apply_steps(&self.steps, file)
    }
}

/// Where the checksum field of a footer is.
const FOOTER_CHECKSUM_AT: usize = 64;
/// Where the checksum field of a dynamic header is.
const HEADER_CHECKSUM_AT: usize = 36;
/// How many leaked block-sized units of a stretch about to be cut are looked at for block
/// data; past that, the rest counts as one more plausible block (a crafted file's leak
/// may be huge, and cutting it then needs force).
const MAX_UNITS_INSPECTED: u64 = 1024;
/// How much of a leaked unit's data is looked at when its bitmap is all zeros.
const DATA_SAMPLE: u64 = 64 * 1024;
/// How much of the disk is compared at once when a plan is tried.
const COMPARE_CHUNK: u64 = 1 << 20;

/// The first ranges of `ranges` for a message ("0..512, 4096..8192, …": at most 8, and
/// "…" when there are more, or `omitted` ones).
fn some_ranges(ranges: &[Range<u64>], omitted: u64) -> String {
    const LISTED: usize = 8;
    let listed: Vec<String> = ranges
        .iter()
        .take(LISTED)
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    let more = ranges.len() > LISTED || omitted > 0;
    format!("{}{}", listed.join(", "), if more { ", …" } else { "" })
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The structure `bytes` with one bit of `fields` flipped, for every such bit that makes
/// its stored checksum (at `checksum_at`) right: what the structure may have been before
/// a bit of those fields flipped.
fn one_bit_repairs(
    bytes: &[u8],
    checksum_at: usize,
    fields: impl IntoIterator<Item = Range<usize>>,
) -> Vec<Vec<u8>> {
    let stored = be_u32(bytes, checksum_at);
    let mut found = Vec::new();
    for field in fields {
        for i in field {
            for bit in 0..8 {
                let mut candidate = bytes.to_vec();
                candidate[i] ^= 1 << bit;
                if checksum(&candidate, checksum_at) == stored {
                    found.push(candidate);
                }
            }
        }
    }
    found
}

/// How many damaged BAT entries (entries outside the file and overlaps) an image may have
/// for a repair to try to restore them bit by bit: more is not the work of a flipped bit
/// or two.
const MAX_SUSPECT_ENTRIES: usize = 16;

/// How many checks of the file with one BAT entry changed a repair may run to find which
/// bit of damaged entries flipped: each reads the BAT and the bitmaps.
const MAX_CANDIDATE_CHECKS: usize = 64;

/// The problems of the BAT a check found (entries outside the file, overlaps, leaked
/// blocks): how many, and of which kinds.
fn bat_problems(report: &CheckReport) -> (u64, BTreeSet<FindingKind>) {
    let mut count = 0;
    let mut kinds = BTreeSet::new();
    for (kind, severity, n) in report.counts() {
        if severity > Severity::Info {
            kinds.insert(kind);
            if matches!(
                kind,
                FindingKind::BatOutOfRange
                    | FindingKind::BitmapOutOfRange
                    | FindingKind::Overlap
                    | FindingKind::LeakedBlock
            ) {
                count += n;
            }
        }
    }
    (count, kinds)
}

/// Whether the BAT a check read agrees with the file: read, every entry in front of the
/// footer, no two structures sharing bytes, no block-sized space no entry refers to, and
/// sound header fields. What a dynamic header with a bad checksum must show to be believed.
fn layout_consistent(report: &CheckReport) -> bool {
    report.layout.bat_read
        && !report.counts().any(|(kind, severity, _)| {
            severity > Severity::Info
                && matches!(
                    kind,
                    FindingKind::BatOutOfRange
                        | FindingKind::BitmapOutOfRange
                        | FindingKind::Overlap
                        | FindingKind::LeakedBlock
                        | FindingKind::Truncated
                        | FindingKind::HeaderField
                        | FindingKind::HeaderCookie
                        | FindingKind::FooterMissing
                        | FindingKind::OpenFailed
                )
        })
}

/// Whether what a dynamic header says of the parent is confirmed: the parent was found
/// through its locators and carries the unique id (and time stamp) the header records.
/// Without that, a header with a bad checksum may have lost a bit there.
fn parent_fields_confirmed(report: &CheckReport) -> bool {
    !report.counts().any(|(kind, severity, _)| {
        severity > Severity::Info
            && matches!(
                kind,
                FindingKind::ParentNotFound
                    | FindingKind::ParentMismatch
                    | FindingKind::ParentModified
                    | FindingKind::ParentUnusable
                    | FindingKind::LocatorOutOfRange
            )
    }) && (report.disk_type() != Some(DiskType::Differencing) || report.parent().is_some())
}

/// Whether the `unit` bytes at `start` look like a block: a sector bitmap (its first
/// `bitmap` bytes) that is not the footer a cut-short allocation leaves where its bitmap
/// was, with bits set, or, all zeros, followed by data that is not (its first
/// [`DATA_SAMPLE`] bytes are looked at).
fn holds_bitmap(file: &dyn Storage, start: u64, bitmap: u64, unit: u64) -> Result<bool> {
    let length = file
        .file_size()
        .map_err(|e| Error::io("reading the size of the file being repaired", e))?;
    if start >= length {
        return Ok(false);
    }
    let available = length - start;
    let read = |offset: u64, size: u64| -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| Error::io(format!("reading a leaked block at offset {offset}"), e))?;
        Ok(bytes)
    };
    let head = read(start, bitmap.min(unit).min(available))?;
    if head.starts_with(FOOTER_COOKIE) {
        return Ok(false);
    }
    if head.iter().any(|&b| b != 0) {
        return Ok(true);
    }
    let data_start = head.len() as u64;
    let sample = (unit.min(available) - data_start).min(DATA_SAMPLE);
    Ok(read(start + data_start, sample)?.iter().any(|&b| b != 0))
}

/// How many of the block-sized units of `start..end` (space no BAT entry refers to) look
/// like blocks ([`holds_bitmap`]).
fn plausible_blocks(
    file: &dyn Storage,
    start: u64,
    end: u64,
    bitmap: u64,
    unit: u64,
) -> Result<u64> {
    let mut count = 0;
    let mut at = start;
    let mut inspected = 0;
    while at < end {
        if inspected == MAX_UNITS_INSPECTED {
            return Ok(count + 1);
        }
        if holds_bitmap(file, at, bitmap, unit.min(end - at))? {
            count += 1;
        }
        inspected += 1;
        at += unit;
    }
    Ok(count)
}

/// The ranges of the disk that read differently in `after` than in `before` (both opened
/// as a reader would, checksums ignored), among those readable in `before`, as [`Lost`]
/// gathers them. `touched` are the bytes of the file the change between them writes or
/// cuts: only the parts of the disk whose data lies there, or whose place in the file
/// differs between the two, are read and compared (block by block, walking both BATs, so
/// that the memory stays that of the images whatever their BATs hold). An image that does
/// not open has no readable sectors; one that opens before and not after loses all.
fn readable_changes(
    before: Box<dyn Storage>,
    after: Box<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
    touched: &[Range<u64>],
) -> Result<(Vec<Range<u64>>, u64)> {
    let open_options = options.open_for_reading();
    let mut lost = Lost::default();
    let Ok(before) = Image::open_storage(before, path, &open_options) else {
        return Ok(lost.finish());
    };
    let size = before.size();
    let Ok(after) = Image::open_storage(after, path, &open_options) else {
        lost.add(0..size);
        return Ok(lost.finish());
    };
    let common = size.min(after.size());
    let hit = |range: Range<u64>| {
        touched
            .iter()
            .any(|t| t.start < range.end && range.start < t.end)
    };
    let mut compare = Comparison::new(&before, &after, &mut lost);
    match (sparse_parts(&before), sparse_parts(&after)) {
        (Some((bat, block_size)), Some((after_bat, after_block_size)))
            if block_size == after_block_size =>
        {
            let unit = u64::from(block_size);
            let blocks = common.div_ceil(unit);
            for block in 0..blocks {
                let block = block as u32;
                let (was, now) = (bat.get(block), after_bat.get(block));
                let moved = was != now;
                let written =
                    [(was, size), (now, after.size())]
                        .into_iter()
                        .any(|(sector, disk)| {
                            sector.is_some_and(|sector| {
                                hit(block_extent(sector, block, block_size, disk))
                            })
                        });
                if moved || written {
                    let start = u64::from(block) * unit;
                    compare.range(start..(start + unit).min(common));
                }
            }
        }
        (None, None) if before.disk_type() == DiskType::Fixed => {
            // A fixed image's disk is its file's first bytes.
            for t in touched {
                compare.range(t.start.min(common)..t.end.min(common));
            }
        }
        _ => compare.range(0..common),
    }
    if common < size {
        lost.add(common..size);
    }
    Ok(lost.finish())
}

/// The BAT and block size of a dynamic or differencing image.
fn sparse_parts(image: &Image) -> Option<(&crate::bat::BlockAllocationTable, u32)> {
    match image {
        Image::Dynamic(i) => Some((i.bat(), i.block_size())),
        Image::Differencing(i) => Some((i.bat(), i.block_size())),
        Image::Fixed(_) => None,
    }
}

/// Reads ranges of the disk from two images and notes, sector by sector, where what was
/// readable in the first reads differently in the second.
struct Comparison<'a> {
    before: &'a Image,
    after: &'a Image,
    lost: &'a mut Lost,
    was: Vec<u8>,
    now: Vec<u8>,
}

impl<'a> Comparison<'a> {
    fn new(before: &'a Image, after: &'a Image, lost: &'a mut Lost) -> Comparison<'a> {
        Comparison {
            before,
            after,
            lost,
            was: vec![0u8; COMPARE_CHUNK as usize],
            now: vec![0u8; COMPARE_CHUNK as usize],
        }
    }

    fn range(&mut self, range: Range<u64>) {
        let mut at = range.start;
        while at < range.end {
            let length = (range.end - at).min(COMPARE_CHUNK) as usize;
            let (was, now) = (&mut self.was[..length], &mut self.now[..length]);
            if self.before.read_at(was, at).is_err() {
                // Not readable before: nothing to keep.
            } else if self.after.read_at(now, at).is_err() {
                self.lost.add(at..at + length as u64);
            } else if was != now {
                for (i, (a, b)) in was.chunks(512).zip(now.chunks(512)).enumerate() {
                    if a != b {
                        let start = at + i as u64 * 512;
                        self.lost.add(start..(start + 512).min(at + length as u64));
                    }
                }
            }
            at += length as u64;
        }
    }
}

/// Makes each step durable before the next. Every write, cut and flush goes through
/// [`Storage`], so that a storage that injects faults can stand in for the file.
fn apply_steps(steps: &[Step], file: &dyn Storage) -> Result<()> {
    for step in steps {
        match step {
            Step::Write { offset, bytes } => file
                .write_all_at(bytes, *offset)
                .map_err(|e| Error::io(format!("writing the repair at offset {offset}"), e))?,
            Step::SetLength(length) => file
                .set_len(*length)
                .map_err(|e| Error::io(format!("cutting the file to {length} bytes"), e))?,
        }
        file.sync()
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
    file: Arc<dyn Storage>,
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
        // Planned as a forced repair would carry it out (dropping entry 7 needs force).
        let mut plan = Plan::default();
        plan.make(&before, &Shared(file.clone())).unwrap();
        assert!(!plan.risks.is_empty());
        drop(file);
        assert_eq!(plan.steps.len(), 4, "{plan:#?}");
        for k in 0..=plan.steps.len() {
            std::fs::write(&path, &bytes).unwrap();
            let file = open_for_repair(&path, &options).unwrap();
            apply_steps(&plan.steps[..k], file.as_ref()).unwrap();
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
