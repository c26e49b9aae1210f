//! File locks: a read-write open excludes every other open of the file, read-only opens
//! share it, the parents of a differencing image are shared, `lock: false` opts out, locks
//! go with the image, and another process sees them too.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use vhd_core::{create, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk};

const MIB: u64 = 1 << 20;

fn read_write() -> OpenOptions {
    OpenOptions::default()
}

fn unlocked(read_only: bool) -> OpenOptions {
    OpenOptions {
        read_only,
        lock: false,
        ..OpenOptions::default()
    }
}

/// A 4 MiB dynamic image with some data, closed.
fn dynamic_image(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, 4 * MIB);
    options.block_size = 512 * 1024;
    let mut disk = create(&path, &options).unwrap();
    disk.write_at(b"locked data", MIB).unwrap();
    disk.flush().unwrap();
    path
}

/// A differencing child over `parent`, closed.
fn child_of(dir: &TempDir, parent: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    drop(create(&path, &CreateOptions::differencing(parent)).unwrap());
    path
}

/// Asserts that opening `path` with `options` fails with `Error::Locked` naming it.
#[track_caller]
fn assert_locked(path: &Path, options: &OpenOptions) {
    match Image::open(path, options) {
        Ok(_) => panic!(
            "{} opened (read-only: {}) although another open holds a conflicting lock",
            path.display(),
            options.read_only
        ),
        Err(e) => {
            assert!(
                matches!(&e, Error::Locked { path: p, read_only } if p == path && *read_only == options.read_only),
                "{e:?}"
            );
            assert_eq!(e.code(), "ERR_VHD_LOCKED");
            let message = e.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("in use"), "{message}");
        }
    }
}

#[test]
fn default_options_lock() {
    assert!(OpenOptions::default().lock);
    assert!(OpenOptions::default().parent_root.is_none());
}

#[test]
fn read_write_excludes_read_write() {
    let dir = TempDir::new("lock-rw-rw");
    let path = dynamic_image(&dir, "disk.vhd");
    let image = Image::open(&path, &read_write()).unwrap();
    assert_locked(&path, &read_write());
    // The first handle still works.
    let mut buf = [0u8; 11];
    image.read_at(&mut buf, MIB).unwrap();
    assert_eq!(&buf, b"locked data");
}

#[test]
fn read_write_and_read_only_exclude_each_other() {
    let dir = TempDir::new("lock-rw-ro");
    let path = dynamic_image(&dir, "disk.vhd");
    let image = Image::open(&path, &read_write()).unwrap();
    assert_locked(&path, &read_only());
    drop(image);

    let image = open_ro(&path);
    assert_locked(&path, &read_write());
    drop(image);
}

#[test]
fn read_only_opens_share() {
    let dir = TempDir::new("lock-ro-ro");
    let path = dynamic_image(&dir, "disk.vhd");
    let a = open_ro(&path);
    let b = open_ro(&path);
    let c = open_ro(&path);
    for image in [&a, &b, &c] {
        let mut buf = [0u8; 11];
        image.read_at(&mut buf, MIB).unwrap();
        assert_eq!(&buf, b"locked data");
    }
    // ...and all of them keep a writer out.
    drop((a, b));
    assert_locked(&path, &read_write());
    drop(c);
    drop(Image::open(&path, &read_write()).unwrap());
}

#[test]
fn parents_are_locked_shared() {
    let dir = TempDir::new("lock-parents");
    let base = dynamic_image(&dir, "base.vhd");
    let mid = child_of(&dir, &base, "mid.vhd");
    let top = child_of(&dir, &mid, "top.vhd");

    // The top open for writing: every image below it is shared-locked.
    let mut image = Image::open(&top, &read_write()).unwrap();
    assert_eq!(image.chain().len(), 3);
    for parent in [&base, &mid] {
        assert_locked(parent, &read_write());
        // Reading a parent while a child is open is fine.
        let reader = open_ro(parent);
        let mut buf = [0u8; 11];
        reader.read_at(&mut buf, MIB).unwrap();
        assert_eq!(&buf, b"locked data");
    }
    assert_locked(&top, &read_only());
    image.write_at(b"top", 0).unwrap();
    image.flush().unwrap();

    // A second child may be opened over the same (shared) parents...
    let other = child_of(&dir, &mid, "other.vhd");
    let second = Image::open(&other, &read_write()).unwrap();
    drop(second);
    // ...and a read-only open of the top's chain from another handle conflicts only with
    // the top itself.
    let mid_reader = open_ro(&mid);
    assert_eq!(mid_reader.chain().len(), 2);
    drop(mid_reader);

    // Once the child is gone, its parents may be written again.
    drop(image);
    drop(Image::open(&base, &read_write()).unwrap());
    drop(Image::open(&mid, &read_write()).unwrap());
}

#[test]
fn a_parent_open_for_writing_keeps_its_children_closed() {
    let dir = TempDir::new("lock-parent-rw");
    let base = dynamic_image(&dir, "base.vhd");
    let child = child_of(&dir, &base, "child.vhd");
    let writer = Image::open(&base, &read_write()).unwrap();
    let e = Image::open(&child, &read_only()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_LOCKED", "{e}");
    assert!(
        matches!(e.root(), Error::Locked { path, read_only: true } if *path == base),
        "{e:?}"
    );
    assert!(e.to_string().contains(&base.display().to_string()), "{e}");
    drop(writer);
    drop(open_ro(&child));
}

#[test]
fn opting_out_skips_the_lock() {
    let dir = TempDir::new("lock-opt-out");
    let path = dynamic_image(&dir, "disk.vhd");

    // A locked writer does not stop an unlocked open, of either kind...
    let writer = Image::open(&path, &read_write()).unwrap();
    drop(Image::open(&path, &unlocked(false)).unwrap());
    let reader = Image::open(&path, &unlocked(true)).unwrap();
    let mut buf = [0u8; 11];
    reader.read_at(&mut buf, MIB).unwrap();
    assert_eq!(&buf, b"locked data");
    drop((writer, reader));

    // ...and an unlocked open takes no lock.
    let a = Image::open(&path, &unlocked(false)).unwrap();
    let b = Image::open(&path, &read_write()).unwrap();
    drop((a, b));

    // Nor on the parents.
    let child = child_of(&dir, &path, "child.vhd");
    let image = Image::open(&child, &unlocked(false)).unwrap();
    drop(Image::open(&path, &read_write()).unwrap());
    drop(image);
}

#[test]
fn locks_are_released_on_drop() {
    let dir = TempDir::new("lock-drop");
    let path = dynamic_image(&dir, "disk.vhd");
    for _ in 0..20 {
        let mut image = Image::open(&path, &read_write()).unwrap();
        image.write_at(b"again", 0).unwrap();
        drop(image);
        drop(open_ro(&path));
    }
    // Fixed images too.
    let fixed = dir.join("fixed.vhd");
    drop(create(&fixed, &CreateOptions::new(DiskType::Fixed, MIB)).unwrap());
    let image = Image::open(&fixed, &read_write()).unwrap();
    assert_locked(&fixed, &read_only());
    drop(image);
    drop(Image::open(&fixed, &read_write()).unwrap());
}

#[test]
fn create_holds_the_lock_it_returns() {
    let dir = TempDir::new("lock-create");
    for disk_type in [DiskType::Fixed, DiskType::Dynamic] {
        let path = dir.join(&format!("{}.vhd", disk_type.name()));
        let image = create(&path, &CreateOptions::new(disk_type, MIB)).unwrap();
        assert_eq!(image.read_only_reason(), None);
        assert_locked(&path, &read_only());
        assert_locked(&path, &read_write());

        // Overwriting an image that is open is refused, and leaves it as it was.
        let before = std::fs::read(&path).unwrap();
        let options = CreateOptions {
            overwrite: true,
            ..CreateOptions::new(DiskType::Dynamic, 2 * MIB)
        };
        let e = create(&path, &options).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_LOCKED", "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);

        drop(image);
        // Closed, it may be overwritten.
        let image = create(&path, &options).unwrap();
        assert_eq!(image.size(), 2 * MIB);
        drop(image);
    }
    // A differencing child: the new child is locked, its parent shared.
    let base = dynamic_image(&dir, "base.vhd");
    let child = dir.join("child.vhd");
    let image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    assert_locked(&child, &read_only());
    assert_locked(&base, &read_write());
    drop(open_ro(&base));
    drop(image);
    // A parent that is being written cannot get a child.
    let writer = Image::open(&base, &read_write()).unwrap();
    let e = create(dir.join("child2.vhd"), &CreateOptions::differencing(&base)).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_LOCKED", "{e}");
    assert!(!dir.join("child2.vhd").exists());
    drop(writer);
}

// ---------------------------------------------------------------------------------------------
// Another process

/// The environment variable that turns `probe_in_another_process` into the child side:
/// `<read-only|read-write>:<path>`.
const PROBE_VAR: &str = "VHD_LOCKING_PROBE";

/// What another process gets when it opens `path`: "ok" or an error code.
fn probe(path: &Path, read_only: bool) -> String {
    let mode = if read_only { "read-only" } else { "read-write" };
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "probe_in_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_VAR, format!("{mode}:{}", path.display()))
        .output()
        .expect("cannot re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the probe process failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("PROBE RESULT: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no result from the probe process:\n{stdout}"))
        .to_string()
}

/// The child side of `another_process_sees_the_locks` (does nothing in a normal run).
#[test]
fn probe_in_another_process() {
    let Ok(spec) = std::env::var(PROBE_VAR) else {
        return;
    };
    let (mode, path) = spec.split_once(':').expect("mode:path");
    let options = if mode == "read-only" {
        read_only()
    } else {
        read_write()
    };
    let result = match Image::open(path, &options) {
        Ok(image) => {
            let mut buf = [0u8; 11];
            image.read_at(&mut buf, MIB).unwrap();
            assert_eq!(&buf, b"locked data");
            "ok".to_string()
        }
        Err(e) => e.code().to_string(),
    };
    println!("PROBE RESULT: {result}");
}

#[test]
fn another_process_sees_the_locks() {
    let dir = TempDir::new("lock-process");
    let path = dynamic_image(&dir, "disk.vhd");
    let base = dynamic_image(&dir, "base.vhd");
    let child = child_of(&dir, &base, "child.vhd");

    // Nothing open: the other process opens it either way.
    assert_eq!(probe(&path, false), "ok");
    assert_eq!(probe(&path, true), "ok");

    let writer = Image::open(&path, &read_write()).unwrap();
    assert_eq!(probe(&path, true), "ERR_VHD_LOCKED");
    assert_eq!(probe(&path, false), "ERR_VHD_LOCKED");
    drop(writer);
    assert_eq!(probe(&path, false), "ok");

    let reader = open_ro(&path);
    assert_eq!(probe(&path, true), "ok");
    assert_eq!(probe(&path, false), "ERR_VHD_LOCKED");
    drop(reader);

    // A child open here shares its parent with readers there, not with writers.
    let image = Image::open(&child, &read_write()).unwrap();
    assert_eq!(probe(&base, true), "ok");
    assert_eq!(probe(&base, false), "ERR_VHD_LOCKED");
    assert_eq!(probe(&child, true), "ERR_VHD_LOCKED");
    drop(image);
    assert_eq!(probe(&base, false), "ok");

    // flock(1), where installed, sees the same lock (both are flock(2) on Linux).
    #[cfg(target_os = "linux")]
    if find_on_path("flock").is_some() {
        let flock = |shared: bool| {
            let mut cmd = Command::new("flock");
            cmd.arg("--nonblock");
            if shared {
                cmd.arg("--shared");
            }
            cmd.arg(&path).arg("true");
            cmd.status().unwrap().success()
        };
        let writer = Image::open(&path, &read_write()).unwrap();
        assert!(
            !flock(true),
            "flock --shared got a lock on a file open read-write"
        );
        drop(writer);
        let reader = open_ro(&path);
        assert!(flock(true));
        assert!(
            !flock(false),
            "flock got an exclusive lock on a file open read-only"
        );
        drop(reader);
        assert!(flock(false));
    }
}
