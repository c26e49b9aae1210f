//! Partition tables built byte by byte, independently of `vhd_core::partition` (with a
//! CRC32 of their own, bit by bit): what the hostile-table tests, the mutation test and the
//! fuzz seeds start from. And a disk in memory to read them from.

use vhd_core::{Result, VirtualDisk};

/// A disk of bytes in memory (reads past its end are short; writes must fit).
#[derive(Debug, Clone)]
pub struct MemoryDisk(pub Vec<u8>);

impl VirtualDisk for MemoryDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let start = offset.min(self.0.len() as u64) as usize;
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        assert!(offset as usize + buf.len() <= self.0.len());
        self.0[offset as usize..][..buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// CRC-32 (IEEE), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Bytes in a sector.
pub const SECTOR: usize = 512;

/// Sectors of the disks the tests build unless they say otherwise.
pub const SECTORS: u64 = 4096;

/// The Linux file system type GUID as GPT stores it.
pub const LINUX: [u8; 16] = [
    0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4,
];

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes an MBR entry (type `kind`, `count` sectors from `start`) in slot `slot` of the
/// sector `sector`, and the boot signature of that sector.
pub fn mbr_entry(disk: &mut [u8], sector: usize, slot: usize, kind: u8, start: u32, count: u32) {
    let e = &mut disk[sector * SECTOR + 446 + slot * 16..][..16];
    e[4] = kind;
    put32(e, 8, start);
    put32(e, 12, count);
    disk[sector * SECTOR + 510] = 0x55;
    disk[sector * SECTOR + 511] = 0xAA;
}

/// The fields of one GPT copy, before its CRCs are computed.
#[derive(Debug, Clone)]
pub struct Gpt {
    pub entry_count: u32,
    pub entry_size: u32,
    /// (first, last) sectors of Linux partitions, in slots 0, 1, ... (named part1, ...).
    pub partitions: Vec<(u64, u64)>,
}

impl Gpt {
    /// 128 entries of 128 bytes, as every partitioner writes.
    pub fn usual(partitions: &[(u64, u64)]) -> Gpt {
        Gpt {
            entry_count: 128,
            entry_size: 128,
            partitions: partitions.to_vec(),
        }
    }

    /// Sectors of the entry array.
    pub fn array_sectors(&self) -> u64 {
        (self.entry_count as u64 * self.entry_size as u64).div_ceil(SECTOR as u64)
    }
}

/// A disk of `sectors` sectors with a protective MBR and a GPT whose primary (sector 1,
/// array from sector 2) and backup (last sector, array just before it) both hold `gpt`.
pub fn gpt_disk(sectors: u64, gpt: &Gpt) -> Vec<u8> {
    let mut disk = vec![0u8; sectors as usize * SECTOR];
    mbr_entry(
        &mut disk,
        0,
        0,
        0xEE,
        1,
        (sectors - 1).min(u32::MAX as u64) as u32,
    );
    let array_len = gpt.entry_count as usize * gpt.entry_size as usize;
    let mut array = vec![0u8; array_len];
    for (slot, &(first, last)) in gpt.partitions.iter().enumerate() {
        let e = &mut array[slot * gpt.entry_size as usize..];
        e[..16].copy_from_slice(&LINUX);
        e[16..18].copy_from_slice(&(slot as u16 + 1).to_le_bytes());
        put64(e, 32, first);
        put64(e, 40, last);
        let name: Vec<u8> = format!("part{}", slot + 1)
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        e[56..56 + name.len()].copy_from_slice(&name);
    }
    let last = sectors - 1;
    for (my, alternate, entries) in [(1, last, 2), (last, 1, last - gpt.array_sectors())] {
        disk[entries as usize * SECTOR..][..array_len].copy_from_slice(&array);
        write_header(
            &mut disk,
            my,
            alternate,
            entries,
            sectors,
            gpt,
            crc32(&array),
        );
    }
    disk
}

/// Writes the GPT header of `gpt` at sector `my`.
pub fn write_header(
    disk: &mut [u8],
    my: u64,
    alternate: u64,
    entries: u64,
    sectors: u64,
    gpt: &Gpt,
    array_crc: u32,
) {
    let array_sectors = gpt.array_sectors();
    let h = &mut disk[my as usize * SECTOR..][..SECTOR];
    h.fill(0);
    h[..8].copy_from_slice(b"EFI PART");
    put32(h, 8, 0x0001_0000);
    put32(h, 12, 92);
    put64(h, 24, my);
    put64(h, 32, alternate);
    put64(h, 40, 2 + array_sectors.min(32));
    put64(h, 48, sectors - 2 - array_sectors.min(32));
    h[56..72].copy_from_slice(&[0x11; 16]);
    put64(h, 72, entries);
    put32(h, 80, gpt.entry_count);
    put32(h, 84, gpt.entry_size);
    put32(h, 88, array_crc);
    fix_header_crc(disk, my as usize);
}

/// Recomputes the CRC32 of the GPT header at `sector` over the size it declares (92 when
/// that is not from 92 to 512), after a field was changed.
pub fn fix_header_crc(disk: &mut [u8], sector: usize) {
    let h = &mut disk[sector * SECTOR..][..SECTOR];
    let size = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
    let size = if (92..=512).contains(&size) { size } else { 92 };
    put32(h, 16, 0);
    let crc = crc32(&h[..size]);
    put32(h, 16, crc);
}

/// Recomputes both CRCs of the GPT header at `sector` (its entry array's first, where the
/// header's fields say it is, when that lies inside the disk), so that a damaged field gets
/// past them.
pub fn fix_gpt_crcs(disk: &mut [u8], sector: usize) {
    let h = &disk[sector * SECTOR..][..SECTOR];
    let entries = u64::from_le_bytes(h[72..80].try_into().unwrap());
    let len = u64::from(u32::from_le_bytes(h[80..84].try_into().unwrap()))
        * u64::from(u32::from_le_bytes(h[84..88].try_into().unwrap()));
    let start = entries.saturating_mul(SECTOR as u64);
    if start.saturating_add(len) <= disk.len() as u64 {
        let crc = crc32(&disk[start as usize..(start + len) as usize]);
        put32(&mut disk[sector * SECTOR..], 88, crc);
    }
    fix_header_crc(disk, sector);
}

/// An MBR: primary 1 Linux (bootable) at 2048..4095, extended partition 2 from sector 8192
/// to the end.
pub fn mbr_with_extended(sectors: u64) -> Vec<u8> {
    let mut disk = vec![0u8; sectors as usize * SECTOR];
    mbr_entry(&mut disk, 0, 0, 0x83, 2048, 2048);
    disk[446] = 0x80;
    mbr_entry(&mut disk, 0, 1, 0x05, 8192, (sectors - 8192) as u32);
    disk
}

/// Makes EBR `n` (at sector 8192 + 16·n, the extended partition of [`mbr_with_extended`])
/// hold a logical partition of 8 sectors 2 sectors after it, linked to EBR `to`.
pub fn ebr(disk: &mut [u8], n: u32, to: Option<u32>) {
    let sector = 8192 + 16 * n as usize;
    mbr_entry(disk, sector, 0, 0x83, 2, 8);
    if let Some(to) = to {
        mbr_entry(disk, sector, 1, 0x05, 16 * to, 16);
    }
}

/// Checks what a table read from `disk` may promise whatever the disk holds, and reads
/// each partition through its view: fields that agree with each other, numbers in
/// Linux's ranges and in order, a finding for each partition past the end, known finding
/// codes with messages, and views confined to their partitions. Panics with what is
/// wrong.
pub fn check_table(disk: &dyn VirtualDisk, table: &vhd_core::partition::PartitionTable) {
    use vhd_core::partition::{
        find_partition, PartitionView, TableKind, MAX_EBRS, MAX_GPT_ENTRY_ARRAY,
    };
    const CODES: [&str; 13] = [
        "gpt-primary-damaged",
        "gpt-backup-damaged",
        "gpt-backup-not-at-end",
        "gpt-unreadable",
        "invalid-entry",
        "partition-past-end",
        "partition-outside-usable",
        "partitions-overlap",
        "extra-extended",
        "ebr-invalid",
        "ebr-loop",
        "ebr-limit",
        "logical-outside-extended",
    ];
    let size = disk.size();
    match table.kind {
        TableKind::None => {
            assert!(table.partitions.is_empty() && table.findings.is_empty());
        }
        TableKind::Mbr => {
            assert!(table.partitions.len() <= 4 + MAX_EBRS);
            for p in &table.partitions {
                assert!((1..=4 + MAX_EBRS as u32).contains(&p.index), "{p:?}");
            }
        }
        TableKind::Gpt => {
            assert!(table.partitions.len() as u64 <= MAX_GPT_ENTRY_ARRAY / 128);
        }
    }
    for pair in table.partitions.windows(2) {
        assert!(pair[0].index < pair[1].index, "{:?}", table.partitions);
    }
    for f in &table.findings {
        assert!(CODES.contains(&f.code()), "{f:?}");
        assert!(!f.message.is_empty());
    }
    let past_end = table.partitions.iter().filter(|p| p.end() > size).count();
    let findings = table
        .findings
        .iter()
        .filter(|f| f.code() == "partition-past-end")
        .count();
    assert_eq!(past_end, findings, "{:#?}", table);
    let path = std::path::Path::new("disk");
    // Each `find_partition` reads the table again: a crafted table of thousands of
    // partitions is checked through the views of its first and last few.
    let count = table.partitions.len();
    let sampled = table
        .partitions
        .iter()
        .enumerate()
        .filter(|&(i, _)| i < 8 || i + 8 >= count)
        .map(|(_, p)| p);
    for p in &table.partitions {
        assert!(p.last_lba >= p.first_lba);
        assert_eq!(p.offset, p.first_lba * 512);
        assert_eq!(p.size, p.sectors() * 512);
    }
    for p in sampled {
        match find_partition(disk, p.index, path) {
            Ok(found) => {
                assert!(!p.is_extended() && p.end() <= size, "{p:?}");
                assert_eq!(&found, p);
                // The view reads the partition's last byte, and nothing past it.
                let view = PartitionView::new(ReadOnly(disk), p.offset, p.size).unwrap();
                let mut two = [0u8; 2];
                assert_eq!(view.read_at(&mut two, p.size - 1).unwrap(), 1);
                let mut direct = [0u8; 1];
                disk.read_at(&mut direct, p.end() - 1).unwrap();
                assert_eq!(two[0], direct[0]);
                assert_eq!(view.read_at(&mut two, p.size).unwrap(), 0);
            }
            Err(error) => {
                assert_eq!(error.code(), "ERR_VHD_INVALID_ARGUMENT", "{error}");
                assert!(p.is_extended() || p.end() > size, "{p:?}: {error}");
            }
        }
    }
}

/// A borrowed disk, read-only: what [`check_table`] makes partition views of.
struct ReadOnly<'a>(&'a dyn VirtualDisk);

impl VirtualDisk for ReadOnly<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> Result<()> {
        panic!("a partition view was written")
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
