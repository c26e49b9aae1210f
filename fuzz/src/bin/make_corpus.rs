//! Writes the seed corpus of `open_read`: small valid images of every kind, into the folder
//! given as the argument (default `corpus/open_read`).

use std::path::{Path, PathBuf};
use vhd_core::{create, CreateOptions, DiskType, Image, VirtualDisk};

fn fill(mut disk: Image, pieces: &[(u64, usize)]) {
    for (i, &(offset, length)) in pieces.iter().enumerate() {
        let data: Vec<u8> = (0..length).map(|j| (i * 31 + j) as u8 | 1).collect();
        disk.write_at(&data, offset).unwrap();
    }
    disk.flush().unwrap();
}

fn make(path: &Path, options: &CreateOptions, pieces: &[(u64, usize)]) {
    let options = CreateOptions {
        overwrite: true,
        unique_id: Some(*b"vhd-fuzz-seed-id"),
        timestamp: Some(0x2000_0000),
        ..options.clone()
    };
    fill(create(path, &options).unwrap(), pieces);
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("corpus/open_read".into()));
    std::fs::create_dir_all(&out).unwrap();

    make(
        &out.join("fixed"),
        &CreateOptions::new(DiskType::Fixed, 16 * 1024),
        &[(0, 5000)],
    );

    let mut dynamic = CreateOptions::new(DiskType::Dynamic, 64 * 1024 + 1536);
    dynamic.block_size = 4096;
    make(
        &out.join("dynamic-4k"),
        &dynamic,
        &[(0, 3000), (20_000, 9000), (64 * 1024, 1536)],
    );

    let mut large = CreateOptions::new(DiskType::Dynamic, 1 << 20);
    large.block_size = 16 * 1024;
    make(
        &out.join("dynamic-16k"),
        &large,
        &[(100, 200), (700_000, 17_000)],
    );

    // A child of the parent in the fuzzing folder, made there (so that its locators and
    // parent name lead to it), then copied out.
    let root = vhd_core_fuzz::root();
    let child = root.join(format!("seed-child.{}.vhd", std::process::id()));
    let options = CreateOptions {
        overwrite: true,
        ..CreateOptions::differencing(root.join("parent.vhd"))
    };
    fill(
        create(&child, &options).unwrap(),
        &[(0, 700), (5000, 10_000), (200_000, 3)],
    );
    std::fs::copy(&child, out.join("differencing")).unwrap();
    std::fs::remove_file(&child).unwrap();

    for entry in std::fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        let len = entry.metadata().unwrap().len();
        println!("{} ({len} bytes)", entry.path().display());
        // Each seed must open (with its parent, for the child) and read without trouble.
        let data = std::fs::read(entry.path()).unwrap();
        let image = vhd_core_fuzz::open(&data, true).unwrap();
        println!(
            "  {:?}, chain of {}",
            image.disk_type(),
            image.chain().len()
        );
        vhd_core_fuzz::open_and_read(&data);
    }
}
