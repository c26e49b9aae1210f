//! The GUID partition table: a header in sector 1 (the primary) and in the disk's last
//! sector (the backup), each pointing at an array of partition entries, both protected by
//! CRC32.
//!
//! Header (little-endian): signature `EFI PART` (0), revision (8), header size (12), header
//! CRC32 (16, computed with the field zeroed over `header size` bytes), my LBA (24),
//! alternate LBA (32), first usable LBA (40), last usable LBA (48), disk GUID (56), entry
//! array LBA (72), entry count (80), entry size (84), entry array CRC32 (88).
//! Entry: type GUID (0), unique GUID (16), first LBA (32), last LBA (40), attributes (48),
//! name (56, UTF-16LE, 36 code units).

use super::crc32::{crc32, Crc32};
use super::{
    Guid, Partition, PartitionTable, PartitionType, TableFinding, TableFindingKind, TableKind,
    SECTOR_SIZE,
};
use crate::error::Result;
use crate::VirtualDisk;
use byteorder::{ByteOrder, LittleEndian};

/// The largest entry size taken: entries are 128 × 2ⁿ bytes (the UEFI specification), and
/// every partitioner writes 128; a sector's worth is already far beyond need.
pub const MAX_GPT_ENTRY_SIZE: u32 = 4096;

/// The largest entry array taken, in bytes: 256 times the usual 16 KiB (128 entries of 128
/// bytes). A header that declares more is not believed.
pub const MAX_GPT_ENTRY_ARRAY: u64 = 4 << 20;

/// Bytes of the entry array read at a time.
const ARRAY_CHUNK: usize = 64 << 10;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const MIN_HEADER_SIZE: u32 = 92;
const NAME_UNITS: usize = 36;

/// The fields of a header that the table needs.
#[derive(Debug, Clone)]
struct Header {
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// Reads the GPT of `disk`: the primary, else the backup (with a finding). `Ok(Err(why))`
/// when neither is usable, `why` saying what is wrong with each.
pub(super) fn read_gpt(disk: &dyn VirtualDisk) -> Result<Result<PartitionTable, String>> {
    let sectors = disk.size() / SECTOR_SIZE;
    let last_lba = sectors.saturating_sub(1);
    let primary = read_copy(disk, 1, sectors)?;
    let (table, findings) = match primary {
        Ok(table) => {
            // Where the primary says the backup is, if it says a place on the disk;
            // else the last sector.
            let backup_lba = table
                .1
                .filter(|&lba| lba > 1 && lba < sectors)
                .unwrap_or(last_lba);
            let mut findings = Vec::new();
            match read_copy(disk, backup_lba, sectors)? {
                Err(why) => findings.push(TableFinding::new(
                    TableFindingKind::GptBackupDamaged,
                    format!("the backup GPT is damaged ({why}); the primary is used"),
                )),
                Ok(_) if backup_lba != last_lba => findings.push(not_at_end(backup_lba, last_lba)),
                Ok(_) => {}
            }
            (table.0, findings)
        }
        Err(primary_why) => {
            let mut found = read_copy(disk, last_lba, sectors)?;
            // A disk that grew (or a converter that rounded its size up) keeps its backup
            // where the primary's alternate LBA says: look there too, the backup is then
            // checked on its own.
            let mut found_at = last_lba;
            if found.is_err() {
                if let Some(alternate) = alternate_lba_hint(disk, sectors)? {
                    if alternate != last_lba {
                        if let Ok(table) = read_copy(disk, alternate, sectors)? {
                            found = Ok(table);
                            found_at = alternate;
                        }
                    }
                }
            }
            match found {
                Ok(table) => {
                    let mut findings = vec![TableFinding::new(
                        TableFindingKind::GptPrimaryDamaged,
                        format!("the primary GPT is damaged ({primary_why}); the backup is used"),
                    )];
                    if found_at != last_lba {
                        findings.push(not_at_end(found_at, last_lba));
                    }
                    (table.0, findings)
                }
                Err(backup_why) => {
                    return Ok(Err(format!(
                        "the primary GPT is damaged ({primary_why}) and so is the backup ({backup_why})"
                    )))
                }
            }
        }
    };
    let mut table = table;
    table.findings.splice(0..0, findings);
    Ok(Ok(table))
}

fn not_at_end(backup_lba: u64, last_lba: u64) -> TableFinding {
    TableFinding::new(
        TableFindingKind::GptBackupNotAtEnd,
        format!(
            "the backup GPT header is at sector {backup_lba} (byte {}), not in the disk's last sector {last_lba}: the disk grew after it was partitioned",
            backup_lba * SECTOR_SIZE
        ),
    )
}

/// The alternate LBA of the primary header, read without trusting the header (only its
/// signature is checked): a place to look for the backup, which is checked on its own.
fn alternate_lba_hint(disk: &dyn VirtualDisk, sectors: u64) -> Result<Option<u64>> {
    if sectors < 2 {
        return Ok(None);
    }
    let mut sector = [0u8; 512];
    if disk.read_at(&mut sector, SECTOR_SIZE)? != sector.len() || &sector[0..8] != SIGNATURE {
        return Ok(None);
    }
    let lba = LittleEndian::read_u64(&sector[32..40]);
    Ok((lba > 1 && lba < sectors).then_some(lba))
}

/// Reads and checks the header at `lba` and its entries: the table and the header's
/// alternate LBA, or why this copy is not usable.
#[allow(clippy::type_complexity)]
fn read_copy(
    disk: &dyn VirtualDisk,
    lba: u64,
    sectors: u64,
) -> Result<Result<(PartitionTable, Option<u64>), String>> {
    let which = if lba == 1 { "primary" } else { "backup" };
    let offset = lba * SECTOR_SIZE;
    if lba == 0 || lba >= sectors {
        return Ok(Err(format!(
            "the disk has no sector {lba} for the {which} header"
        )));
    }
    let mut sector = [0u8; 512];
    if disk.read_at(&mut sector, offset)? != sector.len() {
        return Ok(Err(format!(
            "the {which} header at byte {offset} is past the end of the disk"
        )));
    }
    let (header, alternate) = match parse_header(&sector, lba, sectors) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(Err(format!("{which} header at byte {offset}: {why}"))),
    };
    let table = match read_entries(disk, &header)? {
        Ok(table) => table,
        Err(why) => {
            return Ok(Err(format!(
                "{which} entry array at byte {}: {why}",
                header.entries_lba * SECTOR_SIZE
            )))
        }
    };
    Ok(Ok((table, Some(alternate))))
}

/// Checks a header read from `lba` of a disk of `sectors` sectors, as Linux's
/// `is_gpt_valid` and libfdisk do, and the entry array's bounds before anything is read
/// or allocated for it.
fn parse_header(
    sector: &[u8; 512],
    lba: u64,
    sectors: u64,
) -> std::result::Result<(Header, u64), String> {
    if &sector[0..8] != SIGNATURE {
        return Err(format!(
            "no signature \"EFI PART\" (found {:?})",
            String::from_utf8_lossy(&sector[0..8])
        ));
    }
    let header_size = LittleEndian::read_u32(&sector[12..16]);
    if !(MIN_HEADER_SIZE..=SECTOR_SIZE as u32).contains(&header_size) {
        return Err(format!(
            "header size {header_size} is not from {MIN_HEADER_SIZE} to 512"
        ));
    }
    let stored = LittleEndian::read_u32(&sector[16..20]);
    let mut copy = *sector;
    copy[16..20].fill(0);
    let computed = crc32(&copy[..header_size as usize]);
    if stored != computed {
        return Err(format!(
            "header CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let my_lba = LittleEndian::read_u64(&sector[24..32]);
    if my_lba != lba {
        return Err(format!(
            "the header says it is at sector {my_lba}, not {lba}"
        ));
    }
    let last_lba = sectors - 1;
    let first_usable = LittleEndian::read_u64(&sector[40..48]);
    let last_usable = LittleEndian::read_u64(&sector[48..56]);
    if first_usable > last_usable || last_usable > last_lba {
        return Err(format!(
            "usable sectors {first_usable}..={last_usable} are not a range inside the disk's {sectors} sectors"
        ));
    }
    let entry_count = LittleEndian::read_u32(&sector[80..84]);
    let entry_size = LittleEndian::read_u32(&sector[84..88]);
    if !(128..=MAX_GPT_ENTRY_SIZE).contains(&entry_size) || !entry_size.is_power_of_two() {
        return Err(format!(
            "entry size {entry_size} is not 128 × 2ⁿ bytes up to {MAX_GPT_ENTRY_SIZE}"
        ));
    }
    let array = u64::from(entry_count) * u64::from(entry_size);
    if array > MAX_GPT_ENTRY_ARRAY {
        return Err(format!(
            "{entry_count} entries of {entry_size} bytes make {array} bytes, more than the {MAX_GPT_ENTRY_ARRAY} taken"
        ));
    }
    let entries_lba = LittleEndian::read_u64(&sector[72..80]);
    let array_sectors = array.div_ceil(SECTOR_SIZE);
    if entries_lba < 2
        || entries_lba
            .checked_add(array_sectors)
            .is_none_or(|end| end > sectors)
    {
        return Err(format!(
            "the entry array ({array} bytes from sector {entries_lba}) does not lie inside the disk's {sectors} sectors after the protective MBR and primary header"
        ));
    }
    let mut disk_guid = [0u8; 16];
    disk_guid.copy_from_slice(&sector[56..72]);
    let header = Header {
        first_usable,
        last_usable,
        disk_guid: Guid(disk_guid),
        entries_lba,
        entry_count,
        entry_size,
        entries_crc: LittleEndian::read_u32(&sector[88..92]),
    };
    Ok((header, LittleEndian::read_u64(&sector[32..40])))
}

/// Reads the entry array a piece at a time, checking its CRC32 and keeping the entries in
/// use.
fn read_entries(
    disk: &dyn VirtualDisk,
    header: &Header,
) -> Result<std::result::Result<PartitionTable, String>> {
    let entry_size = header.entry_size as usize;
    let total = header.entry_count as u64 * entry_size as u64;
    let start = header.entries_lba * SECTOR_SIZE;
    let mut crc = Crc32::new();
    let mut table = PartitionTable {
        kind: TableKind::Gpt,
        disk_guid: Some(header.disk_guid),
        ..PartitionTable::none()
    };
    // A whole number of entries per piece (entry sizes are powers of two up to 4 KiB).
    let mut buf = vec![0u8; ARRAY_CHUNK.min(total as usize)];
    let mut done = 0u64;
    let mut slot = 0u32;
    while done < total {
        let len = (total - done).min(buf.len() as u64) as usize;
        let piece = &mut buf[..len];
        if disk.read_at(piece, start + done)? != len {
            return Ok(Err("the disk ends inside the array".into()));
        }
        crc.update(piece);
        for entry in piece.chunks_exact(entry_size) {
            slot += 1;
            parse_entry(entry, slot, header, &mut table);
        }
        done += len as u64;
    }
    let computed = crc.finish();
    if computed != header.entries_crc {
        return Ok(Err(format!(
            "entry array CRC32 mismatch: stored {:#010x}, computed {computed:#010x}",
            header.entries_crc
        )));
    }
    Ok(Ok(table))
}

/// Adds the entry in slot `index` (from 1) to `table` when it is in use (its type GUID is
/// not nil), with a finding when its sectors are not a range or lie outside the usable
/// ones.
fn parse_entry(entry: &[u8], index: u32, header: &Header, table: &mut PartitionTable) {
    let mut type_guid = [0u8; 16];
    type_guid.copy_from_slice(&entry[0..16]);
    let type_guid = Guid(type_guid);
    if type_guid.is_nil() {
        return;
    }
    let first = LittleEndian::read_u64(&entry[32..40]);
    let last = LittleEndian::read_u64(&entry[40..48]);
    let Some(mut p) = Partition::from_sectors(index, PartitionType::Gpt(type_guid), first, last)
    else {
        table.findings.push(TableFinding::new(
            TableFindingKind::InvalidEntry,
            format!("GPT entry {index} has sectors {first}..={last}, which are not a range; it is left out"),
        ));
        return;
    };
    let mut unique = [0u8; 16];
    unique.copy_from_slice(&entry[16..32]);
    p.guid = Some(Guid(unique));
    p.attributes = LittleEndian::read_u64(&entry[48..56]);
    p.bootable = p.attributes & (1 << 2) != 0;
    let units: Vec<u16> = entry[56..56 + 2 * NAME_UNITS]
        .chunks_exact(2)
        .map(LittleEndian::read_u16)
        .take_while(|&u| u != 0)
        .collect();
    p.name = Some(String::from_utf16_lossy(&units));
    if first < header.first_usable || last > header.last_usable {
        table.findings.push(TableFinding::new(
            TableFindingKind::PartitionOutsideUsable,
            format!(
                "partition {index} (sectors {first}..={last}) lies outside the usable sectors {}..={}",
                header.first_usable, header.last_usable
            ),
        ));
    }
    table.partitions.push(p);
}
