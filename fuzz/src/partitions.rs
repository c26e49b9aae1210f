//! The `partition_table` target: arbitrary bytes laid out as a disk and its partition table
//! read (`vhd_core::partition`), then checked by the tests' `check_table`.

use vhd_core::partition::read_partition_table as read_table;
use vhd_testkit::partition_tables::{check_table, MemoryDisk};

/// Zero sectors put between the head and the tail of the disk, by the low bits of the
/// first byte: partitions and a backup GPT then lie beyond the input's few KiB.
const GAPS: [usize; 4] = [0, 64, 2048, 16_384];

/// The disk of `data`: its first byte says how (a gap of [`GAPS`] sectors, and whether
/// the rest is split into a head at the start and a tail at the end of the disk, where a
/// backup GPT lies); the remaining bytes are the disk's.
pub fn disk_of(data: &[u8]) -> MemoryDisk {
    let Some((&layout, rest)) = data.split_first() else {
        return MemoryDisk(Vec::new());
    };
    let gap = GAPS[usize::from(layout & 3)] * 512;
    let (head, tail) = if layout & 4 != 0 {
        rest.split_at(rest.len() / 2)
    } else {
        (rest, &[][..])
    };
    let mut disk = Vec::with_capacity(head.len() + gap + tail.len());
    disk.extend_from_slice(head);
    disk.resize(head.len() + gap, 0);
    disk.extend_from_slice(tail);
    MemoryDisk(disk)
}

/// Reads the partition table of [`disk_of`] `data`, twice (the same table both times),
/// and checks it. A panic or a hang is a bug; a read of a disk in memory never fails.
pub fn read_partition_table(data: &[u8]) {
    let disk = disk_of(data);
    let table = read_table(&disk).expect("a disk in memory reads");
    assert_eq!(read_table(&disk).unwrap(), table, "two reads disagree");
    check_table(&disk, &table);
}
