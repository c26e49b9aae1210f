//! Opening, reading, checking and modelling images through the library.

use crate::sha256_stream;
use std::path::Path;
use vhd_core::{check, CheckOptions, Image, OpenOptions, VirtualDisk};

/// Panics with the first differing offset (not a multi-megabyte dump) unless `a == b`.
#[track_caller]
pub fn assert_same_bytes(a: &[u8], b: &[u8], what: &str) {
    if a == b {
        return;
    }
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        let end = (i + 16).min(a.len()).min(b.len());
        panic!(
            "{what}: first difference at byte {i} ({:#x}): {:02x?} vs {:02x?} (lengths {} and {})",
            i,
            &a[i..end],
            &b[i..end],
            a.len(),
            b.len()
        );
    }
    panic!("{what}: lengths differ: {} vs {}", a.len(), b.len());
}

/// Reads the whole virtual disk through our reader, in 1 MiB pieces.
pub fn read_all(disk: &dyn vhd_core::VirtualDisk) -> Vec<u8> {
    let size = disk.size() as usize;
    let mut all = vec![0u8; size];
    let mut offset = 0;
    while offset < size {
        let end = (offset + (1 << 20)).min(size);
        let n = disk
            .read_at(&mut all[offset..end], offset as u64)
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert_eq!(n, end - offset, "short read at {offset}");
        offset = end;
    }
    all
}

/// SHA-256 of the whole virtual disk, streamed through our reader into `sha256sum`.
pub fn sha256_disk(disk: &dyn vhd_core::VirtualDisk) -> String {
    sha256_stream(|w| {
        let mut buf = vec![0u8; 4 << 20];
        let mut offset = 0u64;
        loop {
            let n = disk
                .read_at(&mut buf, offset)
                .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).unwrap();
            offset += n as u64;
        }
        assert_eq!(offset, disk.size());
    })
}

/// Opens an image for reading and writing, panicking with its path on failure.
pub fn open_rw(path: &Path) -> Image {
    Image::open(path, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Options that open an image read-only.
pub fn read_only() -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    }
}

/// Opens an image read-only, panicking with its path on failure.
pub fn open_ro(path: &Path) -> Image {
    Image::open(path, &read_only()).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The exit code `check` gives the image (0 clean, 1 leaks only, 2 corrupt).
pub fn check_exit_code(path: &Path) -> i32 {
    check(path, &CheckOptions::default()).unwrap().exit_code()
}

/// Panics with the report unless `check` finds the image clean.
#[track_caller]
pub fn assert_clean(path: &Path) {
    let report = check(path, &CheckOptions::default()).unwrap();
    assert!(report.is_clean(), "{}: {report}", path.display());
}

/// Panics unless `message` contains every one of `parts`.
#[track_caller]
pub fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "the message {message:?} does not mention {part:?}"
        );
    }
}

/// Writes `data` at `offset` into both the image and the model of its contents.
pub fn write_both(image: &mut Image, model: &mut [u8], data: &[u8], offset: u64) {
    image.write_at(data, offset).unwrap();
    model[offset as usize..offset as usize + data.len()].copy_from_slice(data);
}

/// Discards `length` bytes at `offset` in the image, and zeroes them in the model.
pub fn discard_both(image: &mut Image, model: &mut [u8], offset: u64, length: u64) {
    image.discard(offset, length).unwrap();
    model[offset as usize..(offset + length) as usize].fill(0);
}
