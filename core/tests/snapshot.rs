//! `snapshot`: a new child over an image, returned open; writes to it leave the parent
//! as it was (its file, and what qemu reads from it), and libvhdi reads the chain right.

use vhd_core::ops::snapshot;
use vhd_core::{
    check, create, CheckOptions, CreateOptions, DiskType, Image, OpenOptions, VirtualDisk,
};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

#[test]
fn writes_to_a_snapshot_leave_its_parent_alone() {
    if !require_qemu() || !require_pyvhdi() || !require_tool("sha256sum") {
        return;
    }
    let dir = TempDir::new("snapshot");
    let mut rng = Rng::new("snapshot");
    for kind in [DiskType::Fixed, DiskType::Dynamic] {
        let parent = dir.join(&format!("{}.vhd", kind.name()));
        let child = dir.join(&format!("{}-snap.vhd", kind.name()));
        let size = 6 * MIB + 4096;
        let mut parent_disk = vec![0u8; size as usize];
        let mut image = create(&parent, &CreateOptions::new(kind, size)).unwrap();
        rng.fill(&mut parent_disk[..4 * MIB as usize]);
        image.write_at(&parent_disk[..4 * MIB as usize], 0).unwrap();
        drop(image);
        let parent_hash = sha256_file(&parent);

        let mut snap = snapshot(&parent, &child, &OpenOptions::default()).unwrap();
        assert_eq!(snap.disk_type(), DiskType::Differencing);
        assert_eq!(snap.chain(), vec![child.as_path(), parent.as_path()]);
        assert_eq!(snap.size(), size);
        assert_same_bytes(&read_all(&snap), &parent_disk, "a new snapshot");
        let mut model = parent_disk.clone();
        for (offset, length) in [(0, 8192), (2 * MIB - 4096, 3 * MIB), (size - 4096, 4096)] {
            let bytes = rng.bytes(length as usize);
            snap.write_at(&bytes, offset).unwrap();
            model[offset as usize..(offset + length) as usize].copy_from_slice(&bytes);
        }
        snap.flush().unwrap();
        drop(snap);

        assert_eq!(
            sha256_file(&parent),
            parent_hash,
            "{kind:?}: the parent's file"
        );
        assert_same_bytes(
            &qemu_raw(&parent, &dir),
            &parent_disk,
            "qemu reads the parent",
        );
        assert_same_bytes(
            &libvhdi_read_chain(&[&parent, &child], &dir),
            &model,
            "libvhdi reads the chain",
        );
        let reopened = Image::open(&child, &Default::default()).unwrap();
        assert_same_bytes(&read_all(&reopened), &model, "our read of the chain");
        drop(reopened);
        let report = check(&child, &CheckOptions::default()).unwrap();
        assert!(report.is_clean(), "{report}");
    }
}

#[test]
fn a_snapshot_is_refused_over_an_existing_file_or_a_missing_parent() {
    let dir = TempDir::new("snapshot-refused");
    let parent = dir.join("parent.vhd");
    drop(create(&parent, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap());
    let taken = dir.join("taken.vhd");
    std::fs::write(&taken, b"keep me").unwrap();
    let err = snapshot(&parent, &taken, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_EXISTS", "{err}");
    assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
    let err = snapshot(
        &dir.join("missing.vhd"),
        &dir.join("child.vhd"),
        &OpenOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_IO", "{err}");
    assert!(!dir.join("child.vhd").exists());
    // Over itself: the file exists, so it is refused before anything is written.
    let before = sha256_file(&parent);
    assert!(snapshot(&parent, &parent, &OpenOptions::default()).is_err());
    assert_eq!(sha256_file(&parent), before);
}
