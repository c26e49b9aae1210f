//! File locks: a read-write open excludes every other open of the file, read-only opens
//! share it, the parents of a differencing image are shared, `lock: false` opts out, locks
//! go with the image, and another process sees them too.

use std::path::{Path, PathBuf};
use std::process::Command;
use vhd_core::{create, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

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

// ---------------------------------------------------------------------------------------------
// One file, whatever route reaches it (Unix: on Windows, locks belong to each handle, and
// the in-process table is not used)

#[cfg(unix)]
/// `path` opened read-write (or read-only) as a plain file, as a caller of
/// `Image::open_file` has it.
fn plain_file(path: &Path, read_only: bool) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .unwrap()
}

#[cfg(unix)]
/// Opens the image in `file` (a descriptor the caller holds), as `path`.
fn open_file(file: &std::fs::File, path: &Path, options: &OpenOptions) -> vhd_core::Result<Image> {
    Image::open_file(file.try_clone().unwrap(), path, options)
}

#[cfg(unix)]
/// Every way this process can reach the file at `path` a second time: its path, a hard
/// link, a symbolic link, a new descriptor, and duplicates of `held` (the descriptor the
/// first open was made from, when it was made from one). Each must be refused while the
/// first open holds a conflicting lock.
#[track_caller]
fn assert_every_route_locked(
    dir: &TempDir,
    path: &Path,
    held: Option<&std::fs::File>,
    options: &OpenOptions,
) {
    let hard = dir.join("hard-link.vhd");
    let soft = dir.join("symbolic-link.vhd");
    let _ = std::fs::remove_file(&hard);
    let _ = std::fs::remove_file(&soft);
    std::fs::hard_link(path, &hard).unwrap();
    std::os::unix::fs::symlink(path, &soft).unwrap();
    for route in [path, &hard, &soft] {
        assert_locked(route, options);
        let e = open_file(&plain_file(route, options.read_only), route, options).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_LOCKED", "{}: {e}", route.display());
    }
    if let Some(held) = held {
        let e = open_file(held, path, options).unwrap_err();
        assert_eq!(
            e.code(),
            "ERR_VHD_LOCKED",
            "a duplicate of the descriptor: {e}"
        );
    }
    std::fs::remove_file(&hard).unwrap();
    std::fs::remove_file(&soft).unwrap();
}

#[cfg(unix)]
#[test]
fn a_read_write_open_excludes_every_route_to_the_file() {
    let dir = TempDir::new("lock-routes");
    let path = dynamic_image(&dir, "disk.vhd");
    // Opened by path, then from a descriptor (duplicates of which are tried too).
    let by_path = Image::open(&path, &read_write()).unwrap();
    assert_every_route_locked(&dir, &path, None, &read_write());
    assert_every_route_locked(&dir, &path, None, &read_only());
    drop(by_path);
    let held = plain_file(&path, false);
    let by_fd = open_file(&held, &path, &read_write()).unwrap();
    assert_every_route_locked(&dir, &path, Some(&held), &read_write());
    assert_every_route_locked(&dir, &path, Some(&held), &read_only());
    // Another process is kept out too, for reading and writing: a refused read-only open
    // on the same descriptor did not turn the exclusive lock into a shared one.
    assert_eq!(probe(&path, true), "ERR_VHD_LOCKED");
    assert_eq!(probe(&path, false), "ERR_VHD_LOCKED");
    drop(by_fd);
    // Closed, every route opens again, although the caller still holds its descriptor.
    assert_eq!(probe(&path, false), "ok");
    drop(open_file(&held, &path, &read_write()).unwrap());
}

#[cfg(unix)]
#[test]
fn read_only_opens_share_every_route_and_exclude_writers() {
    let dir = TempDir::new("lock-routes-ro");
    let path = dynamic_image(&dir, "disk.vhd");
    let hard = dir.join("hard.vhd");
    std::fs::hard_link(&path, &hard).unwrap();
    let held = plain_file(&path, true);
    let readers = [
        open_ro(&path),
        open_ro(&hard),
        open_file(&held, &path, &read_only()).unwrap(),
        open_file(&held, &path, &read_only()).unwrap(),
    ];
    assert_every_route_locked(&dir, &path, Some(&held), &read_write());
    // A writer's refused open on the readers' descriptor changed nothing: another process
    // still reads, and still cannot write.
    assert_eq!(probe(&path, true), "ok");
    assert_eq!(probe(&path, false), "ERR_VHD_LOCKED");
    for reader in &readers {
        let mut buf = [0u8; 11];
        reader.read_at(&mut buf, MIB).unwrap();
        assert_eq!(&buf, b"locked data");
    }
    drop(readers);
    assert_eq!(probe(&path, false), "ok");
}

/// The report: two read-write images on one descriptor both allocated their first block
/// at the same offset, and the image was destroyed. The second is refused now.
#[cfg(unix)]
#[test]
fn two_writers_on_one_descriptor_are_refused() {
    let dir = TempDir::new("lock-two-writers");
    let path = dynamic_image(&dir, "disk.vhd");
    let held = plain_file(&path, false);
    let mut first = open_file(&held, &path, &read_write()).unwrap();
    let second = open_file(&held, &path, &read_write());
    if let Ok(mut second) = second {
        // What happened before: each allocates a block where the footer is.
        first.write_at(&[1; 4096], 0).unwrap();
        second.write_at(&[2; 4096], 2 * MIB).unwrap();
        first.flush().unwrap();
        second.flush().unwrap();
        drop((first, second));
        let reopened = Image::open(&path, &read_only()).map(|_| "opens");
        panic!("a second writer opened on the same descriptor; afterwards the image {reopened:?}");
    }
    let e = second.unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_LOCKED", "{e}");
    first.write_at(&[1; 4096], 0).unwrap();
    first.flush().unwrap();
    drop(first);
    assert_clean(&path);
    let image = open_ro(&path);
    let mut buf = [0u8; 4096];
    image.read_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [1; 4096]);
}

/// The lock stays while any reader is open, whichever closes first, on separate
/// descriptors (a path twice, a hard link) or duplicates of one.
#[cfg(unix)]
#[test]
fn closing_one_of_two_readers_keeps_the_lock() {
    let dir = TempDir::new("lock-two-readers");
    let path = dynamic_image(&dir, "disk.vhd");
    let hard = dir.join("hard.vhd");
    std::fs::hard_link(&path, &hard).unwrap();
    let held = plain_file(&path, true);
    type Opener<'a> = Box<dyn Fn() -> Image + 'a>;
    let openers: [(&str, Opener, Opener); 3] = [
        (
            "a path twice",
            Box::new(|| open_ro(&path)),
            Box::new(|| open_ro(&path)),
        ),
        (
            "a path and a hard link",
            Box::new(|| open_ro(&path)),
            Box::new(|| open_ro(&hard)),
        ),
        (
            "one descriptor twice",
            Box::new(|| open_file(&held, &path, &read_only()).unwrap()),
            Box::new(|| open_file(&held, &path, &read_only()).unwrap()),
        ),
    ];
    for (what, open_a, open_b) in &openers {
        for first_closed in ["a", "b"] {
            let (a, b) = (open_a(), open_b());
            let (closed, left) = if first_closed == "a" { (a, b) } else { (b, a) };
            drop(closed);
            assert_eq!(
                probe(&path, false),
                "ERR_VHD_LOCKED",
                "{what}, {first_closed} closed first"
            );
            assert_locked(&path, &read_write());
            drop(left);
            assert_eq!(probe(&path, false), "ok", "{what}: both closed");
        }
    }
}

#[cfg(unix)]
#[test]
fn a_failed_open_leaves_nothing_locked() {
    let dir = TempDir::new("lock-failed");
    let path = dynamic_image(&dir, "disk.vhd");
    let held = plain_file(&path, false);
    // Refused after the lock was taken (the wrong type), by path and from a descriptor.
    let fixed = OpenOptions {
        expected_type: Some(DiskType::Fixed),
        ..read_write()
    };
    assert_eq!(
        Image::open(&path, &fixed).unwrap_err().code(),
        "ERR_VHD_WRONG_TYPE"
    );
    assert_eq!(
        open_file(&held, &path, &fixed).unwrap_err().code(),
        "ERR_VHD_WRONG_TYPE"
    );
    drop(open_file(&held, &path, &read_write()).unwrap());
    // Refused by the lock: the refused open leaves nothing behind when the holder goes.
    let holder = open_ro(&path);
    assert_locked(&path, &read_write());
    assert_eq!(
        open_file(&held, &path, &read_write()).unwrap_err().code(),
        "ERR_VHD_LOCKED"
    );
    drop(holder);
    drop(open_file(&held, &path, &read_write()).unwrap());
    assert_eq!(probe(&path, false), "ok");
    // A child whose parent is missing: neither stays locked.
    let base = dynamic_image(&dir, "base.vhd");
    let child = child_of(&dir, &base, "child.vhd");
    std::fs::rename(&base, dir.join("moved.vhd")).unwrap();
    assert_eq!(
        Image::open(&child, &read_write()).unwrap_err().code(),
        "ERR_VHD_PARENT_NOT_FOUND"
    );
    std::fs::rename(dir.join("moved.vhd"), &base).unwrap();
    drop(Image::open(&child, &read_write()).unwrap());
    drop(Image::open(&base, &read_write()).unwrap());
}

#[cfg(unix)]
#[test]
fn unlocked_opens_skip_the_table_too() {
    let dir = TempDir::new("lock-unlocked-fd");
    let path = dynamic_image(&dir, "disk.vhd");
    let held = plain_file(&path, false);
    let locked = open_file(&held, &path, &read_write()).unwrap();
    // No lock is taken or checked: on the same descriptor, by path, read-only or not.
    drop(open_file(&held, &path, &unlocked(true)).unwrap());
    drop(Image::open(&path, &unlocked(true)).unwrap());
    // ...and it did not disturb the locked open's lock.
    assert_eq!(probe(&path, true), "ERR_VHD_LOCKED");
    drop(locked);
    assert_eq!(probe(&path, false), "ok");
}

/// `create` and every operation that writes an image lock it the same way: an image open
/// here from a descriptor (which the OS lock alone could not tell apart) is refused.
#[cfg(unix)]
#[test]
fn create_and_operations_see_images_open_from_a_descriptor() {
    use vhd_core::ops::{self, Progress, ResizeOptions};
    use vhd_core::CheckOptions;
    let dir = TempDir::new("lock-ops");
    let base = dynamic_image(&dir, "base.vhd");
    let child = child_of(&dir, &base, "child.vhd");
    let locked =
        |e: vhd_core::Error, what: &str| assert_eq!(e.code(), "ERR_VHD_LOCKED", "{what}: {e}");
    for path in [&base, &child] {
        let held = plain_file(path, false);
        let image = open_file(&held, path, &read_write()).unwrap();
        let before = std::fs::read(path).unwrap();
        let overwrite = CreateOptions {
            overwrite: true,
            ..CreateOptions::new(DiskType::Dynamic, MIB)
        };
        locked(create(path, &overwrite).unwrap_err(), "create");
        locked(
            ops::compact(path, &read_write(), Progress::default()).unwrap_err(),
            "compact",
        );
        let resize = ResizeOptions::default();
        locked(
            ops::resize(path, 8 * MIB, &resize, Progress::default()).unwrap_err(),
            "resize",
        );
        locked(
            ops::repair(path, &CheckOptions::default()).unwrap_err(),
            "repair",
        );
        if path == &child {
            locked(
                ops::commit(path, &read_write(), Progress::default()).unwrap_err(),
                "commit",
            );
            let open = OpenOptions::default();
            locked(ops::rebase(path, &base, &open).unwrap_err(), "rebase");
        } else {
            // A snapshot, a new child, and commit into this image, all need it unshared.
            let snap = dir.join("snap.vhd");
            locked(
                ops::snapshot(path, &snap, &OpenOptions::default()).unwrap_err(),
                "snapshot",
            );
            locked(
                ops::commit(&child, &read_write(), Progress::default()).unwrap_err(),
                "commit into it",
            );
        }
        assert_eq!(std::fs::read(path).unwrap(), before, "{}", path.display());
        drop(image);
    }
}
