//! Bad input: our own images, damaged on purpose (truncated, bad cookies, bad checksums,
//! impossible fields), garbage files, and bad `create` arguments. Each must give the right
//! [`Error`] variant, with a message that names the field or offset, and never a panic.

use std::path::{Path, PathBuf};
use vhd_core::{
    create, CreateOptions, DiskType, Error, FooterSource, Image, OpenOptions, VirtualDisk,
};
use vhd_testkit::*;

const KIB: u64 = 1024;
const BLOCK: u64 = 512 * KIB;
/// 3 whole blocks and 3 sectors of a fourth.
const SIZE: u64 = 3 * BLOCK + 1536;
/// Layout of the dynamic images made by `dynamic_image`.
const HEADER: u64 = 512;
const BAT: u64 = 1536;
const FIRST_BLOCK: u64 = 2048;
const BLOCK_SPAN: u64 = 512 + BLOCK;

fn open(path: &Path) -> vhd_core::Result<Image> {
    Image::open(path, &read_only())
}

#[track_caller]
fn open_err(path: &Path) -> Error {
    match open(path) {
        Ok(image) => panic!(
            "{} opened ({:?}, {} bytes) but should not have",
            path.display(),
            image.disk_type(),
            image.size()
        ),
        Err(e) => e,
    }
}

/// A dynamic image with 512 KiB blocks whose blocks are, in file order: block 3 (the
/// partial last one), block 0, block 2 (the last in the file is a whole block). Block 1 is
/// not allocated. Returns the path and the virtual disk's contents.
fn dynamic_image(dir: &TempDir, name: &str, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, SIZE);
    options.block_size = BLOCK as u32;
    let mut disk = create(&path, &options).unwrap();
    let mut model = vec![0u8; SIZE as usize];
    for block in [3u64, 0, 2] {
        let start = block * BLOCK;
        let len = (SIZE - start).min(BLOCK);
        let data = rng.bytes(len as usize);
        disk.write_at(&data, start).unwrap();
        model[start as usize..(start + len) as usize].copy_from_slice(&data);
    }
    disk.flush().unwrap();
    drop(disk);
    assert_eq!(file_len(&path), FIRST_BLOCK + 3 * BLOCK_SPAN + 512);
    (path, model)
}

fn fixed_image(dir: &TempDir, name: &str, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let mut disk = create(&path, &CreateOptions::new(DiskType::Fixed, SIZE)).unwrap();
    let model = rng.bytes(SIZE as usize);
    disk.write_at(&model, 0).unwrap();
    disk.flush().unwrap();
    (path, model)
}

fn copy_of(path: &Path, dir: &TempDir, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(path, &copy).unwrap();
    copy
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Rewrites both footers (end and copy) of a dynamic image after `edit`, with valid checksums.
fn edit_footers(path: &Path, edit: impl Fn(&mut [u8])) {
    let end = file_len(path) - 512;
    for at in [0, end] {
        let mut footer = file_bytes(path, at, 512);
        edit(&mut footer);
        fix_footer_checksum(&mut footer);
        patch_file(path, at, &footer);
    }
}

/// Rewrites the dynamic header after `edit`, with a valid checksum.
fn edit_header(path: &Path, edit: impl Fn(&mut [u8])) {
    let mut header = file_bytes(path, HEADER, 1024);
    edit(&mut header);
    fix_header_checksum(&mut header);
    patch_file(path, HEADER, &header);
}

#[test]
fn truncated_dynamic_images() {
    let mut rng = Rng::new("damaged truncated_dynamic_images");
    let dir = TempDir::new("damaged");
    let (good, model) = dynamic_image(&dir, "good.vhd", &mut rng);
    let full = file_len(&good);
    let footer_at = full - 512;

    // Footer only partly there, or not at all (the file was cut at the footer): every
    // block is whole, so the image opens read-only from the footer copy and reads right.
    for cut in [1, 100, 511, 512] {
        let path = copy_of(&good, &dir, "cut-footer.vhd");
        truncate(&path, full - cut);
        let disk = open(&path).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        if cut == 1 {
            // The last byte of our footers is a reserved zero: a 511-byte footer.
            assert_eq!(disk.footer_source(), FooterSource::End511);
        } else {
            assert_eq!(disk.footer_source(), FooterSource::Copy, "cut {cut}");
            assert!(disk.read_only_reason().is_some());
        }
        assert_same_bytes(&read_all(&disk), &model, &format!("cut {cut}"));
    }

    // Cut inside the data of the last block in the file (block 2): that block is missing.
    for len in [footer_at - 1, footer_at - 512, footer_at - BLOCK / 2] {
        let path = copy_of(&good, &dir, "cut-block.vhd");
        truncate(&path, len);
        let e = open_err(&path);
        match &e {
            Error::BatEntryOutOfRange { index, sector, .. } => {
                assert_eq!(*index, 2, "{e}");
                assert_eq!(
                    u64::from(*sector) * 512,
                    FIRST_BLOCK + 2 * BLOCK_SPAN,
                    "{e}"
                );
            }
            other => panic!("file cut to {len}: expected BatEntryOutOfRange, got {other:?}"),
        }
        assert_eq!(e.code(), "ERR_VHD_BAT_OUT_OF_RANGE");
        assert_mentions(
            &e.to_string(),
            &[
                "BAT entry 2",
                &format!("sector {}", (FIRST_BLOCK + 2 * BLOCK_SPAN) / 512),
            ],
        );
    }

    // Cut inside the BAT (4 entries, 16 bytes at 1536).
    let path = copy_of(&good, &dir, "cut-bat.vhd");
    truncate(&path, BAT + 8);
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Truncated { offset: BAT, end, .. } if end == BAT + 16),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &["block allocation table", "1536", "1552", "1544"],
    );

    // Cut inside the dynamic header.
    let path = copy_of(&good, &dir, "cut-header.vhd");
    truncate(&path, 1200);
    let e = open_err(&path);
    assert!(
        matches!(
            e,
            Error::Truncated {
                offset: 512,
                end: 1536,
                file_size: 1200,
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(&e.to_string(), &["dynamic header", "1200"]);

    // Too short for any footer copy: the end "footer" is the header's bytes.
    let path = copy_of(&good, &dir, "cut-small.vhd");
    truncate(&path, 1000);
    let e = open_err(&path);
    assert!(
        matches!(
            e,
            Error::BadCookie {
                structure: "footer",
                offset: 488,
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(&e.to_string(), &["footer", "488", "conectix"]);

    for len in [0, 100, 510] {
        let path = copy_of(&good, &dir, "cut-tiny.vhd");
        truncate(&path, len);
        let e = open_err(&path);
        assert!(
            matches!(e, Error::Truncated { file_size, .. } if file_size == len),
            "{len}: {e:?}"
        );
        assert_eq!(e.code(), "ERR_VHD_TRUNCATED");
        assert_mentions(&e.to_string(), &["footer", &format!("{len} bytes")]);
    }
}

#[test]
fn truncated_fixed_images() {
    let mut rng = Rng::new("damaged truncated_fixed_images");
    let dir = TempDir::new("damaged");
    let (good, model) = fixed_image(&dir, "fixed.vhd", &mut rng);
    let full = file_len(&good);
    // One byte less: a 511-byte footer (its last byte is a reserved zero).
    let path = copy_of(&good, &dir, "cut.vhd");
    truncate(&path, full - 1);
    let disk = open(&path).unwrap();
    assert_eq!(disk.footer_source(), FooterSource::End511);
    assert_same_bytes(&read_all(&disk), &model, "fixed with a 511-byte footer");
    drop(disk);
    // Cut in the footer or the data: the last 512 bytes are not a footer (there is no copy).
    for cut in [2, 100, 512, 5000] {
        let path = copy_of(&good, &dir, "cut.vhd");
        truncate(&path, full - cut);
        let e = open_err(&path);
        let at = full - cut - 512;
        assert!(
            matches!(e, Error::BadCookie { structure: "footer", offset, .. } if offset == at),
            "cut {cut}: {e:?}"
        );
        assert_eq!(e.code(), "ERR_VHD_BAD_COOKIE");
        assert_mentions(&e.to_string(), &["footer", &at.to_string()]);
    }
    // Data missing in front of an intact footer.
    let path = dir.join("short.vhd");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.drain(1000..3048);
    std::fs::write(&path, &bytes).unwrap();
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Truncated { offset: 0, end, file_size, .. }
            if end == SIZE + 512 && file_size == SIZE + 512 - 2048),
        "{e:?}"
    );
    assert_mentions(&e.to_string(), &[&SIZE.to_string(), "truncated"]);
}

#[test]
fn bat_entry_past_the_end_of_the_file() {
    let mut rng = Rng::new("damaged bat_entry_past_the_end_of_the_file");
    let dir = TempDir::new("damaged");
    let (good, _) = dynamic_image(&dir, "good.vhd", &mut rng);
    let full = file_len(&good);
    // Block 1 (unallocated) pointed past the end of the file, or into the footer.
    for sector in [(full / 512) + 10, full / 512 - 1, 0xFFFF_FFFE] {
        let path = copy_of(&good, &dir, "bad-bat.vhd");
        patch_file(&path, BAT + 4, &(sector as u32).to_be_bytes());
        let e = open_err(&path);
        assert!(
            matches!(e, Error::BatEntryOutOfRange { index: 1, sector: s, limit, .. }
                if u64::from(s) == sector && limit == full - 512),
            "{e:?}"
        );
        assert_mentions(
            &e.to_string(),
            &[
                "BAT entry 1",
                &sector.to_string(),
                &(full - 512).to_string(),
            ],
        );
    }
}

#[test]
fn bat_entries_beyond_the_disk_are_harmless() {
    // max table entries may exceed what the size needs (the spare entries of the BAT's
    // last sector are 0xFF); an allocated entry there names no part of the disk.
    let mut rng = Rng::new("damaged bat_entries_beyond_the_disk_are_harmless");
    let dir = TempDir::new("damaged");
    let (path, model) = dynamic_image(&dir, "spare.vhd", &mut rng);
    edit_header(&path, |h| h[28..32].copy_from_slice(&8u32.to_be_bytes()));
    patch_file(
        &path,
        BAT + 6 * 4,
        &((FIRST_BLOCK / 512) as u32).to_be_bytes(),
    );
    let disk = open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_same_bytes(&read_all(&disk), &model, "spare BAT entries");
}

#[test]
fn bad_dynamic_header() {
    let mut rng = Rng::new("damaged bad_dynamic_header");
    let dir = TempDir::new("damaged");
    let (good, model) = dynamic_image(&dir, "good.vhd", &mut rng);

    // Cookie.
    let path = copy_of(&good, &dir, "cookie.vhd");
    patch_file(&path, HEADER, b"cxsparsX");
    let e = open_err(&path);
    assert!(
        matches!(e, Error::BadCookie { structure: "dynamic header", offset: HEADER, ref found, .. } if found == "cxsparsX"),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &["dynamic header", "512", "cxsparse", "cxsparsX"],
    );

    // Checksum: a reserved byte changed without updating it.
    let path = copy_of(&good, &dir, "checksum.vhd");
    let stored = be_u32(&file_bytes(&path, HEADER, 1024), 36);
    patch_file(&path, HEADER + 900, &[0x42]);
    let computed = vhd_checksum(&file_bytes(&path, HEADER, 1024), 36);
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Checksum { structure: "dynamic header", offset: HEADER, stored: s, computed: c }
            if s == stored && c == computed),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_CHECKSUM");
    assert_mentions(
        &e.to_string(),
        &[
            "dynamic header",
            "512",
            &format!("{stored:#010x}"),
            &format!("{computed:#010x}"),
        ],
    );
    // ...which the forensic option reads anyway, read-only.
    let options = OpenOptions {
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let mut disk = Image::open(&path, &options).unwrap();
    assert!(disk.read_only_reason().unwrap().contains("checksum"));
    assert_same_bytes(&read_all(&disk), &model, "header checksum ignored");
    let e = disk.write_at(b"x", 0).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    drop(disk);

    // Block sizes that are not a power of two of at least 512.
    for block_size in [3 * 512 * 1024u32, 0, 256, 1000] {
        let path = copy_of(&good, &dir, "block-size.vhd");
        edit_header(&path, |h| {
            h[32..36].copy_from_slice(&block_size.to_be_bytes())
        });
        let e = open_err(&path);
        assert!(
            matches!(e, Error::InvalidField { structure: "dynamic header", field: "block size", offset: 544, found, .. }
                if found == u64::from(block_size)),
            "{block_size}: {e:?}"
        );
        assert_eq!(e.code(), "ERR_VHD_INVALID_FIELD");
        assert_mentions(
            &e.to_string(),
            &["block size", "544", &block_size.to_string()],
        );
    }

    // Too few BAT entries for the size.
    let path = copy_of(&good, &dir, "entries.vhd");
    edit_header(&path, |h| h[28..32].copy_from_slice(&3u32.to_be_bytes()));
    let e = open_err(&path);
    assert!(
        matches!(
            e,
            Error::InvalidField {
                field: "max table entries",
                offset: 540,
                found: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &["max table entries", "540", &SIZE.to_string()],
    );

    // A table that does not fit in the file.
    let path = copy_of(&good, &dir, "table.vhd");
    edit_header(&path, |h| {
        h[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes())
    });
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Truncated { offset, .. } if offset == 1 << 40),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &["block allocation table", &(1u64 << 40).to_string()],
    );
}

#[test]
fn header_offset_outside_the_file() {
    let mut rng = Rng::new("damaged header_offset_outside_the_file");
    let dir = TempDir::new("damaged");
    let (good, _) = dynamic_image(&dir, "good.vhd", &mut rng);
    let full = file_len(&good);
    for data_offset in [full, full - 512, u64::MAX - 100, 0, 100] {
        let path = copy_of(&good, &dir, "offset.vhd");
        edit_footers(&path, |f| {
            f[16..24].copy_from_slice(&data_offset.to_be_bytes())
        });
        let e = open_err(&path);
        assert!(
            matches!(e, Error::InvalidField { structure: "footer", field: "data offset", found, .. }
                if found == data_offset),
            "{data_offset}: {e:?}"
        );
        assert_mentions(&e.to_string(), &["data offset", &data_offset.to_string()]);
    }
}

#[test]
fn damaged_end_footer_with_a_good_copy() {
    let mut rng = Rng::new("damaged damaged_end_footer_with_a_good_copy");
    let dir = TempDir::new("damaged");
    let (good, model) = dynamic_image(&dir, "good.vhd", &mut rng);
    let end = file_len(&good) - 512;
    // Garbage over the whole footer; a bad cookie; a wrong checksum (size changed).
    let damages: [(&str, u64, Vec<u8>); 3] = [
        ("garbage", end, rng.bytes(512)),
        ("cookie", end, b"CONECTIX".to_vec()),
        ("checksum", end + 48, 1u64.to_be_bytes().to_vec()),
    ];
    for (label, at, bytes) in damages {
        let path = copy_of(&good, &dir, "damaged-footer.vhd");
        patch_file(&path, at, &bytes);
        for ignore_checksums in [false, true] {
            let options = OpenOptions {
                ignore_checksums,
                ..OpenOptions::default()
            };
            let mut disk = Image::open(&path, &options).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(disk.footer_source(), FooterSource::Copy, "{label}");
            assert_eq!(disk.size(), SIZE);
            let reason = disk.read_only_reason().expect("read-only").to_string();
            assert_mentions(&reason, &["footer", "offset 0"]);
            let e = disk.write_at(b"data", 0).unwrap_err();
            assert!(matches!(e, Error::ReadOnly { .. }), "{label}: {e:?}");
            assert_eq!(e.code(), "ERR_VHD_READ_ONLY");
            disk.flush().unwrap();
            assert_same_bytes(&read_all(&disk), &model, label);
        }
        // Nothing was written.
        assert_eq!(file_bytes(&path, at, bytes.len()), bytes, "{label}");
    }
}

#[test]
fn bad_footer_checksum_without_a_copy() {
    let mut rng = Rng::new("damaged bad_footer_checksum_without_a_copy");
    let dir = TempDir::new("damaged");
    let (path, model) = fixed_image(&dir, "fixed.vhd", &mut rng);
    let end = file_len(&path) - 512;
    let stored = be_u32(&file_bytes(&path, end, 512), 64);
    patch_file(&path, end + 200, &[7]);
    let computed = vhd_checksum(&file_bytes(&path, end, 512), 64);
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Checksum { structure: "footer", offset, stored: s, computed: c }
            if offset == end && s == stored && c == computed),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &[
            "footer",
            &end.to_string(),
            &format!("{stored:#010x}"),
            &format!("{computed:#010x}"),
        ],
    );
    let options = OpenOptions {
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let mut disk = Image::open(&path, &options).unwrap();
    assert_eq!(disk.footer_source(), FooterSource::End);
    assert!(disk.read_only_reason().is_some());
    assert!(matches!(
        disk.write_at(b"x", 5),
        Err(Error::ReadOnly { .. })
    ));
    assert_same_bytes(&read_all(&disk), &model, "fixed, checksum ignored");
}

#[test]
fn footer_of_511_bytes() {
    let mut rng = Rng::new("damaged footer_of_511_bytes");
    let dir = TempDir::new("damaged");
    let (path, mut model) = dynamic_image(&dir, "short-footer.vhd", &mut rng);
    let full = file_len(&path);
    truncate(&path, full - 1);
    {
        let mut disk = open_rw(&path);
        assert_eq!(disk.footer_source(), FooterSource::End511);
        assert_eq!(disk.read_only_reason(), None);
        assert_eq!(disk.size(), SIZE);
        assert_same_bytes(&read_all(&disk), &model, "511-byte footer");
        // Allocating a block (block 1) moves the footer: the file ends with a whole one.
        let data = rng.bytes(5000);
        disk.write_at(&data, BLOCK + 100).unwrap();
        model[(BLOCK + 100) as usize..(BLOCK + 5100) as usize].copy_from_slice(&data);
        disk.flush().unwrap();
    }
    assert_eq!(file_len(&path), full - 1 + 1 + BLOCK_SPAN);
    let disk = open(&path).unwrap();
    assert_eq!(disk.footer_source(), FooterSource::End);
    assert_same_bytes(&read_all(&disk), &model, "after writing");
    // The footer copy and the new end footer are the same bytes.
    let end = file_len(&path) - 512;
    assert_eq!(file_bytes(&path, end, 512), file_bytes(&path, 0, 512));
}

#[test]
fn garbage_files() {
    let mut rng = Rng::new("damaged garbage_files");
    let dir = TempDir::new("damaged");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    let e = open_err(&write("empty.vhd", &[]));
    assert!(matches!(e, Error::Truncated { file_size: 0, .. }), "{e:?}");
    assert_mentions(&e.to_string(), &["footer", "0 bytes"]);

    for (name, bytes) in [
        ("random.vhd", rng.bytes(10_000)),
        ("ff.vhd", vec![0xFF; 4096]),
        ("zero.vhd", vec![0; 4096]),
        (
            "text.vhd",
            b"conectix is not enough to be a footer\n".repeat(40),
        ),
    ] {
        let len = bytes.len() as u64;
        let e = open_err(&write(name, &bytes));
        assert!(
            matches!(e, Error::BadCookie { structure: "footer", offset, .. } if offset == len - 512),
            "{name}: {e:?}"
        );
        assert_mentions(
            &e.to_string(),
            &["footer", &(len - 512).to_string(), "conectix"],
        );
    }
    let e = open_err(&write("short.vhd", &rng.bytes(300)));
    assert!(
        matches!(e, Error::Truncated { file_size: 300, .. }),
        "{e:?}"
    );
}

#[test]
fn impossible_footer_fields() {
    let mut rng = Rng::new("damaged impossible_footer_fields");
    let dir = TempDir::new("damaged");
    let (fixed, _) = fixed_image(&dir, "fixed.vhd", &mut rng);
    let end = file_len(&fixed) - 512;
    let edit = |path: &Path, at: usize, value: &[u8]| {
        let mut footer = file_bytes(path, end, 512);
        footer[at..at + value.len()].copy_from_slice(value);
        fix_footer_checksum(&mut footer);
        patch_file(path, end, &footer);
    };

    for code in [0u32, 1, 5, 6, 0xFFFF_FFFF] {
        let path = copy_of(&fixed, &dir, "type.vhd");
        edit(&path, 60, &code.to_be_bytes());
        let e = open_err(&path);
        assert!(
            matches!(e, Error::InvalidField { field: "disk type", found, offset, .. }
                if found == u64::from(code) && offset == end + 60),
            "{code}: {e:?}"
        );
        assert_mentions(&e.to_string(), &["disk type", &code.to_string()]);
    }

    // A fixed footer that claims more data than the file holds, up to the largest number.
    for size in [SIZE + 512, 1 << 50, u64::MAX - 511, u64::MAX] {
        let path = copy_of(&fixed, &dir, "size.vhd");
        edit(&path, 48, &size.to_be_bytes());
        let e = open_err(&path);
        assert!(matches!(e, Error::Truncated { .. }), "{size}: {e:?}");
        assert_mentions(&e.to_string(), &[&size.to_string()]);
    }

    // A dynamic footer with an absurd size: the BAT cannot cover it.
    let (dynamic, _) = dynamic_image(&dir, "dyn.vhd", &mut rng);
    for size in [1u64 << 50, u64::MAX] {
        let path = copy_of(&dynamic, &dir, "dyn-size.vhd");
        edit_footers(&path, |f| f[48..56].copy_from_slice(&size.to_be_bytes()));
        let e = open_err(&path);
        assert!(
            matches!(
                e,
                Error::InvalidField {
                    field: "max table entries",
                    ..
                }
            ),
            "{size}: {e:?}"
        );
        assert_mentions(&e.to_string(), &[&size.to_string()]);
    }

    // A differencing footer over a dynamic image's header, which names no parent at all
    // (no locators, no parent name): the parent is not found, and nothing was tried.
    let path = copy_of(&dynamic, &dir, "diff.vhd");
    edit_footers(&path, |f| f[60..64].copy_from_slice(&4u32.to_be_bytes()));
    let e = open_err(&path);
    match &e {
        Error::ParentNotFound { child, tried, .. } => {
            assert_eq!(child, &path);
            assert!(tried.is_empty(), "{tried:?}");
        }
        other => panic!("expected ParentNotFound, got {other:?}"),
    }
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND");
    assert_mentions(&e.to_string(), &[&path.display().to_string()]);

    // expected_type mismatch.
    let e = Image::open(
        &fixed,
        &OpenOptions {
            read_only: true,
            expected_type: Some(DiskType::Dynamic),
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongDiskType {
                expected: "dynamic",
                found: "fixed",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn parent_locator_fields_in_a_dynamic_image() {
    // A dynamic image has no use for parent locators, but a header may still hold entries,
    // even absurd ones; opening, reading and writing must not trip over them.
    let mut rng = Rng::new("damaged parent_locator_fields_in_a_dynamic_image");
    let dir = TempDir::new("damaged");
    let (good, model) = dynamic_image(&dir, "good.vhd", &mut rng);
    for (offset, space, length) in [
        (u64::MAX - 100, 512u32, 42u32),
        (u64::MAX, u32::MAX, u32::MAX),
        (1 << 40, 512, 42),
    ] {
        let path = copy_of(&good, &dir, "locator.vhd");
        edit_header(&path, |h| {
            let entry = &mut h[576..600];
            entry[0..4].copy_from_slice(b"W2ku");
            entry[4..8].copy_from_slice(&space.to_be_bytes());
            entry[8..12].copy_from_slice(&length.to_be_bytes());
            entry[16..24].copy_from_slice(&offset.to_be_bytes());
        });
        let result = Image::open(&path, &OpenOptions::default());
        let mut disk = result.unwrap_or_else(|e| panic!("locator at {offset}: {e}"));
        assert_same_bytes(&read_all(&disk), &model, "with a locator");
        // Allocating block 1 either works or fails cleanly; it never panics.
        let data = rng.bytes(1000);
        match disk.write_at(&data, BLOCK) {
            Ok(()) => {
                disk.flush().unwrap();
                let mut expected = model.clone();
                expected[BLOCK as usize..BLOCK as usize + 1000].copy_from_slice(&data);
                drop(disk);
                let disk = open(&path).unwrap();
                assert_same_bytes(&read_all(&disk), &expected, "after a write");
            }
            Err(e) => assert!(matches!(e, Error::Unsupported(_)), "{e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// create()

#[test]
fn create_validates_its_arguments() {
    let dir = TempDir::new("create-args");
    let path = dir.join("x.vhd");
    let cases: Vec<(DiskType, u64, u32, &str)> = vec![
        (DiskType::Fixed, 0, 2 << 20, "size"),
        (DiskType::Dynamic, 0, 2 << 20, "size"),
        (DiskType::Fixed, 1000, 2 << 20, "size"),
        (DiskType::Dynamic, (1 << 20) + 1, 2 << 20, "size"),
        (
            DiskType::Dynamic,
            vhd_core::MAX_DYNAMIC_SIZE + 512,
            2 << 20,
            "size",
        ),
        (
            DiskType::Fixed,
            vhd_core::MAX_FIXED_SIZE + 512,
            2 << 20,
            "size",
        ),
        (DiskType::Fixed, u64::MAX - 511, 2 << 20, "size"),
        (DiskType::Dynamic, 1 << 20, 0, "block size"),
        (DiskType::Dynamic, 1 << 20, 3000, "block size"),
        (DiskType::Dynamic, 1 << 20, 2048, "block size"),
        (DiskType::Dynamic, 1 << 20, 3 << 20, "block size"),
        (DiskType::Dynamic, 1 << 20, 512 << 20, "block size"),
        (DiskType::Dynamic, 1 << 20, 1 << 31, "block size"),
        // Tiny blocks for a huge disk: more BAT entries than create allows.
        (
            DiskType::Dynamic,
            vhd_core::MAX_DYNAMIC_SIZE,
            4096,
            "block size",
        ),
    ];
    for (disk_type, size, block_size, field) in cases {
        let mut options = CreateOptions::new(disk_type, size);
        options.block_size = block_size;
        let e = create(&path, &options).unwrap_err();
        match &e {
            Error::InvalidArgument { name, .. } => {
                assert_eq!(*name, field, "{disk_type:?} {size} {block_size}: {e}")
            }
            other => {
                panic!("{disk_type:?} {size} {block_size}: expected InvalidArgument, got {other:?}")
            }
        }
        assert_eq!(e.code(), "ERR_VHD_INVALID_ARGUMENT");
        let shown = if field == "size" {
            size
        } else {
            u64::from(block_size)
        };
        assert_mentions(&e.to_string(), &[field, &shown.to_string()]);
        assert!(!path.exists(), "a failed create left a file behind");
    }
    // A differencing image needs a parent.
    let e = create(&path, &CreateOptions::new(DiskType::Differencing, 1 << 20)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { name: "parent", .. }),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_INVALID_ARGUMENT");
    assert!(!path.exists());

    // The limits themselves are accepted.
    for block_size in [
        *vhd_core::BLOCK_SIZE_RANGE.start(),
        *vhd_core::BLOCK_SIZE_RANGE.end(),
    ] {
        let mut options = CreateOptions::new(DiskType::Dynamic, 512);
        options.block_size = block_size;
        options.overwrite = true;
        let disk = create(&path, &options).unwrap_or_else(|e| panic!("{block_size}: {e}"));
        assert_eq!(disk.size(), 512);
    }
}

#[test]
fn create_refuses_an_existing_file_unless_told_to_overwrite() {
    let dir = TempDir::new("create-exists");
    let path = dir.join("exists.vhd");
    std::fs::write(&path, b"precious data").unwrap();
    for disk_type in [DiskType::Fixed, DiskType::Dynamic] {
        let e = create(&path, &CreateOptions::new(disk_type, 1 << 20)).unwrap_err();
        assert!(
            matches!(e, Error::AlreadyExists(ref p) if p == &path),
            "{e:?}"
        );
        assert_eq!(e.code(), "ERR_VHD_EXISTS");
        assert_mentions(&e.to_string(), &["exists.vhd", "already exists"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"precious data");
    }
    // Overwriting a larger file leaves nothing of it behind.
    std::fs::write(&path, vec![0xAB; 5 << 20]).unwrap();
    for disk_type in [DiskType::Dynamic, DiskType::Fixed] {
        let mut options = CreateOptions::new(disk_type, 1 << 20);
        options.overwrite = true;
        let disk = create(&path, &options).unwrap();
        assert_eq!(disk.disk_type(), disk_type);
        assert_eq!(read_all(&disk), vec![0u8; 1 << 20]);
        drop(disk);
        let expected_len = match disk_type {
            DiskType::Fixed => (1 << 20) + 512,
            _ => 512 + 1024 + 512 + 512,
        };
        assert_eq!(file_len(&path), expected_len, "{disk_type:?}");
    }
}

#[test]
fn missing_file_and_folder() {
    let dir = TempDir::new("missing");
    let path = dir.join("does-not-exist.vhd");
    let e = open_err(&path);
    assert!(
        matches!(e, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_IO");
    assert_mentions(&e.to_string(), &["does-not-exist.vhd"]);
    // A folder is not an image either (the exact error depends on the OS).
    assert!(open(dir.path()).is_err());
}
