//! Differencing images: a sparse file whose sector bitmaps say which sectors it holds; every
//! other sector comes from the parent image (down to a fixed, dynamic or raw base).

use super::parent::Parent;
use super::sparse::{BlockSpan, DataRun, SparseFile};
use super::{check_range, check_write_range, readable_length, Access, FooterSource, VirtualDisk};
use crate::bat::BlockAllocationTable;
use crate::dynamic_header::DynamicHeader;
use crate::error::Result;
use crate::footer::Footer;
use crate::storage::Wait;
use std::path::Path;

/// What a read that must not wait reports when a parent's read would have waited.
fn would_block() -> crate::Error {
    crate::Error::io("reading the parent", std::io::ErrorKind::WouldBlock.into())
}

/// An open differencing image and, through [`DifferencingImage::parent`], its whole chain.
///
/// Only this image is ever written; its parents are opened read-only.
#[derive(Debug)]
pub struct DifferencingImage {
    // Boxed to keep `Image` small: see `SparseFile::open`.
    sparse: Box<SparseFile>,
    parent: Parent,
}

impl DifferencingImage {
    pub(super) fn new(sparse: Box<SparseFile>, parent: Parent) -> DifferencingImage {
        DifferencingImage { sparse, parent }
    }

    /// The image this one reads its unwritten sectors from.
    pub fn parent(&self) -> &Parent {
        &self.parent
    }

    /// The hard disk footer.
    pub fn footer(&self) -> &Footer {
        self.sparse.footer()
    }

    /// The dynamic disk header (parent id, time stamp, name and locators).
    pub fn header(&self) -> &DynamicHeader {
        self.sparse.header()
    }

    /// The decoded path of each parent locator entry (see [`crate::Image::parent_locator_texts`]).
    pub fn parent_locator_texts(&self) -> [Option<String>; 8] {
        self.sparse.locator_texts()
    }

    /// The block allocation table as it is in memory (including unflushed allocations).
    pub fn bat(&self) -> &BlockAllocationTable {
        self.sparse.bat()
    }

    /// Bytes of data per block.
    pub fn block_size(&self) -> u32 {
        self.sparse.block_size()
    }

    /// Where the footer was found.
    pub fn footer_source(&self) -> FooterSource {
        self.sparse.footer_source()
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        self.sparse.path()
    }

    pub(crate) fn access(&self) -> &Access {
        self.sparse.access()
    }

    /// The sparse file under the image, for the allocation map and the maintenance
    /// operations.
    pub(crate) fn sparse(&self) -> &SparseFile {
        &self.sparse
    }

    /// The sparse file under the image, for the maintenance operations.
    pub(crate) fn sparse_mut(&mut self) -> &mut SparseFile {
        &mut self.sparse
    }

    /// Reads from the parent; what lies past the parent's end (a child may be larger than
    /// its parent) reads as zeros.
    /// [`VirtualDisk::read_at`], waiting for the device or not.
    fn read_waiting(&self, buf: &mut [u8], offset: u64, wait: Wait) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size());
        let mut rest = &mut buf[..length];
        let mut run = DataRun::new(wait);
        for span in self.sparse.spans(offset, length) {
            let position = offset + span.buf_range.start as u64;
            let (dest, tail) = std::mem::take(&mut rest).split_at_mut(span.buf_range.len());
            rest = tail;
            match self.sparse.bat().get(span.block) {
                None => self.read_parent_waiting(dest, position, wait)?,
                Some(sector) => {
                    self.read_allocated(&span, sector, dest, position, &mut run, wait)?
                }
            }
        }
        run.finish(&self.sparse)?;
        Ok(length)
    }

    pub(crate) fn read_parent(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_parent_waiting(buf, offset, Wait::Yes)
    }

    /// [`DifferencingImage::read_parent`], waiting for the device or not.
    fn read_parent_waiting(&self, buf: &mut [u8], offset: u64, wait: Wait) -> Result<()> {
        let parent = self.parent.disk();
        let read = match wait {
            Wait::Yes => parent.read_at(buf, offset)?,
            Wait::No => parent.read_at_now(buf, offset).ok_or_else(would_block)?,
        };
        buf[read..].fill(0);
        Ok(())
    }

    /// Reads one span of an allocated block: runs of present sectors from this file, runs of
    /// absent ones from the parent.
    /// The parts from this file join `run`, to be read when it is finished.
    fn read_allocated<'a>(
        &self,
        span: &BlockSpan,
        sector: u32,
        mut buf: &'a mut [u8],
        offset: u64,
        run: &mut DataRun<'a>,
        wait: Wait,
    ) -> Result<()> {
        let bitmap = self.sparse.bitmap_waiting(span.block, sector, wait)?;
        let end_in_block = span.offset_in_block + buf.len() as u64;
        let last_sector = end_in_block.div_ceil(512) as u32;
        let mut position = span.offset_in_block;
        while position < end_in_block {
            let first = (position / 512) as u32;
            let present = bitmap.is_set(first);
            let run_end = (u64::from(bitmap.run_end(first, last_sector)) * 512).min(end_in_block);
            let (dest, tail) = std::mem::take(&mut buf).split_at_mut((run_end - position) as usize);
            buf = tail;
            if present {
                run.push(&self.sparse, sector, position, dest)?;
            } else {
                let at = offset + (position - span.offset_in_block);
                self.read_parent_waiting(dest, at, wait)?;
            }
            position = run_end;
        }
        Ok(())
    }

    /// `data` for `span` widened to whole sectors: a sector that the write covers only in
    /// part, and that this image does not hold yet, is first filled from the parent, so that
    /// setting its bitmap bit does not hide the parent's bytes around the write.
    fn whole_sectors(
        &self,
        span: &BlockSpan,
        sector: Option<u32>,
        data: &[u8],
    ) -> Result<(u64, Vec<u8>)> {
        let start = span.offset_in_block;
        let end = start + data.len() as u64;
        let aligned_start = start / 512 * 512;
        let aligned_end = end.div_ceil(512) * 512;
        let block_start = u64::from(span.block) * u64::from(self.sparse.block_size());
        let mut sectors = vec![0u8; (aligned_end - aligned_start) as usize];
        let bitmap = sector
            .map(|s| self.sparse.bitmap(span.block, s))
            .transpose()?;
        let held = |in_block: u64| {
            bitmap
                .as_ref()
                .is_some_and(|b| b.is_set((in_block / 512) as u32))
        };
        for edge in [aligned_start, aligned_end - 512] {
            let dest = &mut sectors[(edge - aligned_start) as usize..][..512];
            match sector {
                Some(s) if held(edge) => self.sparse.read_data(s, edge, dest)?,
                _ => self.read_parent(dest, block_start + edge)?,
            }
        }
        sectors[(start - aligned_start) as usize..][..data.len()].copy_from_slice(data);
        Ok((aligned_start, sectors))
    }
}

impl VirtualDisk for DifferencingImage {
    fn size(&self) -> u64 {
        self.sparse.size()
    }

    /// Present sectors come from this file (runs that follow one another in the file read
    /// together, see `DataRun` in `sparse/data.rs`), the others from the parent.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.read_waiting(buf, offset, Wait::Yes)
    }

    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        self.read_waiting(buf, offset, Wait::No).ok()
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.sparse.access().check_writable()?;
        check_write_range(offset, buf.len(), self.size())?;
        for span in self.sparse.spans(offset, buf.len()) {
            let data = &buf[span.buf_range.clone()];
            let existing = self.sparse.bat().get(span.block);
            let unaligned =
                !span.offset_in_block.is_multiple_of(512) || !data.len().is_multiple_of(512);
            let (at, widened) = if unaligned {
                let (at, sectors) = self.whole_sectors(&span, existing, data)?;
                (at, Some(sectors))
            } else {
                (span.offset_in_block, None)
            };
            let bytes = widened.as_deref().unwrap_or(data);
            // Zeros must be written too: here they hide the parent's data.
            let sector = match existing {
                Some(sector) => sector,
                None => self.sparse.allocate(span.block)?,
            };
            self.sparse.write_data(span.block, sector, at, bytes)?;
            let written = BlockSpan {
                block: span.block,
                offset_in_block: at,
                buf_range: 0..bytes.len(),
            };
            self.sparse.mark_present(span.block, sector, &written)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.sparse.flush()
    }

    /// Marks the whole sectors of the range absent, so that the parent's data shows
    /// through them again, and unallocates the blocks left with no present sector; the
    /// bytes of a sector the range covers only in part are written as zeros. Then flushes,
    /// and cuts the file when freed blocks were at its end.
    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        self.sparse.access().check_writable()?;
        check_range("discard", offset, length, self.size())?;
        let end = offset + length;
        let first_whole = offset.next_multiple_of(512).min(end);
        let last_whole = (end / 512 * 512).max(first_whole);
        // The partial sectors at either edge: zeros, as a write of zeros gives them.
        for (from, to) in [(offset, first_whole), (last_whole, end)] {
            if from < to {
                self.write_at(&vec![0u8; (to - from) as usize], from)?;
            }
        }
        let block_size = u64::from(self.block_size());
        let mut position = first_whole;
        while position < last_whole {
            let block = (position / block_size) as u32;
            let block_start = u64::from(block) * block_size;
            let span_end = (block_start + block_size).min(last_whole);
            if let Some(sector) = self.sparse.bat().get(block) {
                let sectors = ((position - block_start) / 512) as u32
                    ..((span_end - block_start) / 512) as u32;
                if self.sparse.mark_absent(block, sector, sectors)? {
                    self.sparse.free_block(block);
                }
            }
            position = span_end;
        }
        self.sparse.flush()?;
        self.sparse.reclaim_tail()
    }
}
