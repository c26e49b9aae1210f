//! Hostile partition tables (issue 16): tables built here byte by byte (with a CRC32 of the
//! test's own, bit by bit, independent of the library's table) and read through
//! `vhd_core::partition`: entry counts in the billions, entry sizes that are not allowed,
//! CRCs that do not match, a backup where only the damaged primary says, partitions past
//! the end or overlapping, EBR chains that loop, go backwards, leave their extended
//! partition or never end. Each gives what can be believed and a finding, never a hang or
//! a panic; and the partition view keeps reads and writes inside the partition.
//! (Tables made by the real tools, and their oracles: cli/tests/partitions.rs.)

use std::time::{Duration, Instant};
use vhd_core::partition::{
    find_partition, read_partition_table, PartitionTable, PartitionType, PartitionView, TableKind,
    MAX_EBRS, MAX_GPT_ENTRY_ARRAY,
};
use vhd_core::VirtualDisk;
use vhd_testkit::partition_tables::*;

/// Reads the table, in bounded time.
fn read(disk: &[u8]) -> PartitionTable {
    let started = Instant::now();
    let table = read_partition_table(&MemoryDisk(disk.to_vec())).expect("a table in memory reads");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "reading the table took {:?}",
        started.elapsed()
    );
    table
}

fn codes(table: &PartitionTable) -> Vec<&'static str> {
    table.findings.iter().map(|f| f.code()).collect()
}

fn ranges(table: &PartitionTable) -> Vec<(u32, u64, u64)> {
    table
        .partitions
        .iter()
        .map(|p| (p.index, p.first_lba, p.last_lba))
        .collect()
}

#[test]
fn a_good_gpt_reads_with_no_finding() {
    let table = read(&gpt_disk(SECTORS, &Gpt::usual(&[(40, 99), (100, 199)])));
    assert_eq!(table.kind, TableKind::Gpt);
    assert_eq!(ranges(&table), [(1, 40, 99), (2, 100, 199)]);
    assert_eq!(table.partitions[1].name.as_deref(), Some("part2"));
    assert_eq!(
        table.partitions[0].type_name,
        Some("Linux filesystem"),
        "{:?}",
        table.partitions[0].kind
    );
    assert!(codes(&table).is_empty(), "{:?}", table.findings);
}

/// Primary headers that declare what cannot be: each is refused with a reason, the backup
/// is used, and nothing of the declared size is allocated.
#[test]
fn a_primary_header_declaring_impossible_entries_falls_back_to_the_backup() {
    let good = gpt_disk(SECTORS, &Gpt::usual(&[(40, 99)]));
    let cases: [(&str, u32, u32, &str); 6] = [
        ("billions of entries", u32::MAX, 128, "more than the"),
        ("entry size 0", 128, 0, "entry size 0"),
        (
            "entry size not a multiple of 128",
            128,
            200,
            "entry size 200",
        ),
        ("entry size 384, not 128 x 2^n", 128, 384, "entry size 384"),
        ("entry size too large", 1, 1 << 20, "entry size 1048576"),
        (
            "an array larger than the disk",
            1 << 20,
            128,
            "more than the",
        ),
    ];
    for (what, count, size, says) in cases {
        let mut disk = good.clone();
        put32(&mut disk[SECTOR..], 80, count);
        put32(&mut disk[SECTOR..], 84, size);
        fix_header_crc(&mut disk, 1);
        let table = read(&disk);
        assert_eq!(table.kind, TableKind::Gpt, "{what}");
        assert_eq!(ranges(&table), [(1, 40, 99)], "{what}");
        assert_eq!(codes(&table), ["gpt-primary-damaged"], "{what}");
        assert!(
            table.findings[0].message.contains(says)
                && table.findings[0]
                    .message
                    .contains("primary header at byte 512"),
            "{what}: {}",
            table.findings[0].message
        );
    }
    // An array inside the bound but not inside this small disk.
    let mut disk = good.clone();
    put32(&mut disk[SECTOR..], 80, (MAX_GPT_ENTRY_ARRAY / 128) as u32);
    fix_header_crc(&mut disk, 1);
    let table = read(&disk);
    assert_eq!(codes(&table), ["gpt-primary-damaged"]);
    assert!(table.findings[0]
        .message
        .contains("does not lie inside the disk"));
}

#[test]
fn crc_mismatches_use_the_other_copy_and_say_which() {
    let good = gpt_disk(SECTORS, &Gpt::usual(&[(40, 99)]));
    // Header CRC of the primary.
    let mut disk = good.clone();
    disk[SECTOR + 56] ^= 1;
    let table = read(&disk);
    assert_eq!(codes(&table), ["gpt-primary-damaged"]);
    assert!(table.findings[0].message.contains("header CRC32 mismatch"));
    // Entry array of the primary.
    let mut disk = good.clone();
    disk[2 * SECTOR + 40] ^= 1;
    let table = read(&disk);
    assert_eq!(ranges(&table), [(1, 40, 99)]);
    assert_eq!(codes(&table), ["gpt-primary-damaged"]);
    assert!(table.findings[0]
        .message
        .contains("entry array CRC32 mismatch"));
    // The backup only: the primary is used, the backup reported.
    let mut disk = good.clone();
    disk[(SECTORS as usize - 1) * SECTOR + 56] ^= 1;
    let table = read(&disk);
    assert_eq!(ranges(&table), [(1, 40, 99)]);
    assert_eq!(codes(&table), ["gpt-backup-damaged"]);
    // Both: read as the protective MBR, as fdisk does, saying why.
    let mut disk = good.clone();
    disk[SECTOR + 56] ^= 1;
    disk[(SECTORS as usize - 1) * SECTOR + 56] ^= 1;
    let table = read(&disk);
    assert_eq!(table.kind, TableKind::Mbr);
    assert_eq!(ranges(&table), [(1, 1, SECTORS - 1)]);
    assert_eq!(table.partitions[0].kind, PartitionType::Mbr(0xEE));
    assert_eq!(codes(&table), ["gpt-unreadable"]);
    let message = &table.findings[0].message;
    assert!(
        message.contains("primary header at byte 512")
            && message.contains(&format!("backup header at byte {}", (SECTORS - 1) * 512)),
        "{message}"
    );
}

/// A disk that grew after it was partitioned keeps its backup GPT where the primary's
/// alternate LBA says, not in the last sector: with the primary damaged, it is found there.
#[test]
fn the_backup_of_a_grown_disk_is_found_where_the_primary_says() {
    let mut disk = gpt_disk(SECTORS, &Gpt::usual(&[(40, 99)]));
    disk.resize(disk.len() + 64 * SECTOR, 0);
    // Still good: the backup is where the primary's alternate LBA says, not at the end.
    assert_eq!(codes(&read(&disk)), ["gpt-backup-not-at-end"]);
    disk[SECTOR + 56] ^= 1;
    let table = read(&disk);
    assert_eq!(table.kind, TableKind::Gpt);
    assert_eq!(ranges(&table), [(1, 40, 99)]);
    assert_eq!(
        codes(&table),
        ["gpt-primary-damaged", "gpt-backup-not-at-end"]
    );
    assert!(
        table.findings[1].message.contains(&format!(
            "at sector {} (byte {})",
            SECTORS - 1,
            (SECTORS - 1) * 512
        )),
        "{}",
        table.findings[1].message
    );
}

#[test]
fn doubtful_partitions_are_listed_with_findings() {
    let gpt = Gpt::usual(&[
        (40, 99),
        (90, 120),
        (500, SECTORS + 10),
        (300, 200),
        (1, 10),
    ]);
    let table = read(&gpt_disk(SECTORS, &gpt));
    assert_eq!(
        ranges(&table),
        [
            (1, 40, 99),
            (2, 90, 120),
            (3, 500, SECTORS + 10),
            (5, 1, 10)
        ]
    );
    let mut found = codes(&table);
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "invalid-entry",
            "partition-outside-usable",
            "partition-outside-usable",
            "partition-past-end",
            "partitions-overlap",
        ],
        "{:#?}",
        table.findings
    );
    // The view of a partition past the end is refused, naming it.
    let error = find_partition(
        &MemoryDisk(gpt_disk(SECTORS, &gpt)),
        3,
        std::path::Path::new("disk.vhd"),
    )
    .unwrap_err();
    assert_eq!(error.code(), "ERR_VHD_INVALID_ARGUMENT");
    assert!(
        error.to_string().contains("disk.vhd: partition 3")
            && error.to_string().contains("runs past the end of the disk"),
        "{error}"
    );
}

#[test]
fn an_ebr_chain_reads_as_linux_numbers_it() {
    let mut disk = mbr_with_extended(SECTORS * 4);
    ebr(&mut disk, 0, Some(1));
    ebr(&mut disk, 1, Some(2));
    ebr(&mut disk, 2, None);
    let table = read(&disk);
    assert_eq!(
        ranges(&table),
        [
            (1, 2048, 4095),
            (2, 8192, SECTORS * 4 - 1),
            (5, 8194, 8201),
            (6, 8210, 8217),
            (7, 8226, 8233)
        ]
    );
    assert!(table.partitions[0].bootable);
    assert!(codes(&table).is_empty(), "{:?}", table.findings);
}

#[test]
fn ebr_chains_that_loop_or_go_backwards_end_with_a_finding() {
    // Backwards: 0 -> 1 -> 2 -> 1.
    let mut disk = mbr_with_extended(SECTORS * 4);
    ebr(&mut disk, 0, Some(1));
    ebr(&mut disk, 1, Some(2));
    ebr(&mut disk, 2, Some(1));
    let table = read(&disk);
    assert_eq!(table.partitions.len(), 5);
    assert_eq!(codes(&table), ["ebr-loop"]);
    assert!(table.findings[0]
        .message
        .contains(&format!("byte {}", (8192 + 16) * 512)));
    assert!(table.findings[0].message.contains("loops back"));
    // To itself (what makes balena's partitioninfo loop forever).
    let mut disk = mbr_with_extended(SECTORS * 4);
    ebr(&mut disk, 0, Some(0));
    assert_eq!(codes(&read(&disk)), ["ebr-loop"]);
}

#[test]
fn a_very_long_ebr_chain_stops_at_the_limit() {
    let links = 1000;
    let mut disk = mbr_with_extended(8192 + 16 * (links as u64 + 1));
    for n in 0..links {
        ebr(&mut disk, n, Some(n + 1));
    }
    let table = read(&disk);
    assert_eq!(table.partitions.len(), 2 + MAX_EBRS);
    assert_eq!(table.partitions.last().unwrap().index, 4 + MAX_EBRS as u32);
    assert_eq!(codes(&table), ["ebr-limit"]);
}

#[test]
fn ebrs_that_are_not_there_end_the_chain() {
    // No signature in the second EBR.
    let mut disk = mbr_with_extended(SECTORS * 4);
    ebr(&mut disk, 0, Some(1));
    let table = read(&disk);
    assert_eq!(table.partitions.len(), 3);
    assert_eq!(codes(&table), ["ebr-invalid"]);
    assert!(table.findings[0].message.contains("no boot signature"));
    // A link past the extended partition (and the disk).
    let mut disk = mbr_with_extended(SECTORS * 4);
    mbr_entry(&mut disk, 8192, 1, 0x05, u32::MAX - 10, 16);
    let table = read(&disk);
    assert_eq!(codes(&table), ["ebr-invalid"]);
    assert!(table.findings[0]
        .message
        .contains("outside the extended partition 2"));
    // A logical partition outside its extended partition.
    let mut disk = mbr_with_extended(SECTORS * 4);
    mbr_entry(&mut disk, 8192, 0, 0x83, u32::MAX - 10, 8);
    let table = read(&disk);
    let mut found = codes(&table);
    found.sort_unstable();
    assert_eq!(found, ["logical-outside-extended", "partition-past-end"]);
}

#[test]
fn first_sectors_that_are_no_table() {
    // Too short, no signature, a FAT boot sector (boot indicators that are code).
    assert_eq!(read(&[0u8; 100]).kind, TableKind::None);
    assert_eq!(read(&vec![0u8; 8192]).kind, TableKind::None);
    let mut fat = vec![0u8; 8192];
    fat[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    fat[446..510].fill(0x4F);
    fat[510] = 0x55;
    fat[511] = 0xAA;
    assert_eq!(read(&fat).kind, TableKind::None);
    // A protective MBR on a disk of one sector: no GPT can be there.
    let mut tiny = vec![0u8; 512];
    mbr_entry(&mut tiny, 0, 0, 0xEE, 1, 100);
    let table = read(&tiny);
    assert_eq!(table.kind, TableKind::Mbr);
    let mut found = codes(&table);
    found.sort_unstable();
    assert_eq!(found, ["gpt-unreadable", "partition-past-end"]);
}

/// A large legitimate entry array (the bound), read a piece at a time.
#[test]
fn the_largest_entry_array_taken_reads() {
    let gpt = Gpt {
        entry_count: (MAX_GPT_ENTRY_ARRAY / 512) as u32,
        entry_size: 512,
        partitions: vec![(20_000, 20_999)],
    };
    let table = read(&gpt_disk(40_000, &gpt));
    assert_eq!(ranges(&table), [(1, 20_000, 20_999)]);
    assert!(codes(&table).is_empty(), "{:?}", table.findings);
}

#[test]
fn the_view_of_a_partition_keeps_reads_and_writes_inside_it() {
    let mut disk = gpt_disk(SECTORS, &Gpt::usual(&[(40, 99)]));
    for (i, b) in disk[40 * SECTOR..100 * SECTOR].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let before = disk.clone();
    let mut view = PartitionView::new(MemoryDisk(disk), 40 * 512, 60 * 512).unwrap();
    assert_eq!(view.size(), 60 * 512);
    let mut buf = vec![0u8; 1024];
    assert_eq!(view.read_at(&mut buf, 60 * 512 - 100).unwrap(), 100);
    assert_eq!(buf[..100], before[100 * SECTOR - 100..100 * SECTOR]);
    assert_eq!(view.read_at(&mut buf, 60 * 512).unwrap(), 0);
    let error = view.write_at(&[1; 200], 60 * 512 - 100).unwrap_err();
    assert_eq!(error.code(), "ERR_VHD_OUT_OF_RANGE");
    assert!(view.discard(60 * 512 - 100, 200).is_err());
    view.write_at(&[7; 100], 60 * 512 - 100).unwrap();
    let after = view.into_inner().0;
    assert_eq!(after[100 * SECTOR - 100..100 * SECTOR], [7; 100]);
    assert_eq!(after[..100 * SECTOR - 100], before[..100 * SECTOR - 100]);
    assert_eq!(after[100 * SECTOR..], before[100 * SECTOR..]);
}

/// A number the table does not have: the message lists the numbers there are, the first
/// 16 of a table of thousands and how many more.
#[test]
fn a_missing_partition_number_names_a_bounded_list_of_those_there_are() {
    let partitions: Vec<(u64, u64)> = (0..3000).map(|i| (100 + i, 100 + i)).collect();
    let gpt = Gpt {
        entry_count: 4096,
        entry_size: 128,
        partitions,
    };
    let disk = MemoryDisk(gpt_disk(8192, &gpt));
    let error = find_partition(&disk, 4000, std::path::Path::new("big.vhd")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(
            "big.vhd: there is no partition 4000: the disk's partitions are 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 and 2984 more"
        ),
        "{message}"
    );
    assert!(message.len() < 300, "{message}");
    let small = MemoryDisk(gpt_disk(SECTORS, &Gpt::usual(&[(40, 99), (100, 199)])));
    let error = find_partition(&small, 3, std::path::Path::new("small.vhd")).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("small.vhd: there is no partition 3: the disk's partitions are 1, 2"),
        "{error}"
    );
}

/// Converting one partition of a sparse image jumps over its holes as converting the whole
/// disk does (the view passes on what the image knows of them): a 1 GiB partition of a
/// dynamic image holding 1 MiB of data becomes a raw file of 1 GiB with about 1 MiB of
/// blocks, the data where it belongs.
#[cfg(unix)]
#[test]
fn converting_a_partition_of_a_sparse_image_keeps_its_holes() {
    use std::os::unix::fs::MetadataExt;
    use vhd_core::ops::{convert, ConvertOptions, OutputFormat, Progress};
    use vhd_core::{create, CreateOptions, DiskType};
    let dir = vhd_testkit::TempDir::new("partition-sparse");
    let sectors = (1u64 << 30) / 512 + 4096;
    let table = gpt_disk(2 * 2048, &Gpt::usual(&[(2048, sectors - 2048)]));
    let image_path = dir.join("disk.vhd");
    let mut image = create(
        &image_path,
        &CreateOptions::new(DiskType::Dynamic, sectors * 512),
    )
    .unwrap();
    // The GPT: its head, its backup (the builder's disk is shorter: move the backup to
    // the end of this one and fix its fields).
    let last = sectors - 1;
    let mut head = table[..34 * SECTOR].to_vec();
    put64(&mut head[SECTOR..], 32, last);
    put64(&mut head[SECTOR..], 48, last - 33);
    fix_header_crc(&mut head, 1);
    image.write_at(&head, 0).unwrap();
    let mut tail = vec![0u8; 33 * SECTOR];
    tail[..32 * SECTOR].copy_from_slice(&head[2 * SECTOR..34 * SECTOR]);
    tail[32 * SECTOR..].copy_from_slice(&head[SECTOR..2 * SECTOR]);
    put64(&mut tail[32 * SECTOR..], 24, last);
    put64(&mut tail[32 * SECTOR..], 32, 1);
    put64(&mut tail[32 * SECTOR..], 72, last - 32);
    fix_header_crc(&mut tail, 32);
    image.write_at(&tail, (last - 32) * 512).unwrap();
    let data: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 249) as u8 | 1).collect();
    image.write_at(&data, 2048 * 512 + (300 << 20)).unwrap();
    image.flush().unwrap();
    drop(image);

    let image = vhd_core::Image::open(&image_path, &vhd_testkit::read_only()).unwrap();
    let checked = read_partition_table(&image).unwrap();
    assert!(codes(&checked).is_empty(), "{:?}", checked.findings);
    // The view passes on what the image knows of its holes (a dynamic image answers
    // reads_without_io; next_data, clipped to the partition, is its default).
    let view = vhd_core::partition::partition_view(image, 1, &image_path).unwrap();
    // Partition bytes 1..299 MiB are disk bytes 2..300 MiB: blocks never written.
    assert!(view.reads_without_io(1 << 20, 298 << 20));
    assert!(!view.reads_without_io(0, 4096));
    assert!(!view.reads_without_io(300 << 20, 4096));
    assert_eq!(view.next_data(0).unwrap(), Some(0..view.size()));
    assert_eq!(view.next_data(view.size()).unwrap(), None);
    drop(view);
    let out = dir.join("part.raw");
    let options = ConvertOptions {
        partition: Some(1),
        ..ConvertOptions::new(OutputFormat::Raw)
    };
    let started = Instant::now();
    let report = convert(&image_path, &out, &options, Progress::default()).unwrap();
    assert_eq!(report.source_size, (sectors - 4096 + 1) * 512);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), (sectors - 4096 + 1) * 512);
    assert!(
        meta.blocks() * 512 <= 8 << 20,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes[300 << 20..(300 << 20) + (1 << 20)] == data[..]);
    assert!(bytes[..300 << 20].iter().all(|&b| b == 0));
}

/// A child repartitioned over its parent: the child's table is the one read through the
/// chain, with the parent's sectors where the child wrote none; the parent keeps its own.
#[test]
fn a_child_repartitioned_over_its_parent_reads_its_own_table() {
    use vhd_core::{create, CreateOptions, DiskType, Image};
    let dir = vhd_testkit::TempDir::new("partition-chain");
    let parent_path = dir.join("parent.vhd");
    let child_path = dir.join("child.vhd");
    // The parent: an MBR with an extended partition and a chain of EBRs.
    let mut bytes = mbr_with_extended(16384);
    ebr(&mut bytes, 0, Some(1));
    ebr(&mut bytes, 1, None);
    let mut parent = create(
        &parent_path,
        &CreateOptions::new(DiskType::Dynamic, bytes.len() as u64),
    )
    .unwrap();
    parent.write_at(&bytes, 0).unwrap();
    parent.flush().unwrap();
    drop(parent);
    // The child: only its first sector changes, the second EBR's link now loops to the
    // first (read from the child), the first EBR still comes from the parent.
    let mut child = create(&child_path, &CreateOptions::differencing(&parent_path)).unwrap();
    let mut first = bytes[..SECTOR].to_vec();
    first[446] = 0; // partition 1 no longer bootable
    child.write_at(&first, 0).unwrap();
    let mut second_ebr = bytes[(8192 + 16) * SECTOR..(8192 + 17) * SECTOR].to_vec();
    mbr_entry(&mut second_ebr, 0, 1, 0x05, 0, 16);
    child.write_at(&second_ebr, (8192 + 16) * 512).unwrap();
    child.flush().unwrap();
    drop(child);

    let parent = Image::open(&parent_path, &vhd_testkit::read_only()).unwrap();
    let table = read_partition_table(&parent).unwrap();
    assert!(table.partitions[0].bootable);
    assert_eq!(table.partitions.len(), 4);
    assert!(codes(&table).is_empty());
    drop(parent);
    let child = Image::open(&child_path, &vhd_testkit::read_only()).unwrap();
    let table = read_partition_table(&child).unwrap();
    assert!(!table.partitions[0].bootable);
    assert_eq!(ranges(&table)[2..], [(5, 8194, 8201), (6, 8210, 8217)]);
    assert_eq!(codes(&table), ["ebr-loop"]);
}
