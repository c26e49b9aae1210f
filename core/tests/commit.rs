//! `commit`: the parent ends up with exactly what the chain showed (checked with
//! `qemu-img compare` against the expected raw disk, and with libvhdi where the writes were
//! whole 4 KiB units), the child is emptied and still opens, `check` is clean; cancelled
//! and refused commits leave every file consistent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use vhd_core::ops::{allocated_ranges, commit, snapshot, AllocatedRange, Progress};
use vhd_core::{create, CreateOptions, DiskType, Image, OpenOptions, ParentPath, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

fn own_ranges(path: &Path) -> Vec<AllocatedRange> {
    let image = open_ro(path);
    let ranges = allocated_ranges(&image).unwrap();
    ranges.into_iter().filter(|r| r.depth == 0).collect()
}

/// Writes random data (or zeros, which hide the parent) at each `(offset, length)`, into
/// the image and into the model of the disk.
fn write_runs(image: &mut Image, model: &mut [u8], rng: &mut Rng, runs: &[(u64, u64)]) {
    for (i, &(offset, length)) in runs.iter().enumerate() {
        let bytes = if i % 3 == 2 {
            vec![0u8; length as usize]
        } else {
            rng.bytes(length as usize)
        };
        image.write_at(&bytes, offset).unwrap();
        model[offset as usize..(offset + length) as usize].copy_from_slice(&bytes);
    }
    image.flush().unwrap();
}

/// `qemu-img compare` of the image (`format` vpc or raw) with the expected raw disk.
fn assert_qemu_sees(image: &Path, format: &str, expected: &[u8], dir: &TempDir) {
    let raw = dir.join("expected.raw");
    std::fs::write(&raw, expected).unwrap();
    let (code, text) = run_status(
        Command::new("qemu-img")
            .args(["compare", "-f", format, "-F", "raw"])
            .arg(image)
            .arg(&raw),
    );
    assert_eq!(code, 0, "qemu-img compare {}: {text}", image.display());
}

fn vhdiinfo_opens(path: &Path) {
    run_ok(Command::new("vhdiinfo").arg(path));
}

/// Records every progress report.
struct Reports(Mutex<Vec<(u64, u64)>>);

impl Reports {
    fn assert_complete(&self, total: u64) {
        let seen = self.0.lock().unwrap();
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(_, t)| t == total), "{seen:?}");
        assert_eq!(seen.last(), Some(&(total, total)));
    }
}

/// Child writes in whole 4 KiB units: across a block boundary, in the last block, zeros
/// over parent data, a long run of several chunks.
fn aligned_runs(size: u64) -> Vec<(u64, u64)> {
    vec![
        (0, 8192),
        (2 * MIB - 4096, 12288),
        (3 * MIB, 4096),
        (5 * MIB, 9 * MIB + 4096),
        (size - 4096, 4096),
        (17 * MIB, 64 * 1024),
    ]
}

/// A size that ends part-way through a 2 MiB block.
const SIZE: u64 = 20 * MIB + 8192;

/// A dynamic parent made by `qemu-img convert` from a raw disk with data in two places.
fn qemu_dynamic_parent(path: &Path, model: &mut [u8], rng: &mut Rng) {
    for (offset, length) in [(0, 3 * MIB), (12 * MIB, 3 * MIB)] {
        rng.fill(&mut model[offset as usize..(offset + length) as usize]);
    }
    let raw = path.with_extension("raw");
    std::fs::write(&raw, &*model).unwrap();
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc"])
            .args(["-o", "subformat=dynamic,force_size=on"])
            .arg(&raw)
            .arg(path),
    );
    std::fs::remove_file(&raw).unwrap();
}

#[test]
fn commit_into_a_dynamic_parent() {
    if !require_qemu() || !require_pyvhdi() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("commit-dynamic");
    let mut rng = Rng::new("commit dynamic");
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    let mut model = vec![0u8; SIZE as usize];
    qemu_dynamic_parent(&parent, &mut model, &mut rng);
    assert_qemu_sees(&parent, "vpc", &model, &dir);
    // What an empty child of this parent weighs (same folder: same locators).
    let fresh = dir.join("fresh.vhd");
    drop(snapshot(&parent, &fresh, &OpenOptions::default()).unwrap());
    let empty_size = file_len(&fresh);
    std::fs::remove_file(&fresh).unwrap();
    let mut image = snapshot(&parent, &child, &OpenOptions::default()).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &aligned_runs(SIZE));
    drop(image);
    assert_same_bytes(
        &libvhdi_read_chain(&[&parent, &child], &dir),
        &model,
        "libvhdi reads the chain before the commit",
    );
    let held: u64 = own_ranges(&child).iter().map(|r| r.length).sum();

    let reports = Reports(Mutex::new(Vec::new()));
    let record = |done, total| reports.0.lock().unwrap().push((done, total));
    let progress = Progress::default().with_callback(&record);
    let report = commit(&child, &OpenOptions::default(), progress).unwrap();
    assert_eq!(report.parent, parent);
    assert_eq!(report.bytes_committed, held);
    reports.assert_complete(held);

    assert_qemu_sees(&parent, "vpc", &model, &dir);
    assert_same_bytes(
        &libvhdi_read_chain(&[&parent], &dir),
        &model,
        "libvhdi reads the parent",
    );
    assert_same_bytes(
        &libvhdi_read_chain(&[&parent, &child], &dir),
        &model,
        "libvhdi reads the chain after the commit",
    );
    // The child is empty, as small as a new one, and opens as usual over its parent.
    assert_eq!(file_len(&child), empty_size);
    assert_eq!(report.child_file_size, empty_size);
    assert!(own_ranges(&child).is_empty());
    let reopened = open_rw(&child);
    assert_same_bytes(&read_all(&reopened), &model, "our read of the chain");
    drop(reopened);
    for path in [&parent, &child] {
        assert_clean(path);
        vhdiinfo_opens(path);
    }
}

#[test]
fn commit_into_a_fixed_parent_with_partial_sector_writes() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("commit-fixed");
    let mut rng = Rng::new("commit fixed");
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    let size = 9 * MIB;
    let mut model = vec![0u8; size as usize];
    let mut image = create(&parent, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &[(0, size)]);
    drop(image);
    let mut image = snapshot(&parent, &child, &OpenOptions::default()).unwrap();
    // Partial sectors: the child keeps the parent's bytes around them.
    let runs: Vec<(u64, u64)> = (0..40)
        .map(|_| {
            let offset = rng.below(size - 5000);
            (offset, rng.range(1, 5000))
        })
        .collect();
    write_runs(&mut image, &mut model, &mut rng, &runs);
    drop(image);
    assert_same_bytes(&read_all(&open_ro(&child)), &model, "before the commit");

    commit(&child, &OpenOptions::default(), Progress::default()).unwrap();
    assert_qemu_sees(&parent, "vpc", &model, &dir);
    assert!(own_ranges(&child).is_empty());
    assert_same_bytes(&read_all(&open_ro(&child)), &model, "the chain after");
    assert_clean(&parent);
    assert_clean(&child);
}

#[test]
fn commit_into_a_differencing_parent() {
    if !require_qemu() || !require_pyvhdi() {
        return;
    }
    let dir = TempDir::new("commit-diff");
    let mut rng = Rng::new("commit differencing");
    let base = dir.join("base.vhd");
    let mid = dir.join("mid.vhd");
    let top = dir.join("top.vhd");
    let mut model = vec![0u8; SIZE as usize];
    let mut image = create(&base, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    write_runs(
        &mut image,
        &mut model,
        &mut rng,
        &[(MIB, 6 * MIB), (15 * MIB, 4096)],
    );
    drop(image);
    let base_hash = sha256_file(&base);
    let mut image = snapshot(&base, &mid, &OpenOptions::default()).unwrap();
    write_runs(
        &mut image,
        &mut model,
        &mut rng,
        &[(4 * MIB, 4 * MIB), (SIZE - 8192, 8192)],
    );
    drop(image);
    let mut image = snapshot(&mid, &top, &OpenOptions::default()).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &aligned_runs(SIZE));
    drop(image);

    commit(&top, &OpenOptions::default(), Progress::default()).unwrap();
    assert_eq!(sha256_file(&base), base_hash, "the base is not written");
    assert_same_bytes(
        &libvhdi_read_chain(&[&base, &mid], &dir),
        &model,
        "libvhdi reads base + mid",
    );
    assert_same_bytes(
        &libvhdi_read_chain(&[&base, &mid, &top], &dir),
        &model,
        "libvhdi reads the whole chain",
    );
    assert!(own_ranges(&top).is_empty());
    for path in [&base, &mid, &top] {
        assert_clean(path);
    }
}

#[test]
fn commit_into_a_raw_base_named_by_the_caller() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("commit-raw");
    let mut rng = Rng::new("commit raw");
    let fixed = dir.join("base.vhd");
    let raw = dir.join("base.raw");
    let child = dir.join("child.vhd");
    let size = 5 * MIB;
    let mut model = rng.bytes(size as usize);
    let mut image = create(&fixed, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    image.write_at(&model, 0).unwrap();
    drop(image);
    std::fs::write(&raw, &model).unwrap();
    let mut image = snapshot(&fixed, &child, &OpenOptions::default()).unwrap();
    write_runs(
        &mut image,
        &mut model,
        &mut rng,
        &[(4096, 8192), (3 * MIB, MIB)],
    );
    drop(image);

    let options = OpenOptions {
        parents: vec![ParentPath::Raw(raw.clone())],
        ..Default::default()
    };
    let report = commit(&child, &options, Progress::default()).unwrap();
    assert_eq!(report.parent, raw);
    assert_qemu_sees(&raw, "raw", &model, &dir);
    assert!(own_ranges(&child).is_empty());
}

#[test]
fn a_cancelled_commit_leaves_a_consistent_chain_and_can_be_run_again() {
    if !require_qemu() || !require_pyvhdi() {
        return;
    }
    let dir = TempDir::new("commit-cancel");
    let mut rng = Rng::new("commit cancel");
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    let mut model = vec![0u8; SIZE as usize];
    let mut image = create(&parent, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &[(0, 8 * MIB)]);
    drop(image);
    let mut image = snapshot(&parent, &child, &OpenOptions::default()).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &aligned_runs(SIZE));
    drop(image);
    let held = own_ranges(&child);

    // Cancelled once the first chunk has been copied.
    let cancel = AtomicBool::new(false);
    let stop = |done: u64, _total: u64| {
        if done > 0 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let progress = Progress::default()
        .with_callback(&stop)
        .with_cancel(&cancel);
    let err = commit(&child, &OpenOptions::default(), progress).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_CANCELLED", "{err}");

    // The child still holds everything, and the chain opens as usual and reads the same.
    assert_eq!(own_ranges(&child), held);
    let image = open_rw(&child);
    assert_same_bytes(&read_all(&image), &model, "our read after the cancel");
    drop(image);
    assert_same_bytes(
        &libvhdi_read_chain(&[&parent, &child], &dir),
        &model,
        "libvhdi reads the chain after the cancel",
    );
    assert_clean(&parent);
    assert_clean(&child);

    commit(&child, &OpenOptions::default(), Progress::default()).unwrap();
    assert_qemu_sees(&parent, "vpc", &model, &dir);
    assert!(own_ranges(&child).is_empty());
    assert_clean(&parent);
    assert_clean(&child);
}

#[test]
fn other_children_of_the_parent_no_longer_open() {
    let dir = TempDir::new("commit-siblings");
    let mut rng = Rng::new("commit siblings");
    let parent = dir.join("parent.vhd");
    let mut model = vec![0u8; 4 * MIB as usize];
    let mut image = create(&parent, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &[(0, MIB)]);
    drop(image);
    // An old modification time, so that the commit surely changes it.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&parent)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let children: Vec<PathBuf> = ["a.vhd", "b.vhd"].iter().map(|n| dir.join(n)).collect();
    for child in &children {
        let mut image = snapshot(&parent, child, &OpenOptions::default()).unwrap();
        write_runs(&mut image, &mut model.clone(), &mut rng, &[(4096, 4096)]);
    }
    commit(&children[0], &OpenOptions::default(), Progress::default()).unwrap();
    open_rw(&children[0]);
    let err = Image::open(&children[1], &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_PARENT_MODIFIED", "{err}");
}

#[test]
fn refused_commits_change_nothing() {
    let dir = TempDir::new("commit-refused");
    let mut rng = Rng::new("commit refused");
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    let mut model = vec![0u8; 4 * MIB as usize];
    let mut image = create(&parent, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &[(0, MIB)]);
    drop(image);
    let mut image = create(
        &child,
        &CreateOptions {
            size: 6 * MIB,
            ..CreateOptions::differencing(&parent)
        },
    )
    .unwrap();
    write_runs(
        &mut image,
        &mut vec![0u8; 6 * MIB as usize],
        &mut rng,
        &[(4096, 4096)],
    );
    drop(image);
    let hashes = || (sha256_file(&parent), sha256_file(&child));
    let before = hashes();
    let run = |path: &Path, options: &OpenOptions| {
        commit(path, options, Progress::default()).unwrap_err()
    };

    let err = run(&parent, &OpenOptions::default());
    assert_eq!(err.code(), "ERR_VHD_WRONG_TYPE", "{err}");
    let read_only = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    assert_eq!(run(&child, &read_only).code(), "ERR_VHD_INVALID_ARGUMENT");
    // The child open elsewhere, or only its parent (read-only: commit needs it alone).
    let open_child = open_rw(&child);
    assert_eq!(
        run(&child, &OpenOptions::default()).code(),
        "ERR_VHD_LOCKED"
    );
    drop(open_child);
    let open_parent = open_ro(&parent);
    assert_eq!(
        run(&child, &OpenOptions::default()).code(),
        "ERR_VHD_LOCKED"
    );
    drop(open_parent);
    assert_eq!(hashes(), before);

    // Data past the end of the (smaller) parent cannot be committed.
    let mut image = open_rw(&child);
    image.write_at(&[1u8; 4096], 5 * MIB).unwrap();
    drop(image);
    let before = hashes();
    let err = run(&child, &OpenOptions::default());
    assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    assert_eq!(hashes(), before);
}

/// A commit that dies in the middle of the copy (a panic in the progress callback: no
/// cleanup runs in commit itself) leaves the child at parent time stamp 0 with all its
/// data: the chain opens as usual and reads the same, and committing again finishes.
#[test]
fn a_commit_that_dies_during_the_copy_can_be_run_again() {
    if !require_qemu() || !require_pyvhdi() {
        return;
    }
    let dir = TempDir::new("commit-dies");
    let mut rng = Rng::new("commit dies");
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    let mut model = vec![0u8; SIZE as usize];
    let mut image = create(&parent, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &[(MIB, 8 * MIB)]);
    drop(image);
    let mut image = snapshot(&parent, &child, &OpenOptions::default()).unwrap();
    write_runs(&mut image, &mut model, &mut rng, &aligned_runs(SIZE));
    drop(image);
    let held = own_ranges(&child);

    let die = |done: u64, _total: u64| {
        if done > 0 {
            panic!("killed in the middle of the copy");
        }
    };
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        commit(
            &child,
            &OpenOptions::default(),
            Progress::default().with_callback(&die),
        )
    }));
    assert!(died.is_err());
    let header_offset = be_u64(&file_bytes(&child, 0, 512), 16);
    let recorded = be_u32(&file_bytes(&child, header_offset + 56, 4), 0);
    assert_eq!(
        recorded, 0,
        "the parent time stamp is 'not recorded' meanwhile"
    );
    assert_eq!(own_ranges(&child), held);
    let image = open_rw(&child);
    assert_same_bytes(&read_all(&image), &model, "our read after the crash");
    drop(image);
    assert_same_bytes(
        &libvhdi_read_chain(&[&parent, &child], &dir),
        &model,
        "libvhdi reads the chain after the crash",
    );

    commit(&child, &OpenOptions::default(), Progress::default()).unwrap();
    assert_qemu_sees(&parent, "vpc", &model, &dir);
    assert!(own_ranges(&child).is_empty());
    open_rw(&child);
    assert_clean(&parent);
    assert_clean(&child);
}
