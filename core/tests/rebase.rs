//! `rebase`: a child whose parent moved or was renamed is pointed at it again. Afterwards
//! it opens with default options (from its new place, and through its relative locator
//! when the whole folder moves), libvhdi reads the chain right, `check` is clean; a wrong
//! parent is refused and nothing changes.

use std::path::Path;
use std::process::Command;
use vhd_core::ops::{commit, rebase, snapshot, Progress};
use vhd_core::parent_locator::platform;
use vhd_core::{create, CreateOptions, DiskType, DynamicHeader, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 8 * MIB + 4096;

fn write_random(image: &mut Image, model: &mut [u8], rng: &mut Rng, runs: &[(u64, u64)]) {
    for &(offset, length) in runs {
        let bytes = rng.bytes(length as usize);
        image.write_at(&bytes, offset).unwrap();
        model[offset as usize..(offset + length) as usize].copy_from_slice(&bytes);
    }
    image.flush().unwrap();
}

/// The locator texts by platform code.
fn locator(image: &Image, code: u32) -> Option<String> {
    let texts = image.parent_locator_texts().unwrap();
    let entries = image.header().unwrap().parent_locators;
    entries
        .iter()
        .zip(texts)
        .find(|(entry, _)| entry.platform_code == code)
        .and_then(|(_, text)| text)
}

/// A dynamic parent with data and a child over it (writes in whole 4 KiB units), in
/// `folder`; returns the model of the chain's disk.
fn make_chain(folder: &Path, rng: &mut Rng) -> Vec<u8> {
    let mut model = vec![0u8; SIZE as usize];
    let parent = folder.join("base.vhd");
    let mut image = create(&parent, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    write_random(&mut image, &mut model, rng, &[(0, 3 * MIB), (6 * MIB, MIB)]);
    drop(image);
    // An old modification time, unlike the footer's time stamp, so that the child records
    // one that only the parent file has (as after a parent written long ago).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let file = std::fs::File::options().write(true).open(&parent).unwrap();
    file.set_modified(old).unwrap();
    drop(file);
    let mut image = snapshot(&parent, &folder.join("child.vhd"), &OpenOptions::default()).unwrap();
    write_random(
        &mut image,
        &mut model,
        rng,
        &[(4096, 8192), (2 * MIB - 4096, 8192), (SIZE - 4096, 4096)],
    );
    model
}

#[test]
fn a_child_follows_its_moved_and_renamed_parent() {
    if !require_pyvhdi() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("rebase-moved");
    let mut rng = Rng::new("rebase moved");
    let root = dir.join("root");
    let a = root.join("a");
    // A long folder name: the new locators need more room than the old ones had.
    let b = root.join(format!("parents-{}", "x".repeat(180)));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut model = make_chain(&a, &mut rng);
    let child = a.join("child.vhd");
    let moved = b.join("renamed.vhd");
    std::fs::rename(a.join("base.vhd"), &moved).unwrap();
    let err = Image::open(&child, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_PARENT_NOT_FOUND", "{err}");

    rebase(&child, &moved, &OpenOptions::default()).unwrap();
    let image = open_rw(&child);
    let parent_abs = moved.canonicalize().unwrap();
    assert_eq!(
        image.parent().unwrap().path().canonicalize().unwrap(),
        parent_abs
    );
    assert_eq!(image.header().unwrap().parent_name(), "renamed.vhd");
    let absolute = parent_abs.to_str().unwrap();
    assert_eq!(locator(&image, platform::W2KU).as_deref(), Some(absolute));
    let relative = format!(
        "..\\{}\\renamed.vhd",
        b.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(locator(&image, platform::W2RU), Some(relative));
    assert_eq!(
        locator(&image, platform::MACX),
        Some(format!("file://{absolute}"))
    );
    assert_same_bytes(&read_all(&image), &model, "our read after the rebase");
    drop(image);
    assert_clean(&child);
    let info = String::from_utf8(run_ok(Command::new("vhdiinfo").arg(&child))).unwrap();
    let parent_line = info.lines().find(|l| l.contains("Parent filename"));
    assert!(
        parent_line.is_some_and(|l| l.trim_end().ends_with(": renamed.vhd")),
        "vhdiinfo: {info}"
    );
    let (name, theirs) = libvhdi_parent_name_and_chain(&[&moved, &child], &dir);
    assert!(
        name.ends_with("renamed.vhd"),
        "libvhdi's parent name {name:?}"
    );
    assert_same_bytes(&theirs, &model, "libvhdi reads the rebased chain");

    // The whole tree moves: the old absolute path is gone, the relative locator leads on.
    let root2 = dir.join("root2");
    std::fs::rename(&root, &root2).unwrap();
    let child = root2.join("a").join("child.vhd");
    let moved = root2.join(b.file_name().unwrap()).join("renamed.vhd");
    let mut image = open_rw(&child);
    assert_eq!(
        image.parent().unwrap().path().canonicalize().unwrap(),
        moved.canonicalize().unwrap()
    );
    // New blocks go past the new locator data, which stays intact.
    write_random(
        &mut image,
        &mut model,
        &mut rng,
        &[(4 * MIB, 2 * MIB + 4096)],
    );
    drop(image);
    let image = open_rw(&child);
    assert_same_bytes(&read_all(&image), &model, "after writes past the locators");
    assert!(locator(&image, platform::W2KU)
        .unwrap()
        .ends_with("renamed.vhd"));
    drop(image);
    assert_clean(&child);
    let (_, theirs) = libvhdi_parent_name_and_chain(&[&moved, &child], &dir);
    assert_same_bytes(&theirs, &model, "libvhdi reads the chain after new writes");
}

#[test]
fn rebasing_again_and_again_stays_clean() {
    let dir = TempDir::new("rebase-again");
    let mut rng = Rng::new("rebase again");
    let model = make_chain(dir.path(), &mut rng);
    let child = dir.join("child.vhd");
    let mut parent = dir.join("base.vhd");
    for round in 0..4 {
        let next = dir.join(&format!("base{round}.vhd"));
        std::fs::rename(&parent, &next).unwrap();
        parent = next;
        rebase(&child, &parent, &OpenOptions::default()).unwrap();
        let image = open_rw(&child);
        assert_eq!(
            image.parent().unwrap().path().file_name(),
            parent.file_name()
        );
        assert_same_bytes(&read_all(&image), &model, &format!("round {round}"));
        drop(image);
        assert_clean(&child);
    }
    // Committed afterwards: the locator data, which now lies past the blocks, moves back
    // next to the BAT, and the child shrinks to the size of a new child of that parent.
    commit(&child, &OpenOptions::default(), Progress::default()).unwrap();
    let fresh = dir.join("fresh.vhd");
    drop(snapshot(&parent, &fresh, &OpenOptions::default()).unwrap());
    assert_eq!(file_len(&child), file_len(&fresh));
    let image = open_rw(&child);
    assert_same_bytes(&read_all(&image), &model, "committed");
    assert!(locator(&image, platform::W2RU)
        .unwrap()
        .ends_with("base3.vhd"));
    drop(image);
    assert_clean(&child);
    assert_clean(&parent);
}

#[test]
fn a_parent_with_another_unique_id_is_refused_and_nothing_changes() {
    let dir = TempDir::new("rebase-wrong");
    let mut rng = Rng::new("rebase wrong");
    make_chain(dir.path(), &mut rng);
    let child = dir.join("child.vhd");
    let other = dir.join("other.vhd");
    drop(create(&other, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap());
    let before = sha256_file(&child);
    let err = rebase(&child, &other, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_PARENT_MISMATCH", "{err}");
    let err = rebase(&dir.join("base.vhd"), &other, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_WRONG_TYPE", "{err}");
    // Open elsewhere: refused.
    let open_child = open_rw(&child);
    let err = rebase(&child, &dir.join("base.vhd"), &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_LOCKED", "{err}");
    drop(open_child);
    assert_eq!(sha256_file(&child), before);
}

#[test]
fn a_copied_parent_needs_ignore_parent_timestamp_and_is_then_recorded() {
    let dir = TempDir::new("rebase-copy");
    let mut rng = Rng::new("rebase copy");
    let model = make_chain(dir.path(), &mut rng);
    let child = dir.join("child.vhd");
    let copy = dir.join("copy.vhd");
    std::fs::copy(dir.join("base.vhd"), &copy).unwrap();
    std::fs::remove_file(dir.join("base.vhd")).unwrap();
    // The copy has a modification time of its own (now, not the original's).
    let before = sha256_file(&child);
    let err = rebase(&child, &copy, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_PARENT_MODIFIED", "{err}");
    assert_eq!(sha256_file(&child), before);

    let options = OpenOptions {
        ignore_parent_timestamp: true,
        ..OpenOptions::default()
    };
    rebase(&child, &copy, &options).unwrap();
    let image = open_rw(&child);
    assert_eq!(image.parent().unwrap().path(), copy.as_path());
    assert_same_bytes(&read_all(&image), &model, "over the copy");
    drop(image);
    assert_clean(&child);
}

/// A differencing image made by Windows (diskpart), with its locators laid out the
/// Windows way (data space in bytes, the BAT between two locators), whose parent is lost,
/// rebased onto a stand-in with the unique id it records.
#[test]
fn a_windows_child_is_rebased() {
    let Some(corpus) = corpus_dir() else {
        return;
    };
    if !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("rebase-windows");
    let child = dir.join("fat-differential.vhd");
    copy_writable(&corpus.join("dfvfs/fat-differential.vhd"), &child);
    // The unique id of the lost parent, from the child's dynamic header.
    let header_offset = be_u64(&file_bytes(&child, 0, 512), 16);
    let header_bytes = file_bytes(&child, header_offset, 1024);
    let header = DynamicHeader::parse(&header_bytes.try_into().unwrap(), header_offset).unwrap();
    let standin = dir.join("standin").join("fat-parent.vhd");
    std::fs::create_dir_all(standin.parent().unwrap()).unwrap();
    drop(
        create(
            &standin,
            &CreateOptions {
                unique_id: Some(header.parent_unique_id),
                ..CreateOptions::new(DiskType::Dynamic, 4 * MIB)
            },
        )
        .unwrap(),
    );

    rebase(&child, &standin, &OpenOptions::default()).unwrap();
    let image = open_rw(&child);
    assert_eq!(image.header().unwrap().parent_name(), "fat-parent.vhd");
    assert_eq!(
        locator(&image, platform::W2RU).as_deref(),
        Some(".\\standin\\fat-parent.vhd")
    );
    // What the README of the corpus says the child holds.
    let mut sector = [0u8; 512];
    image.read_at(&mut sector, 194 * 512).unwrap();
    assert!(sector.starts_with(b"place,user,password"));
    image.read_at(&mut sector, 196 * 512).unwrap();
    assert!(sector.starts_with(b"This is another file."));
    drop(image);
    assert_clean(&child);
    run_ok(Command::new("vhdiinfo").arg(&child));
}
