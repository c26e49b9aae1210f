//! `resize`: sizes as qemu-img and vhdiinfo see them, contents as qemu-img compare (fixed,
//! dynamic) and libvhdi (differencing chains, written in whole 4 KiB units) read them, the
//! BAT growing past its capacity, shrinking refused over data unless forced.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use vhd_core::ops::{resize, Progress, ResizeOptions, ResizeReport};
use vhd_core::{check, create, CheckOptions, CreateOptions, DiskType, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 2 * MIB;

/// The virtual size qemu-img reports (the last "virtual-size": the first ones describe
/// the file protocol under the image).
fn qemu_virtual_size(path: &Path) -> u64 {
    let out = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json", "-f", "vpc"])
            .arg(path),
    );
    let text = String::from_utf8_lossy(&out);
    let at = text
        .rfind("\"virtual-size\":")
        .expect("virtual-size in qemu-img info")
        + 15;
    text[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The media size vhdiinfo reports.
fn vhdiinfo_size(path: &Path) -> u64 {
    let (code, text) = run_status(Command::new("vhdiinfo").arg(path));
    assert_eq!(code, 0, "vhdiinfo {}: {text}", path.display());
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Media size"))
        .unwrap_or_else(|| panic!("{text}"));
    let inner = line.rsplit_once('(').unwrap().1;
    inner.split_whitespace().next().unwrap().parse().unwrap()
}

/// Both oracles see `size`, and the footer holds the specification's geometry for it.
fn assert_size(path: &Path, size: u64, oracles: bool) {
    if oracles {
        assert_eq!(
            qemu_virtual_size(path),
            size,
            "qemu-img info {}",
            path.display()
        );
        assert_eq!(vhdiinfo_size(path), size, "vhdiinfo {}", path.display());
    }
    let footer = file_bytes(path, file_len(path) - 512, 512);
    assert_eq!(be_u64(&footer, 48), size, "current size");
    // libvhdi reads the original size as the disk's size (checked above with vhdiinfo).
    assert_eq!(be_u64(&footer, 40), size, "original size");
    let (c, h, s) = spec_geometry(size / 512);
    let geometry = (
        u64::from(u16::from_be_bytes([footer[56], footer[57]])),
        u64::from(footer[58]),
        u64::from(footer[59]),
    );
    assert_eq!(geometry, (c, h, s), "geometry for {size} bytes");
    let mut copy = footer.clone();
    fix_footer_checksum(&mut copy);
    assert_eq!(copy, footer, "footer checksum");
}

fn resize_to(path: &Path, size: u64, force: bool) -> vhd_core::Result<ResizeReport> {
    resize(
        path,
        size,
        &ResizeOptions {
            force,
            ..Default::default()
        },
        Progress::default(),
    )
}

fn oracles() -> bool {
    require_qemu() && require_tool("vhdiinfo")
}

#[test]
fn fixed_images_grow_with_zeros_and_shrink_only_over_zeros() {
    if !oracles() {
        return;
    }
    let mut rng = Rng::new("resize_fixed");
    let dir = TempDir::new("resize-fixed");
    let path = dir.join("disk.vhd");
    qemu_create(&path, "fixed", 8 * MIB);
    let mut model = vec![0u8; 8 * MIB as usize];
    let mut image = open_rw(&path);
    write_both(&mut image, &mut model, &rng.bytes(4096), 0);
    write_both(&mut image, &mut model, &rng.bytes(MIB as usize), 6 * MIB);
    drop(image);

    let report = resize_to(&path, 12 * MIB, false).unwrap();
    assert_eq!(
        (report.old_size, report.new_size, report.file_size),
        (8 * MIB, 12 * MIB, 12 * MIB + 512)
    );
    model.resize(12 * MIB as usize, 0);
    assert_size(&path, 12 * MIB, true);
    // The old footer's place reads as zeros, like the rest of the new part.
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);

    // Down to 10 MiB: the part cut off is zeros.
    resize_to(&path, 10 * MIB, false).unwrap();
    model.truncate(10 * MIB as usize);
    assert_size(&path, 10 * MIB, true);
    assert_eq!(file_len(&path), 10 * MIB + 512);
    assert_qemu_reads(&path, &model, &dir);

    // Down to 4 MiB would cut off data at 6 MiB: refused, unless forced.
    let before = std::fs::read(&path).unwrap();
    let err = resize_to(&path, 4 * MIB, false).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    assert!(
        err.to_string().contains(&format!("byte {}", 6 * MIB)),
        "{err}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a refused shrink changes nothing"
    );
    resize_to(&path, 4 * MIB, true).unwrap();
    model.truncate(4 * MIB as usize);
    assert_size(&path, 4 * MIB, true);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
}

#[test]
fn dynamic_images_grow_and_the_part_of_the_last_block_that_appears_reads_zeros() {
    if !oracles() {
        return;
    }
    let mut rng = Rng::new("resize_dynamic_grow");
    let dir = TempDir::new("resize-dynamic-grow");
    // Made by qemu-img, 10 MiB.
    let path = dir.join("qemu.vhd");
    qemu_create(&path, "dynamic", 10 * MIB);
    let mut model = vec![0u8; 10 * MIB as usize];
    let mut image = open_rw(&path);
    write_both(&mut image, &mut model, &rng.bytes(10 * MIB as usize), 0);
    drop(image);
    resize_to(&path, 20 * MIB, false).unwrap();
    model.resize(20 * MIB as usize, 0);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);

    // Ours, 5 MiB: block 2 is half inside the disk; growing shows its other half as zeros,
    // even though the block's space there held data written before a forced shrink.
    let path = dir.join("ours.vhd");
    drop(create(&path, &CreateOptions::new(DiskType::Dynamic, 6 * MIB)).unwrap());
    let mut image = open_rw(&path);
    let mut model = vec![0u8; 6 * MIB as usize];
    write_both(&mut image, &mut model, &rng.bytes(6 * MIB as usize), 0);
    drop(image);
    resize_to(&path, 5 * MIB, true).unwrap();
    model.truncate(5 * MIB as usize);
    assert_qemu_reads(&path, &model, &dir);
    resize_to(&path, 9 * MIB, false).unwrap();
    model.resize(9 * MIB as usize, 0);
    assert_size(&path, 9 * MIB, true);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
}

#[test]
fn growing_past_the_bat_capacity_moves_the_blocks_after_the_bat() {
    if !oracles() {
        return;
    }
    let mut rng = Rng::new("resize_bat_growth");
    let dir = TempDir::new("resize-bat");
    let path = dir.join("disk.vhd");
    // 128 blocks of 256 KiB: the BAT fills its 512 bytes exactly, and blocks follow it.
    let block = 256 * 1024;
    let options = CreateOptions {
        block_size: block as u32,
        ..CreateOptions::new(DiskType::Dynamic, 128 * block)
    };
    let mut image = create(&path, &options).unwrap();
    let mut model = vec![0u8; 128 * block as usize];
    for b in [0, 1, 2, 127, 64] {
        write_both(
            &mut image,
            &mut model,
            &rng.bytes(block as usize),
            b * block,
        );
    }
    drop(image);
    let header = file_bytes(&path, 512, 1024);
    assert_eq!(be_u32(&header, 28), 128);
    let table = be_u64(&header, 16);
    let first_block_sector = bat_entry_in_file(&path, 0);
    assert_eq!(
        u64::from(first_block_sector) * 512,
        table + 512,
        "block 0 follows the BAT"
    );

    // 8 blocks more: the BAT needs 544 bytes, so block 0 must move.
    let new_size = 136 * block;
    resize_to(&path, new_size, false).unwrap();
    model.resize(new_size as usize, 0);
    let header = file_bytes(&path, 512, 1024);
    assert_eq!(be_u32(&header, 28), 136, "max table entries");
    let mut fixed = header.clone();
    fix_header_checksum(&mut fixed);
    assert_eq!(fixed, header, "header checksum");
    assert!(
        u64::from(bat_entry_in_file(&path, 0)) * 512 >= table + 1024,
        "block 0 moved"
    );
    for b in 128..136 {
        assert_eq!(bat_entry_in_file(&path, b), 0xFFFF_FFFF, "new entry {b}");
    }
    assert_size(&path, new_size, true);
    assert_qemu_reads(&path, &model, &dir);
    let report = check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");

    // Much further (the BAT grows to 4 sectors), then write into the new part.
    let new_size = 400 * block;
    resize_to(&path, new_size, false).unwrap();
    model.resize(new_size as usize, 0);
    let mut image = open_rw(&path);
    write_both(
        &mut image,
        &mut model,
        &rng.bytes(block as usize),
        399 * block,
    );
    drop(image);
    assert_size(&path, new_size, true);
    assert_qemu_reads(&path, &model, &dir);
    let report = check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
}

#[test]
fn dynamic_images_shrink_only_over_unallocated_or_zero_blocks() {
    if !oracles() {
        return;
    }
    let mut rng = Rng::new("resize_dynamic_shrink");
    let dir = TempDir::new("resize-dynamic-shrink");
    let path = dir.join("disk.vhd");
    qemu_create(&path, "dynamic", 16 * MIB);
    let mut model = vec![0u8; 16 * MIB as usize];
    let mut image = open_rw(&path);
    write_both(&mut image, &mut model, &rng.bytes(8 * MIB as usize), 0);
    // Block 6: allocated, all zeros.
    write_both(&mut image, &mut model, &rng.bytes(4096), 6 * BLOCK);
    write_both(&mut image, &mut model, &[0u8; 4096], 6 * BLOCK);
    drop(image);
    let len = file_len(&path);

    resize_to(&path, 12 * MIB, false).unwrap();
    model.truncate(12 * MIB as usize);
    assert_eq!(bat_entry_in_file(&path, 6), 0xFFFF_FFFF);
    assert_eq!(
        file_len(&path),
        len - (512 + BLOCK),
        "block 6, last in the file, is cut off"
    );
    assert_size(&path, 12 * MIB, true);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);

    let before = std::fs::read(&path).unwrap();
    let err = resize_to(&path, 5 * MIB, false).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a refused shrink changes nothing"
    );

    // Forced into the middle of block 2; growing again shows zeros there, not old data.
    resize_to(&path, 5 * MIB, true).unwrap();
    model.truncate(5 * MIB as usize);
    assert_size(&path, 5 * MIB, true);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
    resize_to(&path, 8 * MIB, false).unwrap();
    model.resize(8 * MIB as usize, 0);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
}

#[test]
fn shrinking_moves_the_last_blocks_of_the_file_into_the_space_freed() {
    if !oracles() {
        return;
    }
    let mut rng = Rng::new("resize_pack");
    let dir = TempDir::new("resize-pack");
    let path = dir.join("disk.vhd");
    let size = 16 * MIB;
    drop(create(&path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap());
    let empty_len = file_len(&path);
    let mut model = vec![0u8; size as usize];
    let mut image = open_rw(&path);
    // Blocks 7 and 5 first in the file (zeros: they may be cut off), then blocks 0..4.
    for block in [7, 5] {
        write_both(&mut image, &mut model, &rng.bytes(4096), block * BLOCK);
        write_both(&mut image, &mut model, &[0u8; 4096], block * BLOCK);
    }
    write_both(&mut image, &mut model, &rng.bytes(8 * MIB as usize), 0);
    drop(image);
    assert_eq!(
        u64::from(bat_entry_in_file(&path, 7)) * 512,
        empty_len - 512
    );

    resize_to(&path, 10 * MIB, false).unwrap();
    model.truncate(10 * MIB as usize);
    assert_eq!(
        file_len(&path),
        empty_len + 4 * (512 + BLOCK),
        "four blocks remain"
    );
    assert_size(&path, 10 * MIB, true);
    assert_qemu_reads(&path, &model, &dir);
    let report = check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
}

#[test]
fn differencing_images_grow_over_their_parent_and_move_their_locators() {
    if !require_pyvhdi() || !require_tool("vhdiinfo") {
        return;
    }
    let mut rng = Rng::new("resize_differencing");
    let dir = TempDir::new("resize-diff");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let block = 256 * 1024;
    let size = 128 * block;
    let options = CreateOptions {
        block_size: block as u32,
        ..CreateOptions::new(DiskType::Dynamic, size)
    };
    let mut parent = create(&base, &options).unwrap();
    let parent_data = rng.bytes(size as usize);
    parent.write_at(&parent_data, 0).unwrap();
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    let mut model = parent_data.clone();
    write_both(&mut image, &mut model, &rng.bytes(3 * block as usize), 0);
    write_both(&mut image, &mut model, &rng.bytes(8192), 100 * block + 4096);
    drop(image);

    // The child's BAT is full and its parent locators follow it: both must make room.
    let locator_offset = |path: &Path| be_u64(&file_bytes(path, 512 + 576 + 16, 8), 0);
    let first_locator = locator_offset(&child);
    assert_eq!(
        first_locator,
        be_u64(&file_bytes(&child, 512, 1024), 16) + 512
    );
    let new_size = size + 8 * block;
    resize_to(&child, new_size, false).unwrap();
    model.resize(new_size as usize, 0);
    assert_size(&child, new_size, false);
    assert!(
        locator_offset(&child) > first_locator,
        "the locator data moved"
    );
    assert_eq!(vhdiinfo_size(&child), new_size);
    let ours = open_ro(&child);
    assert_eq!(
        ours.parent_locator_texts()
            .unwrap()
            .iter()
            .flatten()
            .count(),
        3
    );
    assert_same_bytes(&read_all(&ours), &model, "we read the grown child");
    drop(ours);
    // libvhdi reads the part over the parent (it fails past the parent's end).
    let read = libvhdi_read_chain_up_to(&[base.clone(), child.clone()], size, &dir);
    assert_same_bytes(
        &read,
        &model[..size as usize],
        "libvhdi reads the grown child",
    );
    let report = check(&child, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");

    // Shrinking would cut off the parent's data as the child shows it: refused unless
    // forced. Growing back then shows the parent's data again.
    let err = resize_to(&child, size - 2 * block, false).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    resize_to(&child, size - 2 * block, true).unwrap();
    resize_to(&child, size, false).unwrap();
    model.truncate(size as usize);
    let read = libvhdi_read_chain_up_to(&[base.clone(), child.clone()], size, &dir);
    assert_same_bytes(
        &read,
        &model,
        "libvhdi reads the child shrunk and grown back",
    );
    let report = check(&child, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
}

#[test]
fn resize_checks_its_arguments() {
    let dir = TempDir::new("resize-args");
    let fixed = dir.join("fixed.vhd");
    let dynamic = dir.join("dynamic.vhd");
    drop(create(&fixed, &CreateOptions::new(DiskType::Fixed, MIB)).unwrap());
    drop(create(&dynamic, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap());
    for path in [&fixed, &dynamic] {
        for size in [0, MIB + 100] {
            let err = resize_to(path, size, false).unwrap_err();
            assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
        }
    }
    let err = resize_to(&fixed, vhd_core::MAX_FIXED_SIZE + 512, false).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    let err = resize_to(&dynamic, vhd_core::MAX_DYNAMIC_SIZE + 512, false).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    let options = ResizeOptions {
        open: OpenOptions {
            read_only: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = resize(&dynamic, 2 * MIB, &options, Progress::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    let open = open_rw(&dynamic);
    assert_eq!(
        resize_to(&dynamic, 2 * MIB, false).unwrap_err().code(),
        "ERR_VHD_LOCKED"
    );
    drop(open);
    // Unchanged size: nothing to do.
    let before = std::fs::read(&dynamic).unwrap();
    resize_to(&dynamic, MIB, false).unwrap();
    assert!(std::fs::read(&dynamic).unwrap() == before);
}

#[test]
fn a_cancelled_shrink_changes_nothing() {
    let dir = TempDir::new("resize-cancel");
    let path = dir.join("fixed.vhd");
    drop(create(&path, &CreateOptions::new(DiskType::Fixed, 32 * MIB)).unwrap());
    let before = std::fs::read(&path).unwrap();
    let cancel = AtomicBool::new(false);
    let on_progress = |_done: u64, _total: u64| cancel.store(true, Ordering::Relaxed);
    let progress = Progress::default()
        .with_callback(&on_progress)
        .with_cancel(&cancel);
    let err = resize(&path, MIB, &ResizeOptions::default(), progress).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_CANCELLED", "{err}");
    assert!(std::fs::read(&path).unwrap() == before);
}

#[test]
fn corpus_images_grow_and_read_as_before() {
    if !oracles() {
        return;
    }
    let Some(corpus) = corpus_dir() else {
        return;
    };
    // Windows 10 and 7 (BAT out of order, gaps), FreeBSD mkimg (a size that is not a whole
    // number of blocks, padding before the footer), an empty `dutl` image, a fixed image
    // whose footer holds junk. (Not the `qemu` and `vpc ` creators' images: qemu sizes
    // those by their geometry.)
    for (file, growth) in [
        ("dissect-hypervisor/dynamic.vhd.gz", 3 * MIB),
        ("node-vhd/dynamic.vhd.gz", 300 * MIB),
        ("rdisk/win7dyn.vhd.gz", 5 * MIB + 512),
        ("freebsd-mkimg/img-63x255-4096-gpt.vhd.gz", 3 * MIB),
        ("freebsd-mkimg/img-63x255-512-mbr.vhd.gz", 64 * MIB),
        ("rdisk/du.vhd", 512),
        ("rdisk/vhd_fixed_small.vhd", 3 * MIB),
    ] {
        let dir = TempDir::new("resize-corpus");
        let Some(original) = corpus_copy(&corpus, file, &dir, "original.vhd") else {
            return;
        };
        let copy = dir.join("grown.vhd");
        std::fs::copy(&original, &copy).unwrap();
        let old_size = qemu_virtual_size(&original);
        let new_size = old_size + growth;
        resize_to(&copy, new_size, false).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_size(&copy, new_size, true);
        // The grown part must read as zeros: a size mismatch is fine for qemu-img compare
        // only when the extra part is all zeros.
        let (code, text) = run_status(
            Command::new("qemu-img")
                .args(["compare", "-f", "vpc", "-F", "vpc"])
                .arg(&original)
                .arg(&copy),
        );
        assert_eq!(code, 0, "{file}: qemu-img compare: {text}");
        let report = check(&copy, &CheckOptions::default()).unwrap();
        assert!(report.exit_code() == 0, "{file}: {report}");
        // And back to the old size: nothing but zeros is cut off.
        resize_to(&copy, old_size, false).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_size(&copy, old_size, true);
        let (code, text) = run_status(
            Command::new("qemu-img")
                .args(["compare", "-f", "vpc", "-F", "vpc"])
                .arg(&original)
                .arg(&copy),
        );
        assert_eq!(code, 0, "{file}: qemu-img compare after the shrink: {text}");
        let report = check(&copy, &CheckOptions::default()).unwrap();
        assert!(report.exit_code() == 0, "{file}: {report}");
    }
}
