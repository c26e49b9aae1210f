//! The dynamic disk header: 1024 bytes that dynamic and differencing images keep at the
//! footer's `data_offset` (usually 512).

use crate::checksum::{checksum, verify};
use crate::error::{Error, Result};
use crate::parent_locator::{ParentLocator, PARENT_LOCATOR_ENTRY_SIZE};
use byteorder::{BigEndian, ByteOrder};

/// Size of the dynamic disk header on disk.
pub const DYNAMIC_HEADER_SIZE: usize = 1024;
/// The dynamic disk header's cookie.
pub const DYNAMIC_HEADER_COOKIE: &[u8; 8] = b"cxsparse";
/// Header version 1.0.
pub const HEADER_VERSION: u32 = 0x0001_0000;
/// Number of parent locator entries in the header.
pub const PARENT_LOCATOR_COUNT: usize = 8;
/// Default block size, 2 MiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 2 * 1024 * 1024;

const CHECKSUM_FIELD: usize = 36;
const PARENT_NAME: std::ops::Range<usize> = 64..576;
const LOCATORS_START: usize = 576;

/// Every field of the dynamic disk header.
///
/// As with the footer, `checksum` is the stored value and [`DynamicHeader::to_bytes`]
/// writes it unchanged; call [`DynamicHeader::update_checksum`] after changing a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// Unused by the specification (always all ones).
    pub data_offset: u64,
    /// File offset of the block allocation table.
    pub table_offset: u64,
    pub header_version: u32,
    /// Number of BAT entries (blocks) the image can address.
    pub max_table_entries: u32,
    /// Bytes of data per block, not counting its sector bitmap; a power of two.
    pub block_size: u32,
    pub checksum: u32,
    /// Unique id of the parent (differencing images).
    pub parent_unique_id: [u8; 16],
    /// Parent's modification time, seconds since 2000-01-01 (differencing images).
    pub parent_timestamp: u32,
    pub reserved1: u32,
    /// Parent file name, UTF-16 big-endian, NUL-padded (512 bytes on disk).
    pub parent_unicode_name: [u8; 512],
    pub parent_locators: [ParentLocator; PARENT_LOCATOR_COUNT],
    pub reserved2: [u8; 256],
}

/// What a parent time stamp of 0 means, for `check` and `info`: Windows diskpart writes 0,
/// so it is accepted, but the parent is then bound to the child by its unique id alone.
/// It completes "the parent time stamp is …".
pub const PARENT_TIMESTAMP_NOT_RECORDED: &str = "not recorded (0, as Windows diskpart writes): only the parent's unique id binds the parent to this image, and a parent changed after this image was made is not noticed";

/// What [`commit`](crate::ops::commit) writes at the start of the header's reserved bytes
/// (offset 768) while it writes a differencing image's sectors into its parent: the
/// parent changes meanwhile, so the child's parent time stamp is 0 (which every reader
/// accepts) until the commit records the parent's new modification time and removes the
/// mark. A commit that was killed leaves both; the mark tells that 0 from the one Windows
/// diskpart writes on purpose, so that `check` can report the interruption and
/// `check --repair` (or the same commit run again) record the time stamp again. Readers
/// ignore reserved bytes.
pub const COMMIT_IN_PROGRESS: &[u8; 16] = b"vhd:commit-begun";

impl DynamicHeader {
    /// A header for a new dynamic image with no parent.
    pub fn new(table_offset: u64, max_table_entries: u32, block_size: u32) -> DynamicHeader {
        let mut header = DynamicHeader {
            data_offset: u64::MAX,
            table_offset,
            header_version: HEADER_VERSION,
            max_table_entries,
            block_size,
            checksum: 0,
            parent_unique_id: [0; 16],
            parent_timestamp: 0,
            reserved1: 0,
            parent_unicode_name: [0; 512],
            parent_locators: [ParentLocator::default(); PARENT_LOCATOR_COUNT],
            reserved2: [0; 256],
        };
        header.update_checksum();
        header
    }

    /// Parses a header, checking its cookie. `offset` is where it was read, for messages.
    pub fn parse(bytes: &[u8; DYNAMIC_HEADER_SIZE], offset: u64) -> Result<DynamicHeader> {
        if &bytes[0..8] != DYNAMIC_HEADER_COOKIE {
            return Err(Error::BadCookie {
                path: None,
                structure: "dynamic header",
                offset,
                expected: "cxsparse",
                found: String::from_utf8_lossy(&bytes[0..8]).into_owned(),
            });
        }
        let mut parent_locators = [ParentLocator::default(); PARENT_LOCATOR_COUNT];
        for (i, locator) in parent_locators.iter_mut().enumerate() {
            let start = LOCATORS_START + i * PARENT_LOCATOR_ENTRY_SIZE;
            *locator = ParentLocator::parse(
                bytes[start..start + PARENT_LOCATOR_ENTRY_SIZE]
                    .try_into()
                    .unwrap(),
            );
        }
        Ok(DynamicHeader {
            data_offset: BigEndian::read_u64(&bytes[8..]),
            table_offset: BigEndian::read_u64(&bytes[16..]),
            header_version: BigEndian::read_u32(&bytes[24..]),
            max_table_entries: BigEndian::read_u32(&bytes[28..]),
            block_size: BigEndian::read_u32(&bytes[32..]),
            checksum: BigEndian::read_u32(&bytes[36..]),
            parent_unique_id: bytes[40..56].try_into().unwrap(),
            parent_timestamp: BigEndian::read_u32(&bytes[56..]),
            reserved1: BigEndian::read_u32(&bytes[60..]),
            parent_unicode_name: bytes[PARENT_NAME].try_into().unwrap(),
            parent_locators,
            reserved2: bytes[768..1024].try_into().unwrap(),
        })
    }

    /// The header's 1024 bytes, with the stored checksum.
    pub fn to_bytes(&self) -> [u8; DYNAMIC_HEADER_SIZE] {
        let mut b = [0u8; DYNAMIC_HEADER_SIZE];
        b[0..8].copy_from_slice(DYNAMIC_HEADER_COOKIE);
        BigEndian::write_u64(&mut b[8..], self.data_offset);
        BigEndian::write_u64(&mut b[16..], self.table_offset);
        BigEndian::write_u32(&mut b[24..], self.header_version);
        BigEndian::write_u32(&mut b[28..], self.max_table_entries);
        BigEndian::write_u32(&mut b[32..], self.block_size);
        BigEndian::write_u32(&mut b[36..], self.checksum);
        b[40..56].copy_from_slice(&self.parent_unique_id);
        BigEndian::write_u32(&mut b[56..], self.parent_timestamp);
        BigEndian::write_u32(&mut b[60..], self.reserved1);
        b[PARENT_NAME].copy_from_slice(&self.parent_unicode_name);
        for (i, locator) in self.parent_locators.iter().enumerate() {
            let start = LOCATORS_START + i * PARENT_LOCATOR_ENTRY_SIZE;
            b[start..start + PARENT_LOCATOR_ENTRY_SIZE].copy_from_slice(&locator.to_bytes());
        }
        b[768..].copy_from_slice(&self.reserved2);
        b
    }

    /// The checksum the current fields call for.
    pub fn computed_checksum(&self) -> u32 {
        checksum(&self.to_bytes(), CHECKSUM_FIELD)
    }

    /// Stores the checksum the current fields call for.
    pub fn update_checksum(&mut self) {
        self.checksum = self.computed_checksum();
    }

    /// Fails with [`Error::Checksum`] when the stored checksum is wrong.
    pub fn verify_checksum(&self, offset: u64) -> Result<()> {
        verify(
            "dynamic header",
            offset,
            self.checksum,
            self.computed_checksum(),
        )
    }

    /// Whether [`commit`](crate::ops::commit) was writing this differencing image's sectors
    /// into its parent when it was interrupted (see [`COMMIT_IN_PROGRESS`]).
    pub fn commit_in_progress(&self) -> bool {
        self.reserved2.starts_with(COMMIT_IN_PROGRESS)
    }

    /// Marks (or unmarks) a commit in progress (see [`COMMIT_IN_PROGRESS`]); the checksum
    /// is then to be updated.
    pub(crate) fn set_commit_in_progress(&mut self, in_progress: bool) {
        let marker = &mut self.reserved2[..COMMIT_IN_PROGRESS.len()];
        if in_progress {
            marker.copy_from_slice(COMMIT_IN_PROGRESS);
        } else if marker == COMMIT_IN_PROGRESS {
            marker.fill(0);
        }
    }

    /// Whether a differencing image records its parent's time stamp: 0 means it does not
    /// (see [`PARENT_TIMESTAMP_NOT_RECORDED`]). Such a child still opens: the time stamp
    /// check accepts 0.
    pub fn records_parent_timestamp(&self) -> bool {
        self.parent_timestamp != 0
    }

    /// The parent's file name, decoded from UTF-16 big-endian up to the first NUL.
    pub fn parent_name(&self) -> String {
        String::from_utf16_lossy(&self.parent_name_units())
    }

    /// The UTF-16 units of the parent's file name, up to the first NUL, as stored (an
    /// unpaired surrogate kept, for callers whose strings can hold one: JavaScript's).
    pub fn parent_name_units(&self) -> Vec<u16> {
        self.parent_unicode_name
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect()
    }

    /// Stores `name` as the parent's file name (UTF-16 big-endian, NUL-padded).
    ///
    /// Fails when the name does not fit in the field's 256 UTF-16 code units.
    pub fn set_parent_name(&mut self, name: &str) -> Result<()> {
        let units: Vec<u16> = name.encode_utf16().collect();
        if units.len() > 256 {
            return Err(Error::InvalidArgument {
                name: "parent name",
                reason: format!("{} UTF-16 code units, at most 256 fit", units.len()),
            });
        }
        self.parent_unicode_name = [0; 512];
        for (i, u) in units.iter().enumerate() {
            self.parent_unicode_name[2 * i..2 * i + 2].copy_from_slice(&u.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parent_locator::platform;

    #[test]
    fn new_header_round_trips_with_a_valid_checksum() {
        let h = DynamicHeader::new(1536, 5, DEFAULT_BLOCK_SIZE);
        h.verify_checksum(512).unwrap();
        let bytes = h.to_bytes();
        assert_eq!(&bytes[0..8], b"cxsparse");
        assert_eq!(&bytes[8..16], &[0xFF; 8]);
        assert_eq!(&bytes[16..24], &1536u64.to_be_bytes());
        assert_eq!(&bytes[24..28], &[0, 1, 0, 0]);
        assert_eq!(&bytes[28..32], &5u32.to_be_bytes());
        assert_eq!(&bytes[32..36], &0x0020_0000u32.to_be_bytes());
        assert_eq!(DynamicHeader::parse(&bytes, 512).unwrap(), h);
    }

    #[test]
    fn parent_name_is_utf16_big_endian() {
        let mut h = DynamicHeader::new(1536, 1, DEFAULT_BLOCK_SIZE);
        h.set_parent_name("päre nt.vhd").unwrap();
        assert_eq!(&h.parent_unicode_name[0..4], &[0, b'p', 0, 0xE4]);
        assert_eq!(h.parent_name(), "päre nt.vhd");
        assert!(h.set_parent_name(&"x".repeat(257)).is_err());
    }

    #[test]
    fn locators_parse_and_corruption_is_detected() {
        let mut h = DynamicHeader::new(1536, 1, DEFAULT_BLOCK_SIZE);
        h.parent_locators[1] = ParentLocator {
            platform_code: platform::W2RU,
            platform_data_space: 65536,
            platform_data_length: 32,
            reserved: 0,
            platform_data_offset: 12288,
        };
        h.update_checksum();
        let mut bytes = h.to_bytes();
        let parsed = DynamicHeader::parse(&bytes, 512).unwrap();
        assert_eq!(parsed.parent_locators[1], h.parent_locators[1]);
        bytes[600] ^= 0xFF;
        let e = DynamicHeader::parse(&bytes, 512)
            .unwrap()
            .verify_checksum(512)
            .unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_CHECKSUM");
        bytes[0] = b'X';
        assert_eq!(
            DynamicHeader::parse(&bytes, 512).unwrap_err().code(),
            "ERR_VHD_BAD_COOKIE"
        );
    }
}
