//! The block allocation table (BAT): for each block of the virtual disk, the sector of the
//! file where the block (its sector bitmap, then its data) starts.

/// BAT value of a block that is not allocated.
pub const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Size of one BAT entry in bytes.
pub const BAT_ENTRY_SIZE: u64 = 4;

/// The block allocation table, held in memory.
///
/// Entries are kept in their on-disk (big-endian) byte order: the table is then read and
/// written without converting a million entries, and each lookup swaps one entry.
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
        let count = bytes.len() / 4;
        let mut entries = vec![0u32; count];
        entry_bytes_mut(&mut entries).copy_from_slice(&bytes[..count * 4]);
        BlockAllocationTable { entries }
    }

    /// A table of `count` entries whose on-disk bytes `read` fills in place, so that
    /// opening a large image holds one copy of its table, not two (a 2040 GiB image in
    /// 2 MiB blocks has a 4 MiB table).
    pub fn read_with<E>(
        count: usize,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut entries = vec![0u32; count];
        read(entry_bytes_mut(&mut entries))?;
        Ok(BlockAllocationTable { entries })
    }

    /// The entries as they are stored on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entry_bytes(0..self.entries.len())
    }

    /// The on-disk bytes of the entries in `range`.
    pub fn entry_bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        self.entries[range]
            .iter()
            .flat_map(|stored| stored.to_ne_bytes())
            .collect()
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
        match self
            .entries
            .get(block as usize)
            .map(|&stored| u32::from_be(stored))
        {
            Some(UNALLOCATED) | None => None,
            sector => sector,
        }
    }

    /// Points `block` at `sector` (or marks it unallocated with [`UNALLOCATED`]).
    pub fn set(&mut self, block: u32, sector: u32) {
        self.entries[block as usize] = sector.to_be();
    }

    /// `(block, sector)` for every allocated block, in block order.
    pub fn allocated(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        // Tables are mostly unallocated (a 2040 GiB disk has a million entries): runs of
        // unallocated entries are skipped a chunk at a time, which the compiler turns into
        // vector compares, so that opening a large image does not crawl through them.
        // (A chunk is all unallocated when the AND of its entries is all ones; the
        // marker reads the same in either byte order.)
        const CHUNK: usize = 64;
        self.entries
            .chunks(CHUNK)
            .enumerate()
            .filter(|(_, chunk)| chunk.iter().fold(UNALLOCATED, |all, &s| all & s) != UNALLOCATED)
            .flat_map(|(c, chunk)| {
                chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| s != UNALLOCATED)
                    .map(move |(i, &s)| ((c * CHUNK + i) as u32, u32::from_be(s)))
            })
    }
}

/// The bytes of `entries`, to read them from disk in place (entries are stored big-endian).
fn entry_bytes_mut(entries: &mut [u32]) -> &mut [u8] {
    // SAFETY: a `u32` slice is `4 * len` initialized bytes, aligned for `u8`, and every byte
    // pattern is a valid `u32`; the returned slice borrows `entries` mutably, so nothing
    // else can see the entries while they are written through it.
    unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<u8>(), entries.len() * 4) }
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
        let bytes = bat.to_bytes();
        let read = BlockAllocationTable::read_with(3, |buf| {
            buf.copy_from_slice(&bytes);
            Ok::<(), ()>(())
        });
        assert_eq!(read, Ok(bat));
    }

    #[test]
    fn allocated_entries_across_chunks() {
        let mut bat = BlockAllocationTable::new(1000);
        for (block, sector) in [(0, 9), (63, 10), (64, 11), (500, 12), (999, 13)] {
            bat.set(block, sector);
        }
        assert_eq!(
            bat.allocated().collect::<Vec<_>>(),
            vec![(0, 9), (63, 10), (64, 11), (500, 12), (999, 13)]
        );
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
