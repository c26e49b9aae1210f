//! Images made by qemu-img (`-f vpc`), read by us exactly as qemu reads them.
//!
//! qemu-img writes creator `qemu` and, without `force_size`, rounds the size up to a whole
//! CHS geometry and stores that rounded size as the current size; with `force_size=on` it
//! writes creator `qem2`, the exact size and the maximum geometry. qemu 10 sizes `qemu`
//! images by CHS and `qem2` images by the current size, and we always use the current size,
//! so both readers must agree on every image here.

use std::path::Path;
use std::process::Command;
use vhd_core::{DiskType, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

/// Sizes chosen to hit the awkward cases: not a multiple of the 2 MiB block, not a CHS
/// multiple, an exact CHS multiple (150/4/17), and smaller than one block.
const SIZES: &[u64] = &[
    6_000_128, // 11,719 sectors: neither a block nor a CHS multiple
    4 << 20,   // two whole blocks, but not a CHS multiple (8,192 sectors)
    5_222_400, // exactly 150/4/17, 2.49 blocks
    1_049_088, // 1 MiB + 512: one partial block
];

const BLOCK: u64 = 2 << 20;

/// Random data with zero stripes: a whole zero block (if there is room), and a few zero runs
/// of random, unaligned offset and length.
fn source_data(rng: &mut Rng, len: u64) -> Vec<u8> {
    let mut data = rng.bytes(len as usize);
    if len > 2 * BLOCK {
        data[BLOCK as usize..2 * BLOCK as usize].fill(0);
    }
    for _ in 0..4 {
        let start = rng.below(len) as usize;
        let run = rng.range(1, 300_000) as usize;
        let end = (start + run).min(data.len());
        data[start..end].fill(0);
    }
    data
}

/// `qemu_create` (see common) that can also leave `force_size` off, so that qemu rounds
/// the size to a CHS geometry as it does by default.
fn qemu_create_with_force_size(path: &Path, subformat: &str, force_size: bool, size: u64) {
    let options = format!(
        "subformat={subformat},force_size={}",
        if force_size { "on" } else { "off" }
    );
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "vpc", "-o", &options])
            .arg(path)
            .arg(size.to_string()),
    );
}

/// Checks one qemu-made image against what qemu reads from it and against the source data.
fn check_image(
    image: &Path,
    dir: &TempDir,
    rng: &mut Rng,
    subformat: &str,
    force_size: bool,
    source: &[u8],
) {
    let requested = source.len() as u64;
    let what = format!(
        "{subformat} image of {requested} bytes, force_size={force_size} ({})",
        image.display()
    );
    let expected = qemu_raw(image, dir);
    let qemu_size = expected.len() as u64;

    let disk = Image::open(
        image,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let footer = disk.footer().clone();
    let expected_type = if subformat == "fixed" {
        DiskType::Fixed
    } else {
        DiskType::Dynamic
    };
    assert_eq!(disk.disk_type(), expected_type, "{what}");
    assert_eq!(
        disk.size(),
        footer.current_size,
        "{what}: size is the current size"
    );

    if force_size {
        assert_eq!(&footer.creator_application, b"qem2", "{what}");
        assert_eq!(disk.size(), requested, "{what}: our size");
        assert_eq!(qemu_size, requested, "{what}: qemu's size");
    } else {
        // qemu rounded the size up to a whole geometry and stored the rounded size: current
        // size and geometry agree, so qemu (which trusts CHS for `qemu`) and we agree too.
        assert_eq!(&footer.creator_application, b"qemu", "{what}");
        assert_eq!(
            footer.geometry_size(),
            footer.current_size,
            "{what}: qemu stores the CHS size as the current size"
        );
        assert!(
            disk.size() >= requested && disk.size() < requested + 64 * 1024,
            "{what}: rounded size {} is not just above the requested size",
            disk.size()
        );
        if requested == 5_222_400 {
            assert_eq!(disk.size(), requested, "{what}: an exact CHS size is kept");
        }
    }
    assert_eq!(
        disk.size(),
        qemu_size,
        "{what}: we and qemu disagree on the size"
    );

    // Whole disk, in one pass.
    let ours = read_all(&disk);
    assert_same_bytes(&ours, &expected, &format!("{what}: whole disk vs qemu"));
    assert_same_bytes(
        &expected[..source.len()],
        source,
        &format!("{what}: qemu's reading vs the source"),
    );
    assert!(
        expected[source.len()..].iter().all(|&b| b == 0),
        "{what}: the rounded tail is not zero"
    );

    // Random unaligned reads, some running past the end.
    let size = disk.size();
    for _ in 0..300 {
        let offset = match rng.below(4) {
            0 => rng.below(size),
            1 => (rng.below(size / BLOCK + 1) * BLOCK).saturating_sub(rng.below(700)),
            2 => size.saturating_sub(rng.below(3000)),
            _ => size + rng.below(1000),
        };
        let len = match rng.below(3) {
            0 => rng.range(1, 17),
            1 => rng.range(1, 5000),
            _ => rng.range(1, 2 * BLOCK + 1000),
        } as usize;
        let mut buf = vec![0xA5u8; len];
        let n = disk
            .read_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("{what}: read {len} at {offset}: {e}"));
        let want_n = (size.saturating_sub(offset) as usize).min(len);
        assert_eq!(n, want_n, "{what}: length of a read of {len} at {offset}");
        if n > 0 {
            let start = offset as usize;
            assert_same_bytes(
                &buf[..n],
                &expected[start..start + n],
                &format!("{what}: read of {len} at {offset}"),
            );
        }
    }
}

/// `qemu-img create`, then `qemu-img convert -n` fills the existing image from raw data.
fn created_then_filled(subformat: &str, force_size: bool) {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new(&format!("qemu_made {subformat} force_size={force_size}"));
    let dir = TempDir::new("qemu-made");
    for &size in SIZES {
        let source = source_data(&mut rng, size);
        let raw = dir.join("source.raw");
        std::fs::write(&raw, &source).unwrap();
        let image = dir.join(&format!("{subformat}-{size}.vhd"));
        qemu_create_with_force_size(&image, subformat, force_size, size);
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-n", "-f", "raw", "-O", "vpc"])
                .arg(&raw)
                .arg(&image),
        );
        check_image(&image, &dir, &mut rng, subformat, force_size, &source);
        std::fs::remove_file(&image).unwrap();
    }
}

#[test]
fn fixed_with_force_size() {
    created_then_filled("fixed", true);
}

#[test]
fn fixed_without_force_size() {
    created_then_filled("fixed", false);
}

#[test]
fn dynamic_with_force_size() {
    created_then_filled("dynamic", true);
}

#[test]
fn dynamic_without_force_size() {
    created_then_filled("dynamic", false);
}

/// `qemu-img convert -O vpc` creating the image itself from the raw file.
#[test]
fn convert_creates_the_image() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("qemu_made convert_creates_the_image");
    let dir = TempDir::new("qemu-convert");
    for subformat in ["dynamic", "fixed"] {
        for force_size in [true, false] {
            let size = 6_000_128;
            let source = source_data(&mut rng, size);
            let raw = dir.join("source.raw");
            std::fs::write(&raw, &source).unwrap();
            let image = dir.join(&format!("{subformat}-{force_size}.vhd"));
            let options = format!(
                "subformat={subformat},force_size={}",
                if force_size { "on" } else { "off" }
            );
            run_ok(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "vpc", "-o", &options])
                    .arg(&raw)
                    .arg(&image),
            );
            check_image(&image, &dir, &mut rng, subformat, force_size, &source);
        }
    }
}

/// A qemu-made dynamic image stays readable by qemu after we write to it, and qemu's
/// writes land where we read them (blocks qemu allocated, blocks we allocated after them).
#[test]
fn we_write_into_a_qemu_made_dynamic_image() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("qemu_made we_write_into_a_qemu_made_dynamic_image");
    let dir = TempDir::new("qemu-write");
    let size = 6_000_128;
    let mut model = source_data(&mut rng, size);
    let raw = dir.join("source.raw");
    std::fs::write(&raw, &model).unwrap();
    let image = dir.join("dyn.vhd");
    qemu_create(&image, "dynamic", size);
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-n", "-f", "raw", "-O", "vpc"])
            .arg(&raw)
            .arg(&image),
    );
    {
        let mut disk = open_rw(&image);
        for _ in 0..40 {
            let offset = rng.below(size);
            let len = rng.range(1, 300_000).min(size - offset) as usize;
            let data = rng.bytes(len);
            disk.write_at(&data, offset).unwrap();
            model[offset as usize..offset as usize + len].copy_from_slice(&data);
        }
        disk.flush().unwrap();
    }
    assert_same_bytes(&qemu_raw(&image, &dir), &model, "qemu reads our writes");
    let disk = open_rw(&image);
    assert_same_bytes(&read_all(&disk), &model, "we read our writes back");
}
