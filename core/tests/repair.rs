//! `vhd_core::ops::repair` (`check --repair`): corruption planted in images made by qemu-img
//! (written with qemu-io) and by our `create`. For each kind, `check` finds it (the right
//! finding and exit code); a repairable one is repaired, after which the image checks clean,
//! `vhdiinfo` opens it and it reads as expected (`qemu-io -c "read -P …"` and `qemu-img
//! compare` against the expected raw bytes, or libvhdi's pyvhdi for differencing chains);
//! anything else is reported as not repaired and the file is left byte for byte as it was.

use std::path::{Path, PathBuf};
use std::process::Command;
use vhd_core::ops::{repair, RepairOptions, RepairReport};
use vhd_core::{
    check, create, CheckOptions, CheckReport, CreateOptions, DiskType, Error, FindingKind,
    Severity, VirtualDisk,
};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
/// qemu's block size, and the layout of its 8 MiB dynamic images: footer copy, header at
/// 512, a BAT of 4 entries at 1536 padded to a sector, blocks from 2048.
const BLOCK: u64 = 2 * MIB;
const SIZE: u64 = 8 * MIB;
const BAT: u64 = 1536;
const FIRST_BLOCK: u64 = 2048;
const UNIT: u64 = 512 + BLOCK;

/// A write made with qemu-io: `length` bytes of `pattern` at `offset`.
#[derive(Clone, Copy)]
struct Fill {
    offset: u64,
    length: u64,
    pattern: u8,
}

const fn fill(offset: u64, length: u64, pattern: u8) -> Fill {
    Fill {
        offset,
        length,
        pattern,
    }
}

/// An image with the bytes it must read as.
struct Made {
    path: PathBuf,
    expected: Vec<u8>,
    fills: Vec<Fill>,
}

fn qemu_io(path: &Path, command: &str) {
    run_ok(
        Command::new("qemu-io")
            .args(["-f", "vpc", "-c", command])
            .arg(path),
    );
}

/// An 8 MiB image made by qemu-img (`subformat` fixed or dynamic) and written by qemu-io.
fn qemu_image(dir: &TempDir, name: &str, subformat: &str, fills: &[Fill]) -> Made {
    let path = dir.join(name);
    qemu_create(&path, subformat, SIZE);
    let mut expected = vec![0u8; SIZE as usize];
    for f in fills {
        qemu_io(
            &path,
            &format!("write -P {:#x} {} {}", f.pattern, f.offset, f.length),
        );
        expected[f.offset as usize..(f.offset + f.length) as usize].fill(f.pattern);
    }
    Made {
        path,
        expected,
        fills: fills.to_vec(),
    }
}

/// The usual qemu dynamic image: blocks 0 and 2 written (in that order in the file).
fn qemu_dynamic(dir: &TempDir, name: &str) -> Made {
    qemu_image(
        dir,
        name,
        "dynamic",
        &[
            fill(4096, 64 * 1024, 0x11),
            fill(2 * BLOCK + 8192, MIB, 0x22),
        ],
    )
}

fn footer_offset(path: &Path) -> u64 {
    file_len(path) - 512
}

fn run_check(path: &Path) -> CheckReport {
    check(path, &CheckOptions::default()).unwrap_or_else(|e| panic!("check {path:?}: {e}"))
}

/// Repairs `path`. The check after the repair (the check of the planned file, which the
/// repair does not run again) must be what a check of the file now finds.
fn run_repair(path: &Path) -> RepairReport {
    run_repair_with(path, false)
}

/// [`run_repair`], forced when `force` is set.
fn run_repair_with(path: &Path, force: bool) -> RepairReport {
    let report =
        vhd_core::ops::repair_with(path, &CheckOptions::default(), &RepairOptions { force })
            .unwrap_or_else(|e| panic!("repair {path:?}: {e}"));
    let now = run_check(path);
    assert_eq!(
        report.after.findings(),
        now.findings(),
        "after:\n{}\nnow:\n{now}",
        report.after
    );
    assert_eq!(
        report.after.counts().collect::<Vec<_>>(),
        now.counts().collect::<Vec<_>>()
    );
    assert_eq!(report.after.file_size(), now.file_size());
    assert_eq!(report.after.leaked_blocks(), now.leaked_blocks());
    report
}

/// `check` reports `kind` with `severity`, and the exit code `qemu-img check` would give.
#[track_caller]
fn assert_found(path: &Path, kind: FindingKind, severity: Severity) -> CheckReport {
    let report = run_check(path);
    assert!(
        report.findings_of(kind).any(|f| f.severity == severity),
        "no {severity:?} {} finding in:\n{report}",
        kind.code()
    );
    let code = match severity {
        // A broken link to the parent has its own exit code (issue 15).
        Severity::Corrupt if kind.is_parent_link() => 4,
        Severity::Corrupt => 2,
        Severity::Leak => 3,
        Severity::Info => 0,
    };
    assert_eq!(report.exit_code(), code, "{report}");
    report
}

/// Repairs `made`, which must then check clean, open in vhdiinfo and read as expected.
#[track_caller]
fn assert_repaired(made: &Made, fixes: FindingKind) -> RepairReport {
    assert_repaired_with(made, fixes, false)
}

/// [`assert_repaired`], forced when `force` is set.
#[track_caller]
fn assert_repaired_with(made: &Made, fixes: FindingKind, force: bool) -> RepairReport {
    let report = run_repair_with(&made.path, force);
    assert!(
        report.actions.iter().any(|a| a.fixes == fixes),
        "no action fixes {}: {:#?}",
        fixes.code(),
        report.actions
    );
    assert!(report.not_repaired.is_empty(), "{:#?}", report.not_repaired);
    assert_eq!(report.after.exit_code(), 0, "after:\n{}", report.after);
    let again = run_check(&made.path);
    assert_eq!(again.exit_code(), 0, "{again}");
    assert!(again.is_clean(), "{again}");
    assert_vhdiinfo_opens(&made.path);
    assert_reads_as_expected(made);
    report
}

/// Repair finds nothing it may change: `kind` stays reported, the file is untouched.
#[track_caller]
fn assert_not_repaired(path: &Path, kind: FindingKind) {
    let bytes = std::fs::read(path).unwrap();
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let report = run_repair(path);
    assert!(report.actions.is_empty(), "{:#?}", report.actions);
    assert!(!report.changed());
    assert!(
        report.not_repaired.iter().any(|f| f.kind == kind),
        "{} not listed as not repaired: {:#?}",
        kind.code(),
        report.not_repaired
    );
    assert_eq!(report.after.exit_code(), report.before.exit_code());
    assert!(std::fs::read(path).unwrap() == bytes, "the file changed");
    assert_eq!(
        std::fs::metadata(path).unwrap().modified().unwrap(),
        modified
    );
}

fn assert_vhdiinfo_opens(path: &Path) {
    let (code, text) = run_status(Command::new("vhdiinfo").arg(path));
    assert_eq!(code, 0, "vhdiinfo {}: {text}", path.display());
}

/// qemu-io reads each filled range back with its pattern, and `qemu-img compare` finds the
/// whole disk equal to the expected raw bytes.
fn assert_reads_as_expected(made: &Made) {
    for f in &made.fills {
        let pattern = made.expected[f.offset as usize];
        qemu_io(
            &made.path,
            &format!("read -P {pattern:#x} {} {}", f.offset, f.length),
        );
    }
    let raw = made.path.with_extension("expected.raw");
    std::fs::write(&raw, &made.expected).unwrap();
    let (code, text) = run_status(
        Command::new("qemu-img")
            .args(["compare", "-f", "vpc", "-F", "raw"])
            .arg(&made.path)
            .arg(&raw),
    );
    std::fs::remove_file(&raw).unwrap();
    assert_eq!(code, 0, "qemu-img compare {}: {text}", made.path.display());
}

fn oracles() -> bool {
    require_qemu() && require_tool("vhdiinfo")
}

/// Copies `made` to a new name, so that each test plants one corruption in its own file.
fn variant(made: &Made, dir: &TempDir, name: &str) -> Made {
    let path = dir.join(name);
    std::fs::copy(&made.path, &path).unwrap();
    Made {
        path,
        expected: made.expected.clone(),
        fills: made.fills.clone(),
    }
}

fn set_bat_entry(path: &Path, index: u64, sector: u32) {
    patch_file(path, BAT + 4 * index, &sector.to_be_bytes());
}

/// Patches the dynamic header at 512 and stores its right checksum.
fn patch_header(path: &Path, at: u64, bytes: &[u8]) {
    patch_file(path, 512 + at, bytes);
    let mut header = file_bytes(path, 512, 1024);
    fix_header_checksum(&mut header);
    patch_file(path, 512, &header);
}

// ---------------------------------------------------------------------------------------------
// Footers

#[test]
fn a_bad_end_footer_is_written_again_from_the_copy() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-end-footer");
    let made = qemu_dynamic(&dir, "d.vhd");
    let end = footer_offset(&made.path);
    patch_file(&made.path, end + 100, &[0x5A]);
    assert_found(&made.path, FindingKind::FooterChecksum, Severity::Corrupt);
    let report = assert_repaired(&made, FindingKind::FooterChecksum);
    assert_eq!(report.actions.len(), 1, "{:#?}", report.actions);
    assert_eq!(report.actions[0].offset, end);
    assert_eq!(
        file_bytes(&made.path, end, 512),
        file_bytes(&made.path, 0, 512)
    );
    assert!(report.lost.is_empty());
    let text = report.to_string();
    assert!(
        text.contains(&format!("repaired [footer-checksum] at {end}")),
        "{text}"
    );
    assert!(text.contains("No errors were found"), "{text}");
}

#[test]
fn a_footer_lost_after_a_block_allocation_is_written_at_the_end_of_the_used_space() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-lost-footer");
    let mut rng = Rng::new("a_footer_lost_after_a_block_allocation");
    let made = qemu_dynamic(&dir, "d.vhd");
    let end = footer_offset(&made.path);
    let original = std::fs::read(&made.path).unwrap();

    // A power cut while a third block was being allocated: the old footer (now the start
    // of the new block's bitmap) and part of the new block's data reached the disk, the
    // footer moved past it and the BAT entry did not.
    let torn = variant(&made, &dir, "torn.vhd");
    let mut bytes = original.clone();
    bytes.extend_from_slice(&rng.bytes(300_000));
    std::fs::write(&torn.path, &bytes).unwrap();
    // The same, when the file kept the length the moved footer gave it but not its bytes.
    let sized = variant(&made, &dir, "sized.vhd");
    let mut bytes = original.clone();
    bytes.resize((end + UNIT + 512) as usize, 0);
    std::fs::write(&sized.path, &bytes).unwrap();
    // The footer itself zeroed.
    let zeroed = variant(&made, &dir, "zeroed.vhd");
    patch_file(&zeroed.path, end, &[0u8; 512]);

    for made in [&torn, &sized, &zeroed] {
        let before = assert_found(&made.path, FindingKind::FooterMissing, Severity::Leak);
        assert!(before.leaked_blocks() >= 1, "{before}");
        let report = assert_repaired(made, FindingKind::FooterMissing);
        assert_eq!(report.actions[0].offset, end, "{:#?}", report.actions);
        // Back to the image as it was before the allocation began.
        assert!(
            std::fs::read(&made.path).unwrap() == original,
            "{}",
            made.path.display()
        );
    }

    // Cut exactly where the footer began: the last block is whole, the footer is added.
    let cut = variant(&made, &dir, "cut.vhd");
    std::fs::write(&cut.path, &original[..end as usize]).unwrap();
    assert_found(&cut.path, FindingKind::FooterMissing, Severity::Corrupt);
    assert_repaired(&cut, FindingKind::FooterMissing);
    assert!(std::fs::read(&cut.path).unwrap() == original);
}

#[test]
fn a_footer_lost_by_our_own_writer_is_restored() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-our-lost-footer");
    let mut rng = Rng::new("a_footer_lost_by_our_own_writer_is_restored");
    let path = dir.join("ours.vhd");
    let mut disk = create(&path, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    let data = rng.bytes(3 * 4096);
    disk.write_at(&data, BLOCK + 4096).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let flushed = std::fs::read(&path).unwrap();
    // A second allocation whose moved footer never reached the disk: keep what the file
    // looked like in front of it, plus some of the new block, as `sparse.rs` describes.
    let mut disk = open_rw(&path);
    disk.write_at(&rng.bytes(4096), 3 * BLOCK).unwrap();
    drop(disk);
    let mut torn = flushed.clone();
    let grown = std::fs::read(&path).unwrap();
    torn.extend_from_slice(&grown[flushed.len()..flushed.len() + 200_000]);
    std::fs::write(&path, &torn).unwrap();
    let mut expected = vec![0u8; SIZE as usize];
    expected[(BLOCK + 4096) as usize..(BLOCK + 4096) as usize + data.len()].copy_from_slice(&data);
    let made = Made {
        path,
        expected,
        fills: Vec::new(),
    };
    assert_found(&made.path, FindingKind::FooterMissing, Severity::Leak);
    assert_repaired(&made, FindingKind::FooterMissing);
    assert!(std::fs::read(&made.path).unwrap() == flushed);
}

#[test]
fn a_damaged_footer_copy_is_written_from_the_footer() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-copy");
    let made = qemu_dynamic(&dir, "base.vhd");
    let footer = file_bytes(&made.path, footer_offset(&made.path), 512);

    let checksum = variant(&made, &dir, "checksum.vhd");
    patch_file(&checksum.path, 300, &[1]);
    assert_found(
        &checksum.path,
        FindingKind::FooterCopyChecksum,
        Severity::Corrupt,
    );
    assert_repaired(&checksum, FindingKind::FooterCopyChecksum);
    assert_eq!(file_bytes(&checksum.path, 0, 512), footer);

    let zeroed = variant(&made, &dir, "zeroed.vhd");
    patch_file(&zeroed.path, 0, &[0u8; 512]);
    assert_found(
        &zeroed.path,
        FindingKind::FooterCopyMissing,
        Severity::Corrupt,
    );
    assert_repaired(&zeroed, FindingKind::FooterCopyMissing);
    assert_eq!(file_bytes(&zeroed.path, 0, 512), footer);

    // A copy that describes a disk of another size (with a right checksum).
    let size = variant(&made, &dir, "size.vhd");
    let mut copy = file_bytes(&size.path, 0, 512);
    copy[48..56].copy_from_slice(&(2 * SIZE).to_be_bytes());
    fix_footer_checksum(&mut copy);
    patch_file(&size.path, 0, &copy);
    assert_found(
        &size.path,
        FindingKind::FooterCopyMismatch,
        Severity::Corrupt,
    );
    assert_repaired(&size, FindingKind::FooterCopyMismatch);
    assert_eq!(file_bytes(&size.path, 0, 512), footer);
}

#[test]
fn bad_checksums_everywhere_are_recomputed_when_the_structure_is_sound() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-checksums");
    let made = qemu_dynamic(&dir, "base.vhd");

    let header = variant(&made, &dir, "header.vhd");
    patch_file(&header.path, 512 + 900, &[7]);
    assert_found(&header.path, FindingKind::HeaderChecksum, Severity::Corrupt);
    let report = assert_repaired(&header, FindingKind::HeaderChecksum);
    assert_eq!(report.actions[0].offset, 512 + 36);
    let bytes = file_bytes(&header.path, 512, 1024);
    assert_eq!(be_u32(&bytes, 36), vhd_checksum(&bytes, 36));
    assert_eq!(bytes[900], 7, "the header's other bytes are kept");

    // The footer and its copy both damaged the same way (as dfvfs/image.vhd is): the
    // checksum is recomputed in both, the junk in the reserved bytes is kept.
    let both = variant(&made, &dir, "both.vhd");
    let end = footer_offset(&both.path);
    for offset in [0, end] {
        patch_file(&both.path, offset + 200, &[0x42]);
    }
    let before = assert_found(&both.path, FindingKind::FooterChecksum, Severity::Corrupt);
    assert!(before
        .findings_of(FindingKind::FooterCopyChecksum)
        .next()
        .is_some());
    assert_repaired(&both, FindingKind::FooterChecksum);
    for offset in [0, end] {
        let footer = file_bytes(&both.path, offset, 512);
        assert_eq!(footer[200], 0x42);
        assert_eq!(be_u32(&footer, 64), vhd_checksum(&footer, 64));
    }

    // A fixed image has no copy: its footer's checksum is recomputed.
    let fixed = qemu_image(&dir, "fixed.vhd", "fixed", &[fill(MIB, 4096, 0x33)]);
    patch_file(&fixed.path, SIZE + 100, &[9]);
    assert_found(&fixed.path, FindingKind::FooterChecksum, Severity::Corrupt);
    assert_repaired(&fixed, FindingKind::FooterChecksum);
}

// ---------------------------------------------------------------------------------------------
// BAT and leaks

#[test]
fn bat_entries_outside_the_file_are_dropped_and_their_ranges_reported() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-bat");
    let mut made = qemu_dynamic(&dir, "d.vhd");
    let end = footer_offset(&made.path);
    // Block 2 (written with 0x22) now points far past the end of the file, block 3 (never
    // written) at a block whose data would run into the footer.
    set_bat_entry(&made.path, 2, 0x0010_0000);
    set_bat_entry(&made.path, 3, (end / 512 - 1) as u32);
    let before = assert_found(&made.path, FindingKind::BitmapOutOfRange, Severity::Corrupt);
    assert!(before
        .findings_of(FindingKind::BatOutOfRange)
        .next()
        .is_some());
    made.expected[2 * BLOCK as usize..3 * BLOCK as usize].fill(0);
    made.fills.retain(|f| f.offset < BLOCK);
    // Dropping them loses block 2's data (still in the file, unreferenced: it is cut too):
    // not without force.
    assert_refused(
        &made.path,
        &["2 BAT entries", "4194304..8388608", "plausible block"],
    );
    let report = assert_repaired_with(&made, FindingKind::BitmapOutOfRange, true);
    assert!(report
        .actions
        .iter()
        .any(|a| a.fixes == FindingKind::BatOutOfRange));
    // Blocks 2 and 3 are next to each other on the disk: one range.
    assert_eq!(report.lost, vec![2 * BLOCK..4 * BLOCK]);
    assert_eq!(report.lost_omitted, 0);
    qemu_io(
        &made.path,
        &format!("read -P 0 {} {}", 2 * BLOCK, 2 * BLOCK),
    );
    assert_eq!(file_bytes(&made.path, BAT + 8, 8), [0xFF; 8]);
}

#[test]
fn leaked_blocks_at_the_end_are_cut_off_and_others_reported() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-leaks");
    let mut rng = Rng::new("leaked_blocks_at_the_end_are_cut_off");
    let made = qemu_dynamic(&dir, "d.vhd");
    let original = std::fs::read(&made.path).unwrap();
    let end = footer_offset(&made.path);
    let footer = file_bytes(&made.path, end, 512);

    // Two blocks' worth of space no BAT entry refers to, in front of the footer.
    let trailing = variant(&made, &dir, "trailing.vhd");
    patch_file(&trailing.path, end, &rng.bytes(2 * UNIT as usize));
    patch_file(&trailing.path, end + 2 * UNIT, &footer);
    let before = assert_found(&trailing.path, FindingKind::LeakedBlock, Severity::Leak);
    assert_eq!(before.leaked_blocks(), 2);
    // They hold what looks like blocks (random bytes): a BAT entry may have lost them.
    assert_refused(&trailing.path, &["2 plausible block(s)"]);
    let report = assert_repaired_with(&trailing, FindingKind::LeakedBlock, true);
    assert_eq!(report.actions[0].offset, end);
    assert!(std::fs::read(&trailing.path).unwrap() == original);

    // Zeros, or the footer an allocation cut short leaves where its bitmap was: nothing
    // that looks like a block, cut without force.
    for (name, first) in [
        ("zeros.vhd", vec![0u8; 512]),
        ("old-footer.vhd", footer.clone()),
    ] {
        let empty = variant(&made, &dir, name);
        patch_file(&empty.path, end, &vec![0u8; 2 * UNIT as usize]);
        patch_file(&empty.path, end, &first);
        patch_file(&empty.path, end + 2 * UNIT, &footer);
        assert_found(&empty.path, FindingKind::LeakedBlock, Severity::Leak);
        assert_repaired(&empty, FindingKind::LeakedBlock);
        assert!(std::fs::read(&empty.path).unwrap() == original);
    }

    // A leak with a block allocated after it: moving blocks is not a repair.
    let middle = variant(&made, &dir, "middle.vhd");
    patch_file(&middle.path, end, &rng.bytes(UNIT as usize));
    patch_file(&middle.path, end + UNIT, &footer);
    // (Our writer appends at the footer; qemu would reuse the leaked space.)
    let mut disk = open_rw(&middle.path);
    disk.write_at(&[0x44; 4096], 3 * BLOCK).unwrap();
    disk.flush().unwrap();
    drop(disk);
    assert_found(&middle.path, FindingKind::LeakedBlock, Severity::Leak);
    assert_not_repaired(&middle.path, FindingKind::LeakedBlock);
}

// ---------------------------------------------------------------------------------------------
// What is left alone

#[test]
fn damage_that_cannot_be_repaired_is_reported_and_left_alone() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-unrepairable");
    let made = qemu_dynamic(&dir, "base.vhd");

    let cookie = variant(&made, &dir, "cookie.vhd");
    patch_file(&cookie.path, 512, b"cxspXXXX");
    assert_found(&cookie.path, FindingKind::HeaderCookie, Severity::Corrupt);
    assert_not_repaired(&cookie.path, FindingKind::HeaderCookie);

    // Block 1 shares block 0's place in the file.
    let twice = variant(&made, &dir, "twice.vhd");
    set_bat_entry(&twice.path, 1, (FIRST_BLOCK / 512) as u32);
    assert_found(&twice.path, FindingKind::Overlap, Severity::Corrupt);
    assert_not_repaired(&twice.path, FindingKind::Overlap);

    // A block over the dynamic header and the BAT.
    let header = variant(&made, &dir, "over-header.vhd");
    set_bat_entry(&header.path, 1, 1);
    assert_found(&header.path, FindingKind::Overlap, Severity::Corrupt);
    assert_not_repaired(&header.path, FindingKind::Overlap);

    // A block size that is not a power of two, with a right checksum.
    let block_size = variant(&made, &dir, "block-size.vhd");
    patch_header(&block_size.path, 32, &3_000_000u32.to_be_bytes());
    assert_found(
        &block_size.path,
        FindingKind::HeaderField,
        Severity::Corrupt,
    );
    assert_not_repaired(&block_size.path, FindingKind::HeaderField);

    // A bad header checksum next to a bad field: the checksum is not "fixed" to bless it.
    let field = variant(&made, &dir, "entries.vhd");
    patch_file(&field.path, 512 + 28, &2u32.to_be_bytes());
    assert_found(&field.path, FindingKind::HeaderChecksum, Severity::Corrupt);
    assert_not_repaired(&field.path, FindingKind::HeaderField);

    // A fixed image that lost the second half of its data (the footer is still there).
    let fixed = qemu_image(&dir, "fixed.vhd", "fixed", &[fill(0, 4096, 0x55)]);
    let bytes = std::fs::read(&fixed.path).unwrap();
    let mut cut = bytes[..(SIZE / 2) as usize].to_vec();
    cut.extend_from_slice(&bytes[SIZE as usize..]);
    std::fs::write(&fixed.path, &cut).unwrap();
    assert_found(&fixed.path, FindingKind::Truncated, Severity::Corrupt);
    assert_not_repaired(&fixed.path, FindingKind::Truncated);
}

// ---------------------------------------------------------------------------------------------
// Differencing images

/// A 8 MiB dynamic parent filled by qemu-io and a differencing child of ours over it, with
/// 4 KiB-aligned writes (see FORMAT-NOTES on libvhdi's bitmap bug), and the bytes the chain
/// must read as.
fn chain(dir: &TempDir) -> (Made, Made) {
    let parent = qemu_image(
        dir,
        "parent.vhd",
        "dynamic",
        &[fill(0, 3 * MIB, 0x61), fill(5 * MIB, 2 * MIB, 0x62)],
    );
    let path = dir.join("child.vhd");
    let mut child = create(&path, &CreateOptions::differencing(&parent.path)).unwrap();
    let mut expected = parent.expected.clone();
    for (offset, length, pattern) in [(8192u64, 16384u64, 0x71u8), (5 * MIB, 4096, 0x72)] {
        let data = vec![pattern; length as usize];
        child.write_at(&data, offset).unwrap();
        expected[offset as usize..(offset + length) as usize].copy_from_slice(&data);
    }
    child.flush().unwrap();
    drop(child);
    (
        parent,
        Made {
            path,
            expected,
            fills: Vec::new(),
        },
    )
}

#[test]
fn a_differencing_image_is_repaired_and_reads_through_its_parent() {
    if !oracles() || !require_pyvhdi() {
        return;
    }
    let dir = TempDir::new("repair-diff");
    let (parent, child) = chain(&dir);
    let end = footer_offset(&child.path);
    patch_file(&child.path, end + 100, &[0x5A]);
    patch_file(&child.path, 512 + 1000, &[0x5A]);
    assert_found(&child.path, FindingKind::FooterChecksum, Severity::Corrupt);
    let report = run_repair(&child.path);
    assert_eq!(report.actions.len(), 2, "{:#?}", report.actions);
    assert!(report.after.is_clean(), "{}", report.after);
    assert!(run_check(&child.path).is_clean());
    assert_vhdiinfo_opens(&child.path);
    let read = libvhdi_read_chain(&[&parent.path, &child.path], &dir);
    assert_same_bytes(&read, &child.expected, "libvhdi reading the repaired chain");
}

#[test]
fn parent_and_bitmap_problems_are_left_alone() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-diff-unrepairable");
    let (parent, child) = chain(&dir);
    let saved = std::fs::read(&child.path).unwrap();

    // Another parent unique id in the child's header (with a right checksum).
    let mut id = file_bytes(&child.path, 512 + 40, 16);
    id[0] ^= 0xFF;
    patch_header(&child.path, 40, &id);
    assert_found(&child.path, FindingKind::ParentMismatch, Severity::Corrupt);
    assert_not_repaired(&child.path, FindingKind::ParentMismatch);
    std::fs::write(&child.path, &saved).unwrap();

    // The block's bitmap holds a footer: the BAT entry was written, the bitmap not.
    let header = file_bytes(&child.path, 512, 1024);
    let table = be_u64(&header, 16);
    let sector = be_u32(&file_bytes(&child.path, table, 4), 0);
    let footer = file_bytes(&child.path, 0, 512);
    patch_file(&child.path, u64::from(sector) * 512, &footer);
    assert_found(
        &child.path,
        FindingKind::BitmapHoldsFooter,
        Severity::Corrupt,
    );
    assert_not_repaired(&child.path, FindingKind::BitmapHoldsFooter);
    std::fs::write(&child.path, &saved).unwrap();

    // The parent is gone.
    std::fs::remove_file(&parent.path).unwrap();
    assert_found(&child.path, FindingKind::ParentNotFound, Severity::Corrupt);
    assert_not_repaired(&child.path, FindingKind::ParentNotFound);
}

// ---------------------------------------------------------------------------------------------
// Nothing to do, or no right to do it

#[test]
fn a_clean_image_is_not_written() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-clean");
    let made = qemu_dynamic(&dir, "d.vhd");
    let bytes = std::fs::read(&made.path).unwrap();
    let modified = std::fs::metadata(&made.path).unwrap().modified().unwrap();
    let report = run_repair(&made.path);
    assert!(!report.changed() && report.not_repaired.is_empty() && report.lost.is_empty());
    assert_eq!(report.before.exit_code(), 0);
    assert!(std::fs::read(&made.path).unwrap() == bytes);
    assert_eq!(
        std::fs::metadata(&made.path).unwrap().modified().unwrap(),
        modified
    );
}

#[test]
fn a_read_only_or_open_image_is_refused() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("repair-refused");
    let made = qemu_dynamic(&dir, "d.vhd");
    patch_file(&made.path, 300, &[1]);
    let bytes = std::fs::read(&made.path).unwrap();

    let mut permissions = std::fs::metadata(&made.path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&made.path, permissions.clone()).unwrap();
    match repair(&made.path, &CheckOptions::default()) {
        Err(e @ Error::ReadOnly { .. }) => {
            assert_eq!(e.code(), "ERR_VHD_READ_ONLY");
            assert!(e.to_string().contains("d.vhd"), "{e}");
        }
        other => panic!("expected Error::ReadOnly, got {other:?}"),
    }
    assert!(std::fs::read(&made.path).unwrap() == bytes);
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&made.path, permissions).unwrap();

    // Open for reading elsewhere: the exclusive lock is refused.
    let reader = open_ro(&made.path);
    match repair(&made.path, &CheckOptions::default()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    drop(reader);
    assert!(std::fs::read(&made.path).unwrap() == bytes);
    assert_eq!(run_repair(&made.path).after.exit_code(), 0);
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// Every corpus image, repaired in a copy: the clean ones are not touched; `dfvfs/image.vhd`
/// (bad checksums in the footer and its copy) becomes clean and reads as libvhdi reads the
/// original; `dfvfs/fat-differential.vhd` (parent missing) is left alone.
#[test]
fn corpus_images_are_repaired_only_where_damaged() {
    let Some(corpus) = corpus_dir() else { return };
    if !require_pyvhdi() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("repair-corpus");
    let mut names = Vec::new();
    for folder in std::fs::read_dir(&corpus).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".gz").trim_end_matches(".bz2");
            if stem.ends_with(".vhd") || stem.ends_with(".vhdf") {
                names.push(file);
            }
        }
    }
    assert!(names.len() >= 21, "{names:?}");
    for source in names {
        let label = source.strip_prefix(&corpus).unwrap().display().to_string();
        let work = TempDir::new("repair-corpus-image");
        let path = if label.ends_with(".gz") || label.ends_with(".bz2") {
            decompress(&source, work.path()).unwrap()
        } else {
            let path = work.join(source.file_name().unwrap().to_str().unwrap());
            copy_writable(&source, &path);
            path
        };
        // A differencing image's parent goes beside it (found by the header's name).
        if label == "dfvfs/image-differential.vhd" {
            let parent = source.with_file_name("image.vhd");
            copy_writable(&parent, &work.join("image.vhd"));
        }
        let bytes = std::fs::read(&path).unwrap();
        let report = run_repair(&path);
        match label.as_str() {
            "dfvfs/image.vhd" => {
                assert!(report.changed());
                assert!(report.after.is_clean(), "{}", report.after);
                assert_vhdiinfo_opens(&path);
                let image = open_rw(&path);
                let original = dir.join("original.vhd");
                std::fs::copy(&source, &original).unwrap();
                assert_same_bytes(
                    &read_all(&image),
                    &libvhdi_read_chain(&[&original], &dir),
                    "the repaired dfvfs/image.vhd against libvhdi reading the original",
                );
            }
            // Its parent's checksums are bad as well, but the child itself is repaired.
            "dfvfs/image-differential.vhd" => {
                assert!(report.changed());
                assert!(report.after.is_clean(), "{}", report.after);
            }
            "dfvfs/fat-differential.vhd" => {
                assert!(!report.changed());
                assert!(report
                    .not_repaired
                    .iter()
                    .any(|f| f.kind == FindingKind::ParentNotFound));
                assert!(std::fs::read(&path).unwrap() == bytes);
            }
            _ => {
                assert!(!report.changed(), "{label}: {:#?}", report.actions);
                assert!(report.after.is_clean(), "{label}: {}", report.after);
                assert!(std::fs::read(&path).unwrap() == bytes, "{label} changed");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One flipped bit (issue 13): repair restores what the format's redundancy says, or refuses
// and leaves the file as it was. Images of our own `create`: no oracle needed.

/// A dynamic image of `blocks` 2 MiB blocks, each written (with its own pattern), and the
/// bytes it reads as.
fn written_dynamic(dir: &TempDir, name: &str, blocks: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let size = blocks * BLOCK;
    let mut rng = Rng::new(name);
    let mut disk = create(&path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let mut expected = vec![0u8; size as usize];
    for block in 0..blocks {
        let data = rng.bytes(BLOCK as usize / 2);
        let at = block * BLOCK + 4096;
        disk.write_at(&data, at).unwrap();
        expected[at as usize..at as usize + data.len()].copy_from_slice(&data);
    }
    disk.flush().unwrap();
    drop(disk);
    (path, expected)
}

fn header_u64(path: &Path, at: u64) -> u64 {
    be_u64(&file_bytes(path, 512 + at, 8), 0)
}

/// The repair is refused ([`Error::RepairRefused`], naming the file and what would be
/// lost, telling to keep a copy), and the file is byte for byte as it was.
#[track_caller]
fn assert_refused(path: &Path, words: &[&str]) {
    let bytes = std::fs::read(path).unwrap();
    match repair(path, &CheckOptions::default()) {
        Err(e @ Error::RepairRefused { .. }) => {
            assert_eq!(e.code(), "ERR_VHD_REPAIR_REFUSED");
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("Keep a copy"), "{text}");
            assert!(text.contains("force"), "{text}");
            for word in words {
                assert!(text.contains(word), "{word:?} not in: {text}");
            }
        }
        other => panic!("expected Error::RepairRefused, got {other:?}"),
    }
    assert!(
        std::fs::read(path).unwrap() == bytes,
        "a refused repair wrote"
    );
}

#[track_caller]
fn assert_reads(path: &Path, expected: &[u8]) {
    let image = open_ro(path);
    assert_same_bytes(&read_all(&image), expected, &path.display().to_string());
}

fn forced(path: &Path) -> RepairReport {
    vhd_core::ops::repair_with(
        path,
        &CheckOptions::default(),
        &vhd_core::ops::RepairOptions { force: true },
    )
    .unwrap()
}

#[test]
fn a_flipped_bit_in_the_table_offset_is_restored_not_believed() {
    let dir = TempDir::new("repair-flip-table");
    let (path, expected) = written_dynamic(&dir, "d.vhd", 10);
    let original = std::fs::read(&path).unwrap();
    let table = header_u64(&path, 16);
    // 0x600 → 0x100600: the "BAT" is now inside block 0's data.
    let flipped = table ^ (1 << 20);
    patch_file(&path, 512 + 16, &flipped.to_be_bytes());
    assert_found(&path, FindingKind::HeaderChecksum, Severity::Corrupt);
    let report = run_repair(&path);
    assert!(
        report
            .actions
            .iter()
            .any(|a| a.fixes == FindingKind::HeaderChecksum
                && a.description.contains("table offset")),
        "{:#?}",
        report.actions
    );
    assert!(report.after.is_clean(), "{}", report.after);
    assert!(report.lost.is_empty());
    assert!(std::fs::read(&path).unwrap() == original, "not restored");
    assert_reads(&path, &expected);

    // Two bits: nothing restores it, and the header is not believed: refused.
    let two = dir.join("two.vhd");
    std::fs::write(&two, &original).unwrap();
    patch_file(
        &two,
        512 + 16,
        &(table ^ (1 << 20) ^ (1 << 22)).to_be_bytes(),
    );
    assert_refused(&two, &["dynamic header", "bad checksum"]);
    // Forced, it does what it is told: the user kept a copy.
    let report = forced(&two);
    assert!(report.changed());
}

#[test]
fn a_flipped_bit_in_the_last_blocks_bat_entry_is_restored_not_cut() {
    let dir = TempDir::new("repair-flip-entry");
    let (path, expected) = written_dynamic(&dir, "d.vhd", 4);
    let original = std::fs::read(&path).unwrap();
    let table = header_u64(&path, 16);
    let entries: Vec<u32> = (0..4)
        .map(|i| be_u32(&file_bytes(&path, table + 4 * i, 4), 0))
        .collect();
    let (last, &sector) = entries.iter().enumerate().max_by_key(|(_, s)| **s).unwrap();
    let entry = table + 4 * last as u64;

    // Outside the file.
    let outside = dir.join("outside.vhd");
    std::fs::write(&outside, &original).unwrap();
    patch_file(&outside, entry, &(sector ^ (1 << 24)).to_be_bytes());
    assert_found(&outside, FindingKind::BitmapOutOfRange, Severity::Corrupt);
    let report = run_repair(&outside);
    assert!(report.after.is_clean(), "{}", report.after);
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    assert!(std::fs::read(&outside).unwrap() == original, "not restored");
    assert_reads(&outside, &expected);

    // Into another block: the bit whose flip lands inside block 0's place.
    let into = dir.join("into.vhd");
    std::fs::write(&into, &original).unwrap();
    let inside = (0..32)
        .map(|bit| sector ^ (1 << bit))
        .find(|&s| {
            entries
                .iter()
                .enumerate()
                .any(|(i, &e)| i != last && s > e && s < e + 4097)
        })
        .expect("a bit flip that lands in another block");
    patch_file(&into, entry, &inside.to_be_bytes());
    assert_found(&into, FindingKind::Overlap, Severity::Corrupt);
    let report = run_repair(&into);
    assert!(report.after.is_clean(), "{}", report.after);
    assert!(std::fs::read(&into).unwrap() == original, "not restored");

    // Far outside (not one bit away): dropping the entry and cutting its block needs force.
    let far = dir.join("far.vhd");
    std::fs::write(&far, &original).unwrap();
    patch_file(&far, entry, &0x0100_0000u32.to_be_bytes());
    assert_refused(&far, &["would be set to unallocated", "plausible block"]);
    let report = forced(&far);
    let start = last as u64 * BLOCK;
    assert_eq!(report.lost, vec![start..start + BLOCK]);
    assert!(file_len(&far) < original.len() as u64);

    // Into another block, several bits away: the overlap stays, the real block is not cut.
    let overlap = dir.join("overlap.vhd");
    std::fs::write(&overlap, &original).unwrap();
    let other = entries[(last + 1) % 4];
    patch_file(&overlap, entry, &(other + 8).to_be_bytes());
    assert_refused(&overlap, &["plausible block"]);
}

#[test]
fn a_fixed_images_current_size_that_lost_a_bit_is_restored_not_accepted() {
    let dir = TempDir::new("repair-flip-size");
    let path = dir.join("f.vhd");
    let size = 96 * MIB;
    let mut disk = create(&path, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    let mut rng = Rng::new("a_fixed_images_current_size");
    let tail = rng.bytes(4096);
    disk.write_at(&tail, size - 4096).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let original = std::fs::read(&path).unwrap();
    let footer = size;
    // 96 MiB → 64 MiB: bit 25 of the current size lost.
    patch_file(&path, footer + 48, &(64 * MIB).to_be_bytes());
    assert_found(&path, FindingKind::FooterChecksum, Severity::Corrupt);
    let report = run_repair(&path);
    assert!(report.after.is_clean(), "{}", report.after);
    assert!(std::fs::read(&path).unwrap() == original, "not restored");
    assert_eq!(open_ro(&path).size(), size);

    // 96 → 80 MiB (two bits): the original size and the file's length contradict it; the
    // checksum is not recomputed over it without force.
    std::fs::write(&path, &original).unwrap();
    patch_file(&path, footer + 48, &(80 * MIB).to_be_bytes());
    assert_refused(&path, &["current size", "83886080..100663296"]);
}

#[test]
fn a_flipped_bit_in_the_parent_unique_id_is_not_blessed_with_a_new_checksum() {
    let dir = TempDir::new("repair-flip-parent-id");
    let (parent, _) = written_dynamic(&dir, "parent.vhd", 2);
    let child = dir.join("child.vhd");
    let mut disk = create(&child, &CreateOptions::differencing(&parent)).unwrap();
    disk.write_at(&[7u8; 8192], 4096).unwrap();
    disk.flush().unwrap();
    drop(disk);
    // Bit 0 of the parent unique id in the child's header, its checksum left as it was.
    let id = file_bytes(&child, 512 + 40, 1)[0];
    patch_file(&child, 512 + 40, &[id ^ 1]);
    let before = assert_found(&child, FindingKind::HeaderChecksum, Severity::Corrupt);
    assert!(
        before
            .findings_of(FindingKind::ParentMismatch)
            .next()
            .is_some(),
        "{before}"
    );
    assert_refused(&child, &["parent it describes"]);
}
