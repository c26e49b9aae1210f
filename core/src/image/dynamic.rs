//! Dynamic images: a footer copy, the dynamic disk header, the block allocation table, then
//! blocks (each a sector bitmap followed by its data) in any order, then the footer.

use super::{
    check_write_range, read_exact, readable_length, sync, write_all, Access, FooterSource,
    LocatedFooter, OpenOptions, VirtualDisk,
};
use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE, UNALLOCATED};
use crate::dynamic_header::{DynamicHeader, DYNAMIC_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::footer::{Footer, FOOTER_SIZE};
use crate::sector_bitmap::{bitmap_size, SectorBitmap};
use crate::storage::Storage;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// BAT entries per 512-byte sector of the table: the unit in which the table is rewritten.
const BAT_ENTRIES_PER_SECTOR: u32 = 128;

/// An open dynamic image.
///
/// The BAT lives in memory. New blocks are appended where the footer was, and their BAT
/// entries, like newly set bits in the bitmaps of blocks that were already allocated, reach
/// the file only in [`flush`](VirtualDisk::flush), after the data they vouch for is durable.
#[derive(Debug)]
pub struct DynamicImage {
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
    /// Sector bitmaps read or written so far, as they should be on disk.
    bitmaps: HashMap<u32, SectorBitmap>,
    /// Blocks whose bitmap in memory has bits set that the file does not have yet.
    dirty_bitmaps: BTreeSet<u32>,
}

/// The part of an I/O request that falls in one block.
struct BlockSpan {
    block: u32,
    offset_in_block: u64,
    /// The bytes of the caller's buffer that belong to this block.
    buf_range: Range<usize>,
}

impl DynamicImage {
    pub(super) fn open(
        file: Box<dyn Storage>,
        path: &Path,
        located: LocatedFooter,
        mut access: Access,
        options: &OpenOptions,
    ) -> Result<DynamicImage> {
        let header = read_header(file.as_ref(), &located)?;
        let footer = located.footer.clone();
        if let Err(e) = header.verify_checksum(footer.data_offset) {
            if !options.ignore_checksums {
                return Err(e);
            }
            access.force_read_only(format!("checksums were ignored to open it ({e})"));
        }
        validate_block_size(&header, footer.data_offset)?;
        let bat = read_bat(file.as_ref(), &header, &footer, located.file_size)?;
        let block_size = u64::from(header.block_size);
        let bitmap_size = bitmap_size(header.block_size);
        let mut image = DynamicImage {
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
            bitmaps: HashMap::new(),
            dirty_bitmaps: BTreeSet::new(),
        };
        image.validate_blocks(located.end_offset)?;
        image.next_block_offset = image.end_of_used_space(located.end_offset);
        Ok(image)
    }

    /// The hard disk footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The dynamic disk header.
    pub fn header(&self) -> &DynamicHeader {
        &self.header
    }

    /// The block allocation table as it is in memory (including unflushed allocations).
    pub fn bat(&self) -> &BlockAllocationTable {
        &self.bat
    }

    /// Bytes of data per block.
    pub fn block_size(&self) -> u32 {
        self.header.block_size
    }

    /// Where the footer was found.
    pub fn footer_source(&self) -> FooterSource {
        self.footer_source
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// Every allocated block's data must lie in the file, in front of the footer. Only the
    /// part of the last block inside the virtual size has to be there.
    fn validate_blocks(&self, footer_offset: u64) -> Result<()> {
        for (block, sector) in self.bat.allocated() {
            let offset = u64::from(sector) * 512;
            let block_start = u64::from(block) * self.block_size;
            // Saturating: max table entries may exceed what the size needs, and an entry
            // past the end of the disk holds no data we read (only its bitmap must fit).
            let needed = self.block_size.min(self.size().saturating_sub(block_start));
            let end = offset + self.bitmap_size + needed;
            if end > footer_offset {
                return Err(Error::BatEntryOutOfRange {
                    index: block,
                    sector,
                    offset,
                    end,
                    limit: footer_offset,
                });
            }
        }
        Ok(())
    }

    /// The first sector-aligned offset past every structure and block: where new blocks go.
    fn end_of_used_space(&self, footer_offset: u64) -> u64 {
        let header_end = self.footer.data_offset + DYNAMIC_HEADER_SIZE as u64;
        let bat_end = self.header.table_offset + self.bat.len() as u64 * BAT_ENTRY_SIZE;
        let blocks_end = self
            .bat
            .allocated()
            .map(|(_, sector)| u64::from(sector) * 512 + self.bitmap_size + self.block_size);
        let locators_end = self
            .header
            .parent_locators
            .iter()
            .filter(|l| !l.is_empty())
            // Locator data past the end of the file is not there to protect, and a damaged
            // offset near u64::MAX must not overflow.
            .filter(|l| l.platform_data_offset < footer_offset)
            .map(|l| l.platform_data_offset.saturating_add(locator_space(l)));
        [footer_offset, header_end, bat_end]
            .into_iter()
            .chain(blocks_end)
            .chain(locators_end)
            .max()
            .unwrap_or(footer_offset)
            .next_multiple_of(512)
    }

    /// Splits `length` bytes at virtual `offset` into per-block spans.
    fn spans(&self, offset: u64, length: usize) -> impl Iterator<Item = BlockSpan> + '_ {
        let mut done = 0usize;
        std::iter::from_fn(move || {
            if done == length {
                return None;
            }
            let position = offset + done as u64;
            let offset_in_block = position % self.block_size;
            let take = (self.block_size - offset_in_block).min((length - done) as u64) as usize;
            let span = BlockSpan {
                block: (position / self.block_size) as u32,
                offset_in_block,
                buf_range: done..done + take,
            };
            done += take;
            Some(span)
        })
    }

    fn data_offset(&self, sector: u32) -> u64 {
        u64::from(sector) * 512 + self.bitmap_size
    }

    /// Appends a new block where the footer is and points `block` at it (in memory).
    fn allocate(&mut self, block: u32) -> Result<u32> {
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
        write_all(
            self.file.as_ref(),
            &self.footer.to_bytes(),
            end,
            "the footer",
        )?;
        self.next_block_offset = end;
        self.bat.set(block, sector);
        self.unflushed_blocks.insert(block);
        self.bitmaps
            .insert(block, SectorBitmap::new(self.header.block_size));
        Ok(sector)
    }

    /// Marks the sectors of `block` that `span` touches as present in its bitmap.
    fn mark_present(&mut self, block: u32, sector: u32, span: &BlockSpan) -> Result<()> {
        if !self.bitmaps.contains_key(&block) {
            let mut bytes = vec![0u8; self.bitmap_size as usize];
            let offset = u64::from(sector) * 512;
            read_exact(self.file.as_ref(), &mut bytes, offset, "a sector bitmap")?;
            self.bitmaps.insert(block, SectorBitmap::from_bytes(bytes));
        }
        let first = (span.offset_in_block / 512) as u32;
        let last = ((span.offset_in_block + span.buf_range.len() as u64 - 1) / 512) as u32;
        let bitmap = self.bitmaps.get_mut(&block).expect("bitmap loaded above");
        if bitmap.set_range(first, last - first + 1) {
            self.dirty_bitmaps.insert(block);
        }
        Ok(())
    }

    fn write_bitmap(&self, block: u32) -> Result<()> {
        let sector = self
            .bat
            .get(block)
            .expect("dirty bitmaps belong to allocated blocks");
        let offset = u64::from(sector) * 512;
        write_all(
            self.file.as_ref(),
            self.bitmaps[&block].as_bytes(),
            offset,
            "a sector bitmap",
        )
    }

    /// Writes the BAT entries of blocks allocated since the last flush, one write per
    /// 512-byte sector of the table that changed.
    fn write_unflushed_bat_entries(&self) -> Result<()> {
        let blocks: Vec<u32> = self.unflushed_blocks.iter().copied().collect();
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

impl VirtualDisk for DynamicImage {
    fn size(&self) -> u64 {
        self.footer.current_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size());
        for span in self.spans(offset, length) {
            let dest = &mut buf[span.buf_range];
            match self.bat.get(span.block) {
                None => dest.fill(0),
                Some(sector) => {
                    let at = self.data_offset(sector) + span.offset_in_block;
                    read_exact(self.file.as_ref(), dest, at, "block data")?;
                }
            }
        }
        Ok(length)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.access.check_writable()?;
        check_write_range(offset, buf.len(), self.size())?;
        let spans: Vec<BlockSpan> = self.spans(offset, buf.len()).collect();
        for span in spans {
            let data = &buf[span.buf_range.clone()];
            let sector = match self.bat.get(span.block) {
                Some(sector) => sector,
                // An unallocated block already reads as zeros.
                None if is_all_zero(data) => continue,
                None => self.allocate(span.block)?,
            };
            let at = self.data_offset(sector) + span.offset_in_block;
            write_all(self.file.as_ref(), data, at, "block data")?;
            self.mark_present(span.block, sector, &span)?;
        }
        Ok(())
    }

    /// Order: bitmaps of new blocks (nothing on disk points at them yet), fsync, so that all
    /// data is durable; then the new bits of older blocks and the new BAT entries, which
    /// vouch for that data; then a final fsync.
    fn flush(&mut self) -> Result<()> {
        if self.access.read_only_reason().is_some() {
            return Ok(());
        }
        let (new_blocks, old_blocks): (Vec<u32>, Vec<u32>) = self
            .dirty_bitmaps
            .iter()
            .partition(|b| self.unflushed_blocks.contains(b));
        for &block in &new_blocks {
            self.write_bitmap(block)?;
        }
        sync(self.file.as_ref())?;
        if old_blocks.is_empty() && self.unflushed_blocks.is_empty() {
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
        Ok(())
    }
}

impl Drop for DynamicImage {
    /// Like `BufWriter`, a dropped image flushes what it still holds in memory (BAT entries,
    /// bitmap bits), so that forgetting `flush()` does not lose data. Errors cannot be
    /// reported from here: call `flush()` to see them.
    fn drop(&mut self) {
        if !self.unflushed_blocks.is_empty() || !self.dirty_bitmaps.is_empty() {
            let _ = self.flush();
        }
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
    if size < 512 || !size.is_power_of_two() {
        return Err(Error::InvalidField {
            structure: "dynamic header",
            field: "block size",
            offset: header_offset + 32,
            found: u64::from(size),
            reason: "must be a power of two of at least 512 bytes".into(),
        });
    }
    Ok(())
}

/// Reads the BAT after checking that it covers the disk and fits in the file, so that a
/// hostile header cannot make us allocate more memory than the file holds.
fn read_bat(
    file: &dyn Storage,
    header: &DynamicHeader,
    footer: &Footer,
    file_size: u64,
) -> Result<BlockAllocationTable> {
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
    let end = header.table_offset.saturating_add(bat_bytes);
    if end > file_size {
        return Err(Error::Truncated {
            what: format!("the block allocation table ({entries} entries)"),
            offset: header.table_offset,
            end,
            file_size,
        });
    }
    let mut bytes = vec![0u8; bat_bytes as usize];
    read_exact(
        file,
        &mut bytes,
        header.table_offset,
        "the block allocation table",
    )?;
    Ok(BlockAllocationTable::parse(&bytes))
}

/// Bytes reserved for a parent locator's data. The specification counts the space in
/// sectors, Windows in bytes: a value smaller than the data length can only be sectors.
fn locator_space(locator: &crate::ParentLocator) -> u64 {
    let space = u64::from(locator.platform_data_space);
    let length = u64::from(locator.platform_data_length);
    if space < length {
        space * 512
    } else {
        space.max(length)
    }
}

fn is_all_zero(data: &[u8]) -> bool {
    // Sixteen bytes at a time: the compiler turns this into wide compares.
    let chunks = data.chunks_exact(16);
    let tail = chunks.remainder();
    chunks
        .map(|c| u128::from_ne_bytes(c.try_into().unwrap()))
        .all(|w| w == 0)
        && tail.iter().all(|&b| b == 0)
}
