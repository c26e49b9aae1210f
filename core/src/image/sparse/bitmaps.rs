//! Sector bitmaps: the cache of those read or changed, setting and clearing bits, writing
//! them.

use super::{BlockSpan, SparseFile};
use crate::error::Result;
use crate::image::{read_exact_waiting, write_all};
use crate::sector_bitmap::SectorBitmap;
use crate::storage::Wait;
use std::ops::Range;
use std::sync::Arc;

/// Most bytes of sector bitmaps kept in memory only because they were read. Bitmaps that
/// hold unflushed bits always stay; past this, others are read again when needed, so that
/// a huge (or hostile) disk read from end to end cannot fill memory with them. 32 MiB is
/// 65536 bitmaps of 2 MiB blocks: 128 GiB of disk.
const MAX_CACHED_BITMAP_BYTES: u64 = 32 << 20;

impl SparseFile {
    /// Marks the sectors of `block` that `span` touches as present in its bitmap (in memory;
    /// [`SparseFile::flush`] writes it).
    pub(crate) fn mark_present(&mut self, block: u32, sector: u32, span: &BlockSpan) -> Result<()> {
        let loaded = self.load_bitmap(block, sector, Wait::Yes)?;
        let bitmaps = self.bitmaps.get_mut().unwrap_or_else(|e| e.into_inner());
        let bitmap = Arc::make_mut(bitmaps.entry(block).or_insert(loaded));
        let first = (span.offset_in_block / 512) as u32;
        let last = ((span.offset_in_block + span.buf_range.len() as u64 - 1) / 512) as u32;
        if bitmap.set_range(first, last - first + 1) {
            self.dirty_bitmaps.insert(block);
        }
        Ok(())
    }

    /// Clears the present bits of the sectors `sectors` (counted in the block) of allocated
    /// `block`, which starts at file `sector` (in memory; flush writes the bitmap). Returns
    /// whether the block has no present sector left.
    pub(crate) fn mark_absent(
        &mut self,
        block: u32,
        sector: u32,
        sectors: Range<u32>,
    ) -> Result<bool> {
        let loaded = self.load_bitmap(block, sector, Wait::Yes)?;
        let bitmaps = self.bitmaps.get_mut().unwrap_or_else(|e| e.into_inner());
        let bitmap = Arc::make_mut(bitmaps.entry(block).or_insert(loaded));
        if bitmap.clear_range(sectors.start, sectors.len() as u32) {
            self.dirty_bitmaps.insert(block);
        }
        Ok(bitmap.is_empty())
    }

    /// The sector bitmap of allocated `block` (which starts at file `sector`), as it should
    /// be on disk: from the cache, or read from the file and cached.
    pub(crate) fn bitmap(&self, block: u32, sector: u32) -> Result<Arc<SectorBitmap>> {
        self.bitmap_waiting(block, sector, Wait::Yes)
    }

    /// [`SparseFile::bitmap`], reading it from the file only without waiting for a device
    /// when `wait` says so.
    pub(crate) fn bitmap_waiting(
        &self,
        block: u32,
        sector: u32,
        wait: Wait,
    ) -> Result<Arc<SectorBitmap>> {
        let cached = self
            .bitmaps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&block)
            .cloned();
        match cached {
            Some(bitmap) => Ok(bitmap),
            None => self.load_bitmap(block, sector, wait),
        }
    }

    /// Reads the bitmap of `block` from the file unless it is cached, and caches it.
    pub(super) fn load_bitmap(
        &self,
        block: u32,
        sector: u32,
        wait: Wait,
    ) -> Result<Arc<SectorBitmap>> {
        if let Some(bitmap) = self
            .bitmaps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&block)
        {
            return Ok(bitmap.clone());
        }
        let mut bytes = vec![0u8; self.bitmap_size as usize];
        read_exact_waiting(
            self.file.as_ref(),
            &mut bytes,
            u64::from(sector) * 512,
            "a sector bitmap",
            wait,
        )?;
        let bitmap = Arc::new(SectorBitmap::from_bytes(bytes));
        let mut bitmaps = self.bitmaps.write().unwrap_or_else(|e| e.into_inner());
        // Past the budget, a bitmap only read is not kept (the file has it right).
        if (bitmaps.len() as u64 + 1) * self.bitmap_size <= MAX_CACHED_BITMAP_BYTES {
            bitmaps.entry(block).or_insert_with(|| bitmap.clone());
        }
        Ok(bitmap)
    }

    pub(super) fn write_bitmap(&self, block: u32) -> Result<()> {
        let sector = self
            .bat
            .get(block)
            .expect("dirty bitmaps belong to allocated blocks");
        let offset = u64::from(sector) * 512;
        let bitmaps = self.bitmaps.read().unwrap_or_else(|e| e.into_inner());
        write_all(
            self.file.as_ref(),
            bitmaps[&block].as_bytes(),
            offset,
            "a sector bitmap",
        )
    }
}
