//! `discard` and zero-write skipping, checked against qemu-img (dynamic, fixed), libvhdi
//! (differencing chains, 4 KiB-aligned) and the BAT entries in the file.

use vhd_core::{
    check, create, CheckOptions, CreateOptions, DiskType, FaultStorage, Image, OpenOptions,
    VirtualDisk,
};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 2 * MIB;

#[test]
fn dynamic_discard_frees_whole_blocks_zeroes_the_rest_and_reuses_space() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("dynamic_discard");
    let dir = TempDir::new("discard-dynamic");
    let path = dir.join("disk.vhd");
    let size = 16 * MIB;
    qemu_create(&path, "dynamic", size);
    let mut model = vec![0u8; size as usize];
    let mut image = open_rw(&path);
    let data = rng.bytes(size as usize);
    write_both(&mut image, &mut model, &data, 0);
    image.flush().unwrap();
    let full_len = file_len(&path);

    // Block 1 whole; the end of block 2 (partial: zeroed), block 3 whole, the start of
    // block 4 (partial); block 7, the last one in the file, whole.
    discard_both(&mut image, &mut model, BLOCK, BLOCK);
    discard_both(&mut image, &mut model, 5 * MIB + 4096, 3 * MIB);
    discard_both(&mut image, &mut model, 7 * BLOCK, BLOCK);
    // Discards are durable when they return: the file says so while the image is open.
    for block in [1, 3, 7] {
        assert_eq!(
            bat_entry_in_file(&path, block),
            0xFFFF_FFFF,
            "block {block}"
        );
    }
    for block in [0, 2, 4, 5, 6] {
        assert_ne!(
            bat_entry_in_file(&path, block),
            0xFFFF_FFFF,
            "block {block}"
        );
    }
    let unit = 512 + BLOCK;
    assert_eq!(
        file_len(&path),
        full_len - unit,
        "the last block's space is cut off"
    );
    drop(image);
    assert_qemu_reads(&path, &model, &dir);
    // Blocks 1 and 3 are unreferenced space in the middle of the file.
    let report = check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 3, "{report}");
    assert_eq!(report.leaked_blocks(), 2, "{report}");

    // A new allocation in the same session reuses freed space instead of growing the file,
    // and what the write does not cover reads as zeros, not as the freed block's data.
    let mut image = open_rw(&path);
    image.discard(0, BLOCK).unwrap();
    model[..BLOCK as usize].fill(0);
    let len = file_len(&path);
    write_both(&mut image, &mut model, &rng.bytes(4096), BLOCK + 8192);
    image.flush().unwrap();
    assert_eq!(file_len(&path), len, "the freed block was reused");
    drop(image);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(
        check(&path, &CheckOptions::default())
            .unwrap()
            .leaked_blocks(),
        2
    );
}

#[test]
fn discarding_the_whole_tail_cuts_the_file_and_leaves_it_clean() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("discard_tail");
    let dir = TempDir::new("discard-tail");
    let path = dir.join("disk.vhd");
    let size = 8 * MIB;
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let empty_len = file_len(&path);
    let mut model = vec![0u8; size as usize];
    write_both(&mut image, &mut model, &rng.bytes(3 * MIB as usize), 0);
    image.flush().unwrap();
    // Blocks 1 and 0 (the end of the file first, then what became the end).
    discard_both(&mut image, &mut model, MIB, 7 * MIB);
    discard_both(&mut image, &mut model, 0, MIB);
    assert_eq!(
        file_len(&path),
        empty_len + 512 + BLOCK,
        "block 0 is still allocated"
    );
    discard_both(&mut image, &mut model, 0, size);
    assert_eq!(file_len(&path), empty_len);
    drop(image);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
}

#[test]
fn zero_writes_to_unallocated_dynamic_blocks_allocate_nothing() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("zero-writes");
    let path = dir.join("disk.vhd");
    let size = 8 * MIB;
    qemu_create(&path, "dynamic", size);
    let len = file_len(&path);
    let mut image = open_rw(&path);
    image.write_at(&vec![0u8; BLOCK as usize], 0).unwrap();
    image.write_at(&[0u8; 4096], BLOCK + 8192).unwrap();
    image
        .write_at(&vec![0u8; 3 * MIB as usize], 5 * MIB)
        .unwrap();
    image.flush().unwrap();
    assert_eq!(file_len(&path), len);
    for block in 0..4 {
        assert_eq!(bat_entry_in_file(&path, block), 0xFFFF_FFFF);
    }
    // In an allocated block, zeros are data like any other.
    let mut model = vec![0u8; size as usize];
    write_both(&mut image, &mut model, &[7u8; 8192], 3 * BLOCK);
    write_both(&mut image, &mut model, &[0u8; 4096], 3 * BLOCK);
    drop(image);
    assert_qemu_reads(&path, &model, &dir);
    assert_eq!(check_exit_code(&path), 0);
}

#[test]
fn differencing_discard_shows_the_parent_again() {
    if !require_pyvhdi() {
        return;
    }
    let mut rng = Rng::new("differencing_discard");
    let dir = TempDir::new("discard-diff");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let size = 8 * MIB;
    let mut parent = create(&base, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let parent_data = rng.bytes(size as usize);
    parent.write_at(&parent_data, 0).unwrap();
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    let mut model = parent_data.clone();
    write_both(&mut image, &mut model, &rng.bytes(3 * BLOCK as usize), 0);
    image.flush().unwrap();
    let mut discard = |image: &mut Image, offset: u64, length: u64| {
        image.discard(offset, length).unwrap();
        let range = offset as usize..(offset + length) as usize;
        model[range.clone()].copy_from_slice(&parent_data[range]);
    };
    // Whole 4 KiB units inside block 0, the whole of block 1, and a range across blocks
    // 1 and 2.
    discard(&mut image, 4096, 12288);
    discard(&mut image, 100 * 4096, 4096);
    discard(&mut image, BLOCK, BLOCK);
    discard(&mut image, 2 * BLOCK - 4096, 8192);
    assert_eq!(
        bat_entry_in_file(&child, 1),
        0xFFFF_FFFF,
        "block 1 has no sector left"
    );
    assert_ne!(bat_entry_in_file(&child, 0), 0xFFFF_FFFF);
    assert_ne!(bat_entry_in_file(&child, 2), 0xFFFF_FFFF);
    drop(image);
    let read = libvhdi_read_chain(&[base.clone(), child.clone()], &dir);
    assert_same_bytes(&read, &model, "libvhdi reads the chain after discard");
    let reopened = open_ro(&child);
    assert_same_bytes(
        &read_all(&reopened),
        &model,
        "we read the chain after discard",
    );
    drop(reopened);
    // Block 1's space is now unreferenced, in the middle of the file.
    assert_eq!(check_exit_code(&child), 3);
}

#[test]
fn differencing_discard_zeroes_partial_sectors() {
    let mut rng = Rng::new("differencing_discard_partial");
    let dir = TempDir::new("discard-diff-partial");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let size = 4 * MIB;
    let mut parent = create(&base, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    let parent_data = rng.bytes(size as usize);
    parent.write_at(&parent_data, 0).unwrap();
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    let mut model = parent_data.clone();
    write_both(&mut image, &mut model, &rng.bytes(8192), 0);
    // Bytes 100..3000: sector 0 partly (zeros), sectors 1..5 whole (parent again), sector 5
    // partly (zeros).
    image.discard(100, 2900).unwrap();
    model[100..512].fill(0);
    model[512..2560].copy_from_slice(&parent_data[512..2560]);
    model[2560..3000].fill(0);
    drop(image);
    let reopened = open_ro(&child);
    assert_same_bytes(
        &read_all(&reopened),
        &model,
        "after a partly unaligned discard",
    );
}

#[test]
fn fixed_discard_writes_zeros() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("fixed_discard");
    let dir = TempDir::new("discard-fixed");
    let path = dir.join("disk.vhd");
    let size = 4 * MIB;
    qemu_create(&path, "fixed", size);
    let mut image = open_rw(&path);
    let mut model = vec![0u8; size as usize];
    write_both(&mut image, &mut model, &rng.bytes(size as usize), 0);
    discard_both(&mut image, &mut model, 12345, 2 * MIB);
    drop(image);
    assert_qemu_reads(&path, &model, &dir);
}

#[test]
fn discard_checks_its_range_and_the_access() {
    let dir = TempDir::new("discard-args");
    for kind in [DiskType::Fixed, DiskType::Dynamic] {
        let path = dir.join(&format!("{}.vhd", kind.name()));
        let mut image = create(&path, &CreateOptions::new(kind, MIB)).unwrap();
        let err = image.discard(MIB - 512, 1024).unwrap_err();
        assert_eq!(err.code(), "ERR_VHD_OUT_OF_RANGE", "{err}");
        assert!(err.to_string().contains("discard"), "{err}");
        assert_eq!(
            image.discard(u64::MAX, 2).unwrap_err().code(),
            "ERR_VHD_OUT_OF_RANGE"
        );
        image.discard(MIB, 0).unwrap();
        drop(image);
        let mut image = open_ro(&path);
        assert_eq!(
            image.discard(0, 512).unwrap_err().code(),
            "ERR_VHD_READ_ONLY"
        );
    }
}

#[test]
fn a_discard_killed_at_any_write_leaves_a_valid_image_with_old_or_new_data() {
    let mut rng = Rng::new("discard_killed");
    let dir = TempDir::new("discard-killed");
    let path = dir.join("disk.vhd");
    let size = 8 * MIB;
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let old = rng.bytes(size as usize);
    image.write_at(&old, 0).unwrap();
    drop(image);
    let original = std::fs::read(&path).unwrap();
    // Block 1 whole (in the middle of the file), a part of block 0, block 3 (the end of
    // the file: the file is cut), then block 2 (the file is cut again).
    let discard = |image: &mut Image| -> vhd_core::Result<()> {
        image.discard(BLOCK, BLOCK)?;
        image.discard(4096, 8192)?;
        image.discard(3 * BLOCK, BLOCK)?;
        image.discard(2 * BLOCK, BLOCK)
    };
    let mut new = old.clone();
    new[BLOCK as usize..].fill(0);
    new[4096..4096 + 8192].fill(0);

    let open = |file: FaultStorage| {
        let options = OpenOptions {
            lock: false,
            ..Default::default()
        };
        Image::open_storage(Box::new(file), &path, &options).unwrap()
    };
    let counter = FaultStorage::in_memory(original.clone());
    discard(&mut open(counter.clone())).unwrap();
    let total = counter.changes();
    assert!(total >= 8, "{total} writes");
    for die_after in 0..total {
        let file = FaultStorage::in_memory(original.clone());
        file.die_after(die_after);
        let mut image = open(file.clone());
        assert!(
            discard(&mut image).is_err(),
            "killed after {die_after} writes"
        );
        drop(image);
        let killed = dir.join("killed.vhd");
        std::fs::write(&killed, file.after_death().unwrap()).unwrap();
        let report = check(&killed, &CheckOptions::default()).unwrap();
        assert!(
            report.exit_code() != 2,
            "killed after {die_after} writes: {report}"
        );
        let reopened = open_rw(&killed);
        let read = read_all(&reopened);
        if let Some(i) = (0..read.len()).find(|&i| read[i] != old[i] && read[i] != new[i]) {
            panic!("killed after {die_after} writes: byte {i} is neither old nor new");
        }
    }
}
