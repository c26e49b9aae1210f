//! Images made by other software (`shared/corpus` beside the repository), checked against
//! what the corpus README lists: type, size, creator, blocks used, and the SHA-256 of the
//! whole virtual disk as libvhdi and qemu read it. The expectations are read from the README
//! itself, so the README stays the single place where they are written down.
//!
//! Differencing images get the README's verdicts: `dfvfs/image-differential.vhd` reads
//! through its parent (found by the header's name alone) once checksums are ignored, and
//! `dfvfs/fat-differential.vhd`, whose parent is not in the corpus, fails to open unless the
//! caller names a parent, and is never read as if it stood alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vhd_core::footer::format_unique_id;
use vhd_core::parent_locator::platform;
use vhd_core::{
    create, CreateOptions, DiskType, DynamicHeader, Error, Footer, FooterSource, Image,
    OpenOptions, Parent, ParentPath, VirtualDisk,
};
use vhd_testkit::*;

const KNOWN_IMAGES: usize = 21;

// ---------------------------------------------------------------------------------------------
// The README's two tables

/// One image of the README, merged from its two tables.
#[derive(Debug, Clone)]
struct Listed {
    /// Path in the corpus as stored (`.gz` / `.bz2` included).
    file: String,
    /// `fixed`, `dynamic`, `differencing`, `(footer only)`…
    kind: String,
    /// libvhdi's virtual size (the footer's current size).
    size: Option<u64>,
    /// "2 MiB, 3 of 5": (blocks allocated, max table entries).
    blocks: Option<(u64, u64)>,
    /// Creator application (4 bytes), version (major, minor), time stamp cell.
    creator: Option<([u8; 4], (u16, u16), String)>,
    /// libvhdi's SHA-256 of the whole virtual disk, and the note after it.
    sha256: Option<String>,
    sha256_note: String,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

fn number(text: &str) -> Option<u64> {
    let digits: String = text
        .trim()
        .trim_matches('*')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    digits.trim().parse().ok()
}

fn parse_readme(dir: &Path) -> Vec<Listed> {
    let text = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut images: Vec<Listed> = Vec::new();
    let mut hashes: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut table = "";
    for line in text.lines() {
        if !line.starts_with('|') {
            table = "";
            continue;
        }
        let c = cells(line);
        if c[0] == "file" {
            table = if c[1] == "type" { "images" } else { "hashes" };
            continue;
        }
        if c[0].starts_with("---") {
            continue;
        }
        match table {
            "images" => {
                assert!(c.len() >= 7, "README images row: {line}");
                let size = c[2].split('/').next().and_then(number);
                let blocks = c[3].split_once(" of ").map(|(a, b)| {
                    let allocated = number(a.rsplit(',').next().unwrap()).unwrap();
                    (allocated, number(b).unwrap())
                });
                let creator = c[4].split('`').nth(1).map(|app| {
                    let app = app.replace("\\0", "\0");
                    let app: [u8; 4] = app.as_bytes().try_into().unwrap();
                    let rest = c[4].rsplit('`').next().unwrap().trim_start_matches('*');
                    let mut version = rest.split_whitespace().next().unwrap().split('.');
                    let major = version.next().unwrap().parse().unwrap();
                    let minor = version
                        .next()
                        .unwrap()
                        .trim_end_matches(',')
                        .parse()
                        .unwrap();
                    (app, (major, minor), rest.to_string())
                });
                images.push(Listed {
                    file: c[0].clone(),
                    kind: c[1].clone(),
                    size,
                    blocks,
                    creator,
                    sha256: None,
                    sha256_note: String::new(),
                });
            }
            "hashes" => {
                let mut libvhdi = c[1].splitn(2, ' ');
                let hash = libvhdi.next().unwrap().to_string();
                let note = libvhdi.next().unwrap_or("").to_string();
                hashes.insert(c[0].clone(), (hash, note));
            }
            _ => {}
        }
    }
    for image in &mut images {
        let plain = image
            .file
            .trim_end_matches(".gz")
            .trim_end_matches(".bz2")
            .to_string();
        // A chain's row names its parent too: "dfvfs/image-differential.vhd (+ image.vhd)".
        let row = hashes.get(&plain).or_else(|| {
            hashes
                .iter()
                .find(|(key, _)| key.starts_with(&format!("{plain} (+ ")))
                .map(|(_, value)| value)
        });
        if let Some((hash, note)) = row {
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                image.sha256 = Some(hash.clone());
                image.sha256_note = note.clone();
            }
        }
    }
    images
}

/// The fixed and dynamic images of the README (the ones we must read).
fn listed_images(dir: &Path) -> Vec<Listed> {
    let images: Vec<Listed> = parse_readme(dir)
        .into_iter()
        .filter(|i| i.kind == "fixed" || i.kind == "dynamic")
        .collect();
    assert_eq!(
        images.len(),
        KNOWN_IMAGES,
        "fixed and dynamic images in the README: {:#?}",
        images.iter().map(|i| &i.file).collect::<Vec<_>>()
    );
    for image in &images {
        assert!(image.size.is_some(), "{image:?}");
        assert!(image.sha256.is_some(), "no libvhdi hash for {image:?}");
        assert!(image.creator.is_some(), "{image:?}");
    }
    images
}

/// The corpus file, decompressed into `tmp` when it is stored compressed.
fn materialize(dir: &Path, file: &str, tmp: &TempDir) -> Option<PathBuf> {
    let path = dir.join(file);
    if file.ends_with(".gz") || file.ends_with(".bz2") {
        decompress(&path, tmp.path())
    } else {
        Some(path)
    }
}

/// Proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Checks the footer's creator and time stamp against the README's creator cell, e.g.
/// "`win ` 10.0, 2020-03-24" or "`*img` 2.0, 0x01234567".
fn check_creator(footer: &Footer, listed: &Listed) {
    let (app, version, rest) = listed.creator.as_ref().unwrap();
    assert_eq!(&footer.creator_application, app, "{}: creator", listed.file);
    assert_eq!(
        footer.creator_version_parts(),
        *version,
        "{}: creator version",
        listed.file
    );
    if let Some(hex) = rest.split_whitespace().find(|w| w.starts_with("0x")) {
        let raw = u32::from_str_radix(&hex[2..], 16).unwrap();
        assert_eq!(footer.timestamp, raw, "{}: time stamp", listed.file);
    } else {
        let date = civil_date((footer.unix_timestamp() / 86_400) as i64);
        assert!(
            rest.contains(&date),
            "{}: footer time {date} is not in {rest:?}",
            listed.file
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Whole images

/// The two ~127 GiB Virtual PC / Hyper-V images: nothing allocated, hashed by reasoning
/// rather than by streaming 136 GB.
const HUGE: u64 = 1 << 30;

#[test]
fn every_fixed_and_dynamic_image_reads_as_listed() {
    let Some(dir) = corpus_dir() else { return };
    if !require_tool("sha256sum") {
        return;
    }
    let images = listed_images(&dir);
    let readme = parse_readme(&dir);
    let mut hashed = 0;
    for listed in &images {
        let tmp = TempDir::new("corpus");
        let Some(path) = materialize(&dir, &listed.file, &tmp) else {
            continue;
        };
        let what = &listed.file;
        let size = listed.size.unwrap();
        let expected_hash = listed.sha256.as_deref().unwrap();

        // dfvfs/image.vhd has a bad footer checksum: strict by default, readable on request.
        let strict = Image::open(&path, &read_only());
        let image = if listed.file == "dfvfs/image.vhd" {
            let e = strict.expect_err("dfvfs/image.vhd has a bad footer checksum");
            check_bad_footer_checksum(&e, &path);
            let options = OpenOptions {
                read_only: true,
                ignore_checksums: true,
                ..OpenOptions::default()
            };
            let image = Image::open(&path, &options).unwrap();
            assert!(image.read_only_reason().unwrap().contains("checksum"));
            image
        } else {
            strict.unwrap_or_else(|e| panic!("{what}: {e}"))
        };

        let expected_type = if listed.kind == "fixed" {
            DiskType::Fixed
        } else {
            DiskType::Dynamic
        };
        assert_eq!(image.disk_type(), expected_type, "{what}: type");
        assert_eq!(image.size(), size, "{what}: size");
        assert_eq!(image.footer().current_size, size, "{what}: current size");
        check_creator(image.footer(), listed);
        if listed.file != "dfvfs/image.vhd" {
            assert_eq!(image.footer_source(), FooterSource::End, "{what}");
        }

        let allocated = match &image {
            Image::Dynamic(d) => {
                // The footer copy at offset 0 is the trailing footer (README).
                let len = file_len(&path);
                assert_eq!(file_bytes(&path, 0, 512), file_bytes(&path, len - 512, 512));
                let (used, entries) = listed.blocks.expect("blocks of a dynamic image");
                assert_eq!(d.bat().len() as u64, entries, "{what}: max table entries");
                assert_eq!(d.block_size(), 2 << 20, "{what}: block size");
                let allocated = d.bat().allocated().count() as u64;
                assert_eq!(allocated, used, "{what}: blocks used");
                allocated
            }
            _ => 0,
        };

        if size > HUGE {
            // Nothing is allocated, so the disk is `size` zero bytes, and the README states
            // that its libvhdi hash is the hash of that many zero bytes.
            assert_eq!(allocated, 0, "{what}: a huge image with data");
            let zeros_note = format!("({} zero bytes)", thousands(size));
            let zero_hash = readme
                .iter()
                .find(|i| i.sha256_note == zeros_note)
                .and_then(|i| i.sha256.clone())
                .unwrap_or_else(|| panic!("the README gives no hash for {zeros_note}"));
            assert_eq!(expected_hash, zero_hash, "{what}: listed hash");
            // Reads anywhere, the last byte included, give zeros.
            let mut buf = vec![0xAAu8; 1 << 20];
            for offset in [0, 1 << 30, size / 2 + 12345, size - (1 << 20)] {
                assert_eq!(image.read_at(&mut buf, offset).unwrap(), buf.len());
                assert!(buf.iter().all(|&b| b == 0), "{what}: data at {offset}");
                buf.fill(0xAA);
            }
            assert_eq!(image.read_at(&mut buf, size - 1).unwrap(), 1);
            assert_eq!(buf[0], 0);
            assert_eq!(image.read_at(&mut buf, size).unwrap(), 0);
        } else {
            assert_eq!(sha256_disk(&image), expected_hash, "{what}: SHA-256");
            hashed += 1;
        }
        println!("{what}: ok");
    }
    assert!(
        hashed >= KNOWN_IMAGES - 2 || !in_ci(),
        "only {hashed} images hashed"
    );
}

fn check_bad_footer_checksum(e: &Error, path: &Path) {
    let size = file_len(path);
    let footer = file_bytes(path, size - 512, 512);
    let stored = be_u32(&footer, 64);
    let computed = vhd_checksum(&footer, 64);
    assert_ne!(stored, computed);
    assert_eq!(e.code(), "ERR_VHD_CHECKSUM", "{e}");
    assert!(
        matches!(e, Error::Checksum { structure: "footer", stored: s, computed: c, .. }
            if *s == stored && *c == computed),
        "{e:?}"
    );
    let message = e.to_string();
    for part in [
        "footer".to_string(),
        format!("{stored:#010x}"),
        format!("{computed:#010x}"),
    ] {
        assert!(message.contains(&part), "{message:?} lacks {part:?}");
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[test]
fn virtual_pc_size_is_the_current_size_and_qemus_is_the_geometry_size() {
    let Some(dir) = corpus_dir() else { return };
    let path = dir.join("qemu-iotests/virtualpc-dynamic.vhd");
    let image = open_ro(&path);
    assert_eq!(&image.footer().creator_application, b"vpc ");
    assert_eq!(image.size(), 136_365_211_648);
    assert_eq!(image.footer().geometry_size(), 136_363_130_880);
    // The spec's geometry of the current size is what Virtual PC stored.
    let (c, h, s) = spec_geometry(136_365_211_648 / 512);
    let g = image.footer().geometry;
    assert_eq!(
        (
            u64::from(g.cylinders),
            u64::from(g.heads),
            u64::from(g.sectors_per_track)
        ),
        (c, h, s)
    );

    // Hyper-V's image of the same size, and Disk2VHD's maximal geometry.
    let image = Image::open(
        dir.join("qemu-iotests/hyperv2012r2-dynamic.vhd"),
        &read_only(),
    )
    .unwrap();
    assert_eq!(image.size(), 136_365_211_648);
    assert_eq!(image.footer().geometry_size(), 136_363_130_880);
}

#[test]
fn disk2vhd_image() {
    let Some(dir) = corpus_dir() else { return };
    let tmp = TempDir::new("d2v");
    let Some(path) = materialize(&dir, "qemu-iotests/d2v-zerofilled.vhd.bz2", &tmp) else {
        return;
    };
    let image = open_ro(&path);
    let footer = image.footer();
    assert_eq!(&footer.creator_application, b"d2v\0");
    assert_eq!(footer.creator_application_str(), "d2v");
    assert!(footer.geometry.is_max());
    assert_eq!(image.size(), 263_454_720);
    let Image::Dynamic(d) = &image else {
        panic!("not dynamic")
    };
    // Every block is allocated, and not in file order.
    let sectors: Vec<u32> = d.bat().allocated().map(|(_, s)| s).collect();
    assert_eq!(sectors.len(), 126);
    assert!(sectors.windows(2).any(|w| w[0] > w[1]), "BAT in order");
    // The last block is only partly inside the disk (qemu: last extent 1,310,720 bytes).
    assert_eq!(image.size() - 125 * (2 << 20), 1_310_720);
}

// ---------------------------------------------------------------------------------------------
// Contents the source projects' own tests expect

#[test]
fn dissect_hypervisor_expectations() {
    let Some(dir) = corpus_dir() else { return };
    if !require_tool("sha256sum") {
        return;
    }
    let tmp = TempDir::new("dissect");
    for (file, sector0) in [
        (
            "dissect-hypervisor/fixed.vhd.gz",
            "3a646d027565d4c95609d86541f06bf07ce5486b5b97b6c1a8361b0a580ab525",
        ),
        (
            "dissect-hypervisor/dynamic.vhd.gz",
            "ac22463298b6e8d85e8f24f310b73aedf6917f740c16fb126730d97ac51e6d0a",
        ),
    ] {
        let Some(path) = materialize(&dir, file, &tmp) else {
            return;
        };
        let image = open_ro(&path);
        assert_eq!(image.size(), 10_485_760);
        let mut sector = [0u8; 512];
        assert_eq!(image.read_at(&mut sector, 0).unwrap(), 512);
        assert_eq!(sha256_bytes(&sector), sector0, "{file}: sector 0");
        assert_eq!(image.read_at(&mut sector, 0x20_0000).unwrap(), 512);
        assert!(sector.iter().all(|&b| b == 0xFF), "{file}: 0x200000");
        if file.contains("dynamic") {
            let mut run = vec![0xAAu8; 16 * 512];
            assert_eq!(image.read_at(&mut run, 0x3FFF * 512).unwrap(), run.len());
            assert!(
                run.iter().all(|&b| b == 0),
                "{file}: sectors 0x3FFF..0x400E"
            );
        }
    }
}

#[test]
fn rdisk_expectations() {
    let Some(dir) = corpus_dir() else { return };
    for file in ["rdisk/vhd_fixed_small.vhd", "rdisk/vhd_dynamic_small.vhd"] {
        let image = Image::open(dir.join(file), &read_only()).unwrap();
        let size = image.size();
        assert_eq!(size, 3_145_728);
        let mut buf = [0u8; 4];
        assert_eq!(image.read_at(&mut buf, size - 1).unwrap(), 1);
        assert_eq!(image.read_at(&mut buf, size - 2).unwrap(), 2);
        assert_eq!(image.read_at(&mut buf, size).unwrap(), 0);
        assert_eq!(image.read_at(&mut buf, size + 1).unwrap(), 0);
        let mut mbr = [0u8; 512];
        image.read_at(&mut mbr, 0).unwrap();
        assert_eq!(&mbr[510..512], &[0x55, 0xAA], "{file}");
        let entry = &mbr[446..462];
        assert_eq!(entry[4], 0x0E, "{file}: partition type");
        let lba = u32::from_le_bytes(entry[8..12].try_into().unwrap());
        let count = u32::from_le_bytes(entry[12..16].try_into().unwrap());
        assert_eq!(
            (u64::from(lba) * 512, u64::from(count) * 512),
            (65_536, 2_031_616)
        );
    }
    // Footer reserved bytes that are not zero are kept (and covered by the checksum).
    let image = Image::open(dir.join("rdisk/vhd_fixed_small.vhd"), &read_only()).unwrap();
    let mut sector = [0u8; 512];
    image.read_at(&mut sector, 0).unwrap();
    assert_eq!(&image.footer().reserved[..], &sector[85..512]);
    // The smallest dynamic image: 2,560 bytes, nothing allocated.
    let image = Image::open(dir.join("rdisk/du.vhd"), &read_only()).unwrap();
    assert_eq!(image.footer().creator_application_str(), "dutl");
    assert_eq!(read_all(&image), vec![0u8; 3_145_728]);
}

#[test]
fn dfvfs_ext2_images_hold_the_expected_files() {
    let Some(dir) = corpus_dir() else { return };
    let passwords: &[u8] = b"place,user,password\nbank,joesmith,superrich\nalarm system,-,1234\ntreasure chest,-,1111\nuber secret laire,admin,admin\n";
    let another: &[u8] = b"This is another file.\n";
    for (file, options) in [
        ("dfvfs/ext2.vhd", read_only()),
        (
            "dfvfs/image.vhd",
            OpenOptions {
                read_only: true,
                ignore_checksums: true,
                ..OpenOptions::default()
            },
        ),
    ] {
        let image = Image::open(dir.join(file), &options).unwrap();
        let all = read_all(&image);
        // The ext2 superblock magic at 1024 + 56.
        assert_eq!(&all[1080..1082], &[0x53, 0xEF], "{file}: ext2 magic");
        for needle in [passwords, another] {
            assert!(
                all.windows(needle.len()).any(|w| w == needle),
                "{file}: {:?} not found",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Differencing images

/// The README's row for `file`.
fn listed(dir: &Path, file: &str) -> Listed {
    parse_readme(dir)
        .into_iter()
        .find(|i| i.file == file)
        .unwrap_or_else(|| panic!("{file} is not in the README"))
}

/// The README's notes cell of `file`'s row in the images table.
fn readme_notes(dir: &Path, file: &str) -> String {
    let text = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("| {file} |")))
        .unwrap_or_else(|| panic!("no README row for {file}"));
    cells(line).last().unwrap().clone()
}

/// Sector numbers from README text like "134, 143, 152–159, 184–185 and 196".
fn sector_list(text: &str) -> Vec<u64> {
    let mut sectors = Vec::new();
    for item in text.split([',']).flat_map(|p| p.split(" and ")) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once(['–', '-']) {
            Some((a, b)) => sectors.extend(number(a).unwrap()..=number(b).unwrap()),
            None => sectors.push(number(item).unwrap_or_else(|| panic!("{item:?}"))),
        }
    }
    sectors
}

/// `dfvfs/image-differential.vhd`: bad footer and header checksums, no parent locators, a
/// parent time stamp of 0. Strict by default; with checksums ignored it opens read-only,
/// finds `image.vhd` beside it by the header's parent name, and reads to libvhdi's hash.
#[test]
fn dfvfs_image_differential_reads_through_its_parent() {
    let Some(dir) = corpus_dir() else { return };
    if !require_tool("sha256sum") {
        return;
    }
    let path = dir.join("dfvfs/image-differential.vhd");
    let parent_path = dir.join("dfvfs/image.vhd");
    let row = listed(&dir, "dfvfs/image-differential.vhd");
    assert_eq!(row.kind, "differencing");

    let e = Image::open(&path, &read_only()).unwrap_err();
    check_bad_footer_checksum(&e, &path);

    let options = OpenOptions {
        read_only: true,
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let image = Image::open(&path, &options).unwrap();
    assert_eq!(image.disk_type(), DiskType::Differencing);
    assert!(image.read_only_reason().unwrap().contains("checksum"));
    assert_eq!(image.size(), row.size.unwrap());
    check_creator(image.footer(), &row);
    let header = image.header().unwrap();
    assert!(header.parent_locators.iter().all(|l| l.is_empty()));
    assert_eq!(header.parent_timestamp, 0);
    assert_eq!(header.parent_name(), "image.vhd");
    assert_eq!(
        format_unique_id(&header.parent_unique_id),
        "d49c5c80-350a-4a89-898a-5ad6d10f6578"
    );
    let Image::Differencing(d) = &image else {
        unreachable!()
    };
    let (used, entries) = row.blocks.unwrap();
    assert_eq!(d.bat().len() as u64, entries);
    assert_eq!(d.bat().allocated().count() as u64, used);

    assert_eq!(image.chain(), vec![path.as_path(), parent_path.as_path()]);
    let Some(Parent::Image(parent)) = image.parent() else {
        panic!("no VHD parent")
    };
    assert_eq!(parent.footer().unique_id, header.parent_unique_id);
    assert!(parent.read_only_reason().is_some());
    let expected = row.sha256.as_deref().expect("a libvhdi hash for the chain");
    assert_eq!(sha256_disk(&image), expected, "the chain's SHA-256");
    // Its bitmap is all ones and its data is the parent's (README).
    assert_eq!(read_all(&image), read_all(parent.as_ref()));
    drop(image);

    // Copied elsewhere, the pair still opens (no time stamp to break), and asking for write
    // access does not make it writable.
    let tmp = TempDir::new("image-differential");
    for name in ["image-differential.vhd", "image.vhd"] {
        std::fs::write(
            tmp.join(name),
            std::fs::read(dir.join("dfvfs").join(name)).unwrap(),
        )
        .unwrap();
    }
    let options = OpenOptions {
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let mut image = Image::open(tmp.join("image-differential.vhd"), &options).unwrap();
    assert_eq!(image.chain()[1], tmp.join("image.vhd"));
    let e = image.write_at(&[1], 0).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_READ_ONLY", "{e}");
    assert_eq!(sha256_disk(&image), expected);
}

/// `dfvfs/fat-differential.vhd`: real Windows locators to a parent the corpus lacks. It must
/// not open (and never read as if it stood alone) unless the caller names a parent.
#[test]
fn dfvfs_fat_differential_needs_its_parent() {
    let Some(dir) = corpus_dir() else { return };
    let path = dir.join("dfvfs/fat-differential.vhd");
    let row = listed(&dir, "dfvfs/fat-differential.vhd");
    assert_eq!(row.kind, "differencing");
    let size = row.size.unwrap();
    let absolute = r"C:\Projects\dfvfs\test_data\fat-parent.vhd";

    // Whatever is ignored, the parent is missing; the error names it and where we looked.
    for options in [
        read_only(),
        OpenOptions {
            read_only: true,
            ignore_checksums: true,
            ignore_parent_timestamp: true,
            ..OpenOptions::default()
        },
    ] {
        let e = Image::open(&path, &options).unwrap_err();
        let beside = dir.join("dfvfs/fat-parent.vhd");
        match &e {
            Error::ParentNotFound {
                child,
                parent_name,
                tried,
            } => {
                assert_eq!(child, &path);
                assert_eq!(parent_name, absolute);
                // `.\fat-parent.vhd` (W2ru) and the Windows absolute path (W2ku, and the
                // header's name) all lead to the same place on this system.
                assert_eq!(
                    tried,
                    &vec![vhd_core::TriedParent {
                        path: beside.clone(),
                        rejection: vhd_core::ParentRejection::Missing
                    }]
                );
            }
            other => panic!("expected ParentNotFound, got {other:?}"),
        }
        assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND");
        let message = e.to_string();
        for part in [
            path.display().to_string(),
            "fat-parent.vhd".to_string(),
            beside.display().to_string(),
        ] {
            assert!(message.contains(&part), "{message:?} lacks {part:?}");
        }
    }

    // The structures, from the file's bytes.
    let bytes = std::fs::read(&path).unwrap();
    let footer = Footer::parse(bytes[bytes.len() - 512..].try_into().unwrap(), 0).unwrap();
    footer.verify_checksum(0).unwrap();
    assert_eq!(footer.disk_type(), Some(DiskType::Differencing));
    assert_eq!(footer.current_size, size);
    check_creator(&footer, &row);
    let at = footer.data_offset as usize;
    let header = DynamicHeader::parse(bytes[at..at + 1024].try_into().unwrap(), at as u64).unwrap();
    header.verify_checksum(at as u64).unwrap();
    assert_eq!(header.parent_name(), absolute);
    assert_eq!(header.parent_timestamp, 0);
    assert_eq!(
        format_unique_id(&header.parent_unique_id),
        "5fa21a55-f394-aa4d-9958-1951a67d5540"
    );
    let used: Vec<_> = header
        .parent_locators
        .iter()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(used.len(), 2);
    let (w2ku, w2ru) = (used[0], used[1]);
    assert_eq!(
        (w2ku.platform_name().as_str(), w2ku.platform_code),
        ("W2ku", platform::W2KU)
    );
    assert_eq!(
        (
            w2ku.platform_data_length,
            w2ku.platform_data_offset,
            w2ku.platform_data_space
        ),
        (84, 4096, 4096)
    );
    assert_eq!(
        (w2ru.platform_name().as_str(), w2ru.platform_code),
        ("W2ru", platform::W2RU)
    );
    assert_eq!(
        (
            w2ru.platform_data_length,
            w2ru.platform_data_offset,
            w2ru.platform_data_space
        ),
        (32, 12288, 65536)
    );
    let text = |l: &vhd_core::ParentLocator| {
        let start = l.platform_data_offset as usize;
        utf16le_text(&bytes[start..start + l.platform_data_length as usize])
    };
    assert_eq!(text(w2ku), absolute);
    assert_eq!(text(w2ru), r".\fat-parent.vhd");
    // The BAT sits between the two locators' data (README), and the data space is in bytes:
    // counted in sectors, 4096 would overlap the BAT.
    assert_eq!(header.table_offset, 8192);
    assert!(w2ku.platform_data_offset + u64::from(w2ku.platform_data_space) <= 8192);
    assert!(w2ru.platform_data_offset > header.table_offset);

    // Named by the caller, a raw parent serves: the sectors the README lists come from the
    // child, every other one from the parent.
    let notes = readme_notes(&dir, "dfvfs/fat-differential.vhd");
    let listed_sectors = notes
        .split_once("only sectors ")
        .and_then(|(_, rest)| rest.split_once(" are present"))
        .map(|(list, _)| sector_list(list))
        .expect("the README lists the sectors present in the child");
    let tmp = TempDir::new("fat-differential");
    let raw = tmp.join("fat-parent.raw");
    std::fs::write(&raw, vec![0xA5u8; size as usize]).unwrap();
    let options = OpenOptions {
        read_only: true,
        parents: vec![ParentPath::Raw(raw.clone())],
        ..OpenOptions::default()
    };
    let image = Image::open(&path, &options).unwrap();
    assert_eq!(image.size(), size);
    assert_eq!(image.chain(), vec![path.as_path(), raw.as_path()]);
    let Image::Differencing(d) = &image else {
        unreachable!()
    };
    let (used, entries) = row.blocks.unwrap();
    assert_eq!(d.bat().len() as u64, entries);
    assert_eq!(d.bat().allocated().count() as u64, used);
    assert_eq!(d.block_size(), 2 << 20);
    let all = read_all(&image);
    let from_child: Vec<u64> = all
        .chunks(512)
        .enumerate()
        .filter(|(_, s)| s.iter().any(|&b| b != 0xA5))
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(from_child, listed_sectors, "sectors read from the child");
    assert!(all[194 * 512..].starts_with(b"place,user,password"));
    assert!(all[196 * 512..].starts_with(b"This is another file."));
    drop(image);

    // A VHD parent with the unique id the child records (and the README's size) serves too;
    // one with another unique id does not.
    for (name, unique_id, ok) in [
        ("fat-parent.vhd", Some(header.parent_unique_id), true),
        ("impostor.vhd", None, false),
    ] {
        let parent = tmp.join(name);
        let create_options = CreateOptions {
            unique_id,
            ..CreateOptions::new(DiskType::Fixed, size)
        };
        drop(create(&parent, &create_options).unwrap());
        let options = OpenOptions {
            read_only: true,
            parents: vec![ParentPath::Vhd(parent.clone())],
            ..OpenOptions::default()
        };
        match Image::open(&path, &options) {
            Ok(image) => {
                assert!(ok, "{name} was accepted");
                assert_eq!(image.chain(), vec![path.as_path(), parent.as_path()]);
                let all = read_all(&image);
                assert!(all[194 * 512..].starts_with(b"place,user,password"));
                assert!(all[..134 * 512].iter().all(|&b| b == 0));
            }
            Err(e) => {
                assert!(!ok, "{name}: {e}");
                assert_eq!(e.code(), "ERR_VHD_PARENT_MISMATCH", "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Structures on their own

#[test]
fn node_vhd_footer_bin() {
    let Some(dir) = corpus_dir() else { return };
    let bytes: [u8; 512] = std::fs::read(dir.join("node-vhd/footer.bin"))
        .unwrap()
        .try_into()
        .unwrap();
    let f = Footer::parse(&bytes, 0).unwrap();
    f.verify_checksum(0).unwrap();
    assert_eq!(f.features, 2);
    assert_eq!(f.format_version, 0x0001_0000);
    assert_eq!(f.data_offset, u64::MAX);
    assert_eq!(f.timestamp, 0x20DC_6503);
    assert_eq!(f.unix_timestamp() * 1000, 1_497_999_491_000);
    assert_eq!(&f.creator_application, b"win ");
    assert_eq!(f.creator_version_parts(), (10, 0));
    assert_eq!(f.creator_host_os, 0x5769_326B);
    assert_eq!(f.original_size, 10_485_760);
    assert_eq!(f.current_size, 10_485_760);
    let g = f.geometry;
    assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (301, 4, 17));
    assert_eq!(f.disk_type(), Some(DiskType::Fixed));
    assert_eq!(f.checksum, 4_294_960_592);
    assert_eq!(
        f.unique_id,
        hex16("71a5d438d9d5f44b8d26726a7e7ef18e"),
        "unique id"
    );
    assert_eq!(f.saved_state, 0);
    assert_eq!(f.to_bytes(), bytes, "parse then write");

    // It is the footer of node-vhd/fixed.vhd.
    let tmp = TempDir::new("node-footer");
    if let Some(path) = materialize(&dir, "node-vhd/fixed.vhd.gz", &tmp) {
        let image = open_ro(&path);
        assert_eq!(image.footer(), &f);
    }
}

#[test]
fn node_vhd_header_bin() {
    let Some(dir) = corpus_dir() else { return };
    // The first 1,536 bytes of node-vhd/dynamic.vhd: footer copy, then the dynamic header.
    let bytes = std::fs::read(dir.join("node-vhd/header.bin")).unwrap();
    assert_eq!(bytes.len(), 1536);
    let footer_bytes: [u8; 512] = bytes[..512].try_into().unwrap();
    let footer = Footer::parse(&footer_bytes, 0).unwrap();
    footer.verify_checksum(0).unwrap();
    assert_eq!(footer.disk_type(), Some(DiskType::Dynamic));
    assert_eq!(footer.data_offset, 512);
    assert_eq!(footer.current_size, 536_870_912);
    assert_eq!(footer.to_bytes(), footer_bytes);

    let header_bytes: [u8; 1024] = bytes[512..].try_into().unwrap();
    let header = DynamicHeader::parse(&header_bytes, 512).unwrap();
    header.verify_checksum(512).unwrap();
    assert_eq!(header.data_offset, u64::MAX);
    assert_eq!(header.table_offset, 1536);
    assert_eq!(header.header_version, 0x0001_0000);
    assert_eq!(header.max_table_entries, 256);
    assert_eq!(header.block_size, 2 << 20);
    assert_eq!(header.checksum, 0xFFFF_F476);
    assert!(header.parent_locators.iter().all(|l| l.is_empty()));
    assert_eq!(header.parent_name(), "");
    assert_eq!(header.to_bytes(), header_bytes, "parse then write");

    let tmp = TempDir::new("node-header");
    if let Some(path) = materialize(&dir, "node-vhd/dynamic.vhd.gz", &tmp) {
        let image = open_ro(&path);
        assert_eq!(image.footer(), &footer);
        assert_eq!(image.header(), Some(&header));
    }
}

#[test]
fn libvhdi_file_footer() {
    let Some(dir) = corpus_dir() else { return };
    let bytes: [u8; 512] = std::fs::read(dir.join("libvhdi-fragments/file_footer.1"))
        .unwrap()
        .try_into()
        .unwrap();
    let f = Footer::parse(&bytes, 0).unwrap();
    f.verify_checksum(0).unwrap();
    assert_eq!(f.disk_type(), Some(DiskType::Differencing));
    assert_eq!(f.data_offset, 512);
    assert_eq!(f.current_size, 536_870_912);
    assert_eq!(f.original_size, 536_870_912);
    assert_eq!(&f.creator_application, b"vpc ");
    assert_eq!(f.creator_version_parts(), (1, 0));
    assert_eq!(
        civil_date((f.unix_timestamp() / 86_400) as i64),
        "2013-05-12"
    );
    let g = f.geometry;
    assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (1040, 16, 63));
    assert_eq!(f.checksum, 0xFFFF_F023);
    assert_eq!(f.unique_id, hex16("40d56d369ab84fe4a31a121fe2bf15eb"));
    assert_eq!(f.to_bytes(), bytes, "parse then write");
}

#[test]
fn libvhdi_dynamic_disk_header() {
    let Some(dir) = corpus_dir() else { return };
    let bytes: [u8; 1024] = std::fs::read(dir.join("libvhdi-fragments/dynamic_disk_header.1"))
        .unwrap()
        .try_into()
        .unwrap();
    let h = DynamicHeader::parse(&bytes, 512).unwrap();
    h.verify_checksum(512).unwrap();
    assert_eq!(h.table_offset, 1536);
    assert_eq!(h.max_table_entries, 256);
    assert_eq!(h.block_size, 2 << 20);
    assert_eq!(h.parent_name(), "dynamic.vhd");
    assert_eq!(
        h.parent_unique_id,
        hex16("d49c5c80350a4a89898a5ad6d10f6578")
    );
    assert_eq!(h.parent_timestamp, 421_660_540);
    let used: Vec<(String, u32, u32, u32, u64)> = h
        .parent_locators
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            (
                l.platform_name(),
                l.platform_code,
                l.platform_data_space,
                l.platform_data_length,
                l.platform_data_offset,
            )
        })
        .collect();
    assert_eq!(
        used,
        vec![
            ("W2ku".to_string(), platform::W2KU, 512, 42, 4608),
            ("W2ru".to_string(), platform::W2RU, 512, 26, 4096),
            ("Wi2k".to_string(), platform::WI2K, 512, 21, 3584),
            ("Wi2r".to_string(), platform::WI2R, 512, 13, 3072),
        ]
    );
    // They are entries 4 to 7; 0 to 3 are empty.
    assert!(h.parent_locators[..4].iter().all(|l| l.is_empty()));
    assert_eq!(h.to_bytes(), bytes, "parse then write");
}

fn hex16(hex: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// FreeBSD mkimg: the hexdump text is the exact image

/// Rebuilds a file from `hexdump -C` output: `*` repeats the previous 16-byte line up to the
/// next offset, and the last line is the file's length.
fn parse_hexdump(text: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut last_line: Vec<u8> = Vec::new();
    let mut repeating = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line == "*" {
            repeating = true;
            continue;
        }
        let (offset, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
        let offset = usize::from_str_radix(offset, 16).unwrap();
        if repeating {
            while out.len() < offset {
                out.extend_from_slice(&last_line);
            }
            repeating = false;
        }
        assert_eq!(out.len(), offset, "hexdump offset {offset:#x}");
        let hex_part = rest.split('|').next().unwrap();
        last_line = hex_part
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        out.extend_from_slice(&last_line);
    }
    out
}

#[test]
fn freebsd_mkimg_hexdumps_are_the_images() {
    let Some(dir) = corpus_dir() else { return };
    let tmp = TempDir::new("mkimg");
    let mut compared = 0;
    for entry in std::fs::read_dir(dir.join("freebsd-mkimg")).unwrap() {
        let hex_path = entry.unwrap().path();
        if hex_path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let gz = hex_path.with_extension("gz");
        let Some(image) = decompress(&gz, tmp.path()) else {
            return;
        };
        let expected = parse_hexdump(&std::fs::read_to_string(&hex_path).unwrap());
        let actual = std::fs::read(&image).unwrap();
        assert_same_bytes(&actual, &expected, &hex_path.display().to_string());
        // And we read the image whose bytes mkimg's own test fixes.
        let opened = open_ro(&image);
        assert_eq!(&opened.footer().creator_application, b"*img");
        compared += 1;
    }
    assert_eq!(compared, 6);
}

// ---------------------------------------------------------------------------------------------
// Writing into images made by others

/// Copies of foreign dynamic images (Windows 10 with its 4 KiB gap and unordered BAT,
/// Windows 7, mkimg with its large zero padding, qemu, the 2,560-byte `dutl` image) take
/// random writes; then qemu, libvhdi and we read back exactly the model, and the footer is
/// rewritten byte for byte (reserved junk included).
#[test]
fn writing_into_foreign_dynamic_images() {
    let Some(dir) = corpus_dir() else { return };
    if !(require_qemu() && require_pyvhdi()) {
        return;
    }
    let mut rng = Rng::new("corpus writing_into_foreign_dynamic_images");
    for file in [
        "dissect-hypervisor/dynamic.vhd.gz",
        "rdisk/win7dyn.vhd.gz",
        "freebsd-mkimg/img-63x255-512-mbr.vhd.gz",
        "freebsd-mkimg/img-63x255-4096-gpt.vhd.gz",
        "dfvfs/ext2.vhd",
        "rdisk/du.vhd",
        "rdisk/vhd_dynamic_small.vhd",
    ] {
        let tmp = TempDir::new("foreign");
        let Some(source) = materialize(&dir, file, &tmp) else {
            return;
        };
        let path = tmp.join("copy.vhd");
        copy_writable(&source, &path);
        let old_len = file_len(&path);
        let old_footer = file_bytes(&path, old_len - 512, 512);

        let mut model;
        {
            let mut image = open_rw(&path);
            model = read_all(&image);
            let size = image.size();
            let block = 2u64 << 20;
            for i in 0..25 {
                let offset = match i % 3 {
                    0 => rng.below(size),
                    1 => (rng.below(size.div_ceil(block)) * block + rng.below(600))
                        .saturating_sub(300)
                        .min(size - 1),
                    _ => size - rng.range(1, 2000.min(size)),
                };
                let len = rng.range(1, 200_000).min(size - offset) as usize;
                let data = rng.bytes(len);
                image.write_at(&data, offset).unwrap();
                model[offset as usize..offset as usize + len].copy_from_slice(&data);
            }
            image.flush().unwrap();
        }
        let new_len = file_len(&path);
        assert_eq!(
            file_bytes(&path, new_len - 512, 512),
            old_footer,
            "{file}: the moved footer"
        );
        assert_eq!(
            file_bytes(&path, 0, 512),
            old_footer,
            "{file}: the footer copy"
        );

        let image = open_ro(&path);
        assert_same_bytes(&read_all(&image), &model, &format!("{file}: reopened"));

        assert_same_bytes(
            &qemu_raw(&path, &tmp),
            &model,
            &format!("{file}: qemu-img convert"),
        );
        assert_same_bytes(
            &libvhdi_read_chain(&[&path], &tmp),
            &model,
            &format!("{file}: pyvhdi"),
        );
        println!("{file}: {old_len} -> {new_len} bytes: ok");
    }
}
