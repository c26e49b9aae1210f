//! `VirtualDisk::read_at_now`: a read that never waits for a device (what the Node.js
//! binding does on the JavaScript thread). It must read exactly what `read_at` reads when it
//! answers, answer for holes and for data in the page cache, and decline (without waiting)
//! for data that has to come from the disk.

use std::path::Path;
use vhd_core::{create, CreateOptions, DiskType, FaultStorage, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const SIZE: u64 = 4 << 20;
const BLOCK: u32 = 64 * 1024;

/// A dynamic image of SIZE bytes with random data in about half of its blocks.
fn dynamic_with_data(dir: &TempDir, name: &str, rng: &mut Rng) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, SIZE);
    options.block_size = BLOCK;
    let mut image = create(&path, &options).unwrap();
    for block in (0..SIZE / u64::from(BLOCK)).filter(|b| b % 2 == 0) {
        let offset = block * u64::from(BLOCK) + rng.below(u64::from(BLOCK) / 2);
        let len = rng.range(1, 20000) as usize;
        image.write_at(&rng.bytes(len), offset).unwrap();
    }
    image.flush().unwrap();
    path
}

/// The image kinds, with data: fixed, dynamic, and a differencing child of the dynamic one
/// with writes of its own (some of them partial sectors).
fn images(dir: &TempDir, rng: &mut Rng) -> Vec<std::path::PathBuf> {
    let fixed = dir.join("fixed.vhd");
    let mut image = create(&fixed, &CreateOptions::new(DiskType::Fixed, SIZE)).unwrap();
    image.write_at(&rng.bytes(SIZE as usize), 0).unwrap();
    drop(image);
    let dynamic = dynamic_with_data(dir, "dynamic.vhd", rng);
    let child = dir.join("child.vhd");
    let mut image = create(&child, &CreateOptions::differencing(&dynamic)).unwrap();
    for _ in 0..40 {
        let offset = rng.below(SIZE - 5000);
        let len = rng.range(1, 5000) as usize;
        image.write_at(&rng.bytes(len), offset).unwrap();
    }
    drop(image);
    vec![fixed, dynamic, child]
}

/// Asks the kernel to drop `path`'s pages from the page cache (they are clean: flushed).
#[cfg(target_os = "linux")]
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: a valid descriptor; advice only.
    let status = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(status, 0, "posix_fadvise on {}", path.display());
}

#[test]
fn reads_done_now_read_what_read_at_reads() {
    let dir = TempDir::new("read-now");
    let mut rng = Rng::new("read_now same bytes");
    for path in images(&dir, &mut rng) {
        let image = open_ro(&path);
        let whole = read_all(&image); // also brings every page into the page cache
        let mut answered = 0;
        for _ in 0..300 {
            let offset = rng.below(SIZE + 4096);
            let len = rng.range(0, 300_000) as usize;
            let mut buf = vec![0xA5; len];
            let Some(read) = image.read_at_now(&mut buf, offset) else {
                continue;
            };
            answered += 1;
            let start = offset.min(SIZE) as usize;
            let expected = &whole[start..(start + len).min(SIZE as usize)];
            assert_eq!(read, expected.len(), "{} at {offset}", path.display());
            assert!(
                buf[..read] == *expected,
                "{}: bytes at {offset}",
                path.display()
            );
        }
        // With everything cached, every read is answered at once (on Linux).
        if cfg!(target_os = "linux") {
            assert_eq!(answered, 300, "{}", path.display());
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn data_that_must_come_from_the_disk_is_declined_holes_are_not() {
    let dir = TempDir::new("read-now-evicted");
    let mut rng = Rng::new("read_now evicted");
    let [fixed, dynamic, child] = <[_; 3]>::try_from(images(&dir, &mut rng)).unwrap();
    let block = u64::from(BLOCK);
    // Fixed: every byte is data.
    let image = open_ro(&fixed);
    evict(&fixed);
    let mut buf = vec![0; 8192];
    assert_eq!(image.read_at_now(&mut buf, 4096), None, "fixed, evicted");
    assert_eq!(image.read_at(&mut buf, 4096).unwrap(), 8192);
    assert_eq!(
        image.read_at_now(&mut buf, 4096),
        Some(8192),
        "fixed, read once since"
    );
    // Dynamic: block 1 is a hole, block 0 data.
    let image = open_ro(&dynamic);
    evict(&dynamic);
    assert_eq!(image.read_at_now(&mut buf, block), Some(8192), "a hole");
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(
        image.read_at_now(&mut buf, 0),
        None,
        "dynamic data, evicted"
    );
    // Differencing: block 1 is a hole in the parent too unless the child wrote there; a read
    // that reaches the evicted parent is declined as well.
    let image = open_ro(&child);
    evict(&child);
    evict(&dynamic);
    let expected = {
        let mut whole = vec![0; SIZE as usize];
        Image::open(&child, &read_only())
            .unwrap()
            .read_at(&mut whole, 0)
            .unwrap();
        whole
    };
    evict(&child);
    evict(&dynamic);
    assert_eq!(
        image.read_at_now(&mut buf, 0),
        None,
        "differencing, evicted"
    );
    assert_eq!(image.read_at(&mut buf, 0).unwrap(), 8192);
    assert!(buf == expected[..8192]);
    assert_eq!(
        image.read_at_now(&mut buf, 0),
        Some(8192),
        "differencing, read once since"
    );
    assert!(buf == expected[..8192]);
}

#[test]
fn a_storage_that_cannot_tell_answers_only_for_holes() {
    let dir = TempDir::new("read-now-cannot-tell");
    let mut rng = Rng::new("read_now cannot tell");
    let path = dynamic_with_data(&dir, "dynamic.vhd", &mut rng);
    let file = std::fs::File::open(&path).unwrap();
    let options = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    // A storage that cannot tell whether a read would wait (the trait's default).
    let storage = FaultStorage::new(file);
    storage.cannot_tell();
    let image = Image::open_storage(Box::new(storage), &path, &options).unwrap();
    let mut buf = vec![0xA5; 4096];
    assert_eq!(image.read_at_now(&mut buf, u64::from(BLOCK)), Some(4096));
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(image.read_at_now(&mut buf, 0), None);
    assert_eq!(
        image.read_at_now(&mut buf, SIZE),
        Some(0),
        "past the end: nothing to read"
    );
}
