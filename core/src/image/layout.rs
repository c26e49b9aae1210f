//! Where everything lies in the file of a dynamic or differencing image: the one model of
//! the layout that opening, allocation, resize, compact, `check` and `repair` all ask.
//!
//! The file holds a footer copy at offset 0, the dynamic header, the block allocation table
//! (BAT), parent locator data, blocks (each a sector bitmap followed by its data) in any
//! order, and the footer at the end. [`FileLayout`] is built from the footer, the dynamic
//! header and the offset of the end footer; the blocks, which a hostile BAT may count in
//! millions, are not held by it: the caller gives them ([`BlockList`], 8 bytes a block, or
//! an iterator over a BAT it already holds). It answers "where does this block lie",
//! "what overlaps what", "is this range free" and "where does used space end", and knows
//! nothing of findings or reports: callers turn its facts into errors (opening) or
//! findings (`check`).
//!
//! Two stretches are told apart for every structure ([`Stretch`]): the bytes a reader
//! reads (`Exact`: what must not be shared) and the space a writer gave it (`Space`: the BAT
//! to a whole sector, a locator to its data space, a block to a whole block), which is
//! what is used when looking for unused space.

use crate::bat::BAT_ENTRY_SIZE;
use crate::dynamic_header::{DynamicHeader, DYNAMIC_HEADER_SIZE};
use crate::footer::FOOTER_SIZE;
use crate::parent_locator::{ParentLocator, MAX_LOCATOR_BYTES};
use crate::sector_bitmap::bitmap_size;
use std::ops::Range;

/// The bytes of the file that allocated `block`, stored from file `sector` on, is read from
/// and written to, in a disk of `virtual_size` bytes: its sector bitmap, then its data up to
/// the end of the disk in whole sectors (a write to a differencing image is widened to whole
/// sectors, so the last sector of the disk counts whole even when the disk ends inside
/// it); for a block past the end of the disk, its bitmap only.
///
/// The one rule for where a block lies: opening checks that every extent lies in front of
/// the footer, clear of the other structures and of every other block
/// ([`FileLayout::overlaps`]), [`crate::check`] reports the same, and every write into a
/// block stays inside its extent.
pub(crate) fn block_extent(
    sector: u32,
    block: u32,
    block_size: u32,
    virtual_size: u64,
) -> Range<u64> {
    let start = u64::from(sector) * 512;
    let data = data_in_disk(block, block_size, virtual_size);
    start..start + bitmap_size(block_size) + data
}

/// Bytes of `block`'s data inside a disk of `virtual_size` bytes, rounded up to whole
/// sectors (at most the block size, a multiple of 512: no overflow).
pub(crate) fn data_in_disk(block: u32, block_size: u32, virtual_size: u64) -> u64 {
    let block_size = u64::from(block_size);
    let block_start = u64::from(block) * block_size;
    block_size
        .min(virtual_size.saturating_sub(block_start))
        .next_multiple_of(512)
}

/// The bytes of the file that hold a parent locator's data (for the path kinds, the path to
/// the parent, which a differencing image reads when it is opened).
pub(crate) fn locator_data(locator: &ParentLocator) -> Range<u64> {
    let start = locator.platform_data_offset;
    start..start.saturating_add(u64::from(locator.platform_data_length))
}

/// Bytes reserved for a parent locator's data. The specification counts the space in
/// sectors, Windows in bytes: a value smaller than the data length can only be sectors.
pub(crate) fn locator_space(locator: &ParentLocator) -> u64 {
    let space = u64::from(locator.platform_data_space);
    let length = u64::from(locator.platform_data_length);
    if space < length {
        space * 512
    } else {
        space.max(length)
    }
}

/// The bytes of the dynamic header at `offset` (the footer's data offset).
pub(crate) fn header_extent(offset: u64) -> Range<u64> {
    offset..offset.saturating_add(DYNAMIC_HEADER_SIZE as u64)
}

/// Whether `range` lies between the footer copy and the footer at `footer_offset`: where
/// the dynamic header, the BAT and parent locator data must be.
pub(crate) fn between_footers(range: &Range<u64>, footer_offset: u64) -> bool {
    range.start >= FOOTER_SIZE as u64 && range.end <= footer_offset
}

/// The bytes of the BAT `header` describes: its entries, without the padding to a whole
/// sector that writers add.
pub(crate) fn bat_extent(header: &DynamicHeader) -> Range<u64> {
    let start = header.table_offset;
    start..start.saturating_add(u64::from(header.max_table_entries) * BAT_ENTRY_SIZE)
}

/// Where the BAT entry of `block` lies in the file.
pub(crate) fn bat_entry_offset(header: &DynamicHeader, block: u32) -> u64 {
    header.table_offset + u64::from(block) * BAT_ENTRY_SIZE
}

/// The BAT entry that records a block stored at file `offset` (a multiple of 512): its
/// sector, if a BAT entry can hold it (32 bits, and not the unallocated marker).
pub(crate) fn bat_sector(offset: u64) -> Option<u32> {
    u32::try_from(offset / 512)
        .ok()
        .filter(|&sector| sector != crate::bat::UNALLOCATED)
}

/// Whether a reader reads a parent locator's data: not when it is longer than any path
/// ([`MAX_LOCATOR_BYTES`]; nothing is then allocated for it). Such data names no parent,
/// so it is no structure to protect, and compact drops it.
pub(crate) fn locator_is_read(locator: &ParentLocator) -> bool {
    locator.platform_data_length <= MAX_LOCATOR_BYTES
}

/// A structure of the file other than the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Structure {
    FooterCopy,
    Header,
    Bat,
    /// The data of the parent locator of this index.
    Locator(usize),
}

/// What occupies a stretch of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occupant {
    Structure(Structure),
    /// The block of this BAT index.
    Block(u32),
}

/// A stretch of the file and what occupies it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub start: u64,
    pub end: u64,
    pub occupant: Occupant,
}

impl Region {
    fn overlaps(&self, range: &Range<u64>) -> bool {
        self.start < range.end && range.start < self.end
    }
}

/// Which stretch of each structure [`FileLayout::regions`] gives (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stretch {
    Exact,
    Space,
}

/// Why a block is not (wholly) in front of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutOfRange {
    /// Not even its sector bitmap is.
    Bitmap,
    /// Its bitmap is, its data inside the disk is not (all).
    Data,
}

/// Where one block lies in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockExtent {
    /// Where its sector bitmap starts: the BAT entry's sector.
    pub start: u64,
    /// The block holds part of the disk (it does not lie past the disk's end).
    pub in_disk: bool,
    pub bitmap_end: u64,
    /// The end of what a reader needs ([`block_extent`]): the bitmap, and the data inside
    /// the virtual size (none for a block past the end of the disk).
    pub data_end: u64,
    /// The end of the whole block (bitmap and all its data), but not past the footer: the
    /// space a writer gave it.
    pub space_end: u64,
}

/// Where the blocks of a sparse image lie in its file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockGeometry {
    block_size: u32,
    /// Bytes of a block's sector bitmap.
    bitmap: u64,
    virtual_size: u64,
    /// Where blocks must end: the footer's offset.
    limit: u64,
}

impl BlockGeometry {
    pub(crate) fn new(block_size: u32, virtual_size: u64, limit: u64) -> BlockGeometry {
        BlockGeometry {
            block_size,
            bitmap: bitmap_size(block_size),
            virtual_size,
            limit,
        }
    }

    /// Where `block`, stored from file `sector` on, lies ([`block_extent`]).
    pub(crate) fn extent(&self, block: u32, sector: u32) -> BlockExtent {
        let Range { start, end } = block_extent(sector, block, self.block_size, self.virtual_size);
        let bitmap_end = start + self.bitmap;
        BlockExtent {
            start,
            in_disk: u64::from(block) * u64::from(self.block_size) < self.virtual_size,
            bitmap_end,
            data_end: end,
            space_end: (bitmap_end + u64::from(self.block_size)).min(self.limit),
        }
    }

    /// Whether a block is not (wholly) in front of the footer, and how.
    pub(crate) fn out_of_range(&self, extent: &BlockExtent) -> Option<OutOfRange> {
        if extent.bitmap_end > self.limit {
            Some(OutOfRange::Bitmap)
        } else if extent.data_end > self.limit {
            Some(OutOfRange::Data)
        } else {
            None
        }
    }

    /// Bytes of a block's sector bitmap.
    pub(crate) fn bitmap_bytes(&self) -> u64 {
        self.bitmap
    }

    /// Bytes of one whole block in the file: its sector bitmap and all its data.
    pub(crate) fn unit(&self) -> u64 {
        self.bitmap + u64::from(self.block_size)
    }

    /// The virtual size the extents are worked out for.
    pub(crate) fn virtual_size(&self) -> u64 {
        self.virtual_size
    }

    /// Where blocks must end: the offset of the footer.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The bytes of the file a reader needs of block `block` at `sector`: its sector
    /// bitmap, and its data inside the disk.
    pub(crate) fn read_extent(&self, block: u32, sector: u32) -> Range<u64> {
        let extent = self.extent(block, sector);
        extent.start..extent.data_end
    }
}

/// Where a parent locator's data lies, and whether it is in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocatorExtent {
    pub index: usize,
    /// The bytes it holds ([`locator_data`]).
    pub data: (u64, u64),
    /// The space reserved for it ([`locator_space`]), not clipped.
    pub space_end: u64,
    /// Its data lies between the footer copy and the footer (only such data is a structure
    /// of the file: its space is used space, and a block may not cover it if it is read).
    pub in_file: bool,
    /// Its data is no longer than a reader reads ([`MAX_LOCATOR_BYTES`]): longer data names
    /// no parent (nothing reads it), so it is not protected (blocks may cover it, writes
    /// may go over it).
    pub read: bool,
}

/// Why a differencing image may not be written because of where a parent locator's data
/// lies ([`FileLayout::locator_in_the_way`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocatorInTheWay {
    /// The data runs past the footer (or starts past it): where new blocks are written.
    PastFooter,
    /// The data overlaps this structure, which writes rewrite.
    Overlaps(Structure),
}

/// The layout of a sparse image's file, without its blocks (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct FileLayout {
    geometry: BlockGeometry,
    differencing: bool,
    /// The footer copy, the dynamic header and the BAT, in that order.
    metadata: [Region; 3],
    /// Where the BAT's space ends (its last sector, padded by every writer).
    bat_space_end: u64,
    /// The non-empty parent locators.
    locators: Vec<LocatorExtent>,
}

impl FileLayout {
    /// The layout described by a dynamic header at `header_offset` (the footer's data
    /// offset), for a disk of `virtual_size` bytes whose file has its footer at
    /// `footer_offset`. `differencing`: a differencing image, which reads its parent
    /// locators (the locator data of other images takes no part in overlaps).
    /// The header's block size must be a power of two of at least 512 bytes.
    pub(crate) fn new(
        header: &DynamicHeader,
        header_offset: u64,
        virtual_size: u64,
        footer_offset: u64,
        differencing: bool,
    ) -> FileLayout {
        let limit = footer_offset;
        let structure = |range: Range<u64>, structure| Region {
            start: range.start,
            end: range.end,
            occupant: Occupant::Structure(structure),
        };
        let table_end = bat_extent(header).end;
        let metadata = [
            structure(0..FOOTER_SIZE as u64, Structure::FooterCopy),
            structure(header_extent(header_offset), Structure::Header),
            structure(bat_extent(header), Structure::Bat),
        ];
        let locators = header
            .parent_locators
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(index, l)| {
                let data = locator_data(l);
                LocatorExtent {
                    index,
                    data: (data.start, data.end),
                    space_end: data.start.saturating_add(locator_space(l)),
                    in_file: between_footers(&data, limit),
                    read: locator_is_read(l),
                }
            })
            .collect();
        FileLayout {
            geometry: BlockGeometry::new(header.block_size, virtual_size, limit),
            differencing,
            metadata,
            bat_space_end: table_end.next_multiple_of(512).min(limit).max(table_end),
            locators,
        }
    }

    /// Where the blocks lie.
    pub(crate) fn geometry(&self) -> BlockGeometry {
        self.geometry
    }

    /// The offset of the footer: blocks and structures must end there.
    pub(crate) fn limit(&self) -> u64 {
        self.geometry.limit
    }

    /// The non-empty parent locators, in index order.
    pub(crate) fn locators(&self) -> &[LocatorExtent] {
        &self.locators
    }

    /// The structures' stretches (footer copy, header, BAT, locator data in the file), in
    /// file order. Locator data counts for overlaps (`Exact`) in differencing images only,
    /// and only data a reader reads (other images never read it: leftovers there overlap
    /// nothing); its space counts as used in every image.
    pub(crate) fn structures(&self, stretch: Stretch) -> Vec<Region> {
        let mut regions = self.metadata.to_vec();
        if stretch == Stretch::Space {
            regions[2].end = self.bat_space_end;
        }
        for locator in self.locators.iter().filter(|l| l.in_file) {
            let (start, data_end) = locator.data;
            let end = match stretch {
                Stretch::Exact if self.differencing && locator.read => data_end,
                Stretch::Exact => continue,
                Stretch::Space => locator.space_end.min(self.limit()),
            };
            if end > start {
                regions.push(Region {
                    start,
                    end,
                    occupant: Occupant::Structure(Structure::Locator(locator.index)),
                });
            }
        }
        regions.sort_by_key(|r| (r.start, r.end));
        regions
    }

    /// Where the structures' space ends: unused space in front of this lies among the
    /// metadata and is never a leaked block.
    pub(crate) fn metadata_end(&self) -> u64 {
        let structures = self.structures(Stretch::Space);
        structures.iter().map(|r| r.end).max().unwrap_or(0)
    }

    /// Every structure's and block's stretch, in file order (structures before blocks that
    /// start at the same offset).
    pub(crate) fn regions<'a>(
        &'a self,
        blocks: &'a BlockList,
        stretch: Stretch,
    ) -> impl Iterator<Item = Region> + 'a {
        let mut structures = self.structures(stretch).into_iter().peekable();
        let geometry = self.geometry;
        let mut blocks = blocks
            .iter()
            .map(move |(block, sector)| {
                let extent = geometry.extent(block, sector);
                let end = match stretch {
                    Stretch::Exact => extent.data_end,
                    Stretch::Space => extent.space_end,
                };
                Region {
                    start: extent.start,
                    end,
                    occupant: Occupant::Block(block),
                }
            })
            .peekable();
        std::iter::from_fn(move || match (structures.peek(), blocks.peek()) {
            (Some(s), Some(b)) if s.start <= b.start => structures.next(),
            (Some(_), None) => structures.next(),
            _ => blocks.next(),
        })
    }

    /// The pairs of stretches that share bytes (`Exact`), as `(region, before)`: in file
    /// order, each region is compared with the one reaching furthest before it. One pass,
    /// however many blocks share their bytes; every region that overlaps another is in at
    /// least one pair.
    pub(crate) fn overlaps<'a>(
        &'a self,
        blocks: &'a BlockList,
    ) -> impl Iterator<Item = (Region, Region)> + 'a {
        let mut furthest: Option<Region> = None;
        self.regions(blocks, Stretch::Exact)
            .filter_map(move |region| {
                let pair = furthest
                    .filter(|before| region.start < before.end)
                    .map(|before| (region, before));
                if furthest.is_none_or(|before| region.end > before.end) {
                    furthest = Some(region);
                }
                pair
            })
    }

    /// The end of the space used by structures and blocks, not past the footer.
    pub(crate) fn used_end(&self, blocks: &BlockList) -> u64 {
        let used = self.regions(blocks, Stretch::Space).map(|r| r.end).max();
        used.unwrap_or(0).max(self.metadata_end())
    }

    /// The space a parent locator's data was given, as far as it must be kept free of new
    /// blocks: from its offset, for data that starts in front of the footer, to the end of
    /// its data space, but no further than a path can need past the footer (a damaged data
    /// space, of up to 2 TiB, must not push new blocks far past the end of the file).
    fn reservations(&self) -> impl Iterator<Item = (usize, Range<u64>)> + '_ {
        let limit = self.limit();
        let cap = limit + u64::from(MAX_LOCATOR_BYTES);
        self.locators
            .iter()
            .filter(move |l| l.data.0 < limit)
            .map(move |l| (l.index, l.data.0..l.space_end.min(cap)))
    }

    /// The end of every structure's space, every block's whole unit (`sectors`: where the
    /// allocated blocks start) and every locator's reserved space: new blocks go past it,
    /// so that a last block stored short can grow and no locator's space is taken.
    /// Not rounded; may lie past the footer.
    pub(crate) fn reserved_end(&self, sectors: impl Iterator<Item = u32>) -> u64 {
        let unit = self.geometry.unit();
        let blocks_end = sectors.map(|sector| u64::from(sector) * 512 + unit).max();
        let locators_end = self.reservations().map(|(_, space)| space.end).max();
        let metadata_end = self.metadata.iter().map(|r| r.end).max().unwrap_or(0);
        metadata_end
            .max(blocks_end.unwrap_or(0))
            .max(locators_end.unwrap_or(0))
    }

    /// The parent locators whose data (with its reserved space, not past the footer) lies
    /// in `range`: what must move when the BAT grows over it. `(index, start, end)`.
    pub(crate) fn locators_in(&self, range: Range<u64>) -> Vec<(usize, u64, u64)> {
        let limit = self.limit();
        self.reservations()
            .map(|(index, space)| (index, space.start, space.end.min(limit)))
            .filter(|&(_, start, end)| start < range.end && range.start < end)
            .collect()
    }

    /// Whether file bytes `range` lie in front of the footer and clear of the footer copy,
    /// the header, the BAT, parent locator data and its space, and every block of
    /// `allocated` (`(block, sector)`, whole units) but `except`. A linear pass: for one
    /// question (a resize), not for every block.
    pub(crate) fn is_free(
        &self,
        range: Range<u64>,
        allocated: impl Iterator<Item = (u32, u32)>,
        except: Option<u32>,
    ) -> bool {
        if range.end > self.limit() {
            return false;
        }
        let unit = self.geometry.unit();
        let overlaps = |r: &Range<u64>| r.start < range.end && range.start < r.end;
        let metadata = self.metadata.iter().any(|r| r.overlaps(&range));
        let locators = self.reservations().any(|(_, space)| overlaps(&space));
        let blocks = allocated
            .filter(|&(block, _)| Some(block) != except)
            .any(|(_, sector)| {
                let start = u64::from(sector) * 512;
                overlaps(&(start..start + unit))
            });
        !(metadata || locators || blocks)
    }

    /// Whether a differencing image may not be written because of where the data of a
    /// parent locator a reader reads lies: not wholly in front of the footer (past it is where new blocks go: a new
    /// block would hold it, and then overlap it at the next open; part of it outside the
    /// file names nothing), or over the footer copy, the dynamic header or the BAT (which
    /// writes rewrite: the path to the parent would change under it). Locator data
    /// elsewhere in front of the footer is protected by the layout (blocks may not overlap
    /// it, and new ones go past it). The first such locator, with its data.
    pub(crate) fn locator_in_the_way(&self) -> Option<(LocatorExtent, LocatorInTheWay)> {
        if !self.differencing {
            return None;
        }
        self.locators
            .iter()
            .filter(|l| l.read && l.data.1 > l.data.0)
            .find_map(|l| {
                let data = l.data.0..l.data.1;
                if data.end > self.limit() {
                    return Some((*l, LocatorInTheWay::PastFooter));
                }
                self.metadata
                    .iter()
                    .find(|r| r.overlaps(&data))
                    .and_then(|r| match r.occupant {
                        Occupant::Structure(s) => Some((*l, LocatorInTheWay::Overlaps(s))),
                        Occupant::Block(_) => None,
                    })
            })
    }
}

/// The allocated blocks in front of the footer, each as one number that sorts in file order
/// (its sector), then in BAT order: 8 bytes a block, however a crafted BAT repeats them.
#[derive(Debug, Default)]
pub(crate) struct BlockList {
    keys: Vec<u64>,
}

impl BlockList {
    /// Room for `blocks` blocks, allocated once (growing by reallocation would hold two
    /// copies at times); pages never used are never touched.
    pub(crate) fn with_capacity(blocks: usize) -> BlockList {
        BlockList {
            keys: Vec::with_capacity(blocks),
        }
    }

    pub(crate) fn push(&mut self, block: u32, sector: u32) {
        self.keys.push((u64::from(sector) << 32) | u64::from(block));
    }

    /// Puts the blocks in file order (then BAT order); [`FileLayout::regions`] needs it.
    pub(crate) fn sort(&mut self) {
        self.keys.sort_unstable();
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// `(block, sector)` of the `i`th block.
    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let key = self.keys[i];
        (key as u32, (key >> 32) as u32)
    }

    /// `(block, sector)` of each block, in the list's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.keys.len()).map(|i| self.get(i))
    }
}

impl Structure {
    /// The structure in words, for errors and reasons.
    pub(crate) fn name(self, header: &DynamicHeader) -> String {
        match self {
            Structure::FooterCopy => "the footer copy".into(),
            Structure::Header => "the dynamic header".into(),
            Structure::Bat => "the block allocation table".into(),
            Structure::Locator(i) => format!(
                "the data of parent locator {i} ({})",
                header.parent_locators[i].platform_name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_extents_cover_the_last_sector_of_the_disk() {
        let bitmap = bitmap_size(4096);
        // The disk ends inside block 0 and inside its second sector: both sectors count.
        assert_eq!(block_extent(10, 0, 4096, 1000), 5120..5120 + bitmap + 1024);
        assert_eq!(block_extent(10, 0, 4096, 1024), 5120..5120 + bitmap + 1024);
        assert_eq!(block_extent(10, 0, 4096, 1025), 5120..5120 + bitmap + 1536);
        // A whole block, and one past the end of the disk (its bitmap only).
        assert_eq!(
            block_extent(10, 1, 4096, 1 << 20),
            5120..5120 + bitmap + 4096
        );
        assert_eq!(block_extent(10, 2, 4096, 8192), 5120..5120 + bitmap);
        // A hostile virtual size cannot overflow.
        let last = u32::MAX - 1;
        let extent = block_extent(last, last, 1 << 28, u64::MAX);
        assert_eq!(extent.end - extent.start, bitmap_size(1 << 28) + (1 << 28));
    }

    /// A differencing image's layout: footer copy, header at 512, a 4-entry BAT at 1536
    /// (padded to 2048), locator 0's path at 2048..2060 (a reader reads it), locator 1's
    /// 100 KiB of data at 128 KiB (no reader reads that much), blocks of 4 KiB (4608 bytes
    /// with their bitmaps), the footer at 256 KiB.
    fn layout() -> (FileLayout, DynamicHeader) {
        let mut header = DynamicHeader::new(1536, 4, 4096);
        let locator = |offset, length| ParentLocator {
            platform_code: crate::parent_locator::platform::W2KU,
            platform_data_space: length,
            platform_data_length: length,
            reserved: 0,
            platform_data_offset: offset,
        };
        header.parent_locators[0] = locator(2048, 12);
        header.parent_locators[1] = locator(128 << 10, 100 << 10);
        (
            FileLayout::new(&header, 512, 4 * 4096, 256 << 10, true),
            header,
        )
    }

    #[test]
    fn overlaps_name_every_block_that_shares_bytes() {
        let (layout, _) = layout();
        let mut blocks = BlockList::with_capacity(4);
        // Block 1 over locator 0's path, block 0 right after it, block 2 over block 0,
        // block 3 over locator 1's data (which no reader reads).
        for (block, sector) in [(0, 13), (1, 4), (2, 14), (3, 256)] {
            blocks.push(block, sector);
        }
        blocks.sort();
        let pairs: Vec<(Occupant, Occupant)> = layout
            .overlaps(&blocks)
            .map(|(a, b)| (a.occupant, b.occupant))
            .collect();
        let locator_0 = Occupant::Structure(Structure::Locator(0));
        assert_eq!(
            pairs,
            [
                (Occupant::Block(1), locator_0),
                (Occupant::Block(2), Occupant::Block(0)),
            ]
        );
        // Locator 1's data space is used space: it ends the metadata and the used space.
        let locator_1_end = (128 << 10) + (100 << 10);
        assert_eq!(layout.metadata_end(), locator_1_end);
        assert_eq!(layout.used_end(&blocks), locator_1_end);
    }

    #[test]
    fn free_space_and_locators_in_the_way() {
        let (layout, header) = layout();
        let allocated = || [(0u32, 13u32)].into_iter();
        let footer = 256 << 10;
        assert!(layout.is_free(11264..16384, allocated(), None));
        assert!(
            !layout.is_free(11264..footer + 1, allocated(), None),
            "past the footer"
        );
        assert!(
            !layout.is_free(2048..2560, allocated(), None),
            "locator 0's space"
        );
        assert!(
            !layout.is_free(131072..131584, allocated(), None),
            "locator 1's space"
        );
        assert!(!layout.is_free(6656..7168, allocated(), None), "block 0");
        assert!(layout.is_free(6656..7168, allocated(), Some(0)));
        let sectors = allocated().map(|(_, sector)| sector);
        assert_eq!(layout.reserved_end(sectors), (128 << 10) + (100 << 10));
        // No reader reads locator 1's data: it is in nobody's way.
        assert!(layout.locator_in_the_way().is_none());
        // Locator 0's path over the BAT, or running past the footer, is in the way.
        let mut moved = header.clone();
        moved.parent_locators[0].platform_data_offset = 1540;
        let over_bat = FileLayout::new(&moved, 512, 4 * 4096, footer, true);
        let (locator, problem) = over_bat.locator_in_the_way().unwrap();
        assert_eq!(locator.index, 0);
        assert_eq!(problem, LocatorInTheWay::Overlaps(Structure::Bat));
        moved.parent_locators[0].platform_data_offset = footer - 4;
        let past = FileLayout::new(&moved, 512, 4 * 4096, footer, true);
        assert_eq!(
            past.locator_in_the_way().unwrap().1,
            LocatorInTheWay::PastFooter
        );
        // A dynamic image never reads its locators.
        let dynamic = FileLayout::new(&moved, 512, 4 * 4096, footer, false);
        assert!(dynamic.locator_in_the_way().is_none());
    }
}
