//! The bytes each allocated block may be written in: its sector bitmap and its data up to
//! the end of the disk in whole sectors (a differencing image widens a partial-sector write
//! to the whole sector). An image whose block's extent runs into the footer or into a
//! parent locator's data is refused at open, and so never written over; a block allocated
//! by a write is appended where the footer was, which moves behind it.

use std::path::{Path, PathBuf};
use vhd_core::{
    check, create, CheckOptions, CreateOptions, DiskType, Error, FindingKind, FooterSource, Image,
    OpenOptions, VirtualDisk,
};
use vhd_testkit::*;

/// Block size of the images here: the smallest `create` makes.
const BLOCK: u64 = 4096;
/// The virtual size the children are given: it ends inside block 0 and inside its second
/// sector, as in the report (a 1-byte write at 999 is widened to bytes 512..1024).
const SIZE: u64 = 1000;

/// A dynamic base of 8 KiB of random data, in 4 KiB blocks; returns its path and contents.
fn base(dir: &TempDir, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let path = dir.join("base.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, 2 * BLOCK);
    options.block_size = BLOCK as u32;
    let mut disk = create(&path, &options).unwrap();
    let model = rng.bytes(2 * BLOCK as usize);
    disk.write_at(&model, 0).unwrap();
    disk.flush().unwrap();
    (path, model)
}

/// Sets the virtual size in both footers of a sparse image (checksums fixed).
fn set_virtual_size(path: &Path, size: u64) {
    let end = file_len(path) - 512;
    for at in [0, end] {
        let mut footer = file_bytes(path, at, 512);
        footer[40..48].copy_from_slice(&size.to_be_bytes());
        footer[48..56].copy_from_slice(&size.to_be_bytes());
        fix_footer_checksum(&mut footer);
        patch_file(path, at, &footer);
    }
}

/// An empty differencing child of `base` whose virtual size is `SIZE`.
fn small_child(dir: &TempDir, name: &str, base: &Path) -> PathBuf {
    let path = dir.join(name);
    drop(create(&path, &CreateOptions::differencing(base)).unwrap());
    set_virtual_size(&path, SIZE);
    path
}

/// A dynamic image of `SIZE` bytes in 4 KiB blocks.
fn small_dynamic(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, BLOCK);
    options.block_size = BLOCK as u32;
    drop(create(&path, &options).unwrap());
    set_virtual_size(&path, SIZE);
    path
}

/// Allocates block 0 of `path` with a write of its first sector (so that sector 1, where
/// the disk ends, is not present); returns the file offset of the block's data.
fn allocate_block_0(path: &Path, rng: &mut Rng) -> u64 {
    let mut image = open_rw(path);
    image.write_at(&rng.bytes(512), 0).unwrap();
    image.flush().unwrap();
    drop(image);
    u64::from(bat_entry_in_file(path, 0)) * 512 + 512
}

/// Moves the footer of `path` to `data + keep`: the file keeps only `keep` bytes of block
/// 0's data (the block allocated last, at the end of the file).
fn cut_block_0(path: &Path, data: u64, keep: u64) {
    let footer = file_bytes(path, file_len(path) - 512, 512);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(data + keep)
        .unwrap();
    patch_file(path, data + keep, &footer);
}

/// Rewrites the dynamic header of `path` after `edit`, with a valid checksum.
fn edit_header(path: &Path, edit: impl Fn(&mut [u8])) {
    let header_at = be_u64(&file_bytes(path, 0, 512), 16);
    let mut header = file_bytes(path, header_at, 1024);
    edit(&mut header);
    fix_header_checksum(&mut header);
    patch_file(path, header_at, &header);
}

/// Adds parent locator entry 7, a `W2ku` whose `length` bytes of data are at `offset`.
fn add_locator(path: &Path, offset: u64, length: u32) {
    edit_header(path, |h| {
        let entry = &mut h[576 + 7 * 24..576 + 8 * 24];
        entry.fill(0);
        entry[0..4].copy_from_slice(b"W2ku");
        entry[4..8].copy_from_slice(&length.to_be_bytes());
        entry[8..12].copy_from_slice(&length.to_be_bytes());
        entry[16..24].copy_from_slice(&offset.to_be_bytes());
    });
}

/// Opens `path` read-write and read-only: both must be refused with an error about BAT
/// entry 0, and the file must be left exactly as it was.
#[track_caller]
fn assert_refused(path: &Path, expect: impl Fn(&Error) -> bool) {
    let before = std::fs::read(path).unwrap();
    for options in [OpenOptions::default(), read_only()] {
        match Image::open(path, &options) {
            Ok(mut image) => {
                // What the report did: the write that destroyed the footer.
                let _ = image.write_at(&[0xAB], SIZE - 1);
                drop(image);
                let after = std::fs::read(path).unwrap();
                panic!(
                    "{} opened (read-only: {}); a write at {} then {} the file",
                    path.display(),
                    options.read_only,
                    SIZE - 1,
                    if after == before { "left" } else { "changed" }
                );
            }
            Err(e) => assert!(expect(&e), "{}: {e:?}", path.display()),
        }
    }
    assert!(std::fs::read(path).unwrap() == before, "the file changed");
}

fn out_of_range(e: &Error) -> bool {
    matches!(e, Error::BatEntryOutOfRange { index: 0, .. })
}

fn overlaps_locator(e: &Error) -> bool {
    let locator = |other: &str| other.contains("parent locator 7");
    matches!(e, Error::BatEntryOverlap { index: 0, other, .. } if locator(other))
}

/// The report's image: a differencing child of 1000 bytes whose block 0 holds its 1000
/// bytes right in front of the footer. The 1-byte write at 999 was widened to bytes
/// 512..1024 of the block and overwrote the first 24 bytes of the footer.
#[test]
fn a_partial_last_sector_that_runs_into_the_footer_is_refused() {
    let mut rng = Rng::new("block_extents partial sector into the footer");
    let dir = TempDir::new("block-extents");
    let (base, _) = base(&dir, &mut rng);
    let child = small_child(&dir, "child.vhd", &base);
    let data = allocate_block_0(&child, &mut rng);
    cut_block_0(&child, data, SIZE);
    assert_refused(&child, out_of_range);
    // `check` applies the same rule: the block's last sector runs past the footer.
    let report = check(&child, &CheckOptions::default()).unwrap();
    assert!(report.has_corruption(), "{report}");
    assert!(
        report.findings_of(FindingKind::BatOutOfRange).count() == 1,
        "{report}"
    );

    // A dynamic image is never widened, but the rule is the same for both kinds.
    let dynamic = small_dynamic(&dir, "dynamic.vhd");
    let data = allocate_block_0(&dynamic, &mut rng);
    cut_block_0(&dynamic, data, SIZE);
    assert_refused(&dynamic, out_of_range);
}

/// The same images with the footer right after the last sector (bytes 512..1024 of the
/// block are in the file): the write lands in front of the footer, which survives, and the
/// image opens read-write from it again with the right data.
#[test]
fn a_last_sector_in_front_of_the_footer_is_written_and_the_footer_survives() {
    let mut rng = Rng::new("block_extents last sector in front of the footer");
    let dir = TempDir::new("block-extents");
    let (base, base_data) = base(&dir, &mut rng);
    for tight in [false, true] {
        let child = small_child(&dir, "child.vhd", &base);
        let mut model = base_data[..SIZE as usize].to_vec();
        if tight {
            let data = allocate_block_0(&child, &mut rng);
            // The sector written by allocate_block_0, as the file holds it.
            model[..512].copy_from_slice(&file_bytes(&child, data, 512));
            cut_block_0(&child, data, SIZE.next_multiple_of(512));
        }
        let mut image = open_rw(&child);
        write_both(&mut image, &mut model, &[0xAB], SIZE - 1);
        image.flush().unwrap();
        drop(image);
        let end = file_len(&child) - 512;
        assert_eq!(&file_bytes(&child, end, 8), b"conectix", "tight: {tight}");
        let image = open_rw(&child);
        assert_eq!(image.footer_source(), FooterSource::End, "tight: {tight}");
        assert_eq!(image.read_only_reason(), None);
        assert_same_bytes(&read_all(&image), &model, "the child after the write");
        drop(image);
        assert!(
            !check(&child, &CheckOptions::default())
                .unwrap()
                .has_corruption(),
            "tight: {tight}"
        );
        std::fs::remove_file(&child).unwrap();
    }
}

/// Parent locator data is the path to the parent: a block whose extent covers it (in its
/// data inside the disk, or only in the last partial sector) is refused.
#[test]
fn a_block_over_parent_locator_data_is_refused() {
    let mut rng = Rng::new("block_extents block over locator data");
    let dir = TempDir::new("block-extents");
    let (base, _) = base(&dir, &mut rng);
    for at in [100, SIZE] {
        let child = small_child(&dir, "child.vhd", &base);
        let data = allocate_block_0(&child, &mut rng);
        add_locator(&child, data + at, 24);
        assert_refused(&child, overlaps_locator);
        let report = check(&child, &CheckOptions::default()).unwrap();
        assert!(
            report.findings_of(FindingKind::Overlap).count() == 1,
            "locator at {at}: {report}"
        );
        std::fs::remove_file(&child).unwrap();
    }
    // Past the block's last sector (and in front of the footer): no overlap.
    let child = small_child(&dir, "child.vhd", &base);
    let data = allocate_block_0(&child, &mut rng);
    add_locator(&child, data + SIZE.next_multiple_of(512), 24);
    let mut image = open_rw(&child);
    image.write_at(&[0xAB], SIZE - 1).unwrap();
    image.flush().unwrap();
}

/// Locator data past the footer is where new blocks go: a write would put a block over it
/// (its text then read from the block, and the block refused at the next open as
/// overlapping it). Such an image opens read-only, saying why, and is not written.
#[test]
fn locator_data_past_the_footer_makes_the_image_read_only() {
    let mut rng = Rng::new("block_extents locator past the footer");
    let dir = TempDir::new("block-extents");
    let (base, _) = base(&dir, &mut rng);
    let child = small_child(&dir, "child.vhd", &base);
    add_locator(&child, file_len(&child) + 1024, 24);
    let before = std::fs::read(&child).unwrap();
    let mut image = Image::open(&child, &OpenOptions::default()).unwrap();
    let reason = image.read_only_reason().unwrap_or_default().to_string();
    assert_mentions(&reason, &["parent locator 7", "past the footer"]);
    let e = image.write_at(&[0xAB], 0).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    drop(image);
    assert!(std::fs::read(&child).unwrap() == before, "the file changed");
    // Read-only opens read it as usual (the locator names nothing).
    let image = open_ro(&child);
    assert_eq!(image.parent_locator_texts().unwrap()[7], None);
}

/// Locator data over the BAT (or the header, or the footer copy) would change when a write
/// allocates a block and the BAT entry is written: such an image opens read-only. (Found by
/// the written mutation test: a locator's data offset mutated to the BAT's.)
#[test]
fn locator_data_over_the_metadata_makes_the_image_read_only() {
    let mut rng = Rng::new("block_extents locator over the metadata");
    let dir = TempDir::new("block-extents");
    let (base, _) = base(&dir, &mut rng);
    for (name, offset, structure) in [
        ("copy.vhd", 100, "the footer copy"),
        ("header.vhd", 512 + 16, "the dynamic header"),
        ("bat.vhd", 1536, "the block allocation table"),
    ] {
        let child = small_child(&dir, name, &base);
        add_locator(&child, offset, 24);
        let before = std::fs::read(&child).unwrap();
        let mut image = Image::open(&child, &OpenOptions::default()).unwrap();
        let reason = image.read_only_reason().unwrap_or_default().to_string();
        assert_mentions(&reason, &["parent locator 7", structure]);
        let e = image.write_at(&rng.bytes(512), 0).unwrap_err();
        assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
        drop(image);
        assert!(
            std::fs::read(&child).unwrap() == before,
            "{name}: the file changed"
        );
    }
}
