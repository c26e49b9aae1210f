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
fn a_dynamic_image_cut_in_its_footer_opens_from_the_copy() {
    let mut rng = Rng::new("damaged truncated_dynamic_images");
    let dir = TempDir::new("damaged");
    let (good, model) = dynamic_image(&dir, "good.vhd", &mut rng);
    let full = file_len(&good);

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
}

#[test]
fn a_fixed_image_one_byte_short_opens_with_a_511_byte_footer() {
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

/// A dynamic header whose checksum is wrong (a reserved byte changed) is read anyway with
/// `ignore_checksums`, read-only. (Without it, the image does not open: see
/// `damaged_images_that_must_not_open`.)
#[test]
fn a_bad_header_checksum_is_read_when_told_read_only() {
    let mut rng = Rng::new("damaged a_bad_header_checksum_is_read_when_told_read_only");
    let dir = TempDir::new("damaged");
    let (path, model) = dynamic_image(&dir, "checksum.vhd", &mut rng);
    patch_file(&path, HEADER + 900, &[0x42]);
    let options = OpenOptions {
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let mut disk = Image::open(&path, &options).unwrap();
    assert!(disk.read_only_reason().unwrap().contains("checksum"));
    assert_same_bytes(&read_all(&disk), &model, "header checksum ignored");
    let e = disk.write_at(b"x", 0).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
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
fn a_bad_footer_checksum_without_a_copy_is_read_when_told_read_only() {
    let mut rng = Rng::new("damaged bad_footer_checksum_without_a_copy");
    let dir = TempDir::new("damaged");
    let (path, model) = fixed_image(&dir, "fixed.vhd", &mut rng);
    let end = file_len(&path) - 512;
    patch_file(&path, end + 200, &[7]);
    // Refused without the option: see `damaged_images_that_must_not_open`.
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
fn an_image_of_another_type_than_expected() {
    let mut rng = Rng::new("damaged an_image_of_another_type_than_expected");
    let dir = TempDir::new("damaged");
    let (fixed, _) = fixed_image(&dir, "fixed.vhd", &mut rng);
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
// Images that must not open: one row per damage, each with the error it must give

/// The length of the file `dynamic_image` makes.
const DYNAMIC_LEN: u64 = FIRST_BLOCK + 3 * BLOCK_SPAN + 512;
/// The length of the file `fixed_image` makes.
const FIXED_LEN: u64 = SIZE + 512;

/// The image a row damages: a copy of a good one, or a file of its own.
#[derive(Clone, Copy)]
enum Base {
    Dynamic,
    Fixed,
    Nothing,
}

/// Whether an error is the right one for the file as damaged.
type Expectation = Box<dyn Fn(&Error, &Path) -> bool>;

/// What an error's message must mention, given the file as damaged.
type Mentions = Box<dyn Fn(&Path) -> Vec<String>>;

/// An image damaged so that it must not open, and the error that must come of it.
struct Refusal {
    base: Base,
    /// Damages the copy (or writes the file), at the path given.
    damage: Box<dyn Fn(&Path)>,
    expect: Expectation,
    /// The error's stable code, where the row checks it.
    code: Option<&'static str>,
    /// What its message must mention.
    mentions: Mentions,
}

fn refusal(
    base: Base,
    damage: impl Fn(&Path) + 'static,
    expect: impl Fn(&Error, &Path) -> bool + 'static,
    code: Option<&'static str>,
    mentions: impl Fn(&Path) -> Vec<String> + 'static,
) -> Refusal {
    Refusal {
        base,
        damage: Box::new(damage),
        expect: Box::new(expect),
        code,
        mentions: Box::new(mentions),
    }
}

fn strings(parts: &[&dyn std::fmt::Display]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}

/// Writes the end footer of a fixed image (it has no copy) after `edit`, with a valid
/// checksum.
fn edit_fixed_footer(path: &Path, edit: impl Fn(&mut [u8])) {
    let end = FIXED_LEN - 512;
    let mut footer = file_bytes(path, end, 512);
    edit(&mut footer);
    fix_footer_checksum(&mut footer);
    patch_file(path, end, &footer);
}

fn refusals(rng: &mut Rng) -> Vec<(String, Refusal)> {
    use Base::{Dynamic, Fixed, Nothing};
    let mut rows: Vec<(String, Refusal)> = Vec::new();
    let footer_at = DYNAMIC_LEN - 512;
    let block_2 = FIRST_BLOCK + 2 * BLOCK_SPAN;

    // A dynamic image cut inside the data of the last block in the file (block 2): that
    // block is missing.
    for len in [footer_at - 1, footer_at - 512, footer_at - BLOCK / 2] {
        rows.push((
            format!("dynamic cut to {len} bytes, inside its last block"),
            refusal(
                Dynamic,
                move |path| truncate(path, len),
                move |e, _| {
                    matches!(e, Error::BatEntryOutOfRange { index: 2, sector, .. }
                        if u64::from(*sector) * 512 == block_2)
                },
                Some("ERR_VHD_BAT_OUT_OF_RANGE"),
                move |_| strings(&[&"BAT entry 2", &format!("sector {}", block_2 / 512)]),
            ),
        ));
    }
    // Cut inside the BAT (4 entries, 16 bytes at 1536).
    rows.push((
        "dynamic cut inside its BAT".into(),
        refusal(
            Dynamic,
            |path| truncate(path, BAT + 8),
            |e, _| matches!(e, Error::Truncated { offset: BAT, end, .. } if *end == BAT + 16),
            None,
            |_| strings(&[&"block allocation table", &"1536", &"1552", &"1544"]),
        ),
    ));
    rows.push((
        "dynamic cut inside its dynamic header".into(),
        refusal(
            Dynamic,
            |path| truncate(path, 1200),
            |e, _| {
                matches!(
                    e,
                    Error::Truncated {
                        offset: 512,
                        end: 1536,
                        file_size: 1200,
                        ..
                    }
                )
            },
            None,
            |_| strings(&[&"dynamic header", &"1200"]),
        ),
    ));
    // Too short for any footer copy: the end "footer" is the header's bytes.
    rows.push((
        "dynamic cut to 1000 bytes: the header's bytes where the footer should be".into(),
        refusal(
            Dynamic,
            |path| truncate(path, 1000),
            |e, _| {
                matches!(
                    e,
                    Error::BadCookie {
                        structure: "footer",
                        offset: 488,
                        ..
                    }
                )
            },
            None,
            |_| strings(&[&"footer", &"488", &"conectix"]),
        ),
    ));
    // Its first bytes are still the footer copy's: a VHD, cut.
    for len in [100, 510] {
        rows.push((
            format!("dynamic cut to {len} bytes, shorter than a footer"),
            refusal(
                Dynamic,
                move |path| truncate(path, len),
                move |e, _| matches!(e, Error::Truncated { file_size, .. } if *file_size == len),
                Some("ERR_VHD_TRUNCATED"),
                move |_| strings(&[&"footer", &format!("{len} bytes")]),
            ),
        ));
    }
    // Nothing is left of it: an empty file, which is no VHD.
    rows.push((
        "dynamic cut to 0 bytes".into(),
        refusal(
            Dynamic,
            move |path| truncate(path, 0),
            |e, p| matches!(e, Error::NotVhd { file_size: 0, looks_like: None, path } if path == p),
            Some("ERR_VHD_NOT_VHD"),
            |path| {
                vec![format!(
                    "{} is not a VHD image (it is 0 bytes long",
                    path.display()
                )]
            },
        ),
    ));

    // A fixed image cut in the footer or the data: the last 512 bytes are not a footer
    // (there is no copy).
    for cut in [2, 100] {
        let at = FIXED_LEN - cut - 512;
        rows.push((
            format!("fixed cut by {cut} bytes"),
            refusal(
                Fixed,
                move |path| truncate(path, FIXED_LEN - cut),
                move |e, _| {
                    matches!(e, Error::BadCookie { structure: "footer", offset, .. } if *offset == at)
                },
                Some("ERR_VHD_BAD_COOKIE"),
                move |_| strings(&[&"footer", &at]),
            ),
        ));
    }
    // Cut by a sector or more, a fixed image is its data alone: nothing in it says VHD.
    for cut in [512, 5000] {
        rows.push((
            format!("fixed cut by {cut} bytes"),
            refusal(
                Fixed,
                move |path| truncate(path, FIXED_LEN - cut),
                |e, _| {
                    matches!(
                        e,
                        Error::NotVhd {
                            looks_like: None,
                            ..
                        }
                    )
                },
                Some("ERR_VHD_NOT_VHD"),
                |path| vec![format!("{} is not a VHD image", path.display())],
            ),
        ));
    }
    rows.push((
        "fixed with data missing in front of an intact footer".into(),
        refusal(
            Fixed,
            |path| {
                let mut bytes = std::fs::read(path).unwrap();
                bytes.drain(1000..3048);
                std::fs::write(path, &bytes).unwrap();
            },
            |e, _| {
                matches!(e, Error::Truncated { offset: 0, end, file_size, .. }
                    if *end == SIZE + 512 && *file_size == SIZE + 512 - 2048)
            },
            None,
            |_| strings(&[&SIZE, &"truncated"]),
        ),
    ));

    // Block 1 (unallocated) pointed past the end of the file, or into the footer.
    for sector in [(DYNAMIC_LEN / 512) + 10, DYNAMIC_LEN / 512 - 1, 0xFFFF_FFFE] {
        rows.push((
            format!("BAT entry 1 at sector {sector}, past the data"),
            refusal(
                Dynamic,
                move |path| patch_file(path, BAT + 4, &(sector as u32).to_be_bytes()),
                move |e, _| {
                    matches!(e, Error::BatEntryOutOfRange { index: 1, sector: s, limit, .. }
                        if u64::from(*s) == sector && *limit == footer_at)
                },
                None,
                move |_| strings(&[&"BAT entry 1", &sector, &footer_at]),
            ),
        ));
    }

    // The dynamic header.
    rows.push((
        "dynamic header with a bad cookie".into(),
        refusal(
            Dynamic,
            |path| patch_file(path, HEADER, b"cxsparsX"),
            |e, _| {
                matches!(e, Error::BadCookie { structure: "dynamic header", offset: HEADER, found, .. }
                    if found == "cxsparsX")
            },
            None,
            |_| strings(&[&"dynamic header", &"512", &"cxsparse", &"cxsparsX"]),
        ),
    ));
    // A reserved byte changed without updating the checksum (which stays as stored).
    let header_checksums = |path: &Path| {
        let header = file_bytes(path, HEADER, 1024);
        (be_u32(&header, 36), vhd_checksum(&header, 36))
    };
    rows.push((
        "dynamic header with a bad checksum".into(),
        refusal(
            Dynamic,
            |path| patch_file(path, HEADER + 900, &[0x42]),
            move |e, path| {
                let (stored, computed) = header_checksums(path);
                matches!(e, Error::Checksum { path: Some(p), structure: "dynamic header", offset: HEADER, stored: s, computed: c }
                    if p == path && *s == stored && *c == computed && stored != computed)
            },
            Some("ERR_VHD_CHECKSUM"),
            move |path| {
                let (stored, computed) = header_checksums(path);
                strings(&[
                    &"dynamic header",
                    &"512",
                    &format!("{stored:#010x}"),
                    &format!("{computed:#010x}"),
                ])
            },
        ),
    ));
    // Block sizes that are not a power of two of at least 512.
    for block_size in [3 * 512 * 1024u32, 0, 256, 1000] {
        rows.push((
            format!("dynamic header with a block size of {block_size}"),
            refusal(
                Dynamic,
                move |path| {
                    edit_header(path, |h| {
                        h[32..36].copy_from_slice(&block_size.to_be_bytes())
                    })
                },
                move |e, _| {
                    matches!(e, Error::InvalidField { structure: "dynamic header", field: "block size", offset: 544, found, .. }
                        if *found == u64::from(block_size))
                },
                Some("ERR_VHD_INVALID_FIELD"),
                move |_| strings(&[&"block size", &"544", &block_size]),
            ),
        ));
    }
    rows.push((
        "dynamic header with too few BAT entries for the size".into(),
        refusal(
            Dynamic,
            |path| edit_header(path, |h| h[28..32].copy_from_slice(&3u32.to_be_bytes())),
            |e, _| {
                matches!(
                    e,
                    Error::InvalidField {
                        field: "max table entries",
                        offset: 540,
                        found: 3,
                        ..
                    }
                )
            },
            None,
            |_| strings(&[&"max table entries", &"540", &SIZE]),
        ),
    ));
    rows.push((
        "dynamic header with a table that does not fit in the file".into(),
        refusal(
            Dynamic,
            |path| {
                edit_header(path, |h| {
                    h[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes())
                })
            },
            |e, _| matches!(e, Error::Truncated { offset, .. } if *offset == 1 << 40),
            None,
            |_| strings(&[&"block allocation table", &(1u64 << 40)]),
        ),
    ));

    // The footers' data offset (where the dynamic header is) outside the file.
    for data_offset in [DYNAMIC_LEN, footer_at, u64::MAX - 100, 0, 100] {
        rows.push((
            format!("footers with a data offset of {data_offset}"),
            refusal(
                Dynamic,
                move |path| {
                    edit_footers(path, |f| {
                        f[16..24].copy_from_slice(&data_offset.to_be_bytes())
                    })
                },
                move |e, _| {
                    matches!(e, Error::InvalidField { structure: "footer", field: "data offset", found, .. }
                        if *found == data_offset)
                },
                None,
                move |_| strings(&[&"data offset", &data_offset]),
            ),
        ));
    }

    // A fixed image's footer with a bad checksum: there is no copy to fall back on.
    let footer_checksums = |path: &Path| {
        let footer = file_bytes(path, FIXED_LEN - 512, 512);
        (be_u32(&footer, 64), vhd_checksum(&footer, 64))
    };
    rows.push((
        "fixed footer with a bad checksum".into(),
        refusal(
            Fixed,
            |path| patch_file(path, FIXED_LEN - 512 + 200, &[7]),
            move |e, path| {
                let (stored, computed) = footer_checksums(path);
                matches!(e, Error::Checksum { path: Some(p), structure: "footer", offset, stored: s, computed: c }
                    if p == path && *offset == FIXED_LEN - 512 && *s == stored && *c == computed && stored != computed)
            },
            None,
            move |path| {
                let (stored, computed) = footer_checksums(path);
                strings(&[
                    &"footer",
                    &(FIXED_LEN - 512),
                    &format!("{stored:#010x}"),
                    &format!("{computed:#010x}"),
                ])
            },
        ),
    ));

    // Garbage files.
    rows.push((
        "an empty file".into(),
        refusal(
            Nothing,
            |path| std::fs::write(path, []).unwrap(),
            |e, _| matches!(e, Error::NotVhd { file_size: 0, .. }),
            Some("ERR_VHD_NOT_VHD"),
            |path| {
                vec![format!(
                    "{} is not a VHD image (it is 0 bytes long; a VHD has at least a 512-byte footer)",
                    path.display()
                )]
            },
        ),
    ));
    // No footer anywhere: not a VHD (random bytes may look like some format by chance).
    for (what, bytes) in [
        ("random bytes", rng.bytes(10_000)),
        ("0xFF bytes", vec![0xFF; 4096]),
        ("zeros", vec![0; 4096]),
        ("300 random bytes", rng.bytes(300)),
    ] {
        let size = bytes.len() as u64;
        rows.push((
            format!("a file of {what}"),
            refusal(
                Nothing,
                move |path| std::fs::write(path, &bytes).unwrap(),
                move |e, p| matches!(e, Error::NotVhd { file_size, path, .. } if *file_size == size && path == p),
                Some("ERR_VHD_NOT_VHD"),
                |path| vec![format!("{} is not a VHD image", path.display())],
            ),
        ));
    }
    // A footer's cookie out of place: a damaged VHD, told as such.
    {
        let bytes = b"conectix is not enough to be a footer\n".repeat(40);
        let at = bytes.len() as u64 - 512;
        rows.push((
            "a file of text".into(),
            refusal(
                Nothing,
                move |path| std::fs::write(path, &bytes).unwrap(),
                move |e, _| {
                    matches!(e, Error::BadCookie { structure: "footer", offset, .. } if *offset == at)
                },
                None,
                move |_| strings(&[&"footer", &at, &"conectix"]),
            ),
        ));
    }

    // Impossible footer fields.
    for code in [0u32, 1, 5, 6, 0xFFFF_FFFF] {
        rows.push((
            format!("fixed footer with disk type {code}"),
            refusal(
                Fixed,
                move |path| {
                    edit_fixed_footer(path, |f| f[60..64].copy_from_slice(&code.to_be_bytes()))
                },
                move |e, _| {
                    matches!(e, Error::InvalidField { field: "disk type", found, offset, .. }
                        if *found == u64::from(code) && *offset == FIXED_LEN - 512 + 60)
                },
                None,
                move |_| strings(&[&"disk type", &code]),
            ),
        ));
    }
    // A fixed footer that claims more data than the file holds, up to the largest number.
    for size in [SIZE + 512, 1 << 50, u64::MAX - 511, u64::MAX] {
        rows.push((
            format!("fixed footer with a size of {size}"),
            refusal(
                Fixed,
                move |path| {
                    edit_fixed_footer(path, |f| f[48..56].copy_from_slice(&size.to_be_bytes()))
                },
                |e, _| matches!(e, Error::Truncated { .. }),
                None,
                move |_| strings(&[&size]),
            ),
        ));
    }
    // A dynamic footer with an absurd size: the BAT cannot cover it.
    for size in [1u64 << 50, u64::MAX] {
        rows.push((
            format!("dynamic footers with a size of {size}"),
            refusal(
                Dynamic,
                move |path| edit_footers(path, |f| f[48..56].copy_from_slice(&size.to_be_bytes())),
                |e, _| {
                    matches!(
                        e,
                        Error::InvalidField {
                            field: "max table entries",
                            ..
                        }
                    )
                },
                None,
                move |_| strings(&[&size]),
            ),
        ));
    }
    // A differencing footer over a dynamic image's header, which names no parent at all
    // (no locators, no parent name): the parent is not found, and nothing was tried.
    rows.push((
        "a differencing footer over a header that names no parent".into(),
        refusal(
            Dynamic,
            |path| edit_footers(path, |f| f[60..64].copy_from_slice(&4u32.to_be_bytes())),
            |e, path| {
                matches!(e, Error::ParentNotFound { child, tried, .. }
                    if child == path && tried.is_empty())
            },
            Some("ERR_VHD_PARENT_NOT_FOUND"),
            |path| vec![path.display().to_string()],
        ),
    ));
    rows
}

#[test]
fn damaged_images_that_must_not_open() {
    let mut rng = Rng::new("damaged_images_that_must_not_open");
    let dir = TempDir::new("damaged");
    let (dynamic, _) = dynamic_image(&dir, "dynamic.vhd", &mut rng);
    let (fixed, _) = fixed_image(&dir, "fixed.vhd", &mut rng);
    assert_eq!(file_len(&fixed), FIXED_LEN);
    let rows = refusals(&mut rng);
    check_rows(rows, |name, row| {
        let file = format!("{}.vhd", name.replace(' ', "-"));
        let path = match row.base {
            Base::Dynamic => copy_of(&dynamic, &dir, &file),
            Base::Fixed => copy_of(&fixed, &dir, &file),
            Base::Nothing => dir.join(&file),
        };
        (row.damage)(&path);
        let e = open_err(&path);
        assert!((row.expect)(&e, &path), "{name}: {e:?}");
        if let Some(code) = row.code {
            assert_eq!(e.code(), code, "{name}");
        }
        let message = e.to_string();
        for part in (row.mentions)(&path) {
            assert!(
                message.contains(&part),
                "{name}: the message {message:?} does not mention {part:?}"
            );
        }
    });
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
