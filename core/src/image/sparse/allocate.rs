//! Allocating blocks (appended where the footer was, or in space freed earlier) and
//! freeing them.

use super::SparseFile;
use crate::bat::UNALLOCATED;
use crate::error::{Error, Result};
use crate::image::layout::bat_sector;
use crate::image::layout::data_in_disk;
use crate::sector_bitmap::SectorBitmap;
use std::sync::Arc;

impl SparseFile {
    /// Appends a new block where the footer is (or reuses the space of a block freed
    /// earlier) and points `block` at it (in memory).
    pub(crate) fn allocate(&mut self, block: u32) -> Result<u32> {
        if let Some(offset) = self.free_units.pop() {
            // Nothing on disk points at this space (its old BAT entry was made durable as
            // unallocated before it joined `free_units`), so it is used like new space: the
            // BAT entry follows the data and bitmap at the next flush. It still holds the
            // freed block's data, and the sectors of a dynamic block that are never written
            // must read as zeros, as in appended space (a hole): zero it first (all of it
            // the block can ever read: its data up to the end of the disk).
            let sector = (offset / 512) as u32;
            let data = data_in_disk(block, self.header.block_size, self.size());
            self.zero_data(block, sector, 0..data)?;
            self.point_at_new_block(block, sector);
            return Ok(sector);
        }
        let offset = self.next_block_offset;
        let sector = bat_sector(offset).ok_or_else(|| {
            Error::Unsupported(format!(
                "the file is too large: the BAT cannot address a block at offset {offset}"
            ))
        })?;
        let end = offset + self.bitmap_size + self.block_size;
        // The moved footer goes first, so that the file ends with a valid footer at every
        // instant: a process that dies from here on leaves an unreferenced block, no worse.
        // It is not fsynced here (that would cost an fsync per block): after a power cut the
        // moved footer may be lost while data written into the block survives, and the file
        // then ends without a footer; it opens (read-only) from the copy at offset 0, and
        // `check` reports the tail as leaked space. The old footer, at the start of the new
        // block's bitmap, stays until `flush` writes that bitmap.
        self.write_footer_at(end)?;
        self.next_block_offset = end;
        self.point_at_new_block(block, sector);
        Ok(sector)
    }

    /// Points `block` at a new, empty block at file `sector` (in memory).
    pub(super) fn point_at_new_block(&mut self, block: u32, sector: u32) {
        self.bat.set(block, sector);
        // A block freed and allocated again before a flush stays in `freed_entries`: its
        // entry is written either way, and must be if it is freed once more.
        self.unflushed_blocks.insert(block);
        self.bitmaps
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(block, Arc::new(SectorBitmap::new(self.header.block_size)));
    }

    /// Unallocates `block` (in memory; [`SparseFile::flush`] writes its BAT entry). Its
    /// space is reused by later allocations once no entry on disk points at it any more.
    pub(crate) fn free_block(&mut self, block: u32) {
        let Some(sector) = self.bat.get(block) else {
            return;
        };
        self.forget_block(block);
        let offset = u64::from(sector) * 512;
        let block_end = (u64::from(block) + 1) * self.block_size;
        if block_end > self.size() && !self.unflushed_blocks.contains(&block) {
            // The last block of a disk whose size is not a whole number of blocks needs
            // only its part inside the disk in the file: its whole space may not be ours
            // to reuse. (`reclaim_tail` still cuts it off when it ends the file.)
            self.freed_entries.insert(block);
            return;
        }
        if self.unflushed_blocks.remove(&block) {
            // Its entry never reached the file: the space is free at once.
            self.free_units.push(offset);
        } else {
            self.freed_entries.insert(block);
            self.freed_units.push(offset);
        }
    }

    /// Marks `block` unallocated in memory without freeing its space: for entries past the
    /// end of the disk, which were never checked and may point anywhere.
    pub(super) fn drop_entry(&mut self, block: u32) {
        if self.bat.get(block).is_some() {
            self.forget_block(block);
            self.unflushed_blocks.remove(&block);
            self.freed_entries.insert(block);
        }
    }

    pub(super) fn forget_block(&mut self, block: u32) {
        self.bat.set(block, UNALLOCATED);
        self.bitmaps
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&block);
        self.dirty_bitmaps.remove(&block);
    }
}
