//! Paths that are not regular files: what every operation does with a directory, a FIFO,
//! a socket, a character device and a block device, as image, source or output.
//!
//! The rule (core/src/files.rs): FIFOs, sockets, directories and character devices are
//! refused everywhere with `ERR_VHD_FILE_TYPE`, promptly (an open never waits for a FIFO's
//! other end) and without changing them; a block device is read, and written in place
//! only as the destination of `convert` (no temporary file, no rename, no truncation).
//!
//! Character devices are made with `mknod` in a temporary folder (a copy of `/dev/null`),
//! never the real `/dev/null`, so that a regression cannot replace a device node of this
//! machine; block devices are loop devices (`losetup`). Both need root: without it these
//! tests print `SKIPPED:` (and fail in CI, which runs as root).
#![cfg(unix)]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vhd_core::ops::{
    self, convert, open_source, ConvertOptions, OutputFormat, Progress, SourceFormat,
};
use vhd_core::{check, create, CheckOptions, CreateOptions, DiskType, Error, Image, OpenOptions};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const OUTPUTS: [OutputFormat; 3] = [
    OutputFormat::Raw,
    OutputFormat::Fixed,
    OutputFormat::Dynamic,
];

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `f` on another thread and fails the test if it has not returned within 20 s (a
/// thread stuck in `open` on a FIFO is left behind; the test process ends anyway).
#[track_caller]
fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not return within 20 s: it hangs"))
}

/// Whether the tests run as root (needed for `mknod` and `losetup`).
fn is_root() -> bool {
    let out = run_ok(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out).trim() == "0"
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// A character device node for `/dev/null` (1, 3) at `path`, or `None` (reported as
/// skipped) when not root.
fn null_device(path: &Path) -> Option<PathBuf> {
    if !is_root() {
        skip("making a character device needs root (mknod)");
        return None;
    }
    run_ok(Command::new("mknod").arg(path).args(["c", "1", "3"]));
    Some(path.to_path_buf())
}

fn is_char_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[track_caller]
fn assert_file_type(result: Result<impl std::fmt::Debug, Error>, path: &Path, found: &str) {
    let err = result.expect_err("refused");
    assert_eq!(err.code(), "ERR_VHD_FILE_TYPE", "{err}");
    assert_mentions(&err.to_string(), &[&path.display().to_string(), found]);
}

fn overwrite(to: OutputFormat) -> ConvertOptions {
    ConvertOptions {
        overwrite: true,
        ..ConvertOptions::new(to)
    }
}

/// A 4 MiB raw source with data and zeros.
fn raw_source(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let mut rng = Rng::new("file types source");
    let mut data = rng.bytes(4 * MIB as usize);
    data[MIB as usize..3 * MIB as usize].fill(0);
    let path = dir.join("source.raw");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

// ---------------------------------------------------------------------------------------------
// convert's destination

/// `convert` onto a FIFO, a socket or a directory, or a link to one, with or without
/// overwrite: refused at once, the node left as it was, nothing else in the folder.
#[test]
fn convert_refuses_fifos_sockets_and_directories_as_destinations() {
    let dir = TempDir::new("file-types-convert");
    let (source, _) = raw_source(&dir);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let socket = dir.join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let link = dir.join("link-to-fifo");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let cases = [
        (&fifo, "FIFO"),
        (&link, "FIFO"),
        (&socket, "socket"),
        (&folder, "directory"),
    ];
    for (destination, found) in cases {
        for to in OUTPUTS {
            for options in [overwrite(to), ConvertOptions::new(to)] {
                let (s, d) = (source.clone(), destination.clone());
                let result = promptly("convert onto a FIFO", move || {
                    convert(&s, &d, &options, Progress::default())
                });
                assert_file_type(result, destination, found);
            }
        }
    }
    assert!(is_fifo(&fifo) && is_fifo(&link));
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert!(folder.is_dir() && std::fs::read_dir(&folder).unwrap().next().is_none());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 5, "no temporary file is left: {names:?}");
}

/// `convert --overwrite` onto a character device (a copy of /dev/null made here), or a
/// link to it, is refused and leaves it a character device (it used to be replaced by a
/// regular file).
#[test]
fn convert_refuses_character_devices_and_leaves_them_devices() {
    let dir = TempDir::new("file-types-char");
    let Some(null) = null_device(&dir.join("null")) else {
        return;
    };
    let (source, _) = raw_source(&dir);
    let link = dir.join("link-to-null");
    std::os::unix::fs::symlink(&null, &link).unwrap();
    for destination in [&null, &link] {
        for to in OUTPUTS {
            let result = convert(&source, destination, &overwrite(to), Progress::default());
            assert_file_type(result, destination, "character device");
            assert!(is_char_device(destination), "{}", destination.display());
        }
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

// ---------------------------------------------------------------------------------------------
// Every other operation

/// An image, a source or a new image at a FIFO: every operation fails at once with
/// ERR_VHD_FILE_TYPE (opening a FIFO for reading used to wait for a writer for ever).
#[test]
fn every_operation_refuses_a_fifo_promptly() {
    let dir = TempDir::new("file-types-ops");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let image = dir.join("image.vhd");
    drop(create(&image, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap());
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    type Op = Box<dyn FnOnce(&Path, &Path) -> Result<(), Error> + Send>;
    let ops: Vec<(&str, Op)> = vec![
        (
            "open read-only",
            Box::new(move |f, _| Image::open(f, &read_only).map(drop)),
        ),
        (
            "open read-write",
            Box::new(|f, _| Image::open(f, &OpenOptions::default()).map(drop)),
        ),
        (
            "open the descriptor",
            Box::new(|f, _| {
                // O_RDWR does not wait on a FIFO; the descriptor is then refused.
                let file = std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open(f)
                    .unwrap();
                Image::open_file(file, f, &OpenOptions::default()).map(drop)
            }),
        ),
        (
            "check",
            Box::new(|f, _| check(f, &CheckOptions::default()).map(drop)),
        ),
        (
            "repair",
            Box::new(|f, _| ops::repair(f, &CheckOptions::default()).map(drop)),
        ),
        (
            "compact",
            Box::new(|f, _| {
                ops::compact(f, &OpenOptions::default(), Progress::default()).map(drop)
            }),
        ),
        (
            "resize",
            Box::new(|f, _| {
                ops::resize(f, 8 * MIB, &Default::default(), Progress::default()).map(drop)
            }),
        ),
        (
            "commit",
            Box::new(|f, _| ops::commit(f, &OpenOptions::default(), Progress::default()).map(drop)),
        ),
        (
            "rebase",
            Box::new(|f, image| ops::rebase(f, image, &Default::default())),
        ),
        (
            "a raw or auto source",
            Box::new(|f, _| {
                open_source(f, SourceFormat::Auto, &OpenOptions::default())?;
                open_source(f, SourceFormat::Raw, &OpenOptions::default()).map(drop)
            }),
        ),
        (
            "a VHD source",
            Box::new(|f, _| open_source(f, SourceFormat::Vhd, &OpenOptions::default()).map(drop)),
        ),
        (
            "create over it",
            Box::new(|f, _| {
                create(
                    f,
                    &CreateOptions {
                        overwrite: true,
                        ..CreateOptions::new(DiskType::Fixed, MIB)
                    },
                )
                .map(drop)
            }),
        ),
        (
            "a snapshot onto it",
            Box::new(|f, image| ops::snapshot(image, f, &OpenOptions::default()).map(drop)),
        ),
    ];
    for (what, op) in ops {
        let (f, i) = (fifo.clone(), image.clone());
        let result = promptly(what, move || op(&f, &i));
        let err = result.expect_err(what);
        assert_eq!(err.code(), "ERR_VHD_FILE_TYPE", "{what}: {err}");
        assert_mentions(&err.to_string(), &[&fifo.display().to_string(), "FIFO"]);
        assert!(is_fifo(&fifo), "{what}");
    }
}

/// `create` with overwrite onto a character device, a socket or a directory is refused,
/// and they are left as they were.
#[test]
fn create_refuses_devices_sockets_and_directories() {
    let dir = TempDir::new("file-types-create");
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let socket = dir.join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut cases = vec![(folder.clone(), "directory"), (socket.clone(), "socket")];
    if let Some(null) = null_device(&dir.join("null")) {
        cases.push((null, "character device"));
    }
    for (path, found) in &cases {
        for overwrite in [false, true] {
            let options = CreateOptions {
                overwrite,
                ..CreateOptions::new(DiskType::Dynamic, MIB)
            };
            assert_file_type(create(path, &options).map(drop), path, found);
        }
    }
    assert!(folder.is_dir());
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    if let Some((null, _)) = cases.get(2) {
        assert!(is_char_device(null));
    }
}

// ---------------------------------------------------------------------------------------------
// Block devices (loop devices)

/// A loop device over a file of `size` bytes filled with `fill`, detached when dropped.
/// The tests name it by `device`, a node of it made in their temporary folder, never by
/// `/dev/loopN`: code that wrongly replaced the destination by a renamed file would
/// replace only that node.
struct LoopDevice {
    loop_device: PathBuf,
    device: PathBuf,
}

impl LoopDevice {
    /// `None` (reported as skipped) without root or `losetup`.
    fn new(dir: &TempDir, name: &str, size: u64, fill: u8) -> Option<LoopDevice> {
        if !is_root() {
            skip("loop devices need root (losetup)");
            return None;
        }
        if !require_tool("losetup") {
            return None;
        }
        let backing = dir.join(name);
        std::fs::write(&backing, vec![fill; size as usize]).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
            .unwrap();
        if !out.status.success() {
            skip(&format!(
                "losetup cannot attach a loop device here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        let loop_device = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let device = dir.join(&format!("{name}-device"));
        let made = LoopDevice {
            loop_device,
            device,
        };
        made.node(&made.device);
        Some(made)
    }

    /// Makes another node of the device at `path`.
    fn node(&self, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.loop_device).unwrap().rdev();
        // glibc's encoding of dev_t.
        let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
        let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
        run_ok(
            Command::new("mknod")
                .arg(path)
                .arg("b")
                .arg(major.to_string())
                .arg(minor.to_string()),
        );
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.device).unwrap()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .arg("--detach")
            .arg(&self.loop_device)
            .status();
    }
}

/// Fixed id and time stamp, so that a file and a device conversion give the same bytes.
fn deterministic(to: OutputFormat) -> ConvertOptions {
    ConvertOptions {
        unique_id: Some([7; 16]),
        timestamp: Some(1_000_000),
        block_size: 4 * MIB as u32,
        ..overwrite(to)
    }
}

/// `convert` onto a block device writes in place exactly the bytes it writes into a file,
/// zeros included (the device held 0xAA everywhere), and leaves the rest of the device
/// alone; the device stays a device. Dynamic output uses 4 MiB blocks, so that an
/// allocated block holds an all-zero 2 MiB piece and a piece past the end of the disk:
/// both must be written as zeros.
#[test]
fn convert_writes_a_block_device_in_place() {
    let dir = TempDir::new("file-types-block");
    let Some(device) = LoopDevice::new(&dir, "backing", 16 * MIB, 0xAA) else {
        return;
    };
    let mut rng = Rng::new("file types block");
    let size = 6 * MIB;
    let mut data = rng.bytes(size as usize);
    data[2 * MIB as usize..4 * MIB as usize].fill(0);
    data[5 * MIB as usize..].fill(0);
    let source = dir.join("source.raw");
    std::fs::write(&source, &data).unwrap();
    for to in OUTPUTS {
        let options = deterministic(to);
        let file = dir.join("out");
        let _ = std::fs::remove_file(&file);
        let in_file = convert(&source, &file, &options, Progress::default()).unwrap();
        let expected = std::fs::read(&file).unwrap();
        let on_device = convert(&source, &device.device, &options, Progress::default())
            .unwrap_or_else(|e| panic!("{to:?}: {e}"));
        assert_eq!(on_device.file_size, expected.len() as u64, "{to:?}");
        assert_eq!(on_device.allocated_blocks, in_file.allocated_blocks);
        let bytes = device.read();
        assert_eq!(
            bytes.len() as u64,
            16 * MIB,
            "{to:?}: the device keeps its size"
        );
        assert_same_bytes(&bytes[..expected.len()], &expected, &format!("{to:?}"));
        assert!(
            bytes[expected.len()..].iter().all(|&b| b == 0xAA),
            "{to:?}: the rest of the device is left as it was"
        );
        assert!(std::fs::metadata(&device.device)
            .unwrap()
            .file_type()
            .is_block_device());
        // Scribble over the part written, for the next format.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&device.device)
            .map(|f| {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&vec![0xAA; 16 * MIB as usize], 0).unwrap();
                f.sync_all().unwrap();
            })
            .unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        names.len(),
        4,
        "backing, its node, source, out: no temporary file"
    );
}

/// A block device must hold the output: one too small is refused, before anything is
/// written for raw and fixed output (whose length is known), as soon as the blocks reach
/// its end for dynamic output; one that is the source (under another node of the same
/// device) is refused; without overwrite it is refused as existing. A block device also
/// reads as a source.
#[test]
fn block_device_destinations_are_checked_before_writing() {
    let dir = TempDir::new("file-types-block-checks");
    let Some(device) = LoopDevice::new(&dir, "backing", 8 * MIB, 0xAA) else {
        return;
    };
    let mut before = device.read();
    let mut rng = Rng::new("file types block checks");
    let big = dir.join("big.raw");
    std::fs::write(&big, rng.bytes(8 * MIB as usize + 512)).unwrap();
    let exact = dir.join("exact.raw");
    std::fs::write(&exact, rng.bytes(8 * MIB as usize)).unwrap();
    let too_small = [
        (&big, OutputFormat::Raw),
        (&exact, OutputFormat::Fixed),
        (&big, OutputFormat::Dynamic),
    ];
    for (source, to) in too_small {
        if to == OutputFormat::Dynamic {
            assert!(device.read() == before, "nothing was written");
        }
        let err = convert(source, &device.device, &overwrite(to), Progress::default())
            .expect_err("too small");
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    name: "destination",
                    ..
                }
            ),
            "{to:?}: {err}"
        );
        assert_mentions(
            &err.to_string(),
            &[
                &device.device.display().to_string(),
                "block device",
                "8388608",
            ],
        );
    }
    before = device.read();

    let err = convert(
        &exact,
        &device.device,
        &ConvertOptions::new(OutputFormat::Raw),
        Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");

    // The device as the source: read by its size, and not writable over itself, by
    // whatever node it is named.
    let copy = dir.join("copy.raw");
    convert(
        &device.device,
        &copy,
        &ConvertOptions::new(OutputFormat::Raw),
        Progress::default(),
    )
    .unwrap();
    assert!(std::fs::read(&copy).unwrap() == before);
    let alias = dir.join("alias");
    device.node(&alias);
    for destination in [&device.device, &alias] {
        let err = convert(
            &device.device,
            destination,
            &overwrite(OutputFormat::Raw),
            Progress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    name: "destination",
                    ..
                }
            ),
            "{err}"
        );
    }
    assert!(device.read() == before);
}

/// Images opened for writing, and new images, are regular files only: a block device is
/// refused for them (it cannot grow or shrink with the image), but read-only opens read it.
#[test]
fn images_on_block_devices_are_only_read() {
    let dir = TempDir::new("file-types-block-image");
    let Some(device) = LoopDevice::new(&dir, "backing", 4 * MIB + 512, 0) else {
        return;
    };
    // A fixed image exactly the device's size, copied onto it.
    let image = dir.join("fixed.vhd");
    let mut rng = Rng::new("file types block image");
    let data = rng.bytes(4 * MIB as usize);
    {
        let mut disk = create(&image, &CreateOptions::new(DiskType::Fixed, 4 * MIB)).unwrap();
        vhd_core::VirtualDisk::write_at(&mut disk, &data, 0).unwrap();
    }
    convert(
        &image,
        &device.device,
        &ConvertOptions {
            source_format: SourceFormat::Raw,
            ..overwrite(OutputFormat::Raw)
        },
        Progress::default(),
    )
    .unwrap();
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let on_device = Image::open(&device.device, &read_only).unwrap();
    assert_eq!(read_all(&on_device), data);
    drop(on_device);
    let result = Image::open(&device.device, &OpenOptions::default());
    assert_file_type(result, &device.device, "block device");
    let result = create(
        &device.device,
        &CreateOptions {
            overwrite: true,
            ..CreateOptions::new(DiskType::Dynamic, MIB)
        },
    );
    assert_file_type(result, &device.device, "block device");
    let result = ops::compact(&device.device, &OpenOptions::default(), Progress::default());
    assert_file_type(result, &device.device, "block device");
    assert!(std::fs::metadata(&device.device)
        .unwrap()
        .file_type()
        .is_block_device());
}

/// A conversion onto a block device stops when cancelled, like any other.
#[test]
fn a_conversion_onto_a_block_device_can_be_cancelled() {
    let dir = TempDir::new("file-types-block-cancel");
    let Some(device) = LoopDevice::new(&dir, "backing", 16 * MIB, 0xAA) else {
        return;
    };
    let mut rng = Rng::new("file types block cancel");
    let source = dir.join("source.raw");
    std::fs::write(&source, rng.bytes(12 * MIB as usize)).unwrap();
    let cancel = AtomicBool::new(false);
    let on_progress = |done: u64, _| {
        if done >= 4 * MIB {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let progress = Progress::default()
        .with_callback(&on_progress)
        .with_cancel(&cancel);
    let err = convert(
        &source,
        &device.device,
        &overwrite(OutputFormat::Raw),
        progress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    // The device is free again (unlocked) for the next conversion.
    convert(
        &source,
        &device.device,
        &overwrite(OutputFormat::Raw),
        Progress::default(),
    )
    .unwrap();
}
