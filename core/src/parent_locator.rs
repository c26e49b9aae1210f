//! Parent locator entries: where a differencing image's parent may be found.

use byteorder::{BigEndian, ByteOrder};

/// Size of one entry in the dynamic disk header.
pub const PARENT_LOCATOR_ENTRY_SIZE: usize = 24;

/// Largest parent locator payload anything reads, moves or copies (a path of 32 Ki UTF-16
/// units): a locator whose data length is larger is never read (as if it were empty), so
/// that a damaged length of up to 4 GiB never makes anyone allocate it.
pub(crate) const MAX_LOCATOR_BYTES: u32 = 64 * 1024;

/// Platform codes of parent locators.
pub mod platform {
    /// Unused entry.
    pub const NONE: u32 = 0;
    /// Deprecated: relative Windows path, ASCII.
    pub const WI2R: u32 = 0x5769_3272;
    /// Deprecated: absolute Windows path, ASCII.
    pub const WI2K: u32 = 0x5769_326B;
    /// Windows path relative to the child's folder, UTF-16LE (e.g. `.\parent.vhd`).
    pub const W2RU: u32 = 0x5732_7275;
    /// Absolute Windows path, UTF-16LE.
    pub const W2KU: u32 = 0x5732_6B75;
    /// Mac OS alias blob.
    pub const MAC: u32 = 0x4D61_6320;
    /// File URL, UTF-8.
    pub const MACX: u32 = 0x4D61_6358;
}

/// One parent locator entry of the dynamic disk header.
///
/// `data_space` is in sectors according to the specification, but Windows and libvhdi
/// write a byte count there; readers must accept both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParentLocator {
    pub platform_code: u32,
    pub platform_data_space: u32,
    pub platform_data_length: u32,
    pub reserved: u32,
    pub platform_data_offset: u64,
}

impl ParentLocator {
    /// Parses one 24-byte entry.
    pub fn parse(bytes: &[u8; PARENT_LOCATOR_ENTRY_SIZE]) -> ParentLocator {
        ParentLocator {
            platform_code: BigEndian::read_u32(&bytes[0..]),
            platform_data_space: BigEndian::read_u32(&bytes[4..]),
            platform_data_length: BigEndian::read_u32(&bytes[8..]),
            reserved: BigEndian::read_u32(&bytes[12..]),
            platform_data_offset: BigEndian::read_u64(&bytes[16..]),
        }
    }

    /// The entry's 24 bytes.
    pub fn to_bytes(&self) -> [u8; PARENT_LOCATOR_ENTRY_SIZE] {
        let mut b = [0u8; PARENT_LOCATOR_ENTRY_SIZE];
        BigEndian::write_u32(&mut b[0..], self.platform_code);
        BigEndian::write_u32(&mut b[4..], self.platform_data_space);
        BigEndian::write_u32(&mut b[8..], self.platform_data_length);
        BigEndian::write_u32(&mut b[12..], self.reserved);
        BigEndian::write_u64(&mut b[16..], self.platform_data_offset);
        b
    }

    /// True when the entry describes no locator.
    pub fn is_empty(&self) -> bool {
        self.platform_code == platform::NONE
    }

    /// The platform code as four ASCII characters, e.g. `"W2ku"`.
    pub fn platform_name(&self) -> String {
        String::from_utf8_lossy(&self.platform_code.to_be_bytes()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_offset_is_at_plus_16_after_a_reserved_field() {
        let entry = ParentLocator {
            platform_code: platform::W2KU,
            platform_data_space: 4096,
            platform_data_length: 84,
            reserved: 0,
            platform_data_offset: 4096,
        };
        let b = entry.to_bytes();
        assert_eq!(&b[0..4], b"W2ku");
        assert_eq!(&b[16..24], &4096u64.to_be_bytes());
        assert_eq!(ParentLocator::parse(&b), entry);
        assert_eq!(entry.platform_name(), "W2ku");
        assert!(ParentLocator::default().is_empty());
    }
}
