//! The master boot record: four primary entries in the first sector, and the chain of
//! extended boot records (EBRs) through an extended partition, each holding one logical
//! partition and the link to the next.
//!
//! Layout (offsets in the sector): entries at 446, 16 bytes each — boot indicator (1),
//! CHS start (3), type (1), CHS end (3), first sector (u32 LE), sector count (u32 LE) — and
//! the boot signature `55 AA` at 510. In an EBR, the logical partition's first sector
//! counts from the EBR itself, the link's from the start of the extended partition.

use super::{
    types, Partition, PartitionTable, PartitionType, TableFinding, TableFindingKind, TableKind,
    SECTOR_SIZE,
};
use crate::error::Result;
use crate::VirtualDisk;
use byteorder::{ByteOrder, LittleEndian};
use std::collections::HashSet;

/// The most EBRs followed in one chain. Linux stops after 100, libfdisk after 60
/// partitions; a chain this long is crafted, and stopping bounds the time and memory a
/// table takes.
pub const MAX_EBRS: usize = 128;

const ENTRIES: usize = 446;
const ENTRY_SIZE: usize = 16;

/// One 16-byte entry of an MBR or EBR.
#[derive(Debug, Clone, Copy)]
struct Entry {
    boot: u8,
    kind: u8,
    start: u32,
    sectors: u32,
}

impl Entry {
    fn parse(sector: &[u8; 512], slot: usize) -> Entry {
        let e = &sector[ENTRIES + slot * ENTRY_SIZE..][..ENTRY_SIZE];
        Entry {
            boot: e[0],
            kind: e[4],
            start: LittleEndian::read_u32(&e[8..12]),
            sectors: LittleEndian::read_u32(&e[12..16]),
        }
    }

    /// An entry in use: libfdisk and Linux take any entry with sectors.
    fn used(&self) -> bool {
        self.sectors != 0
    }

    /// The partition of this entry, its first sector counted from `base`.
    fn partition(&self, index: u32, base: u64) -> Option<Partition> {
        let first = base + u64::from(self.start);
        let mut p = Partition::from_sectors(
            index,
            PartitionType::Mbr(self.kind),
            first,
            first + u64::from(self.sectors) - 1,
        )?;
        p.bootable = self.boot == 0x80;
        Some(p)
    }
}

/// A first sector that is an MBR.
pub(super) struct Mbr {
    entries: [Entry; 4],
}

/// Reads the sector at byte `offset`, `None` when the disk ends before it.
fn read_sector(disk: &dyn VirtualDisk, offset: u64) -> Result<Option<[u8; 512]>> {
    let mut sector = [0u8; 512];
    if offset
        .checked_add(SECTOR_SIZE)
        .is_none_or(|end| end > disk.size())
    {
        return Ok(None);
    }
    let read = disk.read_at(&mut sector, offset)?;
    Ok((read == sector.len()).then_some(sector))
}

fn has_signature(sector: &[u8; 512]) -> bool {
    sector[510] == 0x55 && sector[511] == 0xAA
}

/// The MBR of `disk`, `None` when its first sector is none: no boot signature, or a boot
/// indicator other than `0x00`/`0x80` in an entry — a file system's boot sector (FAT, NTFS)
/// whose code fills those bytes, as Linux decides.
pub(super) fn read_mbr(disk: &dyn VirtualDisk) -> Result<Option<Mbr>> {
    let Some(sector) = read_sector(disk, 0)? else {
        return Ok(None);
    };
    if !has_signature(&sector) {
        return Ok(None);
    }
    let entries = [0, 1, 2, 3].map(|slot| Entry::parse(&sector, slot));
    if entries.iter().any(|e| e.boot != 0 && e.boot != 0x80) {
        return Ok(None);
    }
    Ok(Some(Mbr { entries }))
}

impl Mbr {
    /// The MBR announces a GPT: one of its entries is the protective partition (`0xEE`).
    pub(super) fn is_protective(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.used() && e.kind == types::PROTECTIVE)
    }

    /// The partitions: primaries by slot, then the logical partitions of the first
    /// extended partition.
    pub(super) fn into_table(self, disk: &dyn VirtualDisk) -> Result<PartitionTable> {
        let mut table = PartitionTable {
            kind: TableKind::Mbr,
            ..PartitionTable::none()
        };
        let mut extended: Option<Partition> = None;
        for (slot, entry) in self.entries.iter().enumerate() {
            if !entry.used() {
                continue;
            }
            let index = slot as u32 + 1;
            // u32 sectors from sector 0 always fit: no entry of an MBR is invalid.
            let Some(p) = entry.partition(index, 0) else {
                continue;
            };
            if p.is_extended() {
                if extended.is_some() {
                    table.findings.push(TableFinding::new(
                        TableFindingKind::ExtraExtended,
                        format!(
                            "partition {index} is a second extended partition (MBR entry at byte {}); its logical partitions are not read, as fdisk does",
                            ENTRIES + slot * ENTRY_SIZE
                        ),
                    ));
                } else {
                    extended = Some(p.clone());
                }
            }
            table.partitions.push(p);
        }
        if let Some(extended) = extended {
            read_logical(disk, &extended, &mut table)?;
        }
        Ok(table)
    }
}

/// Follows the EBR chain of `extended`, adding its logical partitions (from 5) to `table`.
fn read_logical(
    disk: &dyn VirtualDisk,
    extended: &Partition,
    table: &mut PartitionTable,
) -> Result<()> {
    let mut finding = |kind, message: String| table.findings.push(TableFinding::new(kind, message));
    let mut logical = Vec::new();
    let mut seen = HashSet::new();
    let mut ebr_lba = extended.first_lba;
    loop {
        let offset = ebr_lba * SECTOR_SIZE;
        if seen.len() == MAX_EBRS {
            finding(
                TableFindingKind::EbrLimit,
                format!("the EBR chain has more than {MAX_EBRS} links; the EBR at byte {offset} and those after it are not read"),
            );
            break;
        }
        if !seen.insert(ebr_lba) {
            finding(
                TableFindingKind::EbrLoop,
                format!("the EBR chain loops back to the EBR at byte {offset}, already read; the chain ends there"),
            );
            break;
        }
        if ebr_lba > extended.last_lba {
            finding(
                TableFindingKind::EbrInvalid,
                format!(
                    "an EBR link points at byte {offset}, outside the extended partition {} (bytes {}..{}); the chain ends there",
                    extended.index, extended.offset, extended.end()
                ),
            );
            break;
        }
        let sector = match read_sector(disk, offset)? {
            Some(sector) if has_signature(&sector) => sector,
            found => {
                let why = if found.is_some() {
                    "has no boot signature 55 AA"
                } else {
                    "lies past the end of the disk"
                };
                finding(
                    TableFindingKind::EbrInvalid,
                    format!("the EBR at byte {offset} {why}; the chain ends there"),
                );
                break;
            }
        };
        let entries = [0, 1, 2, 3].map(|slot| Entry::parse(&sector, slot));
        let data = entries
            .iter()
            .find(|e| e.used() && !types::is_extended(e.kind));
        if let Some(entry) = data {
            let index = 5 + logical.len() as u32;
            // First sector relative to the EBR: a u32 past a 64-bit sector number may
            // still make no byte address (a crafted chain far out).
            match entry.partition(index, ebr_lba) {
                Some(p) => {
                    if p.first_lba < extended.first_lba || p.last_lba > extended.last_lba {
                        finding(
                            TableFindingKind::LogicalOutsideExtended,
                            format!(
                                "logical partition {index} (sectors {}..={}, from the EBR at byte {offset}) lies outside the extended partition {} (sectors {}..={})",
                                p.first_lba, p.last_lba, extended.index, extended.first_lba, extended.last_lba
                            ),
                        );
                    }
                    logical.push(p);
                }
                None => finding(
                    TableFindingKind::InvalidEntry,
                    format!("the logical partition of the EBR at byte {offset} has no addressable sectors; it is left out"),
                ),
            }
        }
        let link = entries
            .iter()
            .find(|e| e.used() && types::is_extended(e.kind));
        match link {
            Some(link) => ebr_lba = extended.first_lba + u64::from(link.start),
            None => break,
        }
    }
    table.partitions.extend(logical);
    Ok(())
}
