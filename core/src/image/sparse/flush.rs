//! Making changes durable in the right order: bitmaps and data first, then the BAT
//! entries that vouch for them; the dynamic header and the footers.

use super::SparseFile;
use crate::error::Result;
use crate::footer::Footer;
use crate::image::layout::bat_entry_offset;
use crate::image::{sync, write_all};

/// BAT entries per 512-byte sector of the table: the unit in which the table is rewritten.
const BAT_ENTRIES_PER_SECTOR: u32 = 128;

impl SparseFile {
    /// Order: bitmaps of new blocks (nothing on disk points at them yet), fsync, so that all
    /// data is durable; then the new bits of older blocks and the new BAT entries, which
    /// vouch for that data; then a final fsync. (Until that fsync completes, a power cut
    /// may keep any part of the second step: a BAT entry without its block leaves nothing
    /// wrong, since its data and bitmap are already durable, and a lost one leaks the block.)
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.access.read_only_reason().is_some() {
            return Ok(());
        }
        // Every new block's bitmap is written, dirty or not: a block whose first write
        // failed after `allocate` has a clean bitmap in memory, while its place in the file
        // still holds the old footer, which read as a bitmap would mark sectors present
        // (tests/crash.rs: a_block_whose_first_write_failed_still_reads_from_the_parent).
        let new_blocks: Vec<u32> = self.unflushed_blocks.iter().copied().collect();
        let old_blocks: Vec<u32> = self
            .dirty_bitmaps
            .iter()
            .copied()
            .filter(|b| !self.unflushed_blocks.contains(b))
            .collect();
        for &block in &new_blocks {
            self.write_bitmap(block)?;
        }
        sync(self.file.as_ref())?;
        if old_blocks.is_empty()
            && self.unflushed_blocks.is_empty()
            && self.freed_entries.is_empty()
        {
            self.dirty_bitmaps.clear();
            return Ok(());
        }
        for &block in &old_blocks {
            self.write_bitmap(block)?;
        }
        self.write_unflushed_bat_entries()?;
        sync(self.file.as_ref())?;
        self.dirty_bitmaps.clear();
        self.unflushed_blocks.clear();
        self.freed_entries.clear();
        // The entries that pointed at freed space are durable now: it may be reused.
        self.free_units.append(&mut self.freed_units);
        Ok(())
    }

    /// Writes the BAT entries of blocks allocated or freed since the last flush, one write
    /// per 512-byte sector of the table that changed.
    pub(super) fn write_unflushed_bat_entries(&self) -> Result<()> {
        let blocks: Vec<u32> = self
            .unflushed_blocks
            .union(&self.freed_entries)
            .copied()
            .collect();
        self.write_bat_entries(&blocks)
    }

    /// Writes the BAT entries of `blocks` (sorted), one write per 512-byte sector of the
    /// table that holds any of them.
    pub(super) fn write_bat_entries(&self, blocks: &[u32]) -> Result<()> {
        for group in
            blocks.chunk_by(|a, b| a / BAT_ENTRIES_PER_SECTOR == b / BAT_ENTRIES_PER_SECTOR)
        {
            let (first, last) = (group[0] as usize, group[group.len() - 1] as usize);
            let bytes = self.bat.entry_bytes(first..last + 1);
            let offset = bat_entry_offset(&self.header, first as u32);
            write_all(self.file.as_ref(), &bytes, offset, "BAT entries")?;
        }
        Ok(())
    }

    /// Writes the dynamic header (checksum updated) and makes it durable.
    pub(super) fn write_header(&mut self) -> Result<()> {
        self.header.update_checksum();
        let offset = self.footer.data_offset;
        write_all(
            self.file.as_ref(),
            &self.header.to_bytes(),
            offset,
            "the dynamic header",
        )?;
        sync(self.file.as_ref())
    }

    /// Writes `footer` at the end of the file, makes it durable, then copies it to offset 0
    /// (the copy is only read when the end one is damaged, so it goes second).
    pub(super) fn write_footers(&mut self, footer: Footer) -> Result<()> {
        let bytes = footer.to_bytes();
        write_all(
            self.file.as_ref(),
            &bytes,
            self.next_block_offset,
            "the footer",
        )?;
        sync(self.file.as_ref())?;
        write_all(self.file.as_ref(), &bytes, 0, "the footer copy")?;
        sync(self.file.as_ref())?;
        self.footer = footer;
        Ok(())
    }

    /// Writes the footer at `offset` (not made durable): where the file is to end.
    pub(super) fn write_footer_at(&self, offset: u64) -> Result<()> {
        let bytes = self.footer.to_bytes();
        write_all(self.file.as_ref(), &bytes, offset, "the footer")
    }
}

impl Drop for SparseFile {
    /// Like `BufWriter`, a dropped image flushes what it still holds in memory (BAT entries,
    /// bitmap bits), so that forgetting `flush()` does not lose data. Errors cannot be
    /// reported from here: call `flush()` to see them.
    fn drop(&mut self) {
        if !self.unflushed_blocks.is_empty()
            || !self.dirty_bitmaps.is_empty()
            || !self.freed_entries.is_empty()
        {
            let _ = self.flush();
        }
    }
}
