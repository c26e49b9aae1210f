//! Crash safety of dynamic and differencing images.
//!
//! The images live in a [`FaultStorage`] (the core's fault-injection layer, over a file in
//! memory), which records every write since the last `sync()`. It can make the process
//! "die" after its Nth write (the writes up to N happened, in order; nothing after them
//! does, not even a sync), and then cut the power: any subset of the writes issued since the
//! last completed sync is lost (what was synced stays).
//!
//! Seeded random sequences of writes (unaligned, spanning blocks, allocating, overwriting,
//! zeros) and flushes run on images held by it; the sequence is cut at every write for short
//! sequences, at random writes (and with random subsets lost) for long ones. After every
//! cut the image must:
//! - open (from the footer copy at offset 0 when the cut lost the footer that an allocation
//!   moved: such an image is read-only, with [`FooterSource::Copy`]);
//! - pass `check` with no corruption (leaked blocks are allowed, and bounded by the blocks
//!   allocated since the last completed flush);
//! - read, for every sector, its contents at the last completed flush or what a later write
//!   made of it, and nothing else: after a process death the whole sector is one of those
//!   states; after a power cut each byte is (writes since the last fsync may be lost
//!   independently, so a sector may mix them). Nothing written before the last completed
//!   flush is lost: the only allowed value of a sector no later write touched is its value
//!   at that flush.
//!
//! Then a real process is killed: the test binary runs itself in "child mode", writing and
//! flushing a dynamic image and logging what each completed flush covered, and is killed
//! with SIGKILL at random moments; the image is checked as above after every kill and must
//! read the same in `qemu-img convert` (and open in `vhdiinfo`).
//!
//! The maintenance operations that write an image in place (commit, rebase, resize) run on
//! a [`FaultStorage`] too (through their doc-hidden `*_through` entry points), cut after every
//! write and truncation, with every combination of fates of the changes since the last sync
//! (up to [`EVERY_SUBSET`] of them; random ones beyond): the image opens, checks without
//! corruption (leaks allowed) and reads its old or its new contents. Those that make a new
//! file and rename it over the old one (create --overwrite, compact, convert) are followed
//! by `strace`: the old file is never written, the new one is fsynced before the rename
//! and the folder after it; killed halfway, they leave the old file and no temporary one.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vhd_core::{
    check_storage, create, storage::Fate, CheckOptions, CheckReport, CreateOptions, DiskType,
    FaultStorage, FooterSource, Image, OpenOptions, VirtualDisk,
};
use vhd_testkit::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

// ---------------------------------------------------------------------------------------------
// Workloads and the model of what may be read after a cut

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Flush,
}

/// `count` random operations on a disk of `size` bytes in blocks of `block` bytes.
fn workload(rng: &mut Rng, size: u64, block: u64, count: usize) -> Vec<Op> {
    let mut ops = Vec::with_capacity(count);
    let mut earlier: Vec<u64> = Vec::new();
    for _ in 0..count {
        if rng.chance(12) {
            ops.push(Op::Flush);
            continue;
        }
        let (offset, len) = match rng.below(8) {
            // In a few hot blocks: blocks written again after a flush, so that sectors of
            // blocks already on disk get their bitmap bits set later.
            6 | 7 => {
                let hot = (4 * block).min(size);
                let len = rng.range(1, 3000).min(hot);
                (rng.below(hot - len + 1), len)
            }
            // Small and unaligned.
            0 => {
                let len = rng.range(1, 1500);
                (rng.below(size - len + 1), len)
            }
            // Whole sectors.
            1 => {
                let len = rng.range(1, 16) * 512;
                (rng.below((size - len) / 512 + 1) * 512, len)
            }
            // Across one or two block boundaries.
            2 => {
                let boundary = rng.range(1, size / block - 1) * block;
                let len = rng.range(600, block + 3000).min(size - boundary + 500);
                let offset = boundary - rng.range(1, 500);
                (offset, len.min(size - offset))
            }
            // Over an earlier write.
            3 if !earlier.is_empty() => {
                let offset = earlier[rng.below(earlier.len() as u64) as usize];
                let len = rng.range(1, 3000).min(size - offset);
                (offset, len)
            }
            // At the very end of the disk.
            4 => {
                let len = rng.range(1, 2000);
                (size - len, len)
            }
            _ => {
                let len = rng.range(1, 8192);
                (rng.below(size - len + 1), len)
            }
        };
        // Zeros sometimes: a dynamic image skips them on unallocated blocks.
        let data = if rng.chance(8) {
            vec![0u8; len as usize]
        } else {
            rng.bytes(len as usize)
        };
        earlier.push(offset);
        ops.push(Op::Write { offset, data });
    }
    ops
}

/// How far a run of `ops` got before its storage died.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Operations attempted; the last one may have failed part way.
    attempted: usize,
    /// The last flush that completed.
    last_flush: Option<usize>,
}

fn drive(disk: &mut dyn VirtualDisk, ops: &[Op]) -> Progress {
    let mut last_flush = None;
    for (i, op) in ops.iter().enumerate() {
        let result = match op {
            Op::Write { offset, data } => disk.write_at(data, *offset),
            Op::Flush => disk.flush(),
        };
        match result {
            Ok(()) if matches!(op, Op::Flush) => last_flush = Some(i),
            Ok(()) => {}
            Err(_) => {
                return Progress {
                    attempted: i + 1,
                    last_flush,
                }
            }
        }
    }
    Progress {
        attempted: ops.len(),
        last_flush,
    }
}

/// What a disk may read after a cut.
struct Model<'a> {
    /// The virtual disk at the last completed flush.
    baseline: &'a [u8],
    /// Writes issued after it (the last may not have happened, or only in part).
    later: Vec<(u64, &'a [u8])>,
    block_size: u64,
}

impl Model<'_> {
    /// Blocks that writes after the last completed flush may have allocated: a bound on
    /// the blocks a cut may leak.
    fn blocks_touched_later(&self) -> u64 {
        let mut blocks = BTreeSet::new();
        for &(offset, data) in &self.later {
            let last = (offset + data.len() as u64 - 1) / self.block_size;
            blocks.extend(offset / self.block_size..=last);
        }
        blocks.len() as u64
    }

    /// Checks every sector of `observed`. `whole_sectors`: each sector must be one of its
    /// states (a process death); otherwise each byte must be (a power cut).
    fn verify(&self, observed: &[u8], whole_sectors: bool) -> Result<(), String> {
        assert_eq!(observed.len(), self.baseline.len());
        if observed == self.baseline {
            return Ok(());
        }
        for (sector, (seen, base)) in observed
            .chunks(512)
            .zip(self.baseline.chunks(512))
            .enumerate()
        {
            if seen == base {
                continue;
            }
            let start = sector as u64 * 512;
            let end = start + seen.len() as u64;
            // The sector after each later write that touched it, in order.
            let mut state = base.to_vec();
            let mut states = Vec::new();
            for &(offset, data) in &self.later {
                let write_end = offset + data.len() as u64;
                if write_end <= start || offset >= end {
                    continue;
                }
                let from = offset.max(start);
                let to = write_end.min(end);
                state[(from - start) as usize..(to - start) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
                states.push(state.clone());
            }
            let ok = if whole_sectors {
                states.iter().any(|s| s == seen)
            } else {
                (0..seen.len())
                    .all(|i| seen[i] == base[i] || states.iter().any(|s| s[i] == seen[i]))
            };
            if !ok {
                let i = (0..seen.len()).find(|&i| seen[i] != base[i]).unwrap();
                return Err(format!(
                    "sector {sector} (disk offset {start}) reads a value it never had: first odd byte at {} is {:#04x}, it was {:#04x} at the last completed flush; {} later write(s) touched the sector",
                    start + i as u64,
                    seen[i],
                    base[i],
                    states.len()
                ));
            }
        }
        Ok(())
    }
}

/// The disk after the writes of `ops[..end]`, over `initial`.
fn contents_after(initial: &[u8], ops: &[Op], end: usize) -> Vec<u8> {
    let mut disk = initial.to_vec();
    for op in &ops[..end] {
        if let Op::Write { offset, data } = op {
            disk[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
        }
    }
    disk
}

fn later_writes(ops: &[Op], progress: Progress) -> Vec<(u64, &[u8])> {
    let from = progress.last_flush.map_or(0, |f| f + 1);
    ops[from..progress.attempted]
        .iter()
        .filter_map(|op| match op {
            Op::Write { offset, data } => Some((*offset, data.as_slice())),
            Op::Flush => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios: an image in memory, cut in many ways

/// An image to crash: its file's bytes at the start, where it lives (its path names it and
/// leads to its parent), and its virtual disk at the start.
struct Scenario {
    label: String,
    path: PathBuf,
    bytes: Vec<u8>,
    initial: Vec<u8>,
    block_size: u64,
    /// Keeps the files (the parent of a differencing image) alive.
    _dir: TempDir,
}

fn dynamic_scenario(label: &str, size: u64, block_size: u32, rng: &mut Rng) -> Scenario {
    let dir = TempDir::new(label);
    let path = dir.join("dynamic.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, size);
    options.block_size = block_size;
    let mut disk = create(&path, &options).unwrap();
    // A few blocks already hold data: overwrites in place, not only allocations.
    for _ in 0..4 {
        let offset = rng.below(size / 512 - 8) * 512;
        disk.write_at(&rng.bytes(4096), offset).unwrap();
    }
    Scenario::of(label, disk, path, block_size, dir)
}

/// A differencing image over a dynamic parent (a real file) that holds data.
fn differencing_scenario(label: &str, size: u64, block_size: u32, rng: &mut Rng) -> Scenario {
    let dir = TempDir::new(label);
    let parent = dir.join("parent.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, size);
    options.block_size = block_size;
    let mut disk = create(&parent, &options).unwrap();
    // Random data everywhere: a child sector read from the wrong place never looks right
    // by chance (as it would where the parent holds zeros, like an unwritten child sector).
    disk.write_at(&rng.bytes(size as usize), 0).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let path = dir.join("child.vhd");
    let mut child = create(&path, &CreateOptions::differencing(&parent)).unwrap();
    // Some blocks of the child already hold data.
    for _ in 0..3 {
        let offset = rng.below(size - 5000);
        child.write_at(&rng.bytes(5000), offset).unwrap();
    }
    Scenario::of(label, child, path, block_size, dir)
}

impl Scenario {
    /// The scenario of `disk` (at `path`, in `dir`) as it is once flushed.
    fn of(label: &str, mut disk: Image, path: PathBuf, block_size: u32, dir: TempDir) -> Scenario {
        disk.flush().unwrap();
        let initial = read_all(&disk);
        drop(disk);
        Scenario {
            label: label.into(),
            bytes: std::fs::read(&path).unwrap(),
            path,
            initial,
            block_size: u64::from(block_size),
            _dir: dir,
        }
    }

    fn open(&self, file: FaultStorage) -> vhd_core::Result<Image> {
        Image::open_storage(Box::new(file), &self.path, &OpenOptions::default())
    }

    /// Runs `ops` on a fresh copy of the image; the process dies after `die_after` writes.
    /// The image is dropped (its flush on drop fails if the process is dead).
    fn run(&self, ops: &[Op], die_after: Option<usize>) -> (FaultStorage, Progress) {
        let file = FaultStorage::in_memory(self.bytes.clone());
        if let Some(n) = die_after {
            file.die_after(n);
        }
        let mut image = self.open(file.clone()).unwrap();
        let progress = drive(&mut image, ops);
        drop(image);
        (file, progress)
    }

    fn check(&self, bytes: Vec<u8>) -> CheckReport {
        check_storage(
            Box::new(FaultStorage::in_memory(bytes)),
            &self.path,
            &CheckOptions::default(),
        )
        .unwrap()
    }

    /// Everything a cut must leave true of `bytes` (see the module documentation).
    /// Returns the disk as it reads, and whether the image opened writable.
    fn verify(
        &self,
        what: &str,
        bytes: Vec<u8>,
        model: &Model,
        death: bool,
        stats: &mut Stats,
    ) -> (Vec<u8>, bool) {
        let context = format!("{}: {what}", self.label);
        let image = self
            .open(FaultStorage::in_memory(bytes.clone()))
            .unwrap_or_else(|e| panic!("{context}: the image does not open: {e}"));
        if death {
            // The moved footer is written before anything else of a new block.
            assert_eq!(image.footer_source(), FooterSource::End, "{context}");
        }
        let report = self.check(bytes);
        assert!(!report.has_corruption(), "{context}: check:\n{report}");
        let bound = model.blocks_touched_later();
        assert!(
            report.leaked_blocks() <= bound,
            "{context}: {} leaked blocks, but only {bound} blocks were written after the last completed flush:\n{report}",
            report.leaked_blocks()
        );
        assert_eq!(
            report.footer_source(),
            Some(image.footer_source()),
            "{context}"
        );
        if image.footer_source() == FooterSource::Copy {
            assert!(image.read_only_reason().is_some(), "{context}");
            assert!(
                report.has_leaks(),
                "{context}: a lost footer is a leak:\n{report}"
            );
        }
        let observed = read_all(&image);
        if let Err(e) = model.verify(&observed, death) {
            panic!("{context}: {e}");
        }
        stats.states += 1;
        stats.from_copy += usize::from(image.footer_source() == FooterSource::Copy);
        stats.leaky += usize::from(report.leaked_blocks() > 0);
        stats.newer_data += usize::from(observed != model.baseline);
        (observed, image.read_only_reason().is_none())
    }
}

/// What the cuts of a test left, to show that the interesting cases happen.
#[derive(Debug, Default)]
struct Stats {
    /// Files verified (process deaths and power cuts).
    states: usize,
    /// ... that opened from the footer copy (the moved footer was lost).
    from_copy: usize,
    /// ... where `check` reported leaked blocks.
    leaky: usize,
    /// ... that read anything but the disk at the last completed flush.
    newer_data: usize,
}

impl Stats {
    /// The cuts must have produced lost footers, leaks and data newer than the last flush:
    /// otherwise the test proved little.
    fn assert_interesting(&self, label: &str) {
        println!("{label}: {self:?}");
        assert!(
            self.from_copy > 0 && self.leaky > 0 && self.newer_data > 0,
            "{label}: the cuts never lost a footer, leaked a block or kept newer data: {self:?}"
        );
    }
}

/// Runs `ops` on `scenario`, cut after each write of `cuts`; after each cut, the process's
/// death is verified, then a power cut that loses every write since the last sync, then
/// `power_cuts` power cuts that lose random subsets of them. Every fourth cut's image is
/// then written to further, flushed and verified again.
fn crash_test(
    scenario: &Scenario,
    ops: &[Op],
    cuts: &[usize],
    power_cuts: usize,
    rng: &mut Rng,
    stats: &mut Stats,
) {
    let mut baselines: HashMap<Option<usize>, Vec<u8>> = HashMap::new();
    let mut continued = 0;
    for (n, &cut) in cuts.iter().enumerate() {
        let (file, progress) = scenario.run(ops, Some(cut));
        let baseline = baselines.entry(progress.last_flush).or_insert_with(|| {
            contents_after(
                &scenario.initial,
                ops,
                progress.last_flush.map_or(0, |f| f + 1),
            )
        });
        let model = Model {
            baseline,
            later: later_writes(ops, progress),
            block_size: scenario.block_size,
        };
        let what = format!(
            "process died after write {cut} (op {} of {}, last completed flush: op {:?})",
            progress.attempted,
            ops.len(),
            progress.last_flush
        );
        let (observed, writable) =
            scenario.verify(&what, file.after_death().unwrap(), &model, true, stats);
        let pending = file.pending();
        for k in 0..=power_cuts {
            // First everything since the last sync lost, then random subsets.
            let fates: Vec<Fate> = (0..pending)
                .map(|_| match (k, rng.below(4)) {
                    (0, _) => Fate::Lost,
                    (_, 0) => Fate::LostButSized,
                    (_, 1) => Fate::Lost,
                    _ => Fate::Kept,
                })
                .collect();
            let bytes = file.after_power_cut(|i| fates[i]).unwrap();
            let lost = fates.iter().filter(|f| **f != Fate::Kept).count();
            let what = format!("{what}, then a power cut lost {lost} of {pending} writes since the last sync ({fates:?})");
            scenario.verify(&what, bytes, &model, false, stats);
        }
        if writable && n % 4 == 0 {
            continue_after_crash(scenario, file.after_death().unwrap(), observed, rng);
            continued += 1;
        }
    }
    assert!(cuts.len() < 4 || continued > 0, "{}", scenario.label);
}

/// A recovered image must go on working: more writes and a flush on the file a cut left
/// (`bytes`, which reads as `expected`); it then checks without corruption (earlier leaks may
/// stay) and reads exactly what was written, also after a reopen.
fn continue_after_crash(scenario: &Scenario, bytes: Vec<u8>, mut expected: Vec<u8>, rng: &mut Rng) {
    let size = expected.len() as u64;
    let file = FaultStorage::in_memory(bytes);
    let mut image = scenario.open(file.clone()).unwrap();
    for op in workload(rng, size, scenario.block_size, 12) {
        if let Op::Write { offset, data } = op {
            image.write_at(&data, offset).unwrap();
            expected[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
        }
    }
    image.flush().unwrap();
    let context = format!("{}: writing on after a crash", scenario.label);
    assert_same_bytes(&read_all(&image), &expected, &context);
    drop(image);
    let report = scenario.check(file.after_death().unwrap());
    assert!(!report.has_corruption(), "{context}: check:\n{report}");
    let reopened = scenario
        .open(FaultStorage::in_memory(file.after_death().unwrap()))
        .unwrap();
    assert_eq!(reopened.footer_source(), FooterSource::End, "{context}");
    assert_same_bytes(&read_all(&reopened), &expected, &context);
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Cut after every write of a few short sequences.
fn every_cut(scenario: &Scenario, rng: &mut Rng, sequences: usize, length: usize) {
    let size = scenario.initial.len() as u64;
    let mut stats = Stats::default();
    for _ in 0..sequences {
        let ops = workload(rng, size, scenario.block_size, length);
        let (file, _) = scenario.run(&ops, None);
        let total = file.changes();
        let cuts: Vec<usize> = (0..=total).collect();
        crash_test(scenario, &ops, &cuts, 2, rng, &mut stats);
    }
    stats.assert_interesting(&scenario.label);
}

/// Cut a long sequence at random writes.
fn random_cuts(scenario: &Scenario, rng: &mut Rng, length: usize, cuts: usize) {
    let size = scenario.initial.len() as u64;
    let ops = workload(rng, size, scenario.block_size, length);
    let (file, _) = scenario.run(&ops, None);
    let total = file.changes() as u64;
    let mut points: Vec<usize> = (0..cuts).map(|_| rng.below(total + 1) as usize).collect();
    points.sort_unstable();
    let mut stats = Stats::default();
    crash_test(scenario, &ops, &points, 4, rng, &mut stats);
    stats.assert_interesting(&scenario.label);
}

/// What kind of image a row of `writes_survive_cuts` writes to.
#[derive(Clone, Copy)]
enum Kind {
    Dynamic,
    Differencing,
}

/// Where a row of `writes_survive_cuts` cuts.
#[derive(Clone, Copy)]
enum Cuts {
    /// After every write of `sequences` sequences of `length` operations.
    Every { sequences: usize, length: usize },
    /// At `cuts` random writes of one sequence of `length` operations.
    Random { length: usize, cuts: usize },
}

/// Seeded writes and flushes cut after every write, or at random writes of a long
/// sequence, on dynamic and differencing images: see the module's documentation for what
/// each cut must leave.
#[test]
fn writes_survive_cuts() {
    let every = Cuts::Every {
        sequences: 3,
        length: 24,
    };
    let random = Cuts::Random {
        length: 400,
        cuts: 30,
    };
    let rows = [
        (
            "a dynamic image survives a cut at every write",
            (
                "crash-dynamic-every",
                Kind::Dynamic,
                4 * MIB,
                64 * KIB,
                every,
            ),
        ),
        (
            "a differencing image survives a cut at every write",
            (
                "crash-differencing-every",
                Kind::Differencing,
                4 * MIB,
                64 * KIB,
                every,
            ),
        ),
        (
            "a dynamic image survives random cuts of a long sequence",
            (
                "crash-dynamic-long",
                Kind::Dynamic,
                8 * MIB,
                128 * KIB,
                random,
            ),
        ),
        (
            "a differencing image survives random cuts of a long sequence",
            (
                "crash-differencing-long",
                Kind::Differencing,
                8 * MIB,
                128 * KIB,
                random,
            ),
        ),
    ];
    check_rows(rows, |name, (label, kind, size, block_size, cuts)| {
        let mut rng = Rng::new(name);
        let scenario = match kind {
            Kind::Dynamic => dynamic_scenario(label, size, block_size as u32, &mut rng),
            Kind::Differencing => differencing_scenario(label, size, block_size as u32, &mut rng),
        };
        match cuts {
            Cuts::Every { sequences, length } => every_cut(&scenario, &mut rng, sequences, length),
            Cuts::Random { length, cuts } => random_cuts(&scenario, &mut rng, length, cuts),
        }
    });
}

/// A write that fails after allocating its block (the moved footer was written, the data
/// was not: a full disk, say) leaves a block whose BAT entry the next flush writes. That
/// block's bitmap must be written too: on disk, its place still holds the old footer's
/// bytes, which as a bitmap would mark sectors present, and a differencing image would
/// then read them from the never-written block instead of from the parent.
#[test]
fn a_block_whose_first_write_failed_still_reads_from_the_parent() {
    let mut rng = Rng::new("a_block_whose_first_write_failed_still_reads_from_the_parent");
    let scenario = differencing_scenario("crash-failed-write", 4 * MIB, 64 * KIB as u32, &mut rng);
    let file = FaultStorage::in_memory(scenario.bytes.clone());
    let mut image = scenario.open(file.clone()).unwrap();
    let Image::Differencing(child) = &image else {
        unreachable!()
    };
    let block = (0..64u64)
        .find(|&b| child.bat().get(b as u32).is_none())
        .unwrap();
    let offset = block * scenario.block_size + 4096;
    // Attempt 0 moves the footer (the allocation), attempt 1 writes the data: it fails.
    file.fail_change(1);
    assert!(image.write_at(&rng.bytes(1000), offset).is_err());
    image.flush().unwrap();
    // Another write elsewhere, flushed too: the image goes on.
    let other = (block + 1) % 64 * scenario.block_size;
    let data = rng.bytes(700);
    image.write_at(&data, other).unwrap();
    image.flush().unwrap();
    let mut expected = scenario.initial.clone();
    expected[other as usize..other as usize + 700].copy_from_slice(&data);
    assert_same_bytes(&read_all(&image), &expected, "in the session");
    drop(image);

    let bytes = file.after_death().unwrap();
    let report = scenario.check(bytes.clone());
    assert!(!report.has_corruption(), "{report}");
    let reopened = scenario.open(FaultStorage::in_memory(bytes)).unwrap();
    assert_same_bytes(&read_all(&reopened), &expected, "after a reopen");
}

// ---------------------------------------------------------------------------------------------
// Maintenance operations, cut at every write

/// Runs `operation` on a [`FaultStorage`] holding `before` (the image's bytes) once to count
/// its writes (and truncations) and verify its result, then again with the process dying
/// after each of them (before the next write or sync; after the last one, the final sync
/// fails). Every death goes to `verify` (`death` true), then power cuts after it (`death`
/// false): every combination of fates of the changes since the last sync (kept, lost, lost
/// but the file's new length kept), when there are at most [`EVERY_SUBSET`] of them; otherwise all of them lost, then `power_cuts` random subsets.
/// `operation` gets the file and says whether it completed; it resets whatever else it
/// writes (a parent) itself. Returns the number of states verified.
fn cut_at_every_write(
    before: &[u8],
    power_cuts: usize,
    rng: &mut Rng,
    mut operation: impl FnMut(&FaultStorage) -> bool,
    mut verify: impl FnMut(&str, Vec<u8>, bool),
) -> usize {
    let counter = FaultStorage::in_memory(before.to_vec());
    assert!(operation(&counter), "the operation fails without a cut");
    let total = counter.changes();
    assert!(total > 0, "the operation wrote nothing");
    verify("completed", counter.after_death().unwrap(), true);
    let mut states = 1;
    for cut in 0..=total {
        let file = FaultStorage::in_memory(before.to_vec());
        file.die_after(cut);
        assert!(
            !operation(&file),
            "died after write {cut} of {total}, yet completed"
        );
        let what = format!("died after write {cut} of {total}");
        verify(&what, file.after_death().unwrap(), true);
        states += 1;
        let pending = file.pending();
        let subsets: Vec<Vec<Fate>> = if pending <= EVERY_SUBSET {
            (0..3u32.pow(pending as u32))
                .map(|code| {
                    (0..pending as u32)
                        .map(|i| match code / 3u32.pow(i) % 3 {
                            0 => Fate::Lost,
                            1 => Fate::LostButSized,
                            _ => Fate::Kept,
                        })
                        .collect()
                })
                .collect()
        } else {
            (0..=power_cuts)
                .map(|k| {
                    (0..pending)
                        .map(|_| match (k, rng.below(3)) {
                            (0, _) => Fate::Lost,
                            (_, 0) => Fate::LostButSized,
                            (_, 1) => Fate::Lost,
                            _ => Fate::Kept,
                        })
                        .collect()
                })
                .collect()
        };
        for fates in subsets {
            let bytes = file.after_power_cut(|i| fates[i]).unwrap();
            verify(
                &format!("{what}, then a power cut: {fates:?} of the {pending} changes since the last sync"),
                bytes,
                false,
            );
            states += 1;
        }
    }
    states
}

/// Up to this many changes since the last sync, power cuts try every combination of their
/// fates (3^5 = 243 states).
const EVERY_SUBSET: usize = 5;

/// What every state a cut leaves must satisfy, as for writes: the image (`bytes`, at
/// `path`) opens (`open` says how to find its parent), checks without corruption (leaks
/// allowed), and reads `expected`. With `end_footer`, it opens from the footer at the end
/// of the file; otherwise it may open (read-only) from the footer copy, which must then be
/// a leak (the caller says when that is acceptable). Returns where the footer came from.
fn verify_image(
    context: &str,
    path: &Path,
    bytes: &[u8],
    open: &OpenOptions,
    expected: &[u8],
    end_footer: bool,
) -> FooterSource {
    let image = Image::open_storage(
        Box::new(FaultStorage::in_memory(bytes.to_vec())),
        path,
        &OpenOptions {
            read_only: true,
            ..open.clone()
        },
    )
    .unwrap_or_else(|e| panic!("{context}: the image does not open: {e}"));
    let source = image.footer_source();
    if end_footer {
        assert_eq!(source, FooterSource::End, "{context}");
    }
    assert_same_bytes(&read_all(&image), expected, context);
    drop(image);
    let check_options = CheckOptions {
        parents: open.parents.clone(),
        ..CheckOptions::default()
    };
    let report = check_storage(
        Box::new(FaultStorage::in_memory(bytes.to_vec())),
        path,
        &check_options,
    )
    .unwrap();
    assert!(!report.has_corruption(), "{context}: check:\n{report}");
    if source == FooterSource::Copy {
        assert!(
            report.has_leaks(),
            "{context}: a lost footer is a leak:\n{report}"
        );
    }
    source
}

/// A dynamic parent (`base.vhd`, random data) and a differencing child (`child.vhd`) with
/// data in a few blocks, in 64 KiB blocks. Returns the folder, both paths and what the
/// chain reads.
fn small_chain(label: &str, rng: &mut Rng) -> (TempDir, PathBuf, PathBuf, Vec<u8>) {
    let dir = TempDir::new(label);
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let size = 2 * MIB;
    let mut options = CreateOptions::new(DiskType::Dynamic, size);
    options.block_size = 64 * KIB as u32;
    let mut parent = create(&base, &options).unwrap();
    parent.write_at(&rng.bytes(MIB as usize), 0).unwrap();
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    for _ in 0..4 {
        let offset = rng.below(size / 512 - 64) * 512;
        image.write_at(&rng.bytes(20_000), offset).unwrap();
    }
    let expected = read_all(&image);
    drop(image);
    (dir, base, child, expected)
}

/// The modification time of the file at `path`, and the same in seconds since 2000-01-01
/// (what a child records of its parent), computed here rather than by the library.
fn modified_since_2000(path: &Path) -> (std::time::SystemTime, u64) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let seconds = modified
        .duration_since(std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800))
        .unwrap()
        .as_secs();
    (modified, seconds)
}

/// Puts back a parent's bytes and modification time (which its child records).
fn restore(path: &Path, bytes: &[u8], modified: std::time::SystemTime) {
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(modified).unwrap();
}

/// Commit at every write of the child, over a parent on disk (put back before each run):
/// the chain reads the same in every state (the child holds its data until the parent
/// holds it too). `rebased`: the child's locator data lies after its blocks (a rebase put
/// it there), so that commit moves it next to the BAT before cutting the file.
fn commit_cut_at_every_write(label: &str, rebased: bool) {
    let mut rng = Rng::new(label);
    let (dir, mut base, child, expected) = small_chain(label, &mut rng);
    if rebased {
        let moved = dir.join("moved.vhd");
        std::fs::rename(&base, &moved).unwrap();
        vhd_core::ops::rebase(&child, &moved, &OpenOptions::default()).unwrap();
        base = moved;
    }
    let parent_bytes = std::fs::read(&base).unwrap();
    let parent_modified = std::fs::metadata(&base).unwrap().modified().unwrap();
    let child_bytes = std::fs::read(&child).unwrap();
    let states = cut_at_every_write(
        &child_bytes,
        3,
        &mut rng,
        |file| {
            restore(&base, &parent_bytes, parent_modified);
            vhd_core::ops::commit_through(
                file,
                &child,
                &OpenOptions::default(),
                vhd_core::ops::Progress::default(),
            )
            .is_ok()
        },
        |what, bytes, _death| {
            // The file never grows: a footer at its end at every instant, whatever a
            // power cut keeps.
            let context = format!("{label}: commit {what}");
            let open = OpenOptions::default();
            verify_image(&context, &child, &bytes, &open, &expected, true);
        },
    );
    println!("{label}: {states} states verified");
}

#[test]
fn commit_survives_a_cut_at_every_write() {
    let rows = [
        (
            "commit survives a cut at every write of the child",
            ("crash-commit", false),
        ),
        (
            "commit of a rebased child survives a cut at every write",
            ("crash-commit-rebased", true),
        ),
    ];
    check_rows(rows, |_, (label, rebased)| {
        commit_cut_at_every_write(label, rebased)
    });
}

/// A commit killed while it copies leaves the child's parent time stamp at 0 (so that the
/// chain opens although the parent changed) and the parent partly or wholly written. The
/// chain opens and reads as before; committing again finishes, and records the parent's
/// modification time again: the child's open checks it once more (a later change of the
/// parent is refused).
#[test]
fn a_commit_run_again_after_a_kill_records_the_parent_time_stamp_again() {
    let label = "crash-commit-again";
    let mut rng = Rng::new(label);
    let (_dir, base, child, expected) = small_chain(label, &mut rng);
    // The parent was last modified a day after it was made (its footer time stamp, which
    // the child's open accepts too): the child records that modification time.
    let header_timestamp =
        |bytes: &[u8]| u32::from_be_bytes(bytes[512 + 56..512 + 60].try_into().unwrap());
    let mut header = file_bytes(&child, 512, 1024);
    let recorded = header_timestamp(&std::fs::read(&child).unwrap()) + 86_400;
    header[56..60].copy_from_slice(&recorded.to_be_bytes());
    fix_header_checksum(&mut header);
    patch_file(&child, 512, &header);
    let day_later =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800 + u64::from(recorded));
    // The parent's own footer time stamp, long ago (not the second the commit runs in,
    // which the child's open would accept whatever the parent's modification time).
    let mut parent = std::fs::read(&base).unwrap();
    let end = parent.len() - 512;
    for at in [0, end] {
        parent[at + 24..at + 28].copy_from_slice(&1000u32.to_be_bytes());
        fix_footer_checksum(&mut parent[at..at + 512]);
    }
    restore(&base, &parent, day_later);
    let before = std::fs::read(&child).unwrap();
    // Dies after the second write (the header that records the new time stamp), before
    // its fsync; the power cut loses that write: the time stamp 0 written and synced before
    // the copy stays, and the parent has every sector of the child.
    let file = FaultStorage::in_memory(before);
    file.die_after(2);
    let progress = vhd_core::ops::Progress::default;
    assert!(
        vhd_core::ops::commit_through(&file, &child, &OpenOptions::default(), progress()).is_err()
    );
    let bytes = file.after_power_cut(|_| Fate::Lost).unwrap();
    assert_eq!(header_timestamp(&bytes), 0);
    verify_image(
        label,
        &child,
        &bytes,
        &OpenOptions::default(),
        &expected,
        true,
    );

    // What the crash left is on disk now (commit reads the chain through the path). The
    // interruption is marked, and `check` tells it from a 0 written on purpose: a leak.
    std::fs::write(&child, &bytes).unwrap();
    let report = vhd_core::check(&child, &CheckOptions::default()).unwrap();
    assert_eq!(
        report.count_of(vhd_core::FindingKind::CommitInterrupted),
        1,
        "{report}"
    );
    assert_eq!(report.exit_code(), 3, "{report}");
    // `check --repair` records the parent's time stamp (on a copy beside the child, whose
    // locators find the same parent).
    let repaired = child.with_file_name("repaired.vhd");
    std::fs::write(&repaired, &bytes).unwrap();
    let report = vhd_core::ops::repair(&repaired, &CheckOptions::default()).unwrap();
    assert_eq!(report.after.exit_code(), 0, "{report}");
    let (_, seconds_since_2000) = modified_since_2000(&base);
    assert_eq!(
        u64::from(header_timestamp(&std::fs::read(&repaired).unwrap())),
        seconds_since_2000,
        "repair records the parent's modification time"
    );
    std::fs::remove_file(&repaired).unwrap();
    let again = FaultStorage::in_memory(bytes);
    vhd_core::ops::commit_through(&again, &child, &OpenOptions::default(), progress()).unwrap();
    let bytes = again.after_death().unwrap();
    let report = check_storage(
        Box::new(FaultStorage::in_memory(bytes.clone())),
        &child,
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(
        report.count_of(vhd_core::FindingKind::CommitInterrupted),
        0,
        "finished: {report}"
    );
    let (modified, since_2000) = modified_since_2000(&base);
    assert_eq!(u64::from(header_timestamp(&bytes)), since_2000);
    verify_image(
        label,
        &child,
        &bytes,
        &OpenOptions::default(),
        &expected,
        true,
    );
    // The parent changes later: the child says so again.
    let later = modified + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&base)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let e = Image::open_storage(
        Box::new(FaultStorage::in_memory(bytes)),
        &child,
        &OpenOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_MODIFIED", "{e}");
}

/// Rebase onto the moved parent at every write: the child reads the same in every state,
/// and its dynamic header is the old one (naming the old place) or the new one, whole.
#[test]
fn rebase_survives_a_cut_at_every_write() {
    let label = "crash-rebase";
    let mut rng = Rng::new(label);
    let (dir, base, child, expected) = small_chain(label, &mut rng);
    let moved = dir.join("moved.vhd");
    std::fs::rename(&base, &moved).unwrap();
    let before = std::fs::read(&child).unwrap();
    let header = |bytes: &[u8]| bytes[512..1536].to_vec();
    let done = FaultStorage::in_memory(before.clone());
    vhd_core::ops::rebase_through(&done, &child, &moved, &OpenOptions::default()).unwrap();
    let new_header = header(&done.after_death().unwrap());
    let old_footer = before.len() - 512;
    assert_ne!(new_header, header(&before));
    let over_moved = OpenOptions {
        parents: vec![vhd_core::ParentPath::Vhd(moved.clone())],
        ..OpenOptions::default()
    };
    let states = cut_at_every_write(
        &before,
        3,
        &mut rng,
        |file| vhd_core::ops::rebase_through(file, &child, &moved, &OpenOptions::default()).is_ok(),
        |what, bytes, death| {
            let context = format!("{label}: rebase {what}");
            let found = header(&bytes);
            assert!(
                found == header(&before) || found == new_header,
                "{context}: the dynamic header is neither the old nor the new one"
            );
            // A power cut may keep the file's new length and lose the moved footer (zeros
            // at the end): the image opens from the copy then, and the old footer must
            // still be whole where it was.
            let source = verify_image(&context, &child, &bytes, &over_moved, &expected, death);
            if source == FooterSource::Copy {
                assert!(
                    bytes[old_footer..old_footer + 512] == before[old_footer..],
                    "{context}: neither the moved footer nor the old one is whole"
                );
            }
        },
    );
    println!("{label}: {states} states verified");
}

/// Resize at every write, with power cuts: the image has its old size and contents, or
/// its new size and the old contents cut or extended with zeros (or, in a forced shrink,
/// its old size with the part being cut off already reading as zeros). The footer copy may still
/// give the old size (`footer-copy-stale`: a leak, the image reads right); nothing else is
/// wrong. A 512 KiB disk in 4 KiB blocks (a full sector of BAT entries), with data in
/// blocks spread over it: growing moves the first blocks for the larger BAT, shrinking
/// (forced: data is cut off) moves blocks from the end into the freed space.
///
/// A fixed image grows by copying its footer to the new end, zeroing what the disk will
/// cover, then writing the new size over the copy: at no instant does the disk have its
/// new size with the old footer's bytes inside it.
fn resize_cut_at_every_write(label: &str, disk_type: DiskType, new_size: u64) {
    let mut rng = Rng::new(label);
    let dir = TempDir::new(label);
    let path = dir.join("disk.vhd");
    let old_size = 512 * KIB;
    let mut options = CreateOptions::new(disk_type, old_size);
    if disk_type == DiskType::Dynamic {
        options.block_size = 4096;
    }
    let mut image = create(&path, &options).unwrap();
    for block in [0u64, 1, 2, 40, 70, 100, 127] {
        image.write_at(&rng.bytes(4096), block * 4096).unwrap();
    }
    let old = read_all(&image);
    drop(image);
    let before = std::fs::read(&path).unwrap();
    let resize_options = vhd_core::ops::ResizeOptions {
        force: true,
        open: OpenOptions::default(),
    };
    let states = cut_at_every_write(
        &before,
        2,
        &mut rng,
        |file| {
            vhd_core::ops::resize_through(
                Box::new(file.clone()),
                &path,
                new_size,
                &resize_options,
                vhd_core::ops::Progress::default(),
            )
            .is_ok()
        },
        |what, bytes, death| {
            let context = format!("{label}: resize {what}");
            let opened = Image::open_storage(
                Box::new(FaultStorage::in_memory(bytes.clone())),
                &path,
                &OpenOptions {
                    read_only: true,
                    ..OpenOptions::default()
                },
            );
            // The one state a fixed image cannot avoid (it has no footer copy): a power cut
            // on a file system that made the file's new length durable without the footer
            // written past the old end (ext4 with data=writeback; ext4's default ordered
            // mode and XFS write the data first). The old image is then whole in place,
            // followed by zeros: cutting the file back to its old length restores it.
            if opened.is_err()
                && disk_type == DiskType::Fixed
                && what.contains("LostButSized")
                && bytes[..before.len()] == before[..]
                && bytes[before.len()..].iter().all(|&b| b == 0)
            {
                return;
            }
            let image =
                opened.unwrap_or_else(|e| panic!("{context}: the image does not open: {e}"));
            if death {
                assert_eq!(image.footer_source(), FooterSource::End, "{context}");
            }
            let size = image.size();
            assert!(
                size == old_size || size == new_size,
                "{context}: size {size}"
            );
            let mut expected = old.clone();
            expected.resize(size as usize, 0);
            let read = read_all(&image);
            // A forced shrink frees the blocks it cuts off before the footer records the
            // new size (so that growing again never shows them): at the old size, the part
            // past the new end may read as zeros already.
            let mut discarded = expected.clone();
            if new_size < size {
                discarded[new_size as usize..].fill(0);
            }
            if read != discarded {
                assert_same_bytes(&read, &expected, &context);
            }
            drop(image);
            let report = check_storage(
                Box::new(FaultStorage::in_memory(bytes)),
                &path,
                &CheckOptions::default(),
            )
            .unwrap();
            assert!(!report.has_corruption(), "{context}: check:\n{report}");
        },
    );
    println!("{label}: {states} states verified");
}

#[test]
fn resize_survives_a_cut_at_every_write() {
    let rows = [
        (
            "a grow that moves blocks survives a cut at every write",
            ("crash-resize-grow", DiskType::Dynamic, 640 * KIB),
        ),
        // Before: the new footer was written at the new end and the old one zeroed after
        // it, so a cut in between left a disk of the new size holding the old footer in
        // the part added.
        (
            "a fixed grow survives a cut at every write",
            ("crash-resize-grow-fixed", DiskType::Fixed, 1536 * KIB),
        ),
        (
            "a shrink that moves blocks survives a cut at every write",
            ("crash-resize-shrink", DiskType::Dynamic, 256 * KIB),
        ),
    ];
    check_rows(rows, |_, (label, disk_type, new_size)| {
        resize_cut_at_every_write(label, disk_type, new_size)
    });
}

/// Repair at every write, with power cuts, of an image with repairable defects: whatever
/// the cut, the image opens (from the footer copy when the end footer is the one being
/// rewritten), reads what it read before the repair (a repair never changes what a reader
/// gets), and `check` finds no damage the image did not have before; a repair run again on
/// what the cut left finishes the job (the image then checks clean). `force`: the repair
/// cuts data that looks like a block (which a repair without it refuses).
fn repair_cut_at_every_write(label: &str, force: bool, damage: impl Fn(&mut Vec<u8>)) {
    let mut rng = Rng::new(label);
    let dir = TempDir::new(label);
    let path = dir.join("disk.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, MIB);
    options.block_size = 64 * KIB as u32;
    let mut image = create(&path, &options).unwrap();
    for block in [0u64, 3, 7, 15] {
        image
            .write_at(&rng.bytes(20_000), block * 64 * KIB + 1000)
            .unwrap();
    }
    drop(image);
    let mut before = std::fs::read(&path).unwrap();
    damage(&mut before);
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let image = Image::open_storage(
        Box::new(FaultStorage::in_memory(before.clone())),
        &path,
        &read_only,
    )
    .unwrap();
    let expected = read_all(&image);
    drop(image);
    let check = |bytes: &[u8]| {
        check_storage(
            Box::new(FaultStorage::in_memory(bytes.to_vec())),
            &path,
            &CheckOptions::default(),
        )
        .unwrap()
    };
    let report = check(&before);
    assert!(
        report.exit_code() != 0,
        "{label}: nothing to repair:\n{report}"
    );
    let corrupt_before = corrupt_kinds(&report);
    let check_options = CheckOptions {
        lock: false,
        ..CheckOptions::default()
    };
    let repair = |file: &FaultStorage| {
        vhd_core::ops::repair_through(
            Arc::new(file.clone()),
            &path,
            &check_options,
            &vhd_core::ops::RepairOptions { force },
        )
    };
    let states = cut_at_every_write(
        &before,
        4,
        &mut rng,
        |file| repair(file).is_ok(),
        |what, bytes, _| {
            let context = format!("{label}: repair {what}");
            let image = Image::open_storage(
                Box::new(FaultStorage::in_memory(bytes.clone())),
                &path,
                &read_only,
            )
            .unwrap_or_else(|e| panic!("{context}: the image does not open: {e}"));
            assert_same_bytes(&read_all(&image), &expected, &context);
            drop(image);
            // Damage the image had before may still be there; none may be added.
            let report = check(&bytes);
            let added: Vec<_> = corrupt_kinds(&report)
                .difference(&corrupt_before)
                .copied()
                .collect();
            assert!(
                added.is_empty(),
                "{context}: new damage {added:?}:\n{report}"
            );
            let again = FaultStorage::in_memory(bytes);
            let report = repair(&again).unwrap_or_else(|e| panic!("{context}: run again: {e}"));
            assert_eq!(
                report.after.exit_code(),
                0,
                "{context}: run again:\n{report}"
            );
            assert_eq!(
                check(&again.after_death().unwrap()).exit_code(),
                0,
                "{context}: run again"
            );
            verify_image(
                &format!("{context}, repaired again"),
                &path,
                &again.after_death().unwrap(),
                &OpenOptions::default(),
                &expected,
                true,
            );
        },
    );
    println!("{label}: {states} states verified");
}

/// The kinds of the corrupt findings of `report`.
fn corrupt_kinds(report: &CheckReport) -> BTreeSet<vhd_core::FindingKind> {
    report
        .findings()
        .iter()
        .filter(|f| f.severity == vhd_core::Severity::Corrupt)
        .map(|f| f.kind)
        .collect()
}

/// Zeros of two blocks' size in front of the footer (what allocations cut short leave):
/// a leak at the end, which repair cuts after moving the footer in front of it.
fn leak_zeros_at_the_end(bytes: &mut Vec<u8>) {
    let footer = bytes.split_off(bytes.len() - 512);
    bytes.resize(bytes.len() + 2 * (64 * KIB as usize + 512), 0);
    bytes.extend_from_slice(&footer);
}

/// Where the BAT entry of block 15 is (the BAT follows the footer copy and the header).
const LAST_BLOCK_ENTRY: usize = 512 + 1024 + 15 * 4;

/// The last block's BAT entry cleared: its data is a leak at the end of the file, which
/// only a forced repair cuts (it looks like block data).
fn clear_the_last_blocks_entry(bytes: &mut [u8]) {
    bytes[LAST_BLOCK_ENTRY..LAST_BLOCK_ENTRY + 4].fill(0xFF);
}

/// The footer at the end damaged (its copy at offset 0 good): rewritten from the copy.
fn damage_the_end_footer(bytes: &mut [u8]) {
    let at = bytes.len() - 512 + 8;
    bytes[at] ^= 0x40;
}

/// The footer copy damaged, and a leak at the end: the footer moves, the file is cut, then
/// the copy is written.
fn damage_the_copy_and_leak_at_the_end(bytes: &mut Vec<u8>) {
    bytes[8] ^= 0x40;
    leak_zeros_at_the_end(bytes);
}

#[test]
fn repair_survives_a_cut_at_every_write() {
    type Damage = fn(&mut Vec<u8>);
    let rows: [(&str, (&str, bool, Damage)); 4] = [
        (
            "repair of a leak at the end survives a cut at every write",
            ("crash-repair-leak", false, leak_zeros_at_the_end),
        ),
        (
            "a forced repair of a leaked block survives a cut at every write",
            ("crash-repair-forced", true, |bytes| {
                clear_the_last_blocks_entry(bytes)
            }),
        ),
        (
            "repair of a damaged end footer survives a cut at every write",
            ("crash-repair-footer", false, |bytes| {
                damage_the_end_footer(bytes)
            }),
        ),
        (
            "repair of a damaged copy and a leak survives a cut at every write",
            (
                "crash-repair-copy",
                false,
                damage_the_copy_and_leak_at_the_end,
            ),
        ),
    ];
    check_rows(rows, |_, (label, force, damage)| {
        repair_cut_at_every_write(label, force, damage)
    });
}

// ---------------------------------------------------------------------------------------------
// A real process, killed

/// The test that runs itself as the child process; its name is passed to `--exact`.
const KILLED_TEST: &str = "a_killed_process_leaves_a_consistent_image";
/// Set (to the image's path) in the child process.
const CHILD_IMAGE: &str = "VHD_CRASH_CHILD_IMAGE";
const CHILD_LOG: &str = "VHD_CRASH_CHILD_LOG";
const CHILD_SEED: &str = "VHD_CRASH_CHILD_SEED";
const KILLED_SIZE: u64 = 16 * MIB;
const KILLED_BLOCK: u32 = 64 * KIB as u32;
const KILL_ROUNDS: usize = 24;

/// Child mode: writes and flushes the image until killed. Before each write it appends
/// `W <offset> <length> <data seed>` to the log; after each completed flush, `F`, and
/// fsyncs the log. (A process death loses nothing already written to the log file; the
/// fsync is for the reader's sake, as a real application's journal would do it.)
fn child_main(image: &Path, log: &Path, seed: u64) -> ! {
    let mut disk = Image::open(image, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("child: cannot open {}: {e}", image.display()));
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    let mut rng = Rng::from_seed(seed);
    let block = u64::from(KILLED_BLOCK);
    for _ in 0..20_000 {
        for op in workload(&mut rng, KILLED_SIZE, block, 1) {
            match op {
                Op::Write { offset, data } => {
                    // The data again from a seed, so that the log stays small.
                    let data_seed = rng.next_u64();
                    let data = if data.iter().all(|&b| b == 0) {
                        data
                    } else {
                        Rng::from_seed(data_seed).bytes(data.len())
                    };
                    let zero = u8::from(data.iter().all(|&b| b == 0));
                    writeln!(log, "W {offset} {} {data_seed} {zero}", data.len()).unwrap();
                    disk.write_at(&data, offset).unwrap();
                }
                Op::Flush => {
                    disk.flush().unwrap();
                    writeln!(log, "F").unwrap();
                    log.sync_data().unwrap();
                }
            }
        }
    }
    // Not killed yet: wait for it.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A write the child logged.
struct Logged {
    offset: u64,
    data: Vec<u8>,
}

/// The child's log: the writes before its last `F` (made durable by that flush), and those
/// after it (issued, or about to be, when the child was killed).
fn read_log(log: &Path) -> (Vec<Logged>, Vec<Logged>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut flushed = Vec::new();
    let mut later = Vec::new();
    let mut flushes = 0;
    // A line the kill cut short has no newline: it is ignored.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[0] {
            "F" => {
                flushed.append(&mut later);
                flushes += 1;
            }
            "W" => {
                let number = |i: usize| fields[i].parse::<u64>().unwrap();
                let len = number(2) as usize;
                let data = if number(4) == 1 {
                    vec![0; len]
                } else {
                    Rng::from_seed(number(3)).bytes(len)
                };
                later.push(Logged {
                    offset: number(1),
                    data,
                });
            }
            other => panic!("bad log line {other:?}"),
        }
    }
    (flushed, later, flushes)
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_process_leaves_a_consistent_image() {
    if let Some(image) = std::env::var_os(CHILD_IMAGE) {
        let log = std::env::var_os(CHILD_LOG).unwrap();
        let seed = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
        child_main(Path::new(&image), Path::new(&log), seed);
    }
    let mut rng = Rng::new(KILLED_TEST);
    let oracles = require_qemu() && require_tool("vhdiinfo");
    let dir = TempDir::new("crash-killed");
    let path = dir.join("killed.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, KILLED_SIZE);
    options.block_size = KILLED_BLOCK;
    drop(create(&path, &options).unwrap());
    let mut model = vec![0u8; KILLED_SIZE as usize];
    let exe = std::env::current_exe().unwrap();
    let mut total_flushes = 0;
    let mut leaks = 0;
    for round in 0..KILL_ROUNDS {
        let log = dir.join(&format!("round-{round}.log"));
        let stderr = std::fs::File::create(dir.join("child-stderr.txt")).unwrap();
        let child = std::process::Command::new(&exe)
            .args(["--exact", KILLED_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_IMAGE, &path)
            .env(CHILD_LOG, &log)
            .env(CHILD_SEED, rng.next_u64().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        // Wait for the child to start writing, then let it run a random while.
        let started = std::time::Instant::now();
        while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!(
                    "round {round}: the child exited ({status}) before writing: {}",
                    std::fs::read_to_string(dir.join("child-stderr.txt")).unwrap()
                );
            }
            assert!(
                started.elapsed().as_secs() < 60,
                "round {round}: the child never started writing"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_micros(rng.below(60_000)));
        child.0.kill().unwrap(); // SIGKILL
        let status = child.0.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was not killed");

        let (flushed, later, flushes) = read_log(&log);
        total_flushes += flushes;
        for w in &flushed {
            model[w.offset as usize..w.offset as usize + w.data.len()].copy_from_slice(&w.data);
        }
        let context = format!(
            "round {round}: killed after {} flushed and {} later writes",
            flushed.len(),
            later.len()
        );
        let report = vhd_core::check(&path, &CheckOptions::default()).unwrap();
        assert!(!report.has_corruption(), "{context}: check:\n{report}");
        leaks += report.leaked_blocks();
        let image = Image::open(
            &path,
            &OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{context}: does not open: {e}"));
        assert_eq!(image.footer_source(), FooterSource::End, "{context}");
        let observed = read_all(&image);
        drop(image);
        let model_check = Model {
            baseline: &model,
            later: later
                .iter()
                .map(|w| (w.offset, w.data.as_slice()))
                .collect(),
            block_size: u64::from(KILLED_BLOCK),
        };
        if let Err(e) = model_check.verify(&observed, true) {
            panic!("{context}: {e}");
        }
        if oracles {
            run_ok(std::process::Command::new("vhdiinfo").arg(&path));
            assert_same_bytes(
                &qemu_raw(&path, &dir),
                &observed,
                &format!("{context}: qemu-img convert vs our read"),
            );
        }
        // What the next child starts from.
        model = observed;
    }
    println!("{KILL_ROUNDS} kills, {total_flushes} flushes completed, {leaks} leaked blocks seen");
    assert!(total_flushes > 0, "no flush ever completed before a kill");
}

// ---------------------------------------------------------------------------------------------
// Files replaced by rename: create --overwrite, compact, convert

/// `create` with `overwrite` writes a new file and renames it over the old one (after
/// making it durable): the old file is never emptied in place. Another name of the old file
/// (a hard link) and a handle open on it still read the old image; the new one keeps the
/// old file's permissions.
#[test]
fn create_overwrite_replaces_the_file_instead_of_emptying_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("crash-create-overwrite");
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap();
    image.write_at(&[9u8; 4096], 0).unwrap();
    drop(image);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    let old = std::fs::read(&path).unwrap();
    let old_inode = std::fs::metadata(&path).unwrap().ino();
    let link = dir.join("link.vhd");
    std::fs::hard_link(&path, &link).unwrap();
    let options = CreateOptions {
        overwrite: true,
        ..CreateOptions::new(DiskType::Fixed, MIB)
    };
    let image = create(&path, &options).unwrap();
    assert_eq!(image.size(), MIB);
    drop(image);
    assert!(
        std::fs::read(&link).unwrap() == old,
        "the old file was written in place"
    );
    let new = std::fs::metadata(&path).unwrap();
    assert_ne!(new.ino(), old_inode);
    assert_eq!(new.mode() & 0o777, 0o604);
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["disk.vhd".into(), "link.vhd".into()])
    );
}

/// A dangling symbolic link where the image goes: refused without `overwrite` (the name is
/// taken); with it, the link is replaced by the image, and nothing is created where it
/// pointed. A link to a file is followed: the file is replaced, the link stays.
#[test]
fn create_over_a_symbolic_link() {
    let dir = TempDir::new("crash-create-link");
    let path = dir.join("disk.vhd");
    let target = dir.join("missing.vhd");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let options = CreateOptions::new(DiskType::Dynamic, MIB);
    let e = create(&path, &options).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_EXISTS", "{e}");
    let overwrite = CreateOptions {
        overwrite: true,
        ..options
    };
    drop(create(&path, &overwrite).unwrap());
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert!(!target.exists());

    let link = dir.join("link.vhd");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let fixed = CreateOptions {
        overwrite: true,
        ..CreateOptions::new(DiskType::Fixed, MIB)
    };
    drop(create(&link, &fixed).unwrap());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), MIB + 512);
}

/// The test that runs itself as a process to kill in the middle of a compact or convert.
const KILLED_REWRITE_TEST: &str = "a_killed_compact_or_convert_leaves_no_temporary_file";
/// Set in that process: the operation ("compact" or "convert"), the image, and a file to
/// create when the operation is half done.
const REWRITE_OPERATION: &str = "VHD_CRASH_REWRITE_OPERATION";
const REWRITE_IMAGE: &str = "VHD_CRASH_REWRITE_IMAGE";
const REWRITE_HALFWAY: &str = "VHD_CRASH_REWRITE_HALFWAY";

/// Child mode: runs the operation, and once half of it is done, says so and waits to be
/// killed.
fn rewrite_child(operation: &str, image: &Path, halfway: &Path) -> ! {
    let on_progress = |done: u64, total: u64| {
        if done * 2 >= total && done < total {
            std::fs::write(halfway, b"").unwrap();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    };
    let progress = vhd_core::ops::Progress::default().with_callback(&on_progress);
    let result = match operation {
        "compact" => vhd_core::ops::compact(image, &OpenOptions::default(), progress).map(drop),
        _ => {
            let options = vhd_core::ops::ConvertOptions::new(vhd_core::ops::OutputFormat::Dynamic);
            let destination = image.with_file_name("converted.vhd");
            vhd_core::ops::convert(image, &destination, &options, progress).map(drop)
        }
    };
    panic!("child: the {operation} ended without being killed: {result:?}");
}

/// A compact or convert killed halfway leaves the image as it was and no temporary file:
/// the new file has no name until it is whole (`O_TMPFILE`, Linux). (They used to leave a
/// full-size `.NAME.compact-PID.tmp` or `.convert-tmp` for ever.)
#[cfg(target_os = "linux")]
#[test]
fn a_killed_compact_or_convert_leaves_no_temporary_file() {
    if let Some(operation) = std::env::var_os(REWRITE_OPERATION) {
        let image = std::env::var_os(REWRITE_IMAGE).unwrap();
        let halfway = std::env::var_os(REWRITE_HALFWAY).unwrap();
        rewrite_child(
            &operation.to_string_lossy(),
            Path::new(&image),
            Path::new(&halfway),
        );
    }
    let mut rng = Rng::new(KILLED_REWRITE_TEST);
    for operation in ["compact", "convert"] {
        let dir = TempDir::new(&format!("crash-killed-{operation}"));
        let path = dir.join("disk.vhd");
        let mut options = CreateOptions::new(DiskType::Dynamic, 16 * MIB);
        options.block_size = 64 * KIB as u32;
        let mut image = create(&path, &options).unwrap();
        image.write_at(&rng.bytes(16 * MIB as usize), 0).unwrap();
        drop(image);
        let before = std::fs::read(&path).unwrap();
        let halfway = std::env::temp_dir().join(format!(
            "vhd-crash-halfway-{operation}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&halfway);
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                KILLED_REWRITE_TEST,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(REWRITE_OPERATION, operation)
            .env(REWRITE_IMAGE, &path)
            .env(REWRITE_HALFWAY, &halfway)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let started = std::time::Instant::now();
        while !halfway.exists() {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("{operation}: the child exited ({status}) before halfway");
            }
            assert!(
                started.elapsed().as_secs() < 60,
                "{operation}: never halfway"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        let _ = std::fs::remove_file(&halfway);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["disk.vhd".to_string()],
            "{operation} left files"
        );
        assert!(
            std::fs::read(&path).unwrap() == before,
            "{operation}: the image changed"
        );
    }
}

/// Where the file system has no `O_TMPFILE` (or elsewhere than Linux), a killed compact or
/// convert leaves a named temporary file: `check` names those of the image whose process
/// is gone (for information: the image is fine), not those of a running process nor those
/// of another image.
#[test]
fn check_names_the_temporary_files_a_killed_run_left() {
    let dir = TempDir::new("crash-stale-temp");
    let path = dir.join("disk.vhd");
    drop(create(&path, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap());
    // A process that has ended: its id names no process now (ids are not reused at once).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = gone.id();
    let alive = std::process::id();
    let stale = [
        format!(".disk.vhd.compact-{dead}-0.vhd-tmp"),
        format!(".disk.vhd.convert-{dead}-3.vhd-tmp"),
        format!(".disk.vhd.compact-{dead}.tmp"),
        format!(".disk.vhd.{dead}-0.convert-tmp"),
    ];
    let others = [
        format!(".disk.vhd.compact-{alive}-0.vhd-tmp"),
        format!(".other.vhd.compact-{dead}-0.vhd-tmp"),
        format!(".disk.vhd.backup-{dead}-0.vhd-tmp"),
    ];
    for name in stale.iter().chain(&others) {
        std::fs::write(dir.join(name), b"left behind").unwrap();
    }
    let report = vhd_core::check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
    let found: BTreeSet<String> = report
        .findings_of(vhd_core::FindingKind::StaleTempFile)
        .map(|f| {
            assert_eq!(f.severity, vhd_core::Severity::Info);
            let name = stale
                .iter()
                .find(|name| f.message.contains(&format!("{}", dir.join(name).display())))
                .unwrap_or_else(|| panic!("names none of ours: {}", f.message));
            assert!(f.message.contains(&dead.to_string()), "{}", f.message);
            name.clone()
        })
        .collect();
    assert_eq!(found, stale.iter().cloned().collect());
}

/// The test that runs itself, under `strace`, to record the system calls of an operation
/// that replaces a file.
const TRACED_TEST: &str = "files_are_replaced_only_once_the_new_one_is_durable";
/// Set in that process: the operation, and the folder it works in.
const TRACED_OPERATION: &str = "VHD_CRASH_TRACED_OPERATION";
const TRACED_DIR: &str = "VHD_CRASH_TRACED_DIR";

/// Child mode: the operation on `dir/disk.vhd` (create --overwrite, compact) or from it to
/// `dir/out.vhd` (convert, which replaces an existing output).
fn traced_child(operation: &str, dir: &Path) -> ! {
    let disk = dir.join("disk.vhd");
    let progress = vhd_core::ops::Progress::default();
    let result = match operation {
        "create" => {
            let options = CreateOptions {
                overwrite: true,
                ..CreateOptions::new(DiskType::Dynamic, 2 * MIB)
            };
            create(&disk, &options).map(drop)
        }
        "compact" => vhd_core::ops::compact(&disk, &OpenOptions::default(), progress).map(drop),
        "create-new" => create(
            dir.join("new.vhd"),
            &CreateOptions::new(DiskType::Fixed, 2 * MIB),
        )
        .map(drop),
        _ => {
            let mut options =
                vhd_core::ops::ConvertOptions::new(vhd_core::ops::OutputFormat::Dynamic);
            options.overwrite = true;
            vhd_core::ops::convert(&disk, &dir.join("out.vhd"), &options, progress).map(drop)
        }
    };
    std::process::exit(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child: {operation}: {e}");
            1
        }
    });
}

/// One system call from `strace`: its name, its arguments as written, its result.
struct Call {
    name: String,
    args: String,
    result: i64,
}

/// The calls of an `strace -f` log (calls split across threads are skipped: none of those
/// this test follows runs concurrently with another).
fn calls(log: &str) -> Vec<Call> {
    log.lines()
        .filter(|l| !l.contains("<unfinished") && !l.contains("resumed>"))
        .filter_map(|line| {
            // "PID name(args) = result ..."
            let line = line
                .split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .trim_start();
            let (name, rest) = line.split_once('(')?;
            let (args, result) = rest.rsplit_once(" = ")?;
            let args = args.trim_end().strip_suffix(')')?;
            let result = result.split_whitespace().next()?.parse().ok()?;
            Some(Call {
                name: name.to_string(),
                args: args.to_string(),
                result,
            })
        })
        .collect()
}

/// The quoted strings among a call's arguments.
fn quoted(args: &str) -> Vec<&str> {
    args.split('"').skip(1).step_by(2).collect()
}

/// `create --overwrite`, `compact` and `convert` (over an existing output) under `strace`,
/// and `create` of a new image: the file they replace is never written (nor truncated); the
/// new file is fsynced after its last write and before the rename (or link) that gives it
/// the name; the folder is fsynced after that (a new name is durable too). So the old file stays intact until the new one is durable, and the
/// new name is durable before the operation returns: whichever writes a power cut loses,
/// the name leads to the old file or to the whole new one.
#[cfg(target_os = "linux")]
#[test]
fn files_are_replaced_only_once_the_new_one_is_durable() {
    if let Some(operation) = std::env::var_os(TRACED_OPERATION) {
        let dir = std::env::var_os(TRACED_DIR).unwrap();
        traced_child(&operation.to_string_lossy(), Path::new(&dir));
    }
    if !require_tool("strace") {
        return;
    }
    let mut rng = Rng::new(TRACED_TEST);
    for operation in ["create", "create-new", "compact", "convert"] {
        let dir = TempDir::new(&format!("crash-traced-{operation}"));
        let disk = dir.join("disk.vhd");
        let mut image = create(&disk, &CreateOptions::new(DiskType::Dynamic, 8 * MIB)).unwrap();
        image.write_at(&rng.bytes(3 * MIB as usize), MIB).unwrap();
        image.write_at(&[1; 4096], 6 * MIB).unwrap();
        image.write_at(&vec![0; 2 * MIB as usize], 6 * MIB).unwrap();
        drop(image);
        let replaced = match operation {
            "convert" => {
                let out = dir.join("out.vhd");
                std::fs::write(&out, b"the old output").unwrap();
                out
            }
            "create-new" => dir.join("new.vhd"),
            _ => disk.clone(),
        };
        let old_inode = std::fs::metadata(&replaced)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok();
        let log = dir.join("strace.log");
        let status = std::process::Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&log)
            .args([
                "-e",
                "trace=open,openat,close,write,pwrite64,pwritev,ftruncate,fsync,fdatasync,rename,renameat,renameat2,link,linkat",
            ])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", TRACED_TEST, "--nocapture", "--test-threads=1"])
            .env(TRACED_OPERATION, operation)
            .env(TRACED_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{operation}: the traced child failed");
        let calls = calls(&std::fs::read_to_string(&log).unwrap());
        let destination = replaced.display().to_string();
        let folder = dir.path().display().to_string();

        // Which file each descriptor is, as the calls go.
        let mut open: HashMap<i64, String> = HashMap::new();
        let mut new_fd = None;
        let mut last_new_write = None;
        let mut new_synced = None;
        let mut named = None;
        let mut folder_synced = None;
        for (i, call) in calls.iter().enumerate() {
            let fd = || {
                call.args
                    .split(',')
                    .next()
                    .unwrap()
                    .trim()
                    .parse::<i64>()
                    .ok()
            };
            match call.name.as_str() {
                "open" | "openat" if call.result >= 0 => {
                    let path = quoted(&call.args)
                        .first()
                        .copied()
                        .unwrap_or("")
                        .to_string();
                    let is_new = call.args.contains("O_TMPFILE") || path.ends_with(".vhd-tmp");
                    if is_new && path.starts_with(&folder) && named.is_none() {
                        new_fd = Some(call.result);
                    }
                    open.insert(call.result, path);
                }
                "close" => {
                    if let Some(fd) = fd() {
                        open.remove(&fd);
                    }
                }
                "write" | "pwrite64" | "pwritev" | "ftruncate" => {
                    let fd = fd().unwrap();
                    assert!(
                        open.get(&fd) != Some(&destination) || named.is_some(),
                        "{operation}: the file being replaced was written: {}({})",
                        call.name,
                        call.args
                    );
                    if Some(fd) == new_fd {
                        last_new_write = Some(i);
                    }
                }
                "fsync" | "fdatasync" if call.result == 0 => {
                    let fd = fd().unwrap();
                    if Some(fd) == new_fd && named.is_none() {
                        new_synced = Some(i);
                    }
                    if named.is_some() && open.get(&fd) == Some(&folder) {
                        folder_synced = Some(i);
                    }
                }
                "rename" | "renameat" | "renameat2" | "link" | "linkat"
                    if call.result == 0
                        && quoted(&call.args).last() == Some(&destination.as_str()) =>
                {
                    named = Some(i);
                }
                _ => {}
            }
        }
        let context = format!("{operation}: {} calls traced", calls.len());
        assert!(new_fd.is_some(), "{context}: no new file was made");
        let named = named.unwrap_or_else(|| panic!("{context}: the new file was never named"));
        let synced = new_synced.unwrap_or_else(|| panic!("{context}: never fsynced"));
        assert!(
            last_new_write.is_some_and(|w| w < synced) && synced < named,
            "{context}: written at {last_new_write:?}, fsynced at {synced}, named at {named}"
        );
        assert!(
            folder_synced.is_some(),
            "{context}: the folder was not fsynced after the new name"
        );
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&replaced).unwrap());
        assert_ne!(Some(inode), old_inode, "{context}: not replaced");
    }
}

/// The test that runs itself as another user, to compact a file it may write but not own.
const NOT_OWNER_TEST: &str = "compact_refuses_a_file_whose_owner_it_cannot_keep";
const NOT_OWNER_IMAGE: &str = "VHD_CRASH_NOT_OWNER_IMAGE";

/// Compacting another user's file (writable by all) as a user who may not give files away:
/// the new file could not keep the owner, so compact is refused before anything is written;
/// the image, its owner and the folder stay as they were. (Runs as root only, which can
/// start the process as `nobody`; CI runs as root.)
#[cfg(target_os = "linux")]
#[test]
fn compact_refuses_a_file_whose_owner_it_cannot_keep() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if let Some(image) = std::env::var_os(NOT_OWNER_IMAGE) {
        let e = vhd_core::ops::compact(
            Path::new(&image),
            &OpenOptions::default(),
            vhd_core::ops::Progress::default(),
        )
        .unwrap_err();
        println!("REFUSED {}: {e}", e.code());
        std::process::exit(0);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("only root can run a process as another user");
        return;
    }
    let dir = TempDir::new("crash-not-owner");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 8 * MIB)).unwrap();
    image.write_at(&[5u8; 4096], 0).unwrap();
    image.write_at(&[6u8; 4096], 4 * MIB).unwrap();
    image
        .write_at(&vec![0u8; 2 * MIB as usize], 4 * MIB)
        .unwrap();
    drop(image);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    // The test binary, where `nobody` may run it (the checkout it was built in may be
    // closed to other users).
    let program = dir.join("crash-test");
    std::fs::copy(std::env::current_exe().unwrap(), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new(&program)
        .args(["--exact", NOT_OWNER_TEST, "--nocapture", "--test-threads=1"])
        .env(NOT_OWNER_IMAGE, &path)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refusal = stdout
        .lines()
        .find(|l| l.contains("REFUSED"))
        .unwrap_or_else(|| panic!("no refusal: {stdout}"));
    assert!(refusal.contains("owner"), "{refusal}");
    assert!(refusal.contains(&path.display().to_string()), "{refusal}");
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!((after.ino(), after.uid()), (inode, 0));
    assert!(std::fs::read(&path).unwrap() == before, "the image changed");
    std::fs::remove_file(&program).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["disk.vhd".to_string()]);
}
