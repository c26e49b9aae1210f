//! Partition tables inside a virtual disk: MBR (with the logical partitions of an extended
//! partition's EBR chain) and GPT, read through [`VirtualDisk::read_at`] from any image
//! kind, chains included.
//!
//! [`read_partition_table`] gives the partitions with Linux's numbering (MBR primary slots
//! 1–4, logical partitions from 5 in chain order, GPT entries by their slot in the entry
//! array), byte offset and size, type (MBR type byte or GPT type GUID, with a well-known
//! name), and for GPT the unique GUID, name and attribute bits. Sectors are 512 bytes, the
//! only sector size of a VHD.
//!
//! ```no_run
//! use vhd_core::partition::{partition_view, read_partition_table};
//! use vhd_core::{Image, OpenOptions, VirtualDisk};
//!
//! let read_only = OpenOptions { read_only: true, ..OpenOptions::default() };
//! let image = Image::open("disk.vhd", &read_only)?;
//! let table = read_partition_table(&image)?;
//! println!("{} table", table.kind.name());
//! for p in &table.partitions {
//!     println!("{} {}..{} {:?} {:?}", p.index, p.first_lba, p.last_lba, p.type_name, p.name);
//! }
//! for finding in &table.findings {
//!     eprintln!("{finding}"); // e.g. "gpt-primary-damaged: the primary GPT is damaged (...)"
//! }
//! // Partition 2 as a disk of its own (reads confined to it, holes kept).
//! let root = partition_view(image, 2, "disk.vhd".as_ref())?;
//! let mut superblock = [0u8; 1024];
//! root.read_at(&mut superblock, 1024)?;
//! # Ok::<(), vhd_core::Error>(())
//! ```
//!
//! [`ConvertOptions::partition`](crate::ops::ConvertOptions::partition) converts one
//! partition out of a disk (`vhd convert --partition N`).
//!
//! # Why our own parser
//!
//! The `gpt` and `mbrman` crates read through `Read + Seek` of a whole device (and `gpt`
//! opens files by path itself); a [`VirtualDisk`] reads at positions through `&self`, so
//! using them would need an adapter with a cursor and its own locking, and both crates take
//! what a header declares more on trust than a hostile image allows (entry arrays allocated
//! before they are checked against the disk). The structures are small and fixed, so they
//! are parsed here in the style of the [footer](crate::footer) and the [dynamic
//! header](crate::dynamic_header), with every declared size checked before it is used.
//!
//! # Hostile tables
//!
//! A table is data of the guest, so anything may be in it. What cannot be believed is
//! reported, never obeyed:
//!
//! - A GPT header is taken only when its signature, size, CRC32, own position, usable range,
//!   entry size (128 × 2ⁿ bytes, at most [`MAX_GPT_ENTRY_SIZE`]) and entry array (at most
//!   [`MAX_GPT_ENTRY_ARRAY`] bytes, inside the disk, CRC32 matching) all hold. The array is
//!   read a piece at a time: memory is bounded by the partitions actually found, never by
//!   what a header declares.
//! - When the primary GPT is damaged, the backup (in the disk's last sector) is used and a
//!   [`TableFindingKind::GptPrimaryDamaged`] finding says so; a damaged backup beside a good
//!   primary is a finding too, and so is a good backup that is not in the disk's last sector
//!   (found where the primary's alternate LBA says: the disk grew, as when qemu-img rounds
//!   a VHD's size up to a CHS geometry). When neither is usable, the table is read as the MBR it also
//!   is (the protective partition, type `0xEE`, over the disk), with a
//!   [`TableFindingKind::GptUnreadable`] finding that says why — what `sfdisk` and `fdisk`
//!   (libfdisk) do, so their output and ours agree.
//! - An EBR chain is followed at most [`MAX_EBRS`] links, each EBR once: a chain that loops
//!   (an EBR linking to itself or an earlier one), leaves its extended partition or the disk,
//!   or runs too long ends there with a finding.
//! - Partitions past the end of the disk, outside GPT's usable range, or overlapping each
//!   other are listed as they are, with a finding each.
//!
//! Errors are only for a disk that cannot be read (the image's own I/O errors).

mod crc32;
mod gpt;
mod mbr;
pub mod types;
mod view;

pub use gpt::{MAX_GPT_ENTRY_ARRAY, MAX_GPT_ENTRY_SIZE};
pub use mbr::MAX_EBRS;
pub use view::PartitionView;

use crate::error::{Error, Result};
use crate::VirtualDisk;
use std::fmt;

/// Bytes in a sector of a VHD, the unit of partition tables' addresses.
pub const SECTOR_SIZE: u64 = 512;

/// A GUID as GPT stores it: 16 bytes, the first three fields little-endian ("mixed
/// endian"). Displayed in upper case, `C12A7328-F81F-11D2-BA4B-00A0C93EC93B`, as partitioning tools
/// print it; parsed in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID whose text form is `{a:08x}-{b:04x}-{c:04x}-` followed by the eight bytes
    /// of `d` in hexadecimal.
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }

    /// True for the all-zero GUID, the type of an unused GPT entry.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    /// The registry form in upper case, as `sfdisk`, `sgdisk` and the `gpt` npm module
    /// write it, so that a GUID we print can be compared with theirs as text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl std::str::FromStr for Guid {
    type Err = Error;

    /// Parses the text form (either case, no braces).
    fn from_str(text: &str) -> Result<Guid> {
        let invalid = || Error::InvalidArgument {
            name: "guid",
            reason: format!(
                "{text:?} is not a GUID (expected the form C12A7328-F81F-11D2-BA4B-00A0C93EC93B)"
            ),
        };
        let groups: Vec<&str> = text.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12] || !text.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let hex: String = groups.concat();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        let a = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let b = u16::from_be_bytes([bytes[4], bytes[5]]);
        let c = u16::from_be_bytes([bytes[6], bytes[7]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&bytes[8..]);
        Ok(Guid::from_fields(a, b, c, d))
    }
}

/// Which kind of partition table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A GUID partition table (behind a protective MBR).
    Gpt,
    /// A master boot record, with the logical partitions of its extended partition.
    Mbr,
    /// No partition table: no boot signature `55 AA` in the first sector, or one whose
    /// entries are not a partition table (a file system's boot sector).
    None,
}

impl TableKind {
    /// `"gpt"`, `"mbr"` or `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Gpt => "gpt",
            TableKind::Mbr => "mbr",
            TableKind::None => "none",
        }
    }
}

/// The type of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionType {
    /// An MBR type byte (`0x83` Linux, `0x07` NTFS, `0x05` extended…).
    Mbr(u8),
    /// A GPT partition type GUID.
    Gpt(Guid),
}

impl fmt::Display for PartitionType {
    /// The MBR byte in hexadecimal without prefix (as `sfdisk --json` writes it), the GPT
    /// GUID in upper case (as `sfdisk` and `sgdisk` write it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionType::Mbr(byte) => write!(f, "{byte:x}"),
            PartitionType::Gpt(guid) => write!(f, "{guid}"),
        }
    }
}

/// One partition of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Linux's number: MBR primary slots 1–4, logical partitions from 5 in chain order, GPT
    /// the entry's slot in the array plus one.
    pub index: u32,
    /// Start in bytes from the start of the disk (`first_lba` × 512).
    pub offset: u64,
    /// Length in bytes (sectors × 512).
    pub size: u64,
    /// The MBR type byte or GPT type GUID.
    pub kind: PartitionType,
    /// The type's well-known name ("Linux filesystem", "EFI System", "W95 FAT32 (LBA)"…).
    pub type_name: Option<&'static str>,
    /// GPT: the partition's unique GUID.
    pub guid: Option<Guid>,
    /// GPT: the partition's name (UTF-16 in the entry, up to its first NUL; possibly empty).
    pub name: Option<String>,
    /// GPT: the attribute bits (bit 0 required, bit 2 legacy BIOS bootable, 48–63 the
    /// type's own). 0 for MBR.
    pub attributes: u64,
    /// MBR: the boot indicator is `0x80`. GPT: attribute bit 2 (legacy BIOS bootable).
    pub bootable: bool,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive, as GPT and `sgdisk` count).
    pub last_lba: u64,
}

impl Partition {
    /// Number of sectors.
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }

    /// The first byte past the partition.
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }

    /// An MBR extended partition: the container of the logical partitions, listed (as
    /// `sfdisk` lists it) but holding no file system of its own.
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, PartitionType::Mbr(byte) if types::is_extended(byte))
    }

    /// Builds a partition from its sector range, `None` when the range is empty, inverted,
    /// or not addressable in bytes (a hostile entry).
    fn from_sectors(
        index: u32,
        kind: PartitionType,
        first_lba: u64,
        last_lba: u64,
    ) -> Option<Partition> {
        if last_lba < first_lba {
            return None;
        }
        let offset = first_lba.checked_mul(SECTOR_SIZE)?;
        let size = (last_lba - first_lba)
            .checked_add(1)?
            .checked_mul(SECTOR_SIZE)?;
        offset.checked_add(size)?;
        let type_name = match kind {
            PartitionType::Mbr(byte) => types::mbr_type_name(byte),
            PartitionType::Gpt(guid) => types::gpt_type_name(&guid),
        };
        Some(Partition {
            index,
            offset,
            size,
            kind,
            type_name,
            guid: None,
            name: None,
            attributes: 0,
            bootable: false,
            first_lba,
            last_lba,
        })
    }
}

/// What a [`TableFinding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TableFindingKind {
    /// The primary GPT (header or entry array) is damaged; the backup was used.
    GptPrimaryDamaged,
    /// The primary GPT is good, the backup is damaged or missing.
    GptBackupDamaged,
    /// The backup GPT is good but not in the disk's last sector (where the primary's
    /// alternate LBA says): the disk grew after it was partitioned, as when a converter
    /// rounds its size up to a CHS geometry.
    GptBackupNotAtEnd,
    /// The protective MBR announces a GPT, but neither GPT header is usable: the table was
    /// read as an MBR.
    GptUnreadable,
    /// An entry whose sector range is inverted or not addressable was left out.
    InvalidEntry,
    /// A partition runs past the end of the disk.
    PartitionPastEnd,
    /// A GPT partition lies outside the header's usable range.
    PartitionOutsideUsable,
    /// Two partitions share sectors.
    PartitionsOverlap,
    /// An MBR with more than one extended partition: only the first one's chain is read
    /// (as libfdisk does).
    ExtraExtended,
    /// An EBR without boot signature, or outside its extended partition or the disk: the
    /// chain ends before it.
    EbrInvalid,
    /// An EBR links back to one already read: the chain ends there.
    EbrLoop,
    /// The EBR chain is longer than [`MAX_EBRS`]: the rest is not read.
    EbrLimit,
    /// A logical partition lies outside its extended partition.
    LogicalOutsideExtended,
}

impl TableFindingKind {
    /// A stable code, e.g. `gpt-primary-damaged`.
    pub fn code(self) -> &'static str {
        match self {
            TableFindingKind::GptPrimaryDamaged => "gpt-primary-damaged",
            TableFindingKind::GptBackupDamaged => "gpt-backup-damaged",
            TableFindingKind::GptBackupNotAtEnd => "gpt-backup-not-at-end",
            TableFindingKind::GptUnreadable => "gpt-unreadable",
            TableFindingKind::InvalidEntry => "invalid-entry",
            TableFindingKind::PartitionPastEnd => "partition-past-end",
            TableFindingKind::PartitionOutsideUsable => "partition-outside-usable",
            TableFindingKind::PartitionsOverlap => "partitions-overlap",
            TableFindingKind::ExtraExtended => "extra-extended",
            TableFindingKind::EbrInvalid => "ebr-invalid",
            TableFindingKind::EbrLoop => "ebr-loop",
            TableFindingKind::EbrLimit => "ebr-limit",
            TableFindingKind::LogicalOutsideExtended => "logical-outside-extended",
        }
    }
}

/// A non-fatal fact about the table: what was damaged, doubtful or left out, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFinding {
    pub kind: TableFindingKind,
    /// What, in a sentence that names the structure and its byte offset.
    pub message: String,
}

impl TableFinding {
    fn new(kind: TableFindingKind, message: impl Into<String>) -> TableFinding {
        TableFinding {
            kind,
            message: message.into(),
        }
    }

    /// The kind's stable code, e.g. `gpt-primary-damaged`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for TableFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

/// The partition table of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// In index order (GPT entry order; MBR primaries then logical partitions).
    pub partitions: Vec<Partition>,
    /// What was found damaged or doubtful, in the order it was met.
    pub findings: Vec<TableFinding>,
    /// GPT: the disk GUID of the header that was used.
    pub disk_guid: Option<Guid>,
}

impl PartitionTable {
    fn none() -> PartitionTable {
        PartitionTable {
            kind: TableKind::None,
            partitions: Vec::new(),
            findings: Vec::new(),
            disk_guid: None,
        }
    }

    /// The partition numbered `index`, or an [`Error::InvalidArgument`] naming the numbers
    /// there are. An extended partition (a container of logical partitions) is refused:
    /// its bytes are EBRs and the logical partitions, no file system.
    pub fn partition(&self, index: u32) -> Result<&Partition> {
        let found = self.partitions.iter().find(|p| p.index == index);
        if let Some(p) = found.filter(|p| p.is_extended()) {
            return Err(Error::InvalidArgument {
                name: "partition",
                reason: format!(
                    "partition {} is an extended partition (type {:#04x}), the container of the logical partitions 5 and up: name one of those",
                    p.index,
                    match p.kind { PartitionType::Mbr(byte) => byte, PartitionType::Gpt(_) => 0 }
                ),
            });
        }
        found.ok_or_else(|| Error::InvalidArgument {
            name: "partition",
            reason: format!(
                "there is no partition {index}: {}",
                self.numbers(LISTED_NUMBERS)
            ),
        })
    }

    /// "the disk's partitions are 1, 2, 5", the first `most` numbers and how many more (a
    /// crafted GPT may list thousands), or that there are none.
    fn numbers(&self, most: usize) -> String {
        if self.partitions.is_empty() {
            return format!(
                "the disk has no partitions (partition table: {})",
                self.kind.name()
            );
        }
        let listed: Vec<String> = self
            .partitions
            .iter()
            .take(most)
            .map(|p| p.index.to_string())
            .collect();
        let more = self.partitions.len().saturating_sub(most);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("the disk's partitions are {}{more}", listed.join(", "))
    }
}

/// How many partition numbers an error lists at most.
const LISTED_NUMBERS: usize = 16;

/// The partition numbered `index` of `disk`, one that `--partition N` can read: it exists,
/// is no extended partition, and lies inside the disk. `path` names the disk in messages.
/// Fails with [`Error::InvalidArgument`] (argument `partition`) otherwise, the message
/// listing the partitions there are.
pub fn find_partition(
    disk: &dyn VirtualDisk,
    index: u32,
    path: &std::path::Path,
) -> Result<Partition> {
    let in_file = |error: Error| match error {
        Error::InvalidArgument { name, reason } => Error::InvalidArgument {
            name,
            reason: format!("{}: {reason}", path.display()),
        },
        other => other.in_file(path),
    };
    let table = read_partition_table(disk).map_err(in_file)?;
    let partition = table.partition(index).map_err(in_file)?;
    if partition.end() > disk.size() {
        return Err(in_file(Error::InvalidArgument {
            name: "partition",
            reason: format!(
                "partition {} (bytes {}..{}) runs past the end of the disk ({} bytes): its data is not all there",
                partition.index,
                partition.offset,
                partition.end(),
                disk.size()
            ),
        }));
    }
    Ok(partition.clone())
}

/// The partition numbered `index` of `disk` as a disk of its own, as [`find_partition`]
/// finds it: what `--partition N` reads.
pub fn partition_view<D: VirtualDisk>(
    disk: D,
    index: u32,
    path: &std::path::Path,
) -> Result<PartitionView<D>> {
    let partition = find_partition(&disk, index, path)?;
    PartitionView::new(disk, partition.offset, partition.size)
}

/// Reads the partition table of `disk`.
///
/// No table (no boot signature, a first sector that is no MBR, a disk shorter than a
/// sector) is [`TableKind::None`], not an error. A damaged or doubtful table gives what
/// can be believed of it and [findings](PartitionTable::findings) for the rest (see the
/// module documentation). Fails only when the disk cannot be read.
pub fn read_partition_table(disk: &dyn VirtualDisk) -> Result<PartitionTable> {
    let Some(mbr) = mbr::read_mbr(disk)? else {
        return Ok(PartitionTable::none());
    };
    let mut table = if mbr.is_protective() {
        match gpt::read_gpt(disk)? {
            Ok(table) => table,
            Err(why) => {
                let mut table = mbr.into_table(disk)?;
                table.findings.insert(
                    0,
                    TableFinding::new(
                        TableFindingKind::GptUnreadable,
                        format!(
                            "the MBR has a protective GPT partition, but {why}; the disk is read as an MBR, as fdisk does"
                        ),
                    ),
                );
                table
            }
        }
    } else {
        mbr.into_table(disk)?
    };
    check_placement(&mut table, disk.size());
    Ok(table)
}

/// Adds the findings of partitions past the end of the disk and of overlapping partitions
/// (an extended partition holds its logical partitions: that is no overlap).
fn check_placement(table: &mut PartitionTable, disk_size: u64) {
    for p in &table.partitions {
        if p.end() > disk_size {
            table.findings.push(TableFinding::new(
                TableFindingKind::PartitionPastEnd,
                format!(
                    "partition {} (sectors {}..={}, bytes {}..{}) runs past the end of the disk ({} bytes)",
                    p.index, p.first_lba, p.last_lba, p.offset, p.end(), disk_size
                ),
            ));
        }
    }
    let mut order: Vec<&Partition> = table
        .partitions
        .iter()
        .filter(|p| !p.is_extended())
        .collect();
    order.sort_by_key(|p| (p.first_lba, p.last_lba));
    // Each partition against the one reaching furthest among those before it: every
    // overlap shows up at least once, in one pass.
    let mut furthest: Option<&Partition> = None;
    let mut overlaps = Vec::new();
    for p in order {
        if let Some(q) = furthest {
            if p.first_lba <= q.last_lba {
                overlaps.push(TableFinding::new(
                    TableFindingKind::PartitionsOverlap,
                    format!(
                        "partitions {} (sectors {}..={}) and {} (sectors {}..={}) overlap",
                        q.index, q.first_lba, q.last_lba, p.index, p.first_lba, p.last_lba
                    ),
                ));
            }
        }
        if furthest.is_none_or(|q| p.last_lba > q.last_lba) {
            furthest = Some(p);
        }
    }
    table.findings.extend(overlaps);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A disk of bytes in memory, for the tests of this module.
    #[derive(Debug)]
    pub(crate) struct MemoryDisk(pub Vec<u8>);

    impl VirtualDisk for MemoryDisk {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
        fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
            crate::image::check_range("write", offset, buf.len() as u64, self.size())?;
            self.0[offset as usize..][..buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn guid_text_round_trip() {
        let text = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
        let guid: Guid = text.parse().unwrap();
        assert_eq!(guid, types::EFI_SYSTEM);
        assert_eq!(guid.to_string(), text);
        assert_eq!(text.to_lowercase().parse::<Guid>().unwrap(), guid);
        assert!("c12a7328-f81f-11d2-ba4b".parse::<Guid>().is_err());
        assert!("g12a7328-f81f-11d2-ba4b-00a0c93ec93b"
            .parse::<Guid>()
            .is_err());
    }

    #[test]
    fn no_table() {
        assert_eq!(
            read_partition_table(&MemoryDisk(vec![0; 100]))
                .unwrap()
                .kind,
            TableKind::None
        );
        assert_eq!(
            read_partition_table(&MemoryDisk(vec![0; 4096]))
                .unwrap()
                .kind,
            TableKind::None
        );
    }

    /// An MBR whose extended partition's EBR links to itself: one logical partition, a
    /// loop finding, and an end (balena's partitioninfo loops forever here).
    #[test]
    fn ebr_linking_to_itself_ends() {
        let mut bytes = vec![0u8; 64 * 512];
        let mut entry = |sector: usize, slot: usize, kind: u8, start: u32, count: u32| {
            let e = &mut bytes[sector * 512 + 446 + slot * 16..][..16];
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&count.to_le_bytes());
        };
        entry(0, 0, 0x05, 8, 56);
        entry(8, 0, 0x83, 2, 10);
        entry(8, 1, 0x05, 0, 56);
        for sector in [0, 8] {
            bytes[sector * 512 + 510] = 0x55;
            bytes[sector * 512 + 511] = 0xAA;
        }
        let table = read_partition_table(&MemoryDisk(bytes)).unwrap();
        assert_eq!(table.kind, TableKind::Mbr);
        let found: Vec<(u32, u64, u64)> = table
            .partitions
            .iter()
            .map(|p| (p.index, p.first_lba, p.last_lba))
            .collect();
        assert_eq!(found, [(1, 8, 63), (5, 10, 19)]);
        let codes: Vec<&str> = table.findings.iter().map(TableFinding::code).collect();
        assert_eq!(codes, ["ebr-loop"]);
    }
}
