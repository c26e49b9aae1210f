//! Errors a person can act on: I/O errors name the file the caller gave (never a
//! temporary file) with the system call and the OS code; hints name the option in the
//! caller's terms; an output that is the input says so.

use std::path::Path;
use vhd_core::ops::ResizeOptions;
use vhd_core::ops::{convert, rebase, resize, snapshot, ConvertOptions, OutputFormat, Progress};
use vhd_core::{create, CreateOptions, DiskType, Error, Hint, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

fn dynamic(path: &Path) {
    drop(create(path, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap());
}

#[test]
fn a_missing_file_is_enoent_on_open_with_the_callers_path() {
    let dir = TempDir::new("errors-missing");
    let missing = dir.join("missing.vhd");
    let e = vhd_core::Image::open(&missing, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.os_code(), Some("ENOENT"), "{e}");
    assert_eq!(e.code(), "ERR_VHD_IO");
    match &e {
        Error::Io { path, syscall, .. } => {
            assert_eq!(path.as_deref(), Some(missing.as_path()));
            assert_eq!(*syscall, Some("open"));
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{e}"
    );
}

/// A new file is written under a temporary name (or none) beside its destination: when
/// that fails, the error names the destination the caller gave.
#[test]
fn a_new_file_that_cannot_be_made_is_named_by_its_destination() {
    let dir = TempDir::new("errors-destination");
    let source = dir.join("source.vhd");
    dynamic(&source);
    let destination = dir.join("no-such-folder").join("out.vhd");
    let e = convert(
        &source,
        &destination,
        &ConvertOptions::new(OutputFormat::Dynamic),
        Progress::default(),
    )
    .unwrap_err();
    assert_eq!(e.os_code(), Some("ENOENT"), "{e}");
    match &e {
        Error::Io { path, .. } => assert_eq!(path.as_deref(), Some(destination.as_path())),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{}: ", destination.display())),
        "{message}"
    );
    let e = create(&destination, &CreateOptions::new(DiskType::Fixed, MIB)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: ", destination.display())),
        "{e}"
    );
}

#[test]
fn a_snapshot_onto_its_own_image_says_the_output_is_the_input() {
    let dir = TempDir::new("errors-snapshot-self");
    let image = dir.join("a.vhd");
    dynamic(&image);
    let before = sha256_file(&image);
    let link = dir.join("link.vhd");
    std::os::unix::fs::symlink(&image, &link).unwrap();
    let respelled = dir.path().join(".").join("a.vhd");
    for child in [&image, &link, &respelled] {
        let e = snapshot(&image, child, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_OUTPUT_IS_INPUT", "{e}");
        assert!(
            matches!(&e, Error::OutputIsInput { output, input, .. } if output == child && *input == image),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(!message.contains("loop"), "{message}");
        assert!(message.contains(&child.display().to_string()), "{message}");
        assert_eq!(sha256_file(&image), before, "the image was touched");
    }
    // Through the symbolic link as the image too.
    let e = snapshot(&link, &image, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_OUTPUT_IS_INPUT", "{e}");
}

#[test]
fn a_rebase_onto_itself_says_the_output_is_the_input() {
    let dir = TempDir::new("errors-rebase-self");
    let base = dir.join("base.vhd");
    dynamic(&base);
    let child = dir.join("child.vhd");
    drop(snapshot(&base, &child, &OpenOptions::default()).unwrap());
    let before = sha256_file(&child);
    let e = rebase(&child, &child, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_OUTPUT_IS_INPUT", "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} is both the input and the output: an image cannot be its own parent",
            child.display()
        )
    );
    assert_eq!(sha256_file(&child), before, "the child was touched");
}

#[test]
fn hints_are_carried_and_spelled_by_the_caller() {
    let dir = TempDir::new("errors-hints");
    let image = dir.join("a.vhd");
    dynamic(&image);
    let e = create(&image, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap_err();
    assert_eq!(e.hint(), Some(Hint::Overwrite));
    assert_eq!(
        e.message_with(&|_| "--overwrite"),
        format!(
            "{}: file already exists (pass --overwrite to replace it)",
            image.display()
        )
    );
    assert!(e.to_string().contains(Hint::Overwrite.rust_option()), "{e}");

    // A differencing image whose parent is gone: name it yourself.
    let child = dir.join("child.vhd");
    drop(snapshot(&image, &child, &OpenOptions::default()).unwrap());
    let moved = dir.join("moved.vhd");
    std::fs::rename(&image, &moved).unwrap();
    let e = vhd_core::Image::open(&child, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{e}");
    assert_eq!(e.hint(), Some(Hint::Parent));
    let message = e.message_with(&|_| "--parent PATH");
    assert!(
        message.ends_with("; to name the parent yourself, pass --parent PATH"),
        "{message}"
    );
    std::fs::rename(&moved, &image).unwrap();

    // A shrink that would cut off data: the code it always had, and a hint.
    {
        let mut disk = vhd_core::Image::open(&image, &OpenOptions::default()).unwrap();
        disk.write_at(&[1; 512], 3 * MIB).unwrap();
    }
    let e = resize(&image, MIB, &ResizeOptions::default(), Progress::default()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_INVALID_ARGUMENT", "{e}");
    assert_eq!(e.hint(), Some(Hint::Force));
    let message = e.message_with(&|_| "--force");
    assert!(
        message.ends_with("; to do it anyway, pass --force"),
        "{message}"
    );
    assert!(message.contains(&format!("byte {}", 3 * MIB)), "{message}");
}

/// A raw disk's reads name its file: one cut short after it was opened says which file is
/// truncated (a convert source, or the raw base of a chain).
#[test]
fn a_raw_disk_cut_short_names_its_file() {
    let dir = TempDir::new("errors-raw");
    let raw = dir.join("disk.raw");
    std::fs::write(&raw, vec![7u8; 64 << 10]).unwrap();
    let disk = vhd_core::RawDisk::open(&raw).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let e = disk.read_at(&mut buf, 32 << 10).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_TRUNCATED", "{e}");
    assert_eq!(e.file(), Some(raw.as_path()), "{e:?}");
    assert!(e.to_string().contains(&raw.display().to_string()), "{e}");
}

/// A socket address in use (the NBD server's bind) is `EADDRINUSE`, whichever number the
/// system gives it, as Node names it.
#[test]
fn an_address_in_use_is_eaddrinuse() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let source = std::net::TcpListener::bind(taken.local_addr().unwrap()).unwrap_err();
    let e = Error::io("binding", source);
    assert_eq!(e.os_code(), Some("EADDRINUSE"), "{e}");
    let e = Error::io(
        "binding",
        std::io::Error::from(std::io::ErrorKind::AddrInUse),
    );
    assert_eq!(e.os_code(), Some("EADDRINUSE"), "{e}");
}

/// A write past the end and a write to a read-only image name the image (as `file()`, and
/// first in the message), as the other errors about one file do.
#[test]
fn a_write_past_the_end_or_to_a_read_only_image_names_the_image() {
    let dir = TempDir::new("errors-named-writes");
    let path = dir.join("named.vhd");
    dynamic(&path);
    let named = |e: &Error, code: &str| {
        assert_eq!(e.code(), code, "{e}");
        assert_eq!(e.file(), Some(path.as_path()), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{}: ", path.display())),
            "{e}"
        );
    };
    let mut image = vhd_core::Image::open(&path, &OpenOptions::default()).unwrap();
    let past = image.write_at(&[1; 512], 4 * MIB).unwrap_err();
    named(&past, "ERR_VHD_OUT_OF_RANGE");
    drop(image);
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let mut image = vhd_core::Image::open(&path, &read_only).unwrap();
    let refused = image.write_at(&[1; 512], 0).unwrap_err();
    named(&refused, "ERR_VHD_READ_ONLY");
    assert!(
        refused.to_string().ends_with("it was opened read-only"),
        "{refused}"
    );
}
