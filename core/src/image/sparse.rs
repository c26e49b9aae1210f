//! The file layout that dynamic and differencing images share: a footer copy, the dynamic
//! disk header, the block allocation table, then blocks (each a sector bitmap followed by
//! its data) in any order, then the footer.
//!
//! [`SparseFile`] owns that layout: it finds blocks, allocates them, keeps sector bitmaps and
//! makes everything durable in the right order. What a clear bitmap bit means (zeros, or
//! "ask the parent") is decided by the image kinds built on it.

use super::layout::{block_extent, data_in_disk, BlockList, FileLayout, LocatorInTheWay, Occupant};
use super::{
    read_exact, read_exact_waiting, read_failure, sync, write_all, Access, FooterSource,
    LocatedFooter, OpenOptions,
};
use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE, UNALLOCATED};
use crate::dynamic_header::{DynamicHeader, DYNAMIC_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::footer::{Footer, FOOTER_SIZE};
use crate::sector_bitmap::{bitmap_size, SectorBitmap};
use crate::storage::{read_exact_gapped_with, Storage, Wait};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// BAT entries per 512-byte sector of the table: the unit in which the table is rewritten.
const BAT_ENTRIES_PER_SECTOR: u32 = 128;

/// Largest block size opened: 256 MiB, the largest [`crate::create`] makes. Real images use
/// 512 KiB (Virtual PC), 2 MiB (Hyper-V, qemu, VirtualBox, the specification's default) or
/// at most a few MiB; the limit keeps a hostile header from making every sector bitmap
/// (1 bit per sector: 64 KiB at this size) and every block absurdly large.
pub(crate) const MAX_BLOCK_SIZE: u32 = 1 << 28;

/// Most bytes of sector bitmaps kept in memory only because they were read. Bitmaps that
/// hold unflushed bits always stay; past this, others are read again when needed, so that
/// a huge (or hostile) disk read from end to end cannot fill memory with them. 32 MiB is
/// 65536 bitmaps of 2 MiB blocks: 128 GiB of disk.
const MAX_CACHED_BITMAP_BYTES: u64 = 32 << 20;

/// The open file of a dynamic or differencing image.
///
/// The BAT lives in memory. New blocks are appended where the footer was (or take the
/// space of a block freed earlier in this session, once the entry that pointed there is
/// unallocated on disk), and their BAT entries, like newly set bits in the bitmaps of
/// blocks that were already allocated, reach the file only in [`SparseFile::flush`], after
/// the data they vouch for is durable. Freed blocks' entries (discard, resize) and cleared
/// bits reach the file in the same flush.
#[derive(Debug)]
pub(crate) struct SparseFile {
    file: Box<dyn Storage>,
    path: PathBuf,
    footer: Footer,
    footer_source: FooterSource,
    header: DynamicHeader,
    bat: BlockAllocationTable,
    block_size: u64,
    bitmap_size: u64,
    /// Where the next block goes: the offset of the footer at the end of the file.
    next_block_offset: u64,
    access: Access,
    /// Blocks allocated since the last flush; their BAT entries are only in memory.
    unflushed_blocks: BTreeSet<u32>,
    /// Sector bitmaps read or written so far, as they should be on disk. Behind a lock so
    /// that reads (which take `&self`) can cache the bitmaps they load.
    /// Shared (`Arc`) so that a read takes one without copying it; writes, which have the
    /// file to themselves (`&mut self`), change them in place.
    bitmaps: RwLock<HashMap<u32, Arc<SectorBitmap>>>,
    /// Blocks whose bitmap in memory has bits set that the file does not have yet.
    dirty_bitmaps: BTreeSet<u32>,
    /// Blocks unallocated (by discard or resize) whose BAT entries the file still has.
    freed_entries: BTreeSet<u32>,
    /// File offsets of the units (bitmap and data) of those blocks: free once the BAT
    /// entries that pointed at them are durable, that is after the next flush.
    freed_units: Vec<u64>,
    /// File offsets of units no BAT entry on disk points at, which `allocate` reuses
    /// before it appends.
    free_units: Vec<u64>,
}

/// The part of an I/O request that falls in one block.
pub(crate) struct BlockSpan {
    pub block: u32,
    pub offset_in_block: u64,
    /// The bytes of the caller's buffer that belong to this block.
    pub buf_range: Range<usize>,
}

impl SparseFile {
    /// Returned boxed: `Image::open` recurses once per level of a parent chain (up to
    /// `MAX_CHAIN_DEPTH`), and the ~2 KiB structure moved by value through every frame of
    /// that recursion (several copies per frame in debug builds) overflowed a 2 MiB thread
    /// stack at about 43 levels. Boxed, only a pointer moves.
    pub(super) fn open(
        file: Box<dyn Storage>,
        path: &Path,
        located: LocatedFooter,
        mut access: Access,
        options: &OpenOptions,
    ) -> Result<Box<SparseFile>> {
        let header = read_header(file.as_ref(), &located)?;
        let footer = located.footer.clone();
        if let Err(e) = header.verify_checksum(footer.data_offset) {
            if !options.ignore_checksums {
                return Err(e);
            }
            access.force_read_only(format!("checksums were ignored to open it ({e})"));
        }
        validate_block_size(&header, footer.data_offset)?;
        let bat = read_bat(file.as_ref(), &header, &footer, &located)?;
        let block_size = u64::from(header.block_size);
        let bitmap_size = bitmap_size(header.block_size);
        let mut image = SparseFile {
            path: path.to_path_buf(),
            footer_source: located.source,
            next_block_offset: 0,
            block_size,
            bitmap_size,
            bat,
            header,
            footer,
            file,
            access,
            unflushed_blocks: BTreeSet::new(),
            bitmaps: RwLock::new(HashMap::new()),
            dirty_bitmaps: BTreeSet::new(),
            freed_entries: BTreeSet::new(),
            freed_units: Vec::new(),
            free_units: Vec::new(),
        };
        image.validate_blocks(located.end_offset)?;
        image.next_block_offset = image.end_of_used_space(located.end_offset);
        if let Some(reason) = image.locator_in_the_way(located.end_offset) {
            image.access.force_read_only(reason);
        }
        Ok(Box::new(image))
    }

    /// Why a differencing image may not be written because of where a parent locator's
    /// data lies ([`FileLayout::locator_in_the_way`]), in words.
    fn locator_in_the_way(&self, footer_offset: u64) -> Option<String> {
        let (locator, problem) = self.layout(footer_offset).locator_in_the_way()?;
        let (start, end) = locator.data;
        let what = format!(
            "the data of parent locator {} (bytes {start}..{end})",
            locator.index
        );
        Some(match problem {
            LocatorInTheWay::PastFooter => {
                let verb = if start >= footer_offset {
                    "lies"
                } else {
                    "runs"
                };
                format!(
                    "{what} {verb} past the footer (at {footer_offset}), where new blocks \
                     would be written over it"
                )
            }
            LocatorInTheWay::Overlaps(structure) => format!(
                "{what} overlaps {}, which writes would change",
                structure.name(&self.header)
            ),
        })
    }

    /// The layout of the file whose footer is at `footer_offset` (the blocks aside).
    fn layout(&self, footer_offset: u64) -> FileLayout {
        let differencing = self.footer.disk_type() == Some(crate::DiskType::Differencing);
        FileLayout::new(
            &self.header,
            self.footer.data_offset,
            self.size(),
            footer_offset,
            differencing,
        )
    }

    /// The hard disk footer.
    pub(crate) fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The dynamic disk header.
    pub(crate) fn header(&self) -> &DynamicHeader {
        &self.header
    }

    /// The block allocation table as it is in memory (including unflushed allocations).
    pub(crate) fn bat(&self) -> &BlockAllocationTable {
        &self.bat
    }

    /// Bytes of data per block.
    pub(crate) fn block_size(&self) -> u32 {
        self.header.block_size
    }

    /// Where the footer was found.
    pub(crate) fn footer_source(&self) -> FooterSource {
        self.footer_source
    }

    /// The path the image was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded path of each parent locator entry, for the kinds that hold one (`W2ru`,
    /// `W2ku`, `Wi2r`, `Wi2k`, `MacX`) and whose data lies in the file.
    pub(crate) fn locator_texts(&self) -> [Option<String>; 8] {
        std::array::from_fn(|i| {
            super::parent::locator_text(&self.header.parent_locators[i], self.file())
        })
    }

    /// The file, for reading parent locators.
    pub(crate) fn file(&self) -> &dyn Storage {
        self.file.as_ref()
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// Every allocated block's extent ([`block_extent`]: its sector bitmap, and its data up
    /// to the end of the disk in whole sectors) must lie in the file, in front of the footer.
    /// The blocks of the disk must not overlap each other nor the footer copy, the dynamic
    /// header, the BAT or (in a differencing image, which reads them to find its parent) a
    /// parent locator's data in the file ([`FileLayout::overlaps`]): a write to one would
    /// change another block, or destroy the image's structures. Writes never leave these
    /// extents ([`SparseFile::write_data`]). An entry past the end of the disk is never
    /// read nor written: only its bitmap must lie in front of the footer.
    fn validate_blocks(&self, footer_offset: u64) -> Result<()> {
        let layout = self.layout(footer_offset);
        let geometry = layout.geometry();
        let in_disk = |&(block, sector): &(u32, u32)| geometry.extent(block, sector).in_disk;
        let mut blocks = BlockList::with_capacity(self.bat.allocated().filter(in_disk).count());
        for (block, sector) in self.bat.allocated() {
            let extent = geometry.extent(block, sector);
            if geometry.out_of_range(&extent).is_some() {
                return Err(Error::BatEntryOutOfRange {
                    index: block,
                    sector,
                    offset: extent.start,
                    end: extent.data_end,
                    limit: footer_offset,
                });
            }
            if extent.in_disk {
                blocks.push(block, sector);
            }
        }
        blocks.sort();
        // The first overlap that involves a block (structures that overlap each other are
        // the locator's business: `locator_in_the_way`).
        let overlap = layout.overlaps(&blocks).find_map(|(region, before)| {
            match (region.occupant, before.occupant) {
                (Occupant::Block(block), _) => Some((block, region.start, before)),
                (_, Occupant::Block(block)) => Some((block, before.start, region)),
                _ => None,
            }
        });
        let Some((block, start, other)) = overlap else {
            return Ok(());
        };
        let sector = (start / 512) as u32;
        let extent = geometry.extent(block, sector);
        let other = match other.occupant {
            Occupant::Block(other) => format!("block {other}"),
            Occupant::Structure(structure) => format!(
                "{} (bytes {}..{})",
                structure.name(&self.header),
                other.start,
                other.end
            ),
        };
        Err(Error::BatEntryOverlap {
            index: block,
            sector,
            offset: extent.start,
            end: extent.data_end,
            other,
        })
    }

    /// The first sector-aligned offset past every structure and block (and the footer):
    /// where new blocks go ([`FileLayout::reserved_end`]).
    fn end_of_used_space(&self, footer_offset: u64) -> u64 {
        self.used_end(footer_offset)
            .max(footer_offset)
            .next_multiple_of(512)
    }

    /// The end of the last structure or block of a file whose footer is at
    /// `footer_offset` (not rounded).
    fn used_end(&self, footer_offset: u64) -> u64 {
        let sectors = self.bat.allocated().map(|(_, sector)| sector);
        self.layout(footer_offset).reserved_end(sectors)
    }

    /// Splits `length` bytes at virtual `offset` into per-block spans. The iterator does not
    /// borrow the file, so that a write can change it span by span.
    pub(crate) fn spans(&self, offset: u64, length: usize) -> impl Iterator<Item = BlockSpan> {
        let block_size = self.block_size;
        let mut done = 0usize;
        std::iter::from_fn(move || {
            if done == length {
                return None;
            }
            let position = offset + done as u64;
            let offset_in_block = position % block_size;
            let take = (block_size - offset_in_block).min((length - done) as u64) as usize;
            let span = BlockSpan {
                block: (position / block_size) as u32,
                offset_in_block,
                buf_range: done..done + take,
            };
            done += take;
            Some(span)
        })
    }

    pub(crate) fn data_offset(&self, sector: u32) -> u64 {
        u64::from(sector) * 512 + self.bitmap_size
    }

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
        let sector = u32::try_from(offset / 512)
            .ok()
            .filter(|&s| s != UNALLOCATED)
            .ok_or_else(|| {
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
        write_all(
            self.file.as_ref(),
            &self.footer.to_bytes(),
            end,
            "the footer",
        )?;
        self.next_block_offset = end;
        self.point_at_new_block(block, sector);
        Ok(sector)
    }

    /// Points `block` at a new, empty block at file `sector` (in memory).
    fn point_at_new_block(&mut self, block: u32, sector: u32) {
        self.bat.set(block, sector);
        // A block freed and allocated again before a flush stays in `freed_entries`: its
        // entry is written either way, and must be if it is freed once more.
        self.unflushed_blocks.insert(block);
        self.bitmaps
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(block, Arc::new(SectorBitmap::new(self.header.block_size)));
    }

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
    fn load_bitmap(&self, block: u32, sector: u32, wait: Wait) -> Result<Arc<SectorBitmap>> {
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

    /// Reads block data: `buf.len()` bytes at `offset_in_block` of the block at `sector`.
    pub(crate) fn read_data(
        &self,
        sector: u32,
        offset_in_block: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let at = self.data_offset(sector) + offset_in_block;
        read_exact(self.file.as_ref(), buf, at, "block data")
    }

    /// Reads block data into `parts` in turn, from file offset `at`, skipping one sector
    /// bitmap's worth of the file after each part (see [`DataRun`]).
    fn read_data_run(&self, at: u64, parts: &mut [&mut [u8]], wait: Wait) -> Result<()> {
        read_exact_gapped_with(self.file.as_ref(), parts, self.bitmap_size, at, wait).map_err(|e| {
            // What the run spans in the file, bitmaps between its parts included.
            let data = parts.iter().map(|part| part.len() as u64).sum::<u64>();
            let gaps = (parts.len() as u64).saturating_sub(1) * self.bitmap_size;
            read_failure(self.file.as_ref(), e, at, data + gaps, "block data")
        })
    }

    /// Writes block data: `data` at `offset_in_block` of allocated `block`, which starts at
    /// file `sector`.
    pub(crate) fn write_data(
        &self,
        block: u32,
        sector: u32,
        offset_in_block: u64,
        data: &[u8],
    ) -> Result<()> {
        self.write_data_in_disk(block, sector, offset_in_block, data, self.size())
    }

    /// [`SparseFile::write_data`] into a disk of `virtual_size` bytes: a resize that grows
    /// the disk clears the part of the last block that appears before the footer records
    /// the new size (having checked that those bytes are the block's own).
    fn write_data_in_disk(
        &self,
        block: u32,
        sector: u32,
        offset_in_block: u64,
        data: &[u8],
        virtual_size: u64,
    ) -> Result<()> {
        let at = self.data_offset(sector).saturating_add(offset_in_block);
        let end = at.saturating_add(data.len() as u64);
        // Every block of the disk has its extent to itself, in front of the footer: opening
        // checked it for the blocks already there, a block allocated since is a whole new
        // unit behind which the footer moved, and a resize that makes an extent longer
        // checks the bytes it adds. Outside it lie the footer, a parent locator's path or
        // another block, so a write there is refused, not done. No caller asks for one:
        // this is the last line of defence, should a bug compute a wrong offset.
        let extent = block_extent(sector, block, self.header.block_size, virtual_size);
        if end > extent.end {
            return Err(Error::BatEntryOutOfRange {
                index: block,
                sector,
                offset: at,
                end,
                limit: extent.end,
            });
        }
        write_all(self.file.as_ref(), data, at, "block data")
    }

    fn write_bitmap(&self, block: u32) -> Result<()> {
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

    /// Writes the BAT entries of blocks allocated or freed since the last flush, one write
    /// per 512-byte sector of the table that changed.
    fn write_unflushed_bat_entries(&self) -> Result<()> {
        let blocks: Vec<u32> = self
            .unflushed_blocks
            .union(&self.freed_entries)
            .copied()
            .collect();
        self.write_bat_entries(&blocks)
    }

    /// Writes the BAT entries of `blocks` (sorted), one write per 512-byte sector of the
    /// table that holds any of them.
    fn write_bat_entries(&self, blocks: &[u32]) -> Result<()> {
        for group in
            blocks.chunk_by(|a, b| a / BAT_ENTRIES_PER_SECTOR == b / BAT_ENTRIES_PER_SECTOR)
        {
            let (first, last) = (group[0] as usize, group[group.len() - 1] as usize);
            let bytes = self.bat.entry_bytes(first..last + 1);
            let offset = self.header.table_offset + first as u64 * BAT_ENTRY_SIZE;
            write_all(self.file.as_ref(), &bytes, offset, "BAT entries")?;
        }
        Ok(())
    }
}

impl SparseFile {
    /// The virtual size in bytes (the footer's current size).
    pub(crate) fn size(&self) -> u64 {
        self.footer.current_size
    }

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

/// Unit of the copies that discard, resize and compact make: large sequential I/O.
pub(crate) const COPY_CHUNK: u64 = 4 << 20;

/// Freeing blocks and changing the virtual size, for `discard` and `ops::resize`.
impl SparseFile {
    /// Bytes a block takes in the file: its sector bitmap, then its data.
    pub(crate) fn unit_size(&self) -> u64 {
        self.bitmap_size + self.block_size
    }

    /// Bytes of each block's sector bitmap.
    pub(crate) fn bitmap_bytes(&self) -> u64 {
        self.bitmap_size
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
    fn drop_entry(&mut self, block: u32) {
        if self.bat.get(block).is_some() {
            self.forget_block(block);
            self.unflushed_blocks.remove(&block);
            self.freed_entries.insert(block);
        }
    }

    fn forget_block(&mut self, block: u32) {
        self.bat.set(block, UNALLOCATED);
        self.bitmaps
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&block);
        self.dirty_bitmaps.remove(&block);
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
        let mut bytes = bitmap.as_bytes().to_vec();
        for s in sectors {
            bytes[(s / 8) as usize] &= !(0x80u8 >> (s % 8));
        }
        let empty = bytes.iter().all(|&b| b == 0);
        if bytes != bitmap.as_bytes() {
            *bitmap = SectorBitmap::from_bytes(bytes);
            self.dirty_bitmaps.insert(block);
        }
        Ok(empty)
    }

    /// Writes zeros over `range` of the data of allocated `block`, at file `sector`.
    pub(crate) fn zero_data(&self, block: u32, sector: u32, range: Range<u64>) -> Result<()> {
        self.zero_data_in_disk(block, sector, range, self.size())
    }

    /// [`SparseFile::zero_data`] into a disk of `virtual_size` bytes (see
    /// [`SparseFile::write_data_in_disk`]).
    fn zero_data_in_disk(
        &self,
        block: u32,
        sector: u32,
        range: Range<u64>,
        virtual_size: u64,
    ) -> Result<()> {
        let zeros = vec![0u8; COPY_CHUNK.min(range.end - range.start) as usize];
        let mut at = range.start;
        while at < range.end {
            let n = COPY_CHUNK.min(range.end - at) as usize;
            self.write_data_in_disk(block, sector, at, &zeros[..n], virtual_size)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Shrinks the file when its end holds only freed space: the footer is written where
    /// the used space ends and made durable, then the file is cut after it, so that the
    /// file ends with a valid footer at every instant. Called right after a flush (the
    /// freed blocks' entries are durable). A storage that cannot be cut keeps the space,
    /// for later allocations.
    pub(crate) fn reclaim_tail(&mut self) -> Result<()> {
        let end = self.used_end(self.next_block_offset).next_multiple_of(512);
        if end >= self.next_block_offset {
            return Ok(());
        }
        write_all(
            self.file.as_ref(),
            &self.footer.to_bytes(),
            end,
            "the footer",
        )?;
        sync(self.file.as_ref())?;
        match self.file.set_len(end + FOOTER_SIZE as u64) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(()),
            Err(e) => return Err(Error::io("cutting the file after its footer", e)),
        }
        sync(self.file.as_ref())?;
        self.next_block_offset = end;
        self.free_units.retain(|&offset| offset < end);
        Ok(())
    }

    /// Changes the virtual size to `new_size` (validated by the caller): the BAT grows when
    /// it has too few entries, blocks past the new end are freed, and the part of the disk
    /// that appears (or disappears) inside the last block is cleared (zeros in a dynamic
    /// image, absent sectors in a differencing one). Then the footer (current size and
    /// geometry) is written at the end, made durable, and copied to offset 0.
    pub(crate) fn set_size(&mut self, new_size: u64) -> Result<()> {
        self.access.check_writable()?;
        self.flush()?;
        let old_size = self.size();
        let new_blocks = new_size.div_ceil(self.block_size);
        let old_blocks = old_size.div_ceil(self.block_size);
        // Entries past the end of the disk were never checked nor read: drop them all.
        for block in old_blocks.min(new_blocks)..self.bat.len() as u64 {
            let block = block as u32;
            if u64::from(block) < old_blocks {
                self.free_block(block);
            } else {
                self.drop_entry(block);
            }
        }
        // The part of the last block between the two sizes must read as nothing there.
        let (low, high) = (old_size.min(new_size), old_size.max(new_size));
        if !low.is_multiple_of(self.block_size) {
            let block = (low / self.block_size) as u32;
            let block_start = u64::from(block) * self.block_size;
            let end = self.block_size.min(high - block_start);
            self.clear_in_block(block, low - block_start..end, new_size > old_size)?;
        }
        self.flush()?;
        if new_blocks > self.bat.len() as u64 {
            self.grow_bat(new_blocks as u32)?;
        }
        let shrinking = new_size < old_size;
        let mut footer = self.footer.clone();
        // The original size too: libvhdi takes the disk's size from it, not from the
        // current size (the specification calls it informational).
        footer.original_size = new_size;
        footer.current_size = new_size;
        footer.geometry = crate::Geometry::for_size(new_size);
        footer.update_checksum();
        self.write_footers(footer)?;
        if shrinking {
            self.pack_blocks()?;
        }
        self.reclaim_tail()
    }

    /// Moves the blocks at the end of the file into the free space below them, last block
    /// first, so that `reclaim_tail` can cut the file after the blocks that remain. Each
    /// block is copied into space nothing points at and made durable before its BAT entry
    /// is pointed at the copy (and made durable): a crash leaves the old copy in use, or
    /// the new one with the old space unreferenced. Called right after a flush.
    fn pack_blocks(&mut self) -> Result<()> {
        let unit = self.unit_size();
        loop {
            let Some(lowest_free) = self.free_units.iter().copied().min() else {
                return Ok(());
            };
            let last = self
                .bat
                .allocated()
                .max_by_key(|&(_, sector)| sector)
                .filter(|&(_, sector)| u64::from(sector) * 512 > lowest_free);
            let Some((block, sector)) = last else {
                return Ok(());
            };
            let from = u64::from(sector) * 512;
            // The disk's last block may be only partly in the file.
            self.copy_within(from, lowest_free, unit.min(self.next_block_offset - from))?;
            sync(self.file.as_ref())?;
            self.bat.set(block, (lowest_free / 512) as u32);
            self.write_bat_entries(&[block])?;
            sync(self.file.as_ref())?;
            self.free_units.retain(|&offset| offset != lowest_free);
            if (u64::from(block) + 1) * self.block_size <= self.size() {
                self.free_units.push(from);
            }
        }
    }

    /// Makes `range` of `block` (if allocated) read as nothing stored: absent sectors in a
    /// differencing image, zeros in a dynamic one. When `appearing`, the range lies past
    /// the old end of the disk, where the block's space was never checked: it must then
    /// be in the file, clear of everything else.
    fn clear_in_block(&mut self, block: u32, range: Range<u64>, appearing: bool) -> Result<()> {
        let Some(sector) = self.bat.get(block) else {
            return Ok(());
        };
        // The disk as large as the range needs (the new size, seen from this block).
        let block_start = u64::from(block) * self.block_size;
        let size = self.size().max(block_start + range.end);
        if appearing {
            // The bytes the block's extent gains (to its whole last sector).
            let start = self.data_offset(sector) + range.start;
            let end = block_extent(sector, block, self.header.block_size, size).end;
            if !self.space_is_free(start..end, Some(block)) {
                return Err(Error::Unsupported(format!(
                    "block {block} of {} lies only partly in the file (bytes {start}..{end} of its \
                     data belong to something else or to no file): compact the image first",
                    self.path.display()
                )));
            }
        }
        if self.footer.disk_type() == Some(crate::DiskType::Differencing) {
            let sectors = range.start.div_ceil(512) as u32..range.end.div_ceil(512) as u32;
            self.mark_absent(block, sector, sectors)?;
            Ok(())
        } else {
            self.zero_data_in_disk(block, sector, range, size)
        }
    }

    /// Whether file bytes `range` lie in front of the footer and clear of everything else
    /// but block `except` ([`FileLayout::is_free`]).
    fn space_is_free(&self, range: Range<u64>, except: Option<u32>) -> bool {
        self.layout(self.next_block_offset)
            .is_free(range, self.bat.allocated(), except)
    }

    /// Writes `footer` at the end of the file, makes it durable, then copies it to offset 0
    /// (the copy is only read when the end one is damaged, so it goes second).
    fn write_footers(&mut self, footer: Footer) -> Result<()> {
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

    /// Grows the BAT to `entries` entries. When the larger table does not fit in front of
    /// what follows it, the blocks and parent locator data in the way are first copied to
    /// the end of the file (behind a moved footer) and made durable, then their BAT entries
    /// and locator offsets are pointed at the copies and made durable; only then is the
    /// freed space overwritten with the new (unallocated) entries and, last, the header
    /// records the new entry count. A crash at any step leaves a valid image of the old
    /// size (at worst with unreferenced copies, which `check` reports as leaked).
    fn grow_bat(&mut self, entries: u32) -> Result<()> {
        let table = self.header.table_offset;
        let old_end = table + self.bat.len() as u64 * BAT_ENTRY_SIZE;
        let new_end = table + (u64::from(entries) * BAT_ENTRY_SIZE).next_multiple_of(512);
        let region = old_end..new_end;
        let header = self.footer.data_offset;
        if header < region.end && region.start < header + DYNAMIC_HEADER_SIZE as u64 {
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
            let bytes = self.footer.to_bytes();
            write_all(self.file.as_ref(), &bytes, destination, "the footer")?;
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

    /// Writes the dynamic header (checksum updated) and makes it durable.
    fn write_header(&mut self) -> Result<()> {
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

    /// Copies `length` bytes of the file from `from` to `to` (regions apart), in large
    /// pieces.
    fn copy_within(&self, from: u64, to: u64, length: u64) -> Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK.min(length) as usize];
        let mut done = 0;
        while done < length {
            let n = COPY_CHUNK.min(length - done) as usize;
            read_exact(
                self.file.as_ref(),
                &mut buf[..n],
                from + done,
                "data to move",
            )?;
            write_all(self.file.as_ref(), &buf[..n], to + done, "moved data")?;
            done += n as u64;
        }
        Ok(())
    }
}

/// Reads the dynamic header at the footer's data offset. It must lie between the footer
/// copy and the end footer; when the end footer is missing (the file was cut and the copy
/// is in use), a header that runs past the end of the file was truncated.
fn read_header(file: &dyn Storage, located: &LocatedFooter) -> Result<DynamicHeader> {
    let offset = located.footer.data_offset;
    let end = offset.saturating_add(DYNAMIC_HEADER_SIZE as u64);
    let file_size = located.file_size;
    let cut = located.source == FooterSource::Copy && offset < file_size;
    if cut && end > file_size {
        return Err(Error::Truncated {
            what: "the dynamic header".into(),
            offset,
            end,
            file_size,
        });
    }
    let limit = if cut { file_size } else { located.end_offset };
    if offset < FOOTER_SIZE as u64 || end > limit {
        return Err(Error::InvalidField {
            structure: "footer",
            field: "data offset",
            offset: 16,
            found: offset,
            reason: format!(
                "the dynamic header must lie between the footer copy and the end footer of the {file_size}-byte file"
            ),
        });
    }
    let mut bytes = [0u8; DYNAMIC_HEADER_SIZE];
    read_exact(file, &mut bytes, offset, "the dynamic header")?;
    DynamicHeader::parse(&bytes, offset)
}

fn validate_block_size(header: &DynamicHeader, header_offset: u64) -> Result<()> {
    let size = header.block_size;
    if !(512..=MAX_BLOCK_SIZE).contains(&size) || !size.is_power_of_two() {
        return Err(Error::InvalidField {
            structure: "dynamic header",
            field: "block size",
            offset: header_offset + 32,
            found: u64::from(size),
            reason: format!(
                "must be a power of two of at least 512 bytes and at most {} MiB",
                MAX_BLOCK_SIZE >> 20
            ),
        });
    }
    Ok(())
}

/// Reads the BAT after checking that it covers the disk and fits in the file, so that a
/// hostile header cannot make us allocate more memory than the file holds, and that it
/// lies between the footer copy and the end footer, clear of the dynamic header (so that
/// writing an entry cannot destroy either).
fn read_bat(
    file: &dyn Storage,
    header: &DynamicHeader,
    footer: &Footer,
    located: &LocatedFooter,
) -> Result<BlockAllocationTable> {
    let file_size = located.file_size;
    let entries = u64::from(header.max_table_entries);
    let needed = footer.current_size.div_ceil(u64::from(header.block_size));
    if entries < needed {
        return Err(Error::InvalidField {
            structure: "dynamic header",
            field: "max table entries",
            offset: footer.data_offset + 28,
            found: entries,
            reason: format!(
                "{needed} blocks of {} bytes are needed for a {}-byte disk",
                header.block_size, footer.current_size
            ),
        });
    }
    let bat_bytes = entries * BAT_ENTRY_SIZE;
    let start = header.table_offset;
    let end = start.saturating_add(bat_bytes);
    if end > file_size {
        return Err(Error::Truncated {
            what: format!("the block allocation table ({entries} entries)"),
            offset: start,
            end,
            file_size,
        });
    }
    let header_start = footer.data_offset;
    let header_end = header_start + DYNAMIC_HEADER_SIZE as u64;
    // The end footer, or the end of a file cut before it (read from the footer copy).
    let limit = located.end_offset;
    if start < FOOTER_SIZE as u64 || end > limit || (start < header_end && header_start < end) {
        return Err(Error::InvalidField {
            structure: "dynamic header",
            field: "table offset",
            offset: header_start + 16,
            found: start,
            reason: format!(
                "the {entries}-entry table (bytes {start}..{end}) must lie between the footer \
                 copy and the end footer (at {limit}), clear of the dynamic header (bytes \
                 {header_start}..{header_end})"
            ),
        });
    }
    BlockAllocationTable::read_with(entries as usize, |bytes, position| {
        read_exact(file, bytes, start + position, "the block allocation table")
    })
}

/// Most parts of one [`DataRun`]: as many as one read gathers (one `preadv` of the parts
/// and the bitmaps between them).
const MAX_RUN_PARTS: usize = crate::storage::PARTS_PER_READ;

/// Parts of a read whose data lie one after another in the file with exactly a sector
/// bitmap's worth of bytes between each two (the data of a block, and of the block stored
/// right after it), gathered to be read at once ([`Storage::read_exact_gapped_at`]: one
/// `preadv`) rather than one block at a time.
pub(crate) struct DataRun<'a> {
    /// File offsets where the first part starts and where the last one ends.
    start: u64,
    end: u64,
    parts: [&'a mut [u8]; MAX_RUN_PARTS],
    count: usize,
    /// Whether its reads may wait for the device.
    wait: Wait,
}

impl<'a> DataRun<'a> {
    pub(crate) fn new(wait: Wait) -> DataRun<'a> {
        DataRun {
            start: 0,
            end: 0,
            parts: Default::default(),
            count: 0,
            wait,
        }
    }

    /// Adds `dest`, to be filled from `offset_in_block` of the data of the block at file
    /// `sector`. The parts gathered so far are read first unless `dest` continues them:
    /// its data starts one bitmap after the end of the last part's.
    pub(crate) fn push(
        &mut self,
        sparse: &SparseFile,
        sector: u32,
        offset_in_block: u64,
        dest: &'a mut [u8],
    ) -> Result<()> {
        let at = sparse.data_offset(sector) + offset_in_block;
        let continues =
            self.count > 0 && self.count < MAX_RUN_PARTS && at == self.end + sparse.bitmap_size;
        if !continues {
            self.finish(sparse)?;
            self.start = at;
        }
        self.end = at + dest.len() as u64;
        self.parts[self.count] = dest;
        self.count += 1;
        Ok(())
    }

    /// Reads the parts gathered so far: one part (most small reads) with a plain `pread`.
    pub(crate) fn finish(&mut self, sparse: &SparseFile) -> Result<()> {
        match self.count {
            0 => return Ok(()),
            1 => read_exact_waiting(
                sparse.file.as_ref(),
                self.parts[0],
                self.start,
                "block data",
                self.wait,
            )?,
            count => sparse.read_data_run(self.start, &mut self.parts[..count], self.wait)?,
        }
        self.count = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, CreateOptions, DiskType, Image, VirtualDisk};

    /// The write path's own bound: a write that would leave the block's extent (here, into
    /// the bytes past the last sector of the disk, where a crafted image could keep its
    /// footer) is refused and writes nothing.
    #[test]
    fn writes_outside_a_block_extent_are_refused() {
        let dir = std::env::temp_dir().join(format!("vhd-sparse-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.vhd");
        let mut options = CreateOptions::new(DiskType::Dynamic, 4096 + 1024);
        options.block_size = 4096;
        let mut image = create(&path, &options).unwrap();
        image.write_at(&[7; 512], 4096).unwrap();
        image.flush().unwrap();
        let Image::Dynamic(dynamic) = &image else {
            unreachable!()
        };
        let sparse = dynamic.sparse();
        let sector = sparse.bat().get(1).unwrap();
        let before = std::fs::read(&path).unwrap();
        // Block 1 holds the disk's last 1024 bytes: two sectors.
        sparse.write_data(1, sector, 512, &[1; 512]).unwrap();
        let error = sparse.write_data(1, sector, 513, &[1; 512]).unwrap_err();
        assert!(
            matches!(error, Error::BatEntryOutOfRange { index: 1, .. }),
            "{error:?}"
        );
        assert!(sparse.zero_data(1, sector, 0..4096).is_err());
        assert!(sparse.write_data(1, sector, u64::MAX - 2, &[1; 4]).is_err());
        let after = std::fs::read(&path).unwrap();
        let data = sparse.data_offset(sector) as usize;
        assert_eq!(after[data + 512..data + 1024], [1; 512]);
        assert_eq!(after[..data + 512], before[..data + 512]);
        assert_eq!(after[data + 1024..], before[data + 1024..]);
        drop(image);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Parent locator data that starts in front of the footer and runs past it lies where
    /// new blocks go. Such an image was writable (only data wholly past the footer made it
    /// read-only): a write put a block over the locator's data, and the next open refused
    /// the image as a block overlapping it. Now, data a reader reads (at most 64 KiB) makes
    /// the image read-only wherever it runs past the footer, and longer data, which names
    /// nothing, is not protected: blocks may go over it, and the image still opens.
    #[test]
    fn locator_data_running_past_the_footer() {
        let dir = std::env::temp_dir().join(format!("vhd-sparse-locator-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("base.vhd");
        // 32 blocks: written whole, they move the footer past the end of the longer data.
        const SIZE: usize = 128 << 10;
        let mut options = CreateOptions::new(DiskType::Dynamic, SIZE as u64);
        options.block_size = 4096;
        drop(create(&base, &options).unwrap());
        let read_only = crate::OpenOptions {
            read_only: true,
            ..crate::OpenOptions::default()
        };
        // Data space 0 (nothing reserved); then a length past what a reader reads.
        for (space, length) in [(0u32, 1024u32), (128 << 10, 128 << 10)] {
            let child = dir.join("child.vhd");
            let _ = std::fs::remove_file(&child);
            drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
            let mut bytes = std::fs::read(&child).unwrap();
            let footer_offset = bytes.len() as u64 - 512;
            let header_bytes: [u8; 1024] = bytes[512..1536].try_into().unwrap();
            let mut header = DynamicHeader::parse(&header_bytes, 512).unwrap();
            header.parent_locators[7] = crate::ParentLocator {
                platform_code: crate::parent_locator::platform::W2KU,
                platform_data_space: space,
                platform_data_length: length,
                reserved: 0,
                platform_data_offset: footer_offset - 512,
            };
            header.update_checksum();
            bytes[512..1536].copy_from_slice(&header.to_bytes());
            std::fs::write(&child, &bytes).unwrap();

            let mut image = Image::open(&child, &crate::OpenOptions::default()).unwrap();
            let reason = image.read_only_reason().map(str::to_string);
            let written = image.write_at(&[0xAB; SIZE], 0);
            drop(image);
            let reason_expected = length <= crate::parent_locator::MAX_LOCATOR_BYTES;
            if reason_expected {
                let reason = reason.unwrap_or_default();
                assert!(
                    reason.contains("parent locator 7") && reason.contains("runs past the footer"),
                    "{reason:?}"
                );
                assert!(
                    matches!(written, Err(Error::ReadOnly { .. })),
                    "{written:?}"
                );
                assert!(std::fs::read(&child).unwrap() == bytes, "the file changed");
            } else {
                assert_eq!(reason, None);
                written.unwrap();
            }
            let image = Image::open(&child, &read_only).unwrap();
            let mut read = vec![0u8; SIZE];
            image.read_at(&mut read, 0).unwrap();
            let expected = if reason_expected { 0 } else { 0xAB };
            assert!(read.iter().all(|&b| b == expected));
            let report = crate::check(&child, &crate::CheckOptions::default()).unwrap();
            assert_eq!(report.count_of(crate::FindingKind::Overlap), 0, "{report}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
