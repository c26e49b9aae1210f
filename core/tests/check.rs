//! `vhd_core::check`: our own images check clean; damaged copies of them give each kind of
//! finding with the right severity; leaked space is counted by the documented rule; the
//! check never writes; the corpus images made by other software check clean, except the
//! three the corpus README calls damaged or incomplete.

use std::path::{Path, PathBuf};
use vhd_core::check::MAX_LISTED_PER_KIND;
use vhd_core::{
    check, create, CheckOptions, CheckReport, CreateOptions, DiskType, Error, FindingKind,
    FooterSource, ParentPath, Severity, VirtualDisk,
};
use vhd_testkit::*;

const KIB: u64 = 1024;
const BLOCK: u64 = 512 * KIB;
const SIZE: u64 = 4 * 1024 * KIB;
/// Layout of the dynamic images made by `dynamic_image`: footer copy, header, one sector
/// of BAT (8 entries), then blocks of a 512-byte bitmap and 512 KiB of data.
const HEADER: u64 = 512;
const BAT: u64 = 1536;
const FIRST_BLOCK: u64 = 2048;
const UNIT: u64 = 512 + BLOCK;

fn run(path: &Path) -> CheckReport {
    check(path, &CheckOptions::default())
        .unwrap_or_else(|e| panic!("check {} failed: {e}", path.display()))
}

/// The finding of `kind`, which must be there with `severity`.
#[track_caller]
fn finding(report: &CheckReport, kind: FindingKind, severity: Severity) -> String {
    let found: Vec<_> = report.findings_of(kind).collect();
    assert!(
        !found.is_empty(),
        "no {} finding in:\n{report}",
        kind.code()
    );
    assert!(
        found.iter().any(|f| f.severity == severity),
        "{} findings are {:?}, expected {severity:?}:\n{report}",
        kind.code(),
        found.iter().map(|f| f.severity).collect::<Vec<_>>()
    );
    found[0].message.clone()
}

#[track_caller]
fn assert_no(report: &CheckReport, kind: FindingKind) {
    assert!(
        report.findings_of(kind).next().is_none(),
        "unexpected {} finding:\n{report}",
        kind.code()
    );
}

#[track_caller]
fn assert_report_clean(report: &CheckReport) {
    assert!(report.is_clean(), "not clean:\n{report}");
    assert!(!report.has_corruption() && !report.has_leaks());
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.leaked_blocks(), 0);
}

/// The only damage is the link to the parent (issue 15): its own exit code, 4, not 2.
#[track_caller]
fn assert_parent_link_broken(report: &CheckReport) {
    assert!(report.has_corruption(), "not corrupt:\n{report}");
    assert!(report.parent_link_broken(), "{report}");
    assert_eq!(report.damage(), 0, "{report}");
    assert_eq!(
        report.exit_code(),
        vhd_core::ops::check::PARENT_LINK_EXIT_CODE
    );
    assert_eq!(report.exit_code(), 4);
}

#[track_caller]
fn assert_corrupt(report: &CheckReport) {
    assert!(report.has_corruption(), "not corrupt:\n{report}");
    assert!(!report.is_clean());
    assert_eq!(report.exit_code(), 2);
}

/// A 4 MiB dynamic image with 512 KiB blocks; `blocks` are written (in that order, so that
/// they lie in the file in that order) with random data and flushed.
fn dynamic_image(dir: &TempDir, name: &str, blocks: &[u64], rng: &mut Rng) -> PathBuf {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, SIZE);
    options.block_size = BLOCK as u32;
    // An old footer time stamp: the parent time stamp a child records is the parent's
    // modification time, which must not happen to equal it (see `parent_problems`).
    options.timestamp = Some(12345);
    let mut disk = create(&path, &options).unwrap();
    for &block in blocks {
        disk.write_at(&rng.bytes(BLOCK as usize), block * BLOCK)
            .unwrap();
    }
    disk.flush().unwrap();
    drop(disk);
    assert_eq!(
        file_len(&path),
        FIRST_BLOCK + blocks.len() as u64 * UNIT + 512
    );
    path
}

/// A differencing image over a dynamic parent (both in `dir`), with one block written.
fn differencing_image(dir: &TempDir, rng: &mut Rng) -> (PathBuf, PathBuf) {
    let parent = dynamic_image(dir, "parent.vhd", &[0, 2], rng);
    let child = dir.join("child.vhd");
    let mut disk = create(&child, &CreateOptions::differencing(&parent)).unwrap();
    disk.write_at(&rng.bytes(4096), BLOCK + 1000).unwrap();
    disk.flush().unwrap();
    (parent, child)
}

fn footer_offset(path: &Path) -> u64 {
    file_len(path) - 512
}

/// Replaces the file's trailing footer by `middle` followed by the footer: space that no
/// BAT entry refers to, as a crash between the footer move and the BAT write leaves it.
fn insert_before_footer(path: &Path, middle: &[u8]) {
    let end = footer_offset(path);
    let footer = file_bytes(path, end, 512);
    patch_file(path, end, middle);
    patch_file(path, end + middle.len() as u64, &footer);
}

fn set_bat_entry(path: &Path, index: u64, sector: u32) {
    patch_file(path, BAT + 4 * index, &sector.to_be_bytes());
}

/// Patches the dynamic header at `HEADER` and stores its right checksum.
fn patch_header(path: &Path, at: u64, bytes: &[u8]) {
    patch_file(path, HEADER + at, bytes);
    let mut header = file_bytes(path, HEADER, 1024);
    fix_header_checksum(&mut header);
    patch_file(path, HEADER, &header);
}

/// Patches both footers (the copy and the one at the end) and stores their checksums.
fn patch_footers(path: &Path, at: usize, bytes: &[u8]) {
    for offset in [0, footer_offset(path)] {
        let mut footer = file_bytes(path, offset, 512);
        footer[at..at + bytes.len()].copy_from_slice(bytes);
        fix_footer_checksum(&mut footer);
        patch_file(path, offset, &footer);
    }
}

// ---------------------------------------------------------------------------------------------
// Clean images

#[test]
fn new_and_written_images_check_clean() {
    let dir = TempDir::new("check-clean");
    let mut rng = Rng::new("new_and_written_images_check_clean");

    let fixed = dir.join("fixed.vhd");
    let mut disk = create(&fixed, &CreateOptions::new(DiskType::Fixed, SIZE)).unwrap();
    disk.write_at(&rng.bytes(5000), 123).unwrap();
    drop(disk);
    let report = run(&fixed);
    assert_report_clean(&report);
    assert_eq!(report.disk_type(), Some(DiskType::Fixed));
    assert_eq!(report.footer_source(), Some(FooterSource::End));
    assert_eq!(report.table_entries(), 0);
    assert_eq!(report.virtual_size(), Some(SIZE));

    let empty = dynamic_image(&dir, "empty.vhd", &[], &mut rng);
    let report = run(&empty);
    assert_report_clean(&report);
    assert_eq!(report.allocated_blocks(), 0);
    assert_eq!(report.table_entries(), SIZE / BLOCK);
    assert_eq!(report.block_size(), Some(BLOCK as u32));

    let written = dynamic_image(&dir, "written.vhd", &[5, 0, 7], &mut rng);
    let report = run(&written);
    assert_report_clean(&report);
    assert_eq!(report.allocated_blocks(), 3);
    assert_eq!(report.disk_type(), Some(DiskType::Dynamic));
    assert!(
        report.to_string().contains("No errors were found"),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .contains("3/8 blocks allocated, 0 leaked"),
        "{report}"
    );

    // 4 MiB is not a CHS size: the rule for images made to an exact size, not a finding
    // (issue 15: a fresh image checks with no findings at all; `info` shows the geometry).
    assert!(report.findings().is_empty(), "{report}");

    let (parent, child) = differencing_image(&dir, &mut rng);
    let report = run(&child);
    assert_report_clean(&report);
    assert_eq!(report.disk_type(), Some(DiskType::Differencing));
    assert_eq!(report.allocated_blocks(), 1);
    assert_eq!(
        report.parent().map(|p| p.canonicalize().unwrap()),
        Some(parent.canonicalize().unwrap())
    );
}

#[test]
fn the_check_never_writes() {
    let dir = TempDir::new("check-read-only");
    let mut rng = Rng::new("the_check_never_writes");
    let path = dynamic_image(&dir, "leaky.vhd", &[1, 2], &mut rng);
    insert_before_footer(&path, &vec![0x5A; UNIT as usize]);
    // Drop the footer too: an image that only opens from its copy.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 512]).unwrap();
    let before = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Read-only permissions: a check that tried to open for writing would fail.
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&path, permissions).unwrap();
    let report = run(&path);
    assert_eq!(report.exit_code(), 3, "{report}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
}

// ---------------------------------------------------------------------------------------------
// Footers

#[test]
fn too_short_and_garbage_files_are_corrupt() {
    let dir = TempDir::new("check-garbage");
    let mut rng = Rng::new("too_short_and_garbage_files_are_corrupt");
    let tiny = dir.join("tiny.vhd");
    std::fs::write(&tiny, rng.bytes(100)).unwrap();
    let report = run(&tiny);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::Truncated, Severity::Corrupt),
        &["100 bytes"],
    );
    assert_eq!(report.disk_type(), None);

    let garbage = dir.join("garbage.vhd");
    std::fs::write(&garbage, rng.bytes(8192)).unwrap();
    let report = run(&garbage);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::FooterMissing, Severity::Corrupt),
        &["8192-byte file", "no copy at offset 0"],
    );
    assert_eq!(report.findings().len(), 1, "{report}");
}

#[test]
fn a_bad_footer_checksum_is_corrupt_and_the_copy_is_used() {
    let dir = TempDir::new("check-footer-checksum");
    let mut rng = Rng::new("a_bad_footer_checksum_is_corrupt_and_the_copy_is_used");
    let path = dynamic_image(&dir, "d.vhd", &[3], &mut rng);
    let end = footer_offset(&path);
    patch_file(&path, end + 300, &[0x77]);
    let report = run(&path);
    assert_corrupt(&report);
    let message = finding(&report, FindingKind::FooterChecksum, Severity::Corrupt);
    assert_mentions(&message, &[&format!("footer at {end}")]);
    assert_eq!(report.footer_source(), Some(FooterSource::Copy));
    assert_eq!(report.allocated_blocks(), 1);
    // The rest of the image was still checked and is fine.
    assert_no(&report, FindingKind::Overlap);
    assert_no(&report, FindingKind::OpenFailed);
    assert_no(&report, FindingKind::FooterCopyMismatch);

    // A fixed image has no copy: the damaged footer is all there is.
    let fixed = dir.join("fixed.vhd");
    create(&fixed, &CreateOptions::new(DiskType::Fixed, SIZE)).unwrap();
    patch_file(&fixed, SIZE + 300, &[0x77]);
    let report = run(&fixed);
    assert_corrupt(&report);
    finding(&report, FindingKind::FooterChecksum, Severity::Corrupt);
    assert_eq!(report.footer_source(), Some(FooterSource::End));
}

#[test]
fn footer_copy_problems() {
    let dir = TempDir::new("check-footer-copy");
    let mut rng = Rng::new("footer_copy_problems");
    let base = dynamic_image(&dir, "base.vhd", &[0], &mut rng);
    let variant = |name: &str| {
        let path = dir.join(name);
        std::fs::copy(&base, &path).unwrap();
        path
    };

    let missing = variant("missing.vhd");
    patch_file(&missing, 0, &[0u8; 512]);
    let report = run(&missing);
    assert_corrupt(&report);
    finding(&report, FindingKind::FooterCopyMissing, Severity::Corrupt);
    assert_eq!(report.footer_source(), Some(FooterSource::End));

    let checksum = variant("checksum.vhd");
    patch_file(&checksum, 200, &[1]);
    let report = run(&checksum);
    assert_corrupt(&report);
    finding(&report, FindingKind::FooterCopyChecksum, Severity::Corrupt);

    // A copy that differs only in its time stamp: worth knowing, not damage.
    let stamp = variant("stamp.vhd");
    let mut copy = file_bytes(&stamp, 0, 512);
    copy[24..28].copy_from_slice(&54321u32.to_be_bytes());
    fix_footer_checksum(&mut copy);
    patch_file(&stamp, 0, &copy);
    let report = run(&stamp);
    assert!(report.is_clean(), "{report}");
    assert_mentions(
        &finding(&report, FindingKind::FooterCopyMismatch, Severity::Info),
        &["time stamp"],
    );

    // A copy that describes another disk (unique id, size) is damage.
    let other = variant("other.vhd");
    let mut copy = file_bytes(&other, 0, 512);
    copy[68] ^= 0xFF;
    copy[24..28].copy_from_slice(&54321u32.to_be_bytes());
    fix_footer_checksum(&mut copy);
    patch_file(&other, 0, &copy);
    let report = run(&other);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::FooterCopyMismatch, Severity::Corrupt),
        &["unique id", "time stamp"],
    );
}

#[test]
fn footer_fields() {
    let dir = TempDir::new("check-footer-fields");
    let mut rng = Rng::new("footer_fields");
    let base = dynamic_image(&dir, "base.vhd", &[0], &mut rng);
    let variant = |name: &str| {
        let path = dir.join(name);
        std::fs::copy(&base, &path).unwrap();
        path
    };

    let kind = variant("type.vhd");
    patch_footers(&kind, 60, &9u32.to_be_bytes());
    let report = run(&kind);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::FooterField, Severity::Corrupt),
        &["disk type is 9"],
    );
    assert_eq!(report.disk_type(), None);

    let data_offset = variant("data-offset.vhd");
    patch_footers(&data_offset, 16, &100u64.to_be_bytes());
    let report = run(&data_offset);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::FooterField, Severity::Corrupt),
        &["data offset 100"],
    );

    // The header lies past the end of the file.
    let past_end = variant("past-end.vhd");
    patch_footers(&past_end, 16, &(file_len(&base) - 600).to_be_bytes());
    let report = run(&past_end);
    assert_corrupt(&report);
    finding(&report, FindingKind::Truncated, Severity::Corrupt);

    // Format version 1.1 and no reserved feature bit: information only.
    let version = variant("version.vhd");
    patch_footers(&version, 8, &0u32.to_be_bytes());
    patch_footers(&version, 12, &0x0001_0001u32.to_be_bytes());
    let report = run(&version);
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report
            .findings_of(FindingKind::FooterField)
            .filter(|f| f.severity == Severity::Info)
            .count(),
        2,
        "{report}"
    );
}

#[test]
fn a_fixed_image_shorter_than_its_size_is_truncated() {
    let dir = TempDir::new("check-fixed");
    let path = dir.join("fixed.vhd");
    create(&path, &CreateOptions::new(DiskType::Fixed, SIZE)).unwrap();
    let mut footer = file_bytes(&path, SIZE, 512);
    footer[48..56].copy_from_slice(&(SIZE + 4096).to_be_bytes());
    fix_footer_checksum(&mut footer);
    patch_file(&path, SIZE, &footer);
    let report = run(&path);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::Truncated, Severity::Corrupt),
        &[&format!("the footer is at {SIZE}")],
    );

    // Larger than the size: the rest is unused, which is harmless.
    footer[48..56].copy_from_slice(&(SIZE - 4096).to_be_bytes());
    fix_footer_checksum(&mut footer);
    patch_file(&path, SIZE, &footer);
    let report = run(&path);
    assert!(report.is_clean(), "{report}");
    finding(&report, FindingKind::UnusedSpace, Severity::Info);
}

// ---------------------------------------------------------------------------------------------
// Dynamic header and BAT

#[test]
fn header_problems() {
    let dir = TempDir::new("check-header");
    let mut rng = Rng::new("header_problems");
    let base = dynamic_image(&dir, "base.vhd", &[0, 1], &mut rng);
    let variant = |name: &str| {
        let path = dir.join(name);
        std::fs::copy(&base, &path).unwrap();
        path
    };

    let cookie = variant("cookie.vhd");
    patch_file(&cookie, HEADER, b"cxspXXXX");
    let report = run(&cookie);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::HeaderCookie, Severity::Corrupt),
        &["offset 512", "cxspXXXX"],
    );

    let checksum = variant("checksum.vhd");
    patch_file(&checksum, HEADER + 900, &[9]);
    let report = run(&checksum);
    assert_corrupt(&report);
    finding(&report, FindingKind::HeaderChecksum, Severity::Corrupt);
    // Everything else was checked anyway (and the image opens, ignoring checksums).
    assert_eq!(report.allocated_blocks(), 2);
    assert_no(&report, FindingKind::OpenFailed);

    let block_size = variant("block-size.vhd");
    patch_header(&block_size, 32, &3000u32.to_be_bytes());
    let report = run(&block_size);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::HeaderField, Severity::Corrupt),
        &["block size 3000"],
    );

    let entries = variant("entries.vhd");
    patch_header(&entries, 28, &5u32.to_be_bytes());
    let report = run(&entries);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::HeaderField, Severity::Corrupt),
        &["max table entries is 5", "8 blocks"],
    );

    // A BAT that runs past the end of the file.
    let huge = variant("huge-bat.vhd");
    patch_header(&huge, 28, &0x0100_0000u32.to_be_bytes());
    let report = run(&huge);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::Truncated, Severity::Corrupt),
        &["16777216-entry BAT"],
    );

    // A BAT in the footer copy.
    let table = variant("table.vhd");
    patch_header(&table, 16, &0u64.to_be_bytes());
    let report = run(&table);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::HeaderField, Severity::Corrupt),
        &["table offset 0"],
    );
}

#[test]
fn bat_entries_out_of_range() {
    let dir = TempDir::new("check-bat-range");
    let mut rng = Rng::new("bat_entries_out_of_range");
    let base = dynamic_image(&dir, "base.vhd", &[0, 1], &mut rng);
    let end = footer_offset(&base);

    // The bitmap fits in front of the footer, the data does not.
    let data = dir.join("data.vhd");
    std::fs::copy(&base, &data).unwrap();
    set_bat_entry(&data, 4, (end / 512 - 1) as u32);
    let report = run(&data);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::BatOutOfRange, Severity::Corrupt),
        &["BAT entry 4", &format!("footer at {end}")],
    );
    assert_eq!(report.allocated_blocks(), 3);

    // Far outside the file.
    let far = dir.join("far.vhd");
    std::fs::copy(&base, &far).unwrap();
    set_bat_entry(&far, 6, 0x00F0_0000);
    let report = run(&far);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::BitmapOutOfRange, Severity::Corrupt),
        &["BAT entry 6", "sector 15728640"],
    );
}

#[test]
fn overlapping_blocks_and_structures() {
    let dir = TempDir::new("check-overlap");
    let mut rng = Rng::new("overlapping_blocks_and_structures");
    let base = dynamic_image(&dir, "base.vhd", &[0, 1], &mut rng);

    let twice = dir.join("twice.vhd");
    std::fs::copy(&base, &twice).unwrap();
    set_bat_entry(&twice, 5, (FIRST_BLOCK / 512) as u32);
    let report = run(&twice);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::Overlap, Severity::Corrupt),
        &["block 5", "block 0"],
    );

    // A block over the dynamic header and the BAT.
    let header = dir.join("header.vhd");
    std::fs::copy(&base, &header).unwrap();
    set_bat_entry(&header, 7, 1);
    let report = run(&header);
    assert_corrupt(&report);
    let messages: Vec<_> = report
        .findings_of(FindingKind::Overlap)
        .map(|f| f.message.clone())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("dynamic header")),
        "{report}"
    );

    // Half a block further: overlaps the next one.
    let shifted = dir.join("shifted.vhd");
    std::fs::copy(&base, &shifted).unwrap();
    set_bat_entry(&shifted, 0, ((FIRST_BLOCK + UNIT / 2) / 512) as u32);
    let report = run(&shifted);
    assert_corrupt(&report);
    finding(&report, FindingKind::Overlap, Severity::Corrupt);
}

#[test]
fn many_findings_of_one_kind_are_summed_up() {
    let dir = TempDir::new("check-many");
    let path = dir.join("small-blocks.vhd");
    // 2048 blocks of 4 KiB: a BAT of 16 sectors.
    let mut options = CreateOptions::new(DiskType::Dynamic, 8 * 1024 * KIB);
    options.block_size = 4096;
    let mut disk = create(&path, &options).unwrap();
    disk.write_at(&[1u8; 4096], 0).unwrap();
    disk.flush().unwrap();
    drop(disk);
    // Entries 1..1500 point at block 0 too: 1499 overlaps.
    let sector = be_u32(&file_bytes(&path, BAT, 4), 0);
    let entries: Vec<u8> = (1..1500).flat_map(|_| sector.to_be_bytes()).collect();
    patch_file(&path, BAT + 4, &entries);
    let report = run(&path);
    assert_corrupt(&report);
    assert_eq!(report.count_of(FindingKind::Overlap), 1499);
    assert_eq!(report.count(Severity::Corrupt), 1499);
    let overlaps: Vec<_> = report.findings_of(FindingKind::Overlap).collect();
    assert_eq!(overlaps.len(), MAX_LISTED_PER_KIND + 1, "{report}");
    // The first ones, in file order then BAT order: blocks 1, 2, … over block 0.
    for (n, finding) in overlaps[..MAX_LISTED_PER_KIND].iter().enumerate() {
        assert!(finding.omitted.is_none());
        assert!(
            finding.message.starts_with(&format!("block {} ", n + 1))
                && finding.message.contains("overlaps block 0 "),
            "{}",
            finding.message
        );
    }
    // Then one summary of the others, last in the report.
    let summary = overlaps[MAX_LISTED_PER_KIND];
    assert_eq!(summary.omitted, Some(499));
    assert_eq!(summary.severity, Severity::Corrupt);
    assert_eq!(summary.offset, None);
    assert_mentions(&summary.message, &["499 more overlap findings"]);
    assert_eq!(report.findings().last(), Some(summary));
    assert_eq!(report.allocated_blocks(), 1500);
}

#[test]
fn a_block_past_the_end_of_the_disk_is_information() {
    let dir = TempDir::new("check-past-end");
    let mut rng = Rng::new("a_block_past_the_end_of_the_disk_is_information");
    let path = dynamic_image(&dir, "d.vhd", &[0], &mut rng);
    // One more BAT entry (the BAT sector's padding), pointing at a new block.
    let end = footer_offset(&path);
    insert_before_footer(&path, &rng.bytes(UNIT as usize));
    patch_header(&path, 28, &9u32.to_be_bytes());
    set_bat_entry(&path, 8, (end / 512) as u32);
    let report = run(&path);
    assert_report_clean(&report);
    assert_mentions(
        &finding(&report, FindingKind::BatPastDiskEnd, Severity::Info),
        &["BAT entry 8"],
    );
    assert_mentions(
        &finding(&report, FindingKind::HeaderField, Severity::Info),
        &["max table entries is 9"],
    );
    assert_eq!(report.allocated_blocks(), 2);
}

// ---------------------------------------------------------------------------------------------
// Leaks

#[test]
fn unreferenced_blocks_are_leaks() {
    let dir = TempDir::new("check-leaks");
    let mut rng = Rng::new("unreferenced_blocks_are_leaks");
    let base = dynamic_image(&dir, "base.vhd", &[2, 3], &mut rng);
    let variant = |name: &str| {
        let path = dir.join(name);
        std::fs::copy(&base, &path).unwrap();
        path
    };

    let one = variant("one.vhd");
    let leak_at = footer_offset(&one);
    insert_before_footer(&one, &rng.bytes(UNIT as usize));
    let report = run(&one);
    assert!(!report.has_corruption(), "{report}");
    assert!(report.has_leaks() && !report.is_clean());
    assert_eq!(report.exit_code(), 3);
    assert_eq!(report.leaked_blocks(), 1);
    assert_mentions(
        &finding(&report, FindingKind::LeakedBlock, Severity::Leak),
        &[&format!("bytes {leak_at}..{}", leak_at + UNIT)],
    );
    assert!(report.to_string().contains("1 leaked blocks"), "{report}");
    // A leaky image still opens and reads.
    open_rw(&one);

    // Two and a half units: two leaked blocks (the rest is counted with them).
    let two = variant("two.vhd");
    insert_before_footer(&two, &vec![0u8; (2 * UNIT + 4096) as usize]);
    let report = run(&two);
    assert_eq!(report.exit_code(), 3, "{report}");
    assert_eq!(report.leaked_blocks(), 2);

    // Less than a block: padding, as Windows leaves before the footer.
    let padded = variant("padded.vhd");
    insert_before_footer(&padded, &[0u8; 3584]);
    let report = run(&padded);
    assert_report_clean(&report);
    assert_mentions(
        &finding(&report, FindingKind::UnusedSpace, Severity::Info),
        &["3584 bytes"],
    );

    // A leak in the middle: the writer goes on after it.
    let middle = variant("middle.vhd");
    insert_before_footer(&middle, &rng.bytes(UNIT as usize));
    let mut disk = open_rw(&middle);
    disk.write_at(&rng.bytes(1000), 6 * BLOCK + 7).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let report = run(&middle);
    assert_eq!(report.exit_code(), 3, "{report}");
    assert_eq!(report.leaked_blocks(), 1);
    assert_eq!(report.allocated_blocks(), 3);
}

#[test]
fn a_file_cut_in_an_unreferenced_block_lost_only_its_footer() {
    let dir = TempDir::new("check-lost-footer");
    let mut rng = Rng::new("a_file_cut_in_an_unreferenced_block_lost_only_its_footer");
    let path = dynamic_image(&dir, "d.vhd", &[1, 4], &mut rng);
    let end = footer_offset(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // The crash left the old footer, a bitmap and some data of a new block, but not the
    // footer that was moved past it.
    bytes.truncate(end as usize);
    bytes.extend_from_slice(&[0u8; 512]);
    bytes.extend_from_slice(&rng.bytes(70_000));
    std::fs::write(&path, &bytes).unwrap();
    let report = run(&path);
    assert!(!report.has_corruption(), "{report}");
    assert_eq!(report.exit_code(), 3);
    assert_eq!(report.footer_source(), Some(FooterSource::Copy));
    assert_eq!(report.leaked_blocks(), 1);
    assert_mentions(
        &finding(&report, FindingKind::FooterMissing, Severity::Leak),
        &[&format!("footer belongs at {end}")],
    );
    let image = open_rw(&path);
    assert_eq!(image.footer_source(), FooterSource::Copy);
    assert!(image.read_only_reason().is_some());

    // Without the footer, the file ending in a referenced block: truncated, not a crash.
    let cut = dir.join("cut.vhd");
    std::fs::write(&cut, &bytes[..end as usize]).unwrap();
    let report = run(&cut);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::FooterMissing, Severity::Corrupt),
        &["truncated"],
    );
}

// ---------------------------------------------------------------------------------------------
// Differencing images

#[test]
fn parent_locator_data_outside_the_file() {
    let dir = TempDir::new("check-locator");
    let mut rng = Rng::new("parent_locator_data_outside_the_file");
    let (_, child) = differencing_image(&dir, &mut rng);
    // Locator 0's data offset (entry at 576 of the header, offset field at +16).
    patch_header(&child, 576 + 16, &(1u64 << 40).to_be_bytes());
    let report = run(&child);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::LocatorOutOfRange, Severity::Corrupt),
        &["parent locator 0", "1099511627776"],
    );
    // The other locators still lead to the parent.
    assert!(report.parent().is_some(), "{report}");
}

#[test]
fn parent_problems() {
    let dir = TempDir::new("check-parent");
    let mut rng = Rng::new("parent_problems");
    let (parent, child) = differencing_image(&dir, &mut rng);
    let saved = dir.join("saved.vhd");
    std::fs::copy(&parent, &saved).unwrap();
    // The parent's own time (the child records it), not the copy's: a copy made in the next
    // second would otherwise make the restored parent "modified".
    let modified = std::fs::metadata(&parent).unwrap().modified().unwrap();
    let restore = || {
        let _ = std::fs::remove_file(&parent);
        std::fs::copy(&saved, &parent).unwrap();
        let file = std::fs::File::options().write(true).open(&parent).unwrap();
        file.set_modified(modified).unwrap();
    };
    restore();
    assert_report_clean(&run(&child));

    // Not found.
    std::fs::remove_file(&parent).unwrap();
    let report = run(&child);
    assert_parent_link_broken(&report);
    assert_mentions(
        &finding(&report, FindingKind::ParentNotFound, Severity::Corrupt),
        &["parent.vhd"],
    );
    // Named by the caller, it is found.
    let options = CheckOptions {
        parents: vec![ParentPath::Vhd(saved.clone())],
        ignore_parent_timestamp: true,
        ..CheckOptions::default()
    };
    let report = check(&child, &options).unwrap();
    assert_report_clean(&report);
    assert_eq!(report.parent(), Some(saved.as_path()));
    // Not looked for.
    let options = CheckOptions {
        skip_parent: true,
        ..CheckOptions::default()
    };
    assert_report_clean(&check(&child, &options).unwrap());

    // Another image where the parent should be.
    let other = dynamic_image(&dir, "other.vhd", &[0], &mut rng);
    std::fs::rename(&other, &parent).unwrap();
    let report = run(&child);
    assert_parent_link_broken(&report);
    finding(&report, FindingKind::ParentMismatch, Severity::Corrupt);

    // The parent was changed after the child was made.
    restore();
    let file = std::fs::File::options().write(true).open(&parent).unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000),
    )
    .unwrap();
    drop(file);
    let report = run(&child);
    assert_parent_link_broken(&report);
    finding(&report, FindingKind::ParentModified, Severity::Corrupt);
    let options = CheckOptions {
        ignore_parent_timestamp: true,
        ..CheckOptions::default()
    };
    assert_report_clean(&check(&child, &options).unwrap());

    // The parent is damaged.
    restore();
    patch_file(&parent, HEADER, b"XXXXXXXX");
    // Damaged, not modified: the time stamp is still the one the child records (the time
    // stamp is checked first, before the parent is parsed).
    let file = std::fs::File::options().write(true).open(&parent).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    let report = run(&child);
    assert_parent_link_broken(&report);
    finding(&report, FindingKind::ParentUnusable, Severity::Corrupt);

    // The child is damaged so that it does not open: the parent link is not checked.
    restore();
    let damaged = dir.join("damaged-child.vhd");
    std::fs::copy(&child, &damaged).unwrap();
    set_bat_entry(&damaged, 3, 0x00F0_0000);
    let report = run(&damaged);
    assert_corrupt(&report);
    finding(&report, FindingKind::BitmapOutOfRange, Severity::Corrupt);
    finding(&report, FindingKind::ParentNotChecked, Severity::Info);
}

#[test]
fn an_image_open_for_writing_is_not_checked_unless_asked() {
    let dir = TempDir::new("check-locked");
    let mut rng = Rng::new("an_image_open_for_writing_is_not_checked_unless_asked");
    let path = dynamic_image(&dir, "d.vhd", &[0], &mut rng);
    let writer = open_rw(&path);
    match check(&path, &CheckOptions::default()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    let unlocked = CheckOptions {
        lock: false,
        ..CheckOptions::default()
    };
    assert_report_clean(&check(&path, &unlocked).unwrap());
    drop(writer);
    assert_report_clean(&run(&path));
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// Images of the corpus, as stored (compressed ones end in `.gz` / `.bz2`).
fn corpus_images(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(dir).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".gz").trim_end_matches(".bz2");
            if stem.ends_with(".vhd") || stem.ends_with(".vhdf") {
                let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
                found.push(format!("{folder_name}/{name}"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn corpus_images_check_as_the_readme_says() {
    let Some(dir) = corpus_dir() else { return };
    let images = corpus_images(&dir);
    assert!(
        images.len() >= 21,
        "only {} corpus images: {images:?}",
        images.len()
    );
    for file in &images {
        let tmp = TempDir::new("check-corpus");
        let path = if file.ends_with(".gz") || file.ends_with(".bz2") {
            match decompress(&dir.join(file), tmp.path()) {
                Some(path) => path,
                None => return,
            }
        } else {
            dir.join(file)
        };
        let report = run(&path);
        println!("{file}:\n{report}");
        match file.as_str() {
            "dfvfs/image.vhd" => {
                assert_corrupt(&report);
                // The footer and its copy (the same bytes) both have a bad checksum.
                finding(&report, FindingKind::FooterChecksum, Severity::Corrupt);
                finding(&report, FindingKind::FooterCopyChecksum, Severity::Corrupt);
                assert_no(&report, FindingKind::HeaderChecksum);
            }
            "dfvfs/image-differential.vhd" => {
                assert_corrupt(&report);
                finding(&report, FindingKind::FooterChecksum, Severity::Corrupt);
                finding(&report, FindingKind::HeaderChecksum, Severity::Corrupt);
                // The parent is found by the header's name alone.
                assert_eq!(
                    report.parent().and_then(|p| p.file_name()),
                    Some(std::ffi::OsStr::new("image.vhd")),
                    "{report}"
                );
            }
            "dfvfs/fat-differential.vhd" => {
                assert_parent_link_broken(&report);
                assert_mentions(
                    &finding(&report, FindingKind::ParentNotFound, Severity::Corrupt),
                    &["fat-parent.vhd"],
                );
                let structural: Vec<_> = report
                    .findings()
                    .iter()
                    .filter(|f| f.severity == Severity::Corrupt)
                    .filter(|f| f.kind != FindingKind::ParentNotFound)
                    .collect();
                assert!(structural.is_empty(), "{report}");
            }
            _ => {
                assert_report_clean(&report);
                assert_no(&report, FindingKind::OpenFailed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sector bitmaps

/// A BAT entry that reached the disk before its block's bitmap: the bitmap still holds the
/// footer that stood there. Damage in a differencing image (its bitmaps decide what comes
/// from the parent), information in a dynamic image (which reads the data as it is).
#[test]
fn a_bitmap_that_holds_a_footer() {
    let dir = TempDir::new("check-bitmap");
    let mut rng = Rng::new("a_bitmap_that_holds_a_footer");
    let path = dynamic_image(&dir, "d.vhd", &[0, 3], &mut rng);
    let footer = file_bytes(&path, footer_offset(&path), 512);
    patch_file(&path, FIRST_BLOCK + UNIT, &footer);
    let report = run(&path);
    assert_report_clean(&report);
    assert_mentions(
        &finding(&report, FindingKind::BitmapHoldsFooter, Severity::Info),
        &["block 3", &format!("at {}", FIRST_BLOCK + UNIT)],
    );

    let (_, child) = differencing_image(&dir, &mut rng);
    let sector = be_u32(&file_bytes(&child, BAT + 4, 4), 0);
    let footer = file_bytes(&child, footer_offset(&child), 512);
    patch_file(&child, u64::from(sector) * 512, &footer);
    let report = run(&child);
    assert_corrupt(&report);
    assert_mentions(
        &finding(&report, FindingKind::BitmapHoldsFooter, Severity::Corrupt),
        &["block 1"],
    );
}

/// The check reads the cookies of bitmaps that lie close together at once (64 KiB at a
/// time): each block is still judged by its own bitmap, at the edges of those reads too,
/// and blocks that share a bitmap are each reported.
#[test]
fn bitmaps_read_together_are_each_judged() {
    let dir = TempDir::new("check-bitmaps-together");
    // 300 blocks of 4 KiB (4.5 KiB each with the bitmap: about 14 to a read), written in
    // disk order so that block i is the i-th in the file.
    let path = dir.join("small-blocks.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, 300 * 4 * KIB);
    options.block_size = 4096;
    let mut disk = create(&path, &options).unwrap();
    for block in 0..300u64 {
        disk.write_at(&[1u8; 512], block * 4096).unwrap();
    }
    disk.flush().unwrap();
    drop(disk);
    let footer = file_bytes(&path, footer_offset(&path), 512);
    let bat = file_bytes(&path, BAT, 300 * 4);
    let bitmap_of = |block: usize| u64::from(be_u32(&bat, 4 * block)) * 512;
    let with_footer = [0usize, 13, 14, 15, 28, 29, 150, 298, 299];
    for &block in &with_footer {
        patch_file(&path, bitmap_of(block), &footer);
    }
    // Block 7's entry points at block 14's bitmap too (an overlap, and one more finding).
    set_bat_entry(&path, 7, be_u32(&bat, 4 * 14));
    let report = run(&path);
    let mut expected: Vec<String> = with_footer
        .iter()
        .map(|&block| format!("block {block} (at {})", bitmap_of(block)))
        .collect();
    // File order, then BAT order: block 7 before block 14.
    expected.insert(2, format!("block 7 (at {})", bitmap_of(14)));
    let found: Vec<String> = report
        .findings_of(FindingKind::BitmapHoldsFooter)
        .map(|f| {
            assert_eq!(f.severity, Severity::Info, "a dynamic image");
            let what = f.message.split(") holds").next().unwrap();
            format!("{})", what.trim_start_matches("the sector bitmap of "))
        })
        .collect();
    assert_eq!(found, expected, "{report}");
}
