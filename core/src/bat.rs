//! The block allocation table (BAT): for each block of the virtual disk, the sector of the
//! file where the block (its sector bitmap, then its data) starts.

/// BAT value of a block that is not allocated.
pub const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Size of one BAT entry in bytes.
pub const BAT_ENTRY_SIZE: u64 = 4;

/// Entries per page of the in-memory table (4 KiB of entries).
const PAGE_ENTRIES: usize = 1024;
/// Bytes of the on-disk table read at a time when it is loaded.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// One page of entries, stored in their on-disk (big-endian) byte order.
type Page = Box<[u32; PAGE_ENTRIES]>;

/// The block allocation table, held in memory.
///
/// The table is kept in pages of 1024 entries, and a page with no allocated entry is not
/// kept at all: a 2040 GiB disk in 2 MiB blocks has a 4 MiB table, almost all of it
/// unallocated in a new image, and opening it must cost neither the time to fault in 4 MiB
/// nor the memory. Entries stay in their on-disk byte order, so a table is loaded and
/// saved without converting them; each lookup swaps one entry.
#[derive(Debug, Clone)]
pub struct BlockAllocationTable {
    len: usize,
    /// `len.div_ceil(PAGE_ENTRIES)` pages; `None` when every entry of the page is
    /// unallocated. Entries of the last page past `len` are unallocated.
    pages: Vec<Option<Page>>,
}

impl BlockAllocationTable {
    /// A table of `count` unallocated entries.
    pub fn new(count: u32) -> Self {
        let len = count as usize;
        BlockAllocationTable {
            len,
            pages: vec![None; len.div_ceil(PAGE_ENTRIES)],
        }
    }

    /// Parses big-endian entries; `bytes.len()` must be a multiple of 4.
    pub fn parse(bytes: &[u8]) -> Self {
        let count = bytes.len() / 4;
        let mut table = BlockAllocationTable::new(0);
        table.len = count;
        table.pages = bytes[..count * 4]
            .chunks(PAGE_ENTRIES * 4)
            .map(page_from_bytes)
            .collect();
        table
    }

    /// A table of `count` entries whose on-disk bytes `read(buf, position)` delivers, a
    /// chunk at a time (`position` counts bytes from the start of the table). Chunks go
    /// through one small buffer, so loading a large, mostly unallocated table touches
    /// little memory.
    pub fn read_with<E>(
        count: usize,
        mut read: impl FnMut(&mut [u8], u64) -> Result<(), E>,
    ) -> Result<Self, E> {
        let total = count * 4;
        let mut chunk = vec![0u8; READ_CHUNK_BYTES.min(total)];
        let mut pages = Vec::with_capacity(count.div_ceil(PAGE_ENTRIES));
        let mut position = 0;
        while position < total {
            let length = chunk.len().min(total - position);
            read(&mut chunk[..length], position as u64)?;
            pages.extend(
                chunk[..length]
                    .chunks(PAGE_ENTRIES * 4)
                    .map(page_from_bytes),
            );
            position += length;
        }
        Ok(BlockAllocationTable { len: count, pages })
    }

    /// The entries as they are stored on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entry_bytes(0..self.len)
    }

    /// The on-disk bytes of the entries in `range`.
    pub fn entry_bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        assert!(
            range.end <= self.len,
            "BAT range {range:?} past {}",
            self.len
        );
        range.flat_map(|i| self.stored(i).to_ne_bytes()).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file sector where `block` starts, or `None` when it is not allocated.
    pub fn get(&self, block: u32) -> Option<u32> {
        let index = block as usize;
        if index >= self.len {
            return None;
        }
        match u32::from_be(self.stored(index)) {
            UNALLOCATED => None,
            sector => Some(sector),
        }
    }

    /// Points `block` at `sector` (or marks it unallocated with [`UNALLOCATED`]).
    ///
    /// # Panics
    /// When `block` is not in the table.
    pub fn set(&mut self, block: u32, sector: u32) {
        let index = block as usize;
        assert!(index < self.len, "BAT entry {index} past {}", self.len);
        let page = &mut self.pages[index / PAGE_ENTRIES];
        if page.is_none() && sector == UNALLOCATED {
            return;
        }
        page.get_or_insert_with(|| Box::new([UNALLOCATED; PAGE_ENTRIES]))[index % PAGE_ENTRIES] =
            sector.to_be();
    }

    /// `(block, sector)` for every allocated block, in block order.
    pub fn allocated(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.pages
            .iter()
            .enumerate()
            .filter_map(|(p, page)| page.as_ref().map(|page| (p * PAGE_ENTRIES, page)))
            .flat_map(|(first, page)| {
                page.iter()
                    .enumerate()
                    .filter(|(_, &stored)| stored != UNALLOCATED)
                    .map(move |(i, &stored)| ((first + i) as u32, u32::from_be(stored)))
            })
    }

    /// Entry `index` as stored (big-endian).
    fn stored(&self, index: usize) -> u32 {
        match &self.pages[index / PAGE_ENTRIES] {
            Some(page) => page[index % PAGE_ENTRIES],
            None => UNALLOCATED,
        }
    }
}

impl PartialEq for BlockAllocationTable {
    /// Tables are equal when their entries are (however they are paged).
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.stored(i) == other.stored(i))
    }
}

impl Eq for BlockAllocationTable {}

/// A page from up to `PAGE_ENTRIES` on-disk entries; `None` when none is allocated. (The
/// unallocated marker is all ones, so a page is empty when the AND of its bytes is 0xFF,
/// which the compiler checks with vector instructions.)
fn page_from_bytes(bytes: &[u8]) -> Option<Page> {
    if bytes.iter().fold(0xFF, |all, &b| all & b) == 0xFF {
        return None;
    }
    let mut page = Box::new([UNALLOCATED; PAGE_ENTRIES]);
    for (entry, stored) in page.iter_mut().zip(bytes.chunks_exact(4)) {
        *entry = u32::from_ne_bytes([stored[0], stored[1], stored[2], stored[3]]);
    }
    Some(page)
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
        let read = BlockAllocationTable::read_with(3, |buf, at| {
            let at = at as usize;
            buf.copy_from_slice(&bytes[at..at + buf.len()]);
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
    fn large_tables_load_in_chunks_and_keep_only_allocated_pages() {
        let count = 300_000;
        let mut bat = BlockAllocationTable::new(count as u32);
        for (block, sector) in [(0, 9), (16_383, 10), (16_384, 11), (299_999, 12)] {
            bat.set(block, sector);
        }
        let bytes = bat.to_bytes();
        let mut reads = 0;
        let read = BlockAllocationTable::read_with(count, |buf, at| {
            reads += 1;
            let at = at as usize;
            buf.copy_from_slice(&bytes[at..at + buf.len()]);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(read, bat);
        assert_eq!(read, BlockAllocationTable::parse(&bytes));
        assert_eq!(reads, (count * 4).div_ceil(READ_CHUNK_BYTES));
        assert_eq!(
            read.pages.iter().filter(|p| p.is_some()).count(),
            4,
            "pages 0, 15, 16, 292"
        );
        // Unallocating leaves an equal table, however it is paged.
        let mut emptied = read.clone();
        emptied.set(299_999, UNALLOCATED);
        assert_ne!(emptied, read);
        bat.set(299_999, UNALLOCATED);
        assert_eq!(emptied, bat);
        assert_eq!(emptied.get(299_999), None);
        assert_eq!(emptied.get(300_000), None);
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
