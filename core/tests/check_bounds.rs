//! `check` and `repair` on crafted images whose BAT makes millions of findings: the memory
//! they use stays proportional to the BAT (measured with a counting global allocator, so
//! this file is its own test binary), the reads they make stay few where the blocks lie
//! close together, the findings of one kind past [`MAX_LISTED_PER_KIND`] are counted
//! exactly in one summary, and the listed ones are the first ones in a deterministic order
//! (the file's order, then the BAT's).
//!
//! The images are sparse files: only their structures (16 MiB of BAT) are written.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use vhd_core::bat::UNALLOCATED;
use vhd_core::check::MAX_LISTED_PER_KIND;
use vhd_core::ops::RepairReport;
use vhd_core::{
    check, check_storage, create, CheckOptions, CheckReport, CreateOptions, DiskType,
    DynamicHeader, Error, FaultStorage, FindingKind, Footer, Image, OpenOptions, Severity,
};
use vhd_testkit::*;

// ---------------------------------------------------------------------------------------------
// Counting allocator

/// The system allocator, counting the bytes in use and their high-water mark.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations past this many bytes fail (the process aborts), so that a regression
/// cannot take the machine's memory while the test measures it.
static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Counting {
    fn grew(&self, by: usize) {
        let now = IN_USE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    fn allowed(&self, by: usize) -> bool {
        IN_USE.load(Ordering::Relaxed).saturating_add(by) <= CAP.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !self.allowed(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            if new_size >= layout.size() {
                self.grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the counters are the whole process's, and a test making its image
/// in another thread would count in a measurement.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns what it returned and the most heap it had in use at once, beyond
/// what was in use before. Allocations past `cap` bytes abort the process. The caller
/// holds [`serial`].
fn peak_heap<T>(
    _serial: &MutexGuard<'static, ()>,
    cap: usize,
    f: impl FnOnce() -> T,
) -> (T, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    CAP.store(base + cap, Ordering::Relaxed);
    let value = f();
    CAP.store(usize::MAX, Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    (value, peak)
}

const MIB: usize = 1 << 20;
/// 4M entries: a 16 MiB BAT.
const ENTRIES: u32 = 1 << 22;
const BAT_BYTES: usize = ENTRIES as usize * 4;
/// The bound asserted: four times the BAT. (Before the fix, `check` of `one_sector` went
/// past 1 GiB.)
const BOUND: usize = 4 * BAT_BYTES;
/// Where measurements stop the process.
const CAP_BYTES: usize = 512 * MIB;

// ---------------------------------------------------------------------------------------------
// Crafted images

const TABLE_OFFSET: u64 = 1536;
/// The first sector after the BAT.
const FIRST_FREE_SECTOR: u32 = ((TABLE_OFFSET + BAT_BYTES as u64) / 512) as u32;

/// Writes a dynamic image of `size` bytes in blocks of `block_size` whose BAT has
/// `ENTRIES` entries, entry `i` being `entry(i)`, with its footer at `footer_at`; what lies
/// between the BAT and the footer is a hole (zeros).
fn craft(path: &Path, size: u64, block_size: u32, entry: impl Fn(u32) -> u32, footer_at: u64) {
    // A valid footer for `size` bytes, from an image we make.
    let model = path.with_extension("model");
    drop(create(&model, &CreateOptions::new(DiskType::Dynamic, size)).unwrap());
    let bytes = std::fs::read(&model).unwrap();
    std::fs::remove_file(&model).unwrap();
    let footer_bytes: [u8; 512] = bytes[bytes.len() - 512..].try_into().unwrap();
    let footer = Footer::parse(&footer_bytes, 0).unwrap();
    assert_eq!((footer.current_size, footer.data_offset), (size, 512));
    let header = DynamicHeader::new(TABLE_OFFSET, ENTRIES, block_size);

    let file = std::fs::File::create(path).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(&footer_bytes, 0).unwrap();
    file.write_all_at(&header.to_bytes(), 512).unwrap();
    let mut table = Vec::with_capacity(BAT_BYTES);
    for i in 0..ENTRIES {
        table.extend_from_slice(&entry(i).to_be_bytes());
    }
    file.write_all_at(&table, TABLE_OFFSET).unwrap();
    file.set_len(footer_at + 512).unwrap();
    file.write_all_at(&footer_bytes, footer_at).unwrap();
}

fn run_check(path: &Path) -> CheckReport {
    check(path, &CheckOptions::default()).unwrap()
}

/// Checks `path`, asserting the bound on the heap it uses; then repairs it, with the same
/// bound.
fn check_and_repair(serial: &MutexGuard<'static, ()>, path: &Path) -> (CheckReport, RepairReport) {
    let (report, peak) = peak_heap(serial, CAP_BYTES, || run_check(path));
    eprintln!(
        "check of {}: {} MiB at the peak",
        path.display(),
        peak / MIB
    );
    assert!(
        peak < BOUND,
        "check used {} MiB at its peak (bound {} MiB)",
        peak / MIB,
        BOUND / MIB
    );
    // Forced: dropping millions of entries is refused without force (see tests/repair.rs);
    // here the bound on memory is what is tested, on the whole plan carried out.
    let (repaired, peak) = peak_heap(serial, CAP_BYTES, || {
        vhd_core::ops::repair_with(
            path,
            &CheckOptions::default(),
            &vhd_core::ops::RepairOptions { force: true },
        )
        .unwrap()
    });
    eprintln!(
        "repair of {}: {} MiB at the peak",
        path.display(),
        peak / MIB
    );
    assert!(
        peak < BOUND,
        "repair used {} MiB at its peak (bound {} MiB)",
        peak / MIB,
        BOUND / MIB
    );
    (report, repaired)
}

/// The findings of `kind`: exactly `total` were made; the first `MAX_LISTED_PER_KIND` are
/// listed, with the messages `expected(n)` starts (n = 0, 1, …), then one summary
/// of the others, last in the report.
#[track_caller]
fn assert_summed_up(
    report: &CheckReport,
    kind: FindingKind,
    severity: Severity,
    total: u64,
    expected: impl Fn(usize) -> String,
) {
    assert_eq!(report.count_of(kind), total, "{}", kind.code());
    let listed: Vec<_> = report.findings_of(kind).collect();
    assert_eq!(listed.len(), MAX_LISTED_PER_KIND + 1, "{}", kind.code());
    for (n, finding) in listed[..MAX_LISTED_PER_KIND].iter().enumerate() {
        assert_eq!((finding.severity, finding.omitted), (severity, None));
        let start = expected(n);
        assert!(
            finding.message.starts_with(&start),
            "finding {n} of {}: {:?} does not start with {start:?}",
            kind.code(),
            finding.message
        );
    }
    let summary = listed[MAX_LISTED_PER_KIND];
    let omitted = total - MAX_LISTED_PER_KIND as u64;
    assert_eq!(summary.omitted, Some(omitted));
    assert_eq!(summary.severity, severity);
    assert_eq!(summary.offset, None);
    assert_mentions(
        &summary.message,
        &[&format!("… and {omitted} more {} findings", kind.code())],
    );
    assert!(
        report.findings().iter().rev().take(5).any(|f| f == summary),
        "the summaries end the report"
    );
}

/// No finding has a message other than those of `kinds`, none is repeated, and the report
/// lists a bounded number of findings.
#[track_caller]
fn assert_only(report: &CheckReport, kinds: &[FindingKind]) {
    for finding in report.findings() {
        assert!(kinds.contains(&finding.kind), "unexpected: {finding:?}");
    }
    assert!(report.findings().len() <= kinds.len() * (MAX_LISTED_PER_KIND + 1));
}

#[test]
fn every_entry_at_one_sector() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-one-sector");
    let path = dir.join("one-sector.vhd");
    // The image of the issue: 512-byte blocks, a 512-byte disk, and every BAT entry
    // pointing at the one block after the BAT.
    let block = u64::from(FIRST_FREE_SECTOR) * 512;
    craft(&path, 512, 512, |_| FIRST_FREE_SECTOR, block + 1024);
    let (report, repaired) = check_and_repair(&serial, &path);

    let n = u64::from(ENTRIES);
    assert_eq!(report.allocated_blocks(), n);
    assert_eq!(report.exit_code(), 2);
    assert_eq!(report.count(Severity::Corrupt), n - 1);
    // In file order (all at one sector), then BAT order: each over block 0.
    assert_summed_up(
        &report,
        FindingKind::Overlap,
        Severity::Corrupt,
        n - 1,
        |i| {
            format!(
            "block {} (sector {FIRST_FREE_SECTOR}, bytes {block}..{}) overlaps block 0 (sector {FIRST_FREE_SECTOR}, bytes {block}..{})",
            i + 1,
            block + 512,
            block + 1024
        )
        },
    );
    assert_summed_up(
        &report,
        FindingKind::BatPastDiskEnd,
        Severity::Info,
        n - 1,
        |i| {
            format!(
                "BAT entry {} points at sector {FIRST_FREE_SECTOR}, but",
                i + 1
            )
        },
    );
    assert_only(
        &report,
        &[
            FindingKind::Overlap,
            FindingKind::BatPastDiskEnd,
            FindingKind::HeaderField,
        ],
    );
    // Overlaps are not repaired: nothing is written, and the check is not run again.
    assert!(!repaired.changed());
    assert_eq!(repaired.after.count_of(FindingKind::Overlap), n - 1);
    assert_eq!(repaired.not_repaired.len(), MAX_LISTED_PER_KIND + 1);
    assert_eq!(
        repaired.not_repaired.last().unwrap().omitted,
        Some(n - 1 - 1000)
    );

    // The image opens (only block 0 is in the disk), as the check's last step found.
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    drop(Image::open(&path, &read_only).unwrap());
}

#[test]
fn every_entry_of_the_disk_at_one_sector() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-one-sector-in-disk");
    let path = dir.join("one-sector-in-disk.vhd");
    // As `every_entry_at_one_sector`, but the disk has a block for every entry (2 GiB):
    // all of them are read, and opening the image compares them all.
    let block = u64::from(FIRST_FREE_SECTOR) * 512;
    let size = u64::from(ENTRIES) * 512;
    craft(&path, size, 512, |_| FIRST_FREE_SECTOR, block + 1024);
    let (report, repaired) = check_and_repair(&serial, &path);

    let n = u64::from(ENTRIES);
    assert_summed_up(
        &report,
        FindingKind::Overlap,
        Severity::Corrupt,
        n - 1,
        |i| {
            format!(
            "block {} (sector {FIRST_FREE_SECTOR}, bytes {block}..{end}) overlaps block 0 (sector {FIRST_FREE_SECTOR}, bytes {block}..{end})",
            i + 1,
            end = block + 1024
        )
        },
    );
    assert_only(&report, &[FindingKind::Overlap]);
    assert!(!repaired.changed());

    // Opening it fails on the first overlap, with memory in proportion too.
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let (opened, peak) = peak_heap(&serial, CAP_BYTES, || Image::open(&path, &read_only));
    assert!(peak < BOUND, "opening used {} MiB", peak / MIB);
    match opened {
        Err(Error::BatEntryOverlap {
            index: 1, other, ..
        }) => assert_eq!(other, "block 0"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn millions_of_blocks_one_sector_apart() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-sector-apart");
    let path = dir.join("sector-apart.vhd");
    // A 2 GiB disk in 512-byte blocks (a bitmap sector and a data sector each), block i
    // one sector after block i - 1: each overlaps the next, and every bitmap is read.
    let sector = |i: u32| FIRST_FREE_SECTOR + i;
    let size = u64::from(ENTRIES) * 512;
    craft(
        &path,
        size,
        512,
        sector,
        u64::from(sector(ENTRIES + 1)) * 512,
    );
    // Counts the reads made from the file.
    let storage = FaultStorage::new(std::fs::File::open(&path).unwrap());
    let options = CheckOptions {
        lock: false,
        ..CheckOptions::default()
    };
    let (report, peak) = peak_heap(&serial, CAP_BYTES, || {
        check_storage(Box::new(storage.clone()), &path, &options).unwrap()
    });
    assert!(peak < BOUND, "check used {} MiB", peak / MIB);
    // The bitmaps' cookies are read 64 KiB at a time (128 at once), not one by one: 4M
    // reads before.
    let reads = storage.reads();
    assert!(reads < 40_000, "{reads} reads");
    assert_eq!(storage.changes(), 0, "check wrote to the file");
    let n = u64::from(ENTRIES);
    assert_summed_up(
        &report,
        FindingKind::Overlap,
        Severity::Corrupt,
        n - 1,
        |i| {
            let block = i as u32 + 1;
            let start = u64::from(sector(block)) * 512;
            format!(
            "block {block} (sector {}, bytes {start}..{}) overlaps block {} (sector {}, bytes {}..{})",
            sector(block),
            start + 1024,
            block - 1,
            sector(block - 1),
            start - 512,
            start + 512
        )
        },
    );
    assert_only(&report, &[FindingKind::Overlap]);
}

#[test]
fn entries_past_the_end_of_the_disk() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-past-end");
    let path = dir.join("past-end.vhd");
    // Each block at its own place (a 512-byte bitmap and 512 bytes of data: 2 sectors);
    // all but block 0 past the end of the 512-byte disk.
    let sector = |i: u32| FIRST_FREE_SECTOR + 2 * i;
    let footer_at = u64::from(sector(ENTRIES)) * 512;
    craft(&path, 512, 512, sector, footer_at);
    let (report, repaired) = check_and_repair(&serial, &path);

    let n = u64::from(ENTRIES);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated_blocks(), n);
    assert_summed_up(
        &report,
        FindingKind::BatPastDiskEnd,
        Severity::Info,
        n - 1,
        |i| {
            let block = i + 1;
            format!(
            "BAT entry {block} points at sector {}, but block {block} lies past the end of the 512-byte disk",
            sector(block as u32)
        )
        },
    );
    assert_only(
        &report,
        &[FindingKind::BatPastDiskEnd, FindingKind::HeaderField],
    );
    assert!(!repaired.changed() && repaired.not_repaired.is_empty());
}

#[test]
fn millions_of_distinct_overlaps() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-overlaps");
    let path = dir.join("overlaps.vhd");
    // 4 MiB blocks have 1 KiB bitmaps; block i starts one sector after block i - 1.
    let sector = |i: u32| FIRST_FREE_SECTOR + i;
    let footer_at = u64::from(sector(ENTRIES + 1)) * 512;
    craft(&path, 512, 4 << 20, sector, footer_at);
    let (report, repaired) = check_and_repair(&serial, &path);

    let n = u64::from(ENTRIES);
    // Blocks 1 and 2 overlap block 0 (its bitmap and its 512 bytes of data reach
    // furthest), block 3 on the one before it.
    assert_summed_up(
        &report,
        FindingKind::Overlap,
        Severity::Corrupt,
        n - 1,
        |i| {
            let block = i as u32 + 1;
            let before = if block <= 2 { 0 } else { block - 1 };
            let start = u64::from(sector(block)) * 512;
            let before_start = u64::from(sector(before)) * 512;
            let before_end = before_start + if before == 0 { 1536 } else { 1024 };
            format!(
            "block {block} (sector {}, bytes {start}..{}) overlaps block {before} (sector {}, bytes {before_start}..{before_end})",
            sector(block),
            start + 1024,
            sector(before)
        )
        },
    );
    assert_only(
        &report,
        &[
            FindingKind::Overlap,
            FindingKind::BatPastDiskEnd,
            FindingKind::HeaderField,
        ],
    );
    assert!(!repaired.changed());
}

#[test]
fn millions_of_leaked_blocks() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-leaks");
    let path = dir.join("leaks.vhd");
    // Blocks of 2 sectors, 4 sectors apart: a leaked block between each two.
    let sector = |i: u32| FIRST_FREE_SECTOR + 4 * i;
    let footer_at = u64::from(sector(ENTRIES - 1)) * 512 + 1024;
    craft(&path, 512, 512, sector, footer_at);
    let (report, repaired) = check_and_repair(&serial, &path);

    let n = u64::from(ENTRIES);
    assert_eq!(report.exit_code(), 3, "only leaks");
    assert_eq!(report.leaked_blocks(), n - 1);
    assert_summed_up(
        &report,
        FindingKind::LeakedBlock,
        Severity::Leak,
        n - 1,
        |i| {
            let start = u64::from(sector(i as u32)) * 512 + 1024;
            format!("bytes {start}..{} (1024 bytes: 1 block(s)", start + 1024)
        },
    );
    assert_only(
        &report,
        &[
            FindingKind::LeakedBlock,
            FindingKind::BatPastDiskEnd,
            FindingKind::HeaderField,
        ],
    );
    // Leaks between blocks stay (moving blocks is compaction's job).
    assert!(!repaired.changed());
    assert_eq!(repaired.after.leaked_blocks(), n - 1);
}

#[test]
fn millions_of_entries_outside_the_file_are_dropped() {
    let serial = serial();
    let dir = TempDir::new("check-bounds-outside");
    let path = dir.join("outside.vhd");
    // A 2 GiB disk in 512-byte blocks; every other entry points far past the end of the
    // file, which ends right after the BAT.
    let size = u64::from(ENTRIES) * 512;
    let entry = |i: u32| {
        if i.is_multiple_of(2) {
            0xF000_0000
        } else {
            UNALLOCATED
        }
    };
    craft(&path, size, 512, entry, u64::from(FIRST_FREE_SECTOR) * 512);
    let (report, repaired) = check_and_repair(&serial, &path);

    let dropped = u64::from(ENTRIES / 2);
    assert_eq!(report.exit_code(), 2);
    assert_summed_up(
        &report,
        FindingKind::BitmapOutOfRange,
        Severity::Corrupt,
        dropped,
        |i| {
            format!(
                "BAT entry {} points at sector {}: its sector bitmap",
                2 * i,
                0xF000_0000u32
            )
        },
    );
    assert_only(&report, &[FindingKind::BitmapOutOfRange]);

    // Every entry is dropped, each change listed up to the bound, then summed up.
    assert!(repaired.changed());
    let actions = &repaired.actions;
    assert_eq!(actions.len(), MAX_LISTED_PER_KIND + 1);
    for (i, action) in actions[..MAX_LISTED_PER_KIND].iter().enumerate() {
        assert_eq!(action.fixes, FindingKind::BitmapOutOfRange);
        assert_eq!(action.offset, TABLE_OFFSET + 8 * i as u64);
        assert_eq!(action.omitted, None);
        assert_mentions(
            &action.description,
            &[&format!("BAT entry {} pointed", 2 * i)],
        );
    }
    let summary = &actions[MAX_LISTED_PER_KIND];
    assert_eq!(summary.omitted, Some(dropped - MAX_LISTED_PER_KIND as u64));
    assert_eq!(
        summary.offset,
        TABLE_OFFSET + 8 * MAX_LISTED_PER_KIND as u64
    );
    // One lost range per dropped block (the blocks between were not allocated).
    assert_eq!(repaired.lost.len(), MAX_LISTED_PER_KIND);
    for (i, range) in repaired.lost.iter().enumerate() {
        assert_eq!(*range, 1024 * i as u64..1024 * i as u64 + 512);
    }
    assert_eq!(repaired.lost_omitted, dropped - MAX_LISTED_PER_KIND as u64);
    assert!(repaired.after.is_clean(), "{}", repaired.after);
    assert!(repaired.not_repaired.is_empty());
    let table = file_bytes(&path, TABLE_OFFSET, BAT_BYTES);
    assert!(table.iter().all(|&b| b == 0xFF), "every entry unallocated");
    assert!(run_check(&path).is_clean());
}
