//! Writes the seed corpus of `open_read`: small valid images of every kind, into the folder
//! given as the argument (default `corpus/open_read`); and that of `partition_table` (a GPT,
//! an MBR with an EBR chain) into `partition_table` beside it.

use std::path::{Path, PathBuf};
use vhd_core::{create, CreateOptions, DiskType, Image, VirtualDisk};
use vhd_testkit::partition_tables::{gpt_disk, mbr_entry, Gpt, SECTOR};

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

/// Seeds of `partition_table` (see `vhd_core_fuzz::partitions::disk_of` for the layout
/// byte), into `out`.
fn partition_seeds(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    // A GPT on a disk of 34 + 64 + 34 sectors: the primary in the head, a gap of 64
    // sectors (layout 1), the backup in the tail (layout bit 4).
    let disk = gpt_disk(132, &Gpt::usual(&[(40, 70), (71, 97)]));
    let mut seed = vec![4 | 1];
    seed.extend_from_slice(&disk[..34 * SECTOR]);
    seed.extend_from_slice(&disk[98 * SECTOR..]);
    std::fs::write(out.join("gpt"), seed).unwrap();
    // An MBR with a primary and an extended partition holding three logical ones, in 64
    // sectors (layout 0: no gap).
    let mut disk = vec![0u8; 64 * SECTOR];
    mbr_entry(&mut disk, 0, 0, 0x83, 2, 4);
    mbr_entry(&mut disk, 0, 1, 0x05, 8, 56);
    for (n, ebr) in [8usize, 24, 40].into_iter().enumerate() {
        mbr_entry(&mut disk, ebr, 0, 0x83, 1, 8);
        if n < 2 {
            mbr_entry(&mut disk, ebr, 1, 0x05, (ebr + 16 - 8) as u32, 16);
        }
    }
    let mut seed = vec![0];
    seed.extend_from_slice(&disk);
    std::fs::write(out.join("mbr-ebr"), &seed).unwrap();
    for name in ["gpt", "mbr-ebr"] {
        let data = std::fs::read(out.join(name)).unwrap();
        let disk = vhd_core_fuzz::partitions::disk_of(&data);
        let table = vhd_core::partition::read_partition_table(&disk).unwrap();
        println!(
            "{name}: {} with {} partitions, findings {:?}",
            table.kind.name(),
            table.partitions.len(),
            table.findings
        );
        assert!(table.findings.is_empty() && table.partitions.len() >= 2);
        vhd_core_fuzz::partitions::read_partition_table(&data);
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("corpus/open_read".into()));
    std::fs::create_dir_all(&out).unwrap();
    partition_seeds(&out.with_file_name("partition_table"));

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
