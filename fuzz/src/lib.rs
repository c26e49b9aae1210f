//! What the fuzz target and the corpus maker share: the folder with the one parent image a
//! fuzzed differencing child may find, and the open-and-read itself. The bytes are served
//! by the core's read-only in-memory storage (`vhd_core::MemoryStorage::read_only`), which
//! refuses and counts writes: an image opened read-only that tries to write is a bug.

#[cfg(unix)]
mod parents;
#[cfg(unix)]
pub use parents::search_parents;
/// Partition tables read from arbitrary disks: see [`read_partition_table`].
pub mod partitions;
/// The repair property: one home in the tests' kit, which `cargo test` runs bounded.
pub use vhd_testkit::repair_property as repair;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vhd_core::{create, CreateOptions, DiskType, Image, MemoryStorage, OpenOptions, VirtualDisk};

/// Unique id of the parent image in [`root`] (the seed children record it).
pub const PARENT_ID: [u8; 16] = *b"vhd-fuzz-parent!";

/// Most bytes of the virtual disk read from its start; the rest is sampled.
const READ_FROM_START: u64 = 1 << 20;

/// The folder a fuzzed image "lives" in, and the only one its parents may come from. It
/// holds `parent.vhd`, a small dynamic image with 4 KiB blocks and the unique id
/// [`PARENT_ID`], made once (shared by every fuzzing process).
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join("vhd-core-fuzz-root");
        std::fs::create_dir_all(&root).expect("cannot create the fuzzing folder");
        let parent = root.join("parent.vhd");
        if !parent.is_file() {
            // Made under another name and renamed, so that a process never sees half of it.
            let partial = root.join(format!("parent.{}.tmp", std::process::id()));
            make_parent(&partial);
            std::fs::rename(&partial, &parent).expect("cannot rename the parent");
        }
        root.canonicalize()
            .expect("cannot resolve the fuzzing folder")
    })
}

fn make_parent(path: &Path) {
    let mut options = CreateOptions::new(DiskType::Dynamic, 256 * 1024);
    options.block_size = 4096;
    options.unique_id = Some(PARENT_ID);
    options.timestamp = Some(0x1234_5678);
    options.overwrite = true;
    let mut disk = create(path, &options).expect("cannot create the parent");
    for i in 0..20u64 {
        let data: Vec<u8> = (0..1000).map(|j| (i * 7 + j) as u8).collect();
        disk.write_at(&data, i * 12_345)
            .expect("cannot write the parent");
    }
    disk.flush().expect("cannot flush the parent");
}

/// Opens `data` as an image in [`root`], read-only; `strict`: with every check, otherwise
/// ignoring checksums and the parent's time stamp.
pub fn open(data: &[u8], strict: bool) -> vhd_core::Result<Image> {
    open_storage(&MemoryStorage::read_only(data.to_vec()), strict)
}

/// [`open`] from `file` (clones share its bytes and its count of refused writes).
fn open_storage(file: &MemoryStorage, strict: bool) -> vhd_core::Result<Image> {
    let root = root();
    let options = OpenOptions {
        read_only: true,
        parent_root: Some(root.to_path_buf()),
        ignore_checksums: !strict,
        ignore_parent_timestamp: !strict,
        ..OpenOptions::default()
    };
    Image::open_storage(Box::new(file.clone()), &root.join("input.vhd"), &options)
}

/// Opens `data` as an image (read-only, parents only from [`root`]) and reads it: the
/// first MiB of the disk, and a few pieces anywhere (offsets taken from the data). Any
/// error is fine; a panic, a hang, a huge allocation or an attempt to write is a bug.
pub fn open_and_read(data: &[u8]) {
    let file = MemoryStorage::read_only(data.to_vec());
    // Strict first; then forgiving, so that checksums do not stop the fuzzer at the door.
    if let Ok(image) = open_storage(&file, true).or_else(|_| open_storage(&file, false)) {
        read_image(&image, data);
    }
    assert_eq!(
        file.refused_writes(),
        0,
        "an image opened read-only tried to write"
    );
}

/// Reads the image `data` opened as: see [`open_and_read`].
fn read_image(image: &Image, data: &[u8]) {
    let _ = (
        image.footer(),
        image.header(),
        image.parent_locator_texts(),
        image.chain(),
        image.footer_source(),
    );
    assert!(
        image.read_only_reason().is_some(),
        "opened read-only, yet writable"
    );

    let size = image.size();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = |offset: u64, length: usize| match image.read_at(&mut buf[..length], offset) {
        Ok(n) => {
            assert_eq!(n as u64, size.saturating_sub(offset).min(length as u64));
            true
        }
        Err(e) => {
            assert!(e.code().starts_with("ERR_VHD_"));
            false
        }
    };
    let mut offset = 0;
    while offset < size.min(READ_FROM_START) {
        let length = (size.min(READ_FROM_START) - offset).min(64 * 1024 - 512) as usize;
        if !read(offset, length) {
            break;
        }
        offset += length as u64;
    }
    // Pieces anywhere: offsets and lengths from a hash of the data.
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    for _ in 0..8 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let offset = if size == 0 {
            state
        } else {
            (state >> 16) % (size + 8192)
        };
        let length = 1 + ((state >> 40) as usize % (64 * 1024 - 1));
        read(offset, length);
    }
}
