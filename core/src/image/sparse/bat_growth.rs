//! Growing the BAT in place when the virtual size needs more entries.

use super::SparseFile;
use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE};
use crate::error::{Error, Result};
use crate::image::layout::header_extent;
use crate::image::{sync, write_all};

impl SparseFile {
    /// Grows the BAT to `entries` entries. When the larger table does not fit in front of
    /// what follows it, the blocks and parent locator data in the way are first copied to
    /// the end of the file (behind a moved footer) and made durable, then their BAT entries
    /// and locator offsets are pointed at the copies and made durable; only then is the
    /// freed space overwritten with the new (unallocated) entries and, last, the header
    /// records the new entry count. A crash at any step leaves a valid image of the old
    /// size (at worst with unreferenced copies, which `check` reports as leaked).
    pub(super) fn grow_bat(&mut self, entries: u32) -> Result<()> {
        let table = self.header.table_offset;
        let old_end = table + self.bat.len() as u64 * BAT_ENTRY_SIZE;
        let new_end = table + (u64::from(entries) * BAT_ENTRY_SIZE).next_multiple_of(512);
        let region = old_end..new_end;
        let header = header_extent(self.footer.data_offset);
        if header.start < region.end && region.start < header.end {
            return Err(Error::Unsupported(format!(
                "{}: the BAT cannot grow to {entries} entries: the dynamic header follows it",
                self.path.display()
            )));
        }
        let in_region = |start: u64, end: u64| start < region.end && region.start < end;
        let unit = self.unit_size();
        let blocks: Vec<(u32, u64)> = self
            .bat
            .allocated()
            .map(|(block, sector)| (block, u64::from(sector) * 512))
            .filter(|&(_, start)| in_region(start, start + unit))
            .collect();
        let locators = self
            .layout(self.next_block_offset)
            .locators_in(region.clone());
        // Where the copies go: past the end of the used space and of the new table.
        let mut destination = self.next_block_offset.max(new_end).next_multiple_of(512);
        let old_footer = self.next_block_offset;
        let mut moves = Vec::new();
        for &(_, start) in &blocks {
            moves.push((start, destination, unit.min(old_footer - start)));
            destination += unit;
        }
        for &(_, start, end) in &locators {
            moves.push((start, destination, end - start));
            destination += (end - start).next_multiple_of(512);
        }
        if destination != self.next_block_offset {
            self.write_footer_at(destination)?;
        }
        for &(from, to, length) in &moves {
            self.copy_within(from, to, length)?;
        }
        sync(self.file.as_ref())?;
        self.next_block_offset = destination;
        self.free_units
            .retain(|&start| !in_region(start, start + unit));

        if !blocks.is_empty() {
            let mut moved: Vec<u32> = Vec::new();
            for (&(block, _), &(_, to, _)) in blocks.iter().zip(&moves) {
                self.bat.set(block, (to / 512) as u32);
                moved.push(block);
            }
            moved.sort_unstable();
            self.write_bat_entries(&moved)?;
            sync(self.file.as_ref())?;
        }
        if !locators.is_empty() {
            for (&(index, _, _), &(_, to, _)) in locators.iter().zip(&moves[blocks.len()..]) {
                self.header.parent_locators[index].platform_data_offset = to;
            }
            self.write_header()?;
        }
        let mut entries_bytes = self.bat.to_bytes();
        entries_bytes.resize((new_end - table) as usize, 0xFF);
        write_all(
            self.file.as_ref(),
            &entries_bytes[(old_end - table) as usize..],
            old_end,
            "BAT entries",
        )?;
        sync(self.file.as_ref())?;
        let table_bytes = &entries_bytes[..entries as usize * BAT_ENTRY_SIZE as usize];
        self.bat = BlockAllocationTable::parse(table_bytes);
        self.header.max_table_entries = entries;
        self.write_header()
    }
}
