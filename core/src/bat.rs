//! The block allocation table (BAT): for each block of the virtual disk, the sector of the
//! file where the block (its sector bitmap, then its data) starts.

use byteorder::{BigEndian, ByteOrder};

/// BAT value of a block that is not allocated.
pub const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Size of one BAT entry in bytes.
pub const BAT_ENTRY_SIZE: u64 = 4;

/// The block allocation table, held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAllocationTable {
    entries: Vec<u32>,
}

impl BlockAllocationTable {
    /// A table of `count` unallocated entries.
    pub fn new(count: u32) -> Self {
        BlockAllocationTable {
            entries: vec![UNALLOCATED; count as usize],
        }
    }

    /// Parses big-endian entries; `bytes.len()` must be a multiple of 4.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut entries = vec![0u32; bytes.len() / 4];
        BigEndian::read_u32_into(&bytes[..entries.len() * 4], &mut entries);
        BlockAllocationTable { entries }
    }

    /// The entries as they are stored on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entry_bytes(0..self.entries.len())
    }

    /// The on-disk bytes of the entries in `range`.
    pub fn entry_bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let mut bytes = vec![0u8; range.len() * 4];
        BigEndian::write_u32_into(&self.entries[range], &mut bytes);
        bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file sector where `block` starts, or `None` when it is not allocated.
    pub fn get(&self, block: u32) -> Option<u32> {
        match self.entries.get(block as usize) {
            Some(&UNALLOCATED) | None => None,
            Some(&sector) => Some(sector),
        }
    }

    /// Points `block` at `sector` (or marks it unallocated with [`UNALLOCATED`]).
    pub fn set(&mut self, block: u32, sector: u32) {
        self.entries[block as usize] = sector;
    }

    /// `(block, sector)` for every allocated block.
    pub fn allocated(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, &s)| s != UNALLOCATED)
            .map(|(i, &s)| (i as u32, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_big_endian_sectors() {
        let bat = BlockAllocationTable::parse(&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]);
        assert_eq!(bat.len(), 3);
        assert_eq!(bat.get(0), Some(3));
        assert_eq!(bat.get(1), None);
        assert_eq!(bat.get(2), Some(0x1000));
        assert_eq!(bat.get(3), None);
        assert_eq!(
            bat.allocated().collect::<Vec<_>>(),
            vec![(0, 3), (2, 0x1000)]
        );
        assert_eq!(BlockAllocationTable::parse(&bat.to_bytes()), bat);
    }

    #[test]
    fn set_and_partial_bytes() {
        let mut bat = BlockAllocationTable::new(4);
        assert_eq!(bat.allocated().count(), 0);
        bat.set(2, 7);
        assert_eq!(
            bat.entry_bytes(1..3),
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 7]
        );
    }
}
