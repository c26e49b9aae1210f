//! The file layout that dynamic and differencing images share: a footer copy, the dynamic
//! disk header, the block allocation table, then blocks (each a sector bitmap followed by
//! its data) in any order, then the footer.
//!
//! [`SparseFile`] owns that layout: it finds blocks, allocates them, keeps sector bitmaps and
//! makes everything durable in the right order. What a clear bitmap bit means (zeros, or
//! "ask the parent") is decided by the image kinds built on it. Where the structures and
//! blocks lie, and the rules about it, are the layout model's ([`super::layout`]).
//!
//! By concern: `open.rs` (reading the header and the BAT, checking the blocks against the
//! layout), `data.rs` (block data, and runs of blocks read in one `preadv`), `bitmaps.rs`
//! (the sector bitmap cache), `allocate.rs` (allocating and freeing blocks), `flush.rs`
//! (what becomes durable in which order), `resize.rs` (changing the virtual size) and
//! `bat_growth.rs` (growing the BAT in place).

use super::layout::FileLayout;
use super::{Access, FooterSource};
use crate::bat::BlockAllocationTable;
use crate::dynamic_header::DynamicHeader;
use crate::footer::Footer;
use crate::sector_bitmap::SectorBitmap;
use crate::storage::Storage;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

mod allocate;
mod bat_growth;
mod bitmaps;
mod data;
mod flush;
mod open;
mod resize;

pub(crate) use data::DataRun;
pub(crate) use resize::COPY_CHUNK;

/// Largest block size opened: 256 MiB, the largest [`crate::create`] makes. Real images use
/// 512 KiB (Virtual PC), 2 MiB (Hyper-V, qemu, VirtualBox, the specification's default) or
/// at most a few MiB; the limit keeps a hostile header from making every sector bitmap
/// (1 bit per sector: 64 KiB at this size) and every block absurdly large.
pub(crate) const MAX_BLOCK_SIZE: u32 = 1 << 28;

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

    /// The virtual size in bytes (the footer's current size).
    pub(crate) fn size(&self) -> u64 {
        self.footer.current_size
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

    /// Where the data of the block stored from file `sector` on starts: past its sector
    /// bitmap.
    pub(crate) fn data_offset(&self, sector: u32) -> u64 {
        u64::from(sector) * 512 + self.bitmap_size
    }

    /// Bytes a block takes in the file: its sector bitmap, then its data.
    pub(crate) fn unit_size(&self) -> u64 {
        self.bitmap_size + self.block_size
    }

    /// Bytes of each block's sector bitmap.
    pub(crate) fn bitmap_bytes(&self) -> u64 {
        self.bitmap_size
    }
}

#[cfg(test)]
mod tests;
