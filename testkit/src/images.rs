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

/// A differencing child of `blocks` 2 MiB blocks, each allocated with a sector bitmap that
/// marks every other sector present (0xAA), over an empty dynamic parent: 2048 ranges per
/// block. Crafted (the BAT and the bitmaps written directly, the data left as holes of a
/// sparse file) so that a million ranges take a few MiB of disk and no time to make, as a
/// hostile image would. Made in `dir` as `alternating.vhd` over `alternating-base.vhd`.
pub fn alternating_bitmaps(dir: &Path, blocks: u32) -> std::path::PathBuf {
    use crate::{be_u32, be_u64, file_bytes, file_len, patch_file};
    use vhd_core::{create, CreateOptions, DiskType};
    const BLOCK: u64 = 2 << 20;
    let base = dir.join("alternating-base.vhd");
    let child = dir.join("alternating.vhd");
    create(
        &base,
        &CreateOptions::new(DiskType::Dynamic, u64::from(blocks) * BLOCK),
    )
    .unwrap();
    drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
    let footer_at = file_len(&child) - 512;
    let footer = file_bytes(&child, footer_at, 512);
    let header = file_bytes(&child, be_u64(&footer, 16), 1024);
    let table_at = be_u64(&header, 16);
    assert_eq!(u64::from(be_u32(&header, 32)), BLOCK);
    let unit = 512 + BLOCK;
    let mut table = Vec::new();
    for block in 0..u64::from(blocks) {
        let at = footer_at + block * unit;
        table.extend_from_slice(&((at / 512) as u32).to_be_bytes());
        patch_file(&child, at, &[0xAA; 512]);
    }
    patch_file(&child, table_at, &table);
    patch_file(&child, footer_at + u64::from(blocks) * unit, &footer);
    child
}
