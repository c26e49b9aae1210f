//! `compact`: the contents a reader sees stay exactly as expected (qemu-img compare for
//! dynamic images, libvhdi for differencing chains written in whole 4 KiB units), the file
//! shrinks, `check` finds it clean, and a cancelled compaction changes nothing.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vhd_core::ops::{compact, Progress};
use vhd_core::{check, create, CheckOptions, CreateOptions, DiskType, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 2 * MIB;

/// The footer's 512 bytes at the end of the file, less nothing: compaction keeps it whole.
fn end_footer(path: &Path) -> Vec<u8> {
    file_bytes(path, file_len(path) - 512, 512)
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn compact_drops_zero_blocks_and_leaked_space_of_a_dynamic_image() {
    if !require_qemu() {
        return;
    }
    let mut rng = Rng::new("compact_dynamic");
    let dir = TempDir::new("compact-dynamic");
    let path = dir.join("disk.vhd");
    let size = 32 * MIB;
    qemu_create(&path, "dynamic", size);
    let mut model = vec![0u8; size as usize];
    let mut image = open_rw(&path);
    // Blocks 0..16: data in the even ones, zeros written over data in the odd ones (still
    // allocated), then block 4 discarded in the middle of the file (leaked space).
    for block in 0..16u64 {
        let data = rng.bytes(BLOCK as usize);
        write_both(&mut image, &mut model, &data, block * BLOCK);
        if block % 2 == 1 {
            write_both(
                &mut image,
                &mut model,
                &vec![0u8; BLOCK as usize],
                block * BLOCK,
            );
        }
    }
    discard_both(&mut image, &mut model, 4 * BLOCK, BLOCK);
    // A block with zeros except for one byte at its very end stays.
    write_both(&mut image, &mut model, &[1], 2 * BLOCK - 1);
    drop(image);
    assert_eq!(check_exit_code(&path), 3);
    let before_len = file_len(&path);
    let footer = end_footer(&path);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let modified = mtime(&path);

    let report = compact(&path, &OpenOptions::default(), Progress::default()).unwrap();
    assert_eq!(report.file_size_before, before_len);
    assert_eq!(report.blocks_before, 15);
    // Kept: the 7 even blocks but 4, and block 1 (one byte).
    assert_eq!(report.blocks_after, 8);
    assert_eq!(report.file_size_after, file_len(&path));
    assert!(file_len(&path) < before_len);
    assert_eq!(
        end_footer(&path),
        footer,
        "the footer is kept byte for byte"
    );
    assert_eq!(file_bytes(&path, 0, 512), footer, "the footer copy too");
    assert_eq!(mtime(&path), modified, "the modification time is kept");
    assert_qemu_reads(&path, &model, &dir);
    let report = check(&path, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
    assert_eq!(report.allocated_blocks(), 8);
    for block in [3, 4, 5, 7, 9, 11, 13, 15] {
        assert_eq!(
            bat_entry_in_file(&path, block),
            0xFFFF_FFFF,
            "block {block}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only the image and the compared raw file: {leftovers:?}"
    );
}

#[test]
fn compact_drops_blocks_of_a_differencing_image_that_match_the_parent() {
    if !require_pyvhdi() || !require_tool("vhdiinfo") {
        return;
    }
    let mut rng = Rng::new("compact_differencing");
    let dir = TempDir::new("compact-diff");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let size = 16 * MIB;
    let mut parent = create(&base, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let parent_data: Vec<u8> = (0..size as usize)
        .map(|i| {
            if i < 8 * MIB as usize {
                (i / 4096) as u8 | 1
            } else {
                0
            }
        })
        .collect();
    parent.write_at(&parent_data, 0).unwrap();
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    let mut model = parent_data.clone();
    // Block 0: new data (kept). Block 1: the parent's own data written again (dropped).
    // Block 2: zeros over the parent's data (kept: they hide it). Block 5: zeros over the
    // parent's zeros (dropped). Block 6: new data, then 4 KiB of it discarded (kept).
    write_both(&mut image, &mut model, &rng.bytes(BLOCK as usize), 0);
    let same = parent_data[BLOCK as usize..2 * BLOCK as usize].to_vec();
    write_both(&mut image, &mut model, &same, BLOCK);
    write_both(&mut image, &mut model, &vec![0u8; 8192], 2 * BLOCK + 4096);
    write_both(
        &mut image,
        &mut model,
        &vec![0u8; BLOCK as usize],
        5 * BLOCK,
    );
    write_both(
        &mut image,
        &mut model,
        &rng.bytes(BLOCK as usize),
        6 * BLOCK,
    );
    image.discard(6 * BLOCK, 4096).unwrap();
    model[6 * BLOCK as usize..][..4096].copy_from_slice(&parent_data[6 * BLOCK as usize..][..4096]);
    drop(image);
    let header_before = file_bytes(&child, 512, 1024);
    let before_len = file_len(&child);
    let base_modified = mtime(&base);

    let report = compact(&child, &OpenOptions::default(), Progress::default()).unwrap();
    assert_eq!((report.blocks_before, report.blocks_after), (5, 3));
    assert!(file_len(&child) < before_len);
    let header_after = file_bytes(&child, 512, 1024);
    // Parent unique id, time stamp and name (bytes 40..576) are kept.
    assert_eq!(header_after[40..576], header_before[40..576]);
    assert_eq!(mtime(&base), base_modified, "the parent is never written");
    let read = libvhdi_read_chain(&[base.clone(), child.clone()], &dir);
    assert_same_bytes(&read, &model, "libvhdi reads the compacted chain");
    // The locators still lead to the parent: we and vhdiinfo open the child alone.
    let reopened = open_ro(&child);
    assert_same_bytes(&read_all(&reopened), &model, "we read the compacted chain");
    assert_eq!(
        reopened
            .parent_locator_texts()
            .unwrap()
            .iter()
            .flatten()
            .count(),
        3
    );
    drop(reopened);
    run_ok(Command::new("vhdiinfo").arg(&child));
    let report = check(&child, &CheckOptions::default()).unwrap();
    assert_eq!(report.exit_code(), 0, "{report}");
}

#[test]
fn a_compacted_parent_keeps_its_children_working() {
    let mut rng = Rng::new("compact_parent");
    let dir = TempDir::new("compact-parent");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let size = 8 * MIB;
    let mut parent = create(&base, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let mut model = vec![0u8; size as usize];
    write_both(&mut parent, &mut model, &rng.bytes(BLOCK as usize), BLOCK);
    write_both(&mut parent, &mut model, &vec![0u8; BLOCK as usize], BLOCK);
    write_both(&mut parent, &mut model, &rng.bytes(4096), 3 * BLOCK);
    drop(parent);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    write_both(&mut image, &mut model, &rng.bytes(4096), 0);
    drop(image);
    compact(&base, &OpenOptions::default(), Progress::default()).unwrap();
    // The child checks its parent's time stamp against the parent's modification time.
    let reopened = open_rw(&child);
    assert_same_bytes(
        &read_all(&reopened),
        &model,
        "the child over its compacted parent",
    );
}

#[test]
fn a_cancelled_compact_leaves_the_original_untouched() {
    let mut rng = Rng::new("compact_cancel");
    let dir = TempDir::new("compact-cancel");
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 16 * MIB)).unwrap();
    image.write_at(&rng.bytes(8 * MIB as usize), 0).unwrap();
    image.write_at(&vec![0u8; BLOCK as usize], 0).unwrap();
    drop(image);
    let before = std::fs::read(&path).unwrap();
    let modified = mtime(&path);
    let cancel = AtomicBool::new(false);
    let reports = AtomicU64::new(0);
    let on_progress = |_done: u64, _total: u64| {
        if reports.fetch_add(1, Ordering::Relaxed) == 2 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let progress = Progress::default()
        .with_callback(&on_progress)
        .with_cancel(&cancel);
    let err = compact(&path, &OpenOptions::default(), progress).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_CANCELLED", "{err}");
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the original changed"
    );
    assert_eq!(mtime(&path), modified);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("disk.vhd")],
        "no temporary file is left"
    );
}

#[test]
fn compact_refuses_fixed_images_read_only_options_and_images_open_elsewhere() {
    let dir = TempDir::new("compact-refusals");
    let fixed = dir.join("fixed.vhd");
    drop(create(&fixed, &CreateOptions::new(DiskType::Fixed, MIB)).unwrap());
    let err = compact(&fixed, &OpenOptions::default(), Progress::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_WRONG_TYPE", "{err}");
    let path = dir.join("dynamic.vhd");
    let open = create(&path, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap();
    let err = compact(&path, &OpenOptions::default(), Progress::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_LOCKED", "{err}");
    drop(open);
    let read_only = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let err = compact(&path, &read_only, Progress::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary file is left");
}

#[test]
fn compacted_corpus_images_read_as_before() {
    if !require_qemu() || !require_tool("vhdiinfo") {
        return;
    }
    let Some(corpus) = corpus_dir() else {
        return;
    };
    // Windows 10 and 7 (BAT out of order, gaps), qemu, FreeBSD mkimg (partial last block,
    // padding before the footer), an empty `dutl` image, junk in the footer's reserved bytes.
    for file in [
        "dissect-hypervisor/dynamic.vhd.gz",
        "node-vhd/dynamic.vhd.gz",
        "rdisk/win7dyn.vhd.gz",
        "dfvfs/ext2.vhd",
        "freebsd-mkimg/img-63x255-4096-gpt.vhd.gz",
        "freebsd-mkimg/img-63x255-512-mbr.vhd.gz",
        "rdisk/du.vhd",
        "rdisk/vhd_dynamic_small.vhd",
    ] {
        let dir = TempDir::new("compact-corpus");
        let Some(original) = corpus_copy(&corpus, file, &dir, "original.vhd") else {
            return;
        };
        let copy = dir.join("compacted.vhd");
        std::fs::copy(&original, &copy).unwrap();
        let report = compact(&copy, &OpenOptions::default(), Progress::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            report.file_size_after <= report.file_size_before,
            "{file}: {report:?}"
        );
        let (code, text) = run_status(
            Command::new("qemu-img")
                .args(["compare", "-f", "vpc", "-F", "vpc"])
                .arg(&original)
                .arg(&copy),
        );
        assert_eq!(code, 0, "{file}: qemu-img compare: {text}");
        assert_eq!(
            end_footer(&copy),
            end_footer(&original),
            "{file}: the footer"
        );
        let check_report = check(&copy, &CheckOptions::default()).unwrap();
        assert!(check_report.exit_code() == 0, "{file}: {check_report}");
        let (code, text) = run_status(Command::new("vhdiinfo").arg(&copy));
        assert_eq!(code, 0, "{file}: vhdiinfo: {text}");
    }
}

/// A locator whose data length was damaged to nearly 4 GiB is one no reader reads (the
/// reader's bound is 64 KiB). In a child that holds no block yet the image still opens
/// writable (nothing lies after the locators); compact then dropped nothing and tried to
/// allocate and read that length. It drops the locator instead; the parent is still found
/// through the other locators.
#[test]
fn compact_drops_a_locator_whose_length_passes_the_readers_bound() {
    let dir = TempDir::new("compact-locator-length");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let mut parent = create(&base, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap();
    let data = Rng::new("compact_locator_length").bytes(4096);
    parent.write_at(&data, 0).unwrap();
    drop(parent);
    drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
    // The header at 512; its second locator entry (W2ru) at 576 + 24 in it; the length at +8.
    let mut header = file_bytes(&child, 512, 1024);
    let entry = 576 + 24;
    assert_eq!(be_u32(&header, entry), 0x5732_7275, "W2ru");
    header[entry + 8..entry + 12].copy_from_slice(&0xFFFF_FE00u32.to_be_bytes());
    fix_header_checksum(&mut header);
    patch_file(&child, 512, &header);

    compact(&child, &OpenOptions::default(), Progress::default()).unwrap();
    let header = file_bytes(&child, 512, 1024);
    assert_eq!(be_u32(&header, entry), 0, "the locator is dropped");
    let reopened = open_ro(&child);
    let mut read = vec![0u8; 4096];
    reopened.read_at(&mut read, 0).unwrap();
    assert!(read == data, "the child reads its parent's data");
    assert_eq!(check_exit_code(&child), 0);
}

/// Sets the extended attribute `name` of the file at `path`; false when the file system
/// has none.
#[cfg(target_os = "linux")]
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a value readable for its length.
    let set = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if set == 0 {
        return true;
    }
    let e = std::io::Error::last_os_error();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOTSUP),
        "setxattr {name:?}: {e}"
    );
    false
}

/// The extended attribute `name` of the file at `path`.
#[cfg(target_os = "linux")]
fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut value = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings and a buffer writable for its length.
    let got = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    (got >= 0).then(|| value[..got as usize].to_vec())
}

/// A POSIX ACL as Linux stores it in `system.posix_acl_access`: version 2, then (tag,
/// permissions, id) entries: the owner rw, user 12345 r, the group r, the mask r, others
/// nothing (mode 0640 with one more reader).
#[cfg(target_os = "linux")]
fn acl_with_one_more_reader() -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 12345),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

/// compact replaces the file with a new one: it keeps the original's owner and group (when
/// run as root; otherwise the file is ours already), permissions, extended attributes and
/// ACL. It used to keep only the permissions.
#[cfg(target_os = "linux")]
#[test]
fn compact_keeps_owner_group_mode_extended_attributes_and_acl() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("compact-attributes");
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 8 * MIB)).unwrap();
    image.write_at(&[7u8; 4096], MIB).unwrap();
    image.write_at(&[1u8; 4096], 2 * BLOCK).unwrap();
    image
        .write_at(&vec![0u8; BLOCK as usize], 2 * BLOCK)
        .unwrap();
    drop(image);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    if !set_xattr(&path, "user.vhd-test", b"kept") {
        skip("the temporary folder's file system has no extended attributes");
        return;
    }
    let acl = acl_with_one_more_reader();
    assert!(set_xattr(&path, "system.posix_acl_access", &acl));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&path, Some(12345), Some(12346)).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap();
    let before_acl = get_xattr(&path, "system.posix_acl_access").unwrap();

    let report = compact(&path, &OpenOptions::default(), Progress::default()).unwrap();
    assert!(
        report.file_size_after < report.file_size_before,
        "{report:?}"
    );
    let after = std::fs::metadata(&path).unwrap();
    assert_ne!(after.ino(), before.ino(), "the file was replaced");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.mode(), before.mode());
    assert_eq!(
        get_xattr(&path, "user.vhd-test").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        get_xattr(&path, "system.posix_acl_access"),
        Some(before_acl)
    );
}

/// A run killed before it could clean up left its temporary file; the PID it carried may
/// be this process's now. The next compact goes on (another name, or none) instead of
/// failing on the name, and leaves the leftovers to `check` to report.
#[test]
fn leftovers_of_a_killed_compact_do_not_block_the_next_one() {
    let dir = TempDir::new("compact-leftovers");
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 8 * MIB)).unwrap();
    image.write_at(&[7u8; 4096], MIB).unwrap();
    drop(image);
    let pid = std::process::id();
    let leftovers = [
        dir.join(&format!(".disk.vhd.compact-{pid}.tmp")),
        dir.join(&format!(".disk.vhd.compact-{pid}-0.vhd-tmp")),
    ];
    for leftover in &leftovers {
        std::fs::write(leftover, b"left by a killed run").unwrap();
    }
    compact(&path, &OpenOptions::default(), Progress::default()).unwrap();
    assert_eq!(check_exit_code(&path), 0);
    for leftover in &leftovers {
        assert_eq!(std::fs::read(leftover).unwrap(), b"left by a killed run");
    }
}
